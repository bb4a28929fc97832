"""The process platform over HTTP (scenarios/processes, spatial/jobs.py, the manager):

- the registry: every declared process is configured, and its example runs over HTTP,
  sync and async where it allows, its outputs valid against their declared schemas;
- job control: an async-only process answers 201 to a request without a preference;
- outputs: ``response=raw`` with one selected output is that output in its media type,
  ``response=document`` a results document, unknown outputs a 400 naming them;
- cooperative cancellation: ``DELETE /jobs/{id}`` stops a running job's work (a long
  SQL statement, or a loop at its progress reports) and nothing it wrote stays;
- progress: stage names and fractions in the job's status;
- bad input for each shared input type: a 400/404 naming the input.

A probe process (declared here, registered for these tests only) writes a row, then
waits — in SQL or in a loop reporting progress — so that cancellation can be seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import yaml
from starlette.testclient import TestClient

from scenarios.processes import registry
from scenarios.processes.base import (
    ASYNC,
    SYNC,
    IdSetInput,
    Process,
    ProcessResult,
    Progress,
    ScenarioInput,
    Stage,
    SummaryOutput,
    Table,
    TableOutput,
    TimeWindowInput,
    Value,
    json_schema,
)

ASYNC_HEADERS = {"Prefer": "respond-async"}
ROOT = Path(__file__).resolve().parents[2]


def execute(client: Any, process: str, inputs: Mapping[str, Any], *,
            headers: dict[str, str] | None = None, **body: Any) -> Any:
    return client.post(f"/processes/{process}/execution",
                       json={"inputs": dict(inputs), **body}, headers=headers or {})


def job_id_of(response: Any) -> str:
    return str(response.headers["location"].rsplit("/", 1)[1])


def wait_for(client: Any, job: str, statuses: tuple[str, ...] = ("successful", "failed"),
             timeout: float = 60) -> dict[str, Any]:
    """Poll a job's status until it is one of ``statuses`` (a bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job}", params={"f": "json"}).json()
        if status.get("status") in statuses or time.monotonic() > deadline:
            return dict(status)
        time.sleep(0.05)


def check_outputs(process: Process, document: Mapping[str, Any],
                  selected: set[str] | None = None) -> None:
    """A results document holds each (selected) declared output, valid against its schema."""
    described = process.describe()["outputs"]
    assert set(document) == (selected or set(described)), document.keys()
    for output_id, qualified in document.items():
        schema = described[output_id]["schema"]
        assert qualified["mediaType"] == schema["contentMediaType"]
        jsonschema.validate(qualified["value"], json_schema(schema),
                            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


# --- the registry ---------------------------------------------------------------------


def configured_processes() -> dict[str, dict[str, Any]]:
    with (ROOT / "pygeoapi-config.yml").open(encoding="utf-8") as fh:
        resources = yaml.safe_load(fh)["resources"]
    return {k: v for k, v in resources.items() if v.get("type") == "process"}


def test_configuration_and_registry_agree() -> None:
    from pygeoapi.plugin import load_plugin

    from scenarios.processes.adapter import ProcessAdapter

    configured = configured_processes()
    assert set(configured) == set(registry.PROCESSES)
    for process_id, resource in configured.items():
        adapter = load_plugin("process", resource["processor"])
        assert isinstance(adapter, ProcessAdapter)
        assert adapter.process is registry.PROCESSES[process_id]
        assert adapter.metadata["id"] == process_id
    # configurations written before the adapter name the processes' earlier classes
    from scenarios.processes import GridStatisticsProcessor, LocateProcessor

    for old, process_id in ((LocateProcessor, "locate"),
                            (GridStatisticsProcessor, "grid-statistics")):
        name = f"scenarios.processes.{old.__name__}"
        assert load_plugin("process", {"name": name}).process is registry.PROCESSES[process_id]


@pytest.mark.parametrize("process_id", sorted(registry.PROCESSES))
def test_every_process_example_runs_and_matches_its_schemas(
        staff_client: Any, process_id: str) -> None:
    process = registry.PROCESSES[process_id]
    assert process.example is not None, f"{process_id} declares no example"
    process.parse(process.example)  # the example is valid input
    description = staff_client.get(f"/processes/{process_id}", params={"f": "json"}).json()
    assert description["example"] == {"inputs": dict(process.example)}
    assert description["jobControlOptions"] == list(process.job_control)
    assert set(description["outputs"]) == {o.id for o in process.outputs}

    if SYNC in process.job_control:
        r = execute(staff_client, process_id, process.example, response="document")
        assert r.status_code == 200, r.text
        check_outputs(process, r.json())
        for output in process.outputs:  # each output alone, raw: its value, its media type
            r = execute(staff_client, process_id, process.example, outputs={output.id: {}})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith(output.media_type)
            jsonschema.validate(r.json(), json_schema(output.schema()))
    if ASYNC in process.job_control:
        r = execute(staff_client, process_id, process.example, headers=ASYNC_HEADERS,
                    response="document")
        assert r.status_code == 201, r.text
        job = job_id_of(r)
        assert wait_for(staff_client, job)["status"] == "successful"
        results = staff_client.get(f"/jobs/{job}/results", params={"f": "json"})
        check_outputs(process, results.json())


def test_a_process_without_an_example_fails_the_registry_test() -> None:
    broken = Process(id="no-example", title={"en": "x", "zh": "x"},
                     description={"en": "x", "zh": "x"}, inputs=(Value(
                         "n", {"en": "n", "zh": "n"}, {"en": "", "zh": ""},
                         {"type": "integer"}, required=True),),
                     outputs=(SummaryOutput("out", {"en": "", "zh": ""}, {"en": "", "zh": ""}),),
                     run=lambda conn, inputs, progress: ProcessResult(),
                     example={})  # an empty example: the required input is missing
    with pytest.raises(Exception, match="'n' is a required property"):
        broken.parse(broken.example)


# --- a probe process, for these tests ----------------------------------------------------

PROBE_TABLE = "process_probe"


def _probe(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
           progress: Progress) -> ProcessResult:
    progress.stage("write")
    conn.execute("INSERT INTO public.process_probe (tag) VALUES (%s)", (inputs["tag"],))
    progress.stage("wait")
    seconds = inputs["seconds"]
    if inputs["how"] == "sql":
        conn.execute("SELECT pg_sleep(%s)", (seconds,))
    else:
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            progress.advance(elapsed / seconds)
            time.sleep(0.05)
    window = inputs["period"]
    return ProcessResult(
        summary={"tag": inputs["tag"], "households": list(inputs["households"] or ())},
        tables={"echo": Table(("name", "value"), [
            ("tag", inputs["tag"]),
            ("period", None if window is None else f"{window.start}/{window.end}")])})


def _probe_process(process_id: str, job_control: tuple[str, ...]) -> Process:
    return Process(
        id=process_id, title={"en": "Probe", "zh": "探针"},
        description={"en": "Writes a row, then waits.", "zh": "写一行，然后等待。"},
        inputs=(
            Value("tag", {"en": "Tag", "zh": "标记"}, {"en": "", "zh": ""},
                  {"type": "string", "maxLength": 40}, required=True),
            Value("seconds", {"en": "Wait (s)", "zh": "等待（秒）"}, {"en": "", "zh": ""},
                  {"type": "number", "minimum": 0, "maximum": 120, "default": 0}),
            Value("how", {"en": "How to wait", "zh": "等待方式"}, {"en": "", "zh": ""},
                  {"type": "string", "enum": ["sql", "loop"], "default": "sql"}),
            IdSetInput("households", collection="household", required=False, max_items=5),
            TimeWindowInput("period", max_days=31),
            ScenarioInput(),
        ),
        outputs=(
            SummaryOutput("summary", {"en": "Summary", "zh": "摘要"}, {"en": "", "zh": ""},
                          properties={"tag": {"type": "string"},
                                      "households": {"type": "array"}}),
            TableOutput("echo", {"en": "Echo", "zh": "回显"}, {"en": "", "zh": ""},
                        columns={"name": {"type": "string"},
                                 "value": {"type": "string", "nullable": True}}),
        ),
        run=_probe, example={"tag": "example"}, job_control=job_control,
        stages=(Stage("write", {"en": "writing", "zh": "写入"}, 1),
                Stage("wait", {"en": "waiting", "zh": "等待"}, 1)),
    )


@pytest.fixture
def probe(tiny_city_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An application offering ``probe`` (sync and async) and ``probe-async`` (async only),
    and a factory of clients acting as a new user (like ``make_client``)."""
    import uuid

    from server.app import create_app
    from spatial import auth, users
    from spatial.db import connect

    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.process_probe (tag text)")
        conn.execute("GRANT INSERT, SELECT ON public.process_probe TO onemap_api")
    app = create_app()
    from pygeoapi import starlette_app

    manager = starlette_app.api_.manager
    for process_id, control in (("probe", (SYNC, ASYNC)), ("probe-async", (ASYNC,))):
        monkeypatch.setitem(registry.PROCESSES, process_id, _probe_process(process_id, control))
        monkeypatch.setitem(manager.processes, process_id, {
            "type": "process",
            "processor": {"name": "scenarios.processes.ProcessAdapter", "process": process_id}})
    with TestClient(app) as client:

        def make(roles: list[str], scopes: list[tuple[str, int]] = ()) -> Any:  # type: ignore[assignment]
            from tests.conftest import ClientAs

            headers = {}
            if roles:
                with connect(tiny_city_db) as conn, conn.transaction():
                    name = f"u{uuid.uuid4().hex[:8]}"
                    users.create_user(conn, name, None, roles=roles, scopes=scopes)
                    headers["X-API-Key"] = auth.create_api_key(conn, name, label="test").key
            return ClientAs(client, headers)

        yield make


def probe_rows(db: str) -> int:
    with psycopg.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM public.process_probe").fetchone()[0])  # type: ignore[index]


def sleeping(db: str) -> bool:
    """Whether a session of the database runs the probe's pg_sleep."""
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'SELECT pg_sleep(%%' AND pid <> pg_backend_pid()").fetchone()
    return bool(row and row[0])


# --- job control and outputs -------------------------------------------------------------


def test_an_async_only_process_runs_async_without_a_preference(probe: Any,
                                                               tiny_city_db: str) -> None:
    client = probe([])
    description = client.get("/processes/probe-async", params={"f": "json"}).json()
    assert description["jobControlOptions"] == ["async-execute"]
    r = execute(client, "probe-async", {"tag": "a"})  # no Prefer header: async anyway
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "respond-async"
    job = job_id_of(r)
    assert r.json() == {"jobID": job, "type": "process", "status": "accepted"}
    assert wait_for(client, job)["status"] == "successful"
    # the job kept the request's form: raw, both outputs keyed by id
    results = client.get(f"/jobs/{job}/results", params={"f": "json"}).json()
    assert results["summary"] == {"tag": "a", "households": []}
    assert results["echo"] == {"columns": ["name", "value"],
                               "rows": [["tag", "a"], ["period", None]]}
    assert probe_rows(tiny_city_db) == 1


def test_raw_one_output_document_and_output_selection(staff_client: Any,
                                                      tiny_city_db: str) -> None:
    inputs = {"level": "grid", "unit_id": _grid_id(tiny_city_db, "第一网格"), "depth": "building"}
    r = execute(staff_client, "grid-statistics", inputs, outputs={"units": {}})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    units = r.json()
    assert units["type"] == "FeatureCollection"
    root, *below = units["features"]
    assert (root["id"], root["properties"]["households"]) == (
        f"grid.{inputs['unit_id']}", 48)
    assert root["geometry"]["type"] == "MultiPolygon"
    assert {f["properties"]["level"] for f in below} == {"building"}
    assert all(f["properties"]["parent"] == root["id"] for f in below)
    assert sum(f["properties"]["households"] for f in below) == 48

    r = execute(staff_client, "grid-statistics", inputs, response="document",
                outputs={"statistics": {"transmissionMode": "value"}})
    assert r.status_code == 200 and set(r.json()) == {"statistics"}
    assert r.json()["statistics"]["mediaType"] == "application/json"
    assert r.json()["statistics"]["value"]["households"] == 48

    # the job stored each output: its results answer in the form the request chose
    job = job_id_of(execute(staff_client, "grid-statistics", inputs, headers=ASYNC_HEADERS,
                            outputs={"units": {}}))
    assert wait_for(staff_client, job)["status"] == "successful"
    results = staff_client.get(f"/jobs/{job}/results", params={"f": "json"})
    assert results.headers["content-type"].startswith("application/geo+json")
    assert results.json() == units
    with psycopg.connect(tiny_city_db) as conn:
        stored = conn.execute("SELECT output_id, media_type FROM onemap.job_output "
                              "WHERE job_id = %s ORDER BY output_id", (job,)).fetchall()
    assert stored == [("statistics", "application/json"), ("units", "application/geo+json")]


def _parts(response: Any) -> dict[str, tuple[str, Any]]:
    """A multipart/related body's parts: Content-ID → (Content-Type, JSON value)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    assert message.is_multipart()
    return {part["Content-ID"].strip("<>"): (part.get_content_type(),
                                             json.loads(part.get_payload(decode=True)))
            for part in message.iter_parts()}


def test_raw_several_outputs_as_multipart_when_asked(staff_client: Any,
                                                     tiny_city_db: str) -> None:
    """OGC API Processes 1.0: raw with several outputs is multipart/related, one
    part per output; without that Accept, JSON clients get the outputs keyed by id."""
    inputs = {"level": "grid", "unit_id": _grid_id(tiny_city_db, "第一网格"), "depth": "building"}
    keyed = execute(staff_client, "grid-statistics", inputs)
    assert keyed.status_code == 200 and keyed.headers["content-type"].startswith(
        "application/json")
    assert set(keyed.json()) == {"statistics", "units"}

    multipart = {"Accept": "multipart/related"}
    r = execute(staff_client, "grid-statistics", inputs, headers=multipart)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/related; boundary=")
    parts = _parts(r)
    assert parts == {"statistics": ("application/json", keyed.json()["statistics"]),
                     "units": ("application/geo+json", keyed.json()["units"])}
    assert parts["statistics"][1]["households"] == 48

    # an asynchronous job's results answer the same way when asked
    job = job_id_of(execute(staff_client, "grid-statistics", inputs, headers=ASYNC_HEADERS))
    assert wait_for(staff_client, job)["status"] == "successful"
    results = staff_client.get(f"/jobs/{job}/results", headers=multipart)
    assert results.status_code == 200
    assert _parts(results) == parts
    assert staff_client.get(f"/jobs/{job}/results", params={"f": "json"}).json() == keyed.json()


@pytest.mark.parametrize(("outputs", "reason"), [
    ({"nope": {}}, "outputs.nope: no such output; declared: statistics, units"),
    ({"units": {"transmissionMode": "reference"}}, "outputs.units: transmissionMode"),
    ({"units": {"format": {"mediaType": "text/csv"}}}, "outputs.units: format 'text/csv'"),
])
def test_bad_output_selection_is_a_400_naming_the_output(
        client: TestClient, tiny_city_db: str, outputs: dict[str, Any], reason: str) -> None:
    inputs = {"level": "grid", "unit_id": _grid_id(tiny_city_db, "第一网格")}
    for headers in (None, ASYNC_HEADERS):
        r = execute(client, "grid-statistics", inputs, headers=headers, outputs=outputs)
        assert r.status_code == 400, r.text
        assert reason in r.json()["description"]


def _grid_id(db: str, name: str) -> int:
    with psycopg.connect(db) as conn:
        return int(conn.execute("SELECT id FROM onemap.grid WHERE name = %s",
                                (name,)).fetchone()[0])  # type: ignore[index]


# --- cancellation and progress -----------------------------------------------------------


@pytest.mark.parametrize("how", ["sql", "loop"])
def test_dismissing_a_running_job_stops_its_work_and_rolls_it_back(
        probe: Any, tiny_city_db: str, how: str) -> None:
    client = probe([])
    job = job_id_of(execute(client, "probe", {"tag": how, "seconds": 60, "how": how},
                            headers=ASYNC_HEADERS))
    running = wait_for(client, job, ("running",))
    deadline = time.monotonic() + 30
    while "waiting" not in (running.get("message") or "") and time.monotonic() < deadline:
        time.sleep(0.05)
        running = client.get(f"/jobs/{job}", params={"f": "json"}).json()
    # progress says which stage, and how far
    assert running["message"].startswith("waiting / 等待 (2/2)"), running
    assert 50 <= running["progress"] < 100
    if how == "sql":  # the stage is reported just before its statement starts
        deadline = time.monotonic() + 30
        while not sleeping(tiny_city_db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeping(tiny_city_db)

    assert client.delete(f"/jobs/{job}").status_code == 200
    dismissed = time.monotonic()
    # the 60 s wait stops: the statement is cancelled / the loop stops at its next report
    # (a bound on waiting for it, generous against the 60 s it would take)
    while time.monotonic() - dismissed < 10:
        with psycopg.connect(tiny_city_db) as conn:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'").fetchone()[0]  # type: ignore[index]
        if not busy and not sleeping(tiny_city_db):
            break
        time.sleep(0.05)
    assert time.monotonic() - dismissed < 10, "the job's work did not stop"
    assert not sleeping(tiny_city_db)
    assert probe_rows(tiny_city_db) == 0  # its write rolled back
    with psycopg.connect(tiny_city_db) as conn:
        status, result = conn.execute("SELECT status, result FROM onemap.job WHERE id = %s",
                                      (job,)).fetchone()  # type: ignore[misc]
        outputs = conn.execute("SELECT count(*) FROM onemap.job_output WHERE job_id = %s",
                               (job,)).fetchone()[0]  # type: ignore[index]
    assert (status, result, outputs) == ("dismissed", None, 0)
    assert client.get(f"/jobs/{job}", params={"f": "json"}).status_code == 404
    # the worker is free again: the next job runs
    nxt = job_id_of(execute(client, "probe", {"tag": "next"}, headers=ASYNC_HEADERS))
    assert wait_for(client, nxt)["status"] == "successful"
    assert probe_rows(tiny_city_db) == 1


# --- bad input, one per shared input type --------------------------------------------------


@pytest.mark.parametrize(("process", "inputs", "status", "reason"), [
    # a point with its CRS
    ("locate", {"x": 116.465, "y": 39.9225, "crs": "EPSG:999999"}, 400, "crs: unsupported CRS"),
    ("locate", {"x": 116.465, "y": 39.9225, "crs": 4326.5}, 400, "crs"),
    ("locate", {"x": 16.465, "y": 39.9225}, 400, "x/y: (16.465, 39.9225) is outside the city"),
    ("locate", {"x": 116.465, "y": 99.0}, 400, "x/y"),
    ("locate", {"x": 116.465, "y": 39.9225, "crs": "bd09", "tolerance_m": 2000}, 400,
     "tolerance_m: 2000 is greater than the maximum of 1000"),
    # an area: unit or polygon
    ("grid-statistics", {"level": "grid", "unit_id": 999_999}, 404,
     "unit_id: no grid with id 999999"),
    ("grid-statistics", {"level": "grid", "unit_id": "7"}, 400, "unit_id: '7' is not of type"),
    ("grid-statistics", {"polygon": {"type": "Polygon", "coordinates": [[
        [16.46, 39.915], [16.47, 39.915], [16.47, 39.93], [16.46, 39.915]]]}}, 400,
     "polygon: the polygon is outside the city"),
    ("grid-statistics", {"polygon": {"type": "Polygon", "coordinates": [[
        [116.46, 39.915], [116.47, 39.915], [116.47, 39.93], [116.46, 39.915]]]},
        "crs": "mars"}, 400, "crs: unknown CRS 'mars'"),
    # a date
    ("grid-statistics", {"level": "grid", "unit_id": 1, "as_of": "2024-02-30"}, 400, "as_of"),
])
def test_bad_input_is_a_400_or_404_naming_the_input(
        client: TestClient, tiny_city_db: str, process: str, inputs: dict[str, Any],
        status: int, reason: str) -> None:
    for headers in (None, ASYNC_HEADERS):  # refused before anything is queued
        r = execute(client, process, inputs, headers=headers)
        assert r.status_code == status, r.text
        assert reason in r.json()["description"], r.json()["description"]


@pytest.mark.parametrize(("inputs", "status", "reason"), [
    ({"tag": "t", "period": {"start": "2024-05-02", "end": "2024-05-01"}}, 400,
     "period: end must be after start"),
    ({"tag": "t", "period": {"start": "2024-05-01", "end": "2024-09-01"}}, 400,
     "period: longer than 31 days"),
    ({"tag": "t", "period": {"start": "soon", "end": "2024-05-01"}}, 400, "period.start"),
    ({"tag": "t", "period": {"start": "2024-05-01"}}, 400, "period: 'end' is a required"),
    ({"tag": "t", "households": []}, 400, "households: [] should be non-empty"),
    ({"tag": "t", "households": [1, 2, 3, 4, 5, 6]}, 400, "households: [1, 2, 3, 4, 5, 6] is too"),
    ({"tag": "t", "households": [987_654_321]}, 404, "households: no household with id 987654321"),
    ({"tag": "t", "scenario": "s-12"}, 404, "scenario: unknown scenario 's-12'"),
    ({"tag": "t", "scenario": ""}, 400, "scenario"),
])
def test_bad_time_window_id_set_and_scenario_name_the_input(
        probe: Any, tiny_city_db: str, inputs: dict[str, Any], status: int,
        reason: str) -> None:
    client = probe(["district_admin"])
    r = execute(client, "probe", inputs)
    assert r.status_code == status, r.text
    assert reason in r.json()["description"], r.json()["description"]
    assert probe_rows(tiny_city_db) == 0


def test_ids_the_caller_may_not_see_are_a_404_that_tells_nothing(
        probe: Any, tiny_city_db: str) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        first, second = (int(conn.execute(
            "SELECT min(h.id) FROM onemap.household h JOIN onemap.building b "
            "ON b.id = h.building_id JOIN onemap.grid g ON g.id = b.grid_id "
            "WHERE g.name = %s", (name,)).fetchone()[0])  # type: ignore[index]
            for name in ("第一网格", "第二网格"))
    worker = probe(["grid_worker"], [("grid", _grid_id(tiny_city_db, "第一网格"))])
    mine = execute(worker, "probe", {"tag": "t", "households": [first]})
    assert mine.status_code == 200, mine.text
    assert mine.json()["summary"]["households"] == [first]
    theirs = execute(worker, "probe", {"tag": "t", "households": [first, second]})
    assert theirs.status_code == 404
    text = theirs.json()["description"]
    assert text == f"households: no household with id {second} / 无此要素"
    absent = execute(worker, "probe", {"tag": "t", "households": [987_654_321]})
    # a household outside the caller's scope reads exactly like one that does not exist
    assert absent.json()["description"].replace("987654321", str(second)) == text
