"""Streaming GeoJSON for ``GET /collections/{collectionId}/items``.

pygeoapi builds a whole page as one dictionary and serialises it at the end,
so a page of 10,000 features sits in memory several times over. This route
answers the GeoJSON form of the items request itself: features come from a
server-side cursor (:func:`spatial.features.stream_features`) and are written
out as they arrive. Pages in id order link to the next one with a keyset
``cursor`` (the last id), so deep pages cost as little as the first; a page
sorted by other properties links with ``offset``.

Every other request to the path (HTML, POSTed CQL2-JSON, collections that are
not ours) falls through to pygeoapi. Query parameters were already checked by
:mod:`server.contract`; their meaning is parsed here.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Generator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.problems import error_response
from spatial.access import Principal, check_can_read, current_principal, request_connection
from spatial.catalog import LAYERS_SCHEMA, get_table
from spatial.cql import parse_filter
from spatial.crs import crs_axes
from spatial.db import get_pool
from spatial.errors import InvalidInputError, OnemapError
from spatial.features import (
    MAX_LIMIT,
    FeatureQuery,
    check_cursor,
    count_matches,
    parse_text_search,
    stream_features,
)
from spatial.params import parse_bbox, parse_datetime

LOGGER = logging.getLogger(__name__)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_PROVIDER = "server.provider.PostGISProvider"
#: Bytes of features gathered before a chunk is sent.
CHUNK_BYTES = 64 * 1024
_JSON_FORMATS = frozenset({"json", "geojson", "application/json", "application/geo+json"})
#: Parameters with a meaning of their own; any other name is a property filter.
_STANDARD = frozenset({
    "f", "lang", "limit", "offset", "cursor", "bbox", "bbox-crs", "crs", "datetime",
    "properties", "sortby", "filter", "filter-lang", "filter-crs", "skipGeometry",
    "resulttype", "q",
})


def wants_geojson(request: Request) -> bool:
    """Whether the request asks for GeoJSON (``f``, else the Accept header)."""
    f = request.query_params.get("f")
    if f is not None:
        return f.lower() in _JSON_FORMATS
    accept = request.headers.get("accept", "")
    return "text/html" not in accept or "json" in accept.split(",")[0]


class StreamingItems:
    """ASGI app for the items path: streams GeoJSON, hands the rest to pygeoapi.

    Parameters
    ----------
    resources : mapping
        pygeoapi's ``resources`` configuration.
    fallback : ASGI app
        pygeoapi's application.
    base_url : str
        Public URL of the server, for links.
    default_limit : int
        Page size when the caller names none.
    """

    def __init__(self, resources: Mapping[str, Any], fallback: ASGIApp, base_url: str,
                 default_limit: int = 100) -> None:
        self.fallback = fallback
        self.base_url = base_url.rstrip("/")
        self.default_limit = default_limit
        self.layers: dict[str, dict[str, Any]] = {}
        for name, res in resources.items():
            for p in res.get("providers", []):
                if p.get("type") == "feature" and p.get("name") == _PROVIDER:
                    data = p.get("data") or {}
                    self.layers[name] = {
                        "table": data["table"] if isinstance(data, dict) else str(data),
                        "schema": (data.get("schema") if isinstance(data, dict) else None)
                        or LAYERS_SCHEMA,
                        "id_field": p.get("id_field") or "id",
                        "time_field": p.get("time_field"),
                        "crs": [str(c) for c in p.get("crs") or [CRS84]],
                    }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        layer = self.layers.get(request.path_params.get("collection_id", ""))
        if request.method not in ("GET", "HEAD") or layer is None or not wants_geojson(request):
            await self.fallback(scope, receive, send)
            return
        principal = current_principal()
        body: Generator[bytes] | None = None
        try:
            # Everything a request can get wrong fails here, before the status
            # line: the parameters, access and the count (_plan), then the
            # query itself up to its first rows (the body's first chunk).
            plan = await run_in_threadpool(self._plan, request, layer, principal)
            body = self._body(request, layer, principal, plan)
            first = await run_in_threadpool(next, body)
        except OnemapError as exc:
            if body is not None:
                await run_in_threadpool(body.close)
            await error_response(exc)(scope, receive, send)
            return
        rest = body

        def chunks() -> Iterator[bytes]:
            yield first
            yield from rest

        response = StreamingResponse(
            chunks(),
            media_type="application/geo+json",
            headers={"Content-Crs": f"<{plan['crs_uri']}>"},
        )
        try:
            await response(scope, receive, send)
        finally:
            # A client that hung up leaves the body suspended: close it so its
            # server-side cursor and pooled connection are given back now.
            await run_in_threadpool(body.close)

    def _plan(self, request: Request, layer: dict[str, Any],
              principal: Principal) -> dict[str, Any]:
        """Parse the parameters, check access and count, before anything is sent."""
        params = request.query_params
        limit = min(int(params.get("limit", self.default_limit)), MAX_LIMIT)
        offset = int(params.get("offset", 0))
        cursor = params.get("cursor")
        text = parse_text_search(params["q"]) if "q" in params else ()
        crs_uri = params.get("crs") or CRS84
        if crs_uri not in layer["crs"] and crs_uri != CRS84:
            raise InvalidInputError(
                f"crs {crs_uri!r} is not offered; choose one of {', '.join(layer['crs'])}")
        out_srid, out_northing_first = crs_axes(crs_uri)
        cql = None
        if params.get("filter"):
            cql = parse_filter(params["filter"], params.get("filter-lang") or "cql2-text")
        filter_crs = params.get("filter-crs")
        cql_northing_first = False
        if filter_crs:
            srid, cql_northing_first = crs_axes(filter_crs)
            if srid not in (None, 4326):
                raise InvalidInputError(
                    f"filter-crs {filter_crs!r}: geometry literals in CRS84, EPSG:4326 or "
                    "EPSG:4490 only")
        sortby = tuple(
            (s.lstrip("+-"), not s.startswith("-"))
            for s in (params.get("sortby") or "").split(",") if s.strip()
        )
        with request_connection(principal) as conn:
            check_can_read(conn, layer["table"], principal)
            table = get_table(conn, layer["table"], schema=layer["schema"])
            published = {c.name for c in table.published}
            equals = {k: v for k, v in params.items() if k not in _STANDARD}
            unknown = sorted(set(equals) - published)
            if unknown:
                raise InvalidInputError(f"{layer['table']} has no property {unknown[0]!r}")
            q = FeatureQuery(
                limit=limit,
                offset=offset,
                bbox=parse_bbox(params["bbox"], params.get("bbox-crs"))
                if params.get("bbox") else None,
                datetime_range=parse_datetime(params["datetime"])
                if params.get("datetime") else None,
                equals=equals,
                select=tuple(p for p in (params.get("properties") or "").split(",") if p),
                sortby=sortby,
                skip_geometry=params.get("skipGeometry", "false").lower() == "true",
                hits_only=params.get("resulttype") == "hits",
                cql=cql,
                cql_northing_first=cql_northing_first,
                out_srid=out_srid,
                out_northing_first=out_northing_first,
                text=text,
            )
            for name in [s for s, _ in sortby] + list(q.select):
                if name not in published:
                    raise InvalidInputError(f"{layer['table']} has no property {name!r}")
            if cursor is not None:
                if sortby:
                    raise InvalidInputError(
                        "cursor paging follows the id order; leave out sortby")
                cursor = check_cursor(conn, table, layer["id_field"], cursor)
            matched = count_matches(conn, layer["table"], q, time_field=layer["time_field"],
                                    schema=layer["schema"])
        return {"q": q, "cursor": cursor, "matched": matched, "crs_uri": crs_uri}

    def _links(self, request: Request, plan: dict[str, Any], returned: int,
               last_id: Any) -> list[dict[str, str]]:
        q: FeatureQuery = plan["q"]
        url = f"{self.base_url}{request.url.path}"
        here = dict(request.query_params)

        def link(rel: str, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, str]:
            args = {k: v for k, v in {**here, **changes}.items() if k not in drop}
            return {"rel": rel, "type": "application/geo+json", "title": rel,
                    "href": f"{url}?{urlencode(args)}"}

        links = [link("self", {"f": "json"})]
        html = link("alternate", {"f": "html"})
        html["type"] = "text/html"
        links.append(html)
        if not q.hits_only and returned == q.limit and q.limit > 0:
            if not q.sortby:
                links.append(link("next", {"cursor": str(last_id)}, drop=("offset",)))
            else:
                links.append(link("next", {"offset": q.offset + q.limit}))
        if plan["cursor"] is None and q.offset > 0:
            links.append(link("prev", {"offset": max(0, q.offset - q.limit)}))
        collection = url.rsplit("/items", 1)[0]
        links.append({"rel": "collection", "type": "application/json", "title": "collection",
                      "href": f"{collection}?f=json"})
        return links

    def _body(self, request: Request, layer: dict[str, Any], principal: Principal,
              plan: dict[str, Any]) -> Generator[bytes]:
        """The GeoJSON page, in chunks of about :data:`CHUNK_BYTES`.

        The first chunk is yielded only once the query has run and its first
        rows are in, so an error of the query is raised to the caller of the
        first ``next()`` (an answer not yet started) rather than cutting a body.
        """
        q: FeatureQuery = plan["q"]
        head = b'{"type":"FeatureCollection","features":['
        returned, last_id = 0, None
        if q.hits_only:
            yield head
        else:
            with request_connection(principal) as conn:
                rows = stream_features(
                    conn, layer["table"], q, id_field=layer["id_field"],
                    time_field=layer["time_field"], schema=layer["schema"],
                    after=plan["cursor"],
                )
                first = next(rows, None)  # runs the query: its errors come before any byte
                yield head
                if first is not None:
                    try:
                        buffer: list[str] = []
                        size = 0
                        for fid, text in itertools.chain((first,), rows):
                            buffer.append(text)
                            size += len(text)
                            returned += 1
                            last_id = fid
                            # Each chunk costs a hop between threads: send ~64 kB at a time.
                            if size >= CHUNK_BYTES:
                                yield ((b"," if returned > len(buffer) else b"")
                                       + ",".join(buffer).encode())
                                buffer, size = [], 0
                        if buffer:
                            yield ((b"," if returned > len(buffer) else b"")
                                   + ",".join(buffer).encode())
                    except Exception:
                        # Headers are gone: the truncated body tells the client.
                        LOGGER.exception("streaming %s failed after %d features",
                                         layer["table"], returned)
                        raise
        tail: dict[str, Any] = {"numberReturned": returned}
        if plan["matched"] is not None:
            tail["numberMatched"] = plan["matched"]
        tail["timeStamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        tail["links"] = self._links(request, plan, returned, last_id)
        yield b"]," + json.dumps(tail, ensure_ascii=False)[1:].encode()


def warm_up() -> None:
    """Open the pool before the first request (start-up hook)."""
    get_pool()
