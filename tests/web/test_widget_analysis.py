"""The staff-console widget's analysis panel (分析), in Chromium.

One browser session (tests/web/analysis.mjs) opens ``/widget/`` with no credential,
signs in as the district administrator with the widget's own form, opens the panel and
runs, through the form built from the process descriptions: ``grid-statistics`` on a
community chosen from the form's list and on a polygon drawn on the map, ``locate`` on a
point picked on the map, and ``locate`` on a typed point outside the city. What the
panel showed is checked here against the API answering the same inputs. Screenshots:
``var/test-artifacts/widget-analysis/``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer, Runner, WebCity

USER = "admin"


@pytest.fixture(scope="module")
def session(run_script: Runner) -> dict[str, Any]:
    return run_script("analysis", timeout=300, user=USER)


def _api(live_server: LiveServer, web_city: WebCity, user: str = USER) -> httpx.Client:
    return httpx.Client(base_url=live_server.url, timeout=60, headers={
        "Authorization": f"Bearer {web_city.users[user]['token']}"})


def _run(client: httpx.Client, process: str, inputs: dict[str, Any]) -> httpx.Response:
    return client.post(f"/processes/{process}/execution", json={"inputs": inputs})


def _rows(state: dict[str, Any]) -> dict[str, str]:
    return {r["key"]: r["value"] for r in state["summary"]}


def test_the_panel_lists_the_servers_processes_in_the_widgets_language(
        session: dict[str, Any], live_server: LiveServer, web_city: WebCity) -> None:
    with _api(live_server, web_city) as api:
        for lang, seen in (("zh", session["listed"]), ("en", session["english"]["processes"])):
            listed = api.get("/processes", params={"f": "json", "lang": lang}).json()["processes"]
            assert seen == [{"id": p["id"], "title": p["title"]} for p in listed], (lang, seen)
    assert {"locate", "grid-statistics"} <= {p["id"] for p in session["listed"]}
    assert session["button"] == "分析" and session["english"]["button"] == "Analysis"
    assert session["listed"] != session["english"]["processes"]


def test_the_form_is_built_from_the_input_schemas(session: dict[str, Any],
                                                 live_server: LiveServer,
                                                 web_city: WebCity) -> None:
    """grid-statistics: the area (unit or polygon), the depth (an enum: a select) and the
    date; the units offered are the communities the user may see, by name."""
    assert [(f["input"], f["kind"]) for f in session["form"]] == [
        ("area", "area"), ("depth", "enum"), ("as_of", "date")], session["form"]
    with _api(live_server, web_city) as api:
        seen = api.get("/collections/community/items",
                       params={"f": "json", "limit": 1000}).json()["features"]
    assert {(u["id"], u["name"]) for u in session["unit_options"]} == {
        (f["id"], f["properties"]["name"]) for f in seen}
    located = {f["input"]: f["kind"] for f in session["located"]["fields"]}
    assert located == {"point": "point", "tolerance_m": "number"}, located


def test_grid_statistics_of_a_chosen_community_runs_as_a_job_and_draws_its_units(
        session: dict[str, Any], live_server: LiveServer, web_city: WebCity) -> None:
    run = session["by_unit"]
    community = web_city.facts["grid"]["community_id"]
    # progress: submitted, then done, with the bar and the percentage on the way
    progress = run["progress"]
    assert progress[0]["status"] == "accepted" and progress[0]["bar"], progress
    assert progress[-1]["status"] == "successful" and progress[-1]["progress"] == 100, progress
    assert all(p["text"].endswith("%") for p in progress), progress
    with _api(live_server, web_city) as api:
        expected = _run(api, "grid-statistics", {"level": "community", "unit_id": community,
                                                 "depth": "grid"}).json()
        tree = expected.get("statistics", expected)
        job = api.get(f"/jobs/{run['job']['id']}", params={"f": "json"}).json()
        units = api.get(f"/jobs/{run['job']['id']}/results/units/items",
                        params={"limit": 1000}).json()["features"]
        title = api.get("/processes/grid-statistics",
                        params={"f": "json", "lang": "zh"}).json()["outputs"]["units"]["title"]
    rows = _rows(run)
    assert rows["name"] == tree["name"] and rows["level"] == "community", rows
    assert rows["households"] == str(tree["households"]) != "0", rows
    assert rows["residents"] == str(tree["residents"]), rows
    assert job["processID"] == "grid-statistics" and job["status"] == "successful", job
    # the units layer: on the map, drawn, with its legend
    [legend] = run["legend"]
    assert legend["output"] == "units" and legend["text"].startswith(title), legend
    assert f"{len(units)} 个要素" in legend["text"], legend
    drawn = run["rendered"]
    assert drawn["count"] > 0 and drawn["layers"], drawn
    assert set(drawn["units"]) <= {f["properties"]["unit_id"] for f in units}, drawn
    assert community in drawn["units"] and "grid" in drawn["levels"], drawn
    assert any(s.startswith("onemap-analysis-") and s != "onemap-analysis-input"
               for s in drawn["sources"]), drawn


def test_the_job_and_its_layer_are_the_owners_alone(session: dict[str, Any],
                                                    live_server: LiveServer,
                                                    web_city: WebCity) -> None:
    job = session["by_unit"]["job"]["id"]
    with _api(live_server, web_city, "other_worker") as other:
        assert other.get(f"/jobs/{job}", params={"f": "json"}).status_code == 404
        assert other.get(f"/jobs/{job}/results/units/style").status_code == 404


def test_grid_statistics_of_a_polygon_drawn_on_the_map(session: dict[str, Any],
                                                      live_server: LiveServer,
                                                      web_city: WebCity) -> None:
    """Three clicks and a double-click: a four-vertex polygon, sent closed in CRS84; the
    figures are the API's for that polygon; clearing the results takes the layer off."""
    run = session["by_polygon"]
    assert run["vertices"] == 4, run["vertices"]
    sent = run["inputs"]
    ring = sent["polygon"]["coordinates"][0]
    assert sent["crs"] == "CRS84" and len(ring) == 5 and ring[0] == ring[-1], sent
    lon, lat = web_city.facts["grid"]["point"]
    assert min(p[0] for p in ring) < lon < max(p[0] for p in ring), ring
    assert min(p[1] for p in ring) < lat < max(p[1] for p in ring), ring
    with _api(live_server, web_city) as api:
        expected = _run(api, "grid-statistics", sent).json()
    tree = expected.get("statistics", expected)
    rows = _rows(run)
    assert rows["level"] == "area" and rows["households"] == str(tree["households"]), rows
    assert run["rendered"]["count"] > 0 and "area" in run["rendered"]["levels"], run["rendered"]
    cleared = run["after_clear"]
    assert cleared["layers"] == [] and cleared["count"] == 0, cleared
    assert cleared["sources"] == ["onemap-analysis-input"], cleared


def test_cancel_dismisses_the_running_job(session: dict[str, Any], live_server: LiveServer,
                                         web_city: WebCity) -> None:
    """While the job runs (its status held at running in the page), 取消 sends DELETE:
    the panel shows it cancelled, draws nothing, and the server no longer has the job."""
    cancelled = session["cancelled"]
    job = cancelled["job"]
    assert job["status"] == "dismissed", job
    assert [p["status"] for p in cancelled["progress"]][-2:] == ["running", "dismissed"], (
        cancelled["progress"])
    assert "统计中" in cancelled["progress"][-2]["text"], cancelled["progress"]
    assert "已取消" in cancelled["progress"][-1]["text"], cancelled["progress"]
    assert not cancelled["cancel_visible"] and cancelled["resultLayers"] == [], cancelled
    assert cancelled["rendered"]["layers"] == [], cancelled["rendered"]
    with _api(live_server, web_city) as api:
        status = api.get(f"/jobs/{job['id']}", params={"f": "json"})
    assert status.status_code != 200 or status.json()["status"] == "dismissed", status.text


def test_locate_a_point_picked_on_the_map(session: dict[str, Any], live_server: LiveServer,
                                          web_city: WebCity) -> None:
    run = session["located"]
    grid = web_city.facts["grid"]
    x, y = float(run["picked"]["x"]), float(run["picked"]["y"])
    assert x == pytest.approx(grid["point"][0], abs=2e-4), run["picked"]
    assert y == pytest.approx(grid["point"][1], abs=2e-4), run["picked"]
    assert not run["popup_opened"]  # the click was the form's, not a record's
    with _api(live_server, web_city) as api:
        expected = _run(api, "locate", {"x": x, "y": y, "crs": "CRS84"}).json()
    location = expected.get("location", expected)
    rows = _rows(run)
    assert rows["grid"] == location["grid"]["name"] == grid["name"], rows
    assert rows["community"] == location["community"]["name"], rows
    assert rows["street_office"] == location["street_office"]["name"], rows
    assert run["progress"][-1]["status"] == "successful", run["progress"]
    assert run["after_run"]["layers"] == [], run["after_run"]  # locate draws no layer


def test_a_refused_input_shows_the_servers_message_next_to_the_form(
        session: dict[str, Any], live_server: LiveServer, web_city: WebCity) -> None:
    refused = session["refused"]
    with _api(live_server, web_city) as api:
        answer = _run(api, "locate", {"x": 1, "y": 2, "crs": "CRS84"})
    assert answer.status_code == 400
    message = answer.json()["description"]
    assert "x/y" in message
    assert message in refused["error"] and "400" in refused["error"], refused["error"]
    fields = {f["input"]: f for f in refused["fields"]}
    assert fields["point"]["invalid"] and message in fields["point"]["text"], fields
    assert not fields["tolerance_m"]["invalid"], fields
    assert refused["job"] is None, refused["job"]


def test_screenshots_saved(session: dict[str, Any]) -> None:
    from tests.web.conftest import ARTIFACTS

    for name in ("grid-statistics", "grid-statistics-polygon", "locate", "refused"):
        assert (ARTIFACTS / "widget-analysis" / f"{name}.png").stat().st_size > 10_000
