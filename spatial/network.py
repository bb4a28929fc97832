"""Network graphs built from the database: roads and pipe networks, held in process.

One :class:`Graph` holds a network as compressed sparse rows (``scipy.sparse``):
node ids ↔ indices, edge ids, lengths in metres, the arcs each edge may be
travelled along (both ways, or one where a road is one-way). The building
blocks the analyses need are its methods: snapping a point to the nearest node
or edge, shortest paths and distances (``scipy.sparse.csgraph.dijkstra``),
what lies within a cost, and connected components after removing edges or
nodes (a closed road, closed valves).

Loaders read the views of ``180_network.sql`` through the caller's
connection, so row-level security applies as for any read:

- :func:`road_graph` — ``mode="drive"``: every road row, one-way rows only in
  their digitising direction; ``mode="walk"``: every road row both ways.
  ``road`` holds roads for vehicles (the OSM import rejects footways), back
  alleys (胡同, 街巷) are road rows of class ``alley`` and ``onemap.alley`` is
  their ledger along the same lines, and an expressway row stands for the
  whole right-of-way (60–80 m, side roads and pavements included), so walking
  follows every row. The footpaths inside compounds (``onemap.footpath``,
  ``057_footpaths.sql``) are not in this graph: the refuse-placement analysis
  nodes them in (``scenarios/refuse_placement.py``, ``footpath_network``), as
  the generator's own walking distances do (``democity/refuse.py``).
- :func:`pipe_graph` — one utility: pipe segments (not abandoned) as edges
  between their nodes, both ways; valves at a node cut the network there when
  closed, valves on a segment cut that segment; the nodes where the network
  is fed (``source``, ``tank``, ``pump_station``, ``regulator_station``,
  ``substation``; drainage: its ``outlet``) in :attr:`Graph.sources`.

Graphs are cached per process, keyed by (database, kind, parameters), and
reused by every job and request of the process. The first use in a database
starts a listener thread on ``onemap_tiles`` — the notifications
``150_tiles.sql`` sends at the commit of every write to ``road``,
``pipe_segment``, ``pipe_node`` and ``valve`` — that drops the graphs built
from the written table; the next use loads them again. A listener that loses
its connection drops every graph of its database (changes may have gone
unheard) and ends; the next use starts another. :func:`invalidate` is the
same hook for a caller that learns of a change some other way.

The network tables' read policies are whole-table (``onemap.can_read``: road
public, pipes internal; ``tests/spatial/test_network.py`` checks that no
policy narrows their rows), so one cached graph serves every caller allowed
to read the tables; each use first asks the caller's connection whether it
may, and is refused with :class:`~spatial.errors.PermissionDeniedError`
otherwise.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import tuple_row
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from spatial.db import listen_connection
from spatial.errors import PermissionDeniedError

LOGGER = logging.getLogger(__name__)

#: The channel ``150_tiles.sql`` notifies on at the commit of every write.
CHANNEL = "onemap_tiles"
#: Road graph modes.
ROAD_MODES = ("drive", "walk")
#: Utilities of ``onemap.pipe_segment``.
UTILITIES = ("water", "drainage", "gas", "heat", "power", "telecom")
#: Node kinds where a pressurised network is fed.
SUPPLY_KINDS = ("source", "tank", "pump_station", "regulator_station", "substation")
#: Seconds a first use waits for its listener to listen before loading uncached.
LISTEN_WAIT_SECONDS = 5.0
#: Edges shorter than this (m) get this cost: csgraph must see a positive weight.
MIN_COST = 1e-9
#: Mean Earth radius (m), for the local metric frame used in snapping.
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, eq=False)
class Valves:
    """The valves of a pipe graph, aligned arrays.

    Attributes
    ----------
    ids : numpy.ndarray
        ``onemap.valve.id``.
    node : numpy.ndarray
        Index of the node the valve stands at, -1 when it is on a segment (or
        not on this graph).
    edge : numpy.ndarray
        Index of the edge the valve sits on, -1 when it stands at a node.
    operable : numpy.ndarray of bool
        Whether it can be relied on when isolating an incident.
    closed : numpy.ndarray of bool
        Closed in normal operation (``normal_state = 'closed'``).
    """

    ids: np.ndarray
    node: np.ndarray
    edge: np.ndarray
    operable: np.ndarray
    closed: np.ndarray


@dataclass(frozen=True)
class Path:
    """A shortest path.

    Attributes
    ----------
    nodes : numpy.ndarray
        Node indices from origin to destination (empty when unreachable).
    edges : numpy.ndarray
        Edge indices along the way.
    length : float
        Its cost in metres (``inf`` when unreachable).
    """

    nodes: np.ndarray
    edges: np.ndarray
    length: float


@dataclass(eq=False)
class Graph:
    """A network as compressed sparse rows.

    Build one with :meth:`from_edges` (or the loaders :func:`road_graph` and
    :func:`pipe_graph`); it is read-only once built, so one instance serves
    every thread.

    Attributes
    ----------
    name : str
        ``road:drive``, ``road:walk``, ``pipe:water`` …
    node_ids : numpy.ndarray
        Node id of each index: the vertex key of ``onemap.network_vertex`` for
        roads (pgRouting's vertex ids), ``pipe_node.id`` for pipes.
    xy : numpy.ndarray
        ``(n, 2)`` longitude, latitude (EPSG:4490) of each node.
    edge_ids : numpy.ndarray
        Row id of each edge (``road.id``, ``pipe_segment.id``).
    source, target : numpy.ndarray
        Node index of each edge's ends (the digitising direction).
    length : numpy.ndarray
        Length of each edge, m (its cost).
    forward, backward : numpy.ndarray of bool
        Whether each edge may be travelled source → target, target → source.
    geoms : numpy.ndarray, optional
        Each edge's LineString (EPSG:4490), for snapping to edges.
    tables : frozenset of str
        Tables the graph was built from (what invalidates it).
    node_kind : numpy.ndarray, optional
        ``pipe_node.kind`` per node (pipes).
    sources : numpy.ndarray
        Indices of the nodes where the network is fed (pipes).
    valves : Valves, optional
        A pipe network's valves.
    matrix : scipy.sparse.csr_array
        ``(n, n)``, the cheapest arc from row to column (parallel edges keep
        the shortest); built in ``__post_init__``.
    arc_edge : numpy.ndarray
        The edge index behind each stored entry of :attr:`matrix`.

    Examples
    --------
    A square a-b-c-d with a one-way diagonal a → c:

    >>> g = Graph.from_edges("demo", node_ids=[1, 2, 3, 4],
    ...     edges=[(10, 1, 2, 100.0), (11, 2, 3, 100.0), (12, 3, 4, 100.0),
    ...            (13, 4, 1, 100.0), (14, 1, 3, 120.0)], oneway=[14])
    >>> float(g.distances([1], [3])[0, 0]), float(g.distances([3], [1])[0, 0])
    (120.0, 200.0)
    """

    name: str
    node_ids: np.ndarray
    xy: np.ndarray
    edge_ids: np.ndarray
    source: np.ndarray
    target: np.ndarray
    length: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    geoms: np.ndarray | None = None
    tables: frozenset[str] = frozenset()
    node_kind: np.ndarray | None = None
    sources: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    valves: Valves | None = None
    matrix: csr_array = field(init=False, repr=False)
    arc_edge: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.node_ids)
        if len(self.xy) != n:
            raise ValueError(f"xy has {len(self.xy)} rows for {n} nodes")
        m = len(self.edge_ids)
        for label in ("source", "target", "length", "forward", "backward"):
            if len(getattr(self, label)) != m:
                raise ValueError(f"{label} has {len(getattr(self, label))} values for {m} edges")
        if m and (self.source.min() < 0 or max(self.source.max(), self.target.max()) >= n
                  or self.target.min() < 0):
            raise ValueError("edge ends must be node indices in [0, n)")
        self.matrix, self.arc_edge = self._arcs(np.ones(m, dtype=bool))

    # Construction ---------------------------------------------------------------

    @classmethod
    def from_edges(cls, name: str, node_ids: Sequence[int],
                   edges: Sequence[tuple[int, int, int, float]], *,
                   oneway: Iterable[int] = (), xy: np.ndarray | None = None,
                   directed: bool = True) -> Graph:
        """A graph from an edge list (tests, hand-made cases, notebooks).

        Parameters
        ----------
        name : str
            What it is.
        node_ids : sequence of int
            Node ids, in index order.
        edges : sequence of (edge id, from node id, to node id, length)
            One tuple per edge.
        oneway : iterable of int
            Edge ids travelled only from → to.
        xy : numpy.ndarray, optional
            ``(n, 2)`` node coordinates (longitude, latitude); zeros if omitted.
        directed : bool
            False ignores ``oneway``.

        Returns
        -------
        Graph

        Raises
        ------
        ValueError
            An edge names a node id not in ``node_ids``.
        """
        ids = np.asarray(node_ids, dtype=np.int64)
        arr = np.array([(e[0], e[1], e[2]) for e in edges], dtype=np.int64).reshape(-1, 3)
        lengths = np.array([float(e[3]) for e in edges], dtype=np.float64)
        order = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids[order], arr[:, 1:]).clip(0, max(len(ids) - 1, 0))
        found = ids[order][pos] == arr[:, 1:] if len(ids) else np.zeros_like(arr[:, 1:], bool)
        if not found.all():
            bad = arr[:, 1:][~found]
            raise ValueError(f"edges name node ids not in node_ids: {sorted(set(bad.tolist()))}")
        st = order[pos]
        one = np.isin(arr[:, 0], np.fromiter(oneway, dtype=np.int64)) if directed \
            else np.zeros(len(arr), dtype=bool)
        return cls(name=name, node_ids=ids,
                   xy=np.zeros((len(ids), 2)) if xy is None else np.asarray(xy, float),
                   edge_ids=arr[:, 0].copy(), source=st[:, 0].copy(), target=st[:, 1].copy(),
                   length=lengths, forward=np.ones(len(arr), dtype=bool), backward=~one)

    def _arcs(self, keep: np.ndarray,
              removed_nodes: np.ndarray | None = None) -> tuple[csr_array, np.ndarray]:
        """CSR of the kept edges' arcs, the cheapest per (tail, head), and its edge indices."""
        fw = np.flatnonzero(self.forward & keep)
        bw = np.flatnonzero(self.backward & keep)
        tail = np.concatenate([self.source[fw], self.target[bw]])
        head = np.concatenate([self.target[fw], self.source[bw]])
        edge = np.concatenate([fw, bw])
        ok = tail != head
        if removed_nodes is not None and len(removed_nodes):
            gone = np.zeros(len(self.node_ids), dtype=bool)
            gone[removed_nodes] = True
            ok &= ~gone[tail] & ~gone[head]
        tail, head, edge = tail[ok], head[ok], edge[ok]
        cost = self.length[edge]
        order = np.lexsort((cost, head, tail))
        tail, head, edge = tail[order], head[order], edge[order]
        first = np.ones(len(tail), dtype=bool)
        first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
        tail, head, edge = tail[first], head[first], edge[first]
        n = len(self.node_ids)
        indptr = np.searchsorted(tail, np.arange(n + 1)).astype(np.int64)
        data = np.maximum(self.length[edge], MIN_COST)
        return csr_array((data, head.astype(np.int64), indptr), shape=(n, n)), edge

    # Lookups ----------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return len(self.edge_ids)

    @functools.cached_property
    def _node_order(self) -> np.ndarray:
        return np.argsort(self.node_ids, kind="stable")

    @functools.cached_property
    def _edge_order(self) -> np.ndarray:
        return np.argsort(self.edge_ids, kind="stable")

    def index(self, node_ids: Iterable[int] | int) -> np.ndarray:
        """Node indices of node ids.

        Parameters
        ----------
        node_ids : int or iterable of int
            Ids in :attr:`node_ids`.

        Returns
        -------
        numpy.ndarray
            One index per id.

        Raises
        ------
        ValueError
            An id is not a node of the graph.
        """
        return _lookup(self.node_ids, self._node_order, node_ids, "node")

    def edge_index(self, edge_ids: Iterable[int] | int) -> np.ndarray:
        """Edge indices of edge (row) ids.

        Raises
        ------
        ValueError
            An id is not an edge of the graph.
        """
        return _lookup(self.edge_ids, self._edge_order, edge_ids, "edge")

    # Snapping ---------------------------------------------------------------------

    @functools.cached_property
    def _frame(self) -> tuple[float, float, float]:
        """Origin and x scale of a local equirectangular frame in metres."""
        if not len(self.xy):
            return 0.0, 0.0, 1.0
        lon0, lat0 = (float(v) for v in np.median(self.xy, axis=0))
        return lon0, lat0, float(np.cos(np.deg2rad(lat0)))

    def _metric(self, lonlat: np.ndarray) -> np.ndarray:
        lon0, lat0, kx = self._frame
        k = np.deg2rad(1.0) * EARTH_RADIUS_M
        return np.column_stack([(lonlat[:, 0] - lon0) * kx * k, (lonlat[:, 1] - lat0) * k])

    @functools.cached_property
    def _node_tree(self) -> cKDTree:
        return cKDTree(self._metric(self.xy))

    @functools.cached_property
    def _edge_tree(self) -> tuple[shapely.STRtree, np.ndarray]:
        if self.geoms is None:
            raise ValueError(f"graph {self.name!r} has no edge geometries to snap to")
        local = shapely.transform(self.geoms, self._metric)
        return shapely.STRtree(local), local

    def nearest_node(self, lon: float | Sequence[float],
                     lat: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The node nearest to each point.

        Parameters
        ----------
        lon, lat : float or sequence of float
            Points in EPSG:4490 (or WGS84: they differ by centimetres).

        Returns
        -------
        index : numpy.ndarray
            Node index per point.
        distance : numpy.ndarray
            Straight distance, m (a local flat frame: well under 0.1 % off
            within a city).
        """
        pts = np.column_stack([np.atleast_1d(lon), np.atleast_1d(lat)]).astype(float)
        dist, idx = self._node_tree.query(self._metric(pts))
        return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=float)

    def nearest_edge(self, lon: float | Sequence[float], lat: float | Sequence[float]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The edge nearest to each point, and where along it the point projects.

        Parameters
        ----------
        lon, lat : float or sequence of float
            Points in EPSG:4490.

        Returns
        -------
        edge : numpy.ndarray
            Edge index per point.
        fraction : numpy.ndarray
            Position of the projected point from the edge's source (0) to its
            target (1), by length.
        distance : numpy.ndarray
            Straight distance from the point to the edge, m.

        Raises
        ------
        ValueError
            The graph was built without edge geometries.
        """
        tree, local = self._edge_tree
        pts = shapely.points(self._metric(
            np.column_stack([np.atleast_1d(lon), np.atleast_1d(lat)]).astype(float)))
        which, dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
        edge = np.full(len(pts), -1, dtype=np.int64)
        d = np.full(len(pts), np.inf)
        edge[which[0]] = which[1]
        d[which[0]] = dist
        frac = shapely.line_locate_point(local[edge], pts, normalized=True)
        return edge, np.asarray(frac, dtype=float), d

    # Questions --------------------------------------------------------------------

    def distances(self, origins: Iterable[int] | int, destinations: Iterable[int] | None = None,
                  *, limit: float = np.inf, by_index: bool = False) -> np.ndarray:
        """Shortest-path lengths from origins to destinations (m).

        Parameters
        ----------
        origins : int or iterable of int
            Node ids (node indices with ``by_index``).
        destinations : iterable of int, optional
            Node ids (or indices); every node when omitted.
        limit : float
            Stop searching beyond this cost; farther nodes get ``inf``.
        by_index : bool
            Origins and destinations are node indices, not ids.

        Returns
        -------
        numpy.ndarray
            ``(len(origins), len(destinations))``; ``inf`` where unreachable.
        """
        src = self._nodes(origins, by_index)
        dist = np.atleast_2d(dijkstra(self.matrix, directed=True, indices=src, limit=limit))
        if destinations is None:
            return dist
        return dist[:, self._nodes(destinations, by_index)]

    def distances_to(self, destinations: Iterable[int] | int, *, limit: float = np.inf,
                     by_index: bool = False) -> np.ndarray:
        """Shortest-path lengths from every node to each destination (m): one search per
        destination on the reversed arcs, instead of one per origin.

        Parameters
        ----------
        destinations : int or iterable of int
            Node ids (indices with ``by_index``).
        limit : float
            Stop searching beyond this cost; farther nodes get ``inf``.
        by_index : bool
            Destinations are node indices, not ids.

        Returns
        -------
        numpy.ndarray
            ``(len(destinations), number of nodes)``; ``inf`` where the node cannot reach it.
        """
        dst = self._nodes(destinations, by_index)
        return np.atleast_2d(dijkstra(self._reverse, directed=True, indices=dst, limit=limit))

    @functools.cached_property
    def _reverse(self) -> Any:
        return self.matrix.T.tocsr()

    def path(self, origin: int, destination: int, *, by_index: bool = False) -> Path:
        """The shortest path between two nodes.

        Parameters
        ----------
        origin, destination : int
            Node ids (indices with ``by_index``).
        by_index : bool
            They are node indices.

        Returns
        -------
        Path
            Node and edge indices along it, and its length.
        """
        s = int(self._nodes(origin, by_index)[0])
        t = int(self._nodes(destination, by_index)[0])
        dist, pred = dijkstra(self.matrix, directed=True, indices=s, return_predecessors=True)
        if not np.isfinite(dist[t]):
            return Path(np.empty(0, np.int64), np.empty(0, np.int64), float("inf"))
        nodes = [t]
        while nodes[-1] != s:
            nodes.append(int(pred[nodes[-1]]))
        seq = np.array(nodes[::-1], dtype=np.int64)
        return Path(seq, self._arc_edges(seq[:-1], seq[1:]), float(dist[t]))

    def within(self, origins: Iterable[int] | int, cost: float, *,
               by_index: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The nodes reachable from any origin within a cost (m).

        Parameters
        ----------
        origins : int or iterable of int
            Node ids (indices with ``by_index``).
        cost : float
            Largest path length.
        by_index : bool
            Origins are node indices.

        Returns
        -------
        index : numpy.ndarray
            Indices of the reachable nodes, origins included, ascending.
        distance : numpy.ndarray
            Their distance from the nearest origin.
        """
        src = self._nodes(origins, by_index)
        dist = dijkstra(self.matrix, directed=True, indices=src, limit=cost, min_only=True)
        idx = np.flatnonzero(dist <= cost)
        return idx, dist[idx]

    def components(self, *, removed_edges: Iterable[int] = (),
                   removed_nodes: Iterable[int] = ()) -> np.ndarray:
        """Connected components (ignoring direction) after removing edges and nodes.

        Parameters
        ----------
        removed_edges : iterable of int
            Edge indices taken out (a closed road, a valve on a segment).
        removed_nodes : iterable of int
            Node indices taken out (closed valves at nodes): nothing passes
            through them; the edges ending there stay with their other end.

        Returns
        -------
        numpy.ndarray
            A component label per node (0, 1, …); -1 for removed nodes.
        """
        keep = np.ones(self.n_edges, dtype=bool)
        keep[np.fromiter(removed_edges, dtype=np.int64)] = False
        gone = np.fromiter(removed_nodes, dtype=np.int64)
        m, _ = self._arcs(keep, gone)
        _, labels = connected_components(m, directed=True, connection="weak")
        labels = labels.astype(np.int64)
        if len(gone):
            labels[gone] = -1
            kept = labels >= 0
            _, labels[kept] = np.unique(labels[kept], return_inverse=True)
        return labels

    def without(self, *, edges: Iterable[int] = (), nodes: Iterable[int] = ()) -> Graph:
        """This graph with edges (closed roads) and nodes (closed valves) taken out.

        Parameters
        ----------
        edges, nodes : iterable of int
            Edge and node indices.

        Returns
        -------
        Graph
            Same node and edge indices; nothing travels the removed edges or
            through the removed nodes.
        """
        keep = np.ones(self.n_edges, dtype=bool)
        keep[np.fromiter(edges, dtype=np.int64)] = False
        gone = np.fromiter(nodes, dtype=np.int64)
        if len(gone):
            keep &= ~np.isin(self.source, gone) & ~np.isin(self.target, gone)
        return Graph(self.name, self.node_ids, self.xy, self.edge_ids, self.source, self.target,
                     self.length, self.forward & keep, self.backward & keep, self.geoms,
                     self.tables, self.node_kind, self.sources, self.valves)

    def valve_cuts(self, valve_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """What closing valves takes out: (node indices, edge indices).

        Parameters
        ----------
        valve_ids : iterable of int, optional
            ``valve.id`` values; the valves closed in normal operation when
            omitted.

        Returns
        -------
        nodes, edges : numpy.ndarray
            For :meth:`components` (``removed_nodes``, ``removed_edges``) or
            :meth:`without`.

        Raises
        ------
        ValueError
            The graph has no valves, or an id is not one of its valves.
        """
        if self.valves is None:
            raise ValueError(f"graph {self.name!r} has no valves")
        v = self.valves
        if valve_ids is None:
            sel = np.flatnonzero(v.closed)
        else:
            sel = _lookup(v.ids, np.argsort(v.ids, kind="stable"), valve_ids, "valve")
        nodes, edges = v.node[sel], v.edge[sel]
        return np.unique(nodes[nodes >= 0]), np.unique(edges[edges >= 0])

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.DiGraph`` (node indices; ``weight``, ``edge``).

        Every arc of :attr:`matrix`; for checking against networkx and for
        planners' notebooks.
        """
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(range(self.n_nodes))
        coo = self.matrix.tocoo()
        g.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(),
                                      strict=True))
        return g

    # Helpers ----------------------------------------------------------------------

    def _nodes(self, nodes: Iterable[int] | int, by_index: bool) -> np.ndarray:
        if not by_index:
            return self.index(nodes)
        idx = np.atleast_1d(np.asarray(nodes if not isinstance(nodes, Iterable)
                                       else list(nodes), dtype=np.int64))
        bad = (idx < 0) | (idx >= self.n_nodes)
        if bad.any():
            raise ValueError(f"node indices out of range [0, {self.n_nodes}): "
                             f"{idx[bad][:5].tolist()}")
        return idx

    def _arc_edges(self, tails: np.ndarray, heads: np.ndarray) -> np.ndarray:
        out = np.empty(len(tails), dtype=np.int64)
        ip, ind = self.matrix.indptr, self.matrix.indices
        for k, (u, v) in enumerate(zip(tails.tolist(), heads.tolist(), strict=True)):
            lo, hi = int(ip[u]), int(ip[u + 1])
            out[k] = self.arc_edge[lo + int(np.flatnonzero(ind[lo:hi] == v)[0])]
        return out


def _lookup(ids: np.ndarray, order: np.ndarray, wanted: Iterable[int] | int,
            what: str) -> np.ndarray:
    want = np.atleast_1d(np.asarray(wanted if not isinstance(wanted, Iterable)
                                    else list(wanted), dtype=np.int64))
    if not len(ids):
        if len(want):
            raise ValueError(f"no {what} ids in an empty graph, got {want[:5].tolist()}")
        return want
    pos = np.searchsorted(ids[order], want).clip(0, len(ids) - 1)
    found = ids[order][pos] == want
    if not found.all():
        raise ValueError(f"not {what} ids of this graph: {want[~found][:5].tolist()}")
    return order[pos].astype(np.int64)


# Loading ------------------------------------------------------------------------


def _rows(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] = ()) -> list[Any]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def load_road_graph(conn: psycopg.Connection[Any], mode: str = "drive") -> Graph:
    """Read the road graph from the database, uncached (see :func:`road_graph`).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (its row-level security applies).
    mode : {"drive", "walk"}
        Drive: one-way rows only in their digitising direction. Walk: every
        row both ways.

    Returns
    -------
    Graph

    Raises
    ------
    ValueError
        For another mode.
    """
    if mode not in ROAD_MODES:
        raise ValueError(f"mode must be one of {ROAD_MODES}, got {mode!r}")
    rows = _rows(conn, "SELECT id, source, target, length_m, oneway, ST_AsBinary(geom) "
                       "FROM onemap.network_road_edge ORDER BY id")
    if rows:
        cols = list(zip(*rows, strict=True))
        eid = np.array(cols[0], dtype=np.int64)
        ends = np.column_stack([np.array(cols[1], dtype=np.int64),
                                np.array(cols[2], dtype=np.int64)])
        length = np.array(cols[3], dtype=float)
        oneway = np.array(cols[4], dtype=bool)
        geoms = shapely.from_wkb(np.array(cols[5], dtype=object))
        pts = np.stack([shapely.get_coordinates(shapely.get_point(geoms, 0)),
                        shapely.get_coordinates(shapely.get_point(geoms, -1))], axis=1)
    else:
        eid = np.empty(0, np.int64)
        ends = np.empty((0, 2), np.int64)
        length = np.empty(0)
        oneway = np.empty(0, bool)
        pts = np.empty((0, 2, 2))
        geoms = np.empty(0, dtype=object)
    node_ids, first, inv = np.unique(ends.ravel(), return_index=True, return_inverse=True)
    inv = inv.reshape(-1, 2)
    xy = pts.reshape(-1, 2)[first]
    both = np.ones(len(eid), dtype=bool)
    return Graph(f"road:{mode}", node_ids, xy, eid, inv[:, 0].copy(), inv[:, 1].copy(), length,
                 both, both.copy() if mode == "walk" else ~oneway, geoms,
                 frozenset({"road"}))


def load_pipe_graph(conn: psycopg.Connection[Any], utility: str) -> Graph:
    """Read one utility's pipe graph from the database, uncached (see :func:`pipe_graph`).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (its row-level security applies).
    utility : str
        One of :data:`UTILITIES`.

    Returns
    -------
    Graph
        Undirected (both ways; :attr:`Graph.source` → :attr:`Graph.target` is
        the flow direction for drainage), with :attr:`Graph.valves`,
        :attr:`Graph.sources` and :attr:`Graph.node_kind`.

    Raises
    ------
    ValueError
        For an unknown utility.
    """
    if utility not in UTILITIES:
        raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
    nodes = _rows(conn, "SELECT id, kind, ST_X(geom), ST_Y(geom) FROM onemap.pipe_node "
                        "WHERE utility = %s ORDER BY id", (utility,))
    edges = _rows(conn, "SELECT id, source, target, length_m, ST_AsBinary(geom) "
                        "FROM onemap.network_pipe_edge WHERE utility = %s ORDER BY id",
                  (utility,))
    valves = _rows(conn, "SELECT id, node_id, segment_id, operable, normal_state = 'closed' "
                         "FROM onemap.valve WHERE utility = %s ORDER BY id", (utility,))
    node_ids = np.array([r[0] for r in nodes], dtype=np.int64)
    kind = np.array([r[1] for r in nodes], dtype=object)
    xy = np.array([(r[2], r[3]) for r in nodes], dtype=float).reshape(-1, 2)
    order = np.arange(len(node_ids))  # ORDER BY id: already sorted
    eid = np.array([r[0] for r in edges], dtype=np.int64)
    st = _lookup(node_ids, order, [r[1] for r in edges] + [r[2] for r in edges], "pipe node")
    m = len(eid)
    both = np.ones(m, dtype=bool)
    supply = ("outlet",) if utility == "drainage" else SUPPLY_KINDS
    v_node = np.array([-1 if r[1] is None else r[1] for r in valves], dtype=np.int64)
    v_seg = np.array([-1 if r[2] is None else r[2] for r in valves], dtype=np.int64)
    pos = np.searchsorted(node_ids, v_node).clip(0, max(len(node_ids) - 1, 0))
    at_node = (v_node >= 0) & (node_ids[pos] == v_node) if len(node_ids) \
        else np.zeros(len(v_node), bool)
    pos_e = np.searchsorted(eid, v_seg).clip(0, max(m - 1, 0))
    on_seg = (v_seg >= 0) & (eid[pos_e] == v_seg) if m else np.zeros(len(v_seg), bool)
    valve_set = Valves(
        ids=np.array([r[0] for r in valves], dtype=np.int64),
        node=np.where(at_node, pos, -1).astype(np.int64),
        edge=np.where(on_seg, pos_e, -1).astype(np.int64),
        operable=np.array([r[3] for r in valves], dtype=bool),
        closed=np.array([r[4] for r in valves], dtype=bool))
    return Graph(f"pipe:{utility}", node_ids, xy, eid, st[:m].copy(), st[m:].copy(),
                 np.array([r[3] for r in edges], dtype=float), both, both.copy(),
                 shapely.from_wkb(np.array([r[4] for r in edges], dtype=object)),
                 frozenset({"pipe_segment", "pipe_node", "valve"}), kind,
                 np.flatnonzero(np.isin(kind, supply)).astype(np.int64), valve_set)


# The per-process cache ------------------------------------------------------------

Key = tuple[str, str, tuple[tuple[str, Any], ...]]


def _database(conn: psycopg.Connection[Any]) -> str:
    """Which database a connection reaches: host, port and name."""
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname}"


def _listen_conninfo(conn: psycopg.Connection[Any]) -> str:
    """A conninfo for a second connection like the caller's (as its login user)."""
    params = dict(conn.info.get_parameters())
    password = conn.info.password
    if password:
        params["password"] = password
    return make_conninfo("", **params)


class _Listener:
    """LISTEN on :data:`CHANNEL` for one database; drops what the messages name."""

    def __init__(self, cache: GraphCache, database: str, conninfo: str) -> None:
        self.cache = cache
        self.database = database
        self.conninfo = conninfo
        self.listening = threading.Event()
        self.stopped = threading.Event()
        self.ready = threading.Event()  # listening, or ended without
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="onemap-network-listen",
                                       daemon=True)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            with listen_connection(self.conninfo, CHANNEL, "onemap-network") as conn:
                self.listening.set()
                self.ready.set()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        self.cache._notified(self.database, note.payload)
                        if self._stop.is_set():
                            break
        except Exception as exc:  # a lost connection: what was cached may be stale
            if not self._stop.is_set():
                LOGGER.warning("network graph listener for %s stopped (%s); its graphs are "
                               "dropped and reloaded on next use", self.database,
                               type(exc).__name__)
                LOGGER.debug("network listener failure", exc_info=True)
        finally:
            self.stopped.set()
            self.ready.set()
            self.cache._listener_ended(self)


class GraphCache:
    """Graphs per (database, kind, parameters), dropped when their tables change.

    One instance per process (:data:`CACHE`) serves every job and request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: dict[Key, Graph] = {}
        self._key_locks: dict[Key, threading.Lock] = {}
        self._epoch: dict[tuple[str, str], int] = {}
        self._listeners: dict[str, _Listener] = {}
        #: Graphs loaded (not served from the cache), for tests and logs.
        self.loads = 0

    def get(self, conn: psycopg.Connection[Any], kind: str, params: dict[str, Any],
            tables: Sequence[str], load: Callable[[], Graph]) -> Graph:
        """The cached graph, or ``load()`` cached for the next caller.

        Parameters
        ----------
        conn : psycopg.Connection
            The caller's connection: whose database, and whether it may read.
        kind : str
            ``road`` or ``pipe``.
        params : dict
            What else tells graphs apart (mode, utility).
        tables : sequence of str
            Tables the graph reads (checked against the caller's rights).
        load : callable
            Loads the graph through ``conn``.

        Returns
        -------
        Graph

        Raises
        ------
        PermissionDeniedError
            The caller may not read one of ``tables``.
        """
        _check_readable(conn, tables)
        db = _database(conn)
        key: Key = (db, kind, tuple(sorted(params.items())))
        with self._lock:
            graph = self._graphs.get(key)
            if graph is not None:
                return graph
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                graph = self._graphs.get(key)
                if graph is not None:
                    return graph
            listening = self._ensure_listener(db, conn)
            with self._lock:
                before = tuple(self._epoch.get((db, t), 0) for t in tables)
            graph = load()
            with self._lock:
                self.loads += 1
                after = tuple(self._epoch.get((db, t), 0) for t in tables)
                if listening and before == after and db in self._listeners:
                    self._graphs[key] = graph
            return graph

    def invalidate(self, table: str, database: str | None = None) -> int:
        """Drop the graphs built from a table.

        Parameters
        ----------
        table : str
            A table name (``road``, ``pipe_segment`` …).
        database : str, optional
            ``host:port/dbname``; every database when omitted.

        Returns
        -------
        int
            How many graphs were dropped.
        """
        with self._lock:
            dbs = {database} if database else {k[0] for k in self._graphs} | {
                d for d, _ in self._epoch}
            for db in dbs:
                self._epoch[(db, table)] = self._epoch.get((db, table), 0) + 1
            drop = [k for k, g in self._graphs.items()
                    if table in g.tables and (database is None or k[0] == database)]
            for k in drop:
                del self._graphs[k]
        if drop:
            LOGGER.info("network graphs dropped after a change to %s: %s", table,
                        ", ".join(f"{k[1]}{dict(k[2])}" for k in drop))
        return len(drop)

    def clear(self, database: str | None = None) -> None:
        """Drop every graph (of one database), and bump every epoch so loads under
        way are not kept."""
        with self._lock:
            for k in [k for k in self._graphs if database is None or k[0] == database]:
                del self._graphs[k]
            for ek in list(self._epoch):
                if database is None or ek[0] == database:
                    self._epoch[ek] += 1
            for t in ("road", "pipe_segment", "pipe_node", "valve"):
                if database is not None:
                    self._epoch[(database, t)] = self._epoch.get((database, t), 0) + 1

    def cached(self, conn_or_database: psycopg.Connection[Any] | str, kind: str,
               **params: Any) -> bool:
        """Whether a graph is cached right now (tests, logs)."""
        db = conn_or_database if isinstance(conn_or_database, str) \
            else _database(conn_or_database)
        with self._lock:
            return (db, kind, tuple(sorted(params.items()))) in self._graphs

    def close(self, timeout: float = 5.0) -> None:
        """Stop every listener and drop every graph."""
        with self._lock:
            listeners = list(self._listeners.values())
        for lst in listeners:
            lst.stop()
        for lst in listeners:
            lst.stopped.wait(timeout)
        self.clear()

    def _ensure_listener(self, db: str, conn: psycopg.Connection[Any]) -> bool:
        with self._lock:
            lst = self._listeners.get(db)
            if lst is None:
                lst = _Listener(self, db, _listen_conninfo(conn))
                self._listeners[db] = lst
                lst.thread.start()
        if lst.ready.wait(LISTEN_WAIT_SECONDS) and lst.listening.is_set() \
                and not lst.stopped.is_set():
            return True
        LOGGER.warning("network graph listener for %s not listening; loading uncached", db)
        return False

    def _notified(self, db: str, payload: str) -> None:
        try:
            table = json.loads(payload)["table"]
        except (ValueError, KeyError, TypeError):
            LOGGER.debug("ignoring notification %r", payload)
            return
        if isinstance(table, str):
            self.invalidate(table, db)

    def _listener_ended(self, lst: _Listener) -> None:
        with self._lock:
            if self._listeners.get(lst.database) is lst:
                del self._listeners[lst.database]
        self.clear(lst.database)


def _check_readable(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    rows = _rows(conn, """
        SELECT t FROM unnest(%s::text[]) AS t
        WHERE row_security_active(format('onemap.%%I', t)) AND NOT onemap.can_read(t)""",
                 (list(tables),))
    if rows:
        names = ", ".join(r[0] for r in rows)
        raise PermissionDeniedError(
            f"your role may not read {names} / 当前角色无权查看 {names}")


#: The process's graphs.
CACHE = GraphCache()


def road_graph(conn: psycopg.Connection[Any], mode: Literal["drive", "walk"] | str = "drive",
               *, cache: GraphCache | None = None) -> Graph:
    """The road graph, from the process's cache or loaded through ``conn``.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    mode : {"drive", "walk"}
        Drive: every road row, one-way rows only in their digitising direction.
        Walk: every road row, both ways (see the module docstring for why no
        class is left out).
    cache : GraphCache, optional
        Defaults to :data:`CACHE`.

    Returns
    -------
    Graph
        Nodes are the vertex keys of ``onemap.network_vertex`` (pgRouting's
        vertex ids on ``onemap.network_road_edge``); edges are road rows.

    Raises
    ------
    ValueError
        For another mode.
    PermissionDeniedError
        The caller may not read ``road``.

    Examples
    --------
    >>> from spatial.db import connect
    >>> with connect() as conn:  # doctest: +SKIP
    ...     g = road_graph(conn, "walk")
    ...     i, d = g.nearest_node(116.47, 39.91)
    ...     reach, dist = g.within(i, 500.0, by_index=True)
    """
    if mode not in ROAD_MODES:
        raise ValueError(f"mode must be one of {ROAD_MODES}, got {mode!r}")
    return (cache or CACHE).get(conn, "road", {"mode": mode}, ("road",),
                                lambda: load_road_graph(conn, mode))


def pipe_graph(conn: psycopg.Connection[Any], utility: str, *,
               cache: GraphCache | None = None) -> Graph:
    """One utility's pipe graph, from the process's cache or loaded through ``conn``.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    utility : str
        One of :data:`UTILITIES`.
    cache : GraphCache, optional
        Defaults to :data:`CACHE`.

    Returns
    -------
    Graph
        Nodes are ``pipe_node`` ids, edges ``pipe_segment`` ids; with valves
        and sources.

    Raises
    ------
    ValueError
        For an unknown utility.
    PermissionDeniedError
        The caller may not read the pipe tables.
    """
    if utility not in UTILITIES:
        raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
    return (cache or CACHE).get(conn, "pipe", {"utility": utility},
                                ("pipe_segment", "pipe_node", "valve"),
                                lambda: load_pipe_graph(conn, utility))


#: pgRouting's edge query per road mode, over the same view the loaders read.
PGR_ROAD_EDGES = {
    "drive": "SELECT id, source, target, length_m AS cost, "
             "CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost "
             "FROM onemap.network_road_edge",
    "walk": "SELECT id, source, target, length_m AS cost, length_m AS reverse_cost "
            "FROM onemap.network_road_edge",
}
#: Metres per degree of latitude at least, and of longitude at the equator at most
#: (WGS84/CGCS2000 ellipsoid), for a box that surely holds a disc.
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_321.0


def vertex_lonlat(vertex: int) -> tuple[float, float]:
    """The grid point of a road vertex key (``onemap.network_vertex``), EPSG:4490.

    Examples
    --------
    >>> key = (round((116.4 + 180) * 1e6) << 28) | round((39.9 + 90) * 1e6)
    >>> tuple(round(v, 6) for v in vertex_lonlat(key))
    (116.4, 39.9)
    """
    return (vertex >> 28) / 1e6 - 180.0, (vertex & ((1 << 28) - 1)) / 1e6 - 90.0


def pgr_road_within(conn: psycopg.Connection[Any], origin: int, cost: float,
                    mode: str = "drive") -> tuple[np.ndarray, np.ndarray]:
    """Road vertices within ``cost`` metres of ``origin``, by pgRouting in the database.

    For a one-off question where no graph is cached: ``pgr_drivingDistance``
    over ``onemap.network_road_edge`` cut to the box around the disc of radius
    ``cost`` (no path that short leaves it, so the answer is exact), read
    through the caller's connection — its row-level security, and its own
    uncommitted edits, apply. ``bench/bench_network.py`` measures when this
    beats loading the graph (:func:`road_graph`).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    origin : int
        A road vertex key.
    cost : float
        Largest path length, m.
    mode : {"drive", "walk"}
        As in :func:`road_graph`.

    Returns
    -------
    vertices : numpy.ndarray
        Vertex keys, ascending (the origin included when it is on a road).
    distance : numpy.ndarray
        Their path length from the origin, m.

    Raises
    ------
    ValueError
        For another mode, or a cost that is not a finite number ≥ 0.
    """
    if mode not in ROAD_MODES:
        raise ValueError(f"mode must be one of {ROAD_MODES}, got {mode!r}")
    if not (np.isfinite(cost) and cost >= 0):
        raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
    lon, lat = vertex_lonlat(int(origin))
    dlat = cost / _M_PER_DEG_LAT * 1.01 + 1e-6
    dlon = cost / (_M_PER_DEG_LON * max(np.cos(np.deg2rad(abs(lat) + dlat)), 1e-6)) * 1.01 \
        + 1e-6
    # pgRouting takes its edge query as text, so the box is written into it: four
    # floats formatted by psycopg (sql.Literal), never text from a caller.
    edges = sql.SQL("{} WHERE geom && ST_MakeEnvelope({}, {}, {}, {}, 4490)").format(
        sql.SQL(PGR_ROAD_EDGES[mode]), *(sql.Literal(float(v)) for v in (
            lon - dlon, lat - dlat, lon + dlon, lat + dlat))).as_string(conn)
    got = _rows(conn, "SELECT node, agg_cost FROM pgr_drivingDistance(%s, %s::bigint, "
                      "%s::float8, true) ORDER BY node", (edges, int(origin), float(cost)))
    return (np.array([r[0] for r in got], dtype=np.int64),
            np.array([r[1] for r in got], dtype=float))


def pgr_road_distances(conn: psycopg.Connection[Any], origin: int,
                       destinations: Iterable[int], mode: str = "drive") -> np.ndarray:
    """Shortest-path lengths from one road vertex to others, by pgRouting in the database.

    The one-off counterpart of :meth:`Graph.distances` (``pgr_dijkstraCost``
    over ``onemap.network_road_edge``, the caller's connection).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    origin : int
        A road vertex key.
    destinations : iterable of int
        Vertex keys.
    mode : {"drive", "walk"}
        As in :func:`road_graph`.

    Returns
    -------
    numpy.ndarray
        One length (m) per destination; ``inf`` where unreachable, 0 for the
        origin itself.

    Raises
    ------
    ValueError
        For another mode.
    """
    if mode not in ROAD_MODES:
        raise ValueError(f"mode must be one of {ROAD_MODES}, got {mode!r}")
    dest = [int(d) for d in destinations]
    got = dict(_rows(conn, "SELECT end_vid, agg_cost FROM pgr_dijkstraCost(%s, %s::bigint, "
                           "%s::bigint[], true)", (PGR_ROAD_EDGES[mode], int(origin), dest)))
    return np.array([0.0 if d == int(origin) else got.get(d, np.inf) for d in dest])


def road_within(conn: psycopg.Connection[Any], origin: int, cost: float,
                mode: str = "drive", *, cache: GraphCache | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Road vertices within ``cost`` of ``origin``, by whichever side is faster now.

    With the graph cached in this process, :meth:`Graph.within` (under a
    millisecond at scale L); without, :func:`pgr_road_within` in the database
    (a few milliseconds), rather than loading the graph for one question
    (200 ms at L). See ``bench/README.md`` (network benchmark).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    origin : int
        A road vertex key.
    cost : float
        Largest path length, m.
    mode : {"drive", "walk"}
        As in :func:`road_graph`.
    cache : GraphCache, optional
        Defaults to :data:`CACHE`.

    Returns
    -------
    vertices : numpy.ndarray
        Vertex keys, ascending.
    distance : numpy.ndarray
        Their path length from the origin, m.
    """
    c = cache or CACHE
    if not c.cached(conn, "road", mode=mode):
        return pgr_road_within(conn, origin, cost, mode)
    g = road_graph(conn, mode, cache=c)
    idx, dist = g.within(origin, cost)
    order = np.argsort(g.node_ids[idx], kind="stable")
    return g.node_ids[idx][order], dist[order]


def road_distances(conn: psycopg.Connection[Any], origin: int, destinations: Iterable[int],
                   mode: str = "drive", *, cache: GraphCache | None = None) -> np.ndarray:
    """Shortest-path lengths from one road vertex, by whichever side is faster now.

    With the graph cached, :meth:`Graph.distances`; without,
    :func:`pgr_road_distances` (one pgRouting query beats loading the graph for
    one question; from the second question on, the loaded graph wins).

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    origin : int
        A road vertex key.
    destinations : iterable of int
        Vertex keys.
    mode : {"drive", "walk"}
        As in :func:`road_graph`.
    cache : GraphCache, optional
        Defaults to :data:`CACHE`.

    Returns
    -------
    numpy.ndarray
        One length (m) per destination; ``inf`` where unreachable.
    """
    c = cache or CACHE
    dest = [int(d) for d in destinations]
    if not c.cached(conn, "road", mode=mode):
        return pgr_road_distances(conn, origin, dest, mode)
    return road_graph(conn, mode, cache=c).distances([origin], dest)[0]


def invalidate(table: str, database: str | None = None) -> int:
    """Drop the process's graphs built from ``table`` (see :meth:`GraphCache.invalidate`)."""
    return CACHE.invalidate(table, database)


__all__ = [
    "CACHE", "ROAD_MODES", "SUPPLY_KINDS", "UTILITIES", "Graph", "GraphCache", "Path", "Valves",
    "invalidate", "load_pipe_graph", "load_road_graph", "pgr_road_distances", "pgr_road_within",
    "pipe_graph", "road_distances", "road_graph", "road_within", "vertex_lonlat",
]
