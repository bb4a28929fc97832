"""Rendering decoded: layers, counts, properties, aggregates by zoom, caps, time filter."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest

from spatial import users
from spatial.access import Principal
from tiles import render as rendering
from tiles import tms
from tiles.spec import LayerSet, TileSpec, bind_catalog, load_spec

ROOT = Path(__file__).resolve().parents[2]
# The z13 tile holding the whole tiny community (116.46–116.48, 39.915–39.93).
Z13 = (13, 3103, 6746)


@pytest.fixture
def spec(tiny_city_db: str) -> TileSpec:
    base = load_spec(ROOT / "layers/tiles.yml", ROOT / "layers/themes.yml",
                     ROOT / "pygeoapi-config.yml")
    with psycopg.connect(tiny_city_db) as conn:
        return bind_catalog(base, conn)


@pytest.fixture
def admin(tiny_city_db: str) -> Principal:
    with psycopg.connect(tiny_city_db) as conn, conn.transaction():
        district = conn.execute("SELECT min(id) FROM onemap.district").fetchone()[0]  # type: ignore[index]
        uid = users.create_user(conn, "tile_admin", None, roles=["district_admin"],
                                scopes=[("district", district)])
    return Principal(uid.id, "tile_admin", frozenset({"district_admin"}))


def render(db: str, layerset: LayerSet, principal: Principal, z: int, y: int, x: int,
           tms_id: str = "WebMercatorQuad", when: str | None = None
           ) -> tuple[dict[str, Any], rendering.RenderedTile]:
    async def go() -> rendering.RenderedTile:
        pool = rendering.make_pool(db, 2)
        await pool.open()
        try:
            async with rendering.tile_connection(pool, principal) as conn:
                return await rendering.render(conn, layerset, tms_id, z, x, y,
                                              rendering.parse_datetime(when), principal)
        finally:
            await pool.close()

    tile = asyncio.run(go())
    return (mapbox_vector_tile.decode(tile.data) if tile.data else {}), tile


def test_theme_tile_carries_its_layers(tiny_city_db: str, spec: TileSpec,
                                       admin: Principal) -> None:
    layers, tile = render(tiny_city_db, spec.theme("grid_management"), admin, *Z13)
    assert set(layers) == {"grid", "compound", "building", "household", "resident", "key_unit",
                           "event"}
    assert len(layers["grid"]["features"]) == 2
    assert {f["properties"]["name"] for f in layers["grid"]["features"]} == {"第一网格", "第二网格"}
    assert tile.truncated == ()


def test_low_zoom_aggregates(tiny_city_db: str, spec: TileSpec, admin: Principal) -> None:
    layers, _ = render(tiny_city_db, spec.theme("grid_management"), admin, *Z13)
    # households → one point per building (8 buildings × 2 units × 3 floors × 2 rooms)
    households = layers["household"]["features"]
    assert len(households) == 8
    assert {f["properties"]["count"] for f in households} == {12}
    assert {"building_id", "count"} == set(households[0]["properties"])
    # buildings → one point per compound with the number of buildings
    buildings = layers["building"]["features"]
    assert sorted(f["properties"]["count"] for f in buildings) == [4, 4]
    assert buildings[0]["geometry"]["type"] == "Point"
    # lamps → density cells whose counts add up to every lamp
    lamps, _ = render(tiny_city_db, spec.collection("lamp"), admin, *Z13)
    assert sum(f["properties"]["count"] for f in lamps["lamp"]["features"]) == 29


def test_features_at_high_zoom(tiny_city_db: str, spec: TileSpec, admin: Principal) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM onemap.household ORDER BY id LIMIT 1").fetchone()  # type: ignore[misc]
    y, x = tms.lonlat_to_tile("WebMercatorQuad", lon, lat, 18)
    layers, _ = render(tiny_city_db, spec.theme("grid_management"), admin, 18, y, x)
    households = layers["household"]["features"]
    assert len(households) == 12  # the building's households, as points
    assert set(households[0]["properties"]) == {"building_id", "unit_id", "room_no", "floor",
                                                "occupancy"}
    assert all(isinstance(f["id"], int) for f in households)
    buildings = layers["building"]["features"]
    assert buildings[0]["geometry"]["type"] == "Polygon"
    assert buildings[0]["properties"]["floors"] in (6, 24)


def test_other_matrix_sets_carry_the_same_features(tiny_city_db: str, spec: TileSpec,
                                                   admin: Principal) -> None:
    web, _ = render(tiny_city_db, spec.collection("grid"), admin, *Z13)
    y, x = tms.lonlat_to_tile("CGCS2000Quad", 116.47, 39.922, 13)
    cgcs, _ = render(tiny_city_db, spec.collection("grid"), admin, 13, y, x, "CGCS2000Quad")
    y, x = tms.lonlat_to_tile("WorldCRS84Quad", 116.47, 39.922, 12)
    crs84, _ = render(tiny_city_db, spec.collection("grid"), admin, 12, y, x, "WorldCRS84Quad")
    names = [{f["properties"]["name"] for f in t["grid"]["features"]} for t in (web, cgcs, crs84)]
    assert names[0] == names[1] == names[2] == {"第一网格", "第二网格"}


def test_cap_is_stated(tiny_city_db: str, spec: TileSpec, admin: Principal) -> None:
    lamp = dataclasses.replace(spec.layers["lamp"], max_features=5)
    capped = LayerSet("lamp_capped", "theme", {"en": "capped"}, (lamp,))
    layers, tile = render(tiny_city_db, capped, admin, 16, *tms.lonlat_to_tile(
        "WebMercatorQuad", 116.47, 39.9175, 16))
    assert tile.truncated == ("lamp",)
    assert len(layers["lamp"]["features"]) == 5
    assert "at most 5 features per tile" in lamp.cap_rule


def test_datetime_filter(tiny_city_db: str, spec: TileSpec, admin: Principal) -> None:
    y, x = tms.lonlat_to_tile("WebMercatorQuad", 116.465, 39.922, 15)
    layers, _ = render(tiny_city_db, spec.collection("event"), admin, 15, y, x)
    assert len(layers["event"]["features"]) == 1
    layers, _ = render(tiny_city_db, spec.collection("event"), admin, 15, y, x,
                       when="2001-01-01T00:00:00Z/2001-12-31T00:00:00Z")
    assert layers == {}
    layers, _ = render(tiny_city_db, spec.collection("event"), admin, 15, y, x,
                       when="2001-01-01T00:00:00Z/..")
    assert len(layers["event"]["features"]) == 1


def test_one_statement_per_tile_uses_the_mercator_index(tiny_city_db: str,
                                                        spec: TileSpec) -> None:
    plan = rendering.plan(spec.theme("base"), "WebMercatorQuad", 16, False)
    params = rendering.tile_params("WebMercatorQuad", 16, *tms.lonlat_to_tile(
        "WebMercatorQuad", 116.47, 39.92, 16), None)
    with psycopg.connect(tiny_city_db) as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables: ask whether the index can serve
        text = plan.query.as_string(conn)
        lines = [r[0] for r in conn.execute("EXPLAIN " + text, params).fetchall()]
    assert text.count("ST_AsMVT(") == len(plan.layers)
    assert any("building_geom_3857_idx" in line for line in lines), "\n".join(lines)
