"""Every response is timed; /metrics counts requests per route; /health tells the state."""

from __future__ import annotations

import re
from typing import Any


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
