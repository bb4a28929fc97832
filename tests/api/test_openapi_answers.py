"""The OpenAPI document says what the server answers (issue 12, item 9).

Disagreements schemathesis found (tests/api/test_schemathesis.py runs it over the
whole document), each fixed on the side the OGC standards say is wrong, and held
here with the server's real answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

from server.openapi import resolve
from tests.api.test_styles import STYLE_IDS

WRITES = ("post", "put", "patch", "delete")


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    r = client.get("/openapi", params={"f": "json"})
    assert r.status_code == 200
    return dict(r.json())


def responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return dict(document["paths"][path][method]["responses"])


def test_every_write_documents_401_and_403(document: dict[str, Any]) -> None:
    editable = {"event", "alley_problem", "lamp", "household", "resident", "building"}
    writes = []
    for path, item in document["paths"].items():
        for method in WRITES:
            if method not in item or path.startswith("/auth/"):
                continue
            writes.append((method, path))
            assert {"401", "403"} <= set(item[method]["responses"]), (method, path)
    # the Part 4 writes, process execution, job dismissal and photo upload are all there
    for cid in editable:
        assert ("post", f"/collections/{cid}/items") in writes
        assert ("put", f"/collections/{cid}/items/{{featureId}}") in writes
        assert ("delete", f"/collections/{cid}/items/{{featureId}}") in writes
    assert {("post", "/processes/locate/execution"), ("delete", "/jobs/{jobId}"),
            ("post", "/collections/event/items/{featureId}/photos")} <= set(writes)


def test_every_operation_documents_400_and_401(client: Any, document: dict[str, Any]) -> None:
    """A NUL in the query string is a 400, wrong or expired credentials a 401 (never
    anonymous), on every route."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                assert {"400", "401"} <= set(operation["responses"]), (method, path)
    for path in ("/widget/", "/m/", "/health", "/conformance"):
        assert client.get(f"{path}?x=%00").status_code == 400, path
        assert client.get(path, headers={"X-API-Key": "omk_wrong"}).status_code == 401, path


def test_item_updates_document_404_412_and_if_match(document: dict[str, Any]) -> None:
    for method in ("put", "delete"):
        op = document["paths"]["/collections/lamp/items/{featureId}"][method]
        assert {"404", "412"} <= set(op["responses"])
        names = {p.get("name") for p in op["parameters"]}
        assert "If-Match" in names
    put = document["paths"]["/collections/lamp/items/{featureId}"]["put"]
    assert "Content-Crs" in {p.get("name") for p in put["parameters"]}
    assert "413" in put["responses"]


def test_items_document_the_parameters_they_take(client: Any, document: dict[str, Any]) -> None:
    from server.contract import ITEMS

    op = document["paths"]["/collections/lamp/items"]["get"]
    names = {p["name"] if "name" in p else resolve(document, p["$ref"])["name"]
             for p in op["parameters"]}
    assert names >= ITEMS  # every parameter the contract accepts, properties besides
    page = client.get("/collections/lamp/items", params={"f": "json", "limit": 1}).json()
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert "cursor=" in nxt  # the documented cursor is the one the server links with


def test_job_dismissal_answers_its_status_info(client: Any, document: dict[str, Any]) -> None:
    """OGC API - Processes: dismissing a job is 200 with its status info (pygeoapi
    documented 204)."""
    answers = responses(document, "/jobs/{jobId}", "delete")
    assert "204" not in answers
    schema = answers["200"]["content"]["application/json"]["schema"]
    r = client.post("/processes/locate/execution",
                    json={"inputs": {"x": 116.465, "y": 39.9225}},
                    headers={"Prefer": "respond-async"})
    assert r.status_code == 201, r.text
    job = r.headers["location"].rsplit("/", 1)[1]
    r = client.delete(f"/jobs/{job}")
    assert r.status_code == 200
    status = resolve(document, schema["$ref"])
    OAS30Validator(inline(document, status)).validate(r.json())
    assert r.json()["status"] == "dismissed"


def test_lang_is_any_language_falling_back(client: Any, document: dict[str, Any]) -> None:
    """``lang`` names a language; one the server lacks falls back (as its description
    says), so the document lists no enum the server would not enforce."""
    lang = document["components"]["parameters"]["lang"]
    assert "enum" not in lang["schema"]
    assert "Accept-Language" in lang["description"]
    assert "Languages served: zh, en-US." in lang["description"]
    for value in ("fr", "en-GB", "xx", "en-US"):
        r = client.get("/collections", params={"f": "json", "lang": value})
        assert r.status_code == 200, value
        assert r.headers["content-language"] in ("zh", "en-US"), value


def test_legends_match_their_schema(client: Any, document: dict[str, Any],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every legend validates against the documented ``legend`` schema: the background
    layer (no source) and the raster base maps (no source layer) included."""
    schema = inline(document, document["components"]["schemas"]["legend"])
    for basemaps in (False, True):
        if basemaps:  # Tianditu's and AMap's raster layers go into every style
            monkeypatch.setenv("ONEMAP_TIANDITU_KEY", "key")
            monkeypatch.setenv("ONEMAP_AMAP", "1")
        types = set()
        for sid in STYLE_IDS:
            r = client.get(f"/styles/{sid}/legend")
            assert r.status_code == 200
            OAS30Validator(schema).validate(r.json())
            types |= {e["type"] for e in r.json()["entries"]}
        assert "background" in types
        assert ("raster" in types) is basemaps


def inline(document: dict[str, Any], node: Any) -> Any:
    """A schema with its local ``$ref``s replaced by what they point at."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(document, resolve(document, node["$ref"]))
        return {k: inline(document, v) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(document, v) for v in node]
    return node
