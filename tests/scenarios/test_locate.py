"""属地原则 on the hand-made tiny city (tests/data/tiny_city.sql): two grids split at
116.47°E, between 39.915°N and 39.93°N; known answers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from scenarios.locate import locate
from spatial.crs import wgs84_to_bd09, wgs84_to_gcj02
from spatial.db import connect
from spatial.errors import InvalidInputError


@pytest.fixture
def tiny(tiny_city_db: str) -> Any:
    with connect(tiny_city_db, autocommit=True) as c:
        yield c


def test_point_inside_one_grid(tiny: psycopg.Connection) -> None:
    r = locate(tiny, 116.465, 39.9225)
    assert r.grid is not None and r.grid.name == "第一网格" and r.grid.inside
    assert r.community is not None and r.community.name == "示范社区"
    assert r.street_office is not None and r.street_office.name == "示范街道"
    assert r.district is not None and r.district.code == "110105" and r.district.inside
    assert not r.ambiguous
    assert r.building is not None and r.building.address and r.building.distance_m < 300
    assert r.household is not None and r.household.label and "-" in r.household.label


def test_point_near_the_grid_boundary_offers_both_ranked(tiny: psycopg.Connection) -> None:
    # ~5 m east of the boundary at 116.47°E (1e-5° of longitude ≈ 0.85 m here)
    r = locate(tiny, 116.47006, 39.92)
    names = [u.name for u in r.candidates["grid"]]
    assert names == ["第二网格", "第一网格"]
    assert r.candidates["grid"][0].inside and not r.candidates["grid"][1].inside
    assert 3 < r.candidates["grid"][1].distance_m < 8
    assert r.ambiguous
    # with no tolerance the boundary case resolves to the grid it is in
    assert not locate(tiny, 116.47006, 39.92, tolerance_m=0).ambiguous


def test_gcj02_and_bd09_input_land_where_the_wgs84_point_does(tiny: psycopg.Connection) -> None:
    lon, lat = 116.4652, 39.9226
    g = wgs84_to_gcj02(lon, lat)
    b = wgs84_to_bd09(lon, lat)
    plain = locate(tiny, lon, lat)
    for x, y, crs in ((g[0], g[1], "gcj02"), (b[0], b[1], "bd09")):
        r = locate(tiny, float(x), float(y), crs=crs)
        assert r.lon == pytest.approx(plain.lon, abs=1e-8)
        assert r.grid is not None and plain.grid is not None and r.grid.id == plain.grid.id
    # taken for WGS84, the GCJ-02 coordinates are ~500 m off: another building is nearest
    wrong = locate(tiny, float(g[0]), float(g[1]))
    assert wrong.lon != pytest.approx(plain.lon, abs=1e-4)


def test_sub_grid_is_the_answer_not_its_parent(tiny: psycopg.Connection) -> None:
    tiny.execute(
        "INSERT INTO onemap.grid (code, name, community_id, parent_id, level, geom) "
        "SELECT g.code || '-A', '第一网格A', g.community_id, g.id, 2, "
        "ST_Multi(ST_MakeEnvelope(116.46, 39.915, 116.47, 39.9225, 4490)) "
        "FROM onemap.grid g WHERE g.name = '第一网格'")
    r = locate(tiny, 116.465, 39.918)
    assert [u.name for u in r.candidates["grid"]] == ["第一网格A"]
    assert not r.ambiguous


def test_outside_every_unit_and_bad_input(tiny: psycopg.Connection) -> None:
    r = locate(tiny, 116.30, 39.80)
    assert r.grid is None and r.community is None and r.building is None
    assert r.district is None  # the tiny district ends at 116.40, 39.88
    with pytest.raises(InvalidInputError):
        locate(tiny, 116.4, 39.9, crs="EPSG:999999")
    with pytest.raises(InvalidInputError):
        locate(tiny, float("nan"), 39.9)
    with pytest.raises(InvalidInputError):
        locate(tiny, 116.4, 39.9, tolerance_m=-1)
