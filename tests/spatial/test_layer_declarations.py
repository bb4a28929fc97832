"""A layer's declarations agree, in every direction (issue 14).

A feature collection is declared in six places; this module states every
agreement between them in one place, reading each file with the loader the
server uses (:func:`tiles.spec.load_spec`, :class:`spatial.styles.StyleCatalog`,
:class:`spatial.fields.FieldTitles`). What a loader already refuses at start-up
is asserted by loading; the deeper checks live beside the code they guard and
are named here rather than repeated:

* ``pygeoapi-config.yml`` ``resources`` — the collections: title, keywords,
  provider ``data.table`` (the view), ``time_field``; no ``extents`` (from the
  data: ``tests/api/test_extents.py``);
* ``layers/*.sql`` — the view ``layers.<id>`` of each collection (that every
  geometry view of the database is a collection: ``tests/api/test_server.py``);
* ``layers/tiles.yml`` — tiles of each collection (its properties against the
  view's columns: ``tests/tiles/test_spec.py``);
* ``layers/themes.yml`` — themed tile sets of declared tile layers;
* ``layers/fields.yml`` — titles by column name, shared; its per-collection
  entries name declared collections (a title for every published column:
  ``tests/api/test_field_titles.py``);
* ``styles/*.json`` — one style per theme, drawing only layers of its tiles
  (their properties: ``tests/api/test_styles.py``);
* ``onemap.layer_access`` (``spatial/sql/130_access.sql``) — who reads each one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import yaml

from spatial.fields import FieldTitles
from spatial.styles import StyleCatalog
from tiles.spec import TileSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pygeoapi-config.yml"
LAYERS = ROOT / "layers"
STYLES = ROOT / "styles"

#: Collections no style draws, and why.
UNDRAWN = {
    "event_photo": "shown in its event's record popup, not as map features",
    "unit": "a building's units share its footprint; the building is drawn",
}

_VIEW = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+layers\.(\w+)", re.IGNORECASE)
_TILES_URL = re.compile(r"/tiles/(\w+)/")


def collections() -> dict[str, dict[str, Any]]:
    """Feature collections of ``pygeoapi-config.yml``: id → its feature provider."""
    resources = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["resources"]
    out = {}
    for cid, res in resources.items():
        for prov in res.get("providers") or []:
            if prov.get("type") == "feature":
                out[cid] = prov
    return out


def views() -> dict[str, str]:
    """Views ``layers.<id>`` created by ``layers/*.sql``: id → file name."""
    out = {}
    for path in sorted(LAYERS.glob("*.sql")):
        for name in _VIEW.findall(path.read_text(encoding="utf-8")):
            out[name] = path.name
    return out


def spec() -> TileSpec:
    """The tile declarations, checked by their loader against the collections."""
    return load_spec(LAYERS / "tiles.yml", LAYERS / "themes.yml", CONFIG)


def test_each_collection_reads_its_view_and_each_view_is_a_collection() -> None:
    declared = collections()
    assert {cid: prov["data"]["table"] for cid, prov in declared.items()} == \
        {cid: cid for cid in declared}, "a collection's view is named as the collection"
    assert set(views()) == set(declared)


def test_each_collection_has_tiles_and_only_collections_do() -> None:
    tiles = spec()
    assert set(tiles.layers) == set(collections())
    for cid, prov in collections().items():
        assert tiles.layers[cid].time_field == prov.get("time_field"), cid


def test_themes_name_only_tiled_layers() -> None:
    tiles = spec()
    for tid, theme in tiles.themes.items():
        assert {lyr.id for lyr in theme.layers} <= set(tiles.layers), tid
    assert not set(tiles.themes) & set(tiles.layers), "a theme id is also a collection id"


def test_fields_name_only_declared_collections() -> None:
    raw = yaml.safe_load((LAYERS / "fields.yml").read_text(encoding="utf-8"))
    FieldTitles.from_mapping(raw)  # the server's own checks
    assert set(raw.get("collections") or {}) <= set(collections())


def test_styles_draw_declared_layers_of_their_one_source() -> None:
    tiles = spec()
    catalog = StyleCatalog(STYLES)
    sources_of: dict[str, str] = {}
    drawn: set[str] = set()
    for sid in catalog.ids:
        style = catalog.style(sid, "http://onemap.test")
        vector = {name: src for name, src in style["sources"].items()
                  if src.get("type") == "vector"}
        for name, src in vector.items():
            (url,) = src["tiles"]
            match = _TILES_URL.search(url)
            assert match, (sid, url)
            layerset = match.group(1)
            assert layerset in tiles.themes or layerset in tiles.layers, (sid, layerset)
            sources_of[name] = layerset
        for layer in style["layers"]:
            if "source-layer" not in layer:
                continue
            layerset = sources_of[layer["source"]]
            members = ({lyr.id for lyr in tiles.themes[layerset].layers}
                       if layerset in tiles.themes else {layerset})
            assert layer["source-layer"] in members, (sid, layer["id"], layer["source-layer"])
            drawn.add(layer["source-layer"])
    # the other way round: every theme has its style, every tiled layer is drawn
    assert set(tiles.themes) <= set(sources_of.values())
    assert set(tiles.layers) - drawn == set(UNDRAWN), UNDRAWN


def test_each_collection_has_its_access_row(conn: psycopg.Connection[Any]) -> None:
    rows = {r["table_name"] for r in conn.execute("SELECT table_name FROM onemap.layer_access")}
    assert set(collections()) <= rows
