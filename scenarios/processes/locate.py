"""``locate`` (属地定位): :func:`scenarios.locate.locate` as a process.

A point in any supported CRS → its district, street office, community and
grid, the ranked candidates near a boundary, and the nearest building and
household address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from scenarios.locate import Address, Unit, locate
from scenarios.processes.base import (
    STORAGE_CRS,
    PointInput,
    Process,
    ProcessResult,
    Progress,
    Stage,
    SummaryOutput,
    Value,
)

# Schemas in process descriptions are OpenAPI 3.0 schema objects (OGC API -
# Processes 1.0): `nullable`, not type arrays.
_UNIT_SCHEMA = {
    "type": "object", "nullable": True,
    "properties": {"id": {"type": "integer"}, "code": {"type": "string", "nullable": True},
                   "name": {"type": "string"},
                   "parent_id": {"type": "integer", "nullable": True},
                   "inside": {"type": "boolean"}, "distance_m": {"type": "number"}},
}


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


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Locate the point; its jurisdiction as the summary."""
    progress.stage("locate")
    point = inputs["point"]
    result = locate(conn, point.lon, point.lat, crs=4490, tolerance_m=inputs["tolerance_m"])
    return ProcessResult(summary={
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
    })


PROCESS = Process(
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
    keywords=("属地原则", "jurisdiction", "grid", "网格"),
    inputs=(
        PointInput(),
        Value("tolerance_m",
              title={"en": "Boundary tolerance (m)", "zh": "边界容差（米）"},
              description={
                  "en": "Units within this distance count as candidates too (GPS error, "
                        "points on a boundary).",
                  "zh": "此距离内的单元也作为候选（GPS 误差、边界上的点）。"},
              schema={"type": "number", "minimum": 0, "maximum": 1000, "default": 15}),
    ),
    outputs=(
        SummaryOutput(
            "location",
            title={"en": "Jurisdiction of the point", "zh": "属地结果"},
            description={
                "en": "district, street_office, community, grid (the best of each level), "
                      "ambiguous, candidates per level (ranked), building and household "
                      "(nearest, with address); point in EPSG:4490.",
                "zh": "区、街道、社区、网格（各级最优）、ambiguous、各级候选（排序）、"
                      "最近楼栋与户室（含地址）；point 为 EPSG:4490 坐标。"},
            properties={
                "point": {"type": "object", "properties": {
                    "type": {"enum": ["Point"]},
                    "coordinates": {"type": "array", "items": {"type": "number"}}}},
                "crs": {"type": "string"},
                "district": {"type": "object", "nullable": True},
                "street_office": _UNIT_SCHEMA,
                "community": _UNIT_SCHEMA, "grid": _UNIT_SCHEMA,
                "ambiguous": {"type": "boolean"},
                "candidates": {"type": "object", "additionalProperties": {
                    "type": "array", "items": _UNIT_SCHEMA}},
                "building": {"type": "object", "nullable": True},
                "household": {"type": "object", "nullable": True},
            },
        ),
    ),
    run=run,
    example={"x": 116.4711, "y": 39.9238, "crs": "gcj02", "tolerance_m": 15},
    stages=(Stage("locate", {"en": "locating", "zh": "定位中"}),),
)
