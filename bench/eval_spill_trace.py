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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from scenarios import spill_trace as st
from spatial.db import connect
from spatial.network import road_graph

REMOVE_SQL = """
WITH fixes AS (
    SELECT truck_id, ts, row_number() OVER (PARTITION BY truck_id ORDER BY ts) AS n
    FROM onemap.truck_gps),
runs AS (  -- runs of consecutive fixes of a truck, 30-120 long
    SELECT truck_id, n AS first, n + 30 + floor(random() * 91)::int AS last
    FROM fixes WHERE random() < %(run_p)s),
gone AS (
    SELECT f.truck_id, f.ts FROM fixes f WHERE random() < %(random)s
    UNION
    SELECT f.truck_id, f.ts FROM fixes f
    JOIN runs r ON r.truck_id = f.truck_id AND f.n BETWEEN r.first AND r.last)
DELETE FROM onemap.truck_gps g USING gone
WHERE g.truck_id = gone.truck_id AND g.ts = gone.ts
"""


def dsn(database: str, host: str) -> str:
    return f"dbname={database} user=onemap host={host} port=54787"


def remove_fixes(conn: psycopg.Connection[Any], share: float, seed: float = 0.5) -> int:
    """Delete about ``share`` of the fixes: half at random, half in runs (75 fixes long on
    average, so a run starts at every 150 / share-th fix); the same ``seed`` (-1 to 1)
    removes the same fixes of the same database."""
    if share <= 0:
        return 0
    conn.execute("SELECT setseed(%s)", (seed,))
    cur = conn.execute(REMOVE_SQL, {"random": share / 2, "run_p": share / 2 / 75.0})
    return cur.rowcount


def evaluate(conn: psycopg.Connection[Any], mode: str, graph: Any, *, context: bool = True
             ) -> dict[str, Any]:
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
        trace = st.SpillTrace(conn, spills, graph=graph, context=context).solve()
        times.append(time.perf_counter() - t)
        ranked = trace.ranked(10, first_only=True)
        if r["kind"] == "caused":
            c["caused"] += 1
            trucks = [s.truck_id for s in ranked]
            c["top1"] += trucks[:1] == [r["truck_id"]]
            c["top3"] += r["truck_id"] in trucks[:3]
            sites = trace.sites()
            c["site"] += bool(sites) and sites[0][0] == r["construction_site_id"]
            if ranked:  # the first suspect's disposal site, whoever it is
                c["disposal"] += ranked[0].disposal_site_id == r["disposal_site_id"]
        else:
            c["noise"] += 1
            c["noise_loaded_suspects"] += sum(bool(s.loaded) for s in ranked)
    n = max(c["caused"], 1)
    return {"mode": mode, "caused": c["caused"], "noise": c["noise"],
            "recall_at_1": round(c["top1"] / n, 3), "recall_at_3": round(c["top3"] / n, 3),
            "recall_at_3_ci95": wilson(c["top3"], c["caused"]),
            "site_first_right_ci95": wilson(c["site"], c["caused"]),
            "site_first_right": round(c["site"] / n, 3),
            "disposal_first_right": round(c["disposal"] / n, 3),
            "false_suspects_per_noise_report": round(
                c["noise_loaded_suspects"] / max(c["noise"], 1), 2),
            "median_s": round(statistics.median(times), 3) if times else None,
            "p95_s": round(sorted(times)[int(0.95 * (len(times) - 1))], 3) if times else None}


FLAG_OF = {"no_waybill": "unauthorised", "wrong_disposal_site": "wrong_disposal_site",
           "dumped_outside": "dumped_outside"}


def evaluate_flags(conn: psycopg.Connection[Any], graph: Any, clean: int = 60) -> dict[str, Any]:
    """The rule flags against ``truth.unauthorised``: for every trip against the rules, and
    for ``clean`` trips that broke none, a report at the middle of its loaded haul 20 min
    after it passed there is traced; the truck's suspect trip that passed then is looked
    up and its flags compared (``unauthorised`` for no waybill, ``wrong_disposal_site``,
    ``dumped_outside``; a clean trip should carry none of them)."""
    rows = conn.execute(
        "WITH t AS (SELECT t.*, u.reason FROM truth.truck_trip t "
        "  LEFT JOIN truth.unauthorised u ON u.trip_id = t.id), "
        "pick AS ((SELECT * FROM t WHERE reason IS NOT NULL) UNION ALL "
        "  (SELECT * FROM t WHERE reason IS NULL AND NOT device_off ORDER BY md5(id::text) "
        "   LIMIT %(clean)s)) "
        "SELECT id, truck_id, reason, ST_X(ST_LineInterpolatePoint(path, 0.5)) AS lon, "
        "ST_Y(ST_LineInterpolatePoint(path, 0.5)) AS lat, "
        "depart_ts + (arrive_ts - depart_ts) / 2 AS passed FROM pick "
        "WHERE path IS NOT NULL ORDER BY id", {"clean": clean}).fetchall()
    c: Counter[str] = Counter()
    for r in rows:
        reason = r["reason"] or "clean"
        spill = st.Spill(None, float(r["lon"]), float(r["lat"]),
                         r["passed"] + timedelta(minutes=20), None, "patrol")
        trace = st.SpillTrace(conn, [spill], graph=graph).solve()
        # the truck's trip that passed then (it may have passed the spot empty before)
        mine = sorted((s for s in trace.suspects if s.truck_id == r["truck_id"]
                       and 0 in s.passes and s.passes[0].at is not None),
                      key=lambda s: abs((s.passes[0].at - r["passed"]).total_seconds()))
        c[f"{reason}:n"] += 1
        if not mine:
            continue
        c[f"{reason}:found"] += 1
        flags = set(mine[0].flags) & set(FLAG_OF.values())
        right = not flags if reason == "clean" else FLAG_OF[reason] in flags
        c[f"{reason}:right"] += right
    out: dict[str, Any] = {}
    for reason in ("no_waybill", "wrong_disposal_site", "dumped_outside", "clean"):
        n = c[f"{reason}:n"]
        out[reason] = {"trips": n, "found": c[f"{reason}:found"],
                       "flagged_right": c[f"{reason}:right"],
                       "share_right": round(c[f"{reason}:right"] / n, 3) if n else None}
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson interval of a share ``k / n`` (the samples here are small)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--pg-host", default=str(Path("var/run").resolve()))
    parser.add_argument("--removal", default="0,0.1,0.2,0.4")
    parser.add_argument("--modes", default="single,incident")
    parser.add_argument("--no-context", action="store_true",
                        help="trace without the nearby reports as context (the trail)")
    parser.add_argument("--seed", type=float, default=0.5,
                        help="which fixes are removed (-1 to 1; the same seed, the same)")
    parser.add_argument("--no-flags", action="store_true",
                        help="skip the rule flags' evaluation (truth.unauthorised)")
    args = parser.parse_args()
    rows = []
    with connect(dsn(args.database, args.pg_host)) as conn:
        graph = road_graph(conn, "drive")
        for share in (float(x) for x in args.removal.split(",")):
            removed = remove_fixes(conn, share, args.seed)
            for mode in args.modes.split(","):
                row = {"removal": share, "fixes_removed": removed,
                       **evaluate(conn, mode, graph, context=not args.no_context)}
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False))
            conn.rollback()
        flags = None if args.no_flags else evaluate_flags(conn, graph)
        if flags is not None:
            rows.append({"flags": flags})
            print(json.dumps(flags, ensure_ascii=False))
    print("\n| GPS removed | mode | recall@1 | recall@3 (95 % CI) | construction site right "
          "(95 % CI) | disposal site right | false suspects / noise report | median s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "flags" in r:
            continue
        lo, hi = r["recall_at_3_ci95"]
        slo, shi = r["site_first_right_ci95"]
        print(f"| {r['removal']:.0%} | {r['mode']} | {r['recall_at_1']:.0%} | "
              f"{r['recall_at_3']:.0%} ({lo:.0%}–{hi:.0%}) | {r['site_first_right']:.0%} "
              f"({slo:.0%}–{shi:.0%}) | {r['disposal_first_right']:.0%} | "
              f"{r['false_suspects_per_noise_report']} | {r['median_s']} |")
    if flags is not None:
        print("\n| trip | trips | truck among the suspects | flagged right |")
        print("|---|---:|---:|---:|")
        for reason, f in flags.items():
            print(f"| {reason} | {f['trips']} | {f['found']} | {f['flagged_right']} |")
    out = Path("var/bench") / f"spill-trace-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
