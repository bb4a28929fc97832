"""Network graphs (spatial/network.py): hand-solved cases, networkx and pgRouting
side by side on the demo city, one-way streets, valves, the cache and its
invalidation by the change notifications of 150_tiles.sql."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import psycopg
import pytest

from spatial.access import ANONYMOUS, apply_principal
from spatial.db import connect
from spatial.errors import PermissionDeniedError
from spatial.network import (
    Graph,
    GraphCache,
    load_pipe_graph,
    load_road_graph,
    pgr_road_distances,
    pgr_road_within,
    pipe_graph,
    road_distances,
    road_graph,
    road_within,
    vertex_lonlat,
)

NETWORK_TABLES = ("road", "pipe_segment", "pipe_node", "valve")


# Hand-solved, no database -----------------------------------------------------------


def square() -> Graph:
    """a-b-c-d-a, 100 m sides; a one-way diagonal a → c of 120 m; a parallel
    b-c edge of 150 m (the shorter one must win); e-f apart from the rest."""
    return Graph.from_edges(
        "square", node_ids=[1, 2, 3, 4, 5, 6],
        edges=[(10, 1, 2, 100.0), (11, 2, 3, 100.0), (12, 3, 4, 100.0), (13, 4, 1, 100.0),
               (14, 1, 3, 120.0), (15, 2, 3, 150.0), (16, 5, 6, 10.0)],
        oneway=[14])


def test_hand_solved_distances_and_paths() -> None:
    g = square()
    d = g.distances([1, 3], [1, 2, 3, 4, 5])
    assert d[0].tolist() == [0.0, 100.0, 120.0, 100.0, np.inf]
    assert d[1].tolist() == [200.0, 100.0, 0.0, 100.0, np.inf]  # not back along a → c
    p = g.path(1, 3)
    assert g.edge_ids[p.edges].tolist() == [14] and p.length == 120.0
    p = g.path(3, 1)
    assert p.length == 200.0 and len(p.edges) == 2
    assert g.node_ids[p.nodes].tolist() in ([3, 2, 1], [3, 4, 1])
    assert g.edge_ids[g.path(2, 3).edges].tolist() == [11]  # the 100 m one, not 150 m
    assert g.path(1, 5).length == np.inf and len(g.path(1, 5).nodes) == 0
    # to a destination from every node: the one-way diagonal counts only towards c
    to = g.distances_to([3, 1])
    assert to[0][g.index([1, 2, 3, 4, 5])].tolist() == [120.0, 100.0, 0.0, 100.0, np.inf]
    assert to[1][g.index([1, 2, 3, 4])].tolist() == [0.0, 100.0, 200.0, 100.0]


def test_hand_solved_within_components_and_removal() -> None:
    g = square()
    idx, dist = g.within(1, 110.0)
    assert g.node_ids[idx].tolist() == [1, 2, 4] and dist.tolist() == [0.0, 100.0, 100.0]
    idx, _ = g.within([1, 5], 5.0)
    assert g.node_ids[idx].tolist() == [1, 5]
    labels = g.components()
    assert len(set(labels[:4].tolist())) == 1 and labels[4] == labels[5] != labels[0]
    # Closing b-c (both edges) and the diagonal leaves a-b-…-d-c joined through d.
    closed = g.edge_index([11, 15, 14])
    assert g.without(edges=closed).distances([1], [3])[0, 0] == 200.0
    # Closing a-d too cuts c and d off a and b.
    labels = g.components(removed_edges=g.edge_index([11, 15, 14, 13]))
    assert labels[0] == labels[1] != labels[2] == labels[3]
    # Taking out node b: the edges ending there stay with their other end.
    labels = g.components(removed_nodes=g.index([2]))
    assert labels[1] == -1 and labels[0] == labels[2] == labels[3]
    assert g.without(nodes=g.index([2])).distances([1], [3])[0, 0] == 120.0


def test_unknown_ids_are_named() -> None:
    g = square()
    with pytest.raises(ValueError, match="99"):
        g.distances([99])
    with pytest.raises(ValueError, match="77"):
        Graph.from_edges("bad", [1, 2], [(1, 1, 77, 1.0)])
    with pytest.raises(ValueError, match="valves"):
        g.valve_cuts()


def test_from_edges_undirected_ignores_oneway() -> None:
    g = Graph.from_edges("u", [1, 2], [(1, 1, 2, 5.0)], oneway=[1], directed=False)
    assert g.distances([2], [1])[0, 0] == 5.0


# A small road and pipe network inserted by hand -------------------------------------

#: A, B, C along 39.900°N (≈ 85 m apart), F north of B; G-H far away.
PTS = {"A": (116.400, 39.900), "B": (116.401, 39.900), "C": (116.402, 39.900),
       "F": (116.401, 39.901), "G": (116.410, 39.910), "H": (116.411, 39.910)}
#: name → (from, to, class, oneway). r2 is one-way from C to B.
ROADS = {"r1": ("A", "B", "branch", False), "r2": ("C", "B", "branch", True),
         "r3": ("A", "F", "secondary", False), "r4": ("F", "C", "alley", False),
         "r5": ("G", "H", "branch", False)}


def line(*names: str) -> str:
    return "LINESTRING(" + ", ".join(f"{PTS[n][0]} {PTS[n][1]}" for n in names) + ")"


def insert_roads(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, float]]:
    """Insert ROADS; name → (road id, length in metres as PostGIS measures it)."""
    out = {}
    for name, (a, b, cls, oneway) in ROADS.items():
        row = conn.execute(
            "INSERT INTO onemap.road (name, road_class, oneway, geom) "
            "VALUES (%s, %s, %s, ST_GeomFromText(%s, 4490)) "
            "RETURNING id, ST_Length(geom::geography) AS m",
            (name, cls, oneway, line(a, b))).fetchone()
        out[name] = (row["id"], row["m"])
    return out


def vertex(conn: psycopg.Connection[Any], name: str) -> int:
    x, y = PTS[name]
    return int(conn.execute("SELECT onemap.network_vertex(ST_Point(%s, %s, 4490)) AS v",
                            (x, y)).fetchone()["v"])


@pytest.fixture
def cache() -> Iterator[GraphCache]:
    c = GraphCache()
    yield c
    c.close()


def test_drive_respects_oneway_walk_does_not(conn: psycopg.Connection[Any],
                                             cache: GraphCache) -> None:
    roads = insert_roads(conn)
    m = {k: v[1] for k, v in roads.items()}
    a, c = vertex(conn, "A"), vertex(conn, "C")
    drive = road_graph(conn, "drive", cache=cache)
    walk = road_graph(conn, "walk", cache=cache)
    assert (drive.n_nodes, drive.n_edges) == (6, 5)
    # Driving A → C cannot use r2 against its direction: round by F.
    assert drive.distances([a], [c])[0, 0] == pytest.approx(m["r3"] + m["r4"])
    assert drive.edge_ids[drive.path(a, c).edges].tolist() == [roads["r3"][0], roads["r4"][0]]
    # C → A may: along r2 and r1.
    assert drive.distances([c], [a])[0, 0] == pytest.approx(m["r2"] + m["r1"])
    # Walking ignores it.
    assert walk.distances([a], [c])[0, 0] == pytest.approx(m["r1"] + m["r2"])
    # The far pair is its own component; closing r3 leaves C unreachable from A by car.
    labels = walk.components()
    assert len(set(labels.tolist())) == 2
    closed = drive.without(edges=drive.edge_index([roads["r3"][0]]))
    assert closed.distances([a], [c])[0, 0] == np.inf
    # Within 100 m on foot from A: A and B (85 m), not F (111 m).
    idx, _ = walk.within(a, 100.0)
    assert set(walk.node_ids[idx].tolist()) == {a, vertex(conn, "B")}
    # Node ids are pgRouting's vertex ids of the same view.
    pgr = conn.execute(
        "SELECT agg_cost FROM pgr_dijkstraCost('SELECT id, source, target, length_m AS cost, "
        "CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost "
        "FROM onemap.network_road_edge', %s::bigint, %s::bigint, true)", (a, c)).fetchone()
    assert pgr["agg_cost"] == pytest.approx(m["r3"] + m["r4"])


def test_snapping(conn: psycopg.Connection[Any], cache: GraphCache) -> None:
    roads = insert_roads(conn)
    g = road_graph(conn, "walk", cache=cache)
    i, d = g.nearest_node(116.40002, 39.90001)
    assert g.node_ids[i[0]] == vertex(conn, "A") and 1.0 < d[0] < 3.0
    # 20 % of the way from A to B, 5 m north of r1.
    e, frac, dist = g.nearest_edge([116.4002], [39.900045])
    assert g.edge_ids[e[0]] == roads["r1"][0]
    assert frac[0] == pytest.approx(0.2, abs=0.01) and dist[0] == pytest.approx(5.0, abs=0.1)


def insert_pipes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """S(source)-J1-V-J2 in a row, J1-J3-E north; a valve at V, a normally closed
    valve on J3-E, an abandoned J2-E (left out)."""
    nodes = {"S": ("source", 0, 0), "J1": ("junction", 1, 0), "V": ("other", 2, 0),
             "J2": ("junction", 3, 0), "J3": ("junction", 1, 1), "E": ("end", 3, 1)}
    ids: dict[str, int] = {}
    for name, (kind, x, y) in nodes.items():
        ids[name] = conn.execute(
            "INSERT INTO onemap.pipe_node (utility, kind, geom) "
            "VALUES ('water', %s, ST_Point(%s, %s, 4490)) RETURNING id",
            (kind, 116.4 + x * 1e-3, 39.9 + y * 1e-3)).fetchone()["id"]
    segs = {"s1": ("S", "J1", "in_service"), "s2": ("J1", "V", "in_service"),
            "s3": ("V", "J2", "in_service"), "s4": ("J1", "J3", "in_service"),
            "s5": ("J3", "E", "in_service"), "s6": ("J2", "E", "abandoned")}
    for name, (a, b, status) in segs.items():
        ids[name] = conn.execute(
            "INSERT INTO onemap.pipe_segment (utility, status, from_node_id, to_node_id, geom) "
            "SELECT 'water', %s, a.id, b.id, ST_MakeLine(a.geom, b.geom) "
            "FROM onemap.pipe_node a, onemap.pipe_node b WHERE a.id = %s AND b.id = %s "
            "RETURNING id", (status, ids[a], ids[b])).fetchone()["id"]
    ids["v1"] = conn.execute(
        "INSERT INTO onemap.valve (utility, node_id, geom) "
        "SELECT 'water', id, geom FROM onemap.pipe_node WHERE id = %s RETURNING id",
        (ids["V"],)).fetchone()["id"]
    ids["v2"] = conn.execute(
        "INSERT INTO onemap.valve (utility, segment_id, normal_state, geom) "
        "SELECT 'water', id, 'closed', ST_LineInterpolatePoint(geom, 0.5) "
        "FROM onemap.pipe_segment WHERE id = %s RETURNING id", (ids["s5"],)).fetchone()["id"]
    return ids


def test_pipe_graph_valves_and_sources(conn: psycopg.Connection[Any],
                                       cache: GraphCache) -> None:
    ids = insert_pipes(conn)
    g = pipe_graph(conn, "water", cache=cache)
    assert (g.n_nodes, g.n_edges) == (6, 5)
    assert ids["s6"] not in g.edge_ids.tolist()
    assert g.node_ids[g.sources].tolist() == [ids["S"]]
    at = {k: int(g.index([ids[k]])[0]) for k in ("S", "J1", "V", "J2", "J3", "E")}
    assert len(set(g.components().tolist())) == 1
    # As operated: the normally closed valve on J3-E cuts E off.
    nodes, edges = g.valve_cuts()
    assert nodes.size == 0 and g.edge_ids[edges].tolist() == [ids["s5"]]
    labels = g.components(removed_nodes=nodes, removed_edges=edges)
    assert labels[at["E"]] != labels[at["S"]] == labels[at["J3"]]
    # Closing the valve at V cuts J2 off the source; V itself is out.
    nodes, edges = g.valve_cuts([ids["v1"]])
    labels = g.components(removed_nodes=nodes, removed_edges=edges)
    assert labels[at["V"]] == -1 and labels[at["J2"]] != labels[at["S"]]
    assert bool(g.valves is not None and g.valves.operable.all())
    with pytest.raises(ValueError, match="utility"):
        pipe_graph(conn, "sewage", cache=cache)


# The cache and the change notifications ---------------------------------------------


def wait_for(check: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_cache_reused_then_dropped_by_notification(db: str, conn: psycopg.Connection[Any],
                                                   cache: GraphCache) -> None:
    roads = insert_roads(conn)
    insert_pipes(conn)
    a, c = vertex(conn, "A"), vertex(conn, "C")
    first = road_graph(conn, "drive", cache=cache)
    water = pipe_graph(conn, "water", cache=cache)
    with connect(db, autocommit=True) as other:  # another job, another connection
        assert road_graph(other, "drive", cache=cache) is first
    assert cache.loads == 2 and cache.cached(conn, "road", mode="drive")
    # An edit elsewhere: r2 becomes two-way. Its NOTIFY drops the road graph only.
    with connect(db) as editor, editor.transaction():
        editor.execute("UPDATE onemap.road SET oneway = false WHERE id = %s",
                       (roads["r2"][0],))
    assert wait_for(lambda: not cache.cached(conn, "road", mode="drive"))
    assert pipe_graph(conn, "water", cache=cache) is water
    second = road_graph(conn, "drive", cache=cache)
    assert second is not first and cache.loads == 3
    m = {k: v[1] for k, v in roads.items()}
    assert second.distances([a], [c])[0, 0] == pytest.approx(m["r1"] + m["r2"])
    # A valve edit drops the pipe graph.
    with connect(db) as editor, editor.transaction():
        editor.execute("UPDATE onemap.valve SET operable = false")
    assert wait_for(lambda: not cache.cached(conn, "pipe", utility="water"))
    assert cache.cached(conn, "road", mode="drive")
    # A rolled-back edit sends nothing.
    with connect(db) as editor:
        editor.execute("UPDATE onemap.road SET oneway = true")
        editor.rollback()
    time.sleep(0.5)
    assert cache.cached(conn, "road", mode="drive")


def test_lost_listener_drops_the_graphs(conn: psycopg.Connection[Any],
                                        cache: GraphCache) -> None:
    insert_roads(conn)
    first = road_graph(conn, "walk", cache=cache)
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'onemap-network' AND datname = current_database()")
    assert wait_for(lambda: not cache.cached(conn, "road", mode="walk"))
    again = road_graph(conn, "walk", cache=cache)  # a new listener, a new load
    assert again is not first and cache.cached(conn, "road", mode="walk")


def test_network_tables_notify_on_every_write(conn: psycopg.Connection[Any]) -> None:
    """The cache is only as fresh as these triggers (150_tiles.sql)."""
    rows = conn.execute(
        "SELECT c.relname, array_agg(t.tgname ORDER BY t.tgname) AS triggers "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = 'onemap'::regnamespace AND c.relname = ANY (%s) "
        "AND t.tgname LIKE 'tile\\_%%' GROUP BY c.relname", (list(NETWORK_TABLES),)).fetchall()
    assert {r["relname"]: r["triggers"] for r in rows} == {
        t: ["tile_delete", "tile_insert", "tile_update"] for t in NETWORK_TABLES}


def test_invalidate_hook(conn: psycopg.Connection[Any], cache: GraphCache) -> None:
    insert_roads(conn)
    road_graph(conn, "drive", cache=cache)
    assert cache.invalidate("lamp") == 0
    assert cache.invalidate("road") == 1 and not cache.cached(conn, "road", mode="drive")


# Row-level security -------------------------------------------------------------------


def test_read_policies_are_whole_table(conn: psycopg.Connection[Any]) -> None:
    """The cache serves one graph to every reader: no policy may narrow the rows."""
    rows = conn.execute(
        "SELECT tablename, qual FROM pg_policies WHERE schemaname = 'onemap' "
        "AND tablename = ANY (%s) AND cmd IN ('SELECT', 'ALL')", (list(NETWORK_TABLES),)
    ).fetchall()
    assert {r["tablename"] for r in rows} == set(NETWORK_TABLES)
    for r in rows:
        assert r["qual"] == f"( SELECT can_read('{r['tablename']}'::text) AS can_read)"


def test_anonymous_reads_roads_not_pipes(conn: psycopg.Connection[Any],
                                         cache: GraphCache) -> None:
    insert_roads(conn)
    insert_pipes(conn)
    with conn.transaction():
        apply_principal(conn, ANONYMOUS)
        assert road_graph(conn, "walk", cache=cache).n_edges == 5
        with pytest.raises(PermissionDeniedError, match="pipe_node"):
            pipe_graph(conn, "water", cache=cache)


# The demo city: networkx and pgRouting side by side -----------------------------------


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 (streets and pipes)."""
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, "graph", steps=("pipelines",)) as made:
        yield made[0]


def networkx_roads(conn: psycopg.Connection[Any], mode: str) -> nx.MultiDiGraph:
    """The road graph built straight from the rows, independently of Graph."""
    g = nx.MultiDiGraph()
    for r in conn.execute("SELECT id, source, target, length_m, oneway "
                          "FROM onemap.network_road_edge").fetchall():
        g.add_edge(r["source"], r["target"], key=r["id"], weight=r["length_m"])
        if mode == "walk" or not r["oneway"]:
            g.add_edge(r["target"], r["source"], key=r["id"], weight=r["length_m"])
    return g


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_demo_city_agrees_with_networkx(city: str, mode: str) -> None:
    with connect(city, autocommit=True) as conn:
        g = load_road_graph(conn, mode)
        ref = networkx_roads(conn, mode)
    assert g.n_nodes == ref.number_of_nodes() and g.n_edges == len({k for *_, k in
                                                                    ref.edges(keys=True)})
    rng = np.random.default_rng(14)
    origins = rng.choice(g.node_ids, 8, replace=False)
    dist = g.distances(origins)
    checked = 0
    for k, o in enumerate(origins.tolist()):
        lengths = nx.single_source_dijkstra_path_length(ref, o, weight="weight")
        assert {int(g.node_ids[j]) for j in np.flatnonzero(np.isfinite(dist[k]))} == set(lengths)
        for t in rng.choice(list(lengths), 20).tolist():
            assert dist[k, g.index([t])[0]] == pytest.approx(lengths[t], rel=1e-9, abs=1e-6)
            checked += 1
    assert checked == 160
    # distances to a node from every node, one search on the reversed arcs: the same as
    # from every node to it, networkx's reversed search
    targets = origins[:3]
    to = g.distances_to(targets)
    for k, t in enumerate(targets.tolist()):
        lengths = nx.single_source_dijkstra_path_length(ref.reverse(copy=False), t,
                                                        weight="weight")
        assert {int(g.node_ids[j]) for j in np.flatnonzero(np.isfinite(to[k]))} == set(lengths)
        for o in rng.choice(list(lengths), 20).tolist():
            assert to[k, g.index([o])[0]] == pytest.approx(lengths[o], rel=1e-9, abs=1e-6)
    # Components after closing a random tenth of the roads.
    closed = rng.choice(g.edge_ids, len(g.edge_ids) // 10, replace=False)
    ref.remove_edges_from([(u, v, k) for u, v, k in ref.edges(keys=True) if k in set(closed)])
    labels = g.components(removed_edges=g.edge_index(closed))
    ours = {frozenset(g.node_ids[labels == c].tolist()) for c in np.unique(labels)}
    assert ours == {frozenset(c) for c in nx.weakly_connected_components(ref)}


def test_demo_city_agrees_with_pgrouting(city: str) -> None:
    edges = ("SELECT id, source, target, length_m AS cost, "
             "CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost "
             "FROM onemap.network_road_edge")
    with connect(city, autocommit=True) as conn:
        g = load_road_graph(conn, "drive")
        rng = np.random.default_rng(7)
        origin = int(rng.choice(g.node_ids))
        targets = rng.choice(g.node_ids, 30, replace=False).tolist()
        rows = conn.execute("SELECT end_vid, agg_cost FROM pgr_dijkstraCost(%s, %s::bigint, "
                            "%s::bigint[], true)", (edges, origin, targets)).fetchall()
        reach = conn.execute("SELECT node, agg_cost FROM pgr_drivingDistance(%s, %s::bigint, "
                             "%s::float8, true)", (edges, origin, 600.0)).fetchall()
    dist = g.distances([origin], targets)[0]
    pgr = {r["end_vid"]: r["agg_cost"] for r in rows}
    for t, d in zip(targets, dist.tolist(), strict=True):
        if t == origin:
            continue
        assert (pgr.get(t, np.inf) == pytest.approx(d, rel=1e-9)) if np.isfinite(d) \
            else t not in pgr
    idx, dist = g.within(origin, 600.0)
    assert set(g.node_ids[idx].tolist()) == {r["node"] for r in reach}
    # The one-off helpers: the same answers, the box around the disc losing nothing.
    with connect(city, autocommit=True) as conn:
        nodes, cost = pgr_road_within(conn, origin, 600.0)
        assert nodes.tolist() == sorted(g.node_ids[idx].tolist())
        order = np.argsort(g.node_ids[idx])
        np.testing.assert_allclose(cost, dist[order], rtol=1e-9)
        far = pgr_road_distances(conn, origin, targets, "walk")
    np.testing.assert_allclose(far, load_road_graph_walk(city).distances([origin], targets)[0],
                               rtol=1e-9)


def load_road_graph_walk(info: str) -> Graph:
    with connect(info, autocommit=True) as conn:
        return load_road_graph(conn, "walk")


def test_one_off_questions_go_to_pgrouting_until_the_graph_is_cached(
        city: str, cache: GraphCache) -> None:
    with connect(city, autocommit=True) as conn:
        ids = load_road_graph(conn, "walk").node_ids
        origin, targets = int(ids[3]), ids[::7].tolist()
        nodes, cost = road_within(conn, origin, 800.0, "walk", cache=cache)
        far = road_distances(conn, origin, targets, "walk", cache=cache)
        assert cache.loads == 0  # pgRouting answered
        road_graph(conn, "walk", cache=cache)
        nodes2, cost2 = road_within(conn, origin, 800.0, "walk", cache=cache)
        far2 = road_distances(conn, origin, targets, "walk", cache=cache)
        assert cache.loads == 1
    assert nodes.tolist() == nodes2.tolist() and len(nodes) > 1
    np.testing.assert_allclose(cost, cost2, rtol=1e-9)
    np.testing.assert_allclose(far, far2, rtol=1e-9)


def test_vertex_keys_round_trip(city: str) -> None:
    with connect(city, autocommit=True) as conn:
        g = load_road_graph(conn, "drive")
    back = np.array([vertex_lonlat(int(v)) for v in g.node_ids])
    assert np.abs(back - g.xy).max() <= 5e-7 + 1e-12


def test_demo_city_pipes_connected_from_their_sources(city: str) -> None:
    with connect(city, autocommit=True) as conn:
        for utility in ("water", "gas", "heat", "drainage"):
            g = load_pipe_graph(conn, utility)
            labels = g.components()
            assert len(g.sources) >= 1
            # Every service connection hangs on its network's fed part.
            service = np.flatnonzero(g.node_kind == "service_connection")
            assert np.isin(labels[service], labels[g.sources]).all(), utility
