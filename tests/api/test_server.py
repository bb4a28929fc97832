"""The OGC API answers through the real ASGI application and a real PostGIS."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from spatial.catalog import geometry_tables
from tests import declared


@pytest.fixture
def client(staff_client: Any) -> Any:
    """These tests read every layer: act as a district administrator."""
    return staff_client


def test_landing_page_and_conformance(client: Any) -> None:
    r = client.get("/", params={"f": "json"})
    assert r.status_code == 200
    rels = {link["rel"] for link in r.json()["links"]}
    assert {"service-desc", "conformance", "data"} <= rels
    c = client.get("/conformance", params={"f": "json"}).json()
    assert any("ogcapi-features-1/1.0/conf/core" in x for x in c["conformsTo"])


def test_every_layer_view_is_a_collection(client: Any, conn: psycopg.Connection) -> None:
    """A layer is declared, not coded: its view in layers/ and its config entry agree,
    and every geometry table of the model is published through a view."""
    views = {
        r["table_name"]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'layers'"
        )
    }
    assert set(geometry_tables(conn)) <= views, set(geometry_tables(conn)) - views
    r = client.get("/collections", params={"f": "json"})
    assert r.status_code == 200
    ids = {c["id"] for c in r.json()["collections"]}
    assert views <= ids, views - ids
    features = set(declared.feature_collections())
    assert features == views, features ^ views


def test_items_page_through_the_buildings(client: Any) -> None:
    first = client.get("/collections/building/items", params={"f": "json", "limit": 3})
    assert first.status_code == 200
    body = first.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 8 and body["numberReturned"] == 3
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert "crs" not in feature["geometry"]
    assert "geom_3857" not in feature["properties"] and "geom" not in feature["properties"]
    assert feature["properties"]["floors"] in (6, 24)
    nxt = next(link for link in body["links"] if link["rel"] == "next")
    second = client.get(nxt["href"].replace("http://127.0.0.1:8000", "")).json()
    ids_first = {f["id"] for f in body["features"]}
    ids_second = {f["id"] for f in second["features"]}
    assert ids_first.isdisjoint(ids_second) and len(ids_second) == 3


def test_bbox_filters_and_single_item(client: Any) -> None:
    # The western grid's compound only.
    r = client.get(
        "/collections/building/items", params={"f": "json", "bbox": "116.46,39.915,116.469,39.93"}
    ).json()
    assert r["numberMatched"] == 4
    some = r["features"][0]
    one = client.get(f"/collections/building/items/{some['id']}", params={"f": "json"})
    assert one.status_code == 200
    assert one.json()["properties"]["code"] == some["properties"]["code"]


def test_property_filter_sort_and_datetime(client: Any) -> None:
    r = client.get(
        "/collections/lamp/items", params={"f": "json", "status": "fault", "limit": 100}
    ).json()
    assert r["numberMatched"] == 3
    assert {f["properties"]["status"] for f in r["features"]} == {"fault"}
    s = client.get(
        "/collections/household/items", params={"f": "json", "sortby": "-area_m2", "limit": 5}
    ).json()
    areas = [f["properties"]["area_m2"] for f in s["features"]]
    assert areas == sorted(areas, reverse=True)
    e = client.get(
        "/collections/event/items", params={"f": "json", "datetime": "2000-01-01T00:00:00Z/.."}
    ).json()
    assert e["numberMatched"] == 1
    none = client.get(
        "/collections/event/items", params={"f": "json", "datetime": "../2000-01-01T00:00:00Z"}
    ).json()
    assert none["numberMatched"] == 0


def test_bad_input_gets_4xx_not_500(client: Any) -> None:
    cases = [
        ("/collections/building/items/999999999", {}),
        ("/collections/building/items/not-a-number", {}),
        ("/collections/no_such_layer/items", {}),
        ("/collections/building/items", {"bbox": "1,2,3"}),
        ("/collections/building/items", {"bbox": "200,0,210,10"}),
        ("/collections/building/items", {"limit": "-1"}),
        ("/collections/building/items", {"floors": "six"}),
        ("/collections/building/items", {"sortby": "nonexistent"}),
        ("/collections/building/items", {"datetime": "yesterday"}),
    ]
    for path, params in cases:
        r = client.get(path, params={"f": "json", **params})
        assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text[:200])


def test_health_reports_database_and_migrations(client: Any) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "up", "pending_migrations": []}


