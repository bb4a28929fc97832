"""``pipeline-incident`` and ``valve-segments`` over HTTP, on the tiny city's water network:

- a sync run answers the plan (valves, pipes, buildings, the summary);
- an async run's feature outputs are map layers (``/jobs/{id}/results/{output}/items``);
- a caller scoped to one grid sees the counts of every building losing supply, and
  names and phones only of the residents in their grid;
- bad input is a 400 or 404 naming the input, never a 500.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

ASYNC = {"Prefer": "respond-async"}


def codes(db: str, table: str) -> dict[str, int]:
    query = {"pipe_segment": "SELECT code, id FROM onemap.pipe_segment",
             "valve": "SELECT code, id FROM onemap.valve",
             "grid": "SELECT name, id FROM onemap.grid"}[table]
    with psycopg.connect(db) as conn:
        return {str(c): int(i) for c, i in conn.execute(query).fetchall()}


def execute(client: Any, inputs: dict[str, Any], process: str = "pipeline-incident",
            **kwargs: Any) -> Any:
    return client.post(f"/processes/{process}/execution",
                       json={"inputs": inputs, "response": "document"}, **kwargs)


def value(response: Any, output: str) -> Any:
    assert response.status_code == 200, response.text
    return response.json()[output]["value"]


def test_sync_run_answers_the_plan(staff_client: Any, tiny_city_db: str) -> None:
    seg, valve = codes(tiny_city_db, "pipe_segment"), codes(tiny_city_db, "valve")
    r = execute(staff_client, {"segment": seg["TW-B2"]})
    summary = value(r, "summary")
    assert summary["failed_segment"] == seg["TW-B2"] and summary["isolated"]
    # 和平里's four buildings: 4 × 2 units × 3 floors × 2 rooms
    assert (summary["buildings"], summary["households"]) == (4, 48)
    closing = {f["properties"]["valve_id"] for f in value(r, "valves")["features"]}
    assert closing == {valve["TW-VN1"], valve["TW-VK"]}
    assert value(r, "contacts")["columns"] == ["building_id", "household_id", "room_no",
                                               "name", "phone"]
    assert len(value(r, "contacts")["rows"]) == summary["residents"]  # a district admin


def test_async_run_results_are_layers(staff_client: Any, tiny_city_db: str) -> None:
    seg, valve = codes(tiny_city_db, "pipe_segment"), codes(tiny_city_db, "valve")
    r = execute(staff_client, {"segment": seg["TW-B2"], "stuck_valves": [valve["TW-VK"]]},
                headers=ASYNC)
    assert r.status_code == 201, r.text
    job = r.headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while (status := staff_client.get(f"/jobs/{job}", params={"f": "json"}).json())[
            "status"] not in ("successful", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status["status"] == "successful", status
    buildings = staff_client.get(f"/jobs/{job}/results/buildings/items")
    assert buildings.status_code == 200, buildings.text
    assert buildings.json()["numberMatched"] == 8
    assert sum(f["properties"]["households"] for f in buildings.json()["features"]) == 96
    valves = staff_client.get(f"/jobs/{job}/results/valves/items").json()["features"]
    actions = {f["properties"]["valve_id"]: f["properties"]["action"] for f in valves}
    assert actions == {valve["TW-VN1"]: "close", valve["TW-VN2"]: "close",
                       valve["TW-VK"]: "stuck"}
    style = staff_client.get(f"/jobs/{job}/results/valves/style")
    assert style.status_code == 200, style.text


def test_a_scoped_caller_sees_counts_but_only_their_residents_names(
        make_client: Any, tiny_city_db: str) -> None:
    seg, valve = codes(tiny_city_db, "pipe_segment"), codes(tiny_city_db, "valve")
    grids = codes(tiny_city_db, "grid")
    worker = make_client(["grid_worker"], [("grid", grids["第二网格"])])
    # the branch into 和平里 (第一网格): every count, no name
    r = execute(worker, {"segment": seg["TW-B2"]})
    summary = value(r, "summary")
    assert (summary["buildings"], summary["households"]) == (4, 48)
    assert summary["residents"] > 0
    assert value(r, "contacts")["rows"] == [] and summary["contacts"] == 0
    # with the ring valve stuck 幸福家园 (第二网格) loses supply too: its residents only
    r = execute(worker, {"segment": seg["TW-B2"], "stuck_valves": [valve["TW-VK"]]})
    rows = value(r, "contacts")["rows"]
    theirs = {f["properties"]["building_id"] for f in value(r, "buildings")["features"]
              if f["properties"]["grid_id"] == grids["第二网格"]}
    assert rows and {row[0] for row in rows} == theirs
    with psycopg.connect(tiny_city_db) as conn:
        names = {n for (n,) in conn.execute(
            "SELECT r.name FROM onemap.resident r JOIN onemap.household h "
            "ON h.id = r.household_id WHERE h.building_id = ANY(%s)", (sorted(theirs),))}
    assert {row[3] for row in rows} == names
    assert value(r, "summary")["households"] == 96


@pytest.mark.parametrize(("inputs", "status", "reason"), [
    ({"segment": 987654}, 404, "segment: no pipe segment with id 987654"),
    ({"x": 116.50, "y": 39.96, "crs": "EPSG:4490", "utility": "water"}, 400,
     "x/y: no water pipe within 100 m"),
    ({"x": 116.466, "y": 39.9173, "crs": "EPSG:4490", "utility": "sewage"}, 400, "utility"),
    ({"segment": "TW-B2", "radius_m": -5}, 400, "radius_m"),
    ({"segment": "TW-B2", "stuck_valves": ["TG-V"]}, 400, "stuck_valves: valves of another "
                                                          "network"),
    ({"segment": "TW-B2", "stuck_valves": [987654]}, 404, "stuck_valves: no valve with id"),
    ({"segment": "TW-B2", "utility": "gas"}, 400, "utility: segment"),
    ({"alarm": 987654}, 404, "alarm: no sensor alarm with id 987654"),
    ({"segment": "TW-B2", "alarm": 1}, 400, "segment/x/y/alarm"),
    ({}, 400, "segment/x/y/alarm"),
])
def test_bad_input_names_the_input(staff_client: Any, tiny_city_db: str,
                                   inputs: dict[str, Any], status: int, reason: str) -> None:
    seg, valve = codes(tiny_city_db, "pipe_segment"), codes(tiny_city_db, "valve")
    inputs = {k: (seg[v] if k == "segment" and isinstance(v, str) else
                  [valve.get(x, x) for x in v] if k == "stuck_valves" else v)
              for k, v in inputs.items()}
    for headers in (None, ASYNC):  # refused before anything is queued
        r = execute(staff_client, inputs, headers=headers)
        assert r.status_code == status, r.text
        assert reason in r.json()["description"], r.json()["description"]


def test_a_segment_the_caller_may_not_see_is_a_404(make_client: Any,
                                                   tiny_city_db: str) -> None:
    seg = codes(tiny_city_db, "pipe_segment")
    anonymous = make_client([])  # pipes are internal: the public sees none
    r = execute(anonymous, {"segment": seg["TW-B2"]})
    assert r.status_code in (401, 404), r.text
    if r.status_code == 404:
        assert r.json()["description"] == (f"segment: no pipe segment with id {seg['TW-B2']} "
                                           "/ 无此管段")


def test_valve_segments_over_http(staff_client: Any) -> None:
    r = execute(staff_client, {"utility": "water"}, process="valve-segments")
    summary = value(r, "summary")
    assert summary["valves"] == 7 and summary["segments"] >= 7
    households = sum(f["properties"]["households"] for f in value(r, "segments")["features"])
    assert households == 96  # every building hangs on exactly one segment
    bad = execute(staff_client, {"utility": "drainage"}, process="valve-segments")
    assert bad.status_code == 400 and "utility" in bad.json()["description"]
