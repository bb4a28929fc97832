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

pygeoapi stays at the edge: this module is imported by the application only.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

LOGGER = logging.getLogger(__name__)

#: OGC API - Features - Part 9 (draft 24-031): the ``q`` parameter and its
#: binding to ``/collections/{id}/items``.
TEXT_SEARCH_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/text-search",
    "http://www.opengis.net/spec/ogcapi-features-9/1.0/conf/features-text-search",
)
#: What GDAL's OAPIF driver reads to leave a collection out of its vector layers.
COVERAGE_MARK = {"layerDataType": "Coverage"}


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


def install() -> None:
    """Mark coverage collections and declare text search (idempotent).

    Call before pygeoapi answers its first request; both take effect per
    request (pygeoapi looks ``gen_collection`` up by name and copies its
    conformance list each time).
    """
    import pygeoapi.api as core
    import pygeoapi.api.itemtypes as itemtypes

    core.gen_collection = with_coverages_marked(core.gen_collection)
    for uri in TEXT_SEARCH_CONFORMANCE:
        if uri not in itemtypes.CONFORMANCE_CLASSES_FEATURES:
            itemtypes.CONFORMANCE_CLASSES_FEATURES.append(uri)
