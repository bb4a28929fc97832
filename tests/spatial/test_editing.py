"""spatial.editing against the tiny city in a real PostGIS, as real principals.

Each write runs in a transaction acting as a user (apply_principal), as the
API does, so row-level security, the audit trigger and the version trigger
(135_editing.sql) are all in play.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from spatial.access import Principal, apply_principal
from spatial.editing import (
    IfMatch,
    check_geojson_geometry,
    create_feature,
    delete_feature,
    feature_etag,
    input_crs,
    parse_feature,
    parse_if_match,
    update_feature,
)
from spatial.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

IN_GRID1 = [116.465, 39.921]
IN_GRID2 = [116.475, 39.921]


@pytest.fixture
def owner(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def ids(tiny_city_ids: dict[str, int]) -> dict[str, int]:
    return tiny_city_ids


Acting = Callable[..., Any]


@pytest.fixture
def acting(tiny_city_db: str, ids: dict[str, int]) -> Iterator[Acting]:
    """``with acting("grid_worker") as conn:`` — a transaction as a new user of that role."""
    scopes = {
        "district_admin": [("district", ids["district"])],
        "street_staff": [("street_office", ids["street_office"])],
        "community_staff": [("community", ids["community"])],
        "grid_worker": [("grid", ids["grid1"])],
    }
    users: dict[str, Principal] = {}
    opened: list[psycopg.Connection[Any]] = []

    @contextmanager
    def act(role: str | None) -> Iterator[psycopg.Connection[Any]]:
        if role is None:
            principal = Principal(None, "anonymous")
        elif role in users:
            principal = users[role]
        else:
            name = f"u{uuid.uuid4().hex[:8]}"
            with psycopg.connect(tiny_city_db) as conn, conn.transaction():
                (user_id,) = conn.execute(
                    "INSERT INTO onemap.app_user (username) VALUES (%s) RETURNING id", (name,)
                ).fetchone()
                conn.execute("INSERT INTO onemap.user_role (user_id, role_id) "
                             "SELECT %s, id FROM onemap.app_role WHERE code = %s", (user_id, role))
                for level, unit in scopes.get(role, []):
                    conn.execute("INSERT INTO onemap.data_scope (user_id, level, unit_id) "
                                 "VALUES (%s, %s, %s)", (user_id, level, unit))
            principal = users[role] = Principal(user_id, name, frozenset({role}))
        conn = psycopg.connect(tiny_city_db, autocommit=True)
        opened.append(conn)
        with conn.transaction():
            apply_principal(conn, principal)
            yield conn

    yield act
    for c in opened:
        c.close()


def point(coords: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": coords},
            "properties": props}


def props(**values: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": None, "properties": values}


def polygon(x: float, y: float, size: float = 0.0005) -> list[list[list[float]]]:
    return [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]


# -- pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("", None),
    ('"5"', IfMatch(versions=(5,))),
    ('"5", "6"', IfMatch(versions=(5, 6))),
    ("5", IfMatch(versions=(5,))),
    ('W/"5"', IfMatch(versions=())),
    ('"abc"', IfMatch(versions=())),
    ("*", IfMatch(any=True)),
])
def test_parse_if_match(header: str | None, expected: IfMatch | None) -> None:
    assert parse_if_match(header) == expected


def test_feature_etag_follows_the_row() -> None:
    a = {"type": "Feature", "id": 1, "geometry": None, "properties": {"status": "working"}}
    b = {**a, "properties": {"status": "fault"}}
    assert feature_etag(a) != feature_etag(b)
    assert feature_etag(a) == feature_etag(dict(a))
    assert feature_etag({**a, "properties": {"version": 7}}) == '"7"'


@pytest.mark.parametrize(("header", "expected"), [
    ("<http://www.opengis.net/def/crs/OGC/1.3/CRS84>", (4490, False)),
    ("http://www.opengis.net/def/crs/EPSG/0/4490", (4490, True)),
    ("EPSG:4527", (4527, True)),  # CGCS2000 / 3-degree GK zone 39: northing first
    ("http://www.opengis.net/def/crs/EPSG/0/3857", (3857, False)),
])
def test_input_crs(header: str, expected: tuple[int, bool]) -> None:
    assert input_crs(header) == expected


@pytest.mark.parametrize("header", ["gcj02", "EPSG:2154", "urn:nonsense"])
def test_input_crs_refused(header: str) -> None:
    with pytest.raises(InvalidInputError, match="Content-Crs"):
        input_crs(header)


@pytest.mark.parametrize("body", [
    b"\xff", b"{", b"NaN", b'{"type": "Feature", "properties": {"x": NaN}}', b'"Feature"',
    b'{"type": "Feature", "properties": []}', b'{"properties": {}}',
])
def test_parse_feature_refuses(body: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_feature(body)


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [116.4, 39.9]},
    {"type": "Point", "coordinates": [116.4, 39.9, 45.0]},
    {"type": "MultiPoint", "coordinates": [[116.4, 39.9]]},
    {"type": "MultiPoint", "coordinates": []},
    {"type": "LineString", "coordinates": [[116.4, 39.9], [116.5, 39.9]]},
    {"type": "MultiLineString", "coordinates": [[[116.4, 39.9], [116.5, 39.9]]]},
    {"type": "Polygon", "coordinates": polygon(116.4, 39.9)},
    {"type": "MultiPolygon", "coordinates": [polygon(116.4, 39.9)]},
    {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]},
])
def test_well_formed_geometries(geometry: dict[str, Any]) -> None:
    check_geojson_geometry(geometry)


@pytest.mark.parametrize(("geometry", "says"), [
    ({"type": "Point", "coordinates": []}, "position"),
    ({"type": "Point", "coordinates": [1]}, "position"),
    ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "position"),
    ({"type": "Point", "coordinates": [True, 2]}, "position"),
    ({"type": "Point", "coordinates": [float("inf"), 2]}, "position"),
    ({"type": "Point"}, "coordinates"),
    ({"type": "LineString", "coordinates": [1, 2]}, "position"),
    ({"type": "Polygon", "coordinates": [[1, 2]]}, "position"),
    ({"type": "Circle", "coordinates": [1, 2]}, "unknown type"),
    ({"type": "GeometryCollection"}, "geometries"),
    ([1, 2], "geometry object"),
])
def test_malformed_geometries(geometry: Any, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        check_geojson_geometry(geometry)


# -- creating -------------------------------------------------------------------------


def test_create_fills_jurisdiction_and_is_audited(
    acting: Acting, owner: psycopg.Connection[Any], ids: dict[str, int]
) -> None:
    with acting("grid_worker") as conn:
        result = create_feature(conn, "event",
                                point(IN_GRID1, source="grid_worker", category="sanitation"))
    assert result.version == 1 and result.etag == '"1"' and not result.replayed
    assert owner.execute(
        "SELECT street_office_id, community_id, grid_id FROM onemap.event WHERE id = %s",
        (result.id,)).fetchone() == (ids["street_office"], ids["community"], ids["grid1"])
    action, before, after = owner.execute(
        "SELECT action, before, after FROM onemap.audit_log WHERE table_name = 'event' "
        "AND row_id = %s", (result.id,)).fetchone()
    assert (action, before, after["version"]) == ("insert", None, 1)
    assert "geom_3857" not in after


def test_given_units_are_kept_and_completed(acting: Acting, owner: psycopg.Connection[Any],
                                            ids: dict[str, int]) -> None:
    with acting("district_admin") as conn:
        # a point on the boundary the dispatcher assigned to grid 2 by hand
        result = create_feature(conn, "event", point([116.47, 39.921], source="citizen",
                                                     category="other", grid_id=ids["grid2"]))
    assert owner.execute(
        "SELECT street_office_id, community_id, grid_id FROM onemap.event WHERE id = %s",
        (result.id,)).fetchone() == (ids["street_office"], ids["community"], ids["grid2"])


def test_who_may_create(acting: Acting, owner: psycopg.Connection[Any]) -> None:
    before = owner.execute("SELECT count(*) FROM onemap.event").fetchone()
    with pytest.raises(AuthenticationError, match="sign in"), acting(None) as conn:
        create_feature(conn, "event", point(IN_GRID1, source="citizen", category="other"))
    with pytest.raises(PermissionDeniedError, match="role"), acting("analyst") as conn:
        create_feature(conn, "event", point(IN_GRID1, source="citizen", category="other"))
    with pytest.raises(PermissionDeniedError, match="scope"), acting("grid_worker") as conn:
        create_feature(conn, "event", point(IN_GRID2, source="citizen", category="other"))
    with pytest.raises(PermissionDeniedError, match="role"), acting("grid_worker") as conn:
        create_feature(conn, "road", {"type": "Feature", "properties": {"name": "x"},
                                      "geometry": None})
    assert owner.execute("SELECT count(*) FROM onemap.event").fetchone() == before


def test_read_only_properties_are_ignored(acting: Acting, owner: psycopg.Connection[Any],
                                         ids: dict[str, int]) -> None:
    body = {"type": "Feature", "id": 123456,
            "geometry": {"type": "Polygon", "coordinates": polygon(116.4652, 39.9282)},
            "properties": {"id": 123456, "version": 99, "created_at": "2000-01-01T00:00:00Z",
                           "name": "新楼", "floors": 5}}
    with acting("district_admin") as conn:
        result = create_feature(conn, "building", body)
    assert result.id != 123456 and result.version == 1
    row = owner.execute("SELECT version, created_at > '2020-01-01', floors, grid_id "
                        "FROM onemap.building WHERE id = %s", (result.id,)).fetchone()
    assert row == (1, True, 5, ids["grid1"])


@pytest.mark.parametrize(("table", "body", "says"), [
    ("event", point(IN_GRID1, source="citizen", category="other", colour="red"), "colour"),
    ("event", point(IN_GRID1, source="citizen", category="other", geom="POINT(1 2)"), "geom"),
    ("event", point(IN_GRID1, source="citizen"), "missing required properties for event: "
                                                 "category"),
    ("event", point(IN_GRID1, source="citizen", category="other", evaluation_score=9),
     "evaluation_score"),
    ("event", point(IN_GRID1, source="radio", category="other"),
     "allowed: citizen, grid_worker, hotline_12345, sensor"),
    ("event", point(IN_GRID1, source="citizen", category="other", reported_at="last tuesday"),
     "reported_at: invalid input syntax for type timestamp with time zone"),
    ("event", point(IN_GRID1, source="citizen", category="other", client_uuid="not-a-uuid"),
     "client_uuid"),
    ("event", point(IN_GRID1, source="citizen", category="other", grid_id=10**9),
     "grid_id: no grid with this id"),
    ("building", {"type": "Feature", "properties": {"name": "x"}, "geometry": None},
     "geometry"),
    ("household", props(building_id=1, room_no="1-1-101", area_m2=12345678.9), "area_m2"),
    ("household", props(building_id=1, room_no="1-1-101", floor="third"), "floor"),
    ("resident", props(household_id=1, name="甲", tags=["astronaut"]), "tags"),
    ("resident", props(household_id=1, name="甲", tags="elderly_alone"), "tags"),
])
def test_property_errors_name_the_property(acting: Acting, owner: psycopg.Connection[Any],
                                           table: str, body: Any, says: str) -> None:
    before = owner.execute(f"SELECT count(*) FROM onemap.{table}").fetchone()
    with pytest.raises(InvalidInputError, match=re.escape(says)), \
            acting("district_admin") as conn:
        create_feature(conn, table, body)
    assert owner.execute(f"SELECT count(*) FROM onemap.{table}").fetchone() == before


def test_personal_values_are_not_echoed(acting: Acting) -> None:
    with pytest.raises(InvalidInputError) as err, acting("district_admin") as conn:
        create_feature(conn, "resident", props(household_id=1, name="甲",
                                               birth_date="1990-13-45"))
    assert "birth_date: not a valid value" in str(err.value)
    assert "1990-13-45" not in str(err.value)


def test_unique_and_referenced_rows(acting: Acting, owner: psycopg.Connection[Any]) -> None:
    building, room = owner.execute(
        "SELECT building_id, room_no FROM onemap.household ORDER BY id LIMIT 1").fetchone()
    with pytest.raises(InvalidInputError, match="already has this building_id, room_no"), \
            acting("district_admin") as conn:
        create_feature(conn, "household", props(building_id=building, room_no=room))
    occupied = owner.execute("SELECT min(household_id) FROM onemap.resident").fetchone()[0]
    with pytest.raises(InvalidInputError, match="still referenced by resident"), \
            acting("district_admin") as conn:
        delete_feature(conn, "household", occupied)
    assert owner.execute("SELECT count(*) FROM onemap.household WHERE id = %s",
                         (occupied,)).fetchone() == (1,)


# -- geometry --------------------------------------------------------------------------


def test_polygon_is_promoted_and_z_dropped(acting: Acting, owner: psycopg.Connection[Any]) -> None:
    ring = [[x, y, 50.0] for x, y in polygon(116.4652, 39.9282)[0]]
    with acting("district_admin") as conn:
        poly = create_feature(conn, "building", {
            "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {}})
        multi = create_feature(conn, "building", {
            "type": "Feature", "properties": {},
            "geometry": {"type": "MultiPolygon", "coordinates": [polygon(116.4662, 39.9282)]}})
    rows = owner.execute("SELECT GeometryType(geom), ST_NDims(geom), ST_SRID(geom) "
                         "FROM onemap.building WHERE id IN (%s, %s)",
                         (poly.id, multi.id)).fetchall()
    assert rows == [("MULTIPOLYGON", 2, 4490)] * 2


@pytest.mark.parametrize(("table", "geometry", "says"), [
    ("building", {"type": "Point", "coordinates": IN_GRID1}, "must be a MultiPolygon"),
    ("building", {"type": "LineString", "coordinates": [IN_GRID1, IN_GRID2]},
     "must be a MultiPolygon"),
    ("event", {"type": "MultiPoint", "coordinates": [IN_GRID1]}, "must be a Point"),
    ("event", {"type": "GeometryCollection",
               "geometries": [{"type": "Point", "coordinates": IN_GRID1}]}, "must be a Point"),
    ("building", {"type": "MultiPolygon", "coordinates": []}, "empty"),
    ("building", {"type": "Polygon", "coordinates": [[IN_GRID1, IN_GRID2, IN_GRID1]]},
     "not valid"),
    ("building", {"type": "Polygon", "coordinates": [[[116.466, 39.921], [116.467, 39.922],
                                                      [116.467, 39.921], [116.466, 39.922],
                                                      [116.466, 39.921]]]},
     "Self-intersection"),
    ("building", {"type": "Polygon", "coordinates": polygon(116.539, 39.95, 0.01)},
     "outside the district"),
    ("event", {"type": "Point", "coordinates": [0, 0]}, "outside the district"),
])
def test_geometry_refusals(acting: Acting, table: str, geometry: Any, says: str) -> None:
    body = {"type": "Feature", "geometry": geometry,
            "properties": {"source": "citizen", "category": "other"} if table == "event" else {}}
    with pytest.raises(InvalidInputError, match=says), acting("district_admin") as conn:
        create_feature(conn, table, body)


def test_gauss_kruger_input(acting: Acting, owner: psycopg.Connection[Any]) -> None:
    from pyproj import Transformer

    northing, easting = Transformer.from_crs(4490, 4527).transform(IN_GRID1[1], IN_GRID1[0])
    with acting("district_admin") as conn:
        result = create_feature(conn, "event", point([northing, easting], source="citizen",
                                                     category="other"),
                                content_crs="http://www.opengis.net/def/crs/EPSG/0/4527")
    x, y = owner.execute("SELECT ST_X(geom), ST_Y(geom) FROM onemap.event WHERE id = %s",
                         (result.id,)).fetchone()
    assert (x, y) == (pytest.approx(IN_GRID1[0], abs=1e-8), pytest.approx(IN_GRID1[1], abs=1e-8))


# -- updating and deleting ----------------------------------------------------------------


def test_moving_an_event_moves_its_units(acting: Acting, owner: psycopg.Connection[Any],
                                         ids: dict[str, int]) -> None:
    with acting("district_admin") as conn:
        made = create_feature(conn, "event", point(IN_GRID1, source="citizen", category="other"))
        moved = update_feature(conn, "event", made.id, point(IN_GRID2), if_match='"1"')
    assert moved.version == 2
    assert owner.execute("SELECT grid_id, version FROM onemap.event WHERE id = %s",
                         (made.id,)).fetchone() == (ids["grid2"], 2)


def test_every_update_bumps_the_version(owner: psycopg.Connection[Any]) -> None:
    lamp = owner.execute("SELECT min(id) FROM onemap.lamp").fetchone()[0]
    owner.execute("UPDATE onemap.lamp SET status = 'off' WHERE id = %s", (lamp,))
    owner.execute("UPDATE onemap.lamp SET status = 'working', version = version + 1 "
                  "WHERE id = %s", (lamp,))  # as the importer does: still one step
    owner.execute("UPDATE onemap.lamp SET version = 1 WHERE id = %s", (lamp,))  # no going back
    assert owner.execute("SELECT version FROM onemap.lamp WHERE id = %s",
                         (lamp,)).fetchone() == (4,)


def test_a_stale_write_is_refused_and_writes_nothing(
    acting: Acting, owner: psycopg.Connection[Any]
) -> None:
    lamp = owner.execute("SELECT min(id) FROM onemap.lamp").fetchone()[0]
    # someone else changes the lamp after our client read version 1
    owner.execute("UPDATE onemap.lamp SET status = 'off' WHERE id = %s", (lamp,))
    audit = owner.execute("SELECT count(*) FROM onemap.audit_log").fetchone()
    with pytest.raises(ConflictError, match='"2"'), acting("grid_worker") as conn:
        update_feature(conn, "lamp", lamp, props(status="fault"), if_match='"1"')
    with pytest.raises(ConflictError), acting("district_admin") as conn:
        delete_feature(conn, "event", owner.execute("SELECT min(id) FROM onemap.event")
                       .fetchone()[0], if_match='"9"')
    assert owner.execute("SELECT status, version FROM onemap.lamp WHERE id = %s",
                         (lamp,)).fetchone() == ("off", 2)
    assert owner.execute("SELECT count(*) FROM onemap.audit_log").fetchone() == audit
    with acting("grid_worker") as conn:
        assert update_feature(conn, "lamp", lamp, props(status="fault"),
                              if_match='"1", "2"').version == 3


def test_the_check_and_the_write_are_one_statement(
    acting: Acting, owner: psycopg.Connection[Any], tiny_city_db: str
) -> None:
    """A writer that commits between our read and our UPDATE still makes us lose.

    The other writer holds the row; our update reads version 1 (the change is
    not committed yet), passes the early check, and waits on the row lock in
    its UPDATE; when the other commits version 2, the UPDATE's own
    ``version = ANY(...)`` no longer matches: 412, nothing overwritten.
    """
    lamp = owner.execute("SELECT min(id) FROM onemap.lamp").fetchone()[0]
    with acting("grid_worker"):
        pass  # the user exists before the race starts
    seen: dict[str, Any] = {}

    def ours() -> None:
        try:
            with acting("grid_worker") as conn:
                seen["pid"] = conn.info.backend_pid
                update_feature(conn, "lamp", lamp, props(status="fault"), if_match='"1"')
        except Exception as exc:  # handed to the test's thread
            seen["error"] = exc

    with psycopg.connect(tiny_city_db) as other:
        other.execute("UPDATE onemap.lamp SET status = 'off' WHERE id = %s", (lamp,))
        thread = threading.Thread(target=ours)
        thread.start()
        waiting = False
        for _ in range(600):  # until our UPDATE waits on the other's row lock
            pid = seen.get("pid")
            if pid is not None and owner.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    (pid,)).fetchone() == (True,):
                waiting = True
                break
            if "error" in seen or not thread.is_alive():
                break
            time.sleep(0.05)
        other.commit()
        thread.join(60)
    assert waiting, seen.get("error")
    assert isinstance(seen.get("error"), ConflictError)
    assert owner.execute("SELECT status, version FROM onemap.lamp WHERE id = %s",
                         (lamp,)).fetchone() == ("off", 2)


def test_update_and_delete_outside_scope(acting: Acting, owner: psycopg.Connection[Any],
                                         ids: dict[str, int]) -> None:
    theirs = owner.execute(
        "SELECT min(h.id) FROM onemap.household h JOIN onemap.building b ON b.id = h.building_id "
        "WHERE b.grid_id = %s", (ids["grid2"],)).fetchone()[0]
    with pytest.raises(NotFoundError), acting("grid_worker") as conn:
        update_feature(conn, "household", theirs, props(occupancy="vacant"))
    with pytest.raises(NotFoundError), acting("community_staff") as conn:
        update_feature(conn, "household", 10**9, props(occupancy="vacant"))
    with pytest.raises(PermissionDeniedError, match="role"), acting("grid_worker") as conn:
        delete_feature(conn, "household", theirs)
    with pytest.raises(InvalidInputError, match="required properties for household: room_no"), \
            acting("community_staff") as conn:
        update_feature(conn, "household", theirs, props(room_no=None))
