"""Fresh after every edit: triggers → NOTIFY → listener → exactly the touched tiles dropped.

The tiny city: lamps along 示范路 (y = 39.9175, x 116.456–116.484), buildings
in two compounds, households at their building's point.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tiles.cache import TileCache, TileKey
from tiles.freshness import Listener, start_listener, table_layersets
from tiles.tms import lonlat_to_tile

WEB = "WebMercatorQuad"
FAR = (116.30, 39.99)
LAYERSETS = {
    "lamp": ["lamp"],
    "lighting": ["road", "road_lighting_segment", "distribution_box", "lamp"],
    "base": ["land_use", "district", "street_office", "community", "grid", "road", "building"],
    "resident": ["resident"],
    "household": ["household"],
    "grid_management": ["grid", "compound", "building", "household", "resident", "key_unit",
                        "event"],
    "alleys": ["alley", "alley_problem"],
}


@dataclass(frozen=True)
class Rendered:
    data: bytes
    truncated: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()


def key_at(lonlat: tuple[float, float], z: int, layerset: str, tms: str = WEB) -> TileKey:
    y, x = lonlat_to_tile(tms, lonlat[0], lonlat[1], z)
    return TileKey(layerset, tms, z, x, y)


def fill(cache: TileCache, keys: list[TileKey]) -> None:
    async def go() -> None:
        for k in keys:
            async def render(k: TileKey = k) -> Rendered:
                return Rendered(repr(k).encode())
            await cache.get_or_render(k, render)

    asyncio.run(go())


def one(db: str, query: str, *params: Any) -> Any:
    with psycopg.connect(db) as conn:
        return conn.execute(query, params).fetchone()


@pytest.fixture
def cache(tmp_path: Path) -> TileCache:
    return TileCache(budget_bytes=16 << 20, disk_dir=tmp_path / "tiles", layersets=LAYERSETS)


@pytest.fixture
def listener(cache: TileCache, tiny_city_db: str) -> Iterator[Listener]:
    stop = start_listener(cache, conninfo=tiny_city_db)
    yield stop
    stop()


# -- the triggers -------------------------------------------------------------------


def test_triggers_send_the_box_of_old_and_new_geometries(tiny_city_db: str) -> None:
    lamp, x, y = one(tiny_city_db, "SELECT id, ST_X(geom), ST_Y(geom) FROM onemap.lamp "
                                   "ORDER BY id LIMIT 1")
    with psycopg.connect(tiny_city_db, autocommit=True) as listen, \
            psycopg.connect(tiny_city_db, autocommit=True) as conn:
        listen.execute("LISTEN onemap_tiles")
        (before,) = conn.execute("SELECT version FROM onemap.tile_version "
                                 "WHERE table_name = 'lamp'").fetchone()  # type: ignore[misc]
        conn.execute("UPDATE onemap.lamp SET geom = ST_Translate(geom, 0.002, 0.001) "
                     "WHERE id = %s", (lamp,))
        with conn.transaction(force_rollback=True):  # rolled back: no message
            conn.execute("UPDATE onemap.lamp SET status = 'fault' WHERE id = %s", (lamp,))
        conn.execute("UPDATE onemap.lamp SET status = 'fault' WHERE false")  # no row: silent
        conn.execute("UPDATE onemap.resident SET phone = '13800000000' "
                     "WHERE id = (SELECT min(id) FROM onemap.resident)")
        messages = [json.loads(n.payload) for n in listen.notifies(timeout=1.0)]
    # moving the lamp also rewrites its road's lit/unlit segments (168_road_lighting.sql):
    # their DELETE and their INSERT
    lighting = [m for m in messages if m["table"] == "road_lighting_segment"]
    messages = [m for m in messages if m["table"] != "road_lighting_segment"]
    assert len(lighting) == 2
    assert [m["table"] for m in messages] == ["lamp", "resident"]
    moved = messages[0]
    assert moved["version"] == before + 1
    assert moved["bbox"] == pytest.approx([x, y, x + 0.002, y + 0.001])
    hx, hy, bx0, by0, bx1, by1 = one(tiny_city_db, """
        SELECT ST_X(h.geom), ST_Y(h.geom), ST_XMin(b.geom), ST_YMin(b.geom),
               ST_XMax(b.geom), ST_YMax(b.geom)
        FROM onemap.resident r JOIN onemap.household h ON h.id = r.household_id
        JOIN onemap.building b ON b.id = h.building_id
        WHERE r.id = (SELECT min(id) FROM onemap.resident)""")
    x0, y0, x1, y1 = messages[1]["bbox"]
    # the resident is drawn at its household's point and counted at its building
    assert x0 <= hx <= x1 and y0 <= hy <= y1
    assert (x0, y0, x1, y1) == pytest.approx((bx0, by0, bx1, by1))


def test_writes_through_the_serving_role_bump_the_version(tiny_city_db: str) -> None:
    """Requests run as onemap_api, which has no grant on tile_version."""
    from spatial.access import ANONYMOUS, request_connection

    before = one(tiny_city_db, "SELECT count(*) FROM onemap.tile_version")[0]
    with request_connection(ANONYMOUS, conninfo=tiny_city_db) as conn:
        # anonymous may not update lamps: row-level security leaves zero rows
        conn.execute("UPDATE onemap.lamp SET status = 'fault'")
    assert one(tiny_city_db, "SELECT count(*) FROM onemap.tile_version")[0] == before


def test_every_layer_table_has_the_triggers(tiny_city_db: str) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        tables = table_layersets(conn, {v: [v] for (v,) in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'layers'")})
        missing = [t for (t,) in conn.execute("""
            SELECT t FROM unnest(%s::text[]) AS t
            WHERE (SELECT count(*) FROM pg_trigger
                   WHERE tgrelid = format('onemap.%%I', t)::regclass
                     AND tgname IN ('tile_insert', 'tile_update', 'tile_delete')) <> 3""",
            (sorted(tables),))]
    assert "resident" in tables and "household" in tables
    assert missing == []


# -- the listener ---------------------------------------------------------------------


def test_owner_update_drops_exactly_the_touched_tiles(
        cache: TileCache, listener: Listener, tiny_city_db: str) -> None:
    """An UPDATE as `onemap import` makes it (the owner, outside the API)."""
    lamp, x, y = one(tiny_city_db, "SELECT id, ST_X(geom), ST_Y(geom) FROM onemap.lamp "
                                   "ORDER BY id LIMIT 1")
    old, new = (x, y), (x + 0.003, y + 0.002)
    touched = [key_at(p, z, s) for p in (old, new) for z in range(10, 20)
               for s in ("lamp", "lighting")]
    spared = ([key_at(old, z, s) for z in (12, 16, 19) for s in ("base", "alleys", "resident")]
              + [key_at(FAR, z, s) for z in (14, 17, 19) for s in ("lamp", "lighting")])
    fill(cache, touched + spared)
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.lamp SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4490) "
                     "WHERE id = %s", (*new, lamp))
    assert listener.sync()
    assert [k for k in touched if k in cache] == []
    assert [k for k in spared if k not in cache] == []


def test_household_move_refreshes_resident_tiles_and_counts(
        cache: TileCache, listener: Listener, tiny_city_db: str) -> None:
    hid, x, y = one(tiny_city_db, "SELECT id, ST_X(geom), ST_Y(geom) FROM onemap.household "
                                  "ORDER BY id LIMIT 1")
    keys = {s: [key_at((x, y), z, s) for z in (11, 15, 18)]
            for s in ("resident", "household", "grid_management", "base", "lamp")}
    fill(cache, [k for ks in keys.values() for k in ks])
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.household SET geom = ST_Translate(geom, 0.0001, 0) "
                     "WHERE id = %s", (hid,))
    assert listener.sync()
    for s in ("resident", "household", "grid_management"):  # the resident view reads households
        assert [k for k in keys[s] if k in cache] == [], s
    for s in ("base", "lamp"):
        assert all(k in cache for k in keys[s]), s


def test_api_write_drops_the_tiles(cache: TileCache, listener: Listener, tiny_city_db: str,
                                   make_client: Any, tiny_city_ids: dict[str, int]) -> None:
    """A Part 4 PUT (as a community worker, under row-level security) moves a lamp."""
    staff = make_client(["community_staff"], [("community", tiny_city_ids["community"])])
    lamp, x, y = one(tiny_city_db, "SELECT id, ST_X(geom), ST_Y(geom) FROM onemap.lamp "
                                   "ORDER BY id LIMIT 1")
    new = (x + 0.0005, y + 0.0004)
    touched = [key_at(p, z, "lighting") for p in ((x, y), new) for z in (13, 17, 19)]
    spared = [key_at(FAR, 17, "lighting"), key_at((x, y), 17, "base")]
    fill(cache, touched + spared)
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(new)},
            "properties": {"status": "fault"}}
    r = staff.put(f"/collections/lamp/items/{lamp}", content=json.dumps(body).encode(),
                  headers={"Content-Type": "application/geo+json"})
    assert r.status_code == 204, r.text
    assert listener.sync()
    assert [k for k in touched if k in cache] == []
    assert all(k in cache for k in spared)


def test_changes_while_nobody_listened_drop_the_disk_cache(tmp_path: Path,
                                                           tiny_city_db: str) -> None:
    disk = tmp_path / "tiles"
    base = [key_at((116.465, 39.921), z, "base") for z in (12, 15)]

    def new_cache() -> TileCache:
        return TileCache(budget_bytes=1 << 20, disk_dir=disk, layersets=LAYERSETS)

    first = new_cache()
    stop = start_listener(first, conninfo=tiny_city_db)
    fill(first, base)
    stop()
    assert len(list(disk.rglob("*.tile"))) == 2

    # a lamp changes while the server is down: the base map does not draw lamps
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.lamp SET status = 'fault'")
    second = new_cache()
    start_listener(second, conninfo=tiny_city_db)()
    assert len(list(disk.rglob("*.tile"))) == 2

    # a building changes while the server is down (an import): base tiles are dropped
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.building SET floors = floors + 1")
    third = new_cache()
    stop = start_listener(third, conninfo=tiny_city_db)
    try:
        assert list(disk.rglob("*.tile")) == []
    finally:
        stop()


def test_a_listener_reconnects(cache: TileCache, listener: Listener, tiny_city_db: str) -> None:
    """Its connection killed, the listener comes back and catches up."""
    key = key_at((116.456, 39.9175), 16, "lamp")
    fill(cache, [key])
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'onemap-tiles' AND datname = current_database()"
        ).fetchall()
        assert len(killed) == 1
        conn.execute("UPDATE onemap.lamp SET status = 'fault'")  # maybe while it is away
    assert listener.sync(timeout=30)
    assert key not in cache
    fill(cache, [key])  # and it handles new messages
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.lamp SET status = 'working'")
    assert listener.sync()
    assert key not in cache


# -- through the real application ------------------------------------------------------


def _service(app: Any) -> Any:
    from tiles.web import TileService

    for route in app.routes:
        owner = getattr(getattr(route, "endpoint", None), "__self__", None)
        if isinstance(owner, TileService):
            return owner
    raise AssertionError("no tile routes in the app")


def _decode(r: Any) -> dict[str, Any]:
    import mapbox_vector_tile

    assert r.status_code == 200, r.text
    return mapbox_vector_tile.decode(r.content)


def test_edit_then_the_next_tile_shows_it(make_client: Any, tiny_city_db: str,
                                          tiny_city_ids: dict[str, int]) -> None:
    """Part 4 PUT moving a lamp and an owner UPDATE of a building (as `onemap import`
    does): the next tile shows each change; unrelated cached tiles stay cached."""
    staff = make_client(["community_staff"], [("community", tiny_city_ids["community"])])
    service = _service(staff.app)
    helper = start_listener(service.cache, conninfo=tiny_city_db)  # for sync()
    try:
        lamps = {code: (x, y) for code, x, y in psycopg.connect(tiny_city_db).execute(
            "SELECT code, ST_X(geom), ST_Y(geom) FROM onemap.lamp ORDER BY id").fetchall()}
        moved_code, other_code = "L-001", "L-029"
        z = 18
        ty, tx = lonlat_to_tile(WEB, *lamps[moved_code], z)
        oy, ox = lonlat_to_tile(WEB, *lamps[other_code], z)
        assert (ty, tx) != (oy, ox)
        url = f"/collections/lamp/tiles/{WEB}/{z}/{ty}/{tx}"
        other_url = f"/collections/lamp/tiles/{WEB}/{z}/{oy}/{ox}"
        first = staff.get(url)
        codes = {f["properties"]["code"] for f in _decode(first)["lamp"]["features"]}
        assert moved_code in codes
        other = staff.get(other_url)
        assert other.status_code == 200
        renders = service.cache.stats.renders

        lamp = psycopg.connect(tiny_city_db).execute(
            "SELECT id FROM onemap.lamp WHERE code = %s", (moved_code,)).fetchone()[0]
        far = (lamps[moved_code][0] + 0.01, lamps[moved_code][1])  # into another tile
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(far)},
                "properties": {"status": "fault"}}
        r = staff.put(f"/collections/lamp/items/{lamp}", content=json.dumps(body).encode(),
                      headers={"Content-Type": "application/geo+json"})
        assert r.status_code == 204, r.text
        assert helper.sync()

        after = staff.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert after.status_code == 200  # not 304: the tile changed
        assert after.headers["ETag"] != first.headers["ETag"]
        codes = {f["properties"]["code"]
                 for f in _decode(after).get("lamp", {"features": []})["features"]}
        assert moved_code not in codes
        fy, fx = lonlat_to_tile(WEB, *far, z)
        there = _decode(staff.get(f"/collections/lamp/tiles/{WEB}/{z}/{fy}/{fx}"))
        moved = [f for f in there["lamp"]["features"] if f["properties"]["code"] == moved_code]
        assert moved and moved[0]["properties"]["status"] == "fault"
        # the unrelated tile was not rendered again, and still answers 304
        before_other = service.cache.stats.renders
        again = staff.get(other_url, headers={"If-None-Match": other.headers["ETag"]})
        assert again.status_code == 304
        assert service.cache.stats.renders == before_other
        assert before_other == renders + 2  # only the old and the new place

        # an owner UPDATE (what `onemap import` runs): a building gets two more floors
        code, bx, by = psycopg.connect(tiny_city_db).execute(
            "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM onemap.building ORDER BY id LIMIT 1").fetchone()
        zb = 17
        by_, bx_ = lonlat_to_tile(WEB, bx, by, zb)
        burl = f"/collections/building/tiles/{WEB}/{zb}/{by_}/{bx_}"

        def floors() -> int:
            feats = _decode(staff.get(burl))["building"]["features"]
            return next(f["properties"]["floors"] for f in feats
                        if f["properties"]["code"] == code)

        was = floors()
        with psycopg.connect(tiny_city_db, autocommit=True) as conn:
            conn.execute("UPDATE onemap.building SET floors = floors + 2 WHERE code = %s",
                         (code,))
        assert helper.sync()
        assert floors() == was + 2
        assert staff.get(other_url, headers={"If-None-Match": other.headers["ETag"]}
                         ).status_code == 304
    finally:
        helper()
