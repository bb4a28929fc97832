"""Spill tracing: a report traced by onemap against what a planner would otherwise write.

For every spill report of the city (``--database``, default the dev database), cold
(the graph cache dropped before each report):

* **onemap**: ``SpillTrace(conn, [report]).solve()`` — every source (tracks, gap
  prisms on the road graph, checkpoints, waybills, entries) and each suspect's trip;
* **baseline**: the fixes of the window before the report read into a GeoDataFrame,
  MovingPandas trajectories per truck (``TrajectoryCollection``), each trajectory's
  distance to the spot (in metres, EPSG:4548) filtered at 30 m, suspects ranked by that
  distance — what a planner with MovingPandas would write for "who passed here then".

Both run on the same database and machine in one run; the table gives the median and
p95 seconds per report and their ratio, and each one's recall@3 of the causing truck
(``truth.spill_cause``) where the database has that truth.

Usage::

    PYTHONPATH=. .venv/bin/python bench/bench_spill_trace.py --database onemap
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
import shapely

from scenarios import spill_trace as st
from spatial.db import connect
from spatial.network import CACHE, road_graph

warnings.filterwarnings("ignore", message="Missing optional dependencies")
import movingpandas as mpd  # noqa: E402

METRIC = 4548


def dsn(database: str, host: str) -> str:
    return f"dbname={database} user=onemap host={host} port=54787"


def baseline(conn: psycopg.Connection[Any], spill: st.Spill) -> list[int]:
    """Trucks whose trajectory passed within 30 m in the window, nearest first."""
    rows = conn.execute(
        "SELECT truck_id, ts, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM onemap.truck_gps "
        "WHERE ts BETWEEN %s AND %s ORDER BY truck_id, ts",
        (spill.reported_at - pd.Timedelta(hours=st.WINDOW_H), spill.reported_at)).fetchall()
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    gdf = gpd.GeoDataFrame(frame[["truck_id", "ts"]],
                           geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                           crs=4490).to_crs(METRIC)
    gdf["ts"] = pd.to_datetime(gdf["ts"], utc=True).dt.tz_localize(None)
    spot = gpd.GeoSeries([shapely.Point(spill.lon, spill.lat)], crs=4490).to_crs(METRIC)[0]
    trajectories = mpd.TrajectoryCollection(gdf, traj_id_col="truck_id", t="ts")
    near = []
    for traj in trajectories:
        d = traj.distance(spot)
        if d <= st.PASS_M:
            near.append((d, int(traj.id)))
    return [t for _, t in sorted(near)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--pg-host", default=str(Path("var/run").resolve()))
    parser.add_argument("--limit", type=int, default=60, help="reports traced, at most")
    parser.add_argument("--baseline-limit", type=int, default=None,
                        help="reports the baseline traces, at most (it is slow on an L city)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"onemap": [], "baseline": [], "graph": []}
    hits: dict[str, int] = {"onemap": 0, "baseline": 0, "baseline_caused": 0}
    caused = 0
    with connect(dsn(args.database, args.pg_host), autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('truth.spill_cause') IS NOT NULL AS t"
                           ).fetchone()
        has_truth = bool(row and row["t"])
        ids = [int(r["id"]) for r in conn.execute(
            "SELECT id FROM onemap.spill_report ORDER BY id LIMIT %s", (args.limit,))]
        truth = {int(r["spill_report_id"]): r["truck_id"] for r in conn.execute(
            "SELECT spill_report_id, truck_id FROM truth.spill_cause WHERE kind = 'caused'")
        } if has_truth else {}
        for n, sid in enumerate(ids):
            [spill] = st.load_spills(conn, [sid])
            CACHE.invalidate("road")  # cold: the drive graph read again
            t = time.perf_counter()
            graph = road_graph(conn, "drive")
            times["graph"].append(time.perf_counter() - t)
            ours = [s.truck_id for s in st.SpillTrace(conn, [spill], graph=graph).solve()
                    .ranked(10)]
            times["onemap"].append(time.perf_counter() - t)
            theirs: list[int] | None = None
            if args.baseline_limit is None or n < args.baseline_limit:
                t = time.perf_counter()
                theirs = baseline(conn, spill)
                times["baseline"].append(time.perf_counter() - t)
            if sid in truth:
                caused += 1
                hits["onemap"] += truth[sid] in ours[:3]
                if theirs is not None:
                    hits["baseline"] += truth[sid] in theirs[:3]
                    hits["baseline_caused"] += 1
    median = {k: statistics.median(v) for k, v in times.items() if v}
    of = {"onemap": caused, "baseline": hits["baseline_caused"], "graph": 0}
    stats: dict[str, dict[str, float | None]] = {
        k: {"median_s": round(median[k], 3),
            "p95_s": round(sorted(v)[int(0.95 * (len(v) - 1))], 3), "reports": len(v),
            "recall_at_3": round(hits[k] / of[k], 3) if of[k] else None}
        for k, v in times.items() if v}
    ratio = median["baseline"] / max(median["onemap"], 1e-9)
    print(f"\n{len(ids)} reports ({caused} caused), cold, one at a time\n")
    print("| | reports | median s | p95 s | recall@3 |")
    print("|---|---:|---:|---:|---:|")
    for k, name in (("onemap", "onemap (graph read included)"),
                    ("graph", "of which: reading the drive graph"), ("baseline", "baseline")):
        r = stats[k]
        print(f"| {name} | {r['reports']} | {r['median_s']} | {r['p95_s']} | "
              f"{r['recall_at_3'] if k != 'graph' else ''} |")
    print(f"\nbaseline : onemap (median) = {ratio:.1f}×")
    out = Path("var/bench") / f"spill-bench-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "stats": stats, "ratio": ratio},
                              indent=2), encoding="utf-8")
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
