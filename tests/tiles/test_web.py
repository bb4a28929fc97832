"""OGC API Tiles over HTTP: metadata, tiles, gzip, 304, errors and scope in tiles."""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
import psycopg
import pytest

from tiles import tms

Z13 = "13/3103/6746"  # the whole tiny community
MVT = "application/vnd.mapbox-vector-tile"


def decode(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    return mapbox_vector_tile.decode(response.content) if response.content else {}


def building_tile(db: str, grid_code: str, z: int = 18) -> str:
    with psycopg.connect(db) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(h.geom), ST_Y(h.geom) FROM onemap.household h "
            "JOIN onemap.building b ON b.id = h.building_id JOIN onemap.grid g ON g.id = b.grid_id "
            "WHERE g.code = %s ORDER BY h.id LIMIT 1", (grid_code,)).fetchone()  # type: ignore[misc]
    y, x = tms.lonlat_to_tile("WebMercatorQuad", lon, lat, z)
    return f"{z}/{y}/{x}"


def test_metadata_routes(client: Any) -> None:
    sets = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"]
    assert client.get("/tileMatrixSets/CGCS2000Quad").json()["tileMatrices"][0]["id"] == "1"
    themes = client.get("/tiles").json()["themes"]
    assert "grid_management" in {t["id"] for t in themes}
    assert len(client.get("/collections/lamp/tiles").json()["tilesets"]) == 3
    tileset = client.get("/collections/lamp/tiles/WebMercatorQuad").json()
    assert tileset["layers"][0]["id"] == "lamp"
    assert "at most 20000 features per tile" in tileset["layers"][0]["onemap:featureLimit"]
    assert [lvl["kind"] for lvl in tileset["layers"][0]["onemap:levels"]] == ["grid", "features"]
    assert any(link["rel"] == "item" for link in tileset["links"])
    tj = client.get("/tiles/lighting/WebMercatorQuad/tilejson.json").json()
    assert tj["tiles"][0].endswith("/tiles/lighting/WebMercatorQuad/{z}/{y}/{x}")
    # the base map's layers and the theme's: one source draws both
    assert [v["id"] for v in tj["vector_layers"]] == [
        "land_use", "district", "street_office", "community", "grid", "road", "building",
        "road_lighting_segment", "lamp"]  # (distribution boxes are internal)


def test_metadata_types_properties_as_tiles_carry_them(staff_client: Any) -> None:
    gps = staff_client.get("/collections/truck_gps/tiles/WebMercatorQuad").json()["layers"][0]
    assert gps["propertiesSchema"]["properties"] == {
        "count": {"type": "integer"}, "truck_id": {"type": "integer"},
        "ts": {"type": "string", "format": "date-time"}, "speed_kmh": {"type": "number"},
        "heading": {"type": "number"}, "ignition": {"type": "boolean"}}
    tj = staff_client.get("/collections/event/tiles/WebMercatorQuad/tilejson.json").json()
    fields = tj["vector_layers"][0]["fields"]
    assert fields["status"] == "string" and fields["count"] == "integer"
    # events at city scale: density cells per status (layers/tiles.yml by: status)
    event = staff_client.get("/collections/event/tiles/WebMercatorQuad").json()["layers"][0]
    assert event["onemap:levels"][0] == {"zoom": [10, 11], "kind": "grid",
                                         "properties": ["status", "count"]}


def test_tile_gzip_etag_and_304(client: Any) -> None:
    r = client.get(f"/tiles/base/WebMercatorQuad/{Z13}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age=" in r.headers["cache-control"]
    assert {"community", "grid", "road", "building", "district"} <= set(decode(r))
    etag = r.headers["etag"]
    plain = client.get(f"/tiles/base/WebMercatorQuad/{Z13}",
                       headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["etag"] == etag
    assert decode(plain) == decode(r)  # httpx has unzipped r
    again = client.get(f"/tiles/base/WebMercatorQuad/{Z13}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert not again.content


@pytest.mark.parametrize(("path", "status"), [
    ("/tiles/base/WebMercatorQuad/13/x/1", 400),
    ("/tiles/base/WebMercatorQuad/3/8/1", 400),
    ("/tiles/base/WebMercatorQuad/30/0/0", 400),
    ("/tiles/base/CGCS2000Quad/0/0/0", 400),
    (f"/tiles/base/WebMercatorQuad/{Z13}?datetime=yesterday", 400),
    (f"/tiles/base/WebMercatorQuad/{Z13}?bbox=1,2,3,4", 400),
    ("/tiles/base/GoogleMapsCompatible/1/0/0", 404),
    ("/tiles/nothing/WebMercatorQuad/1/0/0", 404),
    ("/tiles/nothing", 404),
    ("/collections/nothing/tiles/WebMercatorQuad/1/0/0", 404),
    ("/collections/lamp/tiles/Nope", 404),
    ("/tileMatrixSets/Nope", 404),
    ("/collections/unit/tiles/WebMercatorQuad/5/10/20", 404),  # unit starts at z16
])
def test_errors(client: Any, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["description"]


def test_anonymous_gets_public_layers_of_a_theme(make_client: Any) -> None:
    anonymous = make_client([])
    layers = decode(anonymous.get(f"/tiles/grid_management/WebMercatorQuad/{Z13}"))
    assert {"grid", "compound", "building", "key_unit"} <= set(layers)
    assert not {"household", "resident", "event"} & set(layers)
    meta = anonymous.get("/tiles/grid_management/WebMercatorQuad").json()
    assert "household" not in {lyr["id"] for lyr in meta["layers"]}
    assert anonymous.get(f"/collections/household/tiles/WebMercatorQuad/{Z13}").status_code == 401
    external = make_client(["external_system"])
    assert external.get(f"/collections/household/tiles/WebMercatorQuad/{Z13}").status_code == 403


def test_grid_worker_sees_households_of_their_grid_only(make_client: Any, tiny_city_db: str,
                                                        tiny_city_ids: dict[str, int]) -> None:
    worker = make_client(["grid_worker"], [("grid", tiny_city_ids["grid1"])])
    admin = make_client(["district_admin"], [("district", tiny_city_ids["district"])])
    mine = decode(worker.get(f"/collections/household/tiles/WebMercatorQuad/{Z13}"))
    everyone = decode(admin.get(f"/collections/household/tiles/WebMercatorQuad/{Z13}"))
    assert len(everyone["household"]["features"]) == 8
    assert len(mine["household"]["features"]) == 4  # the buildings of grid 1
    other = building_tile(tiny_city_db, "110105001001-02")
    assert decode(worker.get(f"/tiles/grid_management/WebMercatorQuad/{other}")).get(
        "household") is None
    own = building_tile(tiny_city_db, "110105001001-01")
    residents = decode(worker.get(f"/tiles/grid_management/WebMercatorQuad/{own}"))["resident"]
    assert any(f["properties"].get("name", "").startswith("演示居民")
               for f in residents["features"])
    r = worker.get(f"/collections/household/tiles/WebMercatorQuad/{Z13}")
    assert r.headers["cache-control"].startswith("private")


def test_analyst_gets_masked_names(make_client: Any, tiny_city_db: str) -> None:
    analyst = make_client(["analyst"])
    own = building_tile(tiny_city_db, "110105001001-01")
    residents = decode(analyst.get(f"/collections/resident/tiles/WebMercatorQuad/{own}"))
    names = [f["properties"]["name"] for f in residents["resident"]["features"]]
    assert names and all("*" in n and not n.startswith("演示居民") for n in names)


def test_datetime_on_time_stamped_layers(staff_client: Any) -> None:
    y, x = tms.lonlat_to_tile("WebMercatorQuad", 116.465, 39.922, 15)
    path = f"/collections/event/tiles/WebMercatorQuad/15/{y}/{x}"
    assert len(decode(staff_client.get(path))["event"]["features"]) == 1
    old = staff_client.get(path + "?datetime=2001-01-01T00:00:00Z/2001-02-01T00:00:00Z")
    assert decode(old) == {}
    gps = staff_client.get("/collections/truck_gps/tiles/WebMercatorQuad/15/"
                           f"{y}/{x}?datetime=2026-10-28T00:00:00Z/..")
    assert gps.status_code == 200
