"""Exports made as a user obey the same rules as the API (130_access.sql)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pyogrio
import pytest

from spatial import auth, users
from spatial.access import Principal
from spatial.errors import AuthenticationError, PermissionDeniedError
from spatial.exporter import export_layer


def _user(conn: psycopg.Connection[Any], roles: list[str], scopes: list[tuple[str, int]]) -> Any:
    name = f"x{len(roles)}{abs(hash((tuple(roles), tuple(scopes)))) % 10**8}"
    with conn.transaction():
        info = users.create_user(conn, name, None, roles=roles, scopes=scopes)
    return auth.principal_for_user(conn, info.id)


def test_export_as_a_grid_worker_is_their_grid(tiny_city_db: str, tmp_path: Path) -> None:
    from spatial.db import connect

    with connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.resident SET phone = '13800001234'")
        grid1, grid2 = (r["id"] for r in conn.execute(
            "SELECT id FROM onemap.grid ORDER BY code").fetchall())
        worker = _user(conn, ["grid_worker"], [("grid", grid1)])
        analyst = _user(conn, ["analyst"], [])
        mine = conn.execute(
            "SELECT count(*) AS n FROM onemap.resident r JOIN onemap.household h "
            "ON h.id = r.household_id JOIN onemap.building b ON b.id = h.building_id "
            "WHERE b.grid_id = %s", (grid1,)).fetchone()["n"]
        total = conn.execute("SELECT count(*) AS n FROM onemap.resident").fetchone()["n"]

        out = tmp_path / "mine.gpkg"
        summary = export_layer(conn, "resident", out, "gpkg", principal=worker)
        frame = pyogrio.read_dataframe(out)
        assert summary.rows == len(frame) == mine < total
        assert set(frame["grid_id"]) == {grid1}
        assert set(frame["phone"]) == {"13800001234"}

        out = tmp_path / "all.csv"
        summary = export_layer(conn, "resident", out, "csv", principal=analyst)
        frame = pyogrio.read_dataframe(out)
        assert summary.rows == total
        assert set(frame["phone"]) == {"138****1234"}

        with pytest.raises(AuthenticationError):
            export_layer(conn, "pipe_segment", tmp_path / "p.gpkg", "gpkg",
                         principal=Principal(None, "anonymous"))
        system = _user(conn, ["external_system"], [])
        with pytest.raises(PermissionDeniedError):
            export_layer(conn, "resident", tmp_path / "r.gpkg", "gpkg", principal=system)
        assert grid2 != grid1
