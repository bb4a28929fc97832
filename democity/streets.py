"""Streets, blocks and water of the synthetic city.

A jittered grid of arterials with bent stretches (some stretches dropped, so
arterials end in T-junctions) frames super-blocks; each super-block is cut
recursively by secondary and branch roads, every cut ending on an earlier one
(T-junctions, irregular blocks); old-quarter blocks get east-west hutongs.
The linework is noded so that each road row is one edge between junctions,
and the network is kept connected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import polygonize, split, substring

from democity.context import METRIC_EPSG, Scale
from democity.names import NameBook

LOGGER = logging.getLogger(__name__)

#: Right-of-way width range (m) and lanes per road class.
ROAD_CLASSES: dict[str, tuple[float, float, int]] = {
    "expressway": (60.0, 80.0, 8),
    "arterial": (40.0, 60.0, 6),
    "secondary": (24.0, 40.0, 4),
    "branch": (12.0, 20.0, 2),
    "alley": (3.0, 7.0, 1),
}
#: Arterial spacing (m), roughly Beijing's.
ARTERIAL_SPACING = 1_100.0
#: Node coordinates are snapped to this grid (m).
SNAP = 0.01
#: Cut lines overshoot the polygon they cut by this much, so noding splits the
#: road they end on; the overshoot is dropped afterwards as a dangle.
OVERSHOOT = 1.0


@dataclass
class Streets:
    """What the street layout made (all in the metric CRS).

    Attributes
    ----------
    roads : geopandas.GeoDataFrame
        One row per edge: name, road_class, width_m, lanes, oneway, geometry.
    graph : networkx.Graph
        Nodes with ``xy``; edges with ``road_id`` (row position until ids are
        given), ``length``, ``road_class``, ``geometry``.
    faces : geopandas.GeoDataFrame
        Areas between road centrelines (alleys excluded): ``superblock``,
        ``old_quarter``, geometry. They tile the district.
    district : shapely.Polygon
        The area the arterial frame encloses.
    water : shapely geometry
        The river.
    riverside : shapely geometry
        Green strips along the river.
    river_name : str
        Its name.
    """

    roads: gpd.GeoDataFrame
    graph: nx.Graph
    faces: gpd.GeoDataFrame
    district: Polygon
    water: shapely.Geometry
    riverside: shapely.Geometry
    river_name: str


@dataclass
class _Line:
    geom: LineString
    road_class: str
    name: str
    width: float
    lanes: int
    oneway: bool


def _jitter_path(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, bend: bool) -> list:
    """Vertices from ``a`` to ``b`` with a little wobble and sometimes a bend."""
    d = b - a
    length = float(np.hypot(*d))
    normal = np.array([-d[1], d[0]]) / length
    k = max(1, int(length // 350))
    ts = np.linspace(0, 1, k + 2)[1:-1]
    offsets = rng.normal(0, 6, ts.size)
    if bend:
        offsets[rng.integers(ts.size)] += rng.choice([-1, 1]) * rng.uniform(35, 90)
    pts = [a] + [a + t * d + o * normal for t, o in zip(ts, offsets, strict=True)] + [b]
    return [tuple(p) for p in pts]


def _road(rng: np.random.Generator, names: NameBook, geom: LineString, road_class: str,
          name: str | None = None) -> _Line:
    lo, hi, lanes = ROAD_CLASSES[road_class]
    width = round(float(rng.uniform(lo, hi)), 1)
    oneway = (road_class == "alley" and rng.random() < 0.3) or \
        (road_class == "branch" and rng.random() < 0.08)
    return _Line(geom, road_class, name or names.road(road_class), width, lanes, bool(oneway))


def _arterials(rng: np.random.Generator, names: NameBook, scale: Scale,
               cx: float, cy: float) -> list[_Line]:
    """The arterial frame: a jittered, bent grid; a few interior stretches dropped."""
    w, h = scale.width_m, scale.height_m
    nx_ = max(1, round(w / ARTERIAL_SPACING))
    ny_ = max(1, round(h / ARTERIAL_SPACING))
    xs = cx - w / 2 + np.arange(nx_ + 1) * (w / nx_)
    ys = cy - h / 2 + np.arange(ny_ + 1) * (h / ny_)
    sx, sy = w / nx_, h / ny_
    xs[1:-1] += rng.uniform(-0.15, 0.15, nx_ - 1) * sx
    ys[1:-1] += rng.uniform(-0.15, 0.15, ny_ - 1) * sy
    px = xs[:, None] + rng.normal(0, 25, (nx_ + 1, ny_ + 1))
    py = ys[None, :] + rng.normal(0, 25, (nx_ + 1, ny_ + 1))

    def classes(n: int) -> list[str]:
        # Ring roads and radials: at L every fifth line is an expressway, at M one.
        out = ["arterial"] * (n + 1)
        if n >= 10:
            for i in range(2, n, 5):
                out[i] = "expressway"
        elif n >= 3:
            out[n // 2] = "expressway" if n == nx_ else "arterial"
        return out

    lines: list[_Line] = []
    for family, count, other, cls in (("v", nx_, ny_, classes(nx_)), ("h", ny_, nx_, classes(ny_))):
        for i in range(count + 1):
            boundary = i in (0, count)
            road_class = cls[i]
            name = names.road(road_class)
            run: list[tuple[float, float]] = []
            for j in range(other):
                a = np.array([px[i, j], py[i, j]] if family == "v" else [px[j, i], py[j, i]])
                b = np.array([px[i, j + 1], py[i, j + 1]] if family == "v"
                             else [px[j + 1, i], py[j + 1, i]])
                drop = (not boundary and road_class != "expressway" and other > 1
                        and rng.random() < 0.1)
                if drop:
                    if len(run) > 1:
                        lines.append(_road(rng, names, LineString(run), road_class, name))
                    run = []
                    continue
                pts = _jitter_path(rng, a, b, bend=not boundary and rng.random() < 0.3)
                run = run + pts[1:] if run else pts
            if len(run) > 1:
                lines.append(_road(rng, names, LineString(run), road_class, name))
    return lines


def _cut(rng: np.random.Generator, names: NameBook, poly: Polygon, depth: int,
         out: list[_Line], min_block: float) -> None:
    """Cut ``poly`` recursively by secondary/branch roads until blocks are small."""
    rect = shapely.oriented_envelope(poly)
    coords = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = coords[1] - coords[0], coords[2] - coords[1]
    long_axis, short_len = (e1, np.hypot(*e2)) if np.hypot(*e1) >= np.hypot(*e2) \
        else (e2, np.hypot(*e1))
    long_len = float(np.hypot(*long_axis))
    limit = min_block * rng.uniform(1.3, 2.2)
    if long_len < limit or poly.area < (min_block ** 2) * 1.2:
        return
    u = long_axis / long_len
    angle = np.deg2rad(rng.normal(0, 4) if rng.random() < 0.9 else rng.uniform(-22, 22))
    c, s = np.cos(angle), np.sin(angle)
    v = np.array([-u[1], u[0]])
    v = np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])
    origin = (coords[0] + coords[2]) / 2
    p = origin + u * (rng.uniform(-0.15, 0.15) * long_len)
    span = long_len + short_len
    full = LineString([tuple(p - v * span), tuple(p + v * span)])
    piece = full.intersection(poly)
    if piece.is_empty:
        return
    if piece.geom_type != "LineString":
        parts = [g for g in getattr(piece, "geoms", []) if g.geom_type == "LineString"]
        if not parts:
            return
        piece = min(parts, key=lambda g: g.distance(Point(p)))
    a, b = np.asarray(piece.coords[0]), np.asarray(piece.coords[-1])
    d = (b - a) / max(piece.length, 1e-9)
    a, b = a - d * OVERSHOOT, b + d * OVERSHOOT
    road_class = "secondary" if depth == 0 and piece.length > 450 else "branch"
    pts = [tuple(a), tuple(b)]
    if road_class == "secondary" and rng.random() < 0.4 and piece.length > 300:
        mid = (a + b) / 2 + np.array([-d[1], d[0]]) * rng.uniform(-18, 18)
        pts = [tuple(a), tuple(mid), tuple(b)]
    cut = LineString(pts)
    parts = [g for g in split(poly, cut).geoms if g.area > 1.0]
    if len(parts) < 2 or min(g.area for g in parts) < (min_block ** 2) * 0.35:
        return
    out.append(_road(rng, names, cut, road_class))
    for part in parts:
        _cut(rng, names, part, depth + 1, out, min_block)


def _hutongs(rng: np.random.Generator, names: NameBook, face: Polygon) -> list[_Line]:
    """East-west hutongs across an old-quarter block, and a north-south lane."""
    minx, miny, maxx, maxy = face.bounds
    spacing = rng.uniform(55, 75)
    ys = np.arange(miny + spacing * rng.uniform(0.6, 1.0), maxy - spacing * 0.5, spacing)
    out: list[_Line] = []
    lane_names = names.lanes(len(ys)) if rng.random() < 0.5 else \
        [names.road("alley") for _ in ys]
    for y, name in zip(ys, lane_names, strict=True):
        y0, y1 = y + rng.normal(0, 3), y + rng.normal(0, 3)
        full = LineString([(minx - 10, y0), (maxx + 10, y1)])
        piece = full.intersection(face)
        if piece.geom_type != "LineString" or piece.length < 40:
            continue
        a, b = np.asarray(piece.coords[0]), np.asarray(piece.coords[-1])
        d = (b - a) / piece.length
        out.append(_road(rng, names, LineString([tuple(a - d * OVERSHOOT),
                                                 tuple(b + d * OVERSHOOT)]), "alley", name))
    if maxx - minx > 220 and out:
        x = minx + (maxx - minx) * rng.uniform(0.35, 0.65)
        full = LineString([(x, miny - 10), (x + rng.normal(0, 4), maxy + 10)])
        piece = full.intersection(face)
        if piece.geom_type == "LineString" and piece.length > 40:
            a, b = np.asarray(piece.coords[0]), np.asarray(piece.coords[-1])
            d = (b - a) / piece.length
            out.append(_road(rng, names, LineString([tuple(a - d * OVERSHOOT),
                                                     tuple(b + d * OVERSHOOT)]), "alley"))
    return out


def _node(lines: list[_Line]) -> tuple[list[LineString], list[int]]:
    """Split lines at every junction; each piece remembers its source line."""
    geoms = np.array([ln.geom for ln in lines], dtype=object)
    noded = shapely.unary_union(shapely.set_precision(geoms, SNAP))
    pieces = [g for g in getattr(noded, "geoms", [noded]) if g.length > SNAP]
    tree = shapely.STRtree(geoms)
    mids = shapely.line_interpolate_point(np.array(pieces, dtype=object), 0.5, normalized=True)
    src_idx, tree_idx = tree.query(mids, predicate="dwithin", distance=0.05)
    source = np.full(len(pieces), -1)
    source[src_idx] = tree_idx
    keep = source >= 0
    return [p for p, k in zip(pieces, keep, strict=True) if k], source[keep].tolist()


def _drop_dangles(pieces: list[LineString], source: list[int],
                  max_len: float) -> tuple[list[LineString], list[int]]:
    """Remove short dead ends (the overshoot of cut lines)."""
    for _ in range(3):
        ends = np.array([(p.coords[0], p.coords[-1]) for p in pieces]).reshape(-1, 2)
        keys = np.round(ends / SNAP).astype(np.int64)
        _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        deg = counts[inv.ravel()].reshape(-1, 2)
        lengths = np.array([p.length for p in pieces])
        dangle = (deg.min(axis=1) == 1) & (lengths < max_len)
        if not dangle.any():
            break
        pieces = [p for p, d in zip(pieces, dangle, strict=True) if not d]
        source = [s for s, d in zip(source, dangle, strict=True) if not d]
    return pieces, source


def _river(rng: np.random.Generator, scale: Scale, district: Polygon,
           cx: float, cy: float) -> tuple[shapely.Geometry, shapely.Geometry]:
    """A meandering river from west to east and its green banks."""
    w, h = scale.width_m, scale.height_m
    xs = np.arange(cx - w / 2 - 200, cx + w / 2 + 200, 40.0)
    wave = min(h * 0.08, 400.0)
    phase = rng.uniform(0, 2 * np.pi)
    ys = (cy + h * rng.uniform(0.12, 0.3) + wave * np.sin(xs / rng.uniform(900, 1600) + phase)
          + 0.4 * wave * np.sin(xs / rng.uniform(300, 500) + 2 * phase))
    width = float(np.clip(w / 120, 18, 70))
    centre = LineString(np.column_stack([xs, ys]))
    water = centre.buffer(width / 2, cap_style="flat").intersection(district)
    banks = centre.buffer(width / 2 + rng.uniform(20, 35), cap_style="flat") \
        .intersection(district).difference(water)
    return water, banks


def build_streets(rng_for: Callable[[str], np.random.Generator], scale: Scale,
                  cx: float, cy: float) -> Streets:
    """Lay out the streets, blocks and river of a city.

    Parameters
    ----------
    rng_for : callable
        ``rng_for("stream")`` returns a seeded generator (``ctx.rng``).
    scale : Scale
        Size of the city.
    cx, cy : float
        Centre in the metric CRS.

    Returns
    -------
    Streets
        Roads (edges), graph, faces, district, river.
    """
    rng = rng_for("city.streets")
    names = NameBook(rng_for("city.names.roads"))
    lines = _arterials(rng, names, scale, cx, cy)
    pieces, source = _node(lines)
    superblocks = list(polygonize(pieces))
    district = shapely.union_all(superblocks)
    if district.geom_type != "Polygon":
        district = max(district.geoms, key=lambda g: g.area)
    cut_rng = rng_for("city.streets.cuts")
    min_block = 215.0
    for poly in sorted(superblocks, key=lambda g: (round(g.centroid.x), round(g.centroid.y))):
        _cut(cut_rng, names, poly, 0, lines, min_block)
    pieces, source = _node(lines)
    pieces, source = _drop_dangles(pieces, source, OVERSHOOT * 3)
    faces = [f for f in polygonize(pieces) if f.area > 100]
    faces.sort(key=lambda g: (round(g.centroid.y, 1), round(g.centroid.x, 1)))
    water, banks = _river(rng_for("city.river"), scale, district, cx, cy)

    # Old quarters: more likely near the centre, never on the river.
    oq_rng = rng_for("city.old_quarter")
    face_arr = np.array(faces, dtype=object)
    cent = shapely.centroid(face_arr)
    dist = np.hypot(shapely.get_x(cent) - cx, shapely.get_y(cent) - cy)
    areas = shapely.area(face_arr)
    radius = 900.0 if scale.width_m < 2_000 else (1_300.0 if scale.width_m < 10_000 else 2_500.0)
    p_old = 0.5 * np.exp(-((dist / radius) ** 2))
    wet = shapely.intersects(face_arr, water)
    old = (oq_rng.random(len(faces)) < p_old) & ~wet & (areas > 8_000) & (areas < 150_000)
    for face in face_arr[old]:
        lines.extend(_hutongs(oq_rng, names, face))
    pieces, source = _node(lines)
    pieces, source = _drop_dangles(pieces, source, OVERSHOOT * 3)

    roads, graph = _network(pieces, source, lines)
    super_idx = np.full(len(faces), -1)
    sb = shapely.STRtree(np.array(superblocks, dtype=object))
    fi, si = sb.query(shapely.point_on_surface(face_arr), predicate="within")
    super_idx[fi] = si
    faces_gdf = gpd.GeoDataFrame({"superblock": super_idx, "old_quarter": old},
                                 geometry=list(face_arr), crs=METRIC_EPSG)
    river_name = NameBook(rng_for("city.names.river")).river()
    return Streets(roads, graph, faces_gdf, district, water, banks, river_name)


def _network(pieces: list[LineString], source: list[int],
             lines: list[_Line]) -> tuple[gpd.GeoDataFrame, nx.Graph]:
    """Road rows and the graph of their largest connected component."""
    pieces, source = _split_loops(pieces, source)
    ends = np.array([(p.coords[0], p.coords[-1]) for p in pieces]).reshape(-1, 2)
    keys = np.round(ends / SNAP).astype(np.int64)
    _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel().reshape(-1, 2)
    g = nx.Graph()
    # A node's xy is the very coordinate the lines that meet there end on.
    for k, (x, y) in enumerate(ends[first]):
        g.add_node(k, xy=(float(x), float(y)))
    keep = np.zeros(len(pieces), dtype=bool)
    for i, (a, b) in enumerate(inv):
        if a == b or g.has_edge(a, b):
            continue  # left only where a split piece was too short to split
        keep[i] = True
        g.add_edge(int(a), int(b), road_id=i, length=pieces[i].length,
                   road_class=lines[source[i]].road_class, geometry=pieces[i])
    biggest = max(nx.connected_components(g), key=len)
    g = g.subgraph(biggest).copy()
    g.remove_nodes_from([n for n in list(g.nodes) if g.degree(n) == 0])
    rows = sorted(d["road_id"] for _, _, d in g.edges(data=True))
    position = {r: k for k, r in enumerate(rows)}
    for _, _, d in g.edges(data=True):
        d["road_id"] = position[d["road_id"]]
    mapping = {n: k for k, n in enumerate(sorted(g.nodes))}
    g = nx.relabel_nodes(g, mapping)
    src = [lines[source[r]] for r in rows]
    roads = gpd.GeoDataFrame({
        "name": [s.name for s in src],
        "road_class": [s.road_class for s in src],
        "width_m": [s.width for s in src],
        "lanes": [s.lanes for s in src],
        "oneway": [s.oneway for s in src],
    }, geometry=[pieces[r] for r in rows], crs=METRIC_EPSG)
    LOGGER.debug("roads: %d edges, %d nodes", len(roads), g.number_of_nodes())
    return roads, g


def _split_loops(pieces: list[LineString],
                 source: list[int]) -> tuple[list[LineString], list[int]]:
    """Cut closed pieces and second pieces between the same two junctions in three,
    so every road row can be an edge of a simple graph."""
    seen: set[tuple[tuple[int, int], ...]] = set()
    out_p: list[LineString] = []
    out_s: list[int] = []
    for piece, src in zip(pieces, source, strict=True):
        a = tuple(np.round(np.asarray(piece.coords[0]) / SNAP).astype(np.int64).tolist())
        b = tuple(np.round(np.asarray(piece.coords[-1]) / SNAP).astype(np.int64).tolist())
        key = (min(a, b), max(a, b))
        if (a == b or key in seen) and piece.length > 0.3:
            cuts = [substring(piece, piece.length * t0, piece.length * t1)
                    for t0, t1 in ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1))]
            cuts = [shapely.set_precision(c, SNAP) for c in cuts]
            # Make the pieces meet exactly where they were cut.
            joined = [cuts[0]]
            for c in cuts[1:]:
                coords = list(c.coords)
                coords[0] = joined[-1].coords[-1]
                joined.append(LineString(coords))
            out_p.extend(joined)
            out_s.extend([src] * 3)
            continue
        seen.add(key)
        out_p.append(piece)
        out_s.append(src)
    return out_p, out_s


def buildable(faces: gpd.GeoSeries, roads: gpd.GeoDataFrame,
              setback: float | np.ndarray) -> np.ndarray:
    """Faces minus the road right-of-way (plus a setback): where buildings may stand.

    Parameters
    ----------
    faces : geopandas.GeoSeries
        Polygons between road centrelines.
    roads : geopandas.GeoDataFrame
        Road rows with ``width_m``.
    setback : float or numpy.ndarray
        Extra distance from the kerb line, m (one value, or one per road).

    Returns
    -------
    numpy.ndarray of shapely geometries
        Possibly empty or multi-part.
    """
    buffers = shapely.buffer(np.asarray(roads.geometry.values, dtype=object),
                             roads["width_m"].to_numpy() / 2 + setback, quad_segs=2)
    tree = shapely.STRtree(buffers)
    face_arr = np.asarray(faces.values, dtype=object)
    fi, bi = tree.query(face_arr, predicate="intersects")
    out = face_arr.copy()
    order = np.argsort(fi, kind="stable")
    fi, bi = fi[order], bi[order]
    bounds = np.searchsorted(fi, np.arange(len(face_arr) + 1))
    for k in range(len(face_arr)):
        sel = bi[bounds[k]:bounds[k + 1]]
        if sel.size:
            out[k] = shapely.difference(face_arr[k], shapely.union_all(buffers[sel]))
    return out


__all__ = ["ROAD_CLASSES", "Streets", "build_streets", "buildable"]
