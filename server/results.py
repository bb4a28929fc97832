"""``/jobs/{jobId}/results/{outputId}/...``: a job's feature output as a map layer.

* ``GET …/items`` — its features, a GeoJSON FeatureCollection paged with
  ``limit`` / ``offset`` (``next`` link), filtered by ``bbox`` (``bbox-crs``),
  in the ``crs`` asked for (``Content-Crs`` header);
* ``GET …/tiles/WebMercatorQuad`` — a TileJSON, and
  ``GET …/tiles/WebMercatorQuad/{z}/{y}/{x}`` — vector tiles (MVT; OGC order:
  level, row, column, as the tile engine's routes);
* ``GET …/style`` — a MapLibre style drawing it by its geometry kind (fill,
  line or circle), with a legend entry (``metadata.legend``); the process may
  declare on its output a property to colour by (``colour_by``).

Who may see the job (:func:`spatial.jobs.get` with the request's principal)
may read these; anyone else gets the 404 of a job that does not exist. The
data are :mod:`spatial.job_layers`; tile coordinates and MVT extent are the
tile engine's (:mod:`tiles.tms`, :mod:`tiles.render`); the process's
declaration comes from the process manager the app gives :func:`routes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.contract import parse_query_string
from spatial import job_layers
from spatial.access import Principal, current_principal
from spatial.crs import crs_axes, parse_crs
from spatial.db import get_pool
from spatial.errors import InvalidInputError
from spatial.params import parse_bbox
from spatial.settings import get_settings
from tiles import render as tile_render
from tiles import tms as tile_tms

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
TMS = "WebMercatorQuad"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MVT = "application/vnd.mapbox-vector-tile"
#: Who may see a result varies with the caller: no shared cache keeps it.
PRIVATE = {"Cache-Control": "private, no-cache", "Vary": "Authorization, Cookie"}
_ZH = " / 请求参数有误"
#: Colour of each geometry kind, and the ramp of a coloured-by property (low → high).
COLOURS = {"polygon": "#3b82f6", "line": "#ef4444", "point": "#f59e0b"}
RAMP = ("#eff6ff", "#1d4ed8")

_ITEMS_PARAMS = frozenset({"f", "lang", "limit", "offset", "bbox", "bbox-crs", "crs"})
_OTHER_PARAMS = frozenset({"f", "lang"})


class Manager(Protocol):
    """What the routes need of a process manager (pygeoapi's has it)."""

    def get_processor(self, process_id: str) -> Any:
        """The processor of a configured process."""


def _check(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidInputError(f"unknown query parameter {unknown[0]!r}; accepted: "
                                f"{', '.join(sorted(allowed))}{_ZH}")
    if params.get("f", "json") != "json":
        raise InvalidInputError(f"f: only json here, got {params['f'][:32]!r}{_ZH}")


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.lstrip("+").isdigit() or not low <= int(text) <= high:
        raise InvalidInputError(f"{name} must be an integer within {low}-{high}, "
                                f"got {text[:32]!r}{_ZH}")
    return int(text)


def _output_crs(value: str | None) -> tuple[int | None, bool, str]:
    """``crs`` → (EPSG code or None for CRS84, northing first, URI for Content-Crs)."""
    if not value or not value.strip():
        return None, False, CRS84
    try:
        code = parse_crs(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"crs: {exc}{_ZH}") from None
    if not isinstance(code, int):
        raise InvalidInputError(f"crs {value!r}: an EPSG code or OGC CRS URI, not a "
                                f"Chinese obfuscated system{_ZH}")
    if value.strip().rstrip("/").upper().endswith("CRS84"):
        return None, False, CRS84
    srid, northing_first = crs_axes(f"EPSG:{code}")
    return srid, northing_first, f"http://www.opengis.net/def/crs/EPSG/0/{code}"


def _base(request: Request) -> str:
    job_id, output_id = request.path_params["job_id"], request.path_params["output_id"]
    return (f"{get_settings().public_url}/jobs/{quote(job_id, safe='')}/results/"
            f"{quote(output_id, safe='')}")


def _layer(principal: Principal, job_id: str, output_id: str) -> job_layers.FeatureLayer:
    with get_pool().connection() as conn:
        return job_layers.layer(conn, job_id, output_id, principal)


def _page(principal: Principal, job_id: str, output_id: str, **query: Any
          ) -> tuple[job_layers.FeatureLayer, list[dict[str, Any]], int]:
    with get_pool().connection() as conn:
        found = job_layers.layer(conn, job_id, output_id, principal)
        page, matched = job_layers.features(conn, found, **query)
    return found, page, matched


async def items(request: Request) -> Response:
    """``GET /jobs/{jobId}/results/{outputId}/items``: a page of the output's features."""
    params = parse_query_string(request.scope.get("query_string", b""))
    _check(params, _ITEMS_PARAMS)
    limit = _integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _integer(params, "offset", 0, 0, 2**62)
    bbox = parse_bbox(params["bbox"], params.get("bbox-crs")) if "bbox" in params else None
    srid, northing_first, crs_uri = _output_crs(params.get("crs"))
    found, page, matched = await run_in_threadpool(
        _page, current_principal(), request.path_params["job_id"],
        request.path_params["output_id"], limit=limit, offset=offset, bbox=bbox, srid=srid,
        northing_first=northing_first)
    base = _base(request)
    kept = {k: v for k, v in params.items() if k not in ("offset", "f")}
    links = [
        {"rel": "self", "type": "application/geo+json", "title": "this page / 本页",
         "href": f"{base}/items?{urlencode({**kept, 'offset': offset})}"},
        {"rel": "collection", "type": "application/json", "title": "the job / 作业",
         "href": f"{get_settings().public_url}/jobs/{found.job.id}"},
    ]
    if offset + len(page) < matched:
        links.append({"rel": "next", "type": "application/geo+json",
                      "title": "next page / 下一页",
                      "href": f"{base}/items?{urlencode({**kept, 'offset': offset + len(page)})}"})
    if offset > 0:
        previous = urlencode({**kept, "offset": max(0, offset - limit)})
        links.append({"rel": "prev", "type": "application/geo+json",
                      "title": "previous page / 上一页", "href": f"{base}/items?{previous}"})
    body = {"type": "FeatureCollection", "features": page, "numberMatched": matched,
            "numberReturned": len(page), "links": links}
    return Response(json.dumps(body, ensure_ascii=False, default=str),
                    media_type="application/geo+json",
                    headers={**PRIVATE, "Content-Crs": f"<{crs_uri}>"})


def _tile(principal: Principal, job_id: str, output_id: str, z: int, x: int, y: int) -> bytes:
    with get_pool().connection() as conn:
        found = job_layers.layer(conn, job_id, output_id, principal)
        return job_layers.tile(conn, found, z, x, y, extent=tile_render.EXTENT,
                               buffer=tile_render.BUFFER)


async def tile(request: Request) -> Response:
    """``GET …/tiles/WebMercatorQuad/{z}/{y}/{x}``: one vector tile of the output."""
    params = parse_query_string(request.scope.get("query_string", b""))
    _check(params, _OTHER_PARAMS)
    p = request.path_params
    z, y, x = tile_tms.parse_tile(TMS, p["z"], p["y"], p["x"])
    data = await run_in_threadpool(_tile, current_principal(), p["job_id"], p["output_id"],
                                   z, x, y)
    return Response(data, status_code=200 if data else 204, media_type=MVT, headers=PRIVATE)


async def tilejson(request: Request) -> Response:
    """``GET …/tiles/WebMercatorQuad``: a TileJSON of the output's tiles."""
    params = parse_query_string(request.scope.get("query_string", b""))
    _check(params, _OTHER_PARAMS)
    found = await run_in_threadpool(_layer, current_principal(), request.path_params["job_id"],
                                    request.path_params["output_id"])
    return JSONResponse(_tilejson(found, _base(request)), headers=PRIVATE)


def _tilejson(found: job_layers.FeatureLayer, base: str) -> dict[str, Any]:
    low, high = tile_tms.level_range(TMS)
    document: dict[str, Any] = {
        "tilejson": "3.0.0", "name": found.output_id, "scheme": "xyz",
        "tiles": [f"{base}/tiles/{TMS}/{{z}}/{{y}}/{{x}}"],
        "minzoom": low, "maxzoom": min(high, 22),
        "vector_layers": [{"id": found.output_id, "fields": {}}],
    }
    if found.bbox is not None:
        document["bounds"] = list(found.bbox)
        document["center"] = [(found.bbox[0] + found.bbox[2]) / 2,
                              (found.bbox[1] + found.bbox[3]) / 2, 12]
    return document


def _declared(manager: Manager, process_id: str, output_id: str) -> tuple[Any, dict[str, Any]]:
    """The declared output (or None) and its OGC description (or {})."""
    try:
        declared = getattr(manager.get_processor(process_id), "process", None)
    except Exception:  # a process no longer configured: draw the layer undescribed
        declared = None
    if declared is None:
        return None, {}
    output = next((o for o in getattr(declared, "outputs", ()) if o.id == output_id), None)
    described = declared.describe().get("outputs", {}).get(output_id, {})
    return output, dict(described)


def _colour_range(principal: Principal, found: job_layers.FeatureLayer,
                  prop: str) -> tuple[float, float] | None:
    with get_pool().connection() as conn:
        return job_layers.value_range(conn, found, prop)


def style_document(found: job_layers.FeatureLayer, base: str, title: Mapping[str, str],
                   colour_by: str | None = None,
                   value_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """A MapLibre style of one feature output.

    Parameters
    ----------
    found : FeatureLayer
        The output.
    base : str
        Its URL (``…/jobs/{id}/results/{output}``).
    title : mapping
        Its title by language (``zh``, ``en``).
    colour_by : str, optional
        A numeric property the features are coloured by.
    value_range : tuple of float, optional
        That property's lowest and highest values.

    Returns
    -------
    dict
        A style (version 8) with one vector source and its layers; ``metadata``
        has ``legend``: one entry per drawn layer.
    """
    kind = found.kind
    colour: Any = COLOURS[kind]
    legend: dict[str, Any] = {"layer": f"{found.output_id}-{kind}", "kind":
                              job_layers.KINDS[kind], "title": dict(title), "colour": colour}
    if colour_by and value_range is not None:
        low, high = value_range
        if high <= low:
            high = low + 1
        colour = ["interpolate", ["linear"], ["to-number", ["get", colour_by], low],
                  low, RAMP[0], high, RAMP[1]]
        legend.update({"property": colour_by, "colour": list(RAMP), "range": [low, high]})
    source = {"type": "vector", "url": f"{base}/tiles/{TMS}"}
    layer_id = f"{found.output_id}-{kind}"
    common = {"source": found.output_id, "source-layer": found.output_id}
    layers: list[dict[str, Any]]
    if kind == "polygon":
        layers = [
            {"id": layer_id, "type": "fill", **common,
             "paint": {"fill-color": colour, "fill-opacity": 0.45}},
            {"id": f"{found.output_id}-outline", "type": "line", **common,
             "paint": {"line-color": COLOURS["polygon"], "line-width": 1.2}},
        ]
    elif kind == "line":
        layers = [{"id": layer_id, "type": "line", **common,
                   "paint": {"line-color": colour, "line-width": 2}}]
    else:
        layers = [{"id": layer_id, "type": "circle", **common,
                   "paint": {"circle-color": colour, "circle-radius": 5,
                             "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}}]
    style: dict[str, Any] = {
        "version": 8, "name": f"{found.job.process_id} {found.output_id}",
        "metadata": {"legend": [legend], "job": str(found.job.id), "output": found.output_id},
        "sources": {found.output_id: source}, "layers": layers,
    }
    if found.bbox is not None:
        style["center"] = [(found.bbox[0] + found.bbox[2]) / 2,
                           (found.bbox[1] + found.bbox[3]) / 2]
    return style


def routes(manager: Manager) -> list[BaseRoute]:
    """The routes of job feature outputs as layers.

    Parameters
    ----------
    manager : Manager
        The process manager, for the processes' output declarations (titles,
        ``colour_by``).

    Returns
    -------
    list of BaseRoute
    """

    async def style(request: Request) -> Response:
        """``GET /jobs/{jobId}/results/{outputId}/style``: a MapLibre style of the output."""
        params = parse_query_string(request.scope.get("query_string", b""))
        _check(params, _OTHER_PARAMS)
        principal = current_principal()
        found = await run_in_threadpool(_layer, principal, request.path_params["job_id"],
                                        request.path_params["output_id"])
        output, described = _declared(manager, found.job.process_id, found.output_id)
        title = described.get("title") or {"en": found.output_id, "zh": found.output_id}
        colour_by = getattr(output, "colour_by", None)
        value_range = None
        if colour_by:
            value_range = await run_in_threadpool(_colour_range, principal, found, colour_by)
        return JSONResponse(style_document(found, _base(request), title, colour_by, value_range),
                            headers=PRIVATE)

    prefix = "/jobs/{job_id}/results/{output_id}"
    return [
        Route(f"{prefix}/items", items, methods=["GET", "HEAD"]),
        Route(f"{prefix}/tiles/{TMS}", tilejson, methods=["GET", "HEAD"]),
        Route(f"{prefix}/tiles/{TMS}/{{z}}/{{y}}/{{x}}", tile, methods=["GET", "HEAD"]),
        Route(f"{prefix}/style", style, methods=["GET", "HEAD"]),
    ]

