"""Step 1 of ``onemap generate``: the city, with ground truth at three scales.

Streets and blocks (:mod:`~democity.streets`), land use, compounds and
buildings (:mod:`~democity.layout`, :mod:`~democity.buildings`),
the admin and grid hierarchy (:mod:`~democity.hierarchy`), households
and residents (:mod:`~democity.people`), placed around Chaoyang,
Beijing. Residents are streamed to the database chunk by chunk and never held
in memory all at once.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from democity import footpaths
from democity.context import METRIC_EPSG, ORIGIN_LONLAT, CityContext
from democity.hierarchy import (
    DISTRICT_CODE,
    DISTRICT_NAME,
    as_multipolygon,
    union_by,
)
from democity.layout import Plan
from democity.names import PROPERTY_MANAGERS, STEMS, STREET_OFFICE_NAMES, NameBook
from democity.residents import KG_PER_PERSON_DAY, write_people
from democity.streets import build_streets
from spatial.crs import transform

LOGGER = logging.getLogger(__name__)

_YEARS = {"walk_up": (1975, 1999), "tower": (1998, 2022), "courtyard": (1905, 1985),
          "public": (1960, 2020), "commercial": (1990, 2024), "industrial": (1958, 2010)}
_PUBLIC = ("{}小学", "{}中学", "{}幼儿园", "{}社区卫生服务中心", "{}派出所", "{}文化活动中心",
           "{}养老驿站", "{}社区服务站")
_COMMERCIAL = ("{}大厦", "{}商场", "{}中心", "{}广场", "{}酒店", "{}菜市场")
_PLAZAS = ("广场", "文化广场", "市民广场", "休闲广场")
_INDUSTRIAL = ("{}厂", "{}仓储中心", "{}物流园", "{}机械厂")


def build(ctx: CityContext) -> None:
    """Generate the city, write its tables and publish it for later steps.

    Writes ``road``, ``land_use``, ``district``, ``street_office``,
    ``community``, ``grid``, ``compound``, ``building``, ``unit``,
    ``household``, ``resident``, ``truth.refuse_demand`` and
    ``truth.grid_population``. Publishes, in the metric CRS with the geometry
    column ``geometry``, the frames ``road``, ``land_use``, ``block``,
    ``district``, ``street_office``, ``community``, ``grid``, ``compound``,
    ``building``, ``household_summary`` and ``old_quarter``, the graph
    ``road``, and ``ctx.truth["city"]``.

    Parameters
    ----------
    ctx : CityContext
        The run's context.
    """
    x, y = transform([ORIGIN_LONLAT[0]], [ORIGIN_LONLAT[1]], 4490, METRIC_EPSG)
    cx, cy = float(x[0]), float(y[0])
    with ctx.step("city: streets and blocks", 1) as t:
        streets = build_streets(ctx.rng, ctx.scale, cx, cy)
        t.advance(1)
    plan = Plan.from_streets(ctx, streets, cx, cy)
    plan.assign_admin()
    plan.place()
    plan.assign_grids()
    _write_roads(ctx, plan)
    _write_land_use(ctx, plan)
    _write_admin(ctx, plan)
    _write_compounds(ctx, plan)
    building = _write_buildings(ctx, plan)
    summary = write_people(ctx, building)
    _publish(ctx, plan, building, summary)
    footpaths.build(ctx)


def _frame(data: dict[str, Any], geometry: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(data, geometry=list(geometry), crs=METRIC_EPSG)


def _write_roads(ctx: CityContext, plan: Plan) -> None:
    roads = plan.streets.roads.copy()
    roads.insert(0, "id", ctx.ids.take("road", len(roads)))
    graph = plan.streets.graph
    ids = roads["id"].to_numpy()
    for _, _, d in graph.edges(data=True):
        d["road_id"] = int(ids[d["road_id"]])
    ctx.writer.copy_frame("road", roads[["id", "name", "road_class", "width_m", "lanes",
                                         "oneway", "geometry"]])
    ctx.frames["road"] = roads
    ctx.graphs["road"] = graph


def _write_land_use(ctx: CityContext, plan: Plan) -> None:
    rng = ctx.rng("city.names.parks")
    names = NameBook(rng)
    kinds: list[str] = []
    labels: list[str | None] = []
    geoms: list[Any] = []
    river = plan.streets.river_name
    if not plan.streets.water.is_empty:
        kinds.append("water")
        labels.append(river)
        geoms.append(plan.streets.water)
    if not plan.streets.riverside.is_empty:
        kinds.append("green")
        labels.append(f"{river}滨河绿地")
        geoms.append(plan.streets.riverside)
    for f in np.flatnonzero(np.isin(plan.kind, ("park", "green"))):
        g = plan.block_geom[f]
        if g.is_empty or g.area < 500:
            continue
        kinds.append("park" if plan.kind[f] == "park" else "green")
        labels.append(names.park() if plan.kind[f] == "park" else None)
        geoms.append(g)
    for _, square in plan.plazas():
        kinds.append("plaza")
        labels.append(f"{STEMS[int(rng.integers(len(STEMS)))]}{rng.choice(_PLAZAS)}")
        geoms.append(square)
    geoms_arr = as_multipolygon([shapely.make_valid(g) for g in geoms])
    frame = _frame({"id": ctx.ids.take("land_use", len(kinds)), "kind": kinds, "name": labels},
                   geoms_arr)
    ctx.writer.copy_frame("land_use", frame)
    ctx.frames["land_use"] = frame


def _write_admin(ctx: CityContext, plan: Plan) -> None:
    scale = ctx.scale
    faces = plan.faces
    district_geom = as_multipolygon([shapely.make_valid(shapely.union_all(faces))])
    district = _frame({"id": ctx.ids.take("district", 1), "code": [DISTRICT_CODE],
                       "name": [DISTRICT_NAME]}, district_geom)
    ctx.writer.copy_frame("district", district)

    n_so = scale.street_offices
    rng = ctx.rng("city.names.admin")
    so_names = [f"{STREET_OFFICE_NAMES[i]}街道"
                for i in rng.permutation(len(STREET_OFFICE_NAMES))[:n_so]]
    so = _frame({"id": ctx.ids.take("street_office", n_so),
                 "code": [f"{DISTRICT_CODE}{k + 1:03d}" for k in range(n_so)],
                 "name": so_names, "district_id": np.full(n_so, district["id"].iloc[0])},
                as_multipolygon(union_by(faces, plan.so, n_so)))
    ctx.writer.copy_frame("street_office", so)

    n_c = n_so * scale.communities_per_street
    book = NameBook(rng)
    c_so = np.arange(n_c) // scale.communities_per_street
    comm = _frame({"id": ctx.ids.take("community", n_c),
                   "code": [f"{so['code'].iloc[s]}{k % scale.communities_per_street + 1:03d}"
                            for k, s in enumerate(c_so)],
                   "name": [book.community() for _ in range(n_c)],
                   "street_office_id": so["id"].to_numpy()[c_so]},
                  as_multipolygon(union_by(faces, plan.comm, n_c)))
    ctx.writer.copy_frame("community", comm)

    grid_ids = ctx.ids.take("grid", len(plan.grids))
    codes: list[str] = []
    names: list[str] = []
    parents: list[int | None] = []
    levels: list[int] = []
    comm_ids: list[int] = []
    geoms: list[Any] = []
    for g in plan.grids:
        c = g["community"]
        short = comm["name"].iloc[c].removesuffix("社区")
        if g["level"] == 1:
            codes.append(f"{comm['code'].iloc[c]}{g['number']:02d}")
            names.append(f"{short}第{g['number']}网格")
            parents.append(None)
        else:
            p = g["parent"]
            codes.append(f"{codes[p]}{g['number']:02d}")
            names.append(f"{names[p].removesuffix('网格')}-{g['number']}子网格")
            parents.append(int(grid_ids[p]))
        levels.append(g["level"])
        comm_ids.append(int(comm["id"].iloc[c]))
        geoms.append(shapely.make_valid(shapely.union_all(faces[g["faces"]])))
    grid = _frame({"id": grid_ids, "code": codes, "name": names, "community_id": comm_ids,
                   "parent_id": pd.array(parents, dtype="Int64"),
                   "level": np.array(levels, dtype=np.int64)}, as_multipolygon(geoms))
    ctx.writer.copy_frame("grid", grid)
    plan.ids = {"district": district, "street_office": so, "community": comm, "grid": grid}
    ctx.frames.update(plan.ids)


def _nearest_road_names(plan: Plan, points: np.ndarray, alley: bool) -> np.ndarray:
    roads = plan.streets.roads
    sel = roads[(roads.road_class == "alley") == alley]
    if not len(sel):
        sel = roads
    tree = shapely.STRtree(np.asarray(sel.geometry.values, dtype=object))
    idx = tree.query_nearest(points, return_distance=False, all_matches=False)
    out = np.empty(len(points), dtype=object)
    out[idx[0]] = sel["name"].to_numpy()[idx[1]]
    return out


def _write_compounds(ctx: CityContext, plan: Plan) -> None:
    comp = plan.compounds
    n = len(comp)
    rng = ctx.rng("city.names.compounds")
    book = NameBook(rng)
    geoms = as_multipolygon([shapely.make_valid(g) for g in comp["geometry"]]) if n \
        else np.empty(0, dtype=object)
    pts = shapely.point_on_surface(np.asarray(comp["geometry"].to_numpy(), dtype=object)) \
        if n else np.empty(0, dtype=object)
    roads = _nearest_road_names(plan, pts, alley=False) if n else np.empty(0, dtype=object)
    faces = comp["face"].to_numpy() if n else np.empty(0, dtype=np.int64)
    old_style = comp["style"].to_numpy() == "walk_up" if n else np.empty(0, dtype=bool)
    managers = np.where(old_style & (rng.random(n) < 0.4), "朝阳区房管局",
                        np.array(PROPERTY_MANAGERS)[rng.integers(len(PROPERTY_MANAGERS), size=n)])
    grid_ids = plan.ids["grid"]["id"].to_numpy()
    frame = _frame({
        "id": ctx.ids.take("compound", n),
        "name": [book.compound() for _ in range(n)],
        "address": [f"{r}{int(k)}号" for r, k in zip(roads, rng.integers(1, 120, n),
                                                      strict=True)],
        "property_manager": managers,
        "grid_id": grid_ids[plan.grid_leaf[faces]],
        "face": faces,
        "community_id": plan.ids["community"]["id"].to_numpy()[plan.comm[faces]],
        "street_office_id": plan.ids["street_office"]["id"].to_numpy()[plan.so[faces]],
    }, geoms)
    ctx.writer.copy_frame("compound", frame[["id", "name", "address", "property_manager",
                                             "grid_id", "geometry"]])
    plan.ids["compound"] = frame


def _write_buildings(ctx: CityContext, plan: Plan) -> gpd.GeoDataFrame:
    b = plan.buildings.copy()
    # Buildings in address order: compound by compound, north to south, west to east.
    b = b.sort_values(["face", "compound", "cy", "cx"], ascending=[True, True, False, True],
                      kind="stable").reset_index(drop=True)
    n = len(b)
    rng = ctx.rng("city.buildings.attrs")
    comp = plan.ids["compound"]
    faces = b["face"].to_numpy()
    in_comp = b["compound"].to_numpy() >= 0
    number = b.groupby(["face", "compound"]).cumcount().to_numpy() + 1
    pts = shapely.points(b["cx"].to_numpy(), b["cy"].to_numpy())
    btype = b["building_type"].to_numpy()
    names = np.empty(n, dtype=object)
    address = np.empty(n, dtype=object)
    comp_idx = np.where(in_comp, b["compound"].to_numpy(), 0)
    if len(comp):
        comp_addr = comp["address"].to_numpy()[comp_idx]
        for i in np.flatnonzero(in_comp):
            names[i] = f"{number[i]}号楼"
            address[i] = f"{comp_addr[i]}{number[i]}号楼"
    court = btype == "courtyard"
    court |= (~in_comp) & b["old_quarter"].to_numpy()
    if court.any():
        lanes = _nearest_road_names(plan, pts[court], alley=True)
        door = pd.Series(lanes).groupby(lanes).cumcount().to_numpy() * 2 + 1
        court_names = [f"{a}{d}号" for a, d in zip(lanes, door, strict=True)]
        names[court] = court_names
        address[court] = court_names
        number[court] = door
    other = ~in_comp & ~court
    stems = np.array(STEMS)[rng.integers(len(STEMS), size=n)]
    for i in np.flatnonzero(other):
        pattern = {"public": _PUBLIC, "commercial": _COMMERCIAL}.get(btype[i], _INDUSTRIAL)
        names[i] = pattern[int(rng.integers(len(pattern)))].format(stems[i])
    if other.any():
        street = _nearest_road_names(plan, pts[other], alley=False)
        address[other] = [f"{s}{int(k)}号" for s, k in
                          zip(street, rng.integers(1, 200, int(other.sum())), strict=True)]
    lo = np.array([_YEARS[t][0] for t in btype])
    hi = np.array([_YEARS[t][1] for t in btype])
    year = rng.integers(lo, hi + 1)
    basement = np.where(np.isin(btype, ("tower", "commercial")), rng.integers(1, 4, n), 0)
    grid_ids = plan.ids["grid"]["id"].to_numpy()
    ids = ctx.ids.take("building", n)
    comp_ids = comp["id"].to_numpy() if len(comp) else np.zeros(1, dtype=np.int64)
    geom = _rects(b)
    compound_id = pd.Series(np.where(in_comp, comp_ids[comp_idx], 0)).astype("Int64")
    frame = _frame({
        "id": ids,
        "name": names,
        "address": address,
        "building_type": btype,
        "floors": b["floors"].to_numpy(),
        "basement_floors": basement,
        "year_built": year,
        "compound_id": compound_id.mask(~in_comp).array,
        "grid_id": grid_ids[plan.grid_leaf[faces]],
        "community_id": plan.ids["community"]["id"].to_numpy()[plan.comm[faces]],
        "street_office_id": plan.ids["street_office"]["id"].to_numpy()[plan.so[faces]],
        "households": b["households"].to_numpy(),
        "residents": np.zeros(n, dtype=np.int64),
        "old_quarter": b["old_quarter"].to_numpy(),
        "units": b["units"].to_numpy(),
        "rooms": b["rooms"].to_numpy(),
        "number": number,
        "face": faces,
        "cx": b["cx"].to_numpy(), "cy": b["cy"].to_numpy(), "angle": b["angle"].to_numpy(),
        "length": b["length"].to_numpy(), "depth": b["depth"].to_numpy(),
    }, geom)
    out = frame[["id", "name", "address", "building_type", "floors", "basement_floors",
                 "year_built", "compound_id", "grid_id", "geometry"]].copy()
    out["geometry"] = as_multipolygon(out.geometry.values)
    ctx.writer.copy_frame("building", out)
    return frame


def _rects(b: pd.DataFrame) -> np.ndarray:
    from democity.buildings import rectangles

    return rectangles(b["cx"].to_numpy(), b["cy"].to_numpy(), b["angle"].to_numpy(),
                      b["length"].to_numpy(), b["depth"].to_numpy())


def _publish(ctx: CityContext, plan: Plan, building: gpd.GeoDataFrame,
             summary: pd.DataFrame) -> None:
    """Frames and truth for later steps."""
    ids = plan.ids
    res = summary.set_index("building_id")["residents"]
    building["residents"] = building["id"].map(res).fillna(0).astype(np.int64)
    ctx.frames["building"] = building
    ctx.frames["household_summary"] = summary
    comp = ids["compound"].drop(columns=["face"])
    ctx.frames["compound"] = comp

    so_ids = ids["street_office"]["id"].to_numpy()
    comm_ids = ids["community"]["id"].to_numpy()
    kinds, so_col, comm_col, geoms = [], [], [], []
    kind_name = {"park": "green"}
    water = plan.streets.water
    banks = plan.streets.riverside
    for f in range(len(plan.faces)):
        pieces: list[tuple[str, Any]] = [(kind_name.get(str(plan.kind[f]), str(plan.kind[f])),
                                          plan.block_geom[f])]
        face = plan.faces[f]
        if face.intersects(water):
            pieces.append(("water", face.intersection(water)))
        if face.intersects(banks):
            pieces.append(("green", face.intersection(banks)))
        for kind, g in pieces:
            for part in getattr(g, "geoms", [g]):
                if part.geom_type == "Polygon" and part.area > 50:
                    kinds.append(kind)
                    so_col.append(int(so_ids[plan.so[f]]))
                    comm_col.append(int(comm_ids[plan.comm[f]]))
                    geoms.append(part)
    ctx.frames["block"] = _frame({"id": np.arange(1, len(kinds) + 1), "kind": kinds,
                                  "street_office_id": so_col, "community_id": comm_col}, geoms)
    old = np.flatnonzero(plan.kind == "old_quarter")
    ctx.frames["old_quarter"] = _frame({"community_id": comm_ids[plan.comm[old]]},
                                       plan.faces[old])
    roads = ctx.frames["road"]
    ctx.truth["city"] = {
        "households": int(summary["households"].sum()),
        "occupied": int(summary["occupied"].sum()),
        "residents": int(summary["residents"].sum()),
        "buildings": len(building),
        "compounds": len(comp),
        "grids": len(ids["grid"]),
        "communities": len(ids["community"]),
        "street_offices": len(ids["street_office"]),
        "roads": len(roads),
        "road_km": round(float(roads.length.sum()) / 1000, 1),
        "road_classes": roads["road_class"].value_counts().sort_index().to_dict(),
        "kg_refuse_per_person_day": KG_PER_PERSON_DAY,
        "tags": {k: int(summary[k].sum()) for k in ("elderly", "elderly_alone", "disabled",
                                                   "low_income", "key_person")},
    }
