"""``refuse-forecast`` over HTTP, on the generated S city (seed 1):

- an async run polled to its end answers every declared output, valid against its
  schema: the forecast per street office and day, the review, the backtest per
  series, the refuse buildings as a map layer; the summary's model beats the
  seasonal naive;
- the process is async-only: a request without the preference is accepted as a job;
- a history too short to backtest is an answer, not a failure;
- bad input is a 400 naming the input (a missing reading: the refuse building and the
  day), before any job is recorded.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from scenarios.processes.registry import PROCESSES
from scenarios.refuse_forecast import FORECAST_COLUMNS, REVIEW_COLUMNS
from tests.api.test_process_platform import check_outputs
from tests.api.test_refuse_placement_api import (  # noqa: F401
    admin,
    city,
    finished,
    make_client,
)

PROCESS = "refuse-forecast"


def results(client: Any, inputs: dict[str, Any],
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = client.post(f"/processes/{PROCESS}/execution",
                    json={"inputs": inputs, "response": "document"},
                    headers={"Prefer": "respond-async"} if headers is None else headers)
    assert r.status_code == 201, r.text
    job = str(r.headers["location"].rsplit("/", 1)[1])
    status = finished(client, job, timeout=300)
    assert status["status"] == "successful", status
    r = client.get(f"/jobs/{job}/results", params={"f": "json"})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    return {k: v["value"] for k, v in document.items()} | {"job": job}


def test_an_async_run_answers_the_forecast(admin: Any, city: str) -> None:  # noqa: F811
    out = results(admin, {"horizon_days": 7, "review_cutoffs": 4})
    summary = out["summary"]
    assert summary["status"] == "ok" and summary["level"] == "street_office"
    assert summary["horizon_days"] == 7 and summary["stream"] is None
    pooled = {(r["model"], r["holidays"]): r["mase"] for r in summary["backtest"]}
    assert set(pooled) == {("seasonal_naive", False)} | {
        (m, h) for m in ("ets", "ets_damped", "sarima") for h in (True, False)}
    assert pooled[(summary["model"], summary["holidays_adjusted"])] == min(pooled.values())
    assert summary["holiday_mode"] == "auto" and summary["improvement_pct"] > 0
    table = out["forecast"]
    assert table["columns"] == list(FORECAST_COLUMNS)
    assert len(table["rows"]) == 7 * summary["series"]
    assert sum(r[4] for r in table["rows"]) == pytest.approx(summary["forecast_t"], abs=0.01)
    review = out["review"]
    assert review["columns"] == list(REVIEW_COLUMNS)
    assert len({r[0] for r in review["rows"]}) == 4 + 4     # the backtest's and four more
    assert {(r[0], r[1]) for r in out["backtest"]["rows"]} == set(pooled)
    with psycopg.connect(city) as conn:
        (buildings,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM onemap.refuse_facility WHERE kind = 'refuse_building' "
            "AND status = 'in_service'").fetchone()
    features = out["buildings"]["features"]
    assert len(features) == buildings
    assert sum(f["properties"]["total_t"] for f in features) == pytest.approx(
        summary["forecast_t"], abs=0.01 * buildings)
    layer = admin.get(f"/jobs/{out['job']}/results/buildings/items")
    assert layer.status_code == 200, layer.text
    assert layer.json()["numberMatched"] == buildings


def test_the_building_level_and_a_stream(admin: Any) -> None:  # noqa: F811
    out = results(admin, {"horizon_days": 3, "level": "refuse_building", "stream": "kitchen",
                          "models": ["ets"], "review_cutoffs": 0, "holidays": "adjust"},
                  headers={})
    summary = out["summary"]
    assert (summary["level"], summary["stream"], summary["stream_recorded"]) == (
        "refuse_building", "kitchen", True)
    assert summary["candidates"] == ["seasonal_naive", "ets"]
    assert [(r["model"], r["holidays"]) for r in summary["backtest"]] == [
        ("seasonal_naive", False), ("ets", True)]
    assert summary["series"] == len(out["buildings"]["features"])
    assert {f["properties"]["method"] for f in out["buildings"]["features"]} == {"own"}


def test_too_short_a_history_is_an_answer(admin: Any) -> None:  # noqa: F811
    out = results(admin, {"as_of": "2025-11-20", "level": "city"})
    summary = out["summary"]
    assert summary["status"] == "insufficient_history" and summary["model"] is None
    assert "too short to backtest" in summary["message"]
    assert out["forecast"]["rows"] == [] and out["buildings"]["features"] == []


@pytest.mark.parametrize(("inputs", "name"), [
    ({"horizon_days": 0}, "horizon_days"),
    ({"horizon_days": 1000}, "horizon_days"),
    ({"horizon_days": "two weeks"}, "horizon_days"),
    ({"level": "district"}, "level"),
    ({"stream": "plastic"}, "stream"),
    ({"models": ["prophet"]}, "models"),
    ({"models": []}, "models"),
    ({"as_of": "2026-13-01"}, "as_of"),
    ({"as_of": "2030-01-01"}, "as_of: the readings end on 2026-10-29"),
    ({"review_cutoffs": 100}, "review_cutoffs"),
    ({"holidays": True}, "holidays"),
    ({"horizon": 7}, "horizon"),
])
def test_bad_input_names_the_input(admin: Any, inputs: dict[str, Any],  # noqa: F811
                                   name: str) -> None:
    before = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    r = admin.post(f"/processes/{PROCESS}/execution", json={"inputs": inputs},
                   headers={"Prefer": "respond-async"})
    assert r.status_code == 400, r.text
    assert name in r.json()["description"], r.json()
    after = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    assert len(after) == len(before)


def test_a_missing_reading_is_a_400_naming_the_building(
        admin: Any, city: str) -> None:  # noqa: F811
    with psycopg.connect(city) as conn:
        fid, name = conn.execute(  # type: ignore[misc]
            "SELECT id, name FROM onemap.refuse_facility WHERE kind = 'refuse_building' "
            "ORDER BY id LIMIT 1").fetchone()
        saved = conn.execute(
            "DELETE FROM onemap.refuse_load_reading WHERE facility_id = %s AND measured_at = "
            "(date '2026-04-01' + time '21:00') AT TIME ZONE 'Asia/Shanghai' "
            "RETURNING measured_at, load_t", (fid,)).fetchone()
    assert saved is not None
    try:
        before = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
        r = admin.post(f"/processes/{PROCESS}/execution", json={"inputs": {}},
                       headers={"Prefer": "respond-async"})
        assert r.status_code == 400, r.text
        text = r.json()["description"]
        assert f"readings: missing values: {name} ({fid}): 1 day (2026-04-01)" in text
        assert "fill_missing" in text
        assert len(admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])) == \
            len(before)
        out = results(admin, {"fill_missing": True, "horizon_days": 2,
                              "models": ["seasonal_naive"], "review_cutoffs": 0})
        assert out["summary"]["filled_days"] == 1
    finally:
        with psycopg.connect(city) as conn:
            conn.execute("INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, "
                         "load_t) VALUES (%s, %s, %s)", (fid, *saved))
