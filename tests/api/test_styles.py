"""Styles, legends, glyphs and base maps through the real application (tiny city)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
import yaml

from spatial.styles import contrast_on_white, is_label_layer

ROOT = Path(__file__).resolve().parents[2]
TILES = yaml.safe_load((ROOT / "layers" / "tiles.yml").read_text(encoding="utf-8"))["layers"]
THEMES = yaml.safe_load((ROOT / "layers" / "themes.yml").read_text(encoding="utf-8"))
STYLE_IDS = ["alleys", "base", "grid_management", "lighting", "operations", "pipelines",
             "refuse", "trucks"]
BASE = "http://testserver"
VALIDATOR = (ROOT / "web" / "node_modules" / "@maplibre" / "maplibre-gl-style-spec" / "dist"
             / "gl-style-validate.cjs")


# -- what the tiles carry ----------------------------------------------------------------

def level_properties(layer_id: str, z: int) -> set[str] | None:
    """Properties of a layer's tile features at zoom z (None: not in tiles)."""
    spec = TILES[layer_id]
    for level in spec["levels"]:
        if "features" in level:
            a, b = level["features"]["zoom"]
            if a <= z <= b:
                return set(level["features"]["properties"])
        else:
            agg = level["aggregate"]
            a, b = agg["zoom"]
            if a <= z <= b:
                return {"count"} | {agg[k] for k in ("key", "by") if k in agg}
    return None


def theme_layers(theme: str) -> list[str]:
    """A theme's layers: those of the themes it includes (the base map) and its own."""
    body = THEMES[theme]
    return [*(lyr for other in body.get("include", []) for lyr in theme_layers(other)),
            *body["layers"]]


def source_layers(source: dict[str, Any]) -> set[str]:
    """Layer names inside a source's tiles, from its URL."""
    url = source["tiles"][0]
    path = url.removeprefix(BASE)
    parts = path.split("/")
    if parts[1] == "tiles":  # /tiles/{theme}/...
        return set(theme_layers(parts[2]))
    assert parts[1] == "collections", url
    return {parts[2]}


def gets(expr: Any) -> set[str]:
    """Property names an expression reads with ["get", name]."""
    found: set[str] = set()
    if isinstance(expr, list):
        if len(expr) == 2 and expr[0] == "get" and isinstance(expr[1], str):
            found.add(expr[1])
        for item in expr:
            found |= gets(item)
    elif isinstance(expr, dict):
        for item in expr.values():
            found |= gets(item)
    return found


def zooms(layer: dict[str, Any]) -> range:
    return range(int(layer.get("minzoom", 0)), min(int(layer.get("maxzoom", 23)), 23))


# -- tests -------------------------------------------------------------------------------

def test_styles_list(client: Any) -> None:
    r = client.get("/styles")
    assert r.status_code == 200
    styles = r.json()["styles"]
    assert sorted(s["id"] for s in styles) == STYLE_IDS
    assert styles[0]["id"] == "base"
    for s in styles:
        assert s["title_zh"] and s["title_en"] and s["title_zh"] in s["title"]
        sheet = [lk for lk in s["links"] if lk["rel"] == "stylesheet"]
        assert sheet == [{"rel": "stylesheet", "type": "application/vnd.mapbox.style+json",
                          "title": "MapLibre / Mapbox style",
                          "href": f"{BASE}/styles/{s['id']}?f=mapbox"}]
    assert {s["title_en"] for s in styles} >= {"Street lighting", "Base map", "City operations"}


@pytest.mark.parametrize("sid", STYLE_IDS)
def test_style_is_whole_and_matches_the_tiles(client: Any, sid: str) -> None:
    r = client.get(f"/styles/{sid}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.mapbox.style+json")
    style = r.json()
    assert client.get(f"/styles/{sid}", params={"f": "mapbox"}).json() == style
    text = json.dumps(style)
    assert "{base}" not in text
    assert style["version"] == 8
    assert style["glyphs"] == f"{BASE}/fonts/{{fontstack}}/{{range}}.pbf"
    for source in style["sources"].values():
        assert source["type"] == "vector"
        assert all(u.startswith(f"{BASE}/") and u.endswith("/{z}/{y}/{x}")
                   for u in source["tiles"])
    ids = [layer["id"] for layer in style["layers"]]
    assert len(ids) == len(set(ids))
    assert style["layers"][0]["type"] == "background"
    if sid != "base":  # thematic styles draw the base map underneath, from their own tiles
        assert "base-road-label" in ids
        assert set(theme_layers("base")) <= source_layers(next(iter(style["sources"].values())))
    # labels above everything else: road names over pipes and lamps
    kinds = [layer["type"] for layer in style["layers"]]
    assert "symbol" not in kinds or all(k == "symbol" for k in kinds[kinds.index("symbol"):]), \
        f"{sid}: a symbol layer under a {kinds[-1]} layer"
    # a source asks for tiles from the lowest zoom any of its layers is in
    for source in style["sources"].values():
        lowest = min(TILES[name]["minzoom"] for name in source_layers(source))
        assert source.get("minzoom", 0) <= lowest, (source["tiles"][0], lowest)
    # one themed source, the base map's layers included: one request per tile position
    # and view, for every style (the operations map's refuse load included)
    themed = [s for s in style["sources"].values() if "/tiles/" in s["tiles"][0]
              and "/collections/" not in s["tiles"][0]]
    assert len(style["sources"]) == len(themed) == 1, (sid, list(style["sources"]))
    assert {ly["source"] for ly in style["layers"] if "source" in ly} == set(style["sources"])
    drawn: dict[tuple[str, str], set[int]] = {}
    for layer in style["layers"]:
        if layer["type"] == "background":
            continue
        src = style["sources"][layer["source"]]
        name = layer["source-layer"]
        assert name in source_layers(src), (layer["id"], name)
        shown = [z for z in zooms(layer) if level_properties(name, z) is not None]
        assert shown, f"{layer['id']} is never in tiles"
        for z in shown:
            props = level_properties(name, z)
            assert props is not None
            used = gets(layer.get("filter")) | gets(layer.get("paint")) | gets(layer.get("layout"))
            assert used <= props, (layer["id"], z, used - props)
        if layer["type"] == "symbol" and "text-field" in layer["layout"]:
            assert layer["layout"]["text-font"][0] in {"DejaVu Sans Book", "DejaVu Sans Bold"}
        if not layer["id"].endswith("label") and "-label-" not in layer["id"]:
            drawn.setdefault((layer["source"], name), set()).update(shown)
    # every layer of every source is drawn at every zoom it has tiles (up to 20) — by
    # that source, or (the base map's grid, roads, communities) by the theme's own
    # source, which replaces the base map's drawing of that layer
    by_name: dict[str, set[int]] = {}
    for (_, name), zs in drawn.items():
        by_name.setdefault(name, set()).update(zs)
    for source_id, source in style["sources"].items():
        for name in source_layers(source):
            have = {z for z in range(0, 21) if level_properties(name, z) is not None}
            assert have <= by_name.get(name, set()), (source_id, name)
    # labels are the Chinese names
    labels = [ly for ly in style["layers"] if ly["id"].endswith("-label")]
    assert labels or sid in {"pipelines", "lighting"}
    for label in labels:
        assert gets(label["layout"]["text-field"]) == {"name"}


@pytest.mark.skipif(shutil.which("node") is None or not VALIDATOR.exists(),
                    reason="node or web/node_modules (npm ci --prefix web) missing")
def test_styles_pass_maplibres_validator(client: Any, tmp_path: Path) -> None:
    for sid in STYLE_IDS:
        path = tmp_path / f"{sid}.json"
        path.write_text(client.get(f"/styles/{sid}").text, encoding="utf-8")
        done = subprocess.run(["node", str(VALIDATOR), str(path)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and not done.stdout.strip(), (sid, done.stdout)


@pytest.mark.parametrize("sid", STYLE_IDS)
def test_legend_covers_every_layer(client: Any, sid: str) -> None:
    style = client.get(f"/styles/{sid}").json()
    r = client.get(f"/styles/{sid}/legend")
    assert r.status_code == 200
    legend = r.json()
    assert legend["style"] == sid
    entries = legend["entries"]
    listed = {lid for e in entries for lid in e["layers"]}
    shown = {ly["id"] for ly in style["layers"]
             if not is_label_layer(ly)
             and ly.get("metadata", {}).get("onemap:legend") is not False}
    assert listed == shown, (shown - listed, listed - shown)
    for e in entries:
        assert e["label_zh"] and e["label_en"] and e["type"] in {"fill", "line", "circle", "symbol",
                                                              "background"}
        assert e["color"] is None or e["color"].startswith(("#", "rgb")), e
        assert e["layer"] == e["layers"][0] and e["group"] in {"thematic", "reference"}
    # thematic first, then the base map's
    groups = [e["group"] for e in entries]
    assert groups == sorted(groups, key=lambda g: g != "thematic")
    assert ("thematic" in groups) == (sid != "base")
    by_layer = {ly["id"]: ly for ly in style["layers"]}
    for lid, layer in by_layer.items():
        cats = layer.get("metadata", {}).get("onemap:categories")
        if cats:  # one entry per category, in the colour the map uses
            mine = [e for e in entries if lid in e["layers"]]
            assert {str(e["value"]) for e in mine} <= set(cats["values"]), lid
            assert mine and all(e["color"] and e["property"] == cats["property"] for e in mine)


@pytest.mark.parametrize("sid", STYLE_IDS)
def test_legend_is_readable(client: Any, sid: str) -> None:
    """No label twice, every swatch visible on the white panel, no label layer as a dot,
    no casing of its own, and only the categories a layer's filter lets through."""
    style = client.get(f"/styles/{sid}").json()
    entries = client.get(f"/styles/{sid}/legend").json()["entries"]
    labels = [(e["group"], e["label_zh"]) for e in entries]
    assert len(labels) == len(set(labels)), sorted(x for x in labels if labels.count(x) > 1)
    assert len({e["label_en"] for e in entries}) == len(entries)
    for e in entries:
        seen = [c for c in (e["color"], e["outline"]) if c]
        assert seen and max(contrast_on_white(c) or 1.0 for c in seen) >= 1.5, e
        assert e["label_zh"] != "数量" and "边线" not in e["label_zh"], e
    by_layer = {ly["id"]: ly for ly in style["layers"]}
    assert not [e for e in entries if any(is_label_layer(by_layer[x]) for x in e["layers"])]
    for e in entries:
        flt = by_layer[e["layer"]].get("filter")
        if "value" in e and flt and flt[0] == "match" and flt[1] == ["get", e["property"]]:
            assert e["value"] in flt[2], e


@pytest.mark.parametrize("sid", ["grid_management", "operations", "alleys"])
def test_history_is_hidden_by_default(client: Any, sid: str) -> None:
    """Open events and unresolved problems drawn; their history a switch away."""
    style = client.get(f"/styles/{sid}").json()
    entries = client.get(f"/styles/{sid}/legend").json()["entries"]
    for layer in style["layers"]:
        name = layer.get("source-layer")
        if name not in {"event", "alley_problem", "spill_report"} or is_label_layer(layer):
            continue
        flt = layer["filter"]
        assert flt[:2] == ["match", ["get", "status"]], layer["id"]
        history = layer["id"].endswith("-history")
        closed = {"event": {"closed", "evaluated"}, "alley_problem": {"resolved", "closed",
                                                                      "invalid"},
                  "spill_report": {"cleaned", "closed"}}[name]
        assert (set(flt[2]) <= closed) if history else not (set(flt[2]) & closed), layer["id"]
        assert (layer.get("layout", {}).get("visibility") == "none") == history, layer["id"]
        entry = next(e for e in entries if layer["id"] in e["layers"])
        assert entry["visible"] is not history
    assert any(ly["id"].endswith("-history") for ly in style["layers"])
    # events at city scale (z10–11, density cells split by status): the open ones drawn,
    # the closed ones a switch away
    if sid != "alleys":
        density = [ly for ly in style["layers"] if ly.get("source-layer") == "event"
                   and ly.get("maxzoom", 23) <= 12 and not is_label_layer(ly)]
        assert {ly["id"].removeprefix(ly["source"] + "-") for ly in density} == {
            "event-density", "event-density-history"}, [ly["id"] for ly in density]


@pytest.mark.parametrize("sid", STYLE_IDS)
def test_styles_land_on_the_city(client: Any, sid: str) -> None:
    """The centre the styles open at is the generated city's (democity ORIGIN_LONLAT)."""
    from democity.context import ORIGIN_LONLAT

    style = client.get(f"/styles/{sid}").json()
    assert style["center"] == list(ORIGIN_LONLAT) and 14 <= style["zoom"] <= 16


def test_lamps_by_status_and_problems_by_source(client: Any) -> None:
    entries = client.get("/styles/lighting/legend").json()["entries"]
    lamps = {e["value"]: e for e in entries if e["layer"] == "lighting-lamp"}
    assert set(lamps) == {"working", "off", "fault"}
    assert lamps["fault"]["color"] != lamps["working"]["color"]
    assert lamps["fault"]["label_zh"] == "路灯：故障"
    problems = [e for e in client.get("/styles/alleys/legend").json()["entries"]
                if e["layer"] == "alleys-alley_problem"]
    assert {e["value"] for e in problems} == {"supervision_check", "sanitation_check",
                                              "grid_patrol", "hotline_12345",
                                              "third_party_check"}
    legend = client.get("/styles/pipelines/legend").json()["entries"]
    assert {e.get("text") for e in legend if e["layer"] == "pipelines-valve"} == {"⋈"}
    valves = client.get("/styles/pipelines").json()
    valve = next(ly for ly in valves["layers"] if ly["id"] == "pipelines-valve")
    assert valve["type"] == "symbol"


def _tile_features(client: Any, style: dict[str, Any], source: str, layer: str, z: int,
                   lon: float, lat: float) -> list[dict[str, Any]]:
    import morecantile

    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    url = style["sources"][source]["tiles"][0].removeprefix(BASE)
    r = client.get(url.format(z=z, x=t.x, y=t.y))  # httpx un-gzips
    assert r.status_code in (200, 204), r.text
    tile = mapbox_vector_tile.decode(r.content) if r.content else {}
    return list(tile.get(layer, {}).get("features", []))


def test_tiles_carry_what_the_styles_read(staff_client: Any, tiny_city_db: str) -> None:
    """Lamps by status, alley problems by source, refuse facilities by capacity: in the tiles."""
    import psycopg

    with psycopg.connect(tiny_city_db) as conn:
        conn.execute(
            "INSERT INTO onemap.alley_problem (source, reported_at, category, geom) "
            "VALUES ('hotline_12345', now(), 'sanitation', ST_Point(116.466, 39.916, 4490))")
        conn.execute(
            "INSERT INTO onemap.refuse_facility (kind, name, capacity_t_per_day, geom) "
            "VALUES ('refuse_building', '示范垃圾楼', 12.5, ST_Point(116.468, 39.915, 4490))")
    lighting = staff_client.get("/styles/lighting").json()
    lamps = _tile_features(staff_client, lighting, "lighting", "lamp", 16, 116.47, 39.9175)
    assert lamps and {f["properties"]["status"] for f in lamps} <= {"working", "fault"}
    alleys = staff_client.get("/styles/alleys").json()
    (problem,) = _tile_features(staff_client, alleys, "alleys", "alley_problem", 16,
                                116.466, 39.916)
    assert problem["properties"]["source"] == "hotline_12345"
    refuse = staff_client.get("/styles/refuse").json()
    (facility,) = [f for f in _tile_features(staff_client, refuse, "refuse", "refuse_facility",
                                             16, 116.468, 39.915)
                   if f["properties"]["name"] == "示范垃圾楼"]  # the tiny city has others
    assert float(facility["properties"]["capacity_t_per_day"]) == 12.5
    assert facility["properties"]["kind"] == "refuse_building"
    # the operations map reads the same alley problems from its themed tiles
    ops = staff_client.get("/styles/operations").json()
    (again,) = _tile_features(staff_client, ops, "city_ops", "alley_problem", 16,
                              116.466, 39.916)
    assert again["properties"]["source"] == "hotline_12345"
    # and the refuse facilities by load and the base map's roads from the same tiles
    (facility,) = [f for f in _tile_features(staff_client, ops, "city_ops", "refuse_facility",
                                             16, 116.468, 39.915)
                   if f["properties"]["name"] == "示范垃圾楼"]
    assert facility["properties"]["kind"] == "refuse_building"
    assert "load_class" in facility["properties"]
    roads = _tile_features(staff_client, ops, "city_ops", "road", 16, 116.468, 39.9175)
    assert "示范路" in {f["properties"].get("name") for f in roads}


def test_urls_follow_the_server_or_onemap_url(client: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    other = client.get("/styles/base", headers={"host": "maps.internal:9000"}).json()
    assert other["sources"]["base"]["tiles"][0].startswith("http://maps.internal:9000/tiles/")
    monkeypatch.setenv("ONEMAP_URL", "https://onemap.example.org/gis")
    style = client.get("/styles/base").json()
    assert style["sources"]["base"]["tiles"][0] == (
        "https://onemap.example.org/gis/tiles/base/WebMercatorQuad/{z}/{y}/{x}")
    assert style["glyphs"].startswith("https://onemap.example.org/gis/fonts/")
    listed = client.get("/styles").json()["styles"][0]["links"][0]["href"]
    assert listed == "https://onemap.example.org/gis/styles/base?f=mapbox"


@pytest.mark.parametrize("url, status", [
    ("/styles/nope", 404),
    ("/styles/nope/legend", 404),
    ("/styles?lmit=5", 400),
    ("/styles/lighting?f=xml", 400),
    ("/styles/lighting?token=x", 400),
    ("/styles/lighting/legend?foo=1", 400),
    ("/fonts/DejaVu%20Sans%20Book/0-256.pbf", 400),
    ("/fonts/DejaVu%20Sans%20Book/1-256.pbf", 400),
    ("/fonts/DejaVu%20Sans%20Book/65536-65791.pbf", 400),
    ("/fonts/DejaVu%20Sans%20Book/abc.pbf", 400),
    ("/fonts/%3Cscript%3E/0-255.pbf", 400),
    ("/fonts/DejaVu%20Sans%20Book/0-255.pbf?x=1", 400),
    ("/basemaps/amap/14/13492/6207.png", 404),  # not configured
])
def test_bad_requests(client: Any, url: str, status: int) -> None:
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.json()["description"]


# -- glyphs ---------------------------------------------------------------------------------

def _glyph_messages() -> Any:
    """glyphs.proto (Mapbox's glyph PBF format) built at run time with protobuf."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="glyphs_test.proto", package="llmr.glyphs",
                                             syntax="proto2")
    f = descriptor_pb2.FieldDescriptorProto
    glyph = fdp.message_type.add(name="glyph")
    for num, name, typ, label in ((1, "id", f.TYPE_UINT32, f.LABEL_REQUIRED),
                                  (2, "bitmap", f.TYPE_BYTES, f.LABEL_OPTIONAL),
                                  (3, "width", f.TYPE_UINT32, f.LABEL_REQUIRED),
                                  (4, "height", f.TYPE_UINT32, f.LABEL_REQUIRED),
                                  (5, "left", f.TYPE_SINT32, f.LABEL_REQUIRED),
                                  (6, "top", f.TYPE_SINT32, f.LABEL_REQUIRED),
                                  (7, "advance", f.TYPE_UINT32, f.LABEL_REQUIRED)):
        glyph.field.add(name=name, number=num, type=typ, label=label)
    stack = fdp.message_type.add(name="fontstack")
    stack.field.add(name="name", number=1, type=f.TYPE_STRING, label=f.LABEL_REQUIRED)
    stack.field.add(name="range", number=2, type=f.TYPE_STRING, label=f.LABEL_REQUIRED)
    stack.field.add(name="glyphs", number=3, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                    type_name=".llmr.glyphs.glyph")
    top = fdp.message_type.add(name="glyphs")
    top.field.add(name="stacks", number=1, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                  type_name=".llmr.glyphs.fontstack")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("llmr.glyphs.glyphs"))


def test_latin_glyphs_decode(client: Any) -> None:
    r = client.get("/fonts/DejaVu Sans Book,Noto Sans Regular/0-255.pbf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    msg = _glyph_messages()()
    msg.ParseFromString(r.content)
    (stack,) = msg.stacks
    assert stack.name == "DejaVu Sans Book" and stack.range == "0-255"
    glyphs = {g.id: g for g in stack.glyphs}
    assert set(range(33, 127)) <= set(glyphs)  # printable ASCII
    a = glyphs[ord("A")]
    assert 14 <= a.width <= 18 and 15 <= a.height <= 19 and 14 <= a.advance <= 18
    assert len(a.bitmap) == (a.width + 6) * (a.height + 6)
    ink = sum(1 for v in a.bitmap if v >= 192)  # inside the edge
    assert 0 < ink < len(a.bitmap) / 2
    assert glyphs[ord(" ")].bitmap == b"" and glyphs[ord(" ")].advance > 0
    bold = _glyph_messages()()
    bold.ParseFromString(client.get("/fonts/DejaVu Sans Bold/0-255.pbf").content)
    assert bold.stacks[0].name == "DejaVu Sans Bold"
    assert {g.id: g.advance for g in bold.stacks[0].glyphs}[ord("m")] > glyphs[ord("m")].advance


def test_ranges_without_glyphs_answer_empty_stacks(client: Any) -> None:
    for url in ("/fonts/DejaVu Sans Book/19968-20223.pbf",  # CJK: drawn by the browser
                "/fonts/Unknown Font/44032-44287.pbf"):  # Hangul: not in DejaVu
        r = client.get(url)
        assert r.status_code == 200
        msg = _glyph_messages()()
        msg.ParseFromString(r.content)
        assert len(msg.stacks) == 1 and not msg.stacks[0].glyphs
    cyrillic = _glyph_messages()()
    cyrillic.ParseFromString(client.get("/fonts/Unknown Font/1024-1279.pbf").content)
    assert cyrillic.stacks[0].name == "DejaVu Sans Book" and len(cyrillic.stacks[0].glyphs) > 200


# -- optional base maps ------------------------------------------------------------------

def test_tianditu_and_amap_by_configuration(client: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_TIANDITU_KEY", "k123")
    monkeypatch.setenv("ONEMAP_AMAP", "1")
    style = client.get("/styles/lighting").json()
    ids = [ly["id"] for ly in style["layers"]]
    assert ids[:4] == ["background", "tianditu_vec", "tianditu_cva", "amap"]
    vec = style["sources"]["tianditu_vec"]
    assert vec["type"] == "raster" and len(vec["tiles"]) == 8
    assert "LAYER=vec" in vec["tiles"][0] and "TILEMATRIXSET=w" in vec["tiles"][0]
    assert vec["tiles"][0].endswith("tk=k123")
    assert "LAYER=cva" in style["sources"]["tianditu_cva"]["tiles"][3]
    assert style["sources"]["amap"]["tiles"] == [f"{BASE}/basemaps/amap/{{z}}/{{x}}/{{y}}.png"]
    legend = client.get("/styles/lighting/legend").json()["entries"]
    assert {"tianditu_vec", "tianditu_cva", "amap"} <= {e["layer"] for e in legend}
    assert client.get("/basemaps/amap/23/0/0.png").status_code == 400
    monkeypatch.delenv("ONEMAP_TIANDITU_KEY")
    monkeypatch.delenv("ONEMAP_AMAP")
    plain = client.get("/styles/lighting").json()
    assert not {"tianditu_vec", "amap"} & set(plain["sources"])


def test_amap_window_follows_gcj02() -> None:
    """A point of our tile lands, on AMap's pixels, where GCJ-02 puts it."""
    import math

    from spatial.basemap import _lonlat_to_pixel, gcj_window
    from spatial.crs import wgs84_to_gcj02

    for lon, lat in ((116.47, 39.92), (121.47, 31.23), (113.26, 23.13)):
        for z in (10, 14, 18):
            px, py = _lonlat_to_pixel(lon, lat, z)
            x, y = int(px // 256), int(py // 256)
            left, top = gcj_window(z, x, y)
            glon, glat = wgs84_to_gcj02(lon, lat)
            gx, gy = _lonlat_to_pixel(float(glon), float(glat), z)
            # where the tile shows this point vs where AMap draws it
            assert math.hypot((px - x * 256) - (gx - left), (py - y * 256) - (gy - top)) < 1.0
    # outside China nothing moves
    assert gcj_window(14, 8192, 5000) == (8192 * 256, 5000 * 256)


def test_amap_tile_is_cut_from_the_shifted_window() -> None:
    from PIL import Image

    from spatial.basemap import compose, gcj_window

    def fetch(z: int, x: int, y: int) -> bytes:  # each source tile one colour
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (x % 256, y % 256, 7)).save(buf, format="PNG")
        return buf.getvalue()

    z, x, y = 16, 53970, 24829
    left, top = gcj_window(z, x, y)
    out = Image.open(io.BytesIO(compose(z, x, y, fetch))).convert("RGB")
    assert out.size == (256, 256)
    for px, py in ((0, 0), (255, 255), (128, 40)):
        sx, sy = (left + px) // 256, (top + py) // 256
        assert out.getpixel((px, py)) == (sx % 256, sy % 256, 7)
