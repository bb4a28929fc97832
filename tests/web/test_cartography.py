"""Maps people can read (issue 13): what each style draws where a user lands.

One browser opens every style at its own centre and zoom, then at zoom 13 and 15 over
a compound of the S city (tests/web/cartography.mjs), and counts with
``queryRenderedFeatures`` what is drawn. Screenshots:
``var/test-artifacts/cartography/<id>-{landing,history,z13,z15}.png`` — look at them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from spatial.styles import MIN_SWATCH_CONTRAST, contrast_on_white
from tests.web.conftest import ROOT, LiveServer, Runner, WebCity

STYLE_IDS = sorted(p.stem for p in (ROOT / "styles").glob("*.json"))
#: Styles whose thematic layers have a history hidden by default.
WITH_HISTORY = {"grid_management", "alleys", "operations", "trucks"}


@pytest.fixture(scope="module")
def seen(run_script: Runner) -> dict[str, Any]:
    return run_script("cartography", timeout=400, styles=STYLE_IDS)["styles"]


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_style_lands_on_the_city(seen: dict[str, Any], web_city: WebCity,
                                 style_id: str) -> None:
    """The style's own centre is inside the S city, so no third of the view is empty."""
    x0, y0, x1, y1 = web_city.facts["extent"]
    lon, lat = seen[style_id]["center"]
    assert x0 <= lon <= x1 and y0 <= lat <= y1, (seen[style_id]["center"], web_city.facts["extent"])


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_landing_view_draws_the_theme(seen: dict[str, Any], style_id: str) -> None:
    landing = seen[style_id]["views"]["landing"]
    assert landing["reference"] > 0, landing
    if style_id != "base":
        assert landing["thematic"] > 0, landing


@pytest.mark.parametrize("style_id", STYLE_IDS)
@pytest.mark.parametrize("view", ["landing", "z13", "z15"])
def test_no_history_by_default(seen: dict[str, Any], style_id: str, view: str) -> None:
    """Closed/evaluated events, resolved alley problems, cleaned spills: not by default."""
    drawn = seen[style_id]["views"][view]
    assert drawn["history_drawn"] == 0, drawn["layers"]


@pytest.mark.parametrize("style_id", sorted(WITH_HISTORY))
def test_history_is_one_switch_away(seen: dict[str, Any], style_id: str) -> None:
    result = seen[style_id]
    assert any(h.endswith("-history") for h in result["hidden"]), result["hidden"]
    if style_id != "trucks":  # the S city's spills may all lie outside the landing view
        assert result["history"]["features"] > 0, result["history"]


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_screenshots_are_saved(seen: dict[str, Any], style_id: str) -> None:
    shots = [Path(p) for p in seen[style_id]["screenshots"]]
    assert {p.name for p in shots} >= {f"{style_id}-landing.png", f"{style_id}-z13.png",
                                      f"{style_id}-z15.png"}
    for png in shots:
        with Image.open(png) as img:
            colours = img.convert("RGB").resize((64, 48)).getcolors(maxcolors=64 * 48)
        assert colours is not None and len(colours) > 8, png


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_served_legend_is_readable(live_server: LiveServer, style_id: str) -> None:
    """The legend the widget draws: each label once, swatches visible on white."""
    r = httpx.get(f"{live_server.url}/styles/{style_id}/legend", timeout=30)
    assert r.status_code == 200
    entries = r.json()["entries"]
    labels = [e["label_zh"] for e in entries]
    assert len(labels) == len(set(labels)), labels
    for e in entries:
        best = max(contrast_on_white(c) or 1.0 for c in (e["color"], e["outline"]) if c)
        assert best >= MIN_SWATCH_CONTRAST, e
        assert not (e["type"] == "symbol" and "label" in e["layer"]), e
