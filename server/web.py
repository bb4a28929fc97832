"""Static files of the browser side, served from the project (never a CDN).

* ``/static/maplibre-gl/*`` — MapLibre GL JS from ``web/node_modules/maplibre-gl/dist``
  (installed by ``npm ci --prefix web``);
* ``/widget/*`` — the staff-console widget (``web/widget``; ``/widget/`` is its
  iframe page);
* ``/m/*`` — the grid worker's mobile map (``web/mobile``);
* ``/static/vendor/<package>/*`` — the assets of pygeoapi's HTML pages as our
  templates (``web/templates``) reference them: Bootstrap, Leaflet and its
  plugins, Swagger UI, each from its npm package's ``dist`` (:data:`VENDOR`), so
  the pages work on an intranet without a CDN.

A request names a file inside its directory or nothing: the path is resolved
(symlinks and ``..`` included) and must stay inside the directory, otherwise
404. A directory answers its ``index.html``.

Who may frame what (``Content-Security-Policy: frame-ancestors``): ``/widget/``
the server's own pages and the widget's host origins (:func:`host_origins`,
``ONEMAP_CORS_ORIGINS``, the same list CORS allows); ``/m/`` nobody. A page
that frames a signed-in map could otherwise trick a person into clicking in it.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.problems import error_response
from spatial.errors import NotFoundError
from spatial.settings import get_settings

LOGGER = logging.getLogger(__name__)

#: Types ``mimetypes`` may not know on every system.
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``root``, or None.

    Parameters
    ----------
    root : Path
        The served directory.
    relative : str
        The request path below the route's prefix (already URL-decoded).

    Returns
    -------
    Path or None
        The existing file (``index.html`` for a directory); None when it does
        not exist or lies outside ``root``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.js").write_text("1")
    >>> resolve_inside(d, "a.js") == (d / "a.js").resolve()
    True
    >>> resolve_inside(d, "../etc/passwd") is None
    True
    """
    try:
        base = root.resolve(strict=True)
        target = (base / relative.lstrip("/")).resolve()
    except (OSError, RuntimeError, ValueError):  # missing root, symlink loop, NUL byte
        return None
    if not target.is_relative_to(base):
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def _not_found(path: str) -> JSONResponse:
    return error_response(NotFoundError(f"no such file: {path} / 文件不存在"))


class StaticDirectory:
    """Serves one directory (:meth:`serve` is the Starlette endpoint).

    Parameters
    ----------
    root : Path
        The directory (it may be missing: then everything is 404).
    cache_control : str
        The ``Cache-Control`` header of its files.
    headers : mapping of str to str, optional
        More headers of its files (the framing policy).
    """

    def __init__(self, root: Path, cache_control: str,
                 headers: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.cache_control = cache_control
        self.headers = dict(headers or {})

    async def serve(self, request: Request) -> Response:
        """Answer the file the request names, or 404."""
        relative = request.path_params.get("path", "")
        target = resolve_inside(self.root, relative)
        if target is None:
            return _not_found(request.url.path)
        media = _TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0]
        return FileResponse(target, media_type=media or "application/octet-stream",
                            headers={"Cache-Control": self.cache_control,
                                     "X-Content-Type-Options": "nosniff", **self.headers})


#: ``/static/vendor/<name>/…`` → the directory under ``web/node_modules`` it serves.
#: Only these packages: the rest of node_modules (test tools …) is not published.
VENDOR = {
    "bootstrap": "bootstrap/dist",
    "leaflet": "leaflet/dist",
    "leaflet.markercluster": "leaflet.markercluster/dist",
    "leaflet-draw": "leaflet-draw/dist",
    "leaflet.vectorgrid": "leaflet.vectorgrid/dist",
    "swagger-ui": "swagger-ui-dist",
}


class VendorDirectory:
    """Serves the :data:`VENDOR` packages' files (:meth:`serve` is the endpoint).

    Parameters
    ----------
    node_modules : Path
        ``web/node_modules``.
    """

    def __init__(self, node_modules: Path) -> None:
        self.dirs = {name: StaticDirectory(node_modules / sub, "public, max-age=86400")
                     for name, sub in VENDOR.items()}

    async def serve(self, request: Request) -> Response:
        """Answer ``<package>/<file>`` of a known package, or 404."""
        name, _, rest = request.path_params.get("path", "").partition("/")
        directory = self.dirs.get(name)
        if directory is None or not rest:
            return _not_found(request.url.path)
        request.path_params["path"] = rest
        return await directory.serve(request)


def _redirect_to_slash(request: Request) -> Response:
    url = request.url
    return RedirectResponse(url.replace(path=url.path + "/"), status_code=308)


#: An origin as CORS and CSP name it: scheme, host, optional port; nothing else.
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def host_origins(environ: Mapping[str, str] | None = None) -> list[str]:
    """The origins of the pages that embed the widget: ``ONEMAP_CORS_ORIGINS``.

    One list serves both policies: CORS (:func:`cors_middleware`) lets these
    pages call the API, and the framing policy (:func:`widget_frame_ancestors`)
    lets them frame ``/widget/``.

    Parameters
    ----------
    environ : mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    list of str
        The comma-separated entries, stripped; ``["*"]`` when the variable is
        unset or empty (CORS for every origin).

    Examples
    --------
    >>> host_origins({"ONEMAP_CORS_ORIGINS": " https://a.example, http://b.example:8080 "})
    ['https://a.example', 'http://b.example:8080']
    >>> host_origins({})
    ['*']
    """
    env = os.environ if environ is None else environ
    raw = env.get("ONEMAP_CORS_ORIGINS", "*")
    return [o.strip() for o in raw.split(",") if o.strip()] or ["*"]


def widget_frame_ancestors(origins: list[str]) -> str:
    """The ``Content-Security-Policy`` of ``/widget/``: who may frame it.

    The server's own pages (``'self'``) and each listed origin. ``*`` (any
    page may call the API with a credential it holds, the default of
    ``ONEMAP_CORS_ORIGINS``) lets no other page frame the widget: framing
    must be granted by name.

    Parameters
    ----------
    origins : list of str
        :func:`host_origins`.

    Returns
    -------
    str
        ``frame-ancestors 'self' …``.

    Raises
    ------
    ValueError
        An entry that is neither ``*`` nor an origin (``scheme://host[:port]``,
        no path): it would not match a page's origin in CORS either, and in
        the policy it could add directives of its own.

    Examples
    --------
    >>> widget_frame_ancestors(["*"])
    "frame-ancestors 'self'"
    >>> widget_frame_ancestors(["https://console.example", "http://10.0.0.7:8080"])
    "frame-ancestors 'self' https://console.example http://10.0.0.7:8080"
    >>> widget_frame_ancestors(["https://console.example/"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ONEMAP_CORS_ORIGINS: 'https://console.example/' is not an origin ...
    """
    named = []
    for origin in origins:
        if origin == "*":
            continue
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(f"ONEMAP_CORS_ORIGINS: {origin!r} is not an origin "
                             "(scheme://host[:port], no path)")
        named.append(origin)
    return " ".join(["frame-ancestors", "'self'", *named])


#: ``/m/``: the grid worker's map is a page of its own, never inside another.
MOBILE_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'",
                  "X-Frame-Options": "DENY"}


def routes(web_dir: Path | None = None) -> list[BaseRoute]:
    """The static routes, to be placed before pygeoapi's mount.

    Parameters
    ----------
    web_dir : Path, optional
        The ``web/`` directory; defaults to the project's.

    Raises
    ------
    ValueError
        ``ONEMAP_CORS_ORIGINS`` names something that is not an origin
        (:func:`widget_frame_ancestors`).
    """
    web = web_dir if web_dir is not None else get_settings().root / "web"
    widget_framing = {"Content-Security-Policy": widget_frame_ancestors(host_origins())}
    # The widget and the mobile map revalidate (ETag) so a deploy shows at once;
    # MapLibre's files change only with the pinned npm version.
    served: list[tuple[str, Path, str, Mapping[str, str]]] = [
        ("/static/maplibre-gl", web / "node_modules" / "maplibre-gl" / "dist",
         "public, max-age=86400", {}),
        ("/widget", web / "widget", "no-cache", widget_framing),
        ("/m", web / "mobile", "no-cache", MOBILE_FRAMING),
    ]
    vendor = VendorDirectory(web / "node_modules")
    out: list[BaseRoute] = [
        Route("/static/vendor/{path:path}", vendor.serve, methods=["GET", "HEAD"])]
    for prefix, root, cache, headers in served:
        endpoint = StaticDirectory(root, cache, headers)
        out.append(Route(f"{prefix}/{{path:path}}", endpoint.serve, methods=["GET", "HEAD"]))
        out.append(Route(prefix, _redirect_to_slash, methods=["GET", "HEAD"]))
    return out


#: The theme ``/widget/`` opens without ``?theme=`` (web/widget/index.html).
WIDGET_DEFAULT_THEME = "grid_management"


def widget_themes(styles: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """For each collection, the widget theme (style) to show one of its features in.

    A style draws a collection when one of its layers has it as ``source-layer``.
    The widget's default theme is preferred, then a theme drawing it among its
    own layers (not its base map's), in id order, then any style drawing it.

    Parameters
    ----------
    styles : mapping
        Style id → complete MapLibre style (:class:`spatial.styles.StyleCatalog`;
        a theme's own layers carry ``metadata["onemap:group"] == "thematic"``).

    Returns
    -------
    dict
        Collection id → style id, for every collection some style draws.

    Examples
    --------
    >>> own = {"metadata": {"onemap:group": "thematic"}}
    >>> styles = {
    ...     "base": {"layers": [{"source-layer": "road"}, {"source-layer": "building"}]},
    ...     "grid_management": {"layers": [{"source-layer": "road"},
    ...                                    {"source-layer": "building", **own}]},
    ...     "lighting": {"layers": [{"source-layer": "road", **own},
    ...                             {"source-layer": "lamp", **own}]}}
    >>> widget_themes(styles)
    {'building': 'grid_management', 'lamp': 'lighting', 'road': 'lighting'}
    """
    def drawn(sid: str, own_only: bool) -> set[str]:
        return {str(layer["source-layer"]) for layer in styles[sid].get("layers", [])
                if "source-layer" in layer and (not own_only or (
                    layer.get("metadata") or {}).get("onemap:group") == "thematic")}

    order = sorted(styles, key=lambda sid: (sid != WIDGET_DEFAULT_THEME, sid))
    out: dict[str, str] = {}
    for own_only in (True, False):
        for sid in order:
            for collection in sorted(drawn(sid, own_only)):
                out.setdefault(collection, sid)
    return out


#: Request headers a page on another origin may send (the widget's credentials,
#: Part 4 writes, async processes).
CORS_REQUEST_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "Content-Crs",
                        "If-Match", "If-None-Match", "Prefer", "Accept", "Accept-Language")
#: Response headers its scripts may read.
CORS_EXPOSED_HEADERS = ("ETag", "Location", "Content-Crs", "X-Tile-Truncated",
                        "Preference-Applied", "Server-Timing")


def cors_middleware() -> Middleware:
    """CORS for the whole application, so the widget embeds in pages of other origins.

    pygeoapi's own CORS (``server.cors``) covers only its mount, lets no
    ``Authorization`` header through a preflight and always allows ``*``, so
    it is off in ``pygeoapi-config.yml``; this one, outermost, covers every
    route. Origins: env ``ONEMAP_CORS_ORIGINS`` (:func:`host_origins`,
    comma-separated, default ``*``). No cookies are involved (credentials
    travel in headers), so ``*`` never shares a session.

    Returns
    -------
    starlette.middleware.Middleware
        To be put first in the application's middleware list.
    """
    return Middleware(CORSMiddleware, allow_origins=host_origins(), allow_methods=["*"],
                      allow_headers=list(CORS_REQUEST_HEADERS),
                      expose_headers=list(CORS_EXPOSED_HEADERS), max_age=600)


__all__ = ["MOBILE_FRAMING", "VENDOR", "WIDGET_DEFAULT_THEME", "StaticDirectory",
           "VendorDirectory", "cors_middleware", "host_origins", "resolve_inside", "routes",
           "widget_frame_ancestors", "widget_themes"]
