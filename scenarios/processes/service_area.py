"""``service-area`` (服务范围): :mod:`scenarios.service_area` as a process.

A point (any CRS) or facilities → the road edges reachable within a walking
or driving distance (``roads``, the reached part of each with its distance)
and a summary (reachable km, edges, households within reach, origins and
their capacity). With ``scenario`` the stored what-if scenario applies: its
closed roads leave the network; when the origins are facilities, its removed
and added facilities and changed capacities apply too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from scenarios.processes.base import (
    FeatureOutput,
    FeatureSet,
    IdSetInput,
    Input,
    Point,
    PointInput,
    Process,
    ProcessResult,
    Progress,
    ScenarioInput,
    Stage,
    SummaryOutput,
    Value,
    invalid,
)
from scenarios.service_area import Origin, facility_origins, service_area
from spatial import whatif
from spatial.network import road_graph

COLLECTION = "refuse_facility"


@dataclass(frozen=True)
class Origins:
    """Where trips start: a point, or facilities of :data:`COLLECTION` by id."""

    point: Point | None = None
    facilities: tuple[int, ...] | None = None


@dataclass(frozen=True)
class OriginInput(Input):
    """A point (``x``, ``y``, ``crs``) or ``facilities`` (ids), exactly one of the two."""

    key: str = "origin"
    point: PointInput = field(default_factory=PointInput)
    facilities: IdSetInput = field(default_factory=lambda: IdSetInput(
        "facilities", collection=COLLECTION, required=False, max_items=500,
        title={"en": "Facilities (refuse facilities)", "zh": "设施（环卫设施）"},
        description={"en": "Ids of refuse_facility features to start from; instead of x/y. "
                           "A scenario's removed and added facilities apply to them.",
                     "zh": "起点设施（refuse_facility）id 列表；与 x/y 二选一。"
                           "情景中的增减设施作用于此。"}))

    def describe(self) -> dict[str, dict[str, Any]]:
        out = {name: {**spec, "minOccurs": 0} for name, spec in self.point.describe().items()}
        out.update(self.facilities.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Origins:
        by_point = self.point.x in raw or self.point.y in raw
        if by_point == (self.facilities.name in raw) or (
                by_point and not (self.point.x in raw and self.point.y in raw)):
            raise invalid(f"{self.point.x}/{self.point.y}/{self.facilities.name}",
                          "give either x and y, or facilities / 请给出 x 与 y，或 facilities")
        if by_point:
            return Origins(point=self.point.parse(raw))
        return Origins(facilities=self.facilities.parse(raw))

    def check(self, conn: psycopg.Connection[Any], value: Origins) -> None:
        if value.point is not None:
            self.point.check(conn, value.point)
        else:
            self.facilities.check(conn, value.facilities)


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load the network (and the scenario), then walk or drive it."""
    progress.stage("load")
    scenario = whatif.get(conn, inputs["scenario"]) if inputs["scenario"] else None
    origin: Origins = inputs["origin"]
    if origin.point is not None:
        origins = [Origin(origin.point.lon, origin.point.lat)]
    else:
        origins = facility_origins(conn, COLLECTION, origin.facilities or (), scenario)
    graph = road_graph(conn, inputs["mode"])
    progress.stage("solve")
    result = service_area(conn, origins=origins, distance_m=float(inputs["distance_m"]),
                          mode=inputs["mode"], scenario=scenario, graph=graph)
    return ProcessResult(summary=result.summary(scenario),
                         features={"roads": FeatureSet(result.area.features())})


_NUMBER = {"type": "number"}

PROCESS = Process(
    id="service-area",
    title={"en": "Service area", "zh": "服务范围"},
    description={
        "en": "The roads reachable from a point or from refuse facilities within a walking or "
              "driving distance over the road network (one-way roads in their direction when "
              "driving), with the reached part of each road, the reachable length, the "
              "households (as you may see them) in buildings within 50 m of a reached road, "
              "and the facilities' capacity. With a what-if scenario, its closed roads leave "
              "the network and its facility edits change the origins; the stored city is "
              "never changed. Compare base and scenario with POST /scenarios/{id}/compare.",
        "zh": "沿路网计算从某点或环卫设施出发、在步行或驾车距离内可到达的道路"
              "（驾车时单行道按其方向），给出每条道路可达部分、可达总里程、"
              "可达道路 50 米内楼栋中的住户数（按您的数据权限）"
              "及设施处理能力合计。指定假设情景时，关闭的道路退出路网，设施增减改变起点；"
              "不改动已存储的城市数据。可用 POST /scenarios/{id}/compare 对比基准与情景。",
    },
    keywords=("network", "service area", "服务范围", "what-if", "假设情景"),
    inputs=(
        OriginInput(),
        Value("distance_m",
              title={"en": "Distance (m)", "zh": "距离（米）"},
              description={"en": "The longest trip along the roads, metres.",
                           "zh": "沿道路的最远距离（米）。"},
              schema={"type": "number", "minimum": 10, "maximum": 10000, "default": 500}),
        Value("mode",
              title={"en": "Walk or drive", "zh": "步行或驾车"},
              description={"en": "walk: every road both ways; drive: one-way roads in their "
                                 "direction.",
                           "zh": "walk：所有道路双向；drive：单行道按其方向。"},
              schema={"type": "string", "enum": ["walk", "drive"], "default": "walk"}),
        ScenarioInput(),
    ),
    outputs=(
        SummaryOutput(
            "summary",
            title={"en": "Service area summary", "zh": "服务范围汇总"},
            description={
                "en": "mode, distance_m, reachable_km, edges, households, origins, facilities "
                      "(ids), new_facilities, capacity_total (t/day, facilities only), "
                      "closed_roads (applied), scenario.",
                "zh": "mode、distance_m、reachable_km（可达里程）、edges（道路段数）、households"
                      "（住户数）、origins、facilities、new_facilities、capacity_total（吨/日）、"
                      "closed_roads、scenario。"},
            properties={"mode": {"type": "string"}, "distance_m": _NUMBER,
                        "reachable_km": _NUMBER, "edges": {"type": "integer"},
                        "households": {"type": "integer"}, "origins": {"type": "integer"},
                        "facilities": {"type": "array", "items": {"type": "integer"}},
                        "new_facilities": {"type": "integer"},
                        "capacity_total": {"type": "number", "nullable": True},
                        "closed_roads": {"type": "integer"},
                        "scenario": {"type": "string", "nullable": True}},
        ),
        FeatureOutput(
            "roads",
            title={"en": "Reachable roads", "zh": "可达道路"},
            description={
                "en": "Each road edge reached (id: road id): the reached part (EPSG:4490 "
                      "lon/lat), distance_m to where it is entered, reached_m, length_m, "
                      "complete.",
                "zh": "每条可达道路段（id 为道路 id）：可达部分（EPSG:4490 经纬度）、进入处距离"
                      " distance_m、可达长度 reached_m、全长 length_m、是否全段可达 complete。"},
            geometry=("LineString", "MultiLineString"),
            properties={"road_id": {"type": "integer"}, "distance_m": _NUMBER,
                        "reached_m": _NUMBER, "length_m": _NUMBER,
                        "complete": {"type": "boolean"}},
        ),
    ),
    run=run,
    example={"x": 116.455, "y": 39.9175, "crs": "EPSG:4490", "distance_m": 1000,
             "mode": "walk"},
    stages=(Stage("load", {"en": "loading the network", "zh": "读取路网"}, 1),
            Stage("solve", {"en": "walking the network", "zh": "计算可达范围"}, 2)),
)
