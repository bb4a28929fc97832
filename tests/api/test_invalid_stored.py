"""Invalid geometries already in the database never cause a 500."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

AROUND = "POLYGON((116.40 39.88, 116.54 39.88, 116.54 39.98, 116.40 39.98, 116.40 39.88))"


@pytest.fixture
def client(staff_client: Any, tiny_city_db: str) -> Any:
    """The tiny city with a bow-tie footprint and a spike, loaded as the owner
    (an old import), bypassing the API's validation."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO onemap.building (code, name, geom) VALUES "
            "('BAD-1', 'bow tie', ST_Multi(ST_GeomFromText("
            "'POLYGON((116.465 39.920, 116.467 39.922, 116.467 39.920, 116.465 39.922, "
            "116.465 39.920))', 4490))), "
            "('BAD-2', 'spike', ST_Multi(ST_GeomFromText("
            "'POLYGON((116.468 39.920, 116.469 39.920, 116.469 39.921, 116.4685 39.921, "
            "116.4685 39.925, 116.4685 39.921, 116.468 39.921, 116.468 39.920))', 4490)))"
        )
        assert conn.execute(
            "SELECT count(*) FROM onemap.building WHERE NOT ST_IsValid(geom)"
        ).fetchone()[0] == 2
    return staff_client


@pytest.mark.parametrize("params", [
    {},
    {"bbox": "116.464,39.919,116.470,39.926"},
    {"filter": f"S_INTERSECTS(geom, {AROUND})"},
    {"filter": f"S_WITHIN(geom, {AROUND})"},
    {"filter": "S_CONTAINS(geom, POINT(116.466 39.921))"},
    {"filter": f"S_OVERLAPS(geom, {AROUND})"},
    {"filter": "S_TOUCHES(geom, POINT(116.465 39.920))"},
    {"crs": "http://www.opengis.net/def/crs/EPSG/0/4548"},
    {"f": "html"},
])
def test_reading_around_invalid_geometries(client: Any, params: dict[str, str]) -> None:
    r = client.get("/collections/building/items", params={"f": "json", "limit": 100, **params})
    assert r.status_code == 200, r.text
    if params.get("f") != "html" and "bbox" in params:
        names = {f["properties"]["name"] for f in r.json()["features"]}
        assert {"bow tie", "spike"} <= names


def test_one_invalid_feature_by_id(client: Any) -> None:
    page = client.get("/collections/building/items", params={"f": "json", "code": "BAD-1"})
    fid = page.json()["features"][0]["id"]
    r = client.get(f"/collections/building/items/{fid}", params={"f": "json"})
    assert r.status_code == 200
    assert r.json()["geometry"]["type"] == "MultiPolygon"
