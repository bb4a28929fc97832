"""The shared input types of the processes, each parsed and validated once.

- :class:`Value` and :class:`DateInput`: one plain value;
- :class:`PointInput`: a point with its CRS (EPSG codes and URIs, CRS84,
  GCJ-02, BD-09 — :func:`spatial.crs.parse_crs`), inside the city;
- :class:`AreaInput`: an admin unit (level and id) or a polygon with its CRS;
- :class:`TimeWindowInput`: a start and an end;
- :class:`IdSetInput`: ids of one collection, as the caller may see them;
- :class:`ScenarioInput`: a stored what-if scenario.

Each type describes the OGC inputs it reads (:meth:`Input.describe`), parses
them (:meth:`Input.parse`: a 400 naming the input) and checks what needs the
database through the caller's connection (:meth:`Input.check`: a 404 naming
the input for what the caller cannot see, telling nothing more).
Each schema carries the form control it wants (:func:`form_hint`, the
``x-onemap-input`` keyword), so a client builds its form from the
description alone.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely
from psycopg import sql
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.validation import explain_validity

from spatial import whatif
from spatial.crs import parse_crs, to_storage
from spatial.errors import InvalidInputError, NotFoundError

#: Bilingual text: ``{"en": ..., "zh": ...}``.
Text = Mapping[str, str]


def text(en: str, zh: str) -> Text:
    """A text in both languages the processes describe themselves in."""
    return {"en": en, "zh": zh}

#: Prefix of every input error (the existing API's wording).
INVALID = "invalid input / 输入无效"
#: A point or area farther than this from every district is outside the city.
CITY_MARGIN_M = 5000.0
#: Local time of the city, for dates and times given without an offset.
CITY_TZ = ZoneInfo("Asia/Shanghai")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def invalid(name: str, reason: str) -> InvalidInputError:
    """The 400 for one input: ``invalid input / 输入无效: <name>: <reason>``.

    Examples
    --------
    >>> str(invalid("crs", "unknown CRS 'mars'"))
    "invalid input / 输入无效: crs: unknown CRS 'mars'"
    """
    return InvalidInputError(f"{INVALID}: {name}: {reason}")


def input_description(title: Text, description: Text, schema: Mapping[str, Any], *,
                      required: bool = False) -> dict[str, Any]:
    """One OGC process input taking one value (optional unless ``required``)."""
    return {"title": dict(title), "description": dict(description), "schema": dict(schema),
            "minOccurs": 1 if required else 0, "maxOccurs": 1}


#: The schema keyword telling a client which form control an input wants
#: (``x-`` keywords are OpenAPI extensions; JSON Schema validators ignore them).
FORM = "x-onemap-input"


def form_hint(kind: str, group: str, part: str | None = None,
              **extra: str) -> dict[str, dict[str, str]]:
    """The :data:`FORM` keyword of an input's schema: what a generic form shows for it.

    Several OGC inputs may make one value (a point is ``x``, ``y`` and ``crs``;
    an area is ``level`` and ``unit_id`` or ``polygon``, and ``crs``): they
    share ``group`` (the value's key) and each names its ``part``. A client
    reading the process description builds its form from these, with no code
    per process (the staff-console widget's analysis panel, ``web/widget``).

    Parameters
    ----------
    kind : str
        ``point`` (pick on the map), ``points`` (several points added on the
        map: a GeoJSON MultiPoint), ``area`` (an admin unit from a list, or a
        polygon drawn on the map), ``time-window``, ``id-set`` (features of
        ``collection`` picked on the map or typed), ``scenario`` (one of
        ``list``, a URL path) or ``date``.
    group : str
        The key of the value the inputs make together.
    part : str, optional
        Which part of it this input is (``x``, ``y``, ``crs``, ``level``,
        ``unit_id``, ``polygon``, ``points``).
    **extra : str
        ``collection`` (a collection id; ``{input}`` stands for another input's
        value, e.g. the units of the chosen ``level``), ``list``.

    Examples
    --------
    >>> form_hint("point", "point", "x")
    {'x-onemap-input': {'kind': 'point', 'group': 'point', 'part': 'x'}}
    >>> form_hint("points", "candidate_points", "crs")
    {'x-onemap-input': {'kind': 'points', 'group': 'candidate_points', 'part': 'crs'}}
    """
    hint = {"kind": kind, "group": group}
    if part is not None:
        hint["part"] = part
    return {FORM: {**hint, **extra}}


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
                                             {"type": "string", "format": "date",
                                              **form_hint("date", self.name)})}

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


#: The largest row id (PostgreSQL bigint): an id input above it is a 400, not a lookup.
MAX_ID = 2**63 - 1

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
    #: Optional: no x and y gives None (the process then needs something else).
    optional: bool = False

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            self.x: input_description(
                {"en": "x: longitude or easting", "zh": "X：经度或东坐标"},
                {"en": f"First coordinate of the point, in `{self.crs}`.",
                 "zh": f"点的第一个坐标（{self.crs} 坐标系）。"},
                {"type": "number", **form_hint("point", self.key, "x")},
                required=not self.optional),
            self.y: input_description(
                {"en": "y: latitude or northing", "zh": "Y：纬度或北坐标"},
                {"en": f"Second coordinate of the point, in `{self.crs}`.",
                 "zh": f"点的第二个坐标（{self.crs} 坐标系）。"},
                {"type": "number", **form_hint("point", self.key, "y")},
                required=not self.optional),
            self.crs: input_description(
                {"en": "Coordinate reference system", "zh": "坐标系"},
                {"en": "EPSG code or URI, CRS84, gcj02 or bd09; x/y are always "
                       "longitude/latitude (easting/northing) order. Phone GPS is EPSG:4326.",
                 "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09；x/y 始终为经度/纬度顺序。"
                       "手机 GPS 为 EPSG:4326。"},
                {"oneOf": _CRS_SCHEMA, "default": self.default_crs,
                 **form_hint("point", self.key, "crs")}),
        }

    def parse(self, raw: Mapping[str, Any]) -> Point | None:
        if self.optional and self.x not in raw and self.y not in raw:
            return None
        if self.x not in raw or self.y not in raw:
            raise invalid(f"{self.x}/{self.y}", "give both coordinates / 须同时给出两个坐标")
        source = _crs(self.crs, raw.get(self.crs, self.default_crs))
        try:
            x, y = float(raw[self.x]), float(raw[self.y])
        except OverflowError:  # a JSON integer of hundreds of digits
            raise invalid(f"{self.x}/{self.y}", "a coordinate is too large / 坐标数值过大") \
                from None
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

    def check(self, conn: psycopg.Connection[Any], value: Point | None) -> None:
        if value is not None and not _near_city(conn, value.wkt):
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
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError,
            ShapelyError) as exc:
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
                {"type": "string", "enum": list(self.levels),
                 **form_hint("area", self.key, "level")}),
            self.unit_id: input_description(
                {"en": "Id of the unit", "zh": "单元编号"},
                {"en": "The id of the " + ", ".join(self.levels) + ".",
                 "zh": "单元（" + "、".join(self.levels) + "）的 id。"},
                # the unit is one of the collection named by the level (its table)
                {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                 **form_hint("area", self.key, "unit_id", collection="{" + self.level + "}")}),
            self.polygon: input_description(
                {"en": "Area (GeoJSON polygon)", "zh": "区域（GeoJSON 多边形）"},
                {"en": f"A GeoJSON Polygon or MultiPolygon in `{self.crs}`; buildings whose "
                       f"representative point lies in it count. Instead of "
                       f"{self.level}/{self.unit_id}.",
                 "zh": f"{self.crs} 坐标系下的 GeoJSON Polygon 或 MultiPolygon；代表点落在其中的"
                       f"楼栋计入。与 {self.level}/{self.unit_id} 二选一。"},
                {**_POLYGON_SCHEMA, **form_hint("area", self.key, "polygon")}),
            self.crs: input_description(
                {"en": "CRS of the polygon", "zh": "多边形坐标系"},
                {"en": "EPSG code or URI, CRS84, gcj02 or bd09 (x/y order).",
                 "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09（经度/纬度顺序）。"},
                {"oneOf": _CRS_SCHEMA, "default": self.default_crs,
                 **form_hint("area", self.key, "crs")}),
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
class MomentInput(Input):
    """A moment: an RFC 3339 date-time (``2026-10-29T06:30:00+08:00``; the schema's
    ``date-time`` format asks for the offset); None when not given. Never later than now
    (plus a few minutes).

    Examples
    --------
    >>> MomentInput("time", {"en": "", "zh": ""}, {"en": "", "zh": ""}).parse(
    ...     {"time": "2026-10-29T06:30:00+08:00"}).isoformat()
    '2026-10-28T22:30:00+00:00'
    """

    name: str
    title: Text
    description: Text
    future: bool = False

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.name: input_description(
            self.title, self.description,
            {"type": "string", "format": "date-time", **form_hint("date", self.name)})}

    def parse(self, raw: Mapping[str, Any]) -> datetime | None:
        if self.name not in raw:
            return None
        moment = _moment(self.name, raw[self.name]).astimezone(UTC)
        if not self.future and moment > datetime.now(UTC) + timedelta(minutes=5):
            raise invalid(self.name, f"{raw[self.name]} is in the future / 晚于当前时间")
        return moment


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
                  "properties": {"start": moment, "end": moment},
                  **form_hint("time-window", self.name)}
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
        if not _NAME.fullmatch(self.collection):
            raise ValueError(f"collection must be a table name, got {self.collection!r}")

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.name

    def describe(self) -> dict[str, dict[str, Any]]:
        schema = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                  "minItems": 1, "maxItems": self.max_items,
                  "x-onemap-collection": self.collection,
                  **form_hint("id-set", self.name, collection=self.collection)}
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
    """A stored what-if scenario (:mod:`spatial.whatif`), by id.

    Checked against the store through the caller's connection: an id that is
    malformed, absent or someone else's scenario is the same 404 "unknown
    scenario" naming the input. The run reads the scenario itself
    (``whatif.get(conn, inputs["scenario"])``).
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
        schema = {"type": "string", "minLength": 1, "maxLength": 64,
                  **form_hint("scenario", self.name, list="/scenarios")}
        return {self.name: input_description(self.title, self.description, schema,
                                             required=self.required)}

    def parse(self, raw: Mapping[str, Any]) -> str | None:
        value = raw.get(self.name)
        return None if value is None else str(value)

    def check(self, conn: psycopg.Connection[Any], value: str | None) -> None:
        if value is None:
            return
        try:  # the store's row-level security: absent and unseen read the same
            whatif.get(conn, value)
        except NotFoundError:
            raise NotFoundError(f"{self.name}: unknown scenario {value[:64]!r} / 无此情景") \
                from None
