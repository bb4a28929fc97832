"""``grid-statistics`` (网格统计): :func:`scenarios.grid_statistics.grid_statistics` as a
process.

An admin unit or a polygon → the drill-down tree (the ``statistics`` summary)
and the same units as features with their figures (``units``), for a map.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import psycopg

from scenarios.grid_statistics import grid_statistics, unit_features
from scenarios.processes.base import (
    AreaInput,
    DateInput,
    FeatureOutput,
    FeatureSet,
    Process,
    ProcessResult,
    Progress,
    Stage,
    SummaryOutput,
    Value,
)

_COUNTS = {"households": {"type": "integer"}, "occupied": {"type": "integer"},
           "residents": {"type": "integer"}, "elderly": {"type": "integer"},
           "tags": {"type": "object", "additionalProperties": {"type": "integer"}},
           "events": {"type": "object", "additionalProperties": {"type": "integer"}}}


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Count, then draw the counted units."""
    area = inputs["area"]
    as_of = inputs["as_of"] or date.today()
    progress.stage("count")
    tree = grid_statistics(conn, level=area.level, unit_id=area.unit_id, polygon_wkt=area.wkt,
                           as_of=as_of, depth=inputs["depth"])
    progress.stage("draw")
    units = unit_features(conn, tree, area.wkt)
    return ProcessResult(summary={**tree.to_dict(), "as_of": as_of.isoformat()},
                         features={"units": FeatureSet(units)})


PROCESS = Process(
    id="grid-statistics",
    title={"en": "Grid drill-down statistics", "zh": "网格统计"},
    description={
        "en": "Households, occupied households, residents, elderly residents, residents "
              "per tag and events per status for an admin unit (level and unit_id) or any "
              "polygon, as a drill-down tree street office → community → grid (sub-grids "
              "under their parent) → building, and the same units as features for a map. "
              "Counts only: no resident's fields.",
        "zh": "按行政单元（level 与 unit_id）或任意多边形统计户数、实住户数、居民数、老年人数、"
              "各标签居民数和各状态事件数，逐级下钻：街道 → 社区 → 网格（子网格在父网格下）→ "
              "楼栋；并以要素给出各单元的范围与数字，供地图显示。仅统计数量，不含居民个人信息。",
    },
    keywords=("网格化管理", "statistics", "drill-down", "统计"),
    inputs=(
        AreaInput(levels=("street_office", "community", "grid")),
        Value("depth",
              title={"en": "Deepest level", "zh": "下钻深度"},
              description={"en": "community, grid or building.",
                           "zh": "community、grid 或 building。"},
              schema={"type": "string", "enum": ["community", "grid", "building"],
                      "default": "building"}),
        DateInput("as_of",
                  title={"en": "Reference date", "zh": "统计日期"},
                  description={"en": "Date ages are counted at (default: today).",
                               "zh": "计算年龄的日期（默认今天）。"}),
    ),
    outputs=(
        SummaryOutput(
            "statistics",
            title={"en": "Drill-down tree", "zh": "下钻统计树"},
            description={
                "en": "The root (the unit, or level `area` for a polygon) with households, "
                      "occupied, residents, elderly, tags, events and children; as_of.",
                "zh": "根节点（单元，或多边形时为 area），含 households、occupied、residents、"
                      "elderly、tags、events 与 children；as_of 为统计日期。"},
            properties={
                "level": {"type": "string"}, "id": {"type": "integer", "nullable": True},
                "name": {"type": "string"}, **_COUNTS, "children": {"type": "array"},
                "as_of": {"type": "string", "format": "date"},
            },
        ),
        FeatureOutput(
            "units",
            title={"en": "Units with their figures", "zh": "各单元范围与统计"},
            description={
                "en": "Every unit of the tree (the root first, then depth first) as a feature: "
                      "its outline (EPSG:4490 lon/lat) and level, unit_id, name, parent (the "
                      "parent feature's id) and the same counts as the tree.",
                "zh": "统计树中的每个单元（先根节点，再深度优先）一个要素：范围（EPSG:4490 经纬度）"
                      "与 level、unit_id、name、parent（上级要素 id）及与统计树相同的数字。"},
            geometry=("Polygon", "MultiPolygon"),
            properties={"level": {"type": "string"},
                        "unit_id": {"type": "integer", "nullable": True},
                        "name": {"type": "string"},
                        "parent": {"type": "string", "nullable": True}, **_COUNTS},
            colour_by="residents",
        ),
    ),
    run=run,
    example={"level": "community", "unit_id": 1, "depth": "grid"},
    stages=(Stage("count", {"en": "counting", "zh": "统计中"}, 3),
            Stage("draw", {"en": "drawing the units", "zh": "绘制单元"}, 1)),
)
