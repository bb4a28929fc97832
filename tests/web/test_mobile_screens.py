"""The grid worker's mobile map screen by screen at 390×844 with touch (issue 13).

One browser session (tests/web/test_mobile_screens.mjs) walks the sign-in page,
my grid, a search hit, a report, my events and the language switch; the tests
read its answer and PostGIS. Screenshots: ``var/test-artifacts/mobile/``
(login-zh, grid-zh, search-household, report-form, report-confirmation,
my-events, event-detail, event-detail-en, report-form-en, grid-en).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.web.conftest import Runner, WebCity


@pytest.fixture(scope="module")
def screens(run_script: Runner, photo: Path) -> dict[str, Any]:
    tag = f"screens test {uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = run_script("test_mobile_screens", timeout=240, photo=str(photo),
                                        tag=tag)
    return result


def test_every_screenshot_was_taken(screens: dict[str, Any]) -> None:
    for name, path in screens["shots"].items():
        assert Path(path).stat().st_size > 10_000, name


def test_search_hit_shows_the_household_card_and_a_marker(screens: dict[str, Any],
                                                         web_city: WebCity) -> None:
    household = web_city.facts["household"]
    names = web_city.facts["resident_names"]
    card = screens["card"]
    assert household["room_no"] in card
    # the worker's scope covers the household: the API gives the residents unmasked
    assert f"{len(names)} 人" in card
    assert sorted(r.split(" · ")[0] for r in screens["residents"]) == sorted(names)
    marker = screens["marker"]
    assert marker is not None, "no search marker drawn on the map"
    assert abs(marker["lon"] - household["point"][0]) < 1e-5
    assert abs(marker["lat"] - household["point"][1]) < 1e-5
    # on screen, in the part of the map the sheet leaves visible
    assert marker["map_top"] < marker["screen_y"] < marker["sheet_top"], marker
    assert 0 < marker["screen_x"] < marker["width"], marker


def test_submit_button_is_on_screen_without_scrolling(screens: dict[str, Any]) -> None:
    s = screens["submit"]
    width, height = s["viewport"]
    assert s["sheet_scroll"] == 0 and s["page_scroll"] == 0
    assert s["left"] >= 0 and s["right"] <= width
    assert s["top"] >= 0 and s["bottom"] <= s["tabs_top"] <= height, s
    assert s["on_top"], "something covers the submit button"


def test_report_shows_a_clear_confirmation(screens: dict[str, Any], web_city: WebCity) -> None:
    assert screens["confirmation_state"] == "sent"
    event_id = screens["submitted"]["event_id"]
    text = screens["confirmation"]
    assert "上报成功" in text and f"#{event_id}" in text
    assert web_city.facts["grid"]["name"] in text
    assert "已上传" in text  # the photo
    with psycopg.connect(web_city.database) as conn:
        row = conn.execute(
            "SELECT e.description, c.name, (SELECT count(*) FROM onemap.event_photo p "
            "WHERE p.event_id = e.id) FROM onemap.event e "
            "JOIN onemap.community c ON c.id = e.community_id WHERE e.id = %s",
            (event_id,)).fetchone()
    assert row is not None
    assert row[0] == screens["description"] and row[2] == 1
    assert row[1] in text  # the community the server assigned


def test_no_aborted_request_or_console_error_during_a_report(screens: dict[str, Any]) -> None:
    # A successful event POST was logged as net::ERR_ABORTED: its body was never read.
    assert screens["report_trouble"] == []
    # MapLibre itself cancels the requests of tiles that leave the view while the map
    # flies to a search hit (an AbortController): those are no fault of the app.
    assert not [t for t in screens["trouble"]
                if "ERR_ABORTED" in t["what"] and "/tiles/" not in t["what"]]


def test_my_event_opens_with_its_photo_and_history(screens: dict[str, Any]) -> None:
    detail = screens["detail"]
    assert detail["event_id"] == str(screens["submitted"]["event_id"])
    assert detail["photos"] == [[640, 480]]
    assert [h[0] for h in detail["history"]][:1] == ["reported"]
    assert "已上报" in detail["text"]


def test_one_language_at_a_time(screens: dict[str, Any]) -> None:
    wrong = {k: v["wrong"] for k, v in screens["language"].items() if v["wrong"]}
    assert wrong == {}
    langs = {k: v["lang"] for k, v in screens["language"].items()}
    assert langs["detail_en"] == langs["report_en"] == langs["grid_en_reloaded"] == "en"
    assert langs["login_zh"] == langs["grid_zh_again"] == langs["login_after"] == "zh-CN"
    assert screens["tabs"]["en"].split("\n") == ["My grid", "Find", "Report", "Events"]
    assert screens["tabs"]["zh"].split("\n") == ["网格", "找户", "随手拍", "事件"]


def test_every_touch_target_is_at_least_44_px(screens: dict[str, Any]) -> None:
    small = {screen: t["small"] for screen, t in screens["targets"].items() if t["small"]}
    assert small == {}
    # the audit measured something on every screen (the grid with a list open)
    assert all(t["measured"] >= 4 for t in screens["targets"].values())
    assert screens["targets"]["grid"]["measured"] > 20
