"""Street lighting: lamps, circuits, distribution boxes, and where it is dark.

Lamps stand along each road edge as CJJ 45 would have them: spacing about
three to four mounting heights (arterials 12 m poles on both sides at
35–40 m, secondary roads 10 m at 30–35 m on one or both sides, branch roads
8 m on one side at 25–30 m, alleys 6 m wall lamps at about 20 m — or none).
A circuit (回路) is a run of 15–35 lamps along one road; a distribution box
(配电箱) feeds two to six circuits near each other.

Most lamps work. Some fail alone, some in runs of three to five, some
circuits are off (``lamp_circuit.status`` 'off': tripped) or hang on a faulty
box, and some stretches never had lamps. A lamp lights its own road for
``reach`` metres either way, reach being the largest design spacing of the road
class; what no working lamp reaches is an unlit stretch, written to
``truth.unlit_stretch`` with its reason.

The reach is read from the database (``onemap.lamp_reach_m``, migration
``168_road_lighting.sql``), the one place both this generator and the
derivation of ``onemap.road_lighting_segment`` take it from. Once the lamps
are written, :func:`build` calls ``onemap.rebuild_road_lighting()``, which
derives the lit and unlit stretches of every road from the lamps as stored
(triggers keep them current afterwards); tests compare that derivation with the
planted truth.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from democity.context import METRIC_EPSG, REFERENCE_TIME, CityContext
from democity.pipelines import cumulative, cut, point_at
from democity.writer import to_ewkb_hex
from spatial.db import fetch_tuples

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Design:
    """How a road class is lit.

    Attributes
    ----------
    height_m : float
        Mounting height.
    spacing_m : tuple of float
        Range of the spacing between lamps on one side.
    both_sides : float
        Probability that a road of the class is lit from both sides.
    unlit : float
        Probability that a road edge of the class has no lamp at all.
    power_w : tuple of int
        LED and HPS wattage.
    """

    height_m: float
    spacing_m: tuple[float, float]
    both_sides: float
    unlit: float
    power_w: tuple[int, int]


DESIGN: dict[str, Design] = {
    "expressway": Design(14.0, (42.0, 48.0), 1.0, 0.0, (250, 400)),
    "arterial": Design(12.0, (35.0, 40.0), 1.0, 0.0, (200, 250)),
    "secondary": Design(10.0, (30.0, 35.0), 0.5, 0.0, (150, 150)),
    "branch": Design(8.0, (25.0, 30.0), 0.0, 0.03, (80, 100)),
    "alley": Design(6.0, (18.0, 22.0), 0.0, 0.3, (30, 70)),
}
#: Unlit stretches shorter than this are not reported.
MIN_STRETCH_M = 5.0


def lamp_reach(conn: Any) -> dict[str, float]:
    """How far a working lamp lights its road, by road class, as the database says.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection to a database with the migrations applied.

    Returns
    -------
    dict
        Road class → reach in metres (``onemap.lamp_reach_m``), for the classes of
        :data:`DESIGN`.
    """
    rows = fetch_tuples(conn, "SELECT c, onemap.lamp_reach_m(c) FROM unnest(%s::text[]) AS c",
                        (sorted(DESIGN),))
    return {str(c): float(m) for c, m in rows}


def _ewkb(geoms: Any) -> list[str]:
    return [str(v) for v in to_ewkb_hex(geoms)]


def place_lamps(ctx: CityContext, road: gpd.GeoDataFrame,
                reach: dict[str, float]) -> pd.DataFrame:
    """Lamp positions along every road edge.

    Parameters
    ----------
    ctx : CityContext
        Seeds.
    road : geopandas.GeoDataFrame
        The roads (metric CRS).
    reach : dict
        Road class → metres a lamp lights either way (:func:`lamp_reach`).

    Returns
    -------
    pandas.DataFrame
        road_id, road_class, name, at_m (along the road geometry), reach_m,
        side, x, y, height_m, power_w, luminaire_type — one row per lamp.
    """
    rng = ctx.rng("lighting.lamps")
    names = sorted(set(road["name"].fillna("").astype(str)))
    per_name = {n: rng.random(3) for n in names}
    rows: list[tuple[Any, ...]] = []
    for r in road.sort_values("id").itertuples(index=False):
        design = DESIGN.get(str(r.road_class))
        if design is None:
            continue
        draw = per_name[str(r.name) if isinstance(r.name, str) else ""]
        if rng.random() < design.unlit:
            continue
        spacing = design.spacing_m[0] + draw[0] * (design.spacing_m[1] - design.spacing_m[0])
        sides = (1, -1) if draw[1] < design.both_sides else ((1,) if draw[2] < 0.5 else (-1,))
        staggered = len(sides) == 2 and str(r.road_class) != "expressway" and draw[2] < 0.6
        coords = np.asarray(shapely.get_coordinates(r.geometry), float)
        cum = cumulative(coords)
        length = float(cum[-1])
        n = max(1, math.ceil(length / spacing))
        step = length / n
        lateral = (float(r.width_m) / 2 if pd.notna(r.width_m) else 3.0) + (
            0.2 if r.road_class == "alley" else 0.8)
        hps = rng.random() < (0.25 if r.road_class in ("secondary", "branch") else 0.08)
        for k, side in enumerate(sides):
            shift = step / 2 if (staggered and k == 1) else 0.0
            at = (np.arange(n) + 0.5) * step + rng.uniform(-0.5, 0.5, n)
            if shift:
                at = (at + shift) % length
            for t in np.sort(np.clip(at, 0.0, length)):
                p = point_at(coords, cum, float(t))
                i = min(int(np.searchsorted(cum, t, side="right")) - 1, len(coords) - 2)
                d = coords[i + 1] - coords[i]
                normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
                xy = p + side * lateral * normal
                rows.append((int(r.id), str(r.road_class), str(r.name), float(t),
                             reach[str(r.road_class)], side,
                             float(xy[0]), float(xy[1]), design.height_m,
                             design.power_w[1 if hps else 0], "hps" if hps else "led"))
    lamps = pd.DataFrame(rows, columns=["road_id", "road_class", "name", "at_m", "reach_m",
                                        "side", "x", "y", "height_m", "power_w",
                                        "luminaire_type"])
    # A few stretches of longer roads never got lamps (no_lamp).
    drop = np.zeros(len(lamps), bool)
    for rid, grp in lamps.groupby("road_id", sort=True):
        if grp["road_class"].iat[0] in ("secondary", "branch") and len(grp) >= 8 \
                and rng.random() < 0.06:
            order = grp.sort_values("at_m").index.to_numpy()
            start = int(rng.integers(1, len(order) - 5))
            drop[lamps.index.get_indexer(order[start:start + int(rng.integers(3, 5))])] = True
            LOGGER.debug("stretch of road %s left without lamps", rid)
    lamps = lamps[~drop].reset_index(drop=True)
    other = rng.random(len(lamps)) < 0.03
    lamps.loc[other, "luminaire_type"] = rng.choice(["induction", "metal_halide"], int(other.sum()))
    return lamps


def wire(ctx: CityContext, lamps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group lamps into circuits along roads and circuits into boxes.

    Returns
    -------
    circuits : pandas.DataFrame
        id, distribution_box_id, code (and x, y of its first lamp).
    boxes : pandas.DataFrame
        id, code, name, x, y.
    """
    rng = ctx.rng("lighting.wiring")
    circuit_of = np.zeros(len(lamps), int)
    firsts: list[tuple[float, float, str]] = []
    for name, grp in lamps.groupby("name", sort=True):
        xy = grp[["x", "y"]].to_numpy()
        axis = np.linalg.svd(xy - xy.mean(axis=0), full_matrices=False)[2][0] if len(grp) > 1 \
            else np.array([1.0, 0.0])
        order = grp.index.to_numpy()[np.argsort(xy @ axis, kind="stable")]
        start = 0
        while start < len(order):
            size = int(rng.integers(15, 36))
            if len(order) - start - size < 8:
                size = len(order) - start
            chunk = order[start:start + size]
            circuit_of[lamps.index.get_indexer(chunk)] = len(firsts)
            firsts.append((float(lamps.at[chunk[0], "x"]), float(lamps.at[chunk[0], "y"]),
                           str(name)))
            start += size
    first = np.array([(x, y) for x, y, _ in firsts]) if firsts else np.empty((0, 2))
    cell = np.floor(first / 400.0).astype(int)
    box_of = np.zeros(len(firsts), int)
    boxes: list[tuple[float, float, str]] = []
    for key in sorted({(int(a), int(b)) for a, b in cell}):
        members = np.flatnonzero((cell[:, 0] == key[0]) & (cell[:, 1] == key[1]))
        start = 0
        while start < len(members):
            size = int(rng.integers(2, 7))
            chunk = members[start:start + size]
            box_of[chunk] = len(boxes)
            x, y, name = firsts[chunk[0]]
            boxes.append((x + 1.5, y + 1.5, name))
            start += size
    box_ids = ctx.ids.take("distribution_box", len(boxes))
    circuit_ids = ctx.ids.take("lamp_circuit", len(firsts))
    per_box: dict[int, int] = {}
    codes = []
    for b in box_of:
        per_box[b] = per_box.get(b, 0) + 1
        codes.append(f"HL{per_box[b]:02d}")
    circuits = pd.DataFrame({"id": circuit_ids, "distribution_box_id": box_ids[box_of],
                             "code": codes})
    box_frame = pd.DataFrame({
        "id": box_ids, "code": [f"PDX-{i:05d}" for i in box_ids],
        "name": [f"{n}路灯配电箱" for _, _, n in boxes],
        "x": [b[0] for b in boxes], "y": [b[1] for b in boxes]})
    lamps["circuit_id"] = circuit_ids[circuit_of] if len(firsts) else []
    return circuits, box_frame


def break_some(ctx: CityContext, lamps: pd.DataFrame, circuits: pd.DataFrame,
               boxes: pd.DataFrame) -> None:
    """Set lamp, circuit and box statuses: single faults, runs of faults, circuits off."""
    rng = ctx.rng("lighting.faults")
    n = len(lamps)
    status = np.full(n, "working", dtype=object)
    cause = np.full(n, "", dtype=object)
    single = rng.random(n)
    status[single < 0.02], cause[single < 0.02] = "fault", "lamp_fault"
    off = (single >= 0.02) & (single < 0.025)
    status[off], cause[off] = "off", "lamp_off"
    # Runs of consecutive faulty lamps on one side of one road edge.
    # (On a road lit from both sides the other side still lights it: pick one-sided roads.)
    sides = lamps.groupby("road_id")["side"].nunique()
    one_sided = lamps["road_id"].map(sides).to_numpy() == 1
    groups = [g.sort_values("at_m").index.to_numpy()
              for _, g in lamps[one_sided].groupby("road_id", sort=True) if len(g) >= 4]
    n_runs = max(2, n // 150)
    for k in rng.choice(len(groups), size=min(n_runs, len(groups)), replace=False) \
            if groups else []:
        idx = groups[int(k)]
        length = int(rng.integers(3, 6))
        start = int(rng.integers(0, max(1, len(idx) - length + 1)))
        status[idx[start:start + length]] = "fault"
        cause[idx[start:start + length]] = "lamp_fault"
    # Whole circuits off, and a box or two in fault with all its circuits.
    box_status = np.full(len(boxes), "working", dtype=object)
    if len(boxes) >= 10:
        bad = rng.choice(len(boxes), size=max(1, len(boxes) // 40), replace=False)
        box_status[bad] = "fault"
    dead_boxes = set(boxes["id"].to_numpy()[box_status == "fault"].tolist())
    dead = set(circuits.loc[circuits["distribution_box_id"].isin(dead_boxes), "id"].tolist())
    n_off = max(1, len(circuits) // 40)
    tripped = set(rng.choice(circuits["id"].to_numpy(), size=min(n_off, len(circuits)),
                             replace=False).tolist())
    dead |= tripped
    circuits["status"] = np.where(circuits["id"].isin(tripped), "off", "working")
    in_dead = lamps["circuit_id"].isin(dead).to_numpy()
    status[in_dead], cause[in_dead] = "off", "circuit_fault"
    lamps["status"] = status
    lamps["cause"] = cause
    boxes["status"] = box_status


def unlit_stretches(lamps: pd.DataFrame, road: gpd.GeoDataFrame) -> pd.DataFrame:
    """Where no working lamp reaches, per road edge, and why.

    Returns
    -------
    pandas.DataFrame
        road_id, from_m, to_m, length_m, reason, circuit_id, lamp_ids.
    """
    order = np.lexsort((lamps["at_m"].to_numpy(), lamps["road_id"].to_numpy()))
    rid = lamps["road_id"].to_numpy()[order]
    at = lamps["at_m"].to_numpy()[order]
    reach = lamps["reach_m"].to_numpy()[order]
    working = lamps["status"].to_numpy()[order] == "working"
    cause = lamps["cause"].to_numpy()[order]
    circuit = lamps["circuit_id"].to_numpy()[order]
    lamp_id = lamps["id"].to_numpy()[order]
    roads = road[road["road_class"].isin(list(DESIGN))].sort_values("id")
    road_ids = roads["id"].to_numpy()
    first = np.searchsorted(rid, road_ids, side="left")
    last = np.searchsorted(rid, road_ids, side="right")
    out: list[tuple[Any, ...]] = []
    for r_id, length, s, e in zip(road_ids.tolist(), roads.geometry.length.to_numpy(),
                                  first.tolist(), last.tolist(), strict=True):
        if s == e:
            out.append((r_id, 0.0, float(length), "no_lamp", None, []))
            continue
        w = working[s:e]
        lo, hi = (at[s:e] - reach[s:e])[w], (at[s:e] + reach[s:e])[w]
        if lo.size == 0:
            gaps = [(0.0, float(length))]
        else:
            covered = np.maximum.accumulate(hi)
            inner = np.flatnonzero(lo[1:] > covered[:-1])
            gaps = [(0.0, float(lo[0]))] if lo[0] > 0 else []
            gaps += [(float(covered[i]), float(min(lo[i + 1], length))) for i in inner]
            if covered[-1] < length:
                gaps.append((float(covered[-1]), float(length)))
        for a, b in gaps:
            if b - a < MIN_STRETCH_M:
                continue
            near = np.flatnonzero(~w & (at[s:e] + reach[s:e] > a) & (at[s:e] - reach[s:e] < b))
            causes = [str(c) for c in cause[s:e][near]]
            if not causes:
                reason, circ = "no_lamp", None
            elif "circuit_fault" in causes:
                reason = "circuit_fault"
                circ = int(circuit[s:e][near][causes.index("circuit_fault")])
            else:
                reason, circ = max(sorted(set(causes)), key=causes.count), None
            out.append((r_id, a, b, reason, circ, sorted(int(i) for i in lamp_id[s:e][near])))
    frame = pd.DataFrame(out, columns=["road_id", "from_m", "to_m", "reason", "circuit_id",
                                       "lamp_ids"])
    frame["length_m"] = frame["to_m"] - frame["from_m"]
    return frame


def status_reports(ctx: CityContext, lamps: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A year of lamp status reports: current failures and repaired ones."""
    rng = ctx.rng("lighting.reports")
    rows: list[tuple[Any, ...]] = []
    last = np.array([REFERENCE_TIME - timedelta(hours=float(h))
                     for h in rng.uniform(0.1, 20, len(lamps))], dtype=object)
    circuit_failed = {int(c): REFERENCE_TIME - timedelta(days=float(rng.uniform(1, 30)))
                      for c in sorted(set(lamps.loc[lamps["cause"] == "circuit_fault",
                                                    "circuit_id"].astype(int).tolist()))}
    for i, lamp in enumerate(lamps.itertuples(index=False)):
        if lamp.status != "working":
            if lamp.cause == "circuit_fault":
                at = circuit_failed[int(lamp.circuit_id)]
                source, note = "telemetry", "回路失电"
            else:
                at = REFERENCE_TIME - timedelta(days=float(rng.uniform(0.5, 60)))
                source = str(rng.choice(["telemetry", "patrol", "citizen", "hotline_12345"],
                                        p=[0.55, 0.25, 0.1, 0.1]))
                note = "灯具不亮" if lamp.status == "fault" else "单灯熄灭"
            rows.append((int(lamp.id), at, str(lamp.status), source, note))
            last[i] = at
        elif rng.random() < 0.08:
            at = REFERENCE_TIME - timedelta(days=float(rng.uniform(20, 360)))
            fixed = at + timedelta(days=float(rng.uniform(0.5, 10)))
            rows.append((int(lamp.id), at, "fault", "patrol", "灯具不亮"))
            rows.append((int(lamp.id), fixed, "working", "patrol", "已维修"))
    lamps["last_report_at"] = last
    return rows


def build(ctx: CityContext) -> None:
    """Light the roads and plant the unlit stretches.

    Parameters
    ----------
    ctx : CityContext
        Needs ``frames["road"]``.
    """
    road = ctx.frames["road"]
    conn = ctx.writer.conn
    reach = lamp_reach(conn)
    with ctx.step("street lighting", 4) as task:
        lamps = place_lamps(ctx, road, reach)
        lamps["id"] = ctx.ids.take("lamp", len(lamps))
        task.advance()
        circuits, boxes = wire(ctx, lamps)
        break_some(ctx, lamps, circuits, boxes)
        reports = status_reports(ctx, lamps)
        task.advance()
        ctx.writer.copy_frame("distribution_box", gpd.GeoDataFrame(
            boxes[["id", "code", "name", "status"]],
            geometry=shapely.points(boxes[["x", "y"]].to_numpy()), crs=METRIC_EPSG))
        ctx.writer.copy_frame("lamp_circuit", circuits)
        out = lamps.assign(code=[f"LD-{i:06d}" for i in lamps["id"]])
        ctx.writer.copy_frame("lamp", gpd.GeoDataFrame(
            out[["id", "code", "height_m", "luminaire_type", "power_w", "circuit_id", "road_id",
                 "status", "last_report_at"]],
            geometry=shapely.points(lamps[["x", "y"]].to_numpy()), crs=METRIC_EPSG))
        ctx.writer.copy_rows("lamp_status_report", ("lamp_id", "at", "status", "source", "note"),
                             reports)
        # The lamp triggers have derived the stretches of the lamps' roads as the rows
        # arrived; one rebuild of every road makes the layer whole whatever ran before.
        segments = fetch_tuples(conn, "SELECT onemap.rebuild_road_lighting()")[0][0]
        ctx.writer.rows["road_lighting_segment"] = int(segments)
        task.advance()
        stretches = unlit_stretches(lamps, road)
        geoms = road.set_index("id").geometry
        lines = []
        fractions = []
        for s in stretches.itertuples(index=False):
            g = geoms.at[s.road_id]
            coords = np.asarray(shapely.get_coordinates(g), float)
            cum = cumulative(coords)
            lines.append(shapely.linestrings(cut(coords, cum, s.from_m, s.to_m)))
            fractions.append((s.from_m / cum[-1], s.to_m / cum[-1]))
        stretches["from_fraction"] = [f[0] for f in fractions]
        stretches["to_fraction"] = [min(1.0, f[1]) for f in fractions]
        stretches["geom"] = _ewkb(lines)
        stretches["circuit_id"] = stretches["circuit_id"].astype("Int64")
        ctx.writer.copy_rows(
            "unlit_stretch",
            ("road_id", "from_m", "to_m", "from_fraction", "to_fraction", "length_m", "reason",
             "circuit_id", "lamp_ids", "geom"),
            (( r.road_id, r.from_m, r.to_m, r.from_fraction, r.to_fraction, r.length_m,
               r.reason, None if pd.isna(r.circuit_id) else int(r.circuit_id), r.lamp_ids,
               r.geom) for r in stretches.itertuples(index=False)),
            schema="truth")
        task.advance()
    ctx.truth["lighting"] = {
        "reach_m": reach,
        "design": {k: {"height_m": d.height_m, "spacing_m": list(d.spacing_m)}
                   for k, d in DESIGN.items()},
        "min_stretch_m": MIN_STRETCH_M,
        "lamps": len(lamps), "circuits": len(circuits), "boxes": len(boxes),
        "unlit_stretches": stretches["reason"].value_counts().to_dict(),
    }
