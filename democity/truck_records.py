"""What the city's systems saw of the muck trucks, and the truth behind it.

From the planned trips (:mod:`democity.hauls`): electronic waybills
(电子运单) for most trips, disposal-site entries (消纳场入场) when a truck
enters a disposal site (a few missed), checkpoints (卡口) on busy arterials
and their camera hits where a truck passes (a few missed, a few misread by
one character), and spill reports (道路遗撒) — most dropped on the road by a
known trip 10–120 minutes before the report, the rest noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from democity.context import METRIC_EPSG, CityContext
from democity.hauls import CAUSED, MISREAD, MISSED_ENTRY, MISSED_HIT, Plan, Trip
from democity.tracks import Path, RoadNetwork
from democity.writer import points_ewkb_hex, to_ewkb_hex
from spatial.crs import STORAGE_SRID, transform

if TYPE_CHECKING:
    from democity.truck_gps import Period

SOURCES = ("citizen", "grid_worker", "hotline_12345", "patrol", "camera")
SOURCE_P = (0.25, 0.25, 0.25, 0.15, 0.10)
#: How long after the muck fell each source reports it (s, uniform between): a road
#: camera's AI within minutes, a patrol or grid worker on the next round, a citizen
#: when they get to it, the 12345 hotline after the call is taken and an order raised.
#: Share of leaking trips, and of the others, whose load cover was not closed (an
#: overloaded body cannot be closed; a tailgate left open spills too).
UNCOVERED_LEAKING, UNCOVERED_OTHER = 0.6, 0.05
#: A checkpoint camera's cover classifier (渣土车未密闭识别): the share of reads it
#: classifies at all (glare, night, a truck too close to the one ahead), how often it
#: sees an open cover as open, and a closed one as open.
COVER_CLASSIFIED, COVER_HIT, COVER_FALSE = 0.8, 0.85, 0.03
REPORT_DELAY_S = {"camera": (120.0, 900.0), "patrol": (300.0, 3600.0),
                  "grid_worker": (600.0, 5400.0), "citizen": (600.0, 7200.0),
                  "hotline_12345": (1200.0, 9000.0)}
STATUSES = ("reported", "assigned", "cleaned", "closed")
DIRECTIONS = ("northbound", "eastbound", "southbound", "westbound")
SPILL_TEXT = ("道路遗撒渣土", "路面泥土遗撒", "渣土车遗撒，路面污染", "车辆带泥上路，路面脏污",
              "路口渣土洒落")
#: Spill reports per scale; other scales get one per 29 truck-days.
SPILLS = {"S": 10, "M": 60, "L": 600}
#: Share of a leaking truck's spills that someone reports.
TRAIL_REPORTED = 0.7
#: Share of spilling trips that are overloaded, and of the others.
OVERLOADED, OVERLOADED_OTHER = 0.65, 0.04


@dataclass
class Checkpoint:
    """A camera reading plates on a road edge."""

    id: int
    edge: int
    x: float
    y: float
    road_id: int
    code: str
    name: str


@dataclass
class Records:
    """Rows of every table the trucks step writes after the GPS."""

    waybills: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    hits: list[tuple[Any, ...]] = field(default_factory=list)
    spills: list[tuple[Any, ...]] = field(default_factory=list)
    trips: list[tuple[Any, ...]] = field(default_factory=list)
    causes: list[tuple[Any, ...]] = field(default_factory=list)
    device_off: list[tuple[Any, ...]] = field(default_factory=list)
    gaps: list[tuple[Any, ...]] = field(default_factory=list)
    unauthorised: list[tuple[Any, ...]] = field(default_factory=list)
    misreads: list[tuple[Any, ...]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def place_checkpoints(ctx: CityContext, net: RoadNetwork, plan: Plan,
                      road_names: dict[int, Any]) -> list[Checkpoint]:
    """Checkpoints: cameras on busy expressway and arterial edges, at least 200 m apart.

    About 2.5 per square root of the city's km²; edges are drawn with
    weights growing with the number of planned drives over them, so most
    cameras see trucks (secondary roads are used when arterials run short).

    Parameters
    ----------
    ctx : CityContext
        Scale, ids and randomness.
    net : RoadNetwork
        The drivable network.
    plan : Plan
        The trucks' timelines.
    road_names : dict
        Road id → name, for the cameras' names.

    Returns
    -------
    list of Checkpoint
        In id order, each near the middle of its edge.
    """
    rng = ctx.rng("trucks.checkpoints")
    usage = np.zeros(len(net.edge_u))
    paths: dict[int, tuple[Path, int]] = {}
    for tp in plan.trucks:
        for leg in tp.legs:
            paths[id(leg.path)] = (leg.path, paths.get(id(leg.path), (leg.path, 0))[1] + 1)
    for path, count in paths.values():
        usage[path.edges] += count
    n = max(3, round(2.5 * math.sqrt(ctx.scale.width_m * ctx.scale.height_m / 1e6)))
    long_enough = net.edge_length >= 80
    cand = np.flatnonzero(np.isin(net.edge_class, ["expressway", "arterial"]) & long_enough)
    if len(cand) < n:
        cand = np.flatnonzero(np.isin(net.edge_class, ["expressway", "arterial", "secondary"])
                              & long_enough)
    if len(cand) < n:
        cand = np.flatnonzero(long_enough) if long_enough.any() else np.arange(len(usage))
    keys = rng.random(len(cand)) ** (1.0 / (usage[cand] + 0.5))
    chosen: list[tuple[int, float, float]] = []
    for e in cand[np.argsort(-keys)]:
        if len(chosen) == n:
            break
        p = shapely.LineString(net.edge_coords[e]).interpolate(rng.uniform(0.4, 0.6),
                                                               normalized=True)
        if all(math.hypot(p.x - x, p.y - y) >= 200 for _, x, y in chosen):
            chosen.append((int(e), p.x, p.y))
    ids = ctx.ids.take("checkpoint", len(chosen)).tolist()
    out = []
    seen: dict[str, int] = {}
    for cid, (e, x, y) in zip(ids, chosen, strict=True):
        road = str(road_names.get(int(net.edge_road_id[e])) or "道路")
        seen[road] = seen.get(road, 0) + 1
        name = f"{road}卡口" if seen[road] == 1 else f"{road}{seen[road]}号卡口"
        out.append(Checkpoint(cid, e, x, y, int(net.edge_road_id[e]), f"KK-{cid:04d}", name))
    return out


def write_checkpoints(ctx: CityContext, checkpoints: list[Checkpoint]) -> None:
    """COPY the checkpoints."""
    lon, lat = transform(np.array([c.x for c in checkpoints]),
                         np.array([c.y for c in checkpoints]), METRIC_EPSG, STORAGE_SRID)
    geoms = points_ewkb_hex(lon, lat)
    ctx.writer.copy_rows("checkpoint", ["id", "code", "name", "road_id", "geom"],
                         [(c.id, c.code, c.name, c.road_id, g)
                          for c, g in zip(checkpoints, geoms, strict=True)])


def _passes(path: Path, by_edge: dict[int, list[Checkpoint]]) -> list[tuple[Checkpoint, float,
                                                                             str]]:
    """Checkpoints a path passes: (checkpoint, distance along the path, direction)."""
    out = []
    for e in path.edges.tolist():
        for cp in by_edge.get(e, ()):
            s = path.locate(cp.x, cp.y, np.flatnonzero(path.edge == e))
            heading = float(path.heading[path.at(np.array([s]))[2][0]])
            out.append((cp, s, DIRECTIONS[int(((heading + 45.0) % 360.0) // 90.0)]))
    return out


def _misread(plate: str, rng: np.random.Generator, taken: set[str]) -> str:
    """The plate with one character (after the province) read wrong."""
    digits, letters = "0123456789", "ABCDEFGHJKLMNPQRSTUVWXYZ"
    while True:
        k = int(rng.integers(1, len(plate)))
        pool = digits if plate[k].isdigit() else letters
        wrong = plate[:k] + pool[int(rng.integers(len(pool)))] + plate[k + 1:]
        if wrong != plate and wrong not in taken:
            return wrong


def _random_plate(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        plate = "京" + "ABCEFGHJKLMNPQY"[int(rng.integers(15))] + "".join(
            str(d) for d in rng.integers(0, 10, 5))
        if plate not in taken:
            return plate


def records(ctx: CityContext, net: RoadNetwork, period: Period, plan: Plan,
            road_frame: Any, checkpoints: list[Checkpoint]) -> Records:
    """Waybills, entries, hits and spills consistent with the planned tracks, and their truth.

    Parameters
    ----------
    ctx : CityContext
        Scale, ids and randomness.
    net : RoadNetwork
        The drivable network (road ids of edges).
    period : Period
        Converts times to timestamps.
    plan : Plan
        The trucks' timelines and trips.
    road_frame : geopandas.GeoDataFrame
        ``ctx.frames["road"]``: where noise spills fall.
    checkpoints : list of Checkpoint
        Cameras that read plates.

    Returns
    -------
    Records
        Rows for :func:`write_records` and counts for ``ctx.truth``.
    """
    rng = ctx.rng("trucks.records")
    rec = Records()
    trips = plan.trips
    by_id = {tp.id: tp for tp in plan.trucks}
    drops = _leaks(ctx, plan, by_id)
    plates = {tp.id: tp.plate for tp in plan.trucks}
    taken = set(plates.values())
    at = period.at

    # checkpoint hits, and when each haul entered its disposal site
    by_edge: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        by_edge.setdefault(cp.edge, []).append(cp)
    haul_of = {id(t.leg): t for t in trips}
    entered: dict[int, float] = {}
    passes: dict[int, list[tuple[Checkpoint, float, str]]] = {}
    hits: list[tuple[Any, ...]] = []
    seen_cover = ctx.rng("trucks.cover.read")

    def cover_read(trip: Trip | None) -> str | None:
        """What the camera's classifier says of the load (None: empty or not classified)."""
        u, v = seen_cover.random(), seen_cover.random()
        if trip is None or u >= COVER_CLASSIFIED:
            return None
        return "uncovered" if v < (COVER_HIT if trip.uncovered else COVER_FALSE) else "covered"

    for tp in plan.trucks:
        for leg in tp.legs:
            key = id(leg.path)
            if key not in passes:
                passes[key] = _passes(leg.path, by_edge)
            trip = haul_of.get(id(leg))
            if trip is None and not passes[key]:
                continue
            knots = leg.knots()
            if trip is not None:
                entered[trip.id] = float(leg.time_at(leg.path.marks["entry"], knots)[0])
            if not passes[key]:
                continue
            times = leg.time_at(np.array([s for _, s, _ in passes[key]]), knots)
            for (cp, _, direction), t in zip(passes[key], times.tolist(), strict=True):
                u = rng.random()
                if u < MISSED_HIT:
                    continue
                if u < MISSED_HIT + MISREAD:
                    hits.append((cp.id, _misread(tp.plate, rng, taken), None, t, direction,
                                 round(float(rng.uniform(0.45, 0.8)), 3), tp.id,
                                 cover_read(trip)))
                else:
                    hits.append((cp.id, tp.plate, tp.id, t, direction,
                                 round(float(rng.uniform(0.85, 0.99)), 3), None,
                                 cover_read(trip)))
    for _ in range(max(1, round(0.01 * len(hits)))):
        cp = checkpoints[int(rng.integers(len(checkpoints)))]
        hits.append((cp.id, _random_plate(rng, taken), None,
                     float(rng.uniform(0, period.seconds)), "unknown",
                     round(float(rng.uniform(0.85, 0.99)), 3), None, None))

    # waybills and disposal entries
    entry_ok = rng.random(len(trips)) >= MISSED_ENTRY
    wb_ids = iter(ctx.ids.take("waybill", sum(t.waybill for t in trips)).tolist())
    trip_wb: dict[int, int | None] = {}
    entries: list[tuple[float, Trip, int | None]] = []
    for trip, ok in zip(trips, entry_ok.tolist(), strict=True):
        t_in = entered[trip.id]
        wid = next(wb_ids) if trip.waybill else None
        trip_wb[trip.id] = wid
        if wid is not None:
            issued = trip.load_start - rng.uniform(300, 2400)
            day = (at(issued) + timedelta(hours=8)).strftime("%Y%m%d")
            rec.waybills.append((
                wid, f"YD{day}{wid:07d}", trip.truck_id, trip.site.id, trip.contracted.id,
                at(issued), at(issued), at(issued + 4 * 3600), by_id[trip.truck_id].capacity,
                "completed" if ok and trip.reason is None else "expired", trip.planned))
        ok = ok and not trip.dumped_outside  # no disposal site saw it
        if ok:
            entries.append((t_in, trip, wid if trip.reason is None else None))
        rec.trips.append((
            trip.id, trip.truck_id, wid, trip.site.id,
            None if trip.dumped_outside else trip.disposal.id,
            trip.contracted.id if wid is not None else None, at(trip.load_start),
            at(trip.leg.t0), at(t_in), at(trip.leg.t1), at(trip.unload_end), trip.volume,
            trip.night, ok, any(a < trip.unload_end and b > trip.load_start
                                for a, b in by_id[trip.truck_id].off),
            trip.uncovered, trip.leg.path))
        if trip.reason is not None:
            rec.unauthorised.append((trip.truck_id, trip.id, trip.reason, wid))
    n_noise = max(1, round(0.01 * len(entries)))
    disposals = list({id(t.disposal): t.disposal for t in trips if not t.dumped_outside}.values())
    noise = [(float(rng.uniform(0, period.seconds)), disposals[int(rng.integers(len(disposals)))],
              _random_plate(rng, taken)) for _ in range(n_noise)]
    e_ids = ctx.ids.take("disposal_entry", len(entries) + n_noise).tolist()
    for eid, (t, trip, wid) in zip(e_ids, sorted(entries, key=lambda r: r[0]), strict=False):
        rec.entries.append((eid, f"{trip.disposal.attrs['code']}-{eid:07d}", trip.disposal.id,
                            trip.truck_id, plates[trip.truck_id], wid, at(t), trip.volume))
    for eid, (t, place, plate) in zip(e_ids[len(entries):], noise, strict=True):
        rec.entries.append((eid, f"{place.attrs['code']}-{eid:07d}", place.id, None, plate, None,
                            at(t), round(float(rng.uniform(10, 25)), 2)))

    hits.sort(key=lambda h: (h[3], h[0]))
    unique: dict[tuple[int, int, str], tuple[Any, ...]] = {}
    for h in hits:  # (checkpoint, at, plate) is unique in the table
        unique.setdefault((h[0], round(h[3] * 1000), h[1]), h)
    hits = list(unique.values())
    for hid, h in zip(ctx.ids.take("checkpoint_hit", len(hits)).tolist(), hits, strict=True):
        rec.hits.append((hid, h[0], h[1], h[2], at(h[3]), h[4], h[5], h[7]))
        if h[6] is not None:
            rec.misreads.append((hid, h[6], plates[h[6]]))

    _spills(ctx, net, period, plan, road_frame, trip_wb, rec, rng, drops)
    for tp in plan.trucks:
        rec.device_off.extend((tp.id, at(a), at(b)) for a, b in tp.off)
        rec.gaps.extend((tp.id, at(a), at(b), "gap") for a, b in tp.gaps)
        rec.gaps.extend((tp.id, at(a), at(b), "device_off") for a, b in tp.off)
    rec.summary = {
        "trips": len(trips), "waybills": len(rec.waybills), "disposal_entries": len(rec.entries),
        "missed_entries": int((~entry_ok).sum()), "checkpoints": len(checkpoints),
        "checkpoint_hits": len(rec.hits), "misreads": len(rec.misreads),
        "spills": len(rec.spills), "spills_caused": sum(c[1] == "caused" for c in rec.causes),
        "unauthorised_trips": len(rec.unauthorised), "devices_off": len(rec.device_off),
        "gps_interval_target_s": round(plan.interval_target, 1),
    }
    return rec


def _n_spills(ctx: CityContext) -> int:
    scale = ctx.scale
    return SPILLS.get(scale.name, max(10, round(scale.trucks * scale.truck_days / 29)))


def _leaks(ctx: CityContext, plan: Plan, by_id: dict[int, Any]) -> list[tuple[Trip, float]]:
    """The trips that spill and where along their loaded haul (fractions of it).

    A leaking truck leaves a trail along its loaded haul: 2–5 spills, each reported
    (or not) later by whoever passes; a truck driving empty leaves none. Most spill
    because they are overloaded (the disposal site measures more than the truck holds:
    ``OVERLOADED`` of them), the rest through a badly closed tailgate; a few trips that
    spill nothing are overloaded too (``OVERLOADED_OTHER``).
    """
    rng = ctx.rng("trucks.leaks")
    trips = plan.trips
    n_caused = min(len(trips), round(CAUSED * _n_spills(ctx)))
    drops: list[tuple[Trip, float]] = []
    leaking: set[int] = set()
    for k in rng.permutation(len(trips)).tolist():
        if len(drops) >= n_caused:
            break
        at_ = np.sort(0.03 + 0.94 * rng.random(int(rng.integers(2, 6))))
        seen = rng.random(at_.size) < TRAIL_REPORTED
        seen[int(rng.integers(at_.size))] = True
        drops.extend((trips[k], float(f)) for f in at_[seen][:n_caused - len(drops)])
        leaking.add(k)
    for k, trip in enumerate(trips):
        if rng.random() < (OVERLOADED if k in leaking else OVERLOADED_OTHER):
            trip.volume = round(by_id[trip.truck_id].capacity * rng.uniform(1.1, 1.35), 2)
    cover = ctx.rng("trucks.cover")
    for k, trip in enumerate(trips):
        trip.uncovered = bool(cover.random() < (UNCOVERED_LEAKING if k in leaking
                                                else UNCOVERED_OTHER))
    return drops


def _spills(ctx: CityContext, net: RoadNetwork, period: Period, plan: Plan, road_frame: Any,
            trip_wb: dict[int, int | None], rec: Records, rng: np.random.Generator,
            drops: list[tuple[Trip, float]]) -> None:
    n = _n_spills(ctx)
    n_caused = len(drops)
    spills: list[tuple[float, float, float, int, str, tuple[Any, ...]]] = []
    for trip, frac in drops:
        source = SOURCES[int(rng.choice(len(SOURCES), p=SOURCE_P))]
        path = trip.leg.path
        a, b = path.marks["road_from"], path.marks["road_to"]
        s = a + (b - a) * frac
        x, y, seg = path.at(np.array([s]))
        road = path.edge[seg[0]]
        if road < 0:
            near = np.flatnonzero(path.edge >= 0)
            road = path.edge[near[np.argmin(np.abs(near - seg[0]))]]
        h = math.radians(float(path.heading[seg[0]]))
        off = rng.uniform(-3, 3)
        passed = float(trip.leg.time_at(s)[0])
        spills.append((passed + rng.uniform(*REPORT_DELAY_S[source]),
                       float(x[0]) + off * math.cos(h), float(y[0]) - off * math.sin(h),
                       int(net.edge_road_id[road]), source,
                       ("caused", trip.truck_id, trip.id, trip_wb[trip.id], trip.site.id,
                        None if trip.dumped_outside else trip.disposal.id, passed)))
    lengths = road_frame.geometry.length.to_numpy()
    for k in rng.choice(len(road_frame), n - n_caused, p=lengths / lengths.sum()).tolist():
        line = road_frame.geometry.iloc[k]
        p = line.interpolate(rng.random(), normalized=True)
        dx, dy = rng.uniform(-3, 3, 2)
        spills.append((float(rng.uniform(0, period.seconds)), p.x + dx, p.y + dy,
                       int(road_frame["id"].iloc[k]),
                       SOURCES[int(rng.choice(len(SOURCES), p=SOURCE_P))],
                       ("noise", None, None, None, None, None, None)))
    spills.sort(key=lambda r: r[0])
    ids = ctx.ids.take("spill_report", len(spills)).tolist()
    lon, lat = transform(np.array([r[1] for r in spills]), np.array([r[2] for r in spills]),
                         METRIC_EPSG, STORAGE_SRID)
    geoms = points_ewkb_hex(lon, lat)
    for sid, (t, _, _, road_id, source, truth), g in zip(ids, spills, geoms, strict=True):
        day = (period.at(t) + timedelta(hours=8)).strftime("%Y%m%d")
        rec.spills.append((sid, source, f"YS{day}{sid:05d}", road_id, period.at(t),
                           SPILL_TEXT[int(rng.integers(len(SPILL_TEXT)))],
                           round(float(rng.lognormal(2.0, 0.8)), 2),
                           STATUSES[int(rng.choice(4, p=(0.15, 0.15, 0.3, 0.4)))], g))
        kind, truck, trip_id, wb, site, disposal, passed = truth
        rec.causes.append((sid, kind, truck, trip_id, wb, site, disposal,
                           None if passed is None else period.at(passed)))


def write_records(ctx: CityContext, rec: Records) -> None:
    """COPY waybills, entries, hits, spills and the truth tables."""
    w = ctx.writer
    # The planned route (the last item, a Path or None) as EWKB, each path converted once.
    planned = list({id(r[-1]): r[-1] for r in rec.waybills
                    if r[-1] is not None and len(r[-1].xy) >= 2}.values())
    routes: dict[int, str | None] = dict(zip(
        [id(p) for p in planned], to_ewkb_hex([p.linestring() for p in planned]),
        strict=True)) if planned else {}
    w.copy_rows("waybill", ["id", "code", "truck_id", "construction_site_id", "disposal_site_id",
                            "issued_at", "valid_from", "valid_to", "volume_m3", "status", "geom"],
                ((*r[:-1], routes.get(id(r[-1]))) for r in rec.waybills))
    w.copy_rows("disposal_entry", ["id", "external_ref", "disposal_site_id", "truck_id",
                                   "plate_number", "waybill_id", "entered_at", "volume_m3"],
                rec.entries)
    w.copy_rows("checkpoint_hit", ["id", "checkpoint_id", "plate_read", "truck_id", "at",
                                   "direction", "confidence", "load_cover"], rec.hits)
    w.copy_rows("spill_report", ["id", "source", "external_ref", "road_id", "reported_at",
                                 "description", "area_m2", "status", "geom"], rec.spills)
    paths = list({id(r[-1]): r[-1] for r in rec.trips}.values())
    hexes = dict(zip([id(p) for p in paths], to_ewkb_hex([p.linestring() for p in paths]),
                     strict=True)) if paths else {}
    w.copy_rows("truck_trip", ["id", "truck_id", "waybill_id", "construction_site_id",
                               "disposal_site_id", "waybill_disposal_site_id", "load_start",
                               "depart_ts", "entered_ts", "arrive_ts", "unload_end", "volume_m3",
                               "night", "entry_recorded", "device_off", "uncovered", "path"],
                ((*r[:-1], hexes[id(r[-1])]) for r in rec.trips), schema="truth")
    w.copy_rows("spill_cause", ["spill_report_id", "kind", "truck_id", "trip_id", "waybill_id",
                                "construction_site_id", "disposal_site_id", "passed_at"],
                rec.causes, schema="truth")
    w.copy_rows("device_off", ["truck_id", "from_ts", "to_ts"], rec.device_off, schema="truth")
    w.copy_rows("gps_gap", ["truck_id", "from_ts", "to_ts", "kind"], rec.gaps, schema="truth")
    w.copy_rows("unauthorised", ["truck_id", "trip_id", "reason", "waybill_id"],
                rec.unauthorised, schema="truth")
    w.copy_rows("checkpoint_misread", ["checkpoint_hit_id", "truck_id", "plate_number"],
                rec.misreads, schema="truth")
