"""Tile matrix sets: WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad (Tianditu ``c``).

Three sets are served (OGC Two Dimensional Tile Matrix Set 2.0, through
morecantile):

``WebMercatorQuad``
    EPSG:3857, level 0 = one tile; tiles read the stored ``geom_3857`` column.
``WorldCRS84Quad``
    lon/lat degrees, level 0 = 2×1 tiles of 0.703125°/px; tiles read ``geom``
    (EPSG:4490, which differs from WGS 84 by centimetres) directly.
``CGCS2000Quad``
    EPSG:4490 aligned with Tianditu's ``c`` (经纬度) grid: Tianditu numbers its
    levels from 1, so **Tianditu level L is WorldCRS84Quad level L − 1**
    (level 1 = 2×1 tiles of 256 px at 0.703125°/px, origin (−180°, 90°)). Our
    matrices carry Tianditu's numbers, so ``/CGCS2000Quad/{L}/{row}/{col}``
    lies exactly under Tianditu's ``TILEMATRIX=L&TILEROW=row&TILECOL=col``.

Zoom ranges in ``layers/tiles.yml`` are WebMercator zooms; :func:`web_zoom`
maps a level of any set to the WebMercator zoom of the same ground
resolution (WorldCRS84Quad z ↔ WebMercator z + 1; CGCS2000Quad L ↔ L).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import morecantile

from spatial.errors import InvalidInputError, NotFoundError

#: Served tile matrix sets, in the order they are listed.
TMS_IDS: tuple[str, ...] = ("WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad")

#: Deepest level served for each set.
MAX_LEVEL = {"WebMercatorQuad": 22, "WorldCRS84Quad": 21, "CGCS2000Quad": 22}

#: Geometry column and SRID each set reads.
GEOMETRY = {
    "WebMercatorQuad": ("geom_3857", 3857),
    "WorldCRS84Quad": ("geom", 4490),
    "CGCS2000Quad": ("geom", 4490),
}

_CGCS2000 = "http://www.opengis.net/def/crs/EPSG/0/4490"


@dataclass(frozen=True)
class TileBounds:
    """A tile's envelope in its set's CRS (x = easting/longitude)."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    srid: int

    @property
    def width(self) -> float:
        """Width of the tile in CRS units."""
        return self.maxx - self.minx


def _cgcs2000_quad() -> morecantile.TileMatrixSet:
    crs84 = morecantile.tms.get("WorldCRS84Quad")
    doc: dict[str, Any] = crs84.model_dump(exclude_none=True, mode="json")
    matrices = []
    for matrix in doc["tileMatrices"][: MAX_LEVEL["CGCS2000Quad"]]:
        matrix = dict(matrix)
        matrix["id"] = str(int(matrix["id"]) + 1)  # Tianditu counts from 1
        matrix["pointOfOrigin"] = [90, -180]  # EPSG:4490 axis order: lat, lon
        matrices.append(matrix)
    doc.update(
        id="CGCS2000Quad",
        title="CGCS2000 geographic, aligned with Tianditu c (经纬度) tiles",
        crs=_CGCS2000,
        orderedAxes=["Lat", "Lon"],
        tileMatrices=matrices,
    )
    doc.pop("uri", None)
    doc.pop("wellKnownScaleSet", None)
    return morecantile.TileMatrixSet.model_validate(doc)


@functools.cache
def get_tms(tms_id: str) -> morecantile.TileMatrixSet:
    """The tile matrix set called ``tms_id``.

    Raises
    ------
    NotFoundError
        For a set that is not served.

    Examples
    --------
    >>> get_tms("CGCS2000Quad").minzoom
    1
    >>> get_tms("GoogleMapsCompatible")
    Traceback (most recent call last):
    ...
    spatial.errors.NotFoundError: unknown tile matrix set 'GoogleMapsCompatible'; ...
    """
    if tms_id not in TMS_IDS:
        raise NotFoundError(
            f"unknown tile matrix set {tms_id!r}; served: {', '.join(TMS_IDS)}"
            " / 不支持的瓦片矩阵集")
    if tms_id == "CGCS2000Quad":
        return _cgcs2000_quad()
    return morecantile.tms.get(tms_id)


def level_range(tms_id: str) -> tuple[int, int]:
    """First and last level served for a set (CGCS2000Quad starts at 1)."""
    return get_tms(tms_id).minzoom, MAX_LEVEL[tms_id]


def parse_tile(tms_id: str, z: str, y: str, x: str) -> tuple[int, int, int]:
    """Check tile coordinates from a URL against the set's matrices.

    Parameters
    ----------
    tms_id : str
        A served set.
    z, y, x : str
        Level, row and column as they appear in ``{z}/{y}/{x}``.

    Returns
    -------
    tuple of int
        ``(z, y, x)``.

    Raises
    ------
    InvalidInputError
        Not integers, or outside the level's matrix.
    NotFoundError
        Unknown set.

    Examples
    --------
    >>> parse_tile("WorldCRS84Quad", "0", "0", "1")
    (0, 0, 1)
    >>> parse_tile("WorldCRS84Quad", "0", "1", "0")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: tile row 1 is outside level 0 of WorldCRS84Quad (rows 0-0) ...
    """
    get_tms(tms_id)  # NotFoundError for a set not served
    try:
        zi, yi, xi = int(z), int(y), int(x)
    except ValueError:
        raise InvalidInputError(
            f"tile coordinates must be integers, got {z!r}/{y!r}/{x!r} / 瓦片坐标须为整数"
        ) from None
    low, high = level_range(tms_id)
    if not low <= zi <= high:
        raise InvalidInputError(
            f"level {zi} is outside {tms_id} (levels {low}-{high}) / 瓦片级别超出范围")
    height, width = _matrix_size(tms_id, zi)
    if not 0 <= yi < height:
        raise InvalidInputError(
            f"tile row {yi} is outside level {zi} of {tms_id} (rows 0-{height - 1})"
            " / 瓦片行号超出范围")
    if not 0 <= xi < width:
        raise InvalidInputError(
            f"tile column {xi} is outside level {zi} of {tms_id} "
            f"(columns 0-{width - 1}) / 瓦片列号超出范围")
    return zi, yi, xi


@functools.lru_cache(maxsize=256)
def _matrix_size(tms_id: str, z: int) -> tuple[int, int]:
    # morecantile builds the matrix (pydantic) on every call: once per level here.
    matrix = get_tms(tms_id).matrix(z)
    return matrix.matrixHeight, matrix.matrixWidth


def tile_bounds(tms_id: str, z: int, y: int, x: int) -> TileBounds:
    """Envelope of a tile in the CRS its set reads (x = easting/longitude).

    Examples
    --------
    >>> tile_bounds("CGCS2000Quad", 1, 0, 1)
    TileBounds(minx=0.0, miny=-90.0, maxx=180.0, maxy=90.0, srid=4490)
    >>> tile_bounds("WorldCRS84Quad", 0, 0, 1) == tile_bounds("CGCS2000Quad", 1, 0, 1)
    True
    """
    box = get_tms(tms_id).xy_bounds(morecantile.Tile(x, y, z))
    return TileBounds(box.left, box.bottom, box.right, box.top, GEOMETRY[tms_id][1])


def web_zoom(tms_id: str, z: int) -> int:
    """The WebMercator zoom with the ground resolution of level ``z`` of a set.

    Layer zoom ranges (``layers/tiles.yml``) are given in WebMercator zooms.

    Examples
    --------
    >>> web_zoom("WorldCRS84Quad", 13), web_zoom("CGCS2000Quad", 14)
    (14, 14)
    """
    if tms_id == "WebMercatorQuad":
        return z
    return _web_zoom(tms_id, z)


@functools.lru_cache(maxsize=256)
def _web_zoom(tms_id: str, z: int) -> int:
    web0 = get_tms("WebMercatorQuad").matrix(0).scaleDenominator
    return round(math.log2(web0 / get_tms(tms_id).matrix(z).scaleDenominator))


def lonlat_to_tile(tms_id: str, lon: float, lat: float, z: int) -> tuple[int, int]:
    """Row and column of the tile holding a point at level ``z``.

    Examples
    --------
    >>> lonlat_to_tile("WebMercatorQuad", 116.47, 39.92, 14)
    (6207, 13492)
    """
    tile = get_tms(tms_id).tile(lon, lat, z)
    return tile.y, tile.x


def tms_document(tms_id: str) -> dict[str, Any]:
    """The OGC TileMatrixSet JSON document of a set."""
    tms = get_tms(tms_id)
    doc: dict[str, Any] = tms.model_dump(exclude_none=True, mode="json")
    low, high = level_range(tms_id)
    doc["tileMatrices"] = [m for m in doc["tileMatrices"] if low <= int(m["id"]) <= high]
    if tms_id == "CGCS2000Quad":
        doc["description"] = (
            "EPSG:4490 on Tianditu's c grid: level L here is Tianditu level L and "
            "WorldCRS84Quad level L-1 / 与天地图经纬度瓦片 (c) 级别、行列号一致")
    return doc


def tile_matrix_limits(tms_id: str, minzoom: int, maxzoom: int,
                       bbox: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    """``tileMatrixSetLimits`` of a tileset covering ``bbox`` (lon/lat) between two
    WebMercator zooms."""
    low, high = level_range(tms_id)
    limits = []
    tms = get_tms(tms_id)
    for z in range(low, high + 1):
        if not minzoom <= web_zoom(tms_id, z) <= maxzoom:
            continue
        ul = tms.tile(bbox[0], bbox[3], z)
        lr = tms.tile(bbox[2], bbox[1], z)
        limits.append({"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y,
                       "minTileCol": ul.x, "maxTileCol": lr.x})
    return limits


def crs_uri(tms_id: str) -> str:
    """The CRS URI of a set.

    Examples
    --------
    >>> crs_uri("CGCS2000Quad")
    'http://www.opengis.net/def/crs/EPSG/0/4490'
    """
    return str(get_tms(tms_id).crs.root)
