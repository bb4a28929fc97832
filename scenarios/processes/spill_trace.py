"""``spill-trace`` (道路遗撒溯源): :mod:`scenarios.spill_trace` as a process.

One or more spill reports (ids), or a place and a time → the suspect trucks,
best first, each with its evidence per source (GPS, gaps, checkpoints,
waybill, disposal entry), the construction site that loaded it and the
disposal site it went to; as map layers: the reports, each suspect's track
around the pass (the gaps drawn as their own segments), the sites and the
checkpoints that read it.

The sources are read through the caller's connection: trucks, tracks and
records are internal, so a caller who may not see them gets no suspect, and
plates reach only those who may.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from scenarios import spill_trace as st
from scenarios.processes.base import (
    BOOL,
    INT,
    NUM,
    NUM_N,
    STR_N,
    FeatureOutput,
    FeatureSet,
    IdSetInput,
    Input,
    Point,
    PointInput,
    Process,
    ProcessResult,
    Progress,
    Stage,
    SummaryOutput,
    Value,
    invalid,
    text,
)
from scenarios.processes.inputs import MomentInput

#: Suspects drawn with their tracks, at most.
DRAWN = 5
#: The track drawn around a pass when its loaded stretch is unknown (s each side).
AROUND_S = 1800.0
#: A plate pattern: characters of a plate, ``*`` any run, ``?`` one character.
PLATE_PATTERN = r"^[\u4e00-\u9fa5A-Z0-9*?]{1,10}$"


@dataclass(frozen=True)
class Request:
    """The parsed inputs of one trace."""

    report_ids: tuple[int, ...] = ()
    point: Point | None = None
    time: datetime | None = None
    window_h: float = st.WINDOW_H
    plate: str | None = None
    source: str | None = None


_WINDOW = Value("window_h", text("Window (h)", "时间窗（小时）"), text(
    "How long before each report a truck's pass counts (hours, at most 24).",
    "每条遗撒上报前多长时间内的经过计入（小时，至多 24）。"),
    {"type": "number", "exclusiveMinimum": 0, "maximum": st.MAX_WINDOW_H,
     "default": st.WINDOW_H})
_PLATE = Value("plate", text("Plate", "车牌"), text(
    "Only suspects whose plate matches (* any characters, ? one), e.g. 京A*.",
    "仅返回车牌匹配的嫌疑车辆（* 任意多个字符，? 一个字符），如 京A*。"),
    {"type": "string", "pattern": PLATE_PATTERN})

_SOURCE = Value("source", text("Reported by", "上报来源"), text(
    "Who reported the muck at x, y (with a place only): a road camera reports within "
    "minutes, the 12345 hotline hours later.",
    "x、y 处遗撒的上报来源（仅与地点一并给出）：道路摄像头数分钟内上报，12345 热线往往数小时后。"),
    {"type": "string", "enum": sorted(k for k in st.REPORT_DELAY_S if k is not None)})


@dataclass(frozen=True)
class SpillInput(Input):
    """The reports (ids), or a place and a time; the window and a plate filter."""

    key: str = "spill"
    reports: IdSetInput = field(default_factory=lambda: IdSetInput(
        "report_ids", collection="spill_report", required=False, max_items=20,
        title=text("Spill reports", "遗撒上报"),
        description=text(
            "Ids of spill reports traced together: one trip may explain several (the first "
            "is the one ranked for). Or give x, y and time instead.",
            "一并溯源的遗撒上报 id（一次运输可造成多处遗撒；按第一条排序）。或改为给出 x、y 与 "
            "time。")))
    point: PointInput = field(default_factory=lambda: PointInput(optional=True))
    time: MomentInput = field(default_factory=lambda: MomentInput(
        "time", text("Reported at", "上报时间"),
        text("When muck was seen at x, y (RFC 3339, e.g. 2026-10-28T06:00:00+08:00).",
             "在 x、y 处发现遗撒的时间（RFC 3339，如 2026-10-28T06:00:00+08:00）。")))

    def describe(self) -> dict[str, dict[str, Any]]:
        out = dict(self.reports.describe())
        out.update(self.point.describe())
        out.update(self.time.describe())
        out.update(_WINDOW.describe())
        out.update(_PLATE.describe())
        out.update(_SOURCE.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Request:
        ids = self.reports.parse(raw) if "report_ids" in raw else ()
        point = self.point.parse(raw)
        moment = self.time.parse(raw)
        if not ids and point is None:
            raise invalid("report_ids", "give report ids, or x, y and time / 须给出遗撒 id，"
                          "或 x、y 与 time")
        if ids and point is not None:
            raise invalid("report_ids", "give report ids or a place, not both / 遗撒 id 与地点"
                          "只能给出其一")
        if point is not None and moment is None:
            raise invalid("time", "a place needs the time muck was seen there / 须给出发现时间")
        source = _SOURCE.parse(raw)
        if source is not None and point is None:
            raise invalid("source", "give the source with a place; a report's own is read / "
                          "上报来源仅与地点一并给出")
        return Request(tuple(ids or ()), point, moment, float(_WINDOW.parse(raw)),
                       _PLATE.parse(raw), source)

    def check(self, conn: psycopg.Connection[Any], value: Request) -> None:
        if value.report_ids:
            self.reports.check(conn, value.report_ids)
        self.point.check(conn, value.point)


def spills_of(conn: psycopg.Connection[Any], request: Request) -> list[st.Spill]:
    """The reports traced: by id (in the order given), or the place and time."""
    if request.report_ids:
        found = {s.id: s for s in st.load_spills(conn, request.report_ids)}
        return [found[i] for i in request.report_ids]
    assert request.point is not None and request.time is not None
    return [st.Spill(None, request.point.lon, request.point.lat, request.time,
                     source=request.source)]


def _plate_filter(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$")


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, st.DIGITS), round(lat, st.DIGITS)]}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def tracks(conn: psycopg.Connection[Any], suspects: list[st.Suspect]) -> list[dict[str, Any]]:
    """Each drawn suspect's track over its loaded stretch (or around the pass): the
    pieces between fixes at most :data:`scenarios.spill_trace.GAP_S` apart as ``track``
    lines, each longer gap as a straight ``gap`` line. One query for every suspect drawn."""
    windows: list[tuple[int, st.Suspect, datetime, datetime]] = []
    for rank, s in enumerate(suspects[:DRAWN], start=1):
        k0 = s.anchor
        at0 = s.passes[k0].at if k0 is not None else None
        if at0 is None:
            continue
        lo, hi = s.stretch if s.stretch else (None, None)
        windows.append((rank, s,
                        max(lo or at0 - timedelta(seconds=AROUND_S), at0 - timedelta(hours=3)),
                        min(hi or at0 + timedelta(seconds=AROUND_S), at0 + timedelta(hours=3))))
    if not windows:
        return []
    rows = conn.execute(
        "SELECT w.rank, g.ts, ST_X(g.geom) AS lon, ST_Y(g.geom) AS lat "
        "FROM unnest(%s::int[], %s::bigint[], %s::timestamptz[], %s::timestamptz[]) "
        "AS w(rank, truck_id, lo, hi) JOIN onemap.truck_gps g ON g.truck_id = w.truck_id "
        "AND g.ts BETWEEN w.lo AND w.hi ORDER BY w.rank, g.ts",
        ([w[0] for w in windows], [w[1].truck_id for w in windows],
         [w[2] for w in windows], [w[3] for w in windows])).fetchall()
    by_rank: dict[int, list[Any]] = {}
    for r in rows:
        by_rank.setdefault(int(r["rank"]), []).append(r)
    out: list[dict[str, Any]] = []
    for rank, s, _, _ in windows:

        def flush(kind: str, coords: list[list[float]], t0: Any, t1: Any,
                  rank: int = rank, s: st.Suspect = s) -> None:
            if len(coords) >= 2:
                out.append({"type": "Feature", "id": f"{rank}-{len(out)}",
                            "geometry": {"type": "LineString", "coordinates": coords},
                            "properties": {"rank": rank, "truck_id": s.truck_id,
                                           "plate": s.plate, "kind": kind,
                                           "from": _iso(t0), "to": _iso(t1)}})

        piece: list[list[float]] = []
        last = None
        start = None
        for r in by_rank.get(rank, []):
            xy = [round(float(r["lon"]), st.DIGITS), round(float(r["lat"]), st.DIGITS)]
            if last is not None and (r["ts"] - last[0]).total_seconds() > st.GAP_S:
                flush("track", piece, start, last[0])
                flush("gap", [last[1], xy], last[0], r["ts"])
                piece, start = [], None
            if start is None:
                start = r["ts"]
            piece.append(xy)
            last = (r["ts"], xy)
        if last is not None:
            flush("track", piece, start, last[0])
    return out


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Read the reports, trace them, draw the suspects."""
    request: Request = inputs["spill"]
    progress.stage("trace")
    spills = spills_of(conn, request)
    trace = st.SpillTrace(conn, spills, window_h=request.window_h).solve()
    plate = _plate_filter(request.plate)
    ranked = [s for s in trace.ranked(len(trace.suspects), first_only=True)
              if plate is None or (s.plate is not None and plate.match(s.plate))][:st.TOP]
    progress.stage("draw")
    site_ids = {s.construction_site_id for s in ranked if s.construction_site_id} | {
        s.disposal_site_id for s in ranked if s.disposal_site_id}
    sites = {(r["kind"], int(r["id"])): r for r in conn.execute(
        "SELECT 'construction' AS kind, id, name, ST_X(ST_PointOnSurface(geom)) AS lon, "
        "ST_Y(ST_PointOnSurface(geom)) AS lat FROM onemap.construction_site WHERE id = ANY(%(i)s) "
        "UNION ALL SELECT 'disposal', id, name, ST_X(ST_PointOnSurface(geom)), "
        "ST_Y(ST_PointOnSurface(geom)) FROM onemap.disposal_site WHERE id = ANY(%(i)s)",
        {"i": sorted(site_ids)}).fetchall()}
    weights = dict(trace.sites())  # construction site → its share of the suspects' weight
    suspects: list[dict[str, Any]] = []
    site_features: dict[tuple[str, int], dict[str, Any]] = {}
    checkpoints: list[dict[str, Any]] = []
    for rank, s in enumerate(ranked, start=1):
        k0 = s.anchor
        p0 = s.passes[k0] if k0 is not None else None
        spot = spills[k0] if k0 is not None else spills[0]
        csite = sites.get(("construction", s.construction_site_id or 0))
        dsite = sites.get(("disposal", s.disposal_site_id or 0))
        suspects.append({
            "type": "Feature", "id": rank, "geometry": _point(spot.lon, spot.lat),
            "properties": {
                "rank": rank, "truck_id": s.truck_id, "plate": s.plate, "company": s.company,
                "score": s.score, "loaded": s.loaded, "overloaded": s.overloaded,
                "how": None if p0 is None else p0.how, "pass_at": _iso(p0.at if p0 else None),
                "distance_m": None if p0 is None else p0.distance_m,
                "gap_s": None if p0 is None else p0.gap_s,
                "reports_explained": len(s.explains()),
                "construction_site_id": s.construction_site_id,
                "construction_site": csite["name"] if csite else None,
                "disposal_site_id": s.disposal_site_id,
                "disposal_site": dsite["name"] if dsite else None,
                "waybill_id": s.waybill_id, "entry_id": s.entry_id,
                "flags": ",".join(s.flags) or None,
                "evidence": json.dumps(s.parts, ensure_ascii=False)}})
        for role, site in (("construction", csite), ("disposal", dsite)):
            if site is not None:
                feature = site_features.setdefault((role, int(site["id"])), {
                    "type": "Feature", "id": f"{role}-{site['id']}",
                    "geometry": _point(float(site["lon"]), float(site["lat"])),
                    "properties": {"role": role, "site_id": int(site["id"]),
                                   "name": site["name"], "ranks": "", "at": None,
                                   "weight": weights.get(int(site["id"]))
                                   if role == "construction" else None}})
                feature["properties"]["ranks"] = ",".join(
                    filter(None, [feature["properties"]["ranks"], str(rank)]))
        if s.dump is not None:  # where it unloaded outside any disposal site
            site_features[("dump", rank)] = {
                "type": "Feature", "id": f"dump-{rank}", "geometry": _point(s.dump[0], s.dump[1]),
                "properties": {"role": "dump", "site_id": None,
                               "name": "疑似偷倒点 / suspected illegal dump",
                               "ranks": str(rank), "at": _iso(s.dump[2]), "weight": None}}
        for h in s.checkpoints:
            checkpoints.append({
                "type": "Feature", "id": f"{rank}-{h['checkpoint_id']}-{len(checkpoints)}",
                "geometry": _point(h["lon"], h["lat"]),
                "properties": {"rank": rank, "truck_id": s.truck_id,
                               "checkpoint_id": h["checkpoint_id"], "name": h["name"],
                               "at": _iso(h["at"]), "side": h.get("side"),
                               "misread": h["misread"], "plate_read": h["plate_read"]}})
    reports = [{"type": "Feature", "id": s.id if s.id is not None else 0,
                "geometry": _point(s.lon, s.lat),
                "properties": {"report_id": s.id, "reported_at": _iso(s.reported_at),
                               "source": s.source, "order": k + 1,
                               "context": k >= trace.traced}}
               for k, s in enumerate(trace.spills)]
    top = ranked[0] if ranked else None
    summary = {
        "reports": len(spills), "context_reports": len(trace.spills) - trace.traced,
        "window_h": request.window_h, "suspects": len(ranked),
        "loaded_suspects": sum(bool(s.loaded) for s in ranked),
        "top_truck_id": top.truck_id if top else None,
        "top_plate": top.plate if top else None,
        "top_score": top.score if top else None,
        "flags": sorted({f for s in ranked for f in s.flags}),
        "timings": {k: round(v, 3) for k, v in trace.timings.items()},
    }
    return ProcessResult(
        summary=summary,
        features={"suspects": FeatureSet(suspects), "tracks": FeatureSet(tracks(conn, ranked)),
                  "reports": FeatureSet(reports),
            "sites": FeatureSet(list(site_features.values())),
            "checkpoints": FeatureSet(checkpoints)})


_STR = {"type": "string"}

PROCESS = Process(
    id="spill-trace",
    title=text("Spill tracing", "道路遗撒溯源"),
    description=text(
        "Spill reports (ids), or a place and a time → the muck trucks that could have dropped "
        "it, best first: trucks whose track passed within 30 m in the window before the "
        "report, or whose GPS gap leaves a space-time prism on the roads covering the spot, "
        "or read by a checkpoint nearby (one-character misreads matched); whether each was "
        "loaded (its last site before the pass a construction site) and overloaded (the "
        "disposal site measured more than it holds); how likely the report's delay after "
        "the pass is for its source (a camera within minutes, the 12345 hotline hours "
        "later); the other reports its trip passed; checkpoint reads and what their cameras "
        "saw of the load's cover (uncovered, 未密闭), its waybill's route and the entry "
        "closing the trip. Each suspect carries its score, evidence, construction site and "
        "disposal site, and flags (unauthorised: no waybill; wrong_disposal_site; "
        "dumped_outside: stood loaded outside any site, the place drawn; no_disposal_seen; "
        "overloaded). The construction sites are ranked by the suspects' weights.",
        "遗撒上报（id），或地点与时间 → 可能造成遗撒的渣土车，按可能性排序：上报前时间窗内"
        "轨迹经过 30 米内的车辆、GPS 中断期间按道路可达时空棱柱覆盖该点的车辆、附近卡口识别"
        "到的车辆（匹配一位误识车牌）；经过时是否重载（此前最后到达的是工地）与是否超载"
        "（消纳场计量超过核定容积）；按上报来源估计的上报延迟是否吻合（视频识别数分钟内，"
        "12345 热线数小时后）；同一趟运输经过的其他遗撒点；卡口记录及其对车厢密闭的识别"
        "（未密闭）、运单线路与消纳入场记录。每辆嫌疑车给出得分、证据、装载工地、消纳场及"
        "标记（无运单、消纳场不符、场外偷倒（标出停留卸载处）、未见入场、超载）；并按嫌疑"
        "权重对装载工地排序。"),
    keywords=("遗撒", "渣土车", "spill", "muck truck", "溯源", "GPS"),
    inputs=(SpillInput(),),
    outputs=(
        SummaryOutput(
            "summary", title=text("Trace summary", "溯源汇总"),
            description=text(
                "reports traced, context reports weighed, window_h, suspects (loaded "
                "ones), the top suspect, the flags raised, timings.",
                "溯源的上报数、参考的附近上报数、时间窗、嫌疑车辆数（重载的）、首位嫌疑车辆、"
                "标记、用时。"),
            properties={"reports": INT, "context_reports": INT, "window_h": NUM,
                        "suspects": INT,
                        "loaded_suspects": INT, "top_truck_id": {**INT, "nullable": True},
                        "top_plate": STR_N, "top_score": NUM_N,
                        "flags": {"type": "array", "items": _STR},
                        "timings": {"type": "object"}}),
        FeatureOutput(
            "suspects", title=text("Suspect trucks", "嫌疑车辆"),
            description=text(
                "Each suspect at the spot it passed: rank, plate, score and its evidence, "
                "loaded, overloaded, how it was placed there (gps, prism, checkpoint, "
                "waybill) and when, the reports its trip explains, the construction and "
                "disposal sites, waybill, entry and flags.",
                "每辆嫌疑车（位于其经过的遗撒点）：排名、车牌、得分与证据、是否重载、超载、"
                "定位方式（gps、prism、checkpoint、waybill）与时间、同一趟运输解释的上报数、"
                "工地与消纳场、运单、入场记录与标记。"),
            geometry=("Point",),
            properties={"rank": INT, "truck_id": INT, "plate": STR_N, "company": STR_N,
                        "score": NUM, "loaded": {"type": "boolean", "nullable": True},
                        "overloaded": {"type": "boolean", "nullable": True}, "how": STR_N,
                        "pass_at": STR_N, "distance_m": NUM_N, "gap_s": NUM_N,
                        "reports_explained": INT,
                        "construction_site_id": {**INT, "nullable": True},
                        "construction_site": STR_N,
                        "disposal_site_id": {**INT, "nullable": True}, "disposal_site": STR_N,
                        "waybill_id": {**INT, "nullable": True},
                        "entry_id": {**INT, "nullable": True}, "flags": STR_N,
                        "evidence": _STR},
            colour_by="rank"),
        FeatureOutput(
            "tracks", title=text("Suspects' tracks", "嫌疑车辆轨迹"),
            description=text(
                "The first five suspects' tracks over their loaded stretch (or an hour around "
                "the pass): kind track between fixes, gap where fixes stop.",
                "前五辆嫌疑车在重载区间（或经过前后一小时）的轨迹：track 为连续定位，gap 为定位"
                "中断。"),
            geometry=("LineString",),
            properties={"rank": INT, "truck_id": INT, "plate": STR_N,
                        "kind": {"type": "string", "enum": ["track", "gap"]},
                        "from": STR_N, "to": STR_N},
            colour_by="kind"),
        FeatureOutput(
            "reports", title=text("Spill reports", "遗撒上报"),
            description=text("The reports traced, in the order given (source: who reported "
                             "it), then the context reports nearby that weighed as a trail "
                             "(context true).",
                             "溯源的遗撒上报（source：上报来源），及作为遗撒轨迹参考的附近上报"
                             "（context 为 true）。"),
            geometry=("Point",),
            properties={"report_id": {**INT, "nullable": True}, "reported_at": STR_N,
                        "source": STR_N, "order": INT, "context": {"type": "boolean"}}),
        FeatureOutput(
            "sites", title=text("Sites", "工地与消纳场"),
            description=text("The suspects' construction sites (weight: the site's share of the "
                             "suspects' weight, how likely the muck came from it), disposal sites "
                             "and suspected illegal dumps (role dump: where a loaded suspect "
                             "stood outside any site; ranks: whose).",
                             "嫌疑车辆的装载工地（weight：按嫌疑权重推算的来源可能性）、消纳场及"
                             "疑似偷倒点（dump：满载车辆在场外停留卸载处；ranks：对应排名）。"),
            geometry=("Point",),
            properties={"role": {"type": "string",
                                 "enum": ["construction", "disposal", "dump"]},
                        "site_id": {**INT, "nullable": True}, "name": STR_N, "ranks": _STR,
                        "at": STR_N, "weight": {**NUM, "nullable": True}},
            colour_by="role"),
        FeatureOutput(
            "checkpoints", title=text("Checkpoint reads", "卡口识别记录"),
            description=text("Checkpoints that read a suspect around its pass (side: upstream, "
                             "downstream or near; misread: matched with one character off).",
                             "经过前后识别到嫌疑车辆的卡口（side：上游、下游或附近；misread："
                             "相差一位的误识）。"),
            geometry=("Point",),
            properties={"rank": INT, "truck_id": INT, "checkpoint_id": INT, "name": STR_N,
                        "at": STR_N, "side": STR_N, "misread": BOOL, "plate_read": STR_N}),
    ),
    run=run,
    example={"x": 116.47, "y": 39.9175, "crs": "EPSG:4490", "time": "2026-10-28T06:00:00+08:00",
             "window_h": 3},
    stages=(Stage("trace", text("gathering and ranking the suspects", "检索与排序嫌疑车辆"), 4),
            Stage("draw", text("drawing the tracks", "绘制轨迹"), 1)),
)
