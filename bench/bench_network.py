"""Network questions: the in-process graph (spatial/network.py) vs pgRouting.

The same questions, on the same edges (``onemap.network_road_edge`` and
``onemap.network_pipe_edge`` of ``180_network.sql``), in one run:

load
    :func:`spatial.network.load_road_graph` / ``load_pipe_graph``: read the
    view, build the CSR arrays (what the first use in a process pays; later
    uses are cache hits).
one-to-one
    shortest-path length between seeded random pairs of road vertices, driving
    (one-way respected): ``Graph.distances([o], [t])`` vs ``pgr_dijkstraCost``.
one-to-many
    one origin to 100 destinations: ``Graph.distances([o], targets)`` vs
    ``pgr_dijkstraCost(edges, o, targets[])``.
path
    the route itself (edge ids) between a pair: ``Graph.path`` vs
    ``pgr_dijkstra``.
reachability
    every vertex within 1,000 m and 3,000 m of driving: ``Graph.within`` vs
    ``pgr_drivingDistance``.
components
    the water network with its normally closed valves shut (valve nodes
    taken out): ``Graph.components`` vs ``pgr_connectedComponents``.

pgRouting runs two ways: over the view (``pgr/view``: every call reads the
live tables and computes vertex keys and ellipsoidal lengths, as a query
that must see the latest edit does) and over a temporary table of the same
edges (``pgr/table``: its best case, the edge list already materialised, but
stale after an edit). Every answer is checked against the other side's
(largest difference reported). Times are medians per question over the
repeats, one connection as the database owner (no row-level security on
either side), on the same machine as PostgreSQL.

Run, with the database up and a city loaded:

    PYTHONPATH=. .venv/bin/python bench/bench_network.py            # the app's database
    PYTHONPATH=. .venv/bin/python bench/bench_network.py --database onemap_netbench_l

A markdown table is printed; the JSON goes to
``var/bench/network-<database>-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from spatial.network import Graph, load_pipe_graph, load_road_graph, pgr_road_within
from spatial.settings import database_conninfo, get_settings

ROAD_EDGES = ("SELECT id, source, target, length_m AS cost, "
              "CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost "
              "FROM onemap.network_road_edge")
ROAD_TABLE = "SELECT id, source, target, cost, reverse_cost FROM bench_road_edge"
#: Water edges with the normally closed valves' nodes taken out (nothing passes them).
WATER_EDGES = ("SELECT e.id, e.source, e.target, e.length_m AS cost, e.length_m AS reverse_cost "
               "FROM onemap.network_pipe_edge e WHERE e.utility = 'water' AND NOT EXISTS ("
               "SELECT FROM onemap.valve v WHERE v.utility = 'water' AND "
               "v.normal_state = 'closed' AND (v.node_id IN (e.source, e.target) "
               "OR v.segment_id = e.id))")
WATER_TABLE = "SELECT id, source, target, cost, reverse_cost FROM bench_water_edge"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 3)


def rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[Any]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def bench(conn: psycopg.Connection[Any], *, pairs: int, repeat: int,
          seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"questions": {}}
    q = out["questions"]

    loads = [timed(lambda: load_road_graph(conn, "drive")) for _ in range(repeat)]
    g: Graph = loads[-1][1]
    wloads = [timed(lambda: load_pipe_graph(conn, "water")) for _ in range(repeat)]
    water: Graph = wloads[-1][1]
    out["road"] = {"nodes": g.n_nodes, "edges": g.n_edges, "arcs": int(g.matrix.nnz)}
    out["water"] = {"nodes": water.n_nodes, "edges": water.n_edges}
    conn.execute("DROP TABLE IF EXISTS bench_road_edge, bench_water_edge")
    t_mat_road, _ = timed(lambda: conn.execute(
        f"CREATE TEMP TABLE bench_road_edge AS {ROAD_EDGES}"))
    t_mat_water, _ = timed(lambda: conn.execute(
        f"CREATE TEMP TABLE bench_water_edge AS {WATER_EDGES}"))
    conn.execute("ANALYZE bench_road_edge")
    conn.execute("ANALYZE bench_water_edge")
    q["load road graph (drive)"] = {"inproc": median_ms([t for t, _ in loads]),
                                    "pgr/table": round(t_mat_road * 1000, 3)}
    q["load water graph"] = {"inproc": median_ms([t for t, _ in wloads]),
                             "pgr/table": round(t_mat_water * 1000, 3)}

    # Pairs within the largest component, so that most have an answer.
    labels = g.components()
    big = np.flatnonzero(labels == np.bincount(labels).argmax())
    ids = g.node_ids[big]
    origins = rng.choice(ids, pairs)
    dests = rng.choice(ids, pairs)

    def per_query(name: str, inproc: Callable[[int], Any], pgr: Callable[[str, int], Any],
                  compare: Callable[[Any, Any], float], n: int,
                  box: Callable[[int], Any] | None = None) -> None:
        rec: dict[str, Any] = {}
        answers: dict[str, list[Any]] = {}
        sides: list[tuple[str, Callable[[int], Any]]] = [
            ("inproc", inproc), ("pgr/view", lambda k: pgr(ROAD_EDGES, k)),
            ("pgr/table", lambda k: pgr(ROAD_TABLE, k))]
        if box is not None:
            sides.append(("pgr/box", box))
        for side, fn in sides:
            times = []
            got = []
            for _ in range(repeat):
                for k in range(n):
                    t, a = timed(lambda fn=fn, k=k: fn(k))  # type: ignore[misc]
                    times.append(t)
                    got.append(a)
            rec[side] = median_ms(times)
            answers[side] = got[:n]
        rec["max_diff"] = max(compare(a, b) for other in answers if other != "inproc"
                              for a, b in zip(answers["inproc"], answers[other], strict=True))
        rec["n"] = n
        q[name] = rec

    def d1(a: float, b: float) -> float:
        return 0.0 if (np.isinf(a) and b is None) else abs(a - (b or 0.0))

    per_query(
        "one-to-one (distance)",
        lambda k: float(g.distances([origins[k]], [dests[k]])[0, 0]),
        lambda e, k: (rows(conn, "SELECT agg_cost FROM pgr_dijkstraCost(%s, %s::bigint, "
                               "%s::bigint, true)", (e, int(origins[k]), int(dests[k])))
                      or [(None,)])[0][0] if origins[k] != dests[k] else 0.0,
        d1, pairs)

    def path_edges(k: int) -> list[int]:
        p = g.path(int(origins[k]), int(dests[k]))
        return g.edge_ids[p.edges].tolist()

    per_query(
        "path (edge ids)",
        path_edges,
        lambda e, k: [r[0] for r in rows(
            conn, "SELECT edge FROM pgr_dijkstra(%s, %s::bigint, %s::bigint, true) "
                  "WHERE edge <> -1 ORDER BY seq", (e, int(origins[k]), int(dests[k])))],
        lambda a, b: float(sum(g.length[g.edge_index(a)]) - sum(g.length[g.edge_index(b)]))
        if a or b else 0.0,
        min(pairs, 20))

    many = 100
    targets = [rng.choice(ids, many).tolist() for _ in range(10)]

    def many_pgr(e: str, k: int) -> np.ndarray:
        got = dict(rows(conn, "SELECT end_vid, agg_cost FROM pgr_dijkstraCost(%s, %s::bigint, "
                              "%s::bigint[], true)", (e, int(origins[k]), targets[k])))
        return np.array([0.0 if t == origins[k] else got.get(t, np.inf) for t in targets[k]])

    per_query(
        f"one-to-{many} (distances)",
        lambda k: g.distances([origins[k]], targets[k])[0],
        many_pgr,
        lambda a, b: float(np.nanmax(np.abs(np.where(np.isinf(a) & np.isinf(b), 0, a - b)))),
        10)

    for radius in (1000.0, 3000.0):
        per_query(
            f"reachability ≤ {radius:,.0f} m (vertices)",
            lambda k, r=radius: set(g.node_ids[g.within(int(origins[k]), r)[0]].tolist()),
            lambda e, k, r=radius: {x[0] for x in rows(
                conn, "SELECT node FROM pgr_drivingDistance(%s, %s::bigint, %s::float8, true)",
                (e, int(origins[k]), r))},
            lambda a, b: float(len(a ^ b)),
            10,
            box=lambda k, r=radius: set(pgr_road_within(conn, int(origins[k]), r)[0].tolist()))

    # Components of the water network as operated (normally closed valves shut).
    shut_nodes, shut_edges = water.valve_cuts()

    def comp_inproc() -> int:
        labels = water.components(removed_nodes=shut_nodes, removed_edges=shut_edges)
        # pgRouting knows only vertices with an edge left: count those components.
        keep = np.ones(water.n_edges, bool)
        keep[shut_edges] = False
        gone = np.zeros(water.n_nodes, bool)
        gone[shut_nodes] = True
        keep &= ~gone[water.source] & ~gone[water.target]
        touched = np.unique(np.concatenate([water.source[keep], water.target[keep]]))
        return len(np.unique(labels[touched]))

    def comp_pgr(e: str) -> int:
        return int(rows(conn, "SELECT count(DISTINCT component) FROM "
                              "pgr_connectedComponents(%s)", (e,))[0][0])

    rec: dict[str, Any] = {}
    answers = {}
    for side, fn in (("inproc", comp_inproc), ("pgr/view", lambda: comp_pgr(WATER_EDGES)),
                     ("pgr/table", lambda: comp_pgr(WATER_TABLE))):
        res = [timed(fn) for _ in range(max(repeat, 3))]
        rec[side] = median_ms([t for t, _ in res])
        answers[side] = res[0][1]
    rec["max_diff"] = float(abs(answers["inproc"] - answers["pgr/view"]))
    rec["n"] = 1
    rec["components"] = answers["inproc"]
    q["components (water, closed valves shut)"] = rec
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"road graph (drive): {result['road']['nodes']:,} vertices, "
        f"{result['road']['edges']:,} edges; water: {result['water']['nodes']:,} nodes, "
        f"{result['water']['edges']:,} segments",
        "",
        "| question | n | in-process ms | pgr/view ms | pgr/table ms | pgr/box ms "
        "| pgr/view : in-process | pgr/table : in-process | pgr/box : in-process "
        "| largest difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:,.3f}"

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:,.1f}×" if a and b else "—"

    for name, rec in result["questions"].items():
        ip, pv, pt, pb = (rec.get(k) for k in ("inproc", "pgr/view", "pgr/table", "pgr/box"))
        lines.append(f"| {name} | {rec.get('n', 1)} | {ms(ip)} | {ms(pv)} | {ms(pt)} | {ms(pb)} "
                     f"| {ratio(pv, ip)} | {ratio(pt, ip)} | {ratio(pb, ip)} "
                     f"| {rec.get('max_diff', '—')} |")
    # The first question of a process that has no graph yet: load + ask vs ask pgRouting.
    load = result["questions"]["load road graph (drive)"]["inproc"]
    lines += ["", "First question in a process without the graph (in-process = load + "
              "question):", "",
              "| question | in-process ms | pgr/view ms | pgr/box ms | best |",
              "|---|---|---|---|---|"]
    for name, rec in result["questions"].items():
        if name.startswith(("load", "components")):
            continue
        cold = load + rec["inproc"]
        cands = {"in-process": cold, "pgr/view": rec.get("pgr/view"),
                 "pgr/box": rec.get("pgr/box")}
        best = min((v, k) for k, v in cands.items() if v is not None)[1]
        lines.append(f"| {name} | {cold:,.1f} | {ms(rec.get('pgr/view'))} | "
                     f"{ms(rec.get('pgr/box'))} | {best} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database", help="database in the cluster (default: the app's)")
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    info = database_conninfo(args.database)
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute("SET jit = off")  # pgRouting's edge queries gain nothing from JIT
        result = bench(conn, pairs=args.pairs, repeat=args.repeat, seed=args.seed)
        result["database"] = conn.info.dbname
        result["postgres"] = rows(conn, "SHOW server_version")[0][0]
        result["pgrouting"] = rows(conn, "SELECT pgr_version()")[0][0]
    result["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    result["args"] = vars(args)
    print(table(result))
    out = get_settings().var_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"network-{result['database']}-latest.json"
    path.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
