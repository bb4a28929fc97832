"""Items input that used to fail late: a malformed keyset ``cursor`` is a 400
naming it, answered before any byte of a body; no combination of paging
parameters is a 500 or a cut body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from spatial.catalog import Column, Table

BOX_TEXT = "116.5,39.95,116.51,39.96"
#: The western grid's compound (tests/api/test_server.py).
WEST_BBOX = "116.46,39.915,116.469,39.93"
BAD_CURSORS = ["abc'", "9" * 400, "1.5", "", " ", "9223372036854775808",
               "-9223372036854775809", "1e3", "0x10", "١٢"]


def items(client: Any, collection: str = "building", **params: Any) -> Any:
    return client.get(f"/collections/{collection}/items", params={"f": "json", **params})


def ids(page: dict[str, Any]) -> list[int]:
    return [f["id"] for f in page["features"]]


# --- cursor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_malformed_cursor_is_refused_before_any_byte(client: Any, cursor: str) -> None:
    with client.stream("GET", "/collections/building/items",
                       params={"f": "json", "cursor": cursor, "limit": 2}) as r:
        body = r.read()
        assert r.status_code == 400, body[:300]
        assert r.headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["code"] == "InvalidInputError"
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
    from spatial.errors import InvalidInputError
    from spatial.ogc import items as route

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
