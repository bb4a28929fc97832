"""``spill-trace`` over HTTP, on the generated S city (seed 1) with its trucks:

- a run by report id answers every declared output, valid against its schema, and the
  truck that caused the report (``truth.spill_cause``) is among the loaded suspects,
  with its construction site;
- the same place and time given as coordinates gives the same suspects;
- a plate pattern keeps only the plates it matches;
- muck seen on a haul whose load was dumped outside any disposal site: the truck is
  flagged ``dumped_outside`` and the place drawn as a ``dump`` site near where the
  truth says the haul ended;
- a caller who may not see trucks gets no suspect (the sources are internal);
- bad input is a 400 (or a 404 for a report the caller cannot see) naming the input,
  never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from scenarios.processes.registry import PROCESSES
from tests.api.test_process_platform import check_outputs
from tests.api.test_refuse_placement_api import admin, make_client  # noqa: F401

PROCESS = "spill-trace"


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 with its muck trucks."""
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, "spill_api", steps=("trucks",)) as made:
        yield made[0]


def run(client: Any, inputs: dict[str, Any]) -> Any:
    return client.post(f"/processes/{PROCESS}/execution",
                       json={"inputs": inputs, "response": "document"})


@pytest.fixture(scope="module")
def caused(city: str) -> dict[str, Any]:
    with psycopg.connect(city, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT c.spill_report_id AS id, c.truck_id, c.construction_site_id, "
            "ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.reported_at "
            "FROM truth.spill_cause c JOIN onemap.spill_report s ON s.id = c.spill_report_id "
            "WHERE c.kind = 'caused' ORDER BY c.spill_report_id LIMIT 1").fetchone()
    assert row is not None
    return dict(row)



def test_a_load_dumped_outside_is_flagged_and_drawn(admin: Any, city: str) -> None:  # noqa: F811
    with psycopg.connect(city, row_factory=dict_row) as conn:
        trip = conn.execute(
            "SELECT t.truck_id, ST_X(ST_LineInterpolatePoint(t.path, 0.5)) AS lon, "
            "ST_Y(ST_LineInterpolatePoint(t.path, 0.5)) AS lat, "
            "ST_X(ST_EndPoint(t.path)) AS end_lon, ST_Y(ST_EndPoint(t.path)) AS end_lat, "
            "t.depart_ts + (t.arrive_ts - t.depart_ts) / 2 + interval '20 min' AS at "
            "FROM truth.unauthorised u JOIN truth.truck_trip t ON t.id = u.trip_id "
            "WHERE u.reason = 'dumped_outside' AND NOT t.device_off ORDER BY t.id LIMIT 1"
        ).fetchone()
    assert trip is not None
    r = run(admin, {"x": trip["lon"], "y": trip["lat"], "crs": "EPSG:4490",
                    "time": trip["at"].isoformat(), "window_h": 1})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    mine = [f["properties"] for f in document["suspects"]["value"]["features"]
            if f["properties"]["truck_id"] == trip["truck_id"]]
    assert mine and "dumped_outside" in (mine[0]["flags"] or ""), mine
    dumps = [f for f in document["sites"]["value"]["features"]
             if f["properties"]["role"] == "dump" and f["properties"]["ranks"] == str(
                 mine[0]["rank"])]
    assert len(dumps) == 1
    x, y = dumps[0]["geometry"]["coordinates"]
    # where it stood: within 100 m of where the truth's haul ended
    assert abs(x - trip["end_lon"]) < 0.0012 and abs(y - trip["end_lat"]) < 0.0009
    construction = [f["properties"] for f in document["sites"]["value"]["features"]
                    if f["properties"]["role"] == "construction"]
    assert construction and all(0 < (c["weight"] or 0) <= 1 for c in construction)

def test_a_report_is_traced_to_its_truck(admin: Any, caused: dict[str, Any]) -> None:  # noqa: F811
    r = run(admin, {"report_ids": [caused["id"]]})
    assert r.status_code == 200, r.text
    document = r.json()
    check_outputs(PROCESSES[PROCESS], document)
    suspects = [f["properties"] for f in document["suspects"]["value"]["features"]]
    assert suspects and document["summary"]["value"]["suspects"] == len(suspects)
    mine = [s for s in suspects if s["truck_id"] == caused["truck_id"]]
    assert mine and mine[0]["loaded"] is True, suspects
    assert mine[0]["construction_site_id"] == caused["construction_site_id"]
    assert mine[0]["plate"]
    tracks = document["tracks"]["value"]["features"]
    assert {f["properties"]["kind"] for f in tracks} <= {"track", "gap"} and tracks
    reports = document["reports"]["value"]["features"]
    assert reports[0]["properties"]["report_id"] == caused["id"]
    assert reports[0]["properties"]["source"] and not reports[0]["properties"]["context"]
    # the other reports nearby weighed as a trail a suspect may have left
    context = [f["properties"] for f in reports[1:]]
    assert all(c["context"] and c["report_id"] != caused["id"] for c in context)
    assert document["summary"]["value"]["context_reports"] == len(context)

    # the same place and time as coordinates
    by_place = run(admin, {"x": caused["lon"], "y": caused["lat"], "crs": "EPSG:4490",
                           "time": caused["reported_at"].isoformat(),
                           "source": reports[0]["properties"]["source"]})
    assert by_place.status_code == 200, by_place.text
    again = [f["properties"]["truck_id"]
             for f in by_place.json()["suspects"]["value"]["features"]]
    assert again == [s["truck_id"] for s in suspects]

    # a plate pattern keeps only what it matches
    plate = mine[0]["plate"]
    only = run(admin, {"report_ids": [caused["id"]], "plate": plate[:3] + "*"})
    assert only.status_code == 200, only.text
    kept = [f["properties"]["plate"] for f in only.json()["suspects"]["value"]["features"]]
    assert plate in kept and all(p.startswith(plate[:3]) for p in kept)


def test_a_caller_who_may_not_see_trucks_gets_no_suspect(
        make_client: Any, city: str, caused: dict[str, Any]) -> None:  # noqa: F811
    with psycopg.connect(city) as conn:
        (community,) = conn.execute(  # type: ignore[misc]
            "SELECT min(id) FROM onemap.community").fetchone()
    resident = make_client(["public"], [("community", community)])
    r = run(resident, {"x": caused["lon"], "y": caused["lat"], "crs": "EPSG:4490",
                       "time": caused["reported_at"].isoformat()})
    if r.status_code == 200:
        assert r.json()["suspects"]["value"]["features"] == []
    else:
        assert r.status_code in (401, 403), r.text


@pytest.mark.parametrize(("inputs", "status", "name"), [
    ({}, 400, "report_ids"),
    ({"report_ids": [987654321]}, 404, "report_ids"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": "2099-01-01T00:00:00+08:00"}, 400,
     "time"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490"}, 400, "time"),
    ({"x": 0.0, "y": 0.0, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00"}, 400,
     "x/y"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": "yesterday"}, 400, "time"),
    ({"report_ids": [1], "window_h": 8760}, 400, "window_h"),
    ({"report_ids": [1], "plate": "京A'; DROP TABLE onemap.truck;--"}, 400, "plate"),
    ({"report_ids": [1], "x": 116.45, "y": 39.92}, 400, "report_ids"),
    ({"report_ids": None}, 400, "report_ids"),
    ({"report_ids": []}, 400, "report_ids"),
    ({"report_ids": "abc"}, 400, "report_ids"),
    ({"report_ids": [2 ** 70]}, 400, "report_ids"),
    ({"report_ids": [1], "window_h": None}, 400, "window_h"),
    ({"report_ids": [1], "window_h": "three"}, 400, "window_h"),
    ({"x": 1e308, "y": 39.92, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00"}, 400,
     "x/y"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": None}, 400, "time"),
    ({"x": 116.45, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00"}, 400, "x/y"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00",
      "source": "rumour"}, 400, "source"),
    ({"report_ids": [1], "source": "citizen"}, 400, "source"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00",
      "source": []}, 400, "source"),
    ({"x": 116.45, "y": 39.92, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00",
      "source": 10 ** 30}, 400, "source"),
])
def test_bad_input_names_the_input(admin: Any, inputs: dict[str, Any], status: int,  # noqa: F811
                                   name: str) -> None:
    r = run(admin, inputs)
    assert r.status_code == status, r.text
    assert name in r.json()["description"], r.json()


def test_every_caused_report_finds_its_trip(city: str) -> None:
    """The same S city in Python: for every caused report of the truth, the causing truck
    is a suspect, loaded, on the trip that passed there (the truth's pass within two
    minutes), with that trip's construction site; a noise report's suspects are
    whoever passed (the ranking is measured in bench/eval_spill_trace.py)."""
    from scenarios import spill_trace as st
    from spatial.network import road_graph

    with psycopg.connect(city, row_factory=dict_row) as conn:
        truth = conn.execute(
            "SELECT spill_report_id AS id, truck_id, passed_at, construction_site_id "
            "FROM truth.spill_cause WHERE kind = 'caused' ORDER BY 1").fetchall()
        graph = road_graph(conn, "drive")
        assert len(truth) == 6
        for r in truth:
            trace = st.SpillTrace(conn, st.load_spills(conn, [r["id"]]), graph=graph).solve()
            mine = [s for s in trace.suspects if s.truck_id == r["truck_id"]
                    and any(p.at is not None
                            and abs((p.at - r["passed_at"]).total_seconds()) <= 120
                            for p in s.passes.values())]
            assert mine, (r, [(s.truck_id, s.passes) for s in trace.suspects])
            assert mine[0].loaded is True
            assert mine[0].construction_site_id == r["construction_site_id"]
