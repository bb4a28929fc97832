"""Where muck trucks drive: the road network, paths, drives and stops.

The road graph the ``city`` step publishes becomes a :class:`RoadNetwork`:
arrays of nodes and drivable edges (alleys excluded: muck trucks may not
enter them) with shortest paths by travel time (scipy's Dijkstra, one run per
origin). A :class:`Path` is a polyline in metres — the yard of one place, the
road route, the yard of the next place — with a base speed per segment and
the traffic lights on it. A :class:`Leg` is one drive along a path that
starts at a given time, at a speed factor, waiting at the red lights it meets;
it answers where the truck is at a time and when it passes a point; a
:class:`Stay` is a truck standing still. :mod:`democity.truck_gps`
turns a timeline of legs and stays into GPS fixes.

Times are seconds (float) since the start of the tracked period.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Speed per road class (km/h) for routing and driving; alleys are listed for completeness.
CLASS_SPEED_KMH: dict[str, float] = {
    "expressway": 60.0, "arterial": 40.0, "secondary": 30.0, "branch": 20.0, "alley": 10.0,
}
#: Road classes a muck truck may use.
TRUCK_CLASSES: tuple[str, ...] = ("expressway", "arterial", "secondary", "branch")
#: Speed on site yards and access ways (km/h).
YARD_SPEED_KMH = 10.0
#: Chance that a traffic light is red when a truck arrives, and the wait (s).
RED_PROBABILITY = 0.5
RED_WAIT_S = (20.0, 60.0)


class RoadNetwork:
    """The drivable road graph as arrays, with shortest paths by travel time.

    Parameters
    ----------
    graph : networkx.Graph
        Nodes with attribute ``xy``; edges with ``road_id``, ``length``,
        ``road_class`` and ``geometry`` (a LineString in either direction).
    classes : sequence of str
        Road classes that may be driven.

    Attributes
    ----------
    node_ids : numpy.ndarray
        Graph node id per node index.
    xy : numpy.ndarray
        (n, 2) node coordinates in metres.
    main : numpy.ndarray
        Boolean per node: in the largest drivable connected component.
    light : numpy.ndarray
        Boolean per node: a signalised junction (traffic light).
    edge_road_id, edge_class : numpy.ndarray
        Road id and class per drivable edge index.
    """

    def __init__(self, graph: Any, classes: Sequence[str] = TRUCK_CLASSES) -> None:
        self.node_ids = np.array(sorted(graph.nodes), dtype=np.int64)
        index = {int(n): i for i, n in enumerate(self.node_ids)}
        self.index = index
        n = len(self.node_ids)
        self.xy = np.array([graph.nodes[int(k)]["xy"] for k in self.node_ids],
                           dtype=np.float64).reshape(n, 2)
        eu: list[int] = []
        ev: list[int] = []
        coords: list[FloatArray] = []
        road_ids: list[int] = []
        klass: list[str] = []
        for u, v, data in graph.edges(data=True):
            if data["road_class"] not in classes or u == v:
                continue
            i, j = index[int(u)], index[int(v)]
            c = np.asarray(data["geometry"].coords, dtype=np.float64)[:, :2]
            if np.hypot(*(c[0] - self.xy[i])) > np.hypot(*(c[-1] - self.xy[i])):
                c = c[::-1]
            eu.append(i)
            ev.append(j)
            coords.append(c)
            road_ids.append(int(data["road_id"]))
            klass.append(str(data["road_class"]))
        if not eu:
            raise ValueError("the road graph has no edge a muck truck may drive on")
        self.edge_u = np.array(eu, dtype=np.int64)
        self.edge_v = np.array(ev, dtype=np.int64)
        self.edge_coords = coords
        self.edge_road_id = np.array(road_ids, dtype=np.int64)
        self.edge_class = np.array(klass, dtype=object)
        lengths = np.array([_length(c) for c in coords])
        self.edge_length = lengths
        self.edge_speed = np.array([CLASS_SPEED_KMH[k] / 3.6 for k in klass])
        self._edge_key = {(min(a, b), max(a, b)): e
                          for e, (a, b) in enumerate(zip(eu, ev, strict=True))}
        weight = np.maximum(lengths / self.edge_speed, 1e-3)
        self.csr = coo_matrix((weight, (self.edge_u, self.edge_v)), shape=(n, n)).tocsr()
        _, labels = connected_components(self.csr, directed=False)
        self.main = labels == np.bincount(labels).argmax()
        self.main &= np.bincount(np.r_[self.edge_u, self.edge_v], minlength=n) > 0
        self.light = self._lights(n, klass)
        self._pred: dict[int, IntArray] = {}

    def _lights(self, n: int, klass: list[str]) -> npt.NDArray[np.bool_]:
        """Signalised junctions: three or more ways, an arterial among them, and
        at least two arterial or secondary roads meeting."""
        ends = np.r_[self.edge_u, self.edge_v]
        deg = np.bincount(ends, minlength=n)
        k2 = np.r_[klass, klass]
        art = np.bincount(ends[k2 == "arterial"], minlength=n)
        major = np.bincount(ends[(k2 == "arterial") | (k2 == "secondary")], minlength=n)
        return np.asarray((deg >= 3) & (art >= 1) & (major >= 2))

    def nearest_nodes(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Index of the nearest node of the main component to each point."""
        cand = np.flatnonzero(self.main)
        tree = shapely.STRtree(shapely.points(self.xy[cand]))
        idx = tree.query_nearest(shapely.points(np.c_[x, y]), all_matches=False)[1]
        return np.asarray(cand[idx], dtype=np.int64)

    def prepare(self, sources: Iterable[int]) -> None:
        """Run Dijkstra once from each source node (index) not yet done."""
        todo = sorted({int(s) for s in sources} - set(self._pred))
        for k in range(0, len(todo), 32):
            batch = todo[k:k + 32]
            _, pred = dijkstra(self.csr, directed=False, indices=batch,
                               return_predecessors=True)
            for s, row in zip(batch, np.atleast_2d(pred), strict=True):
                self._pred[s] = row.astype(np.int64)

    def node_path(self, source: int, target: int) -> list[int]:
        """Node indices of the fastest path from ``source`` to ``target``.

        Raises
        ------
        ValueError
            If ``target`` cannot be reached from ``source``.
        """
        if source not in self._pred and target in self._pred:
            return self.node_path(target, source)[::-1]
        self.prepare([source])
        pred = self._pred[source]
        out = [target]
        while out[-1] != source:
            p = int(pred[out[-1]])
            if p < 0:
                raise ValueError(f"node {target} cannot be reached from node {source}")
            out.append(p)
        return out[::-1]

    def route(self, nodes: Sequence[int]) -> tuple[FloatArray, IntArray, npt.NDArray[np.bool_]]:
        """The polyline of a node path, the edge of each of its segments, and
        which of its vertices are traffic lights."""
        parts: list[FloatArray] = [self.xy[nodes[0]][None, :]]
        edges: list[IntArray] = []
        lights: list[npt.NDArray[np.bool_]] = [np.zeros(1, dtype=bool)]
        for a, b in itertools.pairwise(nodes):
            e = self._edge_key[(min(a, b), max(a, b))]
            c = self.edge_coords[e] if self.edge_u[e] == a else self.edge_coords[e][::-1]
            parts.append(c[1:])
            edges.append(np.full(len(c) - 1, e, dtype=np.int64))
            flags = np.zeros(len(c) - 1, dtype=bool)
            flags[-1] = bool(self.light[b])
            lights.append(flags)
        if len(nodes) == 1:
            return self.xy[nodes[0]][None, :].copy(), np.zeros(0, np.int64), np.zeros(1, bool)
        xy = np.concatenate(parts)
        light = np.concatenate(lights)
        light[-1] = False
        return xy, np.concatenate(edges), light


def _length(c: FloatArray) -> float:
    return float(np.hypot(*np.diff(c, axis=0).T).sum())


@dataclass(frozen=True)
class Path:
    """A drivable polyline with what a truck needs to drive it.

    Attributes
    ----------
    xy : numpy.ndarray
        (m, 2) vertices in metres.
    cum : numpy.ndarray
        Distance from the start at each vertex (m).
    speed : numpy.ndarray
        Base speed per segment (m/s).
    edge : numpy.ndarray
        Drivable edge index per segment, -1 on yards and access ways.
    light : numpy.ndarray
        Boolean per vertex: a traffic light.
    marks : dict
        Named distances along the path: ``"entry"`` where it enters the
        destination (the start of its last segment), ``"road_from"`` and
        ``"road_to"`` where the road part begins and ends.
    """

    xy: FloatArray
    cum: FloatArray
    speed: FloatArray
    edge: IntArray
    light: npt.NDArray[np.bool_]
    marks: dict[str, float] = field(default_factory=dict)

    @functools.cached_property
    def seglen(self) -> FloatArray:
        """Length of each segment (m)."""
        return np.diff(self.cum)

    @functools.cached_property
    def edges(self) -> IntArray:
        """The distinct drivable edges the path uses."""
        return np.unique(self.edge[self.edge >= 0])

    @property
    def length(self) -> float:
        """Length in metres."""
        return float(self.cum[-1])

    @functools.cached_property
    def heading(self) -> FloatArray:
        """Heading per segment, degrees clockwise from north."""
        d = np.diff(self.xy, axis=0)
        return np.asarray(np.degrees(np.arctan2(d[:, 0], d[:, 1])) % 360.0)

    @functools.cached_property
    def light_index(self) -> IntArray:
        """Vertex indices of the traffic lights."""
        return np.flatnonzero(self.light)

    def at(self, s: FloatArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """Coordinates and segment index at distances ``s`` along the path."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.cum[-1])
        seg = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.cum) - 2)
        seglen = self.cum[seg + 1] - self.cum[seg]
        f = np.divide(s - self.cum[seg], seglen, out=np.zeros_like(s), where=seglen > 0)
        x = self.xy[seg, 0] + f * (self.xy[seg + 1, 0] - self.xy[seg, 0])
        y = self.xy[seg, 1] + f * (self.xy[seg + 1, 1] - self.xy[seg, 1])
        return x, y, seg

    def locate(self, x: float, y: float, segments: IntArray) -> float:
        """Distance along the path of the point nearest to (x, y) on the given segments."""
        best, best_d = 0.0, math.inf
        for k in segments:
            a, b = self.xy[k], self.xy[k + 1]
            d = b - a
            ll = float(d @ d)
            t = 0.0 if ll == 0 else min(1.0, max(0.0, float((np.array([x, y]) - a) @ d) / ll))
            p = a + t * d
            dist = math.hypot(x - p[0], y - p[1])
            if dist < best_d:
                best, best_d = float(self.cum[k] + t * math.sqrt(ll)), dist
        return best

    def reversed(self) -> Path:
        """The same path driven the other way."""
        marks = {"road_from": self.length - self.marks.get("road_to", self.length),
                 "road_to": self.length - self.marks.get("road_from", 0.0),
                 "entry": self.length - float(self.cum[1] - self.cum[0])}
        return make_path([self.xy[::-1]], [self.speed[::-1]], [self.edge[::-1]],
                         [self.light[::-1]], marks)

    def linestring(self) -> shapely.LineString:
        """The path as a shapely LineString in metres."""
        return shapely.LineString(self.xy)


def make_path(
    parts: Sequence[FloatArray], speeds: Sequence[FloatArray], edges: Sequence[IntArray],
    lights: Sequence[npt.NDArray[np.bool_]], marks: dict[str, float] | None = None,
) -> Path:
    """Join polylines (each with per-segment speeds and edges, per-vertex lights)
    into one :class:`Path`, dropping repeated joints and zero-length segments."""
    xy = [parts[0]]
    sp = [speeds[0]]
    ed = [edges[0]]
    li = [lights[0]]
    for p, s, e, li_ in zip(parts[1:], speeds[1:], edges[1:], lights[1:], strict=True):
        if len(p) and len(xy[-1]) and np.allclose(p[0], xy[-1][-1]):
            p, li_ = p[1:], li_[1:]
        else:
            # a connector from the last vertex to the first of this part
            s = np.r_[s[:1] if len(s) else [YARD_SPEED_KMH / 3.6], s]
            e = np.r_[-1, e]
        xy.append(p)
        sp.append(s)
        ed.append(e)
        li.append(li_)
    pts = np.concatenate(xy)
    speed = np.concatenate(sp)
    edge = np.concatenate(ed).astype(np.int64)
    light = np.concatenate(li).astype(bool)
    seglen = np.hypot(*np.diff(pts, axis=0).T)
    keep = seglen > 1e-6
    if not keep.all():
        vkeep = np.r_[True, keep]
        pts, light = pts[vkeep], light[vkeep]
        speed, edge, seglen = speed[keep], edge[keep], seglen[keep]
    if len(pts) < 2:
        raise ValueError(f"a path needs two distinct vertices, got {len(pts)}")
    cum = np.r_[0.0, np.cumsum(seglen)]
    return Path(pts, cum, speed, edge, light, dict(marks or {}))


def yard(points: Sequence[Sequence[float]]) -> tuple[FloatArray, FloatArray, IntArray,
                                                      npt.NDArray[np.bool_]]:
    """A polyline driven at yard speed, off the road network."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    return (xy, np.full(n - 1, YARD_SPEED_KMH / 3.6), np.full(n - 1, -1, np.int64),
            np.zeros(n, dtype=bool))


@dataclass(frozen=True)
class Leg:
    """One drive along a path.

    Attributes
    ----------
    path : Path
        Where.
    t0 : float
        Departure (seconds since the start of the period).
    factor : float
        Multiplies the base speeds.
    waits : numpy.ndarray
        Seconds waited at each traffic light of the path (0 when green).
    """

    path: Path
    t0: float
    factor: float
    waits: FloatArray

    @classmethod
    def drive(cls, path: Path, t0: float, factor: float, rng: np.random.Generator) -> Leg:
        """Depart at ``t0``; lights are red with :data:`RED_PROBABILITY`."""
        n = len(path.light_index)
        red = rng.random(n) < RED_PROBABILITY
        waits = np.where(red, rng.uniform(*RED_WAIT_S, n), 0.0)
        return cls(path, t0, factor, waits)

    def knots(self) -> tuple[FloatArray, FloatArray]:
        """(time, distance) knots of the motion: arrival and departure at each
        vertex where the truck waits, arrival elsewhere."""
        p = self.path
        n = len(p.cum)
        w = np.zeros(n)
        w[p.light_index] = self.waits
        ta = np.empty(n)
        ta[0] = 0.0
        np.cumsum(w[:-1] + p.seglen / (p.speed * self.factor), out=ta[1:])
        ta += self.t0
        stop = w > 0
        if not stop.any():
            return ta, p.cum
        pos = np.arange(n)
        pos[1:] += np.cumsum(stop[:-1])
        kt = np.empty(n + int(stop.sum()))
        ks = np.empty_like(kt)
        kt[pos], ks[pos] = ta, p.cum
        kt[pos[stop] + 1], ks[pos[stop] + 1] = ta[stop] + w[stop], p.cum[stop]
        return kt, ks

    @functools.cached_property
    def arrival(self) -> float:
        """Arrival time."""
        p = self.path
        return float(self.t0 + (p.seglen / (p.speed * self.factor)).sum() + self.waits.sum())

    @property
    def t1(self) -> float:
        """Arrival time (as for a :class:`Stay`)."""
        return self.arrival

    def time_at(self, s: FloatArray | float,
                knots: tuple[FloatArray, FloatArray] | None = None) -> FloatArray:
        """When the truck passes distance(s) ``s`` along the path (first pass).

        ``knots`` may pass :meth:`knots` computed once for several calls.
        """
        kt, ks = knots if knots is not None else self.knots()
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        i = np.clip(np.searchsorted(ks, s, side="left") - 1, 0, len(ks) - 2)
        ds = ks[i + 1] - ks[i]
        f = np.divide(s - ks[i], ds, out=np.zeros_like(s), where=ds > 0)
        return np.asarray(kt[i] + f * (kt[i + 1] - kt[i]))

    def sample(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Position, speed (m/s) and heading at times ``t`` within the leg."""
        kt, ks = self.knots()
        s = np.interp(t, kt, ks)
        x, y, seg = self.path.at(s)
        k = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2)
        moving = ks[k + 1] > ks[k]
        speed = np.where(moving, self.path.speed[seg] * self.factor, 0.0)
        return x, y, speed, self.path.heading[seg]


@dataclass(frozen=True)
class Stay:
    """A truck standing still from ``t0`` to ``t1`` at (x, y)."""

    t0: float
    t1: float
    x: float
    y: float
    ignition: bool


Piece = Leg | Stay
