"""What no route serves: 405 with ``Allow`` on a served path, else 404, as OGC exceptions.

pygeoapi is mounted at ``/`` behind onemap's routes, so a request one of onemap's
routes matched by path only (``TRACE /styles``) used to fall through to pygeoapi
and come back a plain-text 404 (issue 12, item 9; found by schemathesis).
"""

from __future__ import annotations

from typing import Any

#: (method, path, the methods Allow must list)
NOT_ALLOWED = [
    ("TRACE", "/styles", {"GET", "HEAD"}),  # onemap's route
    ("DELETE", "/styles/base/legend", {"GET", "HEAD"}),
    ("GET", "/auth/logout", {"POST"}),
    ("PUT", "/tiles/base/WebMercatorQuad/13/3103/6746", {"GET", "HEAD"}),
    ("TRACE", "/conformance", {"GET", "HEAD"}),  # pygeoapi's route
    ("PATCH", "/collections/lamp/items/1", {"GET", "PUT", "DELETE"}),  # Part 4 has no PATCH
    ("DELETE", "/collections/lamp/items", {"GET", "POST"}),  # onemap's and pygeoapi's
    ("TRACE", "/collections/event/items/1/photos", {"GET", "POST"}),
    # below an item only onemap's sub-resources: pygeoapi took '1/history' for a feature id
    # and its delete answered the anonymous a 500 (schemathesis)
    ("DELETE", "/collections/event/items/1/history", {"GET", "HEAD"}),
    ("PUT", "/collections/event/items/1/history", {"GET", "HEAD"}),
]


def test_unserved_methods_are_405_with_allow(client: Any) -> None:
    for method, path, allowed in NOT_ALLOWED:
        r = client.request(method, path)
        assert r.status_code == 405, (method, path, r.status_code, r.text)
        allow = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed <= allow and method not in allow, (method, path, allow)
        doc = r.json()
        assert doc["code"] == "MethodNotAllowed"
        assert method in doc["description"] and path in doc["description"]


def test_unknown_paths_are_404_documents(client: Any) -> None:
    for method, path in [("GET", "/nope"), ("TRACE", "/nope"), ("GET", "/styles/base/nope"),
                         ("OPTIONS", "/collections/lamp/items/a%0Ab"),  # no route takes \n
                         # no feature id holds a '/' (pygeoapi's route would take one)
                         ("DELETE", "/collections/event/items/1/x"),
                         ("GET", "/collections/lamp/items/1/2")]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "NotFound", (method, path)


def test_a_trailing_slash_redirects_to_the_route(client: Any) -> None:
    for path in ("/styles/", "/conformance/"):  # onemap's, pygeoapi's
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 307, path
        assert r.headers["location"].endswith(path.rstrip("/")), path


def test_served_methods_are_unchanged(client: Any) -> None:
    assert client.get("/styles").status_code == 200
    assert client.head("/styles").status_code == 200
    assert client.get("/conformance", params={"f": "json"}).status_code == 200
    assert client.options("/collections/lamp/items").status_code == 200  # pygeoapi's OPTIONS
    assert client.get("/static/maplibre-gl/nope.js").status_code == 404
    assert client.get("/widget", follow_redirects=False).status_code == 308
    # a CORS preflight is answered by the CORS middleware before any route
    r = client.options("/styles", headers={"Origin": "https://example.org",
                                           "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200
