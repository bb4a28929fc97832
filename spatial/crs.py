"""Coordinate reference systems used by onemap.

This module gathers everything the server needs to bring coordinates into the
storage CRS (CGCS2000, EPSG:4490):

* EPSG constants and the CGCS2000 Gauss-Krüger zone codes (EPSG:4491-4554),
  with :func:`gauss_kruger_epsg` to pick the zone for a longitude;
* :func:`transform`, a vectorised wrapper around cached :class:`pyproj.Transformer`
  objects;
* the Chinese obfuscated web-map systems GCJ-02 ("Mars coordinates", used by
  AMap/Gaode and Tencent) and BD-09 (Baidu), with exact forward formulas and
  iterative inverses;
* :class:`PlanarTransform`, a user-supplied similarity/affine transform for local
  city grids, fitted from control points if needed;
* :func:`parse_crs` and :func:`to_storage`, which accept the CRS spellings found in
  OGC API requests and uploads.

All coordinates are in "x, y" order: easting/longitude first, northing/latitude
second, whatever axis order the CRS authority declares (pyproj is always used
with ``always_xy=True``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from spatial.errors import InvalidInputError

__all__ = [
    "BD09",
    "CGCS2000",
    "GCJ02",
    "GK3_CM_EPSG",
    "GK3_ZONE_EPSG",
    "GK6_CM_EPSG",
    "GK6_ZONE_EPSG",
    "STORAGE_SRID",
    "SUPPORTED_EPSG",
    "WEB_MERCATOR",
    "WGS84",
    "PlanarTransform",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "china_outline",
    "gauss_kruger_epsg",
    "gauss_kruger_zone",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "parse_crs",
    "to_storage",
    "transform",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

logger = logging.getLogger(__name__)

type FloatArray = npt.NDArray[np.float64]
type BoolArray = npt.NDArray[np.bool_]
type _RawTransform = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

# ---------------------------------------------------------------------------
# EPSG constants
# ---------------------------------------------------------------------------

CGCS2000: Final[int] = 4490
"""China Geodetic Coordinate System 2000, geographic 2D."""
WGS84: Final[int] = 4326
"""WGS 84, geographic 2D."""
WEB_MERCATOR: Final[int] = 3857
"""WGS 84 / Pseudo-Mercator."""
STORAGE_SRID: Final[int] = CGCS2000
"""SRID of every geometry column in the database."""

GCJ02: Final[str] = "gcj02"
"""Name accepted by :func:`parse_crs` for GCJ-02 (AMap/Gaode, Tencent)."""
BD09: Final[str] = "bd09"
"""Name accepted by :func:`parse_crs` for BD-09 (Baidu)."""

# CGCS2000 Gauss-Krüger zones, checked against the EPSG database shipped with
# PROJ 9 (``pyproj.CRS.from_epsg(n).name``; see tests/spatial/test_crs.py):
#   4491-4501  "CGCS2000 / Gauss-Kruger zone 13..23"          6°, x_0 = zone*1e6 + 500 km
#   4502-4512  "CGCS2000 / Gauss-Kruger CM 75E..135E"        6°, x_0 = 500 km
#   4513-4533  "CGCS2000 / 3-degree Gauss-Kruger zone 25..45" 3°, x_0 = zone*1e6 + 500 km
#   4534-4554  "CGCS2000 / 3-degree Gauss-Kruger CM 75E..135E" 3°, x_0 = 500 km
_GK6_FIRST_ZONE: Final = 13  # central meridian 6*zone - 3 = 75°E
_GK6_LAST_ZONE: Final = 23  # central meridian 135°E
_GK3_FIRST_ZONE: Final = 25  # central meridian 3*zone = 75°E
_GK3_LAST_ZONE: Final = 45  # central meridian 135°E

GK6_ZONE_EPSG: Final[tuple[int, ...]] = tuple(range(4491, 4502))
"""6° zones 13-23 with the zone number prefixed to the false easting."""
GK6_CM_EPSG: Final[tuple[int, ...]] = tuple(range(4502, 4513))
"""6° zones 13-23, central meridian only (false easting 500 km)."""
GK3_ZONE_EPSG: Final[tuple[int, ...]] = tuple(range(4513, 4534))
"""3° zones 25-45 with the zone number prefixed to the false easting."""
GK3_CM_EPSG: Final[tuple[int, ...]] = tuple(range(4534, 4555))
"""3° zones 25-45, central meridian only (false easting 500 km)."""

SUPPORTED_EPSG: Final[tuple[int, ...]] = (
    CGCS2000,
    WGS84,
    WEB_MERCATOR,
    *GK6_ZONE_EPSG,
    *GK6_CM_EPSG,
    *GK3_ZONE_EPSG,
    *GK3_CM_EPSG,
)
"""Every EPSG code accepted by :func:`parse_crs`, :func:`transform` and :func:`to_storage`."""

_SUPPORTED_SET: Final[frozenset[int]] = frozenset(SUPPORTED_EPSG)


def _check_longitude(lon: float) -> float:
    if isinstance(lon, bool) or not isinstance(lon, numbers.Real):
        raise TypeError(f"longitude must be a real number, got {lon!r}")
    value = float(lon)
    if not math.isfinite(value):
        raise ValueError(f"longitude must be finite, got {lon!r}")
    return value


def gauss_kruger_zone(lon: float, width: Literal[3, 6] = 3) -> int:
    """Return the Gauss-Krüger zone number containing a longitude.

    6° zone ``n`` spans ``[6n - 6, 6n)`` with central meridian ``6n - 3``;
    3° zone ``n`` spans ``[3n - 1.5, 3n + 1.5)`` with central meridian ``3n``.
    Only the zones covering China (6°: 13-23, 3°: 25-45) are supported.

    Parameters
    ----------
    lon : float
        Longitude in degrees east (CGCS2000).
    width : {3, 6}, default 3
        Zone width in degrees.

    Returns
    -------
    int
        Zone number.

    Raises
    ------
    TypeError
        If `lon` is not a real number.
    ValueError
        If `width` is not 3 or 6, or `lon` is not finite or lies outside the
        zones defined for CGCS2000.

    Examples
    --------
    >>> gauss_kruger_zone(116.4)
    39
    >>> gauss_kruger_zone(116.4, width=6)
    20
    """
    value = _check_longitude(lon)
    if width == 6:
        zone = math.floor(value / 6.0) + 1
        first, last = _GK6_FIRST_ZONE, _GK6_LAST_ZONE
    elif width == 3:
        zone = math.floor((value + 1.5) / 3.0)
        first, last = _GK3_FIRST_ZONE, _GK3_LAST_ZONE
    else:
        raise ValueError(f"width must be 3 or 6, got {width!r}")
    if not first <= zone <= last:
        raise ValueError(
            f"longitude {lon!r} falls in {width}° zone {zone}; CGCS2000 Gauss-Krüger "
            f"zones are defined for {width}° zones {first}-{last} only"
        )
    return zone


def gauss_kruger_epsg(lon: float, width: Literal[3, 6] = 3, *, zone_prefix: bool = True) -> int:
    """Return the EPSG code of the CGCS2000 Gauss-Krüger zone for a longitude.

    Parameters
    ----------
    lon : float
        Longitude in degrees east.
    width : {3, 6}, default 3
        Zone width in degrees.
    zone_prefix : bool, default True
        If true, return the variant whose false easting carries the zone number
        (e.g. 39 500 000 m for 3° zone 39); otherwise the "CM" variant with a
        false easting of 500 000 m.

    Returns
    -------
    int
        EPSG code between 4491 and 4554.

    Raises
    ------
    TypeError
        If `lon` is not a real number.
    ValueError
        If `width` is not 3 or 6, or `lon` is outside the CGCS2000 zones.

    Examples
    --------
    >>> gauss_kruger_epsg(116.4)
    4527
    >>> gauss_kruger_epsg(116.4, zone_prefix=False)
    4548
    >>> gauss_kruger_epsg(116.4, width=6)
    4498
    """
    zone = gauss_kruger_zone(lon, width)
    if width == 6:
        codes = GK6_ZONE_EPSG if zone_prefix else GK6_CM_EPSG
        return codes[zone - _GK6_FIRST_ZONE]
    codes = GK3_ZONE_EPSG if zone_prefix else GK3_CM_EPSG
    return codes[zone - _GK3_FIRST_ZONE]


# ---------------------------------------------------------------------------
# CRS parsing
# ---------------------------------------------------------------------------

_SPECIAL_NAMES: Final[dict[str, str]] = {
    "gcj02": GCJ02,
    "gcj-02": GCJ02,
    "bd09": BD09,
    "bd-09": BD09,
}
_CRS84_NAMES: Final[frozenset[str]] = frozenset(
    {
        "crs84",
        "ogc:crs84",
        "urn:ogc:def:crs:ogc:1.3:crs84",
        "urn:ogc:def:crs:ogc::crs84",
        "http://www.opengis.net/def/crs/ogc/1.3/crs84",
        "https://www.opengis.net/def/crs/ogc/1.3/crs84",
    }
)
_EPSG_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"(?:epsg:)?(\d+)"),
    re.compile(r"urn:ogc:def:crs:epsg:[^:]*:(\d+)"),
    re.compile(r"https?://www\.opengis\.net/def/crs/epsg/[^/]+/(\d+)"),
)


def parse_crs(value: int | str) -> int | str:
    """Normalise a CRS designation to an EPSG code or a special name.

    Accepted spellings (case-insensitive, surrounding blanks ignored):

    * an integer EPSG code, or its decimal string (``"4490"``);
    * ``"EPSG:4490"``, ``"urn:ogc:def:crs:EPSG::4490"``,
      ``"http://www.opengis.net/def/crs/EPSG/0/4490"``;
    * ``"CRS84"``, ``"OGC:CRS84"``, ``"urn:ogc:def:crs:OGC:1.3:CRS84"``,
      ``"http://www.opengis.net/def/crs/OGC/1.3/CRS84"`` -> 4326 (lon/lat order is
      used for every CRS anyway);
    * ``"gcj02"`` / ``"gcj-02"`` -> :data:`GCJ02`, ``"bd09"`` / ``"bd-09"`` -> :data:`BD09`.

    Parameters
    ----------
    value : int or str
        CRS designation.

    Returns
    -------
    int or str
        An EPSG code from :data:`SUPPORTED_EPSG`, or :data:`GCJ02` / :data:`BD09`.

    Raises
    ------
    TypeError
        If `value` is neither an integer nor a string.
    ValueError
        If `value` is not recognised or names an unsupported EPSG code.

    Examples
    --------
    >>> parse_crs("http://www.opengis.net/def/crs/EPSG/0/4490")
    4490
    >>> parse_crs("OGC:CRS84")
    4326
    >>> parse_crs("GCJ02")
    'gcj02'
    """
    code: int
    if isinstance(value, bool):
        raise TypeError(f"CRS must be an int or str, got {value!r}")
    if isinstance(value, numbers.Integral):
        code = int(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _SPECIAL_NAMES:
            return _SPECIAL_NAMES[text]
        if text in _CRS84_NAMES:
            return WGS84
        for pattern in _EPSG_PATTERNS:
            match = pattern.fullmatch(text)
            if match is not None:
                code = int(match.group(1))
                break
        else:
            raise ValueError(
                f"unknown CRS {value!r}; expected an EPSG code, 'EPSG:nnnn', an OGC CRS URI, "
                "'CRS84', 'gcj02' or 'bd09'"
            )
    else:
        raise TypeError(f"CRS must be an int or str, got {value!r}")
    if code not in _SUPPORTED_SET:
        raise ValueError(
            f"unsupported CRS {value!r} (EPSG:{code}); supported are EPSG:4490, 4326, 3857 "
            "and the CGCS2000 Gauss-Krüger zones 4491-4554"
        )
    return code


# ---------------------------------------------------------------------------
# Array helpers
# ---------------------------------------------------------------------------


def _as_xy(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return float64 copies of `x` and `y` broadcast to a common shape."""
    if x is None or y is None:
        raise TypeError(f"coordinates must be numeric, got x={x!r}, y={y!r}")
    try:
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"coordinates must be numeric, got x={x!r}, y={y!r}") from exc
    try:
        xb, yb = np.broadcast_arrays(xa, ya)
    except ValueError as exc:
        raise ValueError(
            f"x and y must have broadcastable shapes, got {xa.shape} and {ya.shape}"
        ) from exc
    return np.array(xb, dtype=np.float64), np.array(yb, dtype=np.float64)


# ---------------------------------------------------------------------------
# pyproj transforms
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _transformer(src: int, dst: int) -> pyproj.Transformer:
    # Transformer objects are thread-safe since pyproj 3.1, so one cached instance
    # can serve every request thread.
    transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    logger.debug("created transformer EPSG:%d -> EPSG:%d: %s", src, dst, transformer.description)
    return transformer


def _pyproj_transform(
    x: FloatArray, y: FloatArray, src: int, dst: int
) -> tuple[FloatArray, FloatArray]:
    if src == dst or x.size == 0:
        return x, y
    tx, ty = _transformer(src, dst).transform(x, y)
    return (
        np.asarray(tx, dtype=np.float64).reshape(x.shape),
        np.asarray(ty, dtype=np.float64).reshape(y.shape),
    )


def transform(
    x: npt.ArrayLike, y: npt.ArrayLike, src: int | str, dst: int | str
) -> tuple[FloatArray, FloatArray]:
    """Transform coordinates between two supported CRSs.

    EPSG-to-EPSG transformations use a cached :class:`pyproj.Transformer`
    (``always_xy=True``, keyed by the integer codes). :data:`GCJ02` and
    :data:`BD09` are handled by going through WGS 84 with the functions of this
    module. Between CGCS2000 and WGS 84 PROJ applies its "ballpark" (null)
    transformation: the two realisations agree to a few centimetres, which is
    below the accuracy of any data onemap handles.

    Parameters
    ----------
    x, y : array_like
        Easting/longitude and northing/latitude, broadcastable to a common shape.
    src, dst : int or str
        Source and target CRS, in any spelling accepted by :func:`parse_crs`.

    Returns
    -------
    x, y : numpy.ndarray
        Transformed coordinates, float64, with the broadcast shape of the input.
        Points that cannot be transformed come back as ``inf`` or ``nan``.

    Raises
    ------
    TypeError
        If the coordinates are not numeric or a CRS has the wrong type.
    ValueError
        If a CRS is unknown or unsupported, or the shapes do not broadcast.

    Examples
    --------
    >>> e, n = transform(116.4, 39.9, 4490, gauss_kruger_epsg(116.4))
    >>> round(float(e), 1), round(float(n), 1)
    (39448688.9, 4418598.0)
    >>> lon, lat = transform(e, n, "EPSG:4527", "EPSG:4490")
    >>> round(float(lon), 9), round(float(lat), 9)
    (116.4, 39.9)
    """
    source, target = parse_crs(src), parse_crs(dst)
    xa, ya = _as_xy(x, y)
    if source == target:
        return xa, ya
    if (source, target) == (GCJ02, BD09):
        return gcj02_to_bd09(xa, ya)
    if (source, target) == (BD09, GCJ02):
        return bd09_to_gcj02(xa, ya)
    if isinstance(source, str):
        xa, ya = bd09_to_wgs84(xa, ya) if source == BD09 else gcj02_to_wgs84(xa, ya)
        source = WGS84
    if isinstance(target, str):
        xa, ya = _pyproj_transform(xa, ya, source, WGS84)
        return wgs84_to_bd09(xa, ya) if target == BD09 else wgs84_to_gcj02(xa, ya)
    return _pyproj_transform(xa, ya, source, target)


def to_storage(x: npt.ArrayLike, y: npt.ArrayLike, crs: int | str) -> tuple[FloatArray, FloatArray]:
    """Bring coordinates into the storage CRS, CGCS2000 (EPSG:4490).

    CGCS2000 and WGS 84 (and hence CRS84, Web Mercator, GCJ-02 and BD-09, which
    are all based on WGS 84) are treated as numerically identical: the datums
    differ by a few centimetres, far below the accuracy of web-map or survey
    sources feeding onemap.

    Parameters
    ----------
    x, y : array_like
        Easting/longitude and northing/latitude in `crs`.
    crs : int or str
        Source CRS: an EPSG code, ``"EPSG:nnnn"``, ``"CRS84"``, an OGC URI or URN,
        ``"gcj02"`` or ``"bd09"`` (see :func:`parse_crs`).

    Returns
    -------
    lon, lat : numpy.ndarray
        CGCS2000 longitude and latitude, float64, in the input's shape.

    Raises
    ------
    TypeError
        If the coordinates are not numeric or `crs` has the wrong type.
    ValueError
        If `crs` is unknown or unsupported.

    Examples
    --------
    >>> lon, lat = to_storage(116.410244, 39.916404, "GCJ02")
    >>> round(float(lon), 5), round(float(lat), 5)
    (116.404, 39.915)
    >>> to_storage([121.47], [31.23], "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    (array([121.47]), array([31.23]))
    """
    return transform(x, y, crs, STORAGE_SRID)


# ---------------------------------------------------------------------------
# China outline
# ---------------------------------------------------------------------------
#
# GCJ-02 and BD-09 are only applied inside China. The decision uses a real outline
# rather than a bounding box (which would shift Seoul, Pyongyang, Ulaanbaatar,
# Hanoi and Taipei). data/china_outline.geojson was produced once from Natural
# Earth 1:110m Admin-0 countries (public domain; the copy shipped with pyogrio's
# test fixtures), feature ``name == 'China'`` (mainland + Hainan; Taiwan is a
# separate feature), as
#     set_precision(simplify(buffer(china, 0.25, quad_segs=8), 0.005), 0.001)
# in plain lon/lat degrees; provenance is recorded in the file's "properties".
#
# Why a 0.25° buffer (about 25 km N-S, 21-24 km E-W at 25-35°N): at 1:110m the
# coastline is generalised by kilometres and drops most islands. Measured against
# the unbuffered outline, Weihai lies 0.05° outside, Macau/Zhuhai 0.06-0.09°,
# Dalian 0.12°, Lüshun 0.14° and Dinghai (Zhoushan) 0.20°. 0.25° covers these with
# ~5 km to spare after simplification (effective margin >= 0.244°), while the
# nearest foreign capitals and Taiwan stay well outside: Hanoi is 1.37° away,
# Taipei 2.06°, Seoul 3.5°, Ulaanbaatar 5.5°, and the Taiwan Strait is ~1.2° wide
# at its narrowest. Known limits: offshore islands farther out (Pingtan 0.31°,
# Weizhou 0.53°, Shengsi 0.6°, the South China Sea islands) are treated as
# outside, and foreign towns hugging the border (e.g. Blagoveshchensk, Sinuiju,
# Zamyn-Uud) as inside; an error there costs the GCJ-02 offset of a few hundred
# metres.


@functools.cache
def china_outline() -> BaseGeometry:
    """Return the buffered China outline used to decide where GCJ-02 applies.

    The geometry is read once from ``spatial/data/china_outline.geojson`` and
    prepared for fast point-in-polygon tests.

    Returns
    -------
    shapely.geometry.base.BaseGeometry
        Prepared (multi)polygon in lon/lat degrees.

    Examples
    --------
    >>> china_outline().geom_type
    'Polygon'
    """
    resource = files("spatial") / "data" / "china_outline.geojson"
    feature = json.loads(resource.read_text(encoding="utf-8"))
    geometry: BaseGeometry = shapely.geometry.shape(feature["geometry"])
    shapely.prepare(geometry)
    logger.debug(
        "loaded China outline (%d vertices, buffer %s°)",
        shapely.get_num_coordinates(geometry),
        feature.get("properties", {}).get("buffer_deg"),
    )
    return geometry


def in_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> BoolArray:
    """Tell which points lie inside China, where GCJ-02 and BD-09 apply.

    Membership is tested against the 1:110m Natural Earth outline buffered by
    0.25° (see the module source for the rationale). Taiwan is outside; Hong Kong
    and Macau are inside. ``nan`` and infinite coordinates are outside.

    Parameters
    ----------
    lon, lat : array_like
        Longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    numpy.ndarray of bool
        Membership, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> in_china([121.47, 126.978, 121.565], [31.23, 37.566, 25.033]).tolist()
    [True, False, False]
    """
    x, y = _as_xy(lon, lat)
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.bool_)
    inside = shapely.contains_xy(china_outline(), x.ravel(), y.ravel())
    return np.asarray(inside, dtype=np.bool_).reshape(x.shape)


# ---------------------------------------------------------------------------
# GCJ-02 and BD-09
# ---------------------------------------------------------------------------

# GCJ-02 expresses its offset on the Krasovsky 1940 ellipsoid.
_KRASOVSKY_A: Final = 6378245.0
_KRASOVSKY_EE: Final = 0.00669342162296594323  # first eccentricity squared
# BD-09 works with longitude/latitude scaled by 3000/180 * pi.
_BD_K: Final = math.pi * 3000.0 / 180.0
_BD_DLON: Final = 0.0065
_BD_DLAT: Final = 0.006

_INVERSE_TOLERANCE_DEG: Final = 1e-10
_INVERSE_MAX_ITERATIONS: Final = 30
# Largest shift of GCJ-02 + BD-09 inside China is ~0.02°; inverse candidates are
# searched within the outline's bounds widened by this much.
_SHIFT_MARGIN_DEG: Final = 0.1


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the GCJ-02 shift (dlon, dlat) in degrees at WGS 84 ``(lon, lat)``.

    The offset is a polynomial plus sine series in ``x = lon - 105``,
    ``y = lat - 35`` whose values are metres; they are converted to degrees with
    the Krasovsky meridian radius ``M = a(1 - e²) / W³`` and the parallel radius
    ``N cos(lat)`` with ``N = a / W``, ``W = sqrt(1 - e² sin²(lat))``.
    """
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    two_thirds = 2.0 / 3.0
    # Term shared by both series: a fast oscillation in x.
    ripple = (20.0 * np.sin(6.0 * pi * x) + 20.0 * np.sin(2.0 * pi * x)) * two_thirds
    sqrt_abs_x = np.sqrt(np.abs(x))
    north_m = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * sqrt_abs_x
        + ripple
        + (20.0 * np.sin(pi * y) + 40.0 * np.sin(pi * y / 3.0)) * two_thirds
        + (160.0 * np.sin(pi * y / 12.0) + 320.0 * np.sin(pi * y / 30.0)) * two_thirds
    )
    east_m = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * sqrt_abs_x
        + ripple
        + (20.0 * np.sin(pi * x) + 40.0 * np.sin(pi * x / 3.0)) * two_thirds
        + (150.0 * np.sin(pi * x / 12.0) + 300.0 * np.sin(pi * x / 30.0)) * two_thirds
    )
    phi = np.radians(lat)
    w2 = 1.0 - _KRASOVSKY_EE * np.sin(phi) ** 2
    w = np.sqrt(w2)
    meridian_radius = _KRASOVSKY_A * (1.0 - _KRASOVSKY_EE) / (w2 * w)
    parallel_radius = _KRASOVSKY_A / w * np.cos(phi)
    dlat = np.degrees(north_m / meridian_radius)
    dlon = np.degrees(east_m / parallel_radius)
    return dlon, dlat


def _wgs_to_gcj_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_bd_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Perturb the polar form of (lon, lat), then add a constant shift.
    radius = np.hypot(lon, lat) + 2e-5 * np.sin(lat * _BD_K)
    theta = np.arctan2(lat, lon) + 3e-6 * np.cos(lon * _BD_K)
    return radius * np.cos(theta) + _BD_DLON, radius * np.sin(theta) + _BD_DLAT


def _solve(
    forward: _RawTransform, target_x: FloatArray, target_y: FloatArray, name: str
) -> tuple[FloatArray, FloatArray]:
    """Invert a near-identity `forward` map by fixed-point iteration.

    Iterates ``p <- p - (forward(p) - target)``. The Jacobian of both forward maps
    differs from the identity by ~1e-3, so each step gains about three digits and
    the loop ends after 3-5 steps when the largest update is below 1e-10°
    (~0.01 mm).
    """
    x = target_x.copy()
    y = target_y.copy()
    if x.size == 0:
        return x, y
    step = math.inf
    for _ in range(_INVERSE_MAX_ITERATIONS):
        fx, fy = forward(x, y)
        dx = fx - target_x
        dy = fy - target_y
        x -= dx
        y -= dy
        step = float(max(np.max(np.abs(dx)), np.max(np.abs(dy))))
        if step < _INVERSE_TOLERANCE_DEG:
            break
    else:
        logger.warning(
            "%s inverse did not converge in %d iterations (last step %.3g°)",
            name,
            _INVERSE_MAX_ITERATIONS,
            step,
        )
    return x, y


def _bd_to_gcj_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _solve(_gcj_to_bd_raw, lon, lat, "BD-09")


def _gcj_to_wgs_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _solve(_wgs_to_gcj_raw, lon, lat, "GCJ-02")


def _wgs_to_bd_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_bd_raw(*_wgs_to_gcj_raw(lon, lat))


def _bd_to_wgs_raw(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_wgs_raw(*_bd_to_gcj_raw(lon, lat))


def _apply_forward(
    raw: _RawTransform, lon: npt.ArrayLike, lat: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Apply `raw` to the points inside China, judged on the input coordinates."""
    x, y = _as_xy(lon, lat)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    mask = in_china(flat_x, flat_y)
    if mask.any():
        flat_x[mask], flat_y[mask] = raw(flat_x[mask], flat_y[mask])
    return x, y


def _apply_inverse(
    raw: _RawTransform, lon: npt.ArrayLike, lat: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Apply the inverse `raw` where its *result* lies inside China.

    Judging membership on the solution (the un-shifted side), exactly as the
    forward function judges its input, makes forward-then-inverse an exact round
    trip for every point inside the outline, including those whose shifted image
    falls just outside it. The forward maps are not one-to-one within ~1.5 km
    outside the outline (a pass-through point there may coincide with the image of
    a shifted point inside), so such points may be shifted by the inverse even
    though the forward left them alone; they are open sea or foreign border strips
    ~25 km from China.
    """
    x, y = _as_xy(lon, lat)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    xmin, ymin, xmax, ymax = china_outline().bounds
    near = (
        (flat_x >= xmin - _SHIFT_MARGIN_DEG)
        & (flat_x <= xmax + _SHIFT_MARGIN_DEG)
        & (flat_y >= ymin - _SHIFT_MARGIN_DEG)
        & (flat_y <= ymax + _SHIFT_MARGIN_DEG)
    )  # False for nan
    if near.any():
        sx, sy = raw(flat_x[near], flat_y[near])
        inside = in_china(sx, sy)
        index = np.flatnonzero(near)[inside]
        flat_x[index] = sx[inside]
        flat_y[index] = sy[inside]
    return x, y


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS 84 longitude/latitude to GCJ-02 ("Mars coordinates").

    GCJ-02 is the obfuscated datum mandated for published maps of China and used
    by AMap/Gaode and Tencent. Points outside China (see :func:`in_china`, judged
    on the WGS 84 input) are returned unchanged; ``nan`` stays ``nan``.

    Parameters
    ----------
    lon, lat : array_like
        WGS 84 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        GCJ-02 coordinates, float64, with the broadcast shape of the input
        (0-d arrays for scalar input).

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.404, 39.915)
    >>> round(float(lon), 6), round(float(lat), 6)
    (116.410244, 39.916404)
    >>> wgs84_to_gcj02([126.978], [37.566])  # Seoul: outside China
    (array([126.978]), array([37.566]))
    """
    return _apply_forward(_wgs_to_gcj_raw, lon, lat)


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 longitude/latitude back to WGS 84.

    The forward map has no closed-form inverse; it is inverted by fixed-point
    iteration until the update is below 1e-10° (round-trip error well under
    1 mm). A point is converted when the WGS 84 solution lies inside China, so
    this function undoes :func:`wgs84_to_gcj02` for every point inside China;
    other points, and ``nan``, are returned unchanged.

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        WGS 84 coordinates, float64, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(*wgs84_to_gcj02(121.47, 31.23))
    >>> abs(float(lon) - 121.47) < 1e-9 and abs(float(lat) - 31.23) < 1e-9
    True
    """
    return _apply_inverse(_gcj_to_wgs_raw, lon, lat)


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 longitude/latitude to BD-09 (Baidu).

    Points outside China (judged on the GCJ-02 input) are returned unchanged;
    ``nan`` stays ``nan``.

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        BD-09 coordinates, float64, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)
    >>> round(float(lon), 6), round(float(lat), 6)
    (116.410369, 39.921337)
    """
    return _apply_forward(_gcj_to_bd_raw, lon, lat)


def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 longitude/latitude back to GCJ-02.

    Inverted by fixed-point iteration to 1e-10°; a point is converted when the
    GCJ-02 solution lies inside China, so this undoes :func:`gcj02_to_bd09` for
    every point inside China. Other points, and ``nan``, are returned unchanged.

    Parameters
    ----------
    lon, lat : array_like
        BD-09 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        GCJ-02 coordinates, float64, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = bd09_to_gcj02(116.410369, 39.921337)
    >>> round(float(lon), 5), round(float(lat), 5)
    (116.404, 39.915)
    """
    return _apply_inverse(_bd_to_gcj_raw, lon, lat)


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS 84 longitude/latitude to BD-09 (Baidu), via GCJ-02.

    Points outside China (judged on the WGS 84 input) are returned unchanged;
    ``nan`` stays ``nan``.

    Parameters
    ----------
    lon, lat : array_like
        WGS 84 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        BD-09 coordinates, float64, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = wgs84_to_bd09(np.array([[116.404]]), np.array([[39.915]]))
    >>> lon.shape, round(float(lon[0, 0]), 3), round(float(lat[0, 0]), 3)
    ((1, 1), 116.417, 39.923)
    """
    return _apply_forward(_wgs_to_bd_raw, lon, lat)


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 longitude/latitude back to WGS 84, via GCJ-02.

    Both steps are inverted iteratively to 1e-10°; a point is converted when the
    WGS 84 solution lies inside China, so this undoes :func:`wgs84_to_bd09` for
    every point inside China. Other points, and ``nan``, are returned unchanged.

    Parameters
    ----------
    lon, lat : array_like
        BD-09 longitude and latitude in degrees, broadcastable to a common shape.

    Returns
    -------
    lon, lat : numpy.ndarray
        WGS 84 coordinates, float64, with the broadcast shape of the input.

    Raises
    ------
    TypeError
        If the coordinates are not numeric.
    ValueError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lon, lat = bd09_to_wgs84(*wgs84_to_bd09(87.62, 43.83))
    >>> round(float(lon), 9), round(float(lat), 9)
    (87.62, 43.83)
    """
    return _apply_inverse(_bd_to_wgs_raw, lon, lat)


# ---------------------------------------------------------------------------
# Local planar grids
# ---------------------------------------------------------------------------


def _finite_float(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def _control_points(name: str, value: npt.ArrayLike) -> FloatArray:
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric (n, 2) coordinates, got {value!r}") from exc
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contains non-finite coordinates: {value!r}")
    return points


@dataclass(frozen=True, slots=True)
class PlanarTransform:
    """A 2-D affine transform for local city grids.

    ``x' = a*x + b*y + c`` and ``y' = d*x + e*y + f``. A similarity (4-parameter
    Helmert) transform is the special case ``a = e = s*cos(r)``,
    ``d = -b = s*sin(r)``.

    Parameters
    ----------
    a, b, c, d, e, f : float
        Coefficients; must be finite.
    residuals : numpy.ndarray or None, default None
        ``(n, 2)`` control-point residuals ``dst - apply(src)`` when the
        transform was fitted with :meth:`from_control_points`; otherwise None.
        Excluded from equality and ``repr``.

    Attributes
    ----------
    rms : float or None
        Root mean square of the residual vector lengths, in target units.

    Examples
    --------
    >>> t = PlanarTransform.from_helmert(dx=100.0, dy=-50.0, scale=2.0, rotation_rad=0.0)
    >>> x, y = t.apply(1.0, 1.0)
    >>> float(x), float(y)
    (102.0, -48.0)
    >>> x, y = t.inverse().apply(x, y)
    >>> float(x), float(y)
    (1.0, 1.0)
    """

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float
    residuals: FloatArray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "e", "f"):
            object.__setattr__(self, name, _finite_float(name, getattr(self, name)))
        if self.residuals is not None:
            res = np.array(self.residuals, dtype=np.float64)
            if res.ndim != 2 or res.shape[1] != 2:
                raise ValueError(f"residuals must have shape (n, 2), got shape {res.shape}")
            res.flags.writeable = False
            object.__setattr__(self, "residuals", res)

    @classmethod
    def from_affine(
        cls, a: float, b: float, c: float, d: float, e: float, f: float
    ) -> PlanarTransform:
        """Build a transform from its six affine coefficients.

        Parameters
        ----------
        a, b, c, d, e, f : float
            ``x' = a*x + b*y + c``, ``y' = d*x + e*y + f``.

        Returns
        -------
        PlanarTransform
            The transform.

        Raises
        ------
        TypeError
            If a coefficient is not a real number.
        ValueError
            If a coefficient is not finite.

        Examples
        --------
        >>> t = PlanarTransform.from_affine(1.0, 0.0, 10.0, 0.0, 1.0, 20.0)
        >>> [float(v) for v in t.apply(1.0, 2.0)]
        [11.0, 22.0]
        """
        return cls(a, b, c, d, e, f)

    @classmethod
    def from_helmert(
        cls, dx: float, dy: float, scale: float, rotation_rad: float
    ) -> PlanarTransform:
        """Build a 4-parameter similarity (2-D Helmert) transform.

        ``x' = s*cos(r)*x - s*sin(r)*y + dx`` and ``y' = s*sin(r)*x + s*cos(r)*y + dy``;
        `rotation_rad` is counter-clockwise from the x (east) axis.

        Parameters
        ----------
        dx, dy : float
            Translation, in target units.
        scale : float
            Scale factor; must be positive.
        rotation_rad : float
            Rotation angle in radians, counter-clockwise.

        Returns
        -------
        PlanarTransform
            The transform.

        Raises
        ------
        TypeError
            If a parameter is not a real number.
        ValueError
            If a parameter is not finite or `scale` is not positive.

        Examples
        --------
        >>> t = PlanarTransform.from_helmert(0.0, 0.0, 1.0, math.pi / 2)
        >>> [round(float(v), 12) for v in t.apply(1.0, 0.0)]
        [0.0, 1.0]
        """
        s = _finite_float("scale", scale)
        if s <= 0.0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        r = _finite_float("rotation_rad", rotation_rad)
        tx, ty = _finite_float("dx", dx), _finite_float("dy", dy)
        cos_r, sin_r = s * math.cos(r), s * math.sin(r)
        return cls(cos_r, -sin_r, tx, sin_r, cos_r, ty)

    @classmethod
    def from_control_points(
        cls,
        src_xy: npt.ArrayLike,
        dst_xy: npt.ArrayLike,
        kind: Literal["helmert", "affine"] = "helmert",
    ) -> PlanarTransform:
        """Fit a transform to control points by least squares.

        Coordinates are centred on their centroids before solving, which keeps the
        normal equations well conditioned for large grid coordinates.

        Parameters
        ----------
        src_xy, dst_xy : array_like
            ``(n, 2)`` arrays of matching source and target coordinates.
        kind : {"helmert", "affine"}, default "helmert"
            ``"helmert"`` fits a 4-parameter similarity (needs at least 2
            distinct points), ``"affine"`` a 6-parameter affine transform (needs at
            least 3 non-collinear points).

        Returns
        -------
        PlanarTransform
            The fitted transform, with :attr:`residuals` and :attr:`rms` set.

        Raises
        ------
        TypeError
            If the coordinates are not numeric.
        ValueError
            If `kind` is unknown, the arrays are not matching ``(n, 2)`` finite
            arrays, there are too few points, or the points are degenerate.

        Examples
        --------
        >>> src = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
        >>> dst = [(500.0, 300.0), (500.0, 310.0), (490.0, 300.0)]
        >>> t = PlanarTransform.from_control_points(src, dst)
        >>> [round(v, 9) + 0.0 for v in (t.a, t.b, t.c, t.d, t.e, t.f)]
        [0.0, -1.0, 500.0, 1.0, 0.0, 300.0]
        >>> round(t.rms, 9)
        0.0
        """
        if kind not in ("helmert", "affine"):
            raise ValueError(f"kind must be 'helmert' or 'affine', got {kind!r}")
        src = _control_points("src_xy", src_xy)
        dst = _control_points("dst_xy", dst_xy)
        if src.shape != dst.shape:
            raise ValueError(
                f"src_xy and dst_xy must have the same shape, got {src.shape} and {dst.shape}"
            )
        needed = 2 if kind == "helmert" else 3
        if src.shape[0] < needed:
            raise ValueError(
                f"a {kind} fit needs at least {needed} control points, got {src.shape[0]}"
            )
        src_mean = src.mean(axis=0)
        dst_mean = dst.mean(axis=0)
        u, v = (src - src_mean).T
        uu, vv = (dst - dst_mean).T
        if kind == "helmert":
            norm = float(np.sum(u * u + v * v))
            if norm == 0.0:
                raise ValueError("helmert fit needs at least 2 distinct source points")
            p = float(np.sum(u * uu + v * vv)) / norm  # s*cos(r)
            q = float(np.sum(u * vv - v * uu)) / norm  # s*sin(r)
            a, b, d, e = p, -q, q, p
        else:
            design = np.column_stack([u, v])
            coef, _, rank, _ = np.linalg.lstsq(design, np.column_stack([uu, vv]), rcond=None)
            if rank < 2:
                raise ValueError("affine fit needs at least 3 non-collinear source points")
            (a, d), (b, e) = coef
        c = float(dst_mean[0] - (a * src_mean[0] + b * src_mean[1]))
        f = float(dst_mean[1] - (d * src_mean[0] + e * src_mean[1]))
        fitted = cls(float(a), float(b), c, float(d), float(e), f)
        px, py = fitted.apply(src[:, 0], src[:, 1])
        residuals = dst - np.column_stack([px, py])
        result = cls(fitted.a, fitted.b, c, fitted.d, fitted.e, f, residuals=residuals)
        logger.debug("fitted %s transform to %d points, rms %.4g", kind, len(src), result.rms)
        return result

    @property
    def rms(self) -> float | None:
        """Root mean square residual length of the control-point fit, or None."""
        if self.residuals is None:
            return None
        if self.residuals.size == 0:
            return 0.0
        return float(np.sqrt(np.mean(np.sum(self.residuals**2, axis=1))))

    def apply(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Apply the transform.

        Parameters
        ----------
        x, y : array_like
            Source coordinates, broadcastable to a common shape.

        Returns
        -------
        x, y : numpy.ndarray
            Transformed coordinates, float64, with the broadcast shape.

        Raises
        ------
        TypeError
            If the coordinates are not numeric.
        ValueError
            If the shapes do not broadcast.

        Examples
        --------
        >>> t = PlanarTransform.from_affine(2.0, 0.0, 1.0, 0.0, 3.0, -1.0)
        >>> t.apply([0.0, 1.0], [0.0, 1.0])
        (array([1., 3.]), array([-1.,  2.]))
        """
        xa, ya = _as_xy(x, y)
        return (
            self.a * xa + self.b * ya + self.c,
            self.d * xa + self.e * ya + self.f,
        )

    def inverse(self) -> PlanarTransform:
        """Return the inverse transform.

        Returns
        -------
        PlanarTransform
            Transform mapping target coordinates back to source coordinates
            (without fit residuals).

        Raises
        ------
        ValueError
            If the transform is singular.

        Examples
        --------
        >>> t = PlanarTransform.from_affine(2.0, 1.0, 10.0, 0.0, 4.0, -1.0)
        >>> inv = t.inverse()
        >>> inv.a, inv.b, inv.e
        (0.5, -0.125, 0.25)
        >>> [float(v) for v in inv.apply(*t.apply(3.0, 7.0))]
        [3.0, 7.0]
        """
        det = self.a * self.e - self.b * self.d
        if det == 0.0 or not math.isfinite(1.0 / det):
            raise ValueError(f"transform {self!r} is singular (determinant {det!r})")
        ia, ib = self.e / det, -self.b / det
        id_, ie = -self.d / det, self.a / det
        return PlanarTransform(
            ia,
            ib,
            -(ia * self.c + ib * self.f),
            id_,
            ie,
            -(id_ * self.c + ie * self.f),
        )


@functools.lru_cache(maxsize=64)
def crs_axes(uri: str) -> tuple[int | None, bool]:
    """EPSG code and axis order of a CRS URI (``crs``, ``bbox-crs``, ``filter-crs``).

    Parameters
    ----------
    uri : str
        An OGC CRS URI, ``EPSG:n`` or anything PROJ reads.

    Returns
    -------
    tuple
        ``(srid, northing_first)``; srid None means CRS84, the stored
        CGCS2000 longitude/latitude (equal to the centimetre).

    Raises
    ------
    InvalidInputError
        For a CRS PROJ does not know or one without an EPSG code.

    Examples
    --------
    >>> crs_axes("http://www.opengis.net/def/crs/EPSG/0/4326")
    (4326, True)
    >>> crs_axes("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    (None, False)
    """
    if uri.rstrip("/").endswith(("CRS84", "CRS84h")):
        return None, False
    try:
        crs = pyproj.CRS.from_user_input(uri)
    except pyproj.exceptions.CRSError:
        raise InvalidInputError(f"unknown CRS {uri!r}") from None
    epsg = crs.to_epsg()
    if epsg is None:
        raise InvalidInputError(f"no EPSG code for CRS {uri!r}")
    axes = crs.axis_info
    return (None if epsg == 4490 else epsg), bool(axes) and axes[0].direction.lower() in (
        "north", "south")
