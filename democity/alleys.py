"""Back alleys (背街小巷) of the old quarters and a year of their problems.

Each alley is one named lane: the alley-class road edges of an old quarter
that share a name, merged into one LineString (a name that falls apart into
pieces gives one alley per piece). It carries a ledger length, width, type,
start and end descriptions, and an alley chief (街巷长, a street-office cadre
with a public office phone; one chief looks after a few alleys).

Problems come from five sources (supervision, sanitation and third-party
checks, grid patrols, 12345 complaints) at points a few metres off the
alley, so the analysis must snap them. Most alleys see a problem or so per
100 m a month; a few hot spots see four to seven times more; some alleys
improve over the year, some get worse (a log-linear monthly trend). The
hot spots, the trends and each problem's alley are in ``truth``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from democity.context import METRIC_EPSG, REFERENCE_TIME, CityContext
from democity.names import person_names, surnames
from democity.pipelines import canonical, cumulative, old_quarter_union, point_at

LOGGER = logging.getLogger(__name__)

SOURCES = ("supervision_check", "sanitation_check", "grid_patrol", "hotline_12345",
           "third_party_check")
SOURCE_SHARE = (0.10, 0.20, 0.35, 0.25, 0.10)
SOURCE_PREFIX = {"supervision_check": "DC", "sanitation_check": "HW", "grid_patrol": "WG",
                 "hotline_12345": "", "third_party_check": "SF"}
CATEGORIES = ("sanitation", "garbage_exposed", "illegal_parking", "illegal_construction",
              "street_occupation", "advertising", "road_surface", "facility_damage", "greening",
              "drainage", "overhead_wires", "other")
#: Category weights per source, in the order of CATEGORIES.
CATEGORY_WEIGHTS = {
    "supervision_check": (20, 15, 5, 5, 15, 10, 10, 10, 5, 0, 5, 0),
    "sanitation_check": (45, 35, 0, 0, 0, 0, 0, 0, 5, 5, 0, 10),
    "grid_patrol": (5, 15, 15, 7, 15, 10, 10, 10, 5, 0, 8, 0),
    "hotline_12345": (0, 15, 30, 10, 15, 0, 10, 0, 0, 8, 5, 7),
    "third_party_check": (20, 15, 5, 0, 15, 10, 10, 10, 5, 0, 10, 0),
}
TEXT = {
    "sanitation": "路面卫生不洁，有积存垃圾", "garbage_exposed": "垃圾桶满溢、垃圾暴露堆放",
    "illegal_parking": "机动车乱停乱放，堵塞通行", "illegal_construction": "私搭乱建",
    "street_occupation": "占道堆物、店外经营", "advertising": "小广告、乱涂乱画",
    "road_surface": "路面破损、坑洼不平", "facility_damage": "公共设施损坏",
    "greening": "绿化带缺株、杂草丛生", "drainage": "雨污水井堵塞、路面积水",
    "overhead_wires": "架空线缆凌乱下垂", "other": "其他问题",
}
#: Mean problems per 100 m of alley and month (ordinary alleys).
BASE_PER_100M = 1.0
YEAR = timedelta(days=365)


def _alley_type(name: str) -> str:
    if name.endswith(("胡同", "条")):
        return "hutong"
    if name.endswith("巷"):
        return "lane"
    if name.endswith("街"):
        return "back_street"
    return "other"


def merge_alleys(ctx: CityContext) -> gpd.GeoDataFrame:
    """One row per alley: name, width_m, geometry (canonically oriented)."""
    road = ctx.frames["road"]
    lanes = road[road["road_class"] == "alley"]
    old = old_quarter_union(ctx)
    if old is not None and len(lanes):
        inside = shapely.intersects(np.asarray(lanes.geometry.values), old)
        lanes = lanes[inside]
    rows = []
    for name, grp in lanes.groupby(lanes["name"].fillna("无名巷"), sort=True):
        merged = shapely.line_merge(shapely.union_all(np.asarray(grp.geometry.values)))
        for part in shapely.get_parts(merged):
            coords = shapely.get_coordinates(part)
            if len(coords) < 2 or part.length < 5.0:
                continue
            if not canonical(coords[0], coords[-1]):
                part = shapely.reverse(part)
            rows.append((str(name), float(grp["width_m"].astype(float).mean()), part))
    return gpd.GeoDataFrame({"name": [r[0] for r in rows], "width_m": [r[1] for r in rows]},
                            geometry=[r[2] for r in rows], crs=METRIC_EPSG)


def _locate(ctx: CityContext, alleys: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Street office and community of each alley (community NULL when shared)."""
    com = ctx.frames.get("community")
    so = ctx.frames["street_office"]
    n = len(alleys)
    so_id = np.full(n, int(so["id"].iloc[0]), dtype=np.int64)
    com_id = np.full(n, -1, dtype=np.int64)
    if com is None or len(com) == 0:
        return so_id, com_id
    geoms = np.asarray(com.geometry.values)
    for i, g in enumerate(alleys.geometry.values):
        share = shapely.length(shapely.intersection(geoms, g)) / max(g.length, 1e-9)
        best = int(np.argmax(share))
        so_id[i] = int(com["street_office_id"].iloc[best])
        if share[best] >= 0.9:
            com_id[i] = int(com["id"].iloc[best])
    return so_id, com_id


def _ends(ctx: CityContext, alleys: gpd.GeoDataFrame) -> tuple[list[str], list[str]]:
    """起止点: the roads each alley starts and ends on."""
    road = ctx.frames["road"]
    tree = shapely.STRtree(np.asarray(road.geometry.values))
    names = road["name"].fillna("").astype(str).to_numpy()
    starts: list[str] = []
    ends: list[str] = []
    for r in alleys.itertuples(index=False):
        c = shapely.get_coordinates(r.geometry)
        horizontal = abs(c[-1][0] - c[0][0]) >= abs(c[-1][1] - c[0][1])
        words = ("西起", "东至") if horizontal else ("南起", "北至")
        for end, word, out in ((c[0], words[0], starts), (c[-1], words[1], ends)):
            hits = tree.query(shapely.Point(end).buffer(1.0))
            other = sorted({names[h] for h in hits if names[h] and names[h] != r.name})
            out.append(f"{word}{other[0]}" if other else f"{word}{r.name}尽端")
    return starts, ends


def write_alleys(ctx: CityContext, alleys: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """COPY the alleys with their ledger attributes and chiefs."""
    rng = ctx.rng("alleys.ledger")
    n = len(alleys)
    ids = ctx.ids.take("alley", n)
    so_id, com_id = _locate(ctx, alleys)
    starts, ends = _ends(ctx, alleys)
    # One chief for every one to four alleys of a street office.
    chief = np.zeros(n, int)
    n_chiefs = 0
    for s in sorted(set(so_id.tolist())):
        members = np.flatnonzero(so_id == s)
        k = max(1, int(np.ceil(len(members) / rng.uniform(1.5, 3.5))))
        chief[members] = n_chiefs + np.sort(rng.integers(0, k, len(members)))
        n_chiefs += k
    chief_names = person_names(rng, surnames(rng, n_chiefs), rng.random(n_chiefs) < 0.55)
    phones = [f"010-{int(p)}" for p in rng.choice(np.arange(65_000_000, 65_999_999), n_chiefs,
                                                   replace=False)]
    frame = gpd.GeoDataFrame({
        "id": ids,
        "code": [f"JX-{i:05d}" for i in ids],
        "name": alleys["name"].to_numpy(),
        "start_desc": starts, "end_desc": ends,
        "length_m": np.round(alleys.geometry.length.to_numpy() * rng.uniform(0.97, 1.03, n), 1),
        "width_m": np.round(alleys["width_m"].to_numpy() * rng.uniform(0.9, 1.1, n), 1),
        "alley_type": [_alley_type(a) for a in alleys["name"]],
        "alley_chief_name": chief_names[chief],
        "alley_chief_phone": np.asarray(phones, dtype=object)[chief],
        "street_office_id": so_id,
        "community_id": pd.Series(com_id).where(com_id >= 0).astype("Int64").array,
    }, geometry=alleys.geometry.values, crs=METRIC_EPSG)
    ctx.writer.copy_frame("alley", frame)
    return frame


def plan_rates(ctx: CityContext, alleys: gpd.GeoDataFrame) -> pd.DataFrame:
    """Hot spots and trends: per alley base rate per month and log-rate per month."""
    rng = ctx.rng("alleys.rates")
    n = len(alleys)
    length = alleys.geometry.length.to_numpy()
    base = BASE_PER_100M * length / 100.0 * np.clip(rng.gamma(6.0, 1 / 6, n), 0.4, 1.8)
    hot = np.zeros(n, bool)
    if n:
        k = max(1, round(0.08 * n)) if n < 10 else max(2, round(0.08 * n))
        # Hot spots are among the longer alleys, where problems pile up.
        hot[rng.choice(n, size=min(k, n), replace=False, p=length / length.sum())] = True
    base = np.where(hot, BASE_PER_100M * length / 100.0 * rng.uniform(4.0, 7.0, n), base)
    draw = rng.random(n)
    trend = np.where(draw < 0.2, "improving", np.where(draw < 0.4, "worsening", "stable"))
    if n >= 3:  # at least one of each
        order = rng.permutation(n)
        trend[order[0]], trend[order[1]] = "improving", "worsening"
    rate = np.where(trend == "improving", -rng.uniform(0.08, 0.15, n),
                    np.where(trend == "worsening", rng.uniform(0.08, 0.15, n), 0.0))
    return pd.DataFrame({"alley_id": alleys["id"].to_numpy(), "hotspot": hot, "trend": trend,
                         "monthly_log_rate": rate, "base_per_month": base})


def problems(ctx: CityContext, alleys: gpd.GeoDataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """A year of problems at points a few metres off their alleys."""
    rng = ctx.rng("alleys.problems")
    start = REFERENCE_TIME - YEAR
    month = YEAR / 12
    rows = []
    for (_, a), p in zip(alleys.iterrows(), plan.itertuples(index=False), strict=True):
        coords = np.asarray(shapely.get_coordinates(a.geometry), float)
        cum = cumulative(coords)
        signature = int(rng.integers(len(CATEGORIES) - 1))
        for m in range(12):
            lam = p.base_per_month * np.exp(p.monthly_log_rate * (m - 5.5))
            for _ in range(int(rng.poisson(lam))):
                t = float(rng.uniform(0, cum[-1]))
                j = min(int(np.searchsorted(cum, t, side="right")) - 1, len(coords) - 2)
                d = coords[j + 1] - coords[j]
                normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
                off = float(np.clip(abs(rng.normal(0.0, 3.0)), 0.5, 8.0))
                xy = point_at(coords, cum, t) + normal * off * rng.choice((-1.0, 1.0))
                at = start + month * (m + float(rng.random()))
                rows.append((int(a.id), str(a["name"]), xy[0], xy[1], off, at, signature,
                             bool(p.hotspot)))
    frame = pd.DataFrame(rows, columns=["alley_id", "alley_name", "x", "y", "offset_m",
                                        "reported_at", "signature", "hotspot"])
    return frame.sort_values(["reported_at", "alley_id"], kind="stable").reset_index(drop=True)


def _statuses(rng: np.random.Generator, reported: pd.Series) -> tuple[np.ndarray, list[Any]]:
    age_days = ((REFERENCE_TIME - reported).dt.total_seconds() / 86400).to_numpy()
    draw = rng.random(len(age_days))
    status = np.where(
        age_days < 2, np.where(draw < 0.5, "reported", "assigned"),
        np.where(age_days < 14,
                 np.select([draw < 0.1, draw < 0.4, draw < 0.8], ["reported", "assigned",
                                                                  "resolved"], "closed"),
                 np.select([draw < 0.03, draw < 0.08, draw < 0.2], ["assigned", "invalid",
                                                                    "resolved"], "closed")))
    delay = rng.lognormal(np.log(36.0), 0.8, len(age_days))  # hours to resolve
    resolved: list[Any] = []
    for s, r, h in zip(status, reported, delay, strict=True):
        at = r + timedelta(hours=float(h))
        resolved.append(min(at, REFERENCE_TIME - timedelta(minutes=5))
                        if s in ("resolved", "closed") else None)
    return status, resolved


def write_problems(ctx: CityContext, found: pd.DataFrame) -> np.ndarray:
    """COPY the problems; return their ids."""
    rng = ctx.rng("alleys.problem_fields")
    n = len(found)
    ids = ctx.ids.take("alley_problem", n)
    source = rng.choice(SOURCES, n, p=SOURCE_SHARE)
    category = np.empty(n, dtype=object)
    for s in SOURCES:
        mask = source == s
        w = np.asarray(CATEGORY_WEIGHTS[s], float)
        category[mask] = rng.choice(CATEGORIES, int(mask.sum()), p=w / w.sum())
    # Hot spots have a trouble of their own that keeps coming back.
    keep = found["hotspot"].to_numpy() & (rng.random(n) < 0.5)
    category[keep] = np.asarray(CATEGORIES)[found["signature"].to_numpy()[keep]]
    status, resolved = _statuses(rng, found["reported_at"])
    seq: dict[str, int] = {}
    refs = []
    for s, at in zip(source, found["reported_at"], strict=True):
        seq[s] = seq.get(s, 0) + 1
        day = at.strftime("%Y%m%d")
        refs.append(f"{day}{seq[s]:06d}" if s == "hotline_12345"
                    else f"{SOURCE_PREFIX[s]}-{day}-{seq[s]:05d}")
    has_photo = rng.random(n) < np.where(source == "hotline_12345", 0.4, 0.95)
    hexes = rng.integers(0, 1 << 62, n)
    photo = [f"alley/{at:%Y/%m}/{h:016x}.jpg" if ok else None
             for at, h, ok in zip(found["reported_at"], hexes, has_photo, strict=True)]
    number = rng.integers(1, 90, n)
    description = [f"{name}{no}号附近{TEXT[c]}" for name, no, c in
                   zip(found["alley_name"], number, category, strict=True)]
    frame = gpd.GeoDataFrame({
        "id": ids, "source": source, "external_ref": refs, "reported_at": found["reported_at"],
        "category": category, "description": description, "status": status,
        "photo_ref": photo, "resolved_at": resolved,
    }, geometry=shapely.points(found[["x", "y"]].to_numpy()), crs=METRIC_EPSG)
    ctx.writer.copy_frame("alley_problem", frame)
    return ids


def build(ctx: CityContext) -> None:
    """Make the alleys, their chiefs, a year of problems and the truth.

    Parameters
    ----------
    ctx : CityContext
        Needs ``frames["road"]``, ``frames["street_office"]``,
        ``frames["community"]`` and, if any, ``frames["old_quarter"]``.
    """
    with ctx.step("back alleys", 3) as task:
        merged = merge_alleys(ctx)
        if len(merged) == 0:
            LOGGER.info("no alleys in old quarters")
            ctx.truth["alleys"] = {"alleys": 0}
            return
        alleys = write_alleys(ctx, merged)
        ctx.frames["alley"] = alleys
        task.advance()
        plan = plan_rates(ctx, alleys)
        found = problems(ctx, alleys, plan)
        ids = write_problems(ctx, found)
        task.advance()
        counts = found.groupby("alley_id").size()
        plan["problems"] = counts.reindex(plan["alley_id"]).fillna(0).astype(int).to_numpy()
        ctx.writer.copy_frame("alley_trend", plan, schema="truth")
        ctx.writer.copy_frame("alley_problem_origin", pd.DataFrame(
            {"problem_id": ids, "alley_id": found["alley_id"].to_numpy(),
             "offset_m": found["offset_m"].round(2).to_numpy()}), schema="truth")
        task.advance()
    ctx.truth["alleys"] = {
        "alleys": len(alleys), "problems": len(found),
        "hotspots": int(plan["hotspot"].sum()),
        "trends": plan["trend"].value_counts().to_dict(),
        "base_per_100m_month": BASE_PER_100M,
    }
