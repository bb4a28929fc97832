"""The refuse generation forecast (``scenarios/refuse_forecast.py``) on the generated S city
(seed 1), against answers computed without it:

- the history read is the buildings' planted daily loads (``truth.refuse_facility_load``),
  365 days to the day before the reference time; the street offices' and the city's
  series are the sums of their buildings';
- the chosen model beats the seasonal naive in the backtest on the generated history
  (by how much is printed, and written in bench/README.md for the M city);
- the review's actuals are the readings, its errors recomputed; the buildings' forecast
  adds up to the level's;
- a stream, a lone replayed day after a gap, ``as_of``;
- bad input named: horizon, level, stream, models, a missing or negative reading.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scenarios import forecast as fc
from scenarios import refuse_forecast as rf
from scenarios.forecast import ForecastInputError
from spatial.db import connect
from tests.scenarios.test_refuse_placement import _city

LAST_DAY = date(2026, 10, 29)   # the day before the demo city's reference time, Beijing


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 (with its refuse facilities)."""
    yield from _city(server_conninfo, template_db, "S")


@pytest.fixture(scope="module")
def street_offices(city: str) -> rf.RefuseForecast:
    """The default forecast (street offices, 14 days), solved once."""
    with connect(city) as conn:
        return rf.load(conn, level="street_office").solve()


def test_the_history_is_the_buildings_planted_daily_loads(city: str) -> None:
    with connect(city) as conn:
        readings = rf.load_readings(conn)
        truth = {int(r["facility_id"]): float(r["t"]) for r in conn.execute(
            "SELECT facility_id, expected_t_per_day AS t FROM truth.refuse_facility_load "
            "WHERE kind = 'refuse_building'").fetchall()}
    days = readings.groupby("facility_id")["ds"].agg(["min", "max", "count"])
    assert set(days.index) == set(truth)
    assert (days["count"] == 365).all()
    assert (days["max"] == pd.Timestamp(LAST_DAY)).all()
    # the daily factor has mean 1: a year's mean is the planted load (noise 6 % a day)
    mean = readings.groupby("facility_id")["y"].mean()
    for fid, expected in truth.items():
        assert mean[fid] == pytest.approx(expected, rel=0.02, abs=0.01), fid


def test_the_levels_add_the_buildings_up(city: str) -> None:
    with connect(city) as conn:
        readings = rf.load_readings(conn)
        buildings = rf.load_buildings(conn)
    office = readings.merge(buildings[["id", "street_office_id"]], left_on="facility_id",
                            right_on="id").groupby(["street_office_id", "ds"])["y"].sum()
    f = rf.RefuseForecast(readings, buildings, level="street_office")
    assert f.panel is not None and len(f.panel.series) == buildings["street_office_id"].nunique()
    for s in f.panel.series:
        assert np.allclose(s.y, office.loc[s.id].to_numpy())
    city_level = rf.RefuseForecast(readings, buildings, level="city").panel
    assert city_level is not None and city_level.ids == [rf.CITY_ID]
    assert np.allclose(city_level.series[0].y, readings.groupby("ds")["y"].sum().to_numpy())


def test_the_chosen_model_beats_the_seasonal_naive(city: str,
                                                   street_offices: rf.RefuseForecast) -> None:
    with connect(city) as conn:
        buildings = rf.load(conn, level="refuse_building", models=("ets", "ets_damped"),
                            review_cutoffs=0).solve()
    for f in (street_offices, buildings):
        summary = f.summary()
        assert summary["status"] == "ok" and summary["model"] != fc.BASELINE
        pooled = {(r["model"], r["holidays"]): r for r in summary["backtest"]}
        chosen = pooled[(summary["model"], summary["holidays_adjusted"])]
        base = pooled[(fc.BASELINE, False)]
        assert chosen["mase"] == min(r["mase"] for r in pooled.values())
        assert chosen["mase"] < base["mase"]
        assert summary["improvement_pct"] == pytest.approx(
            100 * (1 - chosen["mase"] / base["mase"]), abs=0.02)
        assert summary["improvement_pct"] > 0
        print(f"\n{f.level}: {summary['model']} (holidays adjusted: "
              f"{summary['holidays_adjusted']}) MASE {chosen['mase']} vs seasonal naive "
              f"{base['mase']} over {summary['series']} series: {summary['improvement_pct']} % "
              f"better; MAPE {chosen['mape']} % vs {base['mape']} %")


def test_the_forecast_answers_the_horizon(street_offices: rf.RefuseForecast) -> None:
    f = street_offices
    summary = f.summary()
    assert (summary["as_of"], summary["first_day"], summary["last_day"]) == (
        LAST_DAY.isoformat(), "2026-10-30", "2026-11-12")
    assert summary["history_days"] == 365 and summary["history_from"] == "2025-10-30"
    assert summary["cutoffs"] == ["2026-09-24", "2026-10-01", "2026-10-08", "2026-10-15"]
    assert summary["stream"] is None and summary["stream_recorded"] is True
    # the demo city's Spring Festival is seen (applied if the model is adjusted for the
    # holidays): 0.75 of the load on days that are days off (1.06 against a working day's
    # 0.98), against an ordinary week (democity/refuse.py _daily_factor)
    effects = {h["holiday"]: h for h in summary["holidays"]}
    assert effects["spring_festival"]["significant"]
    assert effects["spring_festival"]["applied"] == summary["holidays_adjusted"]
    planted = 0.75 * 1.06 / ((5 * 0.98 + 2 * 1.06) / 7)
    assert effects["spring_festival"]["factor"] == pytest.approx(planted, abs=0.03)
    rows = f.forecast_rows()
    assert len(rows) == 14 * summary["series"]
    for r in rows:
        row = dict(zip(rf.FORECAST_COLUMNS, r, strict=True))
        assert row["lo95"] <= row["lo80"] <= row["mean"] <= row["hi80"] <= row["hi95"]
        assert row["level"] == "street_office" and row["name"]
    assert summary["forecast_t"] == pytest.approx(sum(r[4] for r in rows), abs=0.01)


def test_the_buildings_share_the_level_forecast(street_offices: rf.RefuseForecast) -> None:
    f = street_offices
    features = f.building_features()
    assert len(features) == len(f.buildings)
    assert all(x["properties"]["method"] == "share" for x in features)
    total = sum(x["properties"]["total_t"] for x in features)
    assert total == pytest.approx(f.summary()["forecast_t"], abs=0.01 * len(features))
    day = LAST_DAY + timedelta(days=1)
    demand = f.day_demand(day)
    rows = [r for r in f.forecast_rows() if r[0] == day.isoformat()]
    assert sum(demand.values()) == pytest.approx(sum(r[4] for r in rows), abs=0.01)
    with pytest.raises(ForecastInputError, match="day: 2026-12-01 is not among"):
        f.day_demand(date(2026, 12, 1))


def test_the_review_compares_past_forecasts_with_the_readings(
        city: str, street_offices: rf.RefuseForecast) -> None:
    f = street_offices
    with connect(city) as conn:
        readings = rf.load_readings(conn)
        buildings = rf.load_buildings(conn)
    actual = readings.merge(buildings[["id", "street_office_id"]], left_on="facility_id",
                            right_on="id").groupby(["street_office_id", "ds"])["y"].sum()
    rows = [dict(zip(rf.REVIEW_COLUMNS, r, strict=True)) for r in f.review_rows()]
    cutoffs = sorted({date.fromisoformat(r["cutoff"]) for r in rows})
    # the backtest's four a week apart, and before them one every 14 days back to the
    # last that leaves two weeks of history (from 2025-10-30)
    assert cutoffs[0] == date(2025, 11, 20) and len(cutoffs) == 22 + 4
    assert all((b - a).days == 14 for a, b in itertools.pairwise(cutoffs[:23]))
    for r in rows:
        day = date.fromisoformat(r["date"])
        assert (day - date.fromisoformat(r["cutoff"])).days == r["horizon"]
        assert r["actual"] == pytest.approx(actual.loc[(r["id"], pd.Timestamp(day))], abs=1e-3)
        # (the forecast is rounded to the kilogram, the error from the unrounded one)
        assert r["ape"] == pytest.approx(100 * abs(r["forecast"] - r["actual"]) / r["actual"],
                                         abs=0.05)
        assert r["model"] in (f.model, fc.BASELINE)
    # a forecast made before the Spring Festival was seen could not foresee it
    festival = [r for r in rows if fc.day_type(date.fromisoformat(r["date"]))
                == "spring_festival"]
    assert festival and np.mean([r["ape"] for r in festival]) > 15


def test_a_stream_reads_its_own_readings(city: str) -> None:
    """A stream's readings are its own and the streams add up to the total; readings
    without a stream count as other waste; while no reading records a stream (data from
    before the streams), every reading counts as every stream."""
    with connect(city) as conn:
        assert rf.streams_recorded(conn) is True
        total = rf.load_readings(conn).set_index(["facility_id", "ds"])["y"]
        parts = {s: rf.load_readings(conn, stream=s).set_index(["facility_id", "ds"])["y"]
                 for s in rf.STREAMS}
        f = rf.load(conn, stream="kitchen", horizon_days=3, models=(), review_cutoffs=0)
        conn.execute("UPDATE onemap.refuse_load_reading SET stream = NULL "
                     "WHERE stream = 'hazardous'")
        other = rf.load_readings(conn, stream="other").set_index(["facility_id", "ds"])["y"]
        # a weighbridge that does not sort: one reading per facility and time, no stream
        conn.execute("DELETE FROM onemap.refuse_load_reading "
                     "WHERE stream IS DISTINCT FROM 'other'")
        conn.execute("UPDATE onemap.refuse_load_reading SET stream = NULL")
        assert rf.streams_recorded(conn) is False
        unsorted_total = rf.load_readings(conn)
        unsorted_kitchen = rf.load_readings(conn, stream="kitchen")
        conn.rollback()
    assert (parts["kitchen"] < total).all() and (parts["kitchen"] > 0).all()
    summed = sum(parts[s] for s in rf.STREAMS)
    assert np.allclose(summed.loc[total.index], total, atol=1e-6)
    assert np.allclose(other, parts["other"] + parts["hazardous"], atol=1e-6)
    pd.testing.assert_frame_equal(unsorted_total, unsorted_kitchen)
    assert f.summary()["stream"] == "kitchen" and f.summary()["stream_recorded"] is True


def test_a_lone_day_after_a_gap_is_left_out_and_as_of_cuts_the_history(city: str) -> None:
    with connect(city) as conn:
        fid = int(conn.execute("SELECT min(id) AS id FROM onemap.refuse_facility "
                               "WHERE kind = 'refuse_building'").fetchone()["id"])
        conn.execute("INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, load_t) "
                     "VALUES (%s, (date '2026-12-07' + time '21:00') AT TIME ZONE "
                     "'Asia/Shanghai', 1.0)", (fid,))
        f = rf.load(conn, horizon_days=7, models=(), review_cutoffs=0)
        earlier = rf.load(conn, horizon_days=7, models=(), review_cutoffs=0,
                          as_of=date(2026, 6, 30))
        conn.rollback()
    summary = f.summary()
    assert summary["as_of"] == LAST_DAY.isoformat()
    assert summary["notes"] == ["readings on 1 later day(s) after a gap are left out "
                                "(2026-12-07)"]
    assert earlier.summary()["as_of"] == "2026-06-30"


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"horizon_days": 0}, "horizon_days"), ({"horizon_days": 1000}, "horizon_days"),
    ({"horizon_days": 29}, "horizon_days"), ({"level": "district"}, "level"),
    ({"stream": "plastic"}, "stream"), ({"models": ("prophet",)}, "models"),
    ({"holidays": "sometimes"}, "holidays"), ({"as_of": date(2027, 1, 1)}, "as_of"),
    ({"review_cutoffs": 53}, "review_cutoffs"),
])
def test_bad_input_names_the_input(city: str, kwargs: dict[str, Any], name: str) -> None:
    with connect(city) as conn, pytest.raises(ForecastInputError) as caught:
        rf.load(conn, **kwargs)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name}: ")


def test_a_missing_reading_is_named_or_filled(city: str) -> None:
    with connect(city) as conn:
        row = conn.execute(
            "SELECT f.id, f.name FROM onemap.refuse_facility f "
            "WHERE kind = 'refuse_building' ORDER BY id DESC LIMIT 1").fetchone()
        conn.execute("DELETE FROM onemap.refuse_load_reading WHERE facility_id = %s AND "
                     "measured_at = (date '2026-03-10' + time '21:00') AT TIME ZONE "
                     "'Asia/Shanghai'", (row["id"],))
        with pytest.raises(ForecastInputError) as caught:
            rf.load(conn, horizon_days=7)
        filled = rf.load(conn, horizon_days=7, models=(), review_cutoffs=0, fill_missing=True)
        conn.rollback()
    assert caught.value.name == "readings"
    assert f"{row['name']} ({row['id']}): 1 day (2026-03-10)" in caught.value.reason
    assert "fill_missing" in caught.value.reason
    assert filled.summary()["filled_days"] == 1


def test_a_negative_reading_is_named(city: str) -> None:
    with connect(city) as conn:
        readings = rf.load_readings(conn)
        buildings = rf.load_buildings(conn)
    fid = int(buildings["id"].iloc[0])
    at = readings.index[(readings["facility_id"] == fid)
                        & (readings["ds"] == pd.Timestamp("2026-05-04"))][0]
    readings.loc[at, "y"] = -1.25
    with pytest.raises(ForecastInputError, match=rf"readings: negative values: .* \({fid}\) on "
                                                 r"2026-05-04 \(-1.25\)"):
        rf.RefuseForecast(readings, buildings)


def test_too_short_a_history_is_an_answer(city: str) -> None:
    with connect(city) as conn:
        f = rf.load(conn, as_of=date(2025, 11, 20), horizon_days=14).solve()
    summary = f.summary()
    assert summary["status"] == "insufficient_history"
    assert "too short to backtest 14 days" in summary["message"]
    assert f.forecast_rows() == [] and f.building_features() == []
    assert summary["model"] is None and summary["history_days"] == 22
