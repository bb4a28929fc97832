"""Cold tile sizes and render times per zoom, in-process, as a district admin.

The table under "How a tile is made" in the README: for each zoom, the 3×3
tiles around a point (default 116.47, 39.92 in the demo city) of four layer
sets, each rendered once cold — no tile cache, the render path the server
uses (:func:`tiles.render.render` on the server's pool and session set-up),
as a district administrator of the city's first district (a temporary user,
removed afterwards). Reports the largest tile of any set per zoom and each
set's median render time.

Run with the database up (``make up`` or ``onemap db start``)::

    .venv/bin/python bench/bench_zooms.py [--zooms 10,12,14,16,17,19] [--repeat 3]

``--repeat`` renders each tile that many times and keeps the median, so a
single slow render from a noisy machine does not decide the row; every
render is still cold (nothing is cached between them, though PostgreSQL's
own buffers are warm after the first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from spatial import users
from spatial.access import Principal
from spatial.auth import principal_for_user
from spatial.settings import database_conninfo
from tiles import render as rendering
from tiles.spec import TileSpec, bind_catalog, load_spec
from tiles.tms import lonlat_to_tile

ROOT = Path(__file__).resolve().parents[1]
SETS = ("base", "grid_management", "pipelines", "trucks")


def make_admin(conninfo: str) -> Principal:
    """A temporary district admin of the first district."""
    name = f"bench_z_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo) as conn, conn.transaction():
        row = conn.execute("SELECT min(id) FROM onemap.district").fetchone()
        if row is None or row[0] is None:
            raise SystemExit("no district: load a city first (make up)")
        user = users.create_user(conn, name, None, roles=["district_admin"],
                                 scopes=[("district", row[0])])
        return principal_for_user(conn, user.id)


def drop_user(conninfo: str, name: str) -> None:
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("DELETE FROM onemap.app_user WHERE username = %s", (name,))


async def measure(conninfo: str, spec: TileSpec, admin: Principal, zooms: list[int],
                  centre: tuple[float, float], repeat: int) -> list[dict[str, Any]]:
    """Per zoom: the largest tile (bytes, set) and the median ms of each set."""
    pool = rendering.make_pool(conninfo, 2)
    await pool.open()
    rows = []
    try:
        for z in zooms:
            cy, cx = lonlat_to_tile("WebMercatorQuad", *centre, z)
            row: dict[str, Any] = {"z": z, "largest": (0, "")}
            for set_id in SETS:
                layerset = spec.theme(set_id)
                times = []
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        one = []
                        for _ in range(repeat):
                            async with rendering.tile_connection(pool, admin) as conn:
                                t0 = time.perf_counter()
                                tile = await rendering.render(conn, layerset, "WebMercatorQuad",
                                                              z, cx + dx, cy + dy, None, admin)
                                one.append((time.perf_counter() - t0) * 1000)
                        times.append(statistics.median(one))
                        if len(tile.data) > row["largest"][0]:
                            row["largest"] = (len(tile.data), set_id)
                row[set_id] = statistics.median(times)
            rows.append(row)
    finally:
        await pool.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zooms", default="10,12,14,16,17,19")
    ap.add_argument("--centre", default="116.47,39.92", help="lon,lat")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    conninfo = database_conninfo()
    base = load_spec(ROOT / "layers/tiles.yml", ROOT / "layers/themes.yml",
                     ROOT / "pygeoapi-config.yml")
    with psycopg.connect(conninfo) as conn:
        spec = bind_catalog(base, conn)
    lon, lat = (float(v) for v in args.centre.split(","))
    admin = make_admin(conninfo)
    try:
        rows = asyncio.run(measure(conninfo, spec, admin, [int(z) for z in args.zooms.split(",")],
                                   (lon, lat), args.repeat))
    finally:
        drop_user(conninfo, admin.username)
    print("| z | largest tile of any set | " + " | ".join(f"{s} p50" for s in SETS) + " |")
    print("|---|---|" + "---|" * len(SETS))
    for r in rows:
        size, where = r["largest"]
        print(f"| {r['z']} | {size / 1024:.0f} KB ({where}) | "
              + " | ".join(f"{r[s]:.0f} ms" for s in SETS) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
