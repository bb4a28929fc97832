"""Land use of the faces and everything built on them, before ids are given.

:class:`Plan` takes the street layout, groups faces into street offices and
communities, decides what each block is (residential, old quarter,
commercial, public, industrial, green, water), splits residential blocks
into compounds, lays out buildings until each community holds its share of
the household target, and groups faces into grids and sub-grids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from democity import buildings as bld
from democity.context import CityContext
from democity.hierarchy import group_faces
from democity.streets import Streets, buildable

LOGGER = logging.getLogger(__name__)

#: Share of a community's households living in old-quarter courtyards, at most.
OLD_QUARTER_SHARE = 0.3
#: Chance of a non-old-quarter face becoming each non-residential use.
USE_P = {"park": 0.06, "public": 0.11, "commercial": 0.12, "industrial": 0.04}


@dataclass
class Plan:
    """The city between the street layout and the database rows.

    Attributes
    ----------
    streets : Streets
        Roads, faces, river.
    faces : numpy.ndarray
        Face polygons (between road centrelines, alleys excluded).
    block_geom : numpy.ndarray
        Faces minus road right-of-way, river and banks.
    build_geom : numpy.ndarray
        Where buildings may stand (setbacks from roads and hutongs).
    so, comm : numpy.ndarray
        Street office and community (0-based) per face.
    kind : numpy.ndarray of str
        Block kind per face.
    grid1, grid2 : numpy.ndarray
        Level-1 grid and leaf grid (0-based, global) per face.
    compounds : pandas.DataFrame
        face, geometry, style of each compound.
    buildings : pandas.DataFrame
        One row per building (see :func:`place`).
    """

    ctx: CityContext
    streets: Streets
    cx: float
    cy: float
    faces: np.ndarray
    block_geom: np.ndarray
    build_geom: np.ndarray
    dist: np.ndarray
    so: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    comm: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    kind: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    grid1: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    grid_leaf: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    grids: list[dict] = field(default_factory=list)
    compounds: pd.DataFrame = field(default_factory=pd.DataFrame)
    buildings: pd.DataFrame = field(default_factory=pd.DataFrame)
    ids: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_streets(cls, ctx: CityContext, streets: Streets, cx: float, cy: float) -> Plan:
        """Prepare the faces of a street layout: block and buildable areas."""
        faces = np.asarray(streets.faces.geometry.values, dtype=object)
        roads = streets.roads
        main = roads[roads.road_class != "alley"]
        wet = shapely.union_all([streets.water, streets.riverside])
        block_geom = shapely.difference(buildable(streets.faces.geometry, main, 0.0), wet)
        setback = np.where(roads.road_class.to_numpy() == "alley", 0.8, 5.0)
        build_geom = shapely.difference(buildable(streets.faces.geometry, roads, setback), wet)
        pts = shapely.point_on_surface(faces)
        dist = np.hypot(shapely.get_x(pts) - cx, shapely.get_y(pts) - cy)
        return cls(ctx, streets, cx, cy, faces, block_geom, build_geom, dist)

    # ------------------------------------------------------------------ admin
    def assign_admin(self) -> None:
        """Street office and community of every face."""
        scale = self.ctx.scale
        rng = self.ctx.rng("city.admin")
        n = len(self.faces)
        sb = self.streets.faces["superblock"].to_numpy()
        self.so = np.zeros(n, dtype=np.int64)
        if scale.street_offices > 1:
            # Street offices are made of whole super-blocks: their borders follow arterials.
            ids, inv = np.unique(sb, return_inverse=True)
            sb_geom = np.array([shapely.union_all(self.faces[inv == k]) for k in range(ids.size)],
                               dtype=object)
            self.so = group_faces(rng, sb_geom, scale.street_offices)[inv]
        self.comm = np.zeros(n, dtype=np.int64)
        for s in range(scale.street_offices):
            idx = np.flatnonzero(self.so == s)
            labels = group_faces(rng, self.faces[idx], scale.communities_per_street)
            self.comm[idx] = s * scale.communities_per_street + labels

    # ------------------------------------------------------------------ uses
    def _kinds(self) -> None:
        rng = self.ctx.rng("city.land_use")
        n = len(self.faces)
        old = self.streets.faces["old_quarter"].to_numpy()
        area = shapely.area(self.build_geom)
        kind = np.full(n, "residential", dtype=object)
        r = rng.random(n)
        edge = np.clip(self.dist / max(self.ctx.scale.width_m, 1.0), 0, 1)
        p_ind = USE_P["industrial"] * (1 + 6 * edge ** 2)
        cuts = np.cumsum([USE_P["park"], USE_P["public"], USE_P["commercial"]])
        kind[r < cuts[2]] = "commercial"
        kind[r < cuts[1]] = "public"
        kind[r < cuts[0]] = "park"
        kind[(r >= cuts[2]) & (r < cuts[2] + p_ind)] = "industrial"
        kind[old] = "old_quarter"
        kind[area < 2_500] = "green"
        self.kind = kind

    def _style(self, rng: np.random.Generator, d: float) -> str:
        p_tower = 0.3 + 0.45 * min(1.0, d / 8_000)
        r = rng.random()
        return "tower" if r < p_tower else ("mixed" if r < p_tower + 0.2 else "walk_up")

    def place(self) -> None:
        """Decide uses, split compounds and lay out buildings to the household target."""
        self._kinds()
        scale = self.ctx.scale
        rng = self.ctx.rng("city.buildings")
        n_comm = scale.street_offices * scale.communities_per_street
        target = scale.households / n_comm
        rows: list[pd.DataFrame] = []
        compounds: list[dict] = []
        used = np.zeros(len(self.faces), dtype=bool)
        fill_rng = self.ctx.rng("city.buildings.fill")
        with self.ctx.step("city: buildings", n_comm) as task:
            for c in range(n_comm):
                idx = np.flatnonzero(self.comm == c)
                idx = idx[rng.permutation(idx.size)]
                total = 0
                old = idx[self.kind[idx] == "old_quarter"]
                res = idx[self.kind[idx] == "residential"]
                spare = idx[np.isin(self.kind[idx], ("public", "commercial"))]
                for f in old:
                    if total >= target * OLD_QUARTER_SHARE:
                        break
                    lay = bld.courtyards(rng, self.build_geom[f])
                    lay, total = _trim(lay, total, target)
                    rows.append(_frame(lay, int(f), -1, old_quarter=True))
                    used[f] = True
                # When the residential blocks do not suffice, build on shops and
                # schools, then on factories and parks, then on more old quarter.
                rest = idx[np.isin(self.kind[idx], ("industrial", "park"))]
                for f in np.concatenate([res, spare, rest, old]):
                    if total >= target:
                        break
                    if used[f]:
                        continue
                    if self.kind[f] == "old_quarter":
                        lay = bld.courtyards(rng, self.build_geom[f])
                        lay, total = _trim(lay, total, target)
                        rows.append(_frame(lay, int(f), -1, old_quarter=True))
                        used[f] = True
                        continue
                    self.kind[f] = "residential"
                    first_compound = len(compounds)
                    parts = [p for p in getattr(self.build_geom[f], "geoms",
                                                [self.build_geom[f]]) if p.area > 3_000]
                    for part in parts:
                        for cpoly in bld.split_compounds(rng, part):
                            if total >= target:
                                break
                            style = self._style(rng, float(self.dist[f]))
                            lay = bld.residential(rng, cpoly, style)
                            full = len(lay)
                            lay, total = _trim(lay, total, target)
                            if not len(lay):
                                continue
                            if len(lay) < full:
                                # A part-filled compound is only as large as its buildings.
                                hull = shapely.convex_hull(shapely.union_all(lay.polygons()))
                                cpoly = cpoly.intersection(hull.buffer(18.0, quad_segs=2))
                            compounds.append({"face": int(f), "geometry": cpoly, "style": style})
                            rows.append(_frame(lay, int(f), len(compounds) - 1, old_quarter=False))
                    # Ground the compounds leave (the target was reached mid-block, or a
                    # part was too small): a school, a clinic, shops.
                    mine = [cp["geometry"] for cp in compounds[first_compound:]]
                    rest_geom = self.build_geom[f].difference(
                        shapely.union_all(mine).buffer(10.0, quad_segs=2)) if mine \
                        else self.build_geom[f]
                    if rest_geom.area > 4_000:
                        use = "public" if fill_rng.random() < 0.5 else "commercial"
                        rows.append(_frame(bld.non_residential(fill_rng, rest_geom, use), int(f),
                                           -1, old_quarter=False))
                    used[f] = True
                if total < target * 0.97:
                    LOGGER.warning("community %d holds %d of %d households", c, total, target)
                task.advance(1)
        # Unused residential candidates take other uses; old quarters become shops.
        rng2 = self.ctx.rng("city.land_use.rest")
        for f in np.flatnonzero(~used):
            if self.kind[f] == "residential":
                self.kind[f] = str(rng2.choice(["commercial", "public", "industrial", "park"],
                                               p=[0.4, 0.3, 0.15, 0.15]))
            if self.kind[f] == "old_quarter":
                lay = bld.courtyards(rng2, self.build_geom[f])
                lay.building_type[:] = "commercial"
                lay.rooms[:] = 0
                rows.append(_frame(lay, int(f), -1, old_quarter=True))
            elif self.kind[f] in ("commercial", "public", "industrial", "park", "green"):
                k = "green" if self.kind[f] in ("park", "green") else str(self.kind[f])
                if self.kind[f] == "green":
                    continue
                rows.append(_frame(bld.non_residential(rng2, self.build_geom[f], k), int(f), -1,
                                   old_quarter=False))
        self.buildings = pd.concat([r for r in rows if len(r)], ignore_index=True)
        self.compounds = pd.DataFrame(compounds)
        LOGGER.debug("buildings: %d, households %d", len(self.buildings),
                     int(self.buildings["households"].sum()))

    def plazas(self) -> list[tuple[int, shapely.Geometry]]:
        """Squares (广场) in the open ground of some commercial and public blocks."""
        rng = self.ctx.rng("city.plazas")
        b = self.buildings
        out: list[tuple[int, shapely.Geometry]] = []
        for f in np.flatnonzero(np.isin(self.kind, ("commercial", "public"))):
            if rng.random() > 0.3:
                continue
            sel = b[b["face"].to_numpy() == f]
            built = shapely.union_all(bld.rectangles(
                sel["cx"].to_numpy(), sel["cy"].to_numpy(), sel["angle"].to_numpy(),
                sel["length"].to_numpy(), sel["depth"].to_numpy())).buffer(6.0, quad_segs=2)
            free = self.build_geom[f].difference(built).buffer(-1.0, quad_segs=2)
            if free.is_empty:
                continue
            part = max(getattr(free, "geoms", [free]), key=lambda g: g.area)
            p = part.point_on_surface()
            half = rng.uniform(25, 45)
            square = part.intersection(shapely.box(p.x - half, p.y - half, p.x + half,
                                                   p.y + half))
            square = max(getattr(square, "geoms", [square]), key=lambda g: g.area)
            if square.geom_type == "Polygon" and square.area > 900:
                out.append((int(f), square))
        return out

    # ------------------------------------------------------------------ grids
    def assign_grids(self) -> None:
        """Level-1 grids per community (3–8) and sub-grids in some of them."""
        rng = self.ctx.rng("city.grids")
        hh_face = np.bincount(self.buildings["face"].to_numpy(),
                              weights=self.buildings["households"].to_numpy(),
                              minlength=len(self.faces))
        self.grid1 = np.zeros(len(self.faces), dtype=np.int64)
        self.grid_leaf = np.zeros(len(self.faces), dtype=np.int64)
        grids: list[dict] = []
        n_comm = self.ctx.scale.street_offices * self.ctx.scale.communities_per_street
        for c in range(n_comm):
            idx = np.flatnonzero(self.comm == c)
            k = int(np.clip(round(hh_face[idx].sum() / 450) + rng.integers(-1, 2), 3, 8))
            labels = group_faces(rng, self.faces[idx], k, weight=hh_face[idx] + 50.0)
            for j in range(labels.max() + 1):
                members = idx[labels == j]
                g1 = len(grids)
                grids.append({"community": c, "parent": -1, "level": 1, "faces": members,
                              "number": j + 1})
                self.grid1[members] = g1
                self.grid_leaf[members] = g1
                if members.size >= 2 and rng.random() < 0.3:
                    k2 = min(members.size, int(rng.integers(2, 4)))
                    sub = group_faces(rng, self.faces[members], k2,
                                      weight=hh_face[members] + 50.0)
                    for m in range(sub.max() + 1):
                        leaf = members[sub == m]
                        grids.append({"community": c, "parent": g1, "level": 2, "faces": leaf,
                                      "number": m + 1})
                        self.grid_leaf[leaf] = len(grids) - 1
        self.grids = grids


def _trim(lay: bld.Layout, total: int, target: float) -> tuple[bld.Layout, int]:
    """Keep buildings until the target is reached; return them and the new total."""
    hh = lay.households
    if total + hh.sum() <= target:
        return lay, total + int(hh.sum())
    keep = np.flatnonzero(total + np.cumsum(hh) - hh < target)
    return lay.take(keep), total + int(hh[keep].sum())


def _frame(lay: bld.Layout, face: int, compound: int, *, old_quarter: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "face": np.full(len(lay), face, dtype=np.int64),
        "compound": np.full(len(lay), compound, dtype=np.int64),
        "cx": lay.cx, "cy": lay.cy, "angle": lay.angle, "length": lay.length,
        "depth": lay.depth, "building_type": lay.building_type,
        "floors": lay.floors.astype(np.int64), "units": lay.units.astype(np.int64),
        "rooms": lay.rooms.astype(np.int64), "households": lay.households.astype(np.int64),
        "old_quarter": np.full(len(lay), old_quarter),
    })
