"""``/scenarios`` over HTTP (server/whatif.py): store, list, read, replace, delete and
compare what-if scenarios as the caller; bad input a 400/404 naming what was wrong, never a
500 and never another scope's data; the stored city unchanged by a comparison."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

WEST_END = {"x": 116.455, "y": 39.9175, "crs": "EPSG:4490"}  # 示范路's west end


def _road(db: str, name: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT id FROM onemap.road WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def _checksum(db: str) -> tuple[Any, ...]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM onemap.road), (SELECT md5(string_agg(id::text || "
            "ST_AsEWKB(geom)::text || oneway::text, ',' ORDER BY id)) FROM onemap.road), "
            "(SELECT count(*) FROM onemap.refuse_facility), "
            "(SELECT count(*) FROM onemap.household)").fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def people(make_client: Any, tiny_city_ids: dict[str, int]) -> dict[str, Any]:
    so, community = tiny_city_ids["street_office"], tiny_city_ids["community"]
    return {"owner": make_client(["street_staff"], [("street_office", so)]),
            "colleague": make_client(["community_staff"], [("community", community)]),
            "analyst": make_client(["analyst"]),
            "anonymous": make_client([])}


def _create(client: Any, edits: list[dict[str, Any]], **more: Any) -> Any:
    return client.post("/scenarios", json={"name": "关闭示范路 / 示范路 closed",
                                           "description": "road works", "edits": edits, **more})


def test_store_list_read_replace_delete(people: dict[str, Any], tiny_city_db: str) -> None:
    owner, colleague, analyst = people["owner"], people["colleague"], people["analyst"]
    road = _road(tiny_city_db, "示范路")
    made = _create(owner, [{"type": "close_road", "road_ids": [road]}])
    assert made.status_code == 201, made.text
    body = made.json()
    sid = body["id"]
    assert made.headers["location"].endswith(f"/scenarios/{sid}")
    assert body["mine"] is True and body["shared"] is False and body["layers"] == ["road"]
    assert body["edits"] == [{"type": "close_road", "road_ids": [road]}]
    listed = owner.get("/scenarios").json()
    assert [s["id"] for s in listed["scenarios"]] == [sid] and listed["numberMatched"] == 1
    assert owner.get(f"/scenarios/{sid}").json()["name"] == "关闭示范路 / 示范路 closed"
    # a private scenario: nobody else sees it, and the 404 tells nothing about it
    for other in (colleague, analyst):
        assert other.get("/scenarios").json()["scenarios"] == []
        r = other.get(f"/scenarios/{sid}")
        assert r.status_code == 404 and "示范路" not in r.text and "road works" not in r.text
        assert other.put(f"/scenarios/{sid}", json={"name": "x", "edits": []}).status_code == 404
        assert other.delete(f"/scenarios/{sid}").status_code == 404
    # shared: the colleague of the same street office reads it, never changes it
    shared = owner.put(f"/scenarios/{sid}", json={
        "name": "renamed", "shared": True, "edits": [{"type": "close_road",
                                                       "road_ids": [road]}]})
    assert shared.status_code == 200 and shared.json()["name"] == "renamed"
    seen = colleague.get(f"/scenarios/{sid}")
    assert seen.status_code == 200 and seen.json()["mine"] is False
    assert colleague.put(f"/scenarios/{sid}", json={"name": "x", "edits": []}).status_code == 403
    assert colleague.delete(f"/scenarios/{sid}").status_code == 403
    assert analyst.get(f"/scenarios/{sid}").status_code == 404  # no scope in that office
    assert owner.delete(f"/scenarios/{sid}").status_code == 204
    assert owner.get(f"/scenarios/{sid}").status_code == 404


def test_anonymous_callers_are_asked_to_sign_in(people: dict[str, Any]) -> None:
    anonymous = people["anonymous"]
    for method, path in (("get", "/scenarios"), ("post", "/scenarios"),
                         ("get", "/scenarios/6c1d7a36-5d5f-4a43-9a0c-1f0f2b0f8e11"),
                         ("post", "/scenarios/6c1d7a36-5d5f-4a43-9a0c-1f0f2b0f8e11/compare")):
        r = getattr(anonymous, method)(path, **({"json": {}} if method == "post" else {}))
        assert r.status_code == 401, (method, path, r.text)
        assert "sign in" in r.json()["description"]


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"name": "x", "edits": [{"type": "close_road", "road_ids": ["a"]}]}, 400,
     "edits[0].road_ids[0]"),
    ({"name": "x", "edits": [{"type": "close_road", "road_ids": [1]},
                             {"type": "teleport"}]}, 400, "edits[1].type"),
    ({"name": "x", "edits": [{"type": "set_capacity", "collection": "refuse_facility",
                              "id": 3, "capacity": -2}]}, 400, "edits[0].capacity"),
    ({"name": "x", "edits": [{"type": "add_facility", "collection": "refuse_facility",
                              "point": {"x": 116.46, "y": 39.92, "crs": "EPSG:9999"}}]}, 400,
     "edits[0].point.crs"),
    ({"name": "x", "edits": [{"type": "add_facility", "collection": "refuse_facility",
                              "point": {"x": 2.35, "y": 48.85}}]}, 400, "edits[0].point"),
    ({"name": "x", "edits": [{"type": "close_road", "road_ids": [987654]}]}, 404,
     "edits[0]: no road with id 987654"),
    ({"name": "x", "edits": [{"type": "remove_facility", "collection": "refuse_facility",
                              "id": 5}]}, 404, "edits[0]: no refuse_facility with id 5"),
    ({"name": "", "edits": []}, 400, "name"),
    ({"name": "x"}, 400, "edits"),
    ({"name": "x", "edits": [], "owner_id": 1}, 400, "owner_id"),
])
def test_bad_scenarios_name_what_was_wrong(people: dict[str, Any], body: dict[str, Any],
                                           status: int, named: str) -> None:
    r = people["owner"].post("/scenarios", json=body)
    assert r.status_code == status, r.text
    assert named in r.json()["description"], r.json()["description"]
    assert people["owner"].get("/scenarios").json()["numberMatched"] == 0


def test_malformed_requests(people: dict[str, Any]) -> None:
    owner = people["owner"]
    assert owner.post("/scenarios", content=b"{", headers={
        "Content-Type": "application/json"}).status_code == 400
    assert owner.post("/scenarios", content=b"name=x", headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert owner.post("/scenarios", content=b"[]", headers={
        "Content-Type": "application/json"}).status_code == 400
    assert owner.get("/scenarios/not-a-uuid").status_code == 404
    assert owner.get("/scenarios?limit=0").status_code == 400
    assert owner.get("/scenarios?colour=red").status_code == 400
    assert owner.put("/scenarios/not-a-uuid", json={"name": "x", "edits": []}).status_code == 404
    assert owner.patch("/scenarios/6c1d7a36-5d5f-4a43-9a0c-1f0f2b0f8e11",
                       json={}).status_code == 405


def test_compare_a_closed_road_with_the_base_city(people: dict[str, Any],
                                                 tiny_city_db: str) -> None:
    owner = people["owner"]
    road = _road(tiny_city_db, "示范路")
    sid = _create(owner, [{"type": "close_road", "road_ids": [road]}]).json()["id"]
    before = _checksum(tiny_city_db)
    r = owner.post(f"/scenarios/{sid}/compare", json={
        "process": "service-area", "inputs": {**WEST_END, "distance_m": 1000}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["process"] == "service-area" and out["scenario"]["id"] == sid
    base, other = out["base"], out["with_scenario"]
    assert [f["id"] for f in base["roads"]["features"]] == [road]
    assert base["roads"]["features"][0]["properties"]["reached_m"] == pytest.approx(1000, abs=1)
    assert other["roads"]["features"] == []
    assert base["summary"]["scenario"] is None and other["summary"]["scenario"] == sid
    roads = out["differences"]["roads"]
    assert roads == {"kind": "features", "base": 1, "scenario": 0, "delta": -1,
                     "added": [], "removed": [str(road)], "changed": []}
    numbers = out["differences"]["summary"]["numbers"]
    assert numbers["edges"] == {"base": 1, "scenario": 0, "delta": -1}
    assert numbers["reachable_km"]["delta"] == pytest.approx(-1.0, abs=1e-3)
    assert numbers["closed_roads"] == {"base": 0, "scenario": 1, "delta": 1}
    assert _checksum(tiny_city_db) == before  # the stored city is unchanged
    # the colleague compares the shared scenario; before it is shared, it is a 404
    colleague = people["colleague"]
    body = {"process": "service-area", "inputs": {**WEST_END, "distance_m": 1000}}
    assert colleague.post(f"/scenarios/{sid}/compare", json=body).status_code == 404
    owner.put(f"/scenarios/{sid}", json={"name": "n", "shared": True,
                                         "edits": [{"type": "close_road", "road_ids": [road]}]})
    assert colleague.post(f"/scenarios/{sid}/compare", json=body).json()[
        "differences"]["roads"]["removed"] == [str(road)]


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"process": "no-such", "inputs": {}}, 404, "process: no process 'no-such'"),
    ({"process": "locate", "inputs": {"x": 116.46, "y": 39.92}}, 400,
     "process: 'locate' takes no what-if scenario"),
    ({"inputs": {}}, 400, "process"),
    ({"process": "service-area", "inputs": []}, 400, "inputs"),
    ({"process": "service-area", "inputs": {**WEST_END}, "extra": 1}, 400, "extra"),
    ({"process": "service-area", "inputs": {**WEST_END, "scenario": "x"}}, 400,
     "inputs.scenario"),
    ({"process": "service-area", "inputs": {**WEST_END, "distance_m": -5}}, 400, "distance_m"),
    ({"process": "service-area", "inputs": {**WEST_END, "mode": "fly"}}, 400, "mode"),
    ({"process": "service-area", "inputs": {"x": 2.35, "y": 48.85}}, 400, "outside the city"),
    ({"process": "service-area", "inputs": {"distance_m": 100}}, 400, "x/y/facilities"),
    ({"process": "service-area", "inputs": {"facilities": [424242]}}, 404,
     "facilities: no refuse_facility with id 424242"),
])
def test_bad_compare_requests_name_what_was_wrong(people: dict[str, Any], body: dict[str, Any],
                                                  status: int, named: str) -> None:
    owner = people["owner"]
    sid = _create(owner, []).json()["id"]
    r = owner.post(f"/scenarios/{sid}/compare", json=body)
    assert r.status_code == status, r.text
    assert named in r.json()["description"], r.json()["description"]


def test_compare_an_unseen_scenario_is_a_404(people: dict[str, Any]) -> None:
    sid = _create(people["owner"], []).json()["id"]
    body = {"process": "service-area", "inputs": {**WEST_END}}
    r = people["analyst"].post(f"/scenarios/{sid}/compare", json=body)
    assert r.status_code == 404 and "关闭" not in r.text
    assert people["owner"].post("/scenarios/nope/compare", json=body).status_code == 404


def test_service_area_takes_a_stored_scenario_as_an_input(people: dict[str, Any],
                                                         tiny_city_db: str) -> None:
    owner = people["owner"]
    road = _road(tiny_city_db, "示范路")
    sid = _create(owner, [{"type": "close_road", "road_ids": [road]}]).json()["id"]
    r = owner.post("/processes/service-area/execution", json={"inputs": {
        **WEST_END, "distance_m": 1000, "scenario": sid}})
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["edges"] == 0 and r.json()["summary"]["scenario"] == sid
    hidden = people["analyst"].post("/processes/service-area/execution", json={"inputs": {
        **WEST_END, "scenario": sid}})
    assert hidden.status_code == 404
    assert hidden.json()["description"].startswith("scenario: unknown scenario")
