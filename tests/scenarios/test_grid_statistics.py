"""Grid drill-down statistics against known answers: the hand-made tiny city
(counted by hand from tests/data/tiny_city.sql) and the synthetic city's truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from democity.context import REFERENCE_TIME
from scenarios.grid_statistics import grid_statistics
from spatial.db import connect
from spatial.errors import InvalidInputError, NotFoundError
from tests.conftest import generated_city


@pytest.fixture
def tiny(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(tiny_city_db, autocommit=True) as c:
        yield c


def _id(conn: psycopg.Connection[Any], table: str, name: str) -> int:
    return int(conn.execute(f"SELECT id FROM onemap.{table} WHERE name = %s", (name,))
               .fetchone()["id"])


def test_tiny_city_by_hand(tiny: psycopg.Connection[Any]) -> None:
    # 2 compounds × 4 buildings × 2 units × 3 floors × 2 rooms = 96 households; on each
    # unit the room with floor*2 + room ≡ 0 (mod 5) — floor 2, room 1 — is vacant: 16;
    # one resident per occupied household: 80. One event, reported, in the first grid.
    so = _id(tiny, "street_office", "示范街道")
    root = grid_statistics(tiny, level="street_office", unit_id=so)
    assert (root.households, root.occupied, root.residents) == (96, 80, 80)
    assert root.events == {"reported": 1}
    [community] = root.children
    assert community.name == "示范社区" and community.households == 96
    grids = {g.name: g for g in community.children}
    assert set(grids) == {"第一网格", "第二网格"}
    assert (grids["第一网格"].households, grids["第一网格"].residents) == (48, 40)
    assert grids["第一网格"].events == {"reported": 1} and not grids["第二网格"].events
    assert len(grids["第二网格"].children) == 4  # its buildings
    assert sum(b.households for b in grids["第二网格"].children) == 48


def test_polygon_and_depth(tiny: psycopg.Connection[Any]) -> None:
    # the western compound only: 4 buildings, 48 households
    area = grid_statistics(
        tiny, polygon_wkt="POLYGON((116.46 39.915,116.4695 39.915,116.4695 39.93,"
                          "116.46 39.93,116.46 39.915))")
    assert area.level == "area" and area.households == 48 and area.residents == 40
    shallow = grid_statistics(tiny, level="community",
                              unit_id=_id(tiny, "community", "示范社区"), depth="grid")
    assert all(not g.children for g in shallow.children)


def test_bad_requests(tiny: psycopg.Connection[Any]) -> None:
    with pytest.raises(InvalidInputError):
        grid_statistics(tiny)
    with pytest.raises(InvalidInputError):
        grid_statistics(tiny, level="province", unit_id=1)
    with pytest.raises(NotFoundError):
        grid_statistics(tiny, level="grid", unit_id=999_999)
    with pytest.raises(InvalidInputError):
        grid_statistics(tiny, polygon_wkt="POLYGON((1 2, 3")


@pytest.fixture(scope="module")
def synthetic(server_conninfo: str, template_db: str) -> Iterator[str]:
    with generated_city(server_conninfo, template_db, "stats", seed=4, steps=()) as made:
        yield made[0]


def test_every_grid_matches_the_planted_truth(synthetic: str) -> None:
    with connect(synthetic, autocommit=True) as conn:
        community = conn.execute("SELECT id FROM onemap.community LIMIT 1").fetchone()["id"]
        truth = {r["grid_id"]: r for r in conn.execute(
            "SELECT * FROM truth.grid_population").fetchall()}
        root = grid_statistics(conn, level="community", unit_id=community,
                               as_of=date(REFERENCE_TIME.year, REFERENCE_TIME.month,
                                          REFERENCE_TIME.day))
    assert truth
    for grid_id, t in truth.items():
        node = root.find("grid", grid_id)
        assert node is not None, grid_id
        got = (node.households, node.occupied, node.residents, node.elderly,
               node.tags["elderly_alone"], node.tags["disabled"], node.tags["low_income"],
               node.tags["key_person"])
        want = (t["households"], t["occupied"], t["residents"], t["elderly"],
                t["elderly_alone"], t["disabled"], t["low_income"], t["key_person"])
        assert got == want, (grid_id, got, want)
    assert root.households == sum(t["households"] for t in truth.values() if t["level"] == 1)
