"""Roles, data scopes and personal data, enforced by PostgreSQL (130_access.sql).

The matrix: every role × every collection, asserting exactly which rows each
caller sees, computed here from the base tables by the rules the README
states; then crafted filters, single items and masks.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests import declared

STAFF = ("district_admin", "street_staff", "community_staff", "grid_worker")
ROLES = (*STAFF, "analyst", "external_system", "public")


def feature_collections() -> list[str]:
    return sorted(declared.feature_collections())


@pytest.fixture
def city(tiny_city_db: str) -> dict[str, Any]:
    """The tiny city plus personal data and events in both grids and none."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE onemap.resident SET phone = '1380000' || lpad(id::text, 4, '0'), "
            "id_number = '11010519800101' || lpad(id::text, 4, '0')"
        )
        conn.execute(
            """
            INSERT INTO onemap.event (source, category, description, geom, status,
                                      reporter_name, reporter_phone, community_id, grid_id)
            SELECT 'citizen', 'sanitation', '垃圾满溢', ST_Point(116.475, 39.922, 4490),
                   'reported', '李四', '13912345678', g.community_id, g.id
            FROM onemap.grid g WHERE g.code = '110105001001-02';
            INSERT INTO onemap.event (source, category, description, status, address,
                                      external_ref)
            VALUES ('hotline_12345', 'livelihood', '地址待核实', 'reported', '示范路附近',
                    'GD-0001');
            """
        )
        ids = dict(
            conn.execute(
                """
                SELECT 'district', min(id) FROM onemap.district
                UNION ALL SELECT 'street_office', min(id) FROM onemap.street_office
                UNION ALL SELECT 'community', min(id) FROM onemap.community
                UNION ALL SELECT 'grid1', id FROM onemap.grid WHERE code = '110105001001-01'
                UNION ALL SELECT 'grid2', id FROM onemap.grid WHERE code = '110105001001-02'
                """
            ).fetchall()
        )
    return {"db": tiny_city_db, "ids": ids}


@pytest.fixture
def clients(make_client: Any, city: dict[str, Any]) -> dict[str, Any]:
    ids = city["ids"]
    scopes = {
        "district_admin": [("district", ids["district"])],
        "street_staff": [("street_office", ids["street_office"])],
        "community_staff": [("community", ids["community"])],
        "grid_worker": [("grid", ids["grid1"])],
    }
    return {
        role: make_client([] if role == "public" else [role], scopes.get(role, []))
        for role in ROLES
    }


def expected(conn: psycopg.Connection, role: str, collection: str, ids: dict[str, int]) -> Any:
    """Rows the rules give ``role``: a count, or 401/403."""
    audience = conn.execute(
        "SELECT audience FROM onemap.layer_access WHERE table_name = %s", (collection,)
    ).fetchone()[0]
    total = conn.execute(f"SELECT count(*) FROM onemap.{collection}").fetchone()[0]
    if audience == "public":
        return total
    if role == "public":
        return 401
    if audience == "internal":
        return total
    grids = [ids["grid1"]] if role == "grid_worker" else [ids["grid1"], ids["grid2"]]
    if collection in ("household", "resident"):
        if role == "external_system":
            return 403
        if role == "analyst":
            return total
        join = "" if collection == "household" else (
            " JOIN onemap.household h ON h.id = t.household_id")
        bid = "t.building_id" if collection == "household" else "h.building_id"
        return conn.execute(
            f"SELECT count(*) FROM onemap.{collection} t{join} "
            f"JOIN onemap.building b ON b.id = {bid} WHERE b.grid_id = ANY(%s)",
            (grids,),
        ).fetchone()[0]
    if collection == "event":
        if role in ("analyst", "external_system"):
            return total
        if role == "district_admin":
            return total  # the unplaced 12345 ticket included
        return conn.execute(
            "SELECT count(*) FROM onemap.event WHERE grid_id = ANY(%s)", (grids,)
        ).fetchone()[0]
    if collection == "event_photo":
        return 0
    raise AssertionError(f"no rule for {collection}")


def test_the_matrix(clients: dict[str, Any], city: dict[str, Any]) -> None:
    collections = feature_collections()
    assert {"resident", "household", "event", "pipe_segment", "building"} <= set(collections)
    failures = []
    with psycopg.connect(city["db"]) as conn:
        for collection in collections:
            for role in ROLES:
                want = expected(conn, role, collection, city["ids"])
                r = clients[role].get(
                    f"/collections/{collection}/items", params={"f": "json", "limit": 10000}
                )
                got = r.json()["numberReturned"] if r.status_code == 200 else r.status_code
                if got != want:
                    failures.append(f"{role} × {collection}: got {got}, want {want}")
    assert not failures, "\n".join(failures)


def test_refusals_are_explained(clients: dict[str, Any]) -> None:
    r = clients["public"].get("/collections/resident/items", params={"f": "json"})
    assert r.status_code == 401
    assert "sign in" in r.json()["description"]
    r = clients["external_system"].get("/collections/resident/items", params={"f": "json"})
    assert r.status_code == 403
    assert "resident" in r.json()["description"]


def test_the_scoped_layers_do_hold_rows_for_someone(clients: dict[str, Any]) -> None:
    """Guard for the matrix: a scoped layer that nobody sees would pass trivially."""
    for collection in ("household", "resident", "event"):
        r = clients["district_admin"].get(
            f"/collections/{collection}/items", params={"f": "json", "limit": 1}
        )
        assert r.json()["numberReturned"] == 1, collection


def test_grid_worker_sees_only_their_grid(clients: dict[str, Any], city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    grid1, grid2 = city["ids"]["grid1"], city["ids"]["grid2"]
    body = gw.get("/collections/resident/items", params={"f": "json", "limit": 1000}).json()
    assert body["numberReturned"] > 0
    assert {f["properties"]["grid_id"] for f in body["features"]} == {grid1}
    # Crafted filters cannot reach outside the scope.
    for cql in (
        f"grid_id = {grid2}",
        f"grid_id = {grid2} OR grid_id <> {grid2}",
        "name LIKE '%'",
        "NOT (grid_id IS NULL)",
    ):
        body = gw.get(
            "/collections/resident/items", params={"f": "json", "filter": cql, "limit": 1000}
        ).json()
        assert all(f["properties"]["grid_id"] == grid1 for f in body["features"]), cql
        if cql.startswith(f"grid_id = {grid2}") and " OR " not in cql:
            assert body["numberReturned"] == 0
    # A bbox around the second grid's compound finds nothing.
    east = "116.4715,39.918,116.4785,39.927"
    body = gw.get("/collections/household/items", params={"f": "json", "bbox": east}).json()
    assert body["numberReturned"] == 0
    # A resident of the other grid, asked for by id, does not exist for them.
    other = clients["district_admin"].get(
        "/collections/resident/items",
        params={"f": "json", "filter": f"grid_id = {grid2}", "limit": 1},
    ).json()["features"][0]["id"]
    assert gw.get(f"/collections/resident/items/{other}", params={"f": "json"}).status_code == 404
    assert clients["district_admin"].get(
        f"/collections/resident/items/{other}", params={"f": "json"}
    ).status_code == 200


def test_personal_fields_by_role(clients: dict[str, Any], city: dict[str, Any]) -> None:
    with psycopg.connect(city["db"]) as conn:
        rid, name, phone, idn = conn.execute(
            "SELECT r.id, r.name, r.phone, r.id_number FROM onemap.resident r "
            "JOIN onemap.household h ON h.id = r.household_id "
            "JOIN onemap.building b ON b.id = h.building_id WHERE b.grid_id = %s "
            "ORDER BY r.id LIMIT 1",
            (city["ids"]["grid1"],),
        ).fetchone()
    full = clients["grid_worker"].get(f"/collections/resident/items/{rid}", params={"f": "json"})
    props = full.json()["properties"]
    assert (props["name"], props["phone"], props["id_number"]) == (name, phone, idn)
    masked = clients["analyst"].get(f"/collections/resident/items/{rid}", params={"f": "json"})
    props = masked.json()["properties"]
    assert props["name"] == name[0] + "*" * (len(name) - 2) + name[-1]
    assert props["phone"] == phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    assert props["id_number"].startswith("110") and props["id_number"].endswith(idn[-4:])
    assert idn not in masked.text and phone not in masked.text
    # Filtering on a masked field is no oracle: it compares the mask.
    probe = clients["analyst"].get(
        "/collections/resident/items", params={"f": "json", "filter": f"phone = '{phone}'"}
    ).json()
    assert probe["numberReturned"] == 0
    # Events: the reporter is visible to staff, masked for analysts, absent for systems.
    by_role = {}
    for role in ("district_admin", "analyst", "external_system"):
        body = clients[role].get(
            "/collections/event/items", params={"f": "json", "filter": "source = 'citizen'"}
        ).json()
        by_role[role] = body["features"][0]["properties"]
    assert by_role["district_admin"]["reporter_phone"] == "13912345678"
    assert by_role["analyst"]["reporter_phone"] == "139****5678"
    assert by_role["analyst"]["reporter_name"] == "李*"
    assert by_role["external_system"]["reporter_phone"] is None
    assert by_role["external_system"]["reporter_name"] is None


def test_serving_role_cannot_read_secrets_or_truth(city: dict[str, Any]) -> None:
    from spatial.access import Principal, apply_principal

    with psycopg.connect(city["db"]) as conn:
        apply_principal(conn, Principal(None, "anonymous"))
        for stmt in (
            "SELECT password_hash FROM onemap.app_user",
            "SELECT key_hash FROM onemap.api_key",
            "SELECT count(*) FROM truth.grid_population",
            "SELECT count(*) FROM onemap.audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(stmt)  # a savepoint each: the outer transaction goes on
