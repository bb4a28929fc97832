"""Each layer's spatial and temporal extent, from its data, kept current.

A collection advertises the box of its features (CRS84) and the first and
last value of its time field, so that a client's "zoom to layer" shows the
data rather than the whole city. :class:`ExtentCache` computes them over the
published view ``layers.<id>`` and keeps them until the data changes.

**Current.** Every writing statement on a table a layer view reads bumps
``onemap.tile_version`` for that table in the same transaction
(``spatial/sql/150_tiles.sql``). A cached extent remembers the versions of
its view's tables; each lookup reads the versions (one small query, shared
for :data:`VERSION_SECONDS` by every lookup of the process) and recomputes
when one moved, unless it is younger than :data:`MIN_AGE_SECONDS`. An edit
therefore shows within about three seconds of its commit, through the API,
``onemap import`` or ``psql`` alike; what bumps
no version (a redefined view, a load with triggers disabled, a changed data
scope) shows after :data:`MAX_AGE_SECONDS` at the latest.

**Whose rows.** An extent computed over all rows tells where rows lie, so it
must not reach a caller who may not read them:

* ``public`` layers (``onemap.layer_access.audience``): every caller reads
  every row; one extent over all rows, shared.
* ``internal`` layers: every signed-in caller reads every row; the same
  shared extent for them, none of it for an anonymous caller.
* ``scoped`` layers (households, residents, events …): each caller reads the
  rows of their data scope; the extent is computed *as the caller*, with
  row-level security, and cached per user. It is the box of what the caller
  may see, never of the whole layer.
* A caller who may not read the layer at all, and a layer with no rows, gets
  the city's extent (the box of the districts, a public layer) — no
  information about the layer's rows.

Examples
--------
>>> Extent((116.4, 39.9, 116.5, 40.0)).bbox
(116.4, 39.9, 116.5, 40.0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from spatial.access import Principal, request_connection
from spatial.catalog import LAYERS_SCHEMA, get_table
from spatial.db import SCHEMA, fetch_tuples, get_pool

LOGGER = logging.getLogger(__name__)

#: The box advertised before anything is known: the Beijing municipality in
#: CRS84 (west, south, east, north). Also the configuration's fallback for
#: pygeoapi, which requires a configured extent.
FALLBACK_BBOX: tuple[float, float, float, float] = (115.4, 39.4, 117.6, 41.1)

#: Seconds a reading of ``onemap.tile_version`` serves every lookup (one
#: ``/collections`` page asks for every layer).
VERSION_SECONDS = 1.0

#: Seconds an extent is served after it was computed even if a version moved: a
#: live feed (GPS fixes every few seconds, 1.46 M rows taking 0.5 s to span)
#: costs one computation per layer this often, not one per request.
MIN_AGE_SECONDS = 2.0

#: Seconds after which a cached extent is recomputed even if no version moved.
MAX_AGE_SECONDS = 300.0

#: Cached extents kept at most (scoped layers cache one per user).
MAX_ENTRIES = 4096

#: The table whose box stands for the city.
CITY_TABLE = "district"


@dataclass(frozen=True)
class Extent:
    """A layer's extent as one caller may learn it.

    Attributes
    ----------
    bbox : tuple of float
        West, south, east, north in CRS84.
    interval : tuple of datetime or None
        First and last value of the layer's time field; None when the layer
        has no time field or no value.
    from_data : bool
        False when ``bbox`` is a fallback (no rows, or rows the caller may
        not read).
    """

    bbox: tuple[float, float, float, float]
    interval: tuple[datetime, datetime] | None = None
    from_data: bool = True


@dataclass(frozen=True)
class _Layer:
    tables: frozenset[str]
    audience: str
    readers: frozenset[str]


@dataclass
class _Entry:
    versions: tuple[tuple[str, int], ...]
    at: float
    extent: Extent


def compute_extent(conn: psycopg.Connection[Any], view: str,
                   time_field: str | None = None, *,
                   schema: str = LAYERS_SCHEMA) -> Extent | None:
    """The box (CRS84) and time range of the rows ``conn`` may read in a view.

    Parameters
    ----------
    conn : psycopg.Connection
        Row-level security applies as set up on it (:func:`spatial.access.request_connection`).
    view : str
        The layer view (or table); checked against the catalog before quoting.
    time_field : str, optional
        A column of it holding the time of each feature.
    schema : str
        ``layers`` (published views) or ``onemap``.

    Returns
    -------
    Extent or None
        None when no row has a geometry.

    Raises
    ------
    spatial.errors.NotFoundError
        When the view, or its time field, does not exist.
    """
    table = get_table(conn, view, schema=schema)
    geom = "geom" if "geom" in table.geometry else next(iter(table.geometry), None)
    if geom is None:
        return None
    srid = table.geometry[geom][1] or 4490
    parts = [sql.SQL("ST_Extent({})").format(sql.Identifier(geom))]
    if time_field:
        table.column(time_field)
        parts += [sql.SQL("min({0}), max({0})").format(sql.Identifier(time_field))]
    query = sql.SQL(
        "WITH e AS (SELECT {parts} FROM {view}) "
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b){times} FROM e, "
        "LATERAL (SELECT ST_Transform(ST_SetSRID(e.st_extent::geometry, %s), 4326) AS b) t"
    ).format(parts=sql.SQL(", ").join(parts), view=sql.Identifier(schema, view),
             times=sql.SQL(", e.min, e.max") if time_field else sql.SQL(""))
    row = fetch_tuples(conn, query, (srid,))[0]
    if row[0] is None:
        return None
    interval = None
    if time_field and row[4] is not None:
        interval = (_as_datetime(row[4]), _as_datetime(row[5]))
    return Extent((float(row[0]), float(row[1]), float(row[2]), float(row[3])), interval)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))  # a date column


class ExtentCache:
    """Extents of the layers of one database, per caller where it matters.

    Parameters
    ----------
    conninfo : str, optional
        Database; defaults to the application database.
    max_age : float
        Seconds after which an extent is recomputed whatever the versions say.

    Examples
    --------
    >>> cache = ExtentCache("dbname=x")  # no connection until the first lookup
    >>> cache.max_age
    300.0
    """

    def __init__(self, conninfo: str | None = None, *,
                 max_age: float = MAX_AGE_SECONDS) -> None:
        self.conninfo = conninfo
        self.max_age = max_age
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._layers: dict[str, _Layer] | None = None
        self._layers_at = 0.0
        self._versions: tuple[float, dict[str, int]] | None = None

    def extent(self, view: str, principal: Principal,
               time_field: str | None = None) -> Extent:
        """The extent of a layer as ``principal`` may learn it.

        Parameters
        ----------
        view : str
            The layer view ``layers.<view>`` (a collection's ``data.table``).
        principal : Principal
            The caller.
        time_field : str, optional
            The layer's time field (provider ``time_field``).

        Returns
        -------
        Extent
            From the data, or the city's extent (``from_data`` False) when
            the caller may not read the layer or it has no rows.
        """
        layer = self._layer(view)
        if layer.audience == "public":
            key: tuple[Any, ...] = (view, time_field, "all")
        elif layer.audience == "internal" and not principal.is_anonymous:
            key = (view, time_field, "all")
        elif layer.audience == "scoped" and principal.roles & layer.readers:
            key = (view, time_field, "user", principal.user_id, principal.roles)
        else:
            return self.city()
        found = self._cached(key, layer.tables)
        if found is None:
            versions = self._table_versions(layer.tables)
            if key[2] == "all":
                with get_pool(self.conninfo).connection() as conn:
                    computed = compute_extent(conn, view, time_field)
            else:
                with request_connection(principal, conninfo=self.conninfo) as conn:
                    computed = compute_extent(conn, view, time_field)
            found = computed if computed is not None else self.city()
            self._store(key, versions, found)
        return found

    def city(self) -> Extent:
        """The city's extent: the box of the districts (a public layer).

        Returns
        -------
        Extent
            ``from_data`` False; :data:`FALLBACK_BBOX` when there is no district.
        """
        key: tuple[Any, ...] = ("<city>",)
        found = self._cached(key, frozenset({CITY_TABLE}))
        if found is None:
            versions = self._table_versions(frozenset({CITY_TABLE}))
            with get_pool(self.conninfo).connection() as conn:
                computed = compute_extent(conn, CITY_TABLE, schema=SCHEMA)
            found = Extent(computed.bbox if computed else FALLBACK_BBOX, None, False)
            self._store(key, versions, found)
        return found

    def forget(self) -> None:
        """Drop every cached extent and what is known of the layers (after migrations)."""
        with self._lock:
            self._entries.clear()
            self._layers = None
            self._versions = None

    # -- internals ----------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], tables: frozenset[str]) -> Extent | None:
        with self._lock:
            entry = self._entries.get(key)
        age = time.monotonic() - entry.at if entry is not None else 0.0
        if entry is None or age > self.max_age:
            return None
        if age > MIN_AGE_SECONDS and entry.versions != self._table_versions(tables):
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        return entry.extent

    def _store(self, key: tuple[Any, ...], versions: tuple[tuple[str, int], ...],
               extent: Extent) -> None:
        with self._lock:
            self._entries[key] = _Entry(versions, time.monotonic(), extent)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def _table_versions(self, tables: frozenset[str]) -> tuple[tuple[str, int], ...]:
        versions = self._all_versions()
        return tuple((t, versions.get(t, 0)) for t in sorted(tables))

    def _all_versions(self) -> Mapping[str, int]:
        now = time.monotonic()
        with self._lock:
            if self._versions is not None and now - self._versions[0] < VERSION_SECONDS:
                return self._versions[1]
        with get_pool(self.conninfo).connection() as conn:
            rows = fetch_tuples(conn, "SELECT table_name, version FROM onemap.tile_version")
        versions = {str(name): int(v) for name, v in rows}
        with self._lock:
            self._versions = (now, versions)
        return versions

    def _layer(self, view: str) -> _Layer:
        now = time.monotonic()
        with self._lock:
            layers = self._layers
            stale = layers is None or view not in layers or now - self._layers_at > self.max_age
        if layers is None or stale:  # a new view, or layer_access changed by a migration
            layers = self._load_layers()
            with self._lock:
                self._layers, self._layers_at = layers, now
        # A view unknown to layer_access counts as scoped to nobody: the city's extent.
        return layers.get(view) or _Layer(frozenset({view}), "scoped", frozenset())

    def _load_layers(self) -> dict[str, _Layer]:
        with get_pool(self.conninfo).connection() as conn:
            reads: dict[str, set[str]] = {}
            for view, table in fetch_tuples(conn, """
                    SELECT view_name::text, table_name::text
                    FROM information_schema.view_table_usage
                    WHERE view_schema = %s AND table_schema = %s""", (LAYERS_SCHEMA, SCHEMA)):
                reads.setdefault(view, set()).add(table)
            access = {name: (audience, frozenset(readers)) for name, audience, readers
                      in fetch_tuples(conn, "SELECT table_name, audience, readers "
                                            "FROM onemap.layer_access")}
        out = {}
        for view, tables in reads.items():
            audience, readers = access.get(view, ("scoped", frozenset()))
            out[view] = _Layer(frozenset(tables | {view}), audience, readers)
        return out


_caches: dict[str, ExtentCache] = {}
_caches_lock = threading.Lock()


def get_extent_cache(conninfo: str | None = None) -> ExtentCache:
    """The process-wide :class:`ExtentCache` of a database.

    Parameters
    ----------
    conninfo : str, optional
        Database; defaults to the application database (as :func:`spatial.db.get_pool`).

    Returns
    -------
    ExtentCache
        One per connection string.
    """
    from spatial.db import database_conninfo

    key = conninfo if conninfo is not None else database_conninfo()
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = ExtentCache(key)
        return cache
