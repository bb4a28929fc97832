"""spatial.params: the one reading of ``datetime`` and ``bbox``/``bbox-crs``.

Cases marked "differed" are those on which the former parsers disagreed
(server.contract.check_datetime/check_bbox, spatial.features.
parse_datetime_interval/check_bbox, server.items.bbox_lonlat).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from spatial.errors import InvalidInputError
from spatial.params import parse_bbox, parse_datetime

Z = UTC


def at(*args: int, tz: timezone = UTC) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


# --- datetime -------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2026-01-01T08:00:00Z", (at(2026, 1, 1, 8), at(2026, 1, 1, 8))),
    ("2026-01-01T08:00:00+08:00", (at(2026, 1, 1), at(2026, 1, 1))),
    ("2026-01-01T08:00:00-02:30", (at(2026, 1, 1, 10, 30), at(2026, 1, 1, 10, 30))),
    ("2026-01-01T08:00:00", (at(2026, 1, 1, 8), at(2026, 1, 1, 8))),  # no offset: UTC
    ("2026-01-01 08:00:00.5Z", (at(2026, 1, 1, 8, 0, 0, 500000),) * 2),
    ("2026-01-01T08:00:00.123456789Z", (at(2026, 1, 1, 8, 0, 0, 123456),) * 2),
    ("2026-01-01", (at(2026, 1, 1), at(2026, 1, 2) - timedelta(microseconds=1))),
    ("2026-01-01T00:00:00Z/..", (at(2026, 1, 1), None)),
    ("2026-01-01T00:00:00Z/", (at(2026, 1, 1), None)),
    ("../2026-02-01T00:00:00Z", (None, at(2026, 2, 1))),
    ("/2026-02-01", (None, at(2026, 2, 2) - timedelta(microseconds=1))),
    ("2026-01-01/2026-01-31", (at(2026, 1, 1), at(2026, 2, 1) - timedelta(microseconds=1))),
    (" 2026-01-01T00:00:00Z / 2026-01-02T00:00:00Z ", (at(2026, 1, 1), at(2026, 1, 2))),
    # differed: the contract took RFC 3339's lower-case t and z, fromisoformat does not
    ("2026-01-01t08:00:00z", (at(2026, 1, 1, 8), at(2026, 1, 1, 8))),
    # differed: a date as the end is that whole day (features), so the interval is the
    # afternoon of 1 January; the contract compared with midnight and refused it
    ("2026-01-01T12:00:00Z/2026-01-01",
     (at(2026, 1, 1, 12), at(2026, 1, 2) - timedelta(microseconds=1))),
    ("9999-12-31", (at(9999, 12, 31), datetime.max.replace(tzinfo=UTC))),
])
def test_good_datetimes(value: str, expected: tuple[datetime | None, datetime | None]) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(("value", "says"), [
    ("yesterday", "RFC 3339"),
    ("", "RFC 3339"),
    ("2026-13-45T00:00:00Z", "RFC 3339"),
    ("2026-01-01T25:00:00Z", "RFC 3339"),
    ("2026-02-30", "RFC 3339"),
    ("2026-01-01T08:00:00+24:00", "RFC 3339"),
    ("2026-01-01/2026-02-01/2026-03-01", "RFC 3339"),
    ("2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "starts after it ends"),
    ("2026-01-02/2026-01-01", "starts after it ends"),
    # differed: features read these as "no filter", the contract refused them
    ("../..", "open at both ends"),
    ("/", "open at both ends"),
    ("..", "RFC 3339"),
    # differed: ISO 8601 forms outside RFC 3339 passed datetime.fromisoformat (features,
    # tiles) but not the contract
    ("20260101", "RFC 3339"),
    ("2026-01-01T08", "RFC 3339"),
    ("2026-01-01T08:00", "RFC 3339"),
    ("2026-01-01T08:00:00+0800", "RFC 3339"),
    ("2026-W01", "RFC 3339"),
])
def test_bad_datetimes(value: str, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says) as caught:
        parse_datetime(value)
    assert "datetime" in str(caught.value) and repr(value) in str(caught.value)


# --- bbox -----------------------------------------------------------------------------

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.mark.parametrize(("value", "crs", "expected"), [
    ("116.4,39.9,116.5,40.0", None, (116.4, 39.9, 116.5, 40.0)),
    ("116.4,39.9,116.5,40.0", CRS84, (116.4, 39.9, 116.5, 40.0)),
    ("116.4,39.9,116.5,40.0", "CRS84", (116.4, 39.9, 116.5, 40.0)),
    (" 116.4 , 39.9 ,116.5,40.0", "", (116.4, 39.9, 116.5, 40.0)),
    ("116.4,39.9,0,116.5,40.0,100", None, (116.4, 39.9, 116.5, 40.0)),
    ("39.9,116.4,40.0,116.5", EPSG + "4326", (116.4, 39.9, 116.5, 40.0)),
    ("39.9,116.4,40.0,116.5", EPSG + "4490", (116.4, 39.9, 116.5, 40.0)),
    ("39.9,116.4,40.0,116.5", "EPSG:4490", (116.4, 39.9, 116.5, 40.0)),
    ("39.9,116.4,40.0,116.5", "urn:ogc:def:crs:EPSG::4326", (116.4, 39.9, 116.5, 40.0)),
    ([39.9, 116.4, 40.0, 116.5], 4490, (116.4, 39.9, 116.5, 40.0)),  # the provider's call
    ((116.4, 39.9, 116.5, 40.0), None, (116.4, 39.9, 116.5, 40.0)),
    ("-180,-90,180,90", None, (-180.0, -90.0, 180.0, 90.0)),
])
def test_good_bboxes(value: str, crs: str | None,
                     expected: tuple[float, float, float, float]) -> None:
    assert parse_bbox(value, crs) == pytest.approx(expected)


def test_projected_bbox_is_transformed_whole() -> None:
    """EPSG:3857 to longitude/latitude, edges densified; the transformer is cached."""
    from spatial.params import _to_storage

    def lonlat(x: float, y: float) -> tuple[float, float]:  # spherical Mercator, inverted
        r = 6378137.0
        return math.degrees(x / r), math.degrees(math.atan(math.sinh(y / r)))

    box = parse_bbox("12950000,4850000,12960000,4860000", EPSG + "3857")
    # CGCS2000 and WGS 84 longitude/latitude agree to the centimetre (~1e-7 degree)
    assert box == pytest.approx((*lonlat(12950000, 4850000), *lonlat(12960000, 4860000)),
                                abs=1e-6)
    assert _to_storage(3857) is _to_storage(3857)
    # CGCS2000 Gauss-Krüger zone 39 (central meridian 117°E): northing first, as declared
    zone = parse_bbox("4400000,39500000,4410000,39510000", "EPSG:4527")
    assert zone[0] == pytest.approx(117.0) and 117.1 < zone[2] < 117.2
    assert 39.7 < zone[1] < zone[3] < 39.9


@pytest.mark.parametrize(("value", "crs", "says"), [
    ("116.4,39.9,116.5", None, "4 numbers"),
    ("116.4,39.9,116.5,39.95,1", None, "4 numbers"),
    ((1.0, 2.0, 3.0), None, "4 numbers"),
    ("116.5,39.9,116.4,39.95", None, "minimum exceeds maximum"),
    ("116.4,39.95,116.5,39.9", None, "minimum exceeds maximum"),
    ("116.4,39.9,9,116.5,40,1", None, "minimum exceeds maximum on axis 3"),
    ("200,39.9,210,39.95", None, "outside longitude"),
    ("116.4,-95,116.5,39.95", None, "outside longitude"),
    ("nan,39.9,116.5,39.95", None, "finite numbers"),
    ("116.4,39.9,inf,39.95", None, "finite numbers"),
    ("1e400,0,1e400,0", None, "finite numbers"),
    ((float("nan"), 0.0, 1.0, 1.0), None, "finite numbers"),
    ("west,south,east,north", None, "finite numbers"),
    (",,,", None, "finite numbers"),
    ("116.4,39.9,116.5,39.95", "EPSG:999999", "bbox-crs"),
    ("116.4,39.9,116.5,39.95", "urn:nonsense", "bbox-crs"),
    ("116.4,39.9,116.5,39.95", "gcj02", "bbox-crs"),
    # differed: in EPSG:4326 (latitude first) the contract checked no range and the
    # streaming path let a latitude of 116 through; now checked after the axis swap
    ("116.4,39.9,116.5,40.0", EPSG + "4326", "outside longitude"),
])
def test_bad_bboxes(value: str, crs: str | None, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        parse_bbox(value, crs)
