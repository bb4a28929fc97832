"""Service area (scenarios/service_area.py): hand-solved cases, networkx and pgRouting side
by side on the S demo city, and what a what-if scenario changes (closed roads strictly
shrink the reach; removed, added and re-rated facilities change origins and capacity)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import pytest

from scenarios.service_area import Origin, ServiceArea, facility_origins, service_area
from spatial import whatif
from spatial.db import connect
from spatial.network import Graph, load_road_graph

# Hand-solved -------------------------------------------------------------------------


def row() -> Graph:
    """1 -10- 2 -11- 3 -12- 4, 100 m each; 13 a one-way shortcut 1 → 3 of 150 m."""
    return Graph.from_edges("row", [1, 2, 3, 4],
                            [(10, 1, 2, 100.0), (11, 2, 3, 100.0), (12, 3, 4, 100.0),
                             (13, 1, 3, 150.0)], oneway=[13])


def reached(sa: ServiceArea) -> dict[int, float]:
    return {e.road_id: e.reached_m for e in sa.edges}


def test_hand_solved_reach() -> None:
    g = row()
    sa = ServiceArea(g, [0], 180.0).solve()
    # node 3 at 150 via the shortcut; edge 11 reached 80 m from node 2 and 30 m from node 3
    assert reached(sa) == {10: 100.0, 11: 100.0, 12: 30.0, 13: 150.0}
    assert sa.node_distance.tolist() == [0.0, 100.0, 150.0, np.inf]
    assert sa.reachable_m == pytest.approx(380.0)
    # from node 3 the one-way shortcut leads nowhere: 1 is 200 m away by 11 and 10
    back = ServiceArea(g, [2], 120.0).solve()
    assert reached(back) == {10: 20.0, 11: 100.0, 12: 100.0}
    # closing the shortcut: only the row; an id that is not a road is ignored
    closed = ServiceArea(g, [0], 180.0, closed=[13, 999]).solve()
    assert reached(closed) == {10: 100.0, 11: 80.0}
    assert closed.closed_applied.tolist() == [13]
    # two origins: each node from the nearer one
    both = ServiceArea(g, [0, 3], 50.0).solve()
    assert reached(both) == {10: 50.0, 12: 50.0, 13: 50.0}


def test_nothing_to_start_from() -> None:
    sa = ServiceArea(row(), [], 500.0).solve()
    assert sa.edges == [] and sa.reachable_m == 0.0
    with pytest.raises(ValueError, match="distance_m"):
        ServiceArea(row(), [0], float("nan"))


def test_partial_edges_are_cut_to_their_reached_part() -> None:
    import shapely

    xy = np.array([[116.40, 39.90], [116.41, 39.90], [116.42, 39.90]])
    g = Graph.from_edges("cut", [1, 2, 3], [(1, 1, 2, 100.0), (2, 2, 3, 100.0)], xy=xy)
    g.geoms = shapely.linestrings([[xy[0], xy[1]], [xy[1], xy[2]]])
    sa = ServiceArea(g, [0], 150.0).solve()
    features = {f["id"]: f for f in sa.features()}
    assert features[1]["properties"]["complete"] is True
    half = shapely.geometry.shape(features[2]["geometry"])
    assert half.length == pytest.approx(0.005) and features[2]["properties"]["reached_m"] == 50.0
    # reached from both ends, not meeting: two pieces of 30 m each
    sa = ServiceArea(g, [1, 2], 30.0).solve()
    cut = next(f for f in sa.features() if f["id"] == 2)
    assert cut["geometry"]["type"] == "MultiLineString"
    assert cut["properties"]["reached_m"] == 60.0 and cut["properties"]["complete"] is False
    assert shapely.geometry.shape(cut["geometry"]).length == pytest.approx(0.006)


# The S demo city ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 (streets, buildings, refuse)."""
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, "sa", steps=("refuse",)) as made:
        yield made[0]


def networkx_reach(conn: Any, mode: str, origin: int, cost: float
                   ) -> tuple[dict[int, float], dict[int, float]]:
    """Node distances and reached metres per road, from the rows with networkx alone."""
    rows = conn.execute("SELECT id, source, target, length_m, oneway "
                        "FROM onemap.network_road_edge").fetchall()
    g = nx.MultiDiGraph()
    for r in rows:
        g.add_edge(r["source"], r["target"], key=r["id"], weight=r["length_m"])
        if mode == "walk" or not r["oneway"]:
            g.add_edge(r["target"], r["source"], key=r["id"], weight=r["length_m"])
    dist = nx.single_source_dijkstra_path_length(g, origin, cutoff=cost, weight="weight")
    out = {}
    for r in rows:
        a = max(0.0, cost - dist[r["source"]]) if r["source"] in dist else 0.0
        back = mode == "walk" or not r["oneway"]
        b = max(0.0, cost - dist[r["target"]]) if back and r["target"] in dist else 0.0
        if min(r["length_m"], a + b) > 0:
            out[r["id"]] = min(r["length_m"], a + b)
    return dist, out


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_demo_city_agrees_with_networkx(city: str, mode: str) -> None:
    rng = np.random.default_rng(14)
    with connect(city, autocommit=True) as conn:
        g = load_road_graph(conn, mode)
        for origin in rng.choice(g.node_ids, 4, replace=False).tolist():
            dist, ref = networkx_reach(conn, mode, origin, 900.0)
            sa = ServiceArea(g, g.index([origin]).tolist(), 900.0).solve()
            ours = {int(g.node_ids[i]): float(d) for i, d in enumerate(sa.node_distance)
                    if np.isfinite(d)}
            assert ours.keys() == dist.keys()
            assert all(ours[k] == pytest.approx(dist[k], abs=1e-6) for k in dist)
            assert reached(sa).keys() == ref.keys() and len(ref) > 3
            assert all(reached(sa)[k] == pytest.approx(ref[k], abs=1e-6) for k in ref)


def test_demo_city_agrees_with_pgrouting(city: str) -> None:
    edges = ("SELECT id, source, target, length_m AS cost, "
             "CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost "
             "FROM onemap.network_road_edge")
    with connect(city, autocommit=True) as conn:
        g = load_road_graph(conn, "drive")
        origin = int(np.random.default_rng(3).choice(g.node_ids))
        got = conn.execute("SELECT node, agg_cost FROM pgr_drivingDistance(%s, %s::bigint, "
                           "%s::float8, true)", (edges, origin, 700.0)).fetchall()
    sa = ServiceArea(g, g.index([origin]).tolist(), 700.0).solve()
    ours = {int(g.node_ids[i]): float(d) for i, d in enumerate(sa.node_distance)
            if np.isfinite(d)}
    assert ours.keys() == {r["node"] for r in got}
    assert all(ours[r["node"]] == pytest.approx(r["agg_cost"], rel=1e-9) for r in got)


def _scenario(edits: list[dict[str, Any]]) -> whatif.Scenario:
    return whatif.Scenario(uuid.uuid4(), "test", None, 1, False, whatif.parse_edits(edits))


def _checksum(conn: Any) -> tuple[Any, ...]:
    row = conn.execute("SELECT count(*) AS n, md5(string_agg(id::text || ST_AsEWKB(geom)::text, "
                       "',' ORDER BY id)) AS sum FROM onemap.road").fetchone()
    return row["n"], row["sum"]


def test_closing_reached_roads_strictly_shrinks_the_service_area(city: str) -> None:
    with connect(city, autocommit=True) as conn:
        before = _checksum(conn)
        g = load_road_graph(conn, "walk")
        lon, lat = (float(v) for v in g.xy[len(g.xy) // 2])
        base = service_area(conn, origins=[Origin(lon, lat)], distance_m=800.0, mode="walk")
        assert base.households > 0 and len(base.area.edges) > 5
        # close the roads the trip enters first: everything behind them goes or gets farther
        first = sorted(base.area.edges, key=lambda e: e.distance_m)[:3]
        scenario = _scenario([{"type": "close_road", "road_ids": [e.road_id for e in first]}])
        less = service_area(conn, origins=[Origin(lon, lat)], distance_m=800.0, mode="walk",
                            scenario=scenario)
        assert _checksum(conn) == before  # the stored city is untouched
    kept = reached(less.area)
    assert set(kept) < set(reached(base.area))
    assert not set(kept) & {e.road_id for e in first}
    assert all(kept[k] <= reached(base.area)[k] + 1e-6 for k in kept)
    assert less.area.reachable_m < base.area.reachable_m
    assert less.households <= base.households
    s0, s1 = base.summary(), less.summary(scenario)
    assert s1["closed_roads"] == 3 and s0["closed_roads"] == 0
    assert s1["scenario"] == str(scenario.id) and s1["edges"] == len(kept)


def test_facility_edits_change_the_origins_and_capacity(city: str) -> None:
    with connect(city, autocommit=True) as conn:
        rows = conn.execute("SELECT id, capacity_t_per_day AS cap, ST_X(geom) AS lon, "
                            "ST_Y(geom) AS lat FROM onemap.refuse_facility "
                            "WHERE capacity_t_per_day IS NOT NULL ORDER BY id LIMIT 3").fetchall()
        assert len(rows) == 3
        ids = [r["id"] for r in rows[:2]]
        base = facility_origins(conn, "refuse_facility", ids)
        scenario = _scenario([
            {"type": "remove_facility", "collection": "refuse_facility", "id": ids[0]},
            {"type": "add_facility", "collection": "refuse_facility", "id": rows[2]["id"]},
            {"type": "add_facility", "collection": "refuse_facility",
             "point": {"x": rows[0]["lon"] + 0.001, "y": rows[0]["lat"], "crs": "EPSG:4490"},
             "attributes": {"name": "新建", "capacity": 5}},
            {"type": "set_capacity", "collection": "refuse_facility", "id": ids[1],
             "capacity": 100}])
        other = facility_origins(conn, "refuse_facility", ids, scenario)
        r0 = service_area(conn, origins=base, distance_m=500.0)
        r1 = service_area(conn, origins=other, distance_m=500.0, scenario=scenario)
    assert [o.id for o in base] == ids
    assert [o.id for o in other] == [ids[1], rows[2]["id"], None]
    assert r0.summary()["capacity_total"] == pytest.approx(float(rows[0]["cap"] + rows[1]["cap"]))
    assert r1.summary()["capacity_total"] == pytest.approx(100 + float(rows[2]["cap"]) + 5)
    assert r1.summary()["new_facilities"] == 1 and r1.summary()["origins"] == 3
