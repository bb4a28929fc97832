"""OGC API Features Part 2: output in a requested CRS (transformed in PostGIS, axes in
the CRS's declared order), bbox in another CRS, and refusal of an unsupported one."""

from __future__ import annotations

from typing import Any

import pytest

from spatial.crs import transform

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture
def client(staff_client: Any) -> Any:
    """These tests read every layer: act as a district administrator."""
    return staff_client


def _first_point(client: Any, crs: str | None) -> tuple[list[float], Any]:
    params = {"f": "json", "limit": 1, "sortby": "code"}
    if crs:
        params["crs"] = crs
    r = client.get("/collections/lamp/items", params=params)
    assert r.status_code == 200, r.text[:300]
    return r.json()["features"][0]["geometry"]["coordinates"], r.headers


def test_default_is_crs84_lon_lat(client: Any) -> None:
    (lon, lat), headers = _first_point(client, None)
    assert 116 < lon < 117 and 39 < lat < 40
    assert CRS84 in headers.get("content-crs", "")


@pytest.mark.parametrize("epsg", [3857, 4548, 4527, 4509, 4498])
def test_projected_output_matches_pyproj(client: Any, epsg: int) -> None:
    (lon, lat), _ = _first_point(client, None)
    coords, headers = _first_point(client, f"{EPSG}{epsg}")
    x, y = transform([lon], [lat], 4490, epsg)
    if epsg == 3857:
        got_x, got_y = coords
    else:  # CGCS2000 Gauss-Krüger CRSs declare northing first
        got_y, got_x = coords
    assert got_x == pytest.approx(float(x[0]), abs=0.05)
    assert got_y == pytest.approx(float(y[0]), abs=0.05)
    assert f"{EPSG}{epsg}" in headers["content-crs"]


@pytest.mark.parametrize("epsg", [4326, 4490])
def test_geographic_epsg_output_is_latitude_first(client: Any, epsg: int) -> None:
    (lon, lat), _ = _first_point(client, None)
    coords, _ = _first_point(client, f"{EPSG}{epsg}")
    assert coords == pytest.approx([lat, lon], abs=1e-6)


def test_single_item_in_another_crs(client: Any) -> None:
    page = client.get("/collections/key_unit/items", params={"f": "json"}).json()
    fid = page["features"][0]["id"]
    one = client.get(f"/collections/key_unit/items/{fid}",
                     params={"f": "json", "crs": f"{EPSG}3857"}).json()
    x, _y = one["geometry"]["coordinates"]
    assert 12.9e6 < x < 13.0e6


def test_bbox_in_web_mercator_selects_what_the_lon_lat_bbox_does(client: Any) -> None:
    lonlat = (116.46, 39.915, 116.4695, 39.93)
    xs, ys = transform([lonlat[0], lonlat[2]], [lonlat[1], lonlat[3]], 4490, 3857)
    a = client.get("/collections/building/items",
                   params={"f": "json", "bbox": ",".join(map(str, lonlat))}).json()
    b = client.get("/collections/building/items", params={
        "f": "json", "bbox": f"{xs[0]},{ys[0]},{xs[1]},{ys[1]}", "bbox-crs": f"{EPSG}3857"}).json()
    assert {f["id"] for f in a["features"]} == {f["id"] for f in b["features"]}
    assert a["numberMatched"] == 4


def test_unsupported_crs_is_a_400(client: Any) -> None:
    r = client.get("/collections/lamp/items", params={"f": "json", "crs": f"{EPSG}2000"})
    assert r.status_code == 400


def test_storage_crs_is_advertised(client: Any) -> None:
    c = client.get("/collections/lamp", params={"f": "json"}).json()
    assert c["storageCrs"] == f"{EPSG}4490"
    assert f"{EPSG}4548" in c["crs"]
