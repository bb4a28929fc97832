"""MapLibre styles of ``styles/*.json``: loaded, completed, resolved, and their legends.

A style file is a MapLibre style (version 8) whose URLs start with ``{base}``
(the server the style is fetched from) and whose ``metadata`` carries:

- ``onemap:title`` — ``{"zh": ..., "en": ...}``;
- ``onemap:underlay`` — the id of a style drawn underneath (the thematic
  styles name ``base``): its sources and layers are put before the style's own;
- per layer ``onemap:label`` (zh/en) and, for a colour chosen by a
  ``["match", ["get", prop], ...]`` expression, ``onemap:categories``
  (``{"property": prop, "values": {value: {"zh", "en"}}}``) — the legend is
  made from these, so a style and its legend cannot disagree.

Optional raster base maps are added by configuration (:class:`BaseMaps`):
Tianditu (vector map ``vec_w`` + its labels ``cva_w``, fetched by the browser
with the deployment's browser key) and AMap, whose GCJ-02 tiles reach the
browser through onemap's shifting proxy (:mod:`spatial.basemap`).

Nothing is read at import; :class:`StyleCatalog` reads the directory when built.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial.errors import NotFoundError

LOGGER = logging.getLogger(__name__)

#: Paint property holding the colour of each layer type.
COLOR_PAINT = {
    "fill": "fill-color",
    "line": "line-color",
    "circle": "circle-color",
    "symbol": "text-color",
    "background": "background-color",
    "fill-extrusion": "fill-extrusion-color",
    "heatmap": "heatmap-color",
}
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\([^)]*\)|[a-z]+)$")
TIANDITU = ("https://t{n}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
            "&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
            "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}")


@dataclass(frozen=True)
class BaseMaps:
    """Optional third-party raster base maps.

    Attributes
    ----------
    tianditu_key : str or None
        A Tianditu browser key (``ONEMAP_TIANDITU_KEY``): adds ``vec_w`` and ``cva_w``.
    amap : bool
        ``ONEMAP_AMAP=1``: adds AMap road map tiles through ``/basemaps/amap/...``.
    """

    tianditu_key: str | None = None
    amap: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BaseMaps:
        """Read ``ONEMAP_TIANDITU_KEY`` and ``ONEMAP_AMAP``."""
        env = os.environ if environ is None else environ
        key = env.get("ONEMAP_TIANDITU_KEY", "").strip() or None
        return cls(tianditu_key=key,
                   amap=env.get("ONEMAP_AMAP", "").strip().lower() in {"1", "true", "yes"})


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_strings(item)


def _resolve(value: Any, base: str) -> Any:
    if isinstance(value, str):
        return value.replace("{base}", base)
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, base) for k, v in value.items()}
    return value


class StyleCatalog:
    """The styles of a directory.

    Parameters
    ----------
    directory : Path
        Holds ``<id>.json`` per style.

    Raises
    ------
    ValueError
        A file that is not a version-8 style, names an unknown underlay, or
        whose layers name a source it does not have.

    Examples
    --------
    >>> from pathlib import Path
    >>> catalog = StyleCatalog(Path(__file__).parent.parent / "styles")
    >>> "lighting" in catalog.ids
    True
    >>> style = catalog.style("lighting", "http://example.org")
    >>> style["layers"][0]["type"], style["sources"]["lighting"]["tiles"][0][:40]
    ('background', 'http://example.org/tiles/lighting/WebMer')
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        raw: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.glob("*.json")):
            sid = path.stem
            if not _ID.match(sid):
                raise ValueError(f"{path}: style id {sid!r} is not a lower-case identifier")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != 8:
                raise ValueError(f"{path}: not a MapLibre style of version 8")
            raw[sid] = data
        self._styles = {sid: self._complete(sid, raw) for sid in raw}

    @staticmethod
    def _complete(sid: str, raw: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        style = copy.deepcopy(raw[sid])
        under = style.get("metadata", {}).get("onemap:underlay")
        if under is not None:
            if under not in raw or under == sid:
                raise ValueError(f"styles/{sid}.json: unknown underlay {under!r}")
            base = StyleCatalog._complete(under, raw)
            style["sources"] = {**base["sources"], **style.get("sources", {})}
            style["layers"] = base["layers"] + style.get("layers", [])
        ids = [layer.get("id") for layer in style["layers"]]
        if len(set(ids)) != len(ids):
            raise ValueError(f"styles/{sid}.json: layer ids are not unique")
        for layer in style["layers"]:
            src = layer.get("source")
            if src is not None and src not in style["sources"]:
                raise ValueError(f"styles/{sid}.json: layer {layer['id']!r} names unknown "
                                 f"source {src!r}")
        return style

    @property
    def ids(self) -> list[str]:
        """Style ids, ``base`` first."""
        return sorted(self._styles, key=lambda s: (s != "base", s))

    def title(self, sid: str) -> dict[str, str]:
        """``{"zh": ..., "en": ...}`` of a style."""
        title = self._get(sid).get("metadata", {}).get("onemap:title", {})
        return {"zh": str(title.get("zh", sid)), "en": str(title.get("en", sid))}

    def _get(self, sid: str) -> dict[str, Any]:
        try:
            return self._styles[sid]
        except KeyError:
            raise NotFoundError(f"unknown style {sid!r} / 样式不存在") from None

    def style(self, sid: str, base: str, basemaps: BaseMaps | None = None) -> dict[str, Any]:
        """The complete style with ``{base}`` replaced and the configured base maps.

        Parameters
        ----------
        sid : str
            Style id.
        base : str
            URL of the server without trailing slash (``http://host:8000``).
        basemaps : BaseMaps, optional
            Third-party raster layers to put under our own (after the background).

        Raises
        ------
        NotFoundError
            Unknown style.
        """
        style = _resolve(copy.deepcopy(self._get(sid)), base.rstrip("/"))
        if basemaps is not None:
            add_basemaps(style, basemaps, base.rstrip("/"))
        return style

    def legend(self, sid: str, basemaps: BaseMaps | None = None) -> dict[str, Any]:
        """The legend of a style: one entry per layer, or per category of a layer.

        Returns
        -------
        dict
            ``{"style", "title", "entries": [{"layer", "label_zh", "label_en",
            "type", "color", "source", "source_layer", "minzoom", "maxzoom",
            "property"?, "value"?}]}`` in drawing order (bottom first).

        Examples
        --------
        >>> from pathlib import Path
        >>> catalog = StyleCatalog(Path(__file__).parent.parent / "styles")
        >>> lamps = [e for e in catalog.legend("lighting")["entries"]
        ...          if e["layer"] == "lighting-lamp"]
        >>> [(e["value"], e["color"]) for e in lamps]
        [('working', '#ffd600'), ('off', '#546e7a'), ('fault', '#d50000')]
        >>> lamps[2]["label_en"], lamps[2]["label_zh"]
        ('Lamps: Fault', '路灯：故障')
        """
        style = self.style(sid, "", basemaps)
        entries: list[dict[str, Any]] = []
        for layer in style["layers"]:
            entries.extend(legend_entries(layer))
        return {"style": sid, "title": self.title(sid), "entries": entries}


def _first_color(value: Any) -> str | None:
    for text in _walk_strings(value):
        if _COLOR.match(text) and (text.startswith(("#", "rgb"))):
            return text
    return None


def legend_entries(layer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Legend entries of one style layer.

    A colour chosen by ``["match", ["get", prop], v1, c1, ..., default]`` with
    ``onemap:categories`` metadata gives one entry per category; any other
    colour one entry (its first literal colour).

    Examples
    --------
    >>> layer = {"id": "x", "type": "circle", "source": "s", "source-layer": "lamp",
    ...          "paint": {"circle-color": ["match", ["get", "status"], "fault", "#f00", "#ff0"]},
    ...          "metadata": {"onemap:label": {"zh": "路灯", "en": "Lamps"},
    ...                       "onemap:categories": {
    ...                           "property": "status",
    ...                           "values": {"fault": {"zh": "故障", "en": "Fault"}}}}}
    >>> [(e["value"], e["label_zh"], e["color"]) for e in legend_entries(layer)]
    [('fault', '路灯：故障', '#f00')]
    """
    kind = str(layer.get("type"))
    meta = layer.get("metadata") or {}
    label = meta.get("onemap:label") or {}
    zh, en = str(label.get("zh", layer["id"])), str(label.get("en", layer["id"]))
    common: dict[str, Any] = {
        "layer": layer["id"],
        "type": kind,
        "source": layer.get("source"),
        "source_layer": layer.get("source-layer"),
        "minzoom": layer.get("minzoom", 0),
        "maxzoom": layer.get("maxzoom", 24),
    }
    paint = layer.get("paint") or {}
    color = paint.get(COLOR_PAINT.get(kind, ""))
    cats = meta.get("onemap:categories")
    if (cats and isinstance(color, list) and len(color) >= 4 and color[0] == "match"
            and color[1] == ["get", cats.get("property")]):
        pairs = color[2:-1]
        entries = []
        for value, col in zip(pairs[::2], pairs[1::2], strict=True):
            names = cats["values"].get(str(value), {"zh": str(value), "en": str(value)})
            entries.append({**common, "label_zh": f"{zh}：{names['zh']}",
                            "label_en": f"{en}: {names['en']}",
                            "color": col, "property": cats["property"], "value": value})
        return entries
    if isinstance(color, str):
        found: str | None = color
    else:
        found = _first_color(color)
    return [{**common, "label_zh": zh, "label_en": en, "color": found}]


def add_basemaps(style: dict[str, Any], basemaps: BaseMaps, base: str) -> None:
    """Put the configured raster base maps under the style's own layers (in place).

    They go right after the ``background`` layer (or first), Tianditu's map
    then its labels, AMap after them.
    """
    sources: dict[str, Any] = {}
    layers: list[dict[str, Any]] = []
    if basemaps.tianditu_key:
        for layer, zh, en in (("vec", "天地图矢量", "Tianditu map"),
                              ("cva", "天地图注记", "Tianditu labels")):
            sid = f"tianditu_{layer}"
            sources[sid] = {
                "type": "raster", "tileSize": 256, "minzoom": 1, "maxzoom": 18,
                "tiles": [TIANDITU.format(n=n, layer=layer, key=basemaps.tianditu_key)
                          for n in range(8)],
                "attribution": "© 天地图 Tianditu",
            }
            layers.append({"id": sid, "type": "raster", "source": sid,
                           "metadata": {"onemap:label": {"zh": zh, "en": en}}})
    if basemaps.amap:
        sources["amap"] = {
            "type": "raster", "tileSize": 256, "minzoom": 3, "maxzoom": 18,
            "tiles": [f"{base}/basemaps/amap/{{z}}/{{x}}/{{y}}.png"],
            "attribution": "© 高德地图 AMap (GCJ-02, shifted to WGS84 by onemap)",
        }
        layers.append({"id": "amap", "type": "raster", "source": "amap",
                       "metadata": {"onemap:label": {"zh": "高德地图（已纠偏）",
                                                     "en": "AMap (shifted from GCJ-02)"}}})
    if not layers:
        return
    style["sources"] = {**sources, **style["sources"]}
    at = 1 if style["layers"] and style["layers"][0].get("type") == "background" else 0
    style["layers"][at:at] = layers
