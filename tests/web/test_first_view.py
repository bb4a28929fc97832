"""bench/bench_first_view.py's browser part runs (figures are the bench's, not asserted)."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Runner, WebCity


def test_first_view_script_runs(run_script: Runner, web_city: WebCity) -> None:
    key = web_city.users["analyst"]["api_key"]
    result: dict[str, Any] = run_script("firstview", themes=["grid_management", "operations"],
                                        key=key, repeat=1)
    for theme, runs in result.items():
        for run in (runs["cold"], *runs["warm"]):
            assert run["idle_ms"] > 0 and run["tile_requests"] > 0, run
            assert run["rendered"] > 0, run
            # the statistics wait for the first view (behaviour, not speed)
            assert run["stats_after_idle"] in (True, None), run
        # one request per tile position: the theme's tiles carry the base map (and, for
        # operations, today's refuse load), so a view asks one source
        cold = runs["cold"]
        source = {"grid_management": "tiles/grid_management", "operations": "tiles/city_ops"}
        assert list(cold["tile_sources"]) == [source[theme]], cold
        assert cold["tile_requests"] == cold["tile_positions"], cold
    runs = result["grid_management"]
    # the default view (the style's) is on the data: the S city's extent holds its centre
    west, south, east, north = web_city.facts["extent"]
    lon, lat = runs["cold"]["center"]
    assert west <= lon <= east and south <= lat <= north, (runs["cold"], web_city.facts["extent"])
