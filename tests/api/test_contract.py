"""The error contract: bad input gets a 4xx OGC exception document naming the problem,
never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from server.contract import (
    ALLOWED,
    DEFAULT_MAX_JSON_BYTES,
    JSON_CAP_ENV,
    ContractMiddleware,
    body_is_checked,
    check_body,
    check_query_params,
    check_query_values,
    classify,
    parse_query_string,
)
from server.coverage import RASTER_DIR_ENV
from spatial.errors import InvalidInputError
from tests.api.test_coverages import tiny_city_app, write_test_rasters


@pytest.fixture(scope="module")
def client(server_conninfo: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One application over one tiny city for the module (every request here only reads),
    with coverage data, so that only the request can be at fault."""
    rasters = tmp_path_factory.mktemp("rasters")
    write_test_rasters(rasters)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RASTER_DIR_ENV, str(rasters))
        yield from tiny_city_app(server_conninfo, template_db)


def problem(r: Any, status: int = 400, *, json_type: bool = True) -> str:
    """Assert an OGC exception document with ``status``; return its description."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    if json_type:
        assert r.headers["content-type"].startswith("application/json")
    body = json.loads(r.content)
    assert set(body) >= {"code", "description"}, body
    assert body["code"] and body["description"]
    return str(body["description"])


# --- unknown parameters ------------------------------------------------------------------

@pytest.mark.parametrize(("path", "kind"), [
    ("/", "landing"),
    ("/conformance", "conformance"),
    ("/collections", "collections"),
    ("/collections/lamp", "collection"),
    ("/collections/lamp/items", "items"),
    ("/collections/lamp/items/1", "item"),
    ("/collections/lamp/queryables", "queryables"),
    ("/collections/terrain/coverage", "coverage"),
    ("/processes", "processes"),
])
def test_unknown_parameter_is_named(client: Any, path: str, kind: str) -> None:
    r = client.get(path, params={"f": "json", "lmit": "5"})
    text = problem(r)
    assert "'lmit'" in text and kind in text
    assert r.json()["code"] == "InvalidParameterValue"


def test_property_names_are_parameters_on_items_only(client: Any) -> None:
    r = client.get("/collections/lamp/items", params={"f": "json", "status": "fault"})
    assert r.status_code == 200
    assert {f["properties"]["status"] for f in r.json()["features"]} == {"fault"}
    # the id is not a property filter (pygeoapi would drop it silently): refused
    assert "'id'" in problem(client.get("/collections/lamp/items", params={"id": "1"}))
    # a property of another layer
    assert "'floors'" in problem(client.get("/collections/lamp/items", params={"floors": "6"}))
    # property names are not parameters of the collection itself
    assert "'status'" in problem(client.get("/collections/lamp", params={"status": "fault"}))


def test_standard_parameters_pass(client: Any) -> None:
    r = client.get("/collections/building/items", params={
        "f": "json", "lang": "en", "bbox": "116.40,39.90,116.50,39.95", "limit": "2",
        "offset": "1", "sortby": "-floors", "properties": "floors", "skipGeometry": "true",
        "filter": "floors >= 6", "filter-lang": "cql2-text", "resulttype": "results",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/4490",
        "bbox-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    })
    assert r.status_code == 200, r.text
    assert r.json()["numberReturned"] == 2


def test_repeated_parameter_and_non_utf8_query(client: Any) -> None:
    assert "'limit'" in problem(client.get("/collections/lamp/items?limit=1&limit=2"))
    assert "UTF-8" in problem(client.get("/collections/lamp/items?status=%ff%fe"))
    assert "UTF-8" in problem(client.get("/collections/lamp/items?%ff=1"))


# --- values --------------------------------------------------------------------------------

@pytest.mark.parametrize(("bbox", "says"), [
    ("116.4,39.9,116.5", "4 numbers"),
    ("116.4,39.9,116.5,39.95,1", "4 numbers"),
    ("116.5,39.9,116.4,39.95", "minimum exceeds maximum"),
    ("116.4,39.95,116.5,39.9", "minimum exceeds maximum"),
    ("200,39.9,210,39.95", "outside longitude"),
    ("116.4,-95,116.5,39.95", "outside longitude"),
    ("nan,39.9,116.5,39.95", "finite numbers"),
    ("116.4,39.9,inf,39.95", "finite numbers"),
    ("west,south,east,north", "finite numbers"),
])
@pytest.mark.parametrize("path", ["/collections/lamp/items", "/collections/terrain/coverage"])
def test_bad_bbox(client: Any, path: str, bbox: str, says: str) -> None:
    text = problem(client.get(path, params={"bbox": bbox}))
    assert "bbox" in text and says in text


@pytest.mark.parametrize("value", [
    "yesterday", "2026-13-45T00:00:00Z", "2026-01-01T25:00:00Z", "../..",
    "2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "2026-01-01/2026-02-01/2026-03-01",
])
def test_bad_datetime(client: Any, value: str) -> None:
    assert "datetime" in problem(client.get("/collections/lamp/items", params={"datetime": value}))


def test_good_datetimes_pass(client: Any) -> None:
    for value in ("2026-01-01T00:00:00Z", "2000-01-01T00:00:00Z/..", "../2030-01-01",
                  "2020-01-01/2030-01-01", "2026-01-01T08:00:00+08:00/.."):
        r = client.get("/collections/lamp/items", params={"datetime": value, "f": "json"})
        assert r.status_code == 200, (value, r.text)


@pytest.mark.parametrize(("value", "says"), [
    ("floors >", "Unexpected end of input"),
    ("floors >>= 3", "Unexpected token"),
    ("S_INTERSECTS(geom, POINT(1))", "Unexpected token"),
])
def test_malformed_filter_says_where(client: Any, value: str, says: str) -> None:
    text = problem(client.get("/collections/building/items", params={"filter": value}))
    assert "malformed cql2-text filter" in text and says in text


def test_filter_on_an_unknown_property_is_named(client: Any) -> None:
    text = problem(client.get("/collections/building/items", params={"filter": "colour = 'red'"}))
    assert "colour" in text


def test_empty_filter(client: Any) -> None:
    assert "filter is empty" in problem(
        client.get("/collections/building/items", params={"filter": " "}))


@pytest.mark.parametrize(("name", "value", "says"), [
    ("limit", "ten", "limit must be an integer"),
    ("limit", "2.5", "limit must be an integer"),
    ("limit", "-1", "limit must be between 1"),
    ("limit", "0", "limit must be between 1"),
    ("offset", "-3", "offset must be between 0"),
    ("offset", "99999999999999999999", "offset must be between 0"),
    ("offset", "1e3", "offset must be an integer"),
    ("skipGeometry", "maybe", "skipGeometry must be true or false"),
    ("resulttype", "everything", "resulttype must be results or hits"),
    ("sortby", "-", "sortby needs property names"),
    ("sortby", "floors,,", "sortby needs property names"),
    ("properties", "code,", "properties has an empty name"),
])
def test_bad_paging_and_flags(client: Any, name: str, value: str, says: str) -> None:
    assert says in problem(client.get("/collections/lamp/items", params={name: value}))


def test_a_huge_limit_is_clamped_not_refused(client: Any) -> None:
    """OGC API Features lets the server clamp; pygeoapi clamps at server.limits.max_items."""
    from pygeoapi.api import evaluate_limit

    r = client.get("/collections/lamp/items", params={"f": "json", "limit": "100000000"})
    assert r.status_code == 200
    body = r.json()
    assert body["numberReturned"] == body["numberMatched"] > 0
    limits = {"default_items": 100, "max_items": 10000}
    assert evaluate_limit("100000000", limits, {}) == 10000
    openapi = client.get("/openapi", params={"f": "json"}).json()
    limit = next(p for p in openapi["paths"]["/collections/lamp/items"]["get"]["parameters"]
                 if p.get("name") == "limit")
    assert limit["schema"]["maximum"] == 10000


def test_the_largest_offset_is_an_empty_page(client: Any) -> None:
    r = client.get("/collections/lamp/items", params={"f": "json", "offset": str(2**63 - 1)})
    assert r.status_code == 200, r.text
    assert r.json()["features"] == []


# --- collections -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/collections/nope", "/collections/nope/items", "/collections/nope/items/1",
    "/collections/nope/queryables", "/collections/nope/coverage",
])
def test_unknown_collection_is_404(client: Any, path: str) -> None:
    problem(client.get(path, params={"f": "json"}), 404)


def test_unknown_collection_with_properties_is_404_not_400(client: Any) -> None:
    problem(client.get("/collections/nope/items", params={"status": "fault"}), 404)


# --- bodies ----------------------------------------------------------------------------------

def test_non_utf8_body(client: Any) -> None:
    r = client.post("/collections/lamp/items", params={"f": "json"}, content=b"\xff\xfe{}",
                    headers={"Content-Type": "application/json"})
    text = problem(r)
    assert "not UTF-8" in text and r.json()["code"] == "OperationParsingFailed"


@pytest.mark.parametrize("content_type", ["application/json", "application/query-cql-json",
                                          "application/geo+json; charset=utf-8", None])
def test_malformed_json_body(client: Any, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/collections/lamp/items", params={"f": "json"},
                    content=b'{"op": "=", "args": [', headers=headers)
    assert "not valid JSON" in problem(r) and "line 1" in r.json()["description"]


def test_a_good_cql2_json_body_still_works(client: Any) -> None:
    r = client.post("/collections/lamp/items", params={"f": "json"},
                    json={"op": "=", "args": [{"property": "status"}, "fault"]},
                    headers={"Content-Type": "application/query-cql-json"})
    assert r.status_code == 200, r.text
    assert {f["properties"]["status"] for f in r.json()["features"]} == {"fault"}


def test_process_execution_body_is_checked(client: Any) -> None:
    r = client.post("/processes/locate/execution", content=b"\x80inputs",
                    headers={"Content-Type": "application/json"})
    assert "not UTF-8" in problem(r)


# --- body sizes: JSON/text capped, other bodies stream through unread ------------------------

def post_streamed(app: Any, path: str, headers: dict[str, str], chunk: bytes,
                  count: int) -> tuple[httpx.Response, int]:
    """POST ``count`` chunks from an async generator (chunked, unless ``headers`` declare
    a Content-Length) through httpx's ASGI transport, which pulls a chunk only when the
    application asks for one; returns the response and how many chunks were pulled."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(count):
            pulled += 1
            yield chunk

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onemap") as c:
            return await c.post(path, content=body(), headers=headers)

    return asyncio.run(go()), pulled


def test_json_body_over_the_cap_is_413_unread(client: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JSON_CAP_ENV, "2048")
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [116.46, 39.92]},
               "properties": {"description": "x" * 4096}}
    r = client.post("/collections/event/items", json=feature)
    text = problem(r, 413)
    assert r.json()["code"] == "PayloadTooLarge" and JSON_CAP_ENV in text
    # under the cap the contract lets a body through as before
    r = client.post("/collections/lamp/items", params={"f": "json"},
                    json={"op": "=", "args": [{"property": "status"}, "fault"]},
                    headers={"Content-Type": "application/query-cql-json"})
    assert r.status_code == 200, r.text


def test_chunked_json_over_the_cap_stops_being_read(client: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JSON_CAP_ENV, str(64 * 1024))
    r, pulled = post_streamed(client.app, "/processes/locate/execution",
                              {"Content-Type": "application/json"}, b" " * 16384, 1000)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "PayloadTooLarge"
    assert pulled == 5  # the fifth 16 kB chunk passes 64 kB: the other 995 are never read
    # a declared length over the cap is refused before any byte is read
    r, pulled = post_streamed(client.app, "/processes/locate/execution",
                              {"Content-Type": "application/json",
                               "Content-Length": str(1000 * 16384)}, b" " * 16384, 1000)
    assert (r.status_code, pulled) == (413, 0)


def test_the_default_cap_and_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.contract import json_body_cap

    monkeypatch.delenv(JSON_CAP_ENV, raising=False)
    assert json_body_cap() == DEFAULT_MAX_JSON_BYTES == 16 * 1024 * 1024
    monkeypatch.setenv(JSON_CAP_ENV, "lots")
    assert json_body_cap() == DEFAULT_MAX_JSON_BYTES
    monkeypatch.setenv(JSON_CAP_ENV, "1000")
    assert json_body_cap() == 1000


def test_other_bodies_stream_through_unread() -> None:
    """An image body reaches the application behind untouched, chunk by chunk, even past
    the JSON cap; the middleware itself pulls nothing."""
    seen: list[bytes] = []

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            seen.append(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = ContractMiddleware(behind, max_json_bytes=10)
    r, pulled = post_streamed(app, "/collections/event/items/1/photos",
                              {"Content-Type": "image/jpeg"}, b"\xff" * 100, 7)
    assert (r.status_code, pulled) == (204, 7)
    assert b"".join(seen) == b"\xff" * 700
    r, _ = post_streamed(app, "/collections/lamp/items", {"Content-Type": "application/json"},
                         b"[1]", 7)
    assert r.status_code == 413  # the same size as JSON is over the cap of 10
    # an OGC resource is capped whatever type its body claims: pygeoapi would read it all
    r, pulled = post_streamed(app, "/collections/lamp/items",
                              {"Content-Type": "application/octet-stream"}, b"\xff" * 100, 7)
    assert (r.status_code, pulled) == (413, 1)
    assert [body_is_checked(t) for t in ("image/png", "application/octet-stream",
                                         "application/json; charset=utf-8", "text/csv")] == [
        False, False, True, True]


# --- nothing odd gives a 500 --------------------------------------------------------------------

FUZZ: list[tuple[str, dict[str, str]]] = [
    ("/collections/lamp/items", {"bbox": "NaN,NaN,NaN,NaN"}),
    ("/collections/lamp/items", {"bbox": "-Infinity,0,0,0"}),
    ("/collections/lamp/items", {"bbox": "1e400,0,1e400,0"}),
    ("/collections/lamp/items", {"bbox": "\x00"}),
    ("/collections/lamp/items", {"bbox": ",,,"}),
    ("/collections/lamp/items", {"bbox": "116.4,39.9,116.5,39.95", "bbox-crs": "EPSG:999999"}),
    ("/collections/lamp/items", {"bbox": "1,2,3,4", "bbox-crs": "urn:nonsense"}),
    ("/collections/lamp/items", {"offset": str(10**30)}),
    ("/collections/lamp/items", {"offset": "1e309"}),
    ("/collections/lamp/items", {"limit": "1e3"}),
    ("/collections/lamp/items", {"limit": " 5 "}),
    ("/collections/lamp/items", {"limit": str(2**64)}),
    ("/collections/lamp/items", {"filter": ""}),
    ("/collections/lamp/items", {"filter": ")))((("}),
    ("/collections/lamp/items", {"filter": "status = '" + "x" * 10000 + "'"}),
    ("/collections/lamp/items", {"filter": "{}", "filter-lang": "cql2-json"}),
    ("/collections/lamp/items", {"filter": "[1, 2]", "filter-lang": "cql2-json"}),
    ("/collections/lamp/items", {"filter": "status = 1", "filter-lang": "ecql"}),
    ("/collections/lamp/items", {"filter": "S_INTERSECTS(geom, POINT(1e400 1))"}),
    ("/collections/lamp/items", {"filter": "status = 'a'", "filter-crs": "EPSG:0"}),
    ("/collections/lamp/items", {"datetime": ""}),
    ("/collections/lamp/items", {"datetime": "/"}),
    ("/collections/lamp/items", {"datetime": "9999-12-31T23:59:59Z"}),
    ("/collections/lamp/items", {"sortby": ",,,"}),
    ("/collections/lamp/items", {"sortby": "-"}),
    ("/collections/lamp/items", {"properties": ","}),
    ("/collections/lamp/items", {"crs": ""}),
    ("/collections/lamp/items", {"crs": "💥"}),
    ("/collections/lamp/items", {"status": "'; DROP TABLE lamp; --"}),
    ("/collections/lamp/items", {"power_w": "a lot"}),
    ("/collections/lamp/items", {"last_report_at": "not a time"}),
    ("/collections/lamp/items", {"名字": "张三"}),
    ("/collections/lamp/items", {"f": "💥"}),
    ("/collections/lamp/items", {"lang": "xx-💥"}),
    ("/collections/lamp/items/💥", {}),
    ("/collections/lamp/items/" + "9" * 40, {}),
    ("/collections/lamp/items/-1", {}),
    ("/collections/💥/items", {}),
    ("/collections/terrain/coverage", {"subset": "Lat(39.92)"}),
    ("/collections/terrain/coverage", {"subset": "Lat(a:b)"}),
    ("/collections/terrain/coverage", {"subset": "Lat(39.93:39.92)"}),
    ("/collections/terrain/coverage", {"subset": "nonsense"}),
    ("/collections/terrain/coverage", {"subset": "Elevation(1:2)"}),
    ("/collections/terrain/coverage", {"bbox": "0,0,1,1"}),
    ("/collections/terrain/coverage", {"bbox": "116.4,39.9,116.5,39.95", "bbox-crs": "bogus"}),
    ("/collections/terrain/coverage", {"properties": "99"}),
    ("/collections/terrain/coverage", {"f": "png"}),
    ("/processes/💥", {}),
    ("/jobs/💥", {}),
]


@pytest.mark.parametrize(("path", "params"), FUZZ)
def test_odd_input_is_never_a_500(client: Any, path: str, params: dict[str, str]) -> None:
    r = client.get(path, params=params)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        # pygeoapi labels an error about ?f=png as image/png; the body is the document
        problem(r, r.status_code, json_type="f" not in params)


# --- the pure functions -------------------------------------------------------------------------

def test_check_query_params_is_reusable() -> None:
    check_query_params("items", {"limit": "1", "status": "x"}, queryables={"status"})
    with pytest.raises(InvalidInputError, match="'statuss'"):
        check_query_params("items", {"statuss": "x"}, queryables={"status"})
    with pytest.raises(InvalidInputError, match="'status'"):
        check_query_params("collection", {"status": "x"}, queryables={"status"})
    with pytest.raises(ValueError, match="unknown kind"):
        check_query_params("itemz", {})
    assert {"landing", "collections", "collection", "items", "item", "queryables", "coverage",
            "processes", "process", "jobs", "job", "results", "tiles"} <= set(ALLOWED)


def test_check_query_values_and_body() -> None:
    check_query_values("items", {"bbox": "-180,-90,180,90", "limit": "10000000"})
    check_query_values("items", {"bbox": "12950000,4850000,12960000,4860000",
                                 "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857"})
    with pytest.raises(InvalidInputError, match="bbox"):
        check_query_values("coverage", {"bbox": "1,2"})
    check_body(b"", "application/json")
    check_body(b"\xff", "application/octet-stream")  # not ours to judge
    with pytest.raises(InvalidInputError, match="UTF-8"):
        check_body("中文".encode("gb18030"), "text/plain")


def test_classify_and_parse() -> None:
    assert classify("/") == ("landing", None)
    assert classify("/collections/lamp/") == ("collection", "lamp")
    assert classify("/collections/lamp/items/7") == ("item", "lamp")
    assert classify("/collections/terrain/coverage") == ("coverage", "terrain")
    assert classify("/processes/locate/execution") is None  # POST only
    assert classify("/auth/login") is None
    assert parse_query_string(b"a=1&b=") == {"a": "1", "b": ""}


@pytest.mark.parametrize("lang", ["zh", "zh-CN", "zh-TW", "en", "en-US", "fr", "xx-YY"])
def test_any_language_gets_an_answer(client: Any, lang: str) -> None:
    """An unsupported or regional language falls back; it never breaks a page."""
    assert client.get("/collections", params={"f": "json", "lang": lang}).status_code == 200
    r = client.get("/", params={"f": "json"}, headers={"Accept-Language": lang})
    assert r.status_code == 200
