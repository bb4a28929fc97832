"""HTTP plumbing of feature edits: ``If-Match`` and ``Content-Crs`` in, ``ETag`` out.

pygeoapi hands a provider the request body only, and builds the response
headers itself. :class:`ItemHeadersMiddleware` puts an :class:`ItemHeaders`
holder into a context variable for each request: the provider
(:mod:`server.provider`) reads the request's ``If-Match`` and
``Content-Crs`` from it and writes the ETag of the row it returned, created or
updated into it; the middleware adds that ``ETag`` to a 2xx response. The
holder reaches pygeoapi's worker thread because the app's executor copies the
context (:class:`server.app.ContextExecutor`), and it is one mutable
object, so what the provider writes there is seen here.

The holder carries the request's ``Accept`` too, for the job manager
(:func:`server.manager.wants_multipart`), which pygeoapi does not hand it either.

Two more things belong to the same edge:

* an idempotent resend of an event (:attr:`spatial.editing.WriteResult.replayed`)
  is answered ``200 OK`` with the ``Location`` of the stored event instead of
  pygeoapi's ``201 Created``: nothing was created;
* pygeoapi 0.24 treats a POST to ``/items`` as a feature to add only when the
  ``Content-Type`` is exactly ``application/geo+json``; with a parameter
  (``; charset=utf-8``) the body would silently be taken for a CQL2 query. The
  media type's parameters are dropped on such requests.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class ItemHeaders:
    """Per-request exchange between the middleware and the provider.

    Attributes
    ----------
    if_match : str or None
        The request's ``If-Match`` header.
    content_crs : str or None
        The request's ``Content-Crs`` header.
    accept : str or None
        The request's ``Accept`` header (the job manager answers a raw result of
        several outputs as ``multipart/related`` when it is asked for).
    etag : str or None
        Set by the provider: the ETag of the feature it answered with.
    replayed : bool
        Set by the provider: a create found the feature already stored.
    """

    if_match: str | None = None
    content_crs: str | None = None
    accept: str | None = None
    etag: str | None = None
    replayed: bool = False


_current: contextvars.ContextVar[ItemHeaders | None] = contextvars.ContextVar(
    "onemap_item_headers", default=None
)


def current() -> ItemHeaders:
    """The running request's holder; a detached empty one outside a request.

    Examples
    --------
    >>> current().if_match is None
    True
    """
    holder = _current.get()
    return holder if holder is not None else ItemHeaders()


_ITEMS = re.compile(r"^/collections/[^/]+/items/?$")


class ItemHeadersMiddleware:
    """ASGI middleware carrying ``If-Match``/``Content-Crs`` in and ``ETag`` out.

    Parameters
    ----------
    app : ASGI application
        The application behind.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = MutableHeaders(scope=scope)
        holder = ItemHeaders(if_match=headers.get("if-match"),
                             content_crs=headers.get("content-crs"),
                             accept=headers.get("accept"))
        if scope["method"] == "POST" and _ITEMS.match(scope.get("path", "")):
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media == "application/geo+json":
                headers["content-type"] = media  # mutates scope["headers"]

        async def send_with_etag(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                if holder.replayed and message["status"] == 201:
                    message["status"] = 200
                if holder.etag:
                    MutableHeaders(scope=message).append("ETag", holder.etag)
            await send(message)

        token = _current.set(holder)
        try:
            await self.app(scope, receive, send_with_etag)
        finally:
            _current.reset(token)
