"""Daily forecasts of a panel of series (趋势预测), the model chosen by a rolling-origin backtest.

A :class:`Panel` holds daily series (``unique_id``, ``ds``, ``y``: the layout
of Nixtla's statsforecast and most forecasting libraries), checked once:
negative values are refused naming them; a missing day (no row, or ``y``
missing) is refused naming the series and the days, unless the caller asks for
it to be filled — then with the same weekday's value one week earlier (one
week later where there is none), and the filled days are reported.

Models (:data:`MODELS`), all but the baseline from statsmodels:

* ``seasonal_naive`` — the baseline: each day as the same weekday last week;
  intervals from the weekly differences (Hyndman & Athanasopoulos, *FPP3* §5.5);
* ``ets`` — exponential smoothing, additive error and weekly season, no trend
  (ETS(A,N,A), :class:`statsmodels.tsa.exponential_smoothing.ets.ETSModel`);
* ``ets_damped`` — the same with a damped additive trend (ETS(A,Ad,A));
* ``sarima`` — SARIMA(1,0,1)(0,1,1)\\ :sub:`7`
  (:class:`statsmodels.tsa.statespace.sarimax.SARIMAX`).

**Holidays** (:mod:`spatial.holidays`) are a multiplicative adjustment around
the models (the baseline stays the plain seasonal naive): for each kind of
special day — each public holiday by name, and the weekend days worked in
their place (调休) — the history's days of that kind are compared with the same
weekday one to three weeks either side (ordinary days only), over all the
panel's series together (:func:`holiday_effects`); the mean ratio is the
holiday's effect, applied only where its 95 % confidence interval leaves out
1 (no effect): a three-day holiday must show clearly to count. The model is
fitted on the history with those days divided by their effect, and its
forecast (mean and intervals) multiplied by it on the horizon's days of that
kind. A holiday the history has not seen yet gets no effect (the first Spring
Festival of a one-year history cannot be foreseen), and is reported so.

:func:`backtest` forecasts from several cut-offs (rolling origin: the last
``h`` days, then a week earlier each time) and scores each model per series:
**MAPE** (mean absolute percentage error over the days whose actual is not
zero) and **MASE** (mean absolute error over the in-sample mean absolute
error of the weekly seasonal naive up to the cut-off, Hyndman & Koehler 2006),
each averaged over the cut-offs, then over the series (pooled).
:func:`select_model` takes the lowest pooled MASE, the seasonal naive always
among the candidates. Whether to adjust for the holidays can be one of the
backtest's choices too (``holidays="both"``): fitted on a history whose
holidays are taken out, a model smooths more, and may then lag a trend (the
demo city's autumn, ``bench/README.md``), so each model is tried both ways.
:func:`forecast` gives the chosen model's daily means with 80 % and 95 %
prediction intervals (bounded below by zero).

Examples
--------
Three weeks of a weekly pattern, forecast one week by the seasonal naive:

>>> import pandas as pd
>>> days = pd.date_range("2025-03-03", periods=21, freq="D")
>>> frame = pd.DataFrame({"unique_id": "a", "ds": days, "y": [1, 1, 1, 1, 1, 2, 2] * 3})
>>> panel = Panel.from_frame(frame)
>>> out = forecast(panel, 7, "seasonal_naive")
>>> out["mean"].tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
>>> bool((out["lo95"] == out["mean"]).all())   # a perfect weekly history: no spread
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from spatial.errors import NamedInputError
from spatial.holidays import WORKED_WEEKEND_DAYS, holiday

#: The weekly season (days).
SEASON = 7
#: The baseline every model is measured against.
BASELINE = "seasonal_naive"
#: The candidate models, simplest first (a tie goes to the simpler).
MODELS = ("seasonal_naive", "ets", "ets_damped", "sarima")
#: Prediction intervals (%).
INTERVALS = (80, 95)
#: A series needs at least this many days to be forecast at all (one week to repeat, one
#: to measure the weekly differences by).
MIN_DAYS = 2 * SEASON
#: A model is fitted on at least this many days; on fewer the seasonal naive stands in.
MIN_TRAIN = 4 * SEASON
#: Cut-offs of a backtest, and the days between them.
WINDOWS = 4
STEP = 7
#: The longest horizon this module forecasts (days).
MAX_HORIZON = 366
#: A holiday effect applies only where its confidence interval at this level leaves out 1.
HOLIDAY_CONFIDENCE = 0.95
#: The kind of special day of a weekend day worked in place of a holiday (调休上班).
WORKED = "worked_weekend"
#: Same-weekday neighbours (weeks) a special day is compared with.
_NEIGHBOURS = (-3, -2, -1, 1, 2, 3)


class ForecastInputError(NamedInputError):
    """A panel or a request the forecast cannot take, naming the input (a 400)."""


class InsufficientHistoryError(ForecastInputError):
    """The history is too short for what is asked (no series, or no backtest window)."""


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


def _listed(items: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


# --- the panel ------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One daily series: its id, its first day and its values (one per day, none missing)."""

    id: Hashable
    start: date
    y: np.ndarray

    @property
    def end(self) -> date:
        """Its last day."""
        return self.start + timedelta(days=len(self.y) - 1)

    def dates(self) -> pd.DatetimeIndex:
        """Its days."""
        return pd.date_range(self.start, periods=len(self.y), freq="D")

    def until(self, cutoff: date) -> Series:
        """The series up to ``cutoff`` (included)."""
        return Series(self.id, self.start, self.y[:max(0, (cutoff - self.start).days + 1)])


@dataclass(frozen=True)
class Panel:
    """Daily series ending on the same day, checked once.

    Attributes
    ----------
    series : tuple of Series
        In the order of their ids' first appearance.
    end : datetime.date
        The last day of every series.
    filled : dict
        Series id → the days filled in (``fill_missing``).
    dropped : dict
        Series id → why it was left out (fewer than :data:`MIN_DAYS` days).
    """

    series: tuple[Series, ...]
    end: date
    filled: dict[Hashable, list[date]] = field(default_factory=dict)
    dropped: dict[Hashable, str] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, fill_missing: bool = False,
                   name: str = "history",
                   labels: Mapping[Hashable, str] | None = None) -> Panel:
        """A panel from a frame of ``unique_id``, ``ds`` (days) and ``y``.

        Every series runs from its first day to the panel's last day (the
        latest ``ds`` of all).

        Parameters
        ----------
        frame : pandas.DataFrame
        fill_missing : bool
            Fill a missing day (no row, or ``y`` missing) with the same
            weekday's value a week earlier (a week later where there is none),
            instead of refusing the panel.
        name : str
            The input the errors name.
        labels : mapping, optional
            How the errors name a series (default: its id).

        Raises
        ------
        ForecastInputError
            Columns missing, days that are not whole days, a series twice on
            a day, a value that is not a number or is infinite, negative
            values (naming the series and days), missing days unless filled.
        InsufficientHistoryError
            No series of at least :data:`MIN_DAYS` days.

        Examples
        --------
        >>> f = pd.DataFrame({"unique_id": [7, 7], "ds": ["2026-03-01", "2026-03-02"],
        ...                   "y": [1.0, -2.0]})
        >>> Panel.from_frame(f)
        Traceback (most recent call last):
        ...
        scenarios.forecast.ForecastInputError: history: negative values: 7 on 2026-03-02 (-2)
        """
        def label(uid: Any) -> str:
            return str(labels.get(uid, uid)) if labels else str(uid)

        missing_cols = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
        if missing_cols:
            raise ForecastInputError(name, f"columns {missing_cols} are missing")
        if frame.empty:
            raise InsufficientHistoryError(name, "there are no values / 没有历史数据")
        try:
            ds = pd.to_datetime(frame["ds"])
        except (TypeError, ValueError) as exc:
            raise ForecastInputError(name, f"ds: not dates ({exc})") from None
        if ds.isna().any() or (ds != ds.dt.normalize()).any():
            raise ForecastInputError(name, "ds: every value must be a whole day")
        y = pd.to_numeric(frame["y"], errors="coerce").astype(float)
        bad = frame["y"].notna() & y.isna()
        if bad.any() or np.isinf(y).any():
            i = int(np.flatnonzero(bad.to_numpy() | np.isinf(y.to_numpy()))[0])
            raise ForecastInputError(name, f"y: {frame['y'].iloc[i]!r} of "
                                     f"{label(frame['unique_id'].iloc[i])} is not a finite "
                                     "number")
        data = pd.DataFrame({"unique_id": frame["unique_id"].to_numpy(), "ds": ds.to_numpy(),
                             "y": y.to_numpy()})
        twice = data.duplicated(["unique_id", "ds"], keep=False)
        if twice.any():
            r = data[twice].iloc[0]
            raise ForecastInputError(name, f"{label(r['unique_id'])} has more than one value on "
                                     f"{_day(r['ds']).isoformat()}")
        negative = data[data["y"] < 0]
        if not negative.empty:
            shown = [f"{label(r.unique_id)} on {_day(r.ds).isoformat()} ({r.y:g})"
                     for r in negative.itertuples()]
            raise ForecastInputError(name, f"negative values: {_listed(shown)}")
        end = _day(data["ds"].max())
        series, filled, dropped, gaps = [], {}, {}, []
        for uid, rows in data.groupby("unique_id", sort=False):
            rows = rows.sort_values("ds")
            start = _day(rows["ds"].iloc[0])
            n = (end - start).days + 1
            values = np.full(n, np.nan)
            values[(rows["ds"] - pd.Timestamp(start)).dt.days.to_numpy()] = rows["y"].to_numpy()
            holes = np.flatnonzero(np.isnan(values))
            if holes.size and not fill_missing:
                gaps.append((uid, [start + timedelta(days=int(k)) for k in holes]))
                continue
            if holes.size:
                values = _fill_weekly(values)
                filled[uid] = [start + timedelta(days=int(k)) for k in holes]
            if n < MIN_DAYS:
                dropped[uid] = f"{n} days of history, fewer than {MIN_DAYS}"
                continue
            series.append(Series(uid, start, values))
        if gaps:
            shown = [f"{label(uid)}: {len(days)} day{'s' if len(days) > 1 else ''} "
                     f"({_listed([d.isoformat() for d in days], 2)})" for uid, days in gaps]
            raise ForecastInputError(name, f"missing values: {_listed(shown)}; fill them "
                                     "(fill_missing) or complete the readings / 数据缺失")
        if not series:
            raise InsufficientHistoryError(name, f"no series has {MIN_DAYS} days of history / "
                                      "历史数据不足")
        return cls(tuple(series), end, filled, dropped)

    @property
    def ids(self) -> list[Hashable]:
        """The series' ids."""
        return [s.id for s in self.series]

    @property
    def start(self) -> date:
        """The first day of the longest series."""
        return min(s.start for s in self.series)

    def to_frame(self) -> pd.DataFrame:
        """The panel as ``unique_id``, ``ds``, ``y``."""
        return pd.concat([pd.DataFrame({"unique_id": [s.id] * len(s.y), "ds": s.dates(),
                                        "y": s.y}) for s in self.series], ignore_index=True)


def _fill_weekly(values: np.ndarray) -> np.ndarray:
    """Missing days filled from the same weekday a week before, else a week after."""
    out = values.copy()
    n = len(out)
    for k in range(n):
        if np.isnan(out[k]) and k >= SEASON and not np.isnan(out[k - SEASON]):
            out[k] = out[k - SEASON]
    for k in range(n - 1, -1, -1):
        if np.isnan(out[k]) and k + SEASON < n and not np.isnan(out[k + SEASON]):
            out[k] = out[k + SEASON]
    if np.isnan(out).any():  # a series shorter than two weeks with holes: interpolate
        known = np.flatnonzero(~np.isnan(out))
        out = np.interp(np.arange(n), known, out[known])
    return out


# --- holidays -------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def day_type(day: date) -> str | None:
    """The kind of special day ``day`` is: a holiday's name, :data:`WORKED`, or None.

    Examples
    --------
    >>> day_type(date(2026, 10, 2)), day_type(date(2026, 2, 28)), day_type(date(2026, 3, 3))
    ('national_day', 'worked_weekend', None)
    """
    name = holiday(day)
    if name is not None:
        return name
    return WORKED if day in WORKED_WEEKEND_DAYS else None


@dataclass(frozen=True)
class HolidayEffect:
    """One kind of special day's effect in a history.

    Attributes
    ----------
    day_type : str
        A holiday's name (:data:`spatial.holidays.NAMES`) or :data:`WORKED`.
    factor : float
        The mean over its days of their ratio to the same weekday around them
        (1: none measured).
    se : float
        The factor's standard error (``nan``: fewer than two days measured).
    days : int
        Its days measured in the history.
    applied : bool
        Whether the forecast applies it: its :data:`HOLIDAY_CONFIDENCE` confidence
        interval (Student's t over the days) leaves out 1.
    """

    day_type: str
    factor: float
    se: float
    days: int
    applied: bool

    @property
    def used(self) -> float:
        """The factor the forecast applies (1 when not applied)."""
        return self.factor if self.applied else 1.0


def holiday_effects(history: Sequence[Series]) -> dict[str, HolidayEffect]:
    """Each kind of special day's effect in the history of one or more series.

    Each special day of each series is divided by the mean of the same weekday
    one to three weeks either side that are ordinary days (at least two of
    them); a day's ratio is the mean over the series, so that one building's
    noise does not pass for a holiday; the effect is the mean over the days.

    Examples
    --------
    A Spring Festival at 70 % on a flat history of 10:

    >>> days = pd.date_range("2026-01-01", "2026-03-31", freq="D")
    >>> y = np.where([day_type(d.date()) == "spring_festival" for d in days], 7.0, 10.0)
    >>> e = holiday_effects([Series("a", date(2026, 1, 1), y)])["spring_festival"]
    >>> round(e.factor, 6), e.days, e.applied
    (0.7, 9, True)
    """
    by_day: dict[date, list[float]] = {}
    kinds: dict[date, str] = {}
    for s in history:
        n = len(s.y)
        days = [s.start + timedelta(days=k) for k in range(n)]
        types = [day_type(d) for d in days]
        special = np.array([t is not None for t in types])
        for k in np.flatnonzero(special):
            near = [k + SEASON * w for w in _NEIGHBOURS
                    if 0 <= k + SEASON * w < n and not special[k + SEASON * w]]
            base = float(np.mean(s.y[near])) if len(near) >= 2 else 0.0
            kinds[days[k]] = str(types[k])
            if base > 0:
                by_day.setdefault(days[k], []).append(float(s.y[k]) / base)
    ratios: dict[str, list[float]] = {kind: [] for kind in kinds.values()}
    for day, r in by_day.items():
        ratios[kinds[day]].append(float(np.mean(r)))
    out: dict[str, HolidayEffect] = {}
    for kind, r in ratios.items():
        if not r:
            out[kind] = HolidayEffect(kind, 1.0, math.nan, 0, False)
            continue
        factor = float(np.mean(r))
        se = float(np.std(r, ddof=1) / math.sqrt(len(r))) if len(r) > 1 else math.nan
        half = (float(student_t.ppf(0.5 + HOLIDAY_CONFIDENCE / 2, len(r) - 1)) * se
                if len(r) > 1 else math.inf)
        out[kind] = HolidayEffect(kind, factor, se, len(r),
                                  bool(factor > 0 and abs(factor - 1.0) > max(half, 1e-9)))
    return out


def _factors(start: date, n: int, effects: Mapping[str, HolidayEffect]) -> np.ndarray:
    """The factor applied on each of ``n`` days from ``start``."""
    out = np.ones(n)
    for k in range(n):
        kind = day_type(start + timedelta(days=k))
        if kind is not None and kind in effects:
            out[k] = effects[kind].used
    return out


# --- the models -----------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """A forecast of one series: daily means and prediction intervals.

    Attributes
    ----------
    mean : numpy.ndarray
    lower, upper : dict of int to numpy.ndarray
        By interval (%).
    model : str
        The model that made it (the seasonal naive where the asked one could not
        be fitted).
    """

    mean: np.ndarray
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]
    model: str


def _z(level: int) -> float:
    return float(norm.ppf(0.5 + level / 200.0))


def seasonal_naive(y: np.ndarray, h: int, intervals: Iterable[int] = INTERVALS) -> Prediction:
    """The weekly seasonal naive: day ``k`` ahead is the same weekday of the last week.

    The interval of a day ``k`` ahead (1-based) is ``± z σ √(⌊(k − 1)/7⌋ + 1)``,
    σ the root mean square of the history's weekly differences.

    Examples
    --------
    >>> p = seasonal_naive(np.array([1.0, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8]), 8, (80,))
    >>> p.mean.tolist()
    [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 2.0]
    >>> [round(float(v), 4) for v in (p.upper[80] - p.mean)[[0, 7]]]   # σ = 1: z₀.₉, z₀.₉·√2
    [1.2816, 1.8124]
    """
    y = np.asarray(y, dtype=float)
    if len(y) < SEASON:
        raise ValueError(f"seasonal naive needs {SEASON} days, got {len(y)}")
    last = y[-SEASON:]
    mean = np.array([last[k % SEASON] for k in range(h)])
    diff = y[SEASON:] - y[:-SEASON]
    sigma = float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0
    sd = sigma * np.sqrt(np.arange(h) // SEASON + 1)
    lower = {lv: mean - _z(lv) * sd for lv in intervals}
    upper = {lv: mean + _z(lv) * sd for lv in intervals}
    return Prediction(mean, lower, upper, BASELINE)


def _statsmodels(model: str, y: np.ndarray, start: date, h: int,
                 intervals: Iterable[int]) -> Prediction:
    """A statsmodels model fitted on ``y`` and forecast ``h`` days."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    series = pd.Series(y, index=pd.date_range(start, periods=len(y), freq="D"))
    lower, upper = {}, {}
    with warnings.catch_warnings():
        # convergence notes of the optimisers: the backtest judges the fits
        warnings.simplefilter("ignore")
        if model == "sarima":
            res = SARIMAX(series, order=(1, 0, 1), seasonal_order=(0, 1, 1, SEASON),
                          concentrate_scale=True).fit(disp=False)
            fc = res.get_forecast(h)
            mean = np.asarray(fc.predicted_mean, dtype=float)
            for lv in intervals:
                ci = np.asarray(fc.conf_int(alpha=1 - lv / 100), dtype=float)
                lower[lv], upper[lv] = ci[:, 0], ci[:, 1]
        else:
            res = ETSModel(series, error="add", trend="add" if model == "ets_damped" else None,
                           damped_trend=model == "ets_damped", seasonal="add",
                           seasonal_periods=SEASON).fit(disp=False)
            pred = res.get_prediction(start=len(y), end=len(y) + h - 1)
            mean = np.asarray(pred.predicted_mean, dtype=float)
            for lv in intervals:
                frame = pred.summary_frame(alpha=1 - lv / 100)
                lower[lv] = frame["pi_lower"].to_numpy(float)
                upper[lv] = frame["pi_upper"].to_numpy(float)
    return Prediction(mean, lower, upper, model)


def predict(model: str, start: date, y: np.ndarray, h: int, *,
            intervals: Iterable[int] = INTERVALS,
            effects: Mapping[str, HolidayEffect] | None = None) -> Prediction:
    """One model's forecast of one series (days from ``start``) for ``h`` days.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    start : datetime.date
        The day of ``y[0]``.
    y : numpy.ndarray
        The history, one value a day (at least :data:`SEASON` days).
    h : int
        Days ahead.
    intervals : iterable of int
        Prediction intervals (%).
    effects : mapping of str to HolidayEffect, optional
        Holiday effects the history and the forecast are adjusted for (not the
        baseline's); default: none.

    Returns
    -------
    Prediction
        Bounded below by zero. A model that cannot be fitted (a history shorter
        than :data:`MIN_TRAIN`, a constant one, a failing fit) leaves the
        seasonal naive's forecast, and says so in ``model``.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {MODELS}")
    y = np.asarray(y, dtype=float)
    intervals = tuple(intervals)
    pred: Prediction | None = None
    if model != BASELINE and len(y) >= MIN_TRAIN and np.ptp(y[-MIN_TRAIN:]) > 0:
        past = _factors(start, len(y), effects or {})
        ahead = _factors(start + timedelta(days=len(y)), h, effects or {})
        try:
            fitted = _statsmodels(model, y / past, start, h, intervals)
        except (ValueError, np.linalg.LinAlgError, IndexError):
            fitted = None
        if fitted is not None and np.all(np.isfinite(fitted.mean)) and all(
                np.all(np.isfinite(v)) for v in (*fitted.lower.values(),
                                                 *fitted.upper.values())):
            pred = Prediction(fitted.mean * ahead,
                              {lv: v * ahead for lv, v in fitted.lower.items()},
                              {lv: v * ahead for lv, v in fitted.upper.items()}, model)
    if pred is None:
        pred = seasonal_naive(y, h, intervals)
    return Prediction(np.maximum(pred.mean, 0.0),
                      {lv: np.maximum(v, 0.0) for lv, v in pred.lower.items()},
                      {lv: np.maximum(v, 0.0) for lv, v in pred.upper.items()}, pred.model)


def _check(h: int, models: Sequence[str]) -> None:
    if isinstance(h, bool) or not isinstance(h, int | np.integer) or not 1 <= h <= MAX_HORIZON:
        raise ForecastInputError("horizon_days", f"must be a whole number of days from 1 to "
                                 f"{MAX_HORIZON}, got {h!r} / 预测天数须在 1 至 {MAX_HORIZON} 之间")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ForecastInputError("models", f"unknown model {unknown[0]!r}; known: "
                                 f"{', '.join(MODELS)}")


# --- backtest, selection, forecast -----------------------------------------------------


def cutoffs(end: date, h: int, windows: int = WINDOWS, step: int = STEP) -> list[date]:
    """The rolling origins of a backtest: ``end − h``, then ``step`` days earlier each.

    Examples
    --------
    >>> [d.isoformat() for d in cutoffs(date(2026, 10, 29), 14, 3)]
    ['2026-10-01', '2026-10-08', '2026-10-15']
    """
    return [end - timedelta(days=h + step * k) for k in range(windows - 1, -1, -1)]


class Candidate(NamedTuple):
    """A model, and whether it is adjusted for the holidays (never the baseline)."""

    model: str
    holidays: bool

    @property
    def label(self) -> str:
        """``ets``, or ``ets (no holiday adjustment)``."""
        return self.model if self.holidays or self.model == BASELINE else \
            f"{self.model} (no holiday adjustment)"


#: The baseline as a candidate.
BASELINE_CANDIDATE = Candidate(BASELINE, False)
_KEY = ["model", "holidays"]


@dataclass(frozen=True)
class Backtest:
    """Forecasts from past cut-offs against what happened, and their errors.

    Attributes
    ----------
    h : int
        Days ahead from each cut-off.
    cutoffs : list of datetime.date
        Those scored (a series's training up to each has at least :data:`MIN_DAYS` days).
    forecasts : pandas.DataFrame
        ``model, holidays, unique_id, cutoff, ds, horizon (1…h), y, yhat, used``
        (``holidays``: adjusted for them; ``used``: the model that made it, the baseline
        where the asked one could not be fitted).
    errors : pandas.DataFrame
        Per candidate (``model, holidays``), series and cut-off: ``mae, scale, mase,
        mape`` (``scale``: the in-sample mean absolute weekly difference up to the
        cut-off; ``mase`` is ``nan`` where it is 0, ``mape`` where every actual is 0).
    """

    h: int
    cutoffs: list[date]
    forecasts: pd.DataFrame
    errors: pd.DataFrame

    def scores(self) -> pd.DataFrame:
        """Per candidate and series: ``mase`` and ``mape``, each the mean over the cut-offs."""
        return (self.errors.groupby([*_KEY, "unique_id"], sort=False)[["mase", "mape"]]
                .mean().reset_index())

    def pooled(self) -> pd.DataFrame:
        """Per candidate (``model, holidays``, in :data:`MODELS` order, adjusted first):
        ``mase, mape`` (means over the series scored) and ``series``."""
        s = self.scores()
        out = s.groupby(_KEY, sort=False).agg(mase=("mase", "mean"), mape=("mape", "mean"),
                                              series=("mase", "count")).reset_index()
        out["order"] = out["model"].map(MODELS.index) * 2 + (~out["holidays"]).astype(int)
        return out.sort_values("order").drop(columns="order").reset_index(drop=True)

    def mase(self, candidate: Candidate) -> float:
        """A candidate's pooled MASE (``nan``: not scored)."""
        p = self.pooled()
        row = p[(p["model"] == candidate.model) & (p["holidays"] == candidate.holidays)]
        return float(row["mase"].iloc[0]) if len(row) else math.nan

    def improvement(self, candidate: Candidate) -> float:
        """How much lower the candidate's pooled MASE is than the baseline's (%)."""
        base, own = self.mase(BASELINE_CANDIDATE), self.mase(candidate)
        if not (math.isfinite(base) and math.isfinite(own)) or base == 0:
            return math.nan
        return 100.0 * (1.0 - own / base)


def _progress(on_step: Callable[[float], None] | None, done: int, total: int) -> None:
    if on_step is not None and total:
        on_step(done / total)


def candidates(models: Sequence[str], holidays: bool | str = True) -> list[Candidate]:
    """The candidates of a backtest: the baseline, then each model adjusted for the
    holidays (``holidays`` true), not (false), or both ways (``"both"``).

    Examples
    --------
    >>> [c.label for c in candidates(("ets",), "both")]
    ['seasonal_naive', 'ets', 'ets (no holiday adjustment)']
    """
    ways = (True, False) if holidays == "both" else (bool(holidays),)
    return [BASELINE_CANDIDATE, *[Candidate(m, w) for m in MODELS
                                  if m in models and m != BASELINE for w in ways]]


def backtest(panel: Panel, h: int, *, models: Sequence[str] = MODELS,
             windows: int = WINDOWS, step: int = STEP, at: Sequence[date] | None = None,
             holidays: bool | str = True,
             on_step: Callable[[float], None] | None = None) -> Backtest:
    """Rolling-origin backtest: each candidate forecast from each cut-off, scored on what
    followed.

    Parameters
    ----------
    panel : Panel
    h : int
        Days ahead.
    models : sequence of str
        Among :data:`MODELS`; the baseline is always added.
    windows, step : int
        Cut-offs :func:`cutoffs` (``end − h`` and ``step`` days earlier each), unless
        ``at`` gives them.
    at : sequence of datetime.date, optional
        The cut-offs (each at most ``end − h``).
    holidays : bool or "both"
        Adjust the models for the holidays (:func:`holiday_effects` of the history up
        to each cut-off, :func:`predict`), or not, or try each model both ways
        (:func:`candidates`).
    on_step : callable, optional
        Called with the fraction done.

    Returns
    -------
    Backtest

    Raises
    ------
    ForecastInputError
        A horizon out of range, an unknown model.
    InsufficientHistoryError
        No cut-off leaves :data:`MIN_DAYS` days of history and ``h`` days to score.

    Examples
    --------
    >>> days = pd.date_range("2025-03-03", periods=35, freq="D")
    >>> frame = pd.DataFrame({"unique_id": "a", "ds": days, "y": [1, 1, 1, 1, 1, 2, 2] * 5})
    >>> bt = backtest(Panel.from_frame(frame), 7, models=("seasonal_naive",), windows=2)
    >>> [d.isoformat() for d in bt.cutoffs], bt.pooled()["mape"].tolist()
    (['2025-03-23', '2025-03-30'], [0.0])
    """
    _check(h, models)
    wanted = candidates(models, holidays)
    points = sorted(set(at)) if at is not None else cutoffs(panel.end, h, windows, step)
    late = [c for c in points if c > panel.end - timedelta(days=h)]
    if late:
        raise ForecastInputError("cutoffs", f"{late[0].isoformat()} leaves fewer than {h} "
                                 "days to score")
    points = [c for c in points if any((c - s.start).days + 1 >= MIN_DAYS
                                       for s in panel.series)]
    if not points:
        need = MIN_DAYS + h + step * (windows - 1)
        raise InsufficientHistoryError(
            "horizon_days", f"the history ({(panel.end - panel.start).days + 1} days) is too "
            f"short to backtest {h} days ahead: it needs at least {MIN_DAYS + h} days "
            f"({need} for {windows} cut-offs) / 历史数据不足以回测")
    rows: list[pd.DataFrame] = []
    errs: list[dict[str, Any]] = []
    total, done = len(panel.series) * len(points) * len(wanted), 0
    whole = {s.id: s for s in panel.series}
    for cut in points:
        history = [t for t in (s.until(cut) for s in panel.series) if len(t.y) >= MIN_DAYS]
        effects = holiday_effects(history) if any(c.holidays for c in wanted) else {}
        days = pd.date_range(cut + timedelta(days=1), periods=h, freq="D")
        done += (len(panel.series) - len(history)) * len(wanted)
        for train in history:
            k0 = len(train.y)
            actual = whole[train.id].y[k0:k0 + h]
            scale = float(np.abs(train.y[SEASON:] - train.y[:-SEASON]).mean())
            for c in wanted:
                p = predict(c.model, train.start, train.y, h, intervals=(),
                            effects=effects if c.holidays else None)
                err = np.abs(actual - p.mean)
                pos = actual > 0
                errs.append({
                    "model": c.model, "holidays": c.holidays, "unique_id": train.id,
                    "cutoff": cut, "mae": float(err.mean()), "scale": scale,
                    "mase": float(err.mean()) / scale if scale > 0 else math.nan,
                    "mape": float(100 * np.mean(err[pos] / actual[pos])) if pos.any()
                    else math.nan})
                rows.append(pd.DataFrame({
                    "model": c.model, "holidays": c.holidays, "unique_id": [train.id] * h,
                    "cutoff": cut, "ds": days, "horizon": np.arange(1, h + 1), "y": actual,
                    "yhat": p.mean, "used": p.model}))
                done += 1
                _progress(on_step, done, total)
    return Backtest(h, points, pd.concat(rows, ignore_index=True), pd.DataFrame(errs))


def select_model(bt: Backtest) -> Candidate:
    """The candidate of the lowest pooled MASE (the simpler on a tie, the adjusted before
    the unadjusted; the baseline when no model could be scored).

    Examples
    --------
    >>> errors = pd.DataFrame({"model": ["seasonal_naive", "ets"], "holidays": [False, True],
    ...                        "unique_id": [1, 1], "mase": [1.0, 0.8], "mape": [5.0, 4.0]})
    >>> select_model(Backtest(7, [], pd.DataFrame(), errors))
    Candidate(model='ets', holidays=True)
    """
    pooled = bt.pooled()
    pooled = pooled[np.isfinite(pooled["mase"])]
    if pooled.empty:
        return BASELINE_CANDIDATE
    best = pooled.loc[pooled["mase"].idxmin()]
    return Candidate(str(best["model"]), bool(best["holidays"]))


def forecast(panel: Panel, h: int, model: str, *, intervals: Sequence[int] = INTERVALS,
             holidays: bool = True,
             on_step: Callable[[float], None] | None = None) -> pd.DataFrame:
    """The model's forecast of every series for the ``h`` days after the panel's end.

    Parameters
    ----------
    panel : Panel
    h : int
    model : str
        One of :data:`MODELS`.
    intervals : sequence of int
        Prediction intervals (%).
    holidays : bool
        Adjust for the holidays (:func:`holiday_effects` of the whole history).
    on_step : callable, optional
        Called with the fraction done.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, horizon, mean``, ``lo{p}, hi{p}`` per interval ``p`` and
        ``model`` (the one that made it: the baseline where ``model`` could not be
        fitted).

    Raises
    ------
    ForecastInputError
        A horizon out of range, an unknown model.
    """
    _check(h, [model])
    days = pd.date_range(panel.end + timedelta(days=1), periods=h, freq="D")
    effects = holiday_effects(panel.series) if holidays else {}
    out = []
    for i, s in enumerate(panel.series):
        p = predict(model, s.start, s.y, h, intervals=intervals, effects=effects)
        part: dict[str, Any] = {"unique_id": [s.id] * h, "ds": days,
                                "horizon": np.arange(1, h + 1), "mean": p.mean}
        for lv in intervals:
            part[f"lo{lv}"] = p.lower[lv]
            part[f"hi{lv}"] = p.upper[lv]
        part["model"] = p.model
        out.append(pd.DataFrame(part))
        _progress(on_step, i + 1, len(panel.series))
    return pd.concat(out, ignore_index=True)


__all__ = ["BASELINE", "BASELINE_CANDIDATE", "HOLIDAY_CONFIDENCE", "INTERVALS", "MAX_HORIZON",
           "MIN_DAYS", "MIN_TRAIN", "MODELS", "SEASON", "STEP", "WINDOWS", "WORKED", "Backtest",
           "Candidate", "ForecastInputError", "HolidayEffect", "InsufficientHistoryError",
           "Panel", "Prediction", "Series", "backtest", "candidates", "cutoffs", "day_type",
           "forecast", "holiday_effects", "predict", "seasonal_naive", "select_model"]
