"""``refuse-placement`` (垃圾楼空间分布优化): :mod:`scenarios.refuse_placement` as a process.

An area (admin unit or polygon) → where its refuse buildings should stand, by
walking distance on the road network: the chosen sites with their load
against capacity, each building's way to its site, the areas beyond reach,
and the current layout against the proposal. Async only: the exact phase may
take up to ``time_limit_s``; the job's progress shows the heuristic answer,
then the optimality gap as it closes.

All the inputs but ``time_limit_s`` are read as one value
(:class:`PlacementInput`), because they are checked together before a job is
recorded: ``p`` against the sites there are, ``close`` against the refuse
buildings in service under the scenario, the area against the households the
caller may see. Each refusal is a 400 naming its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from scenarios import refuse_placement as rp
from scenarios.placement import SolveProgress
from scenarios.processes.base import (
    AREA_LEVELS,
    ASYNC,
    INT,
    INT_N,
    NUM,
    NUM_N,
    STR_N,
    Area,
    AreaInput,
    FeatureOutput,
    FeatureSet,
    IdSetInput,
    Input,
    Process,
    ProcessResult,
    Progress,
    ScenarioInput,
    Stage,
    SummaryOutput,
    Table,
    TableOutput,
    Value,
    input_description,
    invalid,
    text,
)
from scenarios.processes.inputs import CITY_MARGIN_M, form_hint
from spatial import whatif
from spatial.crs import parse_crs, to_storage
from spatial.whatif import Scenario

#: At most this many candidate points.
MAX_CANDIDATES = 2000




@dataclass(frozen=True)
class Request:
    """The parsed inputs of one analysis (all but the time limit)."""

    area: Area
    model: str = "p-median"
    mode: str = "add"
    p: int | None = None
    k: int = 1
    close: tuple[int, ...] = ()
    reach_m: float = rp.REACH_M
    new_capacity_t: float = rp.NEW_CAPACITY_T
    candidate_points: tuple[tuple[float, float], ...] | None = None
    candidates: str = "planned"
    scenario: str | None = None


_VALUES = (
    Value("model", text("Model", "模型"), text(
        "p-median: least total walking (households × metres); coverage: most households "
        "within reach_m of p sites; set-cover: the fewest sites so that every household is "
        "within reach_m; p-center: the shortest longest walk; capacitated: p-median where "
        "each refuse building serves at most its capacity (t/day; 1 kg per resident a day).",
        "p-median：步行总距离最小（户 × 米）；coverage：p 个站点在 reach_m 内覆盖的住户最多；"
        "set-cover：使所有住户都在 reach_m 内的最少站点；p-center：最远步行距离最短；"
        "capacitated：考虑每座垃圾楼日处理能力（吨/日，每人每日 1 公斤）的 p-median。"),
        {"type": "string", "enum": list(rp.MODELS), "default": "p-median"}),
    Value("mode", text("Mode", "方式"), text(
        "current: the buildings in service as they are (no optimisation); optimise: the best "
        "layout of p sites among the existing and the candidates; add: keep the existing, add "
        "k; close-one: which one existing could close (p = n − 1 among the existing); close: "
        "the refuse buildings in close close, their households are reassigned.",
        "current：现状评估（不优化）；optimise：在现有与候选位置中选 p 个的最优布局；"
        "add：保留现有，新增 k 个；close-one：现有中哪一座可以关闭；close：关闭 close 所列"
        "垃圾楼并重新分配。"),
        {"type": "string", "enum": list(rp.MODES), "default": "add"}),
    Value("p", text("Number of sites (p)", "站点数 p"), text(
        "optimise: how many refuse buildings in all (default: as many as there are near the "
        "area).", "optimise 方式下的垃圾楼总数（默认与区域附近现有数量相同）。"),
        {"type": "integer", "minimum": 1, "maximum": 5000}),
    Value("k", text("Sites to add (k)", "新增站点数 k"), text(
        "add: how many new refuse buildings.", "add 方式下新增垃圾楼数量。"),
        {"type": "integer", "minimum": 1, "maximum": 500, "default": 1}),
    Value("reach_m", text("Walking reach (m)", "步行服务半径（米）"), text(
        "A household should reach a refuse building within this walk (coverage, set cover, "
        "the gaps and the statistics).",
        "住户应在此步行距离内到达垃圾楼（用于覆盖、集合覆盖、服务盲区及统计）。"),
        {"type": "number", "minimum": 0, "maximum": 5000, "default": rp.REACH_M}),
    Value("new_capacity_t", text("Capacity of a new site (t/day)", "新站点处理能力（吨/日）"),
          text("Capacity of each new refuse building (the capacitated model).",
                "每座新建垃圾楼的日处理能力（容量约束模型使用）。"),
          {"type": "number", "minimum": 0, "maximum": 1000, "default": rp.NEW_CAPACITY_T}),
    Value("candidates", text("Candidate sites", "候选点位来源"), text(
        "Where new refuse buildings could stand when no candidate_points are given: planned — "
        "the available planned sites in the area (refuse_candidate_site: vacant or public "
        "land, each with its capacity); corners — every street corner in the area (a "
        "walking-network node where three or more roads meet).",
        "未给出 candidate_points 时的候选位置：planned — 区域内可用的规划备选点位"
        "（refuse_candidate_site：空地或公共用地，各有处理能力）；corners — 区域内所有路口"
        "（三条及以上道路交汇的路网节点）。"),
        {"type": "string", "enum": list(rp.CANDIDATES), "default": "planned"}),
)

_POINTS_SCHEMA: dict[str, Any] = {
    "type": "object", "format": "geojson-geometry", "required": ["type", "coordinates"],
    "properties": {"type": {"enum": ["MultiPoint"]},
                   "coordinates": {"type": "array", "minItems": 1, "maxItems": MAX_CANDIDATES,
                                   "items": {"type": "array", "minItems": 2, "maxItems": 3,
                                             "items": {"type": "number"}}}},
}


@dataclass(frozen=True)
class PlacementInput(Input):
    """The area, the model and its settings, the candidates and the scenario, as one value."""

    key: str = "placement"
    area: AreaInput = field(default_factory=lambda: AreaInput(levels=AREA_LEVELS))
    close: IdSetInput = field(default_factory=lambda: IdSetInput(
        "close", collection="refuse_facility", required=False, max_items=500,
        title=text("Refuse buildings that close", "关闭的垃圾楼"),
        description=text("mode close: ids of refuse_facility features (refuse buildings in "
                          "service) that close.",
                          "close 方式：关闭的垃圾楼（refuse_facility，在用）id 列表。")))
    scenario: ScenarioInput = field(default_factory=lambda: ScenarioInput(description=text(
        "Id of a stored what-if scenario: its removed and added refuse facilities and changed "
        "capacities apply to the existing refuse buildings, its closed roads to the walking "
        "network. The current layout stays the stored city's.",
        "已保存的假设情景 id：其增减的环卫设施与调整的能力作用于现有垃圾楼，关闭的道路退出"
        "步行路网；现状仍为已存储的城市。")))

    def describe(self) -> dict[str, dict[str, Any]]:
        out = dict(self.area.describe())
        for v in _VALUES:
            out.update(v.describe())
        out["candidate_points"] = input_description(
            text("Candidate sites", "候选位置"),
            text("A GeoJSON MultiPoint in candidate_crs: where new refuse buildings could "
                  "stand (vacant or public land), in place of the candidates input.",
                  "candidate_crs 坐标系下的 GeoJSON MultiPoint：可新建垃圾楼的位置（空地或公共"
                  "用地），取代 candidates 所选的候选点位。"),
            {**_POINTS_SCHEMA, **form_hint("points", "candidate_points", "points")})
        out["candidate_crs"] = input_description(
            text("CRS of the candidate sites", "候选位置坐标系"),
            text("EPSG code or URI, CRS84, gcj02 or bd09 (x/y order).",
                  "EPSG 编码或 URI、CRS84、gcj02 或 bd09（经度/纬度顺序）。"),
            {"oneOf": [{"type": "string"}, {"type": "integer"}], "default": "CRS84",
             **form_hint("points", "candidate_points", "crs")})
        out.update(self.close.describe())
        out.update(self.scenario.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Request:
        area = self.area.parse(raw)
        values = {v.name: v.parse(raw) for v in _VALUES}
        points = None
        if "candidate_points" in raw:
            try:
                crs = parse_crs(raw.get("candidate_crs", "CRS84"))
            except (TypeError, ValueError) as exc:
                raise invalid("candidate_crs", str(exc)) from None
            coords = raw["candidate_points"]["coordinates"]
            try:
                lon, lat = to_storage([c[0] for c in coords], [c[1] for c in coords], crs)
            except (TypeError, ValueError, OverflowError) as exc:
                raise invalid("candidate_points", str(exc)) from None
            points = tuple((float(x), float(y)) for x, y in zip(lon, lat, strict=True))
            if not all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in points):
                raise invalid("candidate_points", "a point is outside the longitude/latitude "
                              "range / 超出经纬度范围")
        return Request(area=area, model=values["model"], mode=values["mode"], p=values["p"],
                       k=int(values["k"]), close=self.close.parse(raw) or (),
                       reach_m=float(values["reach_m"]),
                       new_capacity_t=float(values["new_capacity_t"]),
                       candidate_points=points, candidates=values["candidates"],
                       scenario=self.scenario.parse(raw))

    def check(self, conn: psycopg.Connection[Any], value: Request) -> None:
        self.area.check(conn, value.area)
        self.scenario.check(conn, value.scenario)
        if value.candidate_points:
            far = conn.execute(
                "SELECT min(k) AS k FROM unnest(%s::float8[], %s::float8[]) "
                "WITH ORDINALITY AS p(x, y, k) "
                "WHERE NOT onemap.near_city(ST_Point(x, y, 4490), %s)",
                ([p[0] for p in value.candidate_points], [p[1] for p in value.candidate_points],
                 CITY_MARGIN_M)).fetchone()
            if far is not None and far["k"] is not None:
                raise invalid("candidate_points", f"point {far['k']} is outside the city / "
                              "不在本市范围内")
        scenario = whatif.get(conn, value.scenario) if value.scenario else None
        analysis(conn, value, scenario)  # what only the data can refuse: a 400 naming the input


def analysis(conn: psycopg.Connection[Any], request: Request,
             scenario: Scenario | None) -> rp.RefusePlacement:
    """The analysis loaded for a request (its refusals as 400s naming the input)."""
    area = request.area
    return rp.load(conn, level=area.level, unit_id=area.unit_id, polygon_wkt=area.wkt,
                   model=request.model, mode=request.mode, p=request.p, k=request.k,
                   close=request.close, reach_m=request.reach_m,
                   new_capacity_t=request.new_capacity_t,
                   candidate_points=request.candidate_points,
                   candidates=request.candidates, scenario=scenario)


def _note(report: SolveProgress) -> str | None:
    if report.objective is None:
        return None
    if report.phase == "heuristic":
        return f"heuristic {report.objective:.6g} / 启发式解 {report.objective:.6g}"
    if report.gap is None:
        return f"best {report.objective:.6g} / 当前最优 {report.objective:.6g}"
    return (f"best {report.objective:.6g}, gap {100 * report.gap:.2f}% / "
            f"当前最优 {report.objective:.6g}，间隙 {100 * report.gap:.2f}%")


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load, measure the walks, solve, and draw the layout."""
    request: Request = inputs["placement"]
    progress.stage("load")
    scenario = whatif.get(conn, request.scenario) if request.scenario else None
    model = analysis(conn, request, scenario)
    progress.stage("walk")
    if request.mode != "current":
        model.compute_walks(on_step=progress.advance)
    progress.stage("solve")

    def report(sp: SolveProgress) -> None:
        progress.advance(sp.fraction, _note(sp), force=sp.phase != "exact")

    model.solve(time_limit=float(inputs["time_limit_s"]), on_progress=report)
    progress.stage("draw")
    return ProcessResult(
        summary=model.summary(request.scenario),
        features={"sites": FeatureSet(model.site_features()),
                  "assignments": FeatureSet(model.assignment_features()),
                  "gaps": FeatureSet(model.gap_features())},
        tables={"comparison": Table(COMPARISON_COLUMNS, model.comparison())})


COMPARISON_COLUMNS = ("measure", "current", "proposed", "change")

PROCESS = Process(
    id="refuse-placement",
    title=text("Refuse-building placement", "垃圾楼空间分布优化"),
    description=text(
        "Where refuse buildings should stand in an area (an admin unit or a polygon), by "
        "walking distance: from a compound building's door along the compound's footpaths and "
        "out through an open gate (any other building: from its centroid straight to the "
        "nearest road), then the shortest path on the roads to the site's street corner, plus "
        "12 m to the door. Candidates: the planned sites, every street corner, or your points. "
        "Models: p-median, maximal coverage within reach_m, set cover, "
        "p-center, capacitated p-median; modes: the current layout, the best layout of p "
        "sites, add k to the existing, which one could close, close given ones. A heuristic "
        "answer comes first, then HiGHS proves it optimal (the job's progress shows the gap "
        "closing); when time_limit_s runs out the best layout is returned with its gap. "
        "Households and residents count as you may see them. With a what-if scenario its "
        "facility edits and closed roads apply; the stored city is never changed.",
        "按步行距离求区域（行政单元或多边形）内垃圾楼应设的位置：小区内楼栋自楼门沿小区步道经"
        "开放的出入口出小区（其他楼栋自质心至最近道路），再沿道路最短路径到站点所在路口，加 12 "
        "米到门口。候选位置：规划备选点位、所有路口或您给出的点。模型：p-median、reach_m 内"
        "最大覆盖、集合覆盖、p-center、容量约束 p-median；方式：现状评估、p 个站点的最优布局、"
        "在现有基础上新增 k 个、哪一座可以关闭、关闭指定垃圾楼。先给出启发式解，再由 HiGHS "
        "证明最优（任务进度显示最优间隙的收敛）；到达 time_limit_s 时返回当前最优布局及其"
        "间隙。住户与居民数按您的数据权限计。指定假设情景时其设施增减与道路关闭参与计算，"
        "不改动已存储数据。"),
    keywords=("垃圾楼", "refuse", "facility location", "设施选址", "p-median", "coverage",
              "环卫"),
    inputs=(
        PlacementInput(),
        Value("time_limit_s", text("Time limit (s)", "求解时限（秒）"), text(
            "Seconds for the exact phase; when they run out the best layout is returned with "
            "its optimality gap.", "精确求解的时限；超时返回当前最优布局及其最优间隙。"),
            {"type": "number", "minimum": 1, "maximum": 600, "default": 30}),
    ),
    outputs=(
        SummaryOutput(
            "summary", title=text("Placement summary", "选址汇总"),
            description=text(
                "model, mode, status (optimal, time_limit, infeasible, heuristic; evaluated for "
                "mode current), message (why infeasible), p, objective (objective_unit), "
                "bound, gap, households/residents within reach before and after, mean and max "
                "walk before and after (m), sites_opened (site keys), sites_closed "
                "(refuse_facility ids), gaps before and after, scenario.",
                "model、mode、status（optimal 最优、time_limit 超时、infeasible 无可行解、"
                "heuristic；现状评估为 evaluated）、message（无可行解的原因）、p、objective 及"
                "单位、bound、gap、优化前后服务半径内的住户与居民数、平均与最远步行距离、"
                "新增站点、关闭的垃圾楼、服务盲区数、scenario。"),
            properties={
                "model": {"type": "string"}, "mode": {"type": "string"},
                "status": {"type": "string"}, "message": STR_N, "p": INT,
                "objective": NUM_N, "objective_unit": {"type": "string"},
                "bound": NUM_N, "gap": NUM_N, "heuristic_objective": NUM_N,
                "solve_time_s": NUM_N, "reach_m": NUM, "cutoff_m": NUM,
                "buildings": INT, "households": INT, "residents": INT,
                "refuse_t_per_day": NUM, "existing": INT, "candidates": INT,
                "sites_open": INT,
                "sites_opened": {"type": "array", "items": {"type": "string"}},
                "sites_closed": {"type": "array", "items": INT},
                "households_within_reach_before": INT, "households_within_reach_after": INT,
                "residents_within_reach_before": INT, "residents_within_reach_after": INT,
                "mean_walk_m_before": NUM_N, "mean_walk_m_after": NUM_N,
                "max_walk_m_before": NUM_N, "max_walk_m_after": NUM_N,
                "gaps_before": INT, "gaps_after": INT, "uncoverable_households": INT,
                "scenario": STR_N}),
        FeatureOutput(
            "sites", title=text("Refuse building sites", "垃圾楼站点"),
            description=text(
                "The proposal's sites: status existing (kept), new (opened: a street corner, "
                "a candidate point or a scenario's new building) or closed; load_t against "
                "capacity_t (t/day) after, and before; households and residents served.",
                "方案中的站点：status 为 existing（保留）、new（新建：路口、候选点或情景新增）"
                "或 closed（关闭）；优化后与优化前的日负荷 load_t 与处理能力 capacity_t（吨/日）"
                "、服务住户与居民数。"),
            geometry=("Point",),
            properties={"site": {"type": "string"}, "facility_id": INT_N, "name": STR_N,
                        "status": {"type": "string", "enum": ["existing", "new", "closed"]},
                        "capacity_t": NUM_N, "load_t": NUM, "households": INT,
                        "residents": INT, "utilisation": NUM_N,
                        "over_capacity": {"type": "boolean"}, "load_before_t": NUM,
                        "households_before": INT, "access_m": NUM, "node_id": INT},
            colour_by="households"),
        FeatureOutput(
            "assignments", title=text("Walks to the sites", "住户投放路径"),
            description=text(
                "Each residential building to its site (a line from its centroid), with "
                "walk_m along the network, within_reach, and the site and walk before.",
                "每栋住宅楼到其垃圾楼的连线（自楼栋质心），沿路网的步行距离 walk_m、是否在服务"
                "半径内，以及优化前的站点与距离。"),
            geometry=("LineString",),
            properties={"building_id": INT, "site": {"type": "string"},
                        "facility_id": INT_N, "walk_m": NUM, "households": INT,
                        "residents": INT, "within_reach": {"type": "boolean"},
                        "site_before": STR_N, "walk_before_m": NUM_N,
                        "changed": {"type": "boolean"}},
            colour_by="walk_m"),
        FeatureOutput(
            "gaps", title=text("Households beyond reach", "服务盲区"),
            description=text(
                "Areas of buildings beyond reach_m after the layout: buildings whose centroids "
                "lie within 400 m of each other form one area, drawn as the convex hull of "
                "their footprints grown by 20 m.",
                "布局后超出服务半径的楼栋区域：质心相距 400 米内的楼栋归为一片，以其轮廓的凸包"
                "外扩 20 米表示。"),
            geometry=("Polygon", "MultiPolygon"),
            properties={"gap_id": INT, "buildings": INT, "households": INT,
                        "residents": INT, "max_walk_m": NUM_N, "unreachable": INT},
            colour_by="households"),
        TableOutput(
            "comparison", title=text("Current vs proposed", "现状与方案对比"),
            description=text(
                "Per measure (sites, capacity, households within and beyond reach, share "
                "within reach, mean and max walk, gap areas, sites over capacity, buildings "
                "reassigned): the current layout, the proposal and the change.",
                "各项指标（站点数、处理能力、服务半径内外住户、覆盖率、平均与最远步行距离、"
                "盲区数、超负荷站点、重新分配的楼栋）的现状、方案与变化。"),
            columns={"measure": {"type": "string"}, "current": NUM_N, "proposed": NUM_N,
                     "change": NUM_N}),
    ),
    run=run,
    example={"level": "community", "unit_id": 1, "model": "coverage", "mode": "add", "k": 1,
             "candidate_points": {"type": "MultiPoint",
                                  "coordinates": [[116.4705, 39.9175], [116.46, 39.9175]]},
             "candidate_crs": "EPSG:4490", "time_limit_s": 10},
    job_control=(ASYNC,),
    stages=(Stage("load", text("loading homes and sites", "读取住户与站点"), 1),
            Stage("walk", text("measuring the walks", "计算步行距离"), 1),
            Stage("solve", text("optimising the layout", "优化布局"), 6),
            Stage("draw", text("drawing the layout", "绘制方案"), 1)),
)
