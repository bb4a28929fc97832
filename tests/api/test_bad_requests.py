"""Hand-made bad requests through the real application (issue 12): each answers the
4xx it deserves with an OGC exception document whose description names the problem —
never a 500.

The requests are the ones an outside evaluation answered 500 (an empty POST to items,
an anonymous DELETE, NUL and lone surrogates, process bodies that are not objects or
hold NaN, structures nested past Python's recursion limit) and their relatives; NUL,
lone surrogates and over-deep JSON are also sent to every route the application has.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from spatial.cql import MAX_FILTER_DEPTH, MAX_FILTER_NODES
from spatial.editing import MAX_GEOMETRY_NESTING
from spatial.wellformed import MAX_JSON_DEPTH
from tests import declared

RESOURCES = declared.resources()
COLLECTIONS = sorted(declared.collections())
EDITABLE = sorted(cid for cid, c in declared.collections().items() if c.editable)
NOT_EDITABLE = sorted(set(COLLECTIONS) - set(EDITABLE))
PROCESSES = sorted(k for k, v in RESOURCES.items() if v.get("type") == "process")

JSON = {"Content-Type": "application/json"}
GEOJSON = {"Content-Type": "application/geo+json"}
IN_GRID1 = [116.465, 39.921]
#: Deeper than anything Python's JSON decoder (or the code after it) survives by recursion.
VERY_DEEP = 100_000


@dataclass
class App:
    """The application over one tiny city, and the credentials of its test users."""

    client: Any
    headers: dict[str, dict[str, str]]

    def send(self, method: str, path: str, *, who: str = "anonymous", **kwargs: Any) -> Any:
        headers = {**self.headers[who], **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def app(server_conninfo: str, template_db: str) -> Iterator[App]:
    """One application for the module: every request here is refused, nothing is written."""
    from starlette.testclient import TestClient

    from server.app import create_app
    from spatial import auth, users
    from spatial.db import connect
    from tests.api.test_coverages import tiny_city_clone

    with tiny_city_clone(server_conninfo, template_db) as info, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", info)
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        with connect(info) as conn, conn.transaction():
            row = conn.execute("SELECT min(id) AS id FROM onemap.district").fetchone()
            assert row is not None
            district = row["id"]
            for who, roles, scopes in (("admin", ["district_admin"], [("district", district)]),
                                       ("analyst", ["analyst"], [])):
                name = f"{who}_{uuid.uuid4().hex[:6]}"
                users.create_user(conn, name, None, roles=roles, scopes=scopes)
                headers[who] = {"X-API-Key": auth.create_api_key(conn, name, label="test").key}
        with TestClient(create_app()) as client:
            yield App(client, headers)


def problem(r: Any, status: int, *says: str) -> dict[str, Any]:
    """Assert an OGC exception document with ``status`` whose description says ``says``."""
    assert r.status_code == status, (r.status_code, r.text[:400])
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    assert isinstance(body, dict) and body.get("code") and body.get("description"), body
    assert body.get("type") == body["code"], body  # one shape on every route (problems.py)
    for said in says:
        assert said in body["description"], (said, body["description"])
    return body


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def deep_cql2_json(levels: int) -> str:
    leaf = '{"op": "=", "args": [{"property": "status"}, "fault"]}'
    return '{"op": "not", "args": [' * levels + leaf + "]}" * levels


def collections_of(levels: int) -> dict[str, Any]:
    geometry: dict[str, Any] = {"type": "Point", "coordinates": IN_GRID1}
    for _ in range(levels):
        geometry = {"type": "GeometryCollection", "geometries": [geometry]}
    return geometry


def event(geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"source": "citizen", "category": "other"}}


# --- item 2: an empty POST to items, on every collection -----------------------------------

@pytest.mark.parametrize("collection", COLLECTIONS)
def test_an_empty_post_to_items_is_400(app: App, collection: str) -> None:
    problem(app.send("POST", f"/collections/{collection}/items"), 400,
            "request body is empty", "GeoJSON feature")


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("POST", "/collections/lamp/items", {"Content-Type": "application/query-cql-json"}),
    ("POST", "/collections/lamp/items", {"Content-Type": "text/plain"}),
    ("PUT", "/collections/event/items/1", GEOJSON),
    ("PUT", "/collections/event/items/1", {}),
    ("POST", "/processes/locate/execution", JSON),
    ("POST", "/processes/grid-statistics/execution", {}),
])
def test_other_empty_bodies_a_route_needs(app: App, method: str, path: str,
                                          headers: dict[str, str]) -> None:
    problem(app.send(method, path, who="admin", headers=headers, content=b"  \n"), 400,
            "request body is empty")


def test_a_body_without_content_type_on_items(app: App) -> None:
    """pygeoapi tells a feature to create from a filter by Content-Type alone."""
    body = json.dumps({"op": "=", "args": [{"property": "status"}, "fault"]})
    r = app.send("POST", "/collections/lamp/items", content=body)
    assert problem(r, 415, "Content-Type", "application/geo+json")["code"] == \
        "UnsupportedMediaType"


# --- item 3: who may write, answered before pygeoapi reads anything ------------------------

WRITES = [("POST", "/collections/{}/items"), ("PUT", "/collections/{}/items/1"),
          ("DELETE", "/collections/{}/items/1")]


def _write(app: App, who: str, method: str, path: str) -> Any:
    body = json.dumps(event(IN_GRID1)) if method != "DELETE" else None
    return app.send(method, path, who=who, content=body,
                    headers=GEOJSON if body else {})


@pytest.mark.parametrize("collection", EDITABLE)
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_anonymous_writes_are_401(app: App, collection: str, method: str, path: str) -> None:
    r = _write(app, "anonymous", method, path.format(collection))
    problem(r, 401, "sign in", collection)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("collection", EDITABLE)
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_writes_a_role_may_not_make_are_403(app: App, collection: str, method: str,
                                            path: str) -> None:
    problem(_write(app, "analyst", method, path.format(collection)), 403,
            "your role may not", collection)


@pytest.mark.parametrize("collection", NOT_EDITABLE)
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_writes_to_layers_nobody_edits_are_400(app: App, collection: str, method: str,
                                               path: str) -> None:
    """pygeoapi's own answer (a coverage has no feature provider): still never a 500."""
    body = problem(_write(app, "anonymous", method, path.format(collection)), 400)
    assert "editable" in body["description"] or "provider" in body["description"]


# --- item 4: NUL and lone surrogates, in the query string and in JSON bodies --------------

@pytest.mark.parametrize(("method", "path", "kwargs", "status", "says"), [
    ("POST", "/auth/login", {"content": b'{"username": "a\\u0000b", "password": "x"}'},
     400, ["$.username", "NUL"]),
    ("POST", "/auth/login", {"content": b'{"username": "\\ud800", "password": "x"}'},
     400, ["$.username", "lone surrogate (U+D800)"]),
    ("POST", "/auth/login", {"content": b'{"username": "a", "password": "\\udfff"}'},
     400, ["$.password", "lone surrogate (U+DFFF)"]),
    ("POST", "/auth/login", {"content": b'{"user\\u0000name": "a", "password": "x"}'},
     400, ["key", "NUL"]),
    ("GET", "/auth/login-log?username=a%00b", {}, 400, ["'username'", "NUL"]),
    ("GET", "/search?q=a%00b", {}, 400, ["'q'", "NUL"]),
    ("GET", "/search?q%00=a", {}, 400, ["name", "NUL"]),
    ("GET", "/search?q=%ED%A0%80", {}, 400, ["not UTF-8"]),  # a surrogate, CESU-8 style
    ("GET", "/search?q=%ff", {}, 400, ["not UTF-8"]),
    ("GET", "/collections/lamp/items?status=a%00b", {}, 400, ["'status'", "NUL"]),
    ("GET", "/collections/lamp/items/1%00", {}, 400, ["the path", "NUL"]),
    ("GET", "/collections/la%00mp", {}, 400, ["the path", "NUL"]),
    ("GET", "/jobs/a%00b", {}, 400, ["the path", "NUL"]),
    ("POST", "/collections/lamp/items",
     {"content": b'{"op": "=", "args": [{"property": "status"}, "\\u0000"]}',
      "headers": {"Content-Type": "application/query-cql-json"}}, 400, ["$.args[1]", "NUL"]),
    ("POST", "/collections/event/items",
     {"content": b'{"type": "Feature", "properties": {"description": "\\ud83d"}}',
      "headers": GEOJSON}, 400, ["$.properties.description", "lone surrogate (U+D83D)"]),
])
def test_nul_and_lone_surrogates_are_400(app: App, method: str, path: str,
                                         kwargs: dict[str, Any], status: int,
                                         says: list[str]) -> None:
    kwargs.setdefault("headers", JSON if "content" in kwargs else {})
    problem(app.send(method, path, **kwargs), status, *says)


def test_a_surrogate_pair_is_a_character_not_a_lone_surrogate(app: App) -> None:
    r = app.send("GET", "/search", params={"q": "😀"})
    assert r.status_code == 200, r.text
    r = app.send("POST", "/auth/login", content=b'{"username": "\\ud83d\\ude00", "password": "x"}',
                 headers=JSON)
    problem(r, 401)  # no such user: the login route answered


# --- item 5: process execution bodies --------------------------------------------------------

@pytest.mark.parametrize(("body", "says"), [
    (b"null", ["must be a JSON object", "null"]),
    (b"[1, 2, 3]", ["must be a JSON object", "array"]),
    (b'"x"', ["must be a JSON object", "string"]),
    (b"7", ["must be a JSON object", "number"]),
    (b"true", ["must be a JSON object", "boolean"]),
    (b'{"inputs": {"x": NaN, "y": 39.9}}', ["NaN", "not JSON"]),
    (b'{"inputs": {"x": Infinity, "y": 39.9}}', ["Infinity", "not JSON"]),
    (b'{"inputs": {"x": -Infinity, "y": 39.9}}', ["-Infinity", "not JSON"]),
    (b'{"inputs": {"x": 1e400, "y": 39.9}}', ["1e400", "range of a double"]),
    (b'{"inputs": {"x": ' + b"9" * 5000 + b', "y": 39.9}}', ["5000 digits", "4300"]),
    (nested(VERY_DEEP).encode(), [f"more than {MAX_JSON_DEPTH} levels"]),
    (b'{"inputs": ' + nested(VERY_DEEP).encode() + b"}", [f"more than {MAX_JSON_DEPTH} levels"]),
    (b'{"inputs": null}', ["inputs must be a JSON object"]),
    (b'{"inputs": [116.46, 39.92]}', ["inputs must be a JSON object"]),
    (b'{"inputs": {"x": 116.46, "y": 39.92, "crs": "\\u0000"}}', ["$.inputs.crs", "NUL"]),
    # the execute request's own members (schemathesis: a list as subscriber was a 500)
    (b'{"inputs": {}, "subscriber": [null, null]}', ["'subscriber' must be an object"]),
    (b'{"inputs": {}, "subscriber": {"failedUri": "http://a.example/f"}}',
     ["needs a 'successUri'"]),
    (b'{"inputs": {}, "subscriber": {"successUri": 7}}', ["'successUri' must be a URI string"]),
    (b'{"inputs": {}, "outputs": [1]}', ["'outputs' must be an object"]),
    (b'{"inputs": {}, "outputs": {"result": "x"}}', ["output 'result' must be an object"]),
    (b'{"inputs": {}, "response": ["raw"]}', ["'response' must be 'raw' or 'document'"]),
    (b'{"inputs": {}, "response": "everything"}', ["'response' must be 'raw' or 'document'"]),
])
@pytest.mark.parametrize("process", PROCESSES)
def test_bad_execution_bodies_are_400(app: App, process: str, body: bytes,
                                      says: list[str]) -> None:
    problem(app.send("POST", f"/processes/{process}/execution", content=body, headers=JSON),
            400, *says)


def test_inputs_of_the_wrong_type_are_named(app: App) -> None:
    r = app.send("POST", "/processes/locate/execution", headers=JSON,
                 content=b'{"inputs": {"x": "east", "y": 39.92}}')
    problem(r, 400, "x:", "not of type 'number'")


# --- item 6: deep and long structures ----------------------------------------------------------

def test_a_long_flat_and_chain_is_answered(app: App) -> None:
    """pygeofilter parses a chain of ANDs into a tree as deep as it is long; it is
    translated as one flat list."""
    chain = " AND ".join(["status <> 'x'"] * 499 + ["status = 'fault'"])
    r = app.send("GET", "/collections/lamp/items", params={"f": "json", "filter": chain})
    assert r.status_code == 200, r.text[:300]
    features = r.json()["features"]
    assert features and {f["properties"]["status"] for f in features} == {"fault"}
    ors = " OR ".join([f"id = {i}" for i in range(1, 2001)])
    r = app.send("GET", "/collections/lamp/items",
                 params={"f": "json", "filter": ors, "resulttype": "hits"})
    assert r.status_code == 200, r.text[:300]
    # pygeoapi's own paths (other formats, a POSTed search) deep-copy the tree by
    # recursion and answer a chain that long with their 400 "Bad CQL text"
    r = app.send("GET", "/collections/lamp/items", params={"f": "jsonld", "filter": chain})
    assert r.status_code in (200, 400), r.text[:300]


@pytest.mark.parametrize(("method", "path", "kwargs", "says"), [
    # CQL2 text nested past the filter's depth limit (parentheses alternate AND and OR)
    ("GET", "/collections/lamp/items",
     {"params": {"filter": "(" * 40 + "status = 'a'"
                 + "".join(f" {'AND' if i % 2 else 'OR'} id > {i})" for i in range(40))}},
     [f"more than {MAX_FILTER_DEPTH} levels"]),
    # CQL2 JSON nested 600 deep in the query string, 5,000 deep as a body
    ("GET", "/collections/lamp/items",
     {"params": {"filter": deep_cql2_json(600), "filter-lang": "cql2-json"}},
     ["malformed cql2-json filter", f"more than {MAX_JSON_DEPTH} levels"]),
    ("POST", "/collections/lamp/items",
     {"content": deep_cql2_json(5000), "headers": {"Content-Type": "application/query-cql-json"}},
     [f"more than {MAX_JSON_DEPTH} levels"]),
    # CQL2 JSON within the JSON limit but past the filter's
    ("GET", "/collections/lamp/items",
     {"params": {"filter": deep_cql2_json(40), "filter-lang": "cql2-json"}},
     [f"more than {MAX_FILTER_DEPTH} levels"]),
    # more terms than PostgreSQL takes bound values
    ("POST", "/collections/lamp/items",
     {"content": json.dumps({"op": "in", "args": [{"property": "id"},
                                                   list(range(MAX_FILTER_NODES + 1))]}),
      "headers": {"Content-Type": "application/query-cql-json"}},
     [f"more than {MAX_FILTER_NODES} terms"]),
    # any JSON body nested past the parser's recursion limit
    ("POST", "/collections/lamp/items",
     {"content": nested(VERY_DEEP), "headers": JSON}, [f"more than {MAX_JSON_DEPTH} levels"]),
    ("POST", "/auth/login", {"content": '{"username": ' + nested(VERY_DEEP) + "}",
                             "headers": JSON}, [f"more than {MAX_JSON_DEPTH} levels"]),
    # a geometry of 3,000 nested GeometryCollections: too deep a body
    ("POST", "/collections/event/items",
     {"content": '{"type": "Feature", "properties": {}, "geometry": '
                 + '{"type": "GeometryCollection", "geometries": [' * 3000
                 + '{"type": "Point", "coordinates": [116.465, 39.921]}' + "]}" * 3000 + "}",
      "headers": GEOJSON}, [f"more than {MAX_JSON_DEPTH} levels"]),
])
def test_deep_structures_are_400(app: App, method: str, path: str, kwargs: dict[str, Any],
                                 says: list[str]) -> None:
    problem(app.send(method, path, **kwargs), 400, *says)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_nested_geometry_collections_are_400(app: App, method: str) -> None:
    """Within the JSON limit, past the GeometryCollection one: the write's own check."""
    path = "/collections/event/items" + ("/1" if method == "PUT" else "")
    body = json.dumps(event(collections_of(MAX_GEOMETRY_NESTING + 1)))
    problem(app.send(method, path, who="admin", content=body, headers=GEOJSON), 400,
            f"nested more than {MAX_GEOMETRY_NESTING} deep")


# --- every route the application has ----------------------------------------------------------

#: Values for the path parameters of the application's routes.
PATH_VALUES = {
    "collection_id": "lamp", "cid": "lamp", "item_id": "1", "event_id": "1", "photo_id": "1",
    "process_id": "locate", "job_id": str(uuid.UUID(int=0)), "tileMatrixSetId": "WebMercatorQuad",
    "tms": "WebMercatorQuad", "tile_matrix": "14", "tileRow": "6208", "tileCol": "13492",
    "z": "14", "x": "13492", "y": "6208", "theme": "admin", "sid": "lamp", "style_id": "lamp",
    "fontstack": "Noto Sans Regular", "range": "0-255", "path": "index.html",
    "location_id": "1", "instance_id": "1", "resource_id": "lamp",
    "scenario_id": str(uuid.UUID(int=0)), "output_id": "units",
}


def _routes(app: App) -> list[tuple[str, str]]:
    """Every (method, concrete path) the application routes, pygeoapi's mount included."""
    import re

    from starlette.routing import Mount, Route

    out: list[tuple[str, str]] = []

    def concrete(path: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1).split(":")[0]
            assert name in PATH_VALUES, f"add a value for {{{name}}} ({path}) to PATH_VALUES"
            return PATH_VALUES[name]
        return re.sub(r"\{([^}]+)\}", value, path)

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if route.routes:
                    walk(list(route.routes), prefix + route.path)
                else:  # static files
                    out.append(("GET", prefix + route.path + "/x"))
            elif isinstance(route, Route):
                for method in sorted((route.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
                    out.append((method, concrete(prefix + route.path)))

    walk(list(app.client.app.routes), "")
    return sorted(set(out))


def test_the_route_sweep_covers_the_routes_that_take_bodies(app: App) -> None:
    routes = _routes(app)
    bodies = {path for method, path in routes if method in ("POST", "PUT", "PATCH")}
    assert {"/auth/login", "/collections/lamp/items", "/collections/lamp/items/1",
            "/processes/locate/execution", "/collections/event/items/1/photos"} <= bodies
    assert len(routes) > 40


@pytest.mark.parametrize(("query", "says"), [
    ("x=a%00b", "NUL"),
    ("a%00b=1", "NUL"),
    ("x=%ED%B0%80", "not UTF-8"),
    ("x=%C0%80", "not UTF-8"),  # an overlong NUL
])
def test_every_route_refuses_nul_in_the_query_string(app: App, query: str, says: str) -> None:
    failures = []
    for method, path in _routes(app):
        r = app.send(method, f"{path}?{query}", who="admin")
        if r.status_code != 400 or says not in r.json().get("description", ""):
            failures.append((method, path, r.status_code, r.text[:200]))
    assert not failures, failures


@pytest.mark.parametrize(("body", "says"), [
    (b'{"x": "a\\u0000b"}', "NUL"),
    (b'{"x": ["\\ud800"]}', "lone surrogate"),
    (b'{"\\udc00": 1}', "lone surrogate"),
    (b'{"x": NaN}', "NaN"),
    (b'{"x": -Infinity}', "Infinity"),
    (nested(VERY_DEEP).encode(), f"more than {MAX_JSON_DEPTH} levels"),
    (b"[1]", "must be a JSON object"),
])
def test_every_route_taking_a_body_refuses_bad_json(app: App, body: bytes, says: str) -> None:
    failures = []
    for method, path in _routes(app):
        if method not in ("POST", "PUT", "PATCH"):
            continue
        for content_type in ("application/json", "application/geo+json", None):
            headers = {"Content-Type": content_type} if content_type else {}
            r = app.send(method, path, who="admin", content=body, headers=headers)
            if r.status_code != 400 or says not in r.json().get("description", ""):
                failures.append((method, path, content_type, r.status_code, r.text[:200]))
    assert not failures, failures


def test_photo_bytes_still_reach_their_route(app: App) -> None:
    """An image is not read by the contract: the photo route answers (no such event)."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    r = app.send("POST", "/collections/event/items/987654/photos", who="admin", content=png,
                 headers={"Content-Type": "image/png"})
    assert r.status_code in (400, 404), r.text[:300]
    assert "NUL" not in r.json()["description"]
