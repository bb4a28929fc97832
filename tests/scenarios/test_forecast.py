"""The forecasting engine (``scenarios/forecast.py``) on series whose answers are known:

- the seasonal naive exactly (means and intervals by the formula);
- backtest errors recomputed by hand on a tiny case (two cut-offs, a constant series
  whose MASE is undefined), pooling and selection;
- a synthetic two-year series with a known weekly pattern and a Spring Festival dip:
  the forecast recovers both, the dip from the year before; without the holiday
  adjustment it would not; a holiday without effect is left alone;
- bad input named: negative values, missing days (or filled), duplicates, horizons,
  models.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from scenarios import forecast as fc
from scenarios.forecast import (
    Backtest,
    ForecastInputError,
    InsufficientHistoryError,
    Panel,
    Series,
)
from spatial import holidays

MONDAY = date(2026, 3, 2)


def frame(series: dict[str, list[float]], start: date = MONDAY) -> pd.DataFrame:
    rows = [(uid, pd.Timestamp(start + timedelta(days=k)), v)
            for uid, values in series.items() for k, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


# --- the seasonal naive ---------------------------------------------------------------


def test_seasonal_naive_repeats_the_last_week_with_the_textbook_intervals() -> None:
    # weekly differences 1, 1, 1, 1, 1, 1, 1 then 3, −1, 1, 1, 1, 1, 1: σ² = (12·1 + 9 + 1) / 14
    y = np.array([1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8, 5, 2, 5, 6, 7, 8, 9], dtype=float)
    p = fc.seasonal_naive(y, 10, (80, 95))
    assert p.mean.tolist() == [5, 2, 5, 6, 7, 8, 9, 5, 2, 5]
    sigma = math.sqrt(22 / 14)
    z80, z95 = 1.2815515655446004, 1.959963984540054
    for k in range(10):
        sd = sigma * math.sqrt(k // 7 + 1)
        assert p.upper[80][k] - p.mean[k] == pytest.approx(z80 * sd)
        assert p.mean[k] - p.lower[95][k] == pytest.approx(z95 * sd)
    assert p.model == "seasonal_naive"


def test_forecast_of_the_seasonal_naive_is_the_last_week_on_the_right_days() -> None:
    panel = Panel.from_frame(frame({"a": [float(k) for k in range(1, 22)]}))
    out = fc.forecast(panel, 9, "seasonal_naive")
    assert out["ds"].iloc[0] == pd.Timestamp(MONDAY + timedelta(days=21))
    assert out["mean"].tolist() == [15, 16, 17, 18, 19, 20, 21, 15, 16]
    assert out["horizon"].tolist() == list(range(1, 10))
    assert set(out["model"]) == {"seasonal_naive"}
    assert (out["lo95"] <= out["lo80"]).all() and (out["hi80"] <= out["hi95"]).all()


# --- the backtest by hand --------------------------------------------------------------


def tiny_panel() -> Panel:
    # a: three weeks rising by one a week, then 6 and 4; b: constant 5, then 5 and 10
    a = [1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5, 6, 7, 8, 9, 6, 4]
    b = [5] * 21 + [5, 10]
    return Panel.from_frame(frame({"a": [float(v) for v in a], "b": [float(v) for v in b]}))


def test_backtest_errors_recomputed_by_hand() -> None:
    bt = fc.backtest(tiny_panel(), 2, models=("seasonal_naive",), windows=2, step=7)
    # cut-offs: the last day − 2 (day 20) and a week before (day 13)
    assert bt.cutoffs == [MONDAY + timedelta(days=13), MONDAY + timedelta(days=20)]
    e = bt.errors.set_index(["unique_id", "cutoff"])
    first, second = bt.cutoffs
    # a from day 13: forecast days 14, 15 = days 7, 8 = 2, 3; actual 3, 4: errors 1, 1;
    # in-sample weekly differences all 1: MASE 1; MAPE (1/3 + 1/4)/2
    assert e.at[("a", first), "mae"] == 1.0
    assert e.at[("a", first), "scale"] == 1.0
    assert e.at[("a", first), "mase"] == 1.0
    assert e.at[("a", first), "mape"] == pytest.approx(100 * (1 / 3 + 1 / 4) / 2)
    # a from day 20: forecast days 21, 22 = days 14, 15 = 3, 4; actual 6, 4: errors 3, 0
    assert e.at[("a", second), "mase"] == 1.5
    assert e.at[("a", second), "mape"] == pytest.approx(25.0)
    # b: no weekly differences in sample, MASE undefined; MAPE from day 20: (0 + 5/10)/2
    assert math.isnan(e.at[("b", second), "mase"])
    assert e.at[("b", first), "mape"] == 0.0 and e.at[("b", second), "mape"] == 25.0
    scores = bt.scores().set_index("unique_id")
    assert scores.at["a", "mase"] == 1.25
    assert scores.at["a", "mape"] == pytest.approx((100 * 7 / 24 + 25) / 2)
    pooled = bt.pooled().set_index("model")
    assert pooled.at["seasonal_naive", "mase"] == 1.25  # b has none
    assert pooled.at["seasonal_naive", "mape"] == pytest.approx(
        ((100 * 7 / 24 + 25) / 2 + 12.5) / 2)
    assert pooled.at["seasonal_naive", "series"] == 1
    f = bt.forecasts
    row = f[(f["unique_id"] == "a") & (f["cutoff"] == second)]
    assert row["yhat"].tolist() == [3, 4] and row["y"].tolist() == [6, 4]
    assert row["horizon"].tolist() == [1, 2]


def test_a_cutoff_with_too_short_a_history_is_not_scored() -> None:
    bt = fc.backtest(tiny_panel(), 2, models=("seasonal_naive",), at=[
        MONDAY + timedelta(days=9), MONDAY + timedelta(days=13)])
    assert bt.cutoffs == [MONDAY + timedelta(days=13)]   # day 9: ten days of history
    with pytest.raises(InsufficientHistoryError, match="horizon_days"):
        fc.backtest(tiny_panel(), 2, at=[MONDAY + timedelta(days=9)])
    with pytest.raises(ForecastInputError, match=r"cutoffs: .* fewer than 2 days"):
        fc.backtest(tiny_panel(), 2, at=[MONDAY + timedelta(days=21)])


def test_the_baseline_is_always_a_candidate_and_the_lowest_mase_wins() -> None:
    bt = fc.backtest(tiny_panel(), 2, models=("ets",), windows=1)
    assert list(bt.pooled()["model"]) == ["seasonal_naive", "ets"]
    both = fc.backtest(tiny_panel(), 2, models=("ets", "sarima"), windows=1, holidays="both")
    assert [tuple(r) for r in both.pooled()[["model", "holidays"]].to_numpy()] == [
        ("seasonal_naive", False), ("ets", True), ("ets", False), ("sarima", True),
        ("sarima", False)]

    def with_scores(scores: dict[tuple[str, bool], float]) -> Backtest:
        errors = pd.DataFrame([{"model": m, "holidays": h, "unique_id": 1, "mase": v,
                                "mape": 1.0} for (m, h), v in scores.items()])
        return Backtest(7, [], pd.DataFrame(), errors)

    base = ("seasonal_naive", False)
    assert fc.select_model(with_scores({base: 1.0, ("ets", True): 0.9,
                                        ("sarima", False): 0.8})) == ("sarima", False)
    # a tie: the simpler, then the adjusted
    assert fc.select_model(with_scores({base: 0.7, ("ets", True): 0.7})) == base
    assert fc.select_model(with_scores({base: 0.9, ("ets", False): 0.7,
                                        ("ets", True): 0.7})) == ("ets", True)
    assert fc.select_model(with_scores({base: math.nan, ("ets", True): math.nan})) == base
    scored = with_scores({base: 1.0, ("ets", True): 0.75})
    assert scored.improvement(fc.Candidate("ets", True)) == 25.0
    assert math.isnan(scored.improvement(fc.Candidate("ets", False)))


# --- a known weekly pattern and a Spring Festival ---------------------------------------

WEEK = np.array([1.0, 0.95, 0.95, 1.0, 1.05, 1.2, 1.25])  # Monday … Sunday
DIP = 0.7


def synthetic(first: date, last: date, seed: int = 7, dip: float = DIP) -> pd.DataFrame:
    """Two buildings: 10 t and 4 t a day times the weekly pattern, 70 % over every
    Spring Festival, 2 % noise."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(first, last, freq="D")
    pattern = WEEK[days.day_of_week.to_numpy()]
    festival = np.array([holidays.holiday(d.date()) == "spring_festival" for d in days])
    out = {}
    for uid, level in (("a", 10.0), ("b", 4.0)):
        noise = rng.normal(1.0, 0.02, len(days))
        out[uid] = (level * pattern * np.where(festival, dip, 1.0) * noise).tolist()
    return frame(out, first)


def test_the_forecast_recovers_the_weekly_pattern_and_the_spring_festival() -> None:
    # two years to 2026-02-08; the Spring Festival of 2026 (15–23 Feb) lies ahead,
    # the one of 2025 (28 Jan – 4 Feb) in the history
    history = synthetic(date(2024, 2, 26), date(2026, 2, 8))
    panel = Panel.from_frame(history)
    effects = fc.holiday_effects(panel.series)
    assert effects["spring_festival"].applied
    assert effects["spring_festival"].factor == pytest.approx(DIP, abs=0.02)
    assert not effects["qingming"].applied    # no effect planted: none applied

    out = fc.forecast(panel, 21, "ets")
    assert set(out["model"]) == {"ets"}
    days = pd.DatetimeIndex(out["ds"])
    truth_level = np.where(out["unique_id"] == "a", 10.0, 4.0)
    festival = np.array([holidays.holiday(d.date()) == "spring_festival" for d in days])
    truth = truth_level * WEEK[days.day_of_week.to_numpy()] * np.where(festival, DIP, 1.0)
    ape = np.abs(out["mean"].to_numpy() - truth) / truth
    assert ape[festival].mean() < 0.03 and ape[~festival].mean() < 0.03
    # the weekly pattern: each weekday's ordinary forecast over the building's level
    ordinary = out[~festival]
    ratio = (ordinary["mean"] / np.where(ordinary["unique_id"] == "a", 10.0, 4.0)).groupby(
        pd.DatetimeIndex(ordinary["ds"]).day_of_week).mean()
    assert np.allclose(ratio.to_numpy(), WEEK, atol=0.03)
    # the truth lies within the 95 % intervals
    assert ((out["lo95"] <= truth) & (truth <= out["hi95"])).mean() >= 0.9

    plain = fc.forecast(panel, 21, "ets", holidays=False)
    plain_ape = np.abs(plain["mean"].to_numpy() - truth) / truth
    assert plain_ape[festival].mean() > 0.3   # the dip is missed without the adjustment


def test_the_backtest_prefers_a_model_to_the_seasonal_naive_on_a_noisy_pattern() -> None:
    panel = Panel.from_frame(synthetic(date(2025, 3, 3), date(2025, 12, 28), seed=3))
    bt = fc.backtest(panel, 14, models=("ets",))
    pooled = bt.pooled().set_index("model")
    # a seasonal naive carries two days' noise, the smoothed model about one
    assert pooled.at["ets", "mase"] < pooled.at["seasonal_naive", "mase"]
    assert fc.select_model(bt) == ("ets", True)
    assert bt.improvement(fc.Candidate("ets", True)) > 15


def test_a_holiday_first_seen_after_the_history_gets_no_effect() -> None:
    panel = Panel.from_frame(synthetic(date(2025, 3, 3), date(2026, 2, 8)))
    effects = fc.holiday_effects(panel.series)
    assert "spring_festival" not in effects
    out = fc.forecast(panel, 21, "ets")
    out = out[out["unique_id"] == "a"]
    festival = np.array([holidays.holiday(d.date()) == "spring_festival"
                         for d in pd.DatetimeIndex(out["ds"])])
    ratio = out["mean"][festival].to_numpy() / out["mean"][~festival].mean()
    assert ratio.min() > 0.8     # nothing to learn it from: not foreseen


def test_day_types_follow_the_calendar() -> None:
    assert fc.day_type(date(2026, 2, 17)) == "spring_festival"
    assert fc.day_type(date(2026, 10, 1)) == "national_day"
    assert fc.day_type(date(2026, 2, 14)) == fc.WORKED  # the Saturday worked before it
    assert fc.day_type(date(2026, 2, 24)) is None


# --- a model that cannot be fitted, intervals ------------------------------------------


def test_a_constant_or_short_series_falls_back_to_the_seasonal_naive() -> None:
    panel = Panel.from_frame(pd.concat([
        frame({"flat": [0.0] * 60}),
        frame({"short": [1.0, 2, 3, 4, 5, 6, 7] * 3}, MONDAY + timedelta(days=39))]))
    out = fc.forecast(panel, 7, "sarima")
    assert set(out["model"]) == {"seasonal_naive"}
    assert out[out["unique_id"] == "flat"]["hi95"].max() == 0.0


def test_intervals_are_nested_and_never_negative() -> None:
    panel = Panel.from_frame(synthetic(date(2025, 3, 3), date(2025, 9, 28)))
    for model in fc.MODELS:
        out = fc.forecast(panel, 14, model)
        assert (out["lo95"] >= 0).all()
        assert (out["lo95"] <= out["lo80"] + 1e-9).all() and (out["lo80"] <= out["mean"]).all()
        assert (out["mean"] <= out["hi80"]).all() and (out["hi80"] <= out["hi95"] + 1e-9).all()
        assert (out["hi95"] > out["lo95"]).all()
        assert set(out["model"]) == {model}


# --- bad input ---------------------------------------------------------------------------


def test_negative_values_are_refused_naming_them() -> None:
    values = [1.0] * 20
    values[5] = -0.5
    with pytest.raises(ForecastInputError, match=r"readings: negative values: building 7 on "
                                                 r"2026-03-07 \(-0.5\)"):
        Panel.from_frame(frame({"x": values}).assign(unique_id=7), name="readings",
                         labels={7: "building 7"})


def test_missing_days_are_refused_naming_them_or_filled_from_a_week_before() -> None:
    f = frame({"a": [float(k) for k in range(1, 22)], "b": [1.0] * 21})
    f = f.drop(index=[9, 10]).reset_index(drop=True)   # a: days 9 and 10 (2026-03-11, 12)
    f.loc[len(f) - 1, "y"] = math.nan                   # b: its last day
    with pytest.raises(ForecastInputError, match=r"history: missing values: a: 2 days "
                       r"\(2026-03-11, 2026-03-12\), b: 1 day \(2026-03-22\); fill them"):
        Panel.from_frame(f)
    panel = Panel.from_frame(f, fill_missing=True)
    a, b = panel.series
    assert a.y[9] == 3.0 and a.y[10] == 4.0     # the same weekday a week before
    assert b.y[-1] == 1.0
    assert panel.filled == {"a": [date(2026, 3, 11), date(2026, 3, 12)],
                            "b": [date(2026, 3, 22)]}
    # a hole in the first week: a week later
    g = frame({"c": [float(k) for k in range(1, 22)]}).drop(index=[2])
    assert Panel.from_frame(g, fill_missing=True).series[0].y[2] == 10.0


def test_other_bad_panels_are_refused() -> None:
    f = frame({"a": [1.0] * 20})
    with pytest.raises(ForecastInputError, match="more than one value on 2026-03-02"):
        Panel.from_frame(pd.concat([f, f.iloc[:1]]))
    with pytest.raises(ForecastInputError, match="columns"):
        Panel.from_frame(f.drop(columns="y"))
    with pytest.raises(ForecastInputError, match="is not a finite number"):
        Panel.from_frame(f.assign(y=["x"] + [1.0] * 19))
    with pytest.raises(ForecastInputError, match="whole day"):
        Panel.from_frame(f.assign(ds=f["ds"] + pd.Timedelta(hours=21)))
    with pytest.raises(InsufficientHistoryError, match="no series has 14 days"):
        Panel.from_frame(frame({"a": [1.0] * 10}))
    short = Panel.from_frame(frame({"a": [1.0] * 20, "b": [1.0] * 20}, MONDAY)
                             .query("unique_id == 'a' or ds >= '2026-03-12'"))
    assert short.ids == ["a"] and "b" in short.dropped


@pytest.mark.parametrize("h", [0, -1, 1000, 2.5, True])
def test_a_horizon_out_of_range_names_the_horizon(h: object) -> None:
    panel = tiny_panel()
    with pytest.raises(ForecastInputError, match="horizon_days: must be a whole number"):
        fc.forecast(panel, h, "ets")  # type: ignore[arg-type]
    with pytest.raises(ForecastInputError, match="horizon_days"):
        fc.backtest(panel, h)  # type: ignore[arg-type]


def test_an_unknown_model_is_named() -> None:
    with pytest.raises(ForecastInputError, match="models: unknown model 'prophet'"):
        fc.backtest(tiny_panel(), 2, models=("prophet",))
    with pytest.raises(ValueError, match="unknown model"):
        fc.predict("prophet", MONDAY, np.ones(20), 3)


def test_series_until_cuts_the_history() -> None:
    s = Series("a", MONDAY, np.arange(10.0))
    assert s.until(MONDAY + timedelta(days=3)).y.tolist() == [0, 1, 2, 3]
    assert s.end == MONDAY + timedelta(days=9)
