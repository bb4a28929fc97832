"""Refuse facilities by today's load: shown to staff, never to anonymous callers.

The load readings are internal while the facilities are public
(spatial/sql/130_access.sql). layers.refuse_facility joins the newest reading
of the current local day; row-level security leaves it NULL for callers who
may not read readings, tiles.yml declares ``reads: [refuse_load_reading]`` so
the tile cache keeps the two kinds of caller apart, and 170_refuse_load.sql
drops a facility's tiles when a reading arrives.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
import yaml

from spatial.access import ANONYMOUS, Principal, request_connection
from tiles.cache import clear_scope_cache, scope_class
from tiles.freshness import start_listener
from tiles.spec import SpecError, bind_catalog, load_spec
from tiles.tms import lonlat_to_tile

ROOT = Path(__file__).resolve().parents[2]
TILES, THEMES, CONFIG = ROOT / "layers/tiles.yml", ROOT / "layers/themes.yml", \
    ROOT / "pygeoapi-config.yml"
WEB = "WebMercatorQuad"
SPOT = (116.468, 39.915)
#: The current local (Beijing) day's start, as the view computes it.
DAY_START = ("(date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') "
             "AT TIME ZONE 'Asia/Shanghai')")


def _facility(db: str, capacity: float | None = 10.0,
              spot: tuple[float, float] = SPOT) -> int:
    """A refuse building with a reading yesterday and two today (4.0 t, then 8.5 t)."""
    with psycopg.connect(db) as conn:
        (fid,) = conn.execute(
            "INSERT INTO onemap.refuse_facility (kind, name, capacity_t_per_day, geom) "
            "VALUES ('refuse_building', '测试垃圾楼', %s, ST_Point(%s, %s, 4490)) RETURNING id",
            (capacity, *spot)).fetchone()  # type: ignore[misc]
        conn.execute(f"""
            INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, load_t)
            VALUES (%(f)s, {DAY_START} - interval '1 hour', 9.9),
                   (%(f)s, {DAY_START} + interval '1 minute', 4.0),
                   (%(f)s, {DAY_START} + interval '2 minutes', 8.5)""", {"f": fid})
    return int(fid)


def _tile(client: Any, url: str) -> list[dict[str, Any]]:
    r = client.get(url)
    assert r.status_code in (200, 204), r.text
    layers = mapbox_vector_tile.decode(r.content) if r.content else {}
    return list(layers.get("refuse_facility", {}).get("features", []))


def _url(z: int, theme: bool = False, spot: tuple[float, float] = SPOT) -> str:
    y, x = lonlat_to_tile(WEB, *spot, z)
    prefix = "/tiles/refuse" if theme else "/collections/refuse_facility/tiles"
    return f"{prefix}/{WEB}/{z}/{y}/{x}"


def _props(features: list[dict[str, Any]], name: str = "测试垃圾楼") -> dict[str, Any]:
    (found,) = [f["properties"] for f in features if f["properties"].get("name") == name]
    return dict(found)


def test_view_shows_todays_newest_reading_to_staff_only(make_client: Any,
                                                       tiny_city_db: str) -> None:
    fid = _facility(tiny_city_db)
    empty = _facility(tiny_city_db, capacity=None, spot=(116.469, 39.915))
    with psycopg.connect(tiny_city_db) as conn:
        (measured,) = conn.execute(f"SELECT {DAY_START} + interval '2 minutes'"
                                   ).fetchone()  # type: ignore[misc]
    staff = make_client(["street_staff"])
    mine = staff.get(f"/collections/refuse_facility/items/{fid}", params={"f": "json"})
    assert mine.status_code == 200, mine.text
    seen = mine.json()["properties"]
    assert float(seen["load_t"]) == 8.5  # today's newest, not yesterday's 9.9
    assert seen["load_ratio"] == pytest.approx(0.85)
    assert seen["load_class"] == "high"
    assert datetime.fromisoformat(seen["load_measured_at"]) == measured
    no_capacity = staff.get(f"/collections/refuse_facility/items/{empty}",
                            params={"f": "json"}).json()["properties"]
    assert float(no_capacity["load_t"]) == 8.5
    assert no_capacity["load_ratio"] is None and no_capacity["load_class"] == "none"

    load_fields = {"load_t", "load_measured_at", "load_ratio", "load_class"}
    for who in (make_client([]), make_client(["public"])):
        r = who.get(f"/collections/refuse_facility/items/{fid}", params={"f": "json"})
        assert r.status_code == 200, r.text
        hidden = r.json()["properties"]
        assert hidden["load_t"] is None and hidden["load_ratio"] is None
        assert hidden["load_measured_at"] is None and hidden["load_class"] == "none"
        # nothing else changes for them
        assert {k: v for k, v in hidden.items() if k not in load_fields} == \
            {k: v for k, v in seen.items() if k not in load_fields}


def test_tiles_carry_the_load_for_staff_and_never_share_it(make_client: Any,
                                                          tiny_city_db: str) -> None:
    fid = _facility(tiny_city_db)
    with psycopg.connect(tiny_city_db) as conn:
        (ratio,) = conn.execute("SELECT load_ratio FROM layers.refuse_facility WHERE id = %s",
                                (fid,)).fetchone()  # type: ignore[misc]
    assert ratio == pytest.approx(0.85)
    staff = make_client(["district_admin"])
    anonymous = make_client([])
    # staff first, then anonymous: a shared cache entry would hand the load on
    for z, theme in ((16, False), (17, True)):
        mine = _props(_tile(staff, _url(z, theme)))
        assert mine["load_ratio"] == pytest.approx(ratio) and mine["load_class"] == "high"
        theirs = _props(_tile(anonymous, _url(z, theme)))
        assert theirs.get("load_ratio") is None and theirs["load_class"] == "none"
        assert theirs["capacity_t_per_day"] == mine["capacity_t_per_day"]
    # anonymous first, then staff
    assert _props(_tile(anonymous, _url(18))).get("load_ratio") is None
    assert _props(_tile(staff, _url(18)))["load_ratio"] == pytest.approx(ratio)


def test_reads_make_the_scope_classes_differ(tiny_city_db: str) -> None:
    spec = load_spec(TILES, THEMES, CONFIG)
    layerset = spec.collection("refuse_facility")
    assert layerset.tables == ("refuse_facility", "refuse_load_reading")
    # the refuse theme, the base map's layers included (layers/themes.yml include: [base])
    assert spec.theme("refuse").tables == ("building", "community", "compound_gate", "district",
                                           "footpath", "grid", "land_use",
                                           "refuse_candidate_site", "refuse_facility",
                                           "refuse_load_reading", "road", "street_office")
    assert "refuse_load_reading" in spec.theme("city_ops").tables
    from spatial import users
    from spatial.db import connect

    with connect(tiny_city_db) as conn, conn.transaction():
        name = f"u{uuid.uuid4().hex[:8]}"
        info = users.create_user(conn, name, None, roles=["district_admin"], scopes=[])
    staff = Principal(info.id, name, frozenset({"district_admin"}))
    clear_scope_cache()
    classes = {}
    for who in (ANONYMOUS, staff):
        with request_connection(who, conninfo=tiny_city_db) as conn:
            classes[who] = scope_class(conn, who, layerset.tables)
            # the facilities alone are public: one class for everybody
            assert scope_class(conn, who, ["refuse_facility"]) == "all"
    assert "all" not in classes.values()
    assert classes[ANONYMOUS] != classes[staff]


def test_a_new_reading_refreshes_the_facilitys_tiles(make_client: Any,
                                                    tiny_city_db: str) -> None:
    from tests.tiles.test_freshness import _service

    fid = _facility(tiny_city_db)
    staff = make_client(["district_admin"])
    service = _service(staff.app)
    helper = start_listener(service.cache, conninfo=tiny_city_db)  # for sync()
    try:
        far = (116.30, 39.99)  # no facility there: its tile must stay cached
        url, far_url = _url(16), _url(16, spot=far)
        first = staff.get(url)
        assert _props(_tile(staff, url))["load_ratio"] == pytest.approx(0.85)
        assert staff.get(far_url).status_code in (200, 204)
        with psycopg.connect(tiny_city_db, autocommit=True) as listen, \
                psycopg.connect(tiny_city_db, autocommit=True) as conn:
            listen.execute("LISTEN onemap_tiles")
            conn.execute(f"INSERT INTO onemap.refuse_load_reading "
                         f"(facility_id, measured_at, load_t) "
                         f"VALUES (%s, {DAY_START} + interval '3 minutes', 9.6)", (fid,))
            (message,) = [n.payload for n in listen.notifies(timeout=1.0)]
        assert json.loads(message)["table"] == "refuse_load_reading", message
        assert helper.sync()
        renders = service.cache.stats.renders
        after = staff.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert after.status_code == 200  # not 304: the tile changed
        now = _props(_tile(staff, url))
        assert now["load_ratio"] == pytest.approx(0.96) and now["load_class"] == "near_limit"
        assert staff.get(far_url).status_code in (200, 204)
        assert service.cache.stats.renders == renders + 1  # only the facility's tile
    finally:
        helper()


def test_newest_reading_of_a_facility_is_an_index_scan(tiny_city_db: str) -> None:
    fid = _facility(tiny_city_db)
    with psycopg.connect(tiny_city_db) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT load_t FROM layers.refuse_facility WHERE id = %s", (fid,)))
    assert "Index Scan Backward using refuse_load_reading_reading_key" in plan \
        or "Index Only Scan Backward using refuse_load_reading_reading_key" \
        in plan, plan


def test_a_public_layer_must_declare_what_it_reads(conn: psycopg.Connection[Any],
                                                   tmp_path: Path) -> None:
    raw = yaml.safe_load(TILES.read_text(encoding="utf-8"))
    t, th = tmp_path / "tiles.yml", tmp_path / "themes.yml"
    th.write_text(THEMES.read_text(encoding="utf-8"), encoding="utf-8")
    del raw["layers"]["refuse_facility"]["reads"]
    t.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError, match=r"refuse_facility: .*non-public \['refuse_load_reading'\]"):
        bind_catalog(load_spec(t, th, CONFIG), conn)
    raw["layers"]["lamp"]["reads"] = ["lamp_status_report"]
    raw["layers"]["refuse_facility"]["reads"] = ["refuse_load_reading"]
    t.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError, match=r"lamp: reads \['lamp_status_report'\] but"):
        bind_catalog(load_spec(t, th, CONFIG), conn)


def test_demo_readings_are_replayed_onto_today(tiny_city_db: str) -> None:
    from democity.context import REFERENCE_TIME
    from democity.refuse import replay_today

    last_day = REFERENCE_TIME - timedelta(days=2)  # 2026-10-29 00:00 UTC = 08:00 Beijing
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        assert replay_today(conn) == 0  # not a generated city: nothing invented
        fid = _facility(tiny_city_db)
        conn.execute("DELETE FROM onemap.refuse_load_reading WHERE facility_id = %s", (fid,))
        conn.execute(
            "INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, load_t) "
            "SELECT %s, %s::timestamptz + h * interval '1 hour', h FROM generate_series(0, 5) h",
            (fid, last_day - timedelta(days=1) + timedelta(hours=10)))  # the day before
        conn.execute(
            "INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, load_t) "
            "SELECT %s, %s::timestamptz + h * interval '1 hour', 2 * h "
            "FROM generate_series(0, 13) h", (fid, last_day - timedelta(hours=2)))
        conn.execute("INSERT INTO truth.generation (scale, seed, seconds, row_counts, facts) "
                     "VALUES ('S', 1, 1, '{}', '{}')")
        # 12:30 Beijing on 22 Nov: the last day's 06:00..12:00 readings (7 of them)
        noon = datetime(2026, 11, 22, 4, 30, tzinfo=UTC)
        assert replay_today(conn, noon) == 7
        assert replay_today(conn, noon) == 0
        assert replay_today(conn, noon + timedelta(hours=3)) == 3  # 13:00..15:00
        rows = conn.execute(
            "SELECT measured_at, load_t FROM onemap.refuse_load_reading "
            "WHERE facility_id = %s AND measured_at >= %s ORDER BY 1",
            (fid, datetime(2026, 11, 21, 16, tzinfo=UTC))).fetchall()
    assert [r[0] for r in rows] == [datetime(2026, 11, 21, 22, tzinfo=UTC)
                                    + timedelta(hours=h) for h in range(10)]
    assert [float(r[1]) for r in rows] == [2.0 * h for h in range(10)]
    with psycopg.connect(tiny_city_db) as conn, pytest.raises(ValueError, match="timezone"):
        replay_today(conn, datetime(2026, 11, 22))


def test_a_cached_load_tile_holds_only_until_local_midnight(make_client: Any,
                                                           tiny_city_db: str) -> None:
    """``daily: true``: the cache key carries the Beijing date and max-age stops at
    midnight, so yesterday's last load is not served into the new day."""
    from tests.tiles.test_freshness import _service

    _facility(tiny_city_db)
    staff = make_client(["district_admin"])
    service = _service(staff.app)
    local = datetime(2026, 11, 22, 23, 50, tzinfo=UTC) + timedelta(hours=-8)  # 23:50 +08
    service.clock = local.timestamp
    url = _url(16)
    first = staff.get(url)
    assert first.status_code == 200
    assert first.headers["Cache-Control"].endswith("max-age=600")  # 10 min to midnight
    renders = service.cache.stats.renders
    staff.get(url)
    assert service.cache.stats.renders == renders  # the same day: from the cache
    service.clock = (local + timedelta(minutes=11)).timestamp  # 00:01 the next day
    nextday = staff.get(url)
    assert service.cache.stats.renders == renders + 1  # a new day: drawn again
    assert nextday.headers["Cache-Control"].endswith("max-age=3600")


def test_live_window_tiles_are_redrawn_after_their_cache_seconds(make_client: Any,
                                                                tiny_city_db: str) -> None:
    """Rows age out of a default window (truck GPS: the last 2 hours) without any
    edit: the server keeps such tiles only for the layer's cache_seconds."""
    from tests.tiles.test_freshness import _service

    staff = make_client(["district_admin"])
    service = _service(staff.app)
    spec = load_spec(TILES, THEMES, CONFIG)
    seconds = spec.layers["truck_gps"].cache_seconds
    start = 1_800_000_000.0 - 1_800_000_000.0 % seconds  # the start of a period
    service.clock = lambda: start
    y, x = lonlat_to_tile(WEB, *SPOT, 17)
    url = f"/collections/truck_gps/tiles/{WEB}/17/{y}/{x}"
    assert staff.get(url).status_code in (200, 204)
    renders = service.cache.stats.renders
    service.clock = lambda: start + seconds - 1
    assert staff.get(url).status_code in (200, 204)
    assert service.cache.stats.renders == renders
    service.clock = lambda: start + seconds
    assert staff.get(url).status_code in (200, 204)
    assert service.cache.stats.renders == renders + 1
    # history named by datetime= does not age: it stays cached
    history = url + "?datetime=2026-10-28T00:00:00Z/2026-10-28T02:00:00Z"
    assert staff.get(history).status_code in (200, 204)
    renders = service.cache.stats.renders
    service.clock = lambda: start + 5 * seconds
    assert staff.get(history).status_code in (200, 204)
    assert service.cache.stats.renders == renders
