"""Styles, legends, glyphs and the AMap proxy over HTTP (Starlette, no pygeoapi).

Routes:

- ``GET /styles`` — OGC API Styles list (``{"styles": [{"id", "title", "links"}]}``);
- ``GET /styles/{id}`` (``?f=mapbox`` the same) — the MapLibre style, URLs resolved
  for the server it is fetched from;
- ``GET /styles/{id}/legend`` — the legend entries the widget draws;
- ``GET /fonts/{fontstack}/{range}.pbf`` — Latin SDF glyphs (:mod:`spatial.glyphs`);
- ``GET /basemaps/amap/{z}/{x}/{y}.png`` — AMap shifted from GCJ-02, only with
  ``ONEMAP_AMAP=1`` (:mod:`spatial.basemap`).

Unknown query parameters are a 400, an unknown style a 404, like the rest of the API.
:func:`styles_routes` builds them; :mod:`server.app` adds them before pygeoapi's mount.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Collection
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spatial.errors import InvalidInputError, NotFoundError
from spatial.glyphs import GlyphStore
from spatial.settings import Settings, get_settings
from spatial.styles import BaseMaps, StyleCatalog

LOGGER = logging.getLogger(__name__)

STYLE_TYPE = "application/vnd.mapbox.style+json"
_ZH = " / 请求参数有误"


def _check_params(request: Request, allowed: Collection[str],
                  formats: Collection[str] = ("json",)) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise InvalidInputError(f"unknown query parameter(s): {', '.join(unknown)}{_ZH}")
    fmt = request.query_params.get("f")
    if fmt is not None and fmt not in formats:
        raise InvalidInputError(f"f must be one of {', '.join(formats)}, got {fmt!r}{_ZH}")


def server_base(request: Request, settings: Settings) -> str:
    """The URL styles are resolved against.

    ``ONEMAP_URL`` when the operator set it to something other than the
    default ``http://{host}:{port}`` (a proxy in front); otherwise the URL
    this request came to, so a style fetched from ``http://10.0.0.5:8000``
    points its tiles there.
    """
    configured = os.environ.get("ONEMAP_URL", "").rstrip("/")
    default = f"http://{settings.host}:{settings.port}"
    if configured and configured != default:
        return configured
    return str(request.base_url).rstrip("/")


class StyleService:
    """The style, legend, font and base-map endpoints.

    Parameters
    ----------
    catalog : StyleCatalog
        The styles.
    glyphs : GlyphStore
        Glyph ranges.
    settings : Settings
        For the server's configured URL.
    """

    def __init__(self, catalog: StyleCatalog, glyphs: GlyphStore, settings: Settings) -> None:
        self.catalog = catalog
        self.glyphs = glyphs
        self.settings = settings

    async def list_styles(self, request: Request) -> JSONResponse:
        """``GET /styles``."""
        _check_params(request, {"f"})
        base = server_base(request, self.settings)
        styles = []
        for sid in self.catalog.ids:
            title = self.catalog.title(sid)
            styles.append({
                "id": sid,
                "title": f"{title['zh']} / {title['en']}",
                "title_zh": title["zh"],
                "title_en": title["en"],
                "links": [
                    {"rel": "stylesheet", "type": STYLE_TYPE,
                     "title": "MapLibre / Mapbox style", "href": f"{base}/styles/{sid}?f=mapbox"},
                    {"rel": "describedby", "type": "application/json",
                     "title": "legend / 图例", "href": f"{base}/styles/{sid}/legend"},
                ],
            })
        return JSONResponse({
            "styles": styles,
            "links": [{"rel": "self", "type": "application/json", "href": f"{base}/styles"}],
        })

    async def get_style(self, request: Request) -> JSONResponse:
        """``GET /styles/{id}``: the MapLibre style."""
        _check_params(request, {"f"}, formats=("mapbox", "json"))
        style = self.catalog.style(request.path_params["sid"],
                                   server_base(request, self.settings), BaseMaps.from_env())
        return JSONResponse(style, media_type=STYLE_TYPE,
                            headers={"Cache-Control": "no-cache"})

    async def get_legend(self, request: Request) -> JSONResponse:
        """``GET /styles/{id}/legend``."""
        _check_params(request, {"f"})
        return JSONResponse(self.catalog.legend(request.path_params["sid"],
                                                BaseMaps.from_env()))

    async def get_glyphs(self, request: Request) -> Response:
        """``GET /fonts/{fontstack}/{range}.pbf``: always a PBF for a valid range."""
        _check_params(request, ())
        try:
            data = await asyncio.to_thread(self.glyphs.get, request.path_params["fontstack"],
                                           request.path_params["range"])
        except ValueError as exc:
            raise InvalidInputError(f"{exc}{_ZH}") from None
        return Response(data, media_type="application/x-protobuf",
                        headers={"Cache-Control": "public, max-age=86400"})

    async def get_amap(self, request: Request) -> Response:
        """``GET /basemaps/amap/{z}/{x}/{y}.png``: AMap shifted onto WGS84 tiles."""
        from spatial.basemap import compose, fetch_amap

        if not BaseMaps.from_env().amap:
            raise NotFoundError("AMap base map is not configured (ONEMAP_AMAP=1) / 未配置高德底图")
        _check_params(request, ())
        try:
            z, x, y = (int(request.path_params[k]) for k in ("z", "x", "y"))
            data = await asyncio.to_thread(compose, z, x, y, fetch_amap)
        except ValueError as exc:
            raise InvalidInputError(f"{exc}{_ZH}") from None
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})

    def routes(self) -> list[BaseRoute]:
        """The routes, to go before pygeoapi's mount."""
        return [
            Route("/styles", self.list_styles),
            Route("/styles/{sid}", self.get_style),
            Route("/styles/{sid}/legend", self.get_legend),
            Route("/fonts/{fontstack}/{range}.pbf", self.get_glyphs),
            Route("/basemaps/amap/{z}/{x}/{y}.png", self.get_amap),
        ]


def styles_routes(settings: Settings | None = None,
                  styles_dir: Path | None = None) -> list[BaseRoute]:
    """Build the style service and return its routes.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`spatial.settings.get_settings`.
    styles_dir : Path, optional
        Defaults to ``<project>/styles``.
    """
    settings = settings or get_settings()
    catalog = StyleCatalog(styles_dir or settings.root / "styles")
    glyphs = GlyphStore(settings.var_dir / "fonts")
    return StyleService(catalog, glyphs, settings).routes()
