"""MapLibre styles of ``styles/*.json``: loaded, completed, resolved, and their legends.

A style file is a MapLibre style (version 8) whose URLs start with ``{base}``
(the server the style is fetched from) and whose ``metadata`` carries:

- ``onemap:title`` — ``{"zh": ..., "en": ...}``;
- ``onemap:underlay`` — the id of a style drawn underneath (the thematic
  styles name ``base``): its sources and layers are put before the style's own;
- ``onemap:underlay-source`` — one of the style's own sources whose tiles
  carry the underlay's source layers too (a theme of ``layers/themes.yml``
  with ``include: [base]``): the underlay's layers read it instead of their
  own sources, so the style makes one tile request per tile position;
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
        A file that is not a version-8 style, names an unknown underlay or an
        underlay source it does not have, or whose layers name a source it
        does not have.

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
            via = style["metadata"].get("onemap:underlay-source")
            if via is None:
                style["sources"] = {**base["sources"], **style.get("sources", {})}
            elif via in style.get("sources", {}):
                for layer in base["layers"]:
                    if "source" in layer:
                        layer["source"] = via
            else:
                raise ValueError(f"styles/{sid}.json: onemap:underlay-source {via!r} is not "
                                 f"one of its sources")
            own = style.get("layers", [])
            for layer in own:
                layer.setdefault("metadata", {})["onemap:group"] = "thematic"
            # A theme that draws a source layer itself (grid, roads, communities)
            # replaces the base map's drawing of it: the same lines twice in two
            # colours read as two things.
            mine = {layer.get("source-layer") for layer in own if layer.get("type") != "symbol"}
            under_layers = [layer for layer in base["layers"]
                            if layer.get("type") == "symbol"
                            or layer.get("source-layer") not in mine]
            style["layers"] = under_layers + own
        style["layers"] = _labels_last(style["layers"])
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
        """The legend of a style: the categories it draws, grouped, each once.

        One entry per drawn category of a layer (only the values its filter lets
        through) or per layer; label layers and layers marked
        ``"onemap:legend": false`` (a road's casing) have none. Entries with the
        same group, label and colour are one entry naming all their layers
        (``layers``). Thematic entries come first, then the reference (base map)
        ones, each group top layer first.

        Returns
        -------
        dict
            ``{"style", "title", "entries": [{"layer", "layers", "group",
            "visible", "label_zh", "label_en", "type", "color", "outline",
            "source", "source_layer", "minzoom", "maxzoom", "text"?,
            "property"?, "value"?}]}`` (``text``: the character a symbol layer
            draws, e.g. a valve's ⋈).

        Examples
        --------
        >>> from pathlib import Path
        >>> catalog = StyleCatalog(Path(__file__).parent.parent / "styles")
        >>> lamps = [e for e in catalog.legend("lighting")["entries"]
        ...          if e["layer"] == "lighting-lamp"]
        >>> [(e["value"], e["color"]) for e in lamps]
        [('working', '#ffd600'), ('off', '#546e7a'), ('fault', '#d50000')]
        >>> lamps[2]["label_en"], lamps[2]["label_zh"], lamps[2]["group"]
        ('Lamps: Fault', '路灯：故障', 'thematic')
        >>> [e["label_zh"] for e in catalog.legend("base")["entries"]].count("建筑数量")
        1
        """
        style = self.style(sid, "", basemaps)
        merged: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for layer in reversed(style["layers"]):
            for entry in legend_entries(layer):
                key = (entry["group"], entry["label_zh"], entry["color"])
                if key in merged:
                    first = merged[key]
                    first["layers"].append(entry["layer"])
                    first["visible"] = first["visible"] or entry["visible"]
                    first["minzoom"] = min(first["minzoom"], entry["minzoom"])
                    first["maxzoom"] = max(first["maxzoom"], entry["maxzoom"])
                else:
                    merged[key] = {**entry, "layers": list(entry["layers"])}
        entries = sorted(merged.values(), key=lambda e: e["group"] != "thematic")
        return {"style": sid, "title": self.title(sid), "entries": entries}


def _labels_last(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Symbol layers above every other, in their own order.

    Road names of the base map then sit above a theme's pipes and lamps, and
    every label collides with every other label (MapLibre places the upper
    layers' symbols first).

    Examples
    --------
    >>> [x["id"] for x in _labels_last([{"id": "a", "type": "symbol"},
    ...                                  {"id": "b", "type": "line"}])]
    ['b', 'a']
    """
    return ([layer for layer in layers if layer.get("type") != "symbol"]
            + [layer for layer in layers if layer.get("type") == "symbol"])


def _first_color(value: Any) -> str | None:
    for text in _walk_strings(value):
        if _COLOR.match(text) and (text.startswith(("#", "rgb"))):
            return text
    return None


def _luminance(color: str | None) -> float | None:
    """WCAG relative luminance of ``#rgb``/``#rrggbb``/``rgb(a)(...)`` (None: other)."""
    if not color:
        return None
    text = color.strip().lower()
    try:
        if text.startswith("#") and len(text) in (4, 5):
            rgb = [int(c * 2, 16) for c in text[1:4]]
        elif text.startswith("#") and len(text) in (7, 9):
            rgb = [int(text[i:i + 2], 16) for i in (1, 3, 5)]
        elif text.startswith("rgb"):
            rgb = [int(float(v)) for v in text[text.index("(") + 1:-1].split(",")[:3]]
        else:
            return None
    except ValueError:
        return None

    def lin(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_on_white(color: str | None) -> float | None:
    """WCAG contrast ratio of a colour against white (1 to 21; None: unknown).

    Examples
    --------
    >>> contrast_on_white("#ffffff"), round(contrast_on_white("#000") or 0)
    (1.0, 21)
    """
    lum = _luminance(color)
    return None if lum is None else 1.05 / (lum + 0.05)


#: Below this contrast against the legend's white panel a swatch gets an outline.
MIN_SWATCH_CONTRAST = 1.5
#: The outline of swatches too light to see on white.
SWATCH_OUTLINE = "#616161"
_OUTLINE_PAINT = {"circle": "circle-stroke-color", "fill": "fill-outline-color"}


def _filter_values(expr: Any, prop: str) -> set[Any] | None:
    """Values of ``prop`` a layer filter lets through, when it says (else None)."""
    if not isinstance(expr, list) or not expr:
        return None
    if expr[0] == "all":
        for part in expr[1:]:
            found = _filter_values(part, prop)
            if found is not None:
                return found
        return None
    if expr[0] == "match" and len(expr) == 5 and expr[1] == ["get", prop] \
            and expr[3] is True and expr[4] is False:
        return set(expr[2]) if isinstance(expr[2], list) else {expr[2]}
    if expr[0] == "in" and len(expr) == 3 and expr[1] == ["get", prop] \
            and isinstance(expr[2], list) and expr[2][:1] == ["literal"]:
        return set(expr[2][1])
    if expr[0] == "==" and len(expr) == 3 and expr[1] == ["get", prop]:
        return {expr[2]}
    return None


def is_label_layer(layer: Mapping[str, Any]) -> bool:
    """A symbol layer that writes names or counts (``…-label``, ``…-label-…``)."""
    lid = str(layer.get("id", ""))
    return layer.get("type") == "symbol" and (lid.endswith("-label") or "-label-" in lid)


def legend_entries(layer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Legend entries of one style layer.

    A colour chosen by ``["match", ["get", prop], v1, c1, ..., default]`` with
    ``onemap:categories`` metadata gives one entry per category the layer's
    filter lets through; any other colour one entry (its first literal
    colour). Label layers and ``"onemap:legend": false`` give none.
    ``outline`` is the swatch's edge: the layer's stroke, or grey where the
    colour would vanish on white.

    Examples
    --------
    >>> layer = {"id": "x", "type": "circle", "source": "s", "source-layer": "lamp",
    ...          "filter": ["match", ["get", "status"], ["fault", "off"], True, False],
    ...          "paint": {"circle-color": ["match", ["get", "status"], "fault", "#f00",
    ...                                     "working", "#ff0", "#ff0"]},
    ...          "metadata": {"onemap:label": {"zh": "路灯", "en": "Lamps"},
    ...                       "onemap:categories": {
    ...                           "property": "status",
    ...                           "values": {"fault": {"zh": "故障", "en": "Fault"},
    ...                                      "working": {"zh": "正常", "en": "Working"}}}}}
    >>> [(e["value"], e["label_zh"], e["color"]) for e in legend_entries(layer)]
    [('fault', '路灯：故障', '#f00')]
    >>> legend_entries({"id": "r-label", "type": "symbol", "layout": {"text-field": "n"}})
    []
    """
    kind = str(layer.get("type"))
    meta = layer.get("metadata") or {}
    if meta.get("onemap:legend") is False or is_label_layer(layer):
        return []
    label = meta.get("onemap:label") or {}
    zh, en = str(label.get("zh", layer["id"])), str(label.get("en", layer["id"]))
    common: dict[str, Any] = {
        **_symbol_text(layer),
        "layer": layer["id"],
        "layers": [layer["id"]],
        "group": "thematic" if meta.get("onemap:group") == "thematic" else "reference",
        "visible": (layer.get("layout") or {}).get("visibility") != "none",
        "type": kind,
        "source": layer.get("source"),
        "source_layer": layer.get("source-layer"),
        "minzoom": layer.get("minzoom", 0),
        "maxzoom": layer.get("maxzoom", 24),
    }
    paint = layer.get("paint") or {}
    stroke = paint.get(_OUTLINE_PAINT.get(kind, ""))
    stroke = stroke if isinstance(stroke, str) else None

    def swatch(col: Any) -> dict[str, Any]:
        text = col if isinstance(col, str) else None
        outline = stroke if stroke != text else None
        weak = contrast_on_white(text)
        if weak is not None and weak < MIN_SWATCH_CONTRAST and (
                (contrast_on_white(outline) or 1.0) < MIN_SWATCH_CONTRAST):
            outline = SWATCH_OUTLINE
        return {"color": text, "outline": outline}

    color = paint.get(COLOR_PAINT.get(kind, ""))
    cats = meta.get("onemap:categories")
    if (cats and isinstance(color, list) and len(color) >= 4 and color[0] == "match"
            and color[1] == ["get", cats.get("property")]):
        drawn = _filter_values(layer.get("filter"), cats["property"])
        pairs = color[2:-1]
        entries = []
        for value, col in zip(pairs[::2], pairs[1::2], strict=True):
            if drawn is not None and value not in drawn:
                continue
            names = cats["values"].get(str(value), {"zh": str(value), "en": str(value)})
            entries.append({**common, "label_zh": f"{zh}：{names['zh']}",
                            "label_en": f"{en}: {names['en']}", **swatch(col),
                            "property": cats["property"], "value": value})
        return entries
    found = color if isinstance(color, str) else _first_color(color)
    return [{**common, "label_zh": zh, "label_en": en, **swatch(found)}]


def _symbol_text(layer: Mapping[str, Any]) -> dict[str, str]:
    """``{"text": glyph}`` of a symbol drawn as one fixed character (a valve's ⋈), so
    the legend shows the sign rather than a dot; empty otherwise."""
    field = (layer.get("layout") or {}).get("text-field")
    if layer.get("type") == "symbol" and isinstance(field, str) and "{" not in field:
        return {"text": field}
    return {}


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
