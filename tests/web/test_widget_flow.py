"""Refuse flows (refuse-flow) from the widget's analysis panel, in Chromium.

One browser session (tests/web/flow.mjs) opens the refuse map with the district
administrator's API key, opens 分析, chooses refuse-flow, sets the warning threshold low
enough that some facility is warned about, and runs it. Its flows and facilities are
drawn, the facilities' legend counts the warnings as the API's answer has them, and the
summary shows the day's tonnes and the streams planned, in words. Screenshot:
``var/test-artifacts/widget-flow/``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.web.conftest import LiveServer, Runner, WebCity

USER = "admin"
RATIO = 0.3


@pytest.fixture(scope="module")
def session(run_script: Runner, live_server: LiveServer, web_city: WebCity) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=60, headers={
            "Authorization": f"Bearer {web_city.users[USER]['token']}"}) as api:
        items = api.get("/collections/refuse_facility/items",
                        params={"f": "json", "limit": 100}).json()["features"]
    xs = [f["geometry"]["coordinates"] for f in items if f["geometry"]]
    centre = [sum(c[0] for c in xs) / len(xs), sum(c[1] for c in xs) / len(xs)]
    return run_script("flow", timeout=240, user=USER, ratio=RATIO, center=centre)


def test_the_form_and_the_request(session: dict[str, Any]) -> None:
    kinds = {f["input"]: f["kind"] for f in session["form"]}
    assert {"day", "warning_ratio", "scenario"} <= set(kinds), kinds
    [request] = session["sent"]
    assert request["body"]["inputs"]["warning_ratio"] == RATIO, request


def test_flows_and_warned_facilities_are_drawn_with_their_legend(
        session: dict[str, Any]) -> None:
    result = session["result"]
    doc = result["document"]
    assert doc["summary"]["status"] == "optimal" and doc["flows"] > 0, doc["summary"]
    drawn = result["rendered"]
    assert any(f["output"] == "flows" and f["tonnes"] for f in drawn), drawn
    assert any(f["output"] == "facilities" for f in drawn), drawn
    warned = Counter(str(f["warning"]).lower() for f in doc["facilities"])
    assert warned["true"] >= 1, doc["facilities"]
    legend = {e["value"]: e["count"] for e in result["legend"]
              if e["output"] == "facilities" and e["property"] == "warning"}
    assert legend == {k: n for k, n in warned.items() if n}, (legend, warned)
    rows = {r["key"]: r["value"] for r in result["summary"]}
    labels = {r["key"]: r["label"] for r in result["summary"]}
    assert "refuse_t" in rows and "tonne_km" in rows, rows
    assert labels["refuse_t"] == "垃圾量（吨）" and labels["day"] == "日期", labels
    assert rows["day"] == doc["summary"]["day"], (rows, doc["summary"])
    # every stream planned, in words; the plan's parts by stream named, not dumped as JSON
    assert labels["streams"] == "垃圾类别", labels
    assert "厨余垃圾（kitchen）" in rows["streams"] and "其他垃圾（other）" in rows["streams"], rows
    assert "{" not in rows["by_stream"], rows
