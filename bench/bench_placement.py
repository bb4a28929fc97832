"""Facility placement: scenarios.placement (heuristic + HiGHS) vs spopt (PuLP + CBC).

The same p-median instances, in one run, on the same machine:

pmed
    OR-Library pmed1–pmed10 (``tests/data/orlib``, n = 100 and 200), the
    published optimum checked on both sides.
rand
    larger graphs made the way Beasley made the pmed set (a random spanning
    tree plus random edges, integer costs 1–100, all-pairs shortest paths),
    n = 300 and 400, fixed seeds: the sizes at which the issue saw spopt take
    281–850 s.

For each: onemap's heuristic time and its objective's distance from the
optimum, onemap's time to the proven optimum (heuristic included), spopt's
time to its optimum (model building included, CBC capped at ``--spopt-limit``
seconds: a capped run is reported as ``>``, and its ratio is a lower bound),
and the ratio spopt / onemap.

formulation
    the exact p-median model with assignment pairs reduced (a client's
    nearest open site is among its ``candidates - p + 1`` nearest) vs all
    pairs: columns and time to the proven optimum.
heuristic
    the heuristic alone on 1,000 × 1,000 euclidean instances (p = 10, 50,
    150), then the exact phase under ``--big-limit`` seconds: time, gap.

Run (a few minutes; spopt's capped runs dominate):

    PYTHONPATH=. .venv/bin/python bench/bench_placement.py
    PYTHONPATH=. .venv/bin/python bench/bench_placement.py --no-spopt --big-limit 120

Markdown tables are printed; the JSON goes to ``var/bench/placement-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from scenarios.placement import PMedian, read_orlib_pmed

ROOT = Path(__file__).resolve().parents[1]
ORLIB = ROOT / "tests" / "data" / "orlib"


def beasley_like(n: int, edges: int, seed: int) -> np.ndarray:
    """A connected random graph like Beasley's: costs 1–100, all-pairs shortest paths."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    pairs = {(min(a, b), max(a, b))
             for a, b in zip(order[1:], order[rng.integers(0, np.arange(1, n))], strict=True)}
    while len(pairs) < edges:
        a, b = rng.integers(0, n, 2)
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    ij = np.array(sorted(pairs))
    cost = rng.integers(1, 101, len(ij)).astype(float)
    graph = sp.csr_matrix((cost, (ij[:, 0], ij[:, 1])), shape=(n, n))
    return shortest_path(graph, directed=False)


def instances(names: list[str]) -> list[tuple[str, np.ndarray, int, float | None]]:
    optima = {}
    for line in (ORLIB / "optima.txt").read_text().splitlines()[1:]:
        if line.strip():
            name, value = line.split()
            optima[name] = float(value)
    out: list[tuple[str, np.ndarray, int, float | None]] = []
    for name in names:
        if name.startswith("pmed"):
            costs, p = read_orlib_pmed(ORLIB / f"{name}.txt")
            out.append((name, costs, p, optima[name]))
        else:  # rand<n>-<p>
            n, p = (int(v) for v in name.removeprefix("rand").split("-"))
            out.append((name, beasley_like(n, n * 6, seed=n + p), p, None))
    return out


def run_onemap(costs: np.ndarray, p: int, limit: float, *, reduce: bool = True,
               ) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = PMedian.from_cost_matrix(costs, p=p)
    model.reduce_pairs = reduce
    model.solve(time_limit=limit)
    return {"time": time.perf_counter() - t0, "objective": model.objective,
            "status": model.status, "heuristic_objective": model.heuristic_objective,
            "heuristic_time": model.heuristic_time, "gap": model.gap,
            "columns": int(model.allowed.sum()) + int(model._pairs()[0].size)}


def run_spopt(costs: np.ndarray, p: int, limit: float) -> dict[str, Any]:
    import pulp
    import spopt.locate

    t0 = time.perf_counter()
    model = spopt.locate.PMedian.from_cost_matrix(costs, np.ones(costs.shape[0]),
                                                  p_facilities=p)
    status = "optimal"
    try:
        model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=limit))
    except Exception as exc:  # spopt raises on a non-optimal status
        status = f"failed: {type(exc).__name__}"
    elapsed = time.perf_counter() - t0
    if elapsed >= limit or model.problem.sol_status != pulp.LpSolutionOptimal:
        status = "time_limit"
    return {"time": elapsed, "objective": pulp.value(model.problem.objective),
            "status": status}


def fmt(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default=",".join(
        [f"pmed{k}" for k in range(1, 11)] + ["rand300-5", "rand300-30", "rand400-10"]))
    parser.add_argument("--limit", type=float, default=600.0, help="onemap's time limit")
    parser.add_argument("--spopt-limit", type=float, default=120.0)
    parser.add_argument("--no-spopt", action="store_true")
    parser.add_argument("--big-limit", type=float, default=60.0)
    parser.add_argument("--no-formulation", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    report: dict[str, Any] = {"pmedian": [], "formulation": [], "heuristic": []}

    print("| instance | n | p | optimum | onemap heuristic s | heuristic over opt. "
          "| onemap proven s | spopt/CBC s | spopt / onemap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, costs, p, known in instances(args.instances.split(",")):
        ours = run_onemap(costs, p, args.limit)
        if known is not None and ours["status"] == "optimal":
            assert ours["objective"] == known, (name, ours["objective"], known)
        theirs = None if args.no_spopt else run_spopt(costs, p, args.spopt_limit)
        if theirs is not None and theirs["status"] == "optimal" and ours["status"] == "optimal":
            assert abs(theirs["objective"] - ours["objective"]) < 1e-6, (name, theirs, ours)
        opt = ours["objective"]
        over = 100.0 * (ours["heuristic_objective"] - opt) / opt
        row = {"instance": name, "n": costs.shape[0], "p": p, "known": known, "onemap": ours,
               "spopt": theirs}
        report["pmedian"].append(row)
        if theirs is None:
            sp_s, ratio = "—", "—"
        else:
            capped = theirs["status"] != "optimal"
            sp_s = (">" if capped else "") + fmt(theirs["time"])
            ratio = (">" if capped else "") + f"{theirs['time'] / ours['time']:.1f}×"
        proven = fmt(ours["time"]) + ("" if ours["status"] == "optimal"
                                      else f" (gap {ours['gap']:.2%})")
        print(f"| {name} | {costs.shape[0]} | {p} | {opt:g} | {ours['heuristic_time']:.3f} "
              f"| {over:.2f} % | {proven} | {sp_s} | {ratio} |", flush=True)

    if not args.no_formulation:
        print("\n| instance | columns reduced | columns all pairs | s reduced | s all pairs "
              "| all / reduced |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, costs, p, _ in instances([r["instance"] for r in report["pmedian"]
                                            if r["instance"].startswith("pmed")]):
            red = run_onemap(costs, p, args.limit, reduce=True)
            full = run_onemap(costs, p, args.limit, reduce=False)
            assert red["objective"] == full["objective"]
            report["formulation"].append({"instance": name, "reduced": red, "full": full})
            print(f"| {name} | {red['columns']} | {full['columns']} | {fmt(red['time'])} "
                  f"| {fmt(full['time'])} | {full['time'] / red['time']:.2f}× |", flush=True)

    print("\n| 1,000 × 1,000 | heuristic s | exact phase | proven s / gap at limit |")
    print("|---|---:|---|---:|")
    rng = np.random.default_rng(16)
    xy = rng.uniform(0, 5000, (1000, 2))
    costs = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    weights = rng.integers(1, 50, 1000).astype(float)
    for p in (10, 50, 150):
        t0 = time.perf_counter()
        model = PMedian.from_cost_matrix(costs, weights, p=p).solve(time_limit=args.big_limit)
        total = time.perf_counter() - t0
        report["heuristic"].append({"p": p, "heuristic_time": model.heuristic_time,
                                    "heuristic_objective": model.heuristic_objective,
                                    "objective": model.objective, "bound": model.bound,
                                    "status": model.status, "time": total})
        assert model.heuristic_time is not None and model.heuristic_objective is not None
        over = (100.0 * (model.heuristic_objective - model.objective) / model.objective
                if model.objective else 0.0)
        tail = (fmt(total) if model.status == "optimal"
                else f"gap {model.gap:.2%} at {fmt(total)}" if model.gap is not None
                else f"no bound at {fmt(total)}")
        print(f"| p = {p} | {model.heuristic_time:.3f} | {model.status}, heuristic "
              f"{over:.2f} % over best | {tail} |", flush=True)

    out = ROOT / "var" / "bench" / "placement-latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nJSON: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
