"""The ASGI application: pygeoapi's Starlette app plus onemap's own routes.

Wiring only. pygeoapi reads its configuration when its Starlette module is
imported, so :func:`create_app` sets the environment first and imports it
then — never at import time of this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server import fixes
from server.config import write_config
from server.openapi import write_document
from server.problems import error_response, problem
from spatial.errors import NotFoundError, OnemapError, http_status
from spatial.settings import Settings, get_settings

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
#: Vector tiles choose their own encoding (gzipped once when cached, tiles/web.py).
GZIP_EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.mapbox-vector-tile")


#: Seconds ``/health`` waits for the database before it answers 503.
HEALTH_SECONDS = 1.0


def _pending_migrations() -> list[str]:
    """The migrations not applied, each wait bounded by :data:`HEALTH_SECONDS`."""
    from spatial.db import get_pool
    from spatial.migrate import pending

    with get_pool().connection(timeout=HEALTH_SECONDS) as conn, conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)",
                     (f"{HEALTH_SECONDS:g}s",))
        return pending(conn)


async def health(request: Request) -> JSONResponse:
    """Report whether the database answers and migrations are current.

    Answers within :data:`HEALTH_SECONDS`: 503 while the database is away (the
    pool refuses at once, :class:`spatial.db.Pool`), does not answer in time or
    has migrations pending; 200 otherwise. The event loop never waits for it.
    """
    from spatial.errors import DatabaseUnavailableError

    try:
        # asyncio's thread (not anyio's): a wait that times out returns at once
        todo = await asyncio.wait_for(asyncio.to_thread(_pending_migrations), HEALTH_SECONDS)
    except (DatabaseUnavailableError, TimeoutError) as exc:
        LOGGER.warning("health check: the database is unavailable (%s)",
                       str(exc) or f"no answer within {HEALTH_SECONDS:g} s")
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    except Exception:
        LOGGER.exception("health check failed")
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    status = "ok" if not todo else "degraded"
    return JSONResponse(
        {"status": status, "database": "up", "pending_migrations": todo},
        status_code=200 if not todo else 503,
    )


async def onemap_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer an onemap error raised on our own routes as an OGC exception document.

    The message of an :class:`~spatial.errors.OnemapError` is safe to show by
    contract; status and code come from :data:`spatial.errors.ERROR_ANSWERS`.
    """
    if not isinstance(exc, OnemapError):  # registered for OnemapError only
        raise TypeError(f"not an onemap error: {exc!r}")
    if http_status(exc) >= 500:
        LOGGER.error("on %s:", request.url.path)
    return error_response(exc)


def route_methods(routes: list[BaseRoute], scope: Scope) -> tuple[bool, set[str]]:
    """Whether a route serves the request, else the methods of routes serving its path.

    Parameters
    ----------
    routes : list of BaseRoute
        Routes in the order the router tries them; mounts are looked into.
    scope : Scope
        The request's ASGI scope.

    Returns
    -------
    served : bool
        A route matches path and method (or a mounted app without routes, e.g.
        static files, takes the path: it answers for itself).
    allowed : set of str
        When not served: the methods of the routes whose path matches.

    Examples
    --------
    >>> routes = [Route("/styles", health, methods=["GET"])]
    >>> served, allowed = route_methods(routes, {"type": "http", "path": "/styles",
    ...                                          "method": "TRACE"})
    >>> served, sorted(allowed)
    (False, ['GET', 'HEAD'])
    >>> route_methods(routes, {"type": "http", "path": "/nope", "method": "GET"})
    (False, set())
    """
    allowed: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = route.routes
            if not inner:
                return True, set()
            served, more = route_methods(inner, {**scope, **child})
            if served:
                return True, set()
            allowed |= more
        elif match is Match.FULL:
            return True, set()
        elif isinstance(route, Route):
            allowed |= route.methods or set()
    return False, allowed


class Unrouted:
    """pygeoapi's catch-all mount, answering what no route serves as OGC exception documents.

    Starlette tries the routes in order: one of onemap's routes whose path matches
    but not its method is only a partial match, and pygeoapi's mount at ``/`` then
    matches every path, so ``TRACE /styles`` reached pygeoapi and was a plain-text
    404. Here a request that no route serves is answered

    * 405 with ``Allow`` when some route (onemap's or pygeoapi's) serves its path
      with other methods;
    * a redirect (307) to the path with or without its trailing slash when a
      route serves that one (what Starlette does for pygeoapi's own routes);
    * 404 otherwise;

    each with an OGC exception document, as every other error.

    Parameters
    ----------
    app : ASGI application
        pygeoapi's Starlette application.
    routes : list of BaseRoute
        onemap's routes, tried before the mount.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.own_routes = list(routes)
        self.routes = [*routes, Mount("", app=app)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # pygeoapi's item route takes its id as a path ({identifier:path}), so
        # DELETE …/items/29/history reached pygeoapi as feature "29/history" (and,
        # anonymous, a 500 from its delete). No feature id holds a '/': below an
        # item only onemap's own sub-resources (photos, history) are served.
        below_item = _BELOW_ITEM.match(scope["path"]) is not None
        routes = self.own_routes if below_item else self.routes
        served, allowed = route_methods(routes, scope)
        if served:
            await self.app(scope, receive, send)
            return
        response: Response
        method, path = scope["method"], scope["path"]
        if allowed:
            methods = ", ".join(sorted(allowed))
            response = problem(405, "MethodNotAllowed",
                                  f"{method} is not allowed on {path}; allowed: {methods}",
                                  {"Allow": methods})
        else:
            other = path[:-1] if path.endswith("/") else f"{path}/"
            moved = {**scope, "path": other}
            served_there, allowed_there = route_methods(routes, moved)
            if path != "/" and (served_there or allowed_there):
                response = RedirectResponse(URL(scope=moved), status_code=307)
            else:
                response = error_response(NotFoundError(f"nothing is served at {path} / 无此资源"))
        await response(scope, receive, send)


#: A path below a feature: ``/collections/{id}/items/{featureId}/…``.
_BELOW_ITEM = re.compile(r"^/collections/[^/]+/items/[^/]+/.")


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    """The router's 404 (a path no route takes, e.g. one with a line break) as an
    OGC exception document."""
    return error_response(NotFoundError(f"nothing is served at {request.url.path} / 无此资源"))


class ContextExecutor(ThreadPoolExecutor):
    """Thread pool that runs each call in a copy of the submitter's context.

    pygeoapi hands every API call to ``loop.run_in_executor``, which (unlike
    ``asyncio.to_thread``) drops context variables; the request's principal
    (:mod:`spatial.access`) must reach the provider in that thread.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start-up and shut-down of one worker process."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ContextExecutor(thread_name_prefix="onemap"))
    hooks: list[Callable[[], object]] = []  # this run's, the app may be started again
    for start in app.state.startup_hooks:
        stop = start()
        if inspect.isawaitable(stop):  # an async hook (the tile pool opens in this loop)
            stop = await stop
        if callable(stop):
            hooks.append(stop)
    try:
        yield
    finally:
        for stop in reversed(hooks):
            try:
                done = stop()
                if inspect.isawaitable(done):
                    await done
            except Exception:
                LOGGER.exception("shutdown hook failed")


def _html_page_settings(starlette_app: Any, settings: Settings) -> None:
    """What pygeoapi's HTML pages (web/templates) show beyond its configuration.

    * ``server.map``: the Leaflet maps draw only what this server serves (an
      intranet reaches nothing else): its AMap proxy with ``ONEMAP_AMAP=1``,
      otherwise no base map (:func:`spatial.basemap.leaflet_base_map`);
    * ``onemap.widget_themes``: the theme in which an item page opens its
      feature in the widget (:func:`server.web.widget_themes`).

    Set for each app, not in the YAML, which pygeoapi reads once per process.
    """
    from pygeoapi import l10n

    from server import web
    from spatial.basemap import leaflet_base_map
    from spatial.styles import BaseMaps, StyleCatalog

    api = starlette_app.api_
    base_map = leaflet_base_map(api.tpl_config["server"]["url"], BaseMaps.from_env().amap)
    for config in (starlette_app.CONFIG, api.tpl_config):
        config["server"]["map"] = dict(base_map)
    catalog = StyleCatalog(settings.root / "styles")
    api.tpl_config["onemap"] = {"widget_themes": web.widget_themes(
        {sid: catalog.style(sid, "") for sid in catalog.ids})}
    # pygeoapi keeps each language's translation of the configuration
    # (l10n.translate_struct): dropped, or the pages kept an earlier app's.
    l10n._cfg_cache.clear()


def create_app() -> Starlette:
    """Build the onemap ASGI application.

    Returns
    -------
    starlette.applications.Starlette
        pygeoapi mounted at ``/`` and onemap's routes (``/health``, ``/metrics``)
        beside it; every response carries ``Server-Timing``.
    """
    settings = get_settings()
    os.environ.setdefault("ONEMAP_URL", settings.public_url)
    # pygeoapi-config.yml names the HTML templates under ${ONEMAP_HOME}: the clone,
    # wherever the server is started from.
    os.environ.setdefault("ONEMAP_HOME", str(settings.root))
    # pygeoapi reads the configuration generated from pygeoapi-config.yml and the
    # layer declarations (server/config.py), once, when its module is imported.
    config_path = write_config(settings)
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(write_document(settings, config_path))
    fixes.install()
    from pygeoapi import starlette_app  # reads the configuration on import

    fixes.without_adapter_gzip()  # compressed once, below, for every route
    _html_page_settings(starlette_app, settings)

    from server import auth
    from server.contract import ContractMiddleware
    from server.etag import ItemHeadersMiddleware
    from server.items import StreamingItems, warm_up
    from server.manager import worker_hook
    from server.metrics import MetricsMiddleware, metrics
    from server.problems import ChallengeMiddleware
    from tiles.web import create_service as create_tile_service

    # Our routes come before pygeoapi's mount; outermost middleware first.
    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/metrics", metrics),
    ]
    middleware: list[Middleware] = [Middleware(MetricsMiddleware)]
    routes += auth.routes()  # /auth/login, /auth/logout, /auth/me, /auth/login-log
    from server import search, web
    routes += search.routes()  # /search (the map's search box)
    routes += web.routes()  # /static/maplibre-gl, /widget, /m (static files)
    # Compression for every route, once: an answer that already names its encoding
    # (a cached tile) passes through, and Vary: Accept-Encoding goes with it.
    middleware.insert(0, Middleware(GZipMiddleware, minimum_size=500, compresslevel=6,
                                    exclude_content_types=GZIP_EXCLUDED))
    middleware.insert(0, web.cors_middleware())  # outermost: CORS for every route (widget)
    middleware.append(Middleware(ChallengeMiddleware))  # every 401 names its challenge
    middleware.append(Middleware(auth.AuthMiddleware))  # the request's principal
    middleware.append(Middleware(ContractMiddleware))  # 400 for unknown/malformed input
    middleware.append(Middleware(ItemHeadersMiddleware))  # If-Match/Content-Crs in, ETag out
    # Called at start-up; one that returns a callable gets it called at shutdown.
    startup_hooks: list[Callable[[], object]] = []
    startup_hooks.append(worker_hook(starlette_app.api_.manager))  # runs async process jobs

    # GeoJSON pages stream from a server-side cursor; other forms go to pygeoapi.
    items = StreamingItems(
        starlette_app.CONFIG["resources"], starlette_app.APP, settings.public_url,
        default_limit=int(starlette_app.CONFIG["server"].get("limits", {})
                          .get("default_items", 100)),
    )
    routes.append(Route("/collections/{collection_id}/items", items,
                        methods=["GET", "HEAD", "POST", "OPTIONS"]))
    startup_hooks.append(warm_up)  # the pool is open before the first request
    tile_service = create_tile_service(settings)  # OGC API Tiles (tiles/web.py)
    routes += tile_service.routes()
    startup_hooks.append(tile_service.start)
    from server import photos
    routes += photos.routes()  # /collections/event/items/{id}/photos (event photos)
    from server import whatif
    routes += whatif.routes(starlette_app.api_.manager)  # /scenarios (what-if scenarios)
    from server import results
    # /jobs/{id}/results/{output}/items, tiles, style: feature outputs as layers
    routes += results.routes(starlette_app.api_.manager)

    from server.styles import styles_routes
    routes += styles_routes(settings)  # /styles, /styles/{id}[/legend], /fonts, /basemaps/amap
    routes.append(Mount("/", app=Unrouted(starlette_app.APP, list(routes))))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={OnemapError: onemap_error, 404: not_found},
        lifespan=lifespan,
    )
    app.state.startup_hooks = startup_hooks
    return app
