"""``GET /search``: what each kind of caller finds, and bad input.

The tiny city has the same room numbers (``1-1-101`` …) in both grids'
compounds; row-level security decides which households a caller finds.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest


@pytest.fixture
def city(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> dict[str, Any]:
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO onemap.alley (name, alley_type, street_office_id, geom) "
            "VALUES ('和平胡同', 'hutong', %s, "
            "ST_MakeLine(ST_Point(116.462, 39.916, 4490), ST_Point(116.466, 39.916, 4490)))",
            (tiny_city_ids["street_office"],),
        )
        grid_of = dict(conn.execute(
            "SELECT h.id, b.grid_id FROM onemap.household h "
            "JOIN onemap.building b ON b.id = h.building_id"
        ).fetchall())
    return {"ids": tiny_city_ids, "grid_of": grid_of}


@pytest.fixture
def clients(make_client: Any, city: dict[str, Any]) -> dict[str, Any]:
    ids = city["ids"]
    return {
        "grid_worker": make_client(["grid_worker"], [("grid", ids["grid1"])]),
        "analyst": make_client(["analyst"]),
        "external_system": make_client(["external_system"]),
        "public": make_client([]),
    }


def hits(client: Any, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/search", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def households(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in found if h["type"] == "household"]


def test_grid_worker_finds_only_households_of_their_grid(clients: dict[str, Any],
                                                         city: dict[str, Any]) -> None:
    found = households(hits(clients["grid_worker"], q="1-1-101"))
    assert len(found) == 1
    (hit,) = found
    assert city["grid_of"][hit["id"]] == city["ids"]["grid1"]
    assert hit["collection"] == "household"
    assert hit["label"] == "示范路 1 号 1号楼 1-1-101"
    assert 116.46 < hit["lon"] < 116.47 and 39.915 < hit["lat"] < 39.93
    assert "bbox" not in hit  # a point


def test_analyst_finds_households_of_every_grid(clients: dict[str, Any],
                                                city: dict[str, Any]) -> None:
    found = households(hits(clients["analyst"], q="1-1-101"))
    assert {city["grid_of"][h["id"]] for h in found} == {city["ids"]["grid1"],
                                                        city["ids"]["grid2"]}
    # more words narrow a room number down to a building
    (one,) = households(hits(clients["analyst"], q="示范路 9 号 1号楼 1-1-101"))
    assert city["grid_of"][one["id"]] == city["ids"]["grid2"]


def test_the_best_household_matches_come_first(clients: dict[str, Any],
                                              tiny_city_db: str) -> None:
    """An exact room number beats many partial matches, whatever their ids."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        building = conn.execute("SELECT min(id) FROM onemap.building").fetchone()[0]  # type: ignore[index]
        conn.execute(  # 25 partial matches first, so they have the lower ids
            "INSERT INTO onemap.household (building_id, room_no) "
            "SELECT %s, n || '7-7-707' FROM generate_series(1, 25) n", (building,))
        conn.execute("INSERT INTO onemap.household (building_id, room_no) "
                     "VALUES (%s, '7-7-707')", (building,))
    found = households(hits(clients["analyst"], q="7-7-707", limit=5))
    assert found and found[0]["label"].endswith(" 7-7-707"), found


@pytest.mark.parametrize("role", ["external_system", "public"])
def test_external_and_public_find_no_household(clients: dict[str, Any], role: str) -> None:
    assert households(hits(clients[role], q="1-1-101")) == []
    found = hits(clients[role], q="和平")
    kinds = {(h["type"], h["label"]) for h in found}
    assert ("compound", "和平里小区") in kinds
    assert ("alley", "和平胡同") in kinds


def test_finds_buildings_addresses_compounds_and_alleys(clients: dict[str, Any]) -> None:
    found = hits(clients["analyst"], q="示范路 9 号")
    assert found[0] == {**found[0], "type": "address", "collection": "compound",
                        "label": "示范路 9 号"}  # exact match first
    assert {h["label"] for h in found if h["collection"] == "building"} >= {
        "示范路 9 号 1号楼", "示范路 9 号 4号楼"}
    (alley,) = [h for h in hits(clients["analyst"], q="胡同") if h["type"] == "alley"]
    minx, miny, maxx, maxy = alley["bbox"]
    assert minx == pytest.approx(116.462) and maxx == pytest.approx(116.466)
    assert miny == pytest.approx(39.916) and maxy == pytest.approx(39.916)
    building = next(h for h in hits(clients["public"], q="4号楼"))
    assert building["type"] == "building" and len(building["bbox"]) == 4


def test_limit_is_clamped_and_wildcards_are_literal(clients: dict[str, Any]) -> None:
    assert len(hits(clients["analyst"], q="-", limit=1000)) == 50
    assert len(hits(clients["analyst"], q="-", limit=0)) == 1
    assert len(hits(clients["analyst"], q="-")) == 10
    assert hits(clients["analyst"], q="%") == []
    assert hits(clients["analyst"], q="_") == []


@pytest.mark.parametrize("params", [
    {}, {"q": ""}, {"q": "   "}, {"q": "x" * 101}, {"q": "和平", "limit": "ten"},
    {"q": "和平", "lmit": "5"}, {"q": "和平", "f": "html"},
])
def test_bad_input_is_400(clients: dict[str, Any], params: dict[str, str]) -> None:
    response = clients["public"].get("/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidParameterValue"


@pytest.mark.parametrize("name", ["160_search.sql", "175_search_units.sql"])
def test_migration_runs_again_and_indexes_exist(conn: psycopg.Connection[Any],
                                                name: str) -> None:
    from importlib import resources

    text = resources.files("spatial.sql").joinpath(name).read_text(encoding="utf-8")
    conn.execute(text)  # re-runnable: a second application changes nothing
    conn.execute(text)
    names = {r["indexname"] for r in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'onemap' AND indexname LIKE '%trgm%'"
    ).fetchall()}
    assert names == {"building_name_trgm_idx", "building_address_trgm_idx",
                     "compound_name_trgm_idx", "compound_address_trgm_idx",
                     "household_room_no_trgm_idx", "alley_name_trgm_idx",
                     "street_office_name_trgm_idx", "community_name_trgm_idx",
                     "grid_name_trgm_idx"}
    # 160 applied again alone (its checksum changed) keeps the units searchable
    assert conn.execute("SELECT count(*) AS n FROM onemap.search_units('x', 1)").fetchone()


# --- admin units: street offices, communities, grids ------------------------------------------


@pytest.fixture
def demo_names(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> dict[str, int]:
    """The demo city's names (霞光里社区 in 双井街道) added to the tiny city."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        so = conn.execute(
            "INSERT INTO onemap.street_office (code, name, district_id, geom) "
            "VALUES ('110105002', '双井街道', %s, "
            "ST_Multi(ST_MakeEnvelope(116.50, 39.91, 116.52, 39.93, 4490))) RETURNING id",
            (tiny_city_ids["district"],)).fetchone()[0]  # type: ignore[index]
        community = conn.execute(
            "INSERT INTO onemap.community (code, name, street_office_id, geom) "
            "VALUES ('110105002005', '霞光里社区', %s, "
            "ST_Multi(ST_MakeEnvelope(116.50, 39.91, 116.51, 39.92, 4490))) RETURNING id",
            (so,)).fetchone()[0]  # type: ignore[index]
        grid = conn.execute(
            "INSERT INTO onemap.grid (code, name, community_id, geom) "
            "VALUES ('110105002005-01', '霞光里第1网格', %s, "
            "ST_Multi(ST_MakeEnvelope(116.50, 39.91, 116.505, 39.915, 4490))) RETURNING id",
            (community,)).fetchone()[0]  # type: ignore[index]
    return {"street_office": so, "community": community, "grid": grid}


@pytest.mark.parametrize("role", ["analyst", "grid_worker", "external_system", "public"])
def test_everyone_finds_admin_units_by_name(clients: dict[str, Any], demo_names: dict[str, int],
                                            role: str) -> None:
    """Admin units are public layers: every caller finds them (the evaluation's
    "霞光里" and "双井街道" found nothing before)."""
    (office,) = hits(clients[role], q="双井街道")
    assert office == {**office, "type": "street_office", "collection": "street_office",
                      "id": demo_names["street_office"], "label": "双井街道"}
    minx, miny, maxx, maxy = office["bbox"]
    assert (minx, miny, maxx, maxy) == pytest.approx((116.50, 39.91, 116.52, 39.93))
    assert minx < office["lon"] < maxx and miny < office["lat"] < maxy
    found = hits(clients[role], q="霞光里")
    assert [(h["type"], h["label"]) for h in found] == [
        ("community", "霞光里社区"), ("grid", "霞光里第1网格")]  # shorter label first
    assert found[1]["id"] == demo_names["grid"] and len(found[1]["bbox"]) == 4


def test_units_rank_with_the_other_hits(clients: dict[str, Any]) -> None:
    """An exact unit name beats prefix matches of other kinds, and the reverse."""
    found = hits(clients["analyst"], q="示范社区")
    assert (found[0]["type"], found[0]["label"]) == ("community", "示范社区")
    found = hits(clients["analyst"], q="示范")  # all prefix matches: shorter labels first
    assert {h["label"] for h in found[:2]} == {"示范街道", "示范社区"}
    assert {h["type"] for h in found} >= {"street_office", "community", "address"}
    (grid,) = hits(clients["public"], q="第二网格")
    assert grid["type"] == "grid" and grid["collection"] == "grid"


def test_compounds_by_name(clients: dict[str, Any]) -> None:
    (compound,) = hits(clients["public"], q="幸福家园")
    assert (compound["type"], compound["collection"]) == ("compound", "compound")
    assert len(compound["bbox"]) == 4


def test_every_type_is_in_the_documented_enum() -> None:
    from pathlib import Path

    import yaml

    from spatial.search import TYPES

    paths = Path(__file__).parents[2] / "server" / "openapi_paths.yml"
    document = yaml.safe_load(paths.read_text(encoding="utf-8"))
    enum = document["components"]["schemas"]["searchResult"]["properties"]["type"]["enum"]
    assert tuple(enum) == TYPES
