"""``pipeline-incident`` and ``valve-segments`` on the tiny city's water network, against
answers computed here without the analysis.

The tiny city (``tests/data/tiny_city.sql``) has a hand-made water network: a main
from the waterworks TW-S along 示范路 (valves VA, VB, VC, VD), a branch into each
compound (valves VN1, VN2), a ring link K1-VK-K2 between them, a service
connection per building and one for the school. The oracle is brute force with
networkx: every set of operable, non-stuck valves is tried; closing a valve takes
its node out, the links there stay with their other end; the set that separates
the failed pipe from every source and leaves the fewest pipes without supply wins
(ties: fewer valves). Households and residents are counted with plain SQL over the
buildings the oracle's pipes reach.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import networkx as nx
import psycopg
import pytest
from psycopg import sql

from scenarios.processes import pipeline_incident, valve_segments
from spatial import users
from spatial.access import Principal, request_connection
from spatial.db import connect

Opener = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


@pytest.fixture
def admin(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(tiny_city_db, autocommit=True) as c:
        yield c


def caller(db: str, roles: list[str], scopes: list[tuple[str, int]]) -> Opener:
    with connect(db) as conn, conn.transaction():
        info = users.create_user(conn, f"pi_{roles[0]}_{len(scopes)}", None, roles=roles,
                                 scopes=scopes)
    principal = Principal(info.id, info.username, frozenset(roles))
    return lambda: request_connection(principal, conninfo=db)


@pytest.fixture
def district(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> Opener:
    return caller(tiny_city_db, ["district_admin"], [("district", tiny_city_ids["district"])])


def ids(conn: psycopg.Connection[Any], table: str) -> dict[str, int]:
    query = sql.SQL("SELECT code, id FROM {} WHERE code LIKE 'T%%'").format(
        sql.Identifier("onemap", table))
    return {r["code"]: r["id"] for r in conn.execute(query).fetchall()}


class Oracle:
    """The water network as networkx sees it, and brute-force isolation."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.links = {r["id"]: (r["from_node_id"], r["to_node_id"]) for r in conn.execute(
            "SELECT id, from_node_id, to_node_id FROM onemap.pipe_segment "
            "WHERE utility = 'water'").fetchall()}
        self.sources = {r["id"] for r in conn.execute(
            "SELECT id FROM onemap.pipe_node WHERE utility = 'water' AND kind = 'source'")}
        self.valves = {r["id"]: (r["node_id"], r["operable"]) for r in conn.execute(
            "SELECT id, node_id, operable FROM onemap.valve WHERE utility = 'water'")}
        self.node_of_link_end = {(link, n) for link, ends in self.links.items() for n in ends}

    def unfed(self, closed: set[int], removed_links: frozenset[int] = frozenset()) -> set[int]:
        """Links with no path to a source once ``closed`` valves close and links go."""
        gone = {self.valves[v][0] for v in closed}
        g = nx.Graph()
        g.add_nodes_from(("n", s) for s in self.sources)
        for link, ends in self.links.items():
            if link in removed_links:
                continue
            g.add_node(("l", link))
            for n in ends:
                if n not in gone:
                    g.add_edge(("l", link), ("n", n))
        fed: set[Any] = set()
        for s in self.sources:
            if ("n", s) in g and ("n", s) not in fed:
                fed |= nx.node_connected_component(g, ("n", s))
        return {link for link in self.links if ("l", link) not in fed}

    def isolate(self, failed: int, stuck: frozenset[int] | set[int] = frozenset()
                ) -> tuple[set[int], set[int]]:
        """(valves to close, links without supply): the fewest links, then the fewest valves."""
        usable = sorted(v for v, (_, ok) in self.valves.items() if ok and v not in stuck)
        best: tuple[int, int, set[int], set[int]] | None = None
        for k in range(len(usable) + 1):
            for closed in itertools.combinations(usable, k):
                unfed = self.unfed(set(closed))
                if failed not in unfed:
                    continue
                if best is None or (len(unfed), k) < best[:2]:
                    best = (len(unfed), k, set(closed), unfed)
        assert best is not None
        return best[2], best[3]


def households(conn: psycopg.Connection[Any], links: set[int]) -> tuple[set[int], int, int]:
    """Buildings served by service connections at the links' ends, their households and
    residents, counted with plain SQL (as the database owner)."""
    row = conn.execute(
        "WITH b AS (SELECT DISTINCT n.building_id FROM onemap.pipe_segment s "
        "  JOIN onemap.pipe_node n ON n.id IN (s.from_node_id, s.to_node_id) "
        "  WHERE s.id = ANY(%s) AND n.building_id IS NOT NULL) "
        "SELECT array(SELECT building_id FROM b) AS b, "
        "(SELECT count(*) FROM onemap.household h WHERE h.building_id IN (SELECT * FROM b)) AS h, "
        "(SELECT count(*) FROM onemap.resident r JOIN onemap.household h ON h.id = r.household_id"
        " WHERE h.building_id IN (SELECT * FROM b)) AS r", (sorted(links),)).fetchone()
    assert row is not None
    return set(row["b"]), int(row["h"]), int(row["r"])


def execute(opener: Opener, **inputs: Any) -> dict[str, Any]:
    out = pipeline_incident.PROCESS.execute(inputs, connection=opener)
    return {k: v.value for k, v in out.items()}


def props(result: dict[str, Any], output: str, key: str) -> dict[Any, dict[str, Any]]:
    return {f["properties"][key]: f["properties"] for f in result[output]["features"]}


@pytest.mark.parametrize(("failed", "stuck"), [
    ("TW-B2", ()),            # the branch into 和平里: two valves, 48 households
    ("TW-B2", ("TW-VK",)),    # the ring valve is stuck: the next ring, the other compound too
    ("TW-P2", ()),            # the main next to the waterworks: everything beyond is cut off
    ("TW-P5", ("TW-VC",)),    # the main between the compounds, one valve stuck
    ("TW-R2", ("TW-VN2", "TW-VK")),
])
def test_valves_and_households_agree_with_brute_force(
        admin: psycopg.Connection[Any], district: Opener, failed: str,
        stuck: tuple[str, ...]) -> None:
    seg, valve = ids(admin, "pipe_segment"), ids(admin, "valve")
    oracle = Oracle(admin)
    stuck_ids = {valve[v] for v in stuck}
    want_valves, want_unfed = oracle.isolate(seg[failed], stuck_ids)
    buildings, n_households, n_residents = households(admin, want_unfed)

    result = execute(district, segment=seg[failed],
                     **({"stuck_valves": sorted(stuck_ids)} if stuck else {}))
    summary = result["summary"]
    closed = {v for v, p in props(result, "valves", "valve_id").items() if p["action"] == "close"}
    assert closed == want_valves
    unfed = set(props(result, "isolated", "segment_id")) | set(props(result, "cut_off",
                                                                       "segment_id"))
    assert unfed == want_unfed
    assert set(props(result, "buildings", "building_id")) == buildings
    assert (summary["households"], summary["residents"]) == (n_households, n_residents)
    # closing what the plan says leaves exactly those pipes dry
    assert oracle.unfed(closed) == unfed
    assert set(summary["stuck_valves"]) <= stuck_ids


def test_the_fallback_is_what_the_stuck_valve_costs(admin: psycopg.Connection[Any],
                                                    district: Opener) -> None:
    seg, valve = ids(admin, "pipe_segment"), ids(admin, "valve")
    oracle = Oracle(admin)
    _, plain = oracle.isolate(seg["TW-B2"])
    _, worse = oracle.isolate(seg["TW-B2"], {valve["TW-VK"]})
    _, extra_households, extra_residents = households(admin, worse - plain)

    result = execute(district, segment=seg["TW-B2"], stuck_valves=[valve["TW-VK"]])
    valves = props(result, "valves", "valve_id")
    assert valves[valve["TW-VK"]]["action"] == "stuck" and valves[valve["TW-VK"]]["stuck"]
    assert valves[valve["TW-VN2"]]["ring"] > valves[valve["TW-VN1"]]["ring"]
    fallback = result["summary"]["fallback"]
    assert fallback["pipes"] == len(worse - plain)
    assert (fallback["households"], fallback["residents"]) == (extra_households,
                                                               extra_residents)
    # the school hangs on K2: cut off only when the ring valve fails
    school = {p["name"]: p for p in props(result, "key_units", "key_unit_id").values()}
    assert school["示范小学"]["cut_off"]
    plain_result = execute(district, segment=seg["TW-B2"])
    assert not any(p["cut_off"] for p in props(plain_result, "key_units", "key_unit_id").values())


def test_a_scenario_valve_that_fails_is_a_stuck_valve(tiny_city_db: str,
                                                     admin: psycopg.Connection[Any],
                                                     tiny_city_ids: dict[str, int]) -> None:
    from spatial import whatif

    seg, valve = ids(admin, "pipe_segment"), ids(admin, "valve")
    opener = caller(tiny_city_db, ["district_admin"],
                    [("district", tiny_city_ids["district"])])
    with opener() as conn:
        draft = whatif.parse_body({"name": "VK fails", "edits": [
            {"type": "valve_fails", "valve_ids": [valve["TW-VK"], valve["TW-VN1"]]}]})
        scenario = whatif.create(conn, draft)
    with_scenario = execute(opener, segment=seg["TW-B2"], scenario=str(scenario.id))
    given = execute(opener, segment=seg["TW-B2"],
                    stuck_valves=[valve["TW-VK"], valve["TW-VN1"]])
    for output in ("valves", "isolated", "cut_off", "buildings"):
        assert with_scenario[output]["features"] == given[output]["features"], output
    assert with_scenario["summary"]["households"] > execute(
        opener, segment=seg["TW-B2"])["summary"]["households"]


def test_found_by_point_and_by_alarm(admin: psycopg.Connection[Any], district: Opener) -> None:
    seg = ids(admin, "pipe_segment")
    # 10 m north of the middle of TW-P4 (116.467–116.4705 at 39.9173), in GCJ-02
    point = admin.execute(
        "SELECT ST_X(p) AS x, ST_Y(p) AS y FROM (SELECT ST_Point(116.46875, 39.9174, 4490) p) q"
    ).fetchone()
    assert point is not None
    result = execute(district, x=point["x"], y=point["y"], crs="EPSG:4490", utility="water")
    assert result["summary"]["failed_segment"] == seg["TW-P4"]
    assert result["summary"]["found_by"] == "point"
    assert 5 < result["summary"]["snap_distance_m"] < 20

    alarm = admin.execute("SELECT a.id, s.id AS sensor FROM onemap.sensor_alarm a "
                          "JOIN onemap.sensor s ON s.id = a.sensor_id").fetchone()
    assert alarm is not None
    result = execute(district, alarm=alarm["id"])
    assert result["summary"]["failed_segment"] == seg["TW-B2"]
    assert result["summary"]["alarm"]["href"] == f"/collections/sensor/items/{alarm['sensor']}"
    # a sensor at a node: the widest pipe ending there
    admin.execute("UPDATE onemap.sensor SET segment_id = NULL, node_id = "
                  "(SELECT id FROM onemap.pipe_node WHERE code = 'TW-J1')")
    assert execute(district, alarm=alarm["id"])["summary"]["failed_segment"] == seg["TW-P2"]


def test_radius_defaults_per_utility_and_class(admin: psycopg.Connection[Any],
                                               district: Opener) -> None:
    seg = ids(admin, "pipe_segment")
    row = admin.execute("SELECT radius_m FROM onemap.pipe_incident_radius "
                        "WHERE utility = 'water' AND pressure_class = 'any'").fetchone()
    assert row is not None
    result = execute(district, segment=seg["TW-B2"])
    assert result["summary"]["radius_m"] == row["radius_m"]
    # the filling station between 和平里's buildings is 34 m from the branch
    hazards = props(result, "hazards", "hazard_source_id")
    assert [p["name"] for p in hazards.values()] == ["示范加油站"]
    assert execute(district, segment=seg["TW-B2"], radius_m=20)["hazards"]["features"] == []
    gas = execute(district, segment=seg["TG-P1"])
    assert gas["summary"]["radius_m"] == admin.execute(
        "SELECT radius_m FROM onemap.pipe_incident_radius "
        "WHERE utility = 'gas' AND pressure_class = 'medium_b'").fetchone()["radius_m"]  # type: ignore[index]


def test_roads_along_the_main(admin: psycopg.Connection[Any], district: Opener) -> None:
    seg = ids(admin, "pipe_segment")
    roads = props(execute(district, segment=seg["TW-P2"]), "roads", "road_id")
    assert {p["name"] for p in roads.values()} == {"示范路"}
    assert all(p["along_failed"] for p in roads.values())
    # the branch runs 220 m from 示范路 and 470 m from 和平巷
    assert execute(district, segment=seg["TW-B2"])["roads"]["features"] == []


def test_valve_segments_partition(admin: psycopg.Connection[Any], district: Opener) -> None:
    oracle = Oracle(admin)
    # brute force: with every valve closed, the links hanging together
    all_closed = {oracle.valves[v][0] for v in oracle.valves}
    g = nx.Graph()
    for link, ends in oracle.links.items():
        g.add_node(("l", link))
        for n in ends:
            if n not in all_closed:
                g.add_edge(("l", link), ("n", n))
    want = sorted(sorted(x[1] for x in comp if x[0] == "l")
                  for comp in nx.connected_components(g) if any(x[0] == "l" for x in comp))

    out = valve_segments.PROCESS.execute({"utility": "water"}, connection=district)
    segments = out["segments"].value["features"]
    got = []
    pipes = {r["id"]: r["geom"] for r in admin.execute(
        "SELECT id, ST_AsText(geom) AS geom FROM onemap.pipe_segment WHERE utility = 'water'")}
    for f in segments:
        lines = admin.execute(
            "SELECT array_agg(s.id ORDER BY s.id) AS ids FROM onemap.pipe_segment s "
            "WHERE s.utility = 'water' AND ST_Within(s.geom, ST_GeomFromGeoJSON(%s::text))",
            (__import__("json").dumps(f["geometry"]),)).fetchone()
        assert lines is not None
        got.append(sorted(lines["ids"]))
        assert f["properties"]["pipes"] == len(lines["ids"])
    assert sorted(got) == want and len(pipes) == sum(map(len, want))
    # households per segment: the K1 segment serves 和平里's four buildings
    _, k1_households, _ = households(admin, set(next(s for s in want if len(s) == 6)))
    assert sorted(f["properties"]["households"] for f in segments)[-1] >= k1_households
    critical = out["critical_valves"].value["features"]
    assert critical and critical[0]["properties"]["rank"] == 1
    sizes = [f["properties"]["joined_size"] for f in critical]
    assert sizes == sorted(sizes, reverse=True)
