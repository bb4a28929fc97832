"""The truck GPS rollup: kept exact by triggers, and its density tiles equal counting every fix."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from spatial.access import Principal
from tests.tiles.test_render import admin, render, spec  # noqa: F401  (fixtures)
from tiles import spec as specmod
from tiles import tms
from tiles.spec import LayerSet, SpecError, TileSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 10, 28, 0, 0, tzinfo=UTC)

RECOUNT = """
    SELECT date_trunc('hour', ts, 'UTC') AS hour,
           floor((ST_X(geom_3857) + 20037508.342789244) / onemap.gps_cell_m())::int AS cx,
           floor((ST_Y(geom_3857) + 20037508.342789244) / onemap.gps_cell_m())::int AS cy,
           count(*)::int
    FROM onemap.truck_gps GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
ROLLUP = "SELECT hour, cx, cy, count FROM rollup.truck_gps_hourly ORDER BY 1, 2, 3"


def _fixes(conn: psycopg.Connection, n: int, seed: int) -> None:
    """``n`` fixes of two trucks around the tiny community over three hours."""
    rng = random.Random(seed)
    trucks = []
    company = conn.execute("INSERT INTO onemap.truck_company (name) VALUES ('测试运输') "
                           "RETURNING id").fetchone()[0]  # type: ignore[index]
    for plate in ("京A00001", "京A00002"):
        trucks.append(conn.execute(
            "INSERT INTO onemap.truck (plate_number, company_id) VALUES (%s, %s) "
            "ON CONFLICT (plate_number) DO UPDATE SET company_id = EXCLUDED.company_id "
            "RETURNING id", (plate, company)).fetchone()[0])  # type: ignore[index]
    rows = [(trucks[i % 2], START + timedelta(seconds=rng.randrange(3 * 3600)) + timedelta(
                microseconds=i), rng.uniform(116.455, 116.485), rng.uniform(39.912, 39.932))
            for i in range(n)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO onemap.truck_gps (truck_id, ts, geom) "
            "VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4490))", rows)


@pytest.fixture
def gps_db(tiny_city_db: str) -> str:
    with psycopg.connect(tiny_city_db) as conn:
        _fixes(conn, 600, seed=7)
    return tiny_city_db


def test_triggers_keep_the_rollup_equal_to_a_recount(gps_db: str) -> None:
    with psycopg.connect(gps_db) as conn:
        assert conn.execute(ROLLUP).fetchall() == conn.execute(RECOUNT).fetchall()
        assert conn.execute("SELECT sum(count) FROM rollup.truck_gps_hourly").fetchone() == (600,)
        # moves in time and space, deletes, a bulk insert in one statement
        conn.execute("UPDATE onemap.truck_gps SET ts = ts + interval '70 minutes', "
                     "geom = ST_Translate(geom, 0.003, 0.001) WHERE id % 3 = 0")
        conn.execute("DELETE FROM onemap.truck_gps WHERE id % 5 = 0")
        conn.execute("INSERT INTO onemap.truck_gps (truck_id, ts, geom) "
                     "SELECT truck_id, ts + interval '3 hours', geom FROM onemap.truck_gps")
        conn.commit()
        rollup, recount = conn.execute(ROLLUP).fetchall(), conn.execute(RECOUNT).fetchall()
        assert rollup == recount
        assert all(r[3] > 0 for r in rollup)  # emptied cells are removed
        assert conn.execute("SELECT onemap.rebuild_truck_gps_hourly()").fetchone() == (
            len(recount),)
        assert conn.execute(ROLLUP).fetchall() == recount
        conn.execute("DELETE FROM onemap.truck_gps")
        assert conn.execute(ROLLUP).fetchall() == []


def _without_rollup(layer: specmod.LayerSpec) -> LayerSet:
    plain = dataclasses.replace(layer, levels=tuple(
        dataclasses.replace(lvl, rollup=None) for lvl in layer.levels))
    return LayerSet("truck_gps_plain", "theme", {"en": "plain"}, (plain,))


def _cells(layers: dict) -> dict[tuple, int]:
    return {tuple(f["geometry"]["coordinates"]): f["properties"]["count"]
            for f in layers.get("truck_gps", {}).get("features", [])}


@pytest.mark.parametrize("when", [
    "2026-10-28T00:17:00Z/2026-10-28T02:41:30Z",   # partial hours at both ends
    "2026-10-28T01:00:00Z/2026-10-28T03:00:00Z",   # whole hours only
    "2026-10-28T01:05:00Z/2026-10-28T01:50:00Z",   # within one hour
    "2026-10-28T00:30:00Z/..",                      # open end
    "2026-10-28T01:23:45Z",                         # one instant
])
@pytest.mark.parametrize(("tms_id", "z"), [("WebMercatorQuad", 12), ("WebMercatorQuad", 13),
                                           ("WorldCRS84Quad", 12)])
def test_rollup_tiles_count_what_a_plain_count_counts(
        gps_db: str, spec: TileSpec, admin: Principal,  # noqa: F811
        when: str, tms_id: str, z: int) -> None:
    layer = spec.layers["truck_gps"]
    level = layer.level(tms.web_zoom(tms_id, z))
    assert level is not None and level.kind == "grid" and level.rollup == "truck_gps_hourly"
    y, x = tms.lonlat_to_tile(tms_id, 116.47, 39.922, z)
    rolled, _ = render(gps_db, spec.collection("truck_gps"), admin, z, y, x, tms_id, when)
    plain, _ = render(gps_db, _without_rollup(layer), admin, z, y, x, tms_id, when)
    if tms_id == "WebMercatorQuad":  # cells nest exactly
        assert _cells(rolled) == _cells(plain)
    else:  # each rollup cell's count sits at its centre: totals agree
        assert sum(_cells(rolled).values()) == sum(_cells(plain).values())
    if "/" in when:
        assert sum(_cells(rolled).values()) > 0


def test_rollup_declarations_are_checked(tmp_path: Path) -> None:
    base = ROOT / "layers"
    text = (base / "tiles.yml").read_text(encoding="utf-8")
    assert "rollup: truck_gps_hourly" in text
    for bad, message in (
            ("kind: grid, cell_px: 8, rollup: truck_gps_hourly", "not whole multiples"),
            ("kind: grid, cell_px: 24, rollup: truck_gps_hourly", "not whole multiples"),
            ("kind: grid, cell_px: 16, rollup: Truck-GPS", "rollup names a table")):
        broken = tmp_path / "tiles.yml"
        broken.write_text(text.replace("kind: grid, cell_px: 16, rollup: truck_gps_hourly", bad),
                          encoding="utf-8")
        with pytest.raises(SpecError, match=message):
            load_spec(broken, base / "themes.yml", ROOT / "pygeoapi-config.yml")


def test_python_and_sql_agree_on_the_cell(tiny_city_db: str) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        cell = conn.execute("SELECT onemap.gps_cell_m()").fetchone()[0]  # type: ignore[index]
    assert cell == pytest.approx(specmod.ROLLUP_CELL_M, rel=1e-12)
    assert pytest.approx(16 * 40075016.68557849 / 256 / 2**13) == specmod.ROLLUP_CELL_M
