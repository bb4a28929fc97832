"""Refuse flows: the day's plan (``scenarios.refuse_flow``) against networkx's network simplex.

Timed, in one run:

*M* (the demo city in the dev database, ``--database``, default ``onemap``): the whole
analysis as the process runs it — ``refuse_flow.load`` (facilities, the day's
readings, haul distances on the cached drive graph) and ``RefuseFlow.solve`` — for the
last day; a what-if re-plan (the busiest station out of service: load + solve); and
the same flow problem in kg and metres solved by ``networkx.network_simplex``
(graph build included), checked to the same optimum.

*L* (``--l-database``, default ``onemap_netbench_l``: the L city's roads, which holds
no refuse facilities): an L-sized day placed on the L drive graph — one refuse
building per 2,200 households at random road nodes (seeded), a station per 60 √
households, two plants at the edge, each building's day 1 kg per resident × a noise,
station capacities 1.1–1.5 × their nearest-station share (2.3 residents a household,
1 kg a resident, shared unevenly) — then the haul distances
(Dijkstra from every station and plant on the reversed graph), our solve, and
networkx's network simplex on the same network; then a what-if re-plan with the
busiest station out.

    PYTHONPATH=. .venv/bin/python bench/bench_refuse_flow.py --rounds 5

Prints a markdown table (median of the rounds) and writes the JSON to var/bench/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from scenarios import refuse_flow as rf
from scenarios.flow import FlowProblem, min_cost_flow, to_networkx
from spatial import whatif
from spatial.db import connect
from spatial.network import road_graph


def dsn(database: str, host: str) -> str:
    return f"host={host} port=54787 dbname={database} user=onemap"


def integral(prob: FlowProblem) -> FlowProblem:
    """The problem in kg and metres, integral (networkx's simplex wants integers)."""
    supply = np.round(prob.supply * 1000)
    supply[-1] -= supply.sum()  # the sink takes what the rounded supplies send
    return FlowProblem(prob.nodes, supply, prob.tail, prob.head,
                       np.round(prob.cost * 1000),
                       np.where(np.isfinite(prob.capacity), np.floor(prob.capacity * 1000),
                                np.inf))


def simplex(prob: FlowProblem) -> tuple[float, float]:
    t0 = time.perf_counter()
    cost, _ = nx.network_simplex(to_networkx(prob))
    return time.perf_counter() - t0, float(cost)


def ours(prob: FlowProblem) -> tuple[float, float]:
    t0 = time.perf_counter()
    s = min_cost_flow(prob)
    assert s.status == "optimal", s.message
    return time.perf_counter() - t0, float(s.cost or 0.0)


def scenario_without(fid: int) -> whatif.Scenario:
    now = datetime.now(UTC)
    return whatif.Scenario(uuid.uuid4(), "bench", None, None, False, whatif.parse_edits(
        [{"type": "remove_facility", "collection": "refuse_facility", "id": fid}]),
        ("refuse_facility",), now, now)


def bench_m(args: argparse.Namespace) -> dict[str, Any]:
    times: dict[str, list[float]] = {"load": [], "solve": [], "whatif": [], "nx": [],
                                     "ours_int": []}
    with connect(dsn(args.database, args.pg_host), autocommit=True) as conn:
        road_graph(conn, "drive")  # warm, as a running server is
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            city, day = rf.load(conn)  # every stream, each over its own chain
            t1 = time.perf_counter()
            city.solve()
            t2 = time.perf_counter()
            times["load"].append(t1 - t0)
            times["solve"].append(t2 - t1)
            plan = city.plans["other"]  # the biggest stream, compared with networkx
            busiest = int(plan.facilities.ids[plan.ts[int(np.argmax(plan.station_load))]])
            t3 = time.perf_counter()
            again, _ = rf.load(conn, day=day, scenario=scenario_without(busiest))
            again.solve()
            times["whatif"].append(time.perf_counter() - t3)
            prob = integral(plan.problem()[0])
            tn, cn = simplex(prob)
            to, co = ours(prob)
            assert abs(cn - co) <= 1e-6 * max(1.0, cn), (cn, co)
            times["nx"].append(tn)
            times["ours_int"].append(to)
    return {"day": day.isoformat(), "refuse_buildings": int(plan.rb.size),
            "streams": len(city.plans),
            "stations": sum(int(p.ts.size) for p in city.plans.values()),
            "plants": sum(int(p.tp.size) for p in city.plans.values()),
            "arcs_other": plan.problem()[0].n_arcs,
            "tonnes": sum(float(p.demand.sum()) for p in city.plans.values()),
            "unplaced_t": city.unplaced_t,
            **{k: statistics.median(v) for k, v in times.items()}}


def bench_l(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    with connect(dsn(args.l_database, args.pg_host), autocommit=True) as conn:
        g = road_graph(conn, "drive")
        households = int(conn.execute("SELECT count(*) AS n FROM onemap.household")
                         .fetchone()["n"])
    n_rb = max(2, round(households / 2200))
    n_ts = max(1, round(np.sqrt(households) / 60))
    pick = rng.choice(g.n_nodes, n_rb + n_ts, replace=False)
    west, east = np.argmin(g.xy[:, 0]), np.argmax(g.xy[:, 0])
    lonlat = np.vstack([g.xy[pick], g.xy[[west, east]] + [[-0.02, 0.0], [0.02, 0.0]]])
    kinds = ["refuse_building"] * n_rb + ["transfer_station"] * n_ts + ["treatment_plant"] * 2
    # 2.3 residents a household, 1 kg a resident and day, shared unevenly
    demand = rng.uniform(0.6, 1.4, n_rb) * households * 2.3 / n_rb / 1000
    t0 = time.perf_counter()
    probe = rf.Facilities.from_arrays(ids=np.arange(1, n_rb + n_ts + 3), kind=kinds,
                                      capacity=np.ones(n_rb + n_ts + 2), lonlat=lonlat)
    km_ts, km_tp = rf.haul_km(g, probe)
    t_haul = time.perf_counter() - t0
    near = np.argmin(km_ts, axis=1)
    share = np.bincount(near, weights=demand, minlength=n_ts)
    cap = np.r_[np.full(n_rb, 20.0), np.maximum(share * rng.uniform(1.1, 1.5, n_ts), 5.0),
                np.full(2, demand.sum())]
    f = rf.Facilities.from_arrays(ids=np.arange(1, n_rb + n_ts + 3), kind=kinds, capacity=cap,
                                  lonlat=lonlat)
    times: dict[str, list[float]] = {"solve": [], "whatif": [], "nx": [], "ours_int": []}
    for _ in range(args.rounds):
        plan = rf.RefuseFlow(f, demand, km_ts, km_tp)
        t1 = time.perf_counter()
        plan.solve()
        times["solve"].append(time.perf_counter() - t1)
        busiest = int(np.argmax(plan.station_load))
        t2 = time.perf_counter()
        keep = np.ones(n_ts, bool)
        keep[busiest] = False
        cut = rf.Facilities.from_arrays(
            ids=np.r_[f.ids[plan.rb], f.ids[plan.ts][keep], f.ids[plan.tp]],
            kind=["refuse_building"] * n_rb + ["transfer_station"] * int(keep.sum())
            + ["treatment_plant"] * 2,
            capacity=np.r_[cap[:n_rb], cap[n_rb:n_rb + n_ts][keep], cap[-2:]],
            lonlat=np.vstack([lonlat[:n_rb], lonlat[n_rb:n_rb + n_ts][keep], lonlat[-2:]]))
        again = rf.RefuseFlow(cut, demand, km_ts[:, keep], km_tp[keep]).solve()
        times["whatif"].append(time.perf_counter() - t2)
        prob = integral(plan.problem()[0])
        tn, cn = simplex(prob)
        to, co = ours(prob)
        assert abs(cn - co) <= 1e-6 * max(1.0, cn), (cn, co)
        times["nx"].append(tn)
        times["ours_int"].append(to)
    return {"households": households, "refuse_buildings": n_rb, "stations": n_ts, "plants": 2,
            "graph_nodes": g.n_nodes, "arcs": plan.problem()[0].n_arcs,
            "tonnes": float(demand.sum()), "haul_s": t_haul,
            "unplaced_t": plan.unplaced_t, "whatif_unplaced_t": again.unplaced_t,
            **{k: statistics.median(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--l-database", default="onemap_netbench_l")
    parser.add_argument("--pg-host", default=str(Path("var/run").resolve()))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-l", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "args": vars(args)}
    report["m"] = m = bench_m(args)
    print(f"\nM ({m['day']}): {m['refuse_buildings']} refuse buildings, {m['streams']} "
          f"streams, {m['stations']} stations, {m['plants']} plants, {m['tonnes']:.1f} t; "
          f"the other waste's network {m['arcs_other']} arcs")
    rows = [("M", m)]
    if not args.no_l:
        report["l"] = lrep = bench_l(args)
        print(f"L: {lrep['households']:,} households → {lrep['refuse_buildings']} refuse "
              f"buildings, {lrep['stations']} stations, 2 plants, {lrep['arcs']:,} arcs, "
              f"{lrep['tonnes']:.0f} t; haul distances {lrep['haul_s']:.2f} s on a graph of "
              f"{lrep['graph_nodes']:,} nodes")
        rows.append(("L", lrep))
    print("\n| city | load s | solve s | what-if re-plan s | networkx simplex s "
          "| ours on the same s | simplex : ours |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        load = f"{r['load']:.3f}" if "load" in r else "—"
        print(f"| {name} | {load} | {r['solve']:.4f} | {r['whatif']:.3f} | {r['nx']:.4f} | "
              f"{r['ours_int']:.4f} | {r['nx'] / r['ours_int']:.1f}× |")
    out = Path("var/bench") / f"refuse-flow-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
