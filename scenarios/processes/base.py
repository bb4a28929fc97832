"""Processes declared as data: shared input types, outputs, results, progress.

A process is a :class:`Process` value — its id, titles, inputs, outputs, job
control options, stages and an example — plus one ``run`` function over the
caller's connection. Everything a process description shows is built from
these declarations, and every input is parsed and validated by its type, once,
here:

- :class:`Value` and :class:`DateInput`: one plain value;
- :class:`PointInput`: a point with its CRS (EPSG codes and URIs, CRS84,
  GCJ-02, BD-09 — :func:`spatial.crs.parse_crs`), inside the city;
- :class:`AreaInput`: an admin unit (level and id) or a polygon with its CRS;
- :class:`TimeWindowInput`: a start and an end;
- :class:`IdSetInput`: ids of one collection, as the caller may see them;
- :class:`ScenarioInput`: a stored what-if scenario.

A bad value is an :class:`~spatial.errors.InvalidInputError` (400) or, for a
unit, id or scenario the caller cannot see, a
:class:`~spatial.errors.NotFoundError` (404), its message naming the input and
only what the caller sent.

A run returns a :class:`ProcessResult` (a summary, feature collections,
tables) that :meth:`Process.outputs_of` turns into the declared, named outputs.
Nothing here imports pygeoapi: :mod:`scenarios.processes.adapter` is the edge.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely
from jsonschema import Draft202012Validator
from psycopg import sql
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.validation import explain_validity

from spatial import jobs
from spatial.access import request_connection
from spatial.crs import parse_crs, to_storage
from spatial.errors import InvalidInputError, NotFoundError
from spatial.wellformed import check_json_value

#: Bilingual text: ``{"en": ..., "zh": ...}``.
Text = Mapping[str, str]

#: Prefix of every input error (the existing API's wording).
INVALID = "invalid input / 输入无效"
#: A point or area farther than this from every district is outside the city.
CITY_MARGIN_M = 5000.0
#: Local time of the city, for dates and times given without an offset.
CITY_TZ = ZoneInfo("Asia/Shanghai")
STORAGE_CRS = "http://www.opengis.net/def/crs/EPSG/0/4490"
SYNC = "sync-execute"
ASYNC = "async-execute"
_ID = re.compile(r"^[a-z][a-z0-9_-]*$")


def invalid(name: str, reason: str) -> InvalidInputError:
    """The 400 for one input: ``invalid input / 输入无效: <name>: <reason>``.

    Examples
    --------
    >>> str(invalid("crs", "unknown CRS 'mars'"))
    "invalid input / 输入无效: crs: unknown CRS 'mars'"
    """
    return InvalidInputError(f"{INVALID}: {name}: {reason}")


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema object (process descriptions) as JSON Schema.

    OGC API Processes 1.0 describes inputs and outputs with OpenAPI 3.0
    schema objects: ``nullable: true`` instead of a type list. JSON Schema
    validators need the type list.

    Examples
    --------
    >>> json_schema({"type": "object", "nullable": True, "properties": {
    ...     "n": {"type": "integer", "nullable": True}}})
    {'type': ['object', 'null'], 'properties': {'n': {'type': ['integer', 'null']}}}
    """
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    elif schema.get("nullable") and ("oneOf" in out or "anyOf" in out):
        key = "oneOf" if "oneOf" in out else "anyOf"
        out[key] = [*out[key], {"type": "null"}]
    return out


def input_description(title: Text, description: Text, schema: Mapping[str, Any], *,
                      required: bool = False) -> dict[str, Any]:
    """One OGC process input taking one value (optional unless ``required``)."""
    return {"title": dict(title), "description": dict(description), "schema": dict(schema),
            "minOccurs": 1 if required else 0, "maxOccurs": 1}


def _crs(name: str, value: Any) -> int | str:
    """A supported CRS (:func:`spatial.crs.parse_crs`), or a 400 naming the input."""
    try:
        return parse_crs(value)
    except (TypeError, ValueError) as exc:
        raise invalid(name, str(exc)) from None


def _near_city(conn: psycopg.Connection[Any], wkt: str) -> bool:
    row = conn.execute("SELECT onemap.near_city(ST_GeomFromText(%s, 4490), %s) AS near",
                       (wkt, CITY_MARGIN_M)).fetchone()
    return bool(row and row["near"])


# --- input types ------------------------------------------------------------------------


class Input(ABC):
    """One declared input (or a group of inputs read as one value).

    Attributes
    ----------
    key : str
        The name of the parsed value in the inputs a run receives.
    """

    key: str

    @abstractmethod
    def describe(self) -> dict[str, dict[str, Any]]:
        """The OGC input descriptions (name → description) this type reads."""

    @abstractmethod
    def parse(self, raw: Mapping[str, Any]) -> Any:
        """The value from the request's inputs (schema-checked, defaults filled in).

        Raises
        ------
        InvalidInputError
            Naming the input and what is wrong with it.
        """

    def check(self, conn: psycopg.Connection[Any], value: Any) -> None:  # noqa: B027
        """Checks that need the database, through the caller's connection (none by default).

        Raises
        ------
        InvalidInputError, NotFoundError
            Naming the input; never telling what the caller may not see.
        """


@dataclass(frozen=True)
class Value(Input):
    """One plain value (number, string, boolean) checked by its JSON Schema.

    Examples
    --------
    >>> tol = Value("tolerance_m", {"en": "Tolerance (m)", "zh": "容差"}, {"en": "", "zh": ""},
    ...             {"type": "number", "minimum": 0, "default": 15})
    >>> tol.parse({"tolerance_m": 3}), tol.parse({})
    (3, 15)
    """

    name: str
    title: Text
    description: Text
    schema: Mapping[str, Any]
    required: bool = False

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.name: input_description(self.title, self.description, self.schema,
                                             required=self.required)}

    def parse(self, raw: Mapping[str, Any]) -> Any:
        return raw.get(self.name, self.schema.get("default"))


@dataclass(frozen=True)
class DateInput(Input):
    """A calendar date (``YYYY-MM-DD``); None when not given.

    Examples
    --------
    >>> DateInput("as_of", {"en": "", "zh": ""}, {"en": "", "zh": ""}).parse(
    ...     {"as_of": "2024-06-30"})
    datetime.date(2024, 6, 30)
    """

    name: str
    title: Text
    description: Text

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.name: input_description(self.title, self.description,
                                             {"type": "string", "format": "date"})}

    def parse(self, raw: Mapping[str, Any]) -> date | None:
        if self.name not in raw:
            return None
        try:
            return date.fromisoformat(raw[self.name])
        except (TypeError, ValueError):
            raise invalid(self.name, f"{raw[self.name]!r} is not a 'date'") from None


@dataclass(frozen=True)
class Point:
    """A point brought into the storage CRS.

    Attributes
    ----------
    lon, lat : float
        CGCS2000 (EPSG:4490) longitude and latitude.
    x, y : float
        As given.
    crs : int or str
        The CRS it was given in (:func:`spatial.crs.parse_crs`).
    """

    lon: float
    lat: float
    x: float
    y: float
    crs: int | str

    @property
    def wkt(self) -> str:
        """WKT in EPSG:4490."""
        return f"POINT ({self.lon!r} {self.lat!r})"


_CRS_SCHEMA = [{"type": "string"}, {"type": "integer"}]


@dataclass(frozen=True)
class PointInput(Input):
    """A point: two coordinates and their CRS, inside the city.

    GCJ-02 (AMap, Tencent) and BD-09 (Baidu) are converted here: a process
    only ever sees EPSG:4490.

    Examples
    --------
    >>> p = PointInput().parse({"x": 116.410244, "y": 39.916404, "crs": "gcj02"})
    >>> round(p.lon, 5), round(p.lat, 5)
    (116.404, 39.915)
    >>> PointInput().parse({"x": 116.4, "y": 39.9, "crs": "mars2000"})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: crs: unknown CRS 'mars2000'; \
expected an EPSG code, 'EPSG:nnnn', an OGC CRS URI, 'CRS84', 'gcj02' or 'bd09'
    """

    key: str = "point"
    x: str = "x"
    y: str = "y"
    crs: str = "crs"
    default_crs: str = "EPSG:4326"

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            self.x: input_description(
                {"en": "x: longitude or easting", "zh": "X：经度或东坐标"},
                {"en": f"First coordinate of the point, in `{self.crs}`.",
                 "zh": f"点的第一个坐标（{self.crs} 坐标系）。"},
                {"type": "number"}, required=True),
            self.y: input_description(
                {"en": "y: latitude or northing", "zh": "Y：纬度或北坐标"},
                {"en": f"Second coordinate of the point, in `{self.crs}`.",
                 "zh": f"点的第二个坐标（{self.crs} 坐标系）。"},
                {"type": "number"}, required=True),
            self.crs: input_description(
                {"en": "Coordinate reference system", "zh": "坐标系"},
                {"en": "EPSG code or URI, CRS84, gcj02 or bd09; x/y are always "
                       "longitude/latitude (easting/northing) order. Phone GPS is EPSG:4326.",
                 "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09；x/y 始终为经度/纬度顺序。"
                       "手机 GPS 为 EPSG:4326。"},
                {"oneOf": _CRS_SCHEMA, "default": self.default_crs}),
        }

    def parse(self, raw: Mapping[str, Any]) -> Point:
        source = _crs(self.crs, raw.get(self.crs, self.default_crs))
        x, y = float(raw[self.x]), float(raw[self.y])
        try:
            lon_a, lat_a = to_storage([x], [y], source)
        except (TypeError, ValueError) as exc:
            raise invalid(f"{self.x}/{self.y}", str(exc)) from None
        lon, lat = float(lon_a[0]), float(lat_a[0])
        if not (math.isfinite(lon) and math.isfinite(lat)
                and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise invalid(f"{self.x}/{self.y}", f"({x}, {y}) is outside the longitude/latitude "
                          "range / 超出经纬度范围")
        return Point(lon, lat, x, y, source)

    def check(self, conn: psycopg.Connection[Any], value: Point) -> None:
        if not _near_city(conn, value.wkt):
            raise invalid(f"{self.x}/{self.y}", f"({value.x}, {value.y}) is outside the city / "
                          "不在本市范围内")


@dataclass(frozen=True)
class Area:
    """An admin unit or a polygon.

    Attributes
    ----------
    level : str or None
        The unit's level (None for a polygon).
    unit_id : int or None
        The unit's id.
    wkt : str or None
        The polygon, WKT in EPSG:4490.
    """

    level: str | None = None
    unit_id: int | None = None
    wkt: str | None = None


#: Admin levels an :class:`AreaInput` may name, with their tables.
AREA_LEVELS = ("district", "street_office", "community", "grid")


def polygon_wkt(name: str, geometry: Any, crs: int | str) -> str:
    """A GeoJSON (multi)polygon in ``crs`` as valid WKT in EPSG:4490.

    Parameters
    ----------
    name : str
        The input, named in errors.
    geometry : dict
        GeoJSON Polygon or MultiPolygon.
    crs : int or str
        Its CRS, parsed (:func:`spatial.crs.parse_crs`).

    Returns
    -------
    str

    Raises
    ------
    InvalidInputError
        For a malformed, empty or invalid polygon.

    Examples
    --------
    >>> polygon_wkt("polygon", {"type": "Polygon",
    ...             "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, 4490)
    'POLYGON ((0 0, 1 0, 1 1, 0 0))'
    """
    try:
        geom = shape(geometry)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, ShapelyError) as exc:
        raise invalid(name, str(exc)) from None
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise invalid(name, f"an empty or non-polygon geometry ({geom.geom_type})")
    try:
        geom = shapely.transform(
            geom, lambda xy: np.column_stack(to_storage(xy[:, 0], xy[:, 1], crs)))
    except ValueError as exc:
        raise invalid(name, str(exc)) from None
    if not geom.is_valid:
        raise InvalidInputError(f"{INVALID}: {name} is not valid: {explain_validity(geom)}")
    return str(shapely.to_wkt(geom, rounding_precision=-1))


_POLYGON_SCHEMA: dict[str, Any] = {
    "type": "object", "format": "geojson-geometry", "required": ["type", "coordinates"],
    "properties": {"type": {"enum": ["Polygon", "MultiPolygon"]},
                   "coordinates": {"type": "array", "minItems": 1}},
}


@dataclass(frozen=True)
class AreaInput(Input):
    """An area: an admin unit (``level`` and ``unit_id``) or a ``polygon`` in ``crs``.

    The unit must be one the caller can see (else a 404 naming ``unit_id``);
    the polygon must be valid and touch the city.

    Examples
    --------
    >>> area = AreaInput(levels=("community", "grid"))
    >>> area.parse({"level": "grid", "unit_id": 3, "crs": "CRS84"})
    Area(level='grid', unit_id=3, wkt=None)
    >>> area.parse({"level": "grid", "crs": "CRS84"})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: level/unit_id/polygon: give \
either level and unit_id, or polygon / 请给出 level 与 unit_id，或 polygon
    """

    key: str = "area"
    levels: tuple[str, ...] = AREA_LEVELS
    level: str = "level"
    unit_id: str = "unit_id"
    polygon: str = "polygon"
    crs: str = "crs"
    default_crs: str = "CRS84"

    def __post_init__(self) -> None:
        unknown = set(self.levels) - set(AREA_LEVELS)
        if unknown:
            raise ValueError(f"levels must be among {AREA_LEVELS}, got {sorted(unknown)}")

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            self.level: input_description(
                {"en": "Level of the unit", "zh": "单元级别"},
                {"en": f"With {self.unit_id}; instead of {self.polygon}.",
                 "zh": f"与 {self.unit_id} 一起给出；或改用 {self.polygon}。"},
                {"type": "string", "enum": list(self.levels)}),
            self.unit_id: input_description(
                {"en": "Id of the unit", "zh": "单元编号"},
                {"en": "The id of the " + ", ".join(self.levels) + ".",
                 "zh": "单元（" + "、".join(self.levels) + "）的 id。"},
                {"type": "integer", "minimum": 1}),
            self.polygon: input_description(
                {"en": "Area (GeoJSON polygon)", "zh": "区域（GeoJSON 多边形）"},
                {"en": f"A GeoJSON Polygon or MultiPolygon in `{self.crs}`; buildings whose "
                       f"representative point lies in it count. Instead of "
                       f"{self.level}/{self.unit_id}.",
                 "zh": f"{self.crs} 坐标系下的 GeoJSON Polygon 或 MultiPolygon；代表点落在其中的"
                       f"楼栋计入。与 {self.level}/{self.unit_id} 二选一。"},
                _POLYGON_SCHEMA),
            self.crs: input_description(
                {"en": "CRS of the polygon", "zh": "多边形坐标系"},
                {"en": "EPSG code or URI, CRS84, gcj02 or bd09 (x/y order).",
                 "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09（经度/纬度顺序）。"},
                {"oneOf": _CRS_SCHEMA, "default": self.default_crs}),
        }

    def parse(self, raw: Mapping[str, Any]) -> Area:
        by_unit = self.level in raw or self.unit_id in raw
        if by_unit == (self.polygon in raw) or (
                by_unit and not (self.level in raw and self.unit_id in raw)):
            raise invalid(f"{self.level}/{self.unit_id}/{self.polygon}",
                          f"give either {self.level} and {self.unit_id}, or {self.polygon} / "
                          f"请给出 {self.level} 与 {self.unit_id}，或 {self.polygon}")
        if by_unit:
            return Area(level=raw[self.level], unit_id=int(raw[self.unit_id]))
        source = _crs(self.crs, raw.get(self.crs, self.default_crs))
        return Area(wkt=polygon_wkt(self.polygon, raw[self.polygon], source))

    def check(self, conn: psycopg.Connection[Any], value: Area) -> None:
        if value.wkt is not None:
            if not _near_city(conn, value.wkt):
                raise invalid(self.polygon, "the polygon is outside the city / 不在本市范围内")
            return
        if value.level not in AREA_LEVELS:  # parse() had it checked against the enum
            raise ValueError(f"level must be one of {AREA_LEVELS}, got {value.level!r}")
        found = conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(
                sql.Identifier("onemap", value.level)), (value.unit_id,)).fetchone()
        if found is None:  # absent, or hidden from this caller: the same answer
            raise NotFoundError(f"{self.unit_id}: no {value.level} with id {value.unit_id} / "
                                "无此单元")


@dataclass(frozen=True)
class TimeWindow:
    """A time window, ``start`` ≤ t < ``end`` (aware datetimes)."""

    start: datetime
    end: datetime


def _moment(name: str, text: Any) -> datetime:
    """A date or date-time; dates start at local midnight, naive times are local."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), CITY_TZ)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise invalid(name, f"{text!r} is not a date or date-time (ISO 8601)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CITY_TZ)


@dataclass(frozen=True)
class TimeWindowInput(Input):
    """A time window: ``{"start": ..., "end": ...}``, ISO 8601 dates or date-times.

    Dates and times without an offset are the city's local time.

    Examples
    --------
    >>> w = TimeWindowInput("period").parse({"period": {"start": "2024-05-01",
    ...                                                  "end": "2024-05-02T08:00:00Z"}})
    >>> w.end - w.start
    datetime.timedelta(days=1, seconds=57600)
    >>> TimeWindowInput("period").parse({"period": {"start": "2024-05-02", "end": "2024-05-01"}})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: period: end must be after start \
/ 结束时间须晚于开始时间
    """

    name: str
    title: Text = field(default_factory=lambda: {"en": "Time window", "zh": "时间范围"})
    description: Text = field(default_factory=lambda: {
        "en": "start and end (ISO 8601 date or date-time; without an offset: Beijing time).",
        "zh": "start 与 end（ISO 8601 日期或时间；无时区时为北京时间）。"})
    required: bool = False
    max_days: float | None = None

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        moment = {"type": "string",
                  "anyOf": [{"format": "date"}, {"format": "date-time"}]}
        schema = {"type": "object", "required": ["start", "end"], "additionalProperties": False,
                  "properties": {"start": moment, "end": moment}}
        return {self.name: input_description(self.title, self.description, schema,
                                             required=self.required)}

    def parse(self, raw: Mapping[str, Any]) -> TimeWindow | None:
        if self.name not in raw:
            return None
        start = _moment(f"{self.name}.start", raw[self.name]["start"])
        end = _moment(f"{self.name}.end", raw[self.name]["end"])
        if end <= start:
            raise invalid(self.name, "end must be after start / 结束时间须晚于开始时间")
        if self.max_days is not None and end - start > timedelta(days=self.max_days):
            raise invalid(self.name, f"longer than {self.max_days:g} days / "
                          f"超过 {self.max_days:g} 天")
        return TimeWindow(start.astimezone(UTC), end.astimezone(UTC))


@dataclass(frozen=True)
class IdSetInput(Input):
    """Ids of features of one collection (an ``onemap`` table), as the caller sees them.

    Ids the caller cannot see — absent, or outside their scope under
    row-level security — are a 404 naming the input and those ids (which
    the caller sent), never telling which of the two.

    Examples
    --------
    >>> ids = IdSetInput("buildings", collection="building", max_items=3)
    >>> ids.parse({"buildings": [3, 1, 3]})
    (1, 3)
    """

    name: str
    collection: str
    title: Text = field(default_factory=lambda: {"en": "Features", "zh": "要素"})
    description: Text = field(default_factory=lambda: {"en": "Feature ids.", "zh": "要素 id。"})
    required: bool = True
    max_items: int = 1000

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.collection):
            raise ValueError(f"collection must be a table name, got {self.collection!r}")

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        schema = {"type": "array", "items": {"type": "integer", "minimum": 1},
                  "minItems": 1, "maxItems": self.max_items,
                  "x-onemap-collection": self.collection}
        return {self.name: input_description(self.title, self.description, schema,
                                             required=self.required)}

    def parse(self, raw: Mapping[str, Any]) -> tuple[int, ...] | None:
        if self.name not in raw:
            return None
        return tuple(sorted(set(raw[self.name])))

    def check(self, conn: psycopg.Connection[Any], value: tuple[int, ...] | None) -> None:
        if not value:
            return
        seen = {r["id"] for r in conn.execute(
            sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(
                sql.Identifier("onemap", self.collection)), (list(value),)).fetchall()}
        missing = [i for i in value if i not in seen]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise NotFoundError(f"{self.name}: no {self.collection} with id {shown} / 无此要素")


@dataclass(frozen=True)
class ScenarioInput(Input):
    """A stored what-if scenario, by id.

    The scenario store does not exist yet: every id is a 404 "unknown
    scenario" naming the input, so a process can declare the input today.
    """

    name: str = "scenario"
    title: Text = field(default_factory=lambda: {"en": "What-if scenario", "zh": "假设情景"})
    description: Text = field(default_factory=lambda: {
        "en": "Id of a stored what-if scenario whose changes apply.",
        "zh": "已保存的假设情景 id，其改动参与计算。"})
    required: bool = False

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        schema = {"type": "string", "minLength": 1, "maxLength": 64}
        return {self.name: input_description(self.title, self.description, schema,
                                             required=self.required)}

    def parse(self, raw: Mapping[str, Any]) -> str | None:
        value = raw.get(self.name)
        return None if value is None else str(value)

    def check(self, conn: psycopg.Connection[Any], value: str | None) -> None:
        if value is not None:
            raise NotFoundError(f"{self.name}: unknown scenario {value[:64]!r} / 无此情景")


# --- outputs and results ----------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    """Features of one kind of geometry, an output as a GeoJSON FeatureCollection.

    Attributes
    ----------
    features : list of dict
        GeoJSON features (``id``, ``geometry`` in EPSG:4490 lon/lat, ``properties``).
    """

    features: list[dict[str, Any]]

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON FeatureCollection."""
        return {"type": "FeatureCollection", "features": list(self.features),
                "numberReturned": len(self.features)}


@dataclass(frozen=True)
class Table:
    """Rows under named columns: an output as ``{"columns": [...], "rows": [[...]]}``."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True)
class ProcessResult:
    """What a run produced: a summary, feature collections and tables by output id.

    Attributes
    ----------
    summary : dict
        The process's JSON document (its :class:`SummaryOutput`).
    features : dict of str to FeatureSet
        Feature outputs by id.
    tables : dict of str to Table
        Table outputs by id.
    """

    summary: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, FeatureSet] = field(default_factory=dict)
    tables: Mapping[str, Table] = field(default_factory=dict)


@dataclass(frozen=True)
class Output(ABC):
    """A declared output: its id, titles and schema."""

    id: str
    title: Text
    description: Text
    media_type: ClassVar[str] = "application/json"

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """Its schema (OpenAPI 3.0 schema object)."""

    @abstractmethod
    def value(self, result: ProcessResult) -> Any:
        """Its value from a run's result."""

    def describe(self) -> dict[str, Any]:
        """The OGC output description."""
        return {"title": dict(self.title), "description": dict(self.description),
                "schema": {**self.schema(), "contentMediaType": self.media_type}}


@dataclass(frozen=True)
class SummaryOutput(Output):
    """The run's summary: one JSON object with these properties."""

    properties: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": dict(self.properties)}

    def value(self, result: ProcessResult) -> Any:
        return dict(result.summary)


@dataclass(frozen=True)
class FeatureOutput(Output):
    """Features with one kind of geometry and these properties (GeoJSON)."""

    geometry: tuple[str, ...] = ("Polygon", "MultiPolygon")
    properties: Mapping[str, Any] = field(default_factory=dict)
    media_type: ClassVar[str] = "application/geo+json"

    def schema(self) -> dict[str, Any]:
        feature = {
            "type": "object", "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"enum": ["Feature"]},
                "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "geometry": {"type": "object", "required": ["type", "coordinates"],
                             "properties": {"type": {"enum": list(self.geometry)},
                                            "coordinates": {"type": "array"}}},
                "properties": {"type": "object", "properties": dict(self.properties)},
            },
        }
        return {"type": "object", "format": "geojson-feature-collection",
                "required": ["type", "features"],
                "properties": {"type": {"enum": ["FeatureCollection"]},
                               "features": {"type": "array", "items": feature},
                               "numberReturned": {"type": "integer"}}}

    def value(self, result: ProcessResult) -> Any:
        return result.features[self.id].to_geojson()


@dataclass(frozen=True)
class TableOutput(Output):
    """A table with these columns (name → schema of its values)."""

    columns: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["columns", "rows"],
                "properties": {"columns": {"type": "array", "items": {"enum": list(self.columns)}},
                               "rows": {"type": "array", "items": {
                                   "type": "array", "prefixItems": list(self.columns.values()),
                                   "minItems": len(self.columns),
                                   "maxItems": len(self.columns)}}}}

    def value(self, result: ProcessResult) -> Any:
        return result.tables[self.id].to_json()


# --- progress ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """A named stage of a run, with its share of the work."""

    id: str
    title: Text
    weight: float = 1.0


class Progress:
    """Stage names and fractions, recorded in the job's status (``message``, ``progress``).

    Every report is a cancellation point: when the job was dismissed it
    raises :class:`spatial.jobs.JobDismissedError`, and the run's transaction
    rolls back.

    Parameters
    ----------
    stages : sequence of Stage
        The process's stages, in order.
    report : callable
        ``(percent, message) → still ours``; :func:`spatial.jobs.report_progress`.

    Examples
    --------
    >>> seen = []
    >>> p = Progress([Stage("load", {"en": "loading", "zh": "读取"}, 1),
    ...               Stage("solve", {"en": "solving", "zh": "求解"}, 3)],
    ...              report=lambda pct, msg: seen.append((pct, msg)) or True)
    >>> p.stage("load"); p.stage("solve"); p.advance(0.5)
    >>> seen
    [(0, 'loading / 读取 (1/2)'), (25, 'solving / 求解 (2/2)'), (62, 'solving / 求解 (2/2) 50%')]
    """

    def __init__(self, stages: Sequence[Stage],
                 report: Callable[[int, str | None], bool] = jobs.report_progress) -> None:
        self.stages = list(stages)
        self.total = sum(s.weight for s in self.stages) or 1.0
        self.report = report
        self.index = -1

    def _send(self, fraction: float, suffix: str = "") -> None:
        stage = self.stages[self.index]
        done = sum(s.weight for s in self.stages[:self.index]) + stage.weight * fraction
        message = (f"{stage.title['en']} / {stage.title['zh']} "
                   f"({self.index + 1}/{len(self.stages)}){suffix}")
        if not self.report(min(99, int(100 * done / self.total)), message):
            raise jobs.JobDismissedError(jobs.MSG_DISMISSED)
        jobs.check_dismissed()

    def stage(self, stage_id: str) -> None:
        """Start the stage ``stage_id`` (a cancellation point)."""
        ids = [s.id for s in self.stages]
        if stage_id not in ids:
            raise ValueError(f"no stage {stage_id!r}; declared: {ids}")
        self.index = ids.index(stage_id)
        self._send(0.0)

    def advance(self, fraction: float) -> None:
        """Record how far the current stage got, 0–1 (a cancellation point)."""
        if self.index < 0:
            raise ValueError("advance() before the first stage()")
        fraction = max(0.0, min(1.0, fraction))
        self._send(fraction, f" {int(100 * fraction)}%")


# --- the declaration ----------------------------------------------------------------------

#: A run: the caller's connection (one transaction), the parsed inputs, progress.
Runner = Callable[[psycopg.Connection[Any], Mapping[str, Any], Progress], ProcessResult]

DEFAULT_STAGES = (Stage("run", {"en": "running", "zh": "运行中"}),)


@dataclass(frozen=True)
class Parsed:
    """Inputs parsed once: ``raw`` (JSON, defaults filled in: what a job stores) and
    ``values`` (each input type's value, by key)."""

    raw: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True)
class Process:
    """A process declared as data.

    Attributes
    ----------
    id : str
        Its id (the key of its entry in ``pygeoapi-config.yml``).
    title, description : Text
        ``{"en": ..., "zh": ...}``.
    keywords : tuple of str
    inputs : tuple of Input
        Their names must not overlap.
    outputs : tuple of Output
        Ids unique; at most one :class:`SummaryOutput`.
    run : callable
        ``(conn, inputs, progress) → ProcessResult``: inputs by key.
    example : dict
        Example inputs: shown in the description and run by the registry test.
    job_control : tuple of str
        ``sync-execute`` and/or ``async-execute`` (a long optimisation: async only).
    stages : tuple of Stage
        Progress stages, in order.
    """

    id: str
    title: Text
    description: Text
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    run: Runner
    example: Mapping[str, Any]
    keywords: tuple[str, ...] = ()
    job_control: tuple[str, ...] = (SYNC, ASYNC)
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    version: str = "1.0.0"

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"process id must match {_ID.pattern}, got {self.id!r}")
        names = [n for i in self.inputs for n in i.describe()]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.id}: input names overlap: {names}")
        ids = [o.id for o in self.outputs]
        if not ids or len(ids) != len(set(ids)):
            raise ValueError(f"{self.id}: outputs must have unique ids, got {ids}")
        if sum(isinstance(o, SummaryOutput) for o in self.outputs) > 1:
            raise ValueError(f"{self.id}: at most one summary output")
        if not self.job_control or set(self.job_control) - {SYNC, ASYNC}:
            raise ValueError(f"{self.id}: job_control must be among {SYNC}, {ASYNC}, "
                             f"got {self.job_control}")
        if not self.stages:
            raise ValueError(f"{self.id}: declare at least one stage")

    def describe(self) -> dict[str, Any]:
        """The OGC API Processes 1.0 description (a new dict each call)."""
        inputs: dict[str, Any] = {}
        for item in self.inputs:
            inputs.update(item.describe())
        return {
            "version": self.version, "id": self.id, "title": dict(self.title),
            "description": dict(self.description), "keywords": list(self.keywords),
            "jobControlOptions": list(self.job_control), "outputTransmission": ["value"],
            "links": [], "inputs": inputs,
            "outputs": {o.id: o.describe() for o in self.outputs},
            "example": {"inputs": dict(self.example)},
        }

    def inputs_schema(self) -> dict[str, Any]:
        """The JSON Schema of the execute request's ``inputs`` (nothing undeclared)."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, spec in self.describe()["inputs"].items():
            properties[name] = json_schema(spec["schema"])
            if spec["minOccurs"] >= 1:
                required.append(name)
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": properties, "required": required, "additionalProperties": False}

    def parse(self, data: Any) -> Parsed:
        """Check the request's inputs against the declared schemas, then parse each input.

        Raises
        ------
        InvalidInputError
            Naming each offending input and what was wrong (the first three
            schema errors), or the first input its type refuses.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(f"{INVALID}: inputs must be a JSON object, "
                                    f"got {type(data).__name__}")
        check_json_value(data, f"{INVALID}: inputs")
        validator = Draft202012Validator(self.inputs_schema(),
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(data),
                        key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            reasons = []
            for error in errors[:3]:
                where = ".".join(str(p) for p in error.absolute_path)
                text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
                reasons.append(f"{where}: {text}" if where else text)
            raise InvalidInputError(f"{INVALID}: " + "; ".join(reasons))
        raw = dict(data)
        for name, spec in self.describe()["inputs"].items():
            if name not in raw and "default" in spec["schema"]:
                raw[name] = spec["schema"]["default"]
        return Parsed(raw, {item.key: item.parse(raw) for item in self.inputs})

    def check(self, conn: psycopg.Connection[Any], parsed: Parsed) -> None:
        """The inputs' database checks, through the caller's connection."""
        for item in self.inputs:
            item.check(conn, parsed.values[item.key])

    def outputs_of(self, result: ProcessResult) -> dict[str, jobs.Output]:
        """The declared outputs of a run, by id."""
        return {o.id: jobs.Output(o.media_type, o.value(result)) for o in self.outputs}

    def execute(
        self,
        data: Any,
        connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]] = (
            request_connection),
    ) -> dict[str, jobs.Output]:
        """Parse, check and run on the caller's connection, in one transaction.

        Inside a job the connection is :func:`spatial.jobs.cancellable`: a
        dismissal cancels its statement, and everything the run wrote rolls
        back.

        Parameters
        ----------
        data : dict
            The request's ``inputs``.
        connection : callable
            Opens the connection (default: the current principal's).

        Returns
        -------
        dict of str to spatial.jobs.Output
            Every declared output, by id.
        """
        parsed = self.parse(data)
        progress = Progress(self.stages)
        with connection() as conn, jobs.cancellable(conn):
            self.check(conn, parsed)
            result = self.run(conn, parsed.values, progress)
            jobs.check_dismissed()  # nothing of a dismissed run commits
        return self.outputs_of(result)


def walk(tree: Mapping[str, Any], children: str = "children") -> Iterator[Mapping[str, Any]]:
    """Every node of a nested tree, depth first (the root first).

    Examples
    --------
    >>> [n["id"] for n in walk({"id": 1, "children": [{"id": 2, "children": []}]})]
    [1, 2]
    """
    yield tree
    for child in tree.get(children) or ():
        yield from walk(child, children)
