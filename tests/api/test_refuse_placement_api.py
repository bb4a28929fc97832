"""``refuse-placement`` over HTTP, on the generated S city (seed 1) with its refuse buildings:

- an async run (``Prefer: respond-async``) polled to its end answers every declared
  output, valid against its schema; the sites are a map layer;
- the process is async-only: a request without the preference is accepted as a job;
- a grid worker's analysis counts only the homes of their grid;
- a scenario's edits apply; capacities that cannot serve the demand are an answer
  (``infeasible`` with the reason), not a failure;
- bad input is a 400 (or a 404 for a unit) naming the input, before any job is recorded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from scenarios.processes.registry import PROCESSES
from spatial.db import connect
from tests.api.test_process_platform import check_outputs

ASYNC = {"Prefer": "respond-async"}
PROCESS = "refuse-placement"


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 (with its refuse facilities)."""
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, "refuse_api", steps=("refuse",)) as made:
        yield made[0]


@pytest.fixture
def make_client(city: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Clients of the real application on the S city, each acting as a new user."""
    from starlette.testclient import TestClient

    from server.app import create_app
    from spatial import auth, users
    from tests.conftest import ClientAs

    monkeypatch.setenv("DATABASE_URL", city)
    with TestClient(create_app()) as client:

        def make(roles: list[str], scopes: list[tuple[str, int]]) -> ClientAs:
            with connect(city) as conn, conn.transaction():
                name = f"rp{uuid.uuid4().hex[:8]}"
                users.create_user(conn, name, None, roles=roles, scopes=scopes)
                key = auth.create_api_key(conn, name, label="test")
            return ClientAs(client, {"X-API-Key": key.key})

        yield make


@pytest.fixture
def admin(make_client: Callable[..., Any], city: str) -> Any:
    with psycopg.connect(city) as conn:
        (district,) = conn.execute("SELECT min(id) FROM onemap.district").fetchone()  # type: ignore[misc]
    return make_client(["district_admin"], [("district", district)])


def submit(client: Any, inputs: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    r = client.post(f"/processes/{PROCESS}/execution",
                    json={"inputs": inputs, "response": "document"},
                    headers=ASYNC if headers is None else headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


def finished(client: Any, job: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the job until it ends (a bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job}", params={"f": "json"}).json()
        if status["status"] in ("successful", "failed", "dismissed") \
                or time.monotonic() > deadline:
            return dict(status)
        time.sleep(0.1)


def results(client: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    job = submit(client, inputs)
    status = finished(client, job)
    assert status["status"] == "successful", status
    r = client.get(f"/jobs/{job}/results", params={"f": "json"})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    return {k: v["value"] for k, v in document.items()} | {"job": job}


def residential(city: str, grid: int | None = None) -> tuple[int, int]:
    """Residential buildings and households (of one grid, sub-grids included), as the owner."""
    with psycopg.connect(city) as conn:
        row = conn.execute(
            "WITH RECURSIVE sub AS (SELECT id FROM onemap.grid WHERE id = %(g)s OR %(g)s IS NULL"
            " UNION SELECT g.id FROM onemap.grid g JOIN sub ON g.parent_id = sub.id) "
            "SELECT count(DISTINCT b.id), count(*) FROM onemap.building b "
            "JOIN onemap.household h ON h.building_id = b.id "
            "WHERE b.grid_id IN (SELECT id FROM sub)", {"g": grid}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_async_run_answers_the_layout(admin: Any, city: str) -> None:
    out = results(admin, {"level": "community", "unit_id": 1, "model": "coverage",
                          "mode": "add", "k": 1})
    summary = out["summary"]
    assert (summary["model"], summary["mode"], summary["status"]) == ("coverage", "add",
                                                                     "optimal")
    assert summary["gap"] == 0.0 and summary["objective"] == summary[
        "households_within_reach_after"]
    assert (summary["buildings"], summary["households"]) == residential(city)
    assert len(summary["sites_opened"]) == 1 and summary["sites_closed"] == []
    assert summary["households_within_reach_after"] > summary["households_within_reach_before"]
    statuses = [f["properties"]["status"] for f in out["sites"]["features"]]
    assert statuses.count("new") == 1 and statuses.count("existing") == summary["existing"]
    assert len(out["assignments"]["features"]) == summary["buildings"]
    beyond = summary["households"] - summary["households_within_reach_after"]
    assert sum(f["properties"]["households"] for f in out["gaps"]["features"]) == beyond
    rows = {r[0]: r[1:] for r in out["comparison"]["rows"]}
    assert rows["sites"] == [summary["existing"], summary["existing"] + 1, 1]
    # the sites are a map layer
    layer = admin.get(f"/jobs/{out['job']}/results/sites/items")
    assert layer.status_code == 200, layer.text
    assert layer.json()["numberMatched"] == len(out["sites"]["features"])


def test_async_only_accepts_a_request_without_preference(admin: Any) -> None:
    r = admin.post(f"/processes/{PROCESS}/execution",
                   json={"inputs": {"level": "community", "unit_id": 1, "mode": "current"}})
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "respond-async"
    status = finished(admin, r.headers["location"].rsplit("/", 1)[1])
    assert status["status"] == "successful", status


def test_a_grid_workers_scope_limits_the_demand(make_client: Callable[..., Any],
                                                city: str) -> None:
    worker = make_client(["grid_worker"], [("grid", 2)])
    summary = results(worker, {"level": "community", "unit_id": 1, "model": "p-median",
                               "mode": "current"})["summary"]
    assert (summary["buildings"], summary["households"]) == residential(city, grid=2)
    assert summary["buildings"] < residential(city)[0]


def test_a_scenario_applies_and_short_capacities_are_an_answer(admin: Any, city: str) -> None:
    with psycopg.connect(city) as conn:
        existing = [i for (i,) in conn.execute(
            "SELECT id FROM onemap.refuse_facility WHERE kind = 'refuse_building' ORDER BY id")]
    made = admin.post("/scenarios", json={"name": "垃圾楼减容 / less capacity", "edits": [
        {"type": "remove_facility", "collection": "refuse_facility", "id": existing[0]},
        *({"type": "set_capacity", "collection": "refuse_facility", "id": i, "capacity": 0.5}
          for i in existing[1:])]})
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    current = results(admin, {"level": "community", "unit_id": 1, "mode": "current",
                              "scenario": sid})["summary"]
    assert current["sites_closed"] == [existing[0]] and current["scenario"] == sid
    out = results(admin, {"level": "community", "unit_id": 1, "model": "capacitated",
                          "mode": "add", "k": 1, "new_capacity_t": 0.5, "candidates": "corners",
                          "scenario": sid})
    summary = out["summary"]
    assert summary["status"] == "infeasible" and "cannot serve the demand" in summary["message"]
    assert summary["objective"] is None and summary["sites_opened"] == []
    over = [f for f in out["sites"]["features"] if f["properties"]["over_capacity"]]
    assert over  # the scenario's layout, drawn with its overloaded refuse buildings


@pytest.mark.parametrize(("inputs", "status", "name"), [
    ({"mode": "optimise", "p": 4000}, 400, "p: p=4000 is larger than the"),
    ({"mode": "add", "k": 400}, 400, "k: k=400 is larger than the"),
    ({"reach_m": -5}, 400, "reach_m"),
    ({"model": "median"}, 400, "model"),
    ({"mode": "close", "close": [987654]}, 400, "close: 987654 is not a refuse building"),
    ({"mode": "close", "close": ["transfer"]}, 400, "close:"),
    ({"mode": "close"}, 400, "close: give the refuse buildings"),
    ({"mode": "add", "close": ["refuse"]}, 400, "close: is for mode close only"),
    ({"unit_id": 987654}, 404, "unit_id"),
    ({"level": None, "unit_id": None,
      "polygon": {"type": "Polygon", "coordinates": "empty"}}, 400, "polygon: no residential"),
    ({"candidate_points": {"type": "MultiPoint", "coordinates": [[120.0, 30.0]]}}, 400,
     "candidate_points: point 1 is outside the city"),
    ({"candidate_crs": "mars"}, 400, "candidate_crs"),
    ({"time_limit_s": 601}, 400, "time_limit_s"),
])
def test_bad_input_names_the_input(admin: Any, city: str, inputs: dict[str, Any], status: int,
                                   name: str) -> None:
    with psycopg.connect(city) as conn:
        kinds = dict(conn.execute(
            "SELECT DISTINCT ON (kind) kind, id FROM onemap.refuse_facility ORDER BY kind, id"
        ).fetchall())
        # a patch of the city without homes: around a road end far from any building
        (empty,) = conn.execute(
            "SELECT ST_AsGeoJSON(ST_Buffer(ST_StartPoint(r.geom)::geography, 15)::geometry) "
            "FROM onemap.road r WHERE NOT EXISTS (SELECT 1 FROM onemap.building b "
            "WHERE ST_DWithin(b.geom::geography, ST_StartPoint(r.geom)::geography, 60)) "
            "ORDER BY r.id LIMIT 1").fetchone()  # type: ignore[misc]
    body: dict[str, Any] = {"level": "community", "unit_id": 1, **inputs}
    if "close" in body:
        body["close"] = [{"transfer": kinds["transfer_station"],
                          "refuse": kinds["refuse_building"]}.get(c, c) for c in body["close"]]
    if "polygon" in body:
        import json

        body["polygon"] = json.loads(empty)
    body = {k: v for k, v in body.items() if v is not None}
    if "candidate_crs" in body:
        body["candidate_points"] = {"type": "MultiPoint", "coordinates": [[116.4, 39.9]]}
    before = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    r = admin.post(f"/processes/{PROCESS}/execution", json={"inputs": body}, headers=ASYNC)
    assert r.status_code == status, r.text
    assert name in r.json()["description"], r.json()
    after = admin.get("/jobs", params={"f": "json"}).json().get("jobs", [])
    assert len(after) == len(before)  # refused before a job was recorded
