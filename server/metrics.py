"""Request metrics and ``Server-Timing``, as plain ASGI middleware.

Every HTTP response carries ``Server-Timing: app;dur=<ms>``; request counts
and latencies per route template are kept with prometheus-client and served
at ``/metrics`` in the Prometheus text format. Route templates, not raw
paths, label the series, so feature ids cannot blow up their number.

With several uvicorn workers each keeps its own series (a scrape sees the
worker that answers); set ``PROMETHEUS_MULTIPROC_DIR`` before start-up for
prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import re
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "onemap_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "onemap_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)

#: Path patterns → route template, most specific first.
_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"^/collections/[^/]+/items/[^/]+$", "/collections/{collectionId}/items/{featureId}"),
        (r"^/collections/[^/]+/items$", "/collections/{collectionId}/items"),
        (r"^/collections/[^/]+/tiles(/.*)?$", "/collections/{collectionId}/tiles"),
        (r"^/tiles/[^/]+/[^/]+/[^/]+/[^/]+/[^/]+$", "/tiles/{theme}/{tileMatrixSetId}/{z}/{y}/{x}"),
        (r"^/tiles(/.*)?$", "/tiles"),
        (r"^/tileMatrixSets(/.*)?$", "/tileMatrixSets"),
        (r"^/collections/[^/]+/coverage(/.*)?$", "/collections/{collectionId}/coverage"),
        (
            r"^/collections/[^/]+/(schema|queryables|map)$",
            "/collections/{collectionId}/\\1",
        ),
        (r"^/collections/[^/]+$", "/collections/{collectionId}"),
        (r"^/processes/[^/]+/execution$", "/processes/{processId}/execution"),
        (r"^/processes/[^/]+$", "/processes/{processId}"),
        (r"^/jobs/[^/]+/results$", "/jobs/{jobId}/results"),
        (r"^/jobs/[^/]+$", "/jobs/{jobId}"),
        (r"^/static/.*$", "/static"),
    )
)
_KNOWN = {
    "/",
    "/conformance",
    "/openapi",
    "/collections",
    "/processes",
    "/jobs",
    "/health",
    "/metrics",
    "/TileMatrixSets",
    # server.auth.routes()
    "/auth/login",
    "/auth/logout",
    "/auth/me",
    "/auth/login-log",
}


def route_template(path: str) -> str:
    """The route template a path belongs to (bounded label values).

    Parameters
    ----------
    path : str
        Request path.

    Returns
    -------
    str
        e.g. ``/collections/{collectionId}/items/{featureId}``; ``other`` for
        paths no route knows.

    Examples
    --------
    >>> route_template("/collections/building/items/42")
    '/collections/{collectionId}/items/{featureId}'
    >>> route_template("/collections/building/queryables")
    '/collections/{collectionId}/queryables'
    >>> route_template("/auth/login")
    '/auth/login'
    >>> route_template("/wp-admin.php")
    'other'
    """
    if path in _KNOWN:
        return path
    for pattern, template in _ROUTES:
        if pattern.match(path):
            return pattern.sub(template, path) if "\\1" in template else template
    return "other"


class MetricsMiddleware:
    """Times every HTTP request, counts it, and adds ``Server-Timing``.

    Parameters
    ----------
    app : ASGI application
        The application to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        route = route_template(scope.get("path", ""))
        method = scope.get("method", "GET")
        status = {"code": 500}

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                elapsed_ms = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed_ms:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            LATENCY.labels(method, route).observe(time.perf_counter() - start)
            REQUESTS.labels(method, route, str(status["code"])).inc()


async def metrics(request: Request) -> Response:
    """Serve the metrics in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["MetricsMiddleware", "metrics", "route_template"]
