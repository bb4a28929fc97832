"""What onemap's collection and conformance documents say beyond pygeoapi 0.24.

Two additions, put in place by :func:`install` when the application is built:

* **Coverage collections are marked as such.** ``population_density`` and
  ``terrain`` have no items: pygeoapi gives them no ``items`` link and no
  ``itemType``. GDAL's OAPIF driver (3.6, and still in its current source)
  nevertheless takes every collection for a vector layer unless the
  collection's ``layerDataType`` is ``Coverage`` or ``Raster``; it then asks
  ``/collections/{id}/items``, gets pygeoapi's 400 "Invalid provider type" and
  prints it as an error while merely listing layers (``ogrinfo``). Each
  coverage collection's description gets ``"layerDataType": "Coverage"``
  (tests/api/test_real_clients.py).
* **Text search is declared.** The ``q`` parameter of
  ``/collections/{id}/items`` (:func:`spatial.features.parse_text_search`)
  follows OGC API - Features - Part 9: Text Search (draft 24-031), whose
  conformance classes pygeoapi does not list.
* **Extents come from the data.** A feature collection's ``extent`` is the
  box of its features and the range of its time field, as the caller may
  learn them (:mod:`spatial.extents`: the rows of the caller's scope for a
  scoped layer), current with every edit. ``pygeoapi-config.yml`` declares no
  extents for them; :func:`with_fallback_extents` gives pygeoapi, which needs
  one, the city's box when it reads the configuration.

pygeoapi stays at the edge: this module is imported by the application only.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Any

from spatial.access import current_principal
from spatial.extents import FALLBACK_BBOX, Extent, get_extent_cache

LOGGER = logging.getLogger(__name__)

#: OGC API - Features - Part 9 (draft 24-031): the ``q`` parameter and its
#: binding to ``/collections/{id}/items``.
TEXT_SEARCH_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/text-search",
    "http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/features-text-search",
)
#: What GDAL's OAPIF driver reads to leave a collection out of its vector layers.
COVERAGE_MARK = {"layerDataType": "Coverage"}
#: CRS of every advertised box.
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Reference system of every advertised interval.
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


def is_coverage(resource: dict[str, Any]) -> bool:
    """Whether a configured collection serves a coverage rather than features.

    Its default provider decides, as pygeoapi's collection description does:
    the first one, unless another says ``default: true``.

    Examples
    --------
    >>> is_coverage({"providers": [{"type": "coverage", "name": "x"}]})
    True
    >>> is_coverage({"providers": [{"type": "feature"}, {"type": "tile", "default": True}]})
    False
    >>> is_coverage({"providers": [{"type": "feature"}, {"type": "coverage"}]})
    False
    """
    providers = resource.get("providers") or []
    if not providers:
        return False
    default = next((p for p in providers if p.get("default")), providers[0])
    return default.get("type") == "coverage"


def with_coverages_marked(original: Any) -> Any:
    """Wrap pygeoapi's ``gen_collection``: a coverage collection's description
    gets :data:`COVERAGE_MARK` (idempotent)."""
    if getattr(original, "onemap_marked", False):
        return original

    @functools.wraps(original)
    def marked(api: Any, request: Any, dataset: str, locale_: str) -> Any:
        data = original(api, request, dataset, locale_)
        resource = api.config["resources"].get(dataset) or {}
        if isinstance(data, dict) and "itemType" not in data and is_coverage(resource):
            data.update(COVERAGE_MARK)
        return data

    marked.onemap_marked = True  # type: ignore[attr-defined]
    return marked


def feature_provider(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The PostGIS feature provider of a configured collection, if it has one.

    Examples
    --------
    >>> feature_provider({"providers": [{"type": "feature", "data": {"table": "lamp"}}]})
    {'type': 'feature', 'data': {'table': 'lamp'}}
    >>> feature_provider({"providers": [{"type": "coverage"}]}) is None
    True
    """
    for prov in resource.get("providers") or []:
        if prov.get("type") == "feature" and isinstance(prov.get("data"), dict) \
                and prov["data"].get("table"):
            return dict(prov)
    return None


def extent_document(extent: Extent) -> dict[str, Any]:
    """The ``extent`` member of a collection description (OGC API - Common).

    Examples
    --------
    >>> extent_document(Extent((116.4, 39.9, 116.5, 40.0)))["spatial"]["bbox"]
    [[116.4, 39.9, 116.5, 40.0]]
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> extent_document(Extent((0, 0, 1, 1), (start, start)))["temporal"]["interval"]
    [['2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z']]
    """
    out: dict[str, Any] = {"spatial": {"bbox": [list(extent.bbox)], "crs": CRS84}}
    if extent.interval is not None:
        out["temporal"] = {"interval": [[_rfc3339(t) for t in extent.interval]],
                           "trs": GREGORIAN}
    return out


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def with_data_extents(original: Any) -> Any:
    """Wrap pygeoapi's ``gen_collection``: a feature collection's ``extent`` is
    that of its data as the caller may learn it (idempotent).

    When the database cannot answer, the configured (fallback) extent stays
    and the failure is logged: a collection list is no reason for a 503.
    """
    if getattr(original, "onemap_extents", False):
        return original

    @functools.wraps(original)
    def with_extent(api: Any, request: Any, dataset: str, locale_: str) -> Any:
        data = original(api, request, dataset, locale_)
        provider = feature_provider(api.config["resources"].get(dataset) or {})
        if not isinstance(data, dict) or provider is None:
            return data
        try:
            extent = get_extent_cache().extent(
                provider["data"]["table"], current_principal(), provider.get("time_field"))
        except Exception:  # the configured extent is still an answer
            LOGGER.warning("extent of %s not computed; the configured one is served",
                           dataset, exc_info=True)
            return data
        data["extent"] = {**(data.get("extent") or {}), **extent_document(extent)}
        if extent.interval is None:
            data["extent"].pop("temporal", None)
        return data

    with_extent.onemap_extents = True  # type: ignore[attr-defined]
    return with_extent


def with_fallback_extents(original: Any) -> Any:
    """Wrap pygeoapi's ``get_config``: a collection declaring no ``extents`` gets
    the city's box, which pygeoapi requires (idempotent).

    Only what pygeoapi reads before onemap answers uses it (the configured
    extent is replaced per request by :func:`with_data_extents`).
    """
    if getattr(original, "onemap_extents", False):
        return original

    @functools.wraps(original)
    def loaded(*args: Any, **kwargs: Any) -> Any:
        config = original(*args, **kwargs)
        for resource in (config.get("resources") or {}).values():
            if resource.get("type") == "collection" and not resource.get("extents"):
                resource["extents"] = {"spatial": {"bbox": list(FALLBACK_BBOX), "crs": CRS84}}
        return config

    loaded.onemap_extents = True  # type: ignore[attr-defined]
    return loaded


def install() -> None:
    """Mark coverage collections, serve extents from the data and declare text
    search (idempotent).

    Call before ``pygeoapi.starlette_app`` is imported (it reads the
    configuration then) and before pygeoapi answers its first request; the
    rest takes effect per request (pygeoapi looks ``gen_collection`` up by
    name and copies its conformance list each time).
    """
    import importlib

    import pygeoapi.api as core
    import pygeoapi.api.itemtypes as itemtypes

    # ``pygeoapi.config`` as an attribute is the CLI group of that name, not the module.
    config = importlib.import_module("pygeoapi.config")
    config.get_config = with_fallback_extents(config.get_config)  # type: ignore[attr-defined]
    core.gen_collection = with_coverages_marked(core.gen_collection)
    core.gen_collection = with_data_extents(core.gen_collection)
    for uri in TEXT_SEARCH_CONFORMANCE:
        if uri not in itemtypes.CONFORMANCE_CLASSES_FEATURES:
            itemtypes.CONFORMANCE_CLASSES_FEATURES.append(uri)
