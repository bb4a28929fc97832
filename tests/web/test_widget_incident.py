"""The incident analysis (pipeline-incident) from the widget's analysis panel, in Chromium.

One browser session (tests/web/incident.mjs) opens the pipelines map with the district
administrator's API key, opens 分析, chooses pipeline-incident, picks a water main by
clicking it on the map, runs the plan, clicks the first valve it closes as stuck and runs
again; then opens a lifeline sensor's popup and runs the analysis from its 事故分析 button.
The main is found here from the API: the widest water pipe (one of some length, not a
valve's stub) whose plan closes the first ring of valves and, with the first of them
stuck, closes a second ring and takes the supply of more households. What the panel sent,
drew and showed is checked against the API answering the same inputs. Screenshots:
``var/test-artifacts/widget-incident/``.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise
from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer, Runner, WebCity

USER = "admin"
#: Half the side (degrees, about 0.8 m) of the box round the click point that no other
#: pipe may touch: the heat main runs some 1.5 m beside the water main, within the
#: widget's few pixels of tolerance at zoom 18, so the click must pick the nearer one.
CLEAR_DEG = 8e-6
#: A main to click on, not the few metres between two valves.
MIN_LENGTH_M = 20.0
#: The same round a sensor for its popup to open (a valve's icon is some 5 m across at zoom 17).
VALVE_DEG = 6e-5


def _api(live_server: LiveServer, web_city: WebCity) -> httpx.Client:
    return httpx.Client(base_url=live_server.url, timeout=60, headers={
        "Authorization": f"Bearer {web_city.users[USER]['token']}"})


def _plan(api: httpx.Client, inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's outputs by id (a results document answered synchronously)."""
    r = api.post("/processes/pipeline-incident/execution",
                 json={"inputs": inputs, "response": "document"})
    assert r.status_code == 200, (inputs, r.text)
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v)
            for k, v in r.json().items()}


def _length_m(geometry: dict[str, Any]) -> float:
    """A line's length in metres (equirectangular: plenty for a city's pipes)."""
    lines = (geometry["coordinates"] if geometry["type"] == "MultiLineString"
             else [geometry["coordinates"]])
    total = 0.0
    for line in lines:
        for a, b in pairwise(line):
            kx = 111_320 * math.cos(math.radians((a[1] + b[1]) / 2))
            total += math.hypot((b[0] - a[0]) * kx, (b[1] - a[1]) * 110_574)
    return total


def _midpoint(geometry: dict[str, Any]) -> list[float]:
    """The middle of a line's longest part (a point to click on it)."""
    lines = (geometry["coordinates"] if geometry["type"] == "MultiLineString"
             else [geometry["coordinates"]])
    a, b = max(((p, q) for line in lines for p, q in pairwise(line)),
               key=lambda pq: (pq[0][0] - pq[1][0]) ** 2 + (pq[0][1] - pq[1][1]) ** 2)
    return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]


def _near(api: httpx.Client, collection: str, point: list[float], half: float) -> set[int]:
    """Ids of the collection's features meeting a box round the point."""
    x, y = point[:2]
    near = api.get(f"/collections/{collection}/items", params={
        "f": "json", "limit": 50, "bbox": f"{x - half},{y - half},{x + half},{y + half}"})
    assert near.status_code == 200, near.text
    return {f["id"] for f in near.json()["features"]}


def _alone(api: httpx.Client, segment: int, point: list[float]) -> bool:
    """Whether no other pipe passes near the point (the click must be this pipe's)."""
    return _near(api, "pipe_segment", point, CLEAR_DEG) == {segment}


@pytest.fixture(scope="module")
def facts(live_server: LiveServer, web_city: WebCity) -> dict[str, Any]:
    """A water main whose plan falls back to a second ring, and a water sensor."""
    with _api(live_server, web_city) as api:
        pipes = api.get("/collections/pipe_segment/items",
                        params={"f": "json", "limit": 5000, "utility": "water"}).json()["features"]
        mains = sorted((f for f in pipes if f["properties"]["status"] != "abandoned"
                        and _length_m(f["geometry"]) >= MIN_LENGTH_M),
                       key=lambda f: (-(f["properties"]["diameter_mm"] or 0), f["id"]))
        chosen = None
        for pipe in mains[:80]:
            plain = _plan(api, {"segment": pipe["id"]})
            closing = [v["properties"]["valve_id"] for v in plain["valves"]["features"]
                       if v["properties"]["action"] == "close"]
            if not closing or plain["summary"]["rings"] != 0:
                continue
            stuck = _plan(api, {"segment": pipe["id"], "stuck_valves": [closing[0]]})
            summary = stuck["summary"]
            point = _midpoint(pipe["geometry"])
            if (summary["rings"] >= 1 and summary["valves_to_close"] >= 1
                    and summary["fallback"]["households"] >= 1
                    and _alone(api, pipe["id"], point)):
                chosen = {"id": pipe["id"], "point": point, "plain": plain, "first": closing[0],
                          "stuck": stuck}
                break
        assert chosen, "no water main of the S city falls back to a second ring for households"
        sensors = api.get("/collections/sensor/items",
                          params={"f": "json", "limit": 100, "utility": "water"}).json()["features"]
        # one a click reaches: a valve's icon, drawn above the sensors, covers one at its node
        sensors = [f for f in sorted(sensors, key=lambda f: f["id"])
                   if not _near(api, "valve", f["geometry"]["coordinates"], VALVE_DEG)]
        assert sensors, "the S city has no water sensor away from its valves"
        sensor = sensors[0]
    props = sensor["properties"]
    lon, lat = sensor["geometry"]["coordinates"][:2]
    expected = ({"segment": props["segment_id"]} if props.get("segment_id") is not None
                else {"x": lon, "y": lat, "utility": props["utility"]})
    return {"segment": chosen, "sensor": {"id": sensor["id"], "point": [lon, lat],
                                          "inputs": expected}}


@pytest.fixture(scope="module")
def session(run_script: Runner, facts: dict[str, Any]) -> dict[str, Any]:
    seg = facts["segment"]
    return run_script("incident", timeout=300, user=USER,
                      segment={"id": seg["id"], "point": seg["point"]},
                      sensor={"id": facts["sensor"]["id"], "point": facts["sensor"]["point"]})


def _rows(state: dict[str, Any]) -> dict[str, str]:
    return {r["key"]: r["value"] for r in state["summary"]}


def _legend(state: dict[str, Any], output: str) -> dict[str | None, dict[str, Any]]:
    return {e["value"]: e for e in state["legend"] if e["output"] == output and e["value"]}


def test_the_failed_pipe_is_picked_by_clicking_it(session: dict[str, Any],
                                                  facts: dict[str, Any]) -> None:
    """segment (an integer naming pipe_segment) is a feature field: the click near the
    pipe fills in its id, names it and outlines it; no popup opens; the run sends it."""
    kinds = {f["input"]: f["kind"] for f in session["form"]}
    assert kinds["segment"] == "feature" and kinds["stuck_valves"] == "id-set", kinds
    assert kinds["point"] == "point" and kinds["alarm"] == "number", kinds
    segment = facts["segment"]["id"]
    picked = session["picked"]
    assert picked["values"]["segment"] == str(segment), picked["values"]
    [label] = [p for p in picked["picked"] if p["input"] == "segment"]
    assert label["id"] == str(segment) and label["found"] == "true", label
    assert {"group": "segment", "id": str(segment)} in [
        {"group": o["group"], "id": o["id"]} for o in picked["outlined"]], picked["outlined"]
    assert not picked["popup"]
    assert session["sent"][0]["inputs"] == {"segment": segment}, session["sent"][0]


def test_the_plain_plan_is_the_apis(session: dict[str, Any], facts: dict[str, Any]) -> None:
    api = facts["segment"]["plain"]["valves"]["features"]
    seen = session["plain"]["document"]["valves"]
    assert [(v["valve_id"], v["action"]) for v in seen] == [
        (f["properties"]["valve_id"], f["properties"]["action"]) for f in api]
    assert session["first"]["valve_id"] == facts["segment"]["first"], session["first"]


def test_a_stuck_valve_is_picked_on_the_map_and_sent(session: dict[str, Any],
                                                     facts: dict[str, Any]) -> None:
    first = facts["segment"]["first"]
    assert session["stuck_picked"]["ids"] == str(first), session["stuck_picked"]["ids"]
    assert {"group": "stuck_valves", "id": str(first)} in [
        {"group": o["group"], "id": o["id"]} for o in session["stuck_picked"]["outlined"]]
    assert session["sent"][1]["inputs"] == {"segment": facts["segment"]["id"],
                                           "stuck_valves": [first]}, session["sent"][1]


def test_valves_to_close_and_stuck_valves_are_drawn_apart(session: dict[str, Any],
                                                          facts: dict[str, Any]) -> None:
    """Coloured by action (a data-driven colour), one legend entry each with the API's count;
    the ring the server colours by becomes the circles' size."""
    api = [f["properties"] for f in facts["segment"]["stuck"]["valves"]["features"]]
    drawn = [f for f in session["fallback"]["rendered"] if f["output"] == "valves"]
    by_action: dict[str, set[str]] = {}
    for f in drawn:
        by_action.setdefault(f["action"], set()).add(f["colour"])
    assert set(by_action) == {"close", "stuck"}, by_action
    assert not by_action["close"] & by_action["stuck"], by_action
    assert {(f["valve_id"], f["action"]) for f in drawn} <= {
        (v["valve_id"], v["action"]) for v in api}
    assert (facts["segment"]["first"], "stuck") in {(f["valve_id"], f["action"]) for f in drawn}
    legend = _legend(session["fallback"], "valves")
    counts = Counter(v["action"] for v in api)
    assert {k: e["count"] for k, e in legend.items()} == {"close": counts["close"],
                                                         "stuck": counts["stuck"]}, legend
    assert "关闭" in legend["close"]["text"] and "失效" in legend["stuck"]["text"], legend
    sizes = [e for e in session["fallback"]["legend"]
             if e["output"] == "valves" and e["property"] == "ring" and e["value"] is None]
    assert sizes and "ring" in sizes[0]["text"], session["fallback"]["legend"]


def test_pipes_lost_only_to_the_stuck_valve_are_drawn_apart(session: dict[str, Any],
                                                            facts: dict[str, Any]) -> None:
    """isolated and cut_off: fallback pipes dashed in a layer of their own, the others
    not; legend entries with the API's counts."""
    stuck = facts["segment"]["stuck"]
    drawn = [f for f in session["fallback"]["rendered"] if f["output"] in ("isolated", "cut_off")]
    assert drawn, session["fallback"]["rendered"]
    for f in drawn:
        assert f["dashed"] == bool(f["fallback"]) == f["layer"].endswith("-fallback"), f
    assert any(f["fallback"] for f in drawn) and any(not f["fallback"] for f in drawn), drawn
    flagged = 0
    for output in ("isolated", "cut_off"):
        api = Counter(str(f["properties"]["fallback"]).lower() for f in stuck[output]["features"])
        legend = _legend(session["fallback"], output)
        if not stuck[output]["features"]:
            assert not legend, legend  # an empty output: its one entry, no classes
            continue
        # one entry per class met (a class no pipe has is left out)
        assert {k: e["count"] for k, e in legend.items()} == {
            k: n for k, n in api.items() if n}, (output, legend)
        if api["true"]:
            assert "因阀门失效扩大（fallback）：是" in legend["true"]["text"], legend
        flagged += api["true"]
    assert flagged == stuck["summary"]["fallback"]["pipes"] >= 1


def test_the_summary_shows_the_rings_and_the_fallback(session: dict[str, Any],
                                                      facts: dict[str, Any]) -> None:
    summary = facts["segment"]["stuck"]["summary"]
    rows = _rows(session["fallback"])
    assert rows["rings"] == str(summary["rings"]) and int(rows["rings"]) >= 1, rows
    assert rows["valves_to_close"] == str(summary["valves_to_close"]), rows
    fallback = summary["fallback"]
    assert fallback["households"] >= 1, fallback
    for word, key in (("管段", "pipes"), ("户数", "households"), ("居民", "residents")):
        assert f"{word} {fallback[key]}" in rows["fallback"], rows["fallback"]
    assert rows["households"] == str(summary["households"]), rows
    assert rows["failed_segment"] == str(facts["segment"]["id"]), rows
    labels = {r["key"]: r["label"] for r in session["fallback"]["summary"]}
    assert labels["rings"].startswith("关阀圈数") and labels["fallback"] == "因阀门失效扩大", labels
    plain = _rows(session["plain"])
    assert plain["rings"] == "0" and plain["fallback"].startswith("管段 0"), plain


def test_a_sensors_popup_opens_the_incident_analysis(session: dict[str, Any],
                                                     facts: dict[str, Any],
                                                     live_server: LiveServer,
                                                     web_city: WebCity) -> None:
    """The sensor layer carries no alarm id, so the button passes the sensor's pipe, or its
    position and utility; the plan run from there is the API's for those inputs."""
    sensor = facts["sensor"]
    popup = session["popup"]
    assert (popup["collection"], popup["id"]) == ("sensor", sensor["id"]), popup
    assert popup["button"] == "事故分析"
    assert popup["inputs"] == sensor["inputs"], popup["inputs"]
    form = session["from_sensor"]
    assert form["process"] == "pipeline-incident" and not form["popup_after"], form
    sent = session["sent"][2]["inputs"]
    if "segment" in sensor["inputs"]:
        assert sent == sensor["inputs"], sent
    else:
        assert form["values"]["utility"] == sensor["inputs"]["utility"], form["values"]
        assert form["values"]["segment"] == "", form["values"]
        assert sent == {**sensor["inputs"], "crs": "CRS84"}, sent
    with _api(live_server, web_city) as api:
        expected = _plan(api, sent)["summary"]
    rows = _rows(session["sensor_run"])
    assert rows["failed_segment"] == str(expected["failed_segment"]), rows
    assert rows["valves_to_close"] == str(expected["valves_to_close"]), rows
    assert expected["found_by"] in rows["found_by"], rows


def test_screenshots_saved(session: dict[str, Any]) -> None:
    from tests.web.conftest import ARTIFACTS

    for name in ("picked", "fallback", "sensor"):
        assert (ARTIFACTS / "widget-incident" / f"{name}.png").stat().st_size > 10_000
