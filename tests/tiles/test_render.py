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
    # the base map's layers first (layers/themes.yml include: [base]), then the theme's
    # own, each once: a themed style draws both from this one tile
    assert tile.layers == ("land_use", "district", "street_office", "community", "grid", "road",
                           "building", "compound", "household", "resident", "key_unit", "event")
    # (the tiny city has no land use)
    assert set(layers) == {"district", "street_office", "community", "grid", "road", "building",
                           "compound", "household", "resident", "key_unit", "event"}
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


@pytest.mark.parametrize("z", [10, 11])
def test_grid_cells_split_by_status(tiny_city_db: str, spec: TileSpec, admin: Principal,
                                    z: int) -> None:
    """Event density at city scale, one cell per status (``by: status``): the counts of
    each status add up to the events of that status in the tile, so a style can draw
    the open ones' density and leave the closed ones to the history."""
    with psycopg.connect(tiny_city_db) as conn:
        conn.execute("""
            INSERT INTO onemap.event (source, category, description, geom, status,
                                      community_id, grid_id)
            SELECT 'grid_worker', 'city_appearance', 'test ' || i,
                   ST_Point(116.4605 + (i % 7) * 0.0028, 39.9155 + (i / 7) * 0.0035, 4490),
                   (ARRAY['reported', 'assigned', 'handled', 'closed', 'evaluated'])[1 + i % 5],
                   g.community_id, g.id
            FROM onemap.grid g, generate_series(0, 33) AS i
            WHERE g.code = '110105001001-01'""")
        y, x = tms.lonlat_to_tile("WebMercatorQuad", 116.47, 39.922, z)
        b = tms.tile_bounds("WebMercatorQuad", z, y, x)
        expected = dict(conn.execute("""
            SELECT status, count(*)::int FROM onemap.event
            WHERE ST_Transform(geom, 3857) && ST_MakeEnvelope(%s, %s, %s, %s, 3857)
            GROUP BY status""", (b.minx, b.miny, b.maxx, b.maxy)).fetchall())
    assert sum(expected.values()) == 35 and len(expected) == 5  # 34 and the tiny city's
    layers, _ = render(tiny_city_db, spec.collection("event"), admin, z, y, x)
    cells = layers["event"]["features"]
    assert {frozenset(f["properties"]) for f in cells} == {frozenset({"count", "status"})}
    counted: dict[str, int] = {}
    for f in cells:
        counted[f["properties"]["status"]] = (counted.get(f["properties"]["status"], 0)
                                              + f["properties"]["count"])
    assert counted == expected
    # one point per (cell, status): no status twice at a cell's centre
    places = [(tuple(f["geometry"]["coordinates"]), f["properties"]["status"]) for f in cells]
    assert len(places) == len(set(places))
    # the themed tile carries the same cells
    themed, _ = render(tiny_city_db, spec.theme("grid_management"), admin, z, y, x)
    assert sorted(map(str, themed["event"]["features"])) == sorted(map(str, cells))


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
