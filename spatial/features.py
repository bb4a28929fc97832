"""Reading features as GeoJSON, assembled inside PostGIS.

The OGC API provider is a thin adapter over this module: it turns request
parameters into a :class:`FeatureQuery` and returns what :func:`query_features`
answers. Values are always bound; identifiers are checked against the catalog
(:mod:`spatial.catalog`) and quoted with :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from spatial.catalog import Column, Table, get_table
from spatial.cql import to_sql as cql_to_sql
from spatial.db import SCHEMA, fetch_tuples
from spatial.errors import InvalidInputError, NotFoundError
from spatial.params import parse_bbox

LOGGER = logging.getLogger(__name__)

#: Above this many matches ``numberMatched`` is left out instead of counted.
COUNT_CAP = 10_000
#: Largest page a caller may ask for.
MAX_LIMIT = 10_000
#: Decimal places of output coordinates (1e-7° ≈ 1 cm).
COORD_PRECISION = 7
#: Decimal places of projected output coordinates (metres: 1 mm).
PROJECTED_PRECISION = 3
#: Geographic CRSs whose coordinates are degrees.
GEOGRAPHIC_SRIDS = frozenset({4326, 4490})
#: Most comma-separated terms a ``q`` text search may hold, and most characters per term.
MAX_SEARCH_TERMS = 20
MAX_SEARCH_TERM_CHARS = 100
#: Column types a ``q`` text search looks in (``information_schema`` data types).
TEXT_TYPES = frozenset({"text", "character varying", "character"})
#: Integer id columns and the range of their values (``udt_name``).
_INTEGER_RANGES = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}
_INTEGER = re.compile(r"[+-]?[0-9]{1,25}")  # ASCII digits only, unlike \d


@dataclass(frozen=True)
class FeatureQuery:
    """What a caller asks of a collection.

    Attributes
    ----------
    limit, offset : int
        Paging.
    bbox : tuple of float, optional
        ``(minx, miny, maxx, maxy)`` in longitude/latitude; features whose
        geometry intersects the box are selected (see :func:`bbox_condition`).
    datetime_range : tuple, optional
        ``(start, end)``; either may be None for an open end.
    equals : dict
        Property → value, compared as text.
    select : tuple of str
        Properties to return (empty: all).
    sortby : tuple of (str, bool)
        Property and ascending flag.
    skip_geometry : bool
        Leave geometries out.
    hits_only : bool
        Count, return no features.
    cql : pygeofilter.ast.Node, optional
        A CQL2 filter (see :func:`spatial.cql.parse_filter`).
    cql_northing_first : bool
        The filter's geometry literals have latitude first (as pygeoapi
        passes them after transforming them into EPSG:4490).
    out_srid : int, optional
        Output geometries in this EPSG code (transformed in PostGIS); None keeps
        the stored CGCS2000 longitude/latitude (which is CRS84 to the centimetre).
    out_northing_first : bool
        Output coordinates northing (latitude) first, as EPSG:4326/4490 and the
        CGCS2000 Gauss-Krüger CRSs declare their axes.
    text : tuple of str
        A text search (``q``, see :func:`parse_text_search`): features where
        any of these terms occurs in a text property.
    """

    limit: int = 10
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    datetime_range: tuple[datetime | None, datetime | None] | None = None
    equals: dict[str, Any] = field(default_factory=dict)
    select: tuple[str, ...] = ()
    sortby: tuple[tuple[str, bool], ...] = ()
    skip_geometry: bool = False
    hits_only: bool = False
    cql: Any = None
    cql_northing_first: bool = False
    out_srid: int | None = None
    out_northing_first: bool = False
    text: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.limit <= MAX_LIMIT:
            raise InvalidInputError(f"limit must be between 0 and {MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise InvalidInputError(f"offset must not be negative, got {self.offset}")
        if self.bbox is not None:
            parse_bbox(self.bbox)  # the one rule set: four finite lon/lat numbers, min ≤ max


def parse_text_search(value: str) -> tuple[str, ...]:
    """Parse a ``q`` parameter (OGC API Features Part 9, Text Search).

    Terms are separated by commas and any of them may match (logical OR); the
    words of one term must occur in that order, separated by any white space.

    Parameters
    ----------
    value : str
        The parameter as received, e.g. ``ocean,climate change``.

    Returns
    -------
    tuple of str
        The terms, white space inside each collapsed to one space, repeats
        left out; empty for a ``q`` without any (no text search, as pygeoapi
        takes an empty ``q``: an HTML search box sent empty).

    Raises
    ------
    InvalidInputError
        When it holds more than :data:`MAX_SEARCH_TERMS` terms, a term longer
        than :data:`MAX_SEARCH_TERM_CHARS` characters, or a NUL character.

    Examples
    --------
    >>> parse_text_search("Lamp, climate \\t change,lamp")
    ('Lamp', 'climate change', 'lamp')
    >>> parse_text_search(" , ")
    ()
    >>> parse_text_search(",".join(map(str, range(21))))
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: q holds 21 search terms; at most 20 are accepted \
/ 请求参数有误
    """
    if "\x00" in value:
        raise InvalidInputError("q must not contain a NUL character / 请求参数有误")
    terms = tuple(dict.fromkeys(" ".join(t.split()) for t in value.split(",") if t.strip()))
    if len(terms) > MAX_SEARCH_TERMS:
        raise InvalidInputError(
            f"q holds {len(terms)} search terms; at most {MAX_SEARCH_TERMS} are accepted"
            " / 请求参数有误")
    long = [t for t in terms if len(t) > MAX_SEARCH_TERM_CHARS]
    if long:
        raise InvalidInputError(
            f"q: a search term has at most {MAX_SEARCH_TERM_CHARS} characters, got "
            f"{len(long[0])} ({long[0][:20]!r}…) / 请求参数有误")
    return terms


def _regex_literal(word: str) -> str:
    """``word`` as a PostgreSQL regular expression matching it literally.

    Every ASCII character that is not a letter, digit or underscore is
    escaped; a backslash before a non-alphanumeric character is that
    character in PostgreSQL's advanced regular expressions.
    """
    return "".join(
        "\\" + ch if ch.isascii() and not (ch.isalnum() or ch == "_") else ch for ch in word
    )


def search_columns(table: Table) -> tuple[Column, ...]:
    """The properties a ``q`` text search looks in: the table's published text columns.

    Examples
    --------
    >>> from spatial.catalog import Column, Table
    >>> t = Table("lamp", (Column("id", "bigint", "int8"), Column("code", "text", "text"),
    ...                    Column("status", "text", "text"),
    ...                    Column("geom", "USER-DEFINED", "geometry")))
    >>> [c.name for c in search_columns(t)]
    ['code', 'status']
    """
    return tuple(c for c in table.published if c.data_type in TEXT_TYPES)


def text_condition(table: Table, terms: tuple[str, ...]) -> tuple[sql.Composable, list[Any]]:
    """SQL selecting rows of ``t`` where any term occurs in a text property.

    Parameters
    ----------
    table : Table
        The layer view (or table) read as ``t``.
    terms : tuple of str
        As :func:`parse_text_search` returns them.

    Returns
    -------
    tuple
        The condition (``FALSE`` when the table has no text property) and its
        bound values: one case-insensitive regular expression per column
        (``~*``), its alternatives the terms, each taken literally with any
        white space between its words.

    Examples
    --------
    >>> from spatial.catalog import Column, Table
    >>> t = Table("road", (Column("name", "text", "text"), Column("code", "text", "text")))
    >>> condition, params = text_condition(t, ("ring road", "a.b"))
    >>> params
    ['ring[[:space:]]+road|a\\\\.b', 'ring[[:space:]]+road|a\\\\.b']
    """
    columns = search_columns(table)
    if not columns:
        return sql.SQL("FALSE"), []
    pattern = "|".join(
        "[[:space:]]+".join(_regex_literal(word) for word in term.split(" ")) for term in terms
    )
    condition = sql.SQL(" OR ").join(
        sql.SQL("t.{} ~* %s").format(sql.Identifier(c.name)) for c in columns
    )
    return sql.SQL("({})").format(condition), [pattern] * len(columns)


def bbox_condition(table: Table, bbox: tuple[float, float, float, float]
                   ) -> tuple[sql.Composable, list[Any]]:
    """SQL selecting rows of ``t`` whose geometry intersects a longitude/latitude box.

    The one bbox test of every items path (the streaming route, the pygeoapi
    provider, the exporter): ``&&`` first, so the spatial index is used — it
    is the operator PostgreSQL admits into an index scan under row-level
    security once marked LEAKPROOF, which ``ST_Intersects`` is not — then
    ``ST_Intersects``, so a feature whose envelope overlaps the box while its
    geometry stays outside is not returned.

    Parameters
    ----------
    table : Table
        With a ``geom`` column.
    bbox : tuple of float
        ``(minx, miny, maxx, maxy)`` in longitude/latitude.

    Returns
    -------
    tuple
        The condition and its bound values.

    Examples
    --------
    >>> from spatial.catalog import Column, Table
    >>> t = Table("lamp", (Column("geom", "USER-DEFINED", "geometry"),),
    ...           {"geom": ("POINT", 4490)})
    >>> condition, params = bbox_condition(t, (116.4, 39.9, 116.5, 40.0))
    >>> params
    [116.4, 39.9, 116.5, 40.0, 116.4, 39.9, 116.5, 40.0]
    """
    srid = sql.Literal(table.geometry["geom"][1])
    envelope = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(srid)
    condition = sql.SQL("(t.geom && {box} AND ST_Intersects(t.geom, {box}))").format(
        box=envelope)
    values = [float(v) for v in bbox]
    return condition, values + values


def check_cursor(conn: psycopg.Connection[Any], table: Table, id_field: str,
                 value: str) -> str:
    """Check a keyset ``cursor`` (the last id of the previous page) against the id's type.

    Integer ids are checked here (digits, within the column's range); text ids
    take any text; other types (uuid …) are cast by PostgreSQL, so whatever
    fits the column passes.

    Parameters
    ----------
    conn : psycopg.Connection
        Used only for an id type checked by a cast.
    table : Table
        The layer view.
    id_field : str
        Its id column.
    value : str
        The cursor as received.

    Returns
    -------
    str
        The cursor, ready to bind (an integer without sign or spaces around it).

    Raises
    ------
    InvalidInputError
        Naming ``cursor``, the type it must have and the value received (cut
        to 40 characters).
    """
    column = table.column(id_field)
    shown = repr(value if len(value) <= 40 else value[:40] + "…")
    if column.udt in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[column.udt]
        text = value.strip()
        if _INTEGER.fullmatch(text) and low <= int(text) <= high:
            return str(int(text))
        raise InvalidInputError(
            f"cursor must be the id of a {table.name} feature, an integer between {low} and "
            f"{high} (the last id of the previous page), got {shown} / 请求参数有误")
    if "\x00" in value:
        raise InvalidInputError(f"cursor must not contain a NUL character, got {shown}")
    if column.data_type in TEXT_TYPES:
        return value
    if column.udt == "uuid":
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    else:
        try:
            with conn.transaction():  # a savepoint: the caller's transaction goes on
                fetch_tuples(conn, sql.SQL("SELECT CAST(%s AS {})").format(
                    sql.Identifier(column.udt)), (value,))
            return value
        except psycopg.errors.DataError:
            pass
    raise InvalidInputError(
        f"cursor must be the id of a {table.name} feature ({column.data_type}; the last id "
        f"of the previous page), got {shown} / 请求参数有误")


class _Builder:
    """Composes the WHERE clause of a feature query for one table."""

    def __init__(self, table: Table, time_field: str | None) -> None:
        self.table = table
        self.time_field = time_field
        self.where: list[sql.Composable] = []
        self.params: list[Any] = []

    def add(self, q: FeatureQuery) -> None:
        if q.bbox is not None and "geom" in self.table.geometry:
            condition, values = bbox_condition(self.table, q.bbox)
            self.where.append(condition)
            self.params.extend(values)
        if q.text:
            condition, values = text_condition(self.table, q.text)
            self.where.append(condition)
            self.params.extend(values)
        if q.datetime_range is not None:
            if not self.time_field:
                raise InvalidInputError(f"{self.table.name} has no time to filter by datetime")
            start, end = q.datetime_range
            col = sql.Identifier(self.table.column(self.time_field).name)
            if start is not None:
                self.where.append(sql.SQL("t.{} >= %s").format(col))
                self.params.append(start)
            if end is not None:
                self.where.append(sql.SQL("t.{} <= %s").format(col))
                self.params.append(end)
        for name, value in q.equals.items():
            prop = self.table.column(self._property(name))
            # Cast the value, not the column, so an index on the column is usable.
            self.where.append(
                sql.SQL("t.{} = CAST(%s AS {})").format(
                    sql.Identifier(prop.name), sql.Identifier(prop.udt)
                )
            )
            self.params.append(str(value))
        if q.cql is not None:
            fragment, params = cql_to_sql(q.cql, self.table, northing_first=q.cql_northing_first)
            self.where.append(fragment)
            self.params.extend(params)

    def _property(self, name: str) -> str:
        try:
            col = self.table.column(name)
        except NotFoundError as exc:
            raise InvalidInputError(str(exc)) from None
        if col.is_geometry:
            raise InvalidInputError(f"{name!r} is a geometry, not a property")
        if col not in self.table.published:
            raise InvalidInputError(f"{self.table.name} has no property {name!r}")
        return col.name

    def clause(self) -> sql.Composable:
        if not self.where:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self.where)


def _feature_sql(table: Table, q: FeatureQuery, id_field: str) -> sql.Composable:
    """SQL of one feature object built from row ``t``."""
    published = [c.name for c in table.published if c.name != id_field]
    if q.select:
        unknown = [p for p in q.select if p not in published]
        if unknown:
            raise InvalidInputError(f"unknown properties for {table.name}: {', '.join(unknown)}")
        names = list(q.select)
    else:
        names = published
    # Properties are listed, never `to_jsonb(row)`: a column added later (or a
    # personal one) is not published by accident.
    props: sql.Composable = sql.SQL("json_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, t.{}").format(sql.Literal(p), sql.Identifier(p)) for p in names
        )
    )
    geometry: sql.Composable
    if q.skip_geometry or "geom" not in table.geometry:
        geometry = sql.SQL("NULL::json")
    else:
        geom: sql.Composable = sql.SQL("t.geom")
        precision = COORD_PRECISION
        if q.out_srid is not None and q.out_srid != table.geometry["geom"][1]:
            geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(int(q.out_srid)))
            if q.out_srid not in GEOGRAPHIC_SRIDS:
                precision = PROJECTED_PRECISION
        if q.out_northing_first:
            geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
        geometry = sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(geom, sql.Literal(precision))
    return sql.SQL(
        "json_build_object('type', 'Feature', 'id', t.{id}, 'geometry', {geometry}, "
        "'properties', {props})"
    ).format(id=sql.Identifier(id_field), geometry=geometry, props=props)


def query_features(
    conn: psycopg.Connection[Any],
    table_name: str,
    q: FeatureQuery,
    *,
    id_field: str = "id",
    time_field: str | None = None,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """Return a GeoJSON FeatureCollection of a table's rows.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    table_name : str
        Table or view of the application schema.
    q : FeatureQuery
        Filters, paging and selection.
    id_field : str
        Column holding the feature id.
    time_field : str, optional
        Column the ``datetime`` filter applies to.
    schema : str
        ``onemap`` or ``layers`` (the published views).

    Returns
    -------
    dict
        ``type``, ``features``, ``numberReturned`` and, when at most
        :data:`COUNT_CAP` rows match, ``numberMatched``.

    Raises
    ------
    InvalidInputError
        For unknown properties or a datetime filter on a table without time.
    NotFoundError
        For an unknown table.
    """
    table = get_table(conn, table_name, schema=schema)
    table.column(id_field)
    builder = _Builder(table, time_field)
    builder.add(q)
    relation = sql.SQL("{}.{} AS t").format(
        sql.Identifier(table.schema), sql.Identifier(table.name)
    )
    where = builder.clause()

    matched = count_matches(conn, table_name, q, time_field=time_field, schema=schema)
    out: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if matched is not None:
        out["numberMatched"] = matched
    if q.hits_only:
        out["numberReturned"] = 0
        return out

    order: list[sql.Composable] = [
        sql.SQL("t.{} {}").format(
            sql.Identifier(builder._property(name)), sql.SQL("ASC" if asc else "DESC")
        )
        for name, asc in q.sortby
    ]
    order.append(sql.SQL("t.{}").format(sql.Identifier(id_field)))
    query = sql.SQL(
        "SELECT coalesce(json_agg(f.feature ORDER BY f.n), '[]')::text AS features FROM ("
        "SELECT {feature} AS feature, row_number() OVER () AS n FROM ("
        "SELECT * FROM {relation} {where} ORDER BY {order} LIMIT %s OFFSET %s) t) f"
    ).format(
        feature=_feature_sql(table, q, id_field),
        relation=relation,
        where=where,
        order=sql.SQL(", ").join(order),
    )
    text = fetch_tuples(conn, query, [*builder.params, q.limit, q.offset])[0][0]
    out["features"] = json.loads(text)
    out["numberReturned"] = len(out["features"])
    return out


def get_feature(
    conn: psycopg.Connection[Any],
    table_name: str,
    identifier: str | int,
    *,
    id_field: str = "id",
    out_srid: int | None = None,
    out_northing_first: bool = False,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """Return one feature by id.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    table_name : str
        Table or view of the application schema.
    identifier : str or int
        The feature id.
    id_field : str
        Column holding the feature id.
    out_srid, out_northing_first : int, bool
        Output CRS and axis order, as in :class:`FeatureQuery`.
    schema : str
        ``onemap`` or ``layers`` (the published views).

    Returns
    -------
    dict
        A GeoJSON Feature.

    Raises
    ------
    NotFoundError
        When no row has this id.
    """
    table = get_table(conn, table_name, schema=schema)
    id_col = table.column(id_field)
    query = sql.SQL(
        "SELECT {feature}::text AS feature FROM {schema}.{table} AS t "
        "WHERE t.{id} = CAST(%s AS {type})"
    ).format(
        feature=_feature_sql(
            table, FeatureQuery(out_srid=out_srid, out_northing_first=out_northing_first),
            id_field,
        ),
        schema=sql.Identifier(table.schema),
        table=sql.Identifier(table.name),
        id=sql.Identifier(id_col.name),
        type=sql.Identifier(id_col.udt),
    )
    try:
        rows = fetch_tuples(conn, query, (str(identifier),))
    except psycopg.errors.DataError:
        rows = []  # an id that cannot be of the column's type matches nothing
    if not rows:
        raise NotFoundError(f"{table.name} has no feature {identifier!s}")
    result: dict[str, Any] = json.loads(rows[0][0])
    return result


@contextmanager
def _value_errors() -> Iterator[None]:
    """A filter value PostgreSQL cannot compare with its property is the caller's 400."""
    try:
        yield
    except (
        psycopg.errors.DataError,
        psycopg.errors.UndefinedFunction,  # e.g. a CQL2 sum of text and number
        psycopg.errors.DatatypeMismatch,
    ) as exc:
        raise InvalidInputError(
            f"a filter value does not fit its property: {exc.diag.message_primary}"
        ) from None


def count_matches(
    conn: psycopg.Connection[Any],
    table_name: str,
    q: FeatureQuery,
    *,
    time_field: str | None = None,
    schema: str = SCHEMA,
) -> int | None:
    """Count the rows a query matches, up to :data:`COUNT_CAP`.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    table_name : str
        Table or view.
    q : FeatureQuery
        Filters (paging is ignored).
    time_field : str, optional
        Column the ``datetime`` filter applies to.
    schema : str
        ``onemap`` or ``layers``.

    Returns
    -------
    int or None
        The count, or None when more than :data:`COUNT_CAP` rows match (the
        scan stops there: a page never counts a whole large table).

    Raises
    ------
    InvalidInputError
        For unknown properties or a filter value that does not fit its property.
    """
    table = get_table(conn, table_name, schema=schema)
    builder = _Builder(table, time_field)
    builder.add(q)
    relation = sql.SQL("{}.{} AS t").format(
        sql.Identifier(table.schema), sql.Identifier(table.name)
    )
    count_sql = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} {} LIMIT {}) c").format(
        relation, builder.clause(), sql.Literal(COUNT_CAP + 1)
    )
    with _value_errors():
        n = int(fetch_tuples(conn, count_sql, builder.params)[0][0])
    return n if n <= COUNT_CAP else None


def stream_features(
    conn: psycopg.Connection[Any],
    table_name: str,
    q: FeatureQuery,
    *,
    id_field: str = "id",
    time_field: str | None = None,
    schema: str = SCHEMA,
    after: Any = None,
    batch: int = 1000,
) -> Iterator[tuple[Any, str]]:
    """Yield features one by one from a server-side cursor.

    Memory stays bounded by ``batch`` rows whatever the page size: the
    streaming GeoJSON path of the API writes each feature out as it comes.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection inside a transaction (server-side cursors need one).
    table_name : str
        Table or view.
    q : FeatureQuery
        Filters, selection, output CRS, ``limit`` and ``offset``.
    id_field : str
        Column holding the feature id.
    time_field : str, optional
        Column the ``datetime`` filter applies to.
    schema : str
        ``onemap`` or ``layers``.
    after : optional
        Keyset paging: only rows whose id is greater, in id order (``q.sortby``
        must be empty); ``q.offset`` then skips rows after it. Check a cursor
        a caller sent with :func:`check_cursor` first.
    batch : int
        Rows fetched per round trip.

    Yields
    ------
    tuple
        ``(id, feature JSON text)``.

    Raises
    ------
    InvalidInputError
        For unknown properties, keyset paging with a sort order, or a filter
        value that does not fit its property.
    """
    table = get_table(conn, table_name, schema=schema)
    id_col = table.column(id_field)
    builder = _Builder(table, time_field)
    builder.add(q)
    params = list(builder.params)
    where = builder.clause()
    if after is not None:
        if q.sortby:
            raise InvalidInputError("cursor paging follows the id order; leave out sortby")
        key = sql.SQL("t.{} > CAST(%s AS {})").format(
            sql.Identifier(id_col.name), sql.Identifier(id_col.udt)
        )
        where = (where + sql.SQL(" AND ") + key) if builder.where else (sql.SQL(" WHERE ") + key)
        params.append(str(after))
    order: list[sql.Composable] = [
        sql.SQL("t.{} {}").format(
            sql.Identifier(builder._property(name)), sql.SQL("ASC" if asc else "DESC")
        )
        for name, asc in q.sortby
    ]
    order.append(sql.SQL("t.{}").format(sql.Identifier(id_col.name)))
    query = sql.SQL(
        "SELECT t.{id}, {feature}::text FROM {schema}.{table} AS t {where} "
        "ORDER BY {order} LIMIT %s OFFSET %s"
    ).format(
        id=sql.Identifier(id_col.name),
        feature=_feature_sql(table, q, id_field),
        schema=sql.Identifier(table.schema),
        table=sql.Identifier(table.name),
        where=where,
        order=sql.SQL(", ").join(order),
    )
    params.extend([q.limit, q.offset])
    with _value_errors(), conn.cursor(name="onemap_stream", row_factory=tuple_row) as cur:
        cur.itersize = batch
        cur.execute(query, params)
        for row in cur:
            yield row[0], row[1]
