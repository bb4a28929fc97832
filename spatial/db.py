"""Database access: connections, a shared pool, and SQL shipped as package files."""

from __future__ import annotations

import functools
import logging
import threading
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool

from spatial.errors import DatabaseUnavailableError
from spatial.settings import database_conninfo

LOGGER = logging.getLogger(__name__)

#: The application schema: every onemap table lives here.
SCHEMA = "onemap"

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def connect(conninfo: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection to the application database.

    Parameters
    ----------
    conninfo : str, optional
        libpq connection string; defaults to :func:`spatial.settings.database_conninfo`.
    **kwargs
        Passed to :func:`psycopg.connect` (``autocommit=True`` for instance).

    Returns
    -------
    psycopg.Connection
        A connection whose rows are dictionaries.

    Raises
    ------
    DatabaseUnavailableError
        When the server cannot be reached; the message carries no DSN.
    """
    kwargs.setdefault("row_factory", dict_row)
    kwargs.setdefault("application_name", "onemap")
    try:
        return psycopg.connect(conninfo if conninfo is not None else database_conninfo(), **kwargs)
    except psycopg.OperationalError as exc:
        LOGGER.debug("connection failed: %s", exc)
        raise DatabaseUnavailableError(
            "cannot connect to the database; is it running? (`onemap db start`)"
        ) from exc


def fetch_tuples(
    conn: psycopg.Connection[Any], query: Any, params: Any = None
) -> list[tuple[Any, ...]]:
    """Run a query and return its rows as tuples, whatever the connection's row factory.

    Library code is called with dict-row connections (the pool, :func:`connect`)
    and plain ones (tests, scripts); this answers both the same way.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    query : str or psycopg.sql.Composable
        The statement.
    params : sequence or mapping, optional
        Bound values.

    Returns
    -------
    list of tuple
        The rows.
    """
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def fetch_dicts(
    conn: psycopg.Connection[Any], query: Any, params: Any = None
) -> list[dict[str, Any]]:
    """Run a statement and return its rows as dicts keyed by column name.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    query : str or psycopg.sql.Composable
        The statement.
    params : sequence or mapping, optional
        Bound values.

    Returns
    -------
    list of dict
        The rows; empty for a statement that returns none (no ``RETURNING``).
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def fetch_dict(
    conn: psycopg.Connection[Any], query: Any, params: Any = None
) -> dict[str, Any] | None:
    """The first row of :func:`fetch_dicts`, or None when there is none."""
    rows = fetch_dicts(conn, query, params)
    return rows[0] if rows else None


def get_pool(conninfo: str | None = None, *, max_size: int = 10) -> ConnectionPool:
    """Return the process-wide connection pool for a connection string.

    The pool is created on first use, bounded, and shared by every provider
    and process in the worker.

    Parameters
    ----------
    conninfo : str, optional
        libpq connection string; defaults to the application database.
    max_size : int
        Upper bound of open connections for a new pool.

    Returns
    -------
    psycopg_pool.ConnectionPool
        An open pool.
    """
    key = conninfo if conninfo is not None else database_conninfo()
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ConnectionPool(
                key,
                min_size=1,
                max_size=max_size,
                kwargs={"row_factory": dict_row, "application_name": "onemap", "autocommit": True},
                open=True,
                name="onemap",
            )
            _pools[key] = pool
        return pool


def close_pools() -> None:
    """Close every pool this process opened (tests, shutdown)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


@functools.cache
def sql_text(package: str, name: str) -> str:
    """Read an SQL file shipped inside a package.

    Parameters
    ----------
    package : str
        Dotted package holding the file, e.g. ``"spatial.sql"``.
    name : str
        File name, e.g. ``"010_admin.sql"``.

    Returns
    -------
    str
        The file's text.

    Examples
    --------
    >>> "onemap" in sql_text("spatial.sql", "000_migrations.sql")
    True
    """
    return (resources.files(package) / name).read_text(encoding="utf-8")
