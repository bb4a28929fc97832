"""Refuse flows (生活垃圾流向流量调配): a day's refuse over the facilities, least haulage.

Each refuse building (垃圾楼) sends its day's refuse to a transfer station
(转运站), each station to a treatment plant (处理厂), stream by stream: the
four waste streams (垃圾分类: other, kitchen, recyclable, hazardous) each have
their own stations and plants (``refuse_facility.stream``), so each stream is
routed on its own and :class:`CityFlow` puts the streams' plans together.
:class:`RefuseFlow` routes one stream's day at the least tonne-kilometres on
the road network within every station's and plant's capacity of that day (a
plant stopped for maintenance, a station at half capacity after a breakdown:
``refuse_facility_outage``), as a minimum-cost flow
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
``refuse_facility`` (in service), the day's ``refuse_facility_outage`` and the
day's ``refuse_load_reading`` at 21:00 Beijing time per stream (the day's
tonnes; the demo city's readings are cumulative through the day, 21:00 is the
day's total; an unsorted reading counts as other waste). For a day to come the
tonnes are a forecast's (``demand``; the process's ``basis: forecast``).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from scipy.sparse.csgraph import dijkstra

from scenarios.flow import OPTIMAL, FlowProblem, min_cost_flow
from spatial.errors import NamedInputError
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
#: The four waste streams (垃圾分类): kitchen 厨余, other 其他, recyclable 可回收物, hazardous 有害.
STREAMS = ("other", "kitchen", "recyclable", "hazardous")
#: Unsorted refuse (a reading without a stream) goes the other waste's way.
OTHER = "other"


def check_stream(stream: str | None) -> str | None:
    """``stream`` if it is one of :data:`STREAMS`, or None (every stream).

    Raises
    ------
    FlowRequestError
        Naming ``stream``.
    """
    if stream is not None and stream not in STREAMS:
        raise FlowRequestError("stream", f"unknown stream {stream!r}; known: "
                               f"{', '.join(STREAMS)} / 未知的垃圾分类")
    return stream


class FlowRequestError(NamedInputError):
    """A request the analysis cannot answer, naming the input (a 400)."""


@dataclass(frozen=True)
class Facilities:
    """The facilities in service (under a scenario), in kind order.

    Attributes
    ----------
    ids : numpy.ndarray
        ``refuse_facility`` ids (``-k`` for a scenario's k-th new station).
    kind, names : list of str
    capacity : numpy.ndarray
        t/day (``nan``: unknown, taken as unlimited), the day's: an outage's factor applied.
    lonlat : numpy.ndarray
        ``(n, 2)`` EPSG:4490.
    stream : list of str or None
        The stream a station or plant takes (None at a refuse building: every stream;
        at a station or plant: :data:`OTHER`).
    outage : list of str or None
        The reason of the day's outage (``maintenance``, ``breakdown``…), or None.
    """

    ids: np.ndarray
    kind: list[str]
    names: list[str | None]
    capacity: np.ndarray
    lonlat: np.ndarray
    stream: list[str | None] = field(default_factory=list)
    outage: list[str | None] = field(default_factory=list)

    @classmethod
    def from_arrays(cls, *, ids: Any, kind: Any, capacity: Any, names: Any = None,
                    lonlat: Any = None, stream: Any = None, outage: Any = None) -> Facilities:
        """Facilities from parallel arrays (sorted by kind, keeping order within one)."""
        kinds = list(kind)
        bad = sorted({k for k in kinds if k not in KINDS})
        if bad:
            raise FlowRequestError("kind", f"unknown facility kind {bad[0]!r}")
        order = sorted(range(len(kinds)), key=lambda i: KINDS.index(kinds[i]))
        n = len(kinds)
        ll = np.zeros((n, 2)) if lonlat is None else np.asarray(lonlat, dtype=float)
        nm = [None] * n if names is None else list(names)
        st = [None if k == "refuse_building" else OTHER for k in kinds] if stream is None \
            else [None if k == "refuse_building" else (v or OTHER)
                  for k, v in zip(kinds, stream, strict=True)]
        unknown = sorted({v for v in st if v is not None and v not in STREAMS})
        if unknown:
            raise FlowRequestError("stream", f"unknown stream {unknown[0]!r}; known: "
                                   f"{', '.join(STREAMS)} / 未知的垃圾分类")
        out = [None] * n if outage is None else list(outage)
        return cls(np.asarray(ids, dtype=np.int64)[order], [kinds[i] for i in order],
                   [nm[i] for i in order], np.asarray(capacity, dtype=float)[order], ll[order],
                   [st[i] for i in order], [out[i] for i in order])

    def of(self, kind: str) -> np.ndarray:
        """Positions of the facilities of one kind."""
        return np.flatnonzero(np.array(self.kind) == kind)

    def for_stream(self, stream: str) -> Facilities:
        """The refuse buildings and the stations and plants of one stream."""
        keep = [j for j, (k, s) in enumerate(zip(self.kind, self.stream, strict=True))
                if k == "refuse_building" or s == stream]
        return Facilities(self.ids[keep], [self.kind[j] for j in keep],
                          [self.names[j] for j in keep], self.capacity[keep],
                          self.lonlat[keep], [self.stream[j] for j in keep],
                          [self.outage[j] for j in keep])


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
    stream : str, optional
        The stream routed (reported on every output).
    """

    def __init__(self, facilities: Facilities, demand: np.ndarray, km_to_station: np.ndarray,
                 km_to_plant: np.ndarray, *, warning_ratio: float = WARNING_RATIO,
                 readings: np.ndarray | None = None, stream: str | None = None) -> None:
        self.facilities = facilities
        self.stream = check_stream(stream)
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
                    "stream": f.stream[j] if f.stream else self.stream,
                    "outage": f.outage[j] if f.outage else None,
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
                                   "stream": self.stream,
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
            "day": None if day is None else day.isoformat(), "stream": self.stream,
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


class CityFlow:
    """A day's plan of several streams: one :class:`RefuseFlow` per stream.

    Each stream has its own stations and plants (``Facilities.stream``), so the
    streams are routed independently; the outputs put them together: every flow
    with its stream, each station and plant once, each refuse building once with
    its tonnes summed over the streams planned (and per stream as ``<stream>_t``).

    Parameters
    ----------
    plans : dict of str to RefuseFlow
        By stream, in :data:`STREAMS` order.
    readings_total : dict of int to float, optional
        Each refuse building's day's tonnes over every stream (its reading warnings).
    missing : sequence of int, optional
        Refuse buildings in service without a reading that day (planned as sending
        nothing; the summary names them).
    """

    def __init__(self, plans: Mapping[str, RefuseFlow],
                 readings_total: Mapping[int, float] | None = None,
                 missing: Sequence[int] = ()) -> None:
        if not plans:
            raise FlowRequestError("stream", "no stream to plan / 没有可调配的垃圾分类")
        self.plans = dict(plans)
        self.readings_total = dict(readings_total or {})
        self.missing = sorted(int(i) for i in missing)
        self.warning_ratio = next(iter(self.plans.values())).warning_ratio

    def solve(self) -> CityFlow:
        """Route every stream; returns ``self``."""
        for plan in self.plans.values():
            plan.solve()
        return self

    @property
    def status(self) -> str | None:
        """``optimal`` when every stream is, else the first other status."""
        other = [p.status for p in self.plans.values() if p.status != OPTIMAL]
        return other[0] if other else OPTIMAL

    @property
    def unplaced_t(self) -> float:
        """Tonnes of every stream that no capacity could take."""
        return sum(p.unplaced_t for p in self.plans.values())

    @property
    def tonne_km(self) -> float:
        """The haulage of every stream."""
        return sum(p.tonne_km for p in self.plans.values())

    def flow_features(self) -> list[dict[str, Any]]:
        """Every stream's flows (each with its ``stream``)."""
        return [f for p in self.plans.values() if p.status == OPTIMAL
                for f in p.flow_features()]

    def facility_features(self) -> list[dict[str, Any]]:
        """Stations and plants from their stream's plan; refuse buildings once, summed."""
        out: list[dict[str, Any]] = []
        buildings: dict[int, dict[str, Any]] = {}
        for stream, plan in self.plans.items():
            if plan.status != OPTIMAL:
                continue
            for feat in plan.facility_features():
                p = feat["properties"]
                if p["kind"] != "refuse_building":
                    out.append(feat)
                    continue
                fid = p["facility_id"]
                if fid not in buildings:
                    buildings[fid] = feat
                    p.update({"stream": None, "nearest_load_t": None,
                              **{f"{s}_t": None for s in self.plans}})
                    p.update({f"{stream}_t": p["load_t"]})
                    continue
                q = buildings[fid]["properties"]
                q[f"{stream}_t"] = p["load_t"]
                q["load_t"] = round(q["load_t"] + p["load_t"], 3)
                q["unplaced_t"] = round(q["unplaced_t"] + p["unplaced_t"], 3)
        for feat in buildings.values():
            p = feat["properties"]
            cap = p["capacity_t"]
            util = p["load_t"] / cap if cap else None
            p["utilisation"] = None if util is None else round(util, 4)
            p["warning"] = bool(util is not None and util >= self.warning_ratio - 1e-9)
            read = self.readings_total.get(p["facility_id"])
            p["reading_t"] = None if read is None else round(read, 3)
            ratio = read / cap if (cap and read is not None) else None
            p["reading_utilisation"] = None if ratio is None else round(ratio, 4)
            p["reading_warning"] = bool(ratio is not None and ratio >= self.warning_ratio - 1e-9)
        return list(buildings.values()) + out

    def summary(self, day: date | None = None, scenario: str | None = None,
                basis: str = "readings") -> dict[str, Any]:
        """The plan in numbers: the totals and each stream's own summary."""
        streams = {s: p.summary(day, scenario) for s, p in self.plans.items()}
        messages = [f"{s}: {m['message']}" for s, m in streams.items() if m["message"]]
        if self.missing:
            messages.append(f"{len(self.missing)} refuse building(s) have no reading that day "
                            f"and are planned as sending nothing / {len(self.missing)} 座垃圾楼"
                            "当日无计量数据，按 0 计")
        feats = [f["properties"] for f in self.facility_features()]
        return {
            "status": self.status, "message": "; ".join(messages) or None,
            "day": None if day is None else day.isoformat(), "basis": basis,
            "streams": list(self.plans),
            "refuse_t": round(sum(m["refuse_t"] for m in streams.values()), 3),
            "tonne_km": round(self.tonne_km, 3), "unplaced_t": round(self.unplaced_t, 3),
            "refuse_buildings": sum(p["kind"] == "refuse_building" for p in feats),
            "transfer_stations": sum(p["kind"] == "transfer_station" for p in feats),
            "treatment_plants": sum(p["kind"] == "treatment_plant" for p in feats),
            "warnings_plan": sum(p["warning"] for p in feats if p["kind"] != "refuse_building"),
            "warnings_readings": sum(p["reading_warning"] for p in feats),
            "over_capacity_if_nearest": sum(m["over_capacity_if_nearest"]
                                            for m in streams.values()),
            "outages": sorted({f"{p['name']}: {p['outage']}" for p in feats if p["outage"]}),
            "missing_readings": self.missing,
            "warning_ratio": self.warning_ratio,
            "solve_time_s": round(sum(m["solve_time_s"] or 0.0 for m in streams.values()), 4),
            "scenario": scenario, "by_stream": streams}


# --- loading ------------------------------------------------------------------------


def load_facilities(conn: psycopg.Connection[Any], scenario: Scenario | None = None,
                    day: date | None = None, new_stream: str = OTHER) -> Facilities:
    """The refuse facilities in service on ``day``, with a scenario's edits.

    A facility with an outage that day (``refuse_facility_outage``) works at its
    capacity times the outage's factor; a scenario's capacity replaces both. A
    facility a scenario adds at a point is a transfer station of ``new_stream``.
    """
    removed = scenario.removed("refuse_facility") if scenario is not None else frozenset()
    caps = scenario.capacities("refuse_facility") if scenario is not None else {}
    added = scenario.added("refuse_facility") if scenario is not None else ()
    back = {a.id for a in added if a.id is not None}
    rows = conn.execute(
        "SELECT f.id, f.kind, f.name, f.stream, f.capacity_t_per_day::float8 AS cap, "
        "ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat, o.factor, o.reason "
        "FROM onemap.refuse_facility f LEFT JOIN LATERAL ("
        "  SELECT min(capacity_factor)::float8 AS factor, min(reason) AS reason "
        "  FROM onemap.refuse_facility_outage o "
        "  WHERE o.facility_id = f.id AND %(day)s::date BETWEEN o.first_day AND o.last_day"
        ") o ON true WHERE f.status = 'in_service' OR f.id = ANY(%(back)s) ORDER BY f.id",
        {"day": day, "back": list(back)}).fetchall()
    ids, kinds, names, cap, ll, streams, outage = [], [], [], [], [], [], []
    for r in rows:
        if int(r["id"]) in removed:
            continue
        ids.append(int(r["id"]))
        kinds.append(r["kind"])
        names.append(r["name"])
        streams.append(r["stream"])
        c = r["cap"] if r["cap"] is None or r["factor"] is None else r["cap"] * r["factor"]
        c = caps.get(int(r["id"]), c)
        cap.append(np.nan if c is None else float(c))
        ll.append((float(r["lon"]), float(r["lat"])))
        outage.append(r["reason"] if r["factor"] is not None else None)
    for k, a in enumerate((a for a in added if a.point is not None), start=1):
        assert a.point is not None
        ids.append(-k)
        kinds.append("transfer_station")
        names.append(a.name or f"新转运站 {k}")
        cap.append(np.nan if a.capacity is None else float(a.capacity))
        ll.append((a.point.lon, a.point.lat))
        streams.append(new_stream)
        outage.append(None)
    return Facilities.from_arrays(ids=ids, kind=kinds, capacity=cap, names=names,
                                  lonlat=np.array(ll, dtype=float).reshape(-1, 2),
                                  stream=streams, outage=outage)


def last_reading_day(conn: psycopg.Connection[Any]) -> date | None:
    """The last (Beijing) day with a 21:00 reading."""
    row = conn.execute(
        "SELECT max((measured_at AT TIME ZONE 'Asia/Shanghai')::date) AS d "
        "FROM onemap.refuse_load_reading "
        "WHERE (measured_at AT TIME ZONE 'Asia/Shanghai')::time = time '21:00'").fetchone()
    return None if row is None else row["d"]


def day_readings(conn: psycopg.Connection[Any], day: date | None
                 ) -> tuple[date, dict[int, dict[str, float]]]:
    """The day's tonnes per facility and stream (the 21:00 Beijing reading; the last day
    by default). An unsorted reading (no stream) counts as :data:`OTHER`."""
    if day is None:
        day = last_reading_day(conn)
        if day is None:
            raise FlowRequestError("day", "there are no load readings / 没有计量数据")
    at = datetime(day.year, day.month, day.day, 21) - BEIJING
    rows = conn.execute(
        "SELECT facility_id, coalesce(stream, 'other') AS stream, sum(load_t)::float8 AS t "
        "FROM onemap.refuse_load_reading "
        "WHERE measured_at = %s::timestamp AT TIME ZONE 'UTC' GROUP BY 1, 2", (at,)).fetchall()
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        out.setdefault(int(r["facility_id"]), {})[r["stream"]] = float(r["t"])
    return day, out


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
         graph: Graph | None = None, stream: str | None = None,
         demand: Mapping[str, Mapping[int, float]] | None = None,
         ) -> tuple[CityFlow, date]:
    """A day's refuse-flow plan, loaded through the caller's connection.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's (row-level security applies).
    day : datetime.date, optional
        The (Beijing) day: its readings, its outages. Default: the last day with readings.
    warning_ratio : float
        Warn at this share of a capacity.
    scenario : Scenario, optional
        A what-if's edits.
    graph : Graph, optional
        The drive graph (read once by the caller).
    stream : str, optional
        One of :data:`STREAMS`; None: every stream.
    demand : mapping, optional
        Tonnes by stream and refuse building id (a forecast for a day to come, when
        ``day`` has no readings) instead of the day's readings.

    Returns
    -------
    CityFlow, datetime.date
        Ready to :meth:`~CityFlow.solve`, and the day.

    Raises
    ------
    FlowRequestError
        Naming the input: a day without readings, an unknown stream, a negative
        tonnage, a scenario that leaves a stream no station or plant.
    """
    check_stream(stream)
    g = graph if graph is not None else road_graph(conn, "drive")
    read: dict[int, dict[str, float]] = {}
    if demand is not None:
        if day is None:
            raise FlowRequestError("day", "a forecast plan needs its day / 预测调配须指定日期")
    else:
        day, read = day_readings(conn, day)
        if not read:
            raise FlowRequestError("day", f"no readings on {day.isoformat()} / 该日没有计量数据")
    assert day is not None
    everything = load_facilities(conn, scenario, day, new_stream=stream or OTHER)
    rb = everything.of("refuse_building")
    total = {int(everything.ids[j]): sum(read[int(everything.ids[j])].values())
             for j in rb if int(everything.ids[j]) in read}
    wanted = [stream] if stream else [s for s in STREAMS if s in everything.stream]
    plans = {}
    for s in wanted:
        facilities = everything.for_stream(s)
        ids = facilities.ids
        if demand is not None:
            given = demand.get(s, {})
            tonnes = np.array([float(given.get(int(i), 0.0)) for i in ids[facilities.of(
                "refuse_building")]])
        else:
            tonnes = np.array([read.get(int(i), {}).get(s, 0.0)
                               for i in ids[facilities.of("refuse_building")]])
        if np.any(~np.isfinite(tonnes)) or np.any(tonnes < 0):
            raise FlowRequestError("demand" if demand is not None else "day",
                                   f"a negative or missing {s} tonnage / {s} 垃圾量为负或缺失")
        readings = np.array([read[int(i)].get(s, np.nan) if int(i) in read else np.nan
                             for i in ids])
        if facilities.of("transfer_station").size == 0 or \
                facilities.of("treatment_plant").size == 0:
            if tonnes.sum() == 0 and stream is None:
                continue
            raise FlowRequestError("scenario" if scenario is not None else "stream",
                                   f"no {s} transfer station or treatment plant in service / "
                                   f"没有在用的{s}转运站或处理厂")
        km_ts, km_tp = haul_km(g, facilities)
        plans[s] = RefuseFlow(facilities, tonnes, km_ts, km_tp, warning_ratio=warning_ratio,
                              readings=readings, stream=s)
    missing = [] if demand is not None else [
        int(everything.ids[j]) for j in rb if int(everything.ids[j]) not in read]
    return CityFlow(plans, total, missing), day


__all__ = ["DETOUR", "KINDS", "OTHER", "STREAMS", "WARNING_RATIO", "CityFlow", "Facilities",
           "FlowRequestError", "RefuseFlow", "check_stream", "day_readings", "haul_km",
           "last_reading_day", "load", "load_facilities"]
