"""Population density and terrain of the synthetic city as Cloud-Optimized GeoTIFFs.

Two coverages in EPSG:4490, for pygeoapi's rasterio provider:

* ``population_density.tif`` — residents per hectare on cells of about
  100 m × 100 m (one hectare at the city's latitude), summed from the
  buildings' residents and lightly smoothed, the total kept exact;
* ``dem.tif`` — a terrain model on a one-arc-second grid (about 24 m × 31 m):
  Beijing's plain, about 42 m above sea level at the origin, falling gently
  from north-west to south-east (0.6 m/km), with low smooth noise and the
  river channels a few metres lower.

Files go to ``ONEMAP_RASTER_DIR`` if set, else ``<var_dir>/rasters``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin
from scipy.ndimage import distance_transform_edt, gaussian_filter

from democity.context import METRIC_EPSG, ORIGIN_LONLAT, CityContext
from spatial.crs import STORAGE_SRID, transform
from spatial.settings import get_settings

LOGGER = logging.getLogger(__name__)

#: Environment variable naming the output directory.
RASTER_DIR_ENV = "ONEMAP_RASTER_DIR"
#: Margin around the city (m).
MARGIN_M = 600.0
#: Population cell size (m) and terrain cell size (degrees).
POPULATION_CELL_M = 100.0
DEM_CELL_DEG = 1.0 / 3600.0
#: Elevation at the origin (m), slope down to the south-east (m per km).
BASE_ELEVATION_M, SLOPE_M_PER_KM = 42.0, 0.6
#: Depth of river channels below the plain (m).
CHANNEL_DEPTH_M = 3.0

Bounds = tuple[float, float, float, float]


def raster_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where rasters are written: ``override``, ``$ONEMAP_RASTER_DIR`` or ``var/rasters``.

    Examples
    --------
    >>> str(raster_dir("/tmp/r"))
    '/tmp/r'
    """
    if override is not None:
        return Path(override)
    env = os.environ.get(RASTER_DIR_ENV)
    return Path(env) if env else get_settings().var_dir / "rasters"


def metres_per_degree(lat: float | npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """Metres per degree of longitude and latitude on the GRS80/CGCS2000 ellipsoid.

    Examples
    --------
    >>> mx, my = metres_per_degree(40.0)
    >>> round(mx), round(my)
    (85394, 111035)
    """
    a, e2 = 6378137.0, 0.00669438002290
    phi = np.radians(lat)
    w = np.sqrt(1 - e2 * np.sin(phi) ** 2)
    mx = math.pi / 180 * a * np.cos(phi) / w
    my = math.pi / 180 * a * (1 - e2) / w**3
    return mx, my


def city_bounds(ctx: CityContext, margin: float = MARGIN_M) -> Bounds:
    """The city's extent in the metric CRS (roads, blocks, buildings, land use), plus a margin."""
    boxes = [ctx.frames[k].total_bounds for k in ("road", "block", "building", "land_use")
             if k in ctx.frames and len(ctx.frames[k])]
    if not boxes:
        raise ValueError("the rasters step needs the city's frames; none were published")
    b = np.array(boxes)
    return (float(b[:, 0].min() - margin), float(b[:, 1].min() - margin),
            float(b[:, 2].max() + margin), float(b[:, 3].max() + margin))


def _to_storage_bounds(bounds: Bounds) -> Bounds:
    x0, y0, x1, y1 = bounds
    t = np.linspace(0, 1, 33)
    xs = np.r_[x0 + (x1 - x0) * t, np.full(33, x1), x1 - (x1 - x0) * t, np.full(33, x0)]
    ys = np.r_[np.full(33, y0), y0 + (y1 - y0) * t, np.full(33, y1), y1 - (y1 - y0) * t]
    lon, lat = transform(xs, ys, METRIC_EPSG, STORAGE_SRID)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _grid(lonlat: Bounds, dx: float, dy: float) -> tuple[Affine, int, int]:
    west, south, east, north = lonlat
    width = math.ceil((east - west) / dx)
    height = math.ceil((north - south) / dy)
    return from_origin(west, north, dx, dy), width, height


def population_grid(buildings: Any, lonlat: Bounds) -> tuple[npt.NDArray[np.float32], Affine,
                                                             dict[str, Any]]:
    """Residents per hectare on ~100 m cells from building residents.

    Each building's residents go to the cell holding its centroid; a light
    Gaussian blur (σ = 0.6 cell) softens block edges, and the counts are
    rescaled so their total stays the number of residents.

    Returns
    -------
    density : numpy.ndarray
        float32 residents per hectare, north-up.
    transform : Affine
        Cell to EPSG:4490 coordinates.
    stats : dict
        ``residents``, ``cell_deg`` and ``cells``.
    """
    lat0 = (lonlat[1] + lonlat[3]) / 2
    mx, my = metres_per_degree(lat0)
    dx, dy = POPULATION_CELL_M / mx, POPULATION_CELL_M / my
    affine, width, height = _grid(lonlat, dx, dy)
    counts = np.zeros((height, width))
    residents = buildings["residents"].to_numpy(dtype=np.float64) if len(buildings) else \
        np.zeros(0)
    total = float(residents.sum())
    if len(buildings):
        c = buildings.geometry.centroid
        lon, lat = transform(c.x.to_numpy(), c.y.to_numpy(), METRIC_EPSG, STORAGE_SRID)
        col = np.clip(((lon - affine.c) / dx).astype(int), 0, width - 1)
        row = np.clip(((affine.f - lat) / dy).astype(int), 0, height - 1)
        np.add.at(counts, (row, col), residents)
        counts = gaussian_filter(counts, sigma=0.6, mode="constant", truncate=3.0)
        if counts.sum() > 0:
            counts *= total / counts.sum()
    lat_rows = affine.f - (np.arange(height) + 0.5) * dy
    rmx, rmy = metres_per_degree(lat_rows)
    area_ha = dx * dy * rmx * rmy / 1e4
    density = (counts / area_ha[:, None]).astype(np.float32)
    return density, affine, {"residents": round(total), "cell_deg": [dx, dy],
                             "cells": [width, height]}


def terrain(ctx: CityContext, lonlat: Bounds) -> tuple[npt.NDArray[np.float32], Affine]:
    """Elevation (m) on a one-arc-second grid: a plain sloping to the south-east, with rivers.

    Returns
    -------
    dem : numpy.ndarray
        float32 elevations, north-up.
    transform : Affine
        Cell to EPSG:4490 coordinates.
    """
    affine, width, height = _grid(lonlat, DEM_CELL_DEG, DEM_CELL_DEG)
    lon = affine.c + (np.arange(width) + 0.5) * DEM_CELL_DEG
    lat = affine.f - (np.arange(height) + 0.5) * DEM_CELL_DEG
    glon, glat = np.meshgrid(lon, lat)
    x, y = transform(glon.ravel(), glat.ravel(), STORAGE_SRID, METRIC_EPSG)
    ox, oy = transform([ORIGIN_LONLAT[0]], [ORIGIN_LONLAT[1]], STORAGE_SRID, METRIC_EPSG)
    downhill = ((x - ox[0]) - (y - oy[0])) / math.sqrt(2)  # metres towards the south-east
    z = BASE_ELEVATION_M - SLOPE_M_PER_KM * downhill.reshape(height, width) / 1000.0
    rng = ctx.rng("rasters.dem")
    for sigma, amplitude in ((12.0, 1.2), (3.0, 0.3)):
        field = gaussian_filter(rng.normal(size=(height, width)), sigma, mode="reflect")
        z += amplitude * field / max(float(field.std()), 1e-9)
    land_use = ctx.frames.get("land_use")
    if land_use is not None and len(land_use):
        water = land_use[land_use["kind"] == "water"]
        if len(water):
            shapes = water.to_crs(STORAGE_SRID).geometry.values
            mask = rasterize(((g, 1) for g in shapes), out_shape=(height, width),
                             transform=affine, fill=0, dtype="uint8").astype(bool)
            if mask.any():
                mx, my = metres_per_degree(float(lat.mean()))
                sampling = (DEM_CELL_DEG * my, DEM_CELL_DEG * mx)
                outside = distance_transform_edt(~mask, sampling=sampling)
                inside = distance_transform_edt(mask, sampling=sampling)
                z -= np.where(mask, CHANNEL_DEPTH_M + np.minimum(inside / 20.0, 1.0),
                              CHANNEL_DEPTH_M * np.exp(-outside / 40.0))
    return z.astype(np.float32), affine


def write_cog(path: Path, data: npt.NDArray[np.float32], affine: Affine, *,
              nodata: float | None = None, tags: dict[str, str] | None = None,
              resampling: str = "average") -> None:
    """Write one band as a Cloud-Optimized GeoTIFF in EPSG:4490 (atomically).

    Tiles of 128–512 pixels; overviews halve the raster until it is about
    64 pixels across, and even a raster smaller than one tile gets one.
    """
    height, width = data.shape
    side = max(width, height)
    block = 512 if side > 4096 else 256 if side > 1024 else 128
    profile = {
        "driver": "COG", "width": width, "height": height, "count": 1, "dtype": "float32",
        "crs": f"EPSG:{STORAGE_SRID}", "transform": affine, "nodata": nodata,
        "blocksize": block, "compress": "DEFLATE", "predictor": "FLOATING_POINT",
        "overview_resampling": resampling,
        "overview_count": max(1, math.ceil(math.log2(side / 64))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**(tags or {}))
    os.replace(tmp, path)


def build(ctx: CityContext, out_dir: str | os.PathLike[str] | None = None) -> None:
    """Write the population-density and terrain COGs and record them in ``ctx.truth``.

    Parameters
    ----------
    ctx : CityContext
        Needs ``ctx.frames["building"]`` (with ``residents``) and the city's
        other frames for the extent; ``land_use`` water for the channels.
    out_dir : path, optional
        Output directory; see :func:`raster_dir`.
    """
    out = raster_dir(out_dir)
    lonlat = _to_storage_bounds(city_bounds(ctx))
    common = {"seed": str(ctx.seed), "scale": ctx.scale.name, "source": "onemap generate"}
    with ctx.step("rasters: population and terrain", 2) as task:
        density, pop_affine, stats = population_grid(ctx.frames["building"], lonlat)
        pop_path = out / "population_density.tif"
        write_cog(pop_path, density, pop_affine,
                  tags={**common, "units": "residents per hectare"})
        task.advance()
        dem, dem_affine = terrain(ctx, lonlat)
        dem_path = out / "dem.tif"
        write_cog(dem_path, dem, dem_affine, nodata=-9999.0, resampling="bilinear",
                  tags={**common, "units": "metres above sea level"})
        task.advance()
    ctx.truth["rasters"] = {
        "crs": f"EPSG:{STORAGE_SRID}",
        "bounds": [round(v, 7) for v in lonlat],
        "population": {"path": str(pop_path), **stats,
                       "sum_per_ha": round(float(density.sum(dtype=np.float64)), 1),
                       "max_per_ha": round(float(density.max()), 1)},
        "dem": {"path": str(dem_path), "cells": [dem.shape[1], dem.shape[0]],
                "min_m": round(float(dem.min()), 2), "max_m": round(float(dem.max()), 2),
                "mean_m": round(float(dem.mean()), 2)},
    }
    LOGGER.info("rasters written to %s", out)
