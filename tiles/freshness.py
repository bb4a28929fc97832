"""Fresh tiles after every edit: listen to ``onemap_tiles`` and drop what changed.

Migration ``150_tiles.sql`` makes every write to a tiled table — through the
API, ``onemap import`` or ``psql`` — bump ``onemap.tile_version`` and send,
at commit, ``NOTIFY onemap_tiles`` with the table and the EPSG:4490 box of
its old and new geometries. Every server process runs one :class:`Listener`
(a daemon thread with its own connection) that turns each message into
:meth:`tiles.cache.TileCache.invalidate` for the layer sets drawing that
table: a collection's layer set, and every theme containing it. A table
counts for a collection when the view ``layers.<id>`` reads it (residents'
view reads households and buildings, so moving a household refreshes the
resident tiles too).

Messages sent while nobody listened are lost, so after any gap in listening
the listener drops what may have changed meanwhile. On start, the disk cache
(the only one that outlived the gap) is checked against the versions of
``onemap.tile_version`` the previous server recorded, and the sets whose
tables changed are dropped. On every reconnect — a database restart, a
dropped connection — the whole cache goes, memory and disk: the versions
cannot vouch for what a restart may come with (a restore or a fail-over can
bring back version numbers already seen, with other rows; a migration
redefining a layer view or a load with triggers disabled bumps none), and a
reconnect is rare enough for the re-renders not to matter.

While the database is away the listener tries again every
:data:`AWAY_RETRY_SECONDS` and, once connected, LISTENs before anything else,
so that it hears changes as soon as the database is back; the outage is
logged when it begins and when it ends.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg

from spatial.db import CONNECT_TIMEOUT, database_away, listen_connection
from tiles.cache import TileCache, clear_scope_cache
from tiles.spec import view_tables

LOGGER = logging.getLogger(__name__)

#: The notification channel of ``150_tiles.sql``.
CHANNEL = "onemap_tiles"

#: Seconds between attempts to connect again while the database is away (a
#: restart, an outage: :func:`spatial.db.database_away`). A refused
#: connection costs nothing; a longer pause leaves cached tiles unrefreshed
#: that much longer after the database is back.
AWAY_RETRY_SECONDS = 1.0

#: Seconds between attempts after any other failure, growing to the second value.
RETRY_SECONDS = (0.5, 10.0)

_MANIFEST = "versions.json"


def layersets_from_spec(spec: Any) -> dict[str, tuple[str, ...]]:
    """Layer set id → collection ids, from a :class:`tiles.spec.TileSpec`.

    Every collection with tiles is a layer set of its own; every theme is one
    of its layers.
    """
    out: dict[str, tuple[str, ...]] = {lid: (lid,) for lid in spec.layers}
    for tid, theme in spec.themes.items():
        out[tid] = tuple(layer.id for layer in theme.layers)
    return out


def table_layersets(conn: psycopg.Connection[Any],
                    layersets: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Which layer sets draw each table.

    Parameters
    ----------
    conn : psycopg.Connection
        Any connection to the application database.
    layersets : mapping
        Layer set id → collection ids.

    Returns
    -------
    dict
        Table name (schema ``onemap``) → layer set ids.
    """
    reads = view_tables(conn)
    out: dict[str, set[str]] = {}
    for set_id, collections in layersets.items():
        for cid in collections:
            for table in reads.get(cid, {cid}):
                out.setdefault(table, set()).add(set_id)
    return {t: frozenset(s) for t, s in out.items()}


class Listener:
    """Invalidate a :class:`TileCache` from ``onemap_tiles`` notifications.

    Call the instance to stop it (a start-up hook's shutdown callable).

    Parameters
    ----------
    cache : TileCache
        The process's cache; its ``layersets`` say which sets draw what.
    conninfo : str, optional
        Database; defaults to the application database.
    """

    def __init__(self, cache: TileCache, conninfo: str | None = None) -> None:
        self.cache = cache
        self.conninfo = conninfo
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self._synced: set[str] = set()
        self._tables: dict[str, frozenset[str]] = {}
        self._versions: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="onemap-tiles-listen",
                                        daemon=True)
        self.handled = 0

    # -- life cycle ----------------------------------------------------------

    def start(self, wait: float = 10.0) -> Listener:
        """Start the thread; wait up to ``wait`` s until it listens."""
        self._thread.start()
        if not self._ready.wait(wait):
            LOGGER.warning("tile listener not connected after %.0f s; retrying in the "
                           "background", wait)
        return self

    def __call__(self) -> None:
        """Stop listening (idempotent).

        The thread sees the stop within a second (its ``notifies`` timeout);
        a wake-up message on the channel ends that wait at once. Other
        listeners ignore the message.
        """
        self._stop.set()
        if not self._thread.is_alive():
            return
        try:
            with psycopg.connect(self._conninfo(), autocommit=True,
                                 connect_timeout=CONNECT_TIMEOUT) as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"wake": True})))
        except psycopg.Error:
            pass  # the database is gone: the timeout ends the wait
        self._thread.join(timeout=5)

    stop = __call__

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until every notification committed before this call is handled.

        PostgreSQL delivers notifications in commit order, so once a marker
        sent now comes back, every earlier change has been applied to the
        cache. Tests use it instead of sleeping.

        Returns
        -------
        bool
            False when the marker did not come back within ``timeout`` s.
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            while True:
                # resent each second: a listener reconnecting may miss one
                conn.execute("SELECT pg_notify(%s, %s)",
                             (CHANNEL, json.dumps({"sync": token})))
                left = deadline - time.monotonic()
                with self._cond:
                    if self._cond.wait_for(lambda: token in self._synced, min(1.0, left)):
                        self._synced.discard(token)
                        return True
                if left <= 1.0:
                    return False

    # -- the thread ------------------------------------------------------------

    def _conninfo(self) -> str:
        if self.conninfo is not None:
            return self.conninfo
        from spatial.settings import database_conninfo

        return database_conninfo()

    def _run(self) -> None:
        delay = RETRY_SECONDS[0]
        listened = False  # listened before: connecting again ends a gap
        listening = False
        lost: float | None = None  # when the outage under way began (it is logged once)
        while not self._stop.is_set():
            try:
                # First of all, it listens: from here on no change goes unheard.
                with listen_connection(self._conninfo(), CHANNEL, "onemap-tiles") as conn:
                    # Tiles held before the first connection were cached unheard too.
                    self._catch_up(conn, gap=listened or len(self.cache) > 0)
                    if lost is not None:
                        LOGGER.warning("tile listener: listening again after %.1f s away; "
                                       "the tile cache is dropped", time.monotonic() - lost)
                        lost = None
                    listened = listening = True
                    delay = RETRY_SECONDS[0]
                    self._ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._handle(note.payload)
                            if self._stop.is_set():
                                break
            except Exception as exc:  # any failure: connect again
                was_listening, listening = listening, False
                if self._stop.is_set():
                    break
                if not database_away(exc):
                    LOGGER.warning("tile listener: %s; connecting again in %.1f s",
                                   type(exc).__name__, delay)
                    LOGGER.debug("tile listener failure", exc_info=True)
                    self._stop.wait(delay)
                    delay = min(delay * 2, RETRY_SECONDS[1])
                    continue
                if lost is None:
                    lost = time.monotonic()
                    LOGGER.warning("tile listener: %s (%s); trying again every %.0f s",
                                   "lost its connection" if was_listening
                                   else "cannot connect", type(exc).__name__,
                                   AWAY_RETRY_SECONDS)
                if not was_listening:
                    # A restart or an outage: try every AWAY_RETRY_SECONDS, not a
                    # back-off that would leave the cache unrefreshed for seconds
                    # after the database is back. A connection just lost is tried
                    # again at once (a lone dropped connection costs no pause).
                    self._stop.wait(AWAY_RETRY_SECONDS)

    def _catch_up(self, conn: psycopg.Connection[Any], *, gap: bool) -> None:
        """Map tables to sets, then drop what may have changed while nobody listened.

        Parameters
        ----------
        conn : psycopg.Connection
            The listening connection.
        gap : bool
            True when this process's cache holds tiles cached while nobody
            listened (a reconnect): the whole cache is dropped, memory and
            disk, and the scope classes with it. False on the first
            connection with nothing in memory: only the disk cache can be
            stale, and its record of versions says which sets are.
        """
        self._tables = table_layersets(conn, self.cache.layersets)
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, version FROM onemap.tile_version")
            current = {str(t): int(v) for t, v in cur.fetchall()}
        if gap:
            self.cache.clear()
            clear_scope_cache()
        elif self.cache.disk_root() is not None:
            seen = self._read_manifest()
            if seen is None:  # a disk cache without a record of versions: trust nothing
                changed = set(self._tables) if not self._disk_is_empty() else set()
            else:
                changed = {t for t, v in current.items() if seen.get(t) != v}
            sets: set[str] = set()
            for table in changed:
                sets |= self._tables.get(table, frozenset())
            if sets:
                LOGGER.info("tiles of %s changed while not listening; dropping them",
                            sorted(sets))
                self.cache.invalidate(sets, None)
        self._versions = dict(current)
        self._write_manifest()

    def _handle(self, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            LOGGER.warning("ignoring a malformed onemap_tiles message")
            return
        if "wake" in msg:  # a listener stopping (see __call__)
            return
        if "sync" in msg:
            with self._cond:
                self._synced.add(str(msg["sync"]))
                self._cond.notify_all()
            return
        table = str(msg.get("table"))
        bbox = msg.get("bbox")
        sets = self._tables.get(table, frozenset())
        if sets and bbox is not None:
            try:
                box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
            except (TypeError, ValueError, IndexError):
                LOGGER.warning("onemap_tiles: bad bbox for %s; dropping the sets", table)
                self.cache.invalidate(sets, None)
            else:
                self.cache.invalidate(sets, box)
        version = msg.get("version")
        if isinstance(version, int):
            self._versions[table] = max(version, self._versions.get(table, 0))
            self._write_manifest()
        self.handled += 1

    # -- the disk cache's record of versions -------------------------------------

    def _manifest_path(self) -> Path | None:
        root = self.cache.disk_root()
        return None if root is None else root / _MANIFEST

    def _disk_is_empty(self) -> bool:
        root = self.cache.disk_root()
        return root is None or not root.exists() or not any(
            p.is_dir() for p in root.iterdir() if not p.name.startswith("."))

    def _read_manifest(self) -> dict[str, int] | None:
        path = self._manifest_path()
        if path is None:
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in data.items()}
        except FileNotFoundError:
            return None
        except (ValueError, AttributeError, TypeError):
            LOGGER.warning("damaged %s; the disk tile cache is dropped", path)
            return None

    def _write_manifest(self) -> None:
        path = self._manifest_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._versions, f, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:
            LOGGER.warning("could not record tile versions: %s", exc)


def start_listener(cache: TileCache, *, conninfo: str | None = None,
                   wait: float = 10.0) -> Listener:
    """Start invalidating ``cache`` from database notifications.

    Parameters
    ----------
    cache : TileCache
        With its layer sets set (:meth:`TileCache.set_layersets`).
    conninfo : str, optional
        Database; defaults to the application database.
    wait : float
        Seconds to wait for the first connection before returning.

    Returns
    -------
    Listener
        Call it to stop; ``.sync()`` waits until earlier edits are applied.

    Examples
    --------
    In :func:`server.app.create_app`::

        startup_hooks.append(lambda: start_listener(cache))
    """
    return Listener(cache, conninfo).start(wait)


def listener_hook(cache: TileCache) -> Callable[[], Listener]:
    """A start-up hook for the app: starts a listener, returns its stop callable."""
    return lambda: start_listener(cache)
