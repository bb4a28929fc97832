"""Muck-truck shifts: where each truck is, hour by hour.

:func:`plan` gives each truck a timeline: parked at its company's depot by
day, and most nights (22:00–06:00 Beijing time) a shift shuttling between a
construction site (loading 10–25 min) and a disposal site (unloading
5–15 min); now and then an afternoon trip. Each loaded haul is a
:class:`Trip`. A few truck-nights break the rules (no waybill, or the wrong
disposal site), a few terminals are switched off for hours or days, and
tracks have short gaps. :func:`fixes` samples a truck's GPS terminal;
:mod:`democity.truck_records` derives what the city's systems saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from democity.context import CityContext
from democity.tracks import (
    Leg,
    Path,
    Piece,
    RoadNetwork,
    Stay,
    make_path,
    yard,
)

if TYPE_CHECKING:
    from democity.truck_gps import Period
    from democity.trucks import Place

HOUR = 3600.0
#: Chance that a truck works on a given night, and makes an afternoon trip.
NIGHT_ACTIVE, DAY_TRIP = 0.88, 0.08
#: Chance per truck-night of driving without waybills, to the wrong disposal site, or of
#: dumping the loads outside any disposal site (偷倒乱倒: on waste ground by the city's
#: edge, to save the disposal fee; the waybill says otherwise).
NO_WAYBILL, WRONG_SITE, DUMP_OUTSIDE = 0.03, 0.03, 0.015
#: Share of trucks whose GPS terminal is switched off for a while.
DEVICE_OFF = 0.05
#: Share of GPS gaps that are long (15–40 min rather than 1–10 min).
LONG_GAP = 0.2
#: Missed disposal entries; missed and misread checkpoint reads.
MISSED_ENTRY, MISSED_HIT, MISREAD = 0.03, 0.02, 0.03
#: Share of spill reports a tracked truck caused.
CAUSED = 0.6


@dataclass
class Trip:
    """A loaded haul from a construction site to a disposal site."""

    truck_id: int
    site: Place
    disposal: Place
    contracted: Place
    load_start: float
    leg: Leg
    unload_end: float
    night: bool
    waybill: bool
    volume: float
    id: int = 0
    #: The waybill's planned route: the road path from the site to the contracted
    #: disposal site (the haul's own path unless the truck went elsewhere).
    planned: Path | None = None
    #: The load's cover was not closed (未密闭): cameras may see it; muck falls off.
    uncovered: bool = False

    @property
    def dumped_outside(self) -> bool:
        """Unloaded outside any disposal site (a place with no row: id 0)."""
        return self.disposal.id == 0

    @property
    def reason(self) -> str | None:
        """Why the trip breaks the rules, if it does."""
        if not self.waybill:
            return "no_waybill"
        if self.dumped_outside:
            return "dumped_outside"
        return None if self.disposal is self.contracted else "wrong_disposal_site"


@dataclass
class TruckPlan:
    """One truck's timeline and what its terminal does."""

    id: int
    plate: str
    capacity: float
    interval: int
    noise_m: float
    sleep: int = 0
    pieces: list[Piece] = field(default_factory=list)
    trips: list[Trip] = field(default_factory=list)
    off: list[tuple[float, float]] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def legs(self) -> list[Leg]:
        """The drives of the timeline."""
        return [p for p in self.pieces if isinstance(p, Leg)]


@dataclass
class Plan:
    """Every truck's timeline."""

    trucks: list[TruckPlan]
    interval_target: float

    @property
    def trips(self) -> list[Trip]:
        """All loaded hauls, by truck and time."""
        return [t for tp in self.trucks for t in tp.trips]


class Routes:
    """Paths between places (yard, road route, yard), each built once."""

    def __init__(self, net: RoadNetwork) -> None:
        self.net = net
        self._cache: dict[tuple[int, int], Path] = {}

    def get(self, a: Place, b: Place) -> Path:
        """The path from place ``a``'s spot to place ``b``'s spot."""
        key = (id(a), id(b))
        if key not in self._cache:
            back = self._cache.get((id(b), id(a)))
            self._cache[key] = back.reversed() if back is not None else self._make(a, b)
        return self._cache[key]

    def _make(self, a: Place, b: Place) -> Path:
        net = self.net
        nodes = net.node_path(a.gate, b.gate)
        rxy, redge, rlight = net.route(nodes)
        rspeed = net.edge_speed[redge] if len(redge) else np.zeros(0)
        ya, yb = yard(a.yard[::-1]), yard(b.yard)
        path = make_path([ya[0], rxy, yb[0]], [ya[1], rspeed, yb[1]], [ya[2], redge, yb[2]],
                         [ya[3], rlight, yb[3]])
        la = float(np.hypot(*np.diff(ya[0], axis=0).T).sum())
        lb = float(np.hypot(*np.diff(yb[0], axis=0).T).sum())
        last = float(np.hypot(*(yb[0][-1] - yb[0][-2]))) if len(yb[0]) > 1 else 0.0
        path.marks.update(road_from=la, road_to=path.length - lb, entry=path.length - last)
        return path


def _window(rng: np.random.Generator, days: int) -> tuple[float, float]:
    """A device-off window: hours over one night, or a day or more."""
    k = int(rng.integers(days))
    if days >= 2 and rng.random() < 0.4:
        start = k * 86_400 + 6 * HOUR + rng.uniform(0, 4 * HOUR)
        return start, min(days * 86_400.0, start + rng.uniform(1.0, 2.5) * 86_400)
    start = k * 86_400 + 9 * HOUR + rng.uniform(0, 3 * HOUR)
    return start, min(days * 86_400.0, start + rng.uniform(2, 10) * HOUR)


def plan(
    ctx: CityContext, net: RoadNetwork, period: Period, sites: list[Place],
    disposals: list[Place], depots: list[Place], trucks: list[tuple[Any, ...]],
    dumps: list[Place] | None = None,
) -> Plan:
    """Each truck's timeline over the period.

    Parameters
    ----------
    ctx : CityContext
        Scale, ids and randomness (a stream per truck, so one truck's plan
        does not depend on another's).
    net : RoadNetwork
        Where trucks drive.
    period : Period
        The tracked days.
    sites, disposals, depots : list of Place
        Construction sites, disposal sites, company depots.
    trucks : list of tuple
        Rows from :func:`democity.trucks.fleet`.
    dumps : list of Place, optional
        Waste ground outside any disposal site where some nights' loads are dumped
        (none: no trip dumps outside).

    Returns
    -------
    Plan
        Timelines with trips numbered (``Trip.id``) in truck and time order.
    """
    rng = ctx.rng("trucks.plan")
    days = period.days
    routes = Routes(net)
    net.prepare([p.gate for p in (*disposals, *depots)])
    sxy = np.array([s.spot for s in sites])
    dxy = np.array([d.spot for d in disposals])
    near = np.argsort(np.hypot(sxy[:, None, 0] - dxy[None, :, 0],
                               sxy[:, None, 1] - dxy[None, :, 1]), axis=1)
    contracted = [int(near[i, 0 if rng.random() < 0.7 else 1]) for i in range(len(sites))]
    weight = rng.lognormal(0, 0.5, len(sites))
    span = float(np.ptp(net.xy[net.main], axis=0).max()) or 1.0
    n = len(trucks)
    active = rng.random((n, days)) < NIGHT_ACTIVE
    flag = np.full((n, days), "", dtype=object)
    flag[rng.random((n, days)) < NO_WAYBILL] = "no_waybill"
    flag[(flag == "") & (rng.random((n, days)) < WRONG_SITE)] = "wrong_disposal_site"
    reasons = ["no_waybill", "wrong_disposal_site"]
    if dumps:
        flag[(flag == "") & (rng.random((n, days)) < DUMP_OUTSIDE)] = "dumped_outside"
        reasons.append("dumped_outside")
    for reason in reasons:
        if not (flag == reason).any():
            free = np.argwhere(flag == "")
            i, k = free[int(rng.integers(len(free)))]
            flag[i, k] = reason
    active |= flag != ""
    off = {int(i): _window(rng, days) for i in
           rng.choice(n, max(1, round(DEVICE_OFF * n)), replace=False)}
    # One cycle per device, 10–30 s, chosen so the fixes come near the scale's target.
    target = n * days * 86_400 * 0.97 / max(ctx.scale.gps_points, 1)

    out: list[TruckPlan] = []
    for i, truck in enumerate(trucks):
        tid, plate, _, _, capacity, _, company = truck
        trng = ctx.rng(f"trucks.plan.{tid}")
        depot = depots[company % len(depots)]
        d2 = np.hypot(*(sxy - np.array(depot.spot)).T)
        pref = weight * np.exp(-d2 / (span / 3))
        site = int(trng.choice(len(sites), p=pref / pref.sum()))
        tp = TruckPlan(tid, plate, capacity,
                       int(np.clip(round(target * trng.uniform(0.85, 1.15)), 10, 30)),
                       float(trng.uniform(3.5, 9.0)))
        if i in off:
            tp.off.append(off[i])
        clock = [0.0]

        def stay(t1: float, place: Place, ignition: bool, tp: TruckPlan = tp,
                 clock: list[float] = clock) -> None:
            if t1 > clock[0]:
                tp.pieces.append(Stay(clock[0], t1, *place.spot, ignition))
                clock[0] = t1

        def drive(path: Path, factor: float, rng_: np.random.Generator,
                  tp: TruckPlan = tp, clock: list[float] = clock) -> Leg:
            leg = Leg.drive(path, clock[0], factor, rng_)
            tp.pieces.append(leg)
            clock[0] = leg.t1
            return leg

        for k in range(days):
            base = k * 86_400.0
            if trng.random() < 0.15:
                site = int(trng.choice(len(sites), p=pref / pref.sum()))
            shifts = []
            if trng.random() < DAY_TRIP:
                shifts.append((base + trng.uniform(1, 2.5) * HOUR, base + 3.5 * HOUR, False))
            if active[i, k]:
                shifts.append((base + 10 * HOUR + trng.uniform(-0.5, 1) * HOUR,
                               base + 17.5 * HOUR + trng.uniform(0, 0.75) * HOUR, True))
            for start, last_load, night in shifts:
                stay(max(start, clock[0] + 60), depot, False)
                s, c = sites[site], disposals[contracted[site]]
                d = c
                if flag[i, k] == "wrong_disposal_site" and night:
                    d = disposals[int(near[site, 1 if near[site, 0] == contracted[site] else 0])]
                elif flag[i, k] == "dumped_outside" and night and dumps:
                    d = dumps[int(trng.integers(len(dumps)))]
                f = trng.uniform(0.85, 1.08) if night else trng.uniform(0.55, 0.85)
                drive(routes.get(depot, s), f, trng)
                while True:
                    load_start = clock[0]
                    stay(clock[0] + trng.uniform(600, 1500), s, True)
                    haul = drive(routes.get(s, d), f * 0.92, trng)
                    stay(clock[0] + trng.uniform(300, 900), d, True)
                    tp.trips.append(Trip(tid, s, d, c, load_start, haul, clock[0], night,
                                         not (night and flag[i, k] == "no_waybill"),
                                         round(capacity * trng.uniform(0.85, 1.0), 2),
                                         planned=haul.path if d is c else routes.get(s, c)))
                    back = routes.get(d, s)
                    if clock[0] + back.length / 8.0 < last_load:
                        drive(back, f, trng)
                        continue
                    drive(routes.get(d, depot), f, trng)
                    break
        stay(period.seconds, depot, False)
        legs = [p for p in tp.pieces if isinstance(p, Leg) and p.t1 - p.t0 > 120]
        for _ in range(min(len(legs), int(trng.poisson(0.7 * days)))):
            leg = legs[int(trng.integers(len(legs)))]
            a = trng.uniform(leg.t0, leg.t1)
            # most gaps are short (a tunnel, a dropped packet); one in five is long
            # (a flaky terminal), long enough to hide a whole stretch of the route
            long_gap = trng.random() < LONG_GAP
            tp.gaps.append((a, a + (trng.uniform(900, 2400) if long_gap
                                    else trng.uniform(60, 600))))
        out.append(tp)
    _calibrate_sleep(out, ctx.scale.gps_points / 0.97)
    result = Plan(out, target)
    trips = result.trips
    for trip, tid in zip(trips, ctx.ids.take("truck_trip", len(trips)).tolist(), strict=True):
        trip.id = tid
    return result


def _calibrate_sleep(trucks: list[TruckPlan], target: float) -> None:
    """Set each terminal's cycle with the ignition off so the fixes come near ``target``.

    Terminals report every 10–30 s while the engine runs; parked, they
    report as often (when the target asks for it, as at M) or up to 30
    times less often (at L, where 10–30 s all day would overshoot).
    """
    on = sum((sum(p.t1 - p.t0 for p in tp.pieces
                  if isinstance(p, Leg) or p.ignition)) / tp.interval for tp in trucks)
    off = sum((sum(p.t1 - p.t0 for p in tp.pieces
                   if isinstance(p, Stay) and not p.ignition)) / tp.interval for tp in trucks)
    factor = 30.0 if target <= on else float(np.clip(off / (target - on), 1.0, 30.0))
    for tp in trucks:
        tp.sleep = round(tp.interval * factor)
