"""Database access: connections, pools that survive a database restart, and SQL
shipped as package files.

The pools (:class:`Pool`, and :class:`AsyncPool` for the tile server) answer for
the database being away, so that no route has to:

- a pooled connection the server closed (a restart, ``pg_terminate_backend``)
  is noticed before it is handed out, without a round trip, and the pool drops
  the others with it: after a restart the next request gets a new connection;
- while the database is away, a request is refused at once with
  :class:`~spatial.errors.DatabaseUnavailableError` (HTTP 503) instead of
  waiting; one connection attempt at a time, at most every
  :data:`PROBE_SECONDS`, finds out it is back;
- a connection lost in use, or none free within :data:`WAIT_SECONDS` (busy),
  is a :class:`~spatial.errors.DatabaseUnavailableError` too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import select
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql as psql
from psycopg.conninfo import make_conninfo
from psycopg.pq import ConnStatus
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from spatial.errors import DatabaseUnavailableError
from spatial.settings import database_conninfo

LOGGER = logging.getLogger(__name__)

#: The application schema: every onemap table lives here.
SCHEMA = "onemap"

#: Seconds a request waits for a pooled connection while every one is busy; then 503.
WAIT_SECONDS = 10.0
#: Seconds libpq may take to open a connection (a server that does not answer at all).
CONNECT_TIMEOUT = 3
#: Seconds the pool retries a failed connection attempt before it gives the slot
#: up: new attempts are made as requests ask, never after a back-off of minutes
#: (psycopg_pool's default), so a pool is whole again as soon as the database is.
RECONNECT_SECONDS = 0.2
#: While the database is away, seconds between two connection attempts (probes).
PROBE_SECONDS = 0.25
#: Longest a request waits for a probe under way before it is refused.
PROBE_WAIT = 0.5

UNAVAILABLE = "the database is unavailable; retry shortly / 数据库暂不可用，请稍后重试"
LOST = "the database connection was lost; retry shortly / 数据库连接中断，请稍后重试"
BUSY = "every database connection is busy; retry shortly / 数据库繁忙，请稍后重试"

_pools: dict[str, Pool] = {}
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


#: Reads :func:`closed_by_server` makes at most (the goodbye, then the hang-up).
_MAX_READS = 4


def closed_by_server(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server closed an idle connection, found without a round trip.

    An idle connection has nothing to read unless the server said goodbye
    (``AdminShutdown`` at a restart, ``pg_terminate_backend``, an idle timeout)
    and hung up. libpq takes the goodbye for a notice and notices the hang-up
    only at the next read, so this reads while there is something to read.

    Parameters
    ----------
    conn : psycopg.Connection or psycopg.AsyncConnection
        A connection not in use.

    Returns
    -------
    bool
        True when it can no longer be used.
    """
    if conn.closed:
        return True
    pgconn = conn.pgconn
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    for _ in range(_MAX_READS):
        if not poller.poll(0):
            return False
        try:
            pgconn.consume_input()
        except psycopg.OperationalError:
            return True
        if pgconn.status != ConnStatus.OK:
            return True
    return False  # still more to read: messages arriving, not a hang-up


class Outage:
    """Whether a pool's database is away, and the probes that find out it is back.

    Thread-safe bookkeeping, no I/O: the pools connect. An outage begins when a
    connection is lost or closed by the server, or the pool gives up connecting;
    it ends when a connection is made.

    Parameters
    ----------
    name : str
        The pool's name, for the log.

    Examples
    --------
    >>> o = Outage("doc")
    >>> o.away, o.claim_probe()
    (False, False)
    >>> o.begin("a test"); o.away, o.claim_probe(), o.claim_probe()
    (True, True, False)
    >>> o.probe_done(True); o.away
    False
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._since: float | None = None
        self._probing = False
        self._next_probe = 0.0
        self._done = threading.Condition()

    @property
    def away(self) -> bool:
        """Whether the database is taken to be away."""
        return self._since is not None

    def begin(self, reason: str) -> None:
        """The database went away (logged once per outage)."""
        with self._done:
            if self._since is None:
                self._since = time.monotonic()
                self._next_probe = 0.0
                LOGGER.warning("pool %s: %s; answering 503 until a connection succeeds",
                               self.name, reason)

    def end(self) -> None:
        """A connection was made: the database is back."""
        with self._done:
            if self._since is not None:
                LOGGER.warning("pool %s: the database is back after %.1f s", self.name,
                               time.monotonic() - self._since)
                self._since = None
            self._done.notify_all()

    def claim_probe(self) -> bool:
        """Whether the caller should try a connection now: the database is away, no
        probe is under way and the last one began :data:`PROBE_SECONDS` ago."""
        with self._done:
            now = time.monotonic()
            if self._since is None or self._probing or now < self._next_probe:
                return False
            self._probing = True
            self._next_probe = now + PROBE_SECONDS
            return True

    def probe_done(self, connected: bool) -> None:
        """Record a probe's outcome and wake the callers waiting for it."""
        if connected:
            self.end()
        with self._done:
            self._probing = False
            self._done.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a probe under way; whether the database is back."""
        with self._done:
            self._done.wait_for(lambda: not self._probing, timeout)
            return self._since is None


def _pool_options(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What both pools pass to psycopg_pool."""
    return {
        "kwargs": {"connect_timeout": CONNECT_TIMEOUT, **kwargs},
        "name": name,
        "timeout": WAIT_SECONDS,
        "reconnect_timeout": RECONNECT_SECONDS,
    }


def _probe_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments of a probe's connection: only what connecting needs."""
    return {"connect_timeout": CONNECT_TIMEOUT,
            "application_name": kwargs.get("application_name", name)}


def _gave_up(pool: ConnectionPool[Any] | AsyncConnectionPool[Any]) -> None:
    """``reconnect_failed`` of both pools: an outage, unless other connections serve
    (a refusal for the server's ``max_connections``, say, is no outage)."""
    if isinstance(pool, Pool | AsyncPool) and not pool.get_stats().get("pool_size"):
        pool.outage.begin("cannot connect to the database")


class Pool(ConnectionPool[psycopg.Connection[Any]]):
    """The application's connection pool, aware of the database going away.

    A :class:`psycopg_pool.ConnectionPool` whose :meth:`getconn` hands out
    only connections the server has not closed, refuses at once while the
    database is away, and whose :meth:`connection` turns a lost connection
    into :class:`~spatial.errors.DatabaseUnavailableError` (HTTP 503).

    Parameters
    ----------
    conninfo : str
        libpq connection string.
    kwargs : dict
        Connection arguments (``connect_timeout`` defaults to :data:`CONNECT_TIMEOUT`).
    configure : callable, optional
        Run on every new connection.
    name : str
        For the log.
    **options
        Passed to :class:`psycopg_pool.ConnectionPool` (``min_size``, ``max_size``, ...).
    """

    def __init__(self, conninfo: str, *, kwargs: dict[str, Any],
                 configure: Callable[[psycopg.Connection[Any]], None] | None = None,
                 name: str = "onemap", **options: Any) -> None:
        self.outage = Outage(name)
        self._probe_conninfo = conninfo
        self._probe_kwargs = _probe_kwargs(name, kwargs)
        self._on_connect = configure
        super().__init__(conninfo, **_pool_options(name, kwargs),
                         configure=self._connected, reconnect_failed=_gave_up, **options)

    def _connected(self, conn: psycopg.Connection[Any]) -> None:
        if self._on_connect is not None:
            self._on_connect(conn)
        self.outage.end()

    def _probe(self) -> None:
        connected = False
        try:
            psycopg.connect(self._probe_conninfo, **self._probe_kwargs).close()
            connected = True
        except psycopg.Error as exc:
            LOGGER.debug("pool %s: probe failed: %s", self.name, exc)
        finally:
            self.outage.probe_done(connected)

    def _reachable(self) -> bool:
        if not self.outage.away:
            return True
        if self.outage.claim_probe():
            threading.Thread(target=self._probe, name=f"{self.name}-probe", daemon=True).start()
        return self.outage.wait(PROBE_WAIT)

    def _take(self, timeout: float | None) -> psycopg.Connection[Any]:
        try:
            return super().getconn(timeout)
        except PoolTimeout as exc:
            if self.outage.away:
                raise DatabaseUnavailableError(UNAVAILABLE) from exc
            LOGGER.warning("pool %s: no connection free within %.1f s", self.name,
                           self.timeout if timeout is None else timeout)
            raise DatabaseUnavailableError(BUSY) from exc

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        """A connection the server has not closed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait while every connection is busy (default :data:`WAIT_SECONDS`).

        Returns
        -------
        psycopg.Connection

        Raises
        ------
        DatabaseUnavailableError
            At once while the database is away (at most :data:`PROBE_WAIT` when
            a probe is under way); after ``timeout`` when every connection stays busy.
        """
        if not self._reachable():
            raise DatabaseUnavailableError(UNAVAILABLE)
        conn = self._take(timeout)
        if not closed_by_server(conn):
            return conn
        self.putconn(conn)  # begins the outage and drops the rest
        if not self._reachable():
            raise DatabaseUnavailableError(UNAVAILABLE)
        return self._take(timeout)

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        """Give a connection back; a broken one ends every connection made before it."""
        broken = conn.broken
        super().putconn(conn)
        if broken:
            # A restart or shutdown closed them all: none is handed out again.
            self.outage.begin("a connection was closed by the server")
            self.drain()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """:meth:`psycopg_pool.ConnectionPool.connection`; a connection lost in use
        raises :class:`~spatial.errors.DatabaseUnavailableError`."""
        with super().connection(timeout) as conn:
            try:
                yield conn
            except psycopg.OperationalError as exc:
                if not conn.broken:
                    raise
                raise DatabaseUnavailableError(LOST) from exc


class AsyncPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """:class:`Pool` for asyncio (the tile server): the same rules, awaited.

    Parameters
    ----------
    conninfo : str
        libpq connection string.
    kwargs : dict
        Connection arguments (``connect_timeout`` defaults to :data:`CONNECT_TIMEOUT`).
    configure : coroutine function, optional
        Run on every new connection.
    name : str
        For the log.
    **options
        Passed to :class:`psycopg_pool.AsyncConnectionPool` (``min_size``, ``reset``, ...).
    """

    def __init__(self, conninfo: str, *, kwargs: dict[str, Any],
                 configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]
                 | None = None,
                 name: str = "onemap-async", **options: Any) -> None:
        self.outage = Outage(name)
        self._probe_conninfo = conninfo
        self._probe_kwargs = _probe_kwargs(name, kwargs)
        self._on_connect = configure
        self._probe_task: asyncio.Task[None] | None = None
        super().__init__(conninfo, **_pool_options(name, kwargs),
                         configure=self._connected, reconnect_failed=_gave_up, **options)

    async def _connected(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._on_connect is not None:
            await self._on_connect(conn)
        self.outage.end()

    async def _probe(self) -> None:
        connected = False
        try:
            conn = await psycopg.AsyncConnection.connect(self._probe_conninfo,
                                                         **self._probe_kwargs)
            await conn.close()
            connected = True
        except psycopg.Error as exc:
            LOGGER.debug("pool %s: probe failed: %s", self.name, exc)
        finally:
            self.outage.probe_done(connected)

    async def _reachable(self) -> bool:
        if not self.outage.away:
            return True
        if self.outage.claim_probe():
            self._probe_task = asyncio.ensure_future(self._probe())
        task = self._probe_task
        if task is not None and not task.done():
            # shield: a caller going away (a tile's client) leaves the probe running
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), PROBE_WAIT)
        return not self.outage.away

    async def _take(self, timeout: float | None) -> psycopg.AsyncConnection[Any]:
        try:
            return await super().getconn(timeout)
        except PoolTimeout as exc:
            if self.outage.away:
                raise DatabaseUnavailableError(UNAVAILABLE) from exc
            LOGGER.warning("pool %s: no connection free within %.1f s", self.name,
                           self.timeout if timeout is None else timeout)
            raise DatabaseUnavailableError(BUSY) from exc

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        """A connection the server has not closed (:meth:`Pool.getconn`).

        Raises
        ------
        DatabaseUnavailableError
            As :meth:`Pool.getconn`.
        """
        if not await self._reachable():
            raise DatabaseUnavailableError(UNAVAILABLE)
        conn = await self._take(timeout)
        if not closed_by_server(conn):
            return conn
        await self.putconn(conn)
        if not await self._reachable():
            raise DatabaseUnavailableError(UNAVAILABLE)
        return await self._take(timeout)

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Give a connection back; a broken one ends every connection made before it."""
        broken = conn.broken
        await super().putconn(conn)
        if broken:
            self.outage.begin("a connection was closed by the server")
            await self.drain()

    @asynccontextmanager
    async def connection(self, timeout: float | None = None
                         ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """:meth:`Pool.connection` for asyncio."""
        async with super().connection(timeout) as conn:
            try:
                yield conn
            except psycopg.OperationalError as exc:
                if not conn.broken:
                    raise
                raise DatabaseUnavailableError(LOST) from exc


def get_pool(conninfo: str | None = None, *, max_size: int = 10) -> Pool:
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
    Pool
        An open pool (:class:`Pool`: 503 rather than a wait or a 500 while the
        database is away).
    """
    key = conninfo if conninfo is not None else database_conninfo()
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = Pool(
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


def database_away(exc: BaseException) -> bool:
    """Whether an error says the database is away rather than that something failed.

    Parameters
    ----------
    exc : BaseException
        What a worker caught.

    Returns
    -------
    bool
        True for :class:`~spatial.errors.DatabaseUnavailableError` (the pool),
        a connection that could not be made or was lost (no SQLSTATE, class 08)
        and a server shutting down or starting (``57P01``–``57P04``); False
        for anything else, a cancelled query (``57014``) included.

    Examples
    --------
    >>> database_away(psycopg.errors.AdminShutdown())
    True
    >>> database_away(psycopg.errors.QueryCanceled())
    False
    """
    if isinstance(exc, DatabaseUnavailableError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


#: TCP keepalives of a long-lived listening connection: a database host that
#: vanishes without closing the socket (power loss, a partition) is noticed in
#: about a minute (30 s idle, then 3 probes 10 s apart) instead of the
#: operating system's default of two hours, so the listener reconnects.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
}


def listen_connection(conninfo: str, channel: str,
                      application_name: str) -> psycopg.Connection[Any]:
    """A dedicated autocommit connection that already listens on ``channel``.

    The job worker and the tile freshness listener wait on notifications
    for hours; they connect with :data:`CONNECT_TIMEOUT` and
    :data:`KEEPALIVES`, and ``LISTEN`` before anything else so that no
    notification sent after this returns goes unheard.

    Parameters
    ----------
    conninfo : str
        libpq connection string.
    channel : str
        A notification channel named by the code (``onemap_job``,
        ``onemap_tiles``), never by a caller.
    application_name : str
        Shown in ``pg_stat_activity``.

    Returns
    -------
    psycopg.Connection
        The listening connection; the caller closes it.

    Raises
    ------
    psycopg.OperationalError
        When the server cannot be reached (see :func:`database_away`).
    """
    conn = psycopg.connect(make_conninfo(conninfo, **KEEPALIVES), autocommit=True,
                           application_name=application_name, connect_timeout=CONNECT_TIMEOUT)
    try:
        conn.execute(psql.SQL("LISTEN {}").format(psql.Identifier(channel)))
    except BaseException:
        conn.close()
        raise
    return conn
