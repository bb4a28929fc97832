"""Refuse buildings, transfer stations, treatment plants and a year of loads.

Refuse buildings (垃圾楼) stand at street corners, roughly one per
1,500–3,000 households, placed so that residential buildings reach one
within ``WALK_REACH_M`` walking along the streets — except in a planted gap
or two, an area where no site could be had. Each residential building takes
its refuse to the nearest refuse building by walking distance (from its door
along its compound's footpaths and out through a gate, ``democity/footpaths.py``,
or, outside a compound, straight to the street); refuse
buildings deliver each stream to its nearest transfer station (转运站),
transfer stations to the nearest working treatment plant (处理厂) of their
stream outside the city.

Daily loads follow the residents served: 1 kg per person and day
(``truth.refuse_demand``), a little more at weekends and in summer, less over
the Spring Festival, with noise; a few refuse buildings run close to their
capacity. Residents sort into four streams (``STREAM_SHARE``: other 56 %,
kitchen 24 %, recyclables 19.5 %, hazardous 0.5 %, each building a little
different; more parcels after 11 November). A refuse building weighs each
stream; each stream has its own transfer stations (a kitchen-waste station,
a recyclables sorting centre, a hazardous-waste store) and plants (an
incinerator and a landfill for the other waste). Loads are read at 21:00
Beijing time each day (tonnes so far that day) and hourly over the last day.
One other-waste station runs tight (its peak days overflow), the incinerator
stops for five days of planned maintenance (the landfill takes its refuse)
and a kitchen-waste station runs at half capacity for two days after a
compactor breakdown (``refuse_facility_outage``); the days a station's
reading exceeds its capacity of the day are ``truth.refuse_overflow``. Who
walks where, the gaps and the expected loads are in ``truth``.

Planners' candidate sites (``refuse_candidate_site``) are street corners on
vacant or public land, about two per refuse building, none in a planted gap
but one plot per planted gap that has since come free; the best one and two
to add for coverage, found by enumeration, are ``truth.refuse_placement_case``.

The city ends at a fixed reference time, but the maps show *today's* load:
:func:`replay_today` (run by ``onemap setup`` for the demo city) replays the
last synthetic day's hourly readings on the current local day, up to now.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import psycopg
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from democity.context import METRIC_EPSG, REFERENCE_TIME, CityContext
from democity.writer import to_ewkb_hex
from spatial import holidays
from spatial.db import fetch_tuples

LOGGER = logging.getLogger(__name__)

#: A household should reach a refuse building within this walk (m).
WALK_REACH_M = 500.0
#: Sites are kept this far (straight line, m) from the centre of a planted gap.
GAP_RADIUS_M = 600.0
#: A new refuse building is only built if it brings this many households within reach.
MIN_SITE_HOUSEHOLDS = 100.0
#: Candidate sites keep this far from refuse buildings and from each other (m, straight).
CANDIDATE_SPACING_M = 200.0
#: From the street corner to the refuse building's door (m).
SITE_ACCESS_M = 12.0
KG_PER_PERSON_DAY = 1.0
BEIJING = timedelta(hours=8)
#: Load on the three days after the Spring Festival (everyone back, the clear-out).
AFTER_FESTIVAL = 1.15
#: Trucks reach a road from a facility off it this much longer than straight.
HAUL_DETOUR = 1.3
#: The planted tight transfer station's capacity against its mean day: peak days overflow.
TIGHT_CAPACITY = 1.04
#: The four streams (垃圾分类) and their mean shares of a day's refuse by weight.
STREAMS = ("other", "kitchen", "recyclable", "hazardous")
STREAM_SHARE = np.array([0.56, 0.24, 0.195, 0.005])
#: Stations of a stream per other-waste station (at least one each).
STATIONS_PER_OTHER = {"kitchen": 0.5, "recyclable": 0.5, "hazardous": 0.0}
STATION_NAME = {"other": "垃圾转运站", "kitchen": "厨余垃圾中转站",
                "recyclable": "再生资源分拣中心", "hazardous": "有害垃圾暂存点"}
#: A station's least capacity and the step it is rounded up to (t/day).
STATION_FLOOR = {"other": (30.0, 10.0), "kitchen": (10.0, 5.0), "recyclable": (10.0, 5.0),
                 "hazardous": (1.0, 0.5)}
#: Plants per stream: name, treatment and the side of the city (east +x, north +y).
PLANTS = {"other": [("东郊生活垃圾焚烧厂", "incineration", (1, 0)),
                    ("南郊生活垃圾卫生填埋场", "landfill", (0, -1))],
          "kitchen": [("北郊厨余垃圾处理厂", "kitchen_waste", (0, 1))],
          "recyclable": [("西郊再生资源利用中心", "recycling", (-1, 0))],
          "hazardous": [("北京市危险废物处置中心", "hazardous", (1, 1))]}
#: A plant's least capacity (t/day) by stream.
PLANT_FLOOR = {"other": 500.0, "kitchen": 200.0, "recyclable": 200.0, "hazardous": 20.0}
#: Outages: stream, which facility (its first plant, or its busiest station), first and
#: last day, capacity factor, reason, note.
OUTAGES = (
    ("other", "plant", date(2026, 4, 20), date(2026, 4, 24), 0.0, "maintenance",
     "焚烧炉年度计划检修 / annual planned maintenance of the incinerator"),
    ("kitchen", "station", date(2026, 9, 8), date(2026, 9, 9), 0.5, "breakdown",
     "压缩机故障，半负荷运行 / compactor failure, at half capacity"),
)


class Walk:
    """Walking distances on the walking graph, from sites at graph nodes to buildings.

    A building with a door path (inside a compound, ``democity/footpaths.py``)
    starts its walk at its door and leaves through a gate; any other building
    at its footprint's centroid, straight to the nearest road edge (footpaths
    left out) and along it to one of its ends.

    Parameters
    ----------
    graph : networkx.Graph
        The walking graph (``xy`` on nodes, ``length`` and ``geometry`` on
        edges; road edges and nodes ``kind = "road"``, if marked).
    footprints : array of shapely geometries
        Buildings to reach.
    doors : numpy.ndarray, optional
        ``(n, 2)`` each building's door point (a node of ``graph``), ``nan``
        where it has none.
    """

    def __init__(self, graph: nx.Graph, footprints: np.ndarray,
                 doors: np.ndarray | None = None) -> None:
        self.nodes = np.array(sorted(graph.nodes), dtype=np.int64)
        index = {int(n): i for i, n in enumerate(self.nodes)}
        self.xy = np.array([graph.nodes[int(n)]["xy"] for n in self.nodes], float)
        #: Nodes of the road graph itself (street corners and ends), where sites stand.
        self.road_node = np.array([graph.nodes[int(n)].get("kind", "road") == "road"
                                   for n in self.nodes], dtype=bool)
        u, v, w, geoms, road = [], [], [], [], []
        for a, b, d in sorted(graph.edges(data=True), key=lambda e: (min(e[0], e[1]),
                                                                     max(e[0], e[1]))):
            u.append(index[a])
            v.append(index[b])
            w.append(float(d.get("length") or d["geometry"].length))
            geoms.append(d["geometry"])
            road.append(d.get("kind", "road") == "road")
        n = len(self.nodes)
        self.matrix = coo_matrix((w + w, (u + v, v + u)), shape=(n, n)).tocsr()
        # Each building's way to the street: nearest road edge, and the walk to its two ends.
        on_road = np.flatnonzero(road)
        lines = np.asarray(geoms, dtype=object)[on_road]
        tree = shapely.STRtree(lines)
        self.home_xy = shapely.get_coordinates(shapely.centroid(footprints))
        homes = shapely.points(self.home_xy)
        near = tree.query_nearest(homes, all_matches=False, return_distance=True)
        edge = np.empty(len(footprints), int)
        edge[near[0][0]] = near[0][1]
        self.perp = np.empty(len(footprints))
        self.perp[near[0][0]] = near[1]
        line = lines[edge]
        at = shapely.line_locate_point(line, homes)
        start = shapely.get_coordinates(shapely.get_point(line, 0))
        head = np.array(u)[on_road][edge]
        tail = np.array(v)[on_road][edge]
        # The edge's geometry may run from v to u.
        flip = np.hypot(*(start - self.xy[head]).T) > np.hypot(*(start - self.xy[tail]).T)
        self.a = np.where(flip, tail, head)
        self.b = np.where(flip, head, tail)
        self.to_a = np.asarray(at, dtype=float)
        self.to_b = np.asarray(shapely.length(line) - at, dtype=float)
        if doors is not None:
            has = np.isfinite(doors).all(axis=1)
            key = {(float(x), float(y)): i for i, (x, y) in enumerate(self.xy.tolist())}
            door = np.array([key[(float(x), float(y))] for x, y in doors[has].tolist()],
                            dtype=np.int64)
            self.a[has] = door
            self.b[has] = door
            self.perp[has] = 0.0
            self.to_a[has] = 0.0
            self.to_b[has] = 0.0

    def from_sites(self, sites: np.ndarray, limit: float = np.inf) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """Walk (m) from each building to the nearest site, and which site (index)."""
        if len(sites) == 0:
            inf = np.full(len(self.perp), np.inf)
            return inf, np.full(len(self.perp), -1)
        dist, _, src = dijkstra(self.matrix, indices=sites, min_only=True, limit=limit,
                                return_predecessors=True)
        via_a = self.to_a + dist[self.a]
        via_b = self.to_b + dist[self.b]
        walk = self.perp + np.minimum(via_a, via_b) + SITE_ACCESS_M
        which_node = np.where(via_a <= via_b, src[self.a], src[self.b])
        lookup = np.full(len(self.nodes), -1)
        lookup[sites] = np.arange(len(sites))
        which = np.where(which_node >= 0, lookup[np.maximum(which_node, 0)], -1)
        lost = ~np.isfinite(walk) | (which < 0)
        if lost.any() and np.isinf(limit):
            # Off the connected street network: the nearest site as the crow flies, detoured.
            d = np.hypot(*(self.home_xy[lost][:, None] - self.xy[sites][None]).transpose(2, 0, 1))
            which[lost] = np.argmin(d, axis=1)
            walk[lost] = 1.4 * d.min(axis=1) + SITE_ACCESS_M
        return walk, which


    def from_node(self, site: int, limit: float) -> np.ndarray:
        """Walk (m) from each building to one site, inf beyond ``limit``."""
        dist = dijkstra(self.matrix, indices=int(site), limit=limit)
        return np.asarray(self.perp + np.minimum(self.to_a + dist[self.a],
                                                 self.to_b + dist[self.b]) + SITE_ACCESS_M)


def _kmeans(rng: np.random.Generator, xy: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    centres = xy[rng.choice(len(xy), size=k, replace=False, p=w / w.sum())]
    for _ in range(12):
        label = np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            m = label == j
            if m.any():
                centres[j] = np.average(xy[m], axis=0, weights=w[m] + 1e-9)
    return centres


def place_refuse_buildings(ctx: CityContext, walk: Walk, homes: pd.DataFrame
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sites (indices of graph nodes) and the planted gap centres."""
    rng = ctx.rng("refuse.sites")
    hh = homes["households"].to_numpy(float)
    xy = homes[["cx", "cy"]].to_numpy()
    total = hh.sum()
    n_gaps = 1 if total < 20_000 else 2 + int(total // 250_000)
    gaps: list[np.ndarray] = []
    # Gaps open towards the fringe, where sites are hardest to find.
    fringe = np.hypot(*(xy - np.average(xy, axis=0, weights=hh)).T) ** 2
    for _ in range(n_gaps):
        far = np.ones(len(xy), bool)
        for g in gaps:
            far &= np.hypot(*(xy - g).T) > 3 * GAP_RADIUS_M
        if not far.any():
            break
        p = hh * far * fringe
        gaps.append(xy[rng.choice(len(xy), p=p / p.sum())].copy())
    allowed = walk.road_node.copy()
    for g in gaps:
        allowed &= np.hypot(*(walk.xy - g).T) > GAP_RADIUS_M
    allowed_idx = np.flatnonzero(allowed)
    node_tree = shapely.STRtree(shapely.points(walk.xy[allowed_idx]))
    k0 = max(1, round(total / 2200))
    centres = _kmeans(rng, xy, hh, min(k0, len(xy)))
    snapped = node_tree.query_nearest(shapely.points(centres), all_matches=False)[1]
    sites = sorted({int(allowed_idx[i]) for i in snapped})
    # Fill: while a building that could be served is not, add the site near it
    # that brings the most uncovered households within reach.
    hopeless = np.zeros(len(xy), bool)
    dist, _ = walk.from_sites(np.array(sites), limit=4 * WALK_REACH_M)
    for _ in range(10 * k0 + 200):
        open_ = (dist > WALK_REACH_M) & ~hopeless
        if not open_.any():
            break
        worst = int(np.argmax(np.where(open_, hh, -1)))
        reach = _node_walk(walk, worst, WALK_REACH_M)
        cands = allowed_idx[reach[allowed_idx] <= WALK_REACH_M - SITE_ACCESS_M - 30.0]
        if cands.size == 0:
            hopeless[worst] = True
            continue
        best, gain, best_walk = -1, -1.0, dist
        for c in cands[np.argsort(reach[cands])][:25]:
            d = walk.from_node(int(c), WALK_REACH_M)
            got = float(hh[open_ & (d <= WALK_REACH_M)].sum())
            if got > gain:
                best, gain, best_walk = int(c), got, d
        if gain < MIN_SITE_HOUSEHOLDS:
            # Too few homes around to justify a site: this corner stays unserved.
            hopeless |= open_ & (np.hypot(*(xy - xy[worst]).T) < 300.0)
            continue
        sites.append(best)
        dist = np.minimum(dist, best_walk)
    return np.array(sorted(set(sites)), dtype=np.int64), gaps


def _node_walk(walk: Walk, building: int, limit: float) -> np.ndarray:
    """Walk from one building to every graph node (m)."""
    da = dijkstra(walk.matrix, indices=int(walk.a[building]), limit=limit)
    db = dijkstra(walk.matrix, indices=int(walk.b[building]), limit=limit)
    return np.asarray(walk.perp[building] + np.minimum(da + walk.to_a[building],
                                                       db + walk.to_b[building]))


def _daily_factor(rng: np.random.Generator, days: list[date], n: int) -> np.ndarray:
    """Per facility and day: weekday, season, the holidays and noise; mean 1.

    Days off (weekends not worked, ``spatial/holidays.py``) a little more; the
    Spring Festival 0.75 (Beijing empties out), the three days after it
    :data:`AFTER_FESTIVAL` (everyone back, the clear-out); National Day 0.9.
    """
    doy = np.array([d.timetuple().tm_yday for d in days], float)
    off = np.array([holidays.is_day_off(d) for d in days])
    name = [holidays.holiday(d) for d in days]
    festival = np.array([h == "spring_festival" for h in name])
    national = np.array([h == "national_day" for h in name])
    after = np.zeros(len(days), bool)
    for i in range(1, len(days)):
        if festival[i - 1] and not festival[i]:
            after[i:i + 3] = True
    common = (np.where(off, 1.06, 0.98) * (1 + 0.08 * np.sin(2 * np.pi * (doy - 110) / 365))
              * np.where(festival, 0.75, 1.0) * np.where(national, 0.9, 1.0)
              * np.where(after, AFTER_FESTIVAL, 1.0))
    common /= common.mean()
    return common[None, :] * rng.normal(1.0, 0.06, (n, len(days))).clip(0.7, 1.3)


def _stream_shares(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each refuse building's shares of the four streams (rows sum to 1), around
    :data:`STREAM_SHARE`: some neighbourhoods sort better than others."""
    return rng.dirichlet(STREAM_SHARE * 400.0, size=n)


def _stream_factor(days: list[date]) -> np.ndarray:
    """Per stream and day, on top of the common pattern (mean 1 per stream): more
    recyclables (parcels) in the week after 11 November (双十一)."""
    out = np.ones((len(STREAMS), len(days)))
    for j, d in enumerate(days):
        if d.month == 11 and 12 <= d.day <= 18:
            out[STREAMS.index("recyclable"), j] = 1.35
    return out / out.mean(axis=1, keepdims=True)


def road_km(graph: nx.Graph, a_xy: np.ndarray, b_xy: np.ndarray) -> np.ndarray:
    """Truck distances (km) on the road graph from each point of ``a_xy`` to each of ``b_xy``.

    Each point reaches its nearest road node straight, ``HAUL_DETOUR`` times longer.
    """
    nodes = np.array(sorted(graph.nodes), dtype=np.int64)
    index = {int(n): i for i, n in enumerate(nodes)}
    xy = np.array([graph.nodes[int(n)]["xy"] for n in nodes], float)
    u, v, w = [], [], []
    for x, y, d in graph.edges(data=True):
        u.append(index[x])
        v.append(index[y])
        w.append(float(d.get("length") or d["geometry"].length))
    m = coo_matrix((w + w, (u + v, v + u)), shape=(len(nodes), len(nodes))).tocsr()
    tree = cKDTree(xy)
    da, na = tree.query(a_xy)
    db, nb = tree.query(b_xy)
    dist = np.atleast_2d(dijkstra(m, directed=False, indices=nb))  # b × all nodes
    return (HAUL_DETOUR * da[:, None] + dist[:, na].T + HAUL_DETOUR * db[None, :]) / 1000.0


#: Share of a day's refuse delivered by each hour 06:00..21:00 (Beijing time), cumulative.
HOURLY = np.cumsum([0.02, 0.10, 0.14, 0.08, 0.05, 0.04, 0.04, 0.04, 0.04, 0.05, 0.06, 0.08,
                    0.10, 0.09, 0.04, 0.03])


def load_rows(ids: np.ndarray, streams: list[str], daily: np.ndarray, days: list[date]
              ) -> Iterator[tuple[Any, ...]]:
    """Readings (facility, time, stream, tonnes so far that day): 21:00 every day, hourly
    on the last day; a row of ``daily`` per facility and stream."""
    at21 = [datetime(d.year, d.month, d.day, 21, tzinfo=REFERENCE_TIME.tzinfo) - BEIJING
            for d in days]
    last = days[-1]
    hours = [datetime(last.year, last.month, last.day, h, tzinfo=REFERENCE_TIME.tzinfo)
             - BEIJING for h in range(6, 22)]
    frac = HOURLY / HOURLY[-1]
    for i, (fid, stream) in enumerate(zip(ids.tolist(), streams, strict=True)):
        row = np.round(daily[i], 2)
        for j in range(len(days) - 1):
            yield fid, at21[j], stream, float(row[j])
        for h, f in zip(hours, frac, strict=True):
            yield fid, h, stream, round(float(daily[i, -1] * f), 2)


def build(ctx: CityContext) -> None:
    """Place refuse facilities, write a year of loads and the truth.

    Parameters
    ----------
    ctx : CityContext
        Needs ``graphs["road"]``, ``frames["building"]``,
        ``frames["household_summary"]`` and ``frames["street_office"]``.
    """
    rng = ctx.rng("refuse.facilities")
    summary = ctx.frames["household_summary"]
    building = ctx.frames["building"]
    homes = building[["id", "geometry"]].merge(
        summary[["building_id", "households", "residents"]],
        left_on="id", right_on="building_id")
    homes = homes[homes["households"] > 0].sort_values("id").reset_index(drop=True)
    footprints = np.asarray(homes.geometry.values, dtype=object)
    centre = shapely.get_coordinates(shapely.centroid(footprints))
    homes["cx"], homes["cy"] = centre[:, 0], centre[:, 1]
    graph: nx.Graph = ctx.graphs.get("walk", ctx.graphs["road"])
    doors = homes[["id"]].merge(ctx.frames["door"], how="left", left_on="id",
                                right_on="building_id")[["x", "y"]].to_numpy(float) \
        if "door" in ctx.frames else None
    with ctx.step("refuse facilities", 3) as task:
        walk = Walk(graph, footprints, doors)
        sites, gaps = place_refuse_buildings(ctx, walk, homes)
        dist, which = walk.from_sites(sites)
        task.advance()
        residents = homes["residents"].to_numpy(float)
        households = homes["households"].to_numpy()
        n_rb = len(sites)
        served_res = np.bincount(which[which >= 0], weights=residents[which >= 0],
                                 minlength=n_rb)
        served_hh = np.bincount(which[which >= 0], weights=households[which >= 0],
                                minlength=n_rb)
        expected_rb = served_res * KG_PER_PERSON_DAY / 1000.0
        # A few of the busier ones run close to capacity.
        near = np.zeros(n_rb, bool)
        busy = np.flatnonzero(expected_rb >= 2.0)
        if busy.size == 0:
            busy = np.array([int(np.argmax(expected_rb))])
        near[rng.choice(busy, size=max(1, round(0.12 * busy.size)), replace=False)] = True
        cap_rb = np.where(near, np.round(expected_rb / rng.uniform(0.92, 0.98, n_rb), 2),
                          np.maximum(2.5, np.ceil(expected_rb * rng.uniform(1.3, 1.8, n_rb)
                                                  / 2.5) * 2.5))
        rb_xy = _door(walk.xy[sites], centre, rng, walk.xy[walk.road_node])

        # Each stream's stations, then its plants outside the city.
        n_ts = min(n_rb, max(1, round(math.sqrt(households.sum()) / 60)))
        share = _stream_shares(rng, n_rb)
        expected_s = expected_rb[:, None] * share                    # buildings × streams
        x0, y0, x1, y1 = shapely.total_bounds(footprints)
        chain = []  # per stream: station positions, each building's station, capacities
        for s, stream in enumerate(STREAMS):
            n = n_ts if stream == "other" else max(1, round(n_ts * STATIONS_PER_OTHER[stream]))
            n = min(n, n_rb)
            xy = _kmeans(rng, rb_xy, expected_s[:, s] + 1e-6, n)
            # each refuse building to the stream's nearest station by road
            of = np.argmin(road_km(ctx.graphs["road"], rb_xy, xy), axis=1)
            expected = np.bincount(of, weights=expected_s[:, s], minlength=n)
            floor, step = STATION_FLOOR[stream]
            cap = np.maximum(floor, np.ceil(expected * rng.uniform(1.3, 1.6, n) / step) * step)
            if stream == "other" and n > 1:
                # one station runs tight: its peak days overflow (truth.refuse_overflow)
                tight = int(np.argmax(expected))
                cap[tight] = np.ceil(expected[tight] * TIGHT_CAPACITY * 10) / 10
            chain.append((xy, of, expected, cap))
        plant_stream, plant_name, plant_treat, tp_xy_l, cap_tp_l = [], [], [], [], []
        for s, stream in enumerate(STREAMS):
            total = float(expected_s[:, s].sum())
            for name, treatment, side in PLANTS[stream]:
                dx, dy = side
                far = rng.uniform(1500, 3000)
                px = (x0 + x1) / 2 if dx == 0 else (x1 + far if dx > 0 else x0 - far)
                py = (y0 + y1) / 2 if dy == 0 else (y1 + far if dy > 0 else y0 - far)
                plant_stream.append(stream)
                plant_name.append(name)
                plant_treat.append(treatment)
                tp_xy_l.append((px, py))
                cap_tp_l.append(max(PLANT_FLOOR[stream], math.ceil(total * 1.5 / 10) * 10))
        tp_xy = np.array(tp_xy_l)
        cap_tp = np.array(cap_tp_l)
        n_tp = len(tp_xy)
        n_st = [len(c[0]) for c in chain]
        ts_xy = np.vstack([c[0] for c in chain])
        cap_ts = np.concatenate([c[3] for c in chain])
        ts_stream = [st for st, n in zip(STREAMS, n_st, strict=True) for _ in range(n)]
        first_ts = np.r_[0, np.cumsum(n_st)[:-1]]
        n_all_ts = len(ts_xy)

        ids = ctx.ids.take("refuse_facility", n_rb + n_all_ts + n_tp)
        rb_ids, ts_ids, tp_ids = ids[:n_rb], ids[n_rb:n_rb + n_all_ts], ids[n_rb + n_all_ts:]
        so_of = _street_office(ctx, np.vstack([rb_xy, ts_xy]))
        so_names = ctx.frames["street_office"].set_index("id")["name"]
        seen: dict[tuple[str, int], int] = {}
        ts_names = []
        for stream, so in zip(ts_stream, so_of[n_rb:].tolist(), strict=True):
            k = seen[(stream, so)] = seen.get((stream, so), 0) + 1
            ts_names.append(f"{so_names.get(so, '朝阳').removesuffix('街道')}"
                            f"{STATION_NAME[stream]}{'' if k == 1 else k}")
        facilities = gpd.GeoDataFrame({
            "id": ids,
            "code": [f"HW-{i:05d}" for i in ids],
            "kind": ["refuse_building"] * n_rb + ["transfer_station"] * n_all_ts
            + ["treatment_plant"] * n_tp,
            "treatment": [None] * (n_rb + n_all_ts) + plant_treat,
            "stream": [None] * n_rb + ts_stream + plant_stream,
            "name": _names(ctx, walk.nodes[sites], "垃圾楼") + ts_names + plant_name,
            "operator": [f"{so_names.get(s, '')}环卫所" for s in so_of[:n_rb]]
            + ["朝阳区环境卫生服务中心"] * n_all_ts + ["北京环境卫生工程集团"] * n_tp,
            "capacity_t_per_day": np.round(np.concatenate([cap_rb, cap_ts, cap_tp]), 2),
            "street_office_id": pd.array([*so_of.tolist(), *[None] * n_tp], dtype="Int64"),
        }, geometry=shapely.points(np.vstack([rb_xy, ts_xy, tp_xy])), crs=METRIC_EPSG)
        ctx.writer.copy_frame("refuse_facility", facilities)
        ctx.frames["refuse_facility"] = facilities
        task.advance()

        # A year of loads, per stream; a plant's maintenance and a station's breakdown.
        days = [(REFERENCE_TIME - BEIJING).date() - timedelta(days=k) for k in range(365, 0, -1)]
        factor = np.ones((n_all_ts + n_tp, len(days)))  # capacity factor per station, plant
        outages = []
        for (stream, which_one, first, last, f, reason, note) in OUTAGES:
            s = STREAMS.index(stream)
            where = (n_all_ts + plant_stream.index(stream) if which_one == "plant"
                     else int(first_ts[s]) + int(np.argmax(chain[s][2])))
            if first < days[0] or last > days[-1]:
                continue
            span = [j for j, d in enumerate(days) if first <= d <= last]
            factor[where, span] = f
            outages.append((int(ids[n_rb + where]), first, last, f, reason, note))
        load_rng = ctx.rng("refuse.loads")
        daily_f = _daily_factor(load_rng, days, n_rb)
        daily_rbs = (expected_s[:, :, None] * daily_f[:, None, :]
                     * _stream_factor(days)[None, :, :]
                     * load_rng.normal(1.0, 0.04, (n_rb, len(STREAMS), len(days))).clip(0.85, 1.15))
        daily_ts = np.zeros((n_all_ts, len(days)))
        for s, (_, of, _, _) in enumerate(chain):
            part = daily_ts[first_ts[s]:first_ts[s] + n_st[s]]
            np.add.at(part, of, daily_rbs[:, s, :])
        daily_ts *= load_rng.normal(1.0, 0.02, daily_ts.shape)
        # each station to its stream's nearest plant working that day
        plant_km = np.hypot(*(ts_xy[:, None] - tp_xy[None]).transpose(2, 0, 1))
        same = np.array(ts_stream)[:, None] == np.array(plant_stream)[None, :]
        daily_tp = np.zeros((n_tp, len(days)))
        for j in range(len(days)):
            working = factor[n_all_ts:, j] > 0
            km = np.where(same & working[None, :], plant_km, np.inf)
            to = np.argmin(km, axis=1)
            np.add.at(daily_tp[:, j], to, daily_ts[:, j])
        tp_of = np.argmin(np.where(same, plant_km, np.inf), axis=1)
        reading_ids = np.r_[np.repeat(rb_ids, len(STREAMS)), ts_ids, tp_ids]
        reading_streams = [*STREAMS * n_rb, *ts_stream, *plant_stream]
        ctx.writer.copy_rows(
            "refuse_load_reading", ("facility_id", "measured_at", "stream", "load_t"),
            load_rows(reading_ids, reading_streams,
                      np.vstack([daily_rbs.reshape(n_rb * len(STREAMS), -1), daily_ts,
                                 daily_tp]), days))
        ctx.writer.copy_rows("refuse_facility_outage", (
            "facility_id", "first_day", "last_day", "capacity_factor", "reason", "note"),
            outages)
        cap_day = cap_ts[:, None] * factor[:n_all_ts]
        over = np.round(daily_ts, 2) > cap_day + 1e-9
        ctx.writer.copy_rows("refuse_overflow", (
            "facility_id", "day", "load_t", "capacity_t", "excess_t", "cause"), [
            (int(ts_ids[i]), days[j], round(float(daily_ts[i, j]), 2),
             round(float(cap_day[i, j]), 2),
             round(round(float(daily_ts[i, j]), 2) - round(float(cap_day[i, j]), 2), 2),
             "outage" if factor[i, j] < 1 else "peak")
            for i, j in zip(*np.nonzero(over), strict=True)], schema="truth")
        task.advance()

    _write_truth(ctx, homes, dist, which, rb_ids, gaps, footprints)
    # A building's downstream is its other-waste station (each stream has its own).
    of_other = chain[0][1]
    served_hh_ts = np.concatenate([np.bincount(c[1], weights=served_hh, minlength=len(c[0]))
                                   for c in chain])
    served_res_ts = np.concatenate([np.bincount(c[1], weights=served_res, minlength=len(c[0]))
                                    for c in chain])
    expected_ts = np.concatenate([c[2] for c in chain])
    ctx.writer.copy_frame("refuse_facility_load", pd.DataFrame({
        "facility_id": ids,
        "kind": facilities["kind"].to_numpy(),
        "downstream_id": pd.array([*ts_ids[of_other], *tp_ids[tp_of], *[None] * n_tp],
                                  dtype="Int64"),
        "served_households": np.concatenate([
            served_hh, served_hh_ts,
            np.bincount(tp_of, weights=served_hh_ts, minlength=n_tp)]).astype(int),
        "served_residents": np.concatenate([
            served_res, served_res_ts,
            np.bincount(tp_of, weights=served_res_ts, minlength=n_tp)]).astype(int),
        "expected_t_per_day": np.concatenate([
            expected_rb, expected_ts, np.bincount(tp_of, weights=expected_ts, minlength=n_tp)]),
        "capacity_t_per_day": np.round(np.concatenate([cap_rb, cap_ts, cap_tp]), 2),
        "near_capacity": np.concatenate([near, np.zeros(n_all_ts + n_tp, bool)]),
    }), schema="truth")
    ctx.truth["refuse"] = {
        "walk_reach_m": WALK_REACH_M, "site_access_m": SITE_ACCESS_M,
        "kg_per_person_day": KG_PER_PERSON_DAY, "refuse_buildings": n_rb,
        "transfer_stations": n_all_ts, "treatment_plants": n_tp,
        "stations_by_stream": dict(zip(STREAMS, n_st, strict=True)),
        "stream_share": dict(zip(STREAMS, STREAM_SHARE.tolist(), strict=True)),
        "outages": len(outages),
        "planted_gaps": len(gaps),
        "households_beyond_walk": int(households[dist > WALK_REACH_M].sum()),
        "after_festival_factor": AFTER_FESTIVAL, "haul_detour": HAUL_DETOUR,
        "tight_station_capacity": TIGHT_CAPACITY,
    }
    _write_candidates(ctx, walk, homes, sites, gaps, dist)


def candidate_sites(rng: np.random.Generator, walk: Walk, homes: pd.DataFrame,
                    sites: np.ndarray, gaps: list[np.ndarray], dist: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Street corners where a refuse building could be built, and which were planted.

    About two per refuse building, among the corners within the residential
    area at least ``CANDIDATE_SPACING_M`` from a refuse building and from
    each other, none inside a planted gap (no land could be had there) —
    except one per planted gap: the corner of the gap that brings the most of
    its households within reach (a plot that has since come free). Those make
    the "add one / add two" optimum known: everywhere else is within reach
    already, so the best additions are the planted plots
    (:func:`placement_cases` checks it by enumeration).

    Returns
    -------
    nodes : numpy.ndarray
        Graph node indices of the candidates.
    planted : numpy.ndarray of bool
    """
    deg = np.asarray((walk.matrix > 0).sum(axis=1)).ravel()
    hh = homes["households"].to_numpy(float)
    xy = homes[["cx", "cy"]].to_numpy()
    x0, y0 = xy.min(axis=0) - 100.0
    x1, y1 = xy.max(axis=0) + 100.0
    ok = walk.road_node & (deg >= 3) & (walk.xy[:, 0] >= x0) & (walk.xy[:, 0] <= x1) \
        & (walk.xy[:, 1] >= y0) & (walk.xy[:, 1] <= y1)
    if len(sites):
        ok &= cKDTree(walk.xy[sites]).query(walk.xy)[0] >= CANDIDATE_SPACING_M
    in_gap = np.zeros(len(walk.xy), bool)
    for g in gaps:
        in_gap |= np.hypot(*(walk.xy - g).T) <= GAP_RADIUS_M
    planted: list[int] = []
    for g in gaps:
        beyond = dist > WALK_REACH_M
        corners = np.flatnonzero(ok & (np.hypot(*(walk.xy - g).T) <= GAP_RADIUS_M))
        best, gain = -1, 0.0
        for c in corners.tolist():
            got = float(hh[beyond & (walk.from_node(c, WALK_REACH_M) <= WALK_REACH_M)].sum())
            if got > gain:
                best, gain = c, got
        if best >= 0:
            planted.append(best)
    pool = np.flatnonzero(ok & ~in_gap)
    pool = pool[rng.permutation(pool.size)]
    want = 2 * max(1, len(sites))
    chosen: list[int] = list(planted)
    tree_xy: list[np.ndarray] = [walk.xy[c] for c in chosen]
    for c in pool.tolist():
        if len(chosen) >= want + len(planted):
            break
        if tree_xy and np.hypot(*(np.array(tree_xy) - walk.xy[c]).T).min() < CANDIDATE_SPACING_M:
            continue
        chosen.append(c)
        tree_xy.append(walk.xy[c])
    nodes = np.array(chosen, dtype=np.int64)
    return nodes, np.isin(nodes, planted)


def placement_cases(walk: Walk, homes: pd.DataFrame, dist: np.ndarray, nodes: np.ndarray,
                    codes: list[str]) -> list[dict[str, Any]]:
    """The best one and two refuse buildings to add for coverage, by enumeration.

    Maximal coverage, existing buildings kept, the candidates ``nodes``, reach
    ``WALK_REACH_M``: every single candidate and every pair of the candidates
    that gain anything is evaluated with this module's own walks. A case is
    recorded only when its optimum is unique.
    """
    hh = homes["households"].to_numpy(float)
    covered = dist <= WALK_REACH_M
    new = np.array([(walk.from_node(int(c), WALK_REACH_M) <= WALK_REACH_M) & ~covered
                    for c in nodes.tolist()]).reshape(len(nodes), len(hh))
    gain = new.astype(float) @ hh
    base = float(hh[covered].sum())
    cases = []
    order = np.argsort(-gain, kind="stable")
    if len(gain) >= 2 and gain[order[0]] > gain[order[1]]:
        cases.append({"k": 1, "site_codes": [codes[int(order[0])]],
                      "households_within": base + float(gain[order[0]]),
                      "households_gained": float(gain[order[0]])})
    useful = np.flatnonzero(gain > 0)
    if useful.size >= 2:
        best: list[tuple[float, int, int]] = []
        for i in range(useful.size):
            for j in range(i + 1, useful.size):
                a, b = int(useful[i]), int(useful[j])
                best.append((float(hh[new[a] | new[b]].sum()), a, b))
        best.sort(key=lambda t: -t[0])
        if len(best) == 1 or best[0][0] > best[1][0]:
            got, a, b = best[0]
            cases.append({"k": 2, "site_codes": sorted([codes[a], codes[b]]),
                          "households_within": base + got, "households_gained": got})
    return cases


def _write_candidates(ctx: CityContext, walk: Walk, homes: pd.DataFrame, sites: np.ndarray,
                      gaps: list[np.ndarray], dist: np.ndarray) -> None:
    rng = ctx.rng("refuse.candidates")
    nodes, planted = candidate_sites(rng, walk, homes, sites, gaps, dist)
    n = len(nodes)
    ids = ctx.ids.take("refuse_candidate_site", n)
    codes = [f"HX-{i:05d}" for i in ids]
    land = np.where(planted, "vacant", rng.choice(["vacant", "public", "green_edge"], n,
                                                  p=[0.4, 0.4, 0.2]))
    names = _names(ctx, walk.nodes[nodes], "垃圾楼备选点")
    ctx.writer.copy_frame("refuse_candidate_site", gpd.GeoDataFrame({
        "id": ids, "code": codes, "name": names, "land": land,
        "capacity_t_per_day": rng.choice([5.0, 7.5, 10.0], n, p=[0.5, 0.3, 0.2]),
        "note": ["腾退空地 — a plot freed in a long-standing gap" if p else None
                 for p in planted.tolist()],
    }, geometry=shapely.points(walk.xy[nodes]), crs=METRIC_EPSG))
    cases = placement_cases(walk, homes, dist, nodes, codes)
    ctx.writer.copy_rows("refuse_placement_case",
                         ("id", "model", "mode", "k", "reach_m", "site_codes",
                          "households_within", "households_gained"),
                         [(i, "coverage", "add", c["k"], WALK_REACH_M, c["site_codes"],
                           int(c["households_within"]), int(c["households_gained"]))
                          for i, c in enumerate(cases, start=1)], schema="truth")
    ctx.truth["refuse"].update({"candidate_sites": n, "planted_candidates": int(planted.sum()),
                                "placement_cases": len(cases)})


def _door(corner: np.ndarray, homes_xy: np.ndarray, rng: np.random.Generator,
          nodes_xy: np.ndarray) -> np.ndarray:
    """Refuse buildings stand a few metres off the corner, towards the homes.

    Never as much as halfway to another node of the road graph, so that the
    corner is the node nearest the stored point: the walk to a refuse
    building (to its corner, then ``SITE_ACCESS_M``) can be measured again
    from what is stored.
    """
    tree = shapely.STRtree(shapely.points(homes_xy))
    near = tree.query_nearest(shapely.points(corner), all_matches=False)[1]
    d = homes_xy[near] - corner
    d /= np.maximum(np.hypot(*d.T), 1e-9)[:, None]
    other = cKDTree(nodes_xy).query(corner, k=2)[0][:, 1]
    off = np.minimum(rng.uniform(8.0, SITE_ACCESS_M, len(corner)), 0.45 * other)
    return corner + d * off[:, None]


def _street_office(ctx: CityContext, xy: np.ndarray) -> np.ndarray:
    so = ctx.frames["street_office"]
    geoms = np.asarray(so.geometry.values, dtype=object)
    tree = shapely.STRtree(geoms)
    near = tree.query_nearest(shapely.points(xy), all_matches=False)
    out = np.full(len(xy), int(so["id"].iloc[0]), dtype=np.int64)
    out[near[0]] = so["id"].to_numpy()[near[1]]
    return out


def _names(ctx: CityContext, nodes: np.ndarray, suffix: str) -> list[str]:
    """Name facilities after a street at their corner: 光华路垃圾楼, 光华路2号垃圾楼…"""
    graph: nx.Graph = ctx.graphs["road"]
    road = ctx.frames["road"]
    road_name = dict(zip(road["id"].astype(int), road["name"].fillna(""), strict=True))
    used: dict[str, int] = {}
    out = []
    for n in nodes.tolist():
        names = sorted(str(road_name.get(int(d["road_id"]), ""))
                       for _, _, d in graph.edges(n, data=True))
        street = next((s for s in names if s), "")
        used[street] = used.get(street, 0) + 1
        k = used[street]
        out.append(f"{street}{suffix}" if k == 1 else f"{street}{k}号{suffix}")
    return out


def _write_truth(ctx: CityContext, homes: pd.DataFrame, dist: np.ndarray, which: np.ndarray,
                 rb_ids: np.ndarray, gaps: list[np.ndarray], footprints: np.ndarray) -> None:
    beyond = dist > WALK_REACH_M
    xy = homes[["cx", "cy"]].to_numpy()
    gap_id = np.full(len(homes), -1)
    if beyond.any():
        idx = np.flatnonzero(beyond)
        g = nx.Graph()
        g.add_nodes_from(idx.tolist())
        tree = shapely.STRtree(shapely.points(xy[idx]))
        pairs = tree.query(shapely.points(xy[idx]), predicate="dwithin", distance=400.0)
        g.add_edges_from(zip(idx[pairs[0]].tolist(), idx[pairs[1]].tolist(), strict=True))
        rows = []
        for k, comp in enumerate(sorted(nx.connected_components(g), key=min), start=1):
            members = np.array(sorted(comp))
            gap_id[members] = k
            hull = shapely.convex_hull(shapely.union_all(footprints[members])).buffer(20.0)
            planted = any(np.hypot(*(xy[members] - c).T).min() < GAP_RADIUS_M for c in gaps)
            rows.append((k, planted, len(members), int(homes["households"].to_numpy()[
                members].sum()), int(homes["residents"].to_numpy()[members].sum()),
                float(dist[members].max()), str(to_ewkb_hex([shapely.MultiPolygon([hull])])[0])))
        ctx.writer.copy_rows("refuse_gap", ("id", "planted", "buildings", "households",
                                            "residents", "max_walk_m", "geom"), rows,
                             schema="truth")
    ctx.writer.copy_frame("refuse_access", pd.DataFrame({
        "building_id": homes["id"].to_numpy(),
        "facility_id": rb_ids[which],
        "households": homes["households"].to_numpy(),
        "residents": homes["residents"].to_numpy(),
        "walk_m": np.round(dist, 1),
        "beyond_walk": beyond,
        "gap_id": pd.Series(gap_id).where(gap_id > 0).astype("Int64").array,
    }), schema="truth")


# The last generated day (the newest local day with readings before the
# reference time), its readings moved by whole days onto today, those not in
# the future; nothing when today is not after it.
_REPLAY_SQL = """
WITH today AS (
    SELECT (%(now)s::timestamptz AT TIME ZONE 'Asia/Shanghai')::date AS day),
last AS (
    SELECT max((r.measured_at AT TIME ZONE 'Asia/Shanghai')::date) AS day
    FROM onemap.refuse_load_reading r
    WHERE r.measured_at < %(reference)s::timestamptz),
moved AS (
    SELECT r.facility_id, r.measured_at + (today.day - last.day) * interval '1 day' AS at,
           r.stream, r.load_t
    FROM onemap.refuse_load_reading r, today, last
    WHERE today.day > last.day
      AND r.measured_at >= (last.day::timestamp AT TIME ZONE 'Asia/Shanghai')
      AND r.measured_at < ((last.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai'))
INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, stream, load_t)
SELECT facility_id, at, stream, load_t FROM moved WHERE at <= %(now)s::timestamptz
ON CONFLICT (facility_id, measured_at, stream) DO NOTHING
"""


def replay_today(conn: psycopg.Connection[Any], now: datetime | None = None) -> int:
    """Give the synthetic city's refuse facilities readings for today (demo only).

    The generated loads end the day before :data:`REFERENCE_TIME`, so the maps,
    which show each facility's newest reading of the current local day, would
    show no load. This copies the last generated day's readings onto the local
    (Beijing) day of ``now``, keeping their times of day and dropping those
    still in the future. Running it again later that day adds the hours
    reached since; on a later day it replays the same generated day onto
    that day. Only for a
    database holding a generated city (a ``truth.generation`` row): it never
    invents readings for a real one.

    Parameters
    ----------
    conn : psycopg.Connection
        Owner connection; the statement is committed when the connection
        autocommits (the caller's transaction otherwise).
    now : datetime, optional
        Timezone-aware; defaults to the database's ``now()``.

    Returns
    -------
    int
        Readings added (0 for a database that holds no generated city).

    Raises
    ------
    ValueError
        If ``now`` has no timezone.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    generated = fetch_tuples(conn, "SELECT to_regclass('truth.generation') IS NOT NULL")[0][0]
    if not generated or not fetch_tuples(
            conn, "SELECT EXISTS (SELECT 1 FROM truth.generation)")[0][0]:
        return 0
    with conn.cursor() as cur:
        cur.execute(_REPLAY_SQL, {"now": now or fetch_tuples(conn, "SELECT now()")[0][0],
                                  "reference": REFERENCE_TIME})
        added = cur.rowcount
    LOGGER.info("replayed %d refuse load readings onto today", added)
    return added
