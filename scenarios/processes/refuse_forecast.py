"""``refuse-forecast`` (生活垃圾产生量趋势预测): :mod:`scenarios.refuse_forecast` as a process.

A horizon (1–28 days), a level (refuse building, street office, city) and
optionally a stream → each series's daily tonnes ahead with 80 % and 95 %
prediction intervals, by the model a rolling-origin backtest chose among the
seasonal naive and statsmodels' ETS and SARIMA; the backtest's MASE and MAPE
per model, and how much the chosen one beats the seasonal naive; the review
of past forecasts against what happened (复盘); the refuse buildings as points
with their forecast. Async only: at the refuse-building level of a city the
backtest fits hundreds of models.

The inputs are read as one value (:class:`ForecastInput`) and checked together
before a job is recorded: the history is read and checked (negative or
missing readings are a 400 naming the refuse building and the days); each
refusal is a 400 naming its input. A history too short to backtest is an
answer (status ``insufficient_history`` with the reason), not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from scenarios import forecast as fc
from scenarios import refuse_forecast as rf
from scenarios.processes.base import (
    ASYNC,
    BOOL,
    INT,
    NUM,
    NUM_N,
    STR_N,
    DateInput,
    FeatureOutput,
    FeatureSet,
    Input,
    Process,
    ProcessResult,
    Progress,
    Stage,
    SummaryOutput,
    Table,
    TableOutput,
    Value,
    text,
)


@dataclass(frozen=True)
class Request:
    """The parsed inputs of one forecast."""

    horizon_days: int = rf.DEFAULT_HORIZON
    level: str = "street_office"
    stream: str | None = None
    models: tuple[str, ...] = fc.MODELS
    as_of: date | None = None
    fill_missing: bool = False
    review_cutoffs: int = rf.REVIEW_CUTOFFS
    holidays: str = "auto"


_VALUES = (
    Value("horizon_days", text("Days ahead", "预测天数"), text(
        "How many days after the history's last day to forecast (1–28).",
        "自历史数据最后一天起预测的天数（1–28）。"),
        {"type": "integer", "minimum": 1, "maximum": rf.MAX_HORIZON,
         "default": rf.DEFAULT_HORIZON}),
    Value("level", text("Level", "汇总层级"), text(
        "refuse_building: each refuse building's own series; street_office: the sum of a "
        "street office's refuse buildings; city: the sum of all.",
        "refuse_building：各垃圾楼；street_office：街道内垃圾楼之和；city：全市之和。"),
        {"type": "string", "enum": list(rf.LEVELS), "default": "street_office"}),
    Value("stream", text("Stream", "垃圾类别"), text(
        "Forecast one stream (kitchen, other, recyclable, hazardous) instead of the total. "
        "Unsorted readings count as other waste; while no reading records its stream, every "
        "reading counts as all streams (stream_recorded false in the summary).",
        "仅预测某一类（厨余、其他、可回收、有害）而非总量。未分类的读数计为其他垃圾；计量数据"
        "均未区分类别时，每条读数视为全部类别（汇总中 stream_recorded 为 false）。"),
        {"type": "string", "enum": list(rf.STREAMS)}),
    Value("models", text("Candidate models", "候选模型"), text(
        "Models the backtest chooses among (the seasonal naive is always one): "
        "seasonal_naive, ets (ETS(A,N,A)), ets_damped (ETS(A,Ad,A)), sarima "
        "(SARIMA(1,0,1)(0,1,1)7).",
        "回测从中选择的模型（季节朴素法总在其中）：seasonal_naive、ets、ets_damped、sarima。"),
        {"type": "array", "items": {"type": "string", "enum": list(fc.MODELS)},
         "minItems": 1, "uniqueItems": True, "default": list(fc.MODELS)}),
    Value("fill_missing", text("Fill missing days", "补全缺失数据"), text(
        "Fill a refuse building's missing day with the same weekday a week earlier (the "
        "summary counts them) instead of refusing the request.",
        "以一周前同一星期几的数据补全垃圾楼缺失的日数据（汇总中计数），而非拒绝请求。"),
        {"type": "boolean", "default": False}),
    Value("review_cutoffs", text("Review cut-offs", "复盘次数"), text(
        "How many past forecasts the review re-makes before the backtest's, each "
        "horizon_days before the next, so that their days tile the past (26 of 14 days: a "
        "year; 0: the backtest's only). Each costs as much as a forecast.",
        "复盘时在回测各次之前重做的历史预测次数，相邻两次相隔 horizon_days 天，覆盖连续的"
        "过去（14 天 × 26 次约一年；0：仅回测各次）。每次耗时与一次预测相当。"),
        {"type": "integer", "minimum": 0, "maximum": rf.MAX_REVIEW_CUTOFFS,
         "default": rf.REVIEW_CUTOFFS}),
    Value("holidays", text("Holiday adjustment", "节假日调整"), text(
        "adjust: adjust the models for the public holidays and worked weekend days whose "
        "effect the history shows; ignore: do not; auto: the backtest tries each model both "
        "ways and keeps the better (twice the backtest's time). The seasonal naive never is.",
        "adjust：对历史数据显示出影响的法定节假日与调休日进行调整；ignore：不调整；auto："
        "回测对每个模型分别尝试两种方式并取优（回测耗时加倍）。季节朴素法不调整。"),
        {"type": "string", "enum": list(rf.HOLIDAY_MODES), "default": "auto"}),
)


@dataclass(frozen=True)
class ForecastInput(Input):
    """Horizon, level, stream, models, history end and review, as one value."""

    key: str = "forecast"
    as_of: DateInput = field(default_factory=lambda: DateInput(
        "as_of", text("History until", "历史截止日"),
        text("The history's last day (Beijing date); the forecast starts the day after. "
              "Default: the last day of the latest run of consecutive days with readings.",
              "历史数据的最后一天（北京时间），预测自次日开始；默认最近一段连续计量数据的"
              "最后一天。")))

    def describe(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for v in _VALUES:
            out.update(v.describe())
        out.update(self.as_of.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Request:
        values = {v.name: v.parse(raw) for v in _VALUES}
        return Request(horizon_days=int(values["horizon_days"]), level=values["level"],
                       stream=values["stream"], models=tuple(values["models"]),
                       as_of=self.as_of.parse(raw), fill_missing=bool(values["fill_missing"]),
                       review_cutoffs=int(values["review_cutoffs"]),
                       holidays=values["holidays"])

    def check(self, conn: psycopg.Connection[Any], value: Request) -> None:
        analysis(conn, value)  # what only the data can refuse: a 400 naming the input


def analysis(conn: psycopg.Connection[Any], request: Request) -> rf.RefuseForecast:
    """The forecast loaded for a request (its refusals as 400s naming the input)."""
    return rf.load(conn, level=request.level, horizon_days=request.horizon_days,
                   models=request.models, stream=request.stream, as_of=request.as_of,
                   fill_missing=request.fill_missing, review_cutoffs=request.review_cutoffs,
                   holidays=request.holidays)


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load the history, backtest, forecast, review, draw."""
    request: Request = inputs["forecast"]
    progress.stage("load")
    model = analysis(conn, request)
    progress.stage("backtest")
    model.run_backtest(on_step=progress.advance)
    progress.stage("forecast")
    model.run_forecast(on_step=progress.advance)
    progress.stage("review")
    model.run_review(on_step=progress.advance)
    progress.stage("draw")
    return ProcessResult(
        summary=model.summary(),
        features={"buildings": FeatureSet(model.building_features())},
        tables={"forecast": Table(rf.FORECAST_COLUMNS, model.forecast_rows()),
                "review": Table(rf.REVIEW_COLUMNS, model.review_rows()),
                "backtest": Table(rf.BACKTEST_COLUMNS, model.backtest_rows())})


_STR = {"type": "string"}
_DATE_N = {"type": "string", "format": "date", "nullable": True}

PROCESS = Process(
    id="refuse-forecast",
    title=text("Refuse generation forecast", "生活垃圾产生量趋势预测"),
    description=text(
        "Daily refuse per refuse building, street office or the city for the next 1–28 days, "
        "with 80 % and 95 % prediction intervals, from the history of the 21:00 readings. A "
        "rolling-origin backtest (four cut-offs a week apart) scores the seasonal naive and "
        "statsmodels' ETS(A,N,A), ETS(A,Ad,A) and SARIMA(1,0,1)(0,1,1)7 by MASE and MAPE; "
        "the lowest pooled MASE forecasts. Public holidays and worked weekend days "
        "(Spring Festival, National Day …) are adjusted for where the history shows their "
        "effect; by default the backtest tries each model with and without that adjustment "
        "and keeps the better. The review (复盘) re-makes the chosen model's forecasts from "
        "past cut-offs against what happened, beside the seasonal naive's. Refuse buildings "
        "come as points with their forecast (their share of their street office's or the "
        "city's below the building level). Readings are counted as you may see them.",
        "依据每日 21:00 计量数据，预测各垃圾楼、街道或全市未来 1–28 天的日垃圾量及 80%、95% "
        "预测区间。滚动起点回测（四个起点，间隔一周）以 MASE 与 MAPE 比较季节朴素法与 "
        "statsmodels 的 ETS(A,N,A)、ETS(A,Ad,A)、SARIMA(1,0,1)(0,1,1)7，取合并 MASE 最小者"
        "预测。历史数据显示出影响的法定节假日及调休（春节、国庆等）予以调整；默认由回测对"
        "每个模型分别比较调整与不调整并取优。复盘以历史各"
        "起点重做所选模型的预测并与实际及季节朴素法对比。垃圾楼以点返回其预测量（街道、全市"
        "层级下按其占比分配）。计量数据按您的数据权限计。"),
    keywords=("垃圾", "refuse", "forecast", "预测", "backtest", "回测", "环卫"),
    inputs=(ForecastInput(),),
    outputs=(
        SummaryOutput(
            "summary", title=text("Forecast summary", "预测汇总"),
            description=text(
                "status (ok, insufficient_history) and message; level, stream, horizon, the "
                "history (as_of, history_from, history_days), the forecast's days and total; "
                "model (the chosen) and holidays_adjusted, backtest (pooled MASE and MAPE per "
                "model, with and without the holiday adjustment), cutoffs, improvement_pct "
                "(pooled MASE below the seasonal naive's, %); holidays (their effect in the "
                "history: significant, applied) and holidays_ahead; "
                "filled_days, dropped_series, fallback_series (forecast by the seasonal "
                "naive instead), notes, timings_s.",
                "status（ok、insufficient_history 历史数据不足）及说明；层级、类别、预测天数、"
                "历史区间、预测日期与总量；所选模型及是否节假日调整、各模型（调整与否）回测的"
                "合并 MASE 与 MAPE、回测起点、"
                "相对季节朴素法的改进（%）；节假日影响及预测期内的节假日；补全的天数、剔除与"
                "退回季节朴素法的序列数、备注、耗时。"),
            properties={
                "status": _STR, "message": STR_N, "level": _STR, "stream": STR_N,
                "stream_recorded": BOOL, "horizon_days": INT, "as_of": _DATE_N,
                "first_day": _DATE_N, "last_day": _DATE_N, "history_from": _DATE_N,
                "history_days": INT, "series": INT, "refuse_buildings": INT,
                "model": STR_N, "baseline": _STR,
                "candidates": {"type": "array", "items": _STR},
                "improvement_pct": NUM_N,
                "backtest": {"type": "array", "items": {"type": "object", "properties": {
                    "model": _STR, "holidays": BOOL, "mase": NUM_N, "mape": NUM_N,
                    "series": INT}}},
                "cutoffs": {"type": "array", "items": {"type": "string", "format": "date"}},
                "forecast_t": NUM_N, "fallback_series": INT,
                "holidays": {"type": "array", "items": {"type": "object", "properties": {
                    "holiday": _STR, "factor": NUM, "days": INT, "significant": BOOL,
                    "applied": BOOL}}},
                "holidays_ahead": {"type": "array", "items": {"type": "object", "properties": {
                    "date": {"type": "string", "format": "date"}, "holiday": _STR,
                    "factor": NUM, "seen": BOOL}}},
                "holiday_mode": _STR, "holidays_adjusted": BOOL, "filled_days": INT,
                "dropped_series": INT,
                "notes": {"type": "array", "items": _STR},
                "timings_s": {"type": "object", "additionalProperties": NUM}}),
        TableOutput(
            "forecast", title=text("Forecast", "预测"),
            description=text(
                "Per series of the level and day ahead: mean tonnes and the 80 % and 95 % "
                "prediction intervals (lo80, hi80, lo95, hi95).",
                "各序列逐日预测：均值（吨）及 80%、95% 预测区间。"),
            columns={"date": {"type": "string", "format": "date"}, "id": INT, "name": STR_N,
                     "level": _STR, "mean": NUM, "lo80": NUM, "hi80": NUM, "lo95": NUM,
                     "hi95": NUM}),
        TableOutput(
            "review", title=text("Review of past forecasts", "预测复盘"),
            description=text(
                "The chosen model's forecasts from past cut-offs (a cut-off's history only) "
                "against the actual tonnes: per cut-off, day ahead (horizon), date and "
                "series, the model that made it (the seasonal naive where the history up to "
                "the cut-off was too short for the chosen one), the actual, the forecast and "
                "its absolute % error (ape), and the seasonal naive's forecast and error "
                "beside them.",
                "以历史各起点（仅用其之前的数据）重做的所选模型预测与实际对比：起点、提前天数、"
                "日期、序列、实际量、预测量及绝对百分比误差，并列季节朴素法的预测与误差。"),
            columns={"cutoff": {"type": "string", "format": "date"}, "horizon": INT,
                     "date": {"type": "string", "format": "date"}, "id": INT,
                     "name": STR_N, "level": _STR, "model": _STR, "actual": NUM,
                     "forecast": NUM,
                     "ape": NUM_N, "baseline": NUM_N, "baseline_ape": NUM_N}),
        TableOutput(
            "backtest", title=text("Backtest per series", "分序列回测"),
            description=text(
                "Each candidate model's MASE and MAPE per series of the level, over the "
                "backtest's cut-offs (holidays: adjusted for them).",
                "各候选模型在各序列上的回测 MASE 与 MAPE（holidays：是否做节假日调整）。"),
            columns={"model": _STR, "holidays": BOOL, "id": INT, "name": STR_N,
                     "level": _STR, "mase": NUM_N, "mape": NUM_N, "cutoffs": INT}),
        FeatureOutput(
            "buildings", title=text("Refuse buildings ahead", "垃圾楼预测"),
            description=text(
                "Each refuse building with its forecast: total_t over the horizon, "
                "first_day_t, mean_t, peak_t on peak_day against capacity_t "
                "(peak_utilisation, days_over_capacity); method own (its own series) or "
                "share (its share of the last four weeks of its street office's or the "
                "city's series, times that series's forecast).",
                "各垃圾楼的预测：预测期总量、首日量、日均量、峰值及其日期与处理能力之比、超能力"
                "天数；method 为 own（自身序列）或 share（按近四周占比分配街道或全市预测）。"),
            geometry=("Point",),
            properties={"facility_id": INT, "name": STR_N, "street_office_id": {
                "type": "integer", "nullable": True}, "level": _STR, "model": STR_N,
                "method": _STR, "share": NUM, "total_t": NUM, "first_day_t": NUM,
                "mean_t": NUM, "peak_t": NUM, "peak_day": {"type": "string", "format": "date"},
                "capacity_t": NUM_N, "peak_utilisation": NUM_N, "days_over_capacity": INT},
            colour_by="total_t"),
    ),
    run=run,
    example={"horizon_days": 7, "level": "city", "review_cutoffs": 2},
    job_control=(ASYNC,),
    stages=(Stage("load", text("reading the history", "读取历史数据"), 1),
            Stage("backtest", text("backtesting the models", "模型回测"), 4),
            Stage("forecast", text("forecasting", "预测"), 1),
            Stage("review", text("reviewing past forecasts", "预测复盘"), 2),
            Stage("draw", text("drawing the refuse buildings", "绘制垃圾楼"), 1)),
)
