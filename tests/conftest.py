"""Shared fixtures: a real PostGIS, a template database built once, a clone per test.

Tests that need the database skip only when none is reachable; with
``ONEMAP_REQUIRE_DB=1`` (CI) a skipped database test fails the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from spatial.settings import database_conninfo

DB_FIXTURES = {"server_conninfo", "template_db", "db", "conn", "tiny_city_db"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


#: Drops test clones in the background (one at a time); drained at session end.
_DROPPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-clone")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _DROPPER.shutdown(wait=True)
    if not os.environ.get("ONEMAP_REQUIRE_DB"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [
        r
        for r in (reporter.stats.get("skipped", []) if reporter else [])
        if "db" in getattr(r, "keywords", {})
    ]
    if skipped:
        if reporter:
            reporter.write_line(f"ONEMAP_REQUIRE_DB: {len(skipped)} database tests were skipped")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def server_conninfo() -> str:
    """Connection string of the server under test (the application database)."""
    info = database_conninfo()
    try:
        with psycopg.connect(info, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"no database reachable ({type(exc).__name__}); run `make test`")
    return info


def _admin(info: str) -> psycopg.Connection[Any]:
    return psycopg.connect(info, autocommit=True)


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_uvicorn(env: dict[str, str], log: Path) -> Iterator[str]:
    """``uvicorn server.app:create_app`` in a subprocess on a free port; yields its URL.

    ``env`` is added to the environment (``DATABASE_URL`` …); ``ONEMAP_URL`` and
    no-proxy settings are set here. Output goes to ``log``; the test fails with
    its tail if the server exits or does not answer within 120 s (a bound on
    start-up, not a speed check). The server is stopped on exit.
    """
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full = {**os.environ, **env, "ONEMAP_URL": url, "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost"}
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=Path(__file__).resolve().parents[1], env=full, stdout=out,
            stderr=subprocess.STDOUT)

    def tail() -> str:
        return log.read_text(encoding="utf-8", errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"uvicorn exited {proc.returncode}:\n{tail()}")
            try:
                if httpx.get(f"{url}/conformance?f=json", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not answer:\n{tail()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_database(info: str, name: str, template: str | None = None) -> str:
    """Create a database on the server and return its connection string."""
    with _admin(info) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_conninfo(name)


def drop_database(info: str, name: str) -> None:
    # An autovacuum worker in the clone can make FORCE fail for a role without
    # pg_signal_backend (an external server): retry for a few seconds.
    stmt = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(20):
        try:
            with _admin(info) as conn:
                conn.execute(stmt)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 19:
                raise
            time.sleep(0.25)


@contextmanager
def generated_city(server_conninfo: str, template: str, label: str, scale: str = "S",
                   seed: int = 1, steps: tuple[str, ...] | None = None
                   ) -> Iterator[tuple[str, Any]]:
    """A clone of ``template`` with a generated city in it, dropped afterwards.

    Yields its conninfo and the generator's report (:class:`democity.GenerationReport`);
    ``steps`` as :func:`democity.generate` takes them (the city is always built).
    """
    from democity import generate

    name = f"onemap_t_{label}_{uuid.uuid4().hex[:8]}"
    info = create_database(server_conninfo, name, template=template)
    try:
        with psycopg.connect(info, autocommit=True) as conn:
            report = generate(conn, scale, seed, steps=steps)
        yield info, report
    finally:
        drop_database(server_conninfo, name)


@pytest.fixture(scope="session")
def template_db(server_conninfo: str) -> Iterator[str]:
    """Name of a database with every migration applied, built once per session."""
    from spatial.migrate import migrate

    name = f"onemap_tpl_{os.getpid()}"
    info = create_database(server_conninfo, name)
    with psycopg.connect(info, autocommit=True) as conn:
        migrate(conn)
    yield name
    drop_database(server_conninfo, name)


TINY_CITY = Path(__file__).parent / "data" / "tiny_city.sql"


@pytest.fixture(scope="session")
def tiny_template_db(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Name of a clone of the template holding the tiny city, built once per session.

    Loading ``tiny_city.sql`` takes about five times as long as cloning a
    database, and some 500 tests start from the tiny city.
    """
    name = f"onemap_tiny_{os.getpid()}"
    info = create_database(server_conninfo, name, template=template_db)
    with psycopg.connect(info, autocommit=True) as conn, conn.transaction():
        conn.execute(TINY_CITY.read_text(encoding="utf-8").encode("utf-8"))
    yield name
    drop_database(server_conninfo, name)


@pytest.fixture
def db(request: pytest.FixtureRequest, server_conninfo: str, template_db: str) -> Iterator[str]:
    """Connection string of a fresh clone of the template, dropped after the test.

    A test that uses ``tiny_city_db`` gets a clone of the tiny-city template
    (the same database its ``db`` and ``conn`` fixtures see).
    """
    from spatial.catalog import clear_cache

    template = template_db
    if "tiny_city_db" in request.fixturenames:
        template = request.getfixturevalue("tiny_template_db")
    name = f"onemap_t_{uuid.uuid4().hex[:10]}"
    info = create_database(server_conninfo, name, template=template)
    yield info
    from spatial.db import close_pools

    close_pools()
    clear_cache()
    # Dropping waits for the server to remove files: do it beside the next test.
    _DROPPER.submit(drop_database, server_conninfo, name)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection (dict rows) to a fresh clone."""
    from spatial.db import connect

    with connect(db, autocommit=True) as c:
        yield c


@pytest.fixture
def tiny_city_db(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh clone holding the hand-made tiny city (tests/data/tiny_city.sql),
    whose answers are known; the application is pointed at it.

    ``db`` clones it from :func:`tiny_template_db`.
    """
    monkeypatch.setenv("DATABASE_URL", db)
    return db


@pytest.fixture
def tiny_city_ids(tiny_city_db: str) -> dict[str, int]:
    """Ids of the tiny city's units: district, street_office, community, grid1
    (west of 116.47) and grid2 (east)."""
    with psycopg.connect(tiny_city_db) as conn:
        return dict(conn.execute(
            """
            SELECT 'district', min(id) FROM onemap.district
            UNION ALL SELECT 'street_office', min(id) FROM onemap.street_office
            UNION ALL SELECT 'community', min(id) FROM onemap.community
            UNION ALL SELECT 'grid1', id FROM onemap.grid WHERE code = '110105001001-01'
            UNION ALL SELECT 'grid2', id FROM onemap.grid WHERE code = '110105001001-02'
            """
        ).fetchall())


@pytest.fixture
def client(tiny_city_db: str) -> Iterator[Any]:
    """A client of the real ASGI application, reading the tiny city."""
    from starlette.testclient import TestClient

    from server.app import create_app

    with TestClient(create_app()) as c:
        yield c


class ClientAs:
    """A TestClient's requests sent with a user's credentials.

    Every role of a test shares one client (one application start-up: job
    worker, tile listener, pools) instead of starting the app once per role.
    """

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def _send(self, method: str, *args: Any, headers: dict[str, str] | None = None,
              **kwargs: Any) -> Any:
        return getattr(self.client, method)(*args, headers={**self.headers, **(headers or {})},
                                            **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("get", *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("post", *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("put", *args, **kwargs)

    def patch(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("patch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("delete", *args, **kwargs)

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("head", *args, **kwargs)

    def options(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("options", *args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("request", *args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._send("stream", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def make_client(tiny_city_db: str) -> Iterator[Any]:
    """Factory of clients of the real application acting as a new user.

    ``make_client(["grid_worker"], [("grid", 3)])`` creates a user with those
    roles and data scope in the tiny city and returns a client that sends the
    user's API key with every request; ``make_client([])`` is anonymous.
    """
    from starlette.testclient import TestClient

    from server.app import create_app
    from spatial import auth, users
    from spatial.db import connect

    with TestClient(create_app()) as client:

        def make(roles: list[str], scopes: list[tuple[str, int]] = ()) -> ClientAs:  # type: ignore[assignment]
            headers = {}
            if roles:
                with connect(tiny_city_db) as conn, conn.transaction():
                    name = f"u{uuid.uuid4().hex[:8]}"
                    users.create_user(conn, name, None, roles=roles, scopes=scopes)
                    key = auth.create_api_key(conn, name, label="test")
                headers["X-API-Key"] = key.key
            return ClientAs(client, headers)

        yield make


@pytest.fixture
def staff_client(make_client: Any, tiny_city_db: str) -> Any:
    """A client acting as a district administrator of the tiny city's district."""
    with psycopg.connect(tiny_city_db) as conn:
        (district,) = conn.execute("SELECT min(id) FROM onemap.district").fetchone()  # type: ignore[misc]
    return make_client(["district_admin"], [("district", district)])
