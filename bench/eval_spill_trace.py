"""Spill tracing measured against the truth: recall of the causing trip, the sites, noise.

For every spill report of ``truth.spill_cause`` (any database holding onemap's
tables and that truth table — the generator's, or one filled by hand), the
tracing (``scenarios.spill_trace``) runs as enforcement would run it:

* **single**: the report alone;
* **incident**: the report with the other reports its causing trip left (the
  reports staff would pick as one incident: muck on several roads of one route);
  each caused report is traced once with its incident, noise reports alone.

and with GPS fixes removed (``--removal 0,0.1,0.2,0.4``: half of the share at
random, half in runs of 30–120 consecutive fixes of a truck, as terminals drop
out), inside a transaction that is rolled back. Figures per removal level:

* recall@1 and recall@3 of the causing truck (on the trip that passed the spot);
* the construction site of the first suspect right (the causing trip's), and its
  disposal site — whoever the first suspect is (trucks of one site share both);
* for noise reports: how many loaded suspects they get (false suspects).

Usage::

    PYTHONPATH=. .venv/bin/python bench/eval_spill_trace.py --database onemap
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from scenarios import spill_trace as st
from spatial.db import connect
from spatial.network import road_graph

REMOVE_SQL = """
WITH fixes AS (
    SELECT truck_id, ts, row_number() OVER (PARTITION BY truck_id ORDER BY ts) AS n,
           count(*) OVER (PARTITION BY truck_id) AS total
    FROM onemap.truck_gps),
runs AS (  -- starts of runs of consecutive fixes, per truck
    SELECT truck_id, n AS first, n + 30 + floor(random() * 91)::int AS last
    FROM fixes WHERE random() < %(run_p)s),
gone AS (
    SELECT f.truck_id, f.ts FROM fixes f
    WHERE random() < %(random)s
       OR EXISTS (SELECT 1 FROM runs r WHERE r.truck_id = f.truck_id
                  AND f.n BETWEEN r.first AND r.last))
DELETE FROM onemap.truck_gps g USING gone
WHERE g.truck_id = gone.truck_id AND g.ts = gone.ts
"""


def dsn(database: str, host: str) -> str:
    return f"dbname={database} user=onemap host={host} port=54787"


def remove_fixes(conn: psycopg.Connection[Any], share: float) -> int:
    """Delete about ``share`` of the fixes: half at random, half in runs (75 fixes long on
    average, so a run starts at every 150 / share-th fix)."""
    if share <= 0:
        return 0
    cur = conn.execute(REMOVE_SQL, {"random": share / 2, "run_p": share / 2 / 75.0})
    return cur.rowcount


def evaluate(conn: psycopg.Connection[Any], mode: str, graph: Any) -> dict[str, Any]:
    truth = conn.execute("SELECT spill_report_id AS id, kind, truck_id, trip_id, "
                         "construction_site_id, disposal_site_id FROM truth.spill_cause "
                         "ORDER BY spill_report_id").fetchall()
    by_trip: dict[int, list[int]] = {}
    for r in truth:
        if r["trip_id"] is not None:
            by_trip.setdefault(int(r["trip_id"]), []).append(int(r["id"]))
    c: Counter[str] = Counter()
    times = []
    for r in truth:
        ids = [int(r["id"])]
        if mode == "incident" and r["trip_id"] is not None:
            ids += [i for i in by_trip[int(r["trip_id"])] if i != ids[0]]
        spills = st.load_spills(conn, ids)
        first = next(i for i, s in enumerate(spills) if s.id == ids[0])
        spills.insert(0, spills.pop(first))  # the traced report first
        t = time.perf_counter()
        trace = st.SpillTrace(conn, spills, graph=graph).solve()
        times.append(time.perf_counter() - t)
        ranked = trace.ranked(10, first_only=True)
        if r["kind"] == "caused":
            c["caused"] += 1
            trucks = [s.truck_id for s in ranked]
            c["top1"] += trucks[:1] == [r["truck_id"]]
            c["top3"] += r["truck_id"] in trucks[:3]
            if ranked:  # the first suspect's sites, whoever it is
                c["site"] += ranked[0].construction_site_id == r["construction_site_id"]
                c["disposal"] += ranked[0].disposal_site_id == r["disposal_site_id"]
        else:
            c["noise"] += 1
            c["noise_loaded_suspects"] += sum(bool(s.loaded) for s in ranked)
    n = max(c["caused"], 1)
    return {"mode": mode, "caused": c["caused"], "noise": c["noise"],
            "recall_at_1": round(c["top1"] / n, 3), "recall_at_3": round(c["top3"] / n, 3),
            "site_first_right": round(c["site"] / n, 3),
            "disposal_first_right": round(c["disposal"] / n, 3),
            "false_suspects_per_noise_report": round(
                c["noise_loaded_suspects"] / max(c["noise"], 1), 2),
            "median_s": round(statistics.median(times), 3) if times else None,
            "p95_s": round(sorted(times)[int(0.95 * (len(times) - 1))], 3) if times else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--pg-host", default=str(Path("var/run").resolve()))
    parser.add_argument("--removal", default="0,0.1,0.2,0.4")
    parser.add_argument("--modes", default="single,incident")
    args = parser.parse_args()
    rows = []
    with connect(dsn(args.database, args.pg_host)) as conn:
        graph = road_graph(conn, "drive")
        for share in (float(x) for x in args.removal.split(",")):
            removed = remove_fixes(conn, share)
            for mode in args.modes.split(","):
                row = {"removal": share, "fixes_removed": removed,
                       **evaluate(conn, mode, graph)}
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False))
            conn.rollback()
    print("\n| GPS removed | mode | recall@1 | recall@3 | construction site right "
          "| disposal site right | false suspects / noise report | median s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['removal']:.0%} | {r['mode']} | {r['recall_at_1']:.0%} | "
              f"{r['recall_at_3']:.0%} | {r['site_first_right']:.0%} | "
              f"{r['disposal_first_right']:.0%} | {r['false_suspects_per_noise_report']} | "
              f"{r['median_s']} |")
    out = Path("var/bench") / f"spill-trace-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
