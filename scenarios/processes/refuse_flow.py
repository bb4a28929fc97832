"""``refuse-flow`` (生活垃圾流向流量调配): :mod:`scenarios.refuse_flow` as a process.

A day → its refuse routed from the refuse buildings through the transfer
stations to the treatment plants at the least tonne-kilometres on the roads,
within every capacity: the flows as lines with their tonnage, each facility's
load, utilisation, warning and shadow price, and what could not be placed.

The inputs are read as one value (:class:`FlowInput`) and checked together
before a job is recorded: the day must have readings, the scenario must leave
a station and a plant in service; each refusal is a 400 naming its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from scenarios import refuse_flow as rf
from scenarios.processes.base import (
    BOOL,
    INT,
    NUM,
    NUM_N,
    STR_N,
    FeatureOutput,
    FeatureSet,
    Input,
    Process,
    ProcessResult,
    Progress,
    ScenarioInput,
    Stage,
    SummaryOutput,
    Value,
    invalid,
    text,
)
from scenarios.processes.inputs import DateInput
from spatial import whatif
from spatial.whatif import Scenario


@dataclass(frozen=True)
class Request:
    """The parsed inputs of one plan."""

    day: date | None = None
    warning_ratio: float = rf.WARNING_RATIO
    scenario: str | None = None


_RATIO = Value("warning_ratio", text("Warning threshold", "预警阈值"), text(
    "Warn about a facility whose load reaches this share of its daily capacity (planned, and "
    "by the day's readings).", "设施负荷达到其日处理能力的该比例时预警（按方案与当日计量）。"),
    {"type": "number", "exclusiveMinimum": 0, "maximum": 2, "default": rf.WARNING_RATIO})


@dataclass(frozen=True)
class FlowInput(Input):
    """The day, the warning threshold and the scenario, as one value."""

    key: str = "flow"
    day: DateInput = field(default_factory=lambda: DateInput(
        "day", text("Day", "日期"),
        text("The day whose readings are routed (Beijing date); default the last day with "
              "readings.", "按该日（北京时间）计量数据调配；默认最近有计量数据的一天。")))
    scenario: ScenarioInput = field(default_factory=lambda: ScenarioInput(description=text(
        "Id of a stored what-if scenario: its removed facilities leave service, its changed "
        "capacities apply, a facility it adds at a point is a new transfer station.",
        "已保存的假设情景 id：其停用的设施退出、调整的能力生效，在某点新增的设施作为新转运站。")))

    def describe(self) -> dict[str, dict[str, Any]]:
        out = dict(self.day.describe())
        out.update(_RATIO.describe())
        out.update(self.scenario.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Request:
        return Request(day=self.day.parse(raw), warning_ratio=float(_RATIO.parse(raw)),
                       scenario=self.scenario.parse(raw))

    def check(self, conn: psycopg.Connection[Any], value: Request) -> None:
        self.scenario.check(conn, value.scenario)
        scenario = whatif.get(conn, value.scenario) if value.scenario else None
        plan(conn, value, scenario)  # what only the data can refuse: a 400 naming the input


def plan(conn: psycopg.Connection[Any], request: Request,
         scenario: Scenario | None) -> tuple[rf.RefuseFlow, date]:
    """The plan loaded for a request (its refusals as 400s naming the input)."""
    try:
        return rf.load(conn, day=request.day, warning_ratio=request.warning_ratio,
                       scenario=scenario)
    except rf.FlowRequestError as exc:
        raise invalid(exc.name, exc.reason) from None


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load the day, route it, draw it."""
    request: Request = inputs["flow"]
    progress.stage("load")
    scenario = whatif.get(conn, request.scenario) if request.scenario else None
    model, day = plan(conn, request, scenario)
    progress.stage("solve")
    model.solve()
    progress.stage("draw")
    return ProcessResult(
        summary=model.summary(day, request.scenario),
        features={"flows": FeatureSet(model.flow_features()),
                  "facilities": FeatureSet(model.facility_features())})



PROCESS = Process(
    id="refuse-flow",
    title=text("Refuse flows", "生活垃圾流向流量调配"),
    description=text(
        "A day's refuse routed from the refuse buildings through the transfer stations to the "
        "treatment plants at the least tonne-kilometres on the road network (one-way rows "
        "kept), within every station's and plant's daily capacity (a minimum-cost flow, "
        "HiGHS). Returns the flows with their tonnage, each facility's planned load, "
        "utilisation and warning (at warning_ratio of capacity, by the plan and by the day's "
        "readings), what nearest-station routing would load, the shadow price of each "
        "capacity (tonne-km saved by one more tonne there), and the refuse that cannot be "
        "placed. A what-if scenario takes facilities out of service, changes capacities or "
        "adds a station.",
        "按道路网（保留单行）以吨公里最小，在各转运站、处理厂日处理能力内，将某日垃圾从垃圾楼"
        "经转运站调配至处理厂（最小费用流，HiGHS）。返回各流向及吨数、各设施计划负荷、负荷率"
        "与预警（按方案及当日计量，阈值 warning_ratio）、就近转运时的负荷、各处理能力的影子"
        "价格（每增加一吨能力节省的吨公里）以及无法消纳的垃圾量。假设情景可停用设施、调整能力"
        "或新增转运站。"),
    keywords=("垃圾", "refuse", "minimum-cost flow", "最小费用流", "调配", "环卫"),
    inputs=(FlowInput(),),
    outputs=(
        SummaryOutput(
            "summary", title=text("Plan summary", "调配汇总"),
            description=text(
                "status (optimal), message (refuse that cannot be placed), day, refuse_t, "
                "tonne_km, unplaced_t, facility counts, warnings by the plan and by the "
                "readings, stations and plants nearest-station routing would overload.",
                "status、message（无法消纳的垃圾）、日期、垃圾总量、吨公里、未消纳吨数、设施"
                "数、按方案与按计量的预警数、就近转运时超负荷的设施数。"),
            properties={"status": {"type": "string"}, "message": STR_N,
                        "day": {"type": "string", "format": "date"}, "refuse_t": NUM,
                        "tonne_km": NUM, "unplaced_t": NUM, "refuse_buildings": INT,
                        "transfer_stations": INT, "treatment_plants": INT,
                        "warning_ratio": NUM, "warnings_plan": INT, "warnings_readings": INT,
                        "over_capacity_if_nearest": INT, "solve_time_s": NUM_N,
                        "scenario": STR_N}),
        FeatureOutput(
            "flows", title=text("Flows", "垃圾流向"),
            description=text(
                "Each planned flow, a line from facility to facility: tonnes, road_km, "
                "tonne_km.", "每条计划流向（设施间连线）：吨数、道路公里数、吨公里。"),
            geometry=("LineString",),
            properties={"from_id": INT, "to_id": INT, "from_kind": {"type": "string"},
                        "to_kind": {"type": "string"}, "tonnes": NUM, "road_km": NUM,
                        "tonne_km": NUM},
            colour_by="tonnes"),
        FeatureOutput(
            "facilities", title=text("Facilities", "环卫设施负荷"),
            description=text(
                "Each facility in service: capacity_t, planned load_t and utilisation, "
                "warning; the day's reading_t, reading_utilisation and reading_warning; "
                "nearest_load_t and nearest_over_capacity (nearest-station routing); "
                "shadow_price (tonne-km per extra tonne of capacity); unplaced_t.",
                "在用设施：处理能力、计划负荷与负荷率、预警；当日计量及负荷率、计量预警；就近"
                "转运时的负荷与是否超负荷；影子价格（每增加一吨能力节省的吨公里）；未消纳吨数。"),
            geometry=("Point",),
            properties={"facility_id": INT, "name": STR_N, "kind": {"type": "string"},
                        "capacity_t": NUM_N, "load_t": NUM, "utilisation": NUM_N,
                        "warning": BOOL, "reading_t": NUM_N, "reading_utilisation": NUM_N,
                        "reading_warning": BOOL, "nearest_load_t": NUM_N,
                        "nearest_over_capacity": BOOL, "shadow_price": NUM_N,
                        "unplaced_t": NUM},
            colour_by="utilisation"),
    ),
    run=run,
    example={"warning_ratio": 0.8},
    stages=(Stage("load", text("reading the day and the roads", "读取计量与道路"), 1),
            Stage("solve", text("routing the refuse", "调配求解"), 1),
            Stage("draw", text("drawing the flows", "绘制流向"), 1)),
)
