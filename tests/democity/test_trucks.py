"""The muck-truck step: tracks on the roads, records consistent with them, truth that holds.

One S city (with the trucks step) is generated per module; the network and
kinematics helpers are checked on a hand-built graph without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import psycopg
import pytest
import shapely

from democity.tracks import Leg, RoadNetwork, make_path, yard
from democity.truck_records import REPORT_DELAY_S
from spatial.crs import transform

SEED = 11


# --- without a database: routing and kinematics on a hand-built graph -------------------------

def _lattice() -> nx.Graph:
    """A 3 x 3 lattice, 200 m apart: an arterial along y=200, an alley shortcut 0-8."""
    g = nx.Graph()
    for i in range(3):
        for j in range(3):
            g.add_node(i * 3 + j, xy=(200.0 * j, 200.0 * i))
    rid = 0
    for i in range(3):
        for j in range(3):
            a = i * 3 + j
            for b in ([a + 1] if j < 2 else []) + ([a + 3] if i < 2 else []):
                rid += 1
                klass = "arterial" if (i == 1 and b == a + 1) or (j == 1 and b == a + 3) \
                    else "branch"
                line = shapely.LineString([g.nodes[b]["xy"], g.nodes[a]["xy"]])  # reversed
                g.add_edge(a, b, road_id=rid, length=line.length, road_class=klass,
                           geometry=line)
    g.add_edge(0, 8, road_id=99, length=283.0, road_class="alley",
               geometry=shapely.LineString([(0, 0), (400, 400)]))
    return g


def test_network_excludes_alleys_and_finds_lights() -> None:
    net = RoadNetwork(_lattice())
    assert 99 not in net.edge_road_id.tolist()
    path = net.node_path(net.index[0], net.index[8])
    assert len(path) == 5  # around the lattice, not the alley
    # the centre is where the two arterials cross: a signalised junction
    assert net.light.tolist() == [i == 4 for i in range(9)]
    xy, edges, light = net.route(path)
    assert np.allclose(xy[0], (0, 0)) and np.allclose(xy[-1], (400, 400))
    assert len(edges) == len(xy) - 1 and not light[0] and not light[-1]


def test_leg_waits_at_red_lights_and_keeps_time() -> None:
    net = RoadNetwork(_lattice())
    xy, edges, light = net.route([net.index[k] for k in (3, 4, 5)])  # through the light
    ya = yard([(-50.0, 200.0), (0.0, 200.0)])
    path = make_path([ya[0], xy], [ya[1], net.edge_speed[edges]], [ya[2], edges],
                     [ya[3], light])
    assert path.length == pytest.approx(450.0)
    leg = Leg(path, 100.0, 1.0, np.array([30.0]))
    drive = 50 / (10 / 3.6) + 400 / (40 / 3.6)
    assert leg.t1 == pytest.approx(100.0 + drive + 30.0)
    at_light = float(leg.time_at(250.0)[0])
    x, _, v, h = leg.sample(np.array([at_light + 1.0, at_light + 29.0, at_light + 40.0]))
    assert np.allclose(x[:2], 200.0) and np.allclose(v[:2], 0.0)
    assert v[2] == pytest.approx(40 / 3.6) and h[2] == pytest.approx(90.0)
    t = np.linspace(leg.t0, leg.t1, 50)
    xs, _, _, _ = leg.sample(t)
    assert np.all(np.diff(xs) >= -1e-9)  # never backwards


# --- on a generated S city --------------------------------------------------------------------

def _generate(server_conninfo: str, template_db: str) -> str:
    from democity import generate
    from spatial.db import connect
    from tests.conftest import create_database

    name = f"onemap_t_trucks_{uuid.uuid4().hex[:8]}"
    info = create_database(server_conninfo, name, template=template_db)
    with connect(info, autocommit=True) as c:
        generate(c, "S", SEED, steps=("trucks",))
    return name


@pytest.fixture(scope="module")
def city(server_conninfo: str, template_db: str) -> Iterator[psycopg.Connection[Any]]:
    from spatial.db import connect
    from spatial.settings import database_conninfo
    from tests.conftest import drop_database

    name = _generate(server_conninfo, template_db)
    with connect(database_conninfo(name), autocommit=True) as c:
        yield c
    drop_database(server_conninfo, name)


def _metric_geoms(conn: psycopg.Connection[Any], query: str) -> np.ndarray:
    rows = conn.execute(query).fetchall()
    return shapely.from_wkb([bytes(r["wkb"]) for r in rows])


def test_gps_points_lie_near_roads(city: psycopg.Connection[Any]) -> None:
    rows = city.execute("SELECT ST_X(geom) AS x, ST_Y(geom) AS y, speed_kmh "
                        "FROM onemap.truck_gps").fetchall()
    assert 30_000 <= len(rows) <= 50_000  # the S target is about 40,000
    lon, lat = (np.array([r[k] for r in rows]) for k in ("x", "y"))
    points = shapely.points(np.c_[transform(lon, lat, 4490, 4548)])
    speed = np.array([r["speed_kmh"] for r in rows])
    roads = _metric_geoms(city, "SELECT ST_AsBinary(ST_Transform(geom, 4548)) AS wkb "
                                "FROM onemap.road")
    hit = shapely.STRtree(roads).query(points, predicate="dwithin", distance=30)[0]
    near = np.zeros(len(points), dtype=bool)
    near[hit] = True
    # loading and unloading happen inside the sites, off the roads; parked and driving on them
    assert near.mean() > 0.6, near.mean()
    on_road = speed > 15  # faster than trucks crawl through yards
    assert on_road.sum() > 500 and near[on_road].mean() > 0.99


def test_consecutive_fixes_have_plausible_speed(city: psycopg.Connection[Any]) -> None:
    rows = city.execute(
        """
        SELECT truck_id, extract(epoch FROM ts)::float8 AS t, ST_X(ST_Transform(geom, 4548)) AS x,
               ST_Y(ST_Transform(geom, 4548)) AS y, speed_kmh, heading, ignition
        FROM onemap.truck_gps ORDER BY truck_id, ts
        """).fetchall()
    truck = np.array([r["truck_id"] for r in rows])
    t, x, y = (np.array([r[k] for r in rows]) for k in ("t", "x", "y"))
    speed = np.array([r["speed_kmh"] for r in rows])
    ignition = np.array([r["ignition"] for r in rows])
    same = truck[1:] == truck[:-1]
    dt = np.diff(t)[same]
    running = (ignition[1:] & ignition[:-1])[same]
    assert dt.min() >= 8 and np.median(dt[running]) <= 31  # every 10–30 s with the engine on
    v = (np.hypot(np.diff(x), np.diff(y))[same] / dt) * 3.6
    assert np.quantile(v, 0.999) < 100 and v.max() < 130
    # reported speed agrees with the motion (both ends moving, a short interval)
    moving = (speed[1:][same] > 5) & (speed[:-1][same] > 5) & (dt <= 31)
    err = np.abs(v[moving] - (speed[1:][same][moving] + speed[:-1][same][moving]) / 2)
    assert moving.sum() > 500 and np.median(err) < 8
    assert all(r["ignition"] for r in rows if r["speed_kmh"] > 0)
    assert all(0 <= r["heading"] < 360 for r in rows)


def test_loading_happens_inside_construction_sites(city: psycopg.Connection[Any]) -> None:
    row = city.execute(
        """
        SELECT count(*) AS n,
               count(*) FILTER (WHERE ST_DWithin(ST_Transform(s.geom, 4548),
                                                 ST_Transform(g.geom, 4548), 10)) AS inside,
               count(*) FILTER (WHERE g.speed_kmh = 0 AND g.ignition) AS standing
        FROM truth.truck_trip t
        JOIN onemap.construction_site s ON s.id = t.construction_site_id
        JOIN onemap.truck_gps g ON g.truck_id = t.truck_id
             AND g.ts > t.load_start + interval '30 s' AND g.ts < t.depart_ts - interval '30 s'
        """).fetchone()
    assert row["n"] > 500
    assert row["inside"] / row["n"] > 0.97 and row["standing"] == row["n"]


def test_disposal_entries_follow_the_tracks(city: psycopg.Connection[Any]) -> None:
    trips = city.execute("SELECT count(*) AS n, count(*) FILTER (WHERE entry_recorded) AS rec "
                         "FROM truth.truck_trip").fetchone()
    unmatched = city.execute(
        """
        SELECT count(*) AS n FROM onemap.disposal_entry e
        WHERE e.truck_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM truth.truck_trip t WHERE t.truck_id = e.truck_id
              AND t.disposal_site_id = e.disposal_site_id AND t.entered_ts = e.entered_at)
        """).fetchone()["n"]
    recorded = city.execute("SELECT count(*) AS n FROM onemap.disposal_entry "
                            "WHERE truck_id IS NOT NULL").fetchone()["n"]
    assert unmatched == 0 and recorded == trips["rec"] and trips["rec"] >= 0.9 * trips["n"]
    # where the terminal was on, the track is inside the site's polygon after entering
    seen = city.execute(
        """
        SELECT count(*) AS n, count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM onemap.truck_gps g WHERE g.truck_id = e.truck_id
                     AND g.ts BETWEEN e.entered_at AND e.entered_at + interval '10 min'
                     AND ST_Within(g.geom, d.geom))) AS inside
        FROM onemap.disposal_entry e JOIN onemap.disposal_site d ON d.id = e.disposal_site_id
        WHERE e.truck_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM truth.device_off o WHERE o.truck_id = e.truck_id
              AND e.entered_at BETWEEN o.from_ts AND o.to_ts + interval '10 min')
        """).fetchone()
    assert seen["n"] > 50 and seen["inside"] >= 0.97 * seen["n"]


def test_checkpoint_hits_correspond_to_passes(city: psycopg.Connection[Any]) -> None:
    row = city.execute(
        """
        SELECT count(*) AS n, count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM onemap.truck_gps g WHERE g.truck_id = h.truck_id
                     AND g.ts BETWEEN h.at - interval '40 s' AND h.at + interval '40 s'
                     AND ST_DWithin(ST_Transform(g.geom, 4548), ST_Transform(c.geom, 4548),
                                    450))) AS near
        FROM onemap.checkpoint_hit h JOIN onemap.checkpoint c ON c.id = h.checkpoint_id
        WHERE h.truck_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM truth.device_off o WHERE o.truck_id = h.truck_id
              AND h.at BETWEEN o.from_ts AND o.to_ts)
        """).fetchone()
    assert row["n"] > 30 and row["near"] >= 0.9 * row["n"], row
    misreads = city.execute(
        """
        SELECT h.plate_read, h.truck_id, t.plate_number FROM truth.checkpoint_misread m
        JOIN onemap.checkpoint_hit h ON h.id = m.checkpoint_hit_id
        JOIN onemap.truck t ON t.id = m.truck_id
        """).fetchall()
    for r in misreads:
        assert r["truck_id"] is None and len(r["plate_read"]) == len(r["plate_number"])
        assert sum(a != b for a, b in zip(r["plate_read"], r["plate_number"],
                                          strict=True)) == 1
    plates = {r["plate_number"] for r in city.execute("SELECT plate_number FROM onemap.truck")}
    unmatched = city.execute("SELECT plate_read FROM onemap.checkpoint_hit "
                             "WHERE truck_id IS NULL").fetchall()
    assert not plates & {r["plate_read"] for r in unmatched}
    assert all(p == p.upper() and " " not in p for p in plates)


def test_waybills_cover_most_trips(city: psycopg.Connection[Any]) -> None:
    row = city.execute(
        """
        SELECT count(*) AS n, count(w.id) AS covered,
               count(*) FILTER (WHERE w.id IS NOT NULL AND w.truck_id = t.truck_id
                                AND w.construction_site_id = t.construction_site_id
                                AND t.depart_ts BETWEEN w.valid_from AND w.valid_to) AS valid
        FROM truth.truck_trip t LEFT JOIN onemap.waybill w ON w.id = t.waybill_id
        """).fetchone()
    assert row["covered"] >= 0.8 * row["n"] and row["valid"] == row["covered"]
    reasons = city.execute(
        """
        SELECT u.reason, t.waybill_id IS NULL AS no_wb,
               t.disposal_site_id IS DISTINCT FROM w.disposal_site_id AS wrong_site
        FROM truth.unauthorised u JOIN truth.truck_trip t ON t.id = u.trip_id
        LEFT JOIN onemap.waybill w ON w.id = t.waybill_id
        """).fetchall()
    assert {r["reason"] for r in reasons} == {"no_waybill", "wrong_disposal_site",
                                              "dumped_outside"}
    for r in reasons:
        assert r["no_wb"] if r["reason"] == "no_waybill" else r["wrong_site"] and not r["no_wb"]
    # a load dumped outside: no disposal site, no entry, the haul ends away from every site
    dumped = city.execute(
        """
        SELECT t.disposal_site_id, t.entry_recorded, NOT EXISTS (
                   SELECT 1 FROM onemap.disposal_site d
                   WHERE ST_DWithin(d.geom, ST_EndPoint(t.path), 0.005)) AS away,
               NOT EXISTS (SELECT 1 FROM onemap.disposal_entry e WHERE e.truck_id = t.truck_id
                           AND e.entered_at BETWEEN t.depart_ts AND t.unload_end) AS no_entry
        FROM truth.unauthorised u JOIN truth.truck_trip t ON t.id = u.trip_id
        WHERE u.reason = 'dumped_outside'
        """).fetchall()
    assert dumped and all(r["disposal_site_id"] is None and not r["entry_recorded"]
                          and r["away"] and r["no_entry"] for r in dumped), dumped
    lawful = city.execute(
        """
        SELECT count(*) AS n FROM truth.truck_trip t JOIN onemap.waybill w ON w.id = t.waybill_id
        WHERE w.disposal_site_id <> t.disposal_site_id
          AND t.id NOT IN (SELECT trip_id FROM truth.unauthorised)
        """).fetchone()["n"]
    assert lawful == 0


def test_checkpoint_cameras_read_the_load_cover(city: psycopg.Connection[Any]) -> None:
    """A loaded truck's cover as the cameras read it: mostly ``uncovered`` for a trip whose
    cover was open, rarely for one whose cover was closed; an empty truck is not read."""
    rows = city.execute(
        """
        SELECT t.uncovered, count(*) FILTER (WHERE h.load_cover = 'uncovered') AS open,
               count(h.load_cover) AS classified, count(*) AS reads
        FROM onemap.checkpoint_hit h JOIN truth.truck_trip t ON t.truck_id = h.truck_id
         AND h.at BETWEEN t.depart_ts AND t.arrive_ts
        GROUP BY t.uncovered
        """).fetchall()
    by = {r["uncovered"]: r for r in rows}
    closed = by[False]
    assert closed["classified"] > 20 and closed["open"] <= 0.12 * closed["classified"]
    assert 0.6 * closed["reads"] <= closed["classified"] <= 0.95 * closed["reads"]
    if by.get(True) and by[True]["classified"]:
        assert by[True]["open"] >= 0.5 * by[True]["classified"]
    empty = city.execute(
        """
        SELECT count(*) AS n FROM onemap.checkpoint_hit h
        WHERE h.load_cover IS NOT NULL AND h.truck_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM truth.truck_trip t WHERE t.truck_id = h.truck_id
               AND h.at BETWEEN t.depart_ts AND t.arrive_ts)
        """).fetchone()["n"]
    assert empty == 0


def test_spills_lie_on_the_causing_trip_after_it_passed(city: psycopg.Connection[Any]) -> None:
    rows = city.execute(
        """
        SELECT c.kind, c.truck_id, t.truck_id AS trip_truck, s.reported_at - c.passed_at AS lag,
               c.passed_at BETWEEN t.depart_ts AND t.arrive_ts AS during,
               ST_Distance(ST_Transform(s.geom, 4548), ST_Transform(t.path, 4548)) AS off_path,
               c.construction_site_id = t.construction_site_id
                   AND c.disposal_site_id IS NOT DISTINCT FROM t.disposal_site_id AS sites,
               s.source
        FROM onemap.spill_report s JOIN truth.spill_cause c ON c.spill_report_id = s.id
        LEFT JOIN truth.truck_trip t ON t.id = c.trip_id
        """).fetchall()
    assert len(rows) == 10
    caused = [r for r in rows if r["kind"] == "caused"]
    assert len(caused) == 6
    for r in caused:
        assert r["truck_id"] == r["trip_truck"] and r["during"] and r["sites"]
        assert r["off_path"] < 10
        # each source reports after its own delay (a camera within minutes, the hotline
        # up to two and a half hours later)
        lo, hi = REPORT_DELAY_S[r["source"]]
        assert lo <= r["lag"].total_seconds() <= hi
    assert all(r["truck_id"] is None for r in rows if r["kind"] == "noise")
    # the causing truck's own GPS saw it there (unless its terminal was off)
    near = city.execute(
        """
        SELECT count(*) AS n, count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM onemap.truck_gps g WHERE g.truck_id = c.truck_id
                     AND g.ts BETWEEN c.passed_at - interval '1 min'
                                  AND c.passed_at + interval '1 min'
                     AND ST_DWithin(ST_Transform(g.geom, 4548), ST_Transform(s.geom, 4548), 500)
               )) AS seen
        FROM truth.spill_cause c JOIN onemap.spill_report s ON s.id = c.spill_report_id
        WHERE c.kind = 'caused' AND NOT EXISTS (
            SELECT 1 FROM truth.device_off o WHERE o.truck_id = c.truck_id
              AND c.passed_at BETWEEN o.from_ts AND o.to_ts)
        """).fetchone()
    assert near["seen"] >= near["n"] - 1


def test_leaking_trips_leave_trails_and_gaps_are_recorded(
        city: psycopg.Connection[Any]) -> None:
    """A leaking trip leaves a trail (several reports of one trip, in the order it
    drove); an overloaded trip's entry measures more than its truck holds; every gap and
    device-off window of truth.gps_gap is a stretch without fixes."""
    trails = city.execute(
        """
        SELECT c.trip_id, count(*) AS reports,
               bool_and(s.reported_at > c.passed_at) AS after
        FROM truth.spill_cause c JOIN onemap.spill_report s ON s.id = c.spill_report_id
        WHERE c.kind = 'caused' GROUP BY c.trip_id
        """).fetchall()
    assert trails and all(r["after"] for r in trails)
    assert max(r["reports"] for r in trails) >= 2
    assert sum(r["reports"] for r in trails) == 6
    entries = city.execute(
        """
        SELECT t.volume_m3::float8 AS trip, e.volume_m3::float8 AS entry,
               k.capacity_m3::float8 AS capacity
        FROM truth.truck_trip t JOIN onemap.truck k ON k.id = t.truck_id
        JOIN onemap.disposal_entry e ON e.truck_id = t.truck_id
         AND e.entered_at = t.entered_ts
        """).fetchall()
    assert entries and all(r["trip"] == r["entry"] for r in entries)
    over = [r for r in entries if r["entry"] > r["capacity"]]
    assert over and all(r["entry"] >= r["capacity"] * 1.1 - 0.01 for r in over)
    gaps = city.execute(
        """
        SELECT g.kind, count(*) AS n, count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM onemap.truck_gps f WHERE f.truck_id = g.truck_id
                     AND f.ts > g.from_ts AND f.ts < g.to_ts)) AS with_fixes
        FROM truth.gps_gap g GROUP BY g.kind
        """).fetchall()
    by = {r["kind"]: r for r in gaps}
    assert by["gap"]["n"] >= 1 and by["gap"]["with_fixes"] == 0
    assert by["device_off"]["with_fixes"] == 0
    assert by["device_off"]["n"] == city.execute(
        "SELECT count(*) AS n FROM truth.device_off").fetchone()["n"]


def test_night_work_partitions_and_device_off(city: psycopg.Connection[Any]) -> None:
    night = city.execute(
        """
        SELECT avg((extract(hour FROM depart_ts AT TIME ZONE 'Asia/Shanghai') >= 21
                    OR extract(hour FROM depart_ts AT TIME ZONE 'Asia/Shanghai') < 7)::int) AS r
        FROM truth.truck_trip
        """).fetchone()["r"]
    assert night > 0.8
    assert city.execute("SELECT count(*) AS n FROM onemap.truck_gps_default").fetchone()["n"] == 0
    parts = city.execute("SELECT count(DISTINCT tableoid) AS n FROM onemap.truck_gps").fetchone()
    assert parts["n"] == 3  # two nights span three Beijing dates
    off = city.execute(
        """
        SELECT count(*) AS n FROM truth.device_off o JOIN onemap.truck_gps g
            ON g.truck_id = o.truck_id AND g.ts >= o.from_ts AND g.ts < o.to_ts
        """).fetchone()["n"]
    assert off == 0
    assert city.execute("SELECT count(*) AS n FROM truth.device_off").fetchone()["n"] >= 1


def test_tile_rollup_counts_every_fix(city: psycopg.Connection[Any]) -> None:
    # fixes are copied into detached partitions, past truck_gps's triggers
    rolled = city.execute("SELECT sum(count) AS n, count(*) AS cells "
                          "FROM rollup.truck_gps_hourly").fetchone()
    assert rolled["cells"] > 0
    assert rolled["n"] == city.execute("SELECT count(*) AS n FROM onemap.truck_gps").fetchone()["n"]


STAYS = ("SELECT count(*) AS n, md5(string_agg(concat_ws(',', truck_id, first_ts, last_ts, "
         "fixes, ST_AsText(geom), site_kind, site_id), ';' ORDER BY truck_id, first_ts)) AS h "
         "FROM rollup.truck_stay")
GAPS = ("SELECT count(*) AS n, md5(string_agg(concat_ws(',', truck_id, from_ts, to_ts, "
        "ST_AsText(geom_from), ST_AsText(geom_to)), ';' ORDER BY truck_id, from_ts)) AS h "
        "FROM rollup.truck_gps_gap")


def test_stays_and_gaps_kept_by_the_triggers_equal_a_rebuild(
        city: psycopg.Connection[Any]) -> None:
    # the generator derived them once after loading; loading trucks stay at sites
    at_sites = city.execute("SELECT site_kind, count(*) AS n FROM rollup.truck_stay "
                            "WHERE site_kind IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
    assert [r["site_kind"] for r in at_sites] == ["construction", "disposal"]
    # every planted gap of 2 min or more is a derived gap
    missed = city.execute(
        "SELECT count(*) AS n FROM truth.gps_gap t WHERE t.to_ts - t.from_ts >= interval "
        "'2 minutes' AND EXISTS (SELECT 1 FROM onemap.truck_gps g WHERE g.truck_id = "
        "t.truck_id AND g.ts < t.from_ts) AND EXISTS (SELECT 1 FROM onemap.truck_gps g "
        "WHERE g.truck_id = t.truck_id AND g.ts > t.to_ts) AND NOT EXISTS (SELECT 1 FROM "
        "rollup.truck_gps_gap d WHERE d.truck_id = t.truck_id AND d.from_ts <= t.from_ts "
        "AND d.to_ts >= t.to_ts)").fetchone()["n"]
    assert missed == 0
    with city.transaction(force_rollback=True):  # the module's city stays as it was
        # fixes removed at random and in a run, one truck's fixes moved, one fix
        # written between two others, one after the last: kept row by row ...
        city.execute("SELECT setseed(0.5)")
        city.execute("DELETE FROM onemap.truck_gps WHERE random() < 0.05")
        truck, lo = city.execute("SELECT truck_id, min(ts) AS lo FROM onemap.truck_gps "
                                 "GROUP BY 1 ORDER BY 1 LIMIT 1").fetchone().values()
        city.execute("DELETE FROM onemap.truck_gps WHERE truck_id = %s AND ts BETWEEN %s "
                     "AND %s + interval '40 minutes'", (truck, lo, lo))
        city.execute("UPDATE onemap.truck_gps SET ts = ts + interval '1 second' "
                     "WHERE truck_id = %s + 1", (truck,))
        city.execute("INSERT INTO onemap.truck_gps (truck_id, ts, geom, speed_kmh) "
                     "SELECT truck_id, ts + interval '5 seconds', geom, 0 FROM onemap.truck_gps "
                     "WHERE truck_id = %s + 2 ORDER BY ts LIMIT 1", (truck,))
        city.execute("INSERT INTO onemap.truck_gps (truck_id, ts, geom, speed_kmh) "
                     "SELECT truck_id, ts + interval '3 hours', geom, 0 FROM onemap.truck_gps "
                     "WHERE truck_id = %s + 2 ORDER BY ts DESC LIMIT 1", (truck,))
        kept = city.execute(STAYS).fetchone(), city.execute(GAPS).fetchone()
        # ... equal all derived again
        city.execute("SELECT onemap.rebuild_truck_stays()")
        assert (city.execute(STAYS).fetchone(), city.execute(GAPS).fetchone()) == kept
        assert kept[1]["n"] > missed


def test_same_seed_same_rows(city: psycopg.Connection[Any], server_conninfo: str,
                             template_db: str) -> None:
    from spatial.db import connect
    from spatial.settings import database_conninfo
    from tests.conftest import drop_database

    name = _generate(server_conninfo, template_db)
    try:
        with connect(database_conninfo(name), autocommit=True) as other:
            for c in (city, other):
                c.execute("SET TimeZone = 'UTC'")
            mine, theirs = _digests(city), _digests(other)
    finally:
        drop_database(server_conninfo, name)
    assert mine == theirs


def _digests(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """md5 per table over its rows in a fixed order, time stamps of writing left out."""
    from psycopg import sql

    out = {}
    for table, order in (("truck_gps", ("truck_id", "ts")), ("waybill", ("id",)),
                         ("checkpoint_hit", ("id",)), ("spill_report", ("id",)),
                         ("disposal_entry", ("id",)), ("construction_site", ("id",))):
        cols = [r["column_name"] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'onemap' "
            "AND table_name = %s AND column_name NOT IN ('created_at', 'updated_at', "
            "'geom_3857') ORDER BY ordinal_position", (table,))]
        query = sql.SQL("SELECT md5(string_agg(concat_ws('|', {}), ',' ORDER BY {})) AS d "
                        "FROM onemap.{}").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(map(sql.Identifier, order)), sql.Identifier(table))
        out[table] = conn.execute(query).fetchone()["d"]
    return out
