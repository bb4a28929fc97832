"""An event's own resources: its photos and its course.

``/collections/event/items/{event_id}/photos[/{photo_id}]`` and
``/collections/event/items/{event_id}/history``.

``POST`` takes the image bytes as the body (``Content-Type: image/jpeg``,
``image/png`` or ``image/webp``, at most 8 MB): 201 and the photo's JSON with
``Location``; 200 and the existing photo when this event already has these
bytes (an upload sent again); 400 when the bytes are not the declared type,
413 when too big, 415 for another type. ``GET .../photos`` lists an event's
photos, ``GET .../photos/{photo_id}`` answers the bytes. ``GET .../history``
answers the event's status changes (:func:`spatial.events.status_history`). Everything runs on
the caller's connection (:func:`spatial.access.request_connection`), so the
database decides who may see or attach (row-level security, migration 165);
the checks themselves are :mod:`spatial.photos`. Errors are answered by the
application's handler of :class:`spatial.errors.OnemapError` (statuses from
:data:`spatial.errors.HTTP_STATUS`).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.contract import read_capped
from spatial import events, photos
from spatial.access import Principal, check_can_read, current_principal, request_connection
from spatial.errors import InvalidInputError
from spatial.settings import get_settings

LOGGER = logging.getLogger(__name__)

_BASE = "/collections/event/items/{event_id}/photos"


def _int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


async def _read_body(request: Request) -> bytes:
    """The body, read as it streams, refusing more than :data:`spatial.photos.MAX_BYTES`.

    A ``Content-Length`` over the cap is refused before a byte is read; a
    chunked body as soon as what arrived passes the cap (the rest is never
    read). The contract middleware does not buffer image bodies
    (:func:`server.contract.body_is_checked`), so this is the first read.
    """
    return await read_capped(request.stream(), request.headers.get("content-length", "").strip(),
                             photos.MAX_BYTES, photos.too_large)


def _attach(principal: Principal, event_id: int, data: bytes,
            content_type: str | None) -> tuple[photos.Photo, bool]:
    # Type and size first: a wrong upload costs no database round trip.
    photos.check_photo(data, content_type)
    with request_connection(principal) as conn:
        check_can_read(conn, "event_photo", principal)
        return photos.attach_photo(conn, event_id, data, content_type)


async def upload(request: Request) -> Response:
    """``POST .../photos``: attach the body's image to the event."""
    principal = current_principal()
    event_id = _int(request, "event_id")
    data = await _read_body(request)
    photo, created = await run_in_threadpool(
        _attach, principal, event_id, data, request.headers.get("content-type"))
    body = photo.as_json(get_settings().public_url)
    return JSONResponse(body, status_code=201 if created else 200,
                        headers={"Location": body["href"]})


def _list(principal: Principal, event_id: int) -> list[photos.Photo]:
    with request_connection(principal) as conn:
        check_can_read(conn, "event_photo", principal)
        return photos.list_photos(conn, event_id)


async def listing(request: Request) -> Response:
    """``GET .../photos``: the event's photos (JSON)."""
    principal = current_principal()
    event_id = _int(request, "event_id")
    found = await run_in_threadpool(_list, principal, event_id)
    base = get_settings().public_url
    body: dict[str, Any] = {"event_id": event_id, "photos": [p.as_json(base) for p in found]}
    return JSONResponse(body)


def _get(principal: Principal, event_id: int, photo_id: int) -> tuple[photos.Photo, Any]:
    with request_connection(principal) as conn:
        check_can_read(conn, "event_photo", principal)
        return photos.get_photo(conn, event_id, photo_id)


async def one(request: Request) -> Response:
    """``GET .../photos/{photo_id}``: the image bytes."""
    principal = current_principal()
    event_id = _int(request, "event_id")
    photo_id = _int(request, "photo_id")
    photo, path = await run_in_threadpool(_get, principal, event_id, photo_id)
    # Scoped data: the browser may keep it, shared caches may not.
    return FileResponse(path, media_type=photo.content_type, headers={
        "Cache-Control": "private, max-age=86400", "ETag": f'"{photo.sha256}"'})


def _history(principal: Principal, event_id: int) -> list[dict[str, Any]]:
    with request_connection(principal) as conn:
        check_can_read(conn, "event", principal)
        return events.status_history(conn, event_id)


async def history(request: Request) -> Response:
    """``GET .../history``: the event's status changes, oldest first (JSON)."""
    principal = current_principal()
    event_id = _int(request, "event_id")
    rows = await run_in_threadpool(_history, principal, event_id)
    return JSONResponse({"event_id": event_id, "history": [
        {**row, "at": row["at"].isoformat()} for row in rows]})


def routes() -> list[BaseRoute]:
    """The photo routes, to be placed before pygeoapi's mount."""
    return [
        Route(_BASE, upload, methods=["POST"]),
        Route(_BASE, listing, methods=["GET", "HEAD"]),
        Route(_BASE + "/{photo_id}", one, methods=["GET", "HEAD"]),
        Route("/collections/event/items/{event_id}/history", history, methods=["GET", "HEAD"]),
    ]


__all__ = ["routes"]
