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
    candidates: the street corners. Every corner (17,482) would make a
    17,930 × 17,482 matrix (2.5 GB as float64, several times that in the
    solver's working copies), so one corner per ``--l-grid`` m square (the one
    nearest its centre) is kept. Timed: the graph load, the walk matrix
    (``RefusePlacement.compute_walks``, the analysis's cell limit lifted for the
    bench), then ``PMedian.solve(time_limit=--l-limit)``: heuristic time,
    status, gap and total time.

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
HOST = f"host={ROOT / 'var' / 'run'} port=54787 user=onemap"
BIG = 1e7  # spopt's stand-in for an unreachable pair (its models take finite costs)


def dsn(database: str) -> str:
    return f"{HOST} dbname={database}"


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
                        mode="optimise")
        t_load = time.perf_counter() - t0
        inside = int(conn.execute(
            "SELECT count(*) AS n FROM onemap.refuse_facility WHERE kind = 'refuse_building' "
            "AND status = 'in_service' AND ST_Contains(ST_GeomFromText(%s, 4490), geom)",
            (wkt,)).fetchone()["n"])
        sub = rp.load(conn, polygon_wkt=wkt, model="p-median", mode="optimise", p=inside)
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
        sites = rp.load_sites(conn, net, area)
        t_load = time.perf_counter() - t0
    corners = len(sites)
    keep = thin(sites, args.l_grid) if args.l_grid > 0 else np.arange(corners)
    sites = rp.Sites.build(net, keys=[sites.keys[j] for j in keep], xy=sites.xy[keep],
                           capacity_t=sites.capacity_t[keep], existing=sites.existing[keep],
                           stored=sites.stored[keep], lonlat=sites.lonlat[keep])
    households = float(buildings.households.sum())
    p = int(sites.existing.sum()) or round(households / 2000.0)
    rp.MAX_CELLS = 10**10  # the analysis caps one request at 12 M walks; the bench does not
    a = rp.RefusePlacement(net, buildings, sites, model="p-median", mode="optimise", p=p)
    t0 = time.perf_counter()
    costs = a.compute_walks()
    t_walks = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = PMedian.from_cost_matrix(costs, buildings.households, p=p)
    model.solve(time_limit=args.l_limit)
    total = time.perf_counter() - t0
    row = {"buildings": len(buildings), "households": households, "refuse_buildings": refuse,
           "corners": corners, "sites": len(sites), "p": p, "cutoff_m": a.cutoff_m,
           "finite": float(np.isfinite(costs).mean()), "matrix_mb": costs.nbytes / 2**20,
           "load_s": t_load, "walks_s": t_walks, "heuristic_time": model.heuristic_time,
           "heuristic_objective": model.heuristic_objective, "objective": model.objective,
           "bound": model.bound, "gap": model.gap, "status": model.status, "time": total,
           "limit": args.l_limit, "grid_m": args.l_grid}
    report["l"] = row
    gap = "—" if model.gap is None else f"{model.gap:.3%}"
    heur_gap = "—"
    if model.objective and model.heuristic_objective is not None:
        heur_gap = (f"{100 * (model.heuristic_objective - model.objective) / model.objective:.2f}"
                    " %")
    print(f"\nL, whole district: {len(buildings):,} buildings, {int(households):,} households, "
          f"{refuse} refuse buildings stored; {corners:,} street corners, {len(sites):,} kept "
          f"(one per {args.l_grid:g} m square); p = {p}; graph + demand + sites {fmt(t_load)} s, "
          f"walk matrix {fmt(t_walks)} s ({row['matrix_mb']:.0f} MB, "
          f"{row['finite']:.1%} of pairs within {a.cutoff_m:g} m)\n")
    print("| buildings × sites | p | heuristic s | heuristic over best | exact phase "
          "| best layout's gap at the limit | total s |")
    print("|---|---:|---:|---:|---|---:|---:|")
    print(f"| {len(buildings):,} × {len(sites):,} | {p} | {fmt(model.heuristic_time)} "
          f"| {heur_gap} | {model.status} (limit {args.l_limit:g} s) | {gap} | {fmt(total)} |",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    parser.add_argument("--l-grid", type=float, default=300.0,
                        help="keep one street corner per square of this side (m); 0: all")
    parser.add_argument("--l-limit", type=float, default=120.0)
    args = parser.parse_args()
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
