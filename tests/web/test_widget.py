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

from tests.conftest import free_port
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
</body></html>
"""


@pytest.fixture(scope="module")
def host_pages(live_server: LiveServer, web_city: WebCity,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Host pages for the worker and the other grid's worker, on their own server."""
    root = tmp_path_factory.mktemp("host")
    lon, lat = web_city.facts["household"]["point"]
    for user in USERS:
        who = web_city.users[user]
        credential = (f'data-onemap-key="{who["api_key"]}"' if user == "external"
                      else f'data-onemap-token="{who["token"]}"')
        (root / f"{user}.html").write_text(HOST_PAGE.format(
            base=live_server.url, credential=credential, lon=lon, lat=lat), encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30  # a bound on start-up, not a speed check
        while True:
            try:
                httpx.get(f"{url}/worker.html", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the host page server did not start"
                time.sleep(0.1)
        yield {user: f"{url}/{user}.html" for user in USERS}
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
        assert seen["popup"][0].startswith(titles[lang]["building"] + " #")
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


def test_screenshots_saved(session: dict[str, Any]) -> None:
    from tests.web.conftest import ARTIFACTS

    for name in ("worker-household", "other-worker-household"):
        assert (ARTIFACTS / "widget" / f"{name}.png").stat().st_size > 10_000
