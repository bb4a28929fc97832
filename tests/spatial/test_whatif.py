"""What-if scenarios (spatial/whatif.py, 185_whatif.sql): edits parsed once with errors
naming the edit, ids checked through the caller's connection, the store's round trip and
its row-level security (owner, shared within the street office, district administrator)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from spatial import users, whatif
from spatial.access import Principal, request_connection
from spatial.db import connect
from spatial.errors import InvalidInputError, NotFoundError, PermissionDeniedError

# Parsing: one clear 400 naming the edit and its field --------------------------------


@pytest.mark.parametrize(("edits", "named"), [
    ("close_road", "edits: must be a list"),
    ([{"type": "open_road", "road_ids": [1]}], "edits[0].type"),
    ([{"road_ids": [1]}], "edits[0].type"),
    (["close_road"], "edits[0]: must be an object"),
    ([{"type": "close_road"}], "edits[0]: close_road needs road_ids"),
    ([{"type": "close_road", "road_ids": []}], "edits[0].road_ids"),
    ([{"type": "close_road", "road_ids": [1, "2"]}], "edits[0].road_ids[1]"),
    ([{"type": "close_road", "road_ids": [0]}], "edits[0].road_ids[0]"),
    ([{"type": "close_road", "road_ids": [True]}], "edits[0].road_ids[0]"),
    ([{"type": "close_road", "road_ids": [1], "why": "x"}], "edits[0]: close_road takes no why"),
    ([{"type": "close_road", "road_ids": [1]},
      {"type": "valve_fails", "valve_ids": 3}], "edits[1].valve_ids"),
    ([{"type": "remove_facility", "collection": "household", "id": 1}], "edits[0].collection"),
    ([{"type": "remove_facility", "collection": "refuse_facility", "id": 1.5}], "edits[0].id"),
    ([{"type": "set_capacity", "collection": "refuse_facility", "id": 1, "capacity": -1}],
     "edits[0].capacity"),
    ([{"type": "set_capacity", "collection": "refuse_facility", "id": 1, "capacity": "big"}],
     "edits[0].capacity"),
    ([{"type": "add_facility", "collection": "refuse_facility"}], "edits[0]: add_facility needs"),
    ([{"type": "add_facility", "collection": "refuse_facility", "id": 1,
       "point": {"x": 116.4, "y": 39.9}}], "edits[0]: add_facility needs"),
    ([{"type": "add_facility", "collection": "refuse_facility",
       "point": {"x": 116.4, "y": 39.9, "crs": "mars"}}], "edits[0].point.crs"),
    ([{"type": "add_facility", "collection": "refuse_facility",
       "point": {"x": 116.4}}], "edits[0].point"),
    ([{"type": "add_facility", "collection": "refuse_facility",
       "point": {"x": 500, "y": 39.9, "crs": "EPSG:4490"}}], "edits[0].point"),
    ([{"type": "add_facility", "collection": "refuse_facility", "point": {"x": 116.4, "y": 39.9},
       "attributes": {"capacity": -3}}], "edits[0].attributes.capacity"),
    ([{"type": "add_facility", "collection": "refuse_facility", "point": {"x": 116.4, "y": 39.9},
       "attributes": {"colour": "red"}}], "edits[0].attributes"),
])
def test_bad_edits_name_the_edit_and_field(edits: Any, named: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        whatif.parse_edits(edits)
    assert named in str(caught.value)
    assert str(caught.value).startswith("invalid scenario / 情景无效")


def test_edits_round_trip_through_their_json() -> None:
    raw = [{"type": "close_road", "road_ids": [9, 2, 9]},
           {"type": "valve_fails", "valve_ids": [4]},
           {"type": "remove_facility", "collection": "refuse_facility", "id": 3},
           {"type": "add_facility", "collection": "refuse_facility",
            "point": {"x": 116.410244, "y": 39.916404, "crs": "gcj02"},
            "attributes": {"name": "新垃圾楼", "capacity": 12}},
           {"type": "add_facility", "collection": "refuse_facility", "id": 7},
           {"type": "set_capacity", "collection": "refuse_facility", "id": 5, "capacity": 30}]
    edits = whatif.parse_edits(raw)
    again = whatif.parse_edits([e.to_json() for e in edits])
    assert again == edits
    assert edits[0] == whatif.CloseRoad((2, 9))
    new = edits[3]
    assert isinstance(new, whatif.AddFacility) and new.point is not None
    assert (round(new.point.lon, 3), round(new.point.lat, 3)) == (116.404, 39.915)  # GCJ-02
    s = whatif.Scenario(uuid.uuid4(), "s", None, 1, False, edits)
    assert s.closed_roads() == {2, 9} and s.failed_valves() == {4}
    assert s.removed("refuse_facility") == {3}
    assert [a.id for a in s.added("refuse_facility")] == [None, 7]
    assert s.capacities("refuse_facility") == {5: 30.0}
    assert whatif.layers_of(edits) == ["refuse_facility", "road", "valve"]


@pytest.mark.parametrize(("body", "named"), [
    ([], "body"),
    ({"edits": []}, "name"),
    ({"name": " ", "edits": []}, "name"),
    ({"name": "x"}, "edits"),
    ({"name": "x", "edits": [], "shared": "yes"}, "shared"),
    ({"name": "x", "edits": [], "description": 5}, "description"),
    ({"name": "x", "edits": [], "owner_id": 1}, "owner_id: unknown member"),
])
def test_bad_bodies_name_the_member(body: Any, named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        whatif.parse_body(body)


# The store and its row-level security --------------------------------------------------


def _user(db: str, roles: list[str], scopes: list[tuple[str, int]]) -> Principal:
    with connect(db) as conn, conn.transaction():
        info = users.create_user(conn, f"u{uuid.uuid4().hex[:8]}", None, roles=roles,
                                 scopes=scopes)
    return Principal(info.id, info.username, frozenset(roles))


@pytest.fixture
def people(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> dict[str, Principal]:
    """An owner and a colleague in the tiny city's street office, a grid worker there,
    someone of another street office, an analyst without scope, a district admin."""
    with connect(tiny_city_db) as conn, conn.transaction():
        other = conn.execute(
            "INSERT INTO onemap.street_office (code, name, district_id, geom) "
            "SELECT '110105099', '别的街道', district_id, geom FROM onemap.street_office "
            "WHERE id = %s RETURNING id", (tiny_city_ids["street_office"],)).fetchone()["id"]
    so = tiny_city_ids["street_office"]
    return {
        "owner": _user(tiny_city_db, ["street_staff"], [("street_office", so)]),
        "colleague": _user(tiny_city_db, ["community_staff"],
                           [("community", tiny_city_ids["community"])]),
        "grid": _user(tiny_city_db, ["grid_worker"], [("grid", tiny_city_ids["grid1"])]),
        "elsewhere": _user(tiny_city_db, ["street_staff"], [("street_office", other)]),
        "analyst": _user(tiny_city_db, ["analyst"], []),
        "admin": _user(tiny_city_db, ["district_admin"],
                       [("district", tiny_city_ids["district"])]),
    }


def _road_ids(db: str) -> list[int]:
    with connect(db) as conn:
        return [r["id"] for r in conn.execute("SELECT id FROM onemap.road ORDER BY id")]


def _draft(edits: list[dict[str, Any]], *, shared: bool = False,
           name: str = "关闭示范路 / close the road") -> whatif.Draft:
    return whatif.parse_body({"name": name, "description": "test", "shared": shared,
                              "edits": edits})


def test_store_round_trip(tiny_city_db: str, people: dict[str, Principal]) -> None:
    roads = _road_ids(tiny_city_db)
    draft = _draft([{"type": "close_road", "road_ids": roads[:1]},
                    {"type": "add_facility", "collection": "refuse_facility",
                     "point": {"x": 116.46, "y": 39.92, "crs": "CRS84"},
                     "attributes": {"capacity": 8}}])
    with request_connection(people["owner"]) as conn:
        made = whatif.create(conn, draft)
    assert made.owner_id == people["owner"].user_id and made.edits == draft.edits
    assert made.layers == ("refuse_facility", "road")
    with request_connection(people["owner"]) as conn:
        got = whatif.get(conn, str(made.id))
        listed, total = whatif.list_scenarios(conn)
    assert got == made and [s.id for s in listed] == [made.id] and total == 1
    with request_connection(people["owner"]) as conn:
        changed = whatif.update(conn, made.id, _draft([], name="renamed"))
    assert changed.name == "renamed" and changed.edits == () and changed.layers == ()
    assert changed.updated_at is not None and made.updated_at is not None
    assert changed.updated_at >= made.updated_at
    with request_connection(people["owner"]) as conn:
        whatif.delete(conn, made.id)
    with request_connection(people["owner"]) as conn, pytest.raises(NotFoundError):
        whatif.get(conn, made.id)


def test_others_neither_see_nor_change_a_private_scenario(
        tiny_city_db: str, people: dict[str, Principal]) -> None:
    with request_connection(people["owner"]) as conn:
        made = whatif.create(conn, _draft([]))
    for who in ("colleague", "grid", "elsewhere", "analyst"):
        with request_connection(people[who]) as conn:
            assert whatif.list_scenarios(conn) == ([], 0)
            with pytest.raises(NotFoundError, match="no scenario"):
                whatif.get(conn, made.id)
            with pytest.raises(NotFoundError):
                whatif.update(conn, made.id, _draft([], name="mine now"))
            with pytest.raises(NotFoundError):
                whatif.delete(conn, made.id)
    # the district administrator reads every scenario, but changes none of them
    with request_connection(people["admin"]) as conn:
        assert whatif.get(conn, made.id).id == made.id
        with pytest.raises(PermissionDeniedError, match="owner"):
            whatif.delete(conn, made.id)
    # nothing changed: the owner still has it as it was
    with request_connection(people["owner"]) as conn:
        assert whatif.get(conn, made.id) == made


def test_a_shared_scenario_is_read_within_the_owners_street_office(
        tiny_city_db: str, people: dict[str, Principal]) -> None:
    with request_connection(people["owner"]) as conn:
        made = whatif.create(conn, _draft([], shared=True))
    for who in ("colleague", "grid", "admin"):
        with request_connection(people[who]) as conn:
            assert whatif.get(conn, made.id).id == made.id, who
            with pytest.raises(PermissionDeniedError, match="owner"):
                whatif.update(conn, made.id, _draft([], name="taken over"))
    for who in ("elsewhere", "analyst"):
        with request_connection(people[who]) as conn, pytest.raises(NotFoundError):
            whatif.get(conn, made.id)
    # and the database itself refuses a write that goes around the application
    with request_connection(people["colleague"]) as conn:
        assert conn.execute("UPDATE onemap.scenario SET name = 'x' WHERE id = %s",
                            (made.id,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE onemap.scenario SET owner_id = %s WHERE id = %s",
                         (people["colleague"].user_id, made.id))


def test_unseen_or_absent_ids_are_a_404_naming_the_edit(
        tiny_city_db: str, people: dict[str, Principal]) -> None:
    roads = _road_ids(tiny_city_db)
    cases = [
        ([{"type": "close_road", "road_ids": roads}, {"type": "close_road",
                                                       "road_ids": [roads[0], 99999]}],
         "edits[1]: no road with id 99999"),
        ([{"type": "remove_facility", "collection": "refuse_facility", "id": 424242}],
         "edits[0]: no refuse_facility with id 424242"),
        ([{"type": "set_capacity", "collection": "refuse_facility", "id": 5, "capacity": 1}],
         "edits[0]: no refuse_facility"),
        ([{"type": "valve_fails", "valve_ids": [77]}], "edits[0]: no valve with id 77"),
    ]
    for edits, message in cases:
        with request_connection(people["owner"]) as conn, \
                pytest.raises(NotFoundError) as caught:
            whatif.create(conn, _draft(edits))
        assert message in str(caught.value)
    # a new facility far outside the city is a 400 naming its point
    far = [{"type": "add_facility", "collection": "refuse_facility",
            "point": {"x": 121.47, "y": 31.23}}]
    with request_connection(people["owner"]) as conn, \
            pytest.raises(InvalidInputError, match=r"edits\[0\]\.point"):
        whatif.create(conn, _draft(far))
    with request_connection(people["owner"]) as conn:
        assert whatif.list_scenarios(conn) == ([], 0)


def test_anonymous_callers_store_nothing(tiny_city_db: str) -> None:
    from spatial.access import ANONYMOUS

    with request_connection(ANONYMOUS) as conn, pytest.raises(PermissionDeniedError):
        whatif.create(conn, _draft([]))
    with request_connection(ANONYMOUS) as conn:
        assert whatif.list_scenarios(conn) == ([], 0)
    with pytest.raises(NotFoundError, match="no scenario"):
        whatif.scenario_uuid("not-a-uuid")
