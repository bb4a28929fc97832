"""Units, households and residents, streamed to the database in chunks.

A chunk is a run of buildings holding about :data:`CHUNK_HOUSEHOLDS`
dwellings; its households and their residents are made with vectorised
numpy, written with COPY and dropped, so memory stays flat at any scale.
Only a per-building summary is kept.
"""

from __future__ import annotations

import itertools
import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from democity.buildings import AREA_M2
from democity.context import CityContext
from democity.people import PeopleMaker
from democity.writer import to_ewkb_hex

LOGGER = logging.getLogger(__name__)

CHUNK_HOUSEHOLDS = 60_000
#: Household refuse per resident and day in Beijing, kg (for truth.refuse_demand).
KG_PER_PERSON_DAY = 1.0
#: Occupancy shares: owner-occupied, rented out, vacant (Beijing: ~10 % vacant).
OCCUPANCY_P = {"owner": 0.69, "tenant": 0.22, "vacant": 0.09}
HOUSEHOLD_COLUMNS = ("id", "building_id", "unit_id", "room_no", "floor", "area_m2",
                     "occupancy", "geom")
RESIDENT_COLUMNS = ("id", "household_id", "name", "id_number", "phone", "birth_date",
                    "birth_year", "gender", "tags", "synthetic")
SUMMARY_COLUMNS = ("households", "occupied", "residents", "elderly", "elderly_alone",
                   "disabled", "low_income", "key_person")


def _local_to_xy(b: gpd.GeoDataFrame, rows: np.ndarray, u: np.ndarray,
                 v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Building-frame offsets (along, across) to metric coordinates."""
    a = b["angle"].to_numpy()[rows]
    c, s = np.cos(a), np.sin(a)
    return (b["cx"].to_numpy()[rows] + u * c - v * s, b["cy"].to_numpy()[rows] + u * s + v * c)


def write_units(ctx: CityContext, b: gpd.GeoDataFrame) -> np.ndarray:
    """Write the units (单元) of residential buildings; return the first unit id per building."""
    units = np.where(b["households"].to_numpy() > 0, b["units"].to_numpy(), 0)
    n = int(units.sum())
    ids = ctx.ids.take("unit", n)
    rows = np.repeat(np.arange(len(b)), units)
    first = np.zeros(len(b), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(units)[:-1]])
    first[units > 0] = ids[starts[units > 0]] if n else 0
    number = np.arange(n) - starts[rows] + 1
    length = b["length"].to_numpy()[rows]
    u = ((number - 0.5) / units[rows] - 0.5) * length
    v = -0.3 * b["depth"].to_numpy()[rows]
    x, y = _local_to_xy(b, rows, u, v)
    frame = pd.DataFrame({"id": ids, "building_id": b["id"].to_numpy()[rows],
                          "number": number.astype(str),
                          "geom": list(_points(x, y))})
    ctx.writer.copy_frame("unit", frame)
    return first


def _points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import shapely

    return shapely.points(x, y)


def write_people(ctx: CityContext, b: gpd.GeoDataFrame) -> pd.DataFrame:
    """Write units, households, residents and the refuse/grid truth of the buildings.

    Parameters
    ----------
    ctx : CityContext
        The run's context.
    b : geopandas.GeoDataFrame
        Buildings with ids, ``households``, ``units``, ``rooms``, ``floors``,
        ``number``, the rectangle (``cx``, ``cy``, ``angle``, ``length``,
        ``depth``) and ``grid_id``.

    Returns
    -------
    pandas.DataFrame
        One row per building: building_id and the counts of
        :data:`SUMMARY_COLUMNS`.
    """
    first_unit = write_units(ctx, b)
    rng = ctx.rng("city.households")
    maker = PeopleMaker(ctx.rng("city.residents"))
    hh_per_b = b["households"].to_numpy()
    summary = np.zeros((len(b), len(SUMMARY_COLUMNS)), dtype=np.int64)
    cum = np.cumsum(hh_per_b)
    bounds = np.searchsorted(cum, np.arange(CHUNK_HOUSEHOLDS, cum[-1] if len(cum) else 0,
                                            CHUNK_HOUSEHOLDS), side="right")
    edges = np.unique(np.concatenate([[0], bounds, [len(b)]]))
    with ctx.step("city: households and residents", int(hh_per_b.sum())) as task:
        for lo, hi in itertools.pairwise(edges):
            done = _chunk(ctx, rng, maker, b, np.arange(lo, hi), first_unit, summary)
            task.advance(done)
    out = pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS))
    out.insert(0, "building_id", b["id"].to_numpy())
    _write_truth(ctx, b, out)
    return out


def _chunk(ctx: CityContext, rng: np.random.Generator, maker: PeopleMaker,
           b: gpd.GeoDataFrame, sel: np.ndarray, first_unit: np.ndarray,
           summary: np.ndarray) -> int:
    hh_per_b = b["households"].to_numpy()[sel]
    n = int(hh_per_b.sum())
    if n == 0:
        return 0
    rows = np.repeat(sel, hh_per_b)  # building row per household
    k = np.arange(n) - np.repeat(np.cumsum(hh_per_b) - hh_per_b, hh_per_b)
    rooms = b["rooms"].to_numpy()[rows]
    floors = b["floors"].to_numpy()[rows]
    units = b["units"].to_numpy()[rows]
    # k enumerates unit-major, then floor, then room.
    per_unit = floors * rooms
    unit = k // per_unit + 1
    floor = (k % per_unit) // rooms + 1
    room = k % rooms + 1
    btype = b["building_type"].to_numpy()[rows]
    number = b["number"].to_numpy()[rows]
    room_no = [f"{a}-{u}-{f}{r:02d}" for a, u, f, r in
               zip(number.tolist(), unit.tolist(), floor.tolist(), room.tolist(), strict=True)]
    length = b["length"].to_numpy()[rows]
    depth = b["depth"].to_numpy()[rows]
    u_off = (((unit - 1) + (room - 0.5) / rooms) / units - 0.5) * length * 0.96
    v_off = ((floor - 0.5) / floors - 0.5) * depth * 0.6
    x, y = _local_to_xy(b, rows, u_off, v_off)
    lo = np.select([btype == "tower", btype == "courtyard"],
                   [AREA_M2["tower"][0], AREA_M2["courtyard"][0]], AREA_M2["walk_up"][0])
    hi = np.select([btype == "tower", btype == "courtyard"],
                   [AREA_M2["tower"][1], AREA_M2["courtyard"][1]], AREA_M2["walk_up"][1])
    area = np.round(rng.uniform(lo, hi), 2)
    occ = rng.choice(np.array(list(OCCUPANCY_P)), size=n, p=list(OCCUPANCY_P.values()))
    hh_ids = ctx.ids.take("household", n)
    unit_id = first_unit[rows] + unit - 1
    geoms = to_ewkb_hex(_points(x, y))
    ctx.writer.copy_rows("household", HOUSEHOLD_COLUMNS, zip(
        hh_ids.tolist(), b["id"].to_numpy()[rows].tolist(), unit_id.tolist(), room_no,
        floor.tolist(), area.tolist(), occ.tolist(), geoms.tolist(), strict=True))

    occupied = np.flatnonzero(occ != "vacant")
    sizes = maker.sizes(occupied.size)
    tenant = occ[occupied] == "tenant"
    floating = np.where(tenant, rng.random(occupied.size) < 0.55,
                        rng.random(occupied.size) < 0.03)
    poor_p = np.where(np.isin(btype[occupied], ("courtyard", "walk_up")), 0.03, 0.012)
    low_income = rng.random(occupied.size) < poor_p
    people = maker.make(sizes, floating, low_income)
    m = len(people.name)
    res_ids = ctx.ids.take("resident", m)
    hh_of = hh_ids[occupied][people.household]
    birth = people.birth_date.astype(str).tolist()
    ctx.writer.copy_rows("resident", RESIDENT_COLUMNS, zip(
        res_ids.tolist(), hh_of.tolist(), people.name.tolist(), people.id_number,
        people.phone, birth, [int(s[:4]) for s in birth],
        np.where(people.male, "male", "female").tolist(), people.tags,
        [True] * m, strict=True))

    brow = rows[occupied][people.household]  # building row per resident
    counts = summary
    counts[:, 0] += np.bincount(rows, minlength=len(counts))
    counts[:, 1] += np.bincount(rows[occupied], minlength=len(counts))
    for j, w in enumerate((np.ones(m, dtype=bool), people.age >= 65,
                           people.flags["elderly_alone"], people.flags["disabled"],
                           people.flags["low_income"], people.flags["key_person"]), start=2):
        counts[:, j] += np.bincount(brow, weights=w, minlength=len(counts)).astype(np.int64)
    return n


def _write_truth(ctx: CityContext, b: gpd.GeoDataFrame, summary: pd.DataFrame) -> None:
    res = summary[summary["households"] > 0]
    demand = pd.DataFrame({
        "building_id": res["building_id"], "households": res["households"],
        "occupied": res["occupied"], "residents": res["residents"],
        "kg_per_day": (res["residents"] * KG_PER_PERSON_DAY).round(2),
    })
    ctx.writer.copy_frame("refuse_demand", demand, geometry=(), schema="truth")
    # Grid statistics: leaf grids from their buildings, level-1 grids including sub-grids.
    grid = ctx.frames.get("grid")
    per_leaf = summary.assign(grid_id=b["grid_id"].to_numpy()).groupby("grid_id")[
        list(SUMMARY_COLUMNS)].sum()
    if grid is None:
        return
    parent = grid.set_index("id")["parent_id"]
    stats = per_leaf.reindex(grid["id"], fill_value=0)
    child = stats[parent.reindex(stats.index).notna().to_numpy()]
    add = child.groupby(parent.reindex(child.index).astype(np.int64).to_numpy()).sum()
    stats = stats.add(add.reindex(stats.index, fill_value=0), fill_value=0).astype(np.int64)
    stats.insert(0, "level", grid.set_index("id")["level"].reindex(stats.index).to_numpy())
    stats = stats.reset_index().rename(columns={"id": "grid_id"})
    ctx.writer.copy_frame("grid_population", stats, geometry=(), schema="truth")
