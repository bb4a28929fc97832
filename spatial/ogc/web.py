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
"""

from __future__ import annotations

import logging
import mimetypes
import os
from pathlib import Path

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from spatial.ogc.problems import problem
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
    return problem(404, "NotFound", f"no such file: {path} / 文件不存在")


class StaticDirectory:
    """Serves one directory (:meth:`serve` is the Starlette endpoint).

    Parameters
    ----------
    root : Path
        The directory (it may be missing: then everything is 404).
    cache_control : str
        The ``Cache-Control`` header of its files.
    """

    def __init__(self, root: Path, cache_control: str) -> None:
        self.root = root
        self.cache_control = cache_control

    async def serve(self, request: Request) -> Response:
        """Answer the file the request names, or 404."""
        relative = request.path_params.get("path", "")
        target = resolve_inside(self.root, relative)
        if target is None:
            return _not_found(request.url.path)
        media = _TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0]
        return FileResponse(target, media_type=media or "application/octet-stream",
                            headers={"Cache-Control": self.cache_control,
                                     "X-Content-Type-Options": "nosniff"})


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


def routes(web_dir: Path | None = None) -> list[BaseRoute]:
    """The static routes, to be placed before pygeoapi's mount.

    Parameters
    ----------
    web_dir : Path, optional
        The ``web/`` directory; defaults to the project's.
    """
    web = web_dir if web_dir is not None else get_settings().root / "web"
    # The widget and the mobile map revalidate (ETag) so a deploy shows at once;
    # MapLibre's files change only with the pinned npm version.
    served = [
        ("/static/maplibre-gl", web / "node_modules" / "maplibre-gl" / "dist",
         "public, max-age=86400"),
        ("/widget", web / "widget", "no-cache"),
        ("/m", web / "mobile", "no-cache"),
    ]
    vendor = VendorDirectory(web / "node_modules")
    out: list[BaseRoute] = [
        Route("/static/vendor/{path:path}", vendor.serve, methods=["GET", "HEAD"])]
    for prefix, root, cache in served:
        endpoint = StaticDirectory(root, cache)
        out.append(Route(f"{prefix}/{{path:path}}", endpoint.serve, methods=["GET", "HEAD"]))
        out.append(Route(prefix, _redirect_to_slash, methods=["GET", "HEAD"]))
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
    route. Origins: env ``ONEMAP_CORS_ORIGINS`` (comma-separated, default
    ``*``). No cookies are involved (credentials travel in headers), so ``*``
    never shares a session.

    Returns
    -------
    starlette.middleware.Middleware
        To be put first in the application's middleware list.
    """
    raw = os.environ.get("ONEMAP_CORS_ORIGINS", "*")
    origins = [o.strip() for o in raw.split(",") if o.strip()] or ["*"]
    return Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                      allow_headers=list(CORS_REQUEST_HEADERS),
                      expose_headers=list(CORS_EXPOSED_HEADERS), max_age=600)


__all__ = ["VENDOR", "StaticDirectory", "VendorDirectory", "cors_middleware", "resolve_inside",
           "routes"]
