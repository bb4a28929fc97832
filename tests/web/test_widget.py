"""The staff-console widget embedded in a plain host page, in Chromium.

The host pages are static files in a temporary directory, served by Python's
``http.server`` on another port: the widget is embedded as any console would
embed it (one ``<script>``, one ``<div>``), across origins. One browser
(tests/web/widget.mjs) drives both users. Screenshots: ``var/test-artifacts/widget/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer, Runner, WebCity

#: Who embeds the widget: the external system with its API key, the others with a token.
USERS = ("worker", "other_worker", "analyst", "external")

HOST_PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8">
<title>街道指挥中心 / Street-office console</title></head>
<body style="margin:0;font-family:sans-serif">
<h1 style="font-size:16px;margin:8px">街道指挥中心 · 网格管理 (host page, not onemap)</h1>
<script src="{base}/widget/onemap-widget.js"></script>
<div data-onemap-theme="grid_management" data-onemap-base="{base}" {credential}
     data-onemap-lang="zh" data-onemap-center="{lon},{lat}" data-onemap-zoom="16"
     style="height:720px"></div>
<script>
window.onemapEvents = [];
["onemap:auth-required", "onemap:token-refreshed"].forEach(function (type) {{
  document.addEventListener(type, function (e) {{
    window.onemapEvents.push({{type: type, status: e.detail.status || null,
                              token: e.detail.token || null}});
  }});
}});
</script>
</body></html>
"""

#: The iframe form: the credential handed over by postMessage when the page asks.
IFRAME_PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>iframe host</title></head>
<body style="margin:0">
<script>
window.messages = [];
window.addEventListener("message", function (e) {{
  if (e.origin !== "{base}") return;
  window.messages.push(e.data);
  if (e.data && e.data.type === "onemap:credential-wanted") {{
    e.source.postMessage({{type: "onemap:credential", token: "{token}"}}, "{base}");
  }}
}});
</script>
<iframe id="onemap" style="width:1200px;height:760px;border:0"
        src="{base}/widget/?theme=grid_management&amp;lang=zh&amp;center={lon},{lat}&amp;zoom=16&amp;origin={origin}"></iframe>
</body></html>
"""


@pytest.fixture(scope="module")
def host_pages(live_server: LiveServer, web_city: WebCity, host_origin: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Host pages for the worker and the other grid's worker, on their own server.

    Its origin is the one the server lets frame ``/widget/`` (``host_origin``);
    ``iframe_elsewhere`` is the iframe page from the same server by the name
    ``localhost``, an origin the server does not name.
    """
    root = tmp_path_factory.mktemp("host")
    lon, lat = web_city.facts["household"]["point"]
    url = host_origin
    port = int(url.rsplit(":", 1)[1])
    # a token that was never issued (or has expired): the sign-in form, then the map
    (root / "expired.html").write_text(HOST_PAGE.format(
        base=live_server.url, credential='data-onemap-token="om_expired-or-never-issued"',
        lon=lon, lat=lat), encoding="utf-8")
    (root / "iframe.html").write_text(IFRAME_PAGE.format(
        base=live_server.url, token=web_city.users["worker"]["token"], lon=lon, lat=lat,
        origin=url), encoding="utf-8")
    for user in USERS:
        who = web_city.users[user]
        credential = (f'data-onemap-key="{who["api_key"]}"' if user == "external"
                      else f'data-onemap-token="{who["token"]}"')
        (root / f"{user}.html").write_text(HOST_PAGE.format(
            base=live_server.url, credential=credential, lon=lon, lat=lat), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30  # a bound on start-up, not a speed check
        while True:
            try:
                httpx.get(f"{url}/worker.html", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the host page server did not start"
                time.sleep(0.1)
        yield {**{user: f"{url}/{user}.html" for user in (*USERS, "expired", "iframe")},
               "iframe_elsewhere": f"http://localhost:{port}/iframe.html"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def session(run_script: Runner, host_pages: dict[str, str]) -> dict[str, Any]:
    return run_script("widget", hosts=host_pages)


def test_loads_and_toggles_a_layer(session: dict[str, Any]) -> None:
    """Switching a layer off hides every style layer drawing it; on shows them again."""
    toggled = session["toggled"]
    assert toggled["checked_before"]
    assert toggled["group_layers_after_off"], toggled  # the group draws with some layer
    # the style layers visible, counted over the whole style: fewer with the group off
    assert toggled["hidden"] < toggled["before"], toggled
    assert [v for _, v in toggled["group_layers_after_off"]] == (
        ["none"] * len(toggled["group_layers_after_off"])), toggled
    assert not toggled["checked_after_off"]
    assert toggled["restored"] == toggled["before"] and toggled["checked_after_on"]
    # the history (closed/evaluated events) is hidden by default and has its own switch
    history = session["history"]
    assert history["event_switch"] == 1 and history["history_switch"] == 1, history
    assert history["checked_at_start"] is False, history
    assert history["after_events_off_on"] == "none", history  # open events don't bring it
    assert history["after_its_switch"] == "visible", history
    assert "历史事件" in history["label"] or "history" in history["label"].lower(), history


def test_worker_drills_from_grid_to_household_residents(session: dict[str, Any],
                                                        web_city: WebCity) -> None:
    facts = web_city.facts
    assert session["grid"]["name"] == facts["grid"]["name"]
    household = session["household"]
    assert household["id"] == facts["household"]["id"] and not household["denied"]
    assert sorted(c["name"] for c in household["children"]) == sorted(facts["resident_names"])
    assert session["stats_tables"] >= 1


def test_other_grids_worker_sees_no_resident(session: dict[str, Any]) -> None:
    foreign = session["foreign"]
    assert all(c["name"] is None for c in foreign["children"])
    assert foreign["denied"] or not foreign["children"]


@pytest.mark.parametrize("user", ["analyst", "external"])
def test_analyst_and_external_system_see_no_resident_name(session: dict[str, Any],
                                                          user: str) -> None:
    seen = session["masked"][user]
    assert seen["names_on_page"] == []
    assert seen["rendered"] > 0  # the widget loaded and drew the map


def test_analyst_sees_the_households_residents_masked(session: dict[str, Any],
                                                     web_city: WebCity) -> None:
    seen = session["masked"]["analyst"]
    names = web_city.facts["resident_names"]
    assert seen["childCount"] == len(names)  # counts, not names
    assert not {c["name"] for c in seen["children"]} & set(names)


def test_layers_are_named_in_the_chosen_language(session: dict[str, Any],
                                                live_server: LiveServer) -> None:
    """No label the widget shows is a raw collection id, in zh or in en.

    The view statistics name each layer by its collection's title in that language
    (``GET /collections?lang=``); drill-down figures, the switcher, the legend, the
    time slider and the record popup show no collection id either.
    """
    titles = {lang: {c["id"]: c["title"] for c in httpx.get(
        f"{live_server.url}/collections", params={"f": "json", "lang": lang},
        timeout=30).json()["collections"]} for lang in ("zh", "en")}
    ids = set(titles["en"])
    stat_keys = {"households", "occupied", "residents", "elderly", "events", "count"}
    shown = session["labels"]
    for lang in ("zh", "en"):
        seen = shown[lang]
        assert seen["view_rows"], seen
        for row in seen["view_rows"]:
            assert row["label"] == titles[lang][row["key"]], (lang, row)
        assert seen["stat_rows"], seen
        for row in seen["stat_rows"]:
            assert row["label"] not in ids | stat_keys, (lang, row)
        others = seen["switcher"] + seen["legend"] + seen["time"] + seen["popup"]
        assert seen["switcher"] and seen["popup"], seen
        assert not [t for t in others if t in ids or any(
            f"({i})" in t or t.startswith(f"{i} ") or f", {i}" in t for i in ids)], (lang, seen)
        # the popup is titled by the layer and the record's name, not its id (issue 13)
        assert seen["popup"][0].startswith(titles[lang]["building"] + "："), seen["popup"]
    assert shown["zh"]["view_rows"] != shown["en"]["view_rows"]


def test_clicked_records_popup_is_labelled_by_field_titles(session: dict[str, Any],
                                                          live_server: LiveServer) -> None:
    """A click on the map opens the record with its properties' zh/en titles, not column names,
    and coded values by their labels (女, not ``female``).

    Both come from the collection's queryables (layers/fields.yml) in the chosen language.
    """
    popup = session["popup"]
    collection = popup["zh"]["collection"]
    assert popup["zh"]["status"] == 200 and popup["en"]["collection"] == collection, popup
    for lang in ("zh", "en"):
        props = httpx.get(f"{live_server.url}/collections/{collection}/queryables",
                          params={"f": "json", "lang": lang}, timeout=30).json()["properties"]
        rows = popup[lang]["rows"]
        assert len(rows) >= 3, popup
        coded = 0
        for row in rows:
            assert row["label"] == props[row["field"]]["title"], (lang, row)
            assert row["label"] != row["field"], (lang, row)
            labels = {o["const"]: o["title"] for o in props[row["field"]].get("oneOf", [])}
            if labels and row["code"] is not None:
                assert row["value"] == labels[row["code"]] != row["code"], (lang, row)
                coded += 1
            else:
                assert row["value"] not in labels, (lang, row)  # a code shown raw
        assert coded >= 1, popup  # a resident's gender, a household's occupancy, …
    assert [r["field"] for r in popup["zh"]["rows"]] == [r["field"] for r in popup["en"]["rows"]]
    assert not {r["label"] for r in popup["zh"]["rows"]} & {r["label"] for r in popup["en"]["rows"]}


INTERNAL = {"id", "version", "synthetic", "source_key", "created_at", "worker_user_id",
            "reporter_user_id", "assignee_user_id"}


def test_popup_shows_names_and_figures_not_internal_fields(session: dict[str, Any]) -> None:
    """No bookkeeping in the popup; parents by name; a building's households and residents."""
    for lang in ("zh", "en"):
        seen = session["labels"][lang]
        assert seen["popup_fields"] and not set(seen["popup_fields"]) & INTERNAL, seen
        assert {"households", "residents"} <= set(seen["popup_figures"]), seen
        figures = seen["popup_state_figures"]
        assert figures["households"] > 0 and figures["residents"] > 0, figures
    rows = {r["field"]: r for r in session["popup"]["zh"]["rows"]}
    assert not set(rows) & INTERNAL, rows
    for parent in ("building_id", "unit_id"):  # the household's building and unit by name
        if parent in rows:
            assert not rows[parent]["value"].isdigit() and rows[parent]["value"] != "…", rows
    for row in rows.values():
        assert row["value"] not in ("", "[]", "true", "false"), row


def test_drill_from_a_popup_has_a_breadcrumb_moves_and_highlights(session: dict[str, Any],
                                                                  web_city: WebCity) -> None:
    seen = session["from_popup"]
    focus = seen["focus"]
    levels = [p["level"] for p in focus["path"]]
    assert levels[:1] == ["street_office"] and levels[-2:] == ["building", "unit"], focus
    assert all(p["name"] for p in focus["path"]), focus
    assert len(focus["crumbs"]) == len(levels), focus
    assert focus["highlighted"], focus
    lon, lat = web_city.facts["household"]["point"]
    assert abs(focus["center"][0] - lon) < 0.01 and abs(focus["center"][1] - lat) < 0.01, focus
    assert focus["zoom"] > 14, focus


def test_a_place_on_the_map_leads_into_the_drill_down_at_street_level(
        session: dict[str, Any], web_city: WebCity) -> None:
    place = session["place"]
    assert [u["level"] for u in place["units"]] == ["street_office", "community", "grid"], place
    assert place["units"][2]["id"] == web_city.facts["grid"]["id"], place
    panel = place["street_office_panel"]
    assert panel["level"] == "street_office" and panel["name"], panel


def test_view_statistics_count_each_feature_once_and_follow_the_switcher(
        session: dict[str, Any]) -> None:
    counted = session["counted"]
    assert counted["distinct"], counted
    for layer, n in counted["distinct"].items():
        assert counted["rendered"][layer] == n, (layer, counted)
    assert counted["group"] not in counted["after_off"], counted
    assert counted["group"] in counted["shown_after_on"], counted  # refreshed by the toggle


def test_an_invalid_token_asks_to_sign_in_and_the_map_recovers(session: dict[str, Any]) -> None:
    """A token never issued or expired: a zh message and a sign-in form instead of a blank
    map, an ``onemap:auth-required`` event for the host; signing in loads the map."""
    auth = session["auth"]
    assert "重新登录" in auth["message"] or "登录" in auth["message"], auth
    assert {"type": "onemap:auth-required", "status": 401, "token": None} in auth["events"], auth
    assert auth["wrong_password"], auth
    after = auth["after_sign_in"]
    assert not after["overlay"] and after["has_token"] and after["rendered"] > 0, after
    assert "onemap:token-refreshed" in after["events"], after


def test_the_widget_refreshes_its_token(session: dict[str, Any]) -> None:
    refresh = session["auth"]["refresh"]
    assert refresh["changed"] and refresh["widget_uses_new"], refresh
    assert refresh["new_status"] == 200 and refresh["old_status"] == 200, refresh  # grace
    assert refresh["event"] >= 2 and refresh["expires"], refresh  # sign-in, then refresh


def test_a_token_revoked_under_the_map_asks_again_and_recovers(session: dict[str, Any]) -> None:
    revoked = session["auth"]["revoked"]
    assert revoked["overlay"], revoked
    assert revoked["recovered"] > 0, revoked


def test_only_the_named_host_origin_may_frame_the_widget(session: dict[str, Any]) -> None:
    """The same iframe page from an origin ONEMAP_CORS_ORIGINS does not name: Chromium
    refuses the frame (frame-ancestors) and the widget never starts in it."""
    elsewhere = session["iframe_elsewhere"]
    assert elsewhere["refused"], elsewhere
    assert elsewhere["widget_frames"] == [] and elsewhere["messages"] == [], elsewhere


def test_an_item_pages_link_opens_the_record_in_the_widget(session: dict[str, Any],
                                                          web_city: WebCity) -> None:
    """/widget/?record=building/<id>&center=… (the API's item page link) opens the record there."""
    opened = session["record_link"]
    household = web_city.facts["household"]
    assert (opened["collection"], opened["id"], opened["status"]) == (
        "building", household["building_id"], 200), opened
    # at the building (the drill-down centres its outline, not the given point exactly)
    assert opened["center"] == pytest.approx(household["point"], abs=1e-3), opened
    assert "token" not in opened["href"], opened


def test_iframe_gets_its_token_by_message_not_in_the_url(session: dict[str, Any]) -> None:
    iframe = session["iframe"]
    assert iframe["has_token"] and iframe["rendered"] > 0, iframe
    assert "token" not in iframe["href"] and "#" not in iframe["href"], iframe
    assert iframe["urls_with_token"] == [], iframe
    assert iframe["messages"][:1] == ["onemap:credential-wanted"] and "onemap:ready" in (
        iframe["messages"]), iframe


def test_screenshots_saved(session: dict[str, Any]) -> None:
    from tests.web.conftest import ARTIFACTS

    for name in ("worker-household", "other-worker-household", "expired-sign-in"):
        assert (ARTIFACTS / "widget" / f"{name}.png").stat().st_size > 10_000


def test_widget_opened_directly_offers_sign_in(session: dict[str, Any]) -> None:
    """The README's quick start opens /widget/ with no credential: the public map has a
    登录 button whose form can be closed, and signing in there gives the widget a token."""
    direct = session["direct_sign_in"]
    assert direct["button"] == "登录", direct
    assert "登录后可查看" in direct["form_message"], direct
    assert direct["cancelled"], direct
    assert direct["after"] == {"has_token": True, "button_hidden": True}, direct
