"""``refuse-flow`` over HTTP, on the generated S city (seed 1):

- a synchronous run answers every declared output, valid against its schema, and the
  flows carry every tonne of the day's readings;
- ``basis: forecast`` plans the day after the readings end with the refuse forecast's
  tonnes (the same as :mod:`scenarios.refuse_forecast` gives in Python);
- bad input is a 400 (or a 404 for a scenario) naming the input, before any job is
  recorded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import psycopg.rows
import pytest

from scenarios import refuse_flow as rf
from scenarios import refuse_forecast as rfc
from scenarios.processes.registry import PROCESSES
from tests.api.test_process_platform import check_outputs
from tests.api.test_refuse_placement_api import admin, city, make_client  # noqa: F401

PROCESS = "refuse-flow"


def test_a_day_is_routed(admin: Any, city: str) -> None:  # noqa: F811
    r = admin.post(f"/processes/{PROCESS}/execution",
                   json={"inputs": {"warning_ratio": 0.5}, "response": "document"})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    summary = document["summary"]["value"]
    assert summary["status"] == "optimal" and summary["unplaced_t"] == 0
    with psycopg.connect(city) as conn:
        (total,) = conn.execute(  # type: ignore[misc]
            "SELECT sum(load_t)::float8 FROM onemap.refuse_load_reading r "
            "JOIN onemap.refuse_facility f ON f.id = r.facility_id "
            "WHERE f.kind = 'refuse_building' AND r.measured_at = "
            "(%s::date + time '21:00') AT TIME ZONE 'Asia/Shanghai'",
            (summary["day"],)).fetchone()
    assert summary["refuse_t"] == pytest.approx(total, abs=1e-3)
    flows = document["flows"]["value"]["features"]
    into_plants = sum(f["properties"]["tonnes"] for f in flows
                      if f["properties"]["to_kind"] == "treatment_plant")
    assert into_plants == pytest.approx(total, abs=0.01)
    facilities = document["facilities"]["value"]["features"]
    assert {f["properties"]["kind"] for f in facilities} == {
        "refuse_building", "transfer_station", "treatment_plant"}


def test_next_days_plan_from_the_forecast(admin: Any, city: str) -> None:  # noqa: F811
    r = admin.post(f"/processes/{PROCESS}/execution",
                   json={"inputs": {"basis": "forecast", "stream": "kitchen"},
                         "response": "document"})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    summary = document["summary"]["value"]
    assert summary["basis"] == "forecast" and summary["streams"] == ["kitchen"]
    assert summary["status"] == "optimal"
    with psycopg.connect(city, row_factory=psycopg.rows.dict_row) as conn:
        last = rf.last_reading_day(conn)
        assert last is not None
        assert summary["day"] == (last + timedelta(days=1)).isoformat()
        model = rfc.RefuseForecast.load(conn, level="street_office", stream="kitchen",
                                        horizon_days=1, as_of=last, review_cutoffs=0,
                                        fill_missing=True).solve()
        expected = sum(model.day_demand(last + timedelta(days=1)).values())
    assert expected > 0
    assert summary["refuse_t"] == pytest.approx(expected, abs=1e-3)
    flows = document["flows"]["value"]["features"]
    assert {f["properties"]["stream"] for f in flows} == {"kitchen"}


@pytest.mark.parametrize(("inputs", "status", "name"), [
    ({"stream": "plastic"}, 400, "stream"),
    ({"basis": "guess"}, 400, "basis"),
    ({"basis": None}, 400, "basis"),
    ({"stream": None}, 400, "stream"),
    ({"stream": []}, 400, "stream"),
    ({"day": []}, 400, "day"),
    ({"warning_ratio": 1e308}, 400, "warning_ratio"),
    ({"basis": "forecast", "day": "2020-01-01"}, 400, "day: a forecast plan is for 1 to 28"),
    ({"day": "2026-13-01"}, 400, "day"),
    ({"day": "1990-01-01"}, 400, "day: no readings on 1990-01-01"),
    ({"warning_ratio": 0}, 400, "warning_ratio"),
    ({"warning_ratio": "high"}, 400, "warning_ratio"),
    ({"scenario": "00000000-0000-0000-0000-000000000000"}, 404, "scenario"),
])
def test_bad_input_names_the_input(admin: Any, inputs: dict[str, Any], status: int,  # noqa: F811
                                   name: str) -> None:
    before = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    r = admin.post(f"/processes/{PROCESS}/execution", json={"inputs": inputs},
                   headers={"Prefer": "respond-async"})
    assert r.status_code == status, r.text
    assert name in r.json()["description"], r.json()
    after = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    assert len(after) == len(before)


def test_a_what_if_is_compared_with_the_base(admin: Any, city: str) -> None:  # noqa: F811
    """The issue's three what-ifs in one stored scenario — the busiest other-waste station
    out of service, the incinerator at half capacity, a new station — compared with the
    base day through /scenarios/{id}/compare: the closed station carries nothing, the
    plant at most half, every tonne is still placed or reported, and the differences name
    the closed station's flows as removed."""
    with psycopg.connect(city, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute(
            "SELECT id, kind, stream, treatment, capacity_t_per_day::float8 AS cap, "
            "ST_X(geom) AS lon, ST_Y(geom) AS lat FROM onemap.refuse_facility "
            "WHERE kind <> 'refuse_building' ORDER BY id").fetchall()
    base = admin.post(f"/processes/{PROCESS}/execution",
                      json={"inputs": {"stream": "other"}, "response": "document"}).json()
    loads = {f["properties"]["facility_id"]: f["properties"]["load_t"]
             for f in base["facilities"]["value"]["features"]}
    stations = [r for r in rows if r["kind"] == "transfer_station" and r["stream"] == "other"]
    busiest = max(stations, key=lambda r: loads[r["id"]])
    plant = next(r for r in rows if r["treatment"] == "incineration")
    scenario = admin.post("/scenarios", json={"name": "转运站停运 / station out", "edits": [
        {"type": "remove_facility", "collection": "refuse_facility", "id": busiest["id"]},
        {"type": "set_capacity", "collection": "refuse_facility", "id": plant["id"],
         "capacity": plant["cap"] / 2},
        {"type": "add_facility", "collection": "refuse_facility",
         "point": {"x": busiest["lon"] + 0.004, "y": busiest["lat"], "crs": "EPSG:4490"},
         "attributes": {"name": "新转运站", "capacity": 20}}]})
    assert scenario.status_code == 201, scenario.text
    sid = scenario.json()["id"]
    r = admin.post(f"/scenarios/{sid}/compare",
                   json={"process": PROCESS, "inputs": {"stream": "other"}})
    assert r.status_code == 200, r.text
    out = r.json()
    before, after = out["base"]["summary"], out["with_scenario"]["summary"]
    assert after["refuse_t"] == pytest.approx(before["refuse_t"])
    facilities = {f["properties"]["facility_id"]: f["properties"]
                  for f in out["with_scenario"]["facilities"]["features"]}
    assert busiest["id"] not in facilities
    assert facilities[plant["id"]]["capacity_t"] == pytest.approx(plant["cap"] / 2)
    assert facilities[plant["id"]]["load_t"] <= plant["cap"] / 2 + 1e-6
    new = [p for p in facilities.values() if p["facility_id"] < 0]
    assert len(new) == 1 and new[0]["stream"] == "other"
    placed = sum(p["load_t"] for p in facilities.values() if p["kind"] == "transfer_station")
    assert placed + after["unplaced_t"] == pytest.approx(after["refuse_t"], abs=0.01)
    numbers = out["differences"]["summary"]["numbers"]
    assert numbers["tonne_km"]["base"] == pytest.approx(before["tonne_km"])
    removed = set(out["differences"]["flows"]["removed"])
    assert any(fid.split("-")[0] == str(busiest["id"]) or fid.split("-")[1] == str(busiest["id"])
               for fid in removed), removed
