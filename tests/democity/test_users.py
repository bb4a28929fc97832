"""A newcomer's first login: ``onemap setup`` makes one demo user per role for a
generated city, keeps them from run to run, and ``onemap serve`` says how to
sign in; ``onemap units`` gives the ids ``--scope`` takes.

The commands run in a subprocess against a clone of the tiny city (marked as a
generated city by a ``truth.generation`` row) with ``ONEMAP_VAR`` in a
temporary directory, so the project's own ``var/demo-users.txt`` is untouched.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from democity.users import FILE_NAME, SPECS, read_credentials
from tests.conftest import free_port
from tests.server.test_cli_errors import ONEMAP, ROOT, onemap

ROLES = {"district_admin", "street_staff", "community_staff", "grid_worker", "analyst",
         "external_system"}


@pytest.fixture
def generated(tiny_city_db: str) -> str:
    """The tiny city, recorded as made by ``onemap generate``."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("INSERT INTO truth.generation (scale, seed) VALUES ('S', 1)")
    return tiny_city_db


def setup(database: str, var: Path) -> subprocess.CompletedProcess[str]:
    done = onemap("setup", env={"DATABASE_URL": database, "ONEMAP_VAR": str(var)},
                  timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def users_of(database: str) -> dict[str, tuple[int, list[str], list[str], bytes | None]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT u.username, u.id, "
            "  ARRAY(SELECT r.code FROM onemap.user_role ur JOIN onemap.app_role r "
            "        ON r.id = ur.role_id WHERE ur.user_id = u.id), "
            "  ARRAY(SELECT s.level || ':' || s.unit_id FROM onemap.data_scope s "
            "        WHERE s.user_id = u.id), u.password_hash "
            "FROM onemap.app_user u").fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def test_setup_makes_one_user_per_role_and_keeps_them(generated: str, tmp_path: Path,
                                                      tiny_city_ids: dict[str, int]) -> None:
    first = setup(generated, tmp_path)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = read_credentials(path)
    assert {c.role for c in credentials.values()} == ROLES
    users = users_of(generated)
    for spec in SPECS:
        _, roles, scopes, password_hash = users[spec.username]
        assert roles == [spec.role]
        assert bool(scopes) == (spec.level is not None)
        assert (password_hash is None) == spec.api_key
    # the grid worker has a real grid of the city; the others the units above it
    grid = credentials["demo.grid"].scope
    assert grid in {f"grid:{tiny_city_ids['grid1']}", f"grid:{tiny_city_ids['grid2']}"}
    assert users["demo.community"][2] == [f"community:{tiny_city_ids['community']}"]
    assert users["demo.street"][2] == [f"street_office:{tiny_city_ids['street_office']}"]
    # no secret in what setup prints
    for c in credentials.values():
        assert c.secret not in first.stdout + first.stderr
    assert str(path) in first.stderr

    # a second run keeps users, ids and passwords; a lost file gives new passwords
    setup(generated, tmp_path)
    assert read_credentials(path) == credentials
    assert {k: v[0] for k, v in users_of(generated).items()} == {
        k: v[0] for k, v in users.items()}
    path.unlink()
    setup(generated, tmp_path)
    renewed = read_credentials(path)
    assert set(renewed) == set(credentials)
    assert renewed["demo.grid"].secret != credentials["demo.grid"].secret
    assert {k: v[0] for k, v in users_of(generated).items()} == {
        k: v[0] for k, v in users.items()}


def test_the_passwords_and_the_key_work(generated: str, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Made in-process, so the log is captured: no secret is logged."""
    from starlette.testclient import TestClient

    from democity.users import ensure_demo_users
    from server.app import create_app
    from spatial.db import connect

    path = tmp_path / FILE_NAME
    with caplog.at_level(logging.DEBUG), connect(generated, autocommit=True) as conn:
        credentials = ensure_demo_users(conn, path)
    assert len(credentials) == len(SPECS)
    for c in credentials:
        assert c.secret not in caplog.text
    with TestClient(create_app()) as client:
        for c in credentials:
            if c.is_api_key:
                me = client.get("/auth/me", headers={"X-API-Key": c.secret})
            else:
                login = client.post("/auth/login",
                                    json={"username": c.username, "password": c.secret})
                assert login.status_code == 200, login.text
                assert login.json()["user"]["roles"] == [c.role]
                me = client.get("/auth/me", headers={
                    "Authorization": f"Bearer {login.json()['access_token']}"})
            assert me.status_code == 200, me.text
            assert c.role in me.text
        # the grid worker finds the households of their grid
        grid_worker = next(c for c in credentials if c.role == "grid_worker")
        token = client.post("/auth/login", json={
            "username": grid_worker.username, "password": grid_worker.secret}).json()
        found = client.get("/search", params={"q": "1-1-101"}, headers={
            "Authorization": f"Bearer {token['access_token']}"}).json()
        assert [h["type"] for h in found].count("household") == 1
    for c in credentials:
        assert c.secret not in caplog.text


def test_no_demo_user_for_a_city_not_generated(tiny_city_db: str, tmp_path: Path) -> None:
    """Imported data (no truth.generation row) is not the demo: no user is made."""
    setup(tiny_city_db, tmp_path)
    assert not (tmp_path / FILE_NAME).exists()
    assert users_of(tiny_city_db) == {}


def test_serve_prints_how_to_sign_in(generated: str, tmp_path: Path) -> None:
    setup(generated, tmp_path)
    credentials = read_credentials(tmp_path / FILE_NAME)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DATABASE_URL": generated, "ONEMAP_VAR": str(tmp_path), "COLUMNS": "200",
                "NO_COLOR": "1", "NO_PROXY": "127.0.0.1"})
    env.pop("ONEMAP_URL", None)
    log = tmp_path / "serve.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen([*ONEMAP, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "serving at" not in log.read_text(encoding="utf-8"):
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    for page in ("/widget/", "/m/", "/openapi"):
        assert url + page in text, text
    shown = {"grid_worker", "street_staff"}
    for c in credentials.values():
        assert (c.secret in text) == (c.role in shown), (c.role, text)
    assert str(tmp_path / FILE_NAME) in text
    assert ".venv/bin/onemap units" in text


def test_units_lists_the_ids_scope_takes(tiny_city_db: str,
                                         tiny_city_ids: dict[str, int]) -> None:
    env = {"DATABASE_URL": tiny_city_db, "COLUMNS": "200"}
    done = onemap("units", "--level", "grid", "--name", "示范社区", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"grid:{tiny_city_ids['grid1']}" in done.stdout
    assert f"grid:{tiny_city_ids['grid2']}" in done.stdout
    assert "community:" not in done.stdout
    everything = onemap("units", env=env).stdout
    for level in ("district", "street_office", "community"):
        assert f"{level}:{tiny_city_ids[level]}" in everything
    assert "第一网格" in onemap("units", "--name", "第一", env=env).stdout
    nothing = onemap("units", "--name", "%", env=env)
    assert nothing.returncode == 0 and "no unit matches" in nothing.stderr
    bad = onemap("units", "--level", "house", env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_find_units_in_process(conn: Any) -> None:
    from spatial.users import find_units

    assert find_units(conn) == []  # an empty city
