"""The tile cache: budget, single flight, ETags, disk, invalidation, scope classes."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spatial.access import ANONYMOUS, Principal, request_connection
from tiles.cache import CachedTile, TileCache, TileKey, clear_scope_cache, scope_class
from tiles.tms import lonlat_to_tile

WEB = "WebMercatorQuad"
LAMP = (116.456, 39.9175)  # a lamp of the tiny city
FAR = (116.30, 39.99)  # 15 km away


@dataclass(frozen=True)
class Rendered:
    data: bytes
    truncated: tuple[str, ...] = ()
    layers: tuple[str, ...] = ("lamp",)


class Renderer:
    """A fake render counting its calls; may wait for a gate."""

    def __init__(self, data: bytes = b"mvt", gate: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.data = data
        self.gate = gate

    async def __call__(self) -> Rendered:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return Rendered(self.data)


def key_at(lonlat: tuple[float, float], z: int, layerset: str = "lighting",
           tms: str = WEB, scope: str = "all") -> TileKey:
    y, x = lonlat_to_tile(tms, lonlat[0], lonlat[1], z)
    return TileKey(layerset, tms, z, x, y, scope)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_memory_budget_evicts_least_recently_used() -> None:
    # incompressible tiles of ~10 kB; a budget of 5 of them
    tiles = [os.urandom(10_000) for _ in range(8)]
    one = CachedTile.from_rendered(Rendered(tiles[0])).size
    cache = TileCache(budget_bytes=5 * one + 100, disk_layersets=())
    keys = [TileKey("lamp", WEB, 18, i, 0) for i in range(8)]

    async def fill() -> None:
        for i in range(5):
            await cache.get_or_render(keys[i], Renderer(tiles[i]))
        await cache.get_or_render(keys[0], Renderer(b"never"))  # touch 0: recently used
        for i in range(5, 8):
            await cache.get_or_render(keys[i], Renderer(tiles[i]))

    run(fill())
    assert cache.bytes_used <= cache.budget_bytes
    assert len(cache) == 5
    assert keys[0] in cache  # used again, kept
    assert keys[1] not in cache and keys[2] not in cache and keys[3] not in cache
    assert all(k in cache for k in keys[5:])
    assert cache.stats.evictions == 3


def test_budget_setting_and_oversized_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_TILE_CACHE_MB", "0.01")
    cache = TileCache(disk_layersets=())
    assert cache.budget_bytes == int(0.01 * 2**20)
    big = os.urandom(50_000)
    tile = run(cache.get_or_render(TileKey("lamp", WEB, 18, 1, 1), Renderer(big)))
    assert tile.data == big  # served, just not kept
    assert len(cache) == 0
    monkeypatch.setenv("ONEMAP_TILE_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="ONEMAP_TILE_CACHE_MB"):
        TileCache()


def test_single_flight_concurrent_gets_render_once() -> None:
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 16)

    async def many() -> list[CachedTile]:
        render = Renderer(b"shared", gate=asyncio.Event())
        tasks = [asyncio.create_task(cache.get_or_render(key, render)) for _ in range(25)]
        await asyncio.sleep(0)  # all of them waiting on the one render
        for _ in range(5):
            await asyncio.sleep(0)
        assert render.gate is not None
        render.gate.set()
        got = await asyncio.gather(*tasks)
        assert render.calls == 1
        return got

    got = run(many())
    assert {t.etag for t in got} == {got[0].etag}
    assert all(t.data == b"shared" for t in got)
    assert cache.stats.renders == 1


def test_single_flight_across_threads() -> None:
    """Two event loops (two server threads) asking for one tile share one render."""
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 17)
    started = threading.Event()
    release = threading.Event()
    calls = []

    async def slow() -> Rendered:
        calls.append(1)
        started.set()
        await asyncio.to_thread(release.wait, 10)
        return Rendered(b"one")

    results: list[CachedTile] = []
    first = threading.Thread(target=lambda: results.append(run(cache.get_or_render(key, slow))))
    first.start()
    assert started.wait(10)

    async def second() -> CachedTile:
        task = asyncio.create_task(cache.get_or_render(key, slow))
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        return await task

    results.append(run(second()))
    first.join(10)
    assert len(calls) == 1
    assert results[0].etag == results[1].etag


def test_a_waiter_renders_when_the_first_caller_goes_away() -> None:
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 15)

    async def scenario() -> CachedTile:
        gate = asyncio.Event()
        leader = asyncio.create_task(cache.get_or_render(key, Renderer(b"x", gate=gate)))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(cache.get_or_render(key, Renderer(b"y")))
        await asyncio.sleep(0)
        leader.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await waiter

    tile = run(scenario())
    assert tile.data == b"y"
    assert key in cache


def test_render_errors_reach_every_waiter_and_are_not_cached() -> None:
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 14)

    async def broken() -> Rendered:
        await asyncio.sleep(0)
        raise RuntimeError("database went away")

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(cache.get_or_render(key, broken) for _ in range(3)),
                                    return_exceptions=True)

    errors = run(scenario())
    assert all(isinstance(e, RuntimeError) for e in errors)
    assert key not in cache
    assert run(cache.get_or_render(key, Renderer(b"ok"))).data == b"ok"


def test_etag_is_stable_for_the_same_tile_and_changes_with_it() -> None:
    a = TileCache(budget_bytes=1 << 20, disk_layersets=())
    b = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 16)
    first = run(a.get_or_render(key, Renderer(b"lamps v1")))
    again = run(b.get_or_render(key, Renderer(b"lamps v1")))  # re-rendered elsewhere
    changed = run(TileCache(budget_bytes=1 << 20, disk_layersets=()).get_or_render(
        key, Renderer(b"lamps v2")))
    assert first.etag == again.etag
    assert first.etag != changed.etag
    assert first.etag.startswith('"') and first.etag.endswith('"')  # strong, quoted
    assert first.gzip[:2] == b"\x1f\x8b" and first.gzip == again.gzip  # gzip, reproducible


def test_disk_cache_survives_a_new_cache(tmp_path: Path) -> None:
    key = key_at(LAMP, 15, layerset="base")
    scoped = key_at(LAMP, 15, layerset="base", scope="s0123")
    other = key_at(LAMP, 15, layerset="lighting")
    first = TileCache(budget_bytes=1 << 20, disk_dir=tmp_path)
    for k in (key, scoped, other):
        run(first.get_or_render(k, Renderer(b"base map")))
    files = list(tmp_path.rglob("*.tile"))
    assert len(files) == 1  # only the base map, only scope "all"
    assert not list(tmp_path.rglob(".tmp-*"))  # written through a rename

    second = TileCache(budget_bytes=1 << 20, disk_dir=tmp_path)  # a restart
    render = Renderer(b"should not render")
    tile = run(second.get_or_render(key, render))
    assert render.calls == 0 and second.stats.disk_hits == 1
    assert tile.data == b"base map"
    assert tile.etag == run(first.get_or_render(key, Renderer(b""))).etag
    run(second.get_or_render(scoped, render))
    run(second.get_or_render(other, render))
    assert render.calls == 2  # neither scoped nor non-base tiles come from disk


def test_invalidation_drops_exactly_the_touched_tiles_at_every_zoom(tmp_path: Path) -> None:
    cache = TileCache(budget_bytes=8 << 20, disk_dir=tmp_path)
    near = [key_at(LAMP, z) for z in range(10, 20)]
    near_base = [key_at(LAMP, z, layerset="base") for z in range(10, 20)]
    far = [key_at(FAR, z) for z in range(13, 20)]
    other_set = [key_at(LAMP, z, layerset="alleys") for z in (12, 16)]
    crs84 = [key_at(LAMP, z, tms="WorldCRS84Quad") for z in (9, 15, 18)]
    cgcs = [key_at(LAMP, z, tms="CGCS2000Quad") for z in (10, 16, 19)]
    everything = near + near_base + far + other_set + crs84 + cgcs

    async def fill() -> None:
        for k in everything:
            await cache.get_or_render(k, Renderer(repr(k).encode()))

    run(fill())
    assert all(k in cache for k in everything)
    assert len(list(tmp_path.rglob("*.tile"))) == len(near_base)

    box = (LAMP[0], LAMP[1], LAMP[0] + 0.00001, LAMP[1])  # a lamp moved by a metre
    version = cache.data_version
    dropped = cache.invalidate({"lighting", "base"}, box)
    assert cache.data_version > version
    assert dropped == len(near) + len(near_base) + len(crs84) + len(cgcs)
    for k in near + near_base + crs84 + cgcs:
        assert k not in cache, k
    for k in far + other_set:
        assert k in cache, k
    assert not list(tmp_path.rglob("*.tile"))  # and from disk


def test_invalidation_spares_neighbours_beyond_the_buffer() -> None:
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    z = 18
    centre = key_at(LAMP, z)
    ring = [TileKey("lighting", WEB, z, centre.x + dx, centre.y + dy)
            for dx in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2)]

    async def fill() -> None:
        for k in ring:
            await cache.get_or_render(k, Renderer(b"t"))

    run(fill())
    from tiles.tms import tile_bounds

    b = tile_bounds(WEB, z, centre.y, centre.x)
    # a point in the middle of the centre tile (converted back to lon/lat)
    import morecantile

    lon, lat = morecantile.tms.get(WEB).lnglat((b.minx + b.maxx) / 2, (b.miny + b.maxy) / 2)
    cache.invalidate({"lighting"}, (lon, lat, lon, lat))
    gone = [k for k in ring if k not in cache]
    assert gone == [centre]


def test_a_render_overtaken_by_an_edit_is_answered_not_stored() -> None:
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    key = key_at(LAMP, 17)
    elsewhere = key_at(FAR, 17)

    async def scenario(touch: tuple[float, float]) -> CachedTile:
        gate = asyncio.Event()
        task = asyncio.create_task(cache.get_or_render(key, Renderer(b"before", gate=gate)))
        await asyncio.sleep(0)
        cache.invalidate({"lighting"}, (*touch, *touch))  # the edit commits meanwhile
        gate.set()
        return await task

    assert run(scenario(LAMP)).data == b"before"
    assert key not in cache and cache.stats.stale_not_stored == 1
    run(scenario(FAR))  # an edit elsewhere does not spoil this render
    assert key in cache
    assert elsewhere not in cache


# -- scope classes ------------------------------------------------------------

GRID_SET = ["grid", "compound", "building", "household", "resident", "key_unit", "event"]
BASE_SET = ["land_use", "district", "street_office", "community", "grid", "road", "building"]


def _user(db: str, roles: list[str], scopes: list[tuple[str, int]]) -> Principal:
    from spatial import users
    from spatial.db import connect

    with connect(db) as conn, conn.transaction():
        name = f"u{uuid.uuid4().hex[:8]}"
        info = users.create_user(conn, name, None, roles=roles, scopes=scopes)
    return Principal(info.id, name, frozenset(roles))


def _class(db: str, who: Principal, tables: list[str]) -> str:
    with request_connection(who, conninfo=db) as conn:
        return scope_class(conn, who, tables)


def test_scope_classes_are_never_shared(tiny_city_db: str,
                                        tiny_city_ids: dict[str, int]) -> None:
    clear_scope_cache()
    g1, g2 = tiny_city_ids["grid1"], tiny_city_ids["grid2"]
    worker1 = _user(tiny_city_db, ["grid_worker"], [("grid", g1)])
    worker1b = _user(tiny_city_db, ["grid_worker"], [("grid", g1)])
    worker2 = _user(tiny_city_db, ["grid_worker"], [("grid", g2)])
    analyst = _user(tiny_city_db, ["analyst"], [])
    external = _user(tiny_city_db, ["external_system"], [])
    callers = {"worker1": worker1, "worker2": worker2, "analyst": analyst,
               "external": external, "anonymous": ANONYMOUS}
    without_events = [t for t in GRID_SET if t != "event"]
    classes = {n: _class(tiny_city_db, p, without_events) for n, p in callers.items()}
    assert len(set(classes.values())) == len(classes), classes
    assert "all" not in classes.values()
    # same grid, same roles, no per-user policy: the same tiles may be shared
    assert _class(tiny_city_db, worker1b, without_events) == classes["worker1"]
    # events: staff also see what they reported themselves, so per user
    assert (_class(tiny_city_db, worker1b, GRID_SET)
            != _class(tiny_city_db, worker1, GRID_SET))
    # the base map is public and unmasked: one class for everyone
    assert {_class(tiny_city_db, p, BASE_SET) for p in callers.values()} == {"all"}


def test_scope_class_keys_never_collide_in_the_cache(tiny_city_db: str,
                                                     tiny_city_ids: dict[str, int]) -> None:
    clear_scope_cache()
    worker1 = _user(tiny_city_db, ["grid_worker"], [("grid", tiny_city_ids["grid1"])])
    worker2 = _user(tiny_city_db, ["grid_worker"], [("grid", tiny_city_ids["grid2"])])
    cache = TileCache(budget_bytes=1 << 20, disk_layersets=())

    async def tile_for(who: Principal) -> CachedTile:
        scope = _class(tiny_city_db, who, ["household"])
        key = key_at(LAMP, 16, layerset="household", scope=scope)
        return await cache.get_or_render(key, Renderer(f"households of {who.username}".encode()))

    one = run(tile_for(worker1))
    two = run(tile_for(worker2))
    assert one.data != two.data
    assert len(cache) == 2
