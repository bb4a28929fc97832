"""``refuse-flow`` over HTTP, on the generated S city (seed 1):

- a synchronous run answers every declared output, valid against its schema, and the
  flows carry every tonne of the day's readings;
- bad input is a 400 (or a 404 for a scenario) naming the input, before any job is
  recorded.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

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


@pytest.mark.parametrize(("inputs", "status", "name"), [
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
