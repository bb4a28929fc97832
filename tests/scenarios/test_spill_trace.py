"""Spill tracing (``scenarios/spill_trace.py``) on hand-made cases in the tiny city.

On 示范路 (east–west, 116.455–116.485 E at 39.9175 N) a construction site stands
at the west end and a disposal site at the east end; muck is reported at
116.470 E at 21:40 (and, for the incident case, at 116.478 E at 21:45):

- truck 1 leaves the construction site at 21:10 and drives east past the spot:
  loaded, with a waybill, its entry at the disposal site measured over capacity;
- truck 2 leaves the disposal site at 21:05 and drives west past the spot: empty;
- truck 3 leaves the construction site at 21:20 without a waybill, and its GPS drops
  out from 116.462 to 116.478 E (a gap the road prism covers);
- truck 4 drives with its device off; a checkpoint at 116.472 E misreads one
  character of its plate at 21:25;
- truck 5 drives west at 21:00 in the same way as truck 2, but its fixes stop for
  good before the road: its gap is longer than any prism.

Each is found by its own source, ranked loaded before empty, and flagged as it should
be; the answers are worked out by hand from the positions and times above.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from scenarios import spill_trace as st

Y = 39.9175
DAY = datetime(2026, 10, 28, tzinfo=UTC)
SPOT = (116.470, Y)
SECOND = (116.478, Y)
REPORTED = DAY + timedelta(hours=21, minutes=40)
SPEED_DEG_S = 10.0 / 85_300.0  # 10 m/s along the road, in degrees of longitude


def at(h: int, m: int, s: float = 0.0) -> datetime:
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def drive(truck: int, x0: float, x1: float, start: datetime, step_s: float = 20.0,
          skip: tuple[float, float] | None = None
          ) -> list[tuple[int, datetime, float, float, float]]:
    """Fixes every ``step_s`` along the road from x0 to x1 at 10 m/s, none inside ``skip``."""
    out = []
    n = int(abs(x1 - x0) / (SPEED_DEG_S * step_s)) + 1
    sign = 1 if x1 > x0 else -1
    for i in range(n + 1):
        x = x0 + sign * min(i * SPEED_DEG_S * step_s, abs(x1 - x0))
        if skip is not None and min(skip) < x < max(skip):
            continue
        out.append((truck, start + timedelta(seconds=i * step_s), x, Y, 36.0))
    return out


def stay(truck: int, x: float, y: float, start: datetime, minutes: int
         ) -> list[tuple[int, datetime, float, float, float]]:
    """Fixes every 30 s standing still (speed 0)."""
    return [(truck, start + timedelta(seconds=30 * i), x, y, 0.0)
            for i in range(minutes * 2 + 1)]


@pytest.fixture
def case(tiny_city_db: str) -> Iterator[dict[str, Any]]:
    with psycopg.connect(tiny_city_db, row_factory=dict_row) as conn:
        site = conn.execute(
            "INSERT INTO onemap.construction_site (name, geom) VALUES ('示范路工地', "
            "ST_Multi(ST_MakeEnvelope(116.4555, 39.9178, 116.4565, 39.9185, 4490))) "
            "RETURNING id").fetchone()["id"]
        dump = conn.execute(
            "INSERT INTO onemap.disposal_site (name, geom) VALUES ('东消纳场', "
            "ST_Multi(ST_MakeEnvelope(116.4835, 39.9178, 116.4845, 39.9185, 4490))) "
            "RETURNING id").fetchone()["id"]
        company = conn.execute("INSERT INTO onemap.truck_company (name) VALUES ('鑫达运输') "
                               "RETURNING id").fetchone()["id"]
        plates = ["京A10001", "京A10002", "京A10003", "京A10004", "京A10005"]
        trucks = [conn.execute("INSERT INTO onemap.truck (plate_number, company_id, "
                               "capacity_m3) VALUES (%s, %s, 20) RETURNING id",
                               (p, company)).fetchone()["id"] for p in plates]
        t1, t2, t3, _, t5 = trucks
        fixes = (
            stay(t1, 116.456, 39.9181, at(21, 0), 10)
            + drive(t1, 116.456, 116.484, at(21, 10, 30))
            + stay(t1, 116.484, 39.9181, at(21, 16), 10)
            + stay(t2, 116.484, 39.9181, at(20, 55), 10)
            + drive(t2, 116.484, 116.456, at(21, 5, 30))
            + stay(t3, 116.456, 39.9181, at(21, 10), 10)
            + drive(t3, 116.456, 116.484, at(21, 20, 30), skip=(116.462, 116.478))
            + stay(t5, 116.484, 39.9181, at(17, 0), 10)
            + drive(t5, 116.484, 116.4835, at(17, 10, 30)))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO onemap.truck_gps (truck_id, ts, geom, speed_kmh) "
                "VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4490), %s)", fixes)
        waybill = conn.execute(
            "INSERT INTO onemap.waybill (code, truck_id, construction_site_id, "
            "disposal_site_id, issued_at, valid_from, valid_to, volume_m3, geom) VALUES "
            "('YD1', %s, %s, %s, %s, %s, %s, 20, ST_MakeLine(ST_Point(116.456, %s, 4490), "
            "ST_Point(116.484, %s, 4490))) RETURNING id",
            (t1, site, dump, at(20, 30), at(20, 30), at(23, 59), Y, Y)).fetchone()["id"]
        entry = conn.execute(
            "INSERT INTO onemap.disposal_entry (external_ref, disposal_site_id, truck_id, "
            "plate_number, waybill_id, entered_at, volume_m3) VALUES ('E1', %s, %s, %s, %s, "
            "%s, 24.5) RETURNING id", (dump, t1, plates[0], waybill, at(21, 16))
        ).fetchone()["id"]
        conn.execute("INSERT INTO onemap.disposal_entry (external_ref, disposal_site_id, "
                     "truck_id, plate_number, entered_at, volume_m3) VALUES ('E3', %s, %s, "
                     "%s, %s, 18)", (dump, t3, plates[2], at(21, 26)))
        cp = conn.execute("INSERT INTO onemap.checkpoint (name, geom) VALUES ('示范路卡口', "
                          "ST_Point(116.472, %s, 4490)) RETURNING id", (Y,)).fetchone()["id"]
        conn.execute("INSERT INTO onemap.checkpoint_hit (checkpoint_id, plate_read, truck_id, "
                     "at, confidence) VALUES (%s, '京A1O004', NULL, %s, 0.6)",
                     (cp, at(21, 25)))
        spills = [conn.execute(
            "INSERT INTO onemap.spill_report (source, external_ref, reported_at, geom) "
            "VALUES ('citizen', %s, %s, ST_Point(%s, %s, 4490)) RETURNING id",
            (ref, when, x, y)).fetchone()["id"]
            for ref, when, (x, y) in (("YS1", REPORTED, SPOT),
                                      ("YS2", REPORTED + timedelta(minutes=5), SECOND))]
        conn.commit()
    yield {"db": tiny_city_db, "trucks": trucks, "site": site, "dump": dump,
           "waybill": waybill, "entry": entry, "spills": spills, "checkpoint": cp}


def trace(case: dict[str, Any], ids: list[int], **kwargs: Any) -> st.SpillTrace:
    with psycopg.connect(case["db"], row_factory=dict_row) as conn:
        return st.SpillTrace(conn, st.load_spills(conn, ids), **kwargs).solve()


def test_each_source_finds_its_truck_and_loaded_ranks_before_empty(
        case: dict[str, Any]) -> None:
    t1, t2, t3, t4, _ = case["trucks"]
    result = trace(case, case["spills"][:1])
    ranked = result.ranked(10)
    by = {s.truck_id: s for s in ranked}
    assert set(by) == {t1, t2, t3, t4}, by  # truck 5's fixes stop hours before
    # truck 1: passed on its track, loaded from the site, to the disposal site, overloaded
    one = by[t1]
    p = one.passes[0]
    assert p.how == "gps" and p.distance_m is not None and p.distance_m < 1.0
    # it left x=116.456 at 21:10:30 and covers 0.014° at 10 m/s: 1,194 m, 119.4 s
    assert abs((p.at - at(21, 12, 29.4)).total_seconds()) < 2
    assert one.loaded is True and one.overloaded is True
    assert (one.construction_site_id, one.disposal_site_id) == (case["site"], case["dump"])
    assert one.waybill_id == case["waybill"] and one.entry_id == case["entry"]
    assert one.route and one.flags == ["overloaded"]
    # truck 2: same road, other way, from the disposal site: empty
    assert by[t2].loaded is False and by[t2].passes[0].how == "gps"
    # truck 3: through a gap of 160 s that the prism covers; no waybill
    three = by[t3]
    assert three.passes[0].how == "prism" and three.loaded is True
    assert 150 < (three.passes[0].gap_s or 0) < 180
    assert "unauthorised" in three.flags and three.construction_site_id == case["site"]
    # truck 4: no fix at all; the camera read 京A1O004 for 京A10004 (one character off)
    four = by[t4]
    assert four.passes[0].how == "checkpoint" and four.checkpoints[0]["misread"]
    assert four.loaded is None
    order = [s.truck_id for s in ranked]
    assert order.index(t1) < order.index(t2) and order.index(t3) < order.index(t2)
    assert order[0] == t1


def test_one_trip_explains_two_reports(case: dict[str, Any]) -> None:
    t1, t2, t3, _, _ = case["trucks"]
    result = trace(case, case["spills"])
    by = {s.truck_id: s for s in result.ranked(10, first_only=True)}
    assert by[t1].explains() == [0, 1]
    # +1 for the second report, and half the weight of its delay after truck 1's pass
    second = by[t1].passes[1]
    assert second.at is not None
    delay = (REPORTED + timedelta(minutes=5) - second.at).total_seconds()
    assert by[t1].parts["reports"] == pytest.approx(
        1.0 + 0.5 * st.delay_weight("citizen", delay, 3 * 3600.0), abs=1e-3)
    assert by[t3].explains() == [0, 1]  # the prism of its gap covers both spots
    # the empty truck passed both spots too, but empty: it stays behind the loaded ones
    assert by[t2].score < min(by[t1].score, by[t3].score)


def test_a_report_nearby_weighs_as_the_trail_a_suspect_may_have_left(
        case: dict[str, Any]) -> None:
    """Traced alone, the first report finds the second one nearby as context: truck 1's
    loaded way passed it, and its delay after that pass weighs as a trail,
    log(1 + 0.5 (exp(w) - 1)) — not as a report the caller said was one incident."""
    t1, _, _, _, _ = case["trucks"]
    alone = trace(case, case["spills"][:1])
    assert alone.traced == 1 and [s.id for s in alone.spills] == case["spills"]
    one = {s.truck_id: s for s in alone.ranked(10)}[t1]
    assert one.explains() == [0, 1] and "reports" not in one.parts
    second = one.passes[1]
    assert second.at is not None
    w = st.delay_weight("citizen", (REPORTED + timedelta(minutes=5) - second.at)
                        .total_seconds(), 3 * 3600.0)
    assert one.parts["trail"] == pytest.approx(math.log(1 + 0.5 * math.expm1(w)), abs=1e-3)
    # it weighs the site, not the truck: a convoy's trucks all pass the trail
    assert one.score == pytest.approx(sum(v for k, v in one.parts.items() if k != "trail"))
    # without context: the first report alone
    bare = trace(case, case["spills"][:1], context=False)
    assert len(bare.spills) == 1
    assert "trail" not in {s.truck_id: s for s in bare.ranked(10)}[t1].parts
    # a report later than the present is not context yet
    early = trace(case, case["spills"][:1], now=REPORTED + timedelta(minutes=1))
    assert len(early.spills) == 1


def test_bad_input_names_itself(case: dict[str, Any]) -> None:
    with psycopg.connect(case["db"], row_factory=dict_row) as conn:
        with pytest.raises(st.SpillTraceError, match="report_ids: no spill report with id 987"):
            st.load_spills(conn, [987654])
        spills = st.load_spills(conn, case["spills"][:1])
        with pytest.raises(st.SpillTraceError, match="window_h"):
            st.SpillTrace(conn, spills, window_h=8760)
        with pytest.raises(st.SpillTraceError, match="window_h"):
            st.SpillTrace(conn, spills, window_h=0)
        with pytest.raises(st.SpillTraceError, match=r"time: .* is in the future"):
            st.SpillTrace(conn, [st.Spill(None, *SPOT, datetime.now(UTC) + timedelta(days=1))])
        with pytest.raises(st.SpillTraceError, match="report_ids"):
            st.SpillTrace(conn, [])


def test_a_loaded_truck_that_stops_outside_any_site_dumped_there(case: dict[str, Any]) -> None:
    """Truck 6 loads at the site, passes the spot at 21:17, stands 8 minutes on waste
    ground at 116.476 E (no site there), then drives back past the spot: ``dumped_outside``
    there, no disposal entry needed to say so; its pass on the way back was empty."""
    with psycopg.connect(case["db"], row_factory=dict_row) as conn:
        t6 = conn.execute("INSERT INTO onemap.truck (plate_number, capacity_m3) VALUES "
                          "('京A10006', 20) RETURNING id").fetchone()["id"]
        fixes = (stay(t6, 116.456, 39.9181, at(21, 5), 10)
                 + drive(t6, 116.456, 116.476, at(21, 15, 30))
                 + stay(t6, 116.476, Y + 0.0003, at(21, 19, 15), 8)
                 + drive(t6, 116.476, 116.456, at(21, 27, 30)))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO onemap.truck_gps (truck_id, ts, geom, speed_kmh) "
                "VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4490), %s)", fixes)
        conn.commit()
    result = trace(case, case["spills"][:1])
    six = next(s for s in result.ranked(10) if s.truck_id == t6)
    assert six.loaded is True and "dumped_outside" in six.flags, six.flags
    assert "no_disposal_seen" not in six.flags and six.disposal_site_id is None
    assert six.dump is not None
    lon, lat, when = six.dump
    # the stop begins where it left the road (33 m from where it stood): within 50 m
    assert abs(lon - 116.476) < 0.0003 and abs(lat - (Y + 0.0003)) <= 0.00045
    assert at(21, 17) < when < at(21, 21)
    # driving back it passed the spot again at 21:28, after the dump: empty then
    back = [s for s in result.suspects if s.truck_id == t6 and s.passes[0].at is not None
            and s.passes[0].at > at(21, 27)]
    assert back and back[0].loaded is False and "dumped_outside" in back[0].flags
    assert back[0].score < six.score
    # truck 1 went on to the disposal site: no such flag
    one = next(s for s in trace(case, case["spills"][:1]).ranked(10)
               if s.truck_id == case["trucks"][0])
    assert "dumped_outside" not in one.flags and one.dump is None


def _twin(truck: int, passed: datetime, **kwargs: Any) -> st.Suspect:
    """A loaded suspect that passed the first report's spot 5 m away at ``passed``."""
    s = st.Suspect(truck, loaded=True, **kwargs)
    s.passes[0] = st.Pass("gps", passed, 5.0)
    return s


def test_the_report_delay_of_each_source_weighs_the_passes() -> None:
    """Two loaded trucks pass 28 and 5 minutes before a report. A road camera flags muck
    within minutes: the later pass. A 12345 hotline order takes longer than 10 minutes
    to raise (a call taken, an order written): the earlier pass."""
    early, late = at(21, 12), at(21, 35)
    for source, when, first in (("camera", at(21, 40), 2), ("hotline_12345", at(21, 45), 1)):
        one, two = _twin(1, early), _twin(2, late)
        for s in (one, two):
            s.rescore({0: (when, source)})
        best = max((one, two), key=lambda s: s.score)
        assert best.truck_id == first, (source, one.parts, two.parts)
    # a camera report an hour and a half after the pass nearly rules it out
    assert st.delay_weight("camera", 5400.0) == -3.0
    assert st.delay_weight("camera", 300.0) > 2.0
    assert st.delay_weight("citizen", -1.0) == -3.0  # reported before it passed


def test_a_pass_through_a_gap_weighs_the_delays_of_the_span_it_could_have_passed_in(
        ) -> None:
    """A camera's report 7 min after a pass seen by GPS is strong evidence; after a gap
    the truck could have crossed the spot any time in an hour, the time says less: the
    log-normal's probability over the span, per second, against the window's."""
    from scipy.stats import lognorm
    median, sigma = st.REPORT_DELAY_S["camera"]
    reference = lognorm(s=sigma, scale=median)
    by_hand = math.log((reference.cdf(420.0 + 3600.0) - reference.cdf(420.0)) / 3600.0
                       * 3 * 3600.0)
    spread = st.delay_weight("camera", 420.0, 3 * 3600.0, spread_s=3600.0)
    assert spread == pytest.approx(by_hand, abs=1e-6)
    assert 0.0 < spread < st.delay_weight("camera", 420.0, 3 * 3600.0)
    # a span wholly after the report: it cannot have caused it
    assert st.delay_weight("camera", -4000.0, spread_s=3600.0) == -3.0


def test_a_gap_whose_way_runs_through_the_spot_places_the_truck_surer() -> None:
    """Through a gap, the road way via the spot barely longer than the straight line
    between the fixes either side (the spot on the way) places the truck like a track some
    20 m away; a long detour (the truck could have been there) no better than any prism."""
    at_ = at(21, 20)
    on_way = st.Pass("prism", at_, None, 600.0, (at_, at_), detour=1.05)
    detour = st.Pass("prism", at_, None, 600.0, (at_, at_), detour=2.4)
    assert st._strength(on_way) == pytest.approx(0.75)
    assert st._strength(detour) == st._strength(st.Pass("prism", at_)) == 0.5
    # a track 10 m away is surer still
    assert st._strength(st.Pass("gps", at_, 10.0)) > st._strength(on_way)


def test_a_camera_that_saw_the_cover_open_weighs_more_than_one_that_saw_it_closed() -> None:
    """Twins but for what the checkpoint's classifier saw of the load: uncovered (未密闭)
    ranks first; a read of a closed cover counts against; an unclassified read neither."""
    hit = {"misread": False, "distance_m": 400.0}
    when = at(21, 40)
    open_, closed, unknown = (_twin(k, at(21, 20), checkpoints=[{**hit, "cover": c}])
                              for k, c in ((1, "uncovered"), (2, "covered"), (3, None)))
    for s in (open_, closed, unknown):
        s.rescore({0: (when, "citizen")})
    # one read: log((0.6 * 0.85 + 0.4 * 0.03) / (0.05 * 0.85 + 0.95 * 0.03)), and of a
    # closed cover log((0.6 * 0.15 + 0.4 * 0.97) / (0.05 * 0.15 + 0.95 * 0.97)), by hand
    assert open_.parts["cover"] == pytest.approx(1.9950, abs=1e-4)
    assert closed.parts["cover"] == pytest.approx(-0.6645, abs=1e-4)
    assert "cover" not in unknown.parts
    assert open_.score > unknown.score > closed.score
    # many reads of one trip share its truth: they say at most what an open cover says,
    # log(0.6 / 0.05), and a closed one log(0.4 / 0.95)
    many = _twin(4, at(21, 20), checkpoints=[{**hit, "cover": "uncovered"}] * 4)
    shut = _twin(5, at(21, 20), checkpoints=[{**hit, "cover": "covered"}] * 9)
    for s in (many, shut):
        s.rescore({0: (when, "citizen")})
    assert 2.4 < many.parts["cover"] < math.log(0.6 / 0.05)
    assert shut.parts["cover"] == pytest.approx(math.log(0.4 / 0.95), abs=1e-3)
