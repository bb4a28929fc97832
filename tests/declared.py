"""The collections as the server declares them, for tests: one reader.

The layers are declared in ``layers/tiles.yml`` and the coverages and processes
in ``pygeoapi-config.yml``; :func:`spatial.catalog.load_layers` reads both, and
:func:`server.config.load_config` is the configuration pygeoapi gets (a resource
generated per layer). Tests ask these rather than parse the files themselves.
"""

from __future__ import annotations

from typing import Any

from server.config import layers_path, load_config
from spatial.catalog import Collection, load_layers
from spatial.settings import get_settings


def collections() -> dict[str, Collection]:
    """Every collection, layers first, in the declarations' order."""
    settings = get_settings()
    return load_layers(layers_path(settings), settings.config_path)


def feature_collections() -> list[str]:
    """The layers' ids (feature collections), in declaration order."""
    return [cid for cid, c in collections().items() if c.kind == "feature"]


def resources() -> dict[str, Any]:
    """pygeoapi's ``resources``: collections (generated for layers) and processes."""
    resources: dict[str, Any] = load_config(get_settings())["resources"]
    return resources
