"""AMap raster tiles shifted from GCJ-02 onto our (WGS84/CGCS2000) Web Mercator grid.

AMap draws its map in GCJ-02: a place at WGS84 (lon, lat) appears on AMap's
tiles at ``wgs84_to_gcj02(lon, lat)``, 100–700 m away in Beijing. Laid under
our layers as they are, AMap's roads would sit beside ours. So onemap serves
``/basemaps/amap/{z}/{x}/{y}.png``: for our tile (z, x, y) it takes the GCJ-02
position of the tile's centre (:func:`spatial.crs.wgs84_to_gcj02`), moves the
256 px window by that offset in AMap's pixel space, fetches the (up to four)
AMap tiles the window covers and crops them into one PNG. Within a tile the
offset changes by far less than a pixel (it varies over tens of kilometres),
so one translation per tile is exact to the pixel. The same tiles are the base
map of the HTML pages' Leaflet maps (:func:`leaflet_base_map`).

:func:`gcj_window` and :func:`compose` are pure (tested offline); only
:func:`fetch_amap` touches the network, and only when ``ONEMAP_AMAP=1``.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import urllib.request
from collections.abc import Callable

from spatial.crs import wgs84_to_gcj02

LOGGER = logging.getLogger(__name__)

TILE = 256
#: AMap's road map (style 8), Chinese labels; ``ONEMAP_AMAP_URL`` overrides.
AMAP_URL = ("https://webrd01.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
            "&x={x}&y={y}&z={z}")


def _lonlat_to_pixel(lon: float, lat: float, z: int) -> tuple[float, float]:
    scale = TILE * 2**z
    siny = math.sin(math.radians(lat))
    return ((lon + 180.0) / 360.0 * scale,
            (0.5 - math.log((1 + siny) / (1 - siny)) / (4 * math.pi)) * scale)


def _pixel_to_lonlat(px: float, py: float, z: int) -> tuple[float, float]:
    scale = TILE * 2**z
    lon = px / scale * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / scale))))
    return lon, lat


def gcj_window(z: int, x: int, y: int) -> tuple[int, int]:
    """Top-left global pixel, in AMap's (GCJ-02) grid, of our tile (z, x, y).

    Parameters
    ----------
    z, x, y : int
        Web Mercator zoom, column and row (XYZ, row 0 at the north).

    Returns
    -------
    (int, int)
        Pixel column and row at zoom ``z`` where the tile's 256×256 window
        starts on AMap's tiles.

    Raises
    ------
    ValueError
        A tile outside the zoom's matrix.

    Examples
    --------
    >>> gcj_window(0, 0, 0)  # offsets are below a pixel at zoom 0
    (0, 0)
    >>> col, row = gcj_window(16, 53970, 24829)  # Beijing: AMap's map is ≈ 520 m east
    >>> col - 53970 * 256, row - 24829 * 256
    (285, -80)
    """
    if not (0 <= z <= 22 and 0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"no tile {z}/{x}/{y}")
    cx, cy = (x + 0.5) * TILE, (y + 0.5) * TILE
    lon, lat = _pixel_to_lonlat(cx, cy, z)
    glon, glat = wgs84_to_gcj02(lon, lat)
    gx, gy = _lonlat_to_pixel(float(glon), float(glat), z)
    return x * TILE + round(gx - cx), y * TILE + round(gy - cy)


def compose(z: int, x: int, y: int, fetch: Callable[[int, int, int], bytes | None]) -> bytes:
    """Our tile (z, x, y) cut from AMap's tiles, as PNG.

    Parameters
    ----------
    fetch : callable
        ``fetch(z, x, y)`` → the image bytes of one AMap tile, or None when
        there is none (that part stays transparent).
    """
    from PIL import Image

    left, top = gcj_window(z, x, y)
    out = Image.new("RGBA", (TILE, TILE), (0, 0, 0, 0))
    for tx in range(left // TILE, (left + TILE - 1) // TILE + 1):
        for ty in range(top // TILE, (top + TILE - 1) // TILE + 1):
            if not (0 <= tx < 2**z and 0 <= ty < 2**z):
                continue
            data = fetch(z, tx, ty)
            if not data:
                continue
            with Image.open(io.BytesIO(data)) as img:
                out.paste(img.convert("RGBA"), (tx * TILE - left, ty * TILE - top))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=1024)
def _fetch_amap_cached(z: int, x: int, y: int) -> bytes:
    url = os.environ.get("ONEMAP_AMAP_URL", AMAP_URL).format(z=z, x=x, y=y)
    if not url.startswith(("https://", "http://")):
        raise ValueError("ONEMAP_AMAP_URL must be an http(s) URL")
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - scheme checked
        return bytes(resp.read())


#: Where the server serves the shifted AMap tiles (``server/styles.py``).
AMAP_ROUTE = "/basemaps/amap/{z}/{x}/{y}.png"
AMAP_ATTRIBUTION = "© 高德地图 AMap (GCJ-02, shifted to WGS84 by onemap)"


def leaflet_base_map(base: str, amap: bool) -> dict[str, str]:
    """The base map under the Leaflet maps of the HTML pages (pygeoapi's ``server.map``).

    Only what the server itself serves, so the pages work on an intranet: its
    AMap proxy when AMap is configured, otherwise none (an empty ``url``: the
    templates add no tile layer and the features lie on a plain background).
    Never a public tile server such as OpenStreetMap's.

    Parameters
    ----------
    base : str
        The server's URL (pygeoapi's ``server.url``), without a trailing slash.
    amap : bool
        ``ONEMAP_AMAP=1`` (:class:`spatial.styles.BaseMaps`).

    Returns
    -------
    dict
        ``{"url": tile URL template or "", "attribution": text or ""}``.

    Examples
    --------
    >>> leaflet_base_map("http://10.0.0.5:8000/", amap=True)["url"]
    'http://10.0.0.5:8000/basemaps/amap/{z}/{x}/{y}.png'
    >>> leaflet_base_map("http://10.0.0.5:8000", amap=False)
    {'url': '', 'attribution': ''}
    """
    if not amap:
        return {"url": "", "attribution": ""}
    return {"url": base.rstrip("/") + AMAP_ROUTE, "attribution": AMAP_ATTRIBUTION}


def fetch_amap(z: int, x: int, y: int) -> bytes | None:
    """One AMap tile from AMap's servers (kept in memory, 1,024 tiles); None when
    AMap does not answer (not kept: the next request tries again)."""
    try:
        return _fetch_amap_cached(z, x, y)
    except OSError as exc:
        LOGGER.warning("AMap tile %s/%s/%s unavailable: %s", z, x, y, type(exc).__name__)
        return None
