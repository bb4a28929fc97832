"""Service area (服务范围): the roads reachable within a distance over the road network.

From one point or from facilities, along the road graph of
:mod:`spatial.network` (walking: every road both ways; driving: one-way
roads in their direction), every road edge a trip of at most ``distance_m``
metres enters, with how far in it gets. A what-if scenario
(:mod:`spatial.whatif`) changes the question without touching the stored
city: its ``close_road`` edits take edges out (:meth:`Graph.without`), its
``remove_facility`` / ``add_facility`` edits change the origins when they are
facilities, and ``set_capacity`` the capacity they add up to.

:class:`ServiceArea` is the analysis (spopt style: build, :meth:`~ServiceArea.solve`,
read the attributes); :func:`service_area` loads what it needs through the
caller's connection and runs it.

Examples
--------
Three roads in a row, 100 m each; 150 m from the west end reaches the first
road and half of the second:

>>> from spatial.network import Graph
>>> g = Graph.from_edges("row", [1, 2, 3, 4], [(10, 1, 2, 100.0), (11, 2, 3, 100.0),
...                                             (12, 3, 4, 100.0)])
>>> sa = ServiceArea(g, origins=[0], distance_m=150.0).solve()
>>> [(e.road_id, e.reached_m, e.complete) for e in sa.edges]
[(10, 100.0, True), (11, 50.0, False)]
>>> ServiceArea(g, origins=[0], distance_m=150.0, closed=[11]).solve().reachable_m
100.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql
from scipy.sparse.csgraph import dijkstra
from shapely.ops import substring

from spatial.db import fetch_dicts
from spatial.errors import InvalidInputError
from spatial.network import Graph, road_graph
from spatial.whatif import FACILITY_COLLECTIONS, Scenario

#: Buildings within this many metres of a reached road count as reached.
ACCESS_M = 50.0


@dataclass(frozen=True)
class ReachedEdge:
    """A road edge a trip enters within the distance.

    Attributes
    ----------
    road_id : int
        ``road.id``.
    index : int
        Its edge index in the graph.
    distance_m : float
        Path length to where the trip enters it (its nearer end), m.
    reached_m : float
        How much of it lies within the distance, m.
    length_m : float
        Its length, m.
    from_source, from_target : float
        Metres reached from its digitising start and from its end.
    """

    road_id: int
    index: int
    distance_m: float
    reached_m: float
    length_m: float
    from_source: float
    from_target: float

    @property
    def complete(self) -> bool:
        """Whether the whole edge is within reach."""
        return self.reached_m >= self.length_m - 1e-9


@dataclass(frozen=True)
class Origin:
    """Where a trip starts: a point, or a facility (``collection``, ``id``; ``id`` None for
    a new facility of a scenario)."""

    lon: float
    lat: float
    collection: str | None = None
    id: int | None = None
    name: str | None = None
    capacity: float | None = None


@dataclass
class ServiceArea:
    """The road edges reachable from origins within a distance.

    Parameters
    ----------
    graph : Graph
        A road graph (:func:`spatial.network.road_graph`).
    origins : sequence of int
        Node indices trips start from.
    distance_m : float
        The largest path length, m.
    closed : iterable of int
        Road ids taken out (a scenario's closed roads); ids not in the graph
        are ignored.

    Attributes
    ----------
    node_distance : numpy.ndarray
        Path length from the nearest origin per node (``inf`` beyond the distance).
    edges : list of ReachedEdge
        The edges reached, by road id.
    reachable_m : float
        The reached road length, m.
    """

    graph: Graph
    origins: Sequence[int]
    distance_m: float
    closed: Iterable[int] = ()
    node_distance: np.ndarray = field(init=False, repr=False)
    edges: list[ReachedEdge] = field(init=False, default_factory=list)
    reachable_m: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.distance_m) and self.distance_m >= 0):
            raise ValueError(f"distance_m must be a finite number >= 0, got {self.distance_m!r}")
        closed = np.fromiter((int(c) for c in self.closed), dtype=np.int64)
        closed = closed[np.isin(closed, self.graph.edge_ids)]
        self.closed_applied = np.unique(closed)
        self.network = (self.graph.without(edges=self.graph.edge_index(self.closed_applied))
                        if len(self.closed_applied) else self.graph)

    def solve(self) -> ServiceArea:
        """Run Dijkstra from every origin at once (nearest origin wins); returns ``self``."""
        g = self.network
        n = g.n_nodes
        if not len(self.origins) or not n:
            self.node_distance = np.full(n, np.inf)
            self.edges, self.reachable_m = [], 0.0
            return self
        src = np.unique(np.asarray(self.origins, dtype=np.int64))
        dist = np.asarray(dijkstra(g.matrix, directed=True, indices=src,
                                   limit=self.distance_m, min_only=True), dtype=float)
        dist[dist > self.distance_m] = np.inf
        self.node_distance = dist
        cost = self.distance_m
        ds, dt = dist[g.source], dist[g.target]
        with np.errstate(invalid="ignore"):
            a = np.where(g.forward & np.isfinite(ds), np.clip(cost - ds, 0, g.length), 0.0)
            b = np.where(g.backward & np.isfinite(dt), np.clip(cost - dt, 0, g.length), 0.0)
        reached = np.minimum(g.length, a + b)
        entry = np.minimum(np.where(g.forward, ds, np.inf), np.where(g.backward, dt, np.inf))
        hit = np.flatnonzero((reached > 0) | ((g.length <= 0) & np.isfinite(entry)))
        self.edges = sorted((ReachedEdge(int(g.edge_ids[e]), int(e), float(entry[e]),
                                         float(reached[e]), float(g.length[e]), float(a[e]),
                                         float(b[e])) for e in hit), key=lambda r: r.road_id)
        self.reachable_m = float(sum(r.reached_m for r in self.edges))
        return self

    def reached_geometry(self, edge: ReachedEdge) -> Any:
        """The reached part of an edge: its LineString, or the reached pieces from both ends."""
        geoms = self.graph.geoms
        if geoms is None:
            raise ValueError(f"graph {self.graph.name!r} has no edge geometries")
        line = geoms[edge.index]
        if edge.complete or edge.length_m <= 0:
            return line
        parts = []
        if edge.from_source > 0:
            parts.append(substring(line, 0.0, edge.from_source / edge.length_m, normalized=True))
        if edge.from_target > 0:
            parts.append(substring(line, 1.0 - edge.from_target / edge.length_m, 1.0,
                                   normalized=True))
        return parts[0] if len(parts) == 1 else shapely.multilinestrings(parts)

    def features(self) -> list[dict[str, Any]]:
        """The reached edges as GeoJSON features (``id`` the road id, EPSG:4490)."""
        out = []
        for e in self.edges:
            geom = self.reached_geometry(e)
            out.append({"type": "Feature", "id": e.road_id,
                        "geometry": shapely.geometry.mapping(geom),
                        "properties": {"road_id": e.road_id,
                                       "distance_m": round(e.distance_m, 2),
                                       "reached_m": round(e.reached_m, 2),
                                       "length_m": round(e.length_m, 2),
                                       "complete": e.complete}})
        return out

    def wkb(self) -> list[bytes]:
        """The reached parts as WKB (for the households near them)."""
        return [shapely.to_wkb(self.reached_geometry(e)) for e in self.edges]


def facility_origins(conn: psycopg.Connection[Any], collection: str, ids: Sequence[int],
                     scenario: Scenario | None = None) -> list[Origin]:
    """Facilities as origins, through the caller's connection, with a scenario's edits.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (dict rows).
    collection : str
        One of :data:`spatial.whatif.FACILITY_COLLECTIONS`.
    ids : sequence of int
        The facilities named (checked visible by the process input).
    scenario : Scenario, optional
        Its ``remove_facility`` edits take ids out, ``add_facility`` edits add
        existing or new facilities, ``set_capacity`` edits change capacities.

    Returns
    -------
    list of Origin
        By id (existing ones), then the new ones in edit order.
    """
    if collection not in FACILITY_COLLECTIONS:
        raise ValueError(f"collection must be one of {sorted(FACILITY_COLLECTIONS)}, "
                         f"got {collection!r}")
    wanted = set(ids)
    added = scenario.added(collection) if scenario is not None else ()
    if scenario is not None:
        wanted -= scenario.removed(collection)
        wanted |= {a.id for a in added if a.id is not None}
    query = sql.SQL("SELECT id, name, ST_X(geom) AS lon, ST_Y(geom) AS lat, {cap}::float8 AS cap "
                    "FROM {table} WHERE id = ANY(%s) ORDER BY id").format(
        cap=sql.Identifier(FACILITY_COLLECTIONS[collection]),
        table=sql.Identifier("onemap", collection))
    capacities = scenario.capacities(collection) if scenario is not None else {}
    overrides = {a.id: a for a in added if a.id is not None}
    out = []
    for r in fetch_dicts(conn, query, (sorted(wanted),)):
        capacity = r["cap"]
        if r["id"] in overrides and overrides[r["id"]].capacity is not None:
            capacity = overrides[r["id"]].capacity
        capacity = capacities.get(r["id"], capacity)
        out.append(Origin(r["lon"], r["lat"], collection, r["id"], r["name"], capacity))
    for a in added:
        if a.point is not None:
            out.append(Origin(a.point.lon, a.point.lat, collection, None, a.name, a.capacity))
    return out


@dataclass
class Result:
    """A service area with what :func:`service_area` measured around it."""

    area: ServiceArea
    origins: list[Origin]
    households: int
    mode: str

    def summary(self, scenario: Scenario | None = None) -> dict[str, Any]:
        """The figures: reachable length (km), edges, households, origins, capacity."""
        caps = [o.capacity for o in self.origins if o.capacity is not None]
        facilities = [o for o in self.origins if o.collection is not None]
        return {
            "mode": self.mode, "distance_m": self.area.distance_m,
            "reachable_km": round(self.area.reachable_m / 1000.0, 4),
            "edges": len(self.area.edges), "households": self.households,
            "origins": len(self.origins),
            "facilities": sorted(o.id for o in facilities if o.id is not None),
            "new_facilities": sum(1 for o in facilities if o.id is None),
            "capacity_total": round(float(sum(caps)), 2) if facilities else None,
            "closed_roads": len(self.area.closed_applied),
            "scenario": None if scenario is None else str(scenario.id),
        }


def service_area(
    conn: psycopg.Connection[Any],
    *,
    origins: Sequence[Origin],
    distance_m: float,
    mode: str = "walk",
    scenario: Scenario | None = None,
    access_m: float = ACCESS_M,
    graph: Graph | None = None,
) -> Result:
    """The service area of origins, on the caller's connection.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (row-level security applies to roads and households).
    origins : sequence of Origin
        Points or facilities (:func:`facility_origins`); each starts at the road
        node nearest to it.
    distance_m : float
        The largest path length, m.
    mode : {"walk", "drive"}
        As in :func:`spatial.network.road_graph`.
    scenario : Scenario, optional
        Its closed roads leave the network.
    access_m : float
        Households in buildings within this many metres of a reached road count.
    graph : Graph, optional
        The road graph (default: :func:`spatial.network.road_graph`, cached).

    Returns
    -------
    Result

    Raises
    ------
    InvalidInputError
        There are no roads to start from.
    """
    g = graph if graph is not None else road_graph(conn, mode)
    if not g.n_nodes and origins:
        raise InvalidInputError("there are no roads to start from / 没有可用的道路")
    nodes: list[int] = []
    if origins:
        idx, _ = g.nearest_node([o.lon for o in origins], [o.lat for o in origins])
        nodes = idx.tolist()
    closed = scenario.closed_roads() if scenario is not None else frozenset()
    area = ServiceArea(g, nodes, distance_m, closed).solve()
    households = 0
    if area.edges:
        row = fetch_dicts(conn, "SELECT onemap.households_near("
                                "ARRAY(SELECT ST_GeomFromWKB(w, 4490) FROM unnest(%s::bytea[]) w),"
                                " %s) AS n", (area.wkb(), access_m))
        households = int(row[0]["n"])
    return Result(area, list(origins), households, mode)


def compare_numbers(base: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: {base, scenario, delta}}`` for the numbers two summaries share.

    Examples
    --------
    >>> compare_numbers({"edges": 5, "mode": "walk"}, {"edges": 3, "mode": "walk"})
    {'edges': {'base': 5, 'scenario': 3, 'delta': -2}}
    """
    out = {}
    for key, value in base.items():
        v2 = other.get(key)
        if isinstance(value, bool) or isinstance(v2, bool):
            continue
        if isinstance(value, int | float) and isinstance(v2, int | float):
            delta = v2 - value
            out[key] = {"base": value, "scenario": v2,
                        "delta": round(delta, 6) if isinstance(delta, float) else delta}
    return out


__all__ = ["ACCESS_M", "Origin", "ReachedEdge", "Result", "ServiceArea", "compare_numbers",
           "facility_origins", "service_area"]
