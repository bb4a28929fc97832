"""OGC API Processes through the real application: locate and grid-statistics on the
tiny city (known answers as in tests/scenarios), sync and async execution, jobs
stored in PostgreSQL (status, progress, results, dismissal, expiry), surviving a
restart, requeued after a worker died, run as their submitter under row-level
security, and bad inputs answered 400 with the reason."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from spatial import jobs
from spatial.access import ANONYMOUS
from spatial.crs import wgs84_to_gcj02
from spatial.db import connect

POINT = {"x": 116.465, "y": 39.9225}  # inside the first grid, western compound
WEST = {"type": "Polygon", "coordinates": [[[116.46, 39.915], [116.4695, 39.915],
                                            [116.4695, 39.93], [116.46, 39.93],
                                            [116.46, 39.915]]]}
ASYNC = {"Prefer": "respond-async"}


def execute(client: TestClient, process: str, inputs: dict[str, Any],
            headers: dict[str, str] | None = None) -> Any:
    return client.post(f"/processes/{process}/execution", json={"inputs": inputs},
                       headers=headers or {})


def job_id_of(response: Any) -> str:
    location = response.headers["location"]
    assert "/jobs/" in location
    return str(location.rsplit("/", 1)[1])


def wait_for(client: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it has finished (a bound on waiting, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job_id}", params={"f": "json"}).json()
        if status["status"] in ("successful", "failed") or time.monotonic() > deadline:
            return dict(status)
        time.sleep(0.05)


def unit_id(db: str, table: str, name: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(f"SELECT id FROM onemap.{table} WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def job_rows(db: str) -> int:
    with psycopg.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM onemap.job").fetchone()[0])  # type: ignore[index]


# --- descriptions ----------------------------------------------------------------


def test_both_processes_are_described_with_schemas(client: TestClient) -> None:
    listed = client.get("/processes", params={"f": "json"}).json()["processes"]
    assert {p["id"] for p in listed} >= {"locate", "grid-statistics"}
    locate = client.get("/processes/locate", params={"f": "json"},
                        headers={"Accept-Language": "en"}).json()
    assert locate["title"] == "Locate a point (jurisdiction)"
    assert set(locate["inputs"]) == {"x", "y", "crs", "tolerance_m"}
    assert locate["inputs"]["tolerance_m"]["schema"]["minimum"] == 0
    assert {"sync-execute", "async-execute"} <= set(locate["jobControlOptions"])
    zh = client.get("/processes/grid-statistics", params={"f": "json"}).json()  # default: zh
    assert zh["title"] == "网格统计"
    assert zh["inputs"]["depth"]["schema"]["enum"] == ["community", "grid", "building"]


# --- synchronous execution, known answers ------------------------------------------


def test_locate_answers_district_street_community_grid_and_address(
        staff_client: TestClient) -> None:
    r = execute(staff_client, "locate", POINT)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["district"]["name"] == "朝阳区(演示)"
    assert got["street_office"]["name"] == "示范街道"
    assert got["community"]["name"] == "示范社区"
    assert got["grid"]["name"] == "第一网格" and got["grid"]["inside"]
    assert got["ambiguous"] is False
    assert [g["name"] for g in got["candidates"]["grid"]] == ["第一网格"]
    assert got["building"]["address"].startswith("示范路 1 号")
    assert got["building"]["distance_m"] < 300
    household = got["household"]
    assert "-" in household["room_no"]
    assert household["address"].startswith("示范路 1 号")
    assert household["address"].endswith(f" {household['room_no']}")
    assert got["point"]["coordinates"] == [116.465, 39.9225]

    # a synchronous execution is a job too: recorded, with the same result
    job = job_id_of(r)
    status = staff_client.get(f"/jobs/{job}", params={"f": "json"}).json()
    assert (status["status"], status["progress"], status["processID"]) == (
        "successful", 100, "locate")
    assert staff_client.get(f"/jobs/{job}/results", params={"f": "json"}).json() == got


def test_locate_boundary_candidates_and_chinese_base_map_coordinates(client: TestClient) -> None:
    near = execute(client, "locate", {"x": 116.47006, "y": 39.92}).json()
    assert [g["name"] for g in near["candidates"]["grid"]] == ["第二网格", "第一网格"]
    first, second = near["candidates"]["grid"]
    assert first["inside"] and not second["inside"] and 3 < second["distance_m"] < 8
    assert near["ambiguous"] is True
    exact = execute(client, "locate", {"x": 116.47006, "y": 39.92, "tolerance_m": 0}).json()
    assert exact["ambiguous"] is False

    gx, gy = wgs84_to_gcj02(POINT["x"], POINT["y"])
    for crs in ("gcj02", "GCJ-02"):
        r = execute(client, "locate", {"x": float(gx), "y": float(gy), "crs": crs}).json()
        assert r["grid"]["name"] == "第一网格"
        assert r["point"]["coordinates"] == pytest.approx([POINT["x"], POINT["y"]], abs=1e-7)
    # the same numbers taken for WGS84 land ~500 m away
    wrong = execute(client, "locate", {"x": float(gx), "y": float(gy)}).json()
    assert wrong["point"]["coordinates"][0] == pytest.approx(float(gx))


def test_grid_statistics_drill_down_known_answers(staff_client: TestClient,
                                                  tiny_city_db: str) -> None:
    office = unit_id(tiny_city_db, "street_office", "示范街道")
    r = execute(staff_client, "grid-statistics", {"level": "street_office", "unit_id": office})
    assert r.status_code == 200, r.text
    # two outputs, none selected: both, keyed by output id
    assert set(r.json()) == {"statistics", "units"}
    root = r.json()["statistics"]
    assert (root["households"], root["occupied"], root["residents"]) == (96, 80, 80)
    assert root["events"] == {"reported": 1} and root["as_of"]
    [community] = root["children"]
    assert community["name"] == "示范社区"
    grids = {g["name"]: g for g in community["children"]}
    assert (grids["第一网格"]["households"], grids["第一网格"]["residents"]) == (48, 40)
    assert grids["第一网格"]["events"] == {"reported": 1} and grids["第二网格"]["events"] == {}
    assert len(grids["第二网格"]["children"]) == 4
    assert {b["level"] for b in grids["第二网格"]["children"]} == {"building"}

    area = execute(staff_client, "grid-statistics", {"polygon": WEST}).json()["statistics"]
    assert (area["level"], area["households"], area["residents"]) == ("area", 48, 40)
    shallow = execute(staff_client, "grid-statistics", {
        "level": "community", "unit_id": community["id"], "depth": "grid",
        "as_of": "2024-06-30"}).json()["statistics"]
    assert shallow["as_of"] == "2024-06-30"
    assert all(g["children"] == [] for g in shallow["children"])


# --- asynchronous execution ------------------------------------------------------


def test_async_execution_is_a_job_with_status_and_results(staff_client: TestClient,
                                                          tiny_city_db: str) -> None:
    office = unit_id(tiny_city_db, "street_office", "示范街道")
    r = execute(staff_client, "grid-statistics", {"level": "street_office", "unit_id": office},
                headers=ASYNC)
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "respond-async"
    job = job_id_of(r)
    assert r.json() == {"jobID": job, "type": "process", "status": "accepted"}

    status = wait_for(staff_client, job)
    assert (status["status"], status["progress"]) == ("successful", 100)
    assert status["processID"] == "grid-statistics" and status["finished"]
    result = staff_client.get(f"/jobs/{job}/results", params={"f": "json"})
    assert result.status_code == 200
    tree = result.json()["statistics"]
    assert (tree["households"], tree["residents"]) == (96, 80)
    listed = staff_client.get("/jobs", params={"f": "json"}).json()["jobs"]
    assert job in [j["jobID"] for j in listed]


def test_a_job_runs_as_its_submitter_under_row_level_security(
        make_client: Any, staff_client: TestClient, tiny_city_db: str) -> None:
    first_grid = unit_id(tiny_city_db, "grid", "第一网格")
    office = unit_id(tiny_city_db, "street_office", "示范街道")
    worker = make_client(["grid_worker"], [("grid", first_grid)])
    inputs = {"level": "street_office", "unit_id": office}
    counted = {}
    for name, who in (("grid worker", worker), ("district admin", staff_client)):
        job = job_id_of(execute(who, "grid-statistics", inputs, headers=ASYNC))
        assert wait_for(who, job)["status"] == "successful"
        result = who.get(f"/jobs/{job}/results", params={"f": "json"}).json()
        counted[name] = result["statistics"]["households"]
    # the worker thread ran each job as its submitter: the grid worker's own grid only
    assert counted == {"grid worker": 48, "district admin": 96}


def test_jobs_are_private_to_their_submitter(make_client: Any, staff_client: TestClient) -> None:
    analyst = make_client(["analyst"])
    anonymous = make_client([])
    job = job_id_of(execute(analyst, "locate", POINT, headers=ASYNC))
    assert wait_for(analyst, job)["status"] == "successful"
    for stranger in (anonymous, make_client(["analyst"])):
        assert stranger.get(f"/jobs/{job}", params={"f": "json"}).status_code == 404
        assert stranger.get(f"/jobs/{job}/results", params={"f": "json"}).status_code == 404
        assert stranger.delete(f"/jobs/{job}").status_code == 404
        listed = stranger.get("/jobs", params={"f": "json"}).json()["jobs"]
        assert job not in [j["jobID"] for j in listed]
    # a district administrator sees every job
    assert staff_client.get(f"/jobs/{job}", params={"f": "json"}).status_code == 200


def test_dismissed_job_is_gone(client: TestClient, tiny_city_db: str) -> None:
    job = job_id_of(execute(client, "locate", POINT, headers=ASYNC))
    wait_for(client, job)
    r = client.delete(f"/jobs/{job}")
    assert r.status_code == 200
    assert (r.json()["jobID"], r.json()["status"]) == (job, "dismissed")
    assert client.get(f"/jobs/{job}", params={"f": "json"}).status_code == 404
    assert client.get(f"/jobs/{job}/results", params={"f": "json"}).status_code == 404
    assert client.delete(f"/jobs/{job}").status_code == 404
    with psycopg.connect(tiny_city_db) as conn:
        row = conn.execute("SELECT status, result FROM onemap.job WHERE id = %s",
                           (job,)).fetchone()
    assert row == ("dismissed", None)
    assert client.get("/jobs/not-a-job", params={"f": "json"}).status_code == 404


def test_progress_of_a_running_job_shows_in_its_status(tiny_city_db: str) -> None:
    idle = TestClient(create_app_without_worker())  # no lifespan: no worker runs it
    job = job_id_of(execute(idle, "grid-statistics", {"polygon": WEST}, headers=ASYNC))
    with connect(tiny_city_db, autocommit=True) as conn:
        claimed = jobs.claim_next(conn, "test-worker")
        assert claimed is not None and str(claimed.id) == job
        jobs.heartbeat(conn, claimed.id, "test-worker", progress=40, message="counting / 统计中")
    status = idle.get(f"/jobs/{job}", params={"f": "json"}).json()
    assert (status["status"], status["progress"], status["message"]) == (
        "running", 40, "counting / 统计中")
    r = idle.get(f"/jobs/{job}/results", params={"f": "json"})
    assert r.status_code == 404 and "ResultNotReady" in r.text


# --- durability ------------------------------------------------------------------


def create_app_without_worker() -> Any:
    """An application whose lifespan is never run (so no job worker): a server that
    accepts jobs and goes away before running them."""
    from server.app import create_app

    return create_app()


def test_a_job_survives_a_restart(tiny_city_db: str) -> None:
    before = TestClient(create_app_without_worker())
    job = job_id_of(execute(before, "locate", POINT, headers=ASYNC))
    assert before.get(f"/jobs/{job}", params={"f": "json"}).json()["status"] == "accepted"
    del before  # the server goes away; the job is in the database

    from server.app import create_app

    with TestClient(create_app()) as after:  # a new server, its worker started
        listed = after.get("/jobs", params={"f": "json"}).json()["jobs"]
        assert job in [j["jobID"] for j in listed]
        assert wait_for(after, job)["status"] == "successful"
        result = after.get(f"/jobs/{job}/results", params={"f": "json"}).json()
    assert result["grid"]["name"] == "第一网格"


def test_a_job_whose_worker_died_runs_again(tiny_city_db: str) -> None:
    idle = TestClient(create_app_without_worker())
    job = job_id_of(execute(idle, "locate", POINT, headers=ASYNC))
    with connect(tiny_city_db, autocommit=True) as conn:
        assert jobs.claim_next(conn, "killed-server") is not None  # then it was killed:
        conn.execute("UPDATE onemap.job SET lease_until = now() - interval '1 second'")

    from server.app import create_app

    with TestClient(create_app()) as restarted:  # its worker requeues at start-up
        status = wait_for(restarted, job)
    assert status["status"] == "successful"
    with psycopg.connect(tiny_city_db) as conn:
        attempts, worker = conn.execute("SELECT attempts, worker FROM onemap.job WHERE id = %s",
                                        (job,)).fetchone()  # type: ignore[misc]
    assert attempts == 2 and worker != "killed-server"


def test_expired_jobs_are_gone_and_purged(client: TestClient, tiny_city_db: str) -> None:
    job = job_id_of(execute(client, "locate", POINT))
    assert client.get(f"/jobs/{job}", params={"f": "json"}).status_code == 200
    with connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.job SET expires_at = now() - interval '1 second' "
                     "WHERE id = %s", (job,))
        assert client.get(f"/jobs/{job}", params={"f": "json"}).status_code == 404
        assert client.get(f"/jobs/{job}/results", params={"f": "json"}).status_code == 404
        worker = jobs.JobWorker({}, conninfo=tiny_city_db)
        assert worker.maintain() == (0, 0, 1)
        assert conn.execute("SELECT count(*) AS n FROM onemap.job").fetchone()["n"] == 0


def test_finished_jobs_expire_after_the_configured_retention(
        client: TestClient, tiny_city_db: str) -> None:
    job = job_id_of(execute(client, "locate", POINT))
    with connect(tiny_city_db, autocommit=True) as conn:
        row = conn.execute("SELECT expires_at - finished_at AS kept FROM onemap.job "
                           "WHERE id = %s", (job,)).fetchone()
        assert row["kept"] == timedelta(hours=168)
        assert jobs.get(conn, job, ANONYMOUS).status == "successful"


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("process", "inputs", "reason"), [
    ("locate", {"x": 116.465}, "'y' is a required property"),
    ("locate", {"x": "east", "y": 39.9}, "x: 'east' is not of type 'number'"),
    ("locate", {**POINT, "z": 1}, "'z' was unexpected"),
    ("locate", {**POINT, "tolerance_m": -1}, "tolerance_m: -1 is less than the minimum of 0"),
    ("locate", {**POINT, "crs": "EPSG:999999"}, "crs"),
    ("locate", {**POINT, "crs": "mars2000"}, "crs"),
    ("grid-statistics", {}, "give either level and unit_id, or polygon"),
    ("grid-statistics", {"level": "community"}, "give either level and unit_id, or polygon"),
    ("grid-statistics", {"level": "community", "unit_id": 1, "polygon": WEST}, "give either"),
    ("grid-statistics", {"level": "province", "unit_id": 1}, "level: 'province' is not one of"),
    ("grid-statistics", {"level": "grid", "unit_id": 1, "depth": "room"}, "depth"),
    ("grid-statistics", {"level": "grid", "unit_id": 1, "as_of": "yesterday"},
     "as_of: 'yesterday' is not a 'date'"),
    ("grid-statistics", {"polygon": {"type": "Point", "coordinates": [116.4, 39.9]}},
     "polygon.type"),
    ("grid-statistics", {"polygon": {"type": "Polygon", "coordinates": [[[116.46, 39.915],
                         [116.47, 39.93], [116.47, 39.915], [116.46, 39.93], [116.46, 39.915]]]}},
     "polygon is not valid: Self-intersection"),
    ("grid-statistics", {"polygon": {"type": "Polygon", "coordinates": [[[1, 2], [3]]]}},
     "polygon"),
])
def test_invalid_inputs_are_400_with_the_reason(client: TestClient, tiny_city_db: str,
                                                process: str, inputs: dict[str, Any],
                                                reason: str) -> None:
    before = job_rows(tiny_city_db)
    for headers in (None, ASYNC):  # async too: refused before anything is queued
        r = execute(client, process, inputs, headers)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "InvalidParameterValue"
        assert reason in r.json()["description"], r.json()["description"]
    assert job_rows(tiny_city_db) == before


def test_unknown_unit_and_malformed_request(client: TestClient) -> None:
    r = execute(client, "grid-statistics", {"level": "grid", "unit_id": 999_999})
    assert r.status_code == 404 and "no grid with id 999999" in r.json()["description"]
    r = client.post("/processes/locate/execution", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert client.post("/processes/nope/execution", json={"inputs": {}}).status_code == 404


def test_a_failing_process_answers_a_safe_message_and_logs_details(
        client: TestClient, tiny_city_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:  # break the database
        conn.execute("DROP FUNCTION onemap.building_statistics")
    with caplog.at_level(logging.ERROR, logger="spatial.jobs"):
        r = execute(client, "grid-statistics", {"polygon": WEST})
    assert r.status_code == 500
    body = r.json()["description"]
    job = job_id_of_failed(tiny_city_db)
    assert job in body and "details are in the server log" in body
    for leak in ("building_statistics", "onemap.", "SELECT", "postgresql", "/work", "/var"):
        assert leak not in body, leak
    assert "building_statistics" in caplog.text  # the details went to the log
    status = client.get(f"/jobs/{job}", params={"f": "json"}).json()
    assert status["status"] == "failed" and status["message"] == body
    assert client.get(f"/jobs/{job}/results", params={"f": "json"}).status_code == 400


def job_id_of_failed(db: str) -> str:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT id FROM onemap.job WHERE status = 'failed'").fetchone()
    assert row is not None
    return str(row[0])
