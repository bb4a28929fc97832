"""Refuse generation forecast (生活垃圾产生量趋势预测): the next days' tonnes, and how past
forecasts fared.

Each refuse building's (垃圾楼) daily tonnes — its 21:00 Beijing reading, the day's
total (the readings are cumulative through the day) — make the history; a
street office's (街道) is the sum of its refuse buildings', the city's the sum
of all. Transfer stations and plants receive the buildings' refuse: counting
them would count it twice, so generation is the buildings'.

:class:`RefuseForecast` runs :mod:`scenarios.forecast` at one level:

1. a rolling-origin **backtest** of every candidate model (the weekly seasonal
   naive always among them), MAPE and MASE per model and series, pooled;
2. the model of the lowest pooled MASE **forecasts** each series ``h`` days
   ahead with 80 % and 95 % prediction intervals; by default the backtest also
   decides whether it is adjusted for the holidays (:mod:`spatial.holidays`),
   each model being tried both ways (``holidays="auto"``);
3. the **review** (复盘): that model's forecasts from past cut-offs against
   what happened, beside the seasonal naive's — accuracy over time: the
   backtest's, and before them one every ``h`` days (their horizons tile the
   past: ``review_cutoffs`` of 26 cover a year of 14-day forecasts). No
   forecast is stored yet, so these are re-made from the history up to each
   cut-off;
4. each refuse building as a point with its forecast (at the street-office and
   city levels, its share of its series over the last four weeks of that
   series's forecast: top-down, so the buildings add up to the forecast).

Data are read through the caller's connection (row-level security applies):
``refuse_facility`` (refuse buildings in service) and ``refuse_load_reading``
(:func:`load_readings`, the one function that reads the readings).

**Streams** (kitchen, other, recyclable, hazardous): a reading carries its
stream (``refuse_load_reading.stream``; none: unsorted, counted as ``other``);
:func:`load_readings` takes one optional ``stream``: none sums the readings of
a facility at the same time (every stream), a stream keeps its readings only.
While no reading records a stream (data loaded before the streams), every
reading counts as all streams: a stream asked for gives the totals, and the
answer says so (``stream_recorded`` false).

**The history** ends at ``as_of``: by default the last day of the latest run of
at least :data:`~scenarios.forecast.MIN_TRAIN` consecutive days with readings
(the demo city replays its last day onto today, after a gap: that lone day is
skipped, and said so); at most :data:`HISTORY_DAYS` days back. A refuse
building without a reading on a day of its history is refused (a 400 naming
it and the days) unless ``fill_missing``: then the day is filled with the same
weekday a week earlier (:class:`scenarios.forecast.Panel`).

Examples
--------
Two refuse buildings in one street office, five weeks of a weekly pattern:

>>> import pandas as pd
>>> days = pd.date_range("2026-03-02", periods=35, freq="D")
>>> readings = pd.DataFrame({"facility_id": [1] * 35 + [2] * 35, "ds": list(days) * 2,
...                          "y": [2.0, 2, 2, 2, 2, 3, 3] * 5 + [1.0] * 35})
>>> buildings = pd.DataFrame({"id": [1, 2], "name": ["甲", "乙"], "street_office_id": [9, 9],
...                           "street_office": ["示范街道"] * 2, "capacity_t": [5.0, 2.0],
...                           "lon": [116.47, 116.48], "lat": [39.91, 39.92]})
>>> f = RefuseForecast(readings, buildings, level="street_office", horizon_days=7,
...                    models=("seasonal_naive",), review_cutoffs=0).solve()
>>> f.status, f.model, [r[4] for r in f.forecast_rows()]
('ok', 'seasonal_naive', [3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0])
>>> [round(b["properties"]["total_t"], 3) for b in f.building_features()]
[16.0, 7.0]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from scenarios import forecast as fc
from scenarios.forecast import ForecastInputError, InsufficientHistoryError

#: The refuse streams a reading will carry (分类: 厨余、其他、可回收、有害).
STREAMS = ("kitchen", "other", "recyclable", "hazardous")
#: The levels a forecast is made at.
LEVELS = ("refuse_building", "street_office", "city")
#: Days ahead a request may ask for.
MAX_HORIZON = 28
DEFAULT_HORIZON = 14
#: The review's cut-offs before the backtest's, by default (each the horizon before the next).
REVIEW_CUTOFFS = 26
MAX_REVIEW_CUTOFFS = 52
#: At most this many days of history are read.
HISTORY_DAYS = 730
#: A building's share of its series: over this many last days of the history.
SHARE_DAYS = 28
#: The city level's one series.
CITY_ID = 0
CITY_NAME = "全市"
#: Tonnes in the outputs: 3 decimals (kg); percentages 2; coordinates 7 (about 1 cm).
DIGITS_T = 3
DIGITS_PCT = 2
DIGITS = 7

FORECAST_COLUMNS = ("date", "id", "name", "level", "mean", "lo80", "hi80", "lo95", "hi95")
REVIEW_COLUMNS = ("cutoff", "horizon", "date", "id", "name", "level", "model", "actual",
                  "forecast", "ape", "baseline", "baseline_ape")
BACKTEST_COLUMNS = ("model", "holidays", "id", "name", "level", "mase", "mape", "cutoffs")
#: How the holidays are handled: ``auto`` lets the backtest try each model adjusted for them
#: and not; ``adjust`` and ``ignore`` decide it.
HOLIDAY_MODES = ("auto", "adjust", "ignore")
_WAYS: dict[str, bool | str] = {"auto": "both", "adjust": True, "ignore": False}


def _r(value: float, digits: int) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def check_stream(stream: str | None) -> str | None:
    """``stream`` if it is one of :data:`STREAMS` (or None).

    Raises
    ------
    ForecastInputError
        Naming ``stream``.

    Examples
    --------
    >>> check_stream("kitchen"), check_stream(None)
    ('kitchen', None)
    >>> check_stream("plastic")
    Traceback (most recent call last):
    ...
    scenarios.forecast.ForecastInputError: stream: unknown stream 'plastic'; known: kitchen, \
other, recyclable, hazardous / 未知的垃圾分类
    """
    if stream is not None and stream not in STREAMS:
        raise ForecastInputError("stream", f"unknown stream {stream!r}; known: "
                                 f"{', '.join(STREAMS)} / 未知的垃圾分类")
    return stream


# --- loading ------------------------------------------------------------------------


def streams_recorded(conn: psycopg.Connection[Any]) -> bool:
    """Whether any reading records its stream (``refuse_load_reading.stream`` set)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM onemap.refuse_load_reading WHERE stream IS NOT NULL) "
        "AS has").fetchone()
    return bool(row and row["has"])


def load_readings(conn: psycopg.Connection[Any], *, stream: str | None = None,
                  until: date | None = None, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """Each refuse building's daily tonnes: its 21:00 Beijing readings.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's (row-level security applies).
    stream : str, optional
        One of :data:`STREAMS`: its readings only (an unsorted reading, without a
        stream, counts as ``other``, as the refuse-flow plan routes it); None: every
        stream, the readings of a facility at the same time summed. While no reading
        records its stream (:func:`streams_recorded`), every reading counts as all
        streams.
    until : datetime.date, optional
        The last day read (Beijing); with it, the ``days`` before it at most.
    days : int
        At most this many days up to ``until``.

    Returns
    -------
    pandas.DataFrame
        ``facility_id, ds, y`` (refuse buildings in service), by facility and day.

    Raises
    ------
    ForecastInputError
        An unknown stream.
    """
    check_stream(stream)
    where = [sql.SQL("f.kind = 'refuse_building' AND f.status = 'in_service'"),
             sql.SQL("(r.measured_at AT TIME ZONE 'Asia/Shanghai')::time = time '21:00'")]
    params: dict[str, Any] = {}
    if stream is not None and streams_recorded(conn):
        where.append(sql.SQL("coalesce(r.stream, 'other') = %(stream)s"))
        params["stream"] = stream
    if until is not None:
        where.append(sql.SQL(
            "r.measured_at >= (%(first)s::date + time '21:00') AT TIME ZONE 'Asia/Shanghai' "
            "AND r.measured_at <= (%(until)s::date + time '21:00') AT TIME ZONE "
            "'Asia/Shanghai'"))
        params.update(first=until - timedelta(days=days - 1), until=until)
    query = sql.SQL(
        "SELECT r.facility_id, (r.measured_at AT TIME ZONE 'Asia/Shanghai')::date AS ds, "
        "sum(r.load_t)::float8 AS y FROM onemap.refuse_load_reading r "
        "JOIN onemap.refuse_facility f ON f.id = r.facility_id WHERE {} "
        "GROUP BY 1, 2 ORDER BY 1, 2").format(sql.SQL(" AND ").join(where))
    rows = conn.execute(query, params).fetchall()
    frame = pd.DataFrame([(int(r["facility_id"]), r["ds"], float(r["y"])) for r in rows],
                         columns=["facility_id", "ds", "y"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def load_buildings(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """The refuse buildings in service: ``id, name, street_office_id, street_office,
    capacity_t, lon, lat``."""
    rows = conn.execute(
        "SELECT f.id, f.name, f.street_office_id, s.name AS street_office, "
        "f.capacity_t_per_day::float8 AS capacity_t, ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat "
        "FROM onemap.refuse_facility f "
        "LEFT JOIN onemap.street_office s ON s.id = f.street_office_id "
        "WHERE f.kind = 'refuse_building' AND f.status = 'in_service' ORDER BY f.id").fetchall()
    return pd.DataFrame([dict(r) for r in rows],
                        columns=["id", "name", "street_office_id", "street_office", "capacity_t",
                                 "lon", "lat"])


def history_end(days: Sequence[date], run: int = fc.MIN_TRAIN) -> tuple[date | None, list[date]]:
    """The last day of the latest run of ``run`` consecutive days, and the days after it.

    Falls back to the last day when no run is that long.

    Examples
    --------
    >>> d = [date(2026, 1, 1) + timedelta(days=k) for k in range(30)] + [date(2026, 3, 1)]
    >>> end, skipped = history_end(d)
    >>> end.isoformat(), [s.isoformat() for s in skipped]
    ('2026-01-30', ['2026-03-01'])
    """
    ordered = sorted(set(days))
    if not ordered:
        return None, []
    end_k = len(ordered) - 1
    length = 1
    for k in range(len(ordered) - 1, 0, -1):
        if (ordered[k] - ordered[k - 1]).days == 1:
            length += 1
            if length >= run:
                return ordered[end_k], ordered[end_k + 1:]
        else:
            end_k, length = k - 1, 1
    return ordered[-1], []


# --- the analysis ---------------------------------------------------------------------


class RefuseForecast:
    """The refuse generation forecast at one level, over data loaded once.

    Parameters
    ----------
    readings : pandas.DataFrame
        ``facility_id, ds, y``: each refuse building's daily tonnes (the history).
    buildings : pandas.DataFrame
        ``id, name, street_office_id, street_office, capacity_t, lon, lat``.
    level : str
        One of :data:`LEVELS`.
    horizon_days : int
        1 to :data:`MAX_HORIZON`.
    models : sequence of str
        Candidates among :data:`scenarios.forecast.MODELS` (the baseline is always one).
    stream : str, optional
        The stream the readings are of (reported).
    fill_missing : bool
        Fill missing days instead of refusing them.
    review_cutoffs : int
        Cut-offs of the review before the backtest's, ``horizon_days`` apart (0: the
        backtest's only; at most :data:`MAX_REVIEW_CUTOFFS`).
    notes : list of str, optional
        What loading left out (reported).
    stream_recorded : bool
        Whether the readings record their stream.
    holidays : str
        One of :data:`HOLIDAY_MODES`: adjust the models for the holidays
        (:mod:`scenarios.forecast`), or not, or (``auto``) let the backtest choose.

    Raises
    ------
    ForecastInputError
        Naming the input: a horizon, level, stream or model out of range; negative
        readings; missing readings (unless ``fill_missing``).
    """

    def __init__(self, readings: pd.DataFrame, buildings: pd.DataFrame, *,
                 level: str = "street_office", horizon_days: int = DEFAULT_HORIZON,
                 models: Sequence[str] = fc.MODELS, stream: str | None = None,
                 fill_missing: bool = False, review_cutoffs: int = REVIEW_CUTOFFS,
                 notes: Sequence[str] = (), stream_recorded: bool = False,
                 holidays: str = "auto") -> None:
        if level not in LEVELS:
            raise ForecastInputError("level", f"unknown level {level!r}; known: "
                                     f"{', '.join(LEVELS)}")
        if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer) \
                or not 1 <= horizon_days <= MAX_HORIZON:
            raise ForecastInputError("horizon_days", f"must be a whole number of days from 1 "
                                     f"to {MAX_HORIZON}, got {horizon_days!r} / 预测天数须在 1 至 "
                                     f"{MAX_HORIZON} 之间")
        unknown = [m for m in models if m not in fc.MODELS]
        if unknown:
            raise ForecastInputError("models", f"unknown model {unknown[0]!r}; known: "
                                     f"{', '.join(fc.MODELS)}")
        if holidays not in HOLIDAY_MODES:
            raise ForecastInputError("holidays", f"unknown mode {holidays!r}; known: "
                                     f"{', '.join(HOLIDAY_MODES)}")
        if not 0 <= review_cutoffs <= MAX_REVIEW_CUTOFFS:
            raise ForecastInputError("review_cutoffs", f"must be from 0 to {MAX_REVIEW_CUTOFFS}")
        self.level = level
        self.h = int(horizon_days)
        self.models = tuple(m for m in fc.MODELS if m in models or m == fc.BASELINE)
        self.stream = check_stream(stream)
        self.stream_recorded = stream_recorded
        self.review_cutoffs = int(review_cutoffs)
        self.holidays = holidays
        self.notes = list(notes)
        self.buildings = buildings.set_index("id", drop=False)
        labels: dict[Hashable, str] = {
            int(i): f"{n} ({i})"
            for i, n in zip(buildings["id"], buildings["name"], strict=True)}
        self.status = "ok"
        self.message: str | None = None
        self.building_panel: fc.Panel | None = None
        self.panel: fc.Panel | None = None
        try:
            self.building_panel = fc.Panel.from_frame(
                readings.rename(columns={"facility_id": "unique_id"}),
                fill_missing=fill_missing, name="readings", labels=labels)
        except InsufficientHistoryError as exc:
            self._insufficient(exc)
        if self.building_panel is not None:
            self.panel = self._aggregate(self.building_panel)
        self.backtest: fc.Backtest | None = None
        self.model: str | None = None
        #: Whether the chosen model is adjusted for the holidays.
        self.adjusted = False
        self.forecast: pd.DataFrame | None = None
        self.review: pd.DataFrame | None = None
        self.effects: dict[str, fc.HolidayEffect] = {}
        self.timings: dict[str, float] = {}

    @classmethod
    def load(cls, conn: psycopg.Connection[Any], *, level: str = "street_office",
             horizon_days: int = DEFAULT_HORIZON, models: Sequence[str] = fc.MODELS,
             stream: str | None = None, as_of: date | None = None, fill_missing: bool = False,
             review_cutoffs: int = REVIEW_CUTOFFS, holidays: str = "auto") -> RefuseForecast:
        """The forecast over the history read through the caller's connection.

        Parameters
        ----------
        as_of : datetime.date, optional
            The history's last day (default: the end of the latest run of consecutive
            days with readings, :func:`history_end`); a day after the last reading is
            refused.

        Other parameters are those of :class:`RefuseForecast`.
        """
        started = time.perf_counter()
        check_stream(stream)
        notes = []
        days = [r["d"] for r in conn.execute(
            "SELECT DISTINCT (measured_at AT TIME ZONE 'Asia/Shanghai')::date AS d "
            "FROM onemap.refuse_load_reading WHERE (measured_at AT TIME ZONE "
            "'Asia/Shanghai')::time = time '21:00'").fetchall()]
        if as_of is None:
            as_of, skipped = history_end(days)
            if skipped:
                notes.append(f"readings on {len(skipped)} later day(s) after a gap are left "
                             f"out ({', '.join(d.isoformat() for d in skipped[:3])})")
        elif days and max(days) < as_of:
            raise ForecastInputError("as_of", f"the readings end on {max(days).isoformat()}, "
                                     f"before {as_of.isoformat()} / 计量数据截至 "
                                     f"{max(days).isoformat()}")
        readings = load_readings(conn, stream=stream, until=as_of) if as_of else \
            pd.DataFrame(columns=["facility_id", "ds", "y"])
        out = cls(readings, load_buildings(conn), level=level, horizon_days=horizon_days,
                  models=models, stream=stream, fill_missing=fill_missing,
                  review_cutoffs=review_cutoffs, notes=notes,
                  stream_recorded=streams_recorded(conn), holidays=holidays)
        out.timings["load_s"] = time.perf_counter() - started
        return out

    # ------------------------------------------------------------------ series
    def _insufficient(self, exc: ForecastInputError) -> None:
        self.status = "insufficient_history"
        self.message = exc.reason

    def _aggregate(self, panel: fc.Panel) -> fc.Panel | None:
        """The level's panel from the buildings' (checked and filled) one."""
        if self.level == "refuse_building":
            return panel
        frame = panel.to_frame()
        if self.level == "street_office":
            office = self.buildings["street_office_id"].reindex(frame["unique_id"]).to_numpy()
            lost = sorted({int(u) for u, o in zip(frame["unique_id"], office, strict=True)
                           if pd.isna(o)})
            if lost:
                self.notes.append(f"{len(lost)} refuse building(s) without a street office are "
                                  "left out of the street-office level")
            frame = frame.assign(unique_id=office).dropna(subset=["unique_id"])
            frame["unique_id"] = frame["unique_id"].astype(np.int64)
        else:
            frame = frame.assign(unique_id=CITY_ID)
        summed = frame.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
        try:
            return fc.Panel.from_frame(summed, name="readings")
        except InsufficientHistoryError as exc:
            self._insufficient(exc)
            return None

    def name_of(self, uid: Hashable) -> str | None:
        """The name of a series of the level."""
        if self.level == "city":
            return CITY_NAME
        if self.level == "street_office":
            rows = self.buildings[self.buildings["street_office_id"] == uid]
            return None if rows.empty else str(rows["street_office"].iloc[0])
        return str(self.buildings.at[uid, "name"]) if uid in self.buildings.index else None

    # ------------------------------------------------------------------ stages
    def run_backtest(self, on_step: Callable[[float], None] | None = None) -> RefuseForecast:
        """Backtest the candidates and choose the model (the first stage)."""
        if self.panel is None:
            return self
        started = time.perf_counter()
        try:
            self.backtest = fc.backtest(self.panel, self.h, models=self.models,
                                        holidays=_WAYS[self.holidays], on_step=on_step)
        except InsufficientHistoryError as exc:
            self._insufficient(exc)
            return self
        self.model, self.adjusted = fc.select_model(self.backtest)
        self.timings["backtest_s"] = time.perf_counter() - started
        return self

    def run_forecast(self, on_step: Callable[[float], None] | None = None) -> RefuseForecast:
        """The chosen model's forecast of every series (after :meth:`run_backtest`)."""
        if self.panel is None or self.model is None:
            return self
        started = time.perf_counter()
        self.effects = fc.holiday_effects(self.panel.series)
        self.forecast = fc.forecast(self.panel, self.h, self.model, holidays=self.adjusted,
                                    on_step=on_step)
        self.timings["forecast_s"] = time.perf_counter() - started
        return self

    def run_review(self, on_step: Callable[[float], None] | None = None) -> RefuseForecast:
        """The chosen model's and the baseline's forecasts from past cut-offs (复盘)."""
        if self.panel is None or self.model is None or self.backtest is None:
            return self
        started = time.perf_counter()
        first = min(self.backtest.cutoffs)
        extra = [first - timedelta(days=self.h * k)
                 for k in range(1, self.review_cutoffs + 1)]
        extra = [c for c in extra if (c - self.panel.start).days + 1 >= fc.MIN_DAYS]
        f = self.backtest.forecasts
        parts = [f[(f["model"] == fc.BASELINE)
                   | ((f["model"] == self.model) & (f["holidays"] == self.adjusted))]]
        if extra:
            more = fc.backtest(self.panel, self.h, models=(self.model,), at=extra,
                               holidays=self.adjusted, on_step=on_step)
            parts.insert(0, more.forecasts)
        self.review = pd.concat(parts, ignore_index=True)
        self.timings["review_s"] = time.perf_counter() - started
        return self

    def solve(self) -> RefuseForecast:
        """Backtest, forecast and review; returns ``self``."""
        return self.run_backtest().run_forecast().run_review()

    # ------------------------------------------------------------------ outputs
    def forecast_rows(self) -> list[tuple[Any, ...]]:
        """:data:`FORECAST_COLUMNS`: each series's days ahead."""
        if self.forecast is None:
            return []
        names = {u: self.name_of(u) for u in self.forecast["unique_id"].unique()}
        return [(r.ds.date().isoformat(), int(r.unique_id), names[r.unique_id], self.level,
                 *(round(float(getattr(r, c)), DIGITS_T)
                   for c in ("mean", "lo80", "hi80", "lo95", "hi95")))
                for r in self.forecast.itertuples()]

    def review_rows(self) -> list[tuple[Any, ...]]:
        """:data:`REVIEW_COLUMNS`: the chosen model's forecasts from past cut-offs against
        the actual tonnes, beside the seasonal naive's (``ape``: absolute % error,
        ``None`` where the actual is 0; ``model``: the one that made the forecast, the
        seasonal naive where the history up to the cut-off was too short to fit the
        chosen one)."""
        if self.review is None or self.review.empty or self.model is None:
            return []
        r = self.review
        own = r[r["model"] == self.model].set_index(["unique_id", "cutoff", "horizon"])
        base = r[r["model"] == fc.BASELINE].set_index(["unique_id", "cutoff", "horizon"])
        names = {u: self.name_of(u) for u in r["unique_id"].unique()}
        out = []
        for key, row in own.sort_index(level=["cutoff", "unique_id", "horizon"]).iterrows():
            uid, cut, k = key
            actual, yhat = float(row["y"]), float(row["yhat"])
            b = float(base.at[key, "yhat"]) if key in base.index else math.nan
            out.append((cut.isoformat(), int(k), row["ds"].date().isoformat(), int(uid),
                        names[uid], self.level, row["used"], round(actual, DIGITS_T),
                        round(yhat, DIGITS_T),
                        _r(100 * abs(yhat - actual) / actual, DIGITS_PCT) if actual > 0 else None,
                        _r(b, DIGITS_T),
                        _r(100 * abs(b - actual) / actual, DIGITS_PCT) if actual > 0 else None))
        return out

    def backtest_rows(self) -> list[tuple[Any, ...]]:
        """:data:`BACKTEST_COLUMNS`: each model's MASE and MAPE per series."""
        if self.backtest is None:
            return []
        counts = self.backtest.errors.groupby(["model", "holidays", "unique_id"],
                                              sort=False).size()
        return [(r.model, bool(r.holidays), int(r.unique_id), self.name_of(r.unique_id),
                 self.level, _r(r.mase, 4), _r(r.mape, DIGITS_PCT),
                 int(counts[(r.model, r.holidays, r.unique_id)]))
                for r in self.backtest.scores().itertuples()]

    def building_daily(self) -> pd.DataFrame:
        """Each refuse building's forecast mean per day (columns: days ahead), with the
        building's ``share`` of its series (1 at the building level)."""
        if self.forecast is None or self.building_panel is None:
            return pd.DataFrame()
        means = self.forecast.pivot(index="unique_id", columns="ds", values="mean")
        if self.level == "refuse_building":
            out = means.copy()
            out["share"] = 1.0
            return out
        recent = {s.id: float(s.y[-SHARE_DAYS:].sum()) for s in self.building_panel.series}
        rows = {}
        for bid, own in recent.items():
            group = CITY_ID if self.level == "city" else \
                self.buildings.at[bid, "street_office_id"]
            if pd.isna(group) or group not in means.index:
                continue
            members = (list(recent) if self.level == "city" else
                       [b for b in recent
                        if self.buildings.at[b, "street_office_id"] == group])
            total = sum(recent[b] for b in members)
            share = own / total if total > 0 else 1.0 / len(members)
            rows[bid] = [*(share * means.loc[group]).tolist(), share]
        return pd.DataFrame.from_dict(rows, orient="index",
                                      columns=[*means.columns, "share"])

    def building_features(self) -> list[dict[str, Any]]:
        """Each refuse building as a GeoJSON point with its forecast: ``total_t`` over the
        horizon, ``first_day_t``, ``peak_t`` on ``peak_day`` against ``capacity_t``
        (``peak_utilisation``, ``days_over_capacity``), its ``share`` of the level's
        series and how it was made (``own``: its own series; ``share``: top-down)."""
        daily = self.building_daily()
        out = []
        for bid, row in daily.iterrows():
            b = self.buildings.loc[bid]
            values = row.drop("share").to_numpy(float)
            days = [pd.Timestamp(c).date() for c in row.drop("share").index]
            cap = float(b["capacity_t"]) if pd.notna(b["capacity_t"]) else None
            peak = int(np.argmax(values))
            out.append({
                "type": "Feature", "id": int(bid),
                "geometry": {"type": "Point", "coordinates": [round(float(b["lon"]), DIGITS),
                                                              round(float(b["lat"]), DIGITS)]},
                "properties": {
                    "facility_id": int(bid), "name": b["name"],
                    "street_office_id": (None if pd.isna(b["street_office_id"])
                                         else int(b["street_office_id"])),
                    "level": self.level, "model": self.model,
                    "method": "own" if self.level == "refuse_building" else "share",
                    "share": round(float(row["share"]), 4),
                    "total_t": round(float(values.sum()), DIGITS_T),
                    "first_day_t": round(float(values[0]), DIGITS_T),
                    "mean_t": round(float(values.mean()), DIGITS_T),
                    "peak_t": round(float(values[peak]), DIGITS_T),
                    "peak_day": days[peak].isoformat(), "capacity_t": cap,
                    "peak_utilisation": (round(float(values[peak]) / cap, 4) if cap else None),
                    "days_over_capacity": int((values > cap).sum()) if cap else 0}})
        return out

    def day_demand(self, day: date) -> dict[int, float]:
        """Each refuse building's forecast tonnes on ``day`` (one of the horizon's): the
        demand of a day's refuse-flow plan ("next Monday's plan")."""
        daily = self.building_daily()
        key = pd.Timestamp(day)
        if daily.empty or key not in daily.columns:
            raise ForecastInputError("day", f"{day.isoformat()} is not among the forecast's "
                                     "days / 不在预测期内")
        return {int(b): float(v) for b, v in daily[key].items()}

    def summary(self) -> dict[str, Any]:
        """The forecast in numbers: the chosen model, the backtest per model, the gain
        over the seasonal naive, the holidays, what was filled or left out."""
        panel = self.panel
        pooled = self.backtest.pooled() if self.backtest is not None else pd.DataFrame()
        improvement = (self.backtest.improvement(fc.Candidate(self.model, self.adjusted))
                       if self.backtest is not None and self.model else math.nan)
        ahead = []
        if panel is not None:
            for k in range(1, self.h + 1):
                d = panel.end + timedelta(days=k)
                kind = fc.day_type(d)
                if kind is not None:
                    e = self.effects.get(kind)
                    ahead.append({"date": d.isoformat(), "holiday": kind,
                                  "factor": round(e.used, 4) if e and self.adjusted else 1.0,
                                  "seen": bool(e and e.days > 0)})
        used = (self.forecast.groupby("unique_id")["model"].first()
                if self.forecast is not None else pd.Series(dtype=str))
        bp = self.building_panel
        return {
            "status": self.status, "message": self.message, "level": self.level,
            "stream": self.stream, "stream_recorded": self.stream_recorded,
            "horizon_days": self.h,
            "as_of": None if panel is None else panel.end.isoformat(),
            "first_day": None if panel is None else (panel.end + timedelta(days=1)).isoformat(),
            "last_day": None if panel is None else (panel.end + timedelta(days=self.h)
                                                    ).isoformat(),
            "history_from": None if panel is None else panel.start.isoformat(),
            "history_days": 0 if panel is None else (panel.end - panel.start).days + 1,
            "series": 0 if panel is None else len(panel.series),
            "refuse_buildings": 0 if bp is None else len(bp.series),
            "model": self.model, "baseline": fc.BASELINE, "candidates": list(self.models),
            "improvement_pct": _r(improvement, DIGITS_PCT),
            "backtest": [{"model": r.model, "holidays": bool(r.holidays),
                          "mase": _r(r.mase, 4), "mape": _r(r.mape, DIGITS_PCT),
                          "series": int(r.series)} for r in pooled.itertuples()],
            "cutoffs": ([] if self.backtest is None else
                        [c.isoformat() for c in self.backtest.cutoffs]),
            "forecast_t": (None if self.forecast is None else
                           round(float(self.forecast["mean"].sum()), DIGITS_T)),
            "fallback_series": int((used != self.model).sum()) if self.model else 0,
            "holiday_mode": self.holidays, "holidays_adjusted": self.adjusted,
            "holidays": [{"holiday": e.day_type, "factor": round(e.factor, 4),
                          "days": e.days, "significant": e.applied,
                          "applied": e.applied and self.adjusted}
                         for e in self.effects.values()],
            "holidays_ahead": ahead,
            "filled_days": 0 if bp is None else sum(len(v) for v in bp.filled.values()),
            "dropped_series": 0 if bp is None else len(bp.dropped),
            "notes": self.notes,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def load(conn: psycopg.Connection[Any], **kwargs: Any) -> RefuseForecast:
    """:meth:`RefuseForecast.load` (the keyword arguments are its)."""
    return RefuseForecast.load(conn, **kwargs)


__all__ = ["BACKTEST_COLUMNS", "CITY_ID", "DEFAULT_HORIZON", "FORECAST_COLUMNS",
           "HOLIDAY_MODES", "LEVELS",
           "MAX_HORIZON", "MAX_REVIEW_CUTOFFS", "REVIEW_COLUMNS", "REVIEW_CUTOFFS", "STREAMS",
           "RefuseForecast", "check_stream", "history_end", "load", "load_buildings",
           "load_readings", "streams_recorded"]
