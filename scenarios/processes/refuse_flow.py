"""``refuse-flow`` (生活垃圾流向流量调配): :mod:`scenarios.refuse_flow` as a process.

A day → its refuse, stream by stream, routed from the refuse buildings through
the transfer stations to the treatment plants at the least tonne-kilometres on
the roads, within every capacity of that day (outages applied): the flows as
lines with their tonnage, each facility's load, utilisation, warning and shadow
price, and what could not be placed. The day's tonnes are its readings, or
(``basis: forecast``) the refuse forecast for a day to come
(:mod:`scenarios.refuse_forecast`, street-office level shared over the
buildings): "next Monday's plan".

The inputs are read as one value (:class:`FlowInput`) and checked together
before a job is recorded: the day must have readings (or lie within the
forecast's reach), the scenario must leave each stream a station and a plant;
each refusal is a 400 naming its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import psycopg

from scenarios import refuse_flow as rf
from scenarios import refuse_forecast as rfc
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
    stream: str | None = None
    basis: str = "readings"


BASES = ("readings", "forecast")


_RATIO = Value("warning_ratio", text("Warning threshold", "预警阈值"), text(
    "Warn about a facility whose load reaches this share of its daily capacity (planned, and "
    "by the day's readings).", "设施负荷达到其日处理能力的该比例时预警（按方案与当日计量）。"),
    {"type": "number", "exclusiveMinimum": 0, "maximum": 2, "default": rf.WARNING_RATIO})
_STREAM = Value("stream", text("Stream", "垃圾类别"), text(
    "Plan one stream (other, kitchen, recyclable, hazardous); default every stream, each over "
    "its own stations and plants. Unsorted readings count as other waste.",
    "仅调配某一类（其他、厨余、可回收、有害）；默认各类分别按其转运站、处理厂调配。未分类的"
    "计量数据按其他垃圾计。"),
    {"type": "string", "enum": list(rf.STREAMS)})
_BASIS = Value("basis", text("Basis", "依据"), text(
    "readings: the day's weighbridge readings; forecast: the refuse forecast for a day after "
    "the readings end (1–28 days later; default the next day): each street office's forecast "
    "shared over its refuse buildings by their last four weeks.",
    "readings：当日计量数据；forecast：计量数据之后某日（1–28 天内，默认次日）的垃圾产生量"
    "预测，按街道预测并依各垃圾楼近四周占比分配。"),
    {"type": "string", "enum": list(BASES), "default": "readings"})


@dataclass(frozen=True)
class FlowInput(Input):
    """The day, the warning threshold and the scenario, as one value."""

    key: str = "flow"
    day: DateInput = field(default_factory=lambda: DateInput(
        "day", text("Day", "日期"),
        text("The day planned (Beijing date): its readings (default the last day with "
              "readings) or, by forecast, a day to come (default the day after); its "
              "outages (plant maintenance, breakdowns) apply.",
              "调配日期（北京时间）：按该日计量数据（默认最近有计量数据的一天），或按预测调配"
              "未来某日（默认次日）；当日设施停运（检修、故障）生效。")))
    scenario: ScenarioInput = field(default_factory=lambda: ScenarioInput(description=text(
        "Id of a stored what-if scenario: its removed facilities leave service, its changed "
        "capacities apply, a facility it adds at a point is a new transfer station (of the "
        "stream planned, or of other waste).",
        "已保存的假设情景 id：其停用的设施退出、调整的能力生效，在某点新增的设施作为新转运站"
        "（属所调配的类别，默认其他垃圾）。")))

    def describe(self) -> dict[str, dict[str, Any]]:
        out = dict(self.day.describe())
        out.update(_RATIO.describe())
        out.update(_STREAM.describe())
        out.update(_BASIS.describe())
        out.update(self.scenario.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Request:
        return Request(day=self.day.parse(raw), warning_ratio=float(_RATIO.parse(raw)),
                       scenario=self.scenario.parse(raw), stream=_STREAM.parse(raw),
                       basis=_BASIS.parse(raw))

    def check(self, conn: psycopg.Connection[Any], value: Request) -> None:
        self.scenario.check(conn, value.scenario)
        if value.basis == "forecast":
            forecast_day(conn, value.day)
            return  # the forecast itself runs in the job
        scenario = whatif.get(conn, value.scenario) if value.scenario else None
        plan(conn, value, scenario)  # what only the data can refuse: a 400 naming the input


def forecast_day(conn: psycopg.Connection[Any], day: date | None) -> tuple[date, date]:
    """The day a forecast plan is for (default: the day after the readings end) and the
    history's last day; a 400 naming ``day`` when it is not 1–28 days after it."""
    last = rf.last_reading_day(conn)
    if last is None:
        raise invalid("basis", "there are no load readings to forecast from / 没有计量数据")
    day = day or last + timedelta(days=1)
    ahead = (day - last).days
    if not 1 <= ahead <= rfc.MAX_HORIZON:
        raise invalid("day", f"a forecast plan is for 1 to {rfc.MAX_HORIZON} days after the "
                      f"readings end ({last.isoformat()}), got {day.isoformat()} / 预测调配日期"
                      f"须在计量数据截止日后 1 至 {rfc.MAX_HORIZON} 天内")
    return day, last


def forecast_demand(conn: psycopg.Connection[Any], day: date, last: date,
                    streams: tuple[str, ...], progress: Progress | None = None
                    ) -> dict[str, dict[int, float]]:
    """Each stream's forecast tonnes per refuse building on ``day``."""
    out = {}
    for k, stream in enumerate(streams):
        if progress is not None:
            progress.advance(k / len(streams), stream)
        model = rfc.RefuseForecast.load(conn, level="street_office", stream=stream,
                                        horizon_days=(day - last).days, as_of=last,
                                        review_cutoffs=0, fill_missing=True).solve()
        if model.status != "ok":
            raise invalid("basis", f"{stream}: {model.message} / 无法预测")
        out[stream] = model.day_demand(day)
    return out


def plan(conn: psycopg.Connection[Any], request: Request, scenario: Scenario | None, *,
         demand: Mapping[str, Mapping[int, float]] | None = None
         ) -> tuple[rf.CityFlow, date]:
    """The plan loaded for a request (its refusals name the input: 400s)."""
    return rf.load(conn, day=request.day, warning_ratio=request.warning_ratio,
                   scenario=scenario, stream=request.stream, demand=demand)


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load the day, route it, draw it."""
    request: Request = inputs["flow"]
    progress.stage("load")
    scenario = whatif.get(conn, request.scenario) if request.scenario else None
    demand = None
    if request.basis == "forecast":
        day, last = forecast_day(conn, request.day)
        progress.stage("forecast")
        streams = (request.stream,) if request.stream else rf.STREAMS
        demand = forecast_demand(conn, day, last, streams, progress)
        request = replace(request, day=day)
    model, day = plan(conn, request, scenario, demand=demand)
    progress.stage("solve")
    model.solve()
    progress.stage("draw")
    return ProcessResult(
        summary=model.summary(day, request.scenario, request.basis),
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
                "status (optimal), message (refuse that cannot be placed), day, basis "
                "(readings or forecast), the streams planned, the day's outages, the refuse "
                "buildings without a reading that day (missing_readings), refuse_t, "
                "tonne_km, unplaced_t, facility counts, warnings by the plan and by the "
                "readings, stations and plants nearest-station routing would overload, and "
                "the same per stream (by_stream).",
                "status、message（无法消纳的垃圾）、日期、依据（计量或预测）、调配的类别、当日"
                "停运设施、当日无计量数据的垃圾楼（missing_readings）、垃圾总量、吨公里、未消纳吨数、设施数、按方案与按计量的预警数、就近"
                "转运时超负荷的设施数，及各类别的同样数字（by_stream）。"),
            properties={"status": {"type": "string"}, "message": STR_N,
                        "day": {"type": "string", "format": "date"},
                        "basis": {"type": "string", "enum": list(BASES)},
                        "streams": {"type": "array", "items": {"type": "string"}},
                        "outages": {"type": "array", "items": {"type": "string"}},
                        "missing_readings": {"type": "array", "items": {"type": "integer"}},
                        "by_stream": {"type": "object"}, "refuse_t": NUM,
                        "tonne_km": NUM, "unplaced_t": NUM, "refuse_buildings": INT,
                        "transfer_stations": INT, "treatment_plants": INT,
                        "warning_ratio": NUM, "warnings_plan": INT, "warnings_readings": INT,
                        "over_capacity_if_nearest": INT, "solve_time_s": NUM_N,
                        "scenario": STR_N}),
        FeatureOutput(
            "flows", title=text("Flows", "垃圾流向"),
            description=text(
                "Each planned flow, a line from facility to facility: its stream, tonnes, "
                "road_km, tonne_km.",
                "每条计划流向（设施间连线）：类别、吨数、道路公里数、吨公里。"),
            geometry=("LineString",),
            properties={"from_id": INT, "to_id": INT, "from_kind": {"type": "string"},
                        "to_kind": {"type": "string"}, "stream": STR_N, "tonnes": NUM,
                        "road_km": NUM, "tonne_km": NUM},
            colour_by="tonnes"),
        FeatureOutput(
            "facilities", title=text("Facilities", "环卫设施负荷"),
            description=text(
                "Each facility in service: its stream (stations and plants) and the day's "
                "outage, capacity_t (that day's), planned load_t (a refuse building's over "
                "the streams planned, and <stream>_t each) and utilisation, "
                "warning; the day's reading_t, reading_utilisation and reading_warning; "
                "nearest_load_t and nearest_over_capacity (nearest-station routing); "
                "shadow_price (tonne-km per extra tonne of capacity); unplaced_t.",
                "在用设施：类别（转运站、处理厂）与当日停运、当日处理能力、计划负荷（垃圾楼为所"
                "调配各类之和及各类 <stream>_t）与负荷率、预警；当日计量及负荷率、计量预警；就近"
                "转运时的负荷与是否超负荷；影子价格（每增加一吨能力节省的吨公里）；未消纳吨数。"),
            geometry=("Point",),
            properties={"facility_id": INT, "name": STR_N, "kind": {"type": "string"},
                        "stream": STR_N, "outage": STR_N,
                        **{f"{s}_t": NUM_N for s in rf.STREAMS}, "capacity_t": NUM_N,
                        "load_t": NUM, "utilisation": NUM_N,
                        "warning": BOOL, "reading_t": NUM_N, "reading_utilisation": NUM_N,
                        "reading_warning": BOOL, "nearest_load_t": NUM_N,
                        "nearest_over_capacity": BOOL, "shadow_price": NUM_N,
                        "unplaced_t": NUM},
            colour_by="utilisation"),
    ),
    run=run,
    example={"warning_ratio": 0.8, "stream": "other"},
    stages=(Stage("load", text("reading the day and the roads", "读取计量与道路"), 1),
            Stage("forecast", text("forecasting the day (basis: forecast)",
                                   "预测当日垃圾量（按预测调配时）"), 4),
            Stage("solve", text("routing the refuse", "调配求解"), 1),
            Stage("draw", text("drawing the flows", "绘制流向"), 1)),
)
