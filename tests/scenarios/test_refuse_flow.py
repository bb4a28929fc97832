"""Refuse flows (``scenarios/refuse_flow.py``) on the generated M city (seed 1):

- the day's plan conserves every tonne, holds every capacity, and its tonne-km is the
  optimum networkx's network simplex finds on the same network (in kg and metres);
- a haul distance is the road distance networkx finds on the drive graph;
- a scenario that closes the busiest station reroutes its refuse (what the others cannot
  take is reported unplaced); a plant cut below the day's refuse leaves exactly the
  difference unplaced, and its capacity has a shadow price;
- every planted overflow (``truth.refuse_overflow``: a station over its capacity of the
  day under the city's nearest-station routing, on a peak day or an outage's) is found
  from the readings and the day's capacities, and the plan resolves it;
- every stream is routed over its own stations and plants; the day's readings of every
  stream are the plan's tonnes; a plant's planned maintenance sends its stream elsewhere;
- bad input names itself.

The single-stream tests plan the other waste (``stream="other"``), whose chain has the
tight station and the two plants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import networkx as nx
import numpy as np
import pytest

from scenarios import refuse_flow as rf
from scenarios.flow import FlowProblem, min_cost_flow, to_networkx
from spatial import whatif
from spatial.db import connect
from spatial.network import road_graph


@pytest.fixture(scope="module")
def m_city(server_conninfo: str, template_db: str) -> Iterator[str]:
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, "flow", "M", steps=("refuse",)) as made:
        yield made[0]


def other(conn: Any, **kwargs: Any) -> tuple[rf.RefuseFlow, date]:
    """The other waste's plan (its chain has the tight station and two plants)."""
    city, day = rf.load(conn, stream="other", **kwargs)
    assert list(city.plans) == ["other"]
    return city.plans["other"], day


def scenario(edits: list[dict[str, Any]]) -> whatif.Scenario:
    now = datetime.now(UTC)
    return whatif.Scenario(uuid.uuid4(), "test", None, None, False, whatif.parse_edits(edits),
                           ("refuse_facility",), now, now)


def test_the_plan_is_the_network_simplex_optimum(m_city: str) -> None:
    with connect(m_city, autocommit=True) as conn:
        plan, day = other(conn)
    plan.solve()
    assert plan.status == "optimal" and plan.unplaced_t == 0
    total = plan.demand.sum()
    assert total > 10
    assert plan.station_load.sum() == pytest.approx(total)
    assert plan.plant_load.sum() == pytest.approx(total)
    cap = plan.facilities.capacity
    assert np.all(plan.station_load <= cap[plan.ts] + 1e-6)
    assert np.all(plan.flow_rb_ts.sum(axis=1) == pytest.approx(plan.demand))
    # the same network in kg and metres, integral: networkx's network simplex
    prob, _ = plan.problem()
    supply = np.round(prob.supply * 1000)
    supply[-1] -= supply.sum()  # the sink takes what the rounded supplies send
    kg = FlowProblem(prob.nodes, supply, prob.tail, prob.head,
                     np.round(prob.cost * 1000), np.where(np.isfinite(prob.capacity),
                                                          np.floor(prob.capacity * 1000),
                                                          np.inf))
    ours = min_cost_flow(kg)
    cost, _ = nx.network_simplex(to_networkx(kg))
    assert ours.status == "optimal" and ours.cost == pytest.approx(cost)
    assert plan.tonne_km == pytest.approx(cost / 1e6, rel=1e-3)
    assert isinstance(day, date)


def test_haul_is_the_road_distance(m_city: str) -> None:
    """networkx on the road rows as stored (one-way rows one way), not on our graph."""
    with connect(m_city, autocommit=True) as conn:
        plan, _ = other(conn)
        g = road_graph(conn, "drive")
        nxg = nx.DiGraph()
        for r in conn.execute("SELECT source, target, length_m, oneway "
                              "FROM onemap.network_road_edge"):
            for a, b in ((r["source"], r["target"]), (r["target"], r["source"]))[
                    :1 if r["oneway"] else 2]:
                if a != b and (not nxg.has_edge(a, b) or nxg[a][b]["length"] > r["length_m"]):
                    nxg.add_edge(a, b, length=r["length_m"])
    f = plan.facilities
    node, off = g.nearest_node(f.lonlat[:, 0].tolist(), f.lonlat[:, 1].tolist())
    i, j = int(plan.rb[0]), int(plan.ts[0])
    path = nx.shortest_path_length(nxg, int(g.node_ids[node[i]]), int(g.node_ids[node[j]]),
                                   weight="length")
    expected = (path + rf.DETOUR * (off[i] + off[j])) / 1000
    assert plan.km_to_station[0, 0] == pytest.approx(expected, rel=1e-6)


def test_what_if_a_station_closes_and_a_plant_is_short(m_city: str) -> None:
    with connect(m_city, autocommit=True) as conn:
        base, _ = other(conn)
        base.solve()
        busiest = int(base.facilities.ids[base.ts[int(np.argmax(base.station_load))]])
        closed, _ = other(conn, scenario=scenario(
            [{"type": "remove_facility", "collection": "refuse_facility", "id": busiest}]))
        closed.solve()
        plant = int(base.facilities.ids[base.tp[0]])
        total = float(base.demand.sum())
        short, _ = other(conn, scenario=scenario(
            [{"type": "set_capacity", "collection": "refuse_facility", "id": plant,
              "capacity": total - 5.0}, *(
                {"type": "remove_facility", "collection": "refuse_facility", "id": int(i)}
                for i in base.facilities.ids[base.tp[1:]])]))
        short.solve()
    assert busiest not in closed.facilities.ids.tolist()
    assert closed.status == "optimal"
    # the others take what they can; what they cannot is reported, not lost
    assert closed.station_load.sum() + closed.unplaced_t == pytest.approx(total)
    if closed.unplaced_t == 0:
        assert closed.tonne_km >= base.tonne_km - 1e-6
    assert short.status == "optimal"
    assert short.unplaced_t == pytest.approx(5.0, abs=1e-6)
    assert short.plant_load[0] == pytest.approx(total - 5.0)
    assert short.message is not None and "5.00 t" in short.message
    assert short.shadow_price[short.ts.size] > 0  # the plant's capacity binds
    props = {p["properties"]["facility_id"]: p["properties"] for p in short.facility_features()}
    assert props[plant]["warning"] and props[plant]["utilisation"] == pytest.approx(1.0)


def test_bad_input_names_itself(m_city: str) -> None:
    with connect(m_city, autocommit=True) as conn:
        with pytest.raises(rf.FlowRequestError, match="day"):
            rf.load(conn, day=date(1990, 1, 1))
        with pytest.raises(rf.FlowRequestError, match="warning_ratio"):
            rf.load(conn, warning_ratio=0)
        with pytest.raises(rf.FlowRequestError, match="stream: unknown stream 'plastic'"):
            rf.load(conn, stream="plastic")
        first = int(conn.execute("SELECT min(id) AS i FROM onemap.refuse_facility "
                                 "WHERE kind = 'refuse_building'").fetchone()["i"])
        with pytest.raises(rf.FlowRequestError, match="demand"):
            rf.load(conn, day=date(2027, 1, 1), stream="kitchen",
                    demand={"kitchen": {first: -2.0}})
        with pytest.raises(rf.FlowRequestError, match="day"):
            rf.load(conn, demand={"kitchen": {1: 2.0}})
        stations = [int(r["id"]) for r in conn.execute(
            "SELECT id FROM onemap.refuse_facility WHERE kind = 'transfer_station'")]
        with pytest.raises(rf.FlowRequestError, match="scenario"):
            other(conn, scenario=scenario([
                {"type": "remove_facility", "collection": "refuse_facility", "id": i}
                for i in stations]))
    f = rf.Facilities.from_arrays(ids=[1, 2, 3], kind=["refuse_building", "transfer_station",
                                                        "treatment_plant"],
                                  capacity=[5, 5, 5])
    with pytest.raises(rf.FlowRequestError, match="demand"):
        rf.RefuseFlow(f, np.array([-1.0]), np.ones((1, 1)), np.ones((1, 1)))
    with pytest.raises(rf.FlowRequestError, match="kind"):
        rf.Facilities.from_arrays(ids=[1], kind=["compost"], capacity=[1])


def test_every_planted_overflow_is_found_and_the_plan_resolves_it(m_city: str) -> None:
    """truth.refuse_overflow: the days a station's reading exceeds its capacity of the day
    under the city's nearest-station routing (peak days, and the days of a breakdown).
    The readings against the day's capacities (outages applied) give exactly those
    (facility, day) pairs; on the worst peak day and on a breakdown day the plan keeps
    every station of that stream within its capacity and places every tonne."""
    with connect(m_city, autocommit=True) as conn:
        truth = {(int(r["facility_id"]), r["day"]): (float(r["excess_t"]), r["cause"])
                 for r in conn.execute(
                     "SELECT facility_id, day, excess_t, cause FROM truth.refuse_overflow")}
        assert len(truth) >= 10
        assert {c for _, c in truth.values()} == {"peak", "outage"}
        days = [r["d"] for r in conn.execute(
            "SELECT DISTINCT ((measured_at AT TIME ZONE 'Asia/Shanghai'))::date AS d "
            "FROM onemap.refuse_load_reading WHERE extract(hour FROM measured_at AT TIME ZONE "
            "'Asia/Shanghai') = 21 ORDER BY 1")]
        found = {}
        for day in days:
            facilities = rf.load_facilities(conn, day=day)
            _, read = rf.day_readings(conn, day)
            for j in facilities.of("transfer_station"):
                fid = int(facilities.ids[j])
                t = sum(read.get(fid, {}).values())
                if t > facilities.capacity[j] + 1e-9:
                    found[(fid, day)] = t - float(facilities.capacity[j])
        assert set(found) == set(truth)
        assert all(abs(found[k] - truth[k][0]) < 0.011 for k in truth)
        worst = max((k for k in truth if truth[k][1] == "peak"), key=lambda k: truth[k][0])
        broken = min(k for k in truth if truth[k][1] == "outage")
        peak_day, _ = rf.load(conn, day=worst[1], warning_ratio=1.0)
        breakdown_day, _ = rf.load(conn, day=broken[1], warning_ratio=1.0)
    for city, (fid, _) in ((peak_day, worst), (breakdown_day, broken)):
        city.solve()
        assert city.status == "optimal" and city.unplaced_t == 0
        for plan in city.plans.values():
            assert np.all(plan.station_load <= plan.facilities.capacity[plan.ts] + 1e-6)
        props = {f["properties"]["facility_id"]: f["properties"]
                 for f in city.facility_features()}
        station = props[fid]
        assert station["reading_warning"] and station["reading_utilisation"] > 1
        assert station["nearest_over_capacity"]
        assert station["nearest_load_t"] > station["capacity_t"]
        assert station["load_t"] <= station["capacity_t"] + 1e-6
        assert city.summary()["over_capacity_if_nearest"] >= 1
    assert props[broken[0]]["outage"] == "breakdown"
    assert props[broken[0]]["stream"] == "kitchen"


def test_every_stream_is_routed_over_its_own_chain(m_city: str) -> None:
    """The day's readings of each stream are that stream's tonnes; each flow joins
    facilities of its stream; a refuse building's tonnes are the sum of its streams."""
    with connect(m_city, autocommit=True) as conn:
        city, day = rf.load(conn)
        by_stream = {r["stream"]: float(r["t"]) for r in conn.execute(
            "SELECT r.stream, sum(r.load_t)::float8 AS t FROM onemap.refuse_load_reading r "
            "JOIN onemap.refuse_facility f ON f.id = r.facility_id "
            "WHERE f.kind = 'refuse_building' AND r.measured_at = "
            "(%s::date + time '21:00') AT TIME ZONE 'Asia/Shanghai' GROUP BY 1", (day,))}
        stream_of = {int(r["id"]): r["stream"] for r in conn.execute(
            "SELECT id, stream FROM onemap.refuse_facility")}
    city.solve()
    assert list(city.plans) == list(rf.STREAMS)
    assert city.status == "optimal" and city.unplaced_t == 0
    for s, plan in city.plans.items():
        assert plan.demand.sum() == pytest.approx(by_stream[s], abs=1e-6)
        assert plan.plant_load.sum() == pytest.approx(by_stream[s], abs=1e-6)
    flows = city.flow_features()
    assert {f["properties"]["stream"] for f in flows} == set(rf.STREAMS)
    for f in flows:
        p = f["properties"]
        assert stream_of[p["to_id"]] == p["stream"]
        if p["from_kind"] != "refuse_building":
            assert stream_of[p["from_id"]] == p["stream"]
    feats = [f["properties"] for f in city.facility_features()]
    buildings = [p for p in feats if p["kind"] == "refuse_building"]
    assert len(buildings) == len({p["facility_id"] for p in buildings})
    for p in buildings:
        assert p["load_t"] == pytest.approx(sum(p[f"{s}_t"] for s in rf.STREAMS), abs=2e-3)
    summary = city.summary(day)
    assert summary["refuse_t"] == pytest.approx(sum(by_stream.values()), abs=1e-3)
    assert set(summary["by_stream"]) == set(rf.STREAMS)


def test_a_plant_stopped_for_maintenance_sends_its_stream_elsewhere(m_city: str) -> None:
    """refuse_facility_outage: on the incinerator's maintenance days its capacity is 0;
    the plan sends the other waste to the landfill, as the day's readings did, and the
    stopped plant's capacity has a price (the longer haul)."""
    with connect(m_city, autocommit=True) as conn:
        row = conn.execute(
            "SELECT o.facility_id, o.first_day FROM onemap.refuse_facility_outage o "
            "JOIN onemap.refuse_facility f ON f.id = o.facility_id "
            "WHERE f.kind = 'treatment_plant' AND o.reason = 'maintenance'").fetchone()
        assert row is not None
        plant = int(row["facility_id"])
        plan, _ = other(conn, day=row["first_day"])
        _, read = rf.day_readings(conn, row["first_day"])
    plan.solve()
    at = int(np.flatnonzero(plan.facilities.ids[plan.tp] == plant)[0])
    assert plan.facilities.capacity[plan.tp[at]] == 0
    assert plan.plant_load[at] == 0 and plan.unplaced_t == 0
    assert read[plant]["other"] == 0
    props = {f["properties"]["facility_id"]: f["properties"] for f in plan.facility_features()}
    assert props[plant]["outage"] == "maintenance"
    assert props[plant]["shadow_price"] > 0
    working = [int(i) for i in plan.facilities.ids[plan.tp] if int(i) != plant]
    assert sum(read[i]["other"] for i in working) == pytest.approx(plan.plant_load.sum(),
                                                                  rel=0.05)


def test_a_station_with_zero_capacity_takes_nothing(m_city: str) -> None:
    """A station whose capacity is 0 (a compactor down) is routed around, not an error."""
    with connect(m_city, autocommit=True) as conn:
        base, _ = other(conn)
        base.solve()
        busiest = int(base.facilities.ids[base.ts[int(np.argmax(base.station_load))]])
        down, _ = other(conn, scenario=scenario(
            [{"type": "set_capacity", "collection": "refuse_facility", "id": busiest,
              "capacity": 0}]))
    down.solve()
    at = int(np.flatnonzero(down.facilities.ids[down.ts] == busiest)[0])
    assert down.status == "optimal" and down.station_load[at] == 0
    assert down.station_load.sum() + down.unplaced_t == pytest.approx(base.demand.sum())
    props = {p["properties"]["facility_id"]: p["properties"] for p in down.facility_features()}
    assert props[busiest]["utilisation"] is None  # no capacity: no share of it


def test_a_building_without_a_reading_is_named(m_city: str) -> None:
    """A refuse building with no reading that day sends nothing in the plan, and the
    answer names it (missing_readings, and a message) rather than guessing."""
    with connect(m_city) as conn:
        day = rf.last_reading_day(conn)
        fid = int(conn.execute("SELECT min(id) AS i FROM onemap.refuse_facility "
                               "WHERE kind = 'refuse_building'").fetchone()["i"])
        conn.execute("DELETE FROM onemap.refuse_load_reading WHERE facility_id = %s AND "
                     "(measured_at AT TIME ZONE 'Asia/Shanghai')::date = %s", (fid, day))
        city, _ = rf.load(conn, day=day)
        conn.rollback()
    city.solve()
    summary = city.summary(day)
    assert summary["missing_readings"] == [fid]
    assert summary["message"] and "no reading" in summary["message"]
    for plan in city.plans.values():
        at = int(np.flatnonzero(plan.facilities.ids[plan.rb] == fid)[0])
        assert plan.demand[at] == 0
