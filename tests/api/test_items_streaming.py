"""The streaming GeoJSON path: 10,000 features in one page, keyset paging beyond."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

N = 12_345


@pytest.fixture
def many(tiny_city_db: str) -> str:
    """The tiny city plus N pieces of city furniture (a public layer)."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO onemap.city_furniture (code, kind, status, geom) "
            "SELECT 'CF-' || i, CASE WHEN i %% 3 = 0 THEN 'bench' ELSE 'litter_bin' END, "
            "'in_service', "
            "ST_Point(116.41 + (i %% 100) * 0.001, 39.89 + (i / 100) * 0.0007, 4490) "
            "FROM generate_series(1, %s) AS i",
            (N,),
        )
    return tiny_city_db


def local(href: str) -> str:
    return href.replace("http://127.0.0.1:8000", "")


def test_ten_thousand_features_stream_out(client: Any, many: str) -> None:
    chunks = 0
    body = b""
    with client.stream(
        "GET", "/collections/city_furniture/items", params={"f": "json", "limit": 10000}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/geo+json")
        assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
        for chunk in r.iter_bytes():
            chunks += 1
            body += chunk
    import json

    page = json.loads(body)
    assert page["numberReturned"] == 10000 == len(page["features"])
    assert "numberMatched" not in page  # more than the count cap: not counted
    assert chunks > 10  # written in ~64 kB chunks as rows arrive, not as one blob
    ids = [f["id"] for f in page["features"]]
    assert ids == sorted(ids)
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert f"cursor={ids[-1]}" in nxt["href"] and "offset" not in nxt["href"]
    rest = client.get(local(nxt["href"])).json()
    assert rest["numberReturned"] == N - 10000
    assert not [link for link in rest["links"] if link["rel"] == "next"]
    seen = ids + [f["id"] for f in rest["features"]]
    assert len(seen) == len(set(seen)) == N


def test_keyset_pages_with_a_filter_match_one_big_page(client: Any, many: str) -> None:
    params = {"f": "json", "kind": "bench", "bbox": "116.40,39.88,116.46,39.98", "limit": 500}
    whole = client.get(
        "/collections/city_furniture/items", params={**params, "limit": 10000}
    ).json()
    expected = [f["id"] for f in whole["features"]]
    assert 0 < len(expected) < 10000 and whole["numberMatched"] == len(expected)
    got: list[int] = []
    r = client.get("/collections/city_furniture/items", params=params).json()
    while True:
        got += [f["id"] for f in r["features"]]
        assert all(f["properties"]["kind"] == "bench" for f in r["features"])
        nxt = [link for link in r["links"] if link["rel"] == "next"]
        if not nxt:
            break
        r = client.get(local(nxt[0]["href"])).json()
    assert got == expected


def test_sorted_pages_link_by_offset_and_cursor_refuses_a_sort(client: Any, many: str) -> None:
    r = client.get(
        "/collections/city_furniture/items",
        params={"f": "json", "sortby": "-code", "limit": 5},
    ).json()
    nxt = next(link for link in r["links"] if link["rel"] == "next")
    assert "offset=5" in nxt["href"] and "cursor" not in nxt["href"]
    second = client.get(local(nxt["href"])).json()
    assert {f["id"] for f in second["features"]}.isdisjoint({f["id"] for f in r["features"]})
    prev = next(link for link in second["links"] if link["rel"] == "prev")
    assert "offset=0" in prev["href"]
    bad = client.get(
        "/collections/city_furniture/items",
        params={"f": "json", "sortby": "code", "cursor": "10"},
    )
    assert bad.status_code == 400 and "cursor" in bad.json()["description"]


def test_html_still_goes_to_pygeoapi(client: Any, many: str) -> None:
    r = client.get("/collections/city_furniture/items", params={"f": "html", "limit": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
