"""Items input that used to fail late or be ignored: ``cursor``, ``bbox``, ``q``.

* A malformed keyset ``cursor`` is a 400 naming it, answered before any byte
  of a body; no combination of paging parameters is a 500 or a cut body.
* ``bbox`` selects features whose geometry intersects the box, not merely
  its envelope, on every path (streaming GeoJSON, pygeoapi's other formats,
  the exporter).
* ``q`` is a text search (OGC API Features Part 9) over the layer's text
  properties as the caller sees them.
* Coverage collections are marked so that clients do not take them for
  feature collections; text search is declared in ``/conformance``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spatial.catalog import Column, Table
from tests.spatial.test_access_plans import act_as_district_admin, plan_nodes

#: An empty corner of the tiny city's district, away from its buildings.
BOX = (116.500, 39.950, 116.510, 39.960)
BOX_TEXT = ",".join(map(str, BOX))
#: The western grid's compound (tests/api/test_server.py).
WEST_BBOX = "116.46,39.915,116.469,39.93"
BAD_CURSORS = ["abc'", "9" * 400, "1.5", "", " ", "9223372036854775808",
               "-9223372036854775809", "1e3", "0x10", "١٢"]


def items(client: Any, collection: str = "building", **params: Any) -> Any:
    return client.get(f"/collections/{collection}/items", params={"f": "json", **params})


def ids(page: dict[str, Any]) -> list[int]:
    return [f["id"] for f in page["features"]]


def jsonld_ids(client: Any, collection: str = "building", **params: Any) -> set[int]:
    """Ids of an items page in JSON-LD: pygeoapi's path through the provider."""
    r = client.get(f"/collections/{collection}/items",
                   params={"f": "jsonld", "limit": 1000, **params})
    assert r.status_code == 200, r.text
    return {int(f["@id"].rsplit("/", 1)[1]) for f in r.json()["features"]}


@pytest.fixture
def installed() -> None:
    """The collection marks and conformance classes (server.collections) in place."""
    from server import collections

    collections.install()


# --- cursor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_malformed_cursor_is_refused_before_any_byte(client: Any, cursor: str) -> None:
    with client.stream("GET", "/collections/building/items",
                       params={"f": "json", "cursor": cursor, "limit": 2}) as r:
        body = r.read()
        assert r.status_code == 400, body[:300]
        assert r.headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["code"] == "InvalidParameterValue"
    assert doc["description"].startswith("cursor must be the id of a building feature")
    assert len(doc["description"]) < 300  # 400 digits are not echoed back whole


def test_a_cursor_is_the_last_id_of_the_previous_page(client: Any) -> None:
    first = items(client, limit=3).json()
    nxt = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert f"cursor={ids(first)[-1]}" in nxt
    second = items(client, limit=3, cursor=str(ids(first)[-1])).json()
    everything = ids(items(client, limit=100).json())
    assert ids(first) + ids(second) == everything[:6]
    # any integer is a place in the id order, one before the first id included
    assert ids(items(client, limit=3, cursor="-5").json()) == everything[:3]
    assert ids(items(client, limit=3, cursor=f" {everything[0]} ").json()) == everything[1:4]
    assert items(client, limit=3, cursor=str(2**63 - 1)).json()["numberReturned"] == 0


def test_offset_after_a_cursor_skips_rows_after_it(client: Any) -> None:
    everything = ids(items(client, limit=100).json())
    page = items(client, limit=2, cursor=str(everything[0]), offset=3).json()
    assert ids(page) == everything[4:6]
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert f"cursor={everything[5]}" in nxt and "offset" not in nxt


COMBINATIONS: list[dict[str, str]] = [
    {"cursor": "3", "offset": str(2**63 - 1)},
    {"cursor": "3", "limit": "10000", "offset": "0"},
    {"cursor": "3", "resulttype": "hits"},
    {"cursor": "abc", "resulttype": "hits"},
    {"cursor": "3", "sortby": "-floors"},
    {"cursor": "3", "properties": "name,floors", "skipGeometry": "true"},
    {"cursor": "3", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
    {"cursor": "3", "bbox": WEST_BBOX, "q": "tower"},
    {"cursor": "3", "filter": "floors > 6"},
    {"cursor": "3", "filter": "floors / (floors - 24) > 0"},
    {"cursor": "3", "datetime": "2026-01-01T00:00:00Z/.."},
    {"cursor": "3", "properties": "nosuch"},
    {"offset": str(2**63 - 1), "limit": "1"},
    {"sortby": "-floors", "offset": "5", "limit": "2"},
    {"q": "tower", "sortby": "name", "resulttype": "hits"},
    {"q": "(", "bbox": BOX_TEXT},
    {"q": ",", "filter": "floors > 6"},
]


@pytest.mark.parametrize("params", COMBINATIONS, ids=lambda p: "&".join(f"{k}={v}" for k, v in
                                                                        p.items()))
def test_paging_combinations_answer_whole_or_refuse(client: Any, params: dict[str, str]) -> None:
    """Each combination is either a whole, parseable page or a 4xx naming the problem."""
    with client.stream("GET", "/collections/building/items",
                       params={"f": "json", **params}) as r:
        body = r.read()
    assert r.status_code in (200, 400), body[:300]
    doc = json.loads(body)  # a cut body would not parse
    if r.status_code == 200:
        assert doc["numberReturned"] == len(doc["features"])
    else:
        assert doc["description"]


def test_an_error_of_the_query_comes_before_the_body(client: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the query raises up to its first rows is the caller's 400, not a cut body."""
    from server import items as route
    from spatial.errors import InvalidInputError

    def failing(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, str]]:
        raise InvalidInputError("a filter value does not fit its property: probe")
        yield  # a generator, as stream_features is

    monkeypatch.setattr(route, "stream_features", failing)
    with client.stream("GET", "/collections/building/items", params={"f": "json"}) as r:
        body = r.read()
    assert r.status_code == 400
    assert json.loads(body)["description"].endswith("probe")


@pytest.mark.parametrize(("udt", "data_type", "good", "bad"), [
    ("int2", "smallint", ["32767", "-32768", "+7"], ["32768", "7.0", "x"]),
    ("int4", "integer", ["2147483647"], ["2147483648"]),
    ("uuid", "uuid", ["0b5e2c3e-2f4a-4c4e-9c1a-3c2e5b0a9d11"], ["0b5e2c3e", "zz"]),
    ("text", "text", ["", "abc'", "楼-1"], ["a\x00b"]),
    ("numeric", "numeric", ["1.5", "-3"], ["one"]),
    ("date", "date", ["2026-01-31"], ["2026-02-30"]),
])
def test_a_cursor_follows_the_type_of_the_id(conn: psycopg.Connection[Any], udt: str,
                                            data_type: str, good: list[str],
                                            bad: list[str]) -> None:
    from spatial.errors import InvalidInputError
    from spatial.features import check_cursor

    table = Table("probe", (Column("id", data_type, udt),), {}, "layers")
    for value in good:
        check_cursor(conn, table, "id", value)
    for value in bad:
        with pytest.raises(InvalidInputError, match=r"^cursor must"):
            check_cursor(conn, table, "id", value)
    assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}  # still usable


# --- bbox -----------------------------------------------------------------------------------

def add_near_miss(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Two buildings by :data:`BOX`: one inside, one 0.5 m beyond its north-east
    corner whose envelope overlaps the box (a triangle leaning on the corner).

    Returns their ids (``inside``, ``outside``); asserts the premise.
    """
    inside = conn.execute(
        "INSERT INTO onemap.building (code, name, building_type, geom) VALUES "
        "('BOX-IN', '盒内楼', 'other', "
        " ST_Multi(ST_MakeEnvelope(116.502, 39.952, 116.503, 39.953, 4490))) RETURNING id"
    ).fetchone()[0]
    outside, distance, overlaps, intersects = conn.execute(
        """
        WITH c AS (SELECT ST_SetSRID(ST_Point(%(x)s, %(y)s), 4490)::geography AS corner),
             p AS (SELECT ST_Project(corner, 0.5, radians(45)) AS p FROM c),
             tri AS (
               SELECT ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[
                   ST_Project(p, 100, radians(315))::geometry,
                   ST_Project(p, 100, radians(135))::geometry,
                   ST_Project(p, 100, radians(45))::geometry,
                   ST_Project(p, 100, radians(315))::geometry])), 4490) AS g FROM p),
             ins AS (
               INSERT INTO onemap.building (code, name, building_type, geom)
               SELECT 'BOX-NEAR', '角外楼', 'other', ST_Multi(g) FROM tri RETURNING id, geom)
        SELECT ins.id, ST_Distance(ins.geom::geography, c.corner),
               ins.geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x)s, %(y)s, 4490),
               ST_Intersects(ins.geom, ST_MakeEnvelope(%(x0)s, %(y0)s, %(x)s, %(y)s, 4490))
        FROM ins, c
        """,
        {"x0": BOX[0], "y0": BOX[1], "x": BOX[2], "y": BOX[3]},
    ).fetchone()
    # the premise: the envelope overlaps, the building stays about half a metre outside
    assert overlaps and not intersects and 0.3 < distance < 0.7, distance
    return {"inside": inside, "outside": outside}


@pytest.fixture
def near_miss(tiny_city_db: str) -> dict[str, Any]:
    """The tiny city with :func:`add_near_miss`'s two buildings."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        return {"db": tiny_city_db, **add_near_miss(conn)}


def test_bbox_selects_what_intersects_the_box(client: Any, near_miss: dict[str, Any]) -> None:
    page = items(client, bbox=BOX_TEXT).json()
    assert ids(page) == [near_miss["inside"]]
    assert page["numberMatched"] == 1
    # pygeoapi's own formats go through the provider: the same test
    assert jsonld_ids(client, bbox=BOX_TEXT) == {near_miss["inside"]}
    # the box in another CRS (northing first) is the same box
    flipped = f"{BOX[1]},{BOX[0]},{BOX[3]},{BOX[2]}"
    assert ids(items(client, bbox=flipped,
                     **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}).json()) == [
        near_miss["inside"]]
    # a box that does reach the triangle finds it
    wider = f"{BOX[0]},{BOX[1]},{BOX[2] + 0.0001},{BOX[3] + 0.0001}"
    assert set(ids(items(client, bbox=wider).json())) == {near_miss["inside"],
                                                          near_miss["outside"]}


def test_the_exporter_bbox_is_the_same(near_miss: dict[str, Any], tmp_path: Path) -> None:
    from spatial.db import connect
    from spatial.exporter import export_layer

    out = tmp_path / "box.geojson"
    with connect(near_miss["db"], autocommit=True) as conn:
        summary = export_layer(conn, "building", out, "geojson", bbox=BOX)
    assert summary.rows == 1
    codes = [f["properties"]["code"] for f in json.loads(out.read_text())["features"]]
    assert codes == ["BOX-IN"]


@pytest.mark.parametrize("view", ["household", "building"])
def test_the_bbox_condition_keeps_the_spatial_index_under_row_level_security(
        tiny_city_db: str, view: str) -> None:
    """``&&`` is LEAKPROOF (an index condition under RLS); ST_Intersects, not leakproof,
    only filters what the index found."""
    from psycopg import sql

    from spatial.catalog import get_table
    from spatial.features import bbox_condition

    with psycopg.connect(tiny_city_db) as conn:
        act_as_district_admin(conn)
        conn.execute("SET LOCAL enable_seqscan = off")
        condition, params = bbox_condition(get_table(conn, view, schema="layers"),
                                           (116.46, 39.915, 116.469, 39.93))
        (plan,) = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT t.id FROM layers.{} AS t WHERE {}").format(
                sql.Identifier(view), condition), params).fetchone()
        nodes = plan_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
        scans = [n for n in nodes if n.get("Index Name") == f"{view}_geom_idx"]
        assert scans, [(n["Node Type"], n.get("Index Name")) for n in nodes]
        assert any("&&" in n.get("Index Cond", "") for n in scans)
        assert "st_intersects" in json.dumps(nodes).lower()


# --- q: text search -------------------------------------------------------------------------

def test_q_finds_any_term_in_any_text_property(client: Any) -> None:
    every = items(client, limit=100).json()
    by_id = {f["id"]: f["properties"] for f in every["features"]}
    assert len(by_id) == 8

    def found(q: str, **params: Any) -> set[int]:
        page = items(client, q=q, limit=100, **params).json()
        assert page["numberMatched"] == page["numberReturned"]
        return set(ids(page))

    towers = {i for i, p in by_id.items() if p["building_type"] == "tower"}
    second = {i for i, p in by_id.items() if p["address"].startswith("示范路 9 号")}
    assert len(towers) == 4 and len(second) == 4
    assert found("TOWER") == towers  # case-insensitive
    assert found("示范路 9") == second  # words in order, any white space between
    assert found("示范路 \t 9") == second
    assert found("示范路9") == set()  # one word: not in any address
    assert found("9 示范路") == set()  # the order counts
    assert found("tower,示范路 9") == towers | second  # comma: either term
    assert found("1号楼") == {i for i, p in by_id.items() if p["name"] == "1号楼"}
    assert found("C-02-B") == second  # codes are text properties too
    # what a regular expression or LIKE would read specially is taken literally
    for literal in (".", "%", "(", "[", "\\", "*", "+", "^", "$", "|", "?", "'"):
        assert found(literal) == set(), literal
    assert found("_") == {i for i, p in by_id.items() if p["building_type"] == "walk_up"}
    # combined with the other filters (all of them must hold)
    assert found("tower", bbox=WEST_BBOX) == {
        i for i in towers if by_id[i]["address"].startswith("示范路 1 号")}
    assert found("tower", building_type="walk_up") == set()
    assert found("tower", filter="floors > 100") == set()
    # an empty q is no search, as pygeoapi takes it (an HTML search box sent empty)
    assert found(" , ") == set(by_id)


def test_q_is_the_same_on_pygeoapi_formats(client: Any) -> None:
    # (not a search that finds nothing: pygeoapi 0.24's JSON-LD of an empty page is not JSON)
    for q in ("TOWER", "示范路 9", "tower,示范路 9", "_"):
        streamed = set(ids(items(client, q=q, limit=100).json()))
        assert jsonld_ids(client, q=q) == streamed, q


def test_q_is_refused_when_unreasonable(client: Any) -> None:
    many = items(client, q=",".join(f"w{i}" for i in range(21)))
    assert many.status_code == 400 and "at most 20" in many.json()["description"]
    long = items(client, q="楼" * 101)
    assert long.status_code == 400 and "at most 100 characters" in long.json()["description"]
    nul = items(client, q="a\x00b")
    assert nul.status_code == 400


def test_q_searches_masked_fields_as_masked(make_client: Any, staff_client: Any) -> None:
    """A text search compares what the caller sees: no oracle on a masked name."""
    analyst = make_client(["analyst"])

    def matched(client: Any, **params: Any) -> int:
        r = items(client, "resident", resulttype="hits", **params)
        assert r.status_code == 200, r.text
        return int(r.json()["numberMatched"])

    everyone = matched(analyst)
    assert everyone > 0
    # residents are named 演示居民<id>; an analyst sees 演*****<last digit>
    assert matched(analyst, q="演示居民") == 0
    assert matched(analyst, q="演*") == everyone
    # staff in scope see the names and find them
    assert matched(staff_client, q="演示居民") == matched(staff_client) == everyone


def test_q_on_a_layer_without_text_finds_nothing() -> None:
    from spatial.features import text_condition

    condition, params = text_condition(
        Table("counts", (Column("id", "bigint", "int8"), Column("n", "integer", "int4"))),
        ("anything",))
    assert params == []
    assert condition.as_string(None) == "FALSE"


# --- collections and conformance ------------------------------------------------------------

def test_text_search_is_declared(installed: None, client: Any) -> None:
    conforms = client.get("/conformance", params={"f": "json"}).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/text-search" in conforms
    assert ("http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/features-text-search"
            in conforms)


def test_coverage_collections_are_marked_and_have_no_items(installed: None,
                                                           client: Any) -> None:
    listed = client.get("/collections", params={"f": "json"}).json()["collections"]
    marked = {c["id"] for c in listed if c.get("layerDataType") == "Coverage"}
    assert marked == {"population_density", "terrain"}
    for c in listed:
        has_items = any(link["rel"] == "items" for link in c["links"])
        assert has_items == (c["id"] not in marked), c["id"]
        assert (c.get("itemType") == "feature") == has_items, c["id"]
    one = client.get("/collections/terrain", params={"f": "json"}).json()
    assert one["layerDataType"] == "Coverage"
    assert "layerDataType" not in client.get("/collections/lamp", params={"f": "json"}).json()
