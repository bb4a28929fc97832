"""What the database holds: tables, columns and geometry columns of the schema.

Identifiers coming from configuration or requests are checked against this
catalog before they are quoted into SQL (as tipg does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg

from spatial.db import SCHEMA, fetch_tuples
from spatial.errors import NotFoundError
from spatial.privacy import PERSONAL_COLUMNS

#: PostgreSQL type → JSON Schema type (and format) for queryables.
_JSON_TYPES: dict[str, tuple[str, str | None]] = {
    "smallint": ("integer", None),
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "numeric": ("number", None),
    "real": ("number", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "date": ("string", "date"),
    "timestamp with time zone": ("string", "date-time"),
    "timestamp without time zone": ("string", "date-time"),
    "time without time zone": ("string", "time"),
    "interval": ("string", "duration"),
    "uuid": ("string", "uuid"),
    "jsonb": ("object", None),
    "json": ("object", None),
    "ARRAY": ("array", None),
}


@dataclass(frozen=True)
class Column:
    """A column of a table.

    Attributes
    ----------
    name : str
        Column name.
    data_type : str
        ``information_schema`` data type (``USER-DEFINED`` for geometry).
    udt : str
        Underlying type name (``geometry``, ``int8``, ``_text`` …).
    """

    name: str
    data_type: str
    udt: str

    @property
    def is_geometry(self) -> bool:
        """Whether the column holds a PostGIS geometry."""
        return self.udt == "geometry"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the column's values (for queryables and schemas)."""
        kind, fmt = _JSON_TYPES.get(self.data_type, ("string", None))
        out: dict[str, Any] = {"type": kind}
        if fmt:
            out["format"] = fmt
        return out


@dataclass(frozen=True)
class Table:
    """A table or view of the application schema.

    Attributes
    ----------
    name : str
        Table or view name, unqualified.
    columns : tuple of Column
        In table order.
    geometry : dict
        Geometry column → (geometry type, SRID).
    schema : str
        :data:`spatial.db.SCHEMA` for the model's tables, :data:`LAYERS_SCHEMA`
        for the published layer views.
    """

    name: str
    columns: tuple[Column, ...]
    geometry: dict[str, tuple[str, int]] = field(default_factory=dict)
    schema: str = SCHEMA

    def column(self, name: str) -> Column:
        """Return a column by name.

        Raises
        ------
        NotFoundError
            When the table has no such column; the message names it.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise NotFoundError(f"{self.name} has no property {name!r}")

    @property
    def names(self) -> set[str]:
        """All column names."""
        return {c.name for c in self.columns}

    @property
    def properties(self) -> tuple[Column, ...]:
        """Columns that are not geometry."""
        return tuple(c for c in self.columns if not c.is_geometry)

    @property
    def published(self) -> tuple[Column, ...]:
        """Feature properties a caller may see.

        A layer view chose its columns and masks personal fields by role
        (``layers/*.sql``), so all of them but the tile geometry are
        published; of a base table, personal columns never are.
        """
        return tuple(
            c for c in self.properties
            if c.name not in _INTERNAL
            and (self.schema == LAYERS_SCHEMA or c.name not in PERSONAL_COLUMNS)
        )


#: Schema of the published layer views (``layers/*.sql``).
LAYERS_SCHEMA = "layers"

#: Columns kept for the server's own use: the stored Web Mercator copy for tiles.
_INTERNAL = frozenset({"geom_3857"})

#: Tables with a ``geom`` column that hold the server's own records, not the
#: city's: the features of job results (``142_job_features.sql``), each readable
#: by who may see its job only. Never a layer, never exported.
SYSTEM_GEOMETRY_TABLES = frozenset({"job_feature"})

_cache: dict[tuple[str, str, str], Table] = {}
_lock = threading.Lock()


def get_table(
    conn: psycopg.Connection[Any], name: str, *, schema: str = SCHEMA, refresh: bool = False
) -> Table:
    """Describe a table of the application schema, or a layer view.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection (dict rows).
    name : str
        Table or view name.
    schema : str
        ``onemap`` (tables) or ``layers`` (published views).
    refresh : bool
        Bypass the per-process cache.

    Returns
    -------
    Table
        Its columns and geometry columns.

    Raises
    ------
    NotFoundError
        When the schema holds no such table or view.
    """
    key = (conn.info.dsn, schema, name)
    with _lock:
        if not refresh and key in _cache:
            return _cache[key]
    rows = fetch_tuples(
        conn,
        """
        SELECT column_name, data_type, udt_name
        FROM information_schema.columns
        WHERE table_schema = %s AND table_name = %s
        ORDER BY ordinal_position
        """,
        (schema, name),
    )
    if not rows:
        raise NotFoundError(f"no table or view {name!r} in schema {schema!r}")
    cols = tuple(Column(*r) for r in rows)
    geoms = fetch_tuples(
        conn,
        """
        SELECT f_geometry_column, type, srid FROM geometry_columns
        WHERE f_table_schema = %s AND f_table_name = %s
        """,
        (schema, name),
    )
    table = Table(name, cols, {g[0]: (g[1], int(g[2])) for g in geoms}, schema)
    with _lock:
        _cache[key] = table
    return table


def geometry_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of the schema's tables (not views) that carry a ``geom`` column.

    The city's tables: :data:`SYSTEM_GEOMETRY_TABLES` are left out.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.

    Returns
    -------
    list of str
        Sorted table names; partitions are left out (their parent counts).
    """
    rows = fetch_tuples(
        conn,
        """
        SELECT g.f_table_name
        FROM geometry_columns g
        JOIN pg_class c ON c.relname = g.f_table_name
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = g.f_table_schema
        WHERE g.f_table_schema = %s AND g.f_geometry_column = 'geom'
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT g.f_table_name = ANY(%s)
        ORDER BY 1
        """,
        (SCHEMA, sorted(SYSTEM_GEOMETRY_TABLES)),
    )
    return [r[0] for r in rows]


def clear_cache() -> None:
    """Forget every described table (after migrations)."""
    with _lock:
        _cache.clear()
