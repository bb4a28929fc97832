"""Muck trucks (渣土车): sites, fleet, GPS tracks, waybills, entries, checkpoint hits, spills.

Construction sites (工地) take a corner of a city block beside a junction;
disposal sites (消纳场) lie just outside the city, reached by an access way
from a junction on its edge; each transport company parks at a depot beside
a road. Trucks work mostly at night (22:00–06:00 Beijing time), shuttling
between a construction site and a disposal site along the fastest roads
(:mod:`democity.tracks`), and their terminals report every 10–30 s.
:mod:`democity.hauls` plans the shifts, :mod:`democity.truck_records`
derives waybills, entries, checkpoint hits and spills from them, and
:mod:`democity.truck_gps` samples and loads the GPS fixes; this module
places the sites, makes the fleet and writes everything.

Ground truth goes to ``truth.truck_trip``, ``truth.spill_cause``,
``truth.device_off``, ``truth.unauthorised`` and ``truth.checkpoint_misread``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.ops import polylabel

from democity import hauls, truck_records
from democity.context import METRIC_EPSG, CityContext
from democity.tracks import RoadNetwork
from democity.truck_gps import Period, write_gps
from democity.writer import to_ewkb_hex
from spatial.crs import STORAGE_SRID, transform

LOGGER = logging.getLogger(__name__)

#: Block kinds a construction site or depot may take a corner of.
BUILDABLE = ("residential", "commercial", "public", "industrial")

PLACE_NAMES = ("东坝", "金盏", "孙河", "崔各庄", "黑庄户", "豆各庄", "王四营", "十八里店",
               "管庄", "常营", "来广营", "将台", "平房", "三间房", "高碑店", "南磨房",
               "小红门", "太阳宫", "望京", "酒仙桥", "双井", "劲松", "潘家园", "垡头")
PROJECT_KINDS = ("住宅", "商业综合体", "学校", "棚户区改造", "地铁站", "办公楼", "医院",
                 "安置房", "市政管廊", "公园配套")
BUILDERS = ("中建一局集团建设发展有限公司", "北京城建集团有限责任公司",
            "北京住总集团有限责任公司", "中铁建工集团有限公司", "北京建工集团有限责任公司",
            "中建二局第三建筑工程有限公司", "北京市政路桥股份有限公司")
FIRM_WORDS = ("鑫达", "顺通", "京运", "宏泰", "金盛", "通达", "恒远", "华运", "城运", "永安",
              "兴隆", "博达", "利通", "运昌", "安达", "广源", "昌盛", "路通", "天宇", "盛世")
PLATE_LETTERS = "ABCEFGHJKLMNPQY"
CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@dataclass
class Place:
    """A construction site, disposal site or depot: where trucks stop.

    Attributes
    ----------
    id : int
        Row id (0 for depots, which are no table).
    gate : int
        Node index of the junction trucks enter from.
    yard : list of (x, y)
        Way from the gate to the stopping point (through the entrance).
    polygon : Polygon or None
        Its outline (metres).
    attrs : dict
        Columns of its row.
    """

    id: int
    gate: int
    yard: list[tuple[float, float]]
    polygon: Polygon | None
    attrs: dict[str, Any]

    @property
    def spot(self) -> tuple[float, float]:
        """Where trucks stand: the loading, unloading or parking point."""
        return self.yard[-1]


def build(ctx: CityContext) -> None:
    """Place the sites, make the fleet, plan and write tracks and records.

    Writes ``truck_company``, ``truck``, ``construction_site``,
    ``disposal_site``, ``checkpoint``, ``truck_gps`` (one partition per
    Beijing day), ``waybill``, ``disposal_entry``, ``checkpoint_hit``,
    ``spill_report``, the truth tables ``truth.truck_trip``,
    ``truth.spill_cause``, ``truth.device_off``, ``truth.unauthorised`` and
    ``truth.checkpoint_misread``, and counts in ``ctx.truth["trucks"]``.

    Parameters
    ----------
    ctx : CityContext
        Needs ``ctx.graphs["road"]``, ``ctx.frames["road"]`` and ``ctx.frames["block"]``.

    Raises
    ------
    ValueError
        If the road graph has no drivable edge or the blocks leave no room
        for two construction sites.
    """
    net = RoadNetwork(ctx.graphs["road"])
    road_names = dict(zip(ctx.frames["road"]["id"].astype(int), ctx.frames["road"]["name"],
                          strict=True))
    blocks = ctx.frames["block"]
    scale = ctx.scale
    n_sites = max(2, round(scale.trucks / 7))
    n_disposal = max(2, min(10, round(scale.trucks / 250) + 2))
    n_companies = max(2, round(scale.trucks / 40))
    period = Period.before_reference(scale.truck_days)

    rng = ctx.rng("trucks.sites")
    used: set[int] = set()
    sites = construction_sites(ctx, net, blocks, n_sites, used, road_names, rng)
    disposals = disposal_sites(ctx, net, n_disposal, rng)
    depots = depot_places(net, blocks, n_companies, used, rng)
    dumps = dump_places(net, disposals, max(2, n_disposal), ctx.rng("trucks.dumps"))
    companies, trucks = fleet(ctx, n_companies)

    t0 = time.perf_counter()
    plan = hauls.plan(ctx, net, period, sites, disposals, depots, trucks, dumps)
    LOGGER.info("trucks: %d trips planned in %.1f s", len(plan.trips), time.perf_counter() - t0)
    t0 = time.perf_counter()
    checkpoints = truck_records.place_checkpoints(ctx, net, plan, road_names)
    records = truck_records.records(ctx, net, period, plan, ctx.frames["road"], checkpoints)
    LOGGER.info("trucks: records derived in %.1f s", time.perf_counter() - t0)

    w = ctx.writer
    w.copy_rows("truck_company", ["id", "code", "name", "contact_phone"], companies)
    w.copy_rows("truck", ["id", "plate_number", "company_id", "device_id", "capacity_m3",
                          "status"], [t[:6] for t in trucks])
    for table, places in (("construction_site", sites), ("disposal_site", disposals)):
        geoms = to_ewkb_hex([MultiPolygon([p.polygon]) for p in places])
        cols = ["id", *places[0].attrs, "geom"]
        w.copy_rows(table, cols, [(p.id, *p.attrs.values(), g)
                                  for p, g in zip(places, geoms, strict=True)])
    truck_records.write_checkpoints(ctx, checkpoints)
    write_gps(ctx, period, plan)
    truck_records.write_records(ctx, records)
    ctx.truth["trucks"] = {
        "period": [period.start.isoformat(), period.at(period.seconds).isoformat()],
        "construction_sites": len(sites), "disposal_sites": len(disposals),
        "companies": len(companies), "trucks": len(trucks),
        "depots_lonlat": [[round(float(v), 6) for v in transform(*p.spot, METRIC_EPSG,
                                                                 STORAGE_SRID)] for p in depots],
        **records.summary,
    }


def _corner_piece(block: Polygon, gx: float, gy: float, half: float) -> Polygon | None:
    piece = block.intersection(box(gx - half, gy - half, gx + half, gy + half))
    if piece.is_empty:
        return None
    if not isinstance(piece, Polygon):
        parts = [g for g in getattr(piece, "geoms", []) if isinstance(g, Polygon)]
        if not parts:
            return None
        piece = max(parts, key=lambda g: g.area)
    return shapely.orient_polygons(piece.simplify(0.5))


def _block_gates(net: RoadNetwork, blocks: Any) -> np.ndarray:
    cand = np.flatnonzero(net.main)
    tree = shapely.STRtree(shapely.points(net.xy[cand]))
    idx = tree.query_nearest(np.asarray(blocks.geometry.values), all_matches=False)[1]
    return np.asarray(cand[idx])


def _address(net: RoadNetwork, gate: int, toward: tuple[float, float],
             road_names: dict[int, Any]) -> str:
    inc = np.flatnonzero((net.edge_u == gate) | (net.edge_v == gate))
    names = list(dict.fromkeys(str(road_names.get(int(net.edge_road_id[e])) or "")
                               for e in inc if road_names.get(int(net.edge_road_id[e]))))
    dx, dy = toward[0] - net.xy[gate, 0], toward[1] - net.xy[gate, 1]
    we, ns = ("东" if dx >= 0 else "西"), ("北" if dy >= 0 else "南")
    if len(names) >= 2:
        return f"北京市朝阳区{names[0]}与{names[1]}交叉口{we}{ns}侧"
    if names:
        return f"北京市朝阳区{names[0]}{we if abs(dx) >= abs(dy) else ns}侧"
    return "北京市朝阳区"


def construction_sites(
    ctx: CityContext, net: RoadNetwork, blocks: Any, n: int, used: set[int],
    road_names: dict[int, Any], rng: np.random.Generator,
) -> list[Place]:
    """Construction sites: corners of buildable blocks beside a junction.

    Each takes the part of a block within 60–130 m of the junction nearest
    to it (at least 0.25 ha, its loading point at least 18 m from the fence),
    one site per block.

    Parameters
    ----------
    ctx : CityContext
        For ids.
    net : RoadNetwork
        Gates are junctions of its main component.
    blocks : geopandas.GeoDataFrame
        ``ctx.frames["block"]``.
    n : int
        How many sites.
    used : set of int
        Block ids already taken; the chosen blocks are added.
    road_names : dict
        Road id → name, for addresses.
    rng : numpy.random.Generator
        Choices.

    Returns
    -------
    list of Place
        With the ``construction_site`` columns in ``attrs``.

    Raises
    ------
    ValueError
        If fewer than two sites fit.
    """
    ok = blocks["kind"].isin(BUILDABLE).to_numpy() & (blocks.geometry.area.to_numpy() > 5000)
    cand = blocks[ok]
    gates = _block_gates(net, cand)
    ids = ctx.ids.take("construction_site", n)
    out: list[Place] = []
    for k in rng.permutation(len(cand)):
        if len(out) == n:
            break
        row = cand.iloc[k]
        gate = int(gates[k])
        if int(row["id"]) in used:
            continue
        gx, gy = net.xy[gate]
        poly = _corner_piece(row.geometry, gx, gy, float(rng.uniform(60, 130)))
        if poly is None or poly.area < 2500:
            continue
        label = polylabel(poly, tolerance=1.0)
        if poly.exterior.distance(label) < 18:
            continue
        used.add(int(row["id"]))
        entrance = poly.exterior.interpolate(poly.exterior.project(shapely.Point(gx, gy)))
        pid = int(ids[len(out)])
        place_name = PLACE_NAMES[int(rng.integers(len(PLACE_NAMES)))]
        kind = PROJECT_KINDS[int(rng.integers(len(PROJECT_KINDS)))]
        so = row.get("street_office_id")
        out.append(Place(pid, gate, [(gx, gy), (entrance.x, entrance.y), (label.x, label.y)],
                         poly, {
            "code": f"[2026]施[朝]建字{pid:04d}号",
            "name": f"{place_name}{kind}项目工地",
            "address": _address(net, gate, (label.x, label.y), road_names),
            "builder": BUILDERS[int(rng.integers(len(BUILDERS)))],
            "status": "active",
            "street_office_id": None if so is None or so != so else int(so),
        }))
    if len(out) < 2:
        raise ValueError(f"found room for {len(out)} construction sites, need at least 2")
    return out


def disposal_sites(
    ctx: CityContext, net: RoadNetwork, n: int, rng: np.random.Generator,
) -> list[Place]:
    """Disposal sites: yards of 2–8 ha just outside the city.

    Each lies 80–200 m beyond a junction on the city's edge (the sides taken
    in turn, sites spread along them), reached by an access way from it.

    Returns
    -------
    list of Place
        With the ``disposal_site`` columns in ``attrs``.
    """
    xy = net.xy[net.main]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    span = max(x1 - x0, y1 - y0)
    sides = {"W": ((-1, 0), 0, x0), "E": ((1, 0), 0, x1), "S": ((0, -1), 1, y0),
             "N": ((0, 1), 1, y1)}
    order = [list(sides)[i] for i in rng.permutation(4)]
    ids = ctx.ids.take("disposal_site", n)
    out: list[Place] = []
    chosen: list[np.ndarray] = []
    major = np.zeros(len(net.xy), dtype=bool)
    for e in np.flatnonzero(net.edge_class != "branch"):
        major[[net.edge_u[e], net.edge_v[e]]] = True
    for i in range(n):
        normal, axis, edge = sides[order[i % 4]]
        near = net.main & (np.abs(net.xy[:, axis] - edge) <= max(60.0, 0.04 * span))
        pool = np.flatnonzero(near & major) if (near & major).any() else np.flatnonzero(near)
        if chosen:
            far = np.min([np.hypot(*(net.xy[pool] - c).T) for c in chosen], axis=0)
            pool = pool[far >= 0.5 * far.max()]
        gate = int(rng.choice(pool))
        g = net.xy[gate]
        chosen.append(g)
        nv = np.array(normal, dtype=float)
        tv = np.array([-nv[1], nv[0]])
        gap, depth, width = rng.uniform(80, 200), rng.uniform(140, 260), rng.uniform(160, 320)
        c = g + nv * (gap + depth / 2) + tv * rng.uniform(-width / 4, width / 4)
        ang = np.radians(rng.uniform(-10, 10))
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        cut = rng.uniform(0.2, 0.4)
        local = np.array([(-1, -1), (1, -1), (1, 1 - cut), (1 - cut, 1), (-1, 1)], dtype=float)
        pts = c + (local * [depth / 2, width / 2]) @ np.array([nv, tv]) @ rot.T
        poly = shapely.orient_polygons(Polygon(pts))
        entrance = poly.exterior.interpolate(poly.exterior.project(shapely.Point(g)))
        label = polylabel(poly, tolerance=1.0)
        pid = int(ids[i])
        place_name = PLACE_NAMES[int(rng.integers(len(PLACE_NAMES)))]
        out.append(Place(pid, gate, [(g[0], g[1]), (entrance.x, entrance.y),
                                     (label.x, label.y)], poly, {
            "code": f"XN-{pid:03d}",
            "name": f"{place_name}建筑垃圾消纳场{pid}号",
            "operator": f"北京{place_name}环境资源有限公司",
            "capacity_m3": round(float(rng.uniform(2e5, 1.5e6)), -3),
            "status": "active",
        }))
    return out


def dump_places(net: RoadNetwork, disposals: list[Place], n: int,
                rng: np.random.Generator) -> list[Place]:
    """Waste ground where loads are dumped outside any disposal site (偷倒点): a spot
    20–60 m off a junction in the outer fifth of the city, at least 1 km from every
    disposal site. No table holds them (``id`` 0); the truth records where each
    dumped trip unloaded.
    """
    xy = net.xy[net.main]
    centre = xy.mean(axis=0)
    r = np.hypot(*(net.xy - centre).T)
    outer = net.main & (r >= np.quantile(r[net.main], 0.8))
    far = np.min([np.hypot(*(net.xy - np.array(d.spot)).T) for d in disposals], axis=0) \
        if disposals else np.full(len(net.xy), np.inf)
    pool = np.flatnonzero(outer & (far >= 1000.0))
    if not len(pool):
        pool = np.flatnonzero(outer) if outer.any() else np.flatnonzero(net.main)
    out = []
    for gate in rng.choice(pool, min(n, len(pool)), replace=False).tolist():
        g = net.xy[gate]
        a = rng.uniform(0, 2 * np.pi)
        spot = g + rng.uniform(20, 60) * np.array([np.cos(a), np.sin(a)])
        out.append(Place(0, int(gate), [(float(g[0]), float(g[1])),
                                        (float(spot[0]), float(spot[1]))], None,
                         {"code": "dump"}))
    return out


def depot_places(net: RoadNetwork, blocks: Any, n: int, used: set[int],
                 rng: np.random.Generator) -> list[Place]:
    """Depots: a parking yard per company on a block beside a branch road.

    Trucks park 8 m inside the block's edge, about 15 m from the road's
    centre line, entering from the nearer junction of that road.

    Returns
    -------
    list of Place
        Without a table of their own (``id`` 0); depots share when blocks run out.
    """
    kinds = blocks["kind"].to_numpy()
    ok = np.isin(kinds, BUILDABLE) & ~blocks["id"].isin(used).to_numpy()
    order = np.r_[rng.permutation(np.flatnonzero(ok & (kinds == "industrial"))),
                  rng.permutation(np.flatnonzero(ok & (kinds != "industrial")))].astype(int)
    on_main = net.main[net.edge_u] & net.main[net.edge_v]
    narrow = np.flatnonzero(on_main & (net.edge_class == "branch") & (net.edge_length > 60))
    if not len(narrow):
        narrow = np.flatnonzero(on_main)
    lines = [shapely.LineString(net.edge_coords[e]) for e in narrow]
    tree = shapely.STRtree(lines)
    out: list[Place] = []
    for k in order:
        if len(out) == n:
            break
        block = blocks.geometry.iloc[k]
        j = int(tree.query_nearest(block, all_matches=False)[0])
        e, line = int(narrow[j]), lines[j]
        foot = line.interpolate(float(rng.uniform(0.3, 0.7)), normalized=True)
        entrance = block.exterior.interpolate(block.exterior.project(foot))
        d = np.array([entrance.x - foot.x, entrance.y - foot.y])
        spot = shapely.Point(np.array([entrance.x, entrance.y]) + d / max(np.hypot(*d), 1e-9) * 8)
        if not block.contains(spot) or line.distance(spot) > 25:
            continue
        ends = (int(net.edge_u[e]), int(net.edge_v[e]))
        gate = min(ends, key=lambda g: float(np.hypot(*(net.xy[g] - (foot.x, foot.y)))))
        used.add(int(blocks["id"].iloc[k]))
        out.append(Place(0, gate, [tuple(net.xy[gate]), (foot.x, foot.y),
                                   (entrance.x, entrance.y), (spot.x, spot.y)], None, {}))
    while len(out) < n:  # too few blocks: share a depot
        out.append(out[len(out) % max(1, len(out))] if out else _node_depot(net, rng))
    return out


def _node_depot(net: RoadNetwork, rng: np.random.Generator) -> Place:
    gate = int(rng.choice(np.flatnonzero(net.main)))
    gx, gy = net.xy[gate]
    return Place(0, gate, [(gx, gy), (gx + 10.0, gy + 10.0)], None, {})


def _plate(rng: np.random.Generator) -> str:
    head = "京" + PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))]
    if rng.random() < 0.2:  # large new-energy vehicle: five digits then D or F
        return head + "".join(str(d) for d in rng.integers(0, 10, 5)) + "DF"[int(rng.integers(2))]
    chars = [str(d) for d in rng.integers(0, 10, 5)]
    if rng.random() < 0.4:
        chars[int(rng.integers(5))] = PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))]
    return head + "".join(chars)


def fleet(ctx: CityContext, n_companies: int) -> tuple[list[tuple[Any, ...]],
                                                       list[tuple[Any, ...]]]:
    """Companies and trucks as rows.

    Returns
    -------
    companies : list of tuple
        (id, code, name, contact_phone).
    trucks : list of tuple
        (id, plate_number, company_id, device_id, capacity_m3, status, company index).
    """
    rng = ctx.rng("trucks.fleet")
    cids = ctx.ids.take("truck_company", n_companies)
    companies = []
    for k, cid in enumerate(cids.tolist()):
        word = FIRM_WORDS[k % len(FIRM_WORDS)] + ("" if k < len(FIRM_WORDS) else
                                                  FIRM_WORDS[(k // len(FIRM_WORDS)) % 20])
        code = "91110105MA" + "".join(CODE_CHARS[int(i)] for i in rng.integers(0, 31, 4)) \
            + f"{k:03d}" + CODE_CHARS[int(rng.integers(31))]
        phone = f"010-{int(rng.integers(6000_0000, 8999_9999))}"
        companies.append((cid, code, f"北京{word}渣土运输有限公司", phone))
    share = rng.dirichlet(np.full(n_companies, 3.0))
    owner = rng.choice(n_companies, ctx.scale.trucks, p=share)
    tids = ctx.ids.take("truck", ctx.scale.trucks)
    plates: set[str] = set()
    devices: set[str] = set()
    trucks = []
    for tid, comp in zip(tids.tolist(), owner.tolist(), strict=True):
        plate = _plate(rng)
        while plate in plates:
            plate = _plate(rng)
        plates.add(plate)
        device = f"0{int(rng.integers(13_000_000_000, 19_999_999_999))}"
        while device in devices:
            device = f"0{int(rng.integers(13_000_000_000, 19_999_999_999))}"
        devices.add(device)
        capacity = float(rng.choice([14.0, 16.0, 18.0, 20.0, 25.0]))
        trucks.append((tid, plate, int(cids[comp]), device, capacity, "active", comp))
    return companies, trucks
