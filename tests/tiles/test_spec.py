"""layers/tiles.yml and layers/themes.yml are read, checked, and agree with the views."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from spatial.catalog import COLLECTION_KEYS
from tests import declared
from tiles.spec import Level, SpecError, TileSpec, bind_catalog, load_spec

ROOT = Path(__file__).resolve().parents[2]
TILES, THEMES, CONFIG = ROOT / "layers/tiles.yml", ROOT / "layers/themes.yml", \
    ROOT / "pygeoapi-config.yml"


def feature_collections() -> set[str]:
    return set(declared.feature_collections())


def test_every_feature_collection_has_tiles() -> None:
    spec = load_spec(TILES, THEMES, CONFIG)
    assert set(spec.layers) == feature_collections()
    assert len(spec.layers) == 38
    assert {"base", "grid_management", "pipelines", "lighting", "alleys", "refuse",
            "trucks"} <= set(spec.themes)
    assert spec.layers["event"].time_field == "reported_at"
    # every theme but the base map carries the base map's layers first, each once
    base = [lyr.id for lyr in spec.themes["base"].layers]
    for tid, theme in spec.themes.items():
        ids = [lyr.id for lyr in theme.layers]
        assert ids[:len(base)] == base and len(ids) == len(set(ids)), tid
    # the operations map's one source holds today's refuse load too: daily, read per scope
    city_ops = spec.themes["city_ops"]
    assert "refuse_facility" in [lyr.id for lyr in city_ops.layers]
    assert city_ops.daily and "refuse_load_reading" in city_ops.tables
    assert spec.layers["truck_gps"].time_field == "ts"


def test_declarations_agree_with_the_views(conn) -> None:  # type: ignore[no-untyped-def]
    spec = bind_catalog(load_spec(TILES, THEMES, CONFIG), conn)
    assert spec.layers["building"].geometry_type == "MULTIPOLYGON"
    assert spec.layers["resident"].geometry_type == "POINT"
    assert "geom_3857" in spec.layers["building"].columns


def test_low_zoom_aggregates_are_declared() -> None:
    spec = load_spec(TILES, THEMES, CONFIG)
    assert spec.layers["household"].level(13).kind == "count_by"  # type: ignore[union-attr]
    assert spec.layers["household"].level(18).kind == "features"  # type: ignore[union-attr]
    assert spec.layers["building"].level(13).key == "compound_id"  # type: ignore[union-attr]
    assert spec.layers["truck_gps"].level(15).kind == "lines"  # type: ignore[union-attr]
    assert spec.layers["lamp"].level(12).kind == "grid"  # type: ignore[union-attr]
    assert spec.layers["lamp"].level(9) is None
    # open events' density at city scale: one cell per status
    event = spec.layers["event"].level(11)
    assert event is not None and (event.kind, event.by) == ("grid", "status")
    assert event.carried == ("status", "count")


def write(tmp_path: Path, tiles_text: str, themes_text: str = "") -> tuple[Path, Path]:
    """tiles.yml with the entries of ``tiles_text`` replacing their tiles (the
    collection's own keys, its title …, are kept), and themes.yml."""
    base = yaml.safe_load(TILES.read_text(encoding="utf-8"))
    for lid, body in (yaml.safe_load(tiles_text) or {}).items():
        kept = {k: v for k, v in base["layers"].get(lid, {}).items() if k in COLLECTION_KEYS}
        base["layers"][lid] = {**kept, **body}
    t, th = tmp_path / "tiles.yml", tmp_path / "themes.yml"
    t.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    th.write_text(themes_text or THEMES.read_text(encoding="utf-8"), encoding="utf-8")
    return t, th


def test_unknown_property_is_refused_at_start_up(conn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t, th = write(tmp_path, """
lamp: {minzoom: 10, maxzoom: 22, levels: [{features: {zoom: [10, 22], properties: [colour]}}]}
""")
    with pytest.raises(SpecError, match="colour"):
        bind_catalog(load_spec(t, th, CONFIG), conn)


@pytest.mark.parametrize(("text", "message"), [
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{features: {zoom: [10, 15]}},"
     " {features: {zoom: [15, 22]}}]}", "exactly once"),
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 22], kind: heat}}]}",
     "unknown aggregate kind"),
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 22], kind: count_by}}]}",
     "needs a key"),
    ("not_a_collection: {minzoom: 1, maxzoom: 2, levels: [{features: {zoom: [1, 2]}}]}",
     "not_a_collection: has no title"),
    ("lamp: {title: Lamps, minzoom: 10, maxzoom: 22, levels: [{features: {zoom: [10, 22]}}]}",
     "lamp: title must be {zh: …, en: …}"),
    ("lamp: {editable: yes please, minzoom: 10, maxzoom: 22,"
     " levels: [{features: {zoom: [10, 22]}}]}", "lamp: editable must be true or false"),
    ("lamp: {time_field: [a], minzoom: 10, maxzoom: 22,"
     " levels: [{features: {zoom: [10, 22]}}]}", "lamp: time_field names a column"),
    ("lamp: {keywords: lighting, minzoom: 10, maxzoom: 22,"
     " levels: [{features: {zoom: [10, 22]}}]}", "lamp: keywords must be a list"),
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 22], kind: count_by,"
     " key: road_id, by: status}}]}", "by splits the cells of a grid level"),
    ("truck_gps: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 13], kind: grid,"
     " cell_px: 16, rollup: truck_gps_hourly, by: truck_id}}, {features: {zoom: [14, 22]}}]}",
     "with a rollup"),
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 22], kind: grid,"
     " by: geom}}]}", "by names a plain column"),
    ("lamp: {minzoom: 10, maxzoom: 22, levels: [{aggregate: {zoom: [10, 22], kind: grid,"
     " by: Status; drop}}]}", "by names a plain column"),
])
def test_inconsistent_declarations(tmp_path: Path, text: str, message: str) -> None:
    t, th = write(tmp_path, text)
    with pytest.raises(SpecError, match=message):
        load_spec(t, th, CONFIG)


def test_theme_with_unknown_layer(tmp_path: Path) -> None:
    t, th = write(tmp_path, "", "x: {title: {en: X}, layers: [lamp, moon]}\n")
    with pytest.raises(SpecError, match="moon"):
        load_spec(t, th, CONFIG)


@pytest.mark.parametrize(("column", "message"), [
    ("colour", "columns \\['colour'\\] are not in layers.lamp"),
    ("geom_3857", "by names a plain column"),
])
def test_grid_split_by_unknown_column_is_refused(conn, tmp_path: Path, column: str,  # type: ignore[no-untyped-def]
                                                 message: str) -> None:
    t, th = write(tmp_path, f"""
lamp: {{minzoom: 10, maxzoom: 22, levels: [{{aggregate: {{zoom: [10, 22], kind: grid,
       by: {column}}}}}]}}
""")
    with pytest.raises(SpecError, match=message):
        bind_catalog(load_spec(t, th, CONFIG), conn)


def test_grid_split_by_a_geometry_is_refused(conn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A column that is no plain value (here a geometry under another name) is named."""
    conn.execute("CREATE OR REPLACE VIEW layers.lamp_shape AS SELECT id, geom, geom AS shape "
                 "FROM onemap.lamp")
    spec = load_spec(TILES, THEMES, CONFIG)
    odd = dataclasses.replace(spec.layers["lamp"], id="lamp_shape",
                              levels=(Level((10, 22), "grid", by="shape"),))
    with pytest.raises(SpecError, match="split by 'shape', a USER-DEFINED column"):
        bind_catalog(TileSpec({**spec.layers, "lamp_shape": odd}, spec.themes), conn)


def test_theme_includes_the_base_map(tmp_path: Path) -> None:
    t, th = write(tmp_path, "", """
base: {title: {en: Base}, layers: [road, grid]}
lit: {title: {en: Lit}, include: [base], layers: [grid, lamp]}
""")
    assert [lyr.id for lyr in load_spec(t, th, CONFIG).themes["lit"].layers] == [
        "road", "grid", "lamp"]
    t, th = write(tmp_path, "", """
lit: {title: {en: Lit}, include: [base], layers: [lamp]}
base: {title: {en: Base}, layers: [road]}
""")
    with pytest.raises(SpecError, match="not a theme declared above it"):
        load_spec(t, th, CONFIG)
    t, th = write(tmp_path, "", "lit: {title: {en: Lit}, base: true, layers: [lamp]}\n")
    with pytest.raises(SpecError, match="unknown keys \\['base'\\]"):
        load_spec(t, th, CONFIG)
