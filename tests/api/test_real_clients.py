"""Real third-party clients against a live server: GDAL's OAPIF driver and OWSLib.

A real uvicorn serves the application in a subprocess on a free port, reading a
clone of the tiny city (``DATABASE_URL``), and the clients talk HTTP to it as
they would to any OGC API server. GDAL tests skip when ``ogrinfo`` is missing,
except in CI (``CI`` or ``ONEMAP_REQUIRE_DB`` set), where they fail: ``make
install`` installs ``gdal-bin``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from server.coverage import RASTER_DIR_ENV
from tests.api.test_coverages import tiny_city_clone, write_test_rasters
from tests.conftest import live_uvicorn

ROOT = Path(__file__).resolve().parents[2]
#: The western grid's compound: four of the tiny city's eight buildings (test_server).
WEST_BBOX = (116.46, 39.915, 116.469, 39.93)
#: A point inside the first grid, western compound (test_processes).
POINT = {"x": 116.465, "y": 39.9225}
#: The collections that are coverages, not features (pygeoapi-config.yml).
COVERAGES = {"population_density", "terrain"}


@dataclass
class Server:
    url: str
    database: str
    log: Path

    def requests_to(self, path: str) -> list[str]:
        """Access-log lines of the requests to ``path`` so far."""
        return [line for line in self.log.read_text(encoding="utf-8").splitlines()
                if f'"GET {path}' in line]




@pytest.fixture(scope="module")
def server(server_conninfo: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``uvicorn server.app:create_app`` on a free port over the tiny city."""
    tmp = tmp_path_factory.mktemp("server")
    write_test_rasters(tmp)
    with tiny_city_clone(server_conninfo, template_db) as database:
        log = tmp / "uvicorn.log"
        env = {"DATABASE_URL": database, RASTER_DIR_ENV: str(tmp)}
        with live_uvicorn(env, log) as url:
            yield Server(url, database, log)


def gdal(tool: str) -> str:
    """Path of a GDAL command-line tool; skip without it, except in CI."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") or os.environ.get("ONEMAP_REQUIRE_DB"):
            pytest.fail(f"{tool} is missing: install gdal-bin (`make install` does)")
        pytest.skip(f"{tool} is missing: install gdal-bin")
    return path


def run_process(*args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """Run a client; it must succeed. Its output is returned, standard error included."""
    full = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "GDAL_HTTP_TIMEOUT": "60", **(env or {})}
    done = subprocess.run(args, capture_output=True, text=True, env=full, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run(*args: str) -> str:
    return run_process(*args).stdout


def db_ids(database: str, query: str, params: Any = None) -> set[int]:
    with psycopg.connect(database) as conn:
        return {int(r[0]) for r in conn.execute(query, params).fetchall()}


def in_west_bbox(database: str, table: str) -> set[int]:
    query = sql.SQL("SELECT id FROM onemap.{} "
                    "WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4490)").format(
        sql.Identifier(table))
    return db_ids(database, query, WEST_BBOX)


def collection_ids(server: Server) -> set[str]:
    body = httpx.get(f"{server.url}/collections", params={"f": "json"}, timeout=60).json()
    return {c["id"] for c in body["collections"]}


# --- GDAL ----------------------------------------------------------------------------------

def test_ogrinfo_lists_the_collections(server: Server) -> None:
    out = run(gdal("ogrinfo"), "-ro", "-q", f"OAPIF:{server.url}")
    layers = set(re.findall(r"^\d+: (\S+)", out, flags=re.MULTILINE))
    # the coverages are no vector layers (server.collections marks them)
    assert layers == collection_ids(server) - COVERAGES
    assert {"building", "lamp", "road"} <= layers
    assert COVERAGES.issubset(collection_ids(server))


def test_ogrinfo_lists_the_layers_without_an_error(server: Server) -> None:
    """Listing asks each layer for a first page; none may fail (issue 12, item 10c).

    As a district administrator, who may read every layer (anonymous callers get
    a 401 for the non-public ones, which GDAL prints too).
    """
    from spatial import auth, users

    with psycopg.connect(server.database) as conn, conn.transaction():
        (district,) = conn.execute("SELECT min(id) FROM onemap.district").fetchone()
        users.create_user(conn, "gdal_admin", None, roles=["district_admin"],
                          scopes=[("district", district)])
        key = auth.create_api_key(conn, "gdal_admin", label="test").key
    done = run_process(gdal("ogrinfo"), "-ro", "-q", f"OAPIF:{server.url}",
                       env={"GDAL_HTTP_HEADERS": f"X-API-Key: {key}"})
    assert done.stderr.strip() == ""
    assert len(re.findall(r"^\d+: ", done.stdout, flags=re.MULTILINE)) == len(
        collection_ids(server) - COVERAGES)
    for coverage in COVERAGES:
        assert not server.requests_to(f"/collections/{coverage}/items")


def test_ogrinfo_bbox_agrees_with_gdal_own_intersection_check(server: Server) -> None:
    """GDAL filters what a bbox request returns by its own intersection test: the
    server's answer must already be exactly that (a building 0.5 m outside the box
    whose envelope overlaps it is not returned)."""
    from tests.api.test_items_input import BOX, add_near_miss

    with psycopg.connect(server.database, autocommit=True) as conn:
        added = add_near_miss(conn)
    try:
        out = run(gdal("ogrinfo"), "-ro", "-al", "-q", f"OAPIF:{server.url}", "building",
                  "-spat", *map(str, BOX))
        by_gdal = {int(f) for f in re.findall(r"^OGRFeature\(building\):(\d+)", out,
                                                flags=re.M)}
        page = httpx.get(f"{server.url}/collections/building/items", timeout=60,
                         params={"f": "json", "bbox": ",".join(map(str, BOX))}).json()
        by_server = {int(f["id"]) for f in page["features"]}
        intersecting = db_ids(server.database,
                              "SELECT id FROM onemap.building "
                              "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4490))",
                              BOX)
        assert by_gdal == by_server == intersecting == {added["inside"]}
        assert page["numberMatched"] == len(by_gdal)
    finally:
        with psycopg.connect(server.database, autocommit=True) as conn:
            conn.execute("DELETE FROM onemap.building WHERE id = ANY(%s)",
                         (list(added.values()),))


def test_ogrinfo_reads_a_collection_with_a_bbox(server: Server) -> None:
    out = run(gdal("ogrinfo"), "-ro", "-al", "-q", f"OAPIF:{server.url}", "building",
              "-spat", *map(str, WEST_BBOX))
    fids = {int(f) for f in re.findall(r"^OGRFeature\(building\):(\d+)", out, flags=re.M)}
    assert fids == in_west_bbox(server.database, "building")
    assert len(fids) == 4
    assert "MULTIPOLYGON" in out and "floors: Integer" in run(
        gdal("ogrinfo"), "-ro", "-so", f"OAPIF:{server.url}", "building")
    # the bbox went to the server, which filtered
    sent = [re.search(r"bbox=([^&\s]+)", line)
            for line in server.requests_to("/collections/building/items")]
    boxes = [[float(v) for v in m.group(1).replace("%2C", ",").split(",")] for m in sent if m]
    assert boxes and boxes[-1] == pytest.approx(list(WEST_BBOX))


def test_ogr2ogr_pages_through_a_collection(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "lamps.gpkg"
    before = len(server.requests_to("/collections/lamp/items"))
    run(gdal("ogr2ogr"), "-f", "GPKG", str(out), f"OAPIF:{server.url}", "lamp",
        "-oo", "PAGE_SIZE=7")
    requests = server.requests_to("/collections/lamp/items")[before:]
    expected = db_ids(server.database, "SELECT id FROM onemap.lamp")
    with sqlite3.connect(out) as gpkg:
        fids = {int(r[0]) for r in gpkg.execute("SELECT fid FROM lamp")}
        statuses = dict(gpkg.execute("SELECT status, count(*) FROM lamp GROUP BY status"))
    assert len(expected) > 20
    assert fids == expected
    # pages of seven: GDAL followed the next links to the end
    pages = [r for r in requests if "limit=7" in r]
    assert len(pages) >= -(-len(expected) // 7)
    assert statuses["fault"] == 3  # the tiny city's three faulty lamps


# --- OWSLib --------------------------------------------------------------------------------

def test_owslib_features(server: Server) -> None:
    from owslib.ogcapi.features import Features

    api = Features(server.url)
    assert {c["id"] for c in api.collections()["collections"]} == collection_ids(server)
    assert "conformsTo" in api.conformance()
    items = api.collection_items("building", bbox=list(WEST_BBOX), limit=100)
    ids = {int(f["id"]) for f in items["features"]}
    assert ids == in_west_bbox(server.database, "building")
    assert items["numberReturned"] == 4
    queryables = api.collection_queryables("building")
    assert "floors" in queryables["properties"]
    one = api.collection_item("building", str(min(ids)))
    assert int(one["id"]) == min(ids)


def test_owslib_processes(server: Server) -> None:
    from owslib.ogcapi.processes import Processes

    api = Processes(server.url)
    listed = {p["id"] for p in api.processes()}
    assert "locate" in listed
    assert set(api.process("locate")["inputs"]) >= {"x", "y"}
    result = api.execute("locate", POINT)
    # OWSLib asks for response=document: a results document, by output id, each object
    # value qualified with its media type (OGC API Processes 1.0)
    assert result["location"]["mediaType"] == "application/json"
    got = result["location"]["value"]
    assert got["grid"]["name"] == "第一网格"
    assert got["community"]["name"] == "示范社区"
    assert got["point"]["coordinates"] == [POINT["x"], POINT["y"]]


def _tile_queries_waiting(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'onemap-tiles' AND wait_event_type = 'Lock'").fetchone()
    return int(row[0]) if row else 0


def _abandon_while_locked(server: Server, path: str, table: str,
                          headers: dict[str, str] | None = None) -> None:
    """Request ``path`` while ``table`` is locked, hang up, and see the query stop."""
    host, port = server.url.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with psycopg.connect(server.database) as holder:
        # Hold the table: the tile's queries wait for the lock until cancelled.
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(*table.split("."))))
        client = socket.create_connection((host, int(port)))
        try:
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
            deadline = time.monotonic() + 30
            while _tile_queries_waiting(server.database) == 0:
                assert time.monotonic() < deadline, "the tile query never reached the lock"
                time.sleep(0.05)
        finally:
            client.close()  # the client goes away
        deadline = time.monotonic() + 15  # bounds the wait; not a speed check
        while _tile_queries_waiting(server.database):
            assert time.monotonic() < deadline, "the tile query still runs for nobody"
            time.sleep(0.05)
        # the lock is still held: only a cancellation can have ended the wait
        assert holder.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            (table,)).fetchone() == (0,)
    r = httpx.get(server.url + path, headers=headers, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"


def test_a_tile_query_stops_when_its_client_goes_away(server: Server) -> None:
    from tiles import tms

    # cold: the caller's scope class is looked up first (it reads the layer's view)
    y, x = tms.lonlat_to_tile("WebMercatorQuad", 116.47, 39.9175, 17)
    _abandon_while_locked(server, f"/collections/lamp/tiles/WebMercatorQuad/17/{y}/{x}",
                          "onemap.lamp")
    # warm: only the render reads the GPS rollup
    from spatial import auth, users

    with psycopg.connect(server.database) as conn, conn.transaction():
        users.create_user(conn, "cancel_analyst", None, roles=["analyst"])
        key = auth.create_api_key(conn, "cancel_analyst", label="test").key
    headers = {"X-API-Key": key}
    y, x = tms.lonlat_to_tile("WebMercatorQuad", 116.47, 39.9175, 11)
    base = "/collections/truck_gps/tiles/WebMercatorQuad"
    assert httpx.get(f"{server.url}{base}/10/0/0", headers=headers, timeout=30).status_code == 200
    _abandon_while_locked(server, f"{base}/11/{y}/{x}?datetime=2026-10-28T00:00:00Z/..",
                          "rollup.truck_gps_hourly", headers)
