"""The scenarios as OGC API processes: ``locate`` and ``grid-statistics``.

The only scenarios module that imports pygeoapi. A process only chains:
validate the inputs against its declared JSON Schemas → call the scenario
function on the caller's connection (:func:`process_connection`, so
row-level security applies to whoever submitted the job) → serialise to JSON.
Registered in ``pygeoapi-config.yml`` by dotted path; run and recorded by
:class:`spatial.ogc.manager.JobManager`.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, ClassVar

import numpy as np
import psycopg
import shapely
from pygeoapi.process.base import BaseProcessor
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.validation import explain_validity

from scenarios.grid_statistics import grid_statistics
from scenarios.locate import Address, Unit, locate
from spatial.access import request_connection
from spatial.crs import parse_crs, to_storage
from spatial.errors import InvalidInputError
from spatial.jobs import report_progress
from spatial.ogc.manager import validate_inputs

STORAGE_CRS = "http://www.opengis.net/def/crs/EPSG/0/4490"


def process_connection() -> AbstractContextManager[psycopg.Connection[Any]]:
    """The connection a process reads through: the caller's.

    :func:`spatial.access.request_connection` for the current principal (the
    request's, or the job's submitter in a worker), so row-level security and
    masking apply.
    """
    return request_connection()


def _crs(value: Any) -> int | str:
    """A supported CRS designation, or a 400 naming it."""
    try:
        return parse_crs(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid input / 输入无效: crs: {exc}") from None


class ScenarioProcessor(BaseProcessor):
    """A process over one scenario function: validate → run → JSON.

    Subclasses set :attr:`METADATA` (the OGC process description) and
    implement :meth:`run`.
    """

    METADATA: ClassVar[dict[str, Any]] = {}

    def __init__(self, processor_def: dict[str, Any]) -> None:
        # pygeoapi edits descriptions in place (OpenAPI generation): give it a copy.
        super().__init__(processor_def, copy.deepcopy(self.METADATA))

    def validate(self, data: Any) -> dict[str, Any]:
        """The inputs checked against the declared schemas, defaults filled in.

        Raises
        ------
        InvalidInputError
            Saying which input is wrong and why.
        """
        return validate_inputs(self.metadata, data)

    def run(self, conn: psycopg.Connection[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Call the scenario and serialise its answer."""
        raise NotImplementedError

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None
                ) -> tuple[str, Any]:
        """Run the process.

        Parameters
        ----------
        data : dict
            The execute request's ``inputs``.
        outputs : dict, optional
            Ignored: each process has one output.

        Returns
        -------
        tuple of (str, dict)
            ``application/json`` and the result.
        """
        inputs = self.validate(data)
        with process_connection() as conn:
            result = self.run(conn, inputs)
        return "application/json", result

    def __repr__(self) -> str:
        return f"<{type(self).__name__}> {self.name}"


# --- locate -----------------------------------------------------------------------

# Schemas in process descriptions are OpenAPI 3.0 schema objects (OGC API -
# Processes 1.0): `nullable`, not type arrays; `oneOf` for alternatives.
_UNIT_SCHEMA = {
    "type": "object", "nullable": True,
    "properties": {"id": {"type": "integer"}, "code": {"type": "string", "nullable": True},
                   "name": {"type": "string"},
                   "parent_id": {"type": "integer", "nullable": True},
                   "inside": {"type": "boolean"}, "distance_m": {"type": "number"}},
}
_CRS_SCHEMA = [{"type": "string"}, {"type": "integer"}]


def _process(*, id: str, title: dict[str, str], description: dict[str, str],
             keywords: list[str], inputs: dict[str, Any], outputs: dict[str, Any],
             example: dict[str, Any]) -> dict[str, Any]:
    """An OGC process description; every process here runs sync or async and
    returns its output by value."""
    return {
        "version": "1.0.0", "id": id, "title": title, "description": description,
        "jobControlOptions": ["sync-execute", "async-execute"],
        "outputTransmission": ["value"], "keywords": keywords, "links": [],
        "inputs": inputs, "outputs": outputs, "example": {"inputs": example},
    }


def _input(*, title: dict[str, str], description: dict[str, str], schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    """A process input taking one value (optional unless ``required``)."""
    return {"title": title, "description": description, "schema": schema,
            "minOccurs": 1 if required else 0, "maxOccurs": 1}


def _json_output(*, title: dict[str, str], description: dict[str, str],
                 properties: dict[str, Any]) -> dict[str, Any]:
    """A process output: one JSON object with these properties."""
    return {"title": title, "description": description,
            "schema": {"type": "object", "contentMediaType": "application/json",
                       "properties": properties}}

LOCATE_METADATA = _process(
    id="locate",
    title={"en": "Locate a point (jurisdiction)", "zh": "属地定位"},
    description={
        "en": "Assigns a point to its district, street office, community and grid "
              "(属地原则) and finds the nearest building and household address. The point "
              "may be in any supported CRS: EPSG codes and OGC URIs, CRS84, GCJ-02 (AMap, "
              "Tencent: gcj02) or BD-09 (Baidu: bd09). Near a boundary every unit within "
              "the tolerance is returned, ranked (inside first, then by distance), and "
              "`ambiguous` tells the client to let the user choose.",
        "zh": "按属地原则确定一个点所属的区、街道、社区和网格，并给出最近的楼栋和户室地址。"
              "坐标可为任一支持的坐标系：EPSG 编码、CRS84、GCJ-02（高德、腾讯：gcj02）或 "
              "BD-09（百度：bd09）。点位于边界附近时返回容差内的全部候选并排序，"
              "ambiguous 为真时由用户选择。",
    },
    keywords=["属地原则", "jurisdiction", "grid", "网格"],
    inputs={
        "x": _input(
            title={"en": "x: longitude or easting", "zh": "X：经度或东坐标"},
            description={"en": "First coordinate of the point, in `crs`.",
                         "zh": "点的第一个坐标（crs 坐标系）。"},
            schema={"type": "number"},
            required=True,
        ),
        "y": _input(
            title={"en": "y: latitude or northing", "zh": "Y：纬度或北坐标"},
            description={"en": "Second coordinate of the point, in `crs`.",
                         "zh": "点的第二个坐标（crs 坐标系）。"},
            schema={"type": "number"},
            required=True,
        ),
        "crs": _input(
            title={"en": "Coordinate reference system", "zh": "坐标系"},
            description={
                "en": "EPSG code or URI, CRS84, gcj02 or bd09; x/y are always "
                      "longitude/latitude (easting/northing) order. Phone GPS is EPSG:4326.",
                "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09；x/y 始终为经度/纬度顺序。"
                      "手机 GPS 为 EPSG:4326。"},
            schema={"oneOf": _CRS_SCHEMA, "default": "EPSG:4326"},
        ),
        "tolerance_m": _input(
            title={"en": "Boundary tolerance (m)", "zh": "边界容差（米）"},
            description={
                "en": "Units within this distance count as candidates too (GPS error, "
                      "points on a boundary).",
                "zh": "此距离内的单元也作为候选（GPS 误差、边界上的点）。"},
            schema={"type": "number", "minimum": 0, "maximum": 1000, "default": 15},
        ),
    },
    outputs={
        "location": _json_output(
            title={"en": "Jurisdiction of the point", "zh": "属地结果"},
            description={
                "en": "district, street_office, community, grid (the best of each level), "
                      "ambiguous, candidates per level (ranked), building and household "
                      "(nearest, with address); point in EPSG:4490.",
                "zh": "区、街道、社区、网格（各级最优）、ambiguous、各级候选（排序）、"
                      "最近楼栋与户室（含地址）；point 为 EPSG:4490 坐标。"},
            properties={
                "district": _UNIT_SCHEMA, "street_office": _UNIT_SCHEMA,
                "community": _UNIT_SCHEMA, "grid": _UNIT_SCHEMA,
                "ambiguous": {"type": "boolean"},
                "candidates": {"type": "object"},
                "building": {"type": "object", "nullable": True},
                "household": {"type": "object", "nullable": True},
            },
        ),
    },
    example={"x": 116.4711, "y": 39.9238, "crs": "gcj02", "tolerance_m": 15},
)


def _unit(unit: Unit | None) -> dict[str, Any] | None:
    if unit is None:
        return None
    return {"id": unit.id, "code": unit.code, "name": unit.name, "parent_id": unit.parent_id,
            "inside": unit.inside, "distance_m": round(unit.distance_m, 2)}


def _address(found: Address | None) -> dict[str, Any] | None:
    if found is None:
        return None
    if found.kind == "building":
        return {"id": found.id, "name": found.label, "address": found.address,
                "distance_m": round(found.distance_m, 2)}
    full = " ".join(p for p in (found.address, found.label) if p)
    return {"id": found.id, "building_id": found.building_id, "room_no": found.label,
            "address": full or None, "distance_m": round(found.distance_m, 2)}


class LocateProcessor(ScenarioProcessor):
    """属地定位: :func:`scenarios.locate.locate` as a process."""

    METADATA = LOCATE_METADATA

    def validate(self, data: Any) -> dict[str, Any]:
        inputs = super().validate(data)
        _crs(inputs["crs"])
        return inputs

    def run(self, conn: psycopg.Connection[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        result = locate(conn, inputs["x"], inputs["y"], crs=_crs(inputs["crs"]),
                        tolerance_m=inputs["tolerance_m"])
        return {
            "point": {"type": "Point", "coordinates": [round(result.lon, 9), round(result.lat, 9)]},
            "crs": STORAGE_CRS,
            "district": None if result.district is None else {
                "id": result.district.id, "code": result.district.code,
                "name": result.district.name},
            "street_office": _unit(result.street_office),
            "community": _unit(result.community),
            "grid": _unit(result.grid),
            "ambiguous": result.ambiguous,
            "candidates": {level: [_unit(u) for u in units]
                           for level, units in result.candidates.items()},
            "building": _address(result.building),
            "household": _address(result.household),
        }


# --- grid statistics ----------------------------------------------------------------

GRID_STATISTICS_METADATA = _process(
    id="grid-statistics",
    title={"en": "Grid drill-down statistics", "zh": "网格统计"},
    description={
        "en": "Households, occupied households, residents, elderly residents, residents "
              "per tag and events per status for an admin unit (level and unit_id) or any "
              "polygon, as a drill-down tree street office → community → grid (sub-grids "
              "under their parent) → building. Counts only: no resident's fields.",
        "zh": "按行政单元（level 与 unit_id）或任意多边形统计户数、实住户数、居民数、老年人数、"
              "各标签居民数和各状态事件数，逐级下钻：街道 → 社区 → 网格（子网格在父网格下）→ "
              "楼栋。仅统计数量，不含居民个人信息。",
    },
    keywords=["网格化管理", "statistics", "drill-down", "统计"],
    inputs={
        "level": _input(
            title={"en": "Level of the unit", "zh": "单元级别"},
            description={"en": "With unit_id; instead of polygon.",
                         "zh": "与 unit_id 一起给出；或改用 polygon。"},
            schema={"type": "string", "enum": ["street_office", "community", "grid"]},
        ),
        "unit_id": _input(
            title={"en": "Id of the unit", "zh": "单元编号"},
            description={"en": "The id of the street office, community or grid.",
                         "zh": "街道、社区或网格的 id。"},
            schema={"type": "integer", "minimum": 1},
        ),
        "polygon": _input(
            title={"en": "Area (GeoJSON polygon)", "zh": "区域（GeoJSON 多边形）"},
            description={
                "en": "A GeoJSON Polygon or MultiPolygon in `crs`; buildings whose "
                      "representative point lies in it count. Instead of level/unit_id.",
                "zh": "crs 坐标系下的 GeoJSON Polygon 或 MultiPolygon；代表点落在其中的楼栋计入。"
                      "与 level/unit_id 二选一。"},
            schema={
                "type": "object", "format": "geojson-geometry",
                "required": ["type", "coordinates"],
                "properties": {"type": {"enum": ["Polygon", "MultiPolygon"]},
                               "coordinates": {"type": "array", "minItems": 1}},
            },
        ),
        "crs": _input(
            title={"en": "CRS of the polygon", "zh": "多边形坐标系"},
            description={"en": "EPSG code or URI, CRS84, gcj02 or bd09 (x/y order).",
                         "zh": "EPSG 编码或 URI、CRS84、gcj02 或 bd09（经度/纬度顺序）。"},
            schema={"oneOf": _CRS_SCHEMA, "default": "CRS84"},
        ),
        "depth": _input(
            title={"en": "Deepest level", "zh": "下钻深度"},
            description={"en": "community, grid or building.",
                         "zh": "community、grid 或 building。"},
            schema={"type": "string", "enum": ["community", "grid", "building"],
                    "default": "building"},
        ),
        "as_of": _input(
            title={"en": "Reference date", "zh": "统计日期"},
            description={"en": "Date ages are counted at (default: today).",
                         "zh": "计算年龄的日期（默认今天）。"},
            schema={"type": "string", "format": "date"},
        ),
    },
    outputs={
        "statistics": _json_output(
            title={"en": "Drill-down tree", "zh": "下钻统计树"},
            description={
                "en": "The root (the unit, or level `area` for a polygon) with households, "
                      "occupied, residents, elderly, tags, events and children; as_of.",
                "zh": "根节点（单元，或多边形时为 area），含 households、occupied、residents、"
                      "elderly、tags、events 与 children；as_of 为统计日期。"},
            properties={
                "level": {"type": "string"}, "id": {"type": "integer", "nullable": True},
                "name": {"type": "string"}, "households": {"type": "integer"},
                "occupied": {"type": "integer"}, "residents": {"type": "integer"},
                "elderly": {"type": "integer"}, "tags": {"type": "object"},
                "events": {"type": "object"}, "children": {"type": "array"},
                "as_of": {"type": "string", "format": "date"},
            },
        ),
    },
    example={"level": "community", "unit_id": 1, "depth": "grid"},
)


def polygon_wkt(geometry: dict[str, Any], crs: Any) -> str:
    """A GeoJSON (multi)polygon in ``crs`` as WKT in the storage CRS.

    Parameters
    ----------
    geometry : dict
        GeoJSON Polygon or MultiPolygon.
    crs : int or str
        Its CRS (see :func:`spatial.crs.parse_crs`).

    Returns
    -------
    str
        WKT in EPSG:4490.

    Raises
    ------
    InvalidInputError
        For a malformed, empty or invalid polygon or an unknown CRS.

    Examples
    --------
    >>> polygon_wkt({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    ...             "EPSG:4490")
    'POLYGON ((0 0, 1 0, 1 1, 0 0))'
    """
    source = _crs(crs)
    try:
        geom = shape(geometry)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, ShapelyError) as exc:
        raise InvalidInputError(f"invalid input / 输入无效: polygon: {exc}") from None
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInputError("invalid input / 输入无效: polygon: an empty or non-polygon "
                                f"geometry ({geom.geom_type})")
    try:
        geom = shapely.transform(
            geom, lambda xy: np.column_stack(to_storage(xy[:, 0], xy[:, 1], source)))
    except ValueError as exc:
        raise InvalidInputError(f"invalid input / 输入无效: polygon: {exc}") from None
    if not geom.is_valid:
        raise InvalidInputError("invalid input / 输入无效: polygon is not valid: "
                                f"{explain_validity(geom)}")
    return shapely.to_wkt(geom, rounding_precision=-1)


class GridStatisticsProcessor(ScenarioProcessor):
    """网格统计: :func:`scenarios.grid_statistics.grid_statistics` as a process."""

    METADATA = GRID_STATISTICS_METADATA

    def validate(self, data: Any) -> dict[str, Any]:
        inputs = super().validate(data)
        by_unit = "level" in inputs or "unit_id" in inputs
        if by_unit == ("polygon" in inputs) or (
                by_unit and not ("level" in inputs and "unit_id" in inputs)):
            raise InvalidInputError("invalid input / 输入无效: give either level and unit_id, "
                                    "or polygon / 请给出 level 与 unit_id，或 polygon")
        if "polygon" in inputs:
            polygon_wkt(inputs["polygon"], inputs["crs"])
        return inputs

    def run(self, conn: psycopg.Connection[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        as_of = date.fromisoformat(inputs["as_of"]) if "as_of" in inputs else date.today()
        wkt = polygon_wkt(inputs["polygon"], inputs["crs"]) if "polygon" in inputs else None
        report_progress(10, "counting / 统计中")
        tree = grid_statistics(conn, level=inputs.get("level"), unit_id=inputs.get("unit_id"),
                               polygon_wkt=wkt, as_of=as_of, depth=inputs["depth"])
        report_progress(90, "writing the result / 写出结果")
        return {**tree.to_dict(), "as_of": as_of.isoformat()}
