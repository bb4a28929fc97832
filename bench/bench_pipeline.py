"""Pipeline incidents: the valve-segment sweep against WNTR, and one incident's latency.

sweep
    The partition of a whole network into valve-bounded segments:
    ``wntr.metrics.valve_segments(G, valve_layer)`` (``G`` built beforehand,
    not timed) against ``scenarios.pipeline.PipeNetwork`` built from the same
    model and layer (``from_wntr`` / ``from_graph`` timed with it) and its
    ``valve_segments()``, on the same valve layers; the two partitions are
    compared group for group. Networks: WNTR's ``Net3`` (strategic n = 0, 1, 2
    and a random layer, seed 123), ``ky10`` and ``Net6`` (strategic n = 1), and
    the demo city's water networks from the database (the valve layer is what
    ``onemap.valve`` holds: a valve at a node sits on every pipe end there, one
    WNTR row each). WNTR is run only up to ``--wntr-max-links`` links: its
    labelling looks names up in a list (``all_names.index``), so its time
    grows with the square of the network (8 s at 3,900 links).
incident
    ``PipeNetwork.isolate`` on seeded random mains (links between two nodes
    that are not service connections) of the water network, warm (network and
    segments built once, as the process's cached network is): the valves to
    close, the rings, the isolated section and the supply loss, as ids; once
    as the data stands and once with the first valve of each plan stuck.
    p50 / p95 / max in milliseconds. The cold side is reported too: loading
    the graph from the database and building the network and its segments.
process
    The whole analysis behind the ``pipeline-incident`` process
    (``pipeline_incident.run``), valves through the affected households,
    contacts, key units, hazard sources and roads, read and drawn as features,
    on other seeded mains, warm (the network cached): p50 / p95 / max.

Run with the database up:

    PYTHONPATH=. .venv/bin/python bench/bench_pipeline.py                  # the app's database
    PYTHONPATH=. .venv/bin/python bench/bench_pipeline.py --database onemap_netbench_l

A markdown table is printed; the JSON goes to
``var/bench/pipeline-<database>-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from scenarios.pipeline import PipeNetwork
from spatial.network import Graph, load_pipe_graph
from spatial.settings import database_conninfo, get_settings


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds over ``repeat`` runs, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def grouping(labels: Any, names: Any) -> set[frozenset[str]]:
    groups: dict[Any, set[str]] = {}
    for label, name in zip(labels, names, strict=True):
        groups.setdefault(label, set()).add(name)
    return {frozenset(g) for g in groups.values()}


def sweep_wntr_model(name: str, wn: Any, layer: Any, repeat: int,
                     wntr_max_links: int) -> dict[str, Any]:
    import wntr

    g = wn.to_graph()
    ours_s, seg = timed(lambda: PipeNetwork.from_wntr(wn, layer).valve_segments(), repeat)
    net = PipeNetwork.from_wntr(wn, layer)
    row: dict[str, Any] = {"network": name, "nodes": wn.num_nodes, "links": wn.num_links,
                           "valves": len(layer), "segments": seg.n_segments,
                           "largest": int(seg.size.max()), "ours_s": ours_s}
    if wn.num_links <= wntr_max_links:
        wntr_s, (ns, ls, sizes) = timed(
            lambda: wntr.metrics.valve_segments(g, layer.copy()), max(1, repeat // 3))
        ref = grouping([*ns.tolist(), *ls.tolist()],
                       [*("N" + n for n in ns.index), *("L" + k for k in ls.index)])
        ours = grouping([*seg.node_segment.tolist(), *seg.link_segment.tolist()],
                        [*("N" + n for n in net.node_ids), *("L" + k for k in net.link_ids)])
        row.update(wntr_s=wntr_s, same=ours == ref, wntr_segments=len(sizes))
    return row


def sweep_database(name: str, graph: Graph, repeat: int, wntr_max_links: int
                   ) -> dict[str, Any]:
    """The database network's sweep, and WNTR's on the same layer (one row per
    valve and pipe end it covers)."""
    import networkx as nx
    import pandas as pd
    import wntr

    ours_s, seg = timed(lambda: PipeNetwork.from_graph(graph).valve_segments(), repeat)
    net = PipeNetwork.from_graph(graph)
    row: dict[str, Any] = {"network": name, "nodes": graph.n_nodes, "links": graph.n_edges,
                           "valves": net.n_valves, "segments": seg.n_segments,
                           "largest": int(seg.size.max()), "ours_s": ours_s}
    if graph.n_edges > wntr_max_links:
        return row
    g = nx.MultiDiGraph()
    g.add_nodes_from(str(i) for i in graph.node_ids.tolist())
    for e, a, b in zip(graph.edge_ids.tolist(), graph.source.tolist(), graph.target.tolist(),
                       strict=True):
        g.add_edge(str(graph.node_ids[a]), str(graph.node_ids[b]), key=str(e))
    ends = np.where(net.slot_side == 0, net.start[net.slot_link], net.end[net.slot_link])
    layer = pd.DataFrame({"link": [str(x) for x in net.link_ids[net.slot_link].tolist()],
                          "node": [str(x) for x in net.node_ids[ends].tolist()]})
    row["wntr_rows"] = len(layer)
    wntr_s, (ns, ls, sizes) = timed(
        lambda: wntr.metrics.valve_segments(g, layer.copy()), max(1, repeat // 3))
    ref = grouping([*ns.tolist(), *ls.tolist()],
                   [*("N" + n for n in ns.index), *("L" + k for k in ls.index)])
    ours = grouping([*seg.node_segment.tolist(), *seg.link_segment.tolist()],
                    [*(f"N{n}" for n in net.node_ids.tolist()),
                     *(f"L{k}" for k in net.link_ids.tolist())])
    row.update(wntr_s=wntr_s, same=ours == ref, wntr_segments=len(sizes))
    return row


def incidents(conn: psycopg.Connection[Any], n: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    graph = load_pipe_graph(conn, "water")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    net = PipeNetwork.from_graph(graph)
    net.valve_segments()
    build_s = time.perf_counter() - t
    kind = graph.node_kind if graph.node_kind is not None else np.zeros(graph.n_nodes, object)
    service = kind == "service_connection"
    mains = np.flatnonzero(~service[graph.source] & ~service[graph.target])
    rng = np.random.default_rng(seed)
    picks = graph.edge_ids[rng.choice(mains, min(n, len(mains)), replace=False)]
    out: dict[str, Any] = {"nodes": graph.n_nodes, "links": graph.n_edges,
                           "valves": net.n_valves, "mains": len(mains), "load_s": load_s,
                           "build_s": build_s}
    for label in ("as is", "first valve stuck"):
        times, rings, valves, cut = [], [], [], []
        for link in picks.tolist():
            stuck: list[int] = []
            if label != "as is":
                first = net.isolate(link).valves
                if not len(first):
                    continue
                stuck = [int(first[0])]
            t = time.perf_counter()
            iso = net.isolate(link, stuck_valves=stuck)
            times.append(time.perf_counter() - t)
            rings.append(iso.rings)
            valves.append(len(iso.valves))
            cut.append(len(iso.cut_off_links))
        ms = np.array(times) * 1e3
        out[label] = {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)),
                      "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
                      "share_with_fallback": float(np.mean(np.array(rings) > 0)),
                      "mean_valves": float(np.mean(valves)),
                      "mean_cut_off_links": float(np.mean(cut))}
    return out


def process_runs(conn: psycopg.Connection[Any], n: int, seed: int) -> dict[str, Any]:
    """The whole ``pipeline-incident`` analysis on seeded random mains, warm.

    :func:`scenarios.processes.pipeline_incident.run` — the failed pipe
    resolved, the plan, then the buildings, households, contacts, key units,
    hazards and roads read and drawn — as a job runs it: in a transaction acting
    as a district administrator (``bench.duty``, made on first use with the
    first district as scope: row-level security and the personal-data masks
    apply, the contacts carry names), the network from the process's cache
    (loaded by a first run, not timed), each run rolled back.
    """
    from scenarios.processes.pipeline_incident import PROCESS, Incident, run
    from scenarios.processes.progress import Progress
    from spatial import users
    from spatial.access import Principal, apply_principal
    from spatial.errors import NotFoundError

    with conn.transaction():
        try:
            user_id = users.user_id_of(conn, "bench.duty")
        except NotFoundError:
            district = conn.execute("SELECT min(id) AS id FROM onemap.district").fetchone()
            user_id = users.create_user(conn, "bench.duty", None, roles=["district_admin"],
                                        scopes=[("district", int(district["id"]))]).id
    principal = Principal(user_id, "bench.duty", frozenset({"district_admin"}))

    graph = load_pipe_graph(conn, "water")
    kind = graph.node_kind if graph.node_kind is not None else np.zeros(graph.n_nodes, object)
    service = kind == "service_connection"
    mains = np.flatnonzero(~service[graph.source] & ~service[graph.target])
    rng = np.random.default_rng(seed + 1)
    picks = graph.edge_ids[rng.choice(mains, min(n, len(mains)), replace=False)].tolist()
    progress = Progress(PROCESS.stages, report=lambda pct, msg: True, min_interval=0)

    def once(segment: int) -> dict[str, Any]:
        with conn.transaction(force_rollback=True):
            apply_principal(conn, principal)
            result = run(conn, {"incident": Incident(segment=int(segment)), "radius_m": None,
                                "scenario": None}, progress)
        return dict(result.summary)

    once(picks[0])  # loads the network into the cache
    times, households, buildings = [], [], []
    for segment in picks:
        t = time.perf_counter()
        summary = once(segment)
        times.append(time.perf_counter() - t)
        households.append(summary["households"])
        buildings.append(summary["buildings"])
    ms = np.array(times) * 1e3
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
            "mean_households": float(np.mean(households)),
            "max_households": int(np.max(households)),
            "mean_buildings": float(np.mean(buildings))}


def table(result: dict[str, Any]) -> str:
    lines = ["| network | nodes | links | valves | segments | largest | WNTR s | ours ms "
             "| WNTR : ours | same partition |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["sweep"]:
        wntr_s = r.get("wntr_s")
        lines.append(
            f"| {r['network']} | {r['nodes']:,} | {r['links']:,} | {r['valves']:,} "
            f"| {r['segments']:,} | {r['largest']:,} "
            f"| {'—' if wntr_s is None else f'{wntr_s:.3f}'} | {r['ours_s'] * 1e3:.2f} "
            f"| {'—' if wntr_s is None else f'{wntr_s / r['ours_s']:,.0f}×'} "
            f"| {r.get('same', '—')} |")
    inc = result["incident"]
    lines += ["", f"Incidents on {result['database']} water: {inc['nodes']:,} nodes, "
              f"{inc['links']:,} links, {inc['valves']:,} valves, {inc['mains']:,} mains; "
              f"load {inc['load_s']:.2f} s, network and segments {inc['build_s'] * 1e3:.0f} ms",
              "", "| case | n | p50 ms | p95 ms | max ms | with fallback | valves (mean) "
              "| cut-off links (mean) |", "|---|---|---|---|---|---|---|---|"]
    for label in ("as is", "first valve stuck"):
        c = inc[label]
        lines.append(f"| {label} | {c['n']} | {c['p50_ms']:.2f} | {c['p95_ms']:.2f} "
                     f"| {c['max_ms']:.1f} | {c['share_with_fallback']:.0%} "
                     f"| {c['mean_valves']:.1f} | {c['mean_cut_off_links']:.1f} |")
    run = result.get("process")
    if run:
        lines += ["", "The whole analysis (`pipeline_incident.run`: valves through households, "
                  "contacts, key units, hazards, roads, as features), warm:", "",
                  "| n | p50 ms | p95 ms | max ms | households (mean / max) | buildings (mean) |",
                  "|---|---|---|---|---|---|",
                  f"| {run['n']} | {run['p50_ms']:.1f} | {run['p95_ms']:.1f} "
                  f"| {run['max_ms']:.1f} | {run['mean_households']:.0f} / "
                  f"{run['max_households']:,} | {run['mean_buildings']:.1f} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database", help="database in the cluster (default: the app's)")
    ap.add_argument("--incidents", type=int, default=500)
    ap.add_argument("--process-runs", type=int, default=200,
                    help="whole analyses (pipeline_incident.run); 0 to skip")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--wntr-max-links", type=int, default=8000)
    ap.add_argument("--skip-epanet", action="store_true", help="only the database network")
    args = ap.parse_args()
    import wntr

    networks = Path(wntr.__file__).parent / "library" / "networks"
    sweep = []
    if not args.skip_epanet:
        net3 = wntr.network.WaterNetworkModel(str(networks / "Net3.inp"))
        for placement, n in (("strategic", 0), ("strategic", 1), ("strategic", 2),
                             ("random", 60)):
            layer = wntr.network.generate_valve_layer(net3, placement, n, args.seed)
            sweep.append(sweep_wntr_model(f"Net3 {placement} {n}", net3, layer, args.repeat,
                                          args.wntr_max_links))
        for name in ("ky10", "Net6"):
            wn = wntr.network.WaterNetworkModel(str(networks / f"{name}.inp"))
            layer = wntr.network.generate_valve_layer(wn, "strategic", 1, args.seed)
            sweep.append(sweep_wntr_model(f"{name} strategic 1", wn, layer, args.repeat,
                                          args.wntr_max_links))
    info = database_conninfo(args.database)
    with psycopg.connect(info, autocommit=True) as conn:
        database = conn.info.dbname
        graph = load_pipe_graph(conn, "water")
        sweep.append(sweep_database(f"{database} water", graph, args.repeat,
                                    args.wntr_max_links))
        incident = incidents(conn, args.incidents, args.seed)
    with psycopg.connect(info, row_factory=dict_row) as conn:  # as the app's
        process = process_runs(conn, args.process_runs, args.seed) if args.process_runs else None
    result = {"database": database, "sweep": sweep, "incident": incident, "process": process,
              "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args)}
    print(table(result))
    out = get_settings().var_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pipeline-{database}-latest.json"
    path.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
