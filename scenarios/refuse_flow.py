"""Refuse flows (生活垃圾流向流量调配): a day's refuse over the facilities, least haulage.

Each refuse building (垃圾楼) sends its day's refuse to a transfer station
(转运站), each station to a treatment plant (处理厂). :class:`RefuseFlow`
routes the day at the least tonne-kilometres on the road network within every
station's and plant's daily capacity, as a minimum-cost flow
(:func:`scenarios.flow.min_cost_flow`, HiGHS):

* nodes: a refuse building (its day's tonnes), a station's way in and way
  out (the arc between them carries its capacity), a plant (its arc to the
  sink carries its capacity), the sink (every tonne);
* arcs: building → every station, station → every plant, costed by the
  trucks' road distance (``road_graph(conn, "drive")``, one-way rows kept; a
  facility off the network reaches its nearest node straight: a plant outside
  the city), in km per tonne;
* what does not fit goes to the sink at a penalty dearer than any haul: the
  answer says which building's refuse is unplaced, and how much.

It answers with each flow as a line with its tonnage, each facility's load and
utilisation against its capacity, warnings (facilities at or above
``warning_ratio`` of capacity — by the plan, and by the day's own readings),
and the **shadow price** of each station's and plant's capacity: the
tonne-kilometres one more tonne of capacity there would save (zero where there
is room). A what-if scenario (``spatial/whatif.py``) takes facilities out of
service, changes capacities, or adds a station at a point.

Data are read through the caller's connection (row-level security applies):
``refuse_facility`` (in service) and the day's ``refuse_load_reading`` at
21:00 Beijing time (the day's tonnes; the demo city's readings are cumulative
through the day, 21:00 is the day's total).

Examples
--------
Two refuse buildings, one station of 10 t/day and another farther away, one
plant (distances in km straight on a toy network):

>>> import numpy as np
>>> f = Facilities.from_arrays(
...     ids=[1, 2, 10, 11, 20], kind=["refuse_building"] * 2 + ["transfer_station"] * 2
...     + ["treatment_plant"], capacity=[5, 5, 10, 30, 100],
...     names=["A", "B", "S1", "S2", "P"], lonlat=np.zeros((5, 2)))
>>> km = np.array([[1.0, 4.0], [2.0, 3.0]])      # buildings × stations
>>> km2 = np.array([[10.0], [12.0]])             # stations × plants
>>> plan = RefuseFlow(f, np.array([6.0, 6.0]), km, km2).solve()
>>> plan.status, round(plan.tonne_km, 1), plan.unplaced_t
('optimal', 144.0, 0.0)
>>> plan.station_load.tolist(), [round(v, 2) for v in plan.shadow_price.tolist()]
([10.0, 2.0], [3.0, 0.0, 0.0])
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from scipy.sparse.csgraph import dijkstra

from scenarios.flow import OPTIMAL, FlowProblem, min_cost_flow
from spatial.errors import InvalidInputError
from spatial.network import Graph, road_graph
from spatial.whatif import Scenario

#: Facilities at or above this share of their capacity are warned about, by default.
WARNING_RATIO = 0.9
#: Unplaced refuse costs this many times the longest haul per tonne (never preferred).
UNPLACED_FACTOR = 10.0
#: Trucks go off the network (a plant outside the city) this much longer than straight.
DETOUR = 1.3
BEIJING = timedelta(hours=8)
#: Coordinates in outputs: 7 decimals of a degree (about 1 cm).
DIGITS = 7
KINDS = ("refuse_building", "transfer_station", "treatment_plant")


class FlowRequestError(InvalidInputError, ValueError):
    """A request the analysis cannot answer, naming the input (a 400)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True)
class Facilities:
    """The facilities in service (under a scenario), in kind order.

    Attributes
    ----------
    ids : numpy.ndarray
        ``refuse_facility`` ids (``-k`` for a scenario's k-th new station).
    kind, names : list of str
    capacity : numpy.ndarray
        t/day (``nan``: unknown, taken as unlimited).
    lonlat : numpy.ndarray
        ``(n, 2)`` EPSG:4490.
    """

    ids: np.ndarray
    kind: list[str]
    names: list[str | None]
    capacity: np.ndarray
    lonlat: np.ndarray

    @classmethod
    def from_arrays(cls, *, ids: Any, kind: Any, capacity: Any, names: Any = None,
                    lonlat: Any = None) -> Facilities:
        """Facilities from parallel arrays (sorted by kind, keeping order within one)."""
        kinds = list(kind)
        bad = sorted({k for k in kinds if k not in KINDS})
        if bad:
            raise FlowRequestError("kind", f"unknown facility kind {bad[0]!r}")
        order = sorted(range(len(kinds)), key=lambda i: KINDS.index(kinds[i]))
        n = len(kinds)
        ll = np.zeros((n, 2)) if lonlat is None else np.asarray(lonlat, dtype=float)
        nm = [None] * n if names is None else list(names)
        return cls(np.asarray(ids, dtype=np.int64)[order], [kinds[i] for i in order],
                   [nm[i] for i in order], np.asarray(capacity, dtype=float)[order], ll[order])

    def of(self, kind: str) -> np.ndarray:
        """Positions of the facilities of one kind."""
        return np.flatnonzero(np.array(self.kind) == kind)


class RefuseFlow:
    """One day's refuse routed over the facilities at the least tonne-kilometres.

    Parameters
    ----------
    facilities : Facilities
    demand : numpy.ndarray
        Tonnes per refuse building (in the order of ``facilities.of("refuse_building")``).
    km_to_station : numpy.ndarray
        Road km, refuse buildings × stations (``inf``: no way).
    km_to_plant : numpy.ndarray
        Road km, stations × plants.
    warning_ratio : float
        Warn at this share of a capacity.
    readings : numpy.ndarray, optional
        The day's measured tonnes per facility (``nan``: none), for the warnings
        from the live readings.
    """

    def __init__(self, facilities: Facilities, demand: np.ndarray, km_to_station: np.ndarray,
                 km_to_plant: np.ndarray, *, warning_ratio: float = WARNING_RATIO,
                 readings: np.ndarray | None = None) -> None:
        self.facilities = facilities
        self.rb, self.ts, self.tp = (facilities.of(k) for k in KINDS)
        self.demand = np.asarray(demand, dtype=float)
        if self.demand.shape != (self.rb.size,):
            raise FlowRequestError("demand", f"{self.demand.size} values for {self.rb.size} "
                                   "refuse buildings")
        if np.any(~np.isfinite(self.demand)) or np.any(self.demand < 0):
            raise FlowRequestError("demand", "tonnages must be non-negative numbers / "
                                   "垃圾量须为非负数")
        if not 0 < warning_ratio <= 2:
            raise FlowRequestError("warning_ratio", "must be in (0, 2] / 须在 0 与 2 之间")
        if self.ts.size == 0 or self.tp.size == 0:
            raise FlowRequestError("scenario", "no transfer station or no treatment plant in "
                                   "service / 没有在用的转运站或处理厂")
        self.km_to_station = np.asarray(km_to_station, dtype=float)
        self.km_to_plant = np.asarray(km_to_plant, dtype=float)
        self.warning_ratio = float(warning_ratio)
        self.readings = (np.full(len(facilities.ids), np.nan) if readings is None
                         else np.asarray(readings, dtype=float))
        self.status: str | None = None
        self.message: str | None = None
        self.flow_rb_ts = np.zeros((self.rb.size, self.ts.size))
        self.flow_ts_tp = np.zeros((self.ts.size, self.tp.size))
        self.station_load = np.zeros(self.ts.size)
        self.plant_load = np.zeros(self.tp.size)
        self.unplaced = np.zeros(self.rb.size)
        #: Per station then per plant: tonne-km saved per extra tonne of capacity.
        self.shadow_price = np.zeros(self.ts.size + self.tp.size)
        self.tonne_km = 0.0
        self.solve_time: float | None = None

    @property
    def unplaced_t(self) -> float:
        """Tonnes that no capacity could take."""
        return float(self.unplaced.sum())

    def problem(self) -> tuple[FlowProblem, float]:
        """The flow problem and the unplaced penalty per tonne."""
        nb, ns, npl = self.rb.size, self.ts.size, self.tp.size
        cap = self.facilities.capacity
        ts_cap = np.where(np.isfinite(cap[self.ts]), cap[self.ts], np.inf)
        tp_cap = np.where(np.isfinite(cap[self.tp]), cap[self.tp], np.inf)
        # node order: buildings, station in, station out, plants, sink
        s_in, s_out, plant, sink = nb, nb + ns, nb + 2 * ns, nb + 2 * ns + npl
        b, t = np.nonzero(np.isfinite(self.km_to_station))
        s, p = np.nonzero(np.isfinite(self.km_to_plant))
        tail = np.r_[b, s_in + np.arange(ns), s_out + s, plant + np.arange(npl)]
        head = np.r_[s_in + t, s_out + np.arange(ns), plant + p, np.full(npl, sink)]
        cost = np.r_[self.km_to_station[b, t], np.zeros(ns), self.km_to_plant[s, p],
                     np.zeros(npl)]
        capacity = np.r_[np.full(b.size, np.inf), ts_cap, np.full(s.size, np.inf), tp_cap]
        supply = np.zeros(sink + 1)
        supply[:nb] = self.demand
        supply[sink] = -self.demand.sum()
        longest = float(cost.max()) if cost.size else 1.0
        return (FlowProblem(list(range(sink + 1)), supply, tail, head, cost, capacity),
                UNPLACED_FACTOR * max(longest, 1.0) * 3 + 1.0)

    def solve(self) -> RefuseFlow:
        """Route the day; returns ``self``."""
        started = time.perf_counter()
        prob, penalty = self.problem()
        sink = prob.n_nodes - 1
        sol = min_cost_flow(prob, unplaced_cost=penalty, unplaced_to=sink)
        self.solve_time = time.perf_counter() - started
        self.status = sol.status
        if sol.status != OPTIMAL:
            self.message = sol.message
            return self
        nb, ns = self.rb.size, self.ts.size
        b, t = np.nonzero(np.isfinite(self.km_to_station))
        s, p = np.nonzero(np.isfinite(self.km_to_plant))
        k = b.size
        self.flow_rb_ts[b, t] = sol.flow[:k]
        self.station_load = sol.flow[k:k + ns].copy()
        self.flow_ts_tp[s, p] = sol.flow[k + ns:k + ns + s.size]
        self.plant_load = sol.flow[k + ns + s.size:].copy()
        self.shadow_price = np.r_[sol.shadow_price[k:k + ns],
                                  sol.shadow_price[k + ns + s.size:]]
        self.unplaced = sol.unplaced[:nb].copy()
        self.tonne_km = float(sol.cost or 0.0)
        if self.unplaced_t > 1e-9:
            self.message = (f"{self.unplaced_t:.2f} t cannot be placed within the capacities "
                            f"/ 超出处理能力 {self.unplaced_t:.2f} 吨")
        return self

    def nearest_plan(self) -> tuple[np.ndarray, np.ndarray]:
        """Loads if every building went to its nearest station and every station to its
        nearest plant, capacities ignored (how the routes run without a plan)."""
        ts_load = np.zeros(self.ts.size)
        near_ts = np.argmin(np.where(np.isfinite(self.km_to_station), self.km_to_station,
                                     np.inf), axis=1)
        np.add.at(ts_load, near_ts, self.demand)
        near_tp = np.argmin(self.km_to_plant, axis=1)
        tp_load = np.zeros(self.tp.size)
        np.add.at(tp_load, near_tp, ts_load)
        return ts_load, tp_load

    # ------------------------------------------------------------------ outputs
    def _loads(self) -> np.ndarray:
        load = np.full(len(self.facilities.ids), np.nan)
        load[self.rb] = self.demand
        load[self.ts] = self.station_load
        load[self.tp] = self.plant_load
        return load

    def facility_features(self) -> list[dict[str, Any]]:
        """Each facility as a GeoJSON point: planned load, capacity, utilisation, warnings,
        shadow price (stations and plants), the day's reading."""
        f = self.facilities
        load = self._loads()
        near_ts, near_tp = self.nearest_plan()
        nearest = np.full(len(f.ids), np.nan)
        nearest[self.ts] = near_ts
        nearest[self.tp] = near_tp
        nearest[self.rb] = self.demand
        price = np.full(len(f.ids), np.nan)
        price[self.ts] = self.shadow_price[:self.ts.size]
        price[self.tp] = self.shadow_price[self.ts.size:]
        unplaced = np.zeros(len(f.ids))
        unplaced[self.rb] = self.unplaced
        out = []
        for j in range(len(f.ids)):
            cap = float(f.capacity[j]) if np.isfinite(f.capacity[j]) else None
            util = float(load[j]) / cap if cap else None
            read = float(self.readings[j]) if np.isfinite(self.readings[j]) else None
            read_util = read / cap if (cap and read is not None) else None
            near_util = float(nearest[j]) / cap if cap and np.isfinite(nearest[j]) else None
            out.append({
                "type": "Feature", "id": int(f.ids[j]),
                "geometry": {"type": "Point",
                             "coordinates": [round(float(v), DIGITS) for v in f.lonlat[j]]},
                "properties": {
                    "facility_id": int(f.ids[j]), "name": f.names[j], "kind": f.kind[j],
                    "capacity_t": cap, "load_t": round(float(load[j]), 3),
                    "utilisation": None if util is None else round(util, 4),
                    "warning": bool(util is not None and util >= self.warning_ratio - 1e-9),
                    "reading_t": read,
                    "reading_utilisation": None if read_util is None else round(read_util, 4),
                    "reading_warning": bool(read_util is not None
                                            and read_util >= self.warning_ratio - 1e-9),
                    "nearest_load_t": (None if not np.isfinite(nearest[j])
                                       else round(float(nearest[j]), 3)),
                    "nearest_over_capacity": bool(near_util is not None and near_util > 1 + 1e-9),
                    "shadow_price": (None if not np.isfinite(price[j])
                                     else round(float(price[j]), 4)),
                    "unplaced_t": round(float(unplaced[j]), 3)}})
        return out

    def flow_features(self, min_t: float = 1e-6) -> list[dict[str, Any]]:
        """Each flow as a GeoJSON line (from facility to facility) with its tonnage."""
        f = self.facilities
        out = []
        for m, (src, dst, km) in enumerate(((self.rb, self.ts, self.km_to_station),
                                            (self.ts, self.tp, self.km_to_plant))):
            flows = self.flow_rb_ts if m == 0 else self.flow_ts_tp
            for i, j in zip(*np.nonzero(flows > min_t), strict=True):
                a, b = int(src[i]), int(dst[j])
                out.append({
                    "type": "Feature", "id": f"{f.ids[a]}-{f.ids[b]}",
                    "geometry": {"type": "LineString", "coordinates": [
                        [round(float(v), DIGITS) for v in f.lonlat[a]],
                        [round(float(v), DIGITS) for v in f.lonlat[b]]]},
                    "properties": {"from_id": int(f.ids[a]), "to_id": int(f.ids[b]),
                                   "from_kind": f.kind[a], "to_kind": f.kind[b],
                                   "tonnes": round(float(flows[i, j]), 3),
                                   "road_km": round(float(km[i, j]), 3),
                                   "tonne_km": round(float(flows[i, j] * km[i, j]), 3)}})
        return out

    def summary(self, day: date | None = None, scenario: str | None = None) -> dict[str, Any]:
        """The plan in numbers."""
        feats = [x["properties"] for x in self.facility_features()] if self.status == OPTIMAL \
            else []
        return {
            "status": self.status, "message": self.message,
            "day": None if day is None else day.isoformat(),
            "refuse_t": round(float(self.demand.sum()), 3),
            "tonne_km": round(self.tonne_km, 3), "unplaced_t": round(self.unplaced_t, 3),
            "refuse_buildings": int(self.rb.size), "transfer_stations": int(self.ts.size),
            "treatment_plants": int(self.tp.size), "warning_ratio": self.warning_ratio,
            "warnings_plan": sum(p["warning"] for p in feats if p["kind"] != "refuse_building"),
            "warnings_readings": sum(p["reading_warning"] for p in feats),
            "over_capacity_if_nearest": sum(p["nearest_over_capacity"] for p in feats
                                            if p["kind"] != "refuse_building"),
            "solve_time_s": None if self.solve_time is None else round(self.solve_time, 4),
            "scenario": scenario}


# --- loading ------------------------------------------------------------------------


def load_facilities(conn: psycopg.Connection[Any], scenario: Scenario | None = None
                    ) -> Facilities:
    """The refuse facilities in service, with a scenario's edits (a new one is a station)."""
    removed = scenario.removed("refuse_facility") if scenario is not None else frozenset()
    caps = scenario.capacities("refuse_facility") if scenario is not None else {}
    added = scenario.added("refuse_facility") if scenario is not None else ()
    back = {a.id for a in added if a.id is not None}
    rows = conn.execute(
        "SELECT id, kind, name, capacity_t_per_day::float8 AS cap, ST_X(geom) AS lon, "
        "ST_Y(geom) AS lat FROM onemap.refuse_facility "
        "WHERE status = 'in_service' OR id = ANY(%s) ORDER BY id", (list(back),)).fetchall()
    ids, kinds, names, cap, ll = [], [], [], [], []
    for r in rows:
        if int(r["id"]) in removed:
            continue
        ids.append(int(r["id"]))
        kinds.append(r["kind"])
        names.append(r["name"])
        c = caps.get(int(r["id"]), r["cap"])
        cap.append(np.nan if c is None else float(c))
        ll.append((float(r["lon"]), float(r["lat"])))
    for k, a in enumerate((a for a in added if a.point is not None), start=1):
        assert a.point is not None
        ids.append(-k)
        kinds.append("transfer_station")
        names.append(a.name or f"新转运站 {k}")
        cap.append(np.nan if a.capacity is None else float(a.capacity))
        ll.append((a.point.lon, a.point.lat))
    return Facilities.from_arrays(ids=ids, kind=kinds, capacity=cap, names=names,
                                  lonlat=np.array(ll, dtype=float).reshape(-1, 2))


def day_readings(conn: psycopg.Connection[Any], day: date | None) -> tuple[date, dict[int, float]]:
    """The day's tonnes per facility (the 21:00 Beijing reading; the last day by default)."""
    if day is None:
        row = conn.execute(
            "SELECT max(((measured_at AT TIME ZONE 'Asia/Shanghai') - interval '21 hours')::date)"
            " AS d FROM onemap.refuse_load_reading "
            "WHERE extract(hour FROM measured_at AT TIME ZONE 'Asia/Shanghai') = 21").fetchone()
        if row is None or row["d"] is None:
            raise FlowRequestError("day", "there are no load readings / 没有计量数据")
        day = row["d"]
    assert day is not None
    at = datetime(day.year, day.month, day.day, 21) - BEIJING
    rows = conn.execute(
        "SELECT facility_id, load_t::float8 AS t FROM onemap.refuse_load_reading "
        "WHERE measured_at = %s::timestamp AT TIME ZONE 'UTC'", (at,)).fetchall()
    return day, {int(r["facility_id"]): float(r["t"]) for r in rows}


def haul_km(graph: Graph, facilities: Facilities) -> tuple[np.ndarray, np.ndarray]:
    """Road km, refuse buildings × stations and stations × plants (one-way rows kept).

    A facility reaches its nearest node straight, :data:`DETOUR` times longer.
    """
    node, off = graph.nearest_node(facilities.lonlat[:, 0].tolist(),
                                   facilities.lonlat[:, 1].tolist())
    off = off * DETOUR
    rb, ts, tp = (facilities.of(k) for k in KINDS)
    # to each station and plant: Dijkstra on the reversed graph from it
    targets = np.r_[ts, tp]
    dist_to = np.atleast_2d(dijkstra(graph.matrix.T.tocsr(), directed=True,
                                     indices=node[targets]))
    to_ts = dist_to[:ts.size]
    to_tp = dist_to[ts.size:]
    km_ts = (off[rb][:, None] + to_ts[:, node[rb]].T + off[ts][None, :]) / 1000.0
    km_tp = (off[ts][:, None] + to_tp[:, node[ts]].T + off[tp][None, :]) / 1000.0
    return km_ts, km_tp


def load(conn: psycopg.Connection[Any], *, day: date | None = None,
         warning_ratio: float = WARNING_RATIO, scenario: Scenario | None = None,
         graph: Graph | None = None,
         demand: Mapping[int, float] | None = None) -> tuple[RefuseFlow, date]:
    """A day's refuse-flow plan, loaded through the caller's connection.

    The refuse buildings' demand is the day's reading (a building without one
    sends nothing), or ``demand`` (tonnes by refuse building id: a forecast
    for a day to come, when ``day`` has no readings); a scenario's edits apply.

    Returns
    -------
    RefuseFlow, datetime.date
        Ready to :meth:`~RefuseFlow.solve`, and the day.
    """
    g = graph if graph is not None else road_graph(conn, "drive")
    facilities = load_facilities(conn, scenario)
    rb = facilities.of("refuse_building")
    if demand is not None:
        if day is None:
            raise FlowRequestError("day", "a forecast plan needs its day / 预测调配须指定日期")
        read: dict[int, float] = {}
        tonnes = np.array([float(demand.get(int(i), 0.0)) for i in facilities.ids[rb]])
        bad = ~np.isfinite(tonnes) | (tonnes < 0)
        if bad.any():
            raise FlowRequestError("demand", "tonnages must be non-negative numbers / "
                                   "垃圾量须为非负数")
    else:
        day, read = day_readings(conn, day)
        if not read:
            raise FlowRequestError("day", f"no readings on {day.isoformat()} / 该日没有计量数据")
    readings = np.array([read.get(int(i), np.nan) for i in facilities.ids])
    if demand is None:
        tonnes = np.nan_to_num(readings[rb], nan=0.0)
        if np.any(tonnes < 0):
            raise FlowRequestError("day", "a reading is negative / 计量数据为负")
    km_ts, km_tp = haul_km(g, facilities)
    plan = RefuseFlow(facilities, tonnes, km_ts, km_tp, warning_ratio=warning_ratio,
                      readings=readings)
    assert day is not None
    return plan, day


__all__ = ["DETOUR", "KINDS", "WARNING_RATIO", "Facilities", "FlowRequestError", "RefuseFlow",
           "day_readings", "haul_km", "load", "load_facilities"]
