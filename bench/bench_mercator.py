"""How should tiles get Web Mercator geometry? Measured side by side.

Three ways to serve an MVT tile from polygons stored in CGCS2000 (EPSG:4490):

A  transform on the fly: ``ST_Transform(geom, 3857)`` per row, filtered on the
   4490 GiST index with the tile envelope transformed once;
B  an expression index on ``ST_Transform(geom, 3857)``: filtering uses it,
   but every row is still transformed for output;
C  a stored generated column ``geom_3857`` with its own GiST index: no
   transform at request time, at the cost of storage and write time.

Run: ``.venv/bin/python bench/bench_mercator.py [--rows 300000]`` with the
database up (``make up`` or ``onemap db start``). It works in a scratch
database and drops it afterwards. Figures: median ms per tile over a fixed,
seeded set of tiles at zooms 13–16, the ratio of each variant to C, the
table+index size, and the bulk load time.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import psycopg
from psycopg import sql

from spatial.settings import database_conninfo

CENTER = (116.47, 39.92)  # Chaoyang, Beijing


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--tiles", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--zooms", default="13,14,15,16", help="comma-separated zoom levels")
    args = ap.parse_args()

    admin = database_conninfo()
    name = "onemap_bench_mercator"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(database_conninfo(name), autocommit=True) as conn:
            run(conn, args)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def run(conn: psycopg.Connection, args: argparse.Namespace) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    # Building-like squares (10–40 m) scattered over ~20 × 20 km, denser in the middle.
    conn.execute("SELECT setseed(0.42)")
    t0 = time.perf_counter()
    conn.execute(
        """
        CREATE TABLE b_plain AS
        SELECT i AS id, ST_SetSRID(ST_Expand(ST_MakePoint(
                   %s + (random() + random() - 1) * 0.12,
                   %s + (random() + random() - 1) * 0.09),
                 0.00005 + random() * 0.0002), 4490)::geometry(Polygon, 4490) AS geom,
               (random() * 30)::int AS floors
        FROM generate_series(1, %s) i
        """,
        (*CENTER, args.rows),
    )
    conn.execute("CREATE INDEX ON b_plain USING gist (geom)")
    plain_load = time.perf_counter() - t0

    conn.execute("CREATE TABLE b_expr AS SELECT * FROM b_plain")
    conn.execute("CREATE INDEX ON b_plain USING gist (geom)")
    conn.execute("CREATE INDEX ON b_expr USING gist (geom)")
    conn.execute("CREATE INDEX b_expr_3857 ON b_expr USING gist (ST_Transform(geom, 3857))")

    t0 = time.perf_counter()
    conn.execute(
        """
        CREATE TABLE b_stored (id int, geom geometry(Polygon, 4490), floors int,
            geom_3857 geometry(Polygon, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED)
        """
    )
    conn.execute("INSERT INTO b_stored (id, geom, floors) SELECT id, geom, floors FROM b_plain")
    conn.execute("CREATE INDEX ON b_stored USING gist (geom)")
    conn.execute("CREATE INDEX ON b_stored USING gist (geom_3857)")
    stored_load = time.perf_counter() - t0
    conn.execute("VACUUM ANALYZE")

    queries = {
        "A on-the-fly": """
            SELECT length(ST_AsMVT(q, 'b')) FROM (
              SELECT id, floors, ST_AsMVTGeom(ST_Transform(geom, 3857), e.env) AS g
              FROM b_plain, (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env) e
              WHERE geom && ST_Transform(e.env, 4490)) q""",
        "B expr-index": """
            SELECT length(ST_AsMVT(q, 'b')) FROM (
              SELECT id, floors, ST_AsMVTGeom(ST_Transform(geom, 3857), e.env) AS g
              FROM b_expr, (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env) e
              WHERE ST_Transform(geom, 3857) && e.env) q""",
        "C stored-3857": """
            SELECT length(ST_AsMVT(q, 'b')) FROM (
              SELECT id, floors, ST_AsMVTGeom(geom_3857, e.env) AS g
              FROM b_stored, (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env) e
              WHERE geom_3857 && e.env) q""",
    }
    rnd = random.Random(7)
    tiles = []
    for _ in range(args.tiles):
        z = rnd.choice([int(v) for v in args.zooms.split(",")])
        lon = CENTER[0] + rnd.uniform(-0.1, 0.1)
        lat = CENTER[1] + rnd.uniform(-0.07, 0.07)
        tiles.append((z, *tile_of(lon, lat, z)))

    times: dict[str, list[float]] = {k: [] for k in queries}
    sizes: dict[str, int] = {}
    for _ in range(args.repeat):
        for label, q in queries.items():  # interleaved: the machine's noise hits all alike
            total = 0
            t0 = time.perf_counter()
            for z, x, y in tiles:
                row = conn.execute(q, {"z": z, "x": x, "y": y}).fetchone()
                total += row[0] or 0
            times[label].append((time.perf_counter() - t0) / len(tiles) * 1000)
            sizes[label] = total

    def size(table: str) -> str:
        row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (table,)).fetchone()
        return row[0]

    base = statistics.median(times["C stored-3857"])
    print(f"rows={args.rows} tiles={len(tiles)} (z {args.zooms}) repeat={args.repeat}")
    print(f"{'variant':15} {'ms/tile':>8} {'ratio to C':>10} {'bytes':>10}  size")
    for label, table in zip(queries, ["b_plain", "b_expr", "b_stored"], strict=True):
        med = statistics.median(times[label])
        print(f"{label:15} {med:8.2f} {med / base:10.2f} {sizes[label]:10d}  {size(table)}")
    print(f"bulk load: plain {plain_load:.1f}s, with stored 3857 column {stored_load:.1f}s")


if __name__ == "__main__":
    main()
