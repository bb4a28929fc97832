"""The grid worker's mobile map at 390×844 in Chromium, checked in PostGIS.

One browser session (tests/web/mobile.mjs) signs in, sees the worker's grid and
sends two reports with a photo, the second made while offline; the tests read
its answer and the database. Screenshots: ``var/test-artifacts/mobile/``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.web.conftest import Runner, WebCity


@pytest.fixture(scope="module")
def session(run_script: Runner, photo: Path) -> dict[str, Any]:
    tag = f"browser test {uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = run_script("mobile", photo=str(photo), tag=tag)
    result["tag"] = tag
    return result


def _events(database: str, tag: str) -> list[dict[str, Any]]:
    with psycopg.connect(database, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT e.id, e.client_uuid::text, e.description, e.grid_id, e.community_id, "
            "e.source, (SELECT count(*) FROM onemap.event_photo p WHERE p.event_id = e.id) "
            "AS photos FROM onemap.event e WHERE e.description LIKE %s ORDER BY e.id",
            (f"{tag}%",)).fetchall()


def test_signs_in_and_shows_the_workers_grid(session: dict[str, Any], web_city: WebCity) -> None:
    assert web_city.facts["grid"]["name"] in session["grid_text"]
    assert Path(session["screenshot"]).stat().st_size > 10_000


def test_report_with_photo_lands_in_the_right_grid(session: dict[str, Any],
                                                   web_city: WebCity) -> None:
    rows = [r for r in _events(web_city.database, session["tag"])
            if r["description"].endswith("online")]
    assert len(rows) == 1
    event = rows[0]
    assert event["id"] == session["online"]["event_id"]
    assert event["client_uuid"] == session["online"]["client_uuid"]
    assert event["grid_id"] == web_city.facts["grid"]["id"]
    assert event["community_id"] == web_city.facts["grid"]["community_id"]
    assert event["photos"] == 1


def test_offline_report_arrives_exactly_once(session: dict[str, Any],
                                             web_city: WebCity) -> None:
    assert session["queued_offline"] == 1 and session["queued_after"] == 0
    client_uuid = session["offline"]["client_uuid"]
    with psycopg.connect(web_city.database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM onemap.event WHERE client_uuid = %s",
                                (client_uuid,)).fetchone()  # type: ignore[misc]
    assert count == 1
    rows = _events(web_city.database, session["tag"])
    assert [r["description"].rsplit(" ", 1)[1] for r in rows] == ["online", "offline"]
    offline = rows[1]
    assert offline["client_uuid"] == client_uuid
    assert offline["grid_id"] == web_city.facts["grid"]["id"]
    assert offline["photos"] == 1


def test_offline_confirmation_turns_to_sent(session: dict[str, Any]) -> None:
    assert session["queued_card"] == "queued"
    assert f"#{session['offline']['event_id']}" in session["sent_card"]
