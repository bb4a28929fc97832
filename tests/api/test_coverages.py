"""Coverages: the population and terrain rasters through OGC API - Coverages.

The rasters are written for each test into a temporary directory
(``ONEMAP_RASTER_DIR``) by the generator's own COG writer, with known values:
cell (row, col) holds ``row * 1000 + col``, so any subset can be checked cell
by cell against the source.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.windows import Window

from democity.rasters import DEM_CELL_DEG, raster_dir, write_cog
from server.coverage import RASTER_DIR_ENV, raster_path

#: The demo city's extent (pygeoapi-config.yml) and a population cell of ~100 m.
WEST, SOUTH, EAST, NORTH = 116.41, 39.89, 116.49, 39.95
POP_CELL = (0.00117, 0.0009)


def known_values(height: int, width: int) -> np.ndarray:
    return (np.arange(height)[:, None] * 1000 + np.arange(width)[None, :]).astype("float32")


def write_test_rasters(directory: Path) -> dict[str, Path]:
    """Population (~100 m cells) and terrain (1″ cells) over the demo extent, known values."""
    out = {}
    for name, file, (dx, dy), nodata in (
        ("population_density", "population_density.tif", POP_CELL, None),
        ("terrain", "dem.tif", (DEM_CELL_DEG, DEM_CELL_DEG), -9999.0),
    ):
        width = math.ceil((EAST - WEST) / dx)
        height = math.ceil((NORTH - SOUTH) / dy)
        write_cog(directory / file, known_values(height, width), from_origin(WEST, NORTH, dx, dy),
                  nodata=nodata, tags={"units": "test"})
        out[name] = directory / file
    return out


@contextmanager
def tiny_city_clone(server_conninfo: str, template_db: str) -> Iterator[str]:
    """A fresh clone holding the tiny city for a whole module of tests that only read
    (a clone per test costs about two seconds); dropped afterwards."""
    import psycopg

    from spatial.catalog import clear_cache
    from spatial.db import close_pools
    from tests.conftest import TINY_CITY, create_database, drop_database

    name = f"onemap_t_{uuid.uuid4().hex[:10]}"
    info = create_database(server_conninfo, name, template=template_db)
    try:
        with psycopg.connect(info, autocommit=True) as conn, conn.transaction():
            conn.execute(TINY_CITY.read_text(encoding="utf-8").encode("utf-8"))
        yield info
    finally:
        close_pools()
        clear_cache()
        drop_database(server_conninfo, name)


def tiny_city_app(server_conninfo: str, template_db: str) -> Iterator[Any]:
    """A client of the application over :func:`tiny_city_clone`."""
    from starlette.testclient import TestClient

    from server.app import create_app

    with tiny_city_clone(server_conninfo, template_db) as info, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", info)
        with TestClient(create_app()) as c:
            yield c


@pytest.fixture(scope="module")
def client(server_conninfo: str, template_db: str) -> Iterator[Any]:
    yield from tiny_city_app(server_conninfo, template_db)


@pytest.fixture
def rasters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path))
    return write_test_rasters(tmp_path)


def geotiff(r: Any) -> tuple[np.ndarray, Any]:
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/tiff"
    with MemoryFile(r.content) as mem, mem.open() as ds:
        return ds.read(1, masked=True), ds.profile | {"bounds": ds.bounds, "res": ds.res}


def check_against_source(data: np.ma.MaskedArray, profile: dict[str, Any], source: Path,
                         bbox: tuple[float, float, float, float]) -> None:
    """The answer covers the bbox with whole source cells, by less than two cells more on
    each side; the cells whose centre is inside the bbox carry the source's values, the
    others are masked."""
    b, (dx, dy) = profile["bounds"], profile["res"]
    assert b.left <= bbox[0] < b.left + 2 * dx and b.right - 2 * dx < bbox[2] <= b.right
    assert b.bottom <= bbox[1] < b.bottom + 2 * dy and b.top - 2 * dy < bbox[3] <= b.top
    with rasterio.open(source) as src:
        assert profile["res"] == pytest.approx(src.res)
        row0 = (src.bounds.top - b.top) / dy
        col0 = (b.left - src.bounds.left) / dx
        assert row0 == pytest.approx(round(row0)) and col0 == pytest.approx(round(col0))
        window = Window(round(col0), round(row0), data.shape[1], data.shape[0])
        expected = src.read(1, window=window)
    rows, cols = np.indices(data.shape)
    cx = b.left + (cols + 0.5) * dx
    cy = b.top - (rows + 0.5) * dy
    centre_inside = (cx > bbox[0]) & (cx < bbox[2]) & (cy > bbox[1]) & (cy < bbox[3])
    np.testing.assert_array_equal(~np.ma.getmaskarray(data), centre_inside)
    np.testing.assert_array_equal(data.data[centre_inside], expected[centre_inside])
    # the known values encode the source's row and column
    assert expected[0, 0] == round(row0) * 1000 + round(col0)


def test_raster_dir_rule_is_the_generators(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path))
    assert raster_path("dem.tif") == raster_dir() / "dem.tif"
    monkeypatch.delenv(RASTER_DIR_ENV)
    assert raster_path("dem.tif") == raster_dir() / "dem.tif"
    assert raster_path("/abs/dem.tif") == Path("/abs/dem.tif")


def test_both_coverages_are_collections(client: Any, rasters: dict[str, Path]) -> None:
    body = client.get("/collections", params={"f": "json"}).json()
    by_id = {c["id"]: c for c in body["collections"]}
    for cid in ("population_density", "terrain"):
        c = by_id[cid]
        assert c["extent"]["spatial"]["bbox"] == [[WEST, SOUTH, EAST, NORTH]]
        rels = {link["rel"] for link in c["links"]}
        assert "http://www.opengis.net/def/rel/ogc/1.0/coverage" in rels
    en = client.get("/collections/terrain", params={"f": "json", "lang": "en"}).json()
    zh = client.get("/collections/terrain", params={"f": "json", "lang": "zh-CN"}).json()
    assert en["title"] == "Terrain elevation" and zh["title"] == "地形高程"
    grid = en["extent"]["spatial"]["grid"]
    with rasterio.open(rasters["terrain"]) as src:
        assert [g["cellsCount"] for g in grid] == [src.width, src.height]
        assert grid[0]["resolution"] == pytest.approx(src.res[0])


@pytest.mark.parametrize("cid", ["population_density", "terrain"])
def test_bbox_subset_as_geotiff(client: Any, rasters: dict[str, Path], cid: str) -> None:
    bbox = (116.4312, 39.9107, 116.4588, 39.9291)
    data, profile = geotiff(client.get(f"/collections/{cid}/coverage", params={
        "f": "GTiff", "bbox": ",".join(map(str, bbox))}))
    assert profile["crs"].to_epsg() == 4490
    assert profile["count"] == 1 and profile["dtype"] == "float32"
    assert data.count() > 100
    check_against_source(data, profile, rasters[cid], bbox)


def test_subset_equals_bbox(client: Any, rasters: dict[str, Path]) -> None:
    by_bbox = client.get("/collections/terrain/coverage", params={
        "f": "GTiff", "bbox": "116.44,39.91,116.45,39.92"})
    by_subset = client.get("/collections/terrain/coverage", params={
        "f": "GTiff", "subset": "Lat(39.91:39.92),Long(116.44:116.45)"})
    a, pa = geotiff(by_bbox)
    b, pb = geotiff(by_subset)
    assert a.shape == b.shape and pa["transform"] == pb["transform"]
    np.testing.assert_array_equal(a.filled(-1), b.filled(-1))


def test_subset_on_one_axis_keeps_the_other_whole(client: Any, rasters: dict[str, Path]) -> None:
    data, profile = geotiff(client.get("/collections/terrain/coverage", params={
        "f": "GTiff", "subset": "Lat(39.92:39.93)"}))
    with rasterio.open(rasters["terrain"]) as src:
        assert data.shape[1] == src.width
        assert profile["bounds"].left == pytest.approx(src.bounds.left)
        assert profile["bounds"].right == pytest.approx(src.bounds.right)
    check_against_source(data, profile, rasters["terrain"], (WEST, 39.92, EAST, 39.93))


def test_bbox_in_web_mercator(client: Any, rasters: dict[str, Path]) -> None:
    from pyproj import Transformer

    t = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = t.transform(116.44, 39.91)
    x1, y1 = t.transform(116.45, 39.92)
    data, _ = geotiff(client.get("/collections/terrain/coverage", params={
        "f": "GTiff", "bbox": f"{x0},{y0},{x1},{y1}",
        "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}))
    expected, _ = geotiff(client.get("/collections/terrain/coverage", params={
        "f": "GTiff", "bbox": "116.44,39.91,116.45,39.92"}))
    assert data.shape == expected.shape


def test_coveragejson(client: Any, rasters: dict[str, Path]) -> None:
    bbox = (116.44, 39.91, 116.445, 39.915)
    tiff, profile = geotiff(client.get("/collections/population_density/coverage",
                                       params={"f": "GTiff", "bbox": ",".join(map(str, bbox))}))
    r = client.get("/collections/population_density/coverage",
                   params={"f": "json", "bbox": ",".join(map(str, bbox))})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/prs.coverage+json")
    cov = r.json()
    assert cov["type"] == "Coverage" and cov["domain"]["domainType"] == "Grid"
    axes = cov["domain"]["axes"]
    assert (axes["x"]["num"], axes["y"]["num"]) == (tiff.shape[1], tiff.shape[0])
    (rng,) = cov["ranges"].values()
    assert rng["shape"] == list(tiff.shape)
    got = np.ma.masked_invalid(
        np.array([np.nan if v is None else v for v in rng["values"]]).reshape(rng["shape"]))
    check_against_source(got, profile, rasters["population_density"], bbox)


def test_whole_coverage_native(client: Any, rasters: dict[str, Path]) -> None:
    r = client.get("/collections/population_density/coverage", params={"f": "GTiff"})
    data, profile = geotiff(r)
    with rasterio.open(rasters["population_density"]) as src:
        np.testing.assert_array_equal(data.filled(np.nan), src.read(1))
        assert profile["transform"] == src.transform


@pytest.mark.parametrize(("params", "says"), [
    ({"bbox": "100,30,101,31"}, "does not overlap"),
    ({"subset": "Lat(39.92)"}, "interval"),
    ({"subset": "Lat(north:south)"}, "numbers"),
    ({"subset": "Lat(39.93:39.92)"}, "low exceeds high"),
    ({"subset": "Height(1:2)"}, "axis"),
    ({"bbox": "116.44,39.91,116.45,39.92", "bbox-crs": "EPSG:banana"}, "bbox-crs"),
    ({"properties": "7"}, "field"),
])
def test_bad_coverage_requests_are_400(client: Any, rasters: dict[str, Path],
                                       params: dict[str, str], says: str) -> None:
    r = client.get("/collections/terrain/coverage", params={"f": "GTiff", **params})
    assert r.status_code == 400, r.text
    assert says in r.json()["description"]


def test_without_rasters_the_app_starts_and_says_so(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone before `make up`: the collections are listed, the data is a 503."""
    from server.openapi import available_config, build_document
    from spatial.settings import get_settings

    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path / "not-yet"))
    r = client.get("/collections/terrain/coverage", params={"f": "GTiff"})
    assert r.status_code == 503
    assert "onemap generate" in r.json()["description"]
    assert client.get("/collections/terrain", params={"f": "json"}).status_code == 200
    from server.config import load_config

    config = load_config(get_settings())
    _, missing = available_config(config)
    assert missing == ["population_density", "terrain"]
    paths = build_document(config)["paths"]
    assert "/collections/terrain/coverage" not in paths and "/collections/lamp/items" in paths
