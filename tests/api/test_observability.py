"""Every response is timed; /metrics counts requests per route; /health tells the state."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server.metrics import route_template


def test_server_timing_header_on_every_response(client: Any) -> None:
    for path in ("/", "/collections/building/items", "/collections/nope/items", "/health"):
        r = client.get(path, params={"f": "json"})
        timing = r.headers.get("server-timing", "")
        assert re.fullmatch(r"app;dur=\d+(\.\d+)?", timing), (path, timing)


def test_metrics_count_requests_per_route_template(client: Any) -> None:
    def count(text: str, route: str, status: str) -> float:
        pattern = (
            r'onemap_http_requests_total\{method="GET",route="'
            + re.escape(route)
            + r'",status="'
            + status
            + r'"\} ([0-9.e+]+)'
        )
        m = re.search(pattern, text)
        return float(m.group(1)) if m else 0.0

    route = "/collections/{collectionId}/items/{featureId}"
    before = client.get("/metrics").text
    ids = [
        f["id"]
        for f in client.get("/collections/building/items", params={"f": "json"}).json()["features"][
            :3
        ]
    ]
    for fid in ids:
        assert (
            client.get(f"/collections/building/items/{fid}", params={"f": "json"}).status_code
            == 200
        )
    client.get("/collections/building/items/999999", params={"f": "json"})
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    # three ids, one series: labels carry the route template, never the id
    assert count(after.text, route, "200") - count(before, route, "200") == 3
    assert count(after.text, route, "404") - count(before, route, "404") == 1
    assert "onemap_http_request_duration_seconds_bucket" in after.text
    assert str(ids[0]) not in re.findall(r'route="([^"]*)"', after.text)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/collections/building/items/42", "/collections/{collectionId}/items/{featureId}"),
        ("/collections/building/items", "/collections/{collectionId}/items"),
        ("/collections/building/tiles/WebMercatorQuad/14/1/2",
         "/collections/{collectionId}/tiles"),
        ("/collections/building/queryables", "/collections/{collectionId}/queryables"),
        ("/collections/dem/coverage", "/collections/{collectionId}/coverage"),
        ("/collections/dem/coverage/domainset", "/collections/{collectionId}/coverage"),
        ("/collections/building", "/collections/{collectionId}"),
        ("/auth/login", "/auth/login"),
        ("/auth/logout", "/auth/logout"),
        ("/auth/me", "/auth/me"),
        ("/auth/login-log", "/auth/login-log"),
        ("/processes", "/processes"),
        ("/processes/grid-statistics", "/processes/{processId}"),
        ("/processes/grid-statistics/execution", "/processes/{processId}/execution"),
        ("/jobs", "/jobs"),
        ("/jobs/0b4f5d3e", "/jobs/{jobId}"),
        ("/jobs/0b4f5d3e/results", "/jobs/{jobId}/results"),
        # unknown paths share one label, so scanners cannot add series
        ("/auth/nope", "other"),
        ("/wp-admin.php", "other"),
    ],
)
def test_route_templates(path: str, template: str) -> None:
    assert route_template(path) == template


def test_auth_requests_are_counted_under_their_route(client: Any) -> None:
    series = re.compile(
        r'onemap_http_requests_total\{method="GET",route="/auth/me",status="401"\} ([0-9.e+]+)'
    )

    def count() -> float:
        m = series.search(client.get("/metrics").text)
        return float(m.group(1)) if m else 0.0

    before = count()
    assert client.get("/auth/me").status_code == 401
    assert count() - before == 1
