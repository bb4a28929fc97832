"""OGC API Features Part 4 through the real application: who may write what,
the checks on what is written, ETag/If-Match, and that a refused write leaves
the table and the audit log as they were.

The tiny city (tests/data/tiny_city.sql): district 116.40–116.54 × 39.88–39.98,
one street office 116.45–116.49 × 39.91–39.94, one community 116.46–116.48 ×
39.915–39.93 split into grid 1 (west of 116.47) and grid 2 (east).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from pyproj import Transformer

GEOJSON = {"Content-Type": "application/geo+json"}
IN_GRID1 = [116.465, 39.921]
IN_GRID2 = [116.475, 39.921]
IN_DISTRICT_ONLY = [116.42, 39.90]  # no street office, community or grid here
OUTSIDE_DISTRICT = [116.60, 39.90]


@pytest.fixture
def city(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> dict[str, Any]:
    return {"db": tiny_city_db, "ids": tiny_city_ids}


@pytest.fixture
def clients(make_client: Any, city: dict[str, Any]) -> dict[str, Any]:
    ids = city["ids"]
    return {
        "district_admin": make_client(["district_admin"], [("district", ids["district"])]),
        "street_staff": make_client(["street_staff"], [("street_office", ids["street_office"])]),
        "community_staff": make_client(["community_staff"], [("community", ids["community"])]),
        "grid_worker": make_client(["grid_worker"], [("grid", ids["grid1"])]),
        "analyst": make_client(["analyst"]),
        "external_system": make_client(["external_system"]),
        "public": make_client([]),
    }


def sql(city: dict[str, Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(city["db"]) as conn:
        return conn.execute(query, params).fetchall()


def state(city: dict[str, Any], table: str) -> tuple[Any, ...]:
    """Every row of a table and the audit log, to compare before and after."""
    return sql(
        city,
        f"SELECT (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) "
        f"        FROM onemap.{table} t), "
        "(SELECT count(*) FROM onemap.audit_log)",
    )[0]


def feature(coords: Any = None, kind: str = "Point", **props: Any) -> dict[str, Any]:
    geometry = None if coords is None else {"type": kind, "coordinates": coords}
    return {"type": "Feature", "geometry": geometry, "properties": props}


def post(client: Any, collection: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/collections/{collection}/items", content=data,
                       headers={**GEOJSON, **headers})


def put(client: Any, collection: str, fid: Any, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.put(f"/collections/{collection}/items/{fid}", content=data,
                      headers={**GEOJSON, **headers})


def an_event(**extra: Any) -> dict[str, Any]:
    return feature(IN_GRID1, source="grid_worker", category="sanitation",
                   description="垃圾桶满溢 / overflowing bin", **extra)


def some(city: dict[str, Any], query: str, *params: Any) -> Any:
    return sql(city, query, *params)[0][0]


# -- creating ---------------------------------------------------------------------


def test_grid_worker_reports_an_event_in_their_grid(clients: dict[str, Any],
                                                    city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    me = gw.get("/auth/me").json()
    r = post(gw, "event", an_event())
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    fid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert r.headers["Location"].endswith(f"/collections/event/items/{fid}")
    ids = city["ids"]
    row = sql(city, "SELECT street_office_id, community_id, grid_id, version, "
                    "reporter_user_id FROM onemap.event WHERE id = %s", fid)[0]
    # 属地原则: the units come from the location, so the scope check saw them
    assert row == (ids["street_office"], ids["community"], ids["grid1"], 1, None)
    audit = sql(city, "SELECT user_id, username, action, before, after FROM onemap.audit_log "
                      "WHERE table_name = 'event' AND row_id = %s", fid)
    assert len(audit) == 1
    user_id, username, action, before, after = audit[0]
    assert (user_id, username, action, before) == (me["user_id"], me["username"], "insert", None)
    assert after["grid_id"] == ids["grid1"] and after["category"] == "sanitation"
    # and it reads back, with the same ETag
    got = gw.get(f"/collections/event/items/{fid}", params={"f": "json"})
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert got.json()["geometry"]["coordinates"] == IN_GRID1


def test_grid_worker_outside_their_grid_is_refused(clients: dict[str, Any],
                                                   city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    before = state(city, "event")
    r = post(gw, "event", feature(IN_GRID2, source="grid_worker", category="sanitation"))
    assert r.status_code == 403, r.text
    assert "scope" in r.json()["description"]
    assert state(city, "event") == before
    # 130_access.sql lets staff place an event they report themselves anywhere
    # (the locate step assigns it); naming someone else as reporter is refused
    me = gw.get("/auth/me").json()["user_id"]
    r = post(gw, "event", feature(IN_GRID2, source="grid_worker", category="sanitation",
                                  reporter_user_id=me + 1000))
    assert r.status_code == 403 and state(city, "event") == before
    r = post(gw, "event", feature(IN_GRID2, source="grid_worker", category="sanitation",
                                  reporter_user_id=me))
    assert r.status_code == 201, r.text
    fid = r.headers["Location"].rsplit("/", 1)[1]
    assert some(city, "SELECT grid_id FROM onemap.event WHERE id = %s", int(fid)) \
        == city["ids"]["grid2"]


def test_external_system_creates_events_anywhere(clients: dict[str, Any],
                                                 city: dict[str, Any]) -> None:
    hotline = clients["external_system"]
    r = post(hotline, "event", feature(IN_GRID2, source="hotline_12345", category="livelihood",
                                       external_ref="GD-2026-0001", reporter_name="王五"))
    assert r.status_code == 201, r.text
    fid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert some(city, "SELECT grid_id FROM onemap.event WHERE id = %s", fid) \
        == city["ids"]["grid2"]
    # an address-only ticket: no geometry, no units, the district dispatches it
    r = post(hotline, "event", feature(None, source="hotline_12345", category="livelihood",
                                       address="示范路 30 号", external_ref="GD-2026-0002"))
    assert r.status_code == 201, r.text
    # the same ticket sent again is the same event
    again = post(hotline, "event", feature(None, source="hotline_12345", category="livelihood",
                                           address="示范路 30 号", external_ref="GD-2026-0002"))
    assert again.status_code == 200
    assert again.headers["Location"] == r.headers["Location"]
    assert some(city, "SELECT count(*) FROM onemap.event WHERE external_ref = 'GD-2026-0002'") \
        == 1
    # but external systems do not change or delete events
    assert put(hotline, "event", fid, feature(None, status="closed")).status_code == 403


def test_a_resent_report_is_not_lost_nor_doubled(clients: dict[str, Any],
                                                 city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    body = an_event(client_uuid=str(uuid.uuid4()), reported_at="2026-03-01T08:15:00+08:00")
    first = post(gw, "event", body)
    assert first.status_code == 201
    audit = some(city, "SELECT count(*) FROM onemap.audit_log")
    second = post(gw, "event", body)  # the phone lost the answer and sends again
    assert second.status_code == 200
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["ETag"] == '"1"'
    assert some(city, "SELECT count(*) FROM onemap.event WHERE client_uuid = %s",
                body["properties"]["client_uuid"]) == 1
    assert some(city, "SELECT count(*) FROM onemap.audit_log") == audit


def test_anonymous_writes_need_sign_in(clients: dict[str, Any], city: dict[str, Any]) -> None:
    public = clients["public"]
    before = state(city, "event"), state(city, "lamp")
    assert post(public, "event", an_event()).status_code == 401
    lamp = some(city, "SELECT min(id) FROM onemap.lamp")
    r = put(public, "lamp", lamp, feature(None, status="fault"))
    assert r.status_code == 401 and "sign in" in r.json()["description"]
    assert public.delete(f"/collections/lamp/items/{lamp}").status_code == 401
    assert (state(city, "event"), state(city, "lamp")) == before


def test_building_insert_by_street_staff(clients: dict[str, Any], city: dict[str, Any]) -> None:
    ring = [[116.4752, 39.9281], [116.4762, 39.9281], [116.4762, 39.9288],
            [116.4752, 39.9288], [116.4752, 39.9281]]
    body = feature([ring], "Polygon", name="新建 1 号楼", building_type="public", floors=3)
    r = post(clients["street_staff"], "building", body)
    assert r.status_code == 201, r.text
    fid = int(r.headers["Location"].rsplit("/", 1)[1])
    kind, grid = sql(city, "SELECT GeometryType(geom), grid_id FROM onemap.building "
                           "WHERE id = %s", fid)[0]
    assert (kind, grid) == ("MULTIPOLYGON", city["ids"]["grid2"])  # promoted; grid by 属地
    # grid workers may not add buildings; nobody may outside their scope
    before = state(city, "building")
    assert post(clients["grid_worker"], "building", body).status_code == 403
    far = [[[x + 116.42 - 116.4752, y - 0.03] for x, y in ring]]
    r = post(clients["street_staff"], "building", feature(far, "Polygon", name="界外"))
    assert r.status_code == 403, r.text
    assert state(city, "building") == before


# -- optimistic concurrency --------------------------------------------------------------


def test_update_with_if_match(clients: dict[str, Any], city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    fid = some(city, "SELECT min(id) FROM onemap.event")
    got = gw.get(f"/collections/event/items/{fid}", params={"f": "json"})
    etag = got.headers["ETag"]
    assert etag == '"1"'
    r = put(gw, "event", fid, feature(None, status="assigned"), **{"If-Match": etag})
    assert r.status_code == 204, r.text
    assert r.headers["ETag"] == '"2"'
    assert sql(city, "SELECT status, version FROM onemap.event WHERE id = %s", fid)[0] \
        == ("assigned", 2)
    # the point was not sent, so it stays; the description was not either
    assert gw.get(f"/collections/event/items/{fid}", params={"f": "json"}).json()[
        "geometry"]["coordinates"] == [116.465, 39.922]
    before = state(city, "event")
    stale = put(gw, "event", fid, feature(None, status="handled"), **{"If-Match": etag})
    assert stale.status_code == 412, stale.text
    assert '"2"' in stale.json()["description"]
    assert state(city, "event") == before
    assert sql(city, "SELECT status FROM onemap.event WHERE id = %s", fid)[0] == ("assigned",)
    # weak tags never match; * matches any version; no If-Match: last writer wins
    assert put(gw, "event", fid, feature(None, status="handled"),
               **{"If-Match": 'W/"2"'}).status_code == 412
    assert put(gw, "event", fid, feature(None, status="handled"),
               **{"If-Match": "*"}).status_code == 204
    assert put(gw, "event", fid, feature(None, status="closed")).status_code == 204
    assert sql(city, "SELECT status, version FROM onemap.event WHERE id = %s", fid)[0] \
        == ("closed", 4)
    audit = sql(city, "SELECT before ->> 'status', after ->> 'status', after ->> 'version' "
                      "FROM onemap.audit_log WHERE table_name = 'event' AND row_id = %s "
                      "ORDER BY id", fid)
    assert audit == [("reported", "assigned", "2"), ("assigned", "handled", "3"),
                     ("handled", "closed", "4")]
    # 事件流转记录: each change of status by the API, with who made it
    history = sql(city, "SELECT h.from_status, h.to_status, u.username "
                        "FROM onemap.event_status_history h "
                        "JOIN onemap.app_user u ON u.id = h.by_user_id "
                        "WHERE h.event_id = %s ORDER BY h.id", fid)
    assert [(a, b) for a, b, _ in history] == [
        ("reported", "assigned"), ("assigned", "handled"), ("handled", "closed")]
    assert len({who for _, _, who in history}) == 1


def test_delete_with_and_without_rights(clients: dict[str, Any], city: dict[str, Any]) -> None:
    fid = some(city, "SELECT min(id) FROM onemap.event")
    before = state(city, "event")
    r = clients["grid_worker"].delete(f"/collections/event/items/{fid}")
    assert r.status_code == 403 and "delete" in r.json()["description"]
    admin = clients["district_admin"]
    r = admin.delete(f"/collections/event/items/{fid}", headers={"If-Match": '"7"'})
    assert r.status_code == 412
    assert state(city, "event") == before
    r = admin.delete(f"/collections/event/items/{fid}", headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text  # pygeoapi 0.24 answers a delete 200
    assert "ETag" not in r.headers
    assert some(city, "SELECT count(*) FROM onemap.event WHERE id = %s", fid) == 0
    action, old, new = sql(city, "SELECT action, before ->> 'id', after FROM onemap.audit_log "
                                 "WHERE table_name = 'event' AND row_id = %s", fid)[0]
    assert (action, old, new) == ("delete", str(fid), None)
    assert admin.delete(f"/collections/event/items/{fid}").status_code == 404


# -- scoped layers ----------------------------------------------------------------------


def test_households_and_residents_in_and_out_of_scope(clients: dict[str, Any],
                                                      city: dict[str, Any]) -> None:
    gw = clients["grid_worker"]
    ids = city["ids"]
    mine, theirs = (
        some(city, "SELECT min(h.id) FROM onemap.household h JOIN onemap.building b "
                   "ON b.id = h.building_id WHERE b.grid_id = %s", g)
        for g in (ids["grid1"], ids["grid2"])
    )
    r = put(gw, "household", mine, feature(None, occupancy="tenant"))
    assert r.status_code == 204, r.text
    before = state(city, "household")
    assert put(gw, "household", theirs, feature(None, occupancy="tenant")).status_code == 404
    assert gw.delete(f"/collections/household/items/{mine}").status_code == 403  # role
    assert state(city, "household") == before

    # a resident: created in scope, not outside, not moved out of it
    r = post(gw, "resident", feature(None, household_id=mine, name="新居民", gender="female",
                                     birth_year=1990, tags=["volunteer"]))
    assert r.status_code == 201, r.text
    rid = int(r.headers["Location"].rsplit("/", 1)[1])
    before = state(city, "resident")
    r = post(gw, "resident", feature(None, household_id=theirs, name="别处居民"))
    assert r.status_code == 403
    r = put(gw, "resident", rid, feature(None, household_id=theirs))
    assert r.status_code == 403 and "scope" in r.json()["description"]
    assert state(city, "resident") == before
    # read, changed and sent back whole: what the layer adds (building, grid, room) is ignored
    got = gw.get(f"/collections/resident/items/{rid}", params={"f": "json"})
    back = got.json()
    back["properties"]["phone"] = "13800001234"
    r = put(gw, "resident", rid, back, **{"If-Match": got.headers["ETag"]})
    assert r.status_code == 204, r.text
    assert sql(city, "SELECT phone, household_id, version FROM onemap.resident WHERE id = %s",
               rid)[0] == ("13800001234", mine, 2)
    assert gw.delete(f"/collections/resident/items/{rid}").status_code == 200
    theirs_resident = some(city, "SELECT min(id) FROM onemap.resident WHERE household_id IN "
                                 "(SELECT h.id FROM onemap.household h JOIN onemap.building b "
                                 "ON b.id = h.building_id WHERE b.grid_id = %s)", ids["grid2"])
    assert gw.delete(f"/collections/resident/items/{theirs_resident}").status_code == 404


def test_lamp_status_update(clients: dict[str, Any], city: dict[str, Any]) -> None:
    lamp = some(city, "SELECT min(id) FROM onemap.lamp WHERE status = 'working'")
    r = put(clients["community_staff"], "lamp", lamp,
            feature(None, status="fault", last_report_at="2026-03-02T21:00:00+08:00"))
    assert r.status_code == 204, r.text
    assert sql(city, "SELECT status, version FROM onemap.lamp WHERE id = %s", lamp)[0] \
        == ("fault", 2)
    before = state(city, "lamp")
    assert put(clients["analyst"], "lamp", lamp, feature(None, status="working")).status_code \
        == 403
    assert post(clients["community_staff"], "lamp",
                feature(IN_GRID1, code="L-900")).status_code == 403  # nobody adds lamps here
    assert state(city, "lamp") == before


def test_alley_problem_reported_by_grid_worker(clients: dict[str, Any],
                                               city: dict[str, Any]) -> None:
    r = post(clients["grid_worker"], "alley_problem",
             feature(IN_GRID1, source="grid_patrol", category="garbage_exposed",
                     reported_at="2026-03-03T09:00:00+08:00"))
    assert r.status_code == 201, r.text


# -- what is refused, and nothing is left behind -----------------------------------------


SQUARE = [[116.466, 39.921], [116.467, 39.921], [116.467, 39.922], [116.466, 39.922],
          [116.466, 39.921]]
BOWTIE = [[116.466, 39.921], [116.467, 39.922], [116.467, 39.921], [116.466, 39.922],
          [116.466, 39.921]]


@pytest.mark.parametrize(("collection", "body", "status", "says"), [
    ("building", feature([BOWTIE], "Polygon", name="x"), 400, "Self-intersection"),
    ("event", feature([SQUARE], "Polygon", source="citizen", category="other"), 400,
     "must be a Point"),
    ("event", feature(OUTSIDE_DISTRICT, source="citizen", category="other"), 400,
     "outside the district"),
    ("event", feature(["116.46", 39.92], source="citizen", category="other"), 400, "position"),
    ("event", feature(IN_GRID1, source="citizen", category="other", colour="red", size=2), 400,
     "colour, size"),
    ("event", feature(IN_GRID1, source="citizen"), 400, "category"),
    ("event", feature(IN_GRID1, source="citizen", category="other", status="lost"), 400,
     "allowed: reported, assigned, handled, closed, evaluated"),
    ("event", feature(IN_GRID1, source="citizen", category="other", evaluation_score="five"),
     400, "evaluation_score"),
    ("event", feature(IN_GRID1, source="citizen", category="other", assignee_user_id=999999),
     400, "assignee_user_id: no app_user"),
    ("event", b'{"type": "Feature", "properties": {"category": "other"', 400, "JSON"),
    ("event", b'{"type": "Feature", "properties": {"description": "\xff\xfe"}}', 400, "UTF-8"),
    ("event", {"type": "FeatureCollection", "features": []}, 400, "Feature"),
    ("household", feature(None, building_id=999999, room_no="9-9-999"), 400, "building_id"),
    ("household", feature(None, room_no="9-9-999"), 400, "building_id"),
    ("event", feature(IN_GRID1, source="citizen", category="other"), 400, "Content-Crs"),
])
def test_bad_writes_are_400_and_leave_nothing(
    clients: dict[str, Any], city: dict[str, Any],
    collection: str, body: Any, status: int, says: str,
) -> None:
    headers = {"Content-Crs": "<gcj02>"} if says == "Content-Crs" else {}
    before = state(city, collection)
    r = post(clients["district_admin"], collection, body, **headers)
    assert r.status_code == status, r.text
    assert says in r.json()["description"]
    assert state(city, collection) == before


def test_bad_updates_leave_the_row(clients: dict[str, Any], city: dict[str, Any]) -> None:
    admin = clients["district_admin"]
    fid = some(city, "SELECT min(id) FROM onemap.event")
    before = state(city, "event")
    for body, says in [
        (feature(None, status="lost"), "status"),
        (feature(None, category=None), "category"),
        (feature([[116.4, 39.9], [116.5, 39.9]], "LineString"), "must be a Point"),
        ({**feature(None, status="closed"), "id": fid + 1}, "differs"),
    ]:
        r = put(admin, "event", fid, body)
        assert r.status_code == 400, (body, r.text)
        assert says in r.json()["description"]
    assert put(admin, "event", 987654, feature(None, status="closed")).status_code == 404
    assert put(admin, "event", "abc", feature(None, status="closed")).status_code == 404
    assert state(city, "event") == before


def test_content_crs(clients: dict[str, Any], city: dict[str, Any]) -> None:
    admin = clients["district_admin"]
    lat_first = post(admin, "event", feature(IN_GRID1[::-1], source="citizen", category="other"),
                     **{"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4490>"})
    assert lat_first.status_code == 201, lat_first.text
    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*IN_GRID1)
    mercator = post(admin, "event", feature([x, y], source="citizen", category="other"),
                    **{"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/3857>"})
    assert mercator.status_code == 201, mercator.text
    rows = sql(city, "SELECT ST_X(geom), ST_Y(geom), grid_id FROM onemap.event "
                     "WHERE id = ANY(%s) ORDER BY id",
               [int(r.headers["Location"].rsplit("/", 1)[1]) for r in (lat_first, mercator)])
    assert rows[0] == (IN_GRID1[0], IN_GRID1[1], city["ids"]["grid1"])
    assert rows[1][0] == pytest.approx(IN_GRID1[0], abs=1e-9)
    assert rows[1][1] == pytest.approx(IN_GRID1[1], abs=1e-9)
    assert rows[1][2] == city["ids"]["grid1"]


def test_items_have_no_patch_in_pygeoapi_0_24(clients: dict[str, Any],
                                              city: dict[str, Any]) -> None:
    fid = some(city, "SELECT min(id) FROM onemap.event")
    r = clients["district_admin"].patch(f"/collections/event/items/{fid}",
                                        content=b'{"type": "Feature", "properties": {}}',
                                        headers=GEOJSON)
    assert r.status_code == 405


def test_content_type_parameters_still_create(clients: dict[str, Any],
                                              city: dict[str, Any]) -> None:
    r = clients["district_admin"].post(
        "/collections/event/items", content=json.dumps(an_event()).encode(),
        headers={"Content-Type": "application/geo+json; charset=utf-8"})
    assert r.status_code == 201, r.text


def test_layers_that_are_not_editable(clients: dict[str, Any], city: dict[str, Any]) -> None:
    r = post(clients["district_admin"], "road", feature([[116.46, 39.92], [116.47, 39.92]],
                                                        "LineString", name="新路"))
    assert r.status_code == 400
    assert "not editable" in r.json()["description"]
