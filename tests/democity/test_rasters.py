"""The rasters step: population density and terrain as COGs over the generated city."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import rasterio

from democity.rasters import RASTER_DIR_ENV, raster_dir

SEED = 5


@pytest.fixture
def rasters(conn: psycopg.Connection[Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from democity import generate

    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path))
    generate(conn, "S", SEED, steps=("rasters",))
    facts = conn.execute("SELECT facts FROM truth.generation").fetchone()["facts"]
    return dict(facts["rasters"])


def test_raster_dir_prefers_override_then_environment(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path / "env"))
    assert raster_dir() == tmp_path / "env"
    assert raster_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(RASTER_DIR_ENV)
    assert raster_dir().name == "rasters" and raster_dir().parent.name == "var"


def test_rasters_are_cogs_in_4490_covering_the_city(conn: psycopg.Connection[Any],
                                                    rasters: dict[str, Any],
                                                    tmp_path: Path) -> None:
    extent = conn.execute(
        "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 "
        "FROM (SELECT ST_Extent(geom) AS e FROM (SELECT geom FROM onemap.road UNION ALL "
        "SELECT geom FROM onemap.building) g) s").fetchone()
    for key in ("population", "dem"):
        path = Path(rasters[key]["path"])
        assert path.parent == tmp_path and path.exists()
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 4490
            b = src.bounds
            assert b.left < extent["x0"] and b.bottom < extent["y0"]
            assert b.right > extent["x1"] and b.top > extent["y1"]
            assert src.profile["tiled"] and src.overviews(1)
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.dtypes[0] == "float32"


def test_population_sums_to_the_residents(conn: psycopg.Connection[Any],
                                          rasters: dict[str, Any]) -> None:
    residents = conn.execute("SELECT count(*) AS n FROM onemap.resident").fetchone()["n"]
    with rasterio.open(rasters["population"]["path"]) as src:
        density = src.read(1).astype(np.float64)
        # cells of about one hectare: the density summed is the number of people
        assert src.res[0] * 85_000 == pytest.approx(100, rel=0.02)
    assert residents > 1000
    assert density.min() >= 0
    assert density.sum() == pytest.approx(residents, rel=0.01)
    assert rasters["population"]["residents"] == residents
    # people live where the buildings are: the densest cell holds a block of flats
    assert 50 < density.max() < 2000


def test_terrain_is_a_plain_sloping_south_east_with_lower_rivers(
        conn: psycopg.Connection[Any], rasters: dict[str, Any]) -> None:
    with rasterio.open(rasters["dem"]["path"]) as src:
        z = src.read(1)
        assert z.min() > 25 and z.max() < 65
        water = conn.execute(
            "SELECT ST_X(p) AS x, ST_Y(p) AS y FROM (SELECT ST_PointOnSurface(geom) AS p "
            "FROM onemap.land_use WHERE kind = 'water') s").fetchall()
        assert water, "the S city has a river"
        rows, cols = rasterio.transform.rowcol(src.transform, [r["x"] for r in water],
                                               [r["y"] for r in water])
        for r, c in zip(rows, cols, strict=True):
            around = z[max(0, r - 15):r + 16, max(0, c - 15):c + 16]
            assert z[r, c] < np.median(around) - 1.0 or z[r, c] <= np.quantile(around, 0.2)


def test_terrain_slopes_down_to_the_south_east() -> None:
    """Over a district-sized extent the 0.6 m/km slope stands far above the noise
    (over the S city, 2 km across, the two are of the same size)."""
    from democity.context import SCALES, CityContext
    from democity.rasters import SLOPE_M_PER_KM, terrain

    ctx = CityContext(SCALES["L"], 3, writer=None)
    z, _ = terrain(ctx, (116.33, 39.84, 116.57, 40.00))
    h, w = z.shape
    nw, se = float(z[: h // 4, : w // 4].mean()), float(z[-h // 4:, -w // 4:].mean())
    # the corner quarters' centres lie ~20 km apart along the slope: ~12 m of fall
    assert 0.7 * SLOPE_M_PER_KM * 20 < nw - se < 1.3 * SLOPE_M_PER_KM * 20
