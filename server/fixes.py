"""Fixes to pygeoapi 0.24 that onemap installs when it builds its app.

Each replaces or wraps one function pygeoapi looks up by name; each names, in
its docstring, the pygeoapi 0.24.0 behaviour it fixes ("Upstream behaviour
fixed"), is tested through the real app, and is worth reporting upstream.
Reviewed against pygeoapi 0.24.0 (issue 14): every one is still needed —
``pygeoapi.crs.transform_bbox`` and ``_inplace_transform_filter_geometries``
still call ``pyproj.Transformer.from_crs`` per call, ``create_crs_transform_spec``
still returns None when ``crs=`` names the storage CRS, ``delete_job`` still
returns ``{}`` as its headers ("TODO: this response does not have any
headers"), the TileMatrixSets pages still pass ``api.tpl_config`` twice.
Errors are not translated here: pygeoapi's routes get onemap's statuses and
codes from the provider and the job manager (:data:`spatial.errors.ERROR_ANSWERS`).

* pygeoapi builds a new :class:`pyproj.Transformer` for every request that has
  a ``bbox`` or a spatial ``filter``. PROJ's operation search makes that about
  0.9 s for CRS84 → EPSG:4490 on this machine — alone it would break the
  1-second budget for an information query. Transformers are cached here.
* pygeoapi passes no CRS transform spec when ``crs=`` names the storage CRS, so
  a provider cannot tell that the caller wants that CRS's axis order.
* pygeoapi's ``DELETE /jobs/{id}`` answers with no ``Content-Type``, on which its
  own Starlette adapter fails (a 500 for every dismissal). The header is added
  (tests/api/test_processes.py).
* pygeoapi titles every property of ``/collections/{id}/queryables`` with its
  column name and its ``/schema`` not at all. Both take their titles from
  ``layers/fields.yml`` (:mod:`spatial.fields`) in the request's language, and a
  coded column (a ``CHECK (col IN (...))`` in the database) its ``enum`` with each
  value's label as ``oneOf: [{const, title}]`` (tests/api/test_field_titles.py).
* pygeoapi's ``server.gzip`` sets ``Content-Encoding: gzip`` in the response
  headers of every API call but compresses only on its adapter's success path:
  a format error (``f=xyz``, :meth:`API.get_format_exception`) goes out as plain
  JSON labelled gzip, which clients fail to decode, and a 204 carries the header
  on an empty body; it never sends ``Vary: Accept-Encoding`` and takes ``f=gzip``
  as a format. The application compresses once, for every route, in Starlette's
  ``GZipMiddleware`` (:func:`server.app.create_app`), so pygeoapi's own gzip
  is switched off whatever the configuration says (tests/api/test_compression.py).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

LOGGER = logging.getLogger(__name__)
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
STORAGE_CRS_URI = "http://www.opengis.net/def/crs/EPSG/0/4490"


@functools.lru_cache(maxsize=64)
def _transformer(from_key: str, to_key: str, always_xy: bool) -> Any:
    import pyproj
    from pygeoapi.crs import get_crs

    def crs(key: str) -> Any:
        return get_crs(key) if key.startswith(("http", "urn")) else pyproj.CRS.from_wkt(key)

    return pyproj.Transformer.from_crs(crs(from_key), crs(to_key), always_xy=always_xy)


def _crs_key(crs: Any) -> str:
    return crs if isinstance(crs, str) else crs.to_wkt()


def cached_transform_bbox(
    bbox: list[float], from_crs: Any, to_crs: Any, always_xy: bool = False
) -> list[float]:
    """pygeoapi's ``transform_bbox`` with the pyproj transformer cached.

    Upstream behaviour fixed: pygeoapi 0.24's ``pygeoapi.crs.transform_bbox``
    (called by ``api.itemtypes.get_collection_items``) builds a new
    :class:`pyproj.Transformer` for every request that carries a ``bbox``;
    PROJ's operation search makes that ~0.9 s for CRS84 → EPSG:4490 on this
    machine, which alone would break the 1-second budget for an information
    query. Same arithmetic (corner points, Web Mercator latitude clipped),
    transformer built once per CRS pair. The bbox text itself is read before
    pygeoapi sees it by :func:`spatial.params.parse_bbox` (contract middleware).
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

    Upstream behaviour fixed: pygeoapi 0.24's ``pygeoapi.crs.create_crs_transform_spec``
    answers None when ``crs=`` names the storage CRS (EPSG:4490), so the
    provider cannot tell that the caller wants EPSG:4490's declared axis order
    (latitude first) rather than the CRS84 order it answers by default. Here
    such a request still yields a spec whose target is the CRS asked for
    (tests/api/test_crs.py).
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


def transform_filter_geometries(node: Any, filter_crs: Any, storage_crs: Any) -> None:
    """Bring the geometry literals of a parsed CQL2 filter into the storage CRS.

    Upstream behaviour fixed: pygeoapi 0.24's
    ``pygeoapi.crs._inplace_transform_filter_geometries`` builds a new
    :class:`pyproj.Transformer` for every geometry literal of every filter
    (~0.9 s each for CRS84 → EPSG:4490). Does what pygeoapi's own step does
    (geometries with an inline ``SRID=`` keep theirs; every literal is labelled
    with the storage CRS afterwards), with cached transformers
    (tests/api/test_cql.py).
    """
    import pygeofilter.values
    import shapely
    from pygeoapi.crs import geojson_to_geom, geom_to_geojson, get_crs

    sub_nodes = getattr(node, "get_sub_nodes", None)
    if sub_nodes is None:
        return
    authority, code = storage_crs.to_authority()
    for sub in sub_nodes():
        if not isinstance(sub, pygeofilter.values.Geometry):
            transform_filter_geometries(sub, filter_crs, storage_crs)
            continue
        inline = sub.geometry.get("crs", {}).get("properties", {}).get("name")
        crs = get_crs(inline) if inline else filter_crs
        if crs != storage_crs:
            transformer = _transformer(_crs_key(crs), _crs_key(storage_crs), False)
            sub.geometry = geom_to_geojson(shapely.transform(
                geojson_to_geom(sub.geometry), transformer.transform, interleaved=False))
        sub.geometry["crs"] = {"properties": {"name": f"urn:ogc:def:crs:{authority}::{code}"}}




def delete_job_with_content_type(api: Any, request: Any, job_id: str) -> Any:
    """pygeoapi's ``delete_job``, its response given a JSON ``Content-Type``.

    Upstream behaviour fixed: pygeoapi 0.24's ``api.processes.delete_job``
    returns ``{}`` as its headers, and its Starlette adapter fails on a response
    without ``Content-Type``: every ``DELETE /jobs/{id}`` was a 500
    (tests/api/test_processes.py).
    """
    headers, status, content = _ORIGINAL_DELETE_JOB(api, request, job_id)
    headers = dict(headers or {})
    headers.setdefault("Content-Type", "application/json")
    return headers, status, content


_ORIGINAL_DELETE_JOB: Any = None


def with_field_titles(original: Any) -> Any:
    """Wrap pygeoapi's queryables or schema function: each property titled in the
    request's language from ``layers/fields.yml`` (JSON answers; a property without
    a title keeps what pygeoapi gave it), coded columns with their values and labels.

    Upstream behaviour fixed: pygeoapi 0.24's ``get_collection_queryables``
    titles every property with its column name and ``get_collection_schema``
    gives none, and neither knows a column's coded values
    (tests/api/test_field_titles.py).
    """
    if getattr(original, "onemap_titled", False):
        return original

    @functools.wraps(original)
    def titled(api: Any, request: Any, dataset: str | None = None) -> Any:
        import json

        from pygeoapi.util import to_json

        from spatial.fields import domains, field_titles

        headers, status, content = original(api, request, dataset)
        if status != 200 or not isinstance(content, str) or dataset is None \
                or "json" not in str((headers or {}).get("Content-Type", "")):
            return headers, status, content
        doc = json.loads(content)
        props = doc.get("properties", {})
        known = field_titles()
        for name, title in known.titles(dataset, props, request.locale).items():
            props[name]["title"] = title
        try:
            coded = domains(dataset)
        except Exception:  # the titles still help; the provider reports the database
            LOGGER.exception("value domains of %s could not be read", dataset)
            coded = {}
        for name, values in coded.items():
            if name in props and "enum" not in props[name]:
                labels = known.value_titles(name, request.locale)
                props[name]["enum"] = list(values)
                props[name]["oneOf"] = [{"const": v, "title": labels.get(v, v)} for v in values]
        return headers, status, to_json(doc, api.pretty_print)

    titled.onemap_titled = True  # type: ignore[attr-defined]
    return titled


def without_adapter_gzip() -> None:
    """Switch pygeoapi's gzip off after its API object is built (idempotent).

    Upstream behaviour fixed: pygeoapi 0.24 labels every answer ``Content-Encoding:
    gzip`` under ``server.gzip`` but compresses only on its adapter's success
    path (see the module's documentation; tests/api/test_compression.py).
    pygeoapi's ``API.__init__`` turns ``server.gzip`` into a format entry
    ``FORMAT_TYPES['gzip']``, which is all its header code looks at; without it
    no response is labelled ``Content-Encoding: gzip`` by pygeoapi and ``f=gzip``
    is an invalid format like any other.
    """
    from pygeoapi.formats import F_GZIP, FORMAT_TYPES

    if FORMAT_TYPES.pop(F_GZIP, None) is not None:
        LOGGER.info("pygeoapi's server.gzip is ignored: the application compresses responses")


def with_server_templates(render: Any) -> Any:
    """``render_j2_template`` that reads ``server.templates`` when handed the whole
    configuration as the template settings.

    Upstream behaviour fixed: pygeoapi 0.24's TileMatrixSets pages call
    ``render_j2_template(api.tpl_config, api.tpl_config, …)`` (``api/tiles.py``),
    so ``tpl_config['path']`` is missing and ``server.templates.path`` is never
    read: those pages kept pygeoapi's CDN-loading templates.
    """

    def rendered(config: dict[str, Any], tpl_config: dict[str, Any], *args: Any,
                 **kwargs: Any) -> Any:
        if isinstance(tpl_config, dict) and "server" in tpl_config and "path" not in tpl_config:
            tpl_config = tpl_config["server"].get("templates") or {}
        return render(config, tpl_config, *args, **kwargs)

    return rendered


def install() -> None:
    """Put the fixes in place (idempotent); pay one-time start-up costs now, not
    on a user's first request."""
    global _ORIGINAL_SPEC, _ORIGINAL_DELETE_JOB
    import pygeoapi.api as core
    import pygeoapi.api.itemtypes as itemtypes
    import pygeoapi.api.processes as processes
    import pygeoapi.crs as pygeoapi_crs

    if _ORIGINAL_DELETE_JOB is None:
        _ORIGINAL_DELETE_JOB = processes.delete_job
        processes.delete_job = delete_job_with_content_type
        import pygeoapi.api.tiles as tiles_api

        tiles_api.render_j2_template = with_server_templates(tiles_api.render_j2_template)

    itemtypes.get_collection_queryables = with_field_titles(itemtypes.get_collection_queryables)
    core.get_collection_schema = with_field_titles(core.get_collection_schema)
    itemtypes.transform_bbox = cached_transform_bbox
    pygeoapi_crs._inplace_transform_filter_geometries = transform_filter_geometries
    if _ORIGINAL_SPEC is None:
        _ORIGINAL_SPEC = itemtypes.create_crs_transform_spec
        itemtypes.create_crs_transform_spec = explicit_crs_transform_spec
    from server import collections

    collections.install()  # coverage collections marked, text search declared
    # Pay PROJ's search for the commonest pair (CRS84 → storage) at start-up, under
    # both keys it is asked by: URIs (bbox) and CRS objects (filter geometries).
    _transformer(CRS84_URI, STORAGE_CRS_URI, False)
    _transformer(_crs_key(pygeoapi_crs.get_crs(CRS84_URI)),
                 _crs_key(pygeoapi_crs.get_crs(STORAGE_CRS_URI)), False)
    # pygeofilter builds its CQL2 text grammar on first use (~0.7 s): do it now.
    from pygeofilter.parsers.cql2_text import parse

    parse("warm_up = 1")
