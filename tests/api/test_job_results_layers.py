"""A job's feature outputs as map layers (issue 14, "Results on the map"):

- the features of a feature output are rows of ``onemap.job_feature``, stored with
  the job's completion; grid-statistics' ``units`` is the first;
- ``/jobs/{id}/results/{output}/items`` pages them (``limit``, ``offset``, ``next``),
  filters by ``bbox`` and answers in the ``crs`` asked for, with ``Content-Crs``;
- ``…/tiles/WebMercatorQuad/{z}/{y}/{x}`` draws them as a vector tile, the TileJSON
  names it, ``…/style`` is a MapLibre style with a legend entry;
- only who may see the job reads them (anyone else: the 404 of a missing job);
- purging the job removes them; a result above ``ONEMAP_MAX_RESULT_FEATURES`` fails
  its job with a message naming the output and the bound.
"""

from __future__ import annotations

import time
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from starlette.testclient import TestClient

from spatial import jobs
from tiles import tms

ASYNC = {"Prefer": "respond-async"}


def run_units(client: TestClient, db: str) -> str:
    """grid-statistics of the tiny city's street office, async: the job's id once it ended."""
    with psycopg.connect(db) as conn:
        (office,) = conn.execute("SELECT min(id) FROM onemap.street_office").fetchone()  # type: ignore[misc]
    r = client.post("/processes/grid-statistics/execution",
                    json={"inputs": {"level": "street_office", "unit_id": office}},
                    headers=ASYNC)
    assert r.status_code == 201, r.text
    job = str(r.headers["location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while client.get(f"/jobs/{job}", params={"f": "json"}).json()["status"] not in (
            "successful", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def feature_rows(db: str, job: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM onemap.job_feature WHERE job_id = %s",
                           (job,)).fetchone()
    assert row is not None
    return int(row[0])


def test_units_are_a_layer_paged_projected_tiled_and_styled(
        staff_client: TestClient, tiny_city_db: str) -> None:
    job = run_units(staff_client, tiny_city_db)
    status = staff_client.get(f"/jobs/{job}", params={"f": "json"}).json()
    assert status["status"] == "successful", status
    stored = staff_client.get(f"/jobs/{job}/results", params={"f": "json"}).json()["units"]
    total = len(stored["features"])
    assert total > 3 and feature_rows(tiny_city_db, job) == total

    # every feature, page by page, following the next links
    base = f"/jobs/{job}/results/units/items"
    r = staff_client.get(base, params={"limit": 3})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    first = r.json()
    assert (first["numberMatched"], first["numberReturned"]) == (total, 3)
    seen = [f["id"] for f in first["features"]]
    page = first
    while any(link["rel"] == "next" for link in page["links"]):
        href = next(link["href"] for link in page["links"] if link["rel"] == "next")
        page = staff_client.get(href[href.index("/jobs/"):]).json()
        seen += [f["id"] for f in page["features"]]
    assert seen == [f["id"] for f in stored["features"]]  # the stored order, each once
    root = first["features"][0]
    assert root["properties"] == stored["features"][0]["properties"]
    assert root["properties"]["households"] == 96
    assert root["geometry"]["type"] in ("Polygon", "MultiPolygon")

    # crs=EPSG:4548 (CGCS2000 Gauss-Krüger CM 117E, northing first): metres
    r = staff_client.get(base, params={"limit": 1, "crs": "EPSG:4548"})
    assert r.status_code == 200, r.text
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4548>"
    ring = r.json()["features"][0]["geometry"]["coordinates"]
    while isinstance(ring[0][0], list):
        ring = ring[0]
    northing, easting = ring[0]
    assert 4_300_000 < northing < 4_500_000 and 400_000 < easting < 600_000
    assert staff_client.get(base, params={"crs": "mars"}).status_code == 400
    assert staff_client.get(base, params={"limt": "1"}).status_code == 400

    # bbox: far away, nothing; around the units, all
    away = staff_client.get(base, params={"bbox": "100,20,100.1,20.1"}).json()
    assert (away["numberMatched"], away["features"]) == (0, [])
    xs, ys = zip(*[tuple(c) for c in _points(root["geometry"]["coordinates"])], strict=True)
    near = staff_client.get(base, params={"bbox": f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}"})
    assert near.json()["numberMatched"] == total

    # a vector tile holding the units, named after the output
    lon, lat = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    z = 14
    y, x = tms.lonlat_to_tile("WebMercatorQuad", lon, lat, z)
    r = staff_client.get(f"/jobs/{job}/results/units/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    decoded = mapbox_vector_tile.decode(r.content)
    names = {f["properties"]["name"] for f in decoded["units"]["features"]}
    assert root["properties"]["name"] in names
    assert {f["properties"]["level"] for f in decoded["units"]["features"]} >= {"street_office"}
    empty = staff_client.get(f"/jobs/{job}/results/units/tiles/WebMercatorQuad/{z}/0/0")
    assert empty.status_code == 204
    assert staff_client.get(
        f"/jobs/{job}/results/units/tiles/WebMercatorQuad/{z}/{y}/{2**z}").status_code == 400

    tilejson = staff_client.get(f"/jobs/{job}/results/units/tiles/WebMercatorQuad").json()
    assert tilejson["vector_layers"] == [{"id": "units", "fields": {}}]
    assert tilejson["tiles"][0].endswith(
        f"/jobs/{job}/results/units/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}")

    # a MapLibre style by geometry kind, with its legend entry
    style = staff_client.get(f"/jobs/{job}/results/units/style").json()
    assert style["version"] == 8
    assert [layer["type"] for layer in style["layers"]] == ["fill", "line"]
    assert style["sources"]["units"]["url"].endswith(
        f"/jobs/{job}/results/units/tiles/WebMercatorQuad")
    [legend] = style["metadata"]["legend"]
    assert legend["kind"] == "fill" and legend["title"]["zh"] == "各单元范围与统计"
    assert legend["property"] == "residents" and legend["range"][1] == 80

    # the summary is no feature output
    assert staff_client.get(f"/jobs/{job}/results/statistics/items").status_code == 404


def _points(coordinates: Any) -> list[list[float]]:
    if isinstance(coordinates[0], (int, float)):
        return [coordinates]
    return [p for part in coordinates for p in _points(part)]


def test_only_who_may_see_the_job_reads_its_layers(
        make_client: Any, staff_client: TestClient, tiny_city_db: str) -> None:
    analyst = make_client(["analyst"])
    job = run_units(analyst, tiny_city_db)
    assert analyst.get(f"/jobs/{job}/results/units/items").status_code == 200
    missing = analyst.get("/jobs/6c1d7a36-5d5f-4a43-9a0c-1f0f2b0f8e11/results/units/items")
    for stranger in (make_client(["analyst"]), make_client([])):
        for path in ("items", "style", "tiles/WebMercatorQuad", "tiles/WebMercatorQuad/0/0/0"):
            r = stranger.get(f"/jobs/{job}/results/units/{path}")
            assert r.status_code == 404, (path, r.status_code)
            assert r.json()["code"] == missing.json()["code"]  # no more than "no such job"
    # a district administrator sees every job, and so its layers
    assert staff_client.get(f"/jobs/{job}/results/units/items").status_code == 200


def test_purging_the_job_removes_its_features(staff_client: TestClient,
                                              tiny_city_db: str) -> None:
    job = run_units(staff_client, tiny_city_db)
    assert feature_rows(tiny_city_db, job) > 0
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute("UPDATE onemap.job SET expires_at = now() - interval '1 second' "
                     "WHERE id = %s", (job,))
    assert staff_client.get(f"/jobs/{job}/results/units/items").status_code == 404
    assert jobs.JobWorker({}, conninfo=tiny_city_db).maintain()[2] >= 1
    assert feature_rows(tiny_city_db, job) == 0


def test_dismissing_the_job_removes_its_features(staff_client: TestClient,
                                                 tiny_city_db: str) -> None:
    job = run_units(staff_client, tiny_city_db)
    assert staff_client.delete(f"/jobs/{job}").status_code == 200
    assert feature_rows(tiny_city_db, job) == 0


def test_a_result_above_the_bound_fails_its_job_naming_output_and_bound(
        staff_client: TestClient, tiny_city_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_MAX_RESULT_FEATURES", "3")
    job = run_units(staff_client, tiny_city_db)
    status = staff_client.get(f"/jobs/{job}", params={"f": "json"}).json()
    assert status["status"] == "failed"
    message = status["message"]
    assert "'units'" in message and "3" in message and "ONEMAP_MAX_RESULT_FEATURES" in message
    assert "超过结果上限" in message
    assert feature_rows(tiny_city_db, job) == 0
    assert staff_client.get(f"/jobs/{job}/results/units/items").status_code == 404

    monkeypatch.setenv("ONEMAP_MAX_RESULT_FEATURES", "200000")
    monkeypatch.setenv("ONEMAP_MAX_RESULT_BYTES", "1000")
    job = run_units(staff_client, tiny_city_db)
    message = staff_client.get(f"/jobs/{job}", params={"f": "json"}).json()["message"]
    assert "ONEMAP_MAX_RESULT_BYTES" in message and "1000" in message
