"""The ASGI application: pygeoapi's Starlette app plus onemap's own routes.

Wiring only. pygeoapi reads its configuration when its Starlette module is
imported, so :func:`create_app` sets the environment first and imports it
then — never at import time of this module.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from spatial.settings import Settings, get_settings

LOGGER = logging.getLogger(__name__)


def openapi_document(settings: Settings) -> Path:
    """Write pygeoapi's OpenAPI document for the configuration, once per change.

    Parameters
    ----------
    settings : Settings
        Where the configuration is and where generated files go.

    Returns
    -------
    Path
        The YAML document under ``var/``, named by a hash of the configuration,
        the public URL and the pygeoapi version.
    """
    import yaml
    from pygeoapi.openapi import get_oas
    from pygeoapi.util import yaml_load

    text = settings.config_path.read_bytes()
    key = hashlib.sha256(
        text + settings.public_url.encode() + version("pygeoapi").encode()
    ).hexdigest()[:16]
    path = settings.var_dir / f"openapi-{key}.yml"
    if not path.exists():
        with settings.config_path.open(encoding="utf-8") as fh:
            config = yaml_load(fh)
        document = get_oas(config)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        tmp.replace(path)  # atomic: several workers may start at once
    return path


async def health(request: Request) -> JSONResponse:
    """Report whether the database answers and migrations are current."""
    from spatial.db import get_pool
    from spatial.migrate import pending

    try:
        with get_pool().connection() as conn:
            todo = pending(conn)
    except Exception:
        LOGGER.exception("health check failed")
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    status = "ok" if not todo else "degraded"
    return JSONResponse(
        {"status": status, "database": "up", "pending_migrations": todo},
        status_code=200 if not todo else 503,
    )


CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
STORAGE_CRS_URI = "http://www.opengis.net/def/crs/EPSG/0/4490"


@functools.lru_cache(maxsize=64)
def _transformer(from_key: str, to_key: str, always_xy: bool) -> Any:
    import pyproj
    from pygeoapi.crs import get_crs

    return pyproj.Transformer.from_crs(get_crs(from_key), get_crs(to_key), always_xy=always_xy)


def _crs_key(crs: Any) -> str:
    return crs if isinstance(crs, str) else crs.to_wkt()


def cached_transform_bbox(
    bbox: list[float], from_crs: Any, to_crs: Any, always_xy: bool = False
) -> list[float]:
    """pygeoapi's ``transform_bbox`` with the pyproj transformer cached.

    pygeoapi 0.24 builds a new :class:`pyproj.Transformer` for every request
    that carries a ``bbox``; PROJ's operation search makes that ~0.9 s for
    CRS84 → EPSG:4490 on this machine, which alone would break the 1-second
    budget for an information query. Same arithmetic (corner points, Web
    Mercator latitude clipped), transformer built once per CRS pair.
    """
    transformer = _transformer(_crs_key(from_crs), _crs_key(to_crs), always_xy)
    if transformer.target_crs is not None and transformer.target_crs.to_epsg() == 3857:
        bbox = list(bbox)
        n = len(bbox) // 2
        bbox[1] = max(-85.0511, bbox[1])
        bbox[n + 1] = min(85.0511, bbox[n + 1])
    n = len(bbox) // 2
    lo = transformer.transform(*bbox[:n])
    hi = transformer.transform(*bbox[n:])
    return [*lo, *hi]


def explicit_crs_transform_spec(provider_def: dict[str, Any],
                                 query_crs_uri: str | None = None) -> Any:
    """pygeoapi's ``create_crs_transform_spec``, but never silent about the CRS asked for.

    pygeoapi answers None when ``crs=`` names the storage CRS (EPSG:4490), so the
    provider cannot tell that the caller wants EPSG:4490's declared axis order
    (latitude first) rather than the CRS84 order it answers by default. Here
    such a request still yields a spec whose target is the CRS asked for.
    """
    from pygeoapi.crs import DEFAULT_STORAGE_CRS, CrsTransformSpec, get_crs

    spec = _ORIGINAL_SPEC(provider_def, query_crs_uri)
    if spec is None and query_crs_uri:
        storage_uri = provider_def.get("storage_crs", DEFAULT_STORAGE_CRS)
        wkt = get_crs(storage_uri).to_wkt()
        spec = CrsTransformSpec(source_crs_uri=storage_uri, source_crs_wkt=wkt,
                                target_crs_uri=query_crs_uri, target_crs_wkt=wkt)
    return spec


_ORIGINAL_SPEC: Any = None


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
    os.environ["PYGEOAPI_CONFIG"] = str(settings.config_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi_document(settings))
    import pygeoapi.api.itemtypes as itemtypes

    global _ORIGINAL_SPEC
    itemtypes.transform_bbox = cached_transform_bbox  # see cached_transform_bbox
    if _ORIGINAL_SPEC is None:
        _ORIGINAL_SPEC = itemtypes.create_crs_transform_spec
        itemtypes.create_crs_transform_spec = explicit_crs_transform_spec
    # Pay PROJ's search for the commonest pair (bbox in CRS84 → storage) at start-up.
    _transformer(CRS84_URI, STORAGE_CRS_URI, False)
    from pygeoapi import starlette_app  # reads the configuration on import

    from spatial.ogc.metrics import MetricsMiddleware, metrics

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            Mount("/", app=starlette_app.APP),
        ],
        middleware=[Middleware(MetricsMiddleware)],
    )
