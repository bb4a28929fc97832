"""Every style renders in Chromium with features from every one of its layers.

One browser renders every style listed by ``GET /styles`` over the S city
(tests/web/styles.mjs); the tests read its answer. Screenshots:
``var/test-artifacts/styles/<id>.png``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.web.conftest import ROOT, LiveServer, Runner

STYLE_IDS = sorted(p.stem for p in (ROOT / "styles").glob("*.json"))


@pytest.fixture(scope="module")
def listed(live_server: LiveServer) -> list[str]:
    r = httpx.get(f"{live_server.url}/styles", timeout=30)
    assert r.status_code == 200, r.text[:500]
    return [s["id"] for s in r.json()["styles"]]


@pytest.fixture(scope="module")
def rendered(run_script: Runner, listed: list[str]) -> dict[str, Any]:
    return run_script("styles", styles=listed)["styles"]


def test_every_style_file_is_listed(listed: list[str]) -> None:
    assert len(STYLE_IDS) >= 8
    assert sorted(listed) == STYLE_IDS


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_style_draws_every_source_layer(rendered: dict[str, Any], style_id: str) -> None:
    result = rendered[style_id]
    assert result["layers"], result
    assert not result["missing"], f"no feature rendered from {result['missing']}"


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_every_style_layer_draws_in_its_zoom_range(rendered: dict[str, Any],
                                                   style_id: str) -> None:
    """A layer drawing all of its source layer draws somewhere in its zoom range; a
    filtered one (one class: abandoned pipes, say) may select nothing in the S city."""
    unseen = rendered[style_id]["unseen"]
    assert not [u for u in unseen if not u["filtered"]]
    for u in unseen:
        warnings.warn(f"{style_id}: {u['id']} drew nothing (its filter selects no feature "
                      f"of the S city?)", stacklevel=1)


@pytest.mark.parametrize("style_id", STYLE_IDS)
def test_style_screenshot_is_saved(rendered: dict[str, Any], style_id: str) -> None:
    png = Path(rendered[style_id]["screenshot"])
    assert png == ROOT / "var" / "test-artifacts" / "styles" / f"{style_id}.png"
    with Image.open(png) as img:
        colours = img.convert("RGB").resize((64, 48)).getcolors(maxcolors=64 * 48)
    # a drawn map, not a blank canvas
    assert colours is not None and len(colours) > 8
