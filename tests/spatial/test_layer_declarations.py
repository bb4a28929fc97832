"""A layer's declarations agree, in every direction (issue 14).

A feature collection (a layer) is declared in five places; this module states
every agreement between them in one place, reading each file with the loader the
server uses (:func:`spatial.catalog.load_layers`, :func:`tiles.spec.load_spec`,
:class:`spatial.styles.StyleCatalog`, :class:`spatial.fields.FieldTitles`), and
checks the pygeoapi resources generated from them (:mod:`server.config`). What a
loader already refuses at start-up is asserted by loading; the deeper checks live
beside the code they guard and are named here rather than repeated:

* ``layers/tiles.yml`` — one entry per collection: title, description, keywords,
  ``time_field``, ``editable`` and its tiles (the tiles' properties against the
  view's columns: ``tests/tiles/test_spec.py``); no ``extents`` (from the data:
  ``tests/api/test_extents.py``). ``pygeoapi-config.yml`` holds the coverages and
  processes only; pygeoapi's resource of each layer is generated;
* ``layers/*.sql`` — the view ``layers.<id>`` of each collection (that every
  geometry view of the database is a collection: ``tests/api/test_server.py``);
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
import pytest
import yaml

from server.config import SUPPORTED_CRS, generate, write_config
from spatial.catalog import Collection, load_layers
from spatial.fields import FieldTitles
from spatial.settings import Settings, get_settings
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


def collections() -> dict[str, Collection]:
    """The layers (feature collections) of ``layers/tiles.yml``: id → its declaration."""
    return {cid: c for cid, c in load_layers(LAYERS / "tiles.yml", CONFIG).items()
            if c.kind == "feature"}


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
    assert {cid: c.table for cid, c in declared.items()} == {cid: cid for cid in declared}, \
        "a collection's view is named as the collection"
    assert set(views()) == set(declared)


def test_each_collection_has_tiles_and_only_collections_do() -> None:
    tiles = spec()
    assert set(tiles.layers) == set(collections())
    for cid, c in collections().items():
        assert tiles.layers[cid].time_field == c.time_field, cid
        assert tiles.layers[cid].title == c.title["en"], cid


def test_the_coverages_have_no_tiles_and_a_declared_extent() -> None:
    everything = load_layers(LAYERS / "tiles.yml", CONFIG)
    coverages = {cid for cid, c in everything.items() if c.kind == "coverage"}
    assert coverages == {"population_density", "terrain"}
    assert not coverages & set(spec().layers)
    assert all(everything[cid].bbox for cid in coverages)


#: What every layer's pygeoapi resource holds beside its own keys, spelled out here
#: as pygeoapi got it from the hand-written resources before they were generated.
COMMON_PROVIDER = {
    "type": "feature",
    "name": "server.provider.PostGISProvider",
    "id_field": "id",
    "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/4490",
    "crs": [f"http://www.opengis.net/def/crs/{c}" for c in (
        "OGC/1.3/CRS84", "EPSG/0/4326", "EPSG/0/4490", "EPSG/0/3857",
        "EPSG/0/4527", "EPSG/0/4548", "EPSG/0/4498", "EPSG/0/4509")],
}


def pygeoapi_reads(path: Path) -> dict[str, Any]:
    """A configuration file as pygeoapi reads it."""
    from pygeoapi.util import yaml_load

    with path.open(encoding="utf-8") as fh:
        config: dict[str, Any] = yaml_load(fh)
    return config


def test_pygeoapi_gets_one_generated_resource_per_layer() -> None:
    settings = get_settings()
    config = pygeoapi_reads(write_config(settings))
    hand_written = pygeoapi_reads(CONFIG)
    declared = collections()
    resources = config["resources"]
    # the layers first, in their file's order, then the hand-written resources as written
    assert list(resources) == [*declared, *hand_written["resources"]]
    for cid in hand_written["resources"]:
        assert resources[cid] == hand_written["resources"][cid], cid
    assert {k: v for k, v in config.items() if k != "resources"} == \
        {k: v for k, v in hand_written.items() if k != "resources"}
    assert list(SUPPORTED_CRS) == COMMON_PROVIDER["crs"]
    for cid, layer in declared.items():
        provider = {**COMMON_PROVIDER, "data": {"table": cid}}
        if layer.time_field:
            provider["time_field"] = layer.time_field
        if layer.editable:
            provider["editable"] = True
        assert resources[cid] == {
            "type": "collection", "title": layer.title, "description": layer.description,
            "keywords": list(layer.keywords), "providers": [provider]}, cid
    editable = sorted(cid for cid, c in declared.items() if c.editable)
    assert editable == ["alley_problem", "building", "event", "household", "lamp", "resident"]
    timed = {cid: c.time_field for cid, c in declared.items() if c.time_field}
    assert timed["event"] == "reported_at" and timed["truck_gps"] == "ts"
    assert all(c.title["zh"] and c.title["en"] and c.keywords for c in declared.values())


def test_the_generated_configuration_is_named_by_its_declarations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    settings = get_settings()
    original = write_config(settings)
    assert write_config(settings) == original  # same inputs, same file
    layers = tmp_path / "layers"
    layers.mkdir()
    text = (LAYERS / "tiles.yml").read_text(encoding="utf-8")
    (layers / "tiles.yml").write_text(text, encoding="utf-8")
    copy = dataclasses.replace(settings, var_dir=tmp_path / "var")
    monkeypatch.setattr(Settings, "layers_dir", property(lambda self: layers))
    first = write_config(copy)
    assert first.name == original.name and first != original  # named by the text only
    (layers / "tiles.yml").write_text(
        text.replace("title: {zh: 路灯, en: Street lamps}", "title: {zh: 路灯, en: Lamps}"),
        encoding="utf-8")
    second = write_config(copy)
    assert second != first and first.exists()
    assert pygeoapi_reads(second)["resources"]["lamp"]["title"]["en"] == "Lamps"


def test_variables_are_left_for_pygeoapi_to_substitute(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    text = generate(LAYERS / "tiles.yml", CONFIG)
    assert "url: ${ONEMAP_URL:-http://127.0.0.1:8000}" in text
    monkeypatch.setenv("ONEMAP_URL", "http://onemap.test:9000")
    monkeypatch.setenv("ONEMAP_JOB_THREADS", "3")
    config = pygeoapi_reads(write_config(settings))
    assert config["server"]["url"] == "http://onemap.test:9000"
    assert config["server"]["manager"]["options"]["worker_threads"] == 3
    assert load_layers(LAYERS / "tiles.yml", CONFIG)["terrain"].title == \
        pygeoapi_reads(CONFIG)["resources"]["terrain"]["title"]


def test_a_layer_written_in_the_pygeoapi_configuration_is_refused(tmp_path: Path) -> None:
    from spatial.errors import ConfigurationError

    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["resources"]["lamp"] = {"type": "collection", "title": "x", "providers": [
        {"type": "feature", "name": "server.provider.PostGISProvider", "data": {"table": "lamp"}}]}
    path = tmp_path / "pygeoapi-config.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigurationError,
                       match=re.escape("resources.lamp: lamp is a layer of tiles.yml")):
        load_layers(LAYERS / "tiles.yml", path)
    config["resources"]["moon"] = config["resources"].pop("lamp")
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=re.escape(
            "resources.moon: a feature collection is declared in tiles.yml")):
        load_layers(LAYERS / "tiles.yml", path)


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
