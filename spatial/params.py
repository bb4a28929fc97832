"""The one reading of the OGC API's ``datetime`` and ``bbox``/``bbox-crs`` parameters.

Every surface that takes them — the contract middleware
(:mod:`server.contract`), the streaming items path
(:mod:`server.items`), the pygeoapi provider (:mod:`server.provider`),
the feature query (:mod:`spatial.features`), the exporter and the tiles — calls
:func:`parse_datetime` and :func:`parse_bbox`, so a value accepted or refused on
one route is accepted or refused, with the same message, on every other.

``datetime`` (OGC API Features Part 1, ``/req/core/fc-time-definition``)
    An instant or an interval ``start/end``:

    * an instant is an RFC 3339 date-time, ``2026-01-01T08:00:00Z``: ``T``, ``t``
      or a space between date and time, seconds required, any fraction (kept to
      the microsecond), ``Z``/``z`` or ``±hh:mm``; without an offset it is UTC;
    * a full date, ``2026-01-01``, stands for that whole UTC day: its first
      microsecond as a start, its last as an end;
    * an open end is ``..`` or nothing (``2026-01-01T00:00:00Z/``), only in an
      interval and not at both ends (``../..`` selects nothing in particular and
      is refused);
    * the start must not come after the end, dates counted as whole days, so
      ``2026-01-01T12:00:00Z/2026-01-01`` is the afternoon of 1 January.

``bbox`` with ``bbox-crs``
    Four numbers (``minx,miny,maxx,maxy``) or six (with a minimum and maximum
    height, which are checked and then ignored), finite, minimum ≤ maximum on
    each axis. The numbers are in the axis order of the ``bbox-crs`` (read with
    :func:`spatial.crs.parse_crs`, default CRS84): latitude first for
    ``EPSG:4326`` and ``EPSG:4490``. The box is returned in longitude/latitude
    order in the storage CRS (EPSG:4490, equal to CRS84 to the centimetre);
    a projected box is transformed with a cached transformer, its edges
    densified. Longitudes must lie within ±180°, latitudes within ±90°. A box
    crossing the antimeridian is refused: onemap serves one city.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pyproj

from spatial.crs import crs_axes, parse_crs
from spatial.errors import InvalidInputError

__all__ = ["STORAGE_SRID", "parse_bbox", "parse_datetime"]

#: The CRS the features are stored in (CGCS2000 longitude/latitude).
STORAGE_SRID = 4490
#: Appended to every refusal: the clients are Chinese-speaking.
_ZH = " / 请求参数有误"
_DATE = r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
_TIME = (r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d+))?"
         r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})?")
_INSTANT = re.compile(rf"^{_DATE}(?:[Tt ]{_TIME})?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: Geographic CRSs whose longitude/latitude are the stored ones (to the centimetre).
_LONLAT_SRIDS = frozenset({4326, 4490})


def _instant(text: str, value: str, end: bool) -> datetime:
    """One RFC 3339 date or date-time; a date is its day's first or last microsecond."""
    match = _INSTANT.match(text)
    hint = ("datetime must be RFC 3339 (2026-01-01T08:00:00Z) or an interval start/end "
            f"with '..' for an open end, got {value!r}{_ZH}")
    if match is None:
        raise InvalidInputError(hint)
    g = match.groupdict()
    tz: timezone = UTC
    if g["tz"] and g["tz"] not in ("Z", "z"):
        sign = -1 if g["tz"][0] == "-" else 1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        if hours > 23 or minutes > 59:
            raise InvalidInputError(hint)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime(int(g["y"]), int(g["mo"]), int(g["d"]),
                          int(g["h"] or 0), int(g["mi"] or 0), int(g["s"] or 0),
                          int((g["frac"] or "0")[:6].ljust(6, "0")), tzinfo=tz)
    except ValueError:  # month 13, hour 25, 30 February
        raise InvalidInputError(hint) from None
    if g["h"] is None and end:
        try:
            moment += timedelta(days=1) - timedelta(microseconds=1)
        except OverflowError:  # 9999-12-31 ends at the last representable instant
            moment = datetime.max.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # an offset pushing year 1 or 9999 out of range: same instant
        return moment


def parse_datetime(value: str) -> tuple[datetime | None, datetime | None]:
    """Read a ``datetime`` parameter: an RFC 3339 instant or interval.

    The rules are those of the module's documentation (:mod:`spatial.params`).

    Parameters
    ----------
    value : str
        ``2026-01-01T08:00:00Z``, ``2026-01-01``, ``2026-01-01T00:00:00Z/..``,
        ``../2026-02-01`` …

    Returns
    -------
    tuple
        ``(start, end)``, both inclusive and timezone-aware; None for an open
        end. An instant gives the same moment twice, a date its first and last
        microsecond.

    Raises
    ------
    InvalidInputError
        For anything else, an interval open at both ends, or one that starts
        after it ends.

    Examples
    --------
    >>> parse_datetime("2026-01-01T08:00:00+08:00")[0].isoformat()
    '2026-01-01T00:00:00+00:00'
    >>> parse_datetime("2026-01-01/..")
    (datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), None)
    >>> parse_datetime("2026-01-01")[1].isoformat()
    '2026-01-01T23:59:59.999999+00:00'
    >>> parse_datetime("../..")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: datetime interval open at both ends: '../..' / 请求参数有误
    """
    parts = [part.strip() for part in value.split("/")]
    if len(parts) == 1:
        return _instant(parts[0], value, False), _instant(parts[0], value, True)
    if len(parts) != 2:
        raise InvalidInputError(
            "datetime must be RFC 3339 (2026-01-01T08:00:00Z) or an interval start/end "
            f"with '..' for an open end, got {value!r}{_ZH}")
    start_text, end_text = parts
    start = None if start_text in ("", "..") else _instant(start_text, value, False)
    end = None if end_text in ("", "..") else _instant(end_text, value, True)
    if start is None and end is None:
        raise InvalidInputError(f"datetime interval open at both ends: {value!r}{_ZH}")
    if start is not None and end is not None and start > end:
        raise InvalidInputError(f"datetime interval starts after it ends: {value!r}{_ZH}")
    return start, end


@functools.lru_cache(maxsize=64)
def _to_storage(srid: int) -> pyproj.Transformer:
    # PROJ's operation search costs up to a second per pair: built once per CRS.
    return pyproj.Transformer.from_crs(srid, STORAGE_SRID, always_xy=True)


def _numbers(value: str | Sequence[float]) -> list[float]:
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) not in (4, 6):
            raise InvalidInputError(
                f"bbox needs 4 numbers (minx,miny,maxx,maxy) or 6, got {len(parts)}: "
                f"{value!r}{_ZH}")
        if not all(_NUMBER.match(p.strip()) for p in parts):
            raise InvalidInputError(f"bbox must be finite numbers, got {value!r}{_ZH}")
        numbers = [float(p) for p in parts]
    else:
        if len(value) not in (4, 6):
            raise InvalidInputError(
                f"bbox needs 4 numbers (minx,miny,maxx,maxy) or 6, got {len(value)}: "
                f"{list(value)!r}{_ZH}")
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError):
            raise InvalidInputError(f"bbox must be finite numbers, got {value!r}{_ZH}") from None
    if not all(math.isfinite(v) for v in numbers):
        raise InvalidInputError(f"bbox must be finite numbers, got {value!r}{_ZH}")
    return numbers


def parse_bbox(value: str | Sequence[float], bbox_crs: str | int | None = None
               ) -> tuple[float, float, float, float]:
    """Read a ``bbox`` parameter as a longitude/latitude box in the storage CRS.

    The rules are those of the module's documentation (:mod:`spatial.params`).

    Parameters
    ----------
    value : str or sequence of float
        The parameter's text (``"116.4,39.9,116.5,40.0"``) or its numbers.
    bbox_crs : str or int, optional
        The ``bbox-crs``: anything :func:`spatial.crs.parse_crs` reads (an OGC
        URI or URN, ``EPSG:n``, an EPSG number, ``CRS84``). None means CRS84.
        The numbers are in its authority axis order.

    Returns
    -------
    tuple of float
        ``(min lon, min lat, max lon, max lat)`` in EPSG:4490.

    Raises
    ------
    InvalidInputError
        Saying which rule was broken, or naming a ``bbox-crs`` that is not known.

    Examples
    --------
    >>> parse_bbox("116.4,39.9,116.5,40.0")
    (116.4, 39.9, 116.5, 40.0)
    >>> parse_bbox("39.9,116.4,40.0,116.5", "http://www.opengis.net/def/crs/EPSG/0/4326")
    (116.4, 39.9, 116.5, 40.0)
    >>> [round(v, 4) for v in parse_bbox("12958000,4851000,12959000,4852000", "EPSG:3857")]
    [116.4037, 39.8971, 116.4127, 39.904]
    >>> parse_bbox("116.5,39.9,116.4,40.0")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: bbox minimum exceeds maximum on axis 1: \
116.5 > 116.4 / 请求参数有误
    """
    numbers = _numbers(value)
    half = len(numbers) // 2
    for axis in range(half):
        if numbers[axis] > numbers[axis + half]:
            raise InvalidInputError(
                f"bbox minimum exceeds maximum on axis {axis + 1}: "
                f"{numbers[axis]} > {numbers[axis + half]}{_ZH}")
    a, b, c, d = numbers[0], numbers[1], numbers[half], numbers[half + 1]
    srid = 4326
    if bbox_crs is not None and str(bbox_crs).strip():
        try:
            parsed = parse_crs(bbox_crs)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"bbox-crs: {exc}{_ZH}") from None
        if not isinstance(parsed, int):
            raise InvalidInputError(
                f"bbox-crs {bbox_crs!r}: an EPSG code or OGC CRS URI, not a "
                f"Chinese obfuscated system{_ZH}")
        srid = parsed
        designation = f"EPSG:{bbox_crs}" if isinstance(bbox_crs, int) else bbox_crs
        if crs_axes(designation.strip())[1]:  # latitude (northing) first
            a, b, c, d = b, a, d, c
    if srid not in _LONLAT_SRIDS:
        try:
            a, b, c, d = _to_storage(srid).transform_bounds(a, b, c, d, densify_pts=21)
        except pyproj.exceptions.ProjError:
            raise InvalidInputError(
                f"bbox {value!r} lies outside the area of EPSG:{srid}{_ZH}") from None
    if not (all(math.isfinite(v) for v in (a, b, c, d))
            and -180 <= a <= c <= 180 and -90 <= b <= d <= 90):
        raise InvalidInputError(
            f"bbox outside longitude ±180 / latitude ±90 (CRS84): {value!r}{_ZH}")
    return a, b, c, d
