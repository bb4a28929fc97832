"""Water, drainage, gas and heat networks under the streets (地下管线).

Each utility follows the road graph on its own side of the centreline
(water +3 m, gas −3 m, heat +6 m to the left of a road's canonical direction,
drainage on the centreline), with nodes at the road junctions. Mains run under
expressways, arterials and secondary roads, distribution pipes under branch
roads; only water and drainage enter the alleys, with small pipes. Every
building gets a service line from the nearest pipe of the utility, ending in a
``service_connection`` node that names the building. Segments are split at
every node (taps, valves, manholes), so each segment joins two nodes of its
own network and its ends are those nodes' points.

Valves stand where utilities put them: on the branches of each tee or cross,
a few metres from the junction (all but one or all of them), and on long mains
every 200–450 m; about 7 % cannot be operated. A valve has a node of its own
(kind ``other``), so closing it cuts the network at that node. Drainage flows
towards an outlet by the water; it has no valves.

Utility tunnels (综合管廊) run under the longest main roads, 8 m to one side of
the centreline. Under a tunnel's road, the mains of each utility the tunnel
carries are laid in it (one cabin position per utility, see ``IN_TUNNEL_M``)
instead of in the ground. A pipe segment records its tunnel (``tunnel_id``)
when it is a main of a carried utility under the tunnel's road and at least
half its length lies inside the tunnel's outline (``IN_TUNNEL_SHARE``): the
stretch between two outlets of the tunnel. Service lines, and the short pieces
where a main leaves the tunnel at a junction to join the buried network, stay
unlinked.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

from democity.context import METRIC_EPSG, REFERENCE_TIME, CityContext

LOGGER = logging.getLogger(__name__)

MAIN = ("expressway", "arterial", "secondary")
ALL_CLASSES = (*MAIN, "branch", "alley")


@dataclass(frozen=True)
class Utility:
    """How one utility is laid.

    Attributes
    ----------
    name : str
        ``water``, ``drainage``, ``gas`` or ``heat``.
    prefix : str
        Code prefix (给水 JS, 排水 PS, 燃气 RQ, 热力 RL).
    offset_m : float
        Lateral offset from the road centreline, positive to the left.
    classes : tuple of str
        Road classes the utility runs under.
    diameters : dict
        Road class (or ``service``) → candidate diameters in mm.
    depth_m : tuple of float
        Usual cover depth range.
    """

    name: str
    prefix: str
    offset_m: float
    classes: tuple[str, ...]
    diameters: dict[str, tuple[int, ...]]
    depth_m: tuple[float, float]


UTILITIES: tuple[Utility, ...] = (
    Utility("water", "JS", 3.0, ALL_CLASSES,
            {"expressway": (800, 1000), "arterial": (400, 500, 600), "secondary": (300, 400),
             "branch": (150, 200), "alley": (100,), "service": (50,)}, (1.2, 1.8)),
    Utility("drainage", "PS", 0.0, ALL_CLASSES,
            {"expressway": (1500, 1800), "arterial": (1000, 1200, 1500), "secondary": (600, 800),
             "branch": (400, 500), "alley": (300,), "service": (200,)}, (2.0, 4.5)),
    Utility("gas", "RQ", -3.0, (*MAIN, "branch"),
            {"expressway": (400, 500), "arterial": (300, 400), "secondary": (200, 250),
             "branch": (100, 150), "service": (50,)}, (1.0, 1.5)),
    Utility("heat", "RL", 6.0, (*MAIN, "branch"),
            {"expressway": (700, 800), "arterial": (500, 600, 700), "secondary": (300, 400),
             "branch": (200, 250), "service": (100,)}, (1.5, 2.5)),
)

#: Service lines of gas and heat longer than this are not laid (the building goes without).
MAX_SERVICE_M = 120.0
#: Valves on long mains: at most this far apart.
VALVE_MAX_SPACING_M = 450.0
#: Share of valves that cannot be operated when needed.
INOPERABLE_SHARE = 0.07


@dataclass
class _Edge:
    """A road edge oriented canonically, with the utility's offset line."""

    a: int
    b: int
    road_id: int
    road_class: str
    name: str
    old: bool
    centre: np.ndarray
    line: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    cum: np.ndarray = field(default_factory=lambda: np.empty(0))
    tunnel: int | None = None  # index into the tunnels when the main is laid in one


@dataclass
class _Net:
    """Nodes and segments of one utility under construction."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    building: list[int | None] = field(default_factory=list)
    depth: list[float] = field(default_factory=list)
    seg_from: list[int] = field(default_factory=list)
    seg_to: list[int] = field(default_factory=list)
    seg_coords: list[np.ndarray] = field(default_factory=list)
    seg_attr: list[tuple[str, float, int, str | None, float]] = field(default_factory=list)
    seg_tunnel: list[int | None] = field(default_factory=list)  # tunnel id, once linked
    valves: list[tuple[int, float]] = field(default_factory=list)

    def node(self, xy: np.ndarray, kind: str, depth: float, building: int | None = None) -> int:
        self.x.append(float(xy[0]))
        self.y.append(float(xy[1]))
        self.kind.append(kind)
        self.building.append(building)
        self.depth.append(round(depth, 2))
        return len(self.x) - 1

    def segment(self, a: int, b: int, coords: np.ndarray,
                attr: tuple[str, float, int, str | None, float],
                tunnel: int | None = None) -> None:
        self.seg_from.append(a)
        self.seg_to.append(b)
        self.seg_coords.append(coords)
        self.seg_attr.append(attr)
        self.seg_tunnel.append(tunnel)


def canonical(p: np.ndarray, q: np.ndarray) -> bool:
    """Whether p → q is a road's canonical direction (heading in (−45°, 135°]).

    East-west roads run east and north-south roads run north, so "left" is
    the same side of a road along all its edges.

    Examples
    --------
    >>> canonical(np.array([0.0, 0.0]), np.array([10.0, 1.0]))
    True
    >>> canonical(np.array([0.0, 0.0]), np.array([0.0, -10.0]))
    False
    """
    heading = math.degrees(math.atan2(q[1] - p[1], q[0] - p[0]))
    return -45.0 < heading <= 135.0


def offset_polyline(coords: np.ndarray, distance: float) -> np.ndarray:
    """Offset a polyline sideways, positive to the left, with mitred vertices.

    Examples
    --------
    >>> offset_polyline(np.array([[0.0, 0.0], [10.0, 0.0]]), 3.0).tolist()
    [[0.0, 3.0], [10.0, 3.0]]
    """
    if distance == 0.0:
        return coords.copy()
    d = np.diff(coords, axis=0)
    n = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    vn = np.vstack([n[:1], n[:-1] + n[1:], n[-1:]])
    vn /= np.maximum(np.hypot(vn[:, 0], vn[:, 1]), 1e-9)[:, None]
    # Mitre: scale by 1/cos(half angle), capped so sharp bends do not spike.
    inner = np.vstack([[1.0], np.clip((n[:-1] * vn[1:-1]).sum(axis=1), 0.5, 1.0)[:, None]
                       if len(n) > 1 else np.empty((0, 1)), [1.0]]).ravel()
    return coords + vn * (distance / inner)[:, None]


def meeting_point(rays: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Where offset lines ending at one junction meet (least squares).

    Each ray is (end point, direction) of one offset line; for a crossing of
    two straight roads this is the corner of the two offset lines, for a road
    running straight through it is the mean of the ends.

    Examples
    --------
    >>> rays = [(np.array([0.0, 3.0]), np.array([1.0, 0.0])),
    ...         (np.array([-3.0, 0.0]), np.array([0.0, 1.0]))]
    >>> meeting_point(rays).round(3).tolist()
    [-3.0, 3.0]
    """
    mean = np.mean([p for p, _ in rays], axis=0)
    lhs = 1e-6 * np.eye(2)
    rhs = 1e-6 * mean
    for p, d in rays:
        d = d / max(float(np.hypot(*d)), 1e-9)
        proj = np.eye(2) - np.outer(d, d)
        lhs += proj
        rhs += proj @ p
    point = np.linalg.solve(lhs, rhs)
    # Nearly parallel lines meet far away: keep the node near the junction.
    return point if np.hypot(*(point - mean)) < 15.0 else mean


def polylines(parts: list[np.ndarray]) -> np.ndarray:
    """LineStrings from a list of (n, 2) coordinate arrays of any lengths.

    Examples
    --------
    >>> parts = [np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])]
    >>> [g.length for g in polylines(parts)]
    [5.0, 2.0]
    """
    if not parts:
        return np.empty(0, dtype=object)
    sizes = [len(p) for p in parts]
    return shapely.linestrings(np.vstack(parts), indices=np.repeat(np.arange(len(parts)), sizes))


def cumulative(coords: np.ndarray) -> np.ndarray:
    """Distance along a polyline at each vertex."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])


def point_at(coords: np.ndarray, cum: np.ndarray, t: float) -> np.ndarray:
    """The point ``t`` metres along a polyline (clamped to its ends).

    Examples
    --------
    >>> c = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    >>> point_at(c, cumulative(c), 15.0).tolist()
    [10.0, 5.0]
    """
    i = min(max(int(np.searchsorted(cum, t, side="right")) - 1, 0), len(cum) - 2)
    span = cum[i + 1] - cum[i]
    f = min(max((t - cum[i]) / span, 0.0), 1.0) if span > 0 else 0.0
    return np.asarray(coords[i] + f * (coords[i + 1] - coords[i]))


def cut(coords: np.ndarray, cum: np.ndarray, s: float, e: float) -> np.ndarray:
    """The part of a polyline between ``s`` and ``e`` metres along it."""
    inner = (cum > s) & (cum < e)
    return np.vstack([point_at(coords, cum, s), coords[inner], point_at(coords, cum, e)])


def road_edges(ctx: CityContext) -> list[_Edge]:
    """The road graph's edges, each oriented canonically, ends on its nodes."""
    graph: nx.Graph = ctx.graphs["road"]
    road = ctx.frames["road"].set_index("id")
    old = old_quarter_union(ctx)
    edges = []
    for u, v, data in graph.edges(data=True):
        pu, pv = np.asarray(graph.nodes[u]["xy"], float), np.asarray(graph.nodes[v]["xy"], float)
        a, b, pa, pb = (u, v, pu, pv) if canonical(pu, pv) else (v, u, pv, pu)
        c = np.asarray(shapely.get_coordinates(data["geometry"]), float)
        if np.hypot(*(c[0] - pa)) > np.hypot(*(c[-1] - pa)):
            c = c[::-1]
        c = c.copy()
        c[0], c[-1] = pa, pb
        rid = int(data["road_id"])
        mid = shapely.Point(point_at(c, cumulative(c), cumulative(c)[-1] / 2))
        edges.append(_Edge(int(a), int(b), rid, str(data["road_class"]),
                           str(road.at[rid, "name"]) if rid in road.index else "",
                           bool(old is not None and old.contains(mid)), c))
    return edges


def old_quarter_union(ctx: CityContext) -> Any:
    """The old quarters as one prepared geometry, or None."""
    frame = ctx.frames.get("old_quarter")
    if frame is None or len(frame) == 0:
        return None
    geom = shapely.union_all(np.asarray(frame.geometry.values))
    shapely.prepare(geom)
    return geom


def install_years(rng: np.random.Generator, old: np.ndarray, floor: int) -> np.ndarray:
    """Install years 1960–2024, older in old quarters, some renewed since 2005."""
    n = old.size
    older = 1960 + np.floor(35 * rng.beta(1.5, 2.5, n))
    newer = 1975 + np.floor(49 * rng.beta(2.0, 1.5, n))
    years = np.where(old, older, newer)
    renewed = rng.random(n) < np.where(old, 0.25, 0.08)
    years = np.where(renewed, rng.integers(2005, 2025, n), years)
    return np.clip(years, floor, 2024).astype(int)


def material(utility: str, year: int, diameter: float, service: bool) -> str:
    """Pipe material as a utility of that era would have laid it.

    Examples
    --------
    >>> material("water", 1972, 300, False), material("gas", 2012, 150, False)
    ('grey_cast_iron', 'pe')
    """
    if utility == "water":
        if service:
            return "galvanized_steel" if year < 1998 else "pe"
        if year < 1985:
            return "steel" if diameter >= 800 else "grey_cast_iron"
        if year < 2000:
            return "steel" if diameter >= 800 else ("pvc" if diameter <= 200 else "ductile_iron")
        return "pe" if diameter <= 200 else "ductile_iron"
    if utility == "drainage":
        if service:
            return "pvc" if year >= 1995 else "concrete"
        if year < 1990:
            return "reinforced_concrete" if diameter > 600 else "concrete"
        return "hdpe" if diameter <= 800 else "reinforced_concrete"
    if utility == "gas":
        if year < 1985 and not service:
            return "grey_cast_iron" if diameter <= 150 else "steel"
        return "pe" if year >= 1998 and diameter <= 315 else "steel"
    return "steel_preinsulated" if year >= 1995 else "steel"


def gas_pressure(road_class: str) -> str:
    """Gas pressure class (GB 50028) by where the pipe runs."""
    return {"expressway": "medium_a", "arterial": "medium_a", "secondary": "medium_b"}.get(
        road_class, "low")


def _served(utility: str, buildings: gpd.GeoDataFrame, rng: np.random.Generator) -> np.ndarray:
    """Which buildings take this utility."""
    n = len(buildings)
    if utility in ("water", "drainage"):
        return np.ones(n, bool)
    btype = buildings["building_type"].astype(str).to_numpy()
    old = buildings["old_quarter"].fillna(False).astype(bool).to_numpy()
    housing = buildings["households"].fillna(0).to_numpy() > 0
    ordinary = housing | np.isin(btype, ("public", "commercial"))
    draw = rng.random(n)
    if utility == "gas":
        return ordinary & (~old | (draw < 0.6))
    return ordinary & (~old | (draw < 0.1)) & (btype != "industrial")


def _mark_supplies(net: _Net, junction: dict[int, int], degree: dict[int, int],
                   graph: nx.Graph, edges: list[_Edge], utility: str, ctx: CityContext) -> None:
    """Name where the network is fed (or, for drainage, where it discharges)."""
    if utility == "drainage":
        water = ctx.frames.get("land_use")
        target = None
        if water is not None and len(water):
            w = water[water["kind"] == "water"]
            if len(w):
                target = shapely.union_all(np.asarray(w.geometry.values))
        ids = list(junction)
        pts = shapely.points(np.array([net.x, net.y]).T[[junction[i] for i in ids]])
        if target is not None:
            dist = shapely.distance(pts, target)
        else:  # Beijing falls to the south-east
            dist = -(shapely.get_x(pts) - shapely.get_y(pts))
        net.kind[junction[ids[int(np.argmin(dist))]]] = "outlet"
        return
    kind = {"water": "source", "gas": "regulator_station", "heat": "source"}[utility]
    main_ends = sorted({n for e in edges if e.road_class in MAIN for n in (e.a, e.b)
                        if degree[n] == 1})
    candidates = main_ends or sorted(junction)
    area_km2 = ctx.scale.width_m * ctx.scale.height_m / 1e6
    k = min(len(candidates), max(1, round(area_km2 / 12)))
    xy = np.array([graph.nodes[n]["xy"] for n in candidates], float)
    chosen = [int(np.argmin(xy[:, 0] + xy[:, 1]))]
    while len(chosen) < k:  # spread the feeds apart
        d = np.min(np.hypot(*(xy[:, None, :] - xy[chosen][None, :, :]).transpose(2, 0, 1)), axis=1)
        chosen.append(int(np.argmax(d)))
    for i in chosen:
        net.kind[junction[candidates[i]]] = kind


def build_utility(ctx: CityContext, utility: Utility, all_edges: list[_Edge],
                  buildings: gpd.GeoDataFrame, tunnels: list[Tunnel] | None = None) -> _Net:
    """Lay one utility network: trunk, valves, taps, service lines.

    Under the road of a tunnel that carries the utility, its mains are laid
    in the tunnel (:func:`tunnel_offset`) and linked to it (:func:`link_tunnels`).
    """
    rng = ctx.rng(f"pipelines.{utility.name}")
    graph = nx.Graph()
    for i, e in enumerate(all_edges):
        if e.road_class in utility.classes and e.a != e.b:
            graph.add_edge(e.a, e.b, i=i)
    if graph.number_of_edges() == 0:
        return _Net()
    keep = max(nx.connected_components(graph), key=len)
    edges = [all_edges[d["i"]] for _, _, d in graph.subgraph(keep).edges(data=True)]
    edges.sort(key=lambda e: (e.road_id, e.a, e.b))
    edges = [_Edge(e.a, e.b, e.road_id, e.road_class, e.name, e.old, e.centre) for e in edges]
    carried = [(i, tun) for i, tun in enumerate(tunnels or ()) if utility.name in tun.utilities]
    degree: dict[int, int] = {}
    ends: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for e in edges:
        scale = min(1.0, 0.35 * 4.0 / abs(utility.offset_m)) if (
            e.road_class == "alley" and utility.offset_m) else 1.0
        offset = utility.offset_m * scale
        for i, tun in carried:
            if e.name == tun.road_name and e.road_class == tun.road_class:
                offset = tunnel_offset(e.centre, tun, utility.name)
                e.tunnel = i
                break
        e.line = offset_polyline(e.centre, offset)
        for n, p, q in ((e.a, e.line[0], e.line[1]), (e.b, e.line[-1], e.line[-2])):
            degree[n] = degree.get(n, 0) + 1
            ends.setdefault(n, []).append((p, q - p))
    net = _Net()
    depth_lo, depth_hi = utility.depth_m
    junction = {n: net.node(meeting_point(ends[n]),
                            ("manhole" if utility.name == "drainage" else
                             "end" if degree[n] == 1 else "junction"),
                            rng.uniform(depth_lo, depth_hi))
                for n in sorted(ends)}
    for e in edges:
        e.line[0] = (net.x[junction[e.a]], net.y[junction[e.a]])
        e.line[-1] = (net.x[junction[e.b]], net.y[junction[e.b]])
        e.cum = cumulative(e.line)
    _mark_supplies(net, junction, degree, ctx.graphs["road"], edges, utility.name, ctx)

    # Attributes per road name, so one road keeps one diameter.
    names = sorted({e.name for e in edges})
    pick = {nm: int(k) for nm, k in zip(names, rng.integers(0, 1 << 30, len(names)), strict=True)}
    years = install_years(rng, np.array([e.old for e in edges]),
                          {"gas": 1975, "heat": 1970}.get(utility.name, 1960))
    diam = np.array([utility.diameters[e.road_class][pick[e.name] % len(
        utility.diameters[e.road_class])] for e in edges], float)
    attrs = [(material(utility.name, int(y), d, False), d, int(y),
              "gravity" if utility.name == "drainage" else
              gas_pressure(e.road_class) if utility.name == "gas" else None,
              round(float(rng.uniform(depth_lo, depth_hi)
                          + (d / 1000 if utility.name == "drainage" else 0)), 2))
             for e, y, d in zip(edges, years, diam, strict=True)]

    # Cut points per edge: (metres along, what) — valves first, then taps.
    cuts: list[list[tuple[float, str, Any]]] = [[] for _ in edges]
    if utility.name != "drainage":
        incident: dict[int, list[tuple[int, bool]]] = {}
        for k, e in enumerate(edges):
            incident.setdefault(e.a, []).append((k, True))
            incident.setdefault(e.b, []).append((k, False))
        for n in sorted(incident):
            inc = incident[n]
            if net.kind[junction[n]] in ("source", "regulator_station"):
                chosen = inc  # the station's outlet valves
            elif len(inc) >= 3:  # a tee or a cross: valves on all branches or all but one
                count = len(inc) if rng.random() < 0.35 else len(inc) - 1
                chosen = sorted(inc, key=lambda ke: (diam[ke[0]], rng.random()))[:count]
            else:
                continue
            for k, at_start in chosen:
                length = edges[k].cum[-1]
                if length < 12.0:
                    continue
                t = rng.uniform(2.0, 5.0)
                cuts[k].append((t if at_start else length - t, "valve", None))
        for chain in main_chains(edges, degree):
            _line_valves(rng, edges, chain, cuts)
    else:
        for k, e in enumerate(edges):
            length = e.cum[-1]
            if e.road_class == "alley" or length < 90.0:
                continue
            parts = math.ceil(length / rng.uniform(40.0, 60.0))
            cuts[k].extend((length * j / parts, "manhole", None) for j in range(1, parts))

    # Taps: nearest pipe of the network to each served building.
    served = np.flatnonzero(_served(utility.name, buildings, rng))
    lines = polylines([e.line for e in edges])
    tree = shapely.STRtree(lines)
    footprints = np.asarray(buildings.geometry.values)[served]
    nearest = tree.query_nearest(footprints, all_matches=False)
    which = np.empty(len(served), int)
    which[nearest[0]] = nearest[1]
    link = shapely.shortest_line(footprints, lines[which])
    link_xy = shapely.get_coordinates(link).reshape(-1, 2, 2)
    length_ok = np.hypot(*(link_xy[:, 0] - link_xy[:, 1]).T) <= (
        MAX_SERVICE_M if utility.name in ("gas", "heat") else np.inf)
    along = shapely.line_locate_point(lines[which], shapely.points(link_xy[:, 1]))
    bids = buildings["id"].to_numpy()[served]
    centroids = shapely.get_coordinates(shapely.centroid(footprints))
    for j in np.flatnonzero(length_ok):
        k = int(which[j])
        length = edges[k].cum[-1]
        margin = min(6.0, length / 2)
        t = float(np.clip(along[j], margin, length - margin))
        house = link_xy[j, 0]
        if np.hypot(*(house - point_at(edges[k].line, edges[k].cum, t))) < 1.0:
            house = centroids[j]
        cuts[k].append((t, "tap", (int(bids[j]), house)))

    built = dict(zip(buildings["id"].astype(int), buildings["year_built"].fillna(0).astype(int),
                     strict=True)) if "year_built" in buildings else {}
    service_d = utility.diameters["service"][0]
    tap_kind = "manhole" if utility.name == "drainage" else "junction"
    for k, e in enumerate(edges):
        length = float(e.cum[-1])
        depth = attrs[k][4]
        # Valves and manholes first, at least 1 m apart and from the ends.
        fixed: list[tuple[float, int]] = []
        for t, what, _ in sorted(c for c in cuts[k] if c[1] != "tap"):
            if t < 1.0 or t > length - 1.0 or (fixed and t - fixed[-1][0] < 1.0):
                continue
            idx = net.node(point_at(e.line, e.cum, t), "other" if what == "valve" else what,
                           depth)
            fixed.append((t, idx))
            if what == "valve":
                net.valves.append((idx, attrs[k][1]))
        taps: list[tuple[float, int]] = []
        for t, _, extra in sorted((c for c in cuts[k] if c[1] == "tap"), key=lambda c: c[0]):
            near = [(abs(t - tf), tf, i) for tf, i in fixed if abs(t - tf) < 2.0]
            idx = -1
            if near:
                _, tf, i = min(near)
                if net.kind[i] == "manhole":
                    idx = i  # the house drain enters the manhole
                else:  # not on the valve: a closed valve must cut the tap off one side
                    t = tf + 2.5 if tf + 2.5 < length - 1.0 else tf - 2.5
            if idx < 0 and taps and abs(taps[-1][0] - t) < 1.0:
                idx = taps[-1][1]
            if idx < 0:
                idx = net.node(point_at(e.line, e.cum, t), tap_kind, depth)
                taps.append((t, idx))
            bid, house = extra
            # A service line is no older than its main or its building.
            year = min(2024, max(attrs[k][2], built.get(bid, 0)) + int(rng.integers(0, 6)))
            sidx = net.node(np.asarray(house), "service_connection",
                            min(depth, 1.5 if utility.name == "drainage" else 1.2), bid)
            sd = service_d * (2 if bid % 7 == 0 and utility.name == "water" else 1)
            sattr = (material(utility.name, year, sd, True), float(sd), year,
                     "gravity" if utility.name == "drainage" else
                     "low" if utility.name == "gas" else None, net.depth[sidx])
            a, b = (sidx, idx) if utility.name == "drainage" else (idx, sidx)
            net.segment(a, b, np.array([[net.x[a], net.y[a]], [net.x[b], net.y[b]]]), sattr)
        stops = [(0.0, junction[e.a]), *sorted(fixed + taps), (length, junction[e.b])]
        for (s, na), (t, nb) in itertools.pairwise(stops):
            net.segment(na, nb, cut(e.line, e.cum, s, t), attrs[k], e.tunnel)

    if carried:
        net.seg_tunnel = link_tunnels(net.seg_coords, net.seg_tunnel, tunnels or [])
    else:
        net.seg_tunnel = [None] * len(net.seg_from)
    if utility.name == "drainage":
        _orient_to_outlet(net)
    return net


def tunnel_offset(centre: np.ndarray, tunnel: Tunnel, utility: str) -> float:
    """Offset from a road edge's centreline that puts a utility's main in the tunnel.

    The tunnel lies on one side of its road along the whole road, but an edge's
    canonical direction (which sets "left") can differ from the road's: the
    side is the one whose offset line runs nearer the tunnel's centre line.

    Examples
    --------
    >>> t = Tunnel(0, "示范路", "arterial", ("water",),
    ...            shapely.LineString([(0, -8), (100, -8)]), shapely.Polygon())
    >>> tunnel_offset(np.array([[0.0, 0.0], [100.0, 0.0]]), t, "water")
    -5.5
    >>> tunnel_offset(np.array([[100.0, 0.0], [0.0, 0.0]]), t, "gas")
    10.5
    """
    depth = IN_TUNNEL_M[utility]
    mid = [shapely.Point(point_at(line, cumulative(line), cumulative(line)[-1] / 2))
           for line in (offset_polyline(centre, depth), offset_polyline(centre, -depth))]
    left, right = (float(shapely.distance(p, tunnel.geom)) for p in mid)
    return depth if left < right else -depth


def link_tunnels(coords: list[np.ndarray], candidate: list[int | None],
                 tunnels: list[Tunnel]) -> list[int | None]:
    """The tunnel id of each segment laid in a tunnel, else None.

    A candidate (a main of a carried utility under the tunnel's road) is in the
    tunnel when at least ``IN_TUNNEL_SHARE`` of its length lies inside the
    tunnel's outline; a segment that only enters or leaves there is not.

    Examples
    --------
    >>> t = Tunnel(7, "示范路", "arterial", ("water",),
    ...            shapely.LineString([(0, -8), (100, -8)]),
    ...            shapely.box(0, -12, 100, -4))
    >>> inside, leaving = np.array([[10.0, -6], [90, -6]]), np.array([[95.0, -6], [100, 20]])
    >>> link_tunnels([inside, leaving, inside], [0, 0, None], [t])
    [7, None, None]
    """
    out: list[int | None] = [None] * len(coords)
    for i, tunnel in enumerate(tunnels):
        picked = [k for k, c in enumerate(candidate) if c == i]
        if not picked:
            continue
        lines = polylines([coords[k] for k in picked])
        length = shapely.length(lines)
        inside = shapely.length(shapely.intersection(lines, tunnel.footprint))
        share = np.divide(inside, length, out=np.zeros_like(length), where=length > 0)
        for k, ok in zip(picked, share >= IN_TUNNEL_SHARE, strict=True):
            if ok:
                out[k] = tunnel.id
    return out


def main_chains(edges: list[_Edge], degree: dict[int, int]) -> list[list[tuple[int, bool]]]:
    """Runs of main edges through bends (nodes joining exactly two edges).

    Each run is a list of (edge index, forward) in walking order.
    """
    at: dict[int, list[int]] = {}
    for k, e in enumerate(edges):
        if e.road_class in MAIN:
            at.setdefault(e.a, []).append(k)
            at.setdefault(e.b, []).append(k)
    seen: set[int] = set()
    chains = []
    for k0 in sorted(i for i, e in enumerate(edges) if e.road_class in MAIN):
        if k0 in seen:
            continue
        seen.add(k0)
        chain = [(k0, True)]
        for forward in (True, False):  # grow from the b end, then from the a end
            node = edges[k0].b if forward else edges[k0].a
            while degree[node] == 2 and len(at.get(node, [])) == 2:
                k = next(i for i in at[node] if i != chain[-1 if forward else 0][0])
                if k in seen:
                    break
                seen.add(k)
                fwd = edges[k].a == node
                if forward:
                    chain.append((k, fwd))
                else:
                    chain.insert(0, (k, not fwd))
                node = edges[k].b if fwd else edges[k].a
        chains.append(chain)
    return chains


def _line_valves(rng: np.random.Generator, edges: list[_Edge], chain: list[tuple[int, bool]],
                 cuts: list[list[tuple[float, str, Any]]]) -> None:
    """Valves evenly along a main run longer than the spacing allows."""
    lengths = np.array([edges[k].cum[-1] for k, _ in chain])
    total = float(lengths.sum())
    parts = math.ceil(total / VALVE_MAX_SPACING_M)
    starts = np.concatenate([[0.0], np.cumsum(lengths)])
    for j in range(1, parts):
        t = total * j / parts + rng.uniform(-15.0, 15.0)
        i = min(int(np.searchsorted(starts, t, side="right")) - 1, len(chain) - 1)
        k, forward = chain[i]
        local = float(np.clip(t - starts[i], 1.5, lengths[i] - 1.5))
        cuts[k].append((local if forward else lengths[i] - local, "valve", None))


def _orient_to_outlet(net: _Net) -> None:
    """Turn every drainage segment to run downhill, towards the outlet."""
    g = nx.Graph()
    for k, (a, b) in enumerate(zip(net.seg_from, net.seg_to, strict=True)):
        g.add_edge(a, b, w=float(cumulative(net.seg_coords[k])[-1]))
    outlet = net.kind.index("outlet")
    dist = nx.single_source_dijkstra_path_length(g, outlet, weight="w")
    for k, (a, b) in enumerate(zip(net.seg_from, net.seg_to, strict=True)):
        if net.kind[a] == "service_connection":
            continue
        if dist.get(a, 0.0) < dist.get(b, 0.0):
            net.seg_from[k], net.seg_to[k] = b, a
            net.seg_coords[k] = net.seg_coords[k][::-1]


VALVE_KINDS = {"water": ("gate", "butterfly"), "gas": ("ball", "plug"),
               "heat": ("butterfly", "ball")}


def write_network(ctx: CityContext, utility: Utility, net: _Net) -> dict[str, Any]:
    """COPY one utility's nodes, segments and valves; return what sensors need."""
    rng = ctx.rng(f"pipelines.{utility.name}.write")
    n_nodes, n_segs = len(net.x), len(net.seg_from)
    node_ids = ctx.ids.take("pipe_node", n_nodes)
    seg_ids = ctx.ids.take("pipe_segment", n_segs)
    nodes = gpd.GeoDataFrame({
        "id": node_ids,
        "code": [f"{utility.prefix}-D{i:07d}" for i in node_ids],
        "utility": utility.name, "kind": net.kind,
        "building_id": pd.array(net.building, dtype="Int64"),
        "depth_m": net.depth,
    }, geometry=shapely.points(np.column_stack([net.x, net.y])), crs=METRIC_EPSG)
    ctx.writer.copy_frame("pipe_node", nodes)
    attrs: list[Any] = list(zip(*net.seg_attr, strict=True)) if n_segs else [[]] * 5
    segs = gpd.GeoDataFrame({
        "id": seg_ids,
        "code": [f"{utility.prefix}-G{i:07d}" for i in seg_ids],
        "utility": utility.name, "material": attrs[0], "diameter_mm": attrs[1],
        "install_year": attrs[2], "pressure_class": attrs[3], "depth_m": attrs[4],
        "from_node_id": node_ids[np.asarray(net.seg_from, int)],
        "to_node_id": node_ids[np.asarray(net.seg_to, int)],
        "tunnel_id": pd.array(net.seg_tunnel, dtype="Int64"),
    }, geometry=polylines(net.seg_coords), crs=METRIC_EPSG)
    ctx.writer.copy_frame("pipe_segment", segs)
    if net.valves:
        vnode = np.array([v[0] for v in net.valves], int)
        vdiam = np.array([v[1] for v in net.valves], float)
        kinds = VALVE_KINDS[utility.name]
        valve_ids = ctx.ids.take("valve", len(vnode))
        inspected = REFERENCE_TIME - pd.to_timedelta(rng.integers(5, 3 * 365, len(vnode)), "D")
        valves = gpd.GeoDataFrame({
            "id": valve_ids,
            "code": [f"{utility.prefix}-F{i:06d}" for i in valve_ids],
            "utility": utility.name,
            "kind": np.where(vdiam >= 300, kinds[1], kinds[0]),
            "node_id": node_ids[vnode],
            "diameter_mm": vdiam,
            "operable": rng.random(len(vnode)) >= INOPERABLE_SHARE,
            "normal_state": np.where(rng.random(len(vnode)) < 0.01, "closed", "open"),
            "last_inspected_at": np.where(rng.random(len(vnode)) < 0.85, inspected, None),
        }, geometry=shapely.points(np.column_stack([np.asarray(net.x)[vnode],
                                                    np.asarray(net.y)[vnode]])), crs=METRIC_EPSG)
        ctx.writer.copy_frame("valve", valves)
    return {"node_ids": node_ids, "kind": np.asarray(net.kind), "x": np.asarray(net.x),
            "y": np.asarray(net.y), "valve_nodes": [v[0] for v in net.valves]}


SENSOR_SPECS = {  # kind → unit, normal value range, alarm value range
    "pressure": ("MPa", (0.22, 0.38), (0.08, 0.14)),
    "flow": ("m3/h", (800.0, 2500.0), (3500.0, 5000.0)),
    "level": ("m", (0.2, 0.9), (1.6, 2.8)),
    "gas_concentration": ("%LEL", (0.0, 2.0), (10.0, 45.0)),
    "temperature": ("°C", (55.0, 85.0), (100.0, 118.0)),
}
SENSOR_KIND = {"water": "pressure", "drainage": "level", "gas": "gas_concentration",
               "heat": "temperature"}
ALARM_TEXT = {
    "pressure": "管网压力低于下限", "flow": "流量异常升高，疑似爆管", "level": "井内液位超过报警线",
    "gas_concentration": "可燃气体浓度超标", "temperature": "供水温度超过上限",
}


def write_sensors(ctx: CityContext, networks: dict[str, dict[str, Any]]) -> None:
    """A few lifeline sensors per utility and a year of their alarms."""
    rng = ctx.rng("pipelines.sensors")
    per_utility = max(2, round(ctx.scale.households / 4000))
    rows = []
    for utility, info in networks.items():
        kind = info["kind"]
        if utility == "gas" and info["valve_nodes"]:
            pool = np.asarray(info["valve_nodes"], int)
        else:
            pool = np.flatnonzero(np.isin(kind, ("junction", "manhole", "outlet", "source",
                                                 "regulator_station")))
        if pool.size == 0:
            continue
        chosen = rng.choice(pool, size=min(per_utility, pool.size), replace=False)
        if utility == "water":  # flow meters where the water comes in
            chosen = np.union1d(chosen, np.flatnonzero(kind == "source"))
        for j in sorted(chosen.tolist()):
            sensor_kind = "flow" if kind[j] == "source" else SENSOR_KIND[utility]
            rows.append((sensor_kind, utility, int(info["node_ids"][j]), info["x"][j],
                         info["y"][j]))
    if not rows:
        return
    ids = ctx.ids.take("sensor", len(rows))
    status = rng.choice(["online", "offline", "fault"], len(rows), p=[0.9, 0.06, 0.04])
    lag = np.where(status == "online", rng.uniform(1, 15, len(rows)),
                   rng.uniform(60 * 24, 60 * 24 * 20, len(rows)))
    specs = [(r[0], *SENSOR_SPECS[r[0]]) for r in rows]
    sensors = gpd.GeoDataFrame({
        "id": ids, "code": [f"SM-{i:05d}" for i in ids],
        "kind": [r[0] for r in rows], "utility": [r[1] for r in rows],
        "measure_unit": [s[1] for s in specs], "node_id": [r[2] for r in rows],
        "status": status,
        "last_value": [round(float(rng.uniform(*s[2])), 3) for s in specs],
        "last_reading_at": [REFERENCE_TIME - timedelta(minutes=float(m)) for m in lag],
    }, geometry=shapely.points(np.array([[r[3], r[4]] for r in rows])), crs=METRIC_EPSG)
    ctx.writer.copy_frame("sensor", sensors)

    year_start = REFERENCE_TIME - timedelta(days=365)
    alarm_rows: list[tuple[Any, ...]] = []
    for sid, spec in zip(ids, specs, strict=True):
        troubled = rng.random() < 0.2
        n = int(rng.poisson(14 if troubled else 2))
        if spec[0] == "level":  # rain: mostly June to September
            day = np.where(rng.random(n) < 0.8, rng.uniform(213, 335, n), rng.uniform(0, 365, n))
        elif spec[0] == "temperature":  # heating season, 15 Nov – 15 Mar
            day = rng.uniform(15, 135, n)
        else:
            day = rng.uniform(0, 365, n)
        seconds = np.unique(np.round(day * 86400.0))
        for s in seconds.tolist():
            at = year_start + timedelta(seconds=s)
            level = str(rng.choice(["warning", "alarm", "critical"], p=[0.6, 0.3, 0.1]))
            hours = float(rng.exponential(6.0 if level == "critical" else 2.0))
            cleared: datetime | None = at + timedelta(hours=hours)
            if cleared is not None and cleared >= REFERENCE_TIME:
                cleared = None
            value = round(float(rng.uniform(*spec[3])), 3)
            alarm_rows.append((int(sid), at, level, value,
                               f"{ALARM_TEXT[spec[0]]}：{value}{spec[1]}", cleared))
    ctx.writer.copy_rows("sensor_alarm", ("sensor_id", "at", "level", "value", "message",
                                          "cleared_at"), alarm_rows)
    ctx.frames["sensor_alarm"] = pd.DataFrame(
        alarm_rows, columns=["sensor_id", "at", "level", "value", "message", "cleared_at"]
    ).merge(pd.DataFrame({"sensor_id": ids, "utility": [r[1] for r in rows],
                          "x": [r[3] for r in rows], "y": [r[4] for r in rows]}),
            on="sensor_id")


#: Utility tunnels per scale, and the road classes they run under (widest first).
TUNNELS_PER_SCALE = {"S": 1, "M": 3, "L": 10}
TUNNEL_CLASSES = ("expressway", "arterial", "secondary")
#: Half the width of a tunnel's outline (a two- or three-cabin tunnel is 6–9 m wide).
TUNNEL_HALF_WIDTH_M = 4.0
#: Lateral offset of the tunnel under the road (to the right of the canonical direction).
TUNNEL_OFFSET_M = -8.0
TUNNEL_OPERATOR = "北京市政综合管廊运营有限公司"
#: Where a carried utility's main lies in the tunnel: metres from the road's centreline,
#: on the tunnel's side (the tunnel spans 4–12 m). Gas has the outer cabin of its own
#: (GB 50838 puts natural gas in a separate cabin).
IN_TUNNEL_M = {"water": 5.5, "heat": 7.0, "drainage": 8.5, "gas": 10.5}
#: A main is recorded in a tunnel when at least this share of it lies inside the outline.
IN_TUNNEL_SHARE = 0.5


@dataclass(frozen=True)
class Tunnel:
    """A utility tunnel as the networks need it.

    Attributes
    ----------
    id : int
        ``utility_tunnel.id``.
    road_name, road_class : str
        The road it runs under (all pieces of that name and class).
    utilities : tuple of str
        What it carries.
    geom : shapely geometry
        Centre line (metres).
    footprint : shapely geometry
        Outline (metres).
    """

    id: int
    road_name: str
    road_class: str
    utilities: tuple[str, ...]
    geom: Any
    footprint: Any


def build_tunnels(ctx: CityContext) -> dict[str, Any]:
    """Utility tunnels (综合管廊) under the longest main roads.

    A tunnel follows one named road of the widest classes (the longest roads
    first) along its whole length, 8 m to the right of its canonical
    direction, and always carries water, power and telecom, often heat, now
    and then gas and drainage. The S city gets one, M three, L ten.

    Parameters
    ----------
    ctx : CityContext
        Needs ``frames["road"]`` (metres).

    Returns
    -------
    dict
        Truth facts: how many tunnels, and the roads they follow. The
        tunnels for the networks are in ``ctx.frames["utility_tunnel"]``
        (see :func:`tunnels_of`).
    """
    rng = ctx.rng("pipelines.tunnels")
    roads = ctx.frames["road"]
    want = TUNNELS_PER_SCALE.get(ctx.scale.name, 1)
    chosen: list[tuple[str, str, list[Any]]] = []
    for cls in TUNNEL_CLASSES:
        sub = roads[(roads["road_class"] == cls) & roads["name"].notna()]
        if len(sub) == 0:
            continue
        length = sub.assign(_len=shapely.length(np.asarray(sub.geometry.values))) \
            .groupby("name", sort=True)["_len"].sum()
        ranked = sorted(length.items(), key=lambda kv: (-round(float(kv[1]), 1), str(kv[0])))
        for name, _ in ranked:
            if len(chosen) >= want:
                break
            pieces = sub[sub["name"] == name].sort_values("id").geometry.values
            chosen.append((str(name), cls, list(pieces)))
        if len(chosen) >= want:
            break
    if not chosen:
        return {"tunnels": 0}
    geoms, footprints = [], []
    for _, _, pieces in chosen:
        # Join the road's pieces first, so the offset line has no breaks at its bends.
        centre = shapely.line_merge(shapely.union_all(pieces))
        lines = []
        for line in shapely.get_parts(centre):
            c = np.asarray(shapely.get_coordinates(line), float)
            if len(c) < 2:
                continue
            if not canonical(c[0], c[-1]):
                c = c[::-1]
            lines.append(shapely.LineString(offset_polyline(c, TUNNEL_OFFSET_M)))
        multi = shapely.MultiLineString(lines)
        geoms.append(multi)
        outline = shapely.buffer(multi, TUNNEL_HALF_WIDTH_M, cap_style="flat")
        footprints.append(outline if isinstance(outline, shapely.MultiPolygon)
                          else shapely.MultiPolygon([outline]))
    n = len(chosen)
    ids = ctx.ids.take("utility_tunnel", n)
    utilities = []
    for _ in range(n):
        carried = {"water", "power", "telecom"}
        if rng.random() < 0.7:
            carried.add("heat")
        if rng.random() < 0.3:
            carried.add("gas")
        if rng.random() < 0.2:
            carried.add("drainage")
        utilities.append([u for u in ("water", "drainage", "gas", "heat", "power", "telecom")
                          if u in carried])
    # an object array: a fixed-width "<U12" from np.where would cut the longest status
    status = np.where(rng.random(n) < 0.9, "in_service", "under_repair").astype(object)
    if n >= 5:  # a large city has one still being built
        status[-1] = "under_construction"
    tunnels = gpd.GeoDataFrame({
        "id": ids,
        "code": [f"GL-{i:04d}" for i in ids],
        "name": [f"{name}综合管廊" for name, _, _ in chosen],
        "utilities": utilities,
        "operator": TUNNEL_OPERATOR,
        "status": status,
        "footprint": footprints,
    }, geometry=gpd.GeoSeries(geoms, crs=METRIC_EPSG), crs=METRIC_EPSG)
    ctx.writer.copy_frame("utility_tunnel", tunnels, geometry=("geom", "footprint"))
    ctx.frames["utility_tunnel"] = tunnels.assign(
        road_name=[name for name, _, _ in chosen], road_class=[cls for _, cls, _ in chosen])
    return {"tunnels": n, "roads": [name for name, _, _ in chosen],
            "offset_m": TUNNEL_OFFSET_M}


def tunnels_of(ctx: CityContext) -> list[Tunnel]:
    """The tunnels :func:`build_tunnels` wrote, for the networks."""
    frame = ctx.frames.get("utility_tunnel")
    if frame is None or "road_name" not in frame:
        return []
    return [Tunnel(int(r.id), str(r.road_name), str(r.road_class), tuple(r.utilities),
                   r.geometry, r.footprint)
            for r in frame.itertuples(index=False)]


def build(ctx: CityContext) -> None:
    """Lay the four networks, their sensors and the utility tunnels.

    Parameters
    ----------
    ctx : CityContext
        Needs ``frames["road"]``, ``graphs["road"]``, ``frames["building"]``
        and, if any, ``frames["old_quarter"]`` and ``frames["land_use"]``.
    """
    buildings = ctx.frames["building"].sort_values("id").reset_index(drop=True)
    edges = road_edges(ctx)
    networks: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    # Tunnels first: the networks lay their mains in them (and pipe_segment.tunnel_id
    # refers to them).
    facts["utility_tunnel"] = build_tunnels(ctx)
    tunnels = tunnels_of(ctx)
    with ctx.step("pipeline networks", len(UTILITIES)) as task:
        for utility in UTILITIES:
            net = build_utility(ctx, utility, edges, buildings, tunnels)
            networks[utility.name] = write_network(ctx, utility, net)
            facts[utility.name] = {"nodes": len(net.x), "segments": len(net.seg_from),
                                   "valves": len(net.valves), "offset_m": utility.offset_m,
                                   "in_tunnel": sum(t is not None for t in net.seg_tunnel)}
            task.advance()
    write_sensors(ctx, networks)
    ctx.truth["pipelines"] = facts
