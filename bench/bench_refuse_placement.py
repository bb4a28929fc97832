"""Refuse-building placement on the walking network: scenarios.placement vs spopt.

What is timed, in one run (wall clock, ``time.perf_counter``):

M — the demo city (database ``onemap``, one street office, 1,414 residential buildings)
    *load*: ``scenarios.refuse_placement.load(conn, level="district", ...)``,
    mode ``optimise`` — the buildings with their households, the refuse buildings
    in service, every street corner as a candidate, and the walking graph read
    from the database (the graph cache is cleared first, so its load counts).
    *walks*: ``RefusePlacement.compute_walks()`` — the buildings × sites walk
    matrix of the analysis (a Dijkstra per site cut off at the analysis's
    cut-off; ``inf`` beyond).

    On that matrix, p = the refuse buildings in service near the area and the
    candidates = those + the street corners, three models:
    p-median (households), MCLP within 500 m (households) and the capacitated
    p-median (t/day; the refuse buildings' capacities, 5 t/day for a new one).
    onemap: ``Model.from_cost_matrix(...).solve(time_limit=--limit)``, timed from
    building the model to the answer (heuristic included); its heuristic's time
    and how far its objective is from the best one proven.
    spopt 0.8: ``spopt.locate.PMedian`` / ``MCLP`` / ``PMedian(facility_capacities=)``
    ``.from_cost_matrix`` on the same matrix (``inf`` replaced by 10⁷ m), solved
    with ``pulp.PULP_CBC_CMD(timeLimit=--spopt-limit)``, timed from building the
    model to the answer. A capped run is reported as ``>`` (``no layout``: CBC had
    none to return) and its ratio is a lower bound. The whole district (975,660
    assignment variables; PuLP alone takes about half a minute to build it) is
    too large for PuLP + CBC within minutes:
    spopt runs there only for the models in ``--spopt-district`` (p-median), capped,
    and in full on a sub-area: the communities in
    ``--sub`` (their union as the polygon of ``load``; p = the refuse buildings
    standing inside it, the sites: the analysis's — refuse buildings within its
    reach and the corners inside), against onemap on the same matrix; onemap
    also runs on the whole district alone.

L — the L city (``--l-database``, default ``onemap_netbench_l``: people, buildings,
    streets and pipes, no refuse facilities)
    A whole-district p-median: every residential building as demand
    (households), p = households / 2,000 (no refuse buildings exist there), the
    candidates: every street corner of the district, and for comparison one
    corner per 300 m square (the one nearest its centre: the 5,068 candidates of
    the runs before the sparse walks) — ``--l-grids``, 0 meaning every corner.
    The walks are sparse (``RefusePlacement.compute_walks`` keeps only those
    within the cut-off beyond 12 M buildings × sites), and so is the model.
    Timed per candidate set: the walk matrix, then
    ``PMedian.from_cost_matrix(...).solve(time_limit=--l-limit)``: the
    heuristic's time (from ``solve``'s start: indexing the pairs, greedy,
    interchange), status, gap and total time; the graph, buildings and corners
    are read once.

Run:

    PYTHONPATH=. .venv/bin/python bench/bench_refuse_placement.py
    PYTHONPATH=. .venv/bin/python bench/bench_refuse_placement.py --no-l --spopt-limit 60

Markdown tables are printed; the JSON goes to ``var/bench/refuse-placement-<time>.json``
and ``var/bench/refuse-placement-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from scenarios import refuse_placement as rp
from scenarios.placement import MCLP, CapacitatedPMedian, FacilityModel, PMedian
from spatial.db import connect

ROOT = Path(__file__).resolve().parents[1]
BIG = 1e7  # spopt's stand-in for an unreachable pair (its models take finite costs)
#: The cluster's socket directory (``--pg-host``; a git worktree reads the main checkout's).
PG_HOST = str(ROOT / "var" / "run")


def dsn(database: str) -> str:
    return f"host={PG_HOST} port=54787 user=onemap dbname={database}"


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.3f}" if seconds < 1 else f"{seconds:.2f}" if seconds < 100 \
        else f"{seconds:.0f}"


# ------------------------------------------------------------------ the two sides


def run_onemap(kind: str, costs: np.ndarray, a: rp.RefusePlacement, limit: float,
               ) -> dict[str, Any]:
    t0 = time.perf_counter()
    model: FacilityModel
    if kind == "p-median":
        model = PMedian.from_cost_matrix(costs, a.buildings.households, p=a.p)
    elif kind == "mclp":
        model = MCLP.from_cost_matrix(costs, a.buildings.households, p=a.p, reach=a.reach_m)
    else:
        model = CapacitatedPMedian.from_cost_matrix(
            costs, a.buildings.kg_per_day / 1000.0, p=a.p,
            capacities=a.capacities()[a.columns])
    model.solve(time_limit=limit)
    return {"time": time.perf_counter() - t0, "status": model.status,
            "objective": model.objective, "bound": model.bound, "gap": model.gap,
            "heuristic_objective": model.heuristic_objective,
            "heuristic_time": model.heuristic_time}


def run_spopt(kind: str, costs: np.ndarray, a: rp.RefusePlacement, limit: float,
              ) -> dict[str, Any]:
    import pulp
    import spopt.locate

    finite = np.where(np.isfinite(costs), costs, BIG)
    t0 = time.perf_counter()
    model: Any
    if kind == "p-median":
        model = spopt.locate.PMedian.from_cost_matrix(finite, a.buildings.households,
                                                      p_facilities=a.p)
    elif kind == "mclp":
        model = spopt.locate.MCLP.from_cost_matrix(finite, a.buildings.households,
                                                   service_radius=a.reach_m,
                                                   p_facilities=a.p)
    else:
        model = spopt.locate.PMedian.from_cost_matrix(
            finite, a.buildings.kg_per_day / 1000.0, p_facilities=a.p,
            facility_capacities=a.capacities()[a.columns])
    status = "optimal"
    try:
        model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=limit))
    except Exception as exc:  # spopt raises on a status that is not optimal
        status = f"failed: {type(exc).__name__}"
    elapsed = time.perf_counter() - t0
    if status == "optimal" and (elapsed >= limit
                                or model.problem.sol_status != pulp.LpSolutionOptimal):
        status = "time_limit"
    objective = pulp.value(model.problem.objective)
    return {"time": elapsed, "status": status,
            "objective": None if objective is None else float(objective)}


def over(kind: str, value: float | None, best: float | None) -> str:
    if value is None or not best:
        return "—"
    diff = (best - value) if kind == "mclp" else (value - best)
    return f"{100.0 * diff / abs(best):.2f} %"


def best_of(kind: str, *values: float | None) -> float | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return max(vals) if kind == "mclp" else min(vals)


# ------------------------------------------------------------------------------ M


def m_city(args: argparse.Namespace, report: dict[str, Any]) -> None:
    kinds = ("p-median", "mclp", "capacitated")
    with connect(dsn(args.m_database), autocommit=True) as conn:
        district = int(conn.execute("SELECT min(id) AS id FROM onemap.district")
                       .fetchone()["id"])
        subs = [int(s) for s in args.sub.split(",")]
        wkt = conn.execute("SELECT ST_AsText(ST_Union(geom)) AS w FROM onemap.community "
                           "WHERE id = ANY(%s)", (subs,)).fetchone()["w"]
        t0 = time.perf_counter()
        whole = rp.load(conn, level="district", unit_id=district, model="p-median",
                        mode="optimise", candidates="corners")
        t_load = time.perf_counter() - t0
        inside = int(conn.execute(
            "SELECT count(*) AS n FROM onemap.refuse_facility WHERE kind = 'refuse_building' "
            "AND status = 'in_service' AND ST_Contains(ST_GeomFromText(%s, 4490), geom)",
            (wkt,)).fetchone()["n"])
        sub = rp.load(conn, polygon_wkt=wkt, model="p-median", mode="optimise", p=inside,
                      candidates="corners")
    t0 = time.perf_counter()
    costs = whole.compute_walks()
    t_walks = time.perf_counter() - t0
    sub_costs = sub.compute_walks()
    areas = {"district": (whole, costs), "sub": (sub, sub_costs)}
    report["m"] = {"load_s": t_load, "walks_s": t_walks, "areas": {}}
    for name, (a, c) in areas.items():
        report["m"]["areas"][name] = {
            "buildings": len(a.buildings), "households": float(a.buildings.households.sum()),
            "sites": int(a.columns.size), "p": int(a.p), "cutoff_m": a.cutoff_m,
            "finite": float(np.isfinite(c).mean()), "rows": []}
    w = report["m"]["areas"]["district"]
    print(f"\nM, whole district: {w['buildings']:,} buildings, {int(w['households']):,} "
          f"households, {w['sites']} sites (p = {w['p']}); load {fmt(t_load)} s, walk matrix "
          f"{fmt(t_walks)} s ({w['finite']:.1%} of pairs within the {w['cutoff_m']:g} m "
          "cut-off)")
    s = report["m"]["areas"]["sub"]
    print(f"M, communities {args.sub}: {s['buildings']:,} buildings, {s['sites']} sites "
          f"(p = {s['p']}, {s['finite']:.1%} of pairs within {s['cutoff_m']:g} m)\n")
    print("| area | model | onemap heuristic s | heuristic off best | onemap s (status, gap) "
          "| spopt/CBC s | spopt / onemap | same objective |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, (a, c) in areas.items():
        for kind in kinds:
            ours = run_onemap(kind, c, a, args.limit)
            theirs = None
            if not args.no_spopt and (name == "sub" or kind in args.spopt_district.split(",")):
                theirs = run_spopt(kind, c, a, args.spopt_limit)
            best = best_of(kind, ours["objective"],
                           theirs["objective"] if theirs and theirs["status"] == "optimal"
                           else None)
            same = "—"
            if theirs is not None and theirs["status"] == "optimal" \
                    and ours["status"] == "optimal":
                same = str(abs(theirs["objective"] - ours["objective"])
                           <= 1e-6 * max(1.0, abs(ours["objective"])))
            proven = fmt(ours["time"]) + ("" if ours["status"] == "optimal" else
                                          f" ({ours['status']}, gap {ours['gap']:.3%})"
                                          if ours["gap"] is not None
                                          else f" ({ours['status']})")
            if theirs is None:
                sp_s, ratio = "—", "—"
            else:
                capped = theirs["status"] != "optimal"
                sp_s = (">" if capped else "") + fmt(theirs["time"]) + (
                    " (no layout)" if theirs["status"].startswith("failed") else "")
                ratio = (">" if capped else "") + f"{theirs['time'] / ours['time']:.1f}×"
            row = {"kind": kind, "onemap": ours, "spopt": theirs, "best": best}
            report["m"]["areas"][name]["rows"].append(row)
            print(f"| {'district' if name == 'district' else 'communities ' + args.sub} "
                  f"| {kind} | {fmt(ours['heuristic_time'])} "
                  f"| {over(kind, ours['heuristic_objective'], best)} | {proven} | {sp_s} "
                  f"| {ratio} | {same} |", flush=True)


# ------------------------------------------------------------------------------ L


def thin(sites: rp.Sites, grid: float) -> np.ndarray:
    """Positions of one site per ``grid`` m square: the one nearest its centre."""
    cell = np.floor(sites.xy / grid)
    centre = (cell + 0.5) * grid
    dist = np.hypot(*(sites.xy - centre).T)
    key = cell[:, 0] * 1e6 + cell[:, 1]
    order = np.lexsort((dist, key))
    first = np.ones(order.size, dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    return np.sort(order[first])


def l_city(args: argparse.Namespace, report: dict[str, Any]) -> None:
    import resource

    from scipy.sparse import csr_array

    from spatial.network import road_graph

    with connect(dsn(args.l_database), autocommit=True) as conn:
        district = int(conn.execute("SELECT min(id) AS id FROM onemap.district")
                       .fetchone()["id"])
        refuse = int(conn.execute("SELECT count(*) AS n FROM onemap.refuse_facility "
                                  "WHERE kind = 'refuse_building'").fetchone()["n"])
        t0 = time.perf_counter()
        net = rp.WalkNetwork.from_graph(road_graph(conn, "walk"))
        area = shapely.from_wkb(bytes(conn.execute(
            "SELECT ST_AsBinary(geom) AS g FROM onemap.district WHERE id = %s",
            (district,)).fetchone()["g"]))
        buildings = rp.load_buildings(conn, net, level="district", unit_id=district)
        corners = rp.load_sites(conn, net, area, candidates="corners")
        t_load = time.perf_counter() - t0
    households = float(buildings.households.sum())
    report["l"] = {"buildings": len(buildings), "households": households,
                   "refuse_buildings": refuse, "corners": len(corners), "load_s": t_load,
                   "limit": args.l_limit, "rows": []}
    print(f"\nL, whole district: {len(buildings):,} buildings, {int(households):,} households, "
          f"{refuse} refuse buildings stored, {len(corners):,} street corners; graph + demand + "
          f"corners {fmt(t_load)} s\n")
    print("| buildings × sites | p | finite pairs | walks s | heuristic s | heuristic over best "
          "| exact phase | best layout's gap at the limit | total s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for grid in (float(g) for g in args.l_grids.split(",")):
        keep = thin(corners, grid) if grid > 0 else np.arange(len(corners))
        sites = rp.Sites.build(net, keys=[corners.keys[j] for j in keep], xy=corners.xy[keep],
                               capacity_t=corners.capacity_t[keep],
                               existing=corners.existing[keep], stored=corners.stored[keep],
                               lonlat=corners.lonlat[keep])
        p = int(sites.existing.sum()) or round(households / 2000.0)
        a = rp.RefusePlacement(net, buildings, sites, model="p-median", mode="optimise", p=p)
        t0 = time.perf_counter()
        costs = a.compute_walks()
        t_walks = time.perf_counter() - t0
        cells = costs.shape[0] * costs.shape[1]
        finite = costs.nnz if isinstance(costs, csr_array) else int(np.isfinite(costs).sum())
        nbytes = (costs.data.nbytes + costs.indices.nbytes + costs.indptr.nbytes
                  if isinstance(costs, csr_array) else costs.nbytes)
        t0 = time.perf_counter()
        model = PMedian.from_cost_matrix(costs, buildings.households, p=p)
        model.solve(time_limit=args.l_limit)
        total = time.perf_counter() - t0
        row = {"grid_m": grid, "sites": len(sites), "p": p, "cutoff_m": a.cutoff_m,
               "finite_pairs": finite, "finite": finite / cells, "matrix_mb": nbytes / 2**20,
               "sparse": model.sparse, "walks_s": t_walks,
               "heuristic_time": model.heuristic_time,
               "heuristic_objective": model.heuristic_objective, "objective": model.objective,
               "bound": model.bound, "gap": model.gap, "status": model.status,
               "message": model.message, "time": total,
               "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        report["l"]["rows"].append(row)
        gap = "—" if model.gap is None else f"{model.gap:.3%}"
        heur_gap = over("p-median", model.heuristic_objective, model.objective)
        kept = "every corner" if grid <= 0 else f"one corner per {grid:g} m square"
        print(f"| {len(buildings):,} × {len(sites):,} ({kept}) | {p} | {finite:,} "
              f"({row['finite']:.2%}, {row['matrix_mb']:.0f} MB) | {fmt(t_walks)} "
              f"| {fmt(model.heuristic_time)} | {heur_gap} "
              f"| {model.status} (limit {args.l_limit:g} s) | {gap} | {fmt(total)} |", flush=True)


def main() -> None:
    global PG_HOST
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-host", default=PG_HOST,
                        help="the cluster's socket directory (default: var/run of this checkout)")
    parser.add_argument("--m-database", default="onemap")
    parser.add_argument("--sub", default="4,5", help="community ids of the sub-area for spopt")
    parser.add_argument("--limit", type=float, default=300.0, help="onemap's time limit (M)")
    parser.add_argument("--spopt-limit", type=float, default=120.0)
    parser.add_argument("--no-spopt", action="store_true")
    parser.add_argument("--spopt-district", default="p-median",
                        help="models spopt also runs on the whole district (capped)")
    parser.add_argument("--no-m", action="store_true")
    parser.add_argument("--no-l", action="store_true")
    parser.add_argument("--l-database", default="onemap_netbench_l")
    parser.add_argument("--l-grids", default="0,300",
                        help="candidate sets: one street corner per square of this side (m), "
                             "comma-separated; 0: every corner")
    parser.add_argument("--l-limit", type=float, default=120.0)
    args = parser.parse_args()
    PG_HOST = args.pg_host
    warnings.simplefilter("ignore", DeprecationWarning)
    report: dict[str, Any] = {"args": vars(args), "started": time.strftime("%Y-%m-%d %H:%M")}
    if not args.no_m:
        m_city(args, report)
    if not args.no_l:
        l_city(args, report)
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (out / f"refuse-placement-{stamp}.json", out / "refuse-placement-latest.json"):
        path.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nJSON: var/bench/refuse-placement-{stamp}.json")


if __name__ == "__main__":
    main()
