"""Tile matrix arithmetic of the three served sets, the Tianditu offset included."""

from __future__ import annotations

import math

import pytest

from spatial.errors import InvalidInputError, NotFoundError
from tiles import tms


def tianditu_c_tile(lon: float, lat: float, level: int) -> tuple[int, int]:
    """Tianditu's c grid by its own definition: level 1 = 2×1 tiles of 256 px,
    0.703125°/px at level 1, origin (-180, 90); (row, col)."""
    size = 180.0 / 2 ** (level - 1)  # degrees per tile
    return math.floor((90 - lat) / size), math.floor((lon + 180) / size)


def test_cgcs2000_level1_is_two_by_one_tiles_of_0_703125_degrees_per_pixel() -> None:
    matrix = tms.get_tms("CGCS2000Quad").matrix(1)
    assert (matrix.matrixWidth, matrix.matrixHeight) == (2, 1)
    assert matrix.cellSize == pytest.approx(0.703125)
    assert tms.tile_bounds("CGCS2000Quad", 1, 0, 0) == tms.TileBounds(-180, -90, 0, 90, 4490)
    assert tms.level_range("CGCS2000Quad")[0] == 1


@pytest.mark.parametrize("level", [1, 2, 5, 10, 14, 18, 20])
def test_tianditu_level_is_worldcrs84quad_level_minus_one(level: int) -> None:
    for lon, lat in [(116.47, 39.92), (-73.98, 40.75), (151.2, -33.86), (0.5, 0.5)]:
        row, col = tms.lonlat_to_tile("CGCS2000Quad", lon, lat, level)
        assert (row, col) == tianditu_c_tile(lon, lat, level)
        assert (row, col) == tms.lonlat_to_tile("WorldCRS84Quad", lon, lat, level - 1)
        assert tms.tile_bounds("CGCS2000Quad", level, row, col) == \
            tms.tile_bounds("WorldCRS84Quad", level - 1, row, col)


def test_known_beijing_tiles() -> None:
    assert tms.lonlat_to_tile("WebMercatorQuad", 116.47, 39.92, 14) == (6207, 13492)
    assert tms.lonlat_to_tile("CGCS2000Quad", 116.47, 39.92, 14) == (2279, 13492)
    b = tms.tile_bounds("CGCS2000Quad", 14, 2279, 13492)
    assert b.minx <= 116.47 < b.maxx and b.miny <= 39.92 < b.maxy
    assert b.width == pytest.approx(360 / 2**14)


def test_web_zoom_matches_ground_resolution() -> None:
    for z in range(0, 21):
        assert tms.web_zoom("WebMercatorQuad", z) == z
        assert tms.web_zoom("WorldCRS84Quad", z) == z + 1
        assert tms.web_zoom("CGCS2000Quad", z + 1) == z + 1


def test_webmercator_bounds_are_the_postgis_tile_envelope(conn) -> None:  # type: ignore[no-untyped-def]
    b = tms.tile_bounds("WebMercatorQuad", 14, 6207, 13492)
    row = conn.execute("SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 "
                       "FROM ST_TileEnvelope(14, 13492, 6207) e").fetchone()
    assert (b.minx, b.miny, b.maxx, b.maxy) == pytest.approx(
        (row["x0"], row["y0"], row["x1"], row["y1"]), abs=1e-6)
    assert b.srid == 3857


@pytest.mark.parametrize(("tms_id", "z", "y", "x"), [
    ("WebMercatorQuad", "-1", "0", "0"),
    ("WebMercatorQuad", "23", "0", "0"),
    ("WebMercatorQuad", "2", "4", "0"),
    ("WebMercatorQuad", "2", "0", "4"),
    ("WebMercatorQuad", "2", "0", "-1"),
    ("WorldCRS84Quad", "0", "1", "0"),
    ("WorldCRS84Quad", "0", "0", "2"),
    ("CGCS2000Quad", "0", "0", "0"),  # Tianditu has no level 0
    ("CGCS2000Quad", "1", "1", "0"),
    ("WebMercatorQuad", "1.5", "0", "0"),
    ("WebMercatorQuad", "z", "0", "0"),
])
def test_bad_coordinates(tms_id: str, z: str, y: str, x: str) -> None:
    with pytest.raises(InvalidInputError):
        tms.parse_tile(tms_id, z, y, x)


def test_unknown_matrix_set() -> None:
    with pytest.raises(NotFoundError):
        tms.get_tms("GoogleCRS84Quad")


def test_matrix_set_documents() -> None:
    doc = tms.tms_document("CGCS2000Quad")
    assert doc["crs"].endswith("/EPSG/0/4490")
    assert doc["tileMatrices"][0]["id"] == "1"
    assert doc["tileMatrices"][0]["matrixWidth"] == 2
    assert tms.tms_document("WebMercatorQuad")["tileMatrices"][0]["id"] == "0"
