"""Spill tracing (道路遗撒溯源): from muck on a road to the truck, where it loaded and dumped.

A spill report gives a place and a time. :class:`SpillTrace` finds the muck
trucks that could have dropped it and ranks them by evidence from the four
sources the city holds, each read through the caller's connection (row-level
security applies; a caller who may not see trucks sees no suspect):

* **GPS** (``truck_gps``): a track passing within :data:`PASS_M` of the spot
  in the window before the report (the segment between two fixes, the pass
  time interpolated along it) — the truck passed there, at that distance, then;
* **gaps**: a truck whose fixes stop before the spot and resume after it,
  :data:`GAP_S` to :data:`MAX_GAP_S` apart, is a suspect when its **space-time
  prism** covers the spot: the road distance from the fix before to the spot
  and on to the fix after (``spatial.network`` drive graph, one-way rows kept)
  can be driven in the time between at :data:`PRISM_KMH`; the pass time is
  interpolated along that way;
* **checkpoints** (``checkpoint_hit``): plates read within :data:`CHECKPOINT_M`
  of the spot around the pass, matched to a registered truck exactly or with
  one character misread (a unique match only); a truck seen by cameras but
  not by GPS (its device off) becomes a suspect through them;
* **waybills** (``waybill``): a waybill valid in the window whose planned
  route passes the spot; it names the construction site and disposal site;
* **disposal entries** (``disposal_entry``): the first entry after the pass
  closes the trip and says where it dumped.

Whether the truck was **loaded** at the pass is read from its track's stays
(``rollup.truck_stay``, derived as the fixes are written): its last stay at a
construction site after its last stay at a disposal site means loaded; the
other way round, empty (and an empty truck does not spill muck). The trip's
construction site is that stay's, or the
waybill's; its disposal site the first disposal stop or entry after the pass.

The score adds log-odds-like parts: loaded (+3) or empty (−3) at the pass; the
measured load (超载, the commonest cause: log(0.65 / 0.04) when the disposal site
measured more than the truck holds, log(0.35 / 0.96) when not, :data:`OVERLOADED_SHARE`);
how the truck was placed at the first report's spot (a track within the metres:
0.5–1, a prism 0.5–0.75 as the spot lies nearer the way between the fixes either side
of the gap, a camera 0.25); how likely the report's **delay** after the pass
is for its source (:data:`REPORT_DELAY_S`: a camera reports within minutes, the
hotline hours later; −3 to +3 against any time in the window; through a gap, over
the span it could have passed in); what the checkpoint cameras saw of the load's
cover (:func:`cover_weight`); each further report of the same incident the loaded
stretch passed (+1, and half its delay's weight); consistent checkpoint reads (+0.5
each, at most 1; a misread +0.35), a waybill whose route passes (+0.5), an entry
closing the trip (+0.5). Suspects are ranked by score, one trip per truck; each
carries its evidence per source.

The other reports near the traced ones (:data:`CONTEXT_M`, within the window) are
**context**: a spilling truck leaves a trail, so each one a suspect's loaded way
passed weighs as ``trail`` by how well its delay fits (:data:`CONTEXT_SHARE`). The
trail favours every truck of a convoy alike, so it counts where the muck came from —
:meth:`SpillTrace.sites` ranks the construction sites by the suspects' scores and
trails — not which truck of the convoy dropped it (measured both ways on the demo
city: the trail in the truck's score cost more top-3 hits than it won).

A loaded trip without a waybill valid at the pass is flagged ``unauthorised``;
one whose waybill names another disposal site than where it went,
``wrong_disposal_site``; a loaded truck seen at no disposal site within
:data:`DUMP_WITHIN_S` after the pass, ``no_disposal_seen`` — or
``dumped_outside`` (偷倒) with the place, when its track stood still for
:data:`DUMP_STOP_S` outside any site before it loaded again; a measured
overload, ``overloaded``.

Examples
--------
Two trucks passed a spill; one loaded 10 m away an hour before the report, one
empty 30 m away two hours before:

>>> from datetime import datetime, timezone
>>> at = datetime(2026, 10, 29, 16, 0, tzinfo=timezone.utc)
>>> s = Suspect(truck_id=1)
>>> s.add(0, Pass("gps", at, 10.0), report_at=at.replace(hour=17), loaded=True)
>>> e = Suspect(truck_id=2)
>>> e.add(0, Pass("gps", at.replace(hour=15), 30.0), report_at=at.replace(hour=17),
...       loaded=False)
>>> round(s.score, 2) > round(e.score, 2)
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from spatial.errors import NamedInputError
from spatial.network import Graph, road_graph

#: A track (the segment between two fixes) this close to the spot (m) passed it.
PASS_M = 30.0
#: Fixes further apart than this (s) leave a gap a truck could have passed through (at
#: least the 60 s from which ``rollup.truck_gps_gap`` keeps gaps).
GAP_S = 90.0
#: Gaps longer than this (s: a device switched off for hours) are not prisms: the
#: truck could be anywhere; checkpoints and waybills may still name it.
MAX_GAP_S = 2 * 3600.0
#: Speed bound of the space-time prism (km/h): muck trucks are limited to 60 in the city.
PRISM_KMH = 60.0
#: Both ends of a segment of at most :data:`GAP_S` passing within :data:`PASS_M` lie
#: within this distance (m) of the spot, at up to :data:`PRISM_KMH` between the fixes.
REACH_M = PASS_M + GAP_S * PRISM_KMH / 3.6
#: Checkpoints within this distance (m, straight) of the spot support a pass.
CHECKPOINT_M = 3000.0
#: A checkpoint read supports a pass when its time differs from the pass by at most the
#: straight distance at this speed (km/h), plus :data:`CHECKPOINT_SLACK_S`.
CHECKPOINT_KMH = 15.0
CHECKPOINT_SLACK_S = 600.0
#: A waybill's planned route this close (m) to the spot passes it.
ROUTE_M = 60.0
#: How far back (s) the track is read for the last site visited before the pass.
STOPS_BEFORE_S = 6 * 3600.0
#: A loaded truck should reach a disposal site within this time (s) of the pass.
DUMP_WITHIN_S = 4 * 3600.0
#: A loaded truck that stayed this long (s) outside any site unloaded there (a queue at
#: a light or a jam is shorter). Stays are ``rollup.truck_stay`` (200_truck_stays.sql):
#: two or more consecutive fixes below 5 km/h, each within 50 m of the one before; at a
#: site when within 40 m of it — a truck driving past a site did not load or unload.
DUMP_STOP_S = 300.0
#: What a checkpoint camera's cover classifier (渣土车未密闭识别) says of a load: the share
#: of spilling trips driven with the cover open and of the others, then how often the
#: classifier reads an open cover as open and a closed one as open. The reads of one
#: trip share one truth (the cover was open or not), so they are weighed as a mixture
#: over it (:func:`cover_weight`): many reads say no more than the cover's state does.
#: The rates are the demo city's; a city sets them from its closed enforcement cases.
COVER_OPEN = {"spilling": 0.6, "other": 0.05}
COVER_READ_OPEN = {"open": 0.85, "closed": 0.03}
#: The share of spilling trips that were overloaded (超载: the commonest cause) and of
#: the others: a measured overload weighs log(0.65 / 0.04), a measured load within the
#: truck's capacity log(0.35 / 0.96).
OVERLOADED_SHARE = {"spilling": 0.65, "other": 0.04}
#: A trip whose measured volume at the disposal site exceeds the truck's capacity by this
#: factor was overloaded (超载: the commonest cause of spills).
OVERLOAD = 1.05
#: The default window before a report (h), and the longest allowed.
WINDOW_H = 3.0
MAX_WINDOW_H = 24.0
#: Other spill reports within this distance (m) of a traced one, reported within the
#: window either side of it (and before now), are its **context**: a spilling truck
#: leaves a trail along its loaded way, reported by whoever passes. At most
#: :data:`CONTEXT_MAX` of them, nearest in time first.
CONTEXT_M = 5000.0
CONTEXT_MAX = 12
#: How likely a context report that a suspect's loaded way passed is from its trail
#: (rather than from another truck, or noise): a context report weighs
#: ``log(1 + CONTEXT_SHARE * (exp(w) - 1))`` with ``w`` its delay's weight — at most
#: about +2.4 when well timed, at least ``log(1 - CONTEXT_SHARE)`` when not.
CONTEXT_SHARE = 0.5
#: A space-time prism that covers a context report's spot says the truck could have
#: passed there, not that it did (it may have taken another road): about even odds.
PRISM_PASSED = 0.5
#: Suspects returned per request, at most.
TOP = 10
#: How long after the muck fell each source reports it (s): the median and the spread
#: (σ of the log) of a log-normal. A road camera's AI flags muck within minutes; a
#: patrol or a grid worker on the next round; citizens and the 12345 hotline (a call
#: taken, then an order raised) later and more variably. A pass is weighed by how
#: likely the report's delay after it is against any time in the window.
REPORT_DELAY_S: dict[str | None, tuple[float, float]] = {
    "camera": (480.0, 0.6), "patrol": (1500.0, 0.7), "grid_worker": (2400.0, 0.7),
    "citizen": (2700.0, 0.8), "hotline_12345": (4000.0, 0.7), None: (2400.0, 1.0)}

DIGITS = 7
_M_PER_DEG = 111_320.0


class SpillTraceError(NamedInputError):
    """A request the tracing cannot answer, naming the input (a 400)."""


@dataclass(frozen=True)
class Spill:
    """A spill report: where and when (EPSG:4490, aware time)."""

    id: int | None
    lon: float
    lat: float
    reported_at: datetime
    road_id: int | None = None
    #: Who reported it (``camera``, ``patrol``, ``grid_worker``, ``citizen``,
    #: ``hotline_12345``): how long after the muck fell a report comes.
    source: str | None = None


@dataclass(frozen=True)
class Pass:
    """How a truck passed a spot: ``gps`` (a fix ``distance_m`` away), ``prism`` (through
    a gap, the pass time interpolated; ``span``: the earliest and latest it could have
    passed), ``checkpoint`` (read nearby, time estimated) or ``waybill`` (its planned
    route passes)."""

    how: str
    at: datetime | None
    distance_m: float | None = None
    gap_s: float | None = None
    span: tuple[datetime, datetime] | None = None
    #: Through a gap: the road way via the spot against the straight line between the
    #: fixes either side (near 1: the spot lies on the way).
    detour: float | None = None


@dataclass
class Suspect:
    """A truck that could have dropped one or more of the reports, with its evidence."""

    truck_id: int
    plate: str | None = None
    company: str | None = None
    passes: dict[int, Pass] = field(default_factory=dict)
    loaded: bool | None = None
    construction_site_id: int | None = None
    disposal_site_id: int | None = None
    waybill_id: int | None = None
    entry_id: int | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    route: bool = False
    #: The disposal site measured more than the truck holds (overloading spills muck).
    overloaded: bool | None = None
    #: The loaded stretch around the anchor pass: left the construction site, reached
    #: the disposal site (either may be unknown).
    stretch: tuple[datetime | None, datetime | None] | None = None
    flags: list[str] = field(default_factory=list)
    #: Where and when a trip seen at no disposal site stood long enough to unload.
    dump: tuple[float, float, datetime] | None = None
    score: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    #: Each report's time and source, by report index.
    report_times: dict[int, tuple[datetime, str | None]] = field(default_factory=dict)
    #: The window (s) the delays are weighed against.
    window_s: float = WINDOW_H * 3600.0
    #: Reports from this index on are context (found near the traced ones), not traced.
    traced: int = 1 << 30

    def add(self, report: int, p: Pass, *, report_at: datetime, loaded: bool | None,
            source: str | None = None) -> None:
        """Count one report's pass (the best of the truck's passes for that report)."""
        old = self.passes.get(report)
        if old is None or _strength(p) > _strength(old):
            self.passes[report] = p
        self.loaded = loaded if loaded is not None else self.loaded
        self.report_times.setdefault(report, (report_at, source))
        self.rescore()

    @property
    def anchor(self) -> int | None:
        """The report the trip is read at: the first report's when the truck passed it,
        else the earliest pass's."""
        if 0 in self.passes:
            return 0
        mine = {k: p for k, p in self.passes.items() if k < self.traced}
        timed = [(p.at, k) for k, p in mine.items() if p.at is not None]
        return min(timed)[1] if timed else (min(mine) if mine else None)

    def explains(self) -> list[int]:
        """The reports this truck's one trip passed: the anchor's, and every other whose
        pass lies in the loaded stretch (within an hour of the anchor's when the stretch
        is unknown)."""
        k0 = self.anchor
        if k0 is None:
            return []
        at0 = self.passes[k0].at
        out = [k0]
        for k, p in self.passes.items():
            if k == k0 or p.at is None or at0 is None:
                continue
            if self.stretch is not None:
                lo, hi = self.stretch
                if (lo is None or p.at >= lo) and (hi is None or p.at <= hi):
                    out.append(k)
            elif abs((p.at - at0).total_seconds()) <= 3600:
                out.append(k)
        return sorted(out)

    def asked(self) -> int:
        """How many of the reports asked about (not context) this trip explains."""
        return sum(k < self.traced for k in self.explains())

    def rescore(self, report_times: Mapping[int, tuple[datetime, str | None]] | None = None
                ) -> None:
        """The score and its parts from the evidence gathered (each report's time and
        source, by report index; how likely each report's delay after the pass is)."""
        if report_times is not None:
            self.report_times = dict(report_times)
        parts: dict[str, float] = {}
        if self.loaded is True:
            parts["loaded"] = 3.0
        elif self.loaded is False:
            parts["loaded"] = -3.0
        k0 = self.anchor
        p0 = self.passes.get(k0) if k0 is not None else None
        parts["near"] = round(_strength(p0), 4) if p0 is not None else 0.0
        times = self.report_times
        if p0 is not None and p0.at is not None and k0 in times:
            parts["delay"] = round(self._delay(p0, times[k0]), 4)
        if self.checkpoints:
            parts["checkpoints"] = min(1.0, sum(0.35 if c["misread"] else 0.5
                                                for c in self.checkpoints))
        covers = [c["cover"] for c in self.checkpoints if c.get("cover")]
        if covers and self.loaded is not False:
            parts["cover"] = round(cover_weight(covers), 4)
        if self.route:
            parts["route"] = 0.5
        if self.overloaded is not None and self.loaded is not False:
            a, b = OVERLOADED_SHARE["spilling"], OVERLOADED_SHARE["other"]
            parts["overloaded"] = round(math.log(a / b) if self.overloaded
                                        else math.log((1 - a) / (1 - b)), 4)
        if self.entry_id is not None:
            parts["entry"] = 0.5
        asked = trail = 0.0
        for k in self.explains():
            p = self.passes[k]
            if k == k0 or p.at is None or k not in times:
                continue
            w = self._delay(p, times[k])
            if k >= self.traced:  # a context report: from this trail, or not
                q = CONTEXT_SHARE * (PRISM_PASSED if p.how == "prism"
                                     and (p.detour is None or p.detour > 1.3) else 1.0)
                trail += math.log1p(q * math.expm1(w))
            else:  # the caller says the reports are one incident
                asked += 1.0 + max(-1.0, 0.5 * w)
        if asked:
            parts["reports"] = round(asked, 4)
        if trail:
            parts["trail"] = round(trail, 4)
        self.parts = parts
        # the trail favours every truck of a convoy alike: it weighs where the muck came
        # from (:meth:`SpillTrace.sites`), not which of them dropped it
        self.score = round(sum(v for k, v in parts.items() if k != "trail"), 4)

    def _delay(self, p: Pass, report: tuple[datetime, str | None]) -> float:
        """The weight of a report's delay after a pass (over the span it could have
        passed in, through a gap)."""
        when, source = report
        if p.span is not None:
            return delay_weight(source, (when - p.span[1]).total_seconds(), self.window_s,
                                spread_s=(p.span[1] - p.span[0]).total_seconds())
        assert p.at is not None
        return delay_weight(source, (when - p.at).total_seconds(), self.window_s)


def cover_weight(reads: Sequence[str]) -> float:
    """How much a trip's cover reads (``uncovered`` or ``covered``) favour it having
    spilled: the log of their likelihood for a spilling trip against another's, each a
    mixture over whether the cover was open (:data:`COVER_OPEN`, :data:`COVER_READ_OPEN`).

    >>> round(cover_weight(["uncovered"]), 2), round(cover_weight(["covered"]), 2)
    (1.99, -0.66)
    >>> round(cover_weight(["uncovered"] * 4), 2), round(cover_weight(["covered"] * 4), 2)
    (2.48, -0.86)
    """
    def likelihood(p_open: float) -> float:
        def given(state: str) -> float:
            hit = COVER_READ_OPEN[state]
            return math.prod(hit if r == "uncovered" else 1.0 - hit for r in reads)
        return p_open * given("open") + (1.0 - p_open) * given("closed")
    return math.log(likelihood(COVER_OPEN["spilling"]) / likelihood(COVER_OPEN["other"]))


def delay_weight(source: str | None, delay_s: float, window_s: float = WINDOW_H * 3600.0,
                 *, spread_s: float = 0.0) -> float:
    """How much a report ``delay_s`` after a pass favours that pass: the log of the
    source's delay density (:data:`REPORT_DELAY_S`) against a uniform one over the
    window, clipped to ±3. A pass known only to lie within ``spread_s`` before that
    (through a GPS gap) takes the density's mean over those delays: the wider the span,
    the less the time says.

    >>> round(delay_weight("camera", 420.0), 2), round(delay_weight("camera", 5400.0), 2)
    (2.81, -3.0)
    >>> -1.0 < delay_weight("citizen", 3600.0) < 1.0
    True
    >>> round(delay_weight("camera", 420.0, spread_s=3600.0), 2)  # passed 7-67 min before
    0.57
    """
    if spread_s >= 60.0:  # the mean density over the span: its probability / its length
        median, sigma = REPORT_DELAY_S.get(source, REPORT_DELAY_S[None])

        def cdf(d: float) -> float:
            return 0.0 if d <= 0 else 0.5 * (1 + math.erf(math.log(d / median)
                                                          / (sigma * math.sqrt(2))))
        density = (cdf(delay_s + spread_s) - cdf(delay_s)) / spread_s
        if density <= 0.0:
            return -3.0
        return max(-3.0, min(3.0, math.log(density) + math.log(window_s)))
    if delay_s < 0:
        return -3.0
    return max(-3.0, min(3.0, _log_delay_density(source, delay_s) + math.log(window_s)))


def _log_delay_density(source: str | None, delay_s: float) -> float:
    """The log of the source's log-normal delay density at ``delay_s`` (at least 30 s)."""
    median, sigma = REPORT_DELAY_S.get(source, REPORT_DELAY_S[None])
    d = max(delay_s, 30.0)
    z = math.log(d / median) / sigma
    return -0.5 * z * z - math.log(d * sigma * math.sqrt(2 * math.pi))


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Straight distance (m) between two near points (equirectangular)."""
    dx = (lon1 - lon0) * _M_PER_DEG * math.cos(math.radians((lat0 + lat1) / 2))
    return math.hypot(dx, (lat1 - lat0) * _M_PER_DEG)


def _strength(p: Pass) -> float:
    """How strongly a pass places the truck at the spot (0–2)."""
    if p.how == "gps":
        return 0.5 + 0.5 * math.exp(-max(0.0, p.distance_m or 0.0) / 25.0)
    if p.how == "prism":  # surer when the spot lies on the way between the fixes
        tight = 0.0 if p.detour is None else min(1.0, max(0.0, (1.6 - p.detour) / 0.5))
        return 0.5 + 0.25 * tight  # at best like a track some 20 m away
    if p.how == "checkpoint":
        return 0.25
    return 0.1  # a waybill's planned route only


def blanked(plate: str) -> list[str]:
    """The plate with each character in turn blanked (``?``): a camera's read one character
    off a plate shares one of these keys with it.

    >>> blanked("京A12"), set(blanked("京A12")) & set(blanked("京A18"))
    (['?A12', '京?12', '京A?2', '京A1?'], {'京A1?'})
    """
    return [plate[:i] + "?" + plate[i + 1:] for i in range(len(plate))]


class SpillTrace:
    """Suspect trips for one or more spill reports, over the data loaded once.

    Every way a truck could have passed a report's spot (each visit of its track
    within :data:`PASS_M`, each gap whose prism covers the spot, a checkpoint read
    for a truck the GPS does not place there) is an **anchor**; the truck's trip
    is read at the anchor (loaded or empty, the loaded stretch, the sites), the
    other reports its trip passed are counted, and anchors of one truck on one
    stretch are one suspect.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's (row-level security applies to every source).
    spills : sequence of Spill
        The reports traced together (one trip may explain several).
    window_h : float
        How long before each report a pass counts (h, at most :data:`MAX_WINDOW_H`).
    graph : Graph, optional
        The drive graph (the prisms' road distances); loaded when omitted.
    now : datetime, optional
        The present (a report after it is refused; context reports come before it).
    context : bool
        Weigh the other reports near the traced ones (:data:`CONTEXT_M`) as a trail a
        suspect may have left (appended to :attr:`spills` after the traced ones).

    Raises
    ------
    SpillTraceError
        No report, a window out of range, a report in the future.
    """

    def __init__(self, conn: psycopg.Connection[Any], spills: Sequence[Spill], *,
                 window_h: float = WINDOW_H, graph: Graph | None = None,
                 now: datetime | None = None, context: bool = True) -> None:
        if not spills:
            raise SpillTraceError("report_ids", "no spill report to trace / 没有要溯源的遗撒")
        if isinstance(window_h, bool) or not isinstance(window_h, int | float) \
                or not 0 < float(window_h) <= MAX_WINDOW_H:
            raise SpillTraceError("window_h", f"must be more than 0 and at most "
                                  f"{MAX_WINDOW_H:g} hours, got {window_h!r} / 时间窗须在 0 至 "
                                  f"{MAX_WINDOW_H:g} 小时之间")
        now = now or datetime.now(UTC)
        for s in spills:
            if s.reported_at > now + timedelta(minutes=5):
                raise SpillTraceError("time", f"{s.reported_at.isoformat()} is in the future / "
                                      "上报时间晚于当前时间")
        self.conn = conn
        self.spills = list(spills)
        #: The reports asked about; those after them in :attr:`spills` are context.
        self.traced = len(self.spills)
        self.context = context
        self.now = now
        self.window = timedelta(hours=float(window_h))
        self.graph = graph
        #: (report, truck, pass) found by every source.
        self.raw: list[tuple[int, int, Pass]] = []
        self.hits: list[dict[str, Any]] = []
        self.routes: dict[int, set[int]] = {}  # truck -> reports its waybill's route passes
        self.suspects: list[Suspect] = []
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ sources
    def _track_passes(self, k: int, s: Spill) -> None:
        """Passes read from the tracks: a segment between two consecutive fixes at most
        :data:`GAP_S` apart that runs within :data:`PASS_M` of the spot (the pass time
        interpolated along it; two such segments more than 5 min apart are two visits),
        and a longer gap (``rollup.truck_gps_gap``, derived as fixes are written) whose
        space-time prism covers the spot.

        Only the fixes within :data:`REACH_M` of the spot are read (through the spatial
        index): both ends of a segment that passes within :data:`PASS_M` lie there.
        """
        vmax = PRISM_KMH / 3.6
        cos = max(math.cos(math.radians(s.lat)), 0.1)
        args = {"lon": s.lon, "lat": s.lat, "t0": s.reported_at - self.window,
                "t1": s.reported_at, "gap": MAX_GAP_S, "min": GAP_S, "v": vmax,
                "dx": REACH_M / (_M_PER_DEG * cos), "dy": REACH_M / _M_PER_DEG, "r": PASS_M,
                "rx": 1.5 * PASS_M / (_M_PER_DEG * cos), "ry": 1.5 * PASS_M / _M_PER_DEG}
        rows = self.conn.execute(
            "WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4490) AS geom), "
            "c AS (SELECT g.truck_id, g.ts, g.geom FROM onemap.truck_gps g, p "
            "  WHERE g.ts BETWEEN %(t0)s - %(min)s * interval '1 s' "
            "  AND %(t1)s + %(min)s * interval '1 s' "
            "  AND g.geom && ST_Expand(p.geom, %(dx)s, %(dy)s)), "
            "x AS (SELECT c.*, lag(c.ts) OVER w AS pts, lag(c.geom) OVER w AS pgeom FROM c "
            "  WINDOW w AS (PARTITION BY c.truck_id ORDER BY c.ts)), "
            "y AS (SELECT x.*, extract(epoch FROM x.ts - x.pts) AS dt, "
            "  ST_MakeLine(x.pgeom, x.geom) AS seg FROM x "
            "  WHERE x.pts IS NOT NULL AND x.pts < %(t1)s AND x.ts > %(t0)s "
            "  AND x.ts - x.pts <= %(min)s * interval '1 s') "
            "SELECT y.truck_id, y.pts, y.ts, y.dt, false AS gap, "
            "ST_Distance(y.seg::geography, p.geom::geography) AS d, "
            "ST_LineLocatePoint(y.seg, p.geom) AS frac, ST_X(y.pgeom) AS x0, "
            "ST_Y(y.pgeom) AS y0, ST_X(y.geom) AS x1, ST_Y(y.geom) AS y1 FROM y, p "
            "WHERE y.seg && ST_Expand(p.geom, %(rx)s, %(ry)s) "
            "AND ST_DWithin(y.seg::geography, p.geom::geography, %(r)s) "
            "AND NOT EXISTS (SELECT 1 FROM onemap.truck_gps h WHERE h.truck_id = y.truck_id "
            "  AND h.ts > y.pts AND h.ts < y.ts) "  # consecutive fixes, not a way round
            "UNION ALL "
            "SELECT g.truck_id, g.from_ts, g.to_ts, extract(epoch FROM g.to_ts - g.from_ts), "
            "true, NULL, NULL, ST_X(g.geom_from), ST_Y(g.geom_from), ST_X(g.geom_to), "
            "ST_Y(g.geom_to) FROM rollup.truck_gps_gap g, p "
            "WHERE g.to_ts > %(t0)s AND g.to_ts < %(t1)s + %(gap)s * interval '1 s' "
            "AND g.from_ts < %(t1)s AND g.to_ts - g.from_ts > %(min)s * interval '1 s' "
            "AND g.to_ts - g.from_ts <= %(gap)s * interval '1 s' "
            "AND ST_Distance(g.geom_from::geography, p.geom::geography) "
            "  + ST_Distance(p.geom::geography, g.geom_to::geography) "
            "  <= %(v)s * extract(epoch FROM g.to_ts - g.from_ts) "
            "ORDER BY 1, 3", args).fetchall()
        visit: tuple[int, datetime, datetime, float] | None = None  # truck, last, at, d
        gaps = []
        for r in [*rows, None]:
            if r is not None and r["gap"]:
                gaps.append(r)
                continue
            if visit is not None and (r is None or int(r["truck_id"]) != visit[0]
                                      or (r["ts"] - visit[1]).total_seconds() > 300):
                if visit[2] <= s.reported_at:
                    self.raw.append((k, visit[0], Pass("gps", visit[2], round(visit[3], 1))))
                visit = None
            if r is None:
                break
            d = float(r["d"])
            at = r["pts"] + timedelta(seconds=float(r["dt"]) * float(r["frac"]))
            if visit is None or d < visit[3]:
                visit = (int(r["truck_id"]), r["ts"], at, d)
            else:
                visit = (visit[0], r["ts"], visit[2], visit[3])
        if gaps:
            self._prisms(k, s, gaps)

    def _prisms(self, k: int, s: Spill, rows: list[Any]) -> None:
        """Gaps whose space-time prism on the roads covers the spot: the road way from the
        fix before to the spot and on to the fix after (:func:`road_m`) drivable in the
        gap at :data:`PRISM_KMH`."""
        vmax = PRISM_KMH / 3.6
        g = self._graph()
        ends = np.array([[r["x0"], r["y0"], r["x1"], r["y1"]] for r in rows], dtype=float)
        d1 = road_m(g, ends[:, :2], np.array([s.lon, s.lat]), to_spot=True,
                    limit=vmax * MAX_GAP_S)
        d2 = road_m(g, ends[:, 2:], np.array([s.lon, s.lat]), to_spot=False,
                    limit=vmax * MAX_GAP_S)
        for i, r in enumerate(rows):
            dt = float(r["dt"])
            if not np.isfinite(d1[i] + d2[i]) or d1[i] + d2[i] > vmax * dt:
                continue
            at = r["pts"] + timedelta(seconds=dt * float(d1[i] / max(d1[i] + d2[i], 1e-9)))
            earliest = r["pts"] + timedelta(seconds=float(d1[i]) / vmax)
            latest = min(r["ts"] - timedelta(seconds=float(d2[i]) / vmax), s.reported_at)
            if at > s.reported_at or earliest > latest:
                continue
            straight = max(_metres(r["x0"], r["y0"], r["x1"], r["y1"]), 100.0)
            self.raw.append((k, int(r["truck_id"]), Pass(
                "prism", at, None, round(dt, 1), (earliest, latest),
                round(float(d1[i] + d2[i]) / straight, 3))))

    def sites(self) -> list[tuple[int, float]]:
        """The construction sites the first report's muck came from, most likely first:
        each suspect trip that passed it votes its site with the weight ``exp(score +
        trail)`` (the scores being sums of log-odds; the trail, the context reports its
        loaded way passed, favours a site's convoy alike), normalised to shares.

        Trucks of one site share its roads, so the site is surer than the truck.
        """
        def weight(s: Suspect) -> float:  # its score and the trail it may have left
            return s.score + s.parts.get("trail", 0.0)

        best: dict[int, Suspect] = {}  # each truck's best trip that passed the report
        for s in self.suspects:
            if 0 in s.passes and (s.truck_id not in best
                                  or weight(s) > weight(best[s.truck_id])):
                best[s.truck_id] = s
        top = max((weight(s) for s in best.values()), default=0.0)
        by_site: dict[int, float] = {}
        for s in best.values():
            if s.construction_site_id is not None:
                by_site[s.construction_site_id] = (by_site.get(s.construction_site_id, 0.0)
                                                   + math.exp(weight(s) - top))
        total = sum(by_site.values()) or 1.0
        return sorted(((site, round(w / total, 4)) for site, w in by_site.items()),
                      key=lambda x: (-x[1], x[0]))

    def _plates(self) -> dict[str, set[int]]:
        """The registered trucks by each plate with one character blanked (``?``): a read
        one character off a plate shares one of its keys."""
        out: dict[str, set[int]] = {}
        for r in self.conn.execute("SELECT id, plate_number FROM onemap.truck"):
            for key in blanked(r["plate_number"]):
                out.setdefault(key, set()).add(int(r["id"]))
        return out

    def _checkpoint_hits(self, k: int, s: Spill, plates: Mapping[str, set[int]]) -> None:
        """Plates read near the spot around the window, matched to registered trucks (a
        one-character misread matched when unique)."""
        rows = self.conn.execute(
            "SELECT h.id, h.checkpoint_id, c.name, h.plate_read, h.truck_id, h.at, h.load_cover, "
            "ST_Distance(c.geom::geography, p.geom::geography) AS d, ST_X(c.geom) AS lon, "
            "ST_Y(c.geom) AS lat FROM onemap.checkpoint_hit h "
            "JOIN onemap.checkpoint c ON c.id = h.checkpoint_id, "
            "(SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4490) AS geom) p "
            "WHERE h.at BETWEEN %(t0)s AND %(t1)s "
            "AND ST_DWithin(c.geom::geography, p.geom::geography, %(r)s)",
            {"lon": s.lon, "lat": s.lat, "t0": s.reported_at - self.window - timedelta(hours=1),
             "t1": s.reported_at + timedelta(hours=1), "r": CHECKPOINT_M}).fetchall()
        for r in rows:
            truck, misread = r["truck_id"], False
            if truck is None:
                near = set().union(*(plates.get(key, set())
                                     for key in blanked(r["plate_read"])))
                if len(near) != 1:
                    continue
                truck, misread = near.pop(), True
            self.hits.append({
                "report": k, "truck_id": int(truck), "checkpoint_id": int(r["checkpoint_id"]),
                "name": r["name"], "at": r["at"], "distance_m": round(float(r["d"]), 1),
                "misread": misread, "plate_read": r["plate_read"], "cover": r["load_cover"],
                "lon": float(r["lon"]),
                "lat": float(r["lat"])})

    def _camera_passes(self) -> None:
        """A truck read near a spot but placed there by no fix nor prism (its device off):
        the camera read is its pass."""
        placed = {(k, t) for k, t, _ in self.raw}
        for h in self.hits:
            k, t = h["report"], h["truck_id"]
            s = self.spills[k]
            slack = h["distance_m"] / (CHECKPOINT_KMH / 3.6) + CHECKPOINT_SLACK_S
            if (k, t) not in placed and s.reported_at - self.window - timedelta(
                    seconds=slack) <= h["at"] <= s.reported_at:
                self.raw.append((k, t, Pass("checkpoint", h["at"], h["distance_m"])))
                placed.add((k, t))

    def _waybills(self, k: int, s: Spill) -> None:
        rows = self.conn.execute(
            "SELECT w.id, w.truck_id FROM onemap.waybill w, "
            "(SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4490) AS geom) p "
            "WHERE w.valid_from <= %(t1)s AND w.valid_to >= %(t0)s "
            "AND w.status <> 'cancelled' AND w.geom IS NOT NULL "
            "AND ST_DWithin(w.geom::geography, p.geom::geography, %(r)s)",
            {"lon": s.lon, "lat": s.lat, "t0": s.reported_at - self.window,
             "t1": s.reported_at, "r": ROUTE_M}).fetchall()
        for r in rows:
            self.routes.setdefault(int(r["truck_id"]), set()).add(k)

    # ------------------------------------------------------------------ the trips
    def _trips(self, anchors: list[tuple[int, datetime]]) -> list[dict[str, Any]]:
        """At each (truck, time): loaded or empty, the loaded stretch, the sites, the
        waybill valid then and the first disposal entry after."""
        if not anchors:
            return []
        trucks = [a[0] for a in anchors]
        times = [a[1] for a in anchors]
        args = {"trucks": trucks, "times": times, "before": STOPS_BEFORE_S,
                "after": DUMP_WITHIN_S}
        stops = self.conn.execute(  # the stays at sites around each anchor, either side
            "WITH q AS (SELECT * FROM unnest(%(trucks)s::bigint[], %(times)s::timestamptz[]) "
            "WITH ORDINALITY AS q(truck_id, at, n)) "
            "SELECT q.n, s.site_kind AS kind, s.site_id, true AS before, "
            "least(s.last_ts, q.at) AS last, s.first_ts AS first FROM q "
            "JOIN rollup.truck_stay s ON s.truck_id = q.truck_id "
            "AND s.last_ts >= q.at - %(before)s * interval '1 s' AND s.first_ts < q.at "
            "WHERE s.site_id IS NOT NULL "
            "UNION ALL "
            "SELECT q.n, s.site_kind, s.site_id, false, s.last_ts, greatest(s.first_ts, q.at) "
            "FROM q JOIN rollup.truck_stay s ON s.truck_id = q.truck_id "
            "AND s.last_ts >= q.at AND s.first_ts <= q.at + %(after)s * interval '1 s' "
            "WHERE s.site_id IS NOT NULL", args).fetchall()
        waybills = self.conn.execute(
            "SELECT DISTINCT ON (q.n) q.n, w.id, w.construction_site_id, w.disposal_site_id "
            "FROM unnest(%(trucks)s::bigint[], %(times)s::timestamptz[]) WITH ORDINALITY "
            "AS q(truck_id, at, n) JOIN onemap.waybill w ON w.truck_id = q.truck_id "
            "AND w.valid_from <= q.at AND w.valid_to >= q.at AND w.status <> 'cancelled' "
            "ORDER BY q.n, w.valid_from DESC", args).fetchall()
        entries = self.conn.execute(
            "SELECT DISTINCT ON (q.n) q.n, e.id, e.disposal_site_id, e.entered_at, "
            "e.volume_m3::float8 AS volume, (SELECT t.capacity_m3::float8 FROM onemap.truck t "
            "WHERE t.id = q.truck_id) AS capacity "
            "FROM unnest(%(trucks)s::bigint[], %(times)s::timestamptz[]) WITH ORDINALITY "
            "AS q(truck_id, at, n) JOIN onemap.disposal_entry e ON e.truck_id = q.truck_id "
            "AND e.entered_at BETWEEN q.at AND q.at + %(after)s * interval '1 s' "
            "ORDER BY q.n, e.entered_at", args).fetchall()
        seen: list[dict[tuple[str, bool], tuple[datetime, int]]] = [{} for _ in anchors]
        for r in stops:
            d = seen[int(r["n"]) - 1]
            key = (r["kind"], bool(r["before"]))
            ts = r["last"] if r["before"] else r["first"]
            best = d.get(key)
            if best is None or (ts > best[0] if r["before"] else ts < best[0]):
                d[key] = (ts, int(r["site_id"]))
        wb = {int(r["n"]) - 1: r for r in waybills}
        en = {int(r["n"]) - 1: r for r in entries}
        out = []
        for i in range(len(anchors)):
            d = seen[i]
            trip: dict[str, Any] = {"loaded": None, "construction_site_id": None,
                                    "disposal_site_id": None, "waybill_id": None,
                                    "entry_id": None, "stretch": None, "flags": [],
                                    "overloaded": None}
            last_c, last_d = d.get(("construction", True)), d.get(("disposal", True))
            if last_c and (not last_d or last_c[0] > last_d[0]):
                trip["loaded"], trip["construction_site_id"] = True, last_c[1]
            elif last_d:
                trip["loaded"] = False
            w = wb.get(i)
            if w is not None:
                trip["waybill_id"] = int(w["id"])
                if trip["construction_site_id"] is None and trip["loaded"] is not False:
                    trip["construction_site_id"] = w["construction_site_id"]
            e, next_d = en.get(i), d.get(("disposal", False))
            unloaded = None
            if trip["loaded"] is not False:
                if e is not None:
                    trip["entry_id"] = int(e["id"])
                    trip["disposal_site_id"] = int(e["disposal_site_id"])
                    unloaded = e["entered_at"]
                    if e["volume"] is not None and e["capacity"]:
                        trip["overloaded"] = e["volume"] > OVERLOAD * e["capacity"]
                elif next_d:
                    trip["disposal_site_id"], unloaded = next_d[1], next_d[0]
            if trip["loaded"]:
                trip["stretch"] = (last_c[0] if last_c else None, unloaded)
                if w is None:
                    trip["flags"].append("unauthorised")
                elif trip["disposal_site_id"] is not None and w["disposal_site_id"] is not None \
                        and trip["disposal_site_id"] != int(w["disposal_site_id"]):
                    trip["flags"].append("wrong_disposal_site")
                if trip["disposal_site_id"] is None:
                    trip["flags"].append("no_disposal_seen")
                if trip["overloaded"]:
                    trip["flags"].append("overloaded")
            elif trip["loaded"] is None and e is not None:
                # no track to tell (its device off): the entry closing the trip says where
                # the load went, the waybill where it should have
                if w is not None and w["disposal_site_id"] is not None \
                        and int(e["disposal_site_id"]) != int(w["disposal_site_id"]):
                    trip["flags"].append("wrong_disposal_site")
                if trip["overloaded"]:
                    trip["flags"].append("overloaded")
            elif last_d:  # empty: from the disposal site until the next load
                next_c = d.get(("construction", False))
                trip["stretch"] = (last_d[0], next_c[0] if next_c else None)
            out.append(trip)
        self._dumps(anchors, out)
        return out

    def _dumps(self, anchors: list[tuple[int, datetime]], trips: list[dict[str, Any]]) -> None:
        """Where a loaded truck seen at no disposal site unloaded: its first stop of at
        least :data:`DUMP_STOP_S` (a ``rollup.truck_stay``) outside
        every site, from its load until :data:`DUMP_WITHIN_S` after the pass (a drive past
        a site does not count; stops at sites are loading or unloading). Found, the trip
        is flagged ``dumped_outside`` (偷倒) and the stop is its ``dump``; found *before*
        the pass, the truck had dumped already and passed empty."""
        todo = [i for i, t in enumerate(trips) if "no_disposal_seen" in t["flags"]]
        if not todo:
            return
        rows = self.conn.execute(
            "SELECT DISTINCT ON (q.n) q.n, s.first_ts AS ts, ST_X(s.geom) AS lon, "
            "ST_Y(s.geom) AS lat FROM unnest(%(trucks)s::bigint[], %(t0)s::timestamptz[], "
            "%(t1)s::timestamptz[]) WITH ORDINALITY AS q(truck_id, t0, t1, n) "
            "JOIN rollup.truck_stay s ON s.truck_id = q.truck_id AND s.last_ts > q.t0 "
            "AND s.first_ts < q.t1 AND s.first_ts > q.t0 AND s.site_id IS NULL "
            "AND s.last_ts - s.first_ts >= %(stop)s * interval '1 s' "
            "ORDER BY q.n, s.first_ts",
            {"trucks": [anchors[i][0] for i in todo],
             "t0": [trips[i]["stretch"][0] or anchors[i][1] for i in todo],
             "t1": [anchors[i][1] + timedelta(seconds=DUMP_WITHIN_S) for i in todo],
             "stop": DUMP_STOP_S}).fetchall()
        for r in rows:
            i = todo[int(r["n"]) - 1]
            trip = trips[i]
            trip["flags"] = [f for f in trip["flags"]
                             if f != "no_disposal_seen"] + ["dumped_outside"]
            trip["dump"] = (round(float(r["lon"]), DIGITS), round(float(r["lat"]), DIGITS),
                            r["ts"])
            trip["stretch"] = (trip["stretch"][0], r["ts"])
            if r["ts"] < anchors[i][1]:  # dumped before it passed: it passed empty
                trip["loaded"] = False

    def _context(self) -> None:
        """Append the context reports: others within :data:`CONTEXT_M` of a traced report,
        reported within the window either side of it and before now."""
        q = self.spills[:self.traced]
        rows = self.conn.execute(
            "SELECT r.id, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.reported_at, r.road_id, "
            "r.source, min(abs(extract(epoch FROM r.reported_at - q.at))) AS apart "
            "FROM unnest(%(lon)s::float8[], %(lat)s::float8[], %(at)s::timestamptz[]) "
            "AS q(lon, lat, at) JOIN onemap.spill_report r "
            "ON r.reported_at BETWEEN q.at - %(w)s AND least(q.at + %(w)s, %(now)s) "
            "AND r.geom && ST_Expand(ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4490), %(deg)s) "
            "AND ST_DWithin(r.geom::geography, ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4490)"
            "::geography, %(m)s) WHERE NOT r.id = ANY(%(ids)s) "
            "GROUP BY r.id ORDER BY apart, r.id LIMIT %(n)s",
            {"lon": [s.lon for s in q], "lat": [s.lat for s in q],
             "at": [s.reported_at for s in q], "w": self.window,
             "now": self.now, "m": CONTEXT_M,
             "deg": 1.5 * CONTEXT_M / _M_PER_DEG, "n": CONTEXT_MAX,
             "ids": [s.id for s in q if s.id is not None]}).fetchall()

        def traced(r: Any) -> bool:  # a traced report given by place and time
            return any(abs((r["reported_at"] - s.reported_at).total_seconds()) < 60
                       and _metres(s.lon, s.lat, float(r["lon"]), float(r["lat"])) < PASS_M
                       for s in q)

        self.spills += [Spill(int(r["id"]), float(r["lon"]), float(r["lat"]), r["reported_at"],
                              r["road_id"], r["source"])
                        for r in sorted(rows, key=lambda r: (r["reported_at"], r["id"]))
                        if not traced(r)]

    def _graph(self) -> Graph:
        if self.graph is None:
            self.graph = road_graph(self.conn, "drive")
        return self.graph

    def solve(self) -> SpillTrace:
        """Gather every source's passes, read each anchor's trip, score; returns ``self``."""
        started = time.perf_counter()
        plates = self._plates()
        if self.context:
            self._context()
        for k, s in enumerate(self.spills):
            self._track_passes(k, s)
        self.timings["tracks_s"] = time.perf_counter() - started
        t = time.perf_counter()
        for k, s in enumerate(self.spills[:self.traced]):
            self._checkpoint_hits(k, s, plates)
            self._waybills(k, s)
        self._camera_passes()
        self.timings["records_s"] = time.perf_counter() - t
        t = time.perf_counter()
        anchors = sorted({(truck, p.at) for k, truck, p in self.raw
                          if p.at is not None and k < self.traced})
        trips = self._trips(anchors)
        self.timings["trips_s"] = time.perf_counter() - t
        by_truck: dict[int, list[tuple[int, Pass]]] = {}
        for k, truck, p in self.raw:
            by_truck.setdefault(truck, []).append((k, p))
        times = {k: (s.reported_at, s.source) for k, s in enumerate(self.spills)}
        hits: dict[int, list[dict[str, Any]]] = {}
        for h in self.hits:
            hits.setdefault(h["truck_id"], []).append(h)
        found: dict[tuple[int, Any], Suspect] = {}
        for (truck, at), trip in zip(anchors, trips, strict=True):
            sus = Suspect(truck, loaded=trip["loaded"],
                          construction_site_id=trip["construction_site_id"],
                          disposal_site_id=trip["disposal_site_id"],
                          waybill_id=trip["waybill_id"], entry_id=trip["entry_id"],
                          stretch=trip["stretch"], flags=list(trip["flags"]),
                          dump=trip.get("dump"),
                          overloaded=trip["overloaded"], window_s=self.window.total_seconds(),
                          traced=self.traced)
            own = [(k, p) for k, p in by_truck[truck] if p.at == at]
            for k, p in own:
                sus.passes[k] = p
            lo, hi = trip["stretch"] if trip["stretch"] else (None, None)
            for k, p in by_truck[truck]:
                if k in sus.passes or p.at is None:
                    continue
                inside = ((lo is None or p.at >= lo) and (hi is None or p.at <= hi)
                          if trip["stretch"] else abs((p.at - at).total_seconds()) <= 3600)
                if inside:
                    sus.passes[k] = p
            sus.route = bool(self.routes.get(truck, set()) & set(sus.passes))
            for h in hits.get(truck, []):
                hp = sus.passes.get(h["report"])
                if hp is None or hp.at is None:
                    continue
                slack = h["distance_m"] / (CHECKPOINT_KMH / 3.6) + CHECKPOINT_SLACK_S
                if abs((h["at"] - hp.at).total_seconds()) <= slack:
                    sus.checkpoints.append(
                        {**h, "side": "downstream" if h["at"] >= hp.at else "upstream"})
            sus.rescore(times)
            key = (truck, trip["stretch"][0] if trip["stretch"] and trip["loaded"] else at)
            old = found.get(key)
            if old is None or (sus.asked(), sus.score) > (old.asked(), old.score):
                found[key] = sus
        names = {int(r["id"]): (r["plate_number"], r["company"]) for r in self.conn.execute(
            "SELECT t.id, t.plate_number, c.name AS company FROM onemap.truck t "
            "LEFT JOIN onemap.truck_company c ON c.id = t.company_id WHERE t.id = ANY(%s)",
            (sorted({t for t, _ in found}),))}
        for sus in found.values():
            sus.plate, sus.company = names.get(sus.truck_id, (None, None))
        self.suspects = list(found.values())
        self.timings["total_s"] = time.perf_counter() - started
        return self

    def ranked(self, top: int = TOP, *, first_only: bool = False) -> list[Suspect]:
        """The suspects, best first (ties: the nearer pass, then the truck id); one per
        truck (its best trip); with ``first_only``, trips that passed the first report
        (the others support it)."""
        order = sorted((s for s in self.suspects if not first_only or 0 in s.passes),
                       key=lambda s: (-s.score, -s.parts.get("near", 0.0), s.truck_id))
        out: list[Suspect] = []
        trucks: set[int] = set()
        for s in order:
            if s.truck_id not in trucks:
                trucks.add(s.truck_id)
                out.append(s)
        return out[:top]


def road_m(g: Graph, points: np.ndarray, spot: np.ndarray, *, to_spot: bool,
           limit: float = np.inf) -> np.ndarray:
    """Road distances (m) from each point to the spot (``to_spot``) or from the spot to
    each point, on the drive graph (one-way rows kept).

    Each point and the spot stand on their nearest edge (reached straight, at right
    angles); the way runs along the edge to one of its ends, between ends on the graph,
    and along the other edge — or directly along one edge both stand on, in a direction
    the edge may be travelled.
    """
    lon = np.r_[points[:, 0], spot[0]]
    lat = np.r_[points[:, 1], spot[1]]
    edge, frac, off = g.nearest_edge(lon.tolist(), lat.tolist())
    length = g.length[edge]
    src, dst = g.source[edge], g.target[edge]
    fwd, back = g.forward[edge], g.backward[edge]
    n = len(points)
    # leaving each point's edge: to its target (forward) or its source (backward)
    leave = [(dst, np.where(fwd, (1 - frac) * length, np.inf)),
             (src, np.where(back, frac * length, np.inf))]
    # entering each point's edge: from its source (forward) or target (backward)
    enter = [(src, np.where(fwd, frac * length, np.inf)),
             (dst, np.where(back, (1 - frac) * length, np.inf))]
    out = np.full(n, np.inf)
    if to_spot:  # points → spot: leave the point's edge, enter the spot's
        for (s_node, s_cost) in enter:
            d = g.distances_to([int(s_node[n])], by_index=True, limit=limit)[0]
            for (p_node, p_cost) in leave:
                out = np.minimum(out, p_cost[:n] + d[p_node[:n]] + s_cost[n])
    else:  # spot → points: leave the spot's edge, enter the point's
        for (s_node, s_cost) in leave:
            d = g.distances([int(s_node[n])], by_index=True, limit=limit)[0]
            for (p_node, p_cost) in enter:
                out = np.minimum(out, s_cost[n] + d[p_node[:n]] + p_cost[:n])
    same = edge[:n] == edge[n]
    along = (frac[n] - frac[:n]) if to_spot else (frac[:n] - frac[n])
    ok = np.where(along >= 0, fwd[:n], back[:n])
    out = np.where(same & ok, np.minimum(out, np.abs(along) * length[:n]), out)
    return np.asarray(out + off[:n] + off[n])


def load_spills(conn: psycopg.Connection[Any], ids: Sequence[int]) -> list[Spill]:
    """The spill reports by id, as the caller may see them.

    Raises
    ------
    SpillTraceError
        Naming ``report_ids`` for an id the caller cannot see (or that does not exist).
    """
    rows = conn.execute(
        "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, reported_at, road_id, source "
        "FROM onemap.spill_report WHERE id = ANY(%s) ORDER BY reported_at, id",
        (list(ids),)).fetchall()
    missing = sorted({int(i) for i in ids} - {int(r["id"]) for r in rows})
    if missing:
        raise SpillTraceError("report_ids", f"no spill report with id {missing[0]} / 无此遗撒记录")
    return [Spill(int(r["id"]), float(r["lon"]), float(r["lat"]), r["reported_at"],
                  r["road_id"], r["source"]) for r in rows]


__all__ = ["MAX_WINDOW_H", "PASS_M", "WINDOW_H", "Pass", "Spill", "SpillTrace",
           "SpillTraceError", "Suspect", "blanked", "cover_weight", "load_spills", "road_m"]
