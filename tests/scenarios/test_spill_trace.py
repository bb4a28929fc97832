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
          skip: tuple[float, float] | None = None) -> list[tuple[int, datetime, float, float]]:
    """Fixes every ``step_s`` along the road from x0 to x1 at 10 m/s, none inside ``skip``."""
    out = []
    n = int(abs(x1 - x0) / (SPEED_DEG_S * step_s)) + 1
    sign = 1 if x1 > x0 else -1
    for i in range(n + 1):
        x = x0 + sign * min(i * SPEED_DEG_S * step_s, abs(x1 - x0))
        if skip is not None and min(skip) < x < max(skip):
            continue
        out.append((truck, start + timedelta(seconds=i * step_s), x, Y))
    return out


def stay(truck: int, x: float, y: float, start: datetime, minutes: int
         ) -> list[tuple[int, datetime, float, float]]:
    return [(truck, start + timedelta(seconds=30 * i), x, y) for i in range(minutes * 2 + 1)]


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
                "VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4490), 36)", fixes)
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
    assert by[t1].explains() == [0, 1] and by[t1].parts["reports"] == 1.0
    assert by[t3].explains() == [0, 1]  # the prism of its gap covers both spots
    assert by[t2].parts.get("reports", 0.0) <= 1.0


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
