"""Refuse generation forecast for every refuse building of the demo city: time and error.

What is timed, in one run (wall clock, ``time.perf_counter``), on the demo city
(database ``onemap``, the M city: a year of 21:00 readings per refuse building):

*load*: ``scenarios.refuse_forecast.load(conn, level=...)`` — the readings of the
    refuse buildings in service, checked, summed to the level.
*backtest*: ``scenarios.forecast.backtest(panel, h, models=(m,), holidays=a)`` once per
    candidate: each model ``m`` adjusted for the holidays (``a`` true) and not (the
    seasonal naive, never adjusted, comes with each and is negligible), four cut-offs a
    week apart; the sum is what the process's backtest stage takes by default
    (``holidays="auto"``). Per candidate: its time, the time per fit (series ×
    cut-offs), its pooled MASE and MAPE.
*forecast*: ``RefuseForecast.run_forecast()`` — the chosen candidate (the lowest pooled
    MASE) fitted on the whole history of every series, ``h`` days ahead with the 80 %
    and 95 % intervals.
*review*: ``RefuseForecast.run_review()`` — the chosen model from ``--review`` more
    cut-offs, ``h`` days apart.

At each level of ``--levels`` (default: refuse_building, street_office, city).

Run (from a git worktree, ``--pg-host`` names the main checkout's ``var/run``):

    PYTHONPATH=. .venv/bin/python bench/bench_refuse_forecast.py
    PYTHONPATH=. .venv/bin/python bench/bench_refuse_forecast.py --levels city --h 28

Markdown tables are printed; the JSON goes to ``var/bench/refuse-forecast-<time>.json``
and ``var/bench/refuse-forecast-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios import forecast as fc
from scenarios import refuse_forecast as rf
from spatial.db import connect

ROOT = Path(__file__).resolve().parents[1]
#: The cluster's socket directory (``--pg-host``; a git worktree reads the main checkout's).
PG_HOST = str(ROOT / "var" / "run")


def combined(parts: list[fc.Backtest]) -> fc.Backtest:
    """One backtest of several runs over the same cut-offs (the baseline kept once)."""
    forecasts = pd.concat([p.forecasts for p in parts], ignore_index=True)
    errors = pd.concat([p.errors for p in parts], ignore_index=True)
    return fc.Backtest(parts[0].h, parts[0].cutoffs,
                       forecasts.drop_duplicates(["model", "holidays", "unique_id", "cutoff",
                                                  "horizon"]),
                       errors.drop_duplicates(["model", "holidays", "unique_id", "cutoff"]))


def run_level(conn: Any, level: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    f = rf.load(conn, level=level, horizon_days=args.h, review_cutoffs=args.review)
    load_s = time.perf_counter() - t0
    assert f.panel is not None, f.message
    panel = f.panel
    rows: dict[str, Any] = {}
    parts = []
    for c in fc.candidates(fc.MODELS, "both"):
        t = time.perf_counter()
        bt = fc.backtest(panel, args.h, models=(c.model,), holidays=c.holidays)
        took = time.perf_counter() - t
        parts.append(bt)
        fits = len(bt.errors[(bt.errors["model"] == c.model)
                             & (bt.errors["holidays"] == c.holidays)])
        pooled = bt.pooled()
        row = pooled[(pooled["model"] == c.model) & (pooled["holidays"] == c.holidays)].iloc[0]
        rows[c.label] = {"model": c.model, "holidays": c.holidays, "backtest_s": took,
                         "fits": fits, "ms_per_fit": 1000 * took / fits,
                         "mase": float(row["mase"]), "mape": float(row["mape"]),
                         "series": int(row["series"])}
    f.backtest = combined(parts)
    f.model, f.adjusted = chosen = fc.select_model(f.backtest)
    t = time.perf_counter()
    f.run_forecast()
    forecast_s = time.perf_counter() - t
    t = time.perf_counter()
    f.run_review()
    review_s = time.perf_counter() - t
    summary = f.summary()
    review = pd.DataFrame(f.review_rows(), columns=list(rf.REVIEW_COLUMNS))
    return {
        "level": level, "series": len(panel.series), "history_days": summary["history_days"],
        "as_of": summary["as_of"], "model": chosen.label,
        "improvement_pct": f.backtest.improvement(chosen), "candidates": rows,
        "load_s": load_s, "backtest_s": sum(v["backtest_s"] for v in rows.values()),
        "backtest_adjusted_only_s": sum(v["backtest_s"] for v in rows.values()
                                        if v["holidays"] or v["model"] == fc.BASELINE),
        "forecast_s": forecast_s, "review_s": review_s,
        "review_cutoffs": int(review["cutoff"].nunique()),
        "review_mape": float(review["ape"].mean()),
        "review_baseline_mape": float(review["baseline_ape"].mean()),
        "fallback_series": summary["fallback_series"],
        "holidays_significant": [h["holiday"] for h in summary["holidays"]
                                 if h["significant"]],
    }


def report(r: dict[str, Any]) -> None:
    print(f"\n### {r['level']}: {r['series']} series, {r['history_days']} days to {r['as_of']}")
    print(f"\nload {r['load_s']:.2f} s · backtest {r['backtest_s']:.1f} s (adjusted only "
          f"{r['backtest_adjusted_only_s']:.1f} s) · forecast {r['forecast_s']:.2f} s · review "
          f"{r['review_s']:.1f} s ({r['review_cutoffs']} cut-offs) · chosen **{r['model']}**, "
          f"{r['improvement_pct']:.1f} % below the seasonal naive's MASE\n")
    print("| candidate | backtest s | ms per fit | pooled MASE | pooled MAPE % |")
    print("|---|---:|---:|---:|---:|")
    for label, v in r["candidates"].items():
        print(f"| {label} | {v['backtest_s']:.1f} | {v['ms_per_fit']:.0f} | {v['mase']:.4f} | "
              f"{v['mape']:.2f} |")
    print(f"\nreview: mean absolute % error {r['review_mape']:.2f} (seasonal naive "
          f"{r['review_baseline_mape']:.2f}); holiday effects seen: "
          f"{', '.join(r['holidays_significant']) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-host", default=PG_HOST,
                        help="the cluster's socket directory (default: var/run of this checkout)")
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--levels", default=",".join(rf.LEVELS))
    parser.add_argument("--h", type=int, default=rf.DEFAULT_HORIZON, help="days ahead")
    parser.add_argument("--review", type=int, default=rf.REVIEW_CUTOFFS,
                        help="review cut-offs before the backtest's")
    args = parser.parse_args()
    out: dict[str, Any] = {"args": vars(args), "started": time.strftime("%Y-%m-%d %H:%M"),
                           "load_average": os.getloadavg(), "levels": []}
    with connect(f"host={args.pg_host} port=54787 user=onemap dbname={args.database}") as conn:
        for level in args.levels.split(","):
            r = run_level(conn, level, args)
            report(r)
            out["levels"].append(r)
    out["load_average_after"] = os.getloadavg()
    path = ROOT / "var" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for p in (path / f"refuse-forecast-{stamp}.json", path / "refuse-forecast-latest.json"):
        p.write_text(json.dumps(out, indent=1, default=float))
    print(f"\nJSON: var/bench/refuse-forecast-{stamp}.json")


if __name__ == "__main__":
    main()
