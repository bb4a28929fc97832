"""Spill tracing (spill-trace) from a spill's popup, in Chromium.

One browser session (tests/web/spill.mjs) opens the trucks map with the district
administrator's API key at a spill the S city's truth says a truck caused, clicks the
spill, presses 遗撒溯源 in its popup and runs the trace. The report is filled in from the
popup; the suspects, their tracks and sites are drawn with a legend; the causing truck is
among the suspects, loaded. Screenshots: ``var/test-artifacts/widget-spill/``.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.web.conftest import Runner, WebCity

USER = "admin"


@pytest.fixture(scope="module")
def spill(web_city: WebCity) -> dict[str, Any]:
    with psycopg.connect(web_city.database, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT s.id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, c.truck_id "
            "FROM onemap.spill_report s JOIN truth.spill_cause c ON c.spill_report_id = s.id "
            "WHERE c.kind = 'caused' AND s.status IN ('reported', 'assigned') AND NOT EXISTS ("
            "  SELECT FROM onemap.spill_report o WHERE o.id <> s.id AND ST_DWithin("
            "    o.geom::geography, s.geom::geography, 40)) ORDER BY s.id LIMIT 1").fetchone()
    assert row is not None, "the S city has no open spill a truck caused"
    return {"id": int(row["id"]), "point": [float(row["lon"]), float(row["lat"])],
            "truck_id": int(row["truck_id"])}


@pytest.fixture(scope="module")
def session(run_script: Runner, spill: dict[str, Any]) -> dict[str, Any]:
    return run_script("spill", timeout=300, user=USER,
                      spill={"id": spill["id"], "point": spill["point"]})


def test_the_popup_fills_the_report_in(session: dict[str, Any], spill: dict[str, Any]) -> None:
    popup = session["popup"]
    assert popup["collection"] == "spill_report" and str(popup["id"]) == str(spill["id"])
    assert popup["button"] == "遗撒溯源"
    assert popup["inputs"] == {"report_ids": [spill["id"]]}
    [request] = session["sent"]
    assert request["body"]["inputs"]["report_ids"] == [spill["id"]], request


def test_suspects_tracks_and_sites_are_drawn(session: dict[str, Any],
                                             spill: dict[str, Any]) -> None:
    doc = session["result"]["document"]
    suspects = doc["suspects"]
    assert suspects and doc["summary"]["suspects"] == len(suspects)
    mine = [s for s in suspects if s["truck_id"] == spill["truck_id"]]
    assert mine and mine[0]["loaded"] is True, suspects
    assert "track" in doc["tracks"] and doc["sites"] >= 1
    drawn = session["result"]["rendered"]
    assert any(f["output"] == "suspects" for f in drawn), drawn
    assert any(f["output"] == "tracks" for f in drawn), drawn
    legend = [e for e in session["result"]["legend"] if e["output"] == "suspects"]
    assert legend, session["result"]["legend"]
    labels = {r["key"]: r["label"] for r in session["result"]["summary"]}
    assert labels["suspects"] == "嫌疑车辆" and labels["reports"] == "溯源上报数", labels
