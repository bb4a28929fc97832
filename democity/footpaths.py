"""Compound gates and footpaths: how people walk out of their compound.

A residential compound (小区) is fenced; its residents leave it through a
gate (小区出入口) and walk to the street. Inside, paths run between the
buildings. The generator draws them as a real survey would record them:

* **paths** (``kind = 'path'``) — the compound's walkways: the middle line
  between buildings and between buildings and the fence (the medial axis of
  the open ground, from the Voronoi diagram of points along every building
  and the fence, keeping the ridges between two different obstacles that lie
  in the open ground), merged into polylines between junctions;
* **doors** (``kind = 'door'``, with ``building_id``) — from a point on the
  building's wall (its door) straight to the nearest walkway junction of its
  own Voronoi cell, so a door path never crosses another building; the door
  path starts at the door;
* **gates** — one to three per compound on the fence where it faces a road
  (more for larger compounds, at least 100 m apart), each joined to the
  walkways (a ``path``) and to the nearest point of the nearest road
  (``kind = 'gate_path'``: from the gate to the road).

Every group of walkways that a door reaches gets a gate of its own, so each
building's door leads to a road. Buildings outside compounds (courtyards of
the old quarters, shops) have no door path: their walk starts at the street.

:func:`build` writes ``compound_gate`` and ``footpath`` and publishes the
walking graph in ``ctx.graphs["walk"]``: the road graph with its edges split
where gate paths reach them, plus every footpath, and each building's door
node in ``ctx.frames["door"]``. ``democity/refuse.py`` measures the walks to
refuse buildings on it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from scipy.spatial import QhullError, Voronoi

from democity.context import METRIC_EPSG, CityContext

LOGGER = logging.getLogger(__name__)

#: Points along walls and fences every this many metres (the walkways' detail).
SPACING_M = 6.0
#: Walkways keep this far from walls and fences (m).
CLEARANCE_M = 1.0
#: One gate per this much fence (m), one to three.
FENCE_PER_GATE_M = 500.0
MAX_GATES = 3
#: Gates of one compound stand at least this far apart (m).
GATE_SPACING_M = 100.0
#: The fence "faces a road" within this much of its nearest point to one (m).
FACING_SLACK_M = 10.0
#: Walkway lines are simplified to this tolerance (m) where that crosses nothing.
SIMPLIFY_M = 0.5


@dataclass
class CompoundPaths:
    """What one compound contributes: gates, lines and their kinds."""

    gates: list[shapely.Point] = field(default_factory=list)
    #: Per line: (LineString, kind, building id or None, road edge (u, v) or None).
    lines: list[tuple[shapely.LineString, str, int | None, tuple[Any, Any] | None]] = \
        field(default_factory=list)
    #: building id -> door point
    doors: dict[int, tuple[float, float]] = field(default_factory=dict)


def _largest(geom: Any) -> shapely.Polygon:
    parts = getattr(geom, "geoms", [geom])
    return max(parts, key=lambda g: g.area)


def _ring_points(ring: Any, spacing: float) -> np.ndarray:
    coords = shapely.get_coordinates(shapely.segmentize(ring, spacing))
    return coords[:-1] if len(coords) > 1 and np.allclose(coords[0], coords[-1]) else coords


class _Roads:
    """The road edges as lines, for gate placement and links."""

    def __init__(self, graph: nx.Graph) -> None:
        self.edges = [(u, v) for u, v in graph.edges()]
        self.lines = np.array([graph.edges[u, v]["geometry"] for u, v in self.edges],
                              dtype=object)
        self.tree = shapely.STRtree(self.lines)

    def nearest(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        geoms = shapely.points(pts)
        idx, dist = self.tree.query_nearest(geoms, all_matches=False, return_distance=True)
        edge = np.empty(len(pts), dtype=np.int64)
        d = np.empty(len(pts))
        edge[idx[0]] = idx[1]
        d[idx[0]] = dist
        return edge, d


def compound_paths(rng: np.random.Generator, compound: Any, footprints: list[Any],
                   building_ids: list[int], roads: _Roads,
                   all_footprints: shapely.STRtree) -> CompoundPaths:
    """Walkways, doors and gates of one compound (metric frame).

    Parameters
    ----------
    rng : numpy.random.Generator
        Where the gates go among equally good places.
    compound : Polygon or MultiPolygon
        The compound's fence line (its largest part is used).
    footprints, building_ids : list
        The buildings inside it.
    roads : _Roads
        The road edges.
    all_footprints : shapely.STRtree
        Every building of the city (a gate's way to the road crosses none).
    """
    out = CompoundPaths()
    poly = _largest(compound)
    fence = _ring_points(poly.exterior, SPACING_M)
    pts = [fence]
    label = [np.zeros(len(fence), dtype=np.int64)]
    for k, fp in enumerate(footprints, start=1):
        p = _ring_points(_largest(fp).exterior, SPACING_M)
        pts.append(p)
        label.append(np.full(len(p), k, dtype=np.int64))
    xy = np.vstack(pts)
    lab = np.concatenate(label)
    if len(xy) < 4:
        return out
    try:
        vor = Voronoi(xy)
    except QhullError:
        return out
    open_ground = poly.buffer(-CLEARANCE_M)
    if footprints:
        open_ground = open_ground.difference(
            shapely.union_all([fp.buffer(CLEARANCE_M) for fp in footprints]))
    shapely.prepare(open_ground)
    ridge_pts = np.asarray(vor.ridge_points)
    ridge_v = np.asarray(vor.ridge_vertices)
    keep = (ridge_v >= 0).all(axis=1) & (lab[ridge_pts[:, 0]] != lab[ridge_pts[:, 1]])
    ridge_pts, ridge_v = ridge_pts[keep], ridge_v[keep]
    segs = shapely.linestrings(np.stack([vor.vertices[ridge_v[:, 0]],
                                         vor.vertices[ridge_v[:, 1]]], axis=1))
    inside = shapely.contains(open_ground, segs)
    ridge_pts, ridge_v = ridge_pts[inside], ridge_v[inside]
    if not len(ridge_v):
        return out
    skel = nx.Graph()
    for a, b in ridge_v.tolist():
        if a != b:
            skel.add_edge(a, b)
    on_skel = set(skel.nodes)
    # each sample's Voronoi cell vertices that are walkway junctions
    cell_nodes: dict[int, set[int]] = {}
    for (p, q), (a, b) in zip(ridge_pts.tolist(), ridge_v.tolist(), strict=True):
        for s in (p, q):
            cell_nodes.setdefault(s, set()).update((a, b))

    def spur(sample: int) -> tuple[int, float] | None:
        nodes = [n for n in cell_nodes.get(sample, ()) if n in on_skel]
        if not nodes:
            return None
        d = np.hypot(*(vor.vertices[nodes] - xy[sample]).T)
        j = int(np.argmin(d))
        return nodes[j], float(d[j])

    # doors: the building's wall point nearest a junction of its own cells
    door_node: dict[int, int] = {}
    door_at: dict[int, int] = {}
    for k, bid in enumerate(building_ids, start=1):
        best: tuple[float, int, int] | None = None
        for s in np.flatnonzero(lab == k).tolist():
            got = spur(s)
            if got is not None and (best is None or got[1] < best[0]):
                best = (got[1], s, got[0])
        if best is not None:
            door_node[bid] = best[2]
            door_at[bid] = best[1]
    if not door_node:
        return out
    comp_of = {n: c for c, nodes in enumerate(nx.connected_components(skel)) for n in nodes}
    needed = sorted({comp_of[n] for n in door_node.values()})
    # gates: fence samples facing a road, joined to a junction of the group
    fence_idx = np.flatnonzero(lab == 0)
    edge, dist = roads.nearest(xy[fence_idx])
    facing = dist <= dist.min() + FACING_SLACK_M
    gate_spur = {int(s): spur(int(s)) for s in fence_idx}
    n_main = int(np.clip(round(poly.exterior.length / FENCE_PER_GATE_M + 0.5), 1, MAX_GATES))
    chosen: list[tuple[int, int]] = []  # (fence position, junction)
    for c in needed:
        cands = [i for i in range(len(fence_idx))
                 if gate_spur[int(fence_idx[i])] is not None
                 and comp_of[gate_spur[int(fence_idx[i])][0]] == c]  # type: ignore[index]
        if not cands:
            continue
        cands_arr = np.array(cands)
        # facing a road first, then the nearest to one
        order = cands_arr[np.lexsort((dist[cands_arr], ~facing[cands_arr]))]
        want = n_main if c == needed[0] else 1
        picked: list[int] = []
        pool = list(order[:max(3, len(order) // 4)]) if facing[order].any() else list(order)
        rng.shuffle(pool)
        pool += [i for i in order.tolist() if i not in pool]
        for i in pool:
            if len(picked) >= want:
                break
            if any(np.hypot(*(xy[fence_idx[i]] - xy[fence_idx[j]])) < GATE_SPACING_M
                   for j in picked):
                continue
            g = xy[fence_idx[i]]
            line = roads.lines[edge[i]]
            foot = shapely.line_interpolate_point(line, shapely.line_locate_point(
                line, shapely.Point(g)))
            link = shapely.LineString([g, shapely.get_coordinates(foot)[0]])
            if len(all_footprints.query(link, predicate="crosses")) or \
                    len(all_footprints.query(link, predicate="within")):
                continue
            picked.append(i)
        for i in picked:
            chosen.append((i, gate_spur[int(fence_idx[i])][0]))  # type: ignore[index]
    reachable = {comp_of[j] for _, j in chosen}
    # lines: walkways (the groups with a gate), merged between junctions and ends
    ends = {j for _, j in chosen} | {n for b, n in door_node.items()
                                      if comp_of[n] in reachable}
    sub = skel.subgraph([n for n in skel.nodes if comp_of[n] in reachable]).copy()
    for line in _chains(sub, ends, vor.vertices, open_ground):
        out.lines.append((line, "path", None, None))
    for i, j in chosen:
        s = int(fence_idx[i])
        g = xy[s]
        out.gates.append(shapely.Point(g))
        out.lines.append((shapely.LineString([g, vor.vertices[j]]), "path", None, None))
        line = roads.lines[edge[i]]
        foot = shapely.line_interpolate_point(line, shapely.line_locate_point(
            line, shapely.Point(g)))
        out.lines.append((shapely.LineString([g, shapely.get_coordinates(foot)[0]]), "gate_path",
                          None, roads.edges[edge[i]]))
    for bid, n in door_node.items():
        if comp_of[n] not in reachable:
            continue
        d = xy[door_at[bid]]
        out.doors[bid] = (float(d[0]), float(d[1]))
        out.lines.append((shapely.LineString([d, vor.vertices[n]]), "door", bid, None))
    return out


def _chains(g: nx.Graph, ends: set[int], vertices: np.ndarray, open_ground: Any
            ) -> list[shapely.LineString]:
    """The walkway graph as polylines between junctions, dead ends and attachment points."""
    stops = {n for n in g.nodes if g.degree(n) != 2} | ends
    seen: set[tuple[int, int]] = set()
    lines = []
    for s in stops:
        for nb in g.neighbors(s):
            if (s, nb) in seen:
                continue
            path = [s, nb]
            seen.add((s, nb))
            seen.add((nb, s))
            while path[-1] not in stops:
                nxt = [x for x in g.neighbors(path[-1]) if x != path[-2]]
                if not nxt:
                    break
                seen.add((path[-1], nxt[0]))
                seen.add((nxt[0], path[-1]))
                path.append(nxt[0])
                if path[-1] == s:
                    break
            lines.append(_simplified(shapely.LineString(vertices[path]), open_ground))
    # loops with no stop on them
    for comp in nx.connected_components(g):
        if not (comp & stops):
            cycle = [e[0] for e in nx.find_cycle(g.subgraph(comp))]
            cycle.append(cycle[0])
            lines.append(shapely.LineString(vertices[cycle]))
    return lines


def _simplified(line: shapely.LineString, open_ground: Any) -> shapely.LineString:
    s = line.simplify(SIMPLIFY_M, preserve_topology=False)
    ok = (s.geom_type == "LineString" and s.length > 0
          and shapely.covers(open_ground.buffer(CLEARANCE_M * 0.5), s))
    return s if ok else line


def walk_graph(road: nx.Graph, lines: list[tuple[shapely.LineString, str, int | None,
                                                  tuple[Any, Any] | None]]) -> nx.Graph:
    """The walking graph: road edges split where gate paths reach them, and the footpaths.

    Nodes keep the road graph's ids; new ones (footpath ends, the feet of the
    gate paths on the road) are numbered after the largest and carry
    ``kind = "footpath"``; every edge has ``length`` and ``geometry``, and
    road edges and their pieces ``kind = "road"``.
    """
    g = nx.Graph()
    for n, d in road.nodes(data=True):
        g.add_node(n, **d, kind="road")
    for u, v, d in road.edges(data=True):
        g.add_edge(u, v, **d, kind="road")
    next_id = max((int(n) for n in road.nodes), default=0) + 1
    key: dict[tuple[float, float], int] = {(float(d["xy"][0]), float(d["xy"][1])): n
                                           for n, d in road.nodes(data=True)}

    def node(p: Any) -> int:
        nonlocal next_id
        k = (float(p[0]), float(p[1]))
        if k not in key:
            key[k] = next_id
            g.add_node(next_id, xy=np.array(k), kind="footpath")
            next_id += 1
        return key[k]

    feet: dict[tuple[Any, Any], list[tuple[float, int]]] = {}
    for line, kind, _, edge in lines:
        c = shapely.get_coordinates(line)
        a, b = node(c[0]), node(c[-1])
        # two walkways between the same junctions: the shorter is the walk
        if a != b and not (g.has_edge(a, b) and g.edges[a, b]["length"] <= line.length):
            g.add_edge(a, b, length=float(line.length), geometry=line, kind="footpath")
        if kind == "gate_path" and edge is not None and b not in road:
            geom = road.edges[edge]["geometry"]
            feet.setdefault(edge, []).append((float(geom.project(shapely.Point(c[-1]))), b))
    for (u, v), at in feet.items():
        d = road.edges[u, v]
        geom = d["geometry"]
        start = shapely.get_coordinates(geom)[0]
        first, last = (u, v) if np.hypot(*(start - road.nodes[u]["xy"])) <= np.hypot(
            *(start - road.nodes[v]["xy"])) else (v, u)
        if g.has_edge(u, v):
            g.remove_edge(u, v)
        stops = [(0.0, first), *sorted(at), (float(geom.length), last)]
        for (t0, n0), (t1, n1) in itertools.pairwise(stops):
            if n0 == n1:
                continue
            piece = shapely.ops.substring(geom, t0, t1)
            length = float(t1 - t0)
            if g.has_edge(n0, n1) and g.edges[n0, n1]["length"] <= length:
                continue
            g.add_edge(n0, n1, length=length, geometry=piece, kind="road",
                       road_id=d.get("road_id"))
    return g


def build(ctx: CityContext) -> None:
    """Draw every compound's gates, walkways and door paths; write and publish them.

    Parameters
    ----------
    ctx : CityContext
        Needs ``graphs["road"]``, ``frames["compound"]`` and ``frames["building"]``.
    """
    rng = ctx.rng("footpaths.gates")
    road: nx.Graph = ctx.graphs["road"]
    comp = ctx.frames["compound"]
    building = ctx.frames["building"]
    roads = _Roads(road)
    all_fp = shapely.STRtree(np.asarray(building.geometry.values, dtype=object))
    in_comp = building[building["compound_id"].notna()]
    groups = {int(k): g for k, g in in_comp.groupby("compound_id")}
    gates_rows: list[dict[str, Any]] = []
    lines: list[tuple[shapely.LineString, str, int | None, tuple[Any, Any] | None]] = []
    line_comp: list[int] = []
    doors: dict[int, tuple[float, float]] = {}
    with ctx.step("compound gates and footpaths", len(comp)) as task:
        for cid, geom, name in zip(comp["id"].to_numpy(), comp.geometry.values,
                                   comp["name"], strict=True):
            members = groups.get(int(cid))
            if members is None or geom is None or geom.is_empty:
                task.advance()
                continue
            got = compound_paths(rng, geom, list(members.geometry.values),
                                 [int(b) for b in members["id"]], roads, all_fp)
            for label, g in zip(_gate_names(geom, got.gates), got.gates, strict=True):
                gates_rows.append({"compound_id": int(cid), "name": f"{name}{label}",
                                   "geometry": g})
            lines.extend(got.lines)
            line_comp.extend([int(cid)] * len(got.lines))
            doors.update(got.doors)
            task.advance()
    gates = gpd.GeoDataFrame(gates_rows or {"compound_id": [], "name": [], "geometry": []},
                             geometry="geometry", crs=METRIC_EPSG)
    gates.insert(0, "id", ctx.ids.take("compound_gate", len(gates)))
    gates["kind"] = "pedestrian"
    ctx.writer.copy_frame("compound_gate", gates[["id", "compound_id", "name", "kind",
                                                  "geometry"]])
    paths = gpd.GeoDataFrame({
        "id": ctx.ids.take("footpath", len(lines)),
        "compound_id": line_comp,
        "kind": [k for _, k, _, _ in lines],
        "building_id": pd.array([b for _, _, b, _ in lines], dtype="Int64"),
    }, geometry=[ln for ln, _, _, _ in lines], crs=METRIC_EPSG)
    paths["length_m"] = np.round(paths.geometry.length.to_numpy(), 2)
    ctx.writer.copy_frame("footpath", paths)
    ctx.frames["compound_gate"] = gates
    ctx.frames["footpath"] = paths
    ctx.frames["door"] = pd.DataFrame({"building_id": list(doors),
                                       "x": [d[0] for d in doors.values()],
                                       "y": [d[1] for d in doors.values()]})
    ctx.graphs["walk"] = walk_graph(road, lines)
    residential = building[building["residents"] > 0]
    ctx.truth["footpaths"] = {
        "gates": len(gates), "footpaths": len(paths),
        "footpath_km": round(float(paths.geometry.length.sum()) / 1000, 1),
        "compounds_with_gate": int(gates["compound_id"].nunique()),
        "residential_buildings_with_door": int(residential["id"].isin(doors).sum()),
        "residential_buildings_in_compounds": int(residential["compound_id"].notna().sum()),
    }


def _gate_names(compound: Any, gates: list[shapely.Point]) -> list[str]:
    """东门, 南门, 西门, 北门 by where the gate stands from the compound's centre; 东二门…"""
    c = shapely.get_coordinates(shapely.centroid(compound))[0]
    names = []
    used: dict[str, int] = {}
    for g in gates:
        dx, dy = shapely.get_coordinates(g)[0] - c
        side = ("东" if dx > 0 else "西") if abs(dx) >= abs(dy) else ("北" if dy > 0 else "南")
        used[side] = used.get(side, 0) + 1
        names.append(f"{side}门" if used[side] == 1 else f"{side}{'二三四'[used[side] - 2]}门")
    return names
