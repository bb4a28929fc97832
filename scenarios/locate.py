"""Jurisdiction assignment (属地原则): which street office, community and grid a
place belongs to, and the nearest building and household.

A reported location is assigned to the units it falls in. Near a boundary —
within ``tolerance_m`` of more than one grid — every candidate is returned,
ranked, so a mobile client can ask the user to choose.

Example (needs the database; see tests/scenarios/test_locate.py)::

    from spatial.db import connect
    with connect() as conn:
        result = locate(conn, 116.4655, 39.9225, crs="gcj02")
        result.grid.name, result.ambiguous
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from spatial.crs import to_storage
from spatial.errors import InvalidInputError

LEVELS = ("street_office", "community", "grid")


@dataclass(frozen=True)
class Unit:
    """An admin unit or grid near the point.

    Attributes
    ----------
    level : str
        ``district``, ``street_office``, ``community`` or ``grid``.
    id, parent_id : int
        Its id and its parent's.
    code, name : str
        Official code and name.
    distance_m : float
        0 when the point is inside, else metres to its edge.
    """

    level: str
    id: int
    code: str | None
    name: str
    parent_id: int | None
    distance_m: float

    @property
    def inside(self) -> bool:
        """Whether the point lies in the unit."""
        return self.distance_m == 0.0


@dataclass(frozen=True)
class Address:
    """The nearest building or household."""

    kind: str
    id: int
    building_id: int
    label: str | None
    address: str | None
    distance_m: float


@dataclass
class LocateResult:
    """Where a point belongs.

    Attributes
    ----------
    lon, lat : float
        The point in the storage CRS (EPSG:4490).
    street_office, community, grid : Unit or None
        The best unit at each level (inside, else nearest within tolerance).
    candidates : dict
        Level → every unit within tolerance, best first.
    building, household : Address or None
        The nearest building and household.
    district : Unit or None
        The district: the best street office's, else the one the point lies in.
    """

    lon: float
    lat: float
    candidates: dict[str, list[Unit]] = field(default_factory=dict)
    district: Unit | None = None
    building: Address | None = None
    household: Address | None = None

    def best(self, level: str) -> Unit | None:
        """The first candidate of a level, or None."""
        units = self.candidates.get(level) or []
        return units[0] if units else None

    @property
    def street_office(self) -> Unit | None:
        """The street office (街道)."""
        return self.best("street_office")

    @property
    def community(self) -> Unit | None:
        """The community (社区)."""
        return self.best("community")

    @property
    def grid(self) -> Unit | None:
        """The grid (网格); the finest level when grids nest."""
        return self.best("grid")

    @property
    def ambiguous(self) -> bool:
        """Whether the user must choose: several grids within tolerance, or none inside."""
        grids = self.candidates.get("grid") or []
        return len(grids) > 1 or (len(grids) == 1 and not grids[0].inside)


def locate(
    conn: psycopg.Connection[Any],
    x: float,
    y: float,
    *,
    crs: int | str = 4326,
    tolerance_m: float = 15.0,
    address_within_m: float = 500.0,
) -> LocateResult:
    """Assign a point to its street office, community and grid.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection (dict rows).
    x, y : float
        Longitude/latitude (or easting/northing) in ``crs``.
    crs : int or str
        EPSG code, OGC URI, ``CRS84``, ``gcj02`` (AMap, Tencent) or ``bd09``
        (Baidu); phone GPS is WGS84 (4326).
    tolerance_m : float
        Units within this distance count as candidates too (boundary cases,
        GPS error).
    address_within_m : float
        Farthest nearest building or household to report.

    Returns
    -------
    LocateResult
        Candidates per level, ranked: inside first, then by distance; among
        grids only the finest (a sub-grid, not also its parent).

    Raises
    ------
    InvalidInputError
        For an unknown CRS, a non-finite coordinate or a negative tolerance.
    """
    if not tolerance_m >= 0:
        raise InvalidInputError(f"tolerance_m must be ≥ 0, got {tolerance_m!r}")
    try:
        lon_a, lat_a = to_storage([float(x)], [float(y)], crs)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(str(exc)) from None
    lon, lat = float(lon_a[0]), float(lat_a[0])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInputError(f"point outside longitude/latitude range: {lon}, {lat}")
    rows = conn.execute(
        "SELECT c.*, g.level AS grid_level, g.parent_id AS parent_grid_id "
        "FROM onemap.locate_candidates(ST_MakePoint(%s, %s), %s) c "
        "LEFT JOIN onemap.grid g ON c.level = 'grid' AND g.id = c.id",
        (lon, lat, tolerance_m),
    ).fetchall()
    result = LocateResult(lon, lat)
    for level in LEVELS:
        units = sorted(
            (r for r in rows if r["level"] == level),
            key=lambda r: (r["distance_m"], -(r["grid_level"] or 0), r["id"]),
        )
        if level == "grid":
            # A point in a sub-grid is in its parent too: keep the finest grids only.
            parents = {r["parent_grid_id"] for r in units if r["parent_grid_id"] is not None}
            units = [r for r in units if r["id"] not in parents]
        result.candidates[level] = [
            Unit(level, r["id"], r["code"], r["name"], r["parent_id"], float(r["distance_m"]))
            for r in units
        ]
    office = result.street_office
    row = conn.execute(
        "SELECT id, code, name FROM onemap.district WHERE CASE WHEN %(office)s::bigint "
        "IS NULL THEN ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4490)) "
        "ELSE id = %(office)s END ORDER BY id LIMIT 1",
        {"office": office.parent_id if office else None, "lon": lon, "lat": lat},
    ).fetchone()
    if row is not None:
        result.district = Unit("district", row["id"], row["code"], row["name"], None,
                               0.0 if office is None or office.inside else office.distance_m)
    for r in conn.execute(
        "SELECT * FROM onemap.nearest_addresses(ST_MakePoint(%s, %s), %s)",
        (lon, lat, address_within_m),
    ).fetchall():
        address = Address(r["kind"], r["id"], r["building_id"], r["label"], r["address"],
                          float(r["distance_m"]))
        if r["kind"] == "building":
            result.building = address
        else:
            result.household = address
    return result
