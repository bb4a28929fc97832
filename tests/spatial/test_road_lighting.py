"""Roads' lit/unlit state derived from the lamps (168_road_lighting.sql).

Hand-made streets in a fresh clone: straight east–west roads in EPSG:4548
metres with lamps 8 m off the centreline, so every expected stretch is a sum
a reader can check. The agreement with the planted truth of a generated city
is tested beside the generator (tests/democity/test_networks.py).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from democity.lighting import DESIGN, lamp_reach

#: A point in the demo district (EPSG:4490), the west end of every test road.
ORIGIN = (116.47, 39.92)

Piece = tuple[float, float, str, str | None]

#: Roads whose segments do not cover 0..1 end to end exactly once, or whose lengths
#: disagree with the road's (EPSG:4548 metres).
TILING_ERRORS = """
    WITH s AS (
        SELECT road_id, from_fraction, to_fraction, length_m,
               ST_Length(ST_Transform(geom, 4548)) AS geom_len,
               lag(to_fraction) OVER w AS prev, lead(from_fraction) OVER w AS next
        FROM onemap.road_lighting_segment
        WINDOW w AS (PARTITION BY road_id ORDER BY from_fraction)),
    per_road AS (
        SELECT road_id, sum(length_m) AS total,
               bool_and(from_fraction = coalesce(prev, 0) AND to_fraction = coalesce(next, 1)
                        AND abs(geom_len - length_m) < 0.01) AS ok
        FROM s GROUP BY road_id)
    SELECT r.id FROM onemap.road r LEFT JOIN per_road p ON p.road_id = r.id
    WHERE NOT coalesce(p.ok, false)
       OR abs(p.total - ST_Length(ST_Transform(r.geom, 4548))) > 0.01"""


def add_road(conn: psycopg.Connection[Any], road_class: str, length_m: float,
             north_m: float = 0.0) -> int:
    """A straight road ``length_m`` long running east, ``north_m`` north of ORIGIN."""
    row = conn.execute(
        "INSERT INTO onemap.road (name, road_class, geom) "
        "SELECT %s, %s, ST_Transform(ST_MakeLine(o, ST_Translate(o, %s, 0)), 4490) "
        "FROM (SELECT ST_Translate(ST_Transform(ST_Point(%s, %s, 4490), 4548), 0, %s) AS o) s "
        "RETURNING id",
        (f"测试路{road_class}{north_m:g}", road_class, length_m, *ORIGIN, north_m)).fetchone()
    assert row is not None
    return int(row["id"])


def add_lamps(conn: psycopg.Connection[Any], road: int, at_m: list[float],
              circuit: int | None = None, status: str = "working") -> list[int]:
    """Lamps ``at_m`` metres along the road, 8 m to its north side."""
    rows = conn.execute(
        "INSERT INTO onemap.lamp (road_id, circuit_id, status, geom) "
        "SELECT r.id, %s, %s, ST_Transform(ST_Translate(ST_StartPoint(ST_Transform(r.geom, 4548)),"
        " a, 8), 4490) FROM onemap.road r, unnest(%s::float8[]) WITH ORDINALITY AS u (a, k) "
        "WHERE r.id = %s ORDER BY k RETURNING id",
        (circuit, status, at_m, road)).fetchall()
    return [int(r["id"]) for r in rows]


def add_circuits(conn: psycopg.Connection[Any], n: int) -> tuple[int, list[int]]:
    """A distribution box and ``n`` circuits on it."""
    box = conn.execute("INSERT INTO onemap.distribution_box (code, geom) "
                       "VALUES ('PDX-T', ST_Point(%s, %s, 4490)) RETURNING id", ORIGIN).fetchone()
    assert box is not None
    circuits = [conn.execute("INSERT INTO onemap.lamp_circuit (distribution_box_id, code) "
                             "VALUES (%s, %s) RETURNING id", (box["id"], f"HL{k:02d}")
                             ).fetchone()["id"] for k in range(1, n + 1)]  # type: ignore[index]
    return int(box["id"]), circuits


def pieces(conn: psycopg.Connection[Any], road: int) -> list[Piece]:
    """The road's segments as (from m, to m, state, reason), metres rounded to 0.1."""
    rows = conn.execute(
        "SELECT s.from_fraction * l.len AS a, s.to_fraction * l.len AS b, s.state, s.reason "
        "FROM onemap.road_lighting_segment s, "
        "LATERAL (SELECT ST_Length(ST_Transform(geom, 4548)) AS len FROM onemap.road "
        "WHERE id = s.road_id) l WHERE s.road_id = %s ORDER BY s.from_fraction", (road,)).fetchall()
    return [(round(r["a"], 1), round(r["b"], 1), r["state"], r["reason"]) for r in rows]


def assert_tiles_each_road(conn: psycopg.Connection[Any]) -> None:
    """Every road is covered from 0 to 1 by segments that neither overlap nor leave gaps."""
    bad = conn.execute(TILING_ERRORS).fetchall()
    assert bad == []


def test_reach_is_the_largest_design_spacing(conn: psycopg.Connection[Any]) -> None:
    """The one figure the generator's truth and the derivation share."""
    assert lamp_reach(conn) == {c: d.spacing_m[1] for c, d in DESIGN.items()}
    classes = conn.execute(
        "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint "
        "WHERE conrelid = 'onemap.road'::regclass AND contype = 'c' "
        "AND pg_get_constraintdef(oid) LIKE '%%road_class%%'").fetchone()
    assert classes is not None
    assert all(f"'{c}'" in classes["d"] for c in DESIGN)


def test_segments_follow_the_lamps(conn: psycopg.Connection[Any]) -> None:
    branch = add_road(conn, "branch", 400)       # reach 30 m
    alley = add_road(conn, "alley", 100, 50)     # no lamp at all
    lamps = add_lamps(conn, branch, [25, 75, 125, 175, 225, 275])
    conn.execute("UPDATE onemap.lamp SET status = 'fault' WHERE id = %s", (lamps[2],))
    add_lamps(conn, branch, [390], status="off")
    conn.execute("INSERT INTO onemap.lamp (geom) VALUES (ST_Point(%s, %s, 4490))", ORIGIN)
    # the triggers wrote both roads (the alley when it was inserted)
    expected_branch = [(0.0, 105.0, "lit", None), (105.0, 145.0, "unlit", "lamp_fault"),
                       (145.0, 305.0, "lit", None), (305.0, 400.0, "unlit", "lamp_off")]
    assert pieces(conn, branch) == expected_branch
    assert pieces(conn, alley) == [(0.0, 100.0, "unlit", "no_lamp")]
    assert_tiles_each_road(conn)
    # a full rebuild writes the same
    row = conn.execute("SELECT onemap.rebuild_road_lighting() AS n").fetchone()
    assert row == {"n": 5}
    assert pieces(conn, branch) == expected_branch
    # the published layer carries them, in EPSG:4490 and 3857
    row = conn.execute("SELECT count(*) AS n, bool_and(ST_SRID(geom) = 4490 "
                       "AND ST_SRID(geom_3857) = 3857) AS srid FROM layers.road_lighting_segment"
                       ).fetchone()
    assert row == {"n": 5, "srid": True}


def test_a_faulty_lamp_darkens_its_stretch_until_repaired(db: str,
                                                          conn: psycopg.Connection[Any]) -> None:
    road = add_road(conn, "branch", 300)
    lamps = add_lamps(conn, road, [25, 75, 125, 175, 225, 275])
    assert pieces(conn, road) == [(0.0, 300.0, "lit", None)]
    with psycopg.connect(db, autocommit=True) as listen:
        listen.execute("LISTEN onemap_tiles")
        conn.execute("UPDATE onemap.lamp SET status = 'fault' WHERE id = %s", (lamps[2],))
        # the lamp's message, and the segments' (their DELETE and their INSERT)
        messages = [json.loads(n.payload) for n in listen.notifies(timeout=2.0, stop_after=3)]
    assert pieces(conn, road) == [(0.0, 105.0, "lit", None), (105.0, 145.0, "unlit", "lamp_fault"),
                                  (145.0, 300.0, "lit", None)]
    # the tile caches hear of it: the segments' table changed where the road lies
    assert sorted(m["table"] for m in messages) == ["lamp", "road_lighting_segment",
                                                    "road_lighting_segment"]
    boxes = [m["bbox"] for m in messages if m["table"] == "road_lighting_segment"]
    for x0, y0, x1, y1 in boxes:  # the whole road, old segments and new
        assert x0 == pytest.approx(ORIGIN[0], abs=1e-6) and y0 <= ORIGIN[1] + 1e-6
        assert x1 - x0 == pytest.approx(300 / 85_400, rel=0.02) and y1 >= ORIGIN[1] - 1e-6
    conn.execute("UPDATE onemap.lamp SET power_w = 60 WHERE road_id = %s", (road,))
    assert pieces(conn, road)[1] == (105.0, 145.0, "unlit", "lamp_fault")
    conn.execute("UPDATE onemap.lamp SET status = 'working' WHERE id = %s", (lamps[2],))
    assert pieces(conn, road) == [(0.0, 300.0, "lit", None)]


def test_a_circuit_or_box_off_darkens_its_lamps(conn: psycopg.Connection[Any]) -> None:
    road = add_road(conn, "branch", 300)
    other = add_road(conn, "branch", 300, 80)
    box, (first, second) = add_circuits(conn, 2)
    on_first = add_lamps(conn, road, [25, 75, 125], circuit=first)
    on_second = add_lamps(conn, road, [175, 225, 275], circuit=second)
    moved = add_lamps(conn, other, [150])
    assert pieces(conn, road) == [(0.0, 300.0, "lit", None)]
    conn.execute("UPDATE onemap.lamp_circuit SET status = 'off' WHERE id = %s", (first,))
    assert pieces(conn, road) == [(0.0, 145.0, "unlit", "circuit_fault"),
                                  (145.0, 300.0, "lit", None)]
    conn.execute("UPDATE onemap.lamp_circuit SET status = 'working' WHERE id = %s", (first,))
    conn.execute("UPDATE onemap.distribution_box SET status = 'fault' WHERE id = %s", (box,))
    assert pieces(conn, road) == [(0.0, 300.0, "unlit", "circuit_fault")]
    conn.execute("UPDATE onemap.distribution_box SET status = 'working' WHERE id = %s", (box,))
    # a lamp switched off beside a faulty one: one each, the tie goes to the fault
    conn.execute("UPDATE onemap.lamp SET status = 'fault' WHERE id = %s", (on_first[2],))
    conn.execute("UPDATE onemap.lamp SET status = 'off' WHERE id = %s", (on_second[0],))
    assert pieces(conn, road) == [(0.0, 105.0, "lit", None), (105.0, 195.0, "unlit", "lamp_fault"),
                                  (195.0, 300.0, "lit", None)]
    # moving a lamp to another road rebuilds both; deleting the lamps leaves no lamp
    conn.execute("UPDATE onemap.lamp SET road_id = %s WHERE id = %s", (road, moved[0]))
    assert pieces(conn, other) == [(0.0, 300.0, "unlit", "no_lamp")]
    conn.execute("DELETE FROM onemap.lamp WHERE road_id = %s", (road,))
    assert pieces(conn, road) == [(0.0, 300.0, "unlit", "no_lamp")]
    assert_tiles_each_road(conn)


def test_an_edit_through_the_serving_role_rebuilds(db: str, conn: psycopg.Connection[Any]
                                                   ) -> None:
    """A grid worker may edit lamps but not the derived table: the trigger still writes it."""
    from spatial import users
    from spatial.access import Principal, request_connection

    road = add_road(conn, "secondary", 200)      # reach 35 m
    lamps = add_lamps(conn, road, [30, 90, 150])
    with conn.transaction():
        user = users.create_user(conn, "lamp_worker", None, roles=["grid_worker"])
    worker = Principal(user.id, user.username, frozenset(user.roles), None)
    with request_connection(worker, conninfo=db) as api:
        assert api.execute("SELECT current_user").fetchone() == {"current_user": "onemap_api"}
        api.execute("UPDATE onemap.lamp SET status = 'off' WHERE id = %s", (lamps[1],))
    assert pieces(conn, road) == [(0.0, 65.0, "lit", None), (65.0, 115.0, "unlit", "lamp_off"),
                                  (115.0, 185.0, "lit", None), (185.0, 200.0, "unlit", "no_lamp")]
