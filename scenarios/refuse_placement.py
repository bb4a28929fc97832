"""Refuse-building placement (垃圾楼空间分布优化): where refuse buildings should stand.

Households take their refuse on foot to a refuse building (垃圾楼). This module
measures those walks on the walking network and places buildings with the
models of :mod:`scenarios.placement`: p-median (least total walking), maximal
coverage within a reach (500 m by default), set covering, p-center and the
capacitated p-median (each building's capacity in tonnes a day).

The walk
    A household's walk is measured as the demo city's generator measures it
    (``democity/refuse.py``, class ``Walk``), so that the planted truth
    ``truth.refuse_access`` is reproduced to the decimetre. The walking graph
    is every road row both ways (:func:`spatial.network.road_graph`) with the
    compounds' footpaths noded in (``onemap.footpath``:
    :meth:`WalkNetwork.with_footpaths`; a closed gate's path to the road left
    out). A building with a door path starts at its door and leaves its
    compound through a gate; any other goes straight from its footprint's
    centroid to the nearest road edge and along it to one of its ends. Then
    the shortest path to the site's node, and the access from that node to
    the door (:data:`SITE_ACCESS_M`, 12 m, or the straight distance from the
    node when the site's point is farther from it). A site stands at its
    nearest road node: a refuse building at its street corner (its door
    stands a few metres off it), a candidate at its corner (the planned sites
    of ``refuse_candidate_site``, or every street corner, a node where three
    or more roads meet) or at the caller's point. Lengths are planar in the city's
    Gauss–Krüger zone (CGCS2000, 3°, central-meridian variant: EPSG:4548 for
    Beijing), the generator's frame.

Data loaded once per run (:func:`load`), through the caller's connection so
that row-level security decides what counts: the residential buildings of the
area with the households and residents the caller may see (kg a day =
residents × :data:`KG_PER_PERSON_DAY`), the refuse buildings in service with
their capacities (a what-if scenario's removed and added facilities, changed
capacities and closed roads applied), the candidate sites, and the walking
graph (cached per process). :meth:`RefusePlacement.compute_walks` then fills
the buildings × sites matrix with a Dijkstra per site, cut off at
``cutoff_m`` (three times the reach, at least 1.5 km): a building is never
assigned farther than that; :meth:`RefusePlacement.solve` runs the model.

Modes
    ``current`` — no optimisation: each building to its nearest refuse
    building in service; ``optimise`` — the best layout of ``p`` sites among
    the existing and the candidates; ``add`` — the existing stay, ``k`` are
    added; ``close-one`` — which existing one could close (``p`` = n − 1 among
    the existing); ``close`` — the given ones close, the rest serve.

Examples
--------
A street of three 100 m blocks (metres in EPSG:4548) with two houses and a
refuse building at its west end:

>>> import numpy as np, shapely
>>> x0, y0 = 500_000.0, 4_420_000.0
>>> xy = np.array([[x0 + 100 * i, y0] for i in range(4)])
>>> net = WalkNetwork(xy, [0, 1, 2], [1, 2, 3],
...                   shapely.linestrings([[xy[i], xy[i + 1]] for i in range(3)]), 4548)
>>> homes = Buildings.from_footprints(
...     [1, 2], households=[10, 30], residents=[25, 70],
...     footprints=[shapely.box(x0 + 40, y0 + 10, x0 + 60, y0 + 30),
...                 shapely.box(x0 + 240, y0 + 10, x0 + 260, y0 + 30)])
>>> sites = Sites.build(net, keys=["f7", "c3"], xy=[xy[0], xy[3]], facility_id=[7, None],
...                     existing=[True, False], capacity_t=[2.5, 5.0])
>>> rp = RefusePlacement(net, homes, sites, model="p-median", mode="add", k=1).solve()
>>> rp.before.walk_m.round(1).tolist()    # 20 m to the street, 50 / 250 m along, 12 m in
[82.0, 282.0]
>>> rp.after.walk_m.round(1).tolist(), rp.opened, rp.closed
([82.0, 82.0], ['c3'], [])
"""

from __future__ import annotations

import itertools
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, overload

import numpy as np
import psycopg
import shapely
import shapely.geometry
import shapely.ops
from psycopg import sql
from scipy.sparse import coo_matrix, csr_array
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from scenarios.placement import (
    INFEASIBLE,
    LSCP,
    MCLP,
    CapacitatedPMedian,
    FacilityModel,
    PCenter,
    PlacementInputError,
    PMedian,
    ProgressCallback,
    SolveProgress,
)
from spatial.crs import gauss_kruger_epsg, transform
from spatial.errors import InvalidInputError, NamedInputError, NotFoundError
from spatial.network import Graph, road_graph
from spatial.whatif import Scenario

LOGGER = logging.getLogger(__name__)

#: A household should reach a refuse building within this walk (m), by default.
REACH_M = 500.0
#: From the street corner (the site's graph node) to the refuse building's door (m).
SITE_ACCESS_M = 12.0
#: Refuse per resident and day (kg), as the demo city's loads.
KG_PER_PERSON_DAY = 1.0
#: Walks are computed up to this many times the reach (and at least MIN_CUTOFF_M).
CUTOFF_FACTOR = 3.0
MIN_CUTOFF_M = 1500.0
#: Footpath ends (and doors) this close to each other or to a road node are one node (m).
NODE_TOLERANCE_M = 0.01
#: A street corner: a graph node where at least this many edges meet.
CORNER_DEGREE = 3
#: Buildings beyond reach within this distance (m, centroids) form one gap area.
GAP_LINK_M = 400.0
#: A gap area is the convex hull of its buildings' footprints, grown by this (m).
GAP_BUFFER_M = 20.0
#: Capacity of a new refuse building when none is given (t/day).
NEW_CAPACITY_T = 5.0
#: Up to this many buildings × sites the walk matrix is dense; beyond it only the
#: walks within the cut-off are kept (a ``scipy.sparse.csr_array``).
DENSE_CELLS = 12_000_000
#: Beyond DENSE_CELLS, the most walks within the cut-off one analysis may hold (a 400
#: beyond it), counted up front as the building–site pairs within the cut-off in a
#: straight line (the walks kept are fewer: a walk is no shorter than the straight line).
MAX_CELLS = 8_000_000
#: Sites per Dijkstra batch (memory: batch × graph nodes).
BATCH = 64
#: Coordinates in outputs: 7 decimals of a degree (about 1 cm).
DIGITS = 7

MODELS = ("p-median", "coverage", "set-cover", "p-center", "capacitated")
#: Where candidate sites come from when the caller gives none.
CANDIDATES = ("planned", "corners")
MODES = ("current", "optimise", "add", "close-one", "close")
#: What each model's objective counts.
OBJECTIVE_UNITS = {"p-median": "household·m", "coverage": "households",
                   "set-cover": "sites", "p-center": "m", "capacitated": "t·m/day"}
#: The status of a layout that was evaluated, not optimised (mode ``current``).
EVALUATED = "evaluated"

_AREA_TABLES = ("district", "street_office", "community", "grid")


class RefuseInputError(PlacementInputError, NamedInputError):
    """A request the analysis cannot answer, naming the input at fault (``p``, ``k``,
    ``close``, ``polygon`` …; a 400)."""


# --- the walking network ------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """How points reach the network: the nearest edge, its ends, the way along it.

    Attributes
    ----------
    perp : numpy.ndarray
        Straight distance from each point to its nearest edge, m.
    a, b : numpy.ndarray
        The edge's start and end nodes.
    to_a, to_b : numpy.ndarray
        Along the edge from the foot of the perpendicular to ``a`` and to ``b``, m.
    edge_id : numpy.ndarray
        The edge's id (road id).
    """

    perp: np.ndarray
    a: np.ndarray
    b: np.ndarray
    to_a: np.ndarray
    to_b: np.ndarray
    edge_id: np.ndarray


def _symmetric(n: int, source: np.ndarray, target: np.ndarray, cost: np.ndarray) -> csr_array:
    """Both arcs of every edge, the cheapest per node pair, as CSR (no loops)."""
    keep = source != target
    tail = np.r_[source[keep], target[keep]]
    head = np.r_[target[keep], source[keep]]
    w = np.r_[cost[keep], cost[keep]]
    order = np.lexsort((w, head, tail))
    tail, head, w = tail[order], head[order], w[order]
    first = np.ones(tail.size, dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    # explicit zeros would read as "no edge": a zero-length edge costs a nanometre
    return csr_array((np.maximum(w[first], 1e-9), (tail[first], head[first])), shape=(n, n))


class WalkNetwork:
    """The walking graph in a metric frame: walks from buildings to sites.

    Parameters
    ----------
    xy : array_like, shape (n, 2)
        Node coordinates, m.
    source, target : array_like of int
        Each edge's start and end node (its line runs from source to target).
    lines : array_like of LineString
        Each edge's line in the same frame; its length is the edge's cost.
    epsg : int
        The frame's EPSG code (outputs go to EPSG:4490 from it).
    node_ids, edge_ids : array_like, optional
        The graph's node (vertex key) and edge (road) ids.
    lonlat : array_like, shape (n, 2), optional
        Node coordinates in EPSG:4490 as stored (transformed from ``xy`` if omitted).
    """

    def __init__(self, xy: Any, source: Any, target: Any, lines: Any, epsg: int, *,
                 node_ids: Any = None, edge_ids: Any = None, lonlat: Any = None,
                 road_edge: Any = None, n_road_nodes: int | None = None) -> None:
        self.xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.source = np.asarray(source, dtype=np.int64)
        self.target = np.asarray(target, dtype=np.int64)
        self.lines = np.asarray(lines, dtype=object)
        self.epsg = int(epsg)
        n = len(self.xy)
        self.node_ids = (np.arange(n, dtype=np.int64) if node_ids is None
                         else np.asarray(node_ids, dtype=np.int64))
        self.edge_ids = (np.arange(len(self.source), dtype=np.int64) if edge_ids is None
                         else np.asarray(edge_ids, dtype=np.int64))
        self.lonlat = (to_lonlat(self.xy, self.epsg) if lonlat is None
                       else np.asarray(lonlat, dtype=np.float64).reshape(-1, 2))
        if not (len(self.source) == len(self.target) == len(self.lines) == len(self.edge_ids)):
            raise ValueError("source, target, lines and edge_ids must have one value per edge")
        #: Per edge: a road (or a piece of one), not a footpath.
        self.road_edge = (np.ones(len(self.source), dtype=bool) if road_edge is None
                          else np.asarray(road_edge, dtype=bool))
        #: Nodes ``[0, n_road_nodes)`` are the road graph's; footpath nodes follow.
        self.n_road_nodes = n if n_road_nodes is None else int(n_road_nodes)
        self.length = np.asarray(shapely.length(self.lines), dtype=np.float64)
        self.matrix = _symmetric(n, self.source, self.target, self.length)
        self._tree: tuple[shapely.STRtree, np.ndarray] | None = None
        self._nodes: cKDTree | None = None

    @classmethod
    def from_graph(cls, graph: Graph, epsg: int | None = None) -> WalkNetwork:
        """The walking network of a road graph (:func:`spatial.network.road_graph`).

        Parameters
        ----------
        graph : spatial.network.Graph
            With edge geometries (EPSG:4490).
        epsg : int, optional
            The metric frame; by default the 3° Gauss–Krüger zone (central-meridian
            variant) of the graph's median longitude.

        Returns
        -------
        WalkNetwork

        Raises
        ------
        InvalidInputError
            The graph has no edges.
        """
        if graph.geoms is None or not graph.n_edges:
            raise InvalidInputError("there is no walking network to measure on / 没有可用的路网")
        if epsg is None:
            epsg = gauss_kruger_epsg(float(np.median(graph.xy[:, 0])), zone_prefix=False)
        lines = shapely.transform(graph.geoms, lambda c: to_metric(c, epsg))
        return cls(to_metric(graph.xy, epsg), graph.source, graph.target, lines, epsg,
                   node_ids=graph.node_ids, edge_ids=graph.edge_ids, lonlat=graph.xy)

    def without(self, edge_ids: Iterable[int]) -> WalkNetwork:
        """The network with the given edges (road ids) taken out; nodes stay as they are."""
        gone = np.isin(self.edge_ids, np.fromiter((int(e) for e in edge_ids), dtype=np.int64))
        if not gone.any():
            return self
        keep = ~gone
        return WalkNetwork(self.xy, self.source[keep], self.target[keep], self.lines[keep],
                           self.epsg, node_ids=self.node_ids, edge_ids=self.edge_ids[keep],
                           lonlat=self.lonlat, road_edge=self.road_edge[keep],
                           n_road_nodes=self.n_road_nodes)

    def with_footpaths(self, lines: Any, kinds: Sequence[str] = (),
                       ids: Any = None, tolerance: float = NODE_TOLERANCE_M) -> WalkNetwork:
        """This network with footpaths added, noded where their ends meet.

        Ends within ``tolerance`` of each other (or of a road node) are one
        node. The last point of a gate path (``kind = "gate_path"``) that meets a
        road row between its nodes splits that row there: the row's pieces
        keep its id (so closing the road closes them), its line is replaced.

        Parameters
        ----------
        lines : array_like of LineString
            Footpaths in this network's frame.
        kinds : sequence of str, optional
            Each line's kind (``path``, ``door``, ``gate_path``).
        ids : array_like of int, optional
            Footpath ids; their edges get ids ``-id`` (road ids stay positive).
        tolerance : float
            m.

        Returns
        -------
        WalkNetwork
            Road nodes first (as in this network), then the footpath nodes.
        """
        lines = np.asarray(lines, dtype=object)
        if lines.size == 0:
            return self
        kinds_arr = np.asarray(list(kinds) or ["path"] * len(lines))
        fids = (np.arange(1, len(lines) + 1) if ids is None
                else np.asarray(ids, dtype=np.int64))
        first = shapely.get_coordinates(shapely.get_point(lines, 0))
        last = shapely.get_coordinates(shapely.get_point(lines, -1))
        ends = np.vstack([first, last])
        n_road = self.n_road_nodes
        pts = np.vstack([self.xy[:n_road], ends])
        pairs = cKDTree(pts).query_pairs(tolerance, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(pts), len(pts)))
        _, label = connected_components(graph, directed=False)
        # a group's node: its road node if it has one, else a new node
        node_of_label = np.full(label.max() + 1, -1, dtype=np.int64)
        node_of_label[label[:n_road]] = np.arange(n_road)
        new_labels = np.unique(label[n_road:][node_of_label[label[n_road:]] < 0])
        node_of_label[new_labels] = self.n_nodes + np.arange(new_labels.size)
        end_node = node_of_label[label[n_road:]]
        a, b = end_node[:len(lines)], end_node[len(lines):]
        first_at = {int(lab): i for i, lab in reversed(list(enumerate(label[n_road:].tolist())))}
        new_xy = np.array([ends[first_at[int(lab)]] for lab in new_labels]).reshape(-1, 2)
        # gate paths ending on a road row between its nodes: split the row there
        road = np.flatnonzero(self.road_edge)
        feet = np.flatnonzero((kinds_arr == "gate_path") & (b >= self.n_nodes))
        split: dict[int, list[tuple[float, int]]] = {}
        if feet.size and road.size:
            tree = shapely.STRtree(self.lines[road])
            which, dist = tree.query_nearest(shapely.points(last[feet]), all_matches=False,
                                             return_distance=True)
            for f, e, d in zip(feet[which[0]].tolist(), road[which[1]].tolist(),
                               dist.tolist(), strict=True):
                if d <= tolerance:
                    at = float(shapely.line_locate_point(self.lines[e], shapely.Point(last[f])))
                    split.setdefault(e, []).append((at, int(b[f])))
        keep = np.ones(len(self.source), dtype=bool)
        src, tgt, geo, eid, is_road = [], [], [], [], []
        for e, feet_e in split.items():
            keep[e] = False
            line = self.lines[e]
            stops = [(0.0, int(self.source[e])), *sorted(set(feet_e)),
                     (float(self.length[e]), int(self.target[e]))]
            for (t0, n0), (t1, n1) in itertools.pairwise(stops):
                if n0 == n1:
                    continue
                src.append(n0)
                tgt.append(n1)
                geo.append(shapely.ops.substring(line, t0, t1))
                eid.append(int(self.edge_ids[e]))
                is_road.append(True)
        loop = a == b
        xy = np.vstack([self.xy, new_xy])
        return WalkNetwork(
            xy, np.r_[self.source[keep], src, a[~loop]],
            np.r_[self.target[keep], tgt, b[~loop]],
            np.r_[self.lines[keep], np.asarray(geo, dtype=object), lines[~loop]], self.epsg,
            node_ids=np.r_[self.node_ids, -(np.arange(new_xy.shape[0]) + 1)],
            edge_ids=np.r_[self.edge_ids[keep], eid, -fids[~loop]],
            lonlat=np.vstack([self.lonlat, to_lonlat(new_xy, self.epsg)]),
            road_edge=np.r_[self.road_edge[keep], is_road, np.zeros((~loop).sum(), bool)],
            n_road_nodes=n_road)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.xy)

    def degree(self) -> np.ndarray:
        """Road edges meeting at each node (loops and footpaths left out)."""
        keep = (self.source != self.target) & self.road_edge
        return np.bincount(np.r_[self.source[keep], self.target[keep]],
                           minlength=self.n_nodes)

    def attach(self, xy: Any) -> Attachment:
        """How points (m) reach the network: their nearest edge and the way along it.

        Ties between edges are broken by the spatial index; they only ever
        happen where the nearest point is a node both edges share, and then
        the walk is the same either way.
        """
        pts = shapely.points(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        if not self.road_edge.any():
            raise InvalidInputError("there is no walking network to measure on / 没有可用的路网")
        if self._tree is None:
            road = np.flatnonzero(self.road_edge)
            self._tree = (shapely.STRtree(self.lines[road]), road)
        tree, road = self._tree
        which, dist = tree.query_nearest(pts, all_matches=False, return_distance=True)
        edge = np.empty(len(pts), dtype=np.int64)
        perp = np.empty(len(pts))
        edge[which[0]] = road[which[1]]
        perp[which[0]] = dist
        line = self.lines[edge]
        at = np.asarray(shapely.line_locate_point(line, pts), dtype=np.float64)
        return Attachment(perp, self.source[edge], self.target[edge], at,
                          self.length[edge] - at, self.edge_ids[edge])

    def attach_buildings(self, buildings: Buildings) -> Attachment:
        """Where each building's walk starts: its door node, else its centroid (:meth:`attach`).

        A door (:attr:`Buildings.door`) counts when a node of the network lies
        within :data:`NODE_TOLERANCE_M` of it; the walk then starts there with
        nothing to add.
        """
        att = self.attach(buildings.centroid)
        has = np.isfinite(buildings.door).all(axis=1)
        if not has.any():
            return att
        dist, node = cKDTree(self.xy).query(buildings.door[has])
        ok = np.asarray(dist) <= NODE_TOLERANCE_M
        idx = np.flatnonzero(has)[ok]
        node = np.asarray(node, dtype=np.int64)[ok]
        a, b = att.a.copy(), att.b.copy()
        perp, to_a, to_b = att.perp.copy(), att.to_a.copy(), att.to_b.copy()
        a[idx], b[idx] = node, node
        perp[idx], to_a[idx], to_b[idx] = 0.0, 0.0, 0.0
        return Attachment(perp, a, b, to_a, to_b, att.edge_id)

    def snap(self, xy: Any) -> tuple[np.ndarray, np.ndarray]:
        """The road node nearest to each point (m), and the straight distance to it."""
        if self._nodes is None:
            self._nodes = cKDTree(self.xy[:self.n_road_nodes])
        dist, idx = self._nodes.query(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)

    @overload
    def costs(self, att: Attachment, nodes: Any, access: Any, limit: float,
              on_step: Callable[[float], object] | None = None, *,
              sparse: Literal[False] = False) -> np.ndarray: ...

    @overload
    def costs(self, att: Attachment, nodes: Any, access: Any, limit: float,
              on_step: Callable[[float], object] | None = None, *,
              sparse: Literal[True]) -> csr_array: ...

    def costs(self, att: Attachment, nodes: Any, access: Any, limit: float,
              on_step: Callable[[float], object] | None = None, *,
              sparse: bool = False) -> np.ndarray | csr_array:
        """Walks (m) from every attached point to every site, ``inf`` beyond ``limit``.

        Parameters
        ----------
        att : Attachment
            The points (buildings).
        nodes, access : array_like
            Each site's node and the access from it to the door, m.
        limit : float
            Path lengths (from the foot of the perpendicular to the node) up to
            this are exact; longer ones are ``inf``.
        on_step : callable, optional
            Called with the fraction done after each batch of sites (a
            cancellation point in a job).
        sparse : bool
            Keep only the finite walks, batch by batch, in a
            ``scipy.sparse.csr_array`` (a missing entry is beyond ``limit``);
            no points × sites array is made.

        Returns
        -------
        numpy.ndarray or scipy.sparse.csr_array
            Points × sites; the same walks either way.
        """
        nodes = np.asarray(nodes, dtype=np.int64)
        access = np.asarray(access, dtype=np.float64)
        shape = (len(att.perp), len(nodes))
        out = None if sparse else np.full(shape, np.inf)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        unique, inverse = np.unique(nodes, return_inverse=True)
        by_node = np.argsort(inverse, kind="stable")  # the sites at each node, in order
        bounds = np.searchsorted(inverse[by_node], np.arange(unique.size + 1))
        for start in range(0, unique.size, BATCH):
            chunk = unique[start:start + BATCH]
            dist = np.asarray(dijkstra(self.matrix, directed=True, indices=chunk, limit=limit))
            via = np.minimum(att.to_a[None, :] + dist[:, att.a], att.to_b[None, :] + dist[:, att.b])
            # Exact up to the limit: an end beyond it can only give a longer way.
            via[via > limit] = np.inf
            for k in range(chunk.size):
                at = by_node[bounds[start + k]:bounds[start + k + 1]]
                if out is not None:
                    out[:, at] = (att.perp + via[k])[:, None] + access[at][None, :]
                    continue
                pts = np.flatnonzero(np.isfinite(via[k]))
                walk = att.perp[pts] + via[k, pts]
                for j in at:
                    rows.append(pts)
                    cols.append(np.full(pts.size, j))
                    vals.append(walk + access[j])
            if on_step is not None:
                on_step(min(1.0, (start + chunk.size) / unique.size))
        if out is not None:
            return out
        if not rows:
            return csr_array(shape, dtype=np.float64)
        return csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=shape)

    def distance(self, site_access_m: float = SITE_ACCESS_M, limit: float = np.inf
                 ) -> Callable[[Any, Any], np.ndarray]:
        """Walks on this network as the ``distance`` of ``from_geodataframe``.

        Clients walk from their centroid, sites are reached at their nearest
        node plus ``max(site_access_m, the distance to it)``, as in the analysis.
        Both frames must be in the network's frame (:attr:`epsg`).

        Examples
        --------
        >>> import geopandas as gpd, numpy as np, shapely
        >>> from scenarios.placement import PMedian
        >>> xy = np.array([[500_000.0 + 100 * i, 4_420_000.0] for i in range(4)])
        >>> net = WalkNetwork(xy, [0, 1, 2], [1, 2, 3],
        ...                   shapely.linestrings([[xy[i], xy[i + 1]] for i in range(3)]), 4548)
        >>> homes = gpd.GeoDataFrame({"hh": [10, 30]}, crs=4548, geometry=[
        ...     shapely.Point(500_050, 4_420_020), shapely.Point(500_250, 4_420_020)])
        >>> bins = gpd.GeoDataFrame({"name": ["west", "east"]}, crs=4548,
        ...                         geometry=[shapely.Point(*xy[0]), shapely.Point(*xy[3])])
        >>> m = PMedian.from_geodataframe(homes, bins, weights="hh", site_id="name",
        ...                               distance=net.distance(), p=1).solve()
        >>> m.sites, m.objective    # 10 × (20 + 250 + 12) + 30 × (20 + 50 + 12)
        (['east'], 5280.0)
        """
        def walks(clients: Any, sites: Any) -> np.ndarray:
            for frame in (clients, sites):
                if frame.crs is not None and frame.crs.to_epsg() != self.epsg:
                    raise ValueError(f"the frames must be in EPSG:{self.epsg}, got {frame.crs}")
            start = shapely.get_coordinates(shapely.centroid(np.asarray(clients.geometry.values)))
            at = shapely.get_coordinates(shapely.centroid(np.asarray(sites.geometry.values)))
            nodes, off = self.snap(at)
            return self.costs(self.attach(start), nodes, np.maximum(site_access_m, off), limit)
        return walks

    def nearest(self, att: Attachment, nodes: Any, access: Any
                ) -> tuple[np.ndarray, np.ndarray]:
        """Each point's walk (m) to its nearest site, and which site (-1: none reachable).

        One Dijkstra from a virtual node joined to every site's node by its
        access, as the generator's multi-source search (its sites all have
        the same access); the way along the point's edge to the nearer end
        (the start ``a`` on a tie) decides the site.
        """
        nodes = np.asarray(nodes, dtype=np.int64)
        access = np.asarray(access, dtype=np.float64)
        n_pts = len(att.perp)
        if nodes.size == 0:
            return np.full(n_pts, np.inf), np.full(n_pts, -1)
        n = self.n_nodes
        order = np.lexsort((np.arange(nodes.size), access, nodes))  # per node: least access
        first = np.ones(nodes.size, dtype=bool)
        first[1:] = nodes[order][1:] != nodes[order][:-1]
        best = order[first]
        aug = self.matrix.tocoo()
        matrix = coo_matrix((np.r_[aug.data, np.maximum(access[best], 1e-9)],
                             (np.r_[aug.row, np.full(best.size, n)],
                              np.r_[aug.col, nodes[best]])), shape=(n + 1, n + 1)).tocsr()
        dist, pred = dijkstra(matrix, directed=True, indices=n, return_predecessors=True)
        dist = np.asarray(dist)[:n]
        pred = np.asarray(pred)[:n]
        # the site node each node is reached from: pointer jumping up the tree
        parent = np.where((pred == n) | (pred < 0), np.arange(n), pred)
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        site_at = np.full(n, -1)
        site_at[nodes[best]] = best
        origin = np.where(np.isfinite(dist), site_at[parent], -1)
        via_a = att.to_a + dist[att.a]
        via_b = att.to_b + dist[att.b]
        walk = att.perp + np.minimum(via_a, via_b)
        which = np.where(via_a <= via_b, origin[att.a], origin[att.b])
        which = np.where(np.isfinite(walk), which, -1)
        return walk, which


_NETWORKS: weakref.WeakKeyDictionary[Graph, WalkNetwork] = weakref.WeakKeyDictionary()
_WITH_FOOTPATHS: weakref.WeakKeyDictionary[Graph, tuple[Any, WalkNetwork]] = \
    weakref.WeakKeyDictionary()

#: The footpaths of the walking network: every walkway and door path, and the gate
#: paths of open gates (a closed gate's path to the road is left out).
_FOOTPATHS_SQL = """
SELECT f.id, f.kind, ST_AsBinary(f.geom) AS g FROM onemap.footpath f
WHERE f.kind <> 'gate_path' OR NOT EXISTS (
    SELECT 1 FROM onemap.compound_gate c
    WHERE NOT c.is_open AND c.geom && ST_Expand(ST_StartPoint(f.geom), 1e-7)
      AND ST_DWithin(c.geom, ST_StartPoint(f.geom), 1e-7))
ORDER BY f.id
"""


def walk_network(graph: Graph) -> WalkNetwork:
    """The :class:`WalkNetwork` of a cached road graph, built once per graph."""
    net = _NETWORKS.get(graph)
    if net is None:
        net = WalkNetwork.from_graph(graph)
        _NETWORKS[graph] = net
    return net


def footpath_network(conn: psycopg.Connection[Any], graph: Graph) -> WalkNetwork:
    """The walking network: the road graph's, with the compounds' footpaths noded in.

    Built once per road graph and state of ``footpath`` and ``compound_gate``
    (their row counts and last change, read each time) and kept per process.
    """
    base = walk_network(graph)
    state = conn.execute(
        "SELECT (SELECT count(*) FROM onemap.footpath) AS n, "
        "(SELECT max(updated_at) FROM onemap.footpath) AS t, "
        "(SELECT count(*) FROM onemap.compound_gate WHERE NOT is_open) AS closed, "
        "(SELECT max(updated_at) FROM onemap.compound_gate) AS tg").fetchone()
    key = tuple(state.values()) if isinstance(state, dict) else tuple(state or ())
    got = _WITH_FOOTPATHS.get(graph)
    if got is not None and got[0] == key:
        return got[1]
    rows = conn.execute(_FOOTPATHS_SQL).fetchall()
    if rows:
        lines = shapely.transform(shapely.from_wkb([bytes(r["g"]) for r in rows]),
                                  lambda c: to_metric(c, base.epsg))
        net = base.with_footpaths(lines, [r["kind"] for r in rows], [r["id"] for r in rows])
    else:
        net = base
    _WITH_FOOTPATHS[graph] = (key, net)
    return net


def to_metric(lonlat: np.ndarray, epsg: int) -> np.ndarray:
    """EPSG:4490 longitude/latitude → the metric frame (m)."""
    lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    return np.column_stack(transform(lonlat[:, 0], lonlat[:, 1], 4490, epsg))


def to_lonlat(xy: np.ndarray, epsg: int) -> np.ndarray:
    """The metric frame (m) → EPSG:4490 longitude/latitude."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.column_stack(transform(xy[:, 0], xy[:, 1], epsg, 4490))


# --- demand and sites ---------------------------------------------------------------


@dataclass(frozen=True)
class Buildings:
    """Residential buildings: the demand.

    Attributes
    ----------
    ids : numpy.ndarray
        Building ids.
    households, residents : numpy.ndarray
        As the caller may see them.
    footprints : numpy.ndarray of Polygon
        In the metric frame.
    centroid : numpy.ndarray
        ``(n, 2)`` footprint centroids, m (where a walk starts without a door).
    door : numpy.ndarray
        ``(n, 2)`` the door, m, where the building's door path starts (a
        compound's building: its walk starts there and leaves through a
        gate); ``nan`` where there is none.
    """

    ids: np.ndarray
    households: np.ndarray
    residents: np.ndarray
    footprints: np.ndarray
    centroid: np.ndarray
    door: np.ndarray

    @classmethod
    def from_footprints(cls, ids: Sequence[int], households: Sequence[float],
                        residents: Sequence[float], footprints: Sequence[Any],
                        doors: Any = None) -> Buildings:
        """Buildings from footprints (and doors, ``nan`` for none) in the metric frame."""
        geoms = np.asarray(list(footprints), dtype=object)
        n = len(geoms)
        door = (np.full((n, 2), np.nan) if doors is None
                else np.asarray(doors, dtype=np.float64).reshape(n, 2))
        return cls(np.asarray(ids, dtype=np.int64), np.asarray(households, dtype=np.float64),
                   np.asarray(residents, dtype=np.float64), geoms,
                   shapely.get_coordinates(shapely.centroid(geoms)).reshape(-1, 2), door)

    @property
    def kg_per_day(self) -> np.ndarray:
        """Refuse per building and day, kg (residents × :data:`KG_PER_PERSON_DAY`)."""
        return self.residents * KG_PER_PERSON_DAY

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Sites:
    """Every site the analysis knows: refuse buildings and candidates.

    Attributes
    ----------
    keys : list of str
        ``f<id>`` (a stored facility), ``s<k>`` (a scenario's new one),
        ``c<vertex>`` (a street corner), ``p<k>`` (a caller's point).
    facility_id : list of int or None
        The ``refuse_facility`` id of stored ones.
    names : list of str or None
    capacity_t : numpy.ndarray
        t/day (``nan``: unknown).
    xy, lonlat : numpy.ndarray
        The site's point, m and EPSG:4490.
    node : numpy.ndarray
        Its nearest graph node.
    access : numpy.ndarray
        From the node to the door, m: :data:`SITE_ACCESS_M`, or the straight
        distance to the node when longer.
    stored : numpy.ndarray of bool
        In service in the stored city (the current layout).
    existing : numpy.ndarray of bool
        In service under the scenario (what the model keeps, adds to or closes).
    """

    keys: list[str]
    facility_id: list[int | None]
    names: list[str | None]
    capacity_t: np.ndarray
    xy: np.ndarray
    lonlat: np.ndarray
    node: np.ndarray
    access: np.ndarray
    stored: np.ndarray
    existing: np.ndarray

    @classmethod
    def build(cls, network: WalkNetwork, *, keys: Sequence[str], xy: Any,
              facility_id: Sequence[int | None] | None = None,
              names: Sequence[str | None] | None = None, capacity_t: Any = None,
              existing: Any = None, stored: Any = None, lonlat: Any = None,
              site_access_m: float = SITE_ACCESS_M) -> Sites:
        """Sites at points (m), each snapped to its nearest node of ``network``.

        ``stored`` defaults to ``existing`` (no scenario); ``existing`` to none.
        """
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        m = len(pts)
        node, dist = network.snap(pts) if m else (np.zeros(0, np.int64), np.zeros(0))
        ex = np.zeros(m, bool) if existing is None else np.asarray(existing, dtype=bool)
        return cls(list(keys), list(facility_id) if facility_id is not None else [None] * m,
                   list(names) if names is not None else [None] * m,
                   (np.full(m, np.nan) if capacity_t is None
                    else np.asarray(capacity_t, dtype=np.float64)),
                   pts, to_lonlat(pts, network.epsg) if lonlat is None
                   else np.asarray(lonlat, dtype=np.float64).reshape(-1, 2),
                   node, np.maximum(site_access_m, dist), ex.copy() if stored is None
                   else np.asarray(stored, dtype=bool), ex)

    def __len__(self) -> int:
        return len(self.keys)


# --- layouts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which sites serve, and each building's site and walk.

    Attributes
    ----------
    is_open : numpy.ndarray of bool
        Per site.
    site : numpy.ndarray of int
        Per building, the site serving it (-1: none).
    walk_m : numpy.ndarray
        Per building, the walk to it, m (``inf``: none).
    """

    is_open: np.ndarray
    site: np.ndarray
    walk_m: np.ndarray

    def within(self, reach: float) -> np.ndarray:
        """Per building: within ``reach`` of its site."""
        return self.walk_m <= reach + 1e-9 * max(1.0, reach)

    def stats(self, b: Buildings, reach: float) -> dict[str, Any]:
        """Households and residents within reach, mean (per household) and longest walk."""
        ok = self.within(reach)
        finite = np.isfinite(self.walk_m)
        hh = b.households[finite]
        mean = float(np.dot(hh, self.walk_m[finite]) / hh.sum()) if hh.sum() > 0 else None
        return {
            "households_within": int(b.households[ok].sum()),
            "households_beyond": int(b.households[~ok].sum()),
            "residents_within": int(b.residents[ok].sum()),
            "buildings_beyond": int((~ok).sum()),
            "mean_walk_m": None if mean is None else round(mean, 1),
            "max_walk_m": round(float(self.walk_m[finite].max()), 1) if finite.any() else None,
        }

    def loads(self, b: Buildings, n_sites: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per site: refuse served (t/day), households and residents served."""
        ok = self.site >= 0
        s = self.site[ok]
        return (np.bincount(s, b.kg_per_day[ok], n_sites) / 1000.0,
                np.bincount(s, b.households[ok], n_sites),
                np.bincount(s, b.residents[ok], n_sites))


def gap_clusters(b: Buildings, beyond: np.ndarray, link_m: float = GAP_LINK_M
                 ) -> list[np.ndarray]:
    """Buildings beyond reach grouped into areas: linked when their centroids are
    within ``link_m`` of each other (transitively), ordered by their first building.

    Returns
    -------
    list of numpy.ndarray
        Building positions per area.
    """
    idx = np.flatnonzero(beyond)
    if idx.size == 0:
        return []
    pairs = cKDTree(b.centroid[idx]).query_pairs(link_m, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(idx.size, idx.size))
    _, label = connected_components(graph, directed=False)
    groups = [idx[label == k] for k in range(label.max() + 1)]
    return sorted(groups, key=lambda g: int(g.min()))


def gap_polygon(b: Buildings, members: np.ndarray, buffer_m: float = GAP_BUFFER_M) -> Any:
    """The convex hull of the members' footprints grown by ``buffer_m`` (metric frame)."""
    return shapely.convex_hull(shapely.union_all(b.footprints[members])).buffer(buffer_m)


# --- the analysis -------------------------------------------------------------------


class RefusePlacement:
    """Where refuse buildings should stand: a model over walks on the network.

    Build with :func:`load` (from the database) or directly from a
    :class:`WalkNetwork`, :class:`Buildings` and :class:`Sites`; call
    :meth:`solve` (it computes the walks first, :meth:`compute_walks`); read
    ``before``, ``after``, ``status``, ``objective``, ``bound``, ``gap`` and
    :meth:`summary`.

    Parameters
    ----------
    network : WalkNetwork
        The walking network under the scenario (closed roads taken out).
    buildings : Buildings
    sites : Sites
        Refuse buildings (``stored``: the current layout; ``existing``: in
        service under the scenario) and candidates (neither).
    model : str
        One of :data:`MODELS`.
    mode : str
        One of :data:`MODES`.
    p : int, optional
        ``optimise``: the number of sites (default: as many as exist near the area).
    k : int
        ``add``: sites to add.
    close : sequence of int
        ``close``: ``refuse_facility`` ids that close.
    reach_m : float
        The walk a household should be within (coverage, set cover, the statistics).
    cutoff_m : float, optional
        Walks are computed up to this (default ``max(3 × reach, 1500)``); for the
        models that assign every building (p-median, capacitated, p-center) it
        grows to the longest walk from a building to its nearest site. A building
        is never assigned to a site farther than it.
    base_network : WalkNetwork, optional
        The stored network, for the current layout (default ``network``).

    Raises
    ------
    RefuseInputError
        Naming the input: an unknown model or mode, a negative reach, no
        demand, ``p`` or ``k`` larger than the sites there are, ``close``
        naming what is not an existing refuse building, a matrix too large.
    """

    def __init__(self, network: WalkNetwork, buildings: Buildings, sites: Sites, *,
                 model: str = "p-median", mode: str = "add", p: int | None = None,
                 k: int = 1, close: Sequence[int] = (), reach_m: float = REACH_M,
                 cutoff_m: float | None = None, base_network: WalkNetwork | None = None,
                 area_input: str = "polygon") -> None:
        if model not in MODELS:
            raise RefuseInputError("model", f"must be one of {', '.join(MODELS)}, got {model!r}")
        if mode not in MODES:
            raise RefuseInputError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if not (np.isfinite(reach_m) and reach_m >= 0):
            raise RefuseInputError("reach_m", f"must be a non-negative distance, got {reach_m!r} "
                                   "/ 步行距离须为非负数")
        self.network = network
        self.base_network = base_network or network
        self.buildings = buildings
        self.sites = sites
        self.model_name = model
        self.mode = mode
        self.reach_m = float(reach_m)
        self.cutoff_m = float(cutoff_m if cutoff_m is not None
                              else max(CUTOFF_FACTOR * self.reach_m, MIN_CUTOFF_M))
        self.k = int(k)
        self.close = tuple(sorted({int(c) for c in close}))
        #: Sites that close by request (mode ``close``).
        self.closing = np.zeros(0, dtype=np.int64)
        if len(buildings) == 0 or buildings.households.sum() <= 0:
            raise RefuseInputError(area_input, "no residential building with households you may "
                                   "see in the area / 区域内没有您可见的住户")
        self.att = network.attach_buildings(buildings)
        self.base_att = (self.att if self.base_network is network
                         else self.base_network.attach_buildings(buildings))
        # sites near enough to the demand to serve any of it (straight line)
        if len(sites):
            radius = max(self.cutoff_m, MIN_CUTOFF_M)
            _, near = cKDTree(buildings.centroid).query(sites.xy, distance_upper_bound=radius)
            self.relevant = np.asarray(near) < len(buildings)
        else:
            self.relevant = np.zeros(0, dtype=bool)
        self.columns, self.fixed, self.p = self._scope(p)
        if len(buildings) * self.columns.size > DENSE_CELLS:
            # sparse walks: what an analysis holds is the walks within the cut-off
            near = int(np.sum(cKDTree(buildings.centroid).query_ball_point(
                sites.xy[self.columns], self.cutoff_m, return_length=True)))
            if near > MAX_CELLS:
                raise RefuseInputError(area_input, f"{len(buildings)} buildings × "
                                       f"{self.columns.size} sites make about {near:,} walks "
                                       f"within {self.cutoff_m:g} m, more than the "
                                       f"{MAX_CELLS:,} one analysis holds; choose a smaller "
                                       "area / 区域过大")
        self.costs: np.ndarray | csr_array | None = None
        self.model: FacilityModel | None = None
        self.before: Layout | None = None
        self.after: Layout | None = None
        self.status: str | None = None
        self.message: str | None = None
        self.objective: float | None = None
        self.bound: float | None = None
        self.gap: float | None = None
        self.heuristic_objective: float | None = None
        self.solve_time: float | None = None
        self.uncoverable = np.zeros(len(buildings), dtype=bool)

    # ------------------------------------------------------------------ scope
    def _scope(self, p: int | None) -> tuple[np.ndarray, np.ndarray, int]:
        """The model's sites (columns), the fixed ones among them and p."""
        s = self.sites
        existing = np.flatnonzero(s.existing & self.relevant)
        candidates = np.flatnonzero(~s.existing & ~s.stored & self.relevant)
        known = {fid: j for j, fid in enumerate(s.facility_id) if fid is not None and s.existing[j]}
        if self.close and self.mode != "close":
            raise RefuseInputError("close", "is for mode close only / 仅用于 close 模式")
        if self.mode == "current":
            return existing, existing, existing.size
        if self.mode in ("optimise", "add") and candidates.size == 0:
            raise RefuseInputError("candidate_points", "there is no candidate site (no street "
                                   "corner in the area); give candidate_points / "
                                   "区域内没有候选位置")
        if self.mode == "optimise":
            cols = np.r_[existing, candidates]
            if p is None:
                p = max(1, existing.size)
            if p > cols.size:
                raise RefuseInputError("p", f"p={p} is larger than the {cols.size} sites "
                                       f"({existing.size} existing, {candidates.size} candidates) "
                                       "/ 超过候选位置数")
            return cols, np.zeros(0, np.int64), int(p)
        if self.mode == "add":
            if self.k > candidates.size:
                raise RefuseInputError("k", f"k={self.k} is larger than the {candidates.size} "
                                       "candidate sites / 超过候选位置数")
            cols = np.r_[existing, candidates]
            return cols, existing, existing.size + self.k
        if self.mode == "close-one":
            if existing.size < 2:
                raise RefuseInputError("mode", "close-one needs at least two refuse buildings "
                                       f"near the area, there are {existing.size} / "
                                       "区域附近垃圾楼不足两座")
            return existing, np.zeros(0, np.int64), existing.size - 1
        # close
        if not self.close:
            raise RefuseInputError("close", "give the refuse buildings that close / "
                                   "请给出关闭的垃圾楼")
        unknown = [c for c in self.close if c not in known]
        if unknown:
            shown = ", ".join(map(str, unknown[:10]))
            raise RefuseInputError("close", f"{shown} is not a refuse building in service / "
                                   "不是在用的垃圾楼")
        closing = {known[c] for c in self.close}
        self.closing = np.array(sorted(closing), dtype=np.int64)
        left = np.array([j for j in existing if j not in closing], dtype=np.int64)
        if left.size == 0:
            raise RefuseInputError("close", "every refuse building near the area would close / "
                                   "区域附近的垃圾楼将全部关闭")
        return left, left, left.size

    # ----------------------------------------------------------------- walks
    def compute_walks(self, on_step: Callable[[float], object] | None = None,
                      ) -> np.ndarray | csr_array:
        """The buildings × model sites walk matrix (m; ``inf`` beyond ``cutoff_m``).

        Dense up to :data:`DENSE_CELLS` pairs; beyond, a ``scipy.sparse.csr_array``
        of the walks within the cut-off only (a missing entry is ``inf``), which
        the placement models take as it is.
        """
        if self.costs is None:
            s = self.sites
            nodes, access = s.node[self.columns], s.access[self.columns]
            if self.model_name in ("p-median", "capacitated", "p-center") and nodes.size:
                # every building keeps at least its nearest site, however far
                walk, _ = self.network.nearest(self.att, nodes, access)
                finite = walk[np.isfinite(walk)]
                if finite.size:
                    self.cutoff_m = max(self.cutoff_m, float(finite.max()))
            sparse = len(self.buildings) * nodes.size > DENSE_CELLS
            self.costs = self.network.costs(self.att, nodes, access, self.cutoff_m, on_step,
                                            sparse=sparse)
        return self.costs

    def _nearest(self, is_open: np.ndarray, base: bool = False) -> Layout:
        net, att = (self.base_network, self.base_att) if base else (self.network, self.att)
        idx = np.flatnonzero(is_open)
        if idx.size == 0:  # no refuse building at all (yet)
            n = len(self.buildings)
            return Layout(is_open.copy(), np.full(n, -1), np.full(n, np.inf))
        walk, which = net.nearest(att, self.sites.node[idx], self.sites.access[idx])
        site = np.where(which >= 0, idx[np.maximum(which, 0)], -1)
        return Layout(is_open.copy(), site, np.where(site >= 0, walk, np.inf))

    # ----------------------------------------------------------------- solve
    def solve(self, time_limit: float = 30.0, on_progress: ProgressCallback | None = None,
              on_walks: Callable[[float], object] | None = None) -> RefusePlacement:
        """Measure the walks, run the model, and lay out before and after.

        Parameters
        ----------
        time_limit : float
            Seconds for the exact phase (:meth:`FacilityModel.solve`); when
            they run out the best layout is kept with its gap.
        on_progress : callable, optional
            Receives each :class:`~scenarios.placement.SolveProgress`: the
            heuristic answer first, then the gap as it closes.
        on_walks : callable, optional
            Receives the fraction of the walk matrix done.

        Returns
        -------
        self
        """
        started = time.perf_counter()
        s = self.sites
        self.before = self._nearest(s.stored, base=True)
        in_service = s.existing.copy()
        in_service[self.closing] = False
        if self.mode == "current":
            self.after = self._nearest(in_service)
            self.status = EVALUATED
            self.objective = self._objective(self.after)
            self.solve_time = time.perf_counter() - started
            if on_progress is not None:
                on_progress(SolveProgress("done", self.objective, None, None,
                                          self.solve_time, 1.0))
            return self
        costs = self.compute_walks(on_walks)
        model = self._model(costs)
        model.solve(time_limit=time_limit, on_progress=on_progress)
        self.model = model
        self.heuristic_objective = model.heuristic_objective
        self.status, self.message = model.status, model.message
        unreachable = (costs.nnz < costs.shape[0] * costs.shape[1] if isinstance(costs, csr_array)
                       else bool(np.isinf(costs).any()))
        if model.unserved and self.model_name in ("p-median", "capacitated", "p-center"):
            self.message = (f"{len(model.unserved)} buildings would walk more than "
                            f"{self.cutoff_m:g} m to every open site; give a larger p / "
                            f"有楼栋距所有站点超过 {self.cutoff_m:g} 米，请增加站点数")
        elif model.status == INFEASIBLE and self.model_name == "capacitated" \
                and "no layout" in (model.message or "") and unreachable:
            self.message = (f"{model.message}, each walking at most {self.cutoff_m:g} m / "
                            f"在 {self.cutoff_m:g} 米步行范围内无法按处理能力分配")
        # the sites outside the model's reach stay as they are
        untouched = in_service & ~np.isin(np.arange(len(s)), self.columns)
        if model.status == INFEASIBLE:
            self.after = self._nearest(in_service)
        else:
            is_open = untouched.copy()
            is_open[self.columns[model.is_open]] = True
            if isinstance(model, CapacitatedPMedian):
                assign = model.assignment_index
                site = np.where(assign >= 0, self.columns[np.maximum(assign, 0)], -1)
                rows = np.arange(len(self.buildings))
                walk = model.costs_at(rows, assign)
                self.after = Layout(is_open, site, walk)
            else:
                self.after = self._nearest(is_open)
            lost = self.buildings.households > 0
            if self.model_name in ("p-median", "capacitated", "p-center"):
                lost &= ~np.isfinite(model.costs_at(np.arange(len(self.buildings)),
                                                    model.assignment_index))
                if lost.any():
                    self.status = INFEASIBLE
                    self.message = (f"{int(lost.sum())} buildings would walk more than "
                                    f"{self.cutoff_m:g} m to every open site; give a larger p / "
                                    f"有楼栋距所有站点超过 {self.cutoff_m:g} 米，请增加站点数")
                    self.after = self._nearest(in_service)
            self.objective, self.bound, self.gap = model.objective, model.bound, model.gap
            if self.status == INFEASIBLE:
                self.objective = self.bound = self.gap = None
        self.solve_time = time.perf_counter() - started
        return self

    def _weights(self) -> np.ndarray:
        b = self.buildings
        return b.kg_per_day / 1000.0 if self.model_name == "capacitated" else b.households

    def _model(self, costs: np.ndarray | csr_array) -> FacilityModel:
        """The placement model over the model's sites (positions into ``columns``)."""
        m = self.columns.size
        fixed_pos = np.flatnonzero(np.isin(self.columns, self.fixed))
        ids = list(range(m))
        kw: dict[str, Any] = {"site_ids": ids, "client_ids": self.buildings.ids.tolist(),
                              "fixed": fixed_pos.tolist()}
        w = self._weights()
        if self.model_name == "set-cover":
            within = self.reach_m + 1e-9 * max(1.0, self.reach_m)
            if isinstance(costs, csr_array):  # a stored walk within reach, per building
                cover = np.bincount(np.repeat(np.arange(costs.shape[0]), np.diff(costs.indptr)),
                                    costs.data <= within, costs.shape[0]) > 0
            else:
                cover = (costs <= within).any(axis=1)
            self.uncoverable = ~cover & (w > 0)
            w = np.where(self.uncoverable, 0.0, w)
            if w.sum() <= 0:  # nobody can be covered: the fixed sites, or one
                w = np.where(self.uncoverable, 0.0, 1.0)
            return LSCP.from_cost_matrix(costs, w, reach=self.reach_m, **kw)
        kw["p"] = self.p
        if self.model_name == "coverage":
            return MCLP.from_cost_matrix(costs, w, reach=self.reach_m, **kw)
        if self.model_name == "p-center":
            return PCenter.from_cost_matrix(costs, w, **kw)
        if self.model_name == "capacitated":
            return CapacitatedPMedian.from_cost_matrix(
                costs, w, capacities=self.capacities()[self.columns], **kw)
        return PMedian.from_cost_matrix(costs, w, **kw)

    def capacities(self) -> np.ndarray:
        """Per site, t/day (an unknown capacity counts as 0)."""
        return np.nan_to_num(self.sites.capacity_t, nan=0.0)

    def _objective(self, layout: Layout) -> float:
        """The model's objective of a layout (mode ``current``)."""
        b, walk = self.buildings, layout.walk_m
        finite = np.isfinite(walk)
        if self.model_name == "coverage":
            return float(b.households[layout.within(self.reach_m)].sum())
        if self.model_name == "set-cover":
            return float((layout.is_open & self.relevant).sum())
        if self.model_name == "p-center":
            return float(walk[finite & (b.households > 0)].max()) if finite.any() else np.inf
        w = self._weights()
        return float(np.dot(w[finite], walk[finite]))

    # --------------------------------------------------------------- results
    @property
    def opened(self) -> list[str]:
        """Keys of the sites the layout opens (not in service before)."""
        if self.after is None or self.before is None:
            return []
        s = self.sites
        return [s.keys[j] for j in np.flatnonzero(self.after.is_open & ~s.stored)]

    @property
    def closed(self) -> list[int]:
        """``refuse_facility`` ids of the refuse buildings the layout closes."""
        if self.after is None:
            return []
        s = self.sites
        out = []
        for j in np.flatnonzero(s.stored & ~self.after.is_open):
            fid = s.facility_id[j]
            if fid is not None and (self.relevant[j] or not s.existing[j]):
                out.append(int(fid))
        return sorted(out)

    def gaps(self, layout: Layout | None = None) -> list[np.ndarray]:
        """Areas of buildings beyond reach of a layout (the proposal by default)."""
        layout = layout or self.after
        if layout is None:
            return []
        return gap_clusters(self.buildings, ~layout.within(self.reach_m))

    def summary(self, scenario: str | None = None) -> dict[str, Any]:
        """The figures of the run: model, layout, status, coverage before and after."""
        if self.before is None or self.after is None:
            raise ValueError("call solve() first")
        b = self.buildings
        before = self.before.stats(b, self.reach_m)
        after = self.after.stats(b, self.reach_m)

        def num(v: float | None, digits: int = 3) -> float | None:
            return None if v is None or not np.isfinite(v) else round(float(v), digits)

        open_in_scope = int((self.after.is_open & self.relevant).sum())
        return {
            "model": self.model_name, "mode": self.mode, "status": self.status,
            "message": self.message,
            "p": open_in_scope if self.model_name == "set-cover" else int(self.p),
            "objective": num(self.objective), "objective_unit": OBJECTIVE_UNITS[self.model_name],
            "bound": num(self.bound), "gap": num(self.gap, 6),
            "heuristic_objective": num(self.heuristic_objective),
            "solve_time_s": num(self.solve_time),
            "reach_m": self.reach_m, "cutoff_m": self.cutoff_m,
            "buildings": len(b), "households": int(b.households.sum()),
            "residents": int(b.residents.sum()),
            "refuse_t_per_day": round(float(b.kg_per_day.sum()) / 1000.0, 3),
            "existing": int((self.sites.existing & self.relevant).sum()),
            "candidates": int((~self.sites.existing & ~self.sites.stored & self.relevant).sum()),
            "sites_open": open_in_scope,
            "sites_opened": self.opened, "sites_closed": self.closed,
            "households_within_reach_before": before["households_within"],
            "households_within_reach_after": after["households_within"],
            "residents_within_reach_before": before["residents_within"],
            "residents_within_reach_after": after["residents_within"],
            "mean_walk_m_before": before["mean_walk_m"], "mean_walk_m_after": after["mean_walk_m"],
            "max_walk_m_before": before["max_walk_m"], "max_walk_m_after": after["max_walk_m"],
            "gaps_before": len(self.gaps(self.before)), "gaps_after": len(self.gaps(self.after)),
            "uncoverable_households": int(b.households[self.uncoverable].sum()),
            "scenario": scenario,
        }

    def site_features(self) -> list[dict[str, Any]]:
        """The proposal's sites as GeoJSON points (EPSG:4490): the open ones near the
        area (``existing`` or ``new``) and the refuse buildings it closes (``closed``),
        each with its load against its capacity, after and before."""
        if self.before is None or self.after is None:
            raise ValueError("call solve() first")
        s, b, n = self.sites, self.buildings, len(self.sites)
        load, hh, res = self.after.loads(b, n)
        load0, hh0, _ = self.before.loads(b, n)
        closed = set(self.closed)
        out = []
        for j in range(n):
            fid = s.facility_id[j]
            is_open = bool(self.after.is_open[j])
            if is_open and self.relevant[j]:
                status = "existing" if s.stored[j] else "new"
            elif s.stored[j] and fid is not None and fid in closed:
                status = "closed"
            else:
                continue
            cap = None if np.isnan(s.capacity_t[j]) else round(float(s.capacity_t[j]), 2)
            out.append({
                "type": "Feature", "id": s.keys[j],
                "geometry": {"type": "Point",
                             "coordinates": [round(float(v), DIGITS) for v in s.lonlat[j]]},
                "properties": {
                    "site": s.keys[j], "facility_id": fid, "name": s.names[j],
                    "status": status, "capacity_t": cap,
                    "load_t": round(float(load[j]), 3), "households": int(hh[j]),
                    "residents": int(res[j]),
                    "utilisation": round(float(load[j]) / cap, 3) if cap else None,
                    "over_capacity": bool(cap is not None and load[j] > cap + 1e-9),
                    "load_before_t": round(float(load0[j]), 3),
                    "households_before": int(hh0[j]),
                    "access_m": round(float(s.access[j]), 1),
                    "node_id": int(self.network.node_ids[s.node[j]])}})
        return out

    def assignment_features(self) -> list[dict[str, Any]]:
        """Each building's way to its site as a GeoJSON line (centroid → site, EPSG:4490)."""
        if self.before is None or self.after is None:
            raise ValueError("call solve() first")
        s, b = self.sites, self.buildings
        start = to_lonlat(b.centroid, self.network.epsg)
        within = self.after.within(self.reach_m)
        out = []
        for i in np.flatnonzero(self.after.site >= 0):
            j, j0 = int(self.after.site[i]), int(self.before.site[i])
            walk0 = float(self.before.walk_m[i])
            out.append({
                "type": "Feature", "id": int(b.ids[i]),
                "geometry": {"type": "LineString", "coordinates": [
                    [round(float(v), DIGITS) for v in start[i]],
                    [round(float(v), DIGITS) for v in s.lonlat[j]]]},
                "properties": {
                    "building_id": int(b.ids[i]), "site": s.keys[j],
                    "facility_id": s.facility_id[j],
                    "walk_m": round(float(self.after.walk_m[i]), 1),
                    "households": int(b.households[i]), "residents": int(b.residents[i]),
                    "within_reach": bool(within[i]),
                    "site_before": s.keys[j0] if j0 >= 0 else None,
                    "walk_before_m": round(walk0, 1) if np.isfinite(walk0) else None,
                    "changed": j != j0}})
        return out

    def gap_features(self) -> list[dict[str, Any]]:
        """The proposal's gap areas as GeoJSON polygons (EPSG:4490): households beyond reach."""
        if self.after is None:
            raise ValueError("call solve() first")
        b, walk = self.buildings, self.after.walk_m
        out = []
        for k, members in enumerate(self.gaps(self.after), start=1):
            poly = shapely.transform(gap_polygon(b, members),
                                     lambda c: np.round(to_lonlat(c, self.network.epsg), DIGITS))
            w = walk[members]
            finite = np.isfinite(w)
            out.append({
                "type": "Feature", "id": k, "geometry": shapely.geometry.mapping(poly),
                "properties": {
                    "gap_id": k, "buildings": int(members.size),
                    "households": int(b.households[members].sum()),
                    "residents": int(b.residents[members].sum()),
                    "max_walk_m": round(float(w[finite].max()), 1) if finite.any() else None,
                    "unreachable": int((~finite).sum())}})
        return out

    #: Rows of :meth:`comparison`: label and how to read it from the stats.
    COMPARED: ClassVar[tuple[str, ...]] = (
        "sites", "capacity_t_per_day", "households_within_reach", "households_beyond_reach",
        "share_within_reach_pct", "residents_within_reach", "mean_walk_m", "max_walk_m",
        "buildings_beyond_reach", "gap_areas", "sites_over_capacity", "buildings_reassigned")

    def comparison(self) -> list[tuple[str, float | None, float | None, float | None]]:
        """Current layout vs the proposal: (measure, current, proposed, change) rows."""
        if self.before is None or self.after is None:
            raise ValueError("call solve() first")
        b = self.buildings
        total = float(b.households.sum())
        cap = self.capacities()
        rows: list[tuple[str, float | None, float | None, float | None]] = []
        values: dict[str, tuple[float | None, float | None]] = {}
        for name, layout in (("before", self.before), ("after", self.after)):
            st = layout.stats(b, self.reach_m)
            load, _, _ = layout.loads(b, len(self.sites))
            scope = layout.is_open & self.relevant
            served = np.zeros(len(self.sites), dtype=bool)
            served[layout.site[layout.site >= 0]] = True
            over = int(((load > cap + 1e-9) & served).sum())
            entry = {
                "sites": float(scope.sum()),
                "capacity_t_per_day": round(float(cap[scope].sum()), 2),
                "households_within_reach": float(st["households_within"]),
                "households_beyond_reach": float(st["households_beyond"]),
                "share_within_reach_pct": round(100.0 * st["households_within"] / total, 2),
                "residents_within_reach": float(st["residents_within"]),
                "mean_walk_m": st["mean_walk_m"], "max_walk_m": st["max_walk_m"],
                "buildings_beyond_reach": float(st["buildings_beyond"]),
                "gap_areas": float(len(self.gaps(layout))),
                "sites_over_capacity": float(over),
            }
            for key, v in entry.items():
                prev = values.get(key, (None, None))
                values[key] = (v, prev[1]) if name == "before" else (prev[0], v)
        moved = float(((self.before.site != self.after.site)).sum())
        values["buildings_reassigned"] = (0.0, moved)
        for key in self.COMPARED:
            cur, new = values[key]
            change = None if cur is None or new is None else round(new - cur, 3)
            rows.append((key, cur, new, change))
        return rows


# --- loading ------------------------------------------------------------------------


def _area(conn: psycopg.Connection[Any], level: str | None, unit_id: int | None,
          polygon_wkt: str | None) -> Any:
    """The area's geometry (EPSG:4490)."""
    if polygon_wkt is not None:
        return shapely.from_wkt(polygon_wkt)
    if level not in _AREA_TABLES:
        raise RefuseInputError("level", f"must be one of {', '.join(_AREA_TABLES)}, got {level!r}")
    row = conn.execute(sql.SQL("SELECT ST_AsBinary(geom) AS g FROM {} WHERE id = %s").format(
        sql.Identifier("onemap", level)), (unit_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"unit_id: no {level} with id {unit_id} / 无此单元")
    return shapely.from_wkb(bytes(row["g"]))


def load_buildings(conn: psycopg.Connection[Any], network: WalkNetwork, *,
                   level: str | None = None, unit_id: int | None = None,
                   polygon_wkt: str | None = None) -> Buildings:
    """The residential buildings of an area with the households the caller may see."""
    rows = conn.execute("SELECT building_id, households, residents, ST_AsBinary(geom) AS g "
                        "FROM onemap.refuse_placement_demand(%s, %s, ST_GeomFromText(%s, 4490))",
                        (level if polygon_wkt is None else None,
                         unit_id if polygon_wkt is None else None, polygon_wkt)).fetchall()
    geoms = shapely.from_wkb([bytes(r["g"]) for r in rows]) if rows else np.zeros(0, object)
    metric = shapely.transform(geoms, lambda c: to_metric(c, network.epsg))
    ids = [int(r["building_id"]) for r in rows]
    doors = np.full((len(ids), 2), np.nan)
    if ids:
        at = {int(r["building_id"]): (r["x"], r["y"]) for r in conn.execute(
            "SELECT DISTINCT ON (building_id) building_id, ST_X(ST_StartPoint(geom)) AS x, "
            "ST_Y(ST_StartPoint(geom)) AS y FROM onemap.footpath "
            "WHERE kind = 'door' AND building_id = ANY(%s) ORDER BY building_id, id",
            (ids,)).fetchall()}
        has = np.array([i in at for i in ids])
        if has.any():
            doors[has] = to_metric(np.array([at[i] for i in ids if i in at], dtype=np.float64),
                                   network.epsg)
    return Buildings.from_footprints(ids, [r["households"] for r in rows],
                                     [r["residents"] for r in rows], metric, doors)


@dataclass
class _SiteRows:
    keys: list[str] = field(default_factory=list)
    facility_id: list[int | None] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    capacity: list[float] = field(default_factory=list)
    lonlat: list[tuple[float, float]] = field(default_factory=list)
    stored: list[bool] = field(default_factory=list)
    existing: list[bool] = field(default_factory=list)

    def add(self, key: str, fid: int | None, name: str | None, capacity: float | None,
            lon: float, lat: float, stored: bool, existing: bool) -> None:
        self.keys.append(key)
        self.facility_id.append(fid)
        self.names.append(name)
        self.capacity.append(np.nan if capacity is None else float(capacity))
        self.lonlat.append((float(lon), float(lat)))
        self.stored.append(stored)
        self.existing.append(existing)


def load_sites(conn: psycopg.Connection[Any], network: WalkNetwork, area: Any, *,
               scenario: Scenario | None = None,
               candidate_points: Sequence[tuple[float, float]] | None = None,
               candidates: str = "planned",
               new_capacity_t: float = NEW_CAPACITY_T,
               site_access_m: float = SITE_ACCESS_M) -> Sites:
    """Refuse buildings in service (with the scenario's edits) and the candidate sites.

    Candidates are the caller's points (EPSG:4490 lon/lat), or else, by
    ``candidates``: ``planned`` — the available planned sites inside ``area``
    (``refuse_candidate_site``, with their capacities); ``corners`` — every
    street corner of ``network`` inside ``area`` that no refuse building
    stands at (capacity ``new_capacity_t``).
    """
    if candidates not in CANDIDATES:
        raise RefuseInputError("candidates", f"must be one of {', '.join(CANDIDATES)}, "
                               f"got {candidates!r}")
    rows = _SiteRows()
    removed = scenario.removed("refuse_facility") if scenario is not None else frozenset()
    added = scenario.added("refuse_facility") if scenario is not None else ()
    capacities = scenario.capacities("refuse_facility") if scenario is not None else {}
    stored = conn.execute(
        "SELECT id, name, capacity_t_per_day::float8 AS cap, ST_X(geom) AS lon, ST_Y(geom) AS lat "
        "FROM onemap.refuse_facility WHERE kind = 'refuse_building' AND status = 'in_service' "
        "ORDER BY id").fetchall()
    seen = set()
    for r in stored:
        fid = int(r["id"])
        seen.add(fid)
        rows.add(f"f{fid}", fid, r["name"], capacities.get(fid, r["cap"]), r["lon"], r["lat"],
                 True, fid not in removed)
    by_id = [a for a in added if a.id is not None and a.id not in seen]
    if by_id:
        extra = {int(r["id"]): r for r in conn.execute(
            "SELECT id, name, capacity_t_per_day::float8 AS cap, ST_X(geom) AS lon, "
            "ST_Y(geom) AS lat FROM onemap.refuse_facility WHERE id = ANY(%s)",
            ([a.id for a in by_id],)).fetchall()}
        for a in by_id:
            r = extra.get(int(a.id or 0))
            if r is None:
                continue
            cap = a.capacity if a.capacity is not None else r["cap"]
            rows.add(f"f{r['id']}", int(r["id"]), a.name or r["name"],
                     capacities.get(int(r["id"]), cap), r["lon"], r["lat"], False, True)
    for k, a in enumerate((a for a in added if a.point is not None), start=1):
        assert a.point is not None
        rows.add(f"s{k}", None, a.name, a.capacity if a.capacity is not None else new_capacity_t,
                 a.point.lon, a.point.lat, False, True)
    n_existing = len(rows.keys)
    existing_xy = to_metric(np.array(rows.lonlat).reshape(-1, 2), network.epsg)
    taken = set(network.snap(existing_xy)[0].tolist()) if n_existing else set()
    if candidate_points is not None:
        for k, (lon, lat) in enumerate(candidate_points, start=1):
            rows.add(f"p{k}", None, None, new_capacity_t, lon, lat, False, False)
    elif candidates == "planned":
        for r in conn.execute(
                "SELECT id, code, name, capacity_t_per_day::float8 AS cap, ST_X(geom) AS lon, "
                "ST_Y(geom) AS lat FROM onemap.refuse_candidate_site "
                "WHERE status = 'available' AND ST_Intersects(geom, ST_GeomFromWKB(%s, 4490)) "
                "ORDER BY id", (shapely.to_wkb(area),)).fetchall():
            rows.add(str(r["code"] or f"h{r['id']}"), None, r["name"], r["cap"], r["lon"],
                     r["lat"], False, False)
    else:
        corner = network.degree() >= CORNER_DEGREE
        corner[network.n_road_nodes:] = False
        inside = shapely.contains_xy(area, network.lonlat[:, 0], network.lonlat[:, 1])
        for j in np.flatnonzero(corner & inside):
            if int(j) in taken:
                continue
            rows.add(f"c{network.node_ids[j]}", None, None, new_capacity_t,
                     network.lonlat[j, 0], network.lonlat[j, 1], False, False)
    lonlat = np.array(rows.lonlat, dtype=np.float64).reshape(-1, 2)
    xy = to_metric(lonlat, network.epsg)
    sites = Sites.build(network, keys=rows.keys, xy=xy, facility_id=rows.facility_id,
                        names=rows.names, capacity_t=rows.capacity, existing=rows.existing,
                        stored=rows.stored, lonlat=lonlat, site_access_m=site_access_m)
    # a corner candidate stands at its node (access: the door's distance)
    return sites


def load(conn: psycopg.Connection[Any], *, level: str | None = None,
         unit_id: int | None = None, polygon_wkt: str | None = None,
         model: str = "p-median", mode: str = "add", p: int | None = None, k: int = 1,
         close: Sequence[int] = (), reach_m: float = REACH_M,
         new_capacity_t: float = NEW_CAPACITY_T,
         candidate_points: Sequence[tuple[float, float]] | None = None,
         candidates: str = "planned",
         scenario: Scenario | None = None, graph: Graph | None = None) -> RefusePlacement:
    """Load what a refuse-placement analysis needs, through the caller's connection.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's (dict rows; row-level security decides the households).
    level, unit_id : str, int
        An admin unit (``district``, ``street_office``, ``community``, ``grid``).
    polygon_wkt : str
        Or a polygon (WKT, EPSG:4490).
    model, mode, p, k, close, reach_m
        As :class:`RefusePlacement`.
    new_capacity_t : float
        Capacity of a new site (t/day).
    candidate_points : sequence of (lon, lat), optional
        Candidate sites (EPSG:4490) instead of the stored ones.
    candidates : {"planned", "corners"}
        Without ``candidate_points``: the area's planned sites
        (``refuse_candidate_site``) or its street corners.
    scenario : spatial.whatif.Scenario, optional
        Its closed roads leave the walking network; its removed and added
        refuse facilities and changed capacities apply to the existing set.
    graph : spatial.network.Graph, optional
        The walking graph (default: ``road_graph(conn, "walk")``, cached).

    Returns
    -------
    RefusePlacement
        Ready to :meth:`~RefusePlacement.solve`.

    Raises
    ------
    RefuseInputError
        See :class:`RefusePlacement`.
    NotFoundError
        An admin unit the caller cannot see.

    Examples
    --------
    >>> from spatial.db import connect
    >>> with connect() as conn:  # doctest: +SKIP
    ...     rp = load(conn, level="community", unit_id=3, model="coverage", mode="add",
    ...               k=2).solve(time_limit=30)
    ...     rp.summary()["households_within_reach_after"], rp.opened
    """
    g = graph if graph is not None else road_graph(conn, "walk")
    base = footpath_network(conn, g)
    network = base.without(scenario.closed_roads()) if scenario is not None else base
    area = _area(conn, level, unit_id, polygon_wkt)
    buildings = load_buildings(conn, base, level=level, unit_id=unit_id,
                               polygon_wkt=polygon_wkt)
    sites = load_sites(conn, network, area, scenario=scenario,
                       candidate_points=candidate_points, candidates=candidates,
                       new_capacity_t=new_capacity_t)
    return RefusePlacement(network, buildings, sites, model=model, mode=mode, p=p, k=k,
                           close=close, reach_m=reach_m, base_network=base,
                           area_input="polygon" if polygon_wkt is not None else "unit_id")


__all__ = ["CANDIDATES", "CORNER_DEGREE", "EVALUATED", "GAP_BUFFER_M", "GAP_LINK_M",
           "KG_PER_PERSON_DAY", "MODELS", "MODES", "NEW_CAPACITY_T", "NODE_TOLERANCE_M",
           "REACH_M", "SITE_ACCESS_M", "Attachment", "Buildings", "Layout", "RefuseInputError",
           "RefusePlacement", "Sites", "WalkNetwork", "footpath_network", "gap_clusters",
           "gap_polygon", "load", "load_buildings", "load_sites", "to_lonlat", "to_metric",
           "walk_network"]
