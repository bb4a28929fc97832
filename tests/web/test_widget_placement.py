"""Refuse-building placement (refuse-placement) from the widget's analysis panel, in Chromium.

One browser session (tests/web/placement.mjs) opens the refuse map with the district
administrator's API key, opens 分析, chooses refuse-placement, a community from the form's
list, p-median adding one site, and adds the candidate sites by clicking the map
(candidate_points, form hint kind ``points``): two street corners of the community, found
here from the API (ends of three or more ``road`` features inside the community). The job
runs; its sites, walks, legend and summary are checked against the API: the new site is
one of the two corners clicked, to the metre. Screenshots:
``var/test-artifacts/widget-placement/``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
import pytest
from shapely.geometry import Point, shape

from tests.web.conftest import LiveServer, Runner, WebCity

USER = "admin"
#: Two clicks closer than this could land on one pixel of a zoomed-out map.
MIN_APART_M = 60.0


def _api(live_server: LiveServer, web_city: WebCity) -> httpx.Client:
    return httpx.Client(base_url=live_server.url, timeout=60, headers={
        "Authorization": f"Bearer {web_city.users[USER]['token']}"})


def _metres(a: list[float], b: list[float]) -> float:
    """Distance in metres between two lon/lat points (equirectangular: a city's scale)."""
    kx = 111_320 * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * 110_574)


def _ends(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    lines = (geometry["coordinates"] if geometry["type"] == "MultiLineString"
             else [geometry["coordinates"]])
    return [(round(c[0], 7), round(c[1], 7)) for line in lines for c in (line[0], line[-1])]


def _js_number(v: float) -> str:
    """A number as the panel's summary shows it (``String(Math.round(v * 100) / 100)``)."""
    r = math.floor(v * 100 + 0.5) / 100
    return str(int(r)) if r == int(r) else repr(r)


@pytest.fixture(scope="module")
def facts(live_server: LiveServer, web_city: WebCity) -> dict[str, Any]:
    """The community with the most households' grid, and two of its street corners."""
    community = web_city.facts["grid"]["community_id"]
    with _api(live_server, web_city) as api:
        unit = api.get(f"/collections/community/items/{community}", params={"f": "json"})
        assert unit.status_code == 200, unit.text
        area = shape(unit.json()["geometry"])
        x0, y0, x1, y1 = area.bounds
        roads = api.get("/collections/road/items", params={
            "f": "json", "limit": 5000, "bbox": f"{x0},{y0},{x1},{y1}"})
        assert roads.status_code == 200, roads.text
        features = roads.json()["features"]
    assert len(features) < 5000, "more roads than one page"
    degree = Counter(end for f in features if f["geometry"] for end in _ends(f["geometry"]))
    centre = area.representative_point()
    corners = sorted(([x, y] for (x, y), n in degree.items()
                      if n >= 3 and area.buffer(-1e-5).contains(Point(x, y))),
                     key=lambda c: (Point(c).distance(centre), c))
    assert len(corners) >= 2, f"community {community} has fewer than two street corners"
    first = corners[0]
    second = next((c for c in corners[1:] if _metres(first, c) >= MIN_APART_M), None)
    assert second is not None, corners
    return {"community": {"id": community, "center": [centre.x, centre.y]},
            "corners": [first, second]}


@pytest.fixture(scope="module")
def session(run_script: Runner, facts: dict[str, Any]) -> dict[str, Any]:
    return run_script("placement", timeout=300, user=USER, **facts)


def _rows(state: dict[str, Any]) -> dict[str, str]:
    return {r["key"]: r["value"] for r in state["summary"]}


def test_the_candidates_are_a_points_field(session: dict[str, Any]) -> None:
    """candidate_points and candidate_crs make one field of kind points; before any click
    the input is left out (the process's default: every street corner)."""
    kinds = {f["input"]: f["kind"] for f in session["form"]}
    assert kinds["candidate_points"] == "points" and "candidate_crs" not in kinds, kinds
    assert kinds["area"] == "area" and kinds["model"] == "enum", kinds
    empty = session["empty"]
    assert empty["count"] == 0 and empty["markers"] == [] and empty["adding"] == "false", empty
    assert empty["button"] == "在地图上添加候选点", empty
    assert "candidate_points" not in empty["inputs"] and "candidate_crs" not in empty["inputs"]
    assert session["adding_mode"]["adding"] == "true", session["adding_mode"]
    assert session["cleared"]["count"] == 0 and session["cleared"]["markers"] == []


def test_each_click_adds_a_numbered_point_and_one_can_be_removed(
        session: dict[str, Any], facts: dict[str, Any]) -> None:
    three = session["three"]
    assert three["count"] == 3 and three["markers"] == ["1", "2", "3"], three
    assert all(p["remove"] for p in three["listed"]), three["listed"]
    picked = session["picked"]
    assert picked["count"] == 2 and picked["markers"] == ["1", "2"], picked
    assert picked["adding"] == "false" and not picked["popup"], picked
    for point, corner in zip(picked["listed"], facts["corners"], strict=True):
        assert _metres([point["lon"], point["lat"]], corner) < 1.0, (point, corner)


def test_the_request_carries_the_two_points_as_a_multipoint(
        session: dict[str, Any], facts: dict[str, Any]) -> None:
    [request] = session["sent"]
    assert request["prefer"] == "respond-async", request
    inputs = request["body"]["inputs"]
    assert inputs["level"] == "community" and inputs["unit_id"] == facts["community"]["id"]
    assert (inputs["model"], inputs["mode"], inputs["k"]) == ("p-median", "add", 1), inputs
    assert inputs["candidate_crs"] == "CRS84", inputs
    points = inputs["candidate_points"]
    assert points["type"] == "MultiPoint" and len(points["coordinates"]) == 2, points
    for sent, corner in zip(points["coordinates"], facts["corners"], strict=True):
        assert _metres(sent, corner) < 1.0, (sent, corner)
    [answer] = session["accepted"]
    assert answer["status"] == 201 and answer["body"]["jobID"], answer


def test_the_job_finishes_and_opens_one_of_the_clicked_corners(
        session: dict[str, Any], facts: dict[str, Any], live_server: LiveServer,
        web_city: WebCity) -> None:
    result = session["result"]
    job = result["job"]
    assert job["log"][0]["status"] == "accepted", job["log"]
    assert job["log"][-1]["status"] == "successful" and job["progress"] == 100, job["log"]
    assert result["stage"].startswith("已完成") and result["stage"].endswith("100%"), result
    with _api(live_server, web_city) as api:
        status = api.get(f"/jobs/{job['id']}", params={"f": "json"}).json()
        sites = api.get(f"/jobs/{job['id']}/results/sites/items",
                        params={"limit": 1000}).json()["features"]
    assert status["processID"] == "refuse-placement" and status["status"] == "successful"
    [new] = [f for f in sites if f["properties"]["status"] == "new"]
    point = new["geometry"]["coordinates"]
    near = [c for c in facts["corners"] if _metres(point, c) < 1.0]
    assert len(near) == 1, (point, facts["corners"])
    assert new["properties"]["site"] in {"p1", "p2"} and new["properties"]["households"] > 0, new
    # the panel holds the same layout
    assert sorted((s["site"], s["status"]) for s in result["document"]["sites"]) == sorted(
        (f["properties"]["site"], f["properties"]["status"]) for f in sites)


def test_sites_and_walks_are_drawn_with_their_legend(session: dict[str, Any],
                                                     live_server: LiveServer,
                                                     web_city: WebCity) -> None:
    result = session["result"]
    job = result["job"]["id"]
    with _api(live_server, web_city) as api:
        sites = api.get(f"/jobs/{job}/results/sites/items",
                        params={"limit": 1000}).json()["features"]
        walks = api.get(f"/jobs/{job}/results/assignments/items",
                        params={"limit": 5000}).json()["features"]
    assert walks and result["document"]["assignments"] == len(walks)
    drawn = result["rendered"]
    new_site = next(f["properties"]["site"] for f in sites if f["properties"]["status"] == "new")
    assert {(f["site"], f["status"]) for f in drawn if f["output"] == "sites"} >= {
        (new_site, "new")}, drawn
    assert any(f["output"] == "assignments" for f in drawn), drawn
    by_status = Counter(f["properties"]["status"] for f in sites)
    legend = {e["value"]: e for e in result["legend"]
              if e["output"] == "sites" and e["property"] == "status"}
    assert {k: e["count"] for k, e in legend.items()} == dict(by_status), legend
    assert "新建" in legend["new"]["text"], legend
    reach = Counter(str(f["properties"]["within_reach"]).lower() for f in walks)
    walk_legend = {e["value"]: e["count"] for e in result["legend"]
                   if e["output"] == "assignments" and e["property"] == "within_reach"}
    assert walk_legend == {k: n for k, n in reach.items() if n}, walk_legend


def test_the_summary_shows_the_objective_and_the_gap(session: dict[str, Any],
                                                     live_server: LiveServer,
                                                     web_city: WebCity) -> None:
    result = session["result"]
    with _api(live_server, web_city) as api:
        doc = api.get(f"/jobs/{result['job']['id']}/results", params={"f": "json"}).json()
    summary = doc["summary"].get("value", doc["summary"])
    assert summary["model"] == "p-median" and summary["mode"] == "add", summary
    assert summary["objective"] is not None and summary["objective"] > 0, summary
    rows = _rows(result)
    labels = {r["key"]: r["label"] for r in result["summary"]}
    assert rows["objective"] == _js_number(summary["objective"]), (rows, summary)
    gap = summary["gap"]
    assert rows["gap"] == ("—" if gap is None else _js_number(gap)), (rows, summary)
    assert labels["objective"] == "目标值" and labels["gap"] == "最优间隙", labels
    assert rows["sites_opened"].startswith("1 "), rows


def test_screenshots_saved(session: dict[str, Any]) -> None:
    from tests.web.conftest import ARTIFACTS

    for name in ("candidates", "placement"):
        assert (ARTIFACTS / "widget-placement" / f"{name}.png").stat().st_size > 10_000
