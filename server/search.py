"""``GET /search?q=&limit=``: the map widget's search box (:mod:`spatial.search`).

The query runs on :func:`spatial.access.request_connection` as the caller, so
row-level security decides what is found. The contract middleware does not
classify ``/search``; :func:`spatial.search.parse_params` refuses unknown or
malformed parameters with 400 itself.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from spatial import search as searching
from spatial.access import Principal, current_principal, request_connection

LOGGER = logging.getLogger(__name__)


def _search(principal: Principal, q: str, limit: int) -> list[searching.SearchResult]:
    with request_connection(principal) as conn:
        return searching.search(conn, q, limit)


async def search_endpoint(request: Request) -> JSONResponse:
    """Answer a JSON list ``[{type, collection, id, label, lon, lat[, bbox]}]``, best first.

    Signed-in callers' answers are ``Cache-Control: no-store``: what they find
    depends on who they are (and may name residents); anonymous answers are
    public for a minute.
    """
    q, limit = searching.parse_params(request.query_params)
    principal = current_principal()
    hits = await run_in_threadpool(_search, principal, q, limit)
    cache = "no-store" if not principal.is_anonymous else "public, max-age=60"
    return JSONResponse([hit.to_dict() for hit in hits], headers={"Cache-Control": cache})


def routes() -> list[BaseRoute]:
    """The ``/search`` route, to be placed before pygeoapi's mount."""
    return [Route("/search", search_endpoint, methods=["GET"])]


__all__ = ["routes", "search_endpoint"]
