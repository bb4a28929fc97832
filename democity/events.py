"""A year of reported events (随手拍/随手上报) and the city-operations points.

Events come from citizens, grid workers, the 12345 hotline and lifeline
sensors, at homes and on streets, in proportions and at hours typical of
each source. Each is assigned (属地) to the leaf grid, community and street
office its point falls in, and runs reported → assigned → handled → closed
→ evaluated as far as the year allows, with a status-history row per step,
photos, and a 1–5 evaluation from those who give one.

Key units (schools, kindergartens, clinics, care homes … by population
ratios, on the city's public buildings where names fit), hazard sources,
charging piles, street furniture and snow-removal resources complete the
display layers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from democity.context import METRIC_EPSG, REFERENCE_TIME, CityContext
from democity.names import person_names, surnames
from democity.writer import to_ewkb_hex

LOGGER = logging.getLogger(__name__)

SOURCES = ("citizen", "grid_worker", "hotline_12345", "sensor")
SOURCE_SHARE = np.array([0.35, 0.45, 0.15, 0.05])
CATEGORIES = ("city_appearance", "sanitation", "municipal_facility", "road_traffic",
              "construction", "street_order", "advertising", "greening", "safety_hazard",
              "dispute", "livelihood", "emergency", "other")
#: Category weights per source, in the order of CATEGORIES.
CATEGORY_WEIGHTS = {
    "citizen": (15, 20, 15, 10, 2, 10, 3, 5, 5, 5, 10, 0, 0),
    "grid_worker": (20, 15, 10, 5, 5, 15, 10, 5, 10, 0, 0, 0, 5),
    "hotline_12345": (0, 10, 10, 10, 10, 10, 0, 0, 5, 15, 25, 0, 5),
}
SUBCATEGORY = {
    "city_appearance": ("乱堆物料", "乱涂乱画", "破损门脸"), "sanitation": ("垃圾满溢", "道路不洁",
                                                                   "暴露垃圾"),
    "municipal_facility": ("井盖缺失", "路灯不亮", "护栏损坏"), "road_traffic": ("非机动车乱停放",
                                                                           "机动车违停"),
    "construction": ("施工扰民", "渣土未苫盖"), "street_order": ("占道经营", "店外经营"),
    "advertising": ("非法小广告", "违规户外广告"), "greening": ("绿地破坏", "树木倒伏"),
    "safety_hazard": ("消防通道堵塞", "燃气异味", "电动车楼道充电"), "dispute": ("邻里纠纷",
                                                                          "物业纠纷"),
    "livelihood": ("供暖不热", "停水", "噪声扰民"), "emergency": ("管线破裂", "路面塌陷"),
    "other": ("其他",),
}
#: Share of reports by hour of day, per source (index 0 = 00:00 Beijing time).
HOURS = {
    "citizen": np.array([1, 0.5, 0.3, 0.2, 0.2, 0.5, 2, 5, 7, 8, 8, 7, 6, 6, 7, 7, 7, 8, 8, 8,
                         7, 5, 3, 2], float),
    "grid_worker": np.array([0, 0, 0, 0, 0, 0, 0.5, 3, 10, 12, 12, 10, 5, 6, 11, 11, 10, 8, 2,
                             0.5, 0, 0, 0, 0], float),
    "hotline_12345": np.array([2, 1, 0.5, 0.5, 0.5, 1, 2, 4, 7, 8, 8, 7, 6, 7, 7, 7, 7, 6, 6, 6,
                               5, 4, 3, 3], float),
}
SCORE_P = {True: [0.02, 0.03, 0.08, 0.27, 0.60], False: [0.08, 0.10, 0.20, 0.30, 0.32]}
COMMENT = {1: "很不满意，问题没有解决", 2: "不满意，处理太慢", 3: "一般", 4: "满意",
           5: "非常满意，处理及时"}
NOTES = ("上报", "已派遣", "已处置", "已结案", "已评价")
STATUSES = ("reported", "assigned", "handled", "closed", "evaluated")
BEIJING = np.timedelta64(8, "h")
CHUNK = 50_000


def _unless(mask: np.ndarray, values: Any) -> np.ndarray:
    """Values as objects, None where ``mask`` is true."""
    out = np.array(values, dtype=object)
    out[np.asarray(mask, bool)] = None
    return out


def _hex(rng: np.random.Generator, n: int, words: int) -> np.ndarray:
    """n random lower-case hex strings of 16 × words characters."""
    parts = rng.integers(0, np.iinfo(np.int64).max, (n, words), dtype=np.int64)
    return np.array(["".join(f"{int(v):016x}" for v in row) for row in parts])


def _iso(times: np.ndarray) -> np.ndarray:
    """datetime64[s] (UTC) → text COPY understands."""
    return np.char.add(np.datetime_as_string(times.astype("datetime64[s]"), unit="s"), "+00")


def leaf_grids(ctx: CityContext) -> gpd.GeoDataFrame:
    """The grids that have no sub-grid, with their community and street office."""
    grid = ctx.frames["grid"]
    parents = set(grid["parent_id"].dropna().astype(int).tolist())
    leaf = grid[~grid["id"].isin(parents)].copy()
    com = ctx.frames["community"].set_index("id")
    leaf["street_office_id"] = com.loc[leaf["community_id"], "street_office_id"].to_numpy()
    leaf["community_name"] = com.loc[leaf["community_id"], "name"].to_numpy()
    return leaf.reset_index(drop=True)


def locate(points: np.ndarray, leaf: gpd.GeoDataFrame) -> np.ndarray:
    """Index into ``leaf`` of the grid each point falls in (−1 outside all)."""
    tree = shapely.STRtree(np.asarray(leaf.geometry.values, dtype=object))
    # Strictly inside: a point on a boundary may fall either side once transformed.
    pairs = tree.query(points, predicate="within")
    out = np.full(len(points), -1)
    out[pairs[0][::-1]] = pairs[1][::-1]  # first match wins
    return out


def _places(ctx: CityContext, rng: np.random.Generator, n: int) -> np.ndarray:
    """Where events happen: in front of homes and shops, or on the street."""
    building = ctx.frames["building"]
    road = ctx.frames["road"]
    centre = shapely.get_coordinates(shapely.centroid(np.asarray(building.geometry.values)))
    w = building["households"].fillna(0).to_numpy(float) + 20.0
    on_street = rng.random(n) < 0.25
    xy = np.empty((n, 2))
    k = int((~on_street).sum())
    pick = rng.choice(len(centre), size=k, p=w / w.sum())
    xy[~on_street] = centre[pick] + rng.normal(0, 15.0, (k, 2))
    lengths = road.geometry.length.to_numpy()
    edges = rng.choice(len(road), size=n - k, p=lengths / lengths.sum())
    pts = shapely.line_interpolate_point(np.asarray(road.geometry.values)[edges],
                                         rng.random(n - k), normalized=True)
    xy[on_street] = shapely.get_coordinates(pts) + rng.normal(0, 4.0, (n - k, 2))
    return xy


def _times(rng: np.random.Generator, source: np.ndarray) -> np.ndarray:
    """Report instants (UTC) over the year: busier on weekdays and in summer."""
    n = len(source)
    end = np.datetime64(REFERENCE_TIME.replace(tzinfo=None), "s")
    first_day = (end - np.timedelta64(365, "D") + BEIJING).astype("datetime64[D]")
    days = np.arange(365)
    weekday = (first_day + days).view("int64") % 7  # 0 = Thursday (1970-01-01)
    w = np.where(np.isin(weekday, (2, 3)), 0.8, 1.1) * (
        1 + 0.15 * np.sin(2 * np.pi * (days - 150) / 365))
    day = rng.choice(365, size=n, p=w / w.sum())
    hour = np.empty(n, int)
    for s in SOURCES:
        m = source == s
        prof = HOURS.get(s, np.ones(24))
        hour[m] = rng.choice(24, size=int(m.sum()), p=prof / prof.sum())
    local = (first_day + day).astype("datetime64[s]") + (
        hour * 3600 + rng.integers(0, 3600, n)).astype("timedelta64[s]")
    return np.minimum(local - BEIJING, end - np.timedelta64(60, "s"))


def _lifecycle(rng: np.random.Generator, source: np.ndarray, t0: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Transition instants (n × 5, NaT after the last) and the number of steps done."""
    n = len(source)
    hours = np.column_stack([
        np.where(source == "grid_worker", rng.lognormal(np.log(0.3), 0.8, n),
                 rng.lognormal(np.log(1.5), 0.9, n)),
        rng.lognormal(np.log(20.0), 0.9, n),
        rng.lognormal(np.log(6.0), 0.8, n),
        rng.lognormal(np.log(24.0), 0.8, n),
    ])
    steps = np.cumsum(np.round(hours * 3600).astype("int64"), axis=1).astype("timedelta64[s]")
    times = np.column_stack([t0, t0[:, None] + steps])
    evaluates = rng.random(n) < np.select([np.isin(source, ("citizen", "hotline_12345")),
                                           source == "grid_worker"], [0.7, 0.3], 0.0)
    stuck = rng.random(n) < 0.03
    last = np.where(evaluates, 5, 4)
    last = np.where(stuck, rng.integers(1, 3, n), last)
    now = np.datetime64(REFERENCE_TIME.replace(tzinfo=None), "s")
    done = np.minimum(last, (times <= now).sum(axis=1))
    times[np.arange(5)[None, :] >= done[:, None]] = np.datetime64("NaT", "s")
    return times, done


def write_events(ctx: CityContext, leaf: gpd.GeoDataFrame) -> int:
    """Events, their status history and photos, streamed in chunks."""
    rng = ctx.rng("events.events")
    n_total = ctx.scale.events
    raised = ctx.frames.get("sensor_alarm")
    alarms = pd.DataFrame() if raised is None else raised[
        raised["level"].isin(("alarm", "critical"))].reset_index(drop=True)
    road = ctx.frames["road"]
    road_tree = shapely.STRtree(np.asarray(road.geometry.values, dtype=object))
    road_names = road["name"].fillna("").to_numpy()
    workers = person_names(rng, surnames(rng, len(leaf)), rng.random(len(leaf)) < 0.5)
    ids_all = ctx.ids.take("event", n_total)
    seq = 0
    written = 0
    for lo in range(0, n_total, CHUNK):
        ids = ids_all[lo:lo + CHUNK]
        n = len(ids)
        source = rng.choice(SOURCES, n, p=SOURCE_SHARE)
        if len(alarms) == 0:
            source[source == "sensor"] = "grid_worker"
        xy = _places(ctx, rng, n)
        t0 = _times(rng, source)
        category = np.empty(n, dtype=object)
        for s, w in CATEGORY_WEIGHTS.items():
            m = source == s
            p = np.asarray(w, float)
            category[m] = rng.choice(CATEGORIES, int(m.sum()), p=p / p.sum())
        sensor = np.flatnonzero(source == "sensor")
        external = np.full(n, None, dtype=object)
        if sensor.size:
            pick = rng.integers(0, len(alarms), sensor.size)
            a = alarms.iloc[pick]
            xy[sensor] = a[["x", "y"]].to_numpy()
            t0[sensor] = pd.to_datetime(a["at"]).dt.tz_convert(None).to_numpy("datetime64[s]")
            category[sensor] = np.where(a["utility"].isin(("gas", "heat")), "safety_hazard",
                                        np.where(rng.random(sensor.size) < 0.2, "emergency",
                                                 "municipal_facility"))
            external[sensor] = [f"SA-{lo + i:07d}" for i in sensor]
            alarm_text = a["message"].str.split("：").str[0].to_numpy()
        hotline = np.flatnonzero(source == "hotline_12345")
        days = np.datetime_as_string((t0[hotline] + BEIJING).astype("datetime64[s]"), unit="D")
        external[hotline] = [f"{d.replace('-', '')}{seq + k:06d}" for k, d in
                             enumerate(days)]
        seq += hotline.size
        points = shapely.points(xy)
        cell = locate(points, leaf)
        # Points on a grid's edge (a node on a boundary road) are moved in, too.
        outside = (cell < 0) | (shapely.distance(points, shapely.boundary(
            np.asarray(leaf.geometry.values)[np.maximum(cell, 0)])) < 0.05)
        if outside.any():  # pulled just inside the nearest grid
            tree = shapely.STRtree(np.asarray(leaf.geometry.values, dtype=object))
            cell[outside] = np.where(cell[outside] >= 0, cell[outside], tree.query_nearest(
                points[outside], all_matches=False)[1])
            target = np.asarray(leaf.geometry.values)[cell[outside]]
            edge = shapely.get_coordinates(shapely.shortest_line(points[outside], target))[1::2]
            inner = shapely.get_coordinates(shapely.point_on_surface(target))
            step = (inner - edge) / np.maximum(np.hypot(*(inner - edge).T), 1e-9)[:, None]
            moved = edge + step * np.minimum(2.0, np.hypot(*(inner - edge).T))[:, None]
            inside = shapely.contains_properly(target, shapely.points(moved))
            xy[outside] = np.where(inside[:, None], moved, inner)
            points = shapely.points(xy)
        no_geom = (source == "hotline_12345") & (rng.random(n) < 0.02)
        times, done = _lifecycle(rng, source, t0)
        quick = (times[:, 3] - times[:, 0]) < np.timedelta64(48, "h")
        score = np.zeros(n, int)
        for q in (True, False):
            m = (done == 5) & (quick == q)
            score[m] = rng.choice(np.arange(1, 6), int(m.sum()), p=SCORE_P[q])
        near_road = road_names[road_tree.query_nearest(points, all_matches=False)[1]]
        address = [f"{c}{r}{k}号附近" for c, r, k in zip(
            leaf["community_name"].to_numpy()[cell], near_road, rng.integers(1, 200, n),
            strict=True)]
        sub = np.array([SUBCATEGORY[c][int(k) % len(SUBCATEGORY[c])] for c, k in
                        zip(category, rng.integers(0, 60, n), strict=True)], dtype=object)
        if sensor.size:
            sub[sensor] = alarm_text
        name = _unless(source != "citizen",
                       person_names(rng, surnames(rng, n), rng.random(n) < 0.5))
        name = np.where(source == "grid_worker", workers[cell], name)
        name = np.where(source == "hotline_12345",
                        np.char.add(surnames(rng, n), np.where(rng.random(n) < 0.5, "先生",
                                                               "女士")), name)
        name = np.where(source == "sensor", "生命线监测系统", name)
        phone = _unless(~np.isin(source, ("citizen", "hotline_12345")),
                        [f"1{int(a)}****{int(b):04d}" for a, b in
                         zip(rng.integers(30, 100, n), rng.integers(0, 10000, n), strict=True)])
        raw = rng.bytes(16 * n)
        uuids = np.array([f"{raw[16 * i:16 * i + 4].hex()}-{raw[16 * i + 4:16 * i + 6].hex()}-4"
                          f"{raw[16 * i + 6:16 * i + 8].hex()[1:]}-"
                          f"{'89ab'[raw[16 * i + 8] % 4]}{raw[16 * i + 8:16 * i + 10].hex()[1:]}-"
                          f"{raw[16 * i + 10:16 * i + 16].hex()}" for i in range(n)])
        uuids = _unless(~np.isin(source, ("citizen", "grid_worker")), uuids)
        geom = np.asarray(to_ewkb_hex(points), dtype=object)
        geom[no_geom] = None
        so = _unless(no_geom, leaf["street_office_id"].to_numpy()[cell])
        com = _unless(no_geom, leaf["community_id"].to_numpy()[cell])
        grid = _unless(no_geom, leaf["id"].to_numpy()[cell])
        status = np.asarray(STATUSES)[done - 1]
        iso = [_iso(times[:, k]) for k in range(5)]
        rows = zip(ids.tolist(), uuids, external, source, category, sub,
                   [f"{s}：{a}" for s, a in zip(sub, address, strict=True)], address, geom,
                   iso[0], name, phone, status, so, com, grid,
                   _unless(done < 5, score),
                   [COMMENT[int(s)] if d == 5 else None for s, d in zip(score, done,
                                                                        strict=True)],
                   _unless(done < 5, iso[4]), strict=True)
        ctx.writer.copy_rows("event", (
            "id", "client_uuid", "external_ref", "source", "category", "subcategory",
            "description", "address", "geom", "reported_at", "reporter_name", "reporter_phone",
            "status", "street_office_id", "community_id", "grid_id", "evaluation_score",
            "evaluation_comment", "evaluated_at"), rows)
        ctx.writer.copy_rows("event_status_history", (
            "event_id", "from_status", "to_status", "at", "note"), _history(ids, done, iso))
        ctx.writer.copy_rows("event_photo", (
            "event_id", "phase", "storage_ref", "content_type", "size_bytes", "sha256",
            "taken_at", "geom"), _photos(rng, ids, source, done, times, xy))
        written += n
    return written


def _history(ids: np.ndarray, done: np.ndarray, iso: list[np.ndarray]
             ) -> Iterator[tuple[Any, ...]]:
    for k in range(5):
        for i in np.flatnonzero(done > k).tolist():
            yield (int(ids[i]), STATUSES[k - 1] if k else None, STATUSES[k], iso[k][i],
                   NOTES[k])


def _photos(rng: np.random.Generator, ids: np.ndarray, source: np.ndarray, done: np.ndarray,
            times: np.ndarray, xy: np.ndarray) -> Iterator[tuple[Any, ...]]:
    n = len(ids)
    report = np.select([source == "citizen", source == "grid_worker", source == "hotline_12345"],
                       [rng.integers(0, 4, n), rng.integers(1, 3, n),
                        (rng.random(n) < 0.1).astype(int)], 0)
    report = np.where((source == "citizen") & (report == 0) & (rng.random(n) < 0.7), 1, report)
    closure = ((done >= 4) & (source != "sensor") & (rng.random(n) < 0.8)).astype(int)
    handling = ((done >= 3) & (rng.random(n) < 0.3)).astype(int)
    phases = [("report", report, 0), ("handling", handling, 2), ("closure", closure, 3)]
    total = int(report.sum() + closure.sum() + handling.sum())
    shas = _hex(rng, total, 4)
    sizes = np.round(rng.lognormal(np.log(1.2e6), 0.5, total)).astype(int)
    jitter = rng.normal(0, 5.0, (total, 2))
    lag = rng.integers(30, 900, total).astype("timedelta64[s]")
    event_of = np.concatenate([np.repeat(np.arange(n), c) for _, c, _ in phases])
    phase_of = np.concatenate([np.full(int(c.sum()), k) for k, (_, c, _) in enumerate(phases)])
    step_of = np.array([p[2] for p in phases])[phase_of]
    taken = times[event_of, step_of] - lag
    has_gps = source[event_of] != "hotline_12345"
    geoms = np.asarray(to_ewkb_hex(shapely.points(xy[event_of] + jitter)), dtype=object)
    taken_iso = _iso(taken)
    month = np.datetime_as_string(taken, unit="M")
    for j in range(total):
        i = int(event_of[j])
        yield (int(ids[i]), phases[int(phase_of[j])][0],
               f"events/{month[j].replace('-', '/')}/{int(ids[i])}/{shas[j][:16]}.jpg",
               "image/jpeg", int(sizes[j]), str(shas[j]), str(taken_iso[j]),
               geoms[j] if has_gps[j] else None)


def build(ctx: CityContext) -> None:
    """Write the events and the city-operations points.

    Parameters
    ----------
    ctx : CityContext
        Needs the city's frames (``building``, ``road``, ``grid``,
        ``community``, ``street_office``, ``block``, ``household_summary``);
        uses ``sensor_alarm`` from the pipelines step if present.
    """
    leaf = leaf_grids(ctx)
    with ctx.step("events", ctx.scale.events) as task:
        n = write_events(ctx, leaf)
        task.advance(n)
    facts = write_city_ops(ctx)
    ctx.truth["events"] = {"events": n, **facts}


# --- City-operations points ----------------------------------------------------------------

#: kind, name suffix, residents per unit (0: one per community), people range, on building type.
KEY_UNITS = (
    ("school", "小学", 12_500, (900, 2400), "public"),
    ("school", "中学", 30_000, (1000, 2500), "public"),
    ("kindergarten", "幼儿园", 6_000, (180, 400), "public"),
    ("clinic", "社区卫生服务中心", 25_000, (40, 120), "public"),
    ("hospital", "医院", 100_000, (600, 2500), "public"),
    ("care_home", "养老驿站", 8_000, (30, 150), "public"),
    ("government", "社区服务站", 0, (10, 30), "public"),
    ("cultural_venue", "文化活动中心", 30_000, (50, 300), "public"),
    ("shopping_mall", "商场", 40_000, (500, 5000), "commercial"),
    ("transport_hub", "公交枢纽", 300_000, (2000, 20000), "commercial"),
    ("stadium", "体育馆", 500_000, (1000, 8000), "public"),
)
BASIC = {"小学", "幼儿园", "社区卫生服务中心", "养老驿站"}


def _frame(data: dict[str, Any], xy: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(data, geometry=shapely.points(xy) if len(xy) else [],
                            crs=METRIC_EPSG)


def key_units(ctx: CityContext, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Key units by population ratios, on matching public buildings where there are any."""
    from democity.names import STEMS

    b = ctx.frames["building"].reset_index(drop=True)
    residents = float(ctx.frames["household_summary"]["residents"].sum())
    n_com = len(ctx.frames["community"])
    used = np.zeros(len(b), bool)
    names = b["name"].fillna("").astype(str).to_numpy()
    address = b["address"].to_numpy() if "address" in b else np.full(len(b), None)
    btype = b["building_type"].astype(str).to_numpy()
    homes = np.flatnonzero(b["households"].fillna(0).to_numpy() > 0)
    rows: list[tuple[str, str, int, Any, Any]] = []
    for kind, suffix, per, people, on in KEY_UNITS:
        n = n_com if per == 0 else round(residents / per)
        n = max(n, 1) if suffix in BASIC else n
        for _ in range(n):
            match = np.flatnonzero(~used & (btype == on) & np.char.endswith(
                names.astype(str), suffix))
            other = np.flatnonzero(~used & (btype == on))
            pool = match if match.size else other
            if pool.size:
                i = int(rng.choice(pool))
                used[i] = True
                name = names[i] if match.size else f"{STEMS[int(rng.integers(len(STEMS)))]}{suffix}"
                rows.append((kind, name, int(rng.integers(*people)), b.geometry.iloc[i],
                             address[i]))
            elif homes.size:  # no building to spare: a site beside a residential building
                i = int(rng.choice(homes))
                site = shapely.centroid(b.geometry.iloc[i]).buffer(25.0, quad_segs=2)
                rows.append((kind, f"{STEMS[int(rng.integers(len(STEMS)))]}{suffix}",
                             int(rng.integers(*people)), site, None))
    ids = ctx.ids.take("key_unit", len(rows))
    foot = [r[3] for r in rows]
    frame = gpd.GeoDataFrame({
        "id": ids, "code": [f"ZD-{i:05d}" for i in ids], "name": [r[1] for r in rows],
        "kind": [r[0] for r in rows], "people_count": [r[2] for r in rows],
        "address": [r[4] for r in rows],
        "footprint": [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g])
                      for g in foot],
    }, geometry=shapely.centroid(foot) if foot else [], crs=METRIC_EPSG)
    ctx.writer.copy_frame("key_unit", frame, geometry=("geom", "footprint"))
    return frame


def _roadside(rng: np.random.Generator, road: gpd.GeoDataFrame, classes: tuple[str, ...],
              n: int, setback: float) -> np.ndarray:
    """n points beside roads of some classes, chosen by length."""
    sel = road[road["road_class"].isin(classes)]
    if len(sel) == 0 or n == 0:
        return np.empty((0, 2))
    lengths = sel.geometry.length.to_numpy()
    k = rng.choice(len(sel), n, p=lengths / lengths.sum())
    lines = np.asarray(sel.geometry.values)[k]
    t = rng.uniform(0.2, 0.8, n)
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines, t, normalized=True))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines, t + 0.01, normalized=True))
    d = (b - a) / np.maximum(np.hypot(*(b - a).T), 1e-9)[:, None]
    side = rng.choice((-1.0, 1.0), n)[:, None]
    off = sel["width_m"].astype(float).to_numpy()[k] / 2 + setback
    return a + side * np.column_stack([-d[:, 1], d[:, 0]]) * off[:, None]


def write_city_ops(ctx: CityContext) -> dict[str, int]:
    """Key units, hazard sources, charging piles, street furniture, snow resources."""
    rng = ctx.rng("events.city_ops")
    road = ctx.frames["road"]
    b = ctx.frames["building"]
    area_km2 = ctx.scale.width_m * ctx.scale.height_m / 1e6
    units = key_units(ctx, rng)
    # Hazard sources.
    hospitals = shapely.get_coordinates(units.geometry[units["kind"] == "hospital"].values)
    industrial = b[b["building_type"] == "industrial"]
    ind_xy = shapely.get_coordinates(shapely.centroid(np.asarray(industrial.geometry.values)))
    n_gas, n_lpg = max(1, round(area_km2 / 4)), round(area_km2 / 20)
    store = rng.random(len(ind_xy)) < 0.04
    vessel = rng.random(len(ind_xy)) < 0.03
    xy = np.vstack([_roadside(rng, road, ("arterial", "secondary"), n_gas, 15.0),
                    _roadside(rng, road, ("arterial", "secondary", "branch"), n_lpg, 20.0),
                    ind_xy[store], ind_xy[vessel], hospitals])
    kinds = (["gas_station"] * n_gas + ["lpg_station"] * n_lpg
             + ["chemical_storage"] * int(store.sum()) + ["pressure_vessel"]
             * int(vessel.sum() + len(hospitals)))
    host = np.concatenate([industrial["name"].fillna("").astype(str).to_numpy()[store],
                           industrial["name"].fillna("").astype(str).to_numpy()[vessel],
                           units["name"].to_numpy()[units["kind"] == "hospital"]])
    tree = shapely.STRtree(np.asarray(road.geometry.values, dtype=object))
    street = road["name"].fillna("").to_numpy()[
        tree.query_nearest(shapely.points(xy[:n_gas + n_lpg]), all_matches=False)[1]]
    brand = rng.choice(["中石化", "中石油", "壳牌"], n_gas)
    names = ([f"{brand[k]}{street[k]}加油站" for k in range(n_gas)]
             + [f"{street[n_gas + k]}液化石油气供应站" for k in range(n_lpg)]
             + [f"{h}危险化学品库" for h in host[:int(store.sum())]]
             + [f"{h}压力容器" for h in host[int(store.sum()):]])
    ids = ctx.ids.take("hazard_source", len(kinds))
    level = np.select([np.asarray(kinds) == "lpg_station",
                       np.asarray(kinds) == "chemical_storage"],
                      [3, rng.integers(3, 5, len(kinds))], 0)
    level = np.where((np.asarray(kinds) == "gas_station") & (rng.random(len(kinds)) < 0.3), 4,
                     level)
    ctx.writer.copy_frame("hazard_source", _frame({
        "id": ids, "code": [f"WX-{i:04d}" for i in ids], "name": names,
        "kind": kinds, "level": pd.array(_unless(level == 0, level), dtype="Int64"),
    }, xy))
    # Charging piles in rows by compounds and shops.
    hosts = np.flatnonzero(b["building_type"].isin(("tower", "commercial", "walk_up")).to_numpy())
    n_sites = max(2, int(b["households"].fillna(0).sum()) // 1500)
    piles = []
    for i in rng.choice(hosts, min(n_sites, hosts.size), replace=False) if hosts.size else []:
        x0, y0, _, _ = b.geometry.iloc[int(i)].bounds
        piles += [(x0 + 3.0 * k, y0 - 6.0) for k in range(int(rng.integers(4, 11)))]
    n = len(piles)
    fast = rng.random(n) < 0.3
    ids = ctx.ids.take("charging_pile", n)
    ctx.writer.copy_frame("charging_pile", _frame({
        "id": ids, "code": [f"CD-{i:05d}" for i in ids],
        "operator": rng.choice(["特来电", "星星充电", "国家电网", "小桔充电"], n),
        "connector": np.where(fast, "dc_fast", "ac_slow"),
        "power_kw": np.where(fast, rng.choice([60.0, 120.0], n), 7.0),
        "status": rng.choice(["available", "in_use", "fault", "offline"], n,
                             p=[0.6, 0.3, 0.07, 0.03]),
    }, np.array(piles).reshape(-1, 2)))
    # Street furniture: bins, shelters, benches, kiosks along roads; toilets in the lanes.
    km = {c: float(road.geometry.length[road["road_class"] == c].sum()) / 1000
          for c in ("arterial", "secondary", "branch", "alley")}
    plan = [("litter_bin", ("arterial", "secondary", "branch"),
             round(10 * (km["arterial"] + km["secondary"] + km["branch"])), 1.5),
            ("bus_shelter", ("arterial", "secondary"), round(2 * (km["arterial"]
                                                                  + km["secondary"])), 2.0),
            ("bench", ("arterial", "secondary", "branch"), round(km["branch"] + km["arterial"]),
             2.0),
            ("kiosk", ("arterial",), round(0.7 * km["arterial"]), 3.0),
            ("sign", ("arterial", "secondary"), round(km["arterial"] + km["secondary"]), 1.0),
            ("public_toilet", ("alley",), round(3 * km["alley"]), 4.0)]
    parts, kinds = [np.empty((0, 2))], []
    for kind, classes, count, setback in plan:
        parts.append(_roadside(rng, road, classes, count, setback))
        kinds += [kind] * len(parts[-1])
    xy = np.vstack(parts)
    ids = ctx.ids.take("city_furniture", len(xy))
    ctx.writer.copy_frame("city_furniture", _frame({
        "id": ids, "code": [f"JJ-{i:06d}" for i in ids], "kind": kinds,
        "status": rng.choice(["in_service", "damaged", "removed"], len(xy),
                             p=[0.93, 0.05, 0.02]),
    }, xy))
    # Snow removal: a depot with machines and salt per street office, crews per community.
    so = ctx.frames["street_office"]
    rows = []
    for s in so.itertuples(index=False):
        p = shapely.get_coordinates(shapely.point_on_surface(s.geometry))[0]
        short = str(s.name).removesuffix("街道")
        rows += [(f"{short}扫雪铲冰物资库", "depot", 1.0, "处", s.id, p),
                 (f"{short}扫雪车", "snow_plow", float(rng.integers(3, 9)), "辆", s.id, p + 4),
                 (f"{short}撒布机", "salt_spreader", float(rng.integers(2, 6)), "台", s.id, p + 8),
                 (f"{short}融雪剂", "deicer_stock", float(rng.integers(20, 81)), "t", s.id, p - 4),
                 (f"{short}扫雪队", "team", float(rng.integers(40, 121)), "人", s.id, p - 8)]
    com = ctx.frames["community"]
    for c in com.itertuples(index=False):
        p = shapely.get_coordinates(shapely.point_on_surface(c.geometry))[0]
        rows.append((f"{str(c.name).removesuffix('社区')}社区扫雪队", "team",
                     float(rng.integers(10, 31)), "人", c.street_office_id, p))
    x0, y0, x1, _ = shapely.total_bounds(np.asarray(so.geometry.values))
    for k in range(max(1, len(so) // 3)):
        p = np.array([x0 + (x1 - x0) * rng.uniform(0.05, 0.95), y0 - 150.0 - 200.0 * k])
        rows.append((f"临时雪场{k + 1}", "snow_dump", float(rng.integers(5, 21)) * 1000, "m3",
                     None, p))
    ids = ctx.ids.take("snow_resource", len(rows))
    ctx.writer.copy_frame("snow_resource", _frame({
        "id": ids, "code": [f"SX-{i:04d}" for i in ids], "name": [r[0] for r in rows],
        "kind": [r[1] for r in rows], "quantity": [r[2] for r in rows],
        "quantity_unit": [r[3] for r in rows],
        "street_office_id": pd.array([r[4] for r in rows], dtype="Int64"),
    }, np.array([r[5] for r in rows])))
    return {"key_units": len(units), "hazard_sources": len(kinds), "charging_piles": n}
