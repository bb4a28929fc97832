"""The tile listener after its connection drops: listening again at once, cache dropped.

Notifications sent while the listener is not listening are lost, so on every
reconnect it drops the whole tile cache (memory and disk), whatever changed.

The shared cluster is never stopped. A dropped connection is the server's own
goodbye (``pg_terminate_backend``, what ``pg_ctl stop -m fast`` sends every
backend); an outage is a :class:`Gate` between the listener and the server
that, shut, hangs up on every new connection, as a server that is down or
restarting does as far as the client can tell.

Bounds, not speed: listening again within :data:`BACK_WITHIN` s of the
database being reachable. The listener retries every second while the
database is away; a back-off doubling to 8 s and more fails the bound.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.tiles.test_freshness import LAYERSETS, fill, key_at
from tiles.cache import TileCache, TileKey
from tiles.freshness import Listener, start_listener

#: Seconds within which the listener must listen again once the database is back.
BACK_WITHIN = 5.0
#: Connection attempts the gate hangs up on before it opens again: a back-off
#: doubling from 0.5 s has reached 8 s by then.
REFUSED_ATTEMPTS = 4

LAMP_AT = (116.456, 39.9175)  # on 示范路, among the lamps
ALLEY_AT = (116.465, 39.921)


class Gate:
    """A TCP door in front of the database, for the listener only.

    Open, it forwards every connection to the server of ``conninfo``; shut,
    it keeps the connections it has (the server ends them) and hangs up on
    every new one, counting them in :attr:`refused`.

    Parameters
    ----------
    conninfo : str
        The database behind the gate.
    """

    def __init__(self, conninfo: str) -> None:
        params = conninfo_to_dict(conninfo)
        host = str(params.get("host") or "/var/run/postgresql")
        port = str(params.get("port") or "5432")
        self._target: tuple[int, str | tuple[str, int]] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/")
            else (socket.AF_INET, (host, int(port))))
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.conninfo = make_conninfo(conninfo, host="127.0.0.1", hostaddr="127.0.0.1",
                                      port=str(self._server.getsockname()[1]),
                                      sslmode="disable", gssencmode="disable")
        self.is_open = True
        self.refused = 0
        self._closing = False
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="gate", daemon=True)
        self._thread.start()

    def shut(self) -> None:
        """Hang up on new connections from now on."""
        self.is_open = False

    def open(self) -> None:
        """Forward new connections again."""
        self.is_open = True

    def close(self) -> None:
        """Stop accepting and cut every forwarded connection."""
        self._closing = True
        self._thread.join(timeout=5)
        self._server.close()
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            if not self.is_open:
                self.refused += 1
                client.close()
                continue
            family, address = self._target
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.connect(address)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def cache(tmp_path: Path) -> TileCache:
    return TileCache(budget_bytes=16 << 20, disk_dir=tmp_path / "tiles", layersets=LAYERSETS)


@pytest.fixture
def gate(tiny_city_db: str) -> Iterator[Gate]:
    door = Gate(tiny_city_db)
    yield door
    door.close()


def _terminate_listener(db: str) -> None:
    """End the listener's backend with the server's goodbye; wait until it is gone."""
    with psycopg.connect(db, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = 'onemap-tiles' AND datname = current_database()"
        ).fetchall()
    assert ended == [(True,)]


def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _base_tiles(cache: TileCache) -> list[Path]:
    root = cache.disk_root()
    assert root is not None
    return list(root.rglob("*.tile"))


def _filled(cache: TileCache) -> tuple[TileKey, TileKey, TileKey]:
    """A lamp tile, an alley tile (nothing below changes alleys), a base tile (on disk)."""
    lamp = key_at(LAMP_AT, 16, "lamp")
    alley = key_at(ALLEY_AT, 16, "alleys")
    base = key_at(ALLEY_AT, 15, "base")
    fill(cache, [lamp, alley, base])
    assert lamp in cache and alley in cache and base in cache
    assert len(_base_tiles(cache)) == 1
    return lamp, alley, base


def _still_invalidates(cache: TileCache, listener: Listener, db: str) -> None:
    """Back to normal: a notification drops exactly the tiles it touches."""
    lamp, alley, _ = _filled(cache)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.lamp SET status = 'working'")
    assert listener.sync()
    assert lamp not in cache
    assert alley in cache
    assert len(_base_tiles(cache)) == 1


def test_a_dropped_connection_listens_again_and_drops_the_cache(
        cache: TileCache, tiny_city_db: str) -> None:
    listener = start_listener(cache, conninfo=tiny_city_db)
    try:
        lamp, alley, base = _filled(cache)
        _terminate_listener(tiny_city_db)
        assert listener.sync(timeout=BACK_WITHIN), "not listening again"
        # nothing changed, but what was sent meanwhile is lost: everything goes
        assert (lamp in cache, alley in cache, base in cache) == (False, False, False)
        assert _base_tiles(cache) == []
        _still_invalidates(cache, listener, tiny_city_db)
    finally:
        listener()


def test_after_an_outage_it_listens_again_at_once_and_drops_the_cache(
        cache: TileCache, tiny_city_db: str, gate: Gate,
        caplog: pytest.LogCaptureFixture) -> None:
    listener = start_listener(cache, conninfo=gate.conninfo)
    try:
        lamp, alley, base = _filled(cache)
        caplog.clear()
        caplog.set_level(logging.INFO, logger="tiles.freshness")

        gate.shut()  # the server goes down: goodbye to every backend, refuse new ones
        _terminate_listener(tiny_city_db)
        _until(lambda: gate.refused >= 1, BACK_WITHIN, "the listener did not try again")
        with psycopg.connect(tiny_city_db, autocommit=True) as conn:
            # a change the listener cannot hear of (think: just after the restart)
            conn.execute("UPDATE onemap.lamp SET status = 'fault'")
        _until(lambda: gate.refused >= REFUSED_ATTEMPTS, 60,
               "the listener stopped trying")
        assert lamp in cache  # nobody could tell while away

        gate.open()  # the server is back
        assert listener.sync(timeout=BACK_WITHIN), \
            f"not listening again within {BACK_WITHIN} s of the database being back"
        assert (lamp in cache, alley in cache, base in cache) == (False, False, False)
        assert _base_tiles(cache) == []

        # the outage logged once when it began, once when it ended; no stack
        records = [r for r in caplog.records if r.name == "tiles.freshness"]
        assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING], \
            [r.getMessage() for r in records]
        assert all(r.exc_info is None for r in records)

        _still_invalidates(cache, listener, tiny_city_db)
    finally:
        listener()


def test_tiles_cached_before_the_first_connection_are_dropped(tiny_city_db: str) -> None:
    """A server that served tiles before its listener first connected heard nothing
    of the changes made meanwhile (memory only: a disk cache has its own check)."""
    cache = TileCache(budget_bytes=16 << 20, disk_layersets=(), layersets=LAYERSETS)
    lamp, alley = key_at(LAMP_AT, 16, "lamp"), key_at(ALLEY_AT, 16, "alleys")
    fill(cache, [lamp, alley])
    listener = start_listener(cache, conninfo=tiny_city_db)
    try:
        assert len(cache) == 0
        fill(cache, [lamp, alley])
        with psycopg.connect(tiny_city_db, autocommit=True) as conn:
            conn.execute("UPDATE onemap.lamp SET status = 'fault'")
        assert listener.sync()
        assert (lamp in cache, alley in cache) == (False, True)
    finally:
        listener()
