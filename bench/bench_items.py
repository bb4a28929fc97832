"""A 10,000-feature items page: our streaming route vs pygeoapi's own path.

Both answer ``GET /collections/household/items?f=json&limit=10000`` from the
same provider SQL (GeoJSON assembled in PostGIS) as the same analyst:

A  onemap's streaming route (:mod:`server.items`): a server-side cursor,
   each feature written out as it arrives;
B  pygeoapi's items handler (its Starlette app, our provider): the page built
   as one dictionary, decorated, serialised, then sent.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_items.py [--rounds 5]`` with
the demo city loaded (``make up``; ``household`` has 40k rows at scale M).
Figures: median wall time per page and the peak of Python allocations during
one request (tracemalloc; the client's copy of the body included), with ratios
A/B. (httpx's ASGI transport hands the body over only when it is complete, so
time to first byte is not measured here.) A
temporary analyst user is created and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
import uuid
from typing import Any

import httpx

from spatial import auth, users
from spatial.access import acting_as
from spatial.db import connect

PATH = "/collections/household/items"
PARAMS = {"f": "json", "limit": "10000"}


async def one(app: Any, headers: dict[str, str]) -> tuple[float, int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        t0 = time.perf_counter()
        r = await client.get(PATH, params=PARAMS, headers=headers)
        r.raise_for_status()
        return time.perf_counter() - t0, len(r.content)


def run(app: Any, headers: dict[str, str], rounds: int) -> dict[str, float]:
    from server.app import ContextExecutor

    async def main() -> dict[str, float]:
        asyncio.get_running_loop().set_default_executor(ContextExecutor())
        await one(app, headers)  # warm: pool, catalog, imports
        walls = []
        for _ in range(rounds):
            wall, size = await one(app, headers)
            walls.append(wall)
        tracemalloc.start()
        await one(app, headers)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"wall": statistics.median(walls), "peak_mb": peak / 1e6, "bytes": size}

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from server.app import create_app

    app = create_app()
    from pygeoapi import starlette_app

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with connect(autocommit=True) as conn, conn.transaction():
        info = users.create_user(conn, name, None, roles=["analyst"])
        key = auth.create_api_key(conn, name, label="bench").key
        principal = auth.principal_for_user(conn, info.id)
    try:
        ours = run(app, {"X-API-Key": key}, args.rounds)
        with acting_as(principal):  # pygeoapi's app has no auth middleware of ours
            theirs = run(starlette_app.APP, {}, args.rounds)
    finally:
        with connect(autocommit=True) as conn:
            conn.execute("DELETE FROM onemap.app_user WHERE username = %s", (name,))
    print(f"household page of 10,000 features ({ours['bytes'] / 1e6:.1f} MB), "
          f"median of {args.rounds}")
    print(f"{'':24}{'wall s':>10}{'peak MB':>10}")
    for label, r in (("A onemap streaming", ours), ("B pygeoapi items", theirs)):
        print(f"{label:24}{r['wall']:>10.3f}{r['peak_mb']:>10.1f}")
    print(f"ratio A/B: wall {ours['wall'] / theirs['wall']:.2f}, "
          f"peak memory {ours['peak_mb'] / theirs['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
