"""Vector tiles side by side: onemap, pygeoapi, tipg and the raw SQL floor.

The workload is a reproducible random walk of 1920×1080 map views over the
demo city (its extent read from ``onemap.district``): view zoom 10–19,
fractional, so a view needs about 24 tiles of 256 px; tiles come from zoom
``floor(view zoom)``, capped at z18 — views above it are *overzoomed* from
z18 tiles as MapLibre does. Each view shows one layer set: the ``base`` theme
(several layers in one map) or a single layer.

The same views are served in the same run by

onemap
    ``uvicorn server.app:create_app`` as an analyst (API key made for the
    run): ``/tiles/{theme}/...`` for themes, ``/collections/{id}/tiles/...``
    for single layers — one request per tile. Skipped, with a message, while
    the tile engine is not in the app.
pygeoapi
    0.24's own ``MVT-postgresql`` provider on the same tables (a bench-only
    config in ``var/bench/``; psycopg2 is installed into
    ``var/bench/pydeps``, not into ``.venv``). It has no multi-layer tiles, so
    a themed tile costs one request per layer, as a client of it would send.
tipg
    in its own venv (``var/bench/tipg-venv``, made on first use with the
    interpreter running onemap and ``python -m pip``), on the same tables as the
    owner role, restricted to them; one request per layer, the bench's
    properties and ``geom-column=geom_3857`` (its best configuration).
sql
    the raw ``ST_AsMVTGeom``/``ST_AsMVT`` query for the same tile run directly
    with psycopg (one query per tile, layers concatenated, owner role, no
    row-level security): the floor no server can go below.

Loads: 1 client (views back to back) and N concurrent clients (default 150)
with exponential think time between views; each simulated client holds at
most 6 connections, like a browser. Cache: every load starts a fresh server
process with an empty tile cache (*cold*, first pass) and then replays the
same views (*warm*, second pass). Phases stop starting views after a deadline;
views not finished in time are counted, never hidden.

Reported per peer: per-view p50/p95 (a view's time runs until all its tiles
are in), tiles/s (map tiles: a themed tile counts once however many requests
it took), requests/s, median/max tile size (decoded bytes), errors; ratios
onemap : each peer and every server : raw SQL. A markdown table is printed and
the JSON written to ``var/bench/tiles-<time>.json`` (and ``tiles-latest.json``).

Run: ``make bench`` (full), or ``.venv/bin/onemap bench tiles --quick`` (a
couple of minutes at most), with the database up and the demo city loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from spatial.settings import database_conninfo, get_settings

WIDTH, HEIGHT = 1920, 1080
MAX_TILE_ZOOM = 18
ZOOM_RANGE = (10.0, 19.0)
BROWSER_CONNECTIONS = 6
R = 6378137.0
TMS = "WebMercatorQuad"


@dataclass(frozen=True)
class Layer:
    """A table served by every peer, with the properties the bench asks for."""

    table: str
    properties: tuple[str, ...]
    mercator: bool = True  # has the stored geom_3857 column


LAYERS = {
    "district": Layer("district", ("id", "name")),
    "street_office": Layer("street_office", ("id", "name")),
    "community": Layer("community", ("id", "name")),
    "grid": Layer("grid", ("id", "name", "level")),
    "road": Layer("road", ("id", "name", "road_class")),
    "building": Layer("building", ("id", "name", "building_type", "floors")),
    "land_use": Layer("land_use", ("id", "kind", "name")),
    "household": Layer("household", ("id", "building_id", "floor")),
    "lamp": Layer("lamp", ("id", "status", "power_w")),
    "pipe_segment": Layer("pipe_segment", ("id", "utility", "diameter_mm", "status")),
}
#: Layer sets a view shows, with their weight in the walk. ``base`` is a theme.
LAYERSETS: dict[str, tuple[str, ...]] = {
    "base": ("district", "street_office", "community", "grid", "road", "building", "land_use"),
    "building": ("building",),
    "road": ("road",),
    "household": ("household",),
    "lamp": ("lamp",),
    "pipe_segment": ("pipe_segment",),
}
THEMES = {"base"}
#: Lowest zoom each layer is served at (layers/tiles.yml ``minzoom``): a client reading
#: the TileJSON asks for nothing below it, so no peer is asked either.
MINZOOM: dict[str, int] = {}


def members_at(members: Sequence[str], z: int) -> tuple[str, ...]:
    """The layers of a set that are served at zoom ``z``."""
    return tuple(m for m in members if MINZOOM.get(m, 0) <= z)
WEIGHTS = {"base": 4, "building": 2, "road": 1, "household": 1, "lamp": 1, "pipe_segment": 1}


# --------------------------------------------------------------------------- workload

@dataclass(frozen=True)
class View:
    """One map view: its layer set, zoom, centre and the tiles it needs."""

    layerset: str
    zoom: float
    lon: float
    lat: float
    tiles: tuple[tuple[int, int, int], ...]  # (z, x, y)


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Fractional Web Mercator tile coordinates of a point at zoom ``z``."""
    n = 2**z
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return x, y


def view_tiles(lon: float, lat: float, zoom: float) -> tuple[tuple[int, int, int], ...]:
    """The tiles a 1920×1080 view centred at (lon, lat) and fractional zoom needs.

    >>> len(view_tiles(116.45, 39.92, 14.0))  # 256 px tiles: 8 × 5
    40
    >>> len(view_tiles(116.45, 39.92, 14.99)) < 24  # ~511 px tiles
    True
    """
    z = min(int(zoom), MAX_TILE_ZOOM)
    px = 256.0 * 2.0 ** (zoom - z)  # screen pixels per tile
    cx, cy = lonlat_to_tile(lon, lat, z)
    hw, hh = WIDTH / 2 / px, HEIGHT / 2 / px
    n = 2**z
    xs = range(max(0, math.floor(cx - hw)), min(n - 1, math.floor(cx + hw)) + 1)
    ys = range(max(0, math.floor(cy - hh)), min(n - 1, math.floor(cy + hh)) + 1)
    return tuple((z, x, y) for y in ys for x in xs)


def random_walk(
    seed: int, n: int, bbox: tuple[float, float, float, float], layersets: Sequence[str]
) -> list[View]:
    """A seeded random walk of ``n`` views over ``bbox`` (lon/lat).

    Pans by up to half a screen, zooms in or out by half a level, sometimes
    jumps (a search) to a random place and zoom, sometimes switches layer set.

    >>> a = random_walk(1, 5, (116.42, 39.90, 116.48, 39.94), ["base", "road"])
    >>> a == random_walk(1, 5, (116.42, 39.90, 116.48, 39.94), ["base", "road"])
    True
    """
    rng = random.Random(seed)
    xmin, ymin, xmax, ymax = bbox
    weights = [WEIGHTS.get(s, 1) for s in layersets]
    lon, lat = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
    zoom = rng.uniform(*ZOOM_RANGE)
    layerset = rng.choices(list(layersets), weights)[0]
    views = []
    for _ in range(n):
        z = min(int(zoom), MAX_TILE_ZOOM)
        shown = layerset if members_at(LAYERSETS.get(layerset, ()), z) else "base"
        views.append(View(shown, round(zoom, 3), lon, lat, view_tiles(lon, lat, zoom)))
        r = rng.random()
        if r < 0.1:
            lon, lat = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
            zoom = rng.uniform(*ZOOM_RANGE)
        elif r < 0.45:
            zoom = min(max(zoom + rng.choice((-0.5, 0.5)), ZOOM_RANGE[0]), ZOOM_RANGE[1])
        else:
            deg_per_px = 360.0 / (256.0 * 2.0**zoom)
            lon += rng.uniform(-0.5, 0.5) * WIDTH * deg_per_px
            lat += rng.uniform(-0.5, 0.5) * HEIGHT * deg_per_px * math.cos(math.radians(lat))
            lon, lat = min(max(lon, xmin), xmax), min(max(lat, ymin), ymax)
        if rng.random() < 0.2:
            layerset = rng.choices(list(layersets), weights)[0]
    return views


# --------------------------------------------------------------------------- peers

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def libpq_params() -> dict[str, str]:
    """The application database's libpq parameters (no password is ever used)."""
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(database_conninfo()).items()}


@dataclass
class TileResult:
    """One map tile as a peer served it."""

    size: int = 0
    requests: int = 0
    error: str | None = None


class Peer:
    """A tile source under test; HTTP peers run their own server process."""

    name = "peer"
    cached = False  # has a tile cache a second pass can hit
    process: subprocess.Popen[bytes] | None = None
    base_url = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - overridden per instance

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]]) -> None:
        self.bench_dir = bench_dir
        self.layersets = layersets

    def available(self) -> str | None:
        """None when the peer can run, else why not."""
        return None

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def ready_path(self) -> str:
        return "/"

    async def start(self) -> None:
        """Start a fresh server process (an empty cache) and wait until it answers."""
        port = free_port()
        cmd, env = self.command(port)
        log = open(self.bench_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - closed in stop
        self._log = log
        self.process = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=get_settings().root)
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {log.name}")
                try:
                    r = await client.get(self.base_url + self.ready_path(), headers=self.headers)
                    if r.status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer within 120 s; see {log.name}")

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self._log.close()

    def urls(self, layerset: str, z: int, x: int, y: int) -> list[str]:
        raise NotImplementedError

    def session(self) -> BrowserSession:
        return BrowserSession(self.base_url, self.headers, BROWSER_CONNECTIONS)

    async def tile(self, session: Any, layerset: str, z: int, x: int, y: int) -> TileResult:
        """Fetch one map tile (every request it takes on this peer)."""
        urls = self.urls(layerset, z, x, y)
        res = TileResult(requests=len(urls))
        responses = await asyncio.gather(*(session.get(u) for u in urls), return_exceptions=True)
        for r in responses:
            if isinstance(r, BaseException):
                res.error = type(r).__name__
            elif r.status_code not in (200, 204):
                res.error = f"HTTP {r.status_code}"
            else:
                res.size += len(r.content)
        return res


@dataclass
class Reply:
    """An HTTP response as the bench reads it."""

    status_code: int
    content: bytes  # decoded (gzip undone)


class BrowserSession:
    """A browser's share of a server: at most ``n`` keep-alive HTTP/1.1 connections.

    A deliberately small client on asyncio streams: the load generator shares
    the machine with the servers under test, and httpx's pool cost about 5 ms
    of CPU per request with a view's worth of requests queued on 6 connections
    (160–190 requests/s for one client against a server answering in 0.4 ms), so
    it, not the server, set the warm figures.
    """

    TIMEOUT = 60.0

    def __init__(self, base_url: str, headers: dict[str, str], n: int) -> None:
        host_port = base_url.split("://", 1)[1].rstrip("/")
        self.host, _, port = host_port.partition(":")
        self.port = int(port or 80)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.slots = asyncio.Semaphore(n)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> Reply:
        async with self.slots:
            return await asyncio.wait_for(self._get(path), self.TIMEOUT)

    async def _get(self, path: str) -> Reply:
        request = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"Accept-Encoding: gzip\r\n{self.head}\r\n").encode()
        while self.idle:  # a reused connection the server closed meanwhile: next one
            conn = self.idle.pop()
            try:
                return await self._exchange(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn[1].close()
            except BaseException:
                conn[1].close()
                raise
        conn = await asyncio.open_connection(self.host, self.port)
        try:
            return await self._exchange(conn, request)
        except BaseException:
            conn[1].close()
            raise

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                        request: bytes) -> Reply:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionResetError("connection closed before the response")
        status = int(status_line.split(None, 2)[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            while await reader.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            body = b"".join(parts)
        else:
            body, keep = await reader.read(), False
        if keep:
            self.idle.append(conn)
        else:
            writer.close()
        if body and headers.get("content-encoding", "").lower() == "gzip":
            body = zlib.decompress(body, 31)
        return Reply(status, body)

    async def aclose(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class OnemapPeer(Peer):
    """onemap's tile engine, as an analyst with an API key made for the run."""

    name = "onemap"
    cached = True

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]], key: str,
                 workers: int) -> None:
        super().__init__(bench_dir, layersets)
        self.headers = {"X-API-Key": key}
        self.workers = workers

    def available(self) -> str | None:
        try:
            import tiles.web  # noqa: F401
        except ImportError:
            return "the tile engine (tiles/web.py) is not in this checkout yet"
        import server.app

        if "tiles.web" not in Path(server.app.__file__).read_text():
            return "the tile routes are not wired into server/app.py yet"
        return None

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        cache_dir = self.bench_dir / "onemap-tiles"
        shutil.rmtree(cache_dir, ignore_errors=True)  # an empty disk cache: cold
        cache_dir.mkdir(parents=True)
        env = {"ONEMAP_TILE_CACHE_DIR": str(cache_dir), "ONEMAP_JOB_THREADS": "0",
               "ONEMAP_URL": f"http://127.0.0.1:{port}"}
        cmd = [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
               "--log-level", "warning", "--no-access-log"]
        return cmd, env

    def ready_path(self) -> str:
        return "/health"

    def urls(self, layerset: str, z: int, x: int, y: int) -> list[str]:
        if layerset in THEMES:
            return [f"/tiles/{layerset}/{TMS}/{z}/{y}/{x}"]
        return [f"/collections/{layerset}/tiles/{TMS}/{z}/{y}/{x}"]


class PygeoapiPeer(Peer):
    """pygeoapi 0.24 with its own MVT-postgresql provider on the same tables."""

    name = "pygeoapi"

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]],
                 bbox: tuple[float, float, float, float]) -> None:
        super().__init__(bench_dir, layersets)
        self.bbox = bbox
        self.pydeps = bench_dir / "pydeps"
        self.generated = False

    def available(self) -> str | None:
        # What MVT-postgresql imports beyond pygeoapi's own dependencies; kept out of .venv.
        # --no-deps: SQLAlchemy must stay the one pygeoapi was installed with.
        for module, package in (("psycopg2", "psycopg2-binary"), ("geoalchemy2", "geoalchemy2")):
            if not (self.pydeps / module).is_dir():
                subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                "--target", str(self.pydeps), package], check=False)
            if not (self.pydeps / module).is_dir():
                return f"{package} could not be installed into {self.pydeps}"
        return None

    def write_config(self, port: int) -> Path:
        db = libpq_params()
        data = {"host": db.get("host", "127.0.0.1"), "port": int(db.get("port", 5432)),
                "dbname": db["dbname"], "user": db["user"], "search_path": ["onemap", "public"]}
        resources = {}
        for name in sorted({n for s in self.layersets.values() for n in s}):
            layer = LAYERS[name]
            geom, crs = ("geom_3857", 3857) if layer.mercator else ("geom", 4490)
            resources[name] = {
                "type": "collection", "title": name, "description": f"onemap.{name}",
                "keywords": ["bench"],
                "extents": {"spatial": {"bbox": list(self.bbox),
                                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                "providers": [{
                    "type": "tile", "name": "MVT-postgresql", "data": data,
                    "id_field": "id", "table": layer.table, "geom_field": geom,
                    "storage_crs": f"http://www.opengis.net/def/crs/EPSG/0/{crs}",
                    "options": {"zoom": {"min": 0, "max": 22}},
                    "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
                }],
            }
        config = {
            "server": {"bind": {"host": "127.0.0.1", "port": port},
                       "url": f"http://127.0.0.1:{port}", "mimetype": "application/json",
                       "encoding": "utf-8", "languages": ["en-US"], "pretty_print": False,
                       "limits": {"default_items": 10, "max_items": 100},
                       "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                               "attribution": "OpenStreetMap"}},
            "logging": {"level": "ERROR"},
            "metadata": {
                "identification": {"title": "bench", "description": "bench", "keywords": ["b"],
                                   "keywords_type": "theme", "terms_of_service": "x",
                                   "url": "https://example.org"},
                "license": {"name": "CC-BY 4.0", "url": "https://example.org"},
                "provider": {"name": "bench", "url": "https://example.org"},
                "contact": {"name": "bench", "position": "bench", "email": "b@example.org"},
            },
            "resources": resources,
        }
        path = self.bench_dir / "pygeoapi-config.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        return path

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        cfg = self.write_config(port)
        openapi = self.bench_dir / "pygeoapi-openapi.yml"
        env = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(openapi),
               "PYTHONPATH": str(self.pydeps)}
        if self.generated:  # the document only names the port in its server URL
            return self.uvicorn(port), env
        self.generated = True
        subprocess.run([str(Path(sys.executable).parent / "pygeoapi"), "openapi", "generate",
                        str(cfg), "--output-file", str(openapi)],
                       env={**os.environ, **env}, check=True, capture_output=True)
        return self.uvicorn(port), env

    @staticmethod
    def uvicorn(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "pygeoapi.starlette_app:APP",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-access-log"]

    def ready_path(self) -> str:
        return "/conformance?f=json"

    def urls(self, layerset: str, z: int, x: int, y: int) -> list[str]:
        return [f"/collections/{n}/tiles/{TMS}/{z}/{y}/{x}?f=mvt"
                for n in members_at(self.layersets[layerset], z)]


class TipgPeer(Peer):
    """tipg in its own venv on the same tables, as the owner role."""

    name = "tipg"

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]]) -> None:
        super().__init__(bench_dir, layersets)
        self.venv = bench_dir / "tipg-venv"

    def available(self) -> str | None:
        uvicorn = self.venv / "bin" / "uvicorn"
        if uvicorn.exists():
            return None
        # onemap's own interpreter (3.12+, as the package requires), not `python3.12`
        # from the PATH: pyenv's shim of that name refuses unless a version is selected.
        python = sys.executable
        print(f"creating {self.venv} with {python} and installing tipg (once)", flush=True)
        steps = ([python, "-m", "venv", str(self.venv)],
                 [str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q",
                  "tipg", "uvicorn"])
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                return f"`{' '.join(step[:4])} …` failed: {last}"
        if not uvicorn.exists():
            return f"tipg could not be installed into {self.venv}"
        return None

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        db = libpq_params()
        tables = sorted({f"onemap.{n}" for s in self.layersets.values() for n in s})
        host = db.get("host", "127.0.0.1")
        # A unix socket directory goes percent-encoded into the host: pydantic's
        # PostgresDsn refuses an empty host, asyncpg decodes it back to a path.
        url = (f"postgresql://{db['user']}@{quote(host, safe='')}:{db.get('port', 5432)}"
               f"/{db['dbname']}")
        env = {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["onemap"]',
               "TIPG_DB_TABLES": json.dumps(tables), "TIPG_DB_FUNCTIONS": "[]",
               "TIPG_DB_SPATIAL_EXTENT": "false", "TIPG_DB_DATETIME_EXTENT": "false",
               "TIPG_ADD_TILES_VIEWER": "false"}
        cmd = [str(self.venv / "bin" / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
        return cmd, env

    def ready_path(self) -> str:
        return "/collections"

    def urls(self, layerset: str, z: int, x: int, y: int) -> list[str]:
        out = []
        for n in members_at(self.layersets[layerset], z):
            layer = LAYERS[n]
            geom = "geom_3857" if layer.mercator else "geom"
            out.append(f"/collections/onemap.{n}/tiles/{TMS}/{z}/{x}/{y}"
                       f"?geom-column={geom}&properties={','.join(layer.properties)}")
        return out


class SqlPeer(Peer):
    """The raw ``ST_AsMVT`` query per tile through a bounded psycopg pool."""

    name = "sql"

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]],
                 pool_size: int) -> None:
        super().__init__(bench_dir, layersets)
        self.pool_size = pool_size
        self.pool: AsyncConnectionPool | None = None
        self.queries: dict[tuple[str, ...], sql.Composed] = {}

    @staticmethod
    def query(members: Sequence[str]) -> sql.Composed:
        """One statement returning every layer of the set for tile (z, x, y)."""
        parts = []
        for name in members:
            layer = LAYERS[name]
            if layer.mercator:
                geom, where = sql.SQL("t.geom_3857"), sql.SQL("t.geom_3857 && e.env")
            else:
                geom = sql.SQL("ST_Transform(t.geom, 3857)")
                where = sql.SQL("t.geom && ST_Transform(e.env, 4490)")
            cols = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c))
                                      for c in layer.properties)
            parts.append(sql.SQL(
                "(SELECT ST_AsMVT(q, {name}, 4096, 'g') FROM (SELECT ST_AsMVTGeom({geom}, e.env)"
                " AS g, {cols} FROM onemap.{table} t, e WHERE {where}) q)"
            ).format(name=sql.Literal(name), geom=geom, cols=cols,
                     table=sql.Identifier(layer.table), where=where))
        return sql.SQL(
            "WITH e AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env) SELECT {}"
        ).format(sql.SQL(" || ").join(parts))

    async def start(self) -> None:
        self.pool = AsyncConnectionPool(database_conninfo(), min_size=self.pool_size,
                                        max_size=self.pool_size, open=False)
        await self.pool.open(wait=True)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def session(self) -> Any:
        return asyncio.Semaphore(BROWSER_CONNECTIONS)

    async def tile(self, session: Any, layerset: str, z: int, x: int, y: int) -> TileResult:
        assert self.pool is not None
        res = TileResult(requests=1)
        try:
            async with session, self.pool.connection() as conn:
                members = members_at(self.layersets[layerset], z)
                if members not in self.queries:
                    self.queries[members] = self.query(members)
                cur = await conn.execute(self.queries[members], {"z": z, "x": x, "y": y})
                row = await cur.fetchone()
            res.size = len(row[0]) if row and row[0] is not None else 0
        except Exception as exc:
            res.error = type(exc).__name__
        return res


class StatementPeer(SqlPeer):
    """onemap's own tile statement (``tiles.render``) run directly, as the bench analyst.

    The same SQL, row-level security and pool as the server, without HTTP,
    the cache or the scope lookup: onemap : statement is the server's own
    overhead, where onemap : sql also counts the work onemap's statement does
    that the bare query skips (aggregates, simplification, caps, policies).
    """

    name = "statement"

    def __init__(self, bench_dir: Path, layersets: dict[str, tuple[str, ...]],
                 pool_size: int, username: str) -> None:
        super().__init__(bench_dir, layersets, pool_size)
        self.username = username

    async def start(self) -> None:  # stop() and session() are the raw SQL peer's
        from spatial.access import Principal
        from spatial.auth import principal_for_user
        from spatial.db import connect
        from tiles import render as rendering
        from tiles.spec import bind_catalog, default_paths, load_spec

        settings = get_settings()
        with connect() as conn:
            self.spec = bind_catalog(
                load_spec(*default_paths(settings.layers_dir, settings.config_path)), conn)
            row = conn.execute("SELECT id FROM onemap.app_user WHERE username = %s",
                               (self.username,)).fetchone()
            assert row is not None, self.username
            self.principal: Principal = principal_for_user(conn, row["id"])
        self.render = rendering
        self.pool = rendering.make_pool(database_conninfo(), self.pool_size)
        await self.pool.open(wait=True)

    async def tile(self, session: Any, layerset: str, z: int, x: int, y: int) -> TileResult:
        assert self.pool is not None
        res = TileResult(requests=1)
        try:
            sets = self.spec.theme(layerset) if layerset in THEMES else \
                self.spec.collection(layerset)
            async with session, self.render.tile_connection(self.pool, self.principal) as conn:
                tile = await self.render.render(conn, sets, TMS, z, x, y, None, self.principal)
            res.size = len(tile.data)
        except Exception as exc:
            res.error = type(exc).__name__
        return res


# --------------------------------------------------------------------------- runs

@dataclass
class Phase:
    """What one pass of one load on one peer measured."""

    peer: str
    clients: int
    cache: str
    views_planned: int = 0
    views_done: int = 0
    view_seconds: list[float] = field(default_factory=list)
    tiles: int = 0
    requests: int = 0
    sizes: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    def summary(self) -> dict[str, Any]:
        vs = sorted(self.view_seconds)
        unfinished = self.views_planned - self.views_done
        # Unfinished views count as slower than any finished one.
        ranked = vs + [math.inf] * unfinished
        nonempty = [s for s in self.sizes if s]

        def q(p: float) -> float | None:
            if not ranked:
                return None
            v = ranked[min(len(ranked) - 1, math.ceil(p * len(ranked)) - 1)]
            return None if math.isinf(v) else round(v * 1000, 1)

        return {
            "peer": self.peer, "clients": self.clients, "cache": self.cache,
            "views": self.views_done, "views_unfinished": unfinished,
            "p50_ms": q(0.5), "p95_ms": q(0.95),
            "tiles_per_s": round(self.tiles / self.wall, 1) if self.wall else 0.0,
            "requests_per_s": round(self.requests / self.wall, 1) if self.wall else 0.0,
            "tiles_empty": sum(1 for s in self.sizes if s == 0),
            "tile_kb_median": round(statistics.median(nonempty) / 1024, 1)
            if nonempty else None,
            "tile_kb_max": round(max(self.sizes) / 1024, 1) if self.sizes else None,
            "errors": sum(self.errors.values()), "error_kinds": self.errors,
            "wall_s": round(self.wall, 2),
        }


async def run_phase(peer: Peer, walks: list[list[View]], think: float, deadline: float,
                    cache: str, seed: int) -> Phase:
    """Every client walks its views; a view's time runs until all its tiles are in."""
    phase = Phase(peer.name, len(walks), cache, views_planned=sum(len(w) for w in walks))
    t0 = time.perf_counter()
    stop_at = t0 + deadline
    last = [t0]

    async def client(i: int, walk: list[View]) -> None:
        rng = random.Random(seed * 1000 + i)
        if think and len(walks) > 1:  # clients arrive spread over one think time
            await asyncio.sleep(rng.uniform(0, think))
        session = peer.session()
        try:
            for view in walk:
                if time.perf_counter() > stop_at:
                    return
                v0 = time.perf_counter()
                results = await asyncio.gather(
                    *(peer.tile(session, view.layerset, z, x, y) for z, x, y in view.tiles))
                done = time.perf_counter()
                phase.view_seconds.append(done - v0)
                phase.views_done += 1
                last[0] = max(last[0], done)
                for r in results:
                    phase.requests += r.requests
                    if r.error:
                        phase.errors[r.error] = phase.errors.get(r.error, 0) + 1
                    else:
                        phase.tiles += 1
                        phase.sizes.append(r.size)
                if think and len(walks) > 1:
                    await asyncio.sleep(min(rng.expovariate(1 / think), 5 * think))
        finally:
            if isinstance(session, BrowserSession):
                await session.aclose()

    tasks = [asyncio.create_task(client(i, w)) for i, w in enumerate(walks)]
    _, pending = await asyncio.wait(tasks, timeout=deadline + min(30.0, deadline))
    for t in pending:  # views still running well past the deadline: unfinished
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    phase.wall = last[0] - t0
    return phase


def demo_extent() -> tuple[float, float, float, float]:
    """The demo city's extent (lon/lat) from ``onemap.district``."""
    from psycopg.rows import tuple_row

    from spatial.db import connect

    with connect(autocommit=True, row_factory=tuple_row) as conn:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM onemap.district) s").fetchone()
        scale = conn.execute("SELECT scale FROM truth.generation ORDER BY 1 DESC LIMIT 1"
                             ).fetchone()
    if row is None or row[0] is None:
        raise SystemExit("no district in the database: run `onemap setup` first")
    print(f"city scale {scale[0] if scale else '?'}, extent {row}", flush=True)
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def layersets_from_themes() -> dict[str, tuple[str, ...]]:
    """The bench's layer sets; ``base`` follows layers/themes.yml when it declares it.

    Also reads each layer's ``minzoom`` from layers/tiles.yml into :data:`MINZOOM`.
    """
    sets = dict(LAYERSETS)
    tiles_yml = get_settings().root / "layers" / "tiles.yml"
    if tiles_yml.exists():
        declared = (yaml.safe_load(tiles_yml.read_text()) or {}).get("layers") or {}
        for name in LAYERS:
            if isinstance(declared.get(name), dict) and "minzoom" in declared[name]:
                MINZOOM[name] = int(declared[name]["minzoom"])
    path = get_settings().root / "layers" / "themes.yml"
    if path.exists():
        doc = yaml.safe_load(path.read_text()) or {}
        themes = doc.get("themes", doc)
        base = themes.get("base") if isinstance(themes, dict) else None
        members = base.get("layers", base.get("collections")) if isinstance(base, dict) else base
        if isinstance(members, list):
            known = tuple(m for m in members if isinstance(m, str) and m in LAYERS)
            if known:
                sets["base"] = known
    LAYERSETS.update(sets)
    return sets


def make_analyst_key() -> tuple[str, str]:
    """A temporary analyst user and API key for onemap; returns (username, key)."""
    import uuid

    from spatial import auth, users
    from spatial.db import connect

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with connect(autocommit=True) as conn, conn.transaction():
        users.create_user(conn, name, None, roles=["analyst"])
        key = auth.create_api_key(conn, name, label="bench tiles").key
    return name, key


def drop_user(name: str) -> None:
    from spatial.db import connect

    with connect(autocommit=True) as conn:
        conn.execute("DELETE FROM onemap.app_user WHERE username = %s", (name,))


def fmt(v: Any) -> str:
    return "—" if v is None else (f"{v:,.1f}" if isinstance(v, float) else str(v))


def ratio(a: float | None, b: float | None) -> str:
    return "—" if not a or not b else f"{a / b:.2f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results table and the ratio table as markdown."""
    head = ("| peer | clients | cache | views (unfinished) | view p50 ms | view p95 ms | tiles/s"
            " | req/s | empty tiles | tile KB median (non-empty) | tile KB max | errors |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['peer']} | {r['clients']} | {r['cache']} | {r['views']} "
            f"({r['views_unfinished']}) | {fmt(r['p50_ms'])} | "
            f"{fmt(r['p95_ms']) if r['p95_ms'] is not None or not r['views'] else '> deadline'}"
            f" | {fmt(r['tiles_per_s'])} | {fmt(r['requests_per_s'])} | {r['tiles_empty']} | "
            f"{fmt(r['tile_kb_median'])} | {fmt(r['tile_kb_max'])} | {r['errors']} |")
    lines += ["", "Ratios (p95 view time A/B: below 1 means A is faster; tiles/s A/B: above 1"
              " means A serves more):", "",
              "| A : B | clients | cache | p95 A/B | p50 A/B | tiles/s A/B |",
              "|---|---|---|---|---|---|"]
    by = {(r["peer"], r["clients"], r["cache"]): r for r in rows}
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    pairs = [("onemap", p) for p in peers if p != "onemap" and "onemap" in peers]
    pairs += [(p, "sql") for p in peers if p not in ("sql", "onemap") and "sql" in peers]
    for a, b in pairs:
        for (peer, clients, cache), ra in by.items():
            if peer != a or (b, clients, cache) not in by:
                continue
            rb = by[(b, clients, cache)]
            lines.append(f"| {a} : {b} | {clients} | {cache} | {ratio(ra['p95_ms'], rb['p95_ms'])}"
                         f" | {ratio(ra['p50_ms'], rb['p50_ms'])} | "
                         f"{ratio(ra['tiles_per_s'], rb['tiles_per_s'])} |")
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    bench_dir = settings.var_dir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    bbox = demo_extent()
    layersets = layersets_from_themes()
    names = list(layersets)
    single = random_walk(args.seed, args.views, bbox, names)
    many = [random_walk(args.seed + 1 + i, args.views_per_client, bbox, names)
            for i in range(args.clients)]
    tiles_per_view = statistics.mean(len(v.tiles) for v in single + [v for w in many for v in w])
    print(f"workload: {len(single)} views for 1 client, {args.clients} clients × "
          f"{args.views_per_client} views, {tiles_per_view:.1f} tiles per view on average",
          flush=True)

    user = key = None
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    for name in args.peers:
        peer: Peer
        if name == "onemap":
            if user is None:
                user, key = make_analyst_key()
            peer = OnemapPeer(bench_dir, layersets, key or "", args.workers)
        elif name == "pygeoapi":
            peer = PygeoapiPeer(bench_dir, layersets, bbox)
        elif name == "tipg":
            peer = TipgPeer(bench_dir, layersets)
        elif name == "sql":
            peer = SqlPeer(bench_dir, layersets, args.sql_pool)
        elif name == "statement":
            if user is None:
                user, key = make_analyst_key()
            peer = StatementPeer(bench_dir, layersets, args.sql_pool, user)
        else:
            raise SystemExit(f"unknown peer {name!r}; known: onemap, pygeoapi, tipg, sql, "
                             "statement")
        why = peer.available()
        if why:
            print(f"skipping {name}: {why}", flush=True)
            skipped[name] = why
        else:
            peers.append(peer)

    rows: list[dict[str, Any]] = []
    try:
        for peer in peers:
            for load, (walks, think) in enumerate((([single], 0.0), (many, args.think))):
                if load == 0 or not args.quick:  # --quick: one process for both loads
                    await peer.start()  # fresh process, empty cache
                try:
                    for cache in ("cold", "warm"):
                        if cache == "warm" and not peer.cached:
                            if args.quick:
                                break  # no tile cache: the second pass tells little
                            # A fresh process: requests a cut-off cold pass left queued
                            # must not slow the second pass down.
                            await peer.stop()
                            await peer.start()
                        elif cache == "warm" and rows[-1]["views_unfinished"]:
                            await asyncio.sleep(10)  # let the cut-off requests drain
                        phase = await run_phase(peer, walks, think, args.deadline, cache,
                                                args.seed)
                        row = phase.summary()
                        rows.append(row)
                        print(f"{peer.name:9} {len(walks):4} clients {cache}: "
                              f"{row['views']} views ({row['views_unfinished']} unfinished), "
                              f"p50 {fmt(row['p50_ms'])} ms, p95 {fmt(row['p95_ms'])} ms, "
                              f"{row['tiles_per_s']} tiles/s, {row['errors']} errors",
                              flush=True)
                finally:
                    if load == 1 or not args.quick:
                        await peer.stop()
    finally:
        if user:
            drop_user(user)
    table = markdown(rows)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args), "cpus": os.cpu_count(),
        "bbox": bbox, "layersets": layersets, "tiles_per_view": round(tiles_per_view, 1),
        "skipped": skipped, "results": rows, "markdown": table,
        "workload_1_client": [asdict(v) | {"tiles": len(v.tiles)} for v in single],
    }
    out = bench_dir / f"tiles-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    (bench_dir / "tiles-latest.json").write_text(out.read_text())
    print()
    print(table)
    print(f"\nJSON: {out}")
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="onemap bench tiles",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="few views, 10 clients, short deadlines: under 2 minutes")
    ap.add_argument("--peers", default="onemap,statement,pygeoapi,tipg,sql",
                    help="comma-separated subset of onemap,statement,pygeoapi,tipg,sql")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--views", type=int, default=None, help="views of the 1-client walk (40)")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (150)")
    ap.add_argument("--views-per-client", type=int, default=None, help="(4)")
    ap.add_argument("--think", type=float, default=None, help="mean think time, s (2)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds a phase may start views (60; 5 with --quick)")
    ap.add_argument("--workers", type=int, default=1, help="onemap worker processes")
    ap.add_argument("--sql-pool", type=int, default=10,
                    help="connections of the raw SQL and statement peers")
    args = ap.parse_args(argv)
    quick = {"views": 6, "clients": 10, "views_per_client": 2, "think": 0.5, "deadline": 5.0}
    full = {"views": 40, "clients": 150, "views_per_client": 4, "think": 2.0, "deadline": 60.0}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the tile benchmark (``onemap bench tiles``)."""
    # httpx logs every request at INFO: thousands of lines a second would cost
    # the load generator the CPU the servers under test share with it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    main()
