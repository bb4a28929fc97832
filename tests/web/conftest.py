"""Browser tests: a live server over a generated S city, users, and a node runner.

A real uvicorn serves the application in a subprocess on a free port, reading a
clone of the template database into which the S city was generated (every layer
has rows). The tests drive Debian's headless Chromium through playwright-core
(``web/node_modules``) from small node scripts, ``tests/web/<name>.mjs``; a
script prints one JSON line and exits 0, or prints ``{"ok": false, "error": ...}``
and exits 1, which fails the test with the script's message.

Without node, Chromium or ``web/node_modules`` the tests skip, except with
``ONEMAP_REQUIRE_DB=1`` or ``CI`` set, where they fail: ``make install`` puts
all three in place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from PIL import Image, ImageDraw
from psycopg import sql

from tests.conftest import create_database, drop_database, free_port, live_uvicorn

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = Path(os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = ROOT / "web" / "node_modules" / "playwright-core"
#: Same seed, same city: ids and names below are stable between runs.
SEED = 11
#: One password for every browser-test user (meets the policy; test data only).
PASSWORD = "web-test-password-1"

Runner = Callable[..., Any]


def _required() -> bool:
    return bool(os.environ.get("ONEMAP_REQUIRE_DB") or os.environ.get("CI"))


def _missing(what: str) -> None:
    if _required():
        pytest.fail(f"{what} is missing: `make install` installs it")
    pytest.skip(f"{what} is missing: `make install` installs it")




@dataclass
class WebCity:
    """The generated S city the browser tests read, and facts about it."""

    database: str
    facts: dict[str, Any] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


def _city_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Ids, names and points the scripts navigate to (owner connection)."""
    grids = conn.execute(
        "SELECT g.id, g.code, g.name, g.community_id, count(h.id) AS households, "
        "ST_X(ST_PointOnSurface(g.geom)) AS x, ST_Y(ST_PointOnSurface(g.geom)) AS y "
        "FROM onemap.grid g JOIN onemap.building b ON b.grid_id = g.id "
        "JOIN onemap.household h ON h.building_id = b.id "
        "WHERE EXISTS (SELECT FROM onemap.resident r WHERE r.household_id = h.id) "
        "GROUP BY g.id ORDER BY count(h.id) DESC, g.id LIMIT 2").fetchall()
    assert len(grids) == 2, "the S city needs two grids with residents"
    grid, other = grids
    household = conn.execute(
        "SELECT h.id, h.room_no, h.unit_id, b.id AS building_id, b.compound_id, "
        "ST_X(coalesce(h.geom, ST_PointOnSurface(b.geom))) AS x, "
        "ST_Y(coalesce(h.geom, ST_PointOnSurface(b.geom))) AS y "
        "FROM onemap.household h JOIN onemap.building b ON b.id = h.building_id "
        "JOIN onemap.compound c ON c.id = b.compound_id AND c.grid_id = b.grid_id "
        "WHERE b.grid_id = %s AND h.unit_id IS NOT NULL AND (SELECT count(*) "
        "FROM onemap.resident r WHERE r.household_id = h.id) >= 2 ORDER BY h.id LIMIT 1",
        (grid[0],)).fetchone()
    assert household is not None
    names = [r[0] for r in conn.execute(
        "SELECT name FROM onemap.resident WHERE household_id = %s ORDER BY id",
        (household[0],)).fetchall()]
    extent = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom) AS e FROM onemap.community) s").fetchone()
    gps = conn.execute("SELECT min(ts), max(ts) FROM onemap.truck_gps").fetchone()
    assert extent is not None and gps is not None
    return {
        "district": conn.execute("SELECT min(id) FROM onemap.district").fetchone()[0],  # type: ignore[index]
        "grid": {"id": grid[0], "code": grid[1], "name": grid[2], "community_id": grid[3],
                 "point": [grid[5], grid[6]]},
        "other_grid": {"id": other[0], "code": other[1], "name": other[2],
                       "community_id": other[3], "point": [other[5], other[6]]},
        "household": {"id": household[0], "room_no": household[1], "unit_id": household[2],
                      "building_id": household[3], "compound_id": household[4],
                      "point": [household[5], household[6]]},
        "resident_names": names,
        "extent": list(extent),
        "center": [(extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2],
        # the trucks' GPS history (its live tiles show the last two hours only)
        "gps_datetime": f"{gps[0].isoformat()}/{gps[1].isoformat()}",
        "points": _layer_points(conn),
        "zooms": {k: [v["minzoom"], v["maxzoom"]] for k, v in yaml.safe_load(
            (ROOT / "layers" / "tiles.yml").read_text(encoding="utf-8"))["layers"].items()},
    }


def _layer_points(conn: psycopg.Connection[Any]) -> dict[str, list[float]]:
    """A point on one feature of every tiled collection, read from its view."""
    spec = yaml.safe_load((ROOT / "layers" / "tiles.yml").read_text(encoding="utf-8"))
    points: dict[str, list[float]] = {}
    views = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'layers'")}
    for layer in spec["layers"]:
        if layer not in views:
            continue
        row = conn.execute(sql.SQL(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM {} "
            "WHERE geom IS NOT NULL ORDER BY id LIMIT 1) s").format(
                sql.Identifier("layers", layer))).fetchone()
        if row and row[0] is not None:
            points[layer] = [row[0], row[1]]
    return points


def _make_users(conn: psycopg.Connection[Any], facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The browser tests' users: password, bearer token and API key each."""
    from spatial import auth, users

    wanted = {
        "worker": (["grid_worker"], [("grid", facts["grid"]["id"])]),
        "other_worker": (["grid_worker"], [("grid", facts["other_grid"]["id"])]),
        "analyst": (["analyst"], []),
        "external": (["external_system"], []),
        "admin": (["district_admin"], [("district", facts["district"])]),
    }
    out: dict[str, dict[str, Any]] = {}
    for role, (roles, scopes) in wanted.items():
        name = f"web_{role}"
        password = None if role == "external" else PASSWORD
        info = users.create_user(conn, name, password, roles=roles, scopes=scopes)
        token = auth.issue_token(conn, info.id)
        key = auth.create_api_key(conn, name, label="browser tests")
        out[role] = {"username": name, "password": password, "user_id": info.id,
                     "token": token.value, "api_key": key.key, "roles": roles}
    return out


@pytest.fixture(scope="session")
def web_city(browser_tools: dict[str, str], server_conninfo: str, template_db: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebCity]:
    """A clone of the template with the S city generated into it, and its users.

    Asks for the browser first: without one there is nothing to generate a city for.
    """
    from democity import generate
    from spatial.db import connect

    name = f"onemap_t_web_{uuid.uuid4().hex[:8]}"
    info = create_database(server_conninfo, name, template=template_db)
    rasters = tmp_path_factory.mktemp("rasters")
    saved = os.environ.get("ONEMAP_RASTER_DIR")
    os.environ["ONEMAP_RASTER_DIR"] = str(rasters)  # not the demo city's var/rasters
    try:
        with connect(info, autocommit=True) as conn:
            generate(conn, "S", SEED)
        with psycopg.connect(info, autocommit=True) as plain:  # tuple rows
            facts = _city_facts(plain)
        facts["raster_dir"] = str(rasters)
        with connect(info) as conn, conn.transaction():
            people = _make_users(conn, facts)
    finally:
        if saved is None:
            os.environ.pop("ONEMAP_RASTER_DIR", None)
        else:
            os.environ["ONEMAP_RASTER_DIR"] = saved
    yield WebCity(info, facts, people)
    drop_database(server_conninfo, name)


@dataclass
class LiveServer:
    url: str
    database: str
    log: Path
    photo_dir: Path

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-n:]


@pytest.fixture(scope="session")
def host_origin() -> str:
    """The origin of the console pages that embed the widget (tests/web/test_widget.py).

    Its port is chosen before the server starts, so that the server names it in
    ``ONEMAP_CORS_ORIGINS``, which lets those pages frame ``/widget/``.
    """
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def live_server(web_city: WebCity, host_origin: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``uvicorn server.app:create_app`` on a free port over the S city.

    CORS for every origin, as by default; framing ``/widget/`` only for
    :func:`host_origin` (the same page served from another origin may not).
    """
    tmp = tmp_path_factory.mktemp("web-server")
    photos = tmp / "photos"
    log = tmp / "uvicorn.log"
    env = {"DATABASE_URL": web_city.database,
           "ONEMAP_RASTER_DIR": web_city.facts["raster_dir"], "ONEMAP_PHOTO_DIR": str(photos),
           "ONEMAP_CORS_ORIGINS": f"*,{host_origin}"}
    with live_uvicorn(env, log) as url:
        yield LiveServer(url, web_city.database, log, photos)


@pytest.fixture(scope="session")
def browser_tools() -> dict[str, str]:
    """Paths of node and Chromium; skip without them (fail in CI)."""
    node = shutil.which("node")
    if node is None:
        _missing("node (Debian package nodejs)")
    if not CHROMIUM.exists():
        _missing(f"Chromium ({CHROMIUM}, Debian package chromium)")
    if not (PLAYWRIGHT / "package.json").exists():
        _missing("web/node_modules/playwright-core (`npm ci --prefix web`)")
    return {"node": str(node), "chromium": str(CHROMIUM)}


class ScriptFailedError(AssertionError):
    """A browser script reported a failed check."""


@pytest.fixture(scope="session")
def run_script(live_server: LiveServer, web_city: WebCity,
               browser_tools: dict[str, str]) -> Runner:
    """Run ``node tests/web/<name>.mjs`` against the live server; return its JSON.

    The script gets ``BASE_URL``, ``CREDENTIALS`` (the users as JSON), ``CITY``
    (facts about the S city), ``ARTIFACTS`` (``var/test-artifacts``), ``CHROMIUM``
    and ``PARAMS`` (the keyword arguments as JSON) in its environment.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def run(name: str, timeout: float = 170, **params: Any) -> Any:
        script = HERE / f"{name}.mjs"
        env = {**os.environ, "BASE_URL": live_server.url,
               "CREDENTIALS": json.dumps(web_city.users),
               "CITY": json.dumps(web_city.facts, default=str),
               "ARTIFACTS": str(ARTIFACTS), "CHROMIUM": browser_tools["chromium"],
               "PARAMS": json.dumps(params), "NO_PROXY": "127.0.0.1,localhost",
               "no_proxy": "127.0.0.1,localhost"}
        try:
            done = subprocess.run([browser_tools["node"], str(script)], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise ScriptFailedError(f"{name}.mjs ran longer than {timeout} s:\n"
                               f"{(exc.stderr or b'')[-2000:]!r}") from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        try:
            answer = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise ScriptFailedError(
                f"{name}.mjs exited {done.returncode} without a JSON answer:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}") from None
        if done.returncode != 0 or not answer.get("ok"):
            raise ScriptFailedError(
                f"{name}.mjs: {answer.get('error', 'failed')}\n"
                f"--- browser log ---\n{chr(10).join(answer.get('log', [])[-30:])}\n"
                f"--- stderr ---\n{done.stderr[-2000:]}")
        return answer["result"]

    return run


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PNG 'photo' of a full refuse bin, drawn here."""
    path = tmp_path_factory.mktemp("photo") / "bin.png"
    img = Image.new("RGB", (640, 480), (200, 220, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((220, 160, 420, 440), fill=(40, 120, 60))
    draw.ellipse((250, 90, 390, 190), fill=(120, 90, 60))
    img.save(path, format="PNG")
    return path
