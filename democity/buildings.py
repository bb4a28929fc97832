"""Compounds and building footprints of the synthetic city.

Footprints are rectangles laid out in rows in a frame turned a few degrees
from east-west (Beijing's buildings face south): 6-storey walk-up slabs with
sunlight spacing, 18–30-storey towers, 1-storey courtyards (四合院/大杂院)
along the hutongs of old quarters, and non-residential buildings. A footprint
is kept only when it lies inside its compound (or block) shrunk by a margin,
and the row/column pitch exceeds the footprint, so footprints never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

#: Household floor area (m²) by building type: (low, high).
AREA_M2 = {"walk_up": (45.0, 95.0), "tower": (60.0, 140.0), "courtyard": (40.0, 75.0)}
#: Storey height, m.
STOREY = 3.0


@dataclass
class Layout:
    """Buildings laid out in one area, as parallel arrays.

    Attributes
    ----------
    cx, cy, angle, length, depth : numpy.ndarray
        Centre, rotation (radians) and size of each rectangle.
    building_type : numpy.ndarray of str
    floors, units, rooms, households : numpy.ndarray of int
        ``rooms`` is dwellings per floor per unit; households = units × floors × rooms.
    """

    cx: np.ndarray = field(default_factory=lambda: np.empty(0))
    cy: np.ndarray = field(default_factory=lambda: np.empty(0))
    angle: np.ndarray = field(default_factory=lambda: np.empty(0))
    length: np.ndarray = field(default_factory=lambda: np.empty(0))
    depth: np.ndarray = field(default_factory=lambda: np.empty(0))
    building_type: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    floors: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    units: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rooms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def households(self) -> np.ndarray:
        """Dwellings per building."""
        residential = np.isin(self.building_type, ("walk_up", "tower", "courtyard"))
        return np.where(residential, self.units * self.floors * self.rooms, 0)

    def __len__(self) -> int:
        return int(self.cx.size)

    def take(self, idx: np.ndarray) -> Layout:
        """The buildings at ``idx``."""
        return Layout(self.cx[idx], self.cy[idx], self.angle[idx], self.length[idx],
                      self.depth[idx], self.building_type[idx], self.floors[idx],
                      self.units[idx], self.rooms[idx])

    def polygons(self) -> np.ndarray:
        """Footprints as shapely Polygons."""
        return rectangles(self.cx, self.cy, self.angle, self.length, self.depth)


def concat(layouts: list[Layout]) -> Layout:
    """Join layouts."""
    if not layouts:
        return Layout()
    return Layout(*(np.concatenate([getattr(lay, f) for lay in layouts])
                    for f in ("cx", "cy", "angle", "length", "depth", "building_type",
                              "floors", "units", "rooms")))


def rectangles(cx: np.ndarray, cy: np.ndarray, angle: np.ndarray, length: np.ndarray,
               depth: np.ndarray) -> np.ndarray:
    """Rotated rectangles, vectorised.

    Examples
    --------
    >>> r = rectangles(np.array([0.0]), np.array([0.0]), np.array([0.0]),
    ...                np.array([10.0]), np.array([4.0]))
    >>> float(r[0].area)
    40.0
    """
    c, s = np.cos(angle), np.sin(angle)
    hx, hy = length / 2, depth / 2
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)], dtype=float)
    dx, dy = corners[:, 0] * hx[:, None], corners[:, 1] * hy[:, None]
    x = cx[:, None] + dx * c[:, None] - dy * s[:, None]
    y = cy[:, None] + dx * s[:, None] + dy * c[:, None]
    coords = np.stack([x, y], axis=-1)
    return shapely.polygons(coords)


def _rows(rng: np.random.Generator, area: shapely.Geometry, angle: float, length: float,
          depth: float, pitch_x: float, pitch_y: float, margin: float,
          stagger: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centres of a grid of rectangles that fit inside ``area`` shrunk by ``margin``."""
    inner = area.buffer(-margin, quad_segs=2)
    if inner.is_empty:
        return np.empty(0), np.empty(0)
    c0 = area.centroid
    minx, miny, maxx, maxy = area.bounds
    r = np.hypot(maxx - minx, maxy - miny) / 2 + max(pitch_x, pitch_y)
    u = np.arange(-r, r, pitch_x) + rng.uniform(0, pitch_x)
    v = np.arange(-r, r, pitch_y) + rng.uniform(0, pitch_y)
    grid_u, grid_v = np.meshgrid(u, v)
    if stagger:
        grid_u = grid_u + (np.arange(v.size)[:, None] % 2) * pitch_x / 2
    uu, vv = grid_u.ravel(), grid_v.ravel()
    c, s = np.cos(angle), np.sin(angle)
    x = c0.x + uu * c - vv * s
    y = c0.y + uu * s + vv * c
    n = x.size
    rects = rectangles(x, y, np.full(n, angle), np.full(n, length), np.full(n, depth))
    shapely.prepare(inner)
    ok = shapely.contains(inner, rects)
    return x[ok], y[ok]


def residential(rng: np.random.Generator, area: shapely.Geometry, style: str) -> Layout:
    """Lay out a compound of walk-ups or towers (or both).

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    area : shapely geometry
        The compound, metric CRS.
    style : str
        ``walk_up``, ``tower`` or ``mixed``.

    Returns
    -------
    Layout
        Non-overlapping footprints inside ``area``.
    """
    angle = float(np.deg2rad(rng.normal(0, 4)))
    parts = []
    if style in ("walk_up", "mixed"):
        units = int(rng.choice([2, 3, 4, 5, 6], p=[0.1, 0.3, 0.3, 0.2, 0.1]))
        floors = int(rng.choice([5, 6, 6, 6, 7]))
        length, depth = units * 12.0 + rng.uniform(-1, 1), rng.uniform(11, 13)
        sub = area
        if style == "mixed":
            # Walk-ups in the south half, towers behind them in the north.
            c = area.centroid
            minx, miny, maxx, maxy = area.bounds
            sub = area.intersection(shapely.box(minx, miny, maxx, c.y))
        x, y = _rows(rng, sub, angle, length, depth, length + rng.uniform(9, 15),
                     depth + 1.7 * floors * STOREY, margin=6.0)
        n = x.size
        parts.append(Layout(x, y, np.full(n, angle), np.full(n, length), np.full(n, depth),
                            np.full(n, "walk_up", dtype=object), np.full(n, floors),
                            np.full(n, units), rng.choice([2, 2, 2, 3], size=n)))
    if style in ("tower", "mixed"):
        units = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
        length = {1: 28.0, 2: 40.0, 3: 54.0}[units] + rng.uniform(-2, 2)
        depth = {1: 22.0, 2: 18.0, 3: 16.0}[units] + rng.uniform(-1, 1)
        floors_mean = int(rng.integers(18, 31))
        sub = area
        if style == "mixed":
            c = area.centroid
            minx, miny, maxx, maxy = area.bounds
            sub = area.intersection(shapely.box(minx, c.y + 10, maxx, maxy))
        x, y = _rows(rng, sub, angle, length, depth, length + rng.uniform(22, 34),
                     depth + 0.9 * floors_mean * STOREY, margin=8.0, stagger=rng.random() < 0.5)
        n = x.size
        tower_floors = np.clip(floors_mean + rng.integers(-3, 4, n), 18, 30)
        rooms = np.full(n, int(rng.choice([2, 3, 4], p=[0.35, 0.4, 0.25])) if units == 1
                        else int(rng.choice([2, 2, 3])))
        parts.append(Layout(x, y, np.full(n, angle), np.full(n, length), np.full(n, depth),
                            np.full(n, "tower", dtype=object), tower_floors, np.full(n, units),
                            rooms))
    lay = concat(parts)
    # A central garden and a few gaps: not every slot is built.
    if len(lay):
        c = area.centroid
        d = np.hypot(lay.cx - c.x, lay.cy - c.y)
        keep = (rng.random(len(lay)) > 0.08) & ~((d < 35) & (rng.random(len(lay)) < 0.7))
        if keep.sum() >= 1:
            lay = lay.take(np.flatnonzero(keep))
    return lay


def courtyards(rng: np.random.Generator, strips: shapely.Geometry) -> Layout:
    """Courtyard houses (四合院) along the hutongs: two rows per strip between lanes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    strips : shapely geometry
        Old-quarter block minus roads and hutongs.

    Returns
    -------
    Layout
        One-storey courtyard footprints.
    """
    parts = []
    for strip in getattr(strips, "geoms", [strips]):
        if strip.area < 300:
            continue
        minx, miny, maxx, maxy = strip.bounds
        h = maxy - miny
        rows = 2 if h > 36 else 1
        depth = min(h / rows - 1.5, 32.0)
        if depth < 10:
            continue
        for k in range(rows):
            y0 = miny + (k + 0.5) * h / rows
            widths = rng.uniform(14, 24, int((maxx - minx) / 14) + 2)
            xs = minx + np.cumsum(widths) - widths / 2 + rng.uniform(0, 6)
            n = xs.size
            length = widths - 1.0
            rects = rectangles(xs, np.full(n, y0), np.zeros(n), length, np.full(n, depth))
            ok = shapely.contains(strip, rects)
            n_ok = int(ok.sum())
            if n_ok == 0:
                continue
            parts.append(Layout(xs[ok], np.full(n_ok, y0), np.zeros(n_ok), length[ok],
                                np.full(n_ok, depth), np.full(n_ok, "courtyard", dtype=object),
                                np.ones(n_ok, dtype=np.int64), np.ones(n_ok, dtype=np.int64),
                                rng.choice([1, 1, 2, 2, 3, 4], size=n_ok)))
    return concat(parts)


def non_residential(rng: np.random.Generator, area: shapely.Geometry, kind: str) -> Layout:
    """Commercial, public or industrial buildings in a block.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    area : shapely geometry
        The block, minus roads.
    kind : str
        ``commercial``, ``public``, ``industrial`` or ``green``.

    Returns
    -------
    Layout
        Footprints (households 0).
    """
    angle = float(np.deg2rad(rng.normal(0, 5)))
    if kind == "commercial":
        length, depth = rng.uniform(40, 80), rng.uniform(25, 45)
        floors_lo, floors_hi = 3, 28
        pitch = (length + rng.uniform(25, 45), depth + rng.uniform(30, 60))
    elif kind == "public":
        length, depth = rng.uniform(45, 75), rng.uniform(16, 24)
        floors_lo, floors_hi = 3, 6
        pitch = (length + rng.uniform(25, 50), depth + rng.uniform(35, 60))
    elif kind == "industrial":
        length, depth = rng.uniform(60, 120), rng.uniform(30, 60)
        floors_lo, floors_hi = 1, 3
        pitch = (length + rng.uniform(20, 40), depth + rng.uniform(20, 40))
    else:  # a kiosk or public toilet in a park
        length, depth = 12.0, 8.0
        floors_lo, floors_hi = 1, 2
        pitch = (300.0, 300.0)
    # Narrow blocks: shrink the building and try it turned a quarter.
    for attempt in range(6):
        shrink = 0.8 ** (attempt // 2)
        turn = np.pi / 2 if attempt % 2 else 0.0
        x, y = _rows(rng, area, angle + turn, length * shrink, depth * shrink,
                     pitch[0] * shrink, pitch[1] * shrink, margin=8.0 * shrink)
        if x.size:
            angle, length, depth = angle + turn, length * shrink, depth * shrink
            break
    n = x.size
    if kind == "green":
        x, y, n = x[:1], y[:1], min(n, 1)
    btype = {"commercial": "commercial", "industrial": "industrial"}.get(kind, "public")
    return Layout(x, y, np.full(n, angle), np.full(n, length), np.full(n, depth),
                  np.full(n, btype, dtype=object), rng.integers(floors_lo, floors_hi + 1, n),
                  np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64))


def split_compounds(rng: np.random.Generator, block: Polygon) -> list[shapely.Geometry]:
    """Divide a residential block into one to three compounds separated by a lane."""
    if block.area < 35_000 or rng.random() < 0.35:
        return [block]
    minx, miny, maxx, maxy = block.bounds
    n = 3 if block.area > 90_000 and rng.random() < 0.5 else 2
    if maxx - minx >= maxy - miny:
        cuts = minx + (maxx - minx) * np.sort(rng.uniform(0.3, 0.7, n - 1)) if n == 2 \
            else minx + (maxx - minx) * np.array([0.33, 0.66]) + rng.normal(0, 10, 2)
        boxes = [shapely.box(a, miny - 1, b, maxy + 1)
                 for a, b in zip([minx - 1, *cuts + 3], [*cuts - 3, maxx + 1], strict=True)]
    else:
        cuts = miny + (maxy - miny) * np.sort(rng.uniform(0.3, 0.7, n - 1)) if n == 2 \
            else miny + (maxy - miny) * np.array([0.33, 0.66]) + rng.normal(0, 10, 2)
        boxes = [shapely.box(minx - 1, a, maxx + 1, b)
                 for a, b in zip([miny - 1, *cuts + 3], [*cuts - 3, maxy + 1], strict=True)]
    parts = []
    for box in boxes:
        part = block.intersection(box)
        if part.area > 4_000:
            parts.append(part if part.geom_type == "Polygon"
                         else max(getattr(part, "geoms", [part]), key=lambda g: g.area))
    return parts or [block]
