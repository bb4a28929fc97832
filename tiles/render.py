"""Render one tile of a layer set: one SQL statement for all its layers.

The statement is composed from the templates in ``tiles/sql/`` with
identifiers taken only from the checked spec (:mod:`tiles.spec`), and every
value bound: tile bounds, pixel size, extent, buffer, time range. Its text
depends only on the set, the matrix set, the zoom *level* of each layer and
whether a time filter is given, so psycopg prepares it after a few uses and
PostgreSQL plans it once per connection.

Layers are read through their views ``layers.<id>`` as the requesting user
(:func:`tile_connection`), so row-level security and masking apply exactly as
for features.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from psycopg import AsyncConnection, AsyncRawCursor, sql
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from spatial.access import SERVING_ROLE, Principal
from spatial.db import AsyncPool
from spatial.errors import AuthenticationError, PermissionDeniedError
from spatial.params import parse_datetime as parse_datetime_param
from tiles import tms as tmslib
from tiles.spec import LayerSet, LayerSpec, Level

LOGGER = logging.getLogger(__name__)

#: MVT extent (coordinate units per tile side) and buffer (units beyond it).
EXTENT = 4096
BUFFER = 64

#: A named placeholder, or ``%%`` (a literal percent sign) of a composed statement.
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")
#: ``datetime`` bounds when one side is open.
_OPEN_START = datetime(1, 1, 1, tzinfo=UTC)
_OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class RenderedTile:
    """An uncompressed Mapbox Vector Tile and what it holds.

    Attributes
    ----------
    data : bytes
        The MVT (empty for a tile without features).
    truncated : tuple of str
        Layers whose rows exceeded their ``max_features`` cap.
    layers : tuple of str
        Layers of the set queried at this zoom (those holding features are in ``data``).
    """

    data: bytes
    truncated: tuple[str, ...]
    layers: tuple[str, ...]


@functools.cache
def _template(name: str) -> str:
    text = (resources.files("tiles") / "sql" / f"{name}.sql").read_text(encoding="utf-8")
    # Comments stay in the files; the statement sent is the SQL only.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


def parse_datetime(value: str | None) -> tuple[datetime, datetime] | None:
    """An OGC ``datetime`` parameter as a closed interval with both ends set.

    Read as on every route (:func:`spatial.params.parse_datetime`: times
    without an offset are UTC, a date alone is that whole day); an open end
    becomes the earliest or latest representable instant.

    Returns
    -------
    tuple of datetime or None
        ``(start, end)``, None when no filter was asked for.

    Raises
    ------
    InvalidInputError
        For a value that is not an RFC 3339 instant or interval.

    Examples
    --------
    >>> parse_datetime("2026-10-28/..")[0].isoformat()
    '2026-10-28T00:00:00+00:00'
    >>> parse_datetime("yesterday")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: datetime must be RFC 3339 (2026-01-01T08:00:00Z) or ...
    """
    if value is None:
        return None
    start, end = parse_datetime_param(value)
    return start or _OPEN_START, end or _OPEN_END


def _order(layer: LayerSpec) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("v.{} {}").format(sql.Identifier(c), sql.SQL("DESC" if d else "ASC"))
        for c, d in layer.order)


def _layer_query(layer: LayerSpec, level: Level, tms_id: str, timed: bool) -> sql.Composed:
    column, srid = tmslib.GEOMETRY[tms_id]
    if column == "geom_3857" and "geom_3857" not in layer.columns:
        # A view without the stored column: integer SRID, never a text CRS per row.
        geom: sql.Composable = sql.SQL("ST_Transform(v.geom, 3857)")
    else:
        geom = sql.SQL("v.{}").format(sql.Identifier(column))
    point = (layer.geometry_type or "").endswith("POINT")
    shape = geom
    if level.simplify_px > 0 and not point:
        shape = sql.SQL("ST_Simplify({}, %(px)s * {}, true)").format(
            geom, sql.Literal(level.simplify_px))
    envelope = sql.SQL(
        "ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, {})").format(sql.Literal(srid))
    buffered = sql.SQL(
        "ST_MakeEnvelope(%(bminx)s, %(bminy)s, %(bmaxx)s, %(bmaxy)s, {})").format(
            sql.Literal(srid))
    time: sql.Composable = sql.SQL("")
    if timed and layer.time_field:
        time = sql.SQL(" AND v.{t} >= %(t0)s AND v.{t} <= %(t1)s").format(
            t=sql.Identifier(layer.time_field))
    elif layer.default_window and layer.time_field:
        time = sql.SQL(" AND v.{t} >= now() - {w}::interval").format(
            t=sql.Identifier(layer.time_field), w=sql.Literal(layer.default_window))
    parts: dict[str, sql.Composable] = {
        "view": sql.Identifier("layers", layer.id), "geom": geom, "shape": shape,
        "envelope": envelope, "buffered": buffered, "time": time,
        "limit": sql.Literal(layer.max_features + 1), "srid": sql.Literal(srid),
    }
    if level.kind == "features":
        parts["props"] = sql.SQL("").join(
            sql.SQL(", v.{}").format(sql.Identifier(p)) for p in level.properties)
        parts["order"] = _order(layer)
    elif level.kind == "count_by":
        parts["key"] = sql.Identifier(str(level.key))
    elif level.kind == "grid":
        parts["cell"] = sql.Literal(level.cell_px)
        # Split by a checked column (never with a rollup, tiles/spec.py): the
        # cells' key gains it (grid.sql's {by} and {by_c}).
        parts["by"] = parts["by_c"] = sql.SQL("")
        if level.by:
            parts["by"] = sql.SQL(", v.{}").format(sql.Identifier(level.by))
            parts["by_c"] = sql.SQL(", c.{}").format(sql.Identifier(level.by))
        if level.rollup:
            parts.update(_rollup_window(layer, timed))
            parts["rollup"] = sql.Identifier("rollup", level.rollup)
    elif level.kind == "lines":
        parts["key"] = sql.Identifier(str(level.key))
        ordered = sql.SQL("ST_MakeLine({} ORDER BY v.{})").format(
            geom, sql.Identifier(level.order or "id"))
        parts["line_shape"] = (
            sql.SQL("ST_Simplify({}, %(px)s * {}, true)").format(
                ordered, sql.Literal(level.simplify_px))
            if level.simplify_px > 0 else ordered)
    template = "grid_rollup" if level.kind == "grid" and level.rollup else level.kind
    return sql.SQL(_template(template)).format(**parts)


def _rollup_window(layer: LayerSpec, timed: bool) -> dict[str, sql.Composable]:
    """The time window of a rollup level, its whole hours and its partial ends.

    With ``datetime=`` these are bound values (:func:`tile_params`); for the
    default window of a live layer, SQL expressions of ``now()``.
    """
    if timed:  # values, whole hours included: the planner sees the ranges
        return {"t": sql.Identifier(str(layer.time_field)),
                **{k: sql.SQL(f"%({k})s::timestamptz")
                   for k in ("t0", "t1", "h0", "h1", "a1", "b0")}}
    t0: sql.Composable
    t1: sql.Composable
    if layer.default_window:
        t0 = sql.SQL("(now() - {}::interval)").format(sql.Literal(layer.default_window))
        t1 = sql.SQL("now()")
    else:
        t0, t1 = sql.SQL("'-infinity'::timestamptz"), sql.SQL("'infinity'::timestamptz")
    h0 = sql.SQL("(date_trunc('hour', {} - interval '1 microsecond', 'UTC') "
                 "+ interval '1 hour')").format(t0)
    h1 = sql.SQL("date_trunc('hour', {}, 'UTC')").format(t1)
    a1 = sql.SQL("least({}, {} + interval '1 microsecond')").format(h0, t1)
    return {"t": sql.Identifier(str(layer.time_field)), "t0": t0, "t1": t1, "h0": h0, "h1": h1,
            "a1": a1, "b0": sql.SQL("greatest({}, {})").format(h1, a1)}


def _mvt_columns(level: Level) -> list[str]:
    if level.kind == "features":
        return ["geom", "id", *level.properties]
    return ["geom", *level.carried]


@dataclass(frozen=True)
class TilePlan:
    """The statement of a layer set at one level of one matrix set.

    Attributes
    ----------
    query : psycopg.sql.Composed
        The statement with named placeholders (``%(minx)s`` …).
    layers : tuple of LayerSpec
        The layers it renders, in column order.
    check_read : bool
        Whether its last column says if the caller may read the collection.
    text : str
        The same statement with PostgreSQL's positional placeholders
        (``$1`` …), composed once: sent as it is, without psycopg composing
        and parsing a long statement for every tile.
    names : tuple of str
        The parameter of each position of ``text``.
    """

    query: sql.Composed
    layers: tuple[LayerSpec, ...]
    check_read: bool
    text: str = ""
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, query: sql.Composed, layers: tuple[LayerSpec, ...],
           check_read: bool) -> TilePlan:
        """A plan with its positional form.

        Examples
        --------
        >>> p = TilePlan.of(sql.SQL("SELECT %(a)s, {}, %(b)s || %(a)s, 5 %% 2").format(
        ...     sql.Literal("x")), (), False)
        >>> p.text, p.names
        ("SELECT $1, 'x', $2 || $1, 5 % 2", ('a', 'b'))
        """
        names: list[str] = []

        def position(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        # Literals are quoted without a connection: every one here is ASCII or
        # UTF-8 text, the database's encoding.
        text = _PLACEHOLDER.sub(position, query.as_string(None))
        return cls(query, layers, check_read, text, tuple(names))

    def params(self, values: dict[str, Any]) -> list[Any]:
        """The values of :func:`tile_params` in the order of ``text``."""
        return [values[n] for n in self.names]


@functools.lru_cache(maxsize=4096)
def plan(layerset: LayerSet, tms_id: str, z: int, timed: bool) -> TilePlan:
    """The one statement rendering every layer of ``layerset`` in a tile at level ``z``.

    Cached: the statement is the same for every tile of a level.
    """
    zoom = tmslib.web_zoom(tms_id, z)
    ctes: list[sql.Composable] = []
    columns: list[sql.Composable] = []
    included: list[LayerSpec] = []
    for layer in layerset.layers:
        level = layer.level(zoom)
        if level is None:
            continue
        i = len(included)
        included.append(layer)
        cte = sql.Identifier(f"l{i}")
        ctes.append(sql.SQL(
            "{} AS (SELECT q.*, row_number() OVER () AS _n FROM ({}) AS q)").format(
                cte, _layer_query(layer, level, tms_id, timed)))
        cols = _mvt_columns(level)
        feature_id = sql.SQL(", 'id'") if level.kind == "features" else sql.SQL("")
        columns.append(sql.SQL(
            "(SELECT ST_AsMVT(t, {name}, {extent}, 'geom'{fid}) FROM (SELECT {cols} FROM {cte} "
            "WHERE geom IS NOT NULL AND _n <= {cap}) AS t), (SELECT count(*) FROM {cte})").format(
                name=sql.Literal(layer.id), extent=sql.Literal(EXTENT), fid=feature_id,
                cols=sql.SQL(", ").join(map(sql.Identifier, cols)), cte=cte,
                cap=sql.Literal(layer.max_features)))
    check_read = layerset.kind == "collection"
    if check_read:
        columns.append(sql.SQL("onemap.can_read({})").format(sql.Literal(layerset.id)))
    if not included:
        query = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(columns) if columns else sql.SQL("true"))
    else:
        query = sql.SQL(_template("tile")).format(
            ctes=sql.SQL(",\n").join(ctes), columns=sql.SQL(",\n").join(columns))
    return TilePlan.of(query, tuple(included), check_read)


def tile_params(tms_id: str, z: int, y: int, x: int,
                datetime_range: tuple[datetime, datetime] | None) -> dict[str, Any]:
    """The values bound to a tile's statement."""
    b = tmslib.tile_bounds(tms_id, z, y, x)
    margin = b.width * BUFFER / EXTENT
    params: dict[str, Any] = {
        "minx": b.minx, "miny": b.miny, "maxx": b.maxx, "maxy": b.maxy,
        "bminx": b.minx - margin, "bminy": b.miny - margin,
        "bmaxx": b.maxx + margin, "bmaxy": b.maxy + margin,
        "px": b.width / 256, "extent": EXTENT, "buffer": BUFFER,
    }
    if datetime_range is not None:
        t0, t1 = params["t0"], params["t1"] = datetime_range
        # The whole UTC hours inside the window (rollup levels): [h0, h1).
        h0 = t0.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        params["h0"] = h0 if h0 == t0 else h0 + timedelta(hours=1)
        params["h1"] = t1.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        # Rows counted one by one: [t0, a1) and [b0, t1]; b0 > t1 (nothing)
        # when the window lies within one hour.
        params["a1"] = min(params["h0"], t1 + timedelta(microseconds=1))
        params["b0"] = max(params["h1"], params["a1"])
    return params


async def render(conn: AsyncConnection[Any], layerset: LayerSet, tms_id: str, z: int, x: int,
                 y: int, datetime_range: tuple[datetime, datetime] | None = None,
                 principal: Principal | None = None) -> RenderedTile:
    """Render one tile.

    Parameters
    ----------
    conn : psycopg.AsyncConnection
        From :func:`tile_connection` (acting as the caller).
    layerset : LayerSet
        A collection's or a theme's layers.
    tms_id : str
        Tile matrix set.
    z, x, y : int
        Checked tile coordinates (:func:`tiles.tms.parse_tile`).
    datetime_range : tuple of datetime, optional
        Time filter for layers with a time field.
    principal : Principal, optional
        The caller, for the message when a collection may not be read.

    Returns
    -------
    RenderedTile

    Raises
    ------
    AuthenticationError, PermissionDeniedError
        A collection (not a theme) the caller may not read; a theme just
        leaves out the layers the caller may not read.
    """
    p = plan(layerset, tms_id, z, datetime_range is not None)
    row = await fetch_row(conn, p.text, p.params(tile_params(tms_id, z, y, x, datetime_range)),
                          positional=True)
    assert row is not None
    if p.check_read and not row[-1]:
        refuse(layerset.id, principal)
    parts: list[bytes] = []
    truncated: list[str] = []
    for i, layer in enumerate(p.layers):
        mvt, count = row[2 * i], row[2 * i + 1]
        if mvt:
            parts.append(bytes(mvt))
        if count > layer.max_features:
            truncated.append(layer.id)
            LOGGER.info("tile %s/%s/%s/%s/%s: layer %s capped at %d features",
                        layerset.id, tms_id, z, y, x, layer.id, layer.max_features)
    return RenderedTile(b"".join(parts), tuple(truncated), tuple(lyr.id for lyr in p.layers))


async def fetch_row(conn: AsyncConnection[Any], query: Any, params: Any = None, *,
                    row_factory: Any = tuple_row, positional: bool = False) -> Any:
    """The first row of a query (a tuple by default).

    ``positional``: the query has PostgreSQL's ``$1`` placeholders and is sent
    as it is (:class:`psycopg.AsyncRawCursor`). A task cancelled while
    PostgreSQL works (its client went away) makes psycopg send the server a
    cancel request, so the query does not run on for nobody
    (tests/api/test_real_clients.py holds a lock to show it).
    """
    cursor = (AsyncRawCursor(conn, row_factory=row_factory) if positional
              else conn.cursor(row_factory=row_factory))
    async with cursor as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


def refuse(layer_id: str, principal: Principal | None) -> None:
    """Raise the 401 (anonymous) or 403 for a layer the caller may not read.

    Raises
    ------
    AuthenticationError, PermissionDeniedError
    """
    if principal is None or principal.is_anonymous:
        raise AuthenticationError(
            f"layer {layer_id!r} is not public: sign in / 图层 {layer_id} 不公开，请先登录")
    raise PermissionDeniedError(
        f"your role may not read layer {layer_id!r} / 当前角色无权查看图层 {layer_id}")


async def _configure(conn: AsyncConnection[Any]) -> None:
    # The tile pool only serves requests: its sessions run as the serving role
    # for good, so each tile needs just the caller's id (one round trip with it).
    await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(SERVING_ROLE)))


async def _reset(conn: AsyncConnection[Any]) -> None:
    await conn.execute("SELECT set_config('onemap.user_id', '', false)")


def make_pool(conninfo: str, max_size: int = 16) -> AsyncPool:
    """A bounded pool of autocommit connections acting as the serving role.

    Parameters
    ----------
    conninfo : str
        The application database.
    max_size : int
        At most this many tile queries run at once; more wait for a connection
        (:data:`spatial.db.WAIT_SECONDS`, then 503).

    Returns
    -------
    spatial.db.AsyncPool
        Not yet open (``await pool.open()`` inside the serving event loop). While
        the database is away it answers :class:`~spatial.errors.DatabaseUnavailableError`
        at once, and after a restart hands out new connections only.
    """
    return AsyncPool(
        conninfo, min_size=2, max_size=max_size, open=False, name="onemap-tiles",
        kwargs={"autocommit": True, "application_name": "onemap-tiles",
                "prepare_threshold": 2},
        configure=_configure, reset=_reset,
    )


@asynccontextmanager
async def tile_connection(pool: AsyncConnectionPool,
                          principal: Principal) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection acting as ``principal`` (row-level security, masks).

    The caller's id is set for the session before each use and cleared when
    the connection goes back (the pool's ``reset``).

    Raises
    ------
    DatabaseUnavailableError
        The database is away, the connection was lost, or none came free
        (:class:`spatial.db.AsyncPool`).
    """
    async with pool.connection() as conn:
        await conn.execute(
            "SELECT set_config('onemap.user_id', %s, false)",
            ("" if principal.user_id is None else str(principal.user_id),))
        yield conn


__all__ = ["RenderedTile", "fetch_row", "make_pool", "parse_datetime", "plan", "render",
           "tile_connection"]
