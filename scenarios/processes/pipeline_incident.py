"""``pipeline-incident`` (地下管线事故应急处置): from a failed pipe to a plan.

A failed pipe segment — by id, as a point snapped to the nearest segment of a
utility, or as a lifeline sensor alarm (``alarm``: the segment its sensor
stands on, or the nearest of its utility) — → the valves to close, ring by
ring when a valve is stuck (N-1, :mod:`scenarios.pipeline`), the isolated
pipes, the pipes cut off from every source once they are closed, the
buildings they serve with their households and residents, the key units cut
off or within the impact radius, the hazard sources within it and the roads to
close; each a feature output the map draws, with a summary and the residents
to notify (``contacts``: only those whose names the caller may see).

The impact radius defaults to the row of ``onemap.pipe_incident_radius``
(``195_pipeline_incident.sql``) for the failed segment's utility and pressure
class. With ``scenario``, its ``valve_fails`` edits of this network are stuck
valves too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from scenarios.pipeline import PipeNetwork, pipe_network
from scenarios.processes.base import (
    INT,
    NUM,
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
    ScenarioInput,
    Stage,
    SummaryOutput,
    Table,
    TableOutput,
    Value,
    input_description,
    invalid,
    text,
)
from scenarios.processes.inputs import MAX_ID
from spatial import whatif
from spatial.errors import NotFoundError

#: Utilities an incident may be analysed on (the networks with pipes and sources).
UTILITIES = ("water", "drainage", "gas", "heat")
#: A point farther than this (m) from every pipe of its utility is refused.
SNAP_MAX_M = 100.0
#: Bilingual names of the utilities, for messages.
UTILITY_NAMES: Mapping[str, str] = {"water": "供水", "drainage": "排水", "gas": "燃气",
                                    "heat": "供热"}
#: Coordinates in outputs: 7 decimals of a degree (about 1 cm).
DIGITS = 7
#: The columns of the ``contacts`` table.
CONTACT_COLUMNS = ("building_id", "household_id", "room_no", "name", "phone")


@dataclass(frozen=True)
class Incident:
    """Where the incident is, as given (one of segment, point, alarm) and the stuck valves."""

    segment: int | None = None
    point: Point | None = None
    utility: str | None = None
    alarm: int | None = None
    stuck_valves: tuple[int, ...] = ()


@dataclass(frozen=True)
class Failure:
    """The failed segment, resolved: id, utility, pressure class and how it was found."""

    segment_id: int
    utility: str
    pressure_class: str | None
    how: str
    distance_m: float = 0.0
    alarm: Mapping[str, Any] | None = None


def _alarm_info(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["alarm_id"], "sensor_id": row["sensor_id"],
            "sensor_code": row["sensor_code"], "level": row["level"],
            "raised_at": row["raised_at"].isoformat() if row["raised_at"] else None,
            "open": row["cleared_at"] is None,
            "href": f"/collections/sensor/items/{row['sensor_id']}"}


def resolve(conn: psycopg.Connection[Any], incident: Incident) -> Failure:
    """The failed segment of an incident, read through the caller's connection.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's (row-level security applies: a segment they may not see
        is absent).
    incident : Incident
        As parsed.

    Returns
    -------
    Failure

    Raises
    ------
    NotFoundError
        No such segment or alarm, or one the caller may not see (``segment``,
        ``alarm``).
    InvalidInputError
        No pipe of the utility near the point (``x/y``), a segment of another
        utility than ``utility`` or of one not analysed, an abandoned segment,
        an alarm whose sensor is on no pipe.
    """
    how, distance, alarm = "segment", 0.0, None
    if incident.point is not None:
        utility = incident.utility or "water"
        row = conn.execute(
            "SELECT segment_id, distance_m FROM onemap.pipe_nearest_segment("
            "%s, ST_GeomFromText(%s, 4490), %s)",
            (utility, incident.point.wkt, SNAP_MAX_M)).fetchone()
        if row is None:
            raise invalid("x/y", f"no {utility} pipe within {SNAP_MAX_M:g} m of "
                          f"({incident.point.x}, {incident.point.y}) / "
                          f"{SNAP_MAX_M:g} 米内无{UTILITY_NAMES.get(utility, utility)}管段")
        segment_id, how, distance = int(row["segment_id"]), "point", float(row["distance_m"])
    elif incident.alarm is not None:
        row = conn.execute("SELECT * FROM onemap.pipe_alarm_segment(%s, %s)",
                           (incident.alarm, SNAP_MAX_M)).fetchone()
        if row is None:
            raise NotFoundError(f"alarm: no sensor alarm with id {incident.alarm} / 无此报警")
        if row["segment_id"] is None:
            raise invalid("alarm", f"the sensor of alarm {incident.alarm} is on no pipe and "
                          f"none of its utility lies within {SNAP_MAX_M:g} m / "
                          "报警传感器附近无管段")
        segment_id, distance = int(row["segment_id"]), float(row["distance_m"] or 0.0)
        how, alarm = "alarm", _alarm_info(row)
    else:
        segment_id = int(incident.segment or 0)
    seg = conn.execute("SELECT id, utility, pressure_class, status FROM onemap.pipe_segment "
                       "WHERE id = %s", (segment_id,)).fetchone()
    if seg is None:  # absent, or hidden from this caller: the same answer
        raise NotFoundError(f"segment: no pipe segment with id {segment_id} / 无此管段")
    name = {"segment": "segment", "point": "x/y", "alarm": "alarm"}[how]
    if seg["utility"] not in UTILITIES:
        raise invalid(name, f"segment {segment_id} is a {seg['utility']} line; the analysis "
                      f"covers {', '.join(UTILITIES)} / 该管线类型不支持事故分析")
    if incident.utility is not None and seg["utility"] != incident.utility:
        raise invalid("utility", f"segment {segment_id} is a {seg['utility']} pipe, not "
                      f"{incident.utility} / 管段不属于该管网")
    if seg["status"] == "abandoned":
        raise invalid(name, f"segment {segment_id} is abandoned / 管段已废弃")
    return Failure(segment_id, str(seg["utility"]), seg["pressure_class"], how, distance, alarm)


def check_valves(conn: psycopg.Connection[Any], name: str, utility: str,
                 valve_ids: Iterable[int]) -> None:
    """Refuse valves of another network than the failed segment's (a 400 naming them)."""
    ids = sorted(set(valve_ids))
    if not ids:
        return
    other = [(r["id"], r["utility"]) for r in conn.execute(
        "SELECT id, utility FROM onemap.valve WHERE id = ANY(%s) AND utility <> %s ORDER BY id",
        (ids, utility)).fetchall()]
    if other:
        shown = ", ".join(f"{i} ({u})" for i, u in other[:10])
        raise invalid(name, f"valves of another network than the failed {utility} pipe: "
                      f"{shown} / 阀门不属于该管网")


@dataclass(frozen=True)
class IncidentInput(Input):
    """The failed pipe: ``segment`` (id), or ``x``/``y``/``crs`` with ``utility``, or
    ``alarm`` (a sensor alarm id) — exactly one — and the ``stuck_valves``.

    Examples
    --------
    >>> IncidentInput().parse({"segment": 7, "crs": "EPSG:4326"}).segment
    7
    >>> IncidentInput().parse({"segment": 7, "alarm": 2, "crs": "EPSG:4326"})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: segment/x/y/alarm: give one of \
segment, x and y, or alarm / 请给出 segment、x 与 y 或 alarm 之一
    """

    key: str = "incident"
    point: PointInput = field(default_factory=PointInput)
    stuck: IdSetInput = field(default_factory=lambda: IdSetInput(
        "stuck_valves", collection="valve", required=False, max_items=200,
        title={"en": "Stuck valves", "zh": "失效阀门"},
        description={"en": "Ids of valves known to be stuck or that fail when tried; the "
                           "isolation closes the next ring outward instead. Valves of the "
                           "failed pipe's network only.",
                     "zh": "已知卡死或操作失败的阀门 id；隔离时改关外一圈阀门。"
                           "须为事故管段所在管网的阀门。"}))

    def describe(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {
            "segment": input_description(
                {"en": "Failed pipe segment", "zh": "事故管段"},
                {"en": "Id of the failed pipe_segment; instead of x/y or alarm.",
                 "zh": "事故管段（pipe_segment）id；与 x/y、alarm 三选一。"},
                {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                 "x-onemap-collection": "pipe_segment"}),
            "alarm": input_description(
                {"en": "Sensor alarm", "zh": "监测报警"},
                {"en": "Id of a sensor_alarm: the segment its sensor stands on (or the nearest "
                       "of its utility) is the failed one; instead of segment or x/y.",
                 "zh": "监测报警（sensor_alarm）id：以其传感器所在管段（或同类最近管段）"
                       "为事故管段；与 segment、x/y 三选一。"},
                {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
        }
        out.update({n: {**spec, "minOccurs": 0} for n, spec in self.point.describe().items()})
        out["utility"] = input_description(
            {"en": "Utility", "zh": "管线类型"},
            {"en": "The network of the point (default water); with segment or alarm it must "
                   "be theirs.",
             "zh": "点所在管网（默认供水）；给出 segment 或 alarm 时须与之一致。"},
            {"type": "string", "enum": list(UTILITIES)})
        out.update(self.stuck.describe())
        return out

    def parse(self, raw: Mapping[str, Any]) -> Incident:
        by_point = self.point.x in raw or self.point.y in raw
        given = [by_point, "segment" in raw, "alarm" in raw]
        if sum(given) != 1 or (by_point and not (self.point.x in raw and self.point.y in raw)):
            raise invalid("segment/x/y/alarm", "give one of segment, x and y, or alarm / "
                          "请给出 segment、x 与 y 或 alarm 之一")
        return Incident(
            segment=raw.get("segment"), alarm=raw.get("alarm"), utility=raw.get("utility"),
            point=self.point.parse(raw) if by_point else None,
            stuck_valves=self.stuck.parse(raw) or ())

    def check(self, conn: psycopg.Connection[Any], value: Incident) -> None:
        if value.point is not None:
            self.point.check(conn, value.point)
        failure = resolve(conn, value)
        self.stuck.check(conn, value.stuck_valves or None)
        check_valves(conn, self.stuck.name, failure.utility, value.stuck_valves)


# --- loading what the plan reaches ---------------------------------------------------


def _geometry(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def defaults(conn: psycopg.Connection[Any], failure: Failure) -> dict[str, Any]:
    """The impact radius, road buffer and their basis for the failed segment."""
    row = conn.execute("SELECT * FROM onemap.pipe_incident_defaults(%s, %s)",
                       (failure.utility, failure.pressure_class)).fetchone()
    if row is None:  # no row for the utility: the water defaults
        return {"radius_m": 50.0, "road_buffer_m": 30.0, "basis": None, "pressure_class": None}
    return dict(row)


def pipe_features(conn: psycopg.Connection[Any], ids: Mapping[int, Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Pipe segments as features, with the given extra properties per id."""
    if not ids:
        return []
    rows = conn.execute(
        "SELECT id, code, diameter_mm::float8 AS diameter_mm, material, pressure_class, "
        "ST_Length(geom::geography) AS length_m, ST_AsGeoJSON(geom, %s)::json AS geometry "
        "FROM onemap.pipe_segment WHERE id = ANY(%s) ORDER BY id",
        (DIGITS, sorted(ids))).fetchall()
    return [{"type": "Feature", "id": r["id"], "geometry": _geometry(r["geometry"]),
             "properties": {"segment_id": r["id"], "code": r["code"],
                            "diameter_mm": r["diameter_mm"], "material": r["material"],
                            "pressure_class": r["pressure_class"],
                            "length_m": round(float(r["length_m"]), 2), **ids[r["id"]]}}
            for r in rows]


@dataclass(frozen=True)
class Plan:
    """What the network analysis says, by ids (:func:`plan_incident`).

    Attributes
    ----------
    close : dict of int to int
        Valves to close → their ring (1: next to the failed pipe).
    stuck : dict of int to int
        Valves that would have been closed but cannot (stuck, or not operable) → ring.
    isolated : dict of int to bool
        Segments in the closed-off section → whether only the fallback put them there.
    cut_off : dict of int to bool
        Segments outside it that lose every source → whether only because of the fallback.
    cut_nodes : frozenset of int
        Nodes of the isolated and cut-off parts (``pipe_node`` ids).
    isolated_ok : bool
        Whether closing the valves isolates the failed segment at all (False:
        the section holds a source, which must be shut down).
    already_closed, not_needed : tuple of int
        Boundary valves closed in normal operation; open boundary valves left
        open (their far side loses supply anyway).
    sources_inside : tuple of int
        Source nodes inside the section.
    rings : int
        Valve failures met (0: the first ring held).
    """

    close: Mapping[int, int]
    stuck: Mapping[int, int]
    isolated: Mapping[int, bool]
    cut_off: Mapping[int, bool]
    cut_nodes: frozenset[int]
    isolated_ok: bool = True
    already_closed: tuple[int, ...] = ()
    not_needed: tuple[int, ...] = ()
    sources_inside: tuple[int, ...] = ()
    rings: int = 0


def building_features(conn: psycopg.Connection[Any], counted: list[dict[str, Any]],
                      cause: Mapping[int, str], fallback: Mapping[int, bool]
                      ) -> list[dict[str, Any]]:
    """The affected buildings (outline, name, address) with their counts."""
    if not counted:
        return []
    by_id = {r["building_id"]: r for r in counted}
    rows = conn.execute(
        "SELECT id, name, address, grid_id, ST_AsGeoJSON(geom, %s)::json AS geometry "
        "FROM onemap.building WHERE id = ANY(%s) ORDER BY id", (DIGITS, sorted(by_id))).fetchall()
    out = []
    for r in rows:
        c = by_id[r["id"]]
        out.append({"type": "Feature", "id": r["id"], "geometry": _geometry(r["geometry"]),
                    "properties": {
                        "building_id": r["id"], "name": r["name"], "address": r["address"],
                        "grid_id": r["grid_id"], "households": int(c["households"]),
                        "occupied": int(c["occupied"]), "residents": int(c["residents"]),
                        "cause": cause[r["id"]], "fallback": fallback[r["id"]]}})
    return out


def contacts(conn: psycopg.Connection[Any], building_ids: list[int]) -> list[tuple[Any, ...]]:
    """Residents to notify whose name or phone the caller may see (``layers.resident``:
    their scope and masking), ordered by building and room."""
    if not building_ids:
        return []
    rows = conn.execute(
        "SELECT building_id, household_id, room_no, name, phone FROM layers.resident "
        "WHERE building_id = ANY(%s) AND (name IS NOT NULL OR phone IS NOT NULL) "
        "ORDER BY building_id, room_no, id", (building_ids,)).fetchall()
    return [(r["building_id"], r["household_id"], r["room_no"], r["name"], r["phone"])
            for r in rows]


def point_features(rows: Iterable[Mapping[str, Any]], key: str,
                   columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows with ``id`` and ``geometry`` (GeoJSON) as features with ``key`` and ``columns``."""
    out = []
    for r in rows:
        props: dict[str, Any] = {key: r["id"]}
        for c in columns:
            v = r[c]
            props[c] = round(float(v), 2) if c == "distance_m" else v
        out.append({"type": "Feature", "id": r["id"], "geometry": _geometry(r["geometry"]),
                    "properties": props})
    return out


def valve_features(conn: psycopg.Connection[Any], plan: Plan,
                   stuck_given: frozenset[int]) -> list[dict[str, Any]]:
    """Valves to close (``action`` close) and those that cannot be (``stuck``), by ring."""
    wanted = {**{v: (ring, "stuck") for v, ring in plan.stuck.items()},
              **{v: (ring, "close") for v, ring in plan.close.items()}}
    if not wanted:
        return []
    rows = conn.execute(
        "SELECT id, code, kind, operable, diameter_mm::float8 AS diameter_mm, node_id, "
        "ST_AsGeoJSON(geom, %s)::json AS geometry FROM onemap.valve WHERE id = ANY(%s) "
        "ORDER BY id", (DIGITS, sorted(wanted))).fetchall()
    out = []
    for r in rows:
        ring, action = wanted[r["id"]]
        out.append({"type": "Feature", "id": r["id"], "geometry": _geometry(r["geometry"]),
                    "properties": {"valve_id": r["id"], "code": r["code"], "kind": r["kind"],
                                   "ring": ring, "action": action,
                                   "operable": bool(r["operable"]),
                                   "stuck": r["id"] in stuck_given,
                                   "diameter_mm": r["diameter_mm"], "node_id": r["node_id"]}})
    return sorted(out, key=lambda f: (f["properties"]["ring"], f["properties"]["action"],
                                      f["id"]))


def _km(features: list[dict[str, Any]], only_fallback: bool = False) -> float:
    return round(sum(f["properties"]["length_m"] for f in features
                     if not only_fallback or f["properties"]["fallback"]) / 1000.0, 3)


def plan_incident(network: PipeNetwork, segment_id: int, stuck: Iterable[int]) -> Plan:
    """Isolate the failed segment (:meth:`PipeNetwork.isolate`) and read the answer by ids.

    Stuck valves not on this network (of no node or segment of it) are left out.
    """
    known = set(network.valve_ids.tolist())
    iso = network.isolate(segment_id, stuck_valves=sorted(v for v in stuck if v in known))
    extra = set(iso.extra_links.tolist())
    close = {int(v): int(r) for v, r in zip(iso.valves.tolist(), iso.valve_ring.tolist(),
                                             strict=True)}
    # a failed valve stood on the boundary of the ring before the one it opened
    failed = {int(v): max(int(r) - 1, 0) for v, r in zip(
        iso.failed_valves.tolist(), iso.failed_ring.tolist(), strict=True)}
    return Plan(close=close, stuck=failed,
                isolated={int(s): s in extra for s in iso.isolated_links.tolist()},
                cut_off={int(s): s in extra for s in iso.cut_off_links.tolist()},
                cut_nodes=frozenset(int(n) for n in iso.affected_nodes.tolist()),
                isolated_ok=bool(iso.isolated),
                already_closed=tuple(int(v) for v in iso.already_closed.tolist()),
                not_needed=tuple(int(v) for v in iso.not_needed.tolist()),
                sources_inside=tuple(int(n) for n in iso.sources_inside.tolist()),
                rings=int(iso.rings))


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Resolve the failed pipe, isolate it, then find who and what it reaches."""
    progress.stage("load")
    incident: Incident = inputs["incident"]
    failure = resolve(conn, incident)
    scenario = whatif.get(conn, inputs["scenario"]) if inputs["scenario"] else None
    stuck = set(incident.stuck_valves) | (set(scenario.failed_valves()) if scenario else set())
    network = pipe_network(conn, failure.utility)

    progress.stage("isolate")
    plan = plan_incident(network, failure.segment_id, stuck)

    progress.stage("affected")
    found = defaults(conn, failure)
    radius = float(inputs["radius_m"]) if inputs["radius_m"] is not None \
        else float(found["radius_m"])
    road_buffer = float(found["road_buffer_m"])
    affected = {**plan.cut_off, **plan.isolated}
    counted = [dict(r) for r in conn.execute(
        "SELECT * FROM onemap.pipe_incident_buildings(%s)", (sorted(affected),)).fetchall()]
    cause = {r["building_id"]: "isolated" if r["segment_id"] in plan.isolated else "cut_off"
             for r in counted}
    fallback = {r["building_id"]: affected[r["segment_id"]] for r in counted}
    buildings = building_features(conn, counted, cause, fallback)
    notify = contacts(conn, [f["id"] for f in buildings])
    key_units = conn.execute(
        "SELECT id, name, kind, people_count, cut_off, in_range, distance_m, "
        "ST_AsGeoJSON(geom, %s)::json AS geometry "
        "FROM onemap.pipe_incident_key_units(%s, %s, %s, %s)",
        (DIGITS, failure.segment_id, radius, sorted(plan.cut_nodes),
         [f["id"] for f in buildings])).fetchall()
    hazards = conn.execute(
        "SELECT id, name, kind, level, distance_m, ST_AsGeoJSON(geom, %s)::json AS geometry "
        "FROM onemap.pipe_incident_hazards(%s, %s)",
        (DIGITS, failure.segment_id, radius)).fetchall()
    roads = conn.execute(
        "SELECT id, name, road_class, distance_m, along_failed, "
        "ST_AsGeoJSON(geom, %s)::json AS geometry FROM onemap.pipe_incident_roads(%s, %s, %s)",
        (DIGITS, failure.segment_id, sorted(plan.isolated), road_buffer)).fetchall()

    progress.stage("draw")
    failed = pipe_features(conn, {failure.segment_id: {
        "utility": failure.utility, "found_by": failure.how,
        "snap_distance_m": round(failure.distance_m, 2)}})
    isolated = pipe_features(conn, {s: {"fallback": fb} for s, fb in plan.isolated.items()})
    cut_off = pipe_features(conn, {s: {"fallback": fb} for s, fb in plan.cut_off.items()})
    valves = valve_features(conn, plan, frozenset(stuck))
    key_unit_features = point_features(key_units, "key_unit_id", (
        "name", "kind", "people_count", "cut_off", "in_range", "distance_m"))
    hazard_features = point_features(hazards, "hazard_source_id",
                                     ("name", "kind", "level", "distance_m"))
    road_features = point_features(roads, "road_id",
                                   ("name", "road_class", "distance_m", "along_failed"))

    def total(key: str, only_fallback: bool = False) -> int:
        return sum(int(f["properties"][key]) for f in buildings
                   if not only_fallback or f["properties"]["fallback"])

    summary = {
        "utility": failure.utility, "failed_segment": failure.segment_id,
        "found_by": failure.how, "snap_distance_m": round(failure.distance_m, 2),
        "alarm": failure.alarm,
        "radius_m": radius, "radius_basis": found["basis"], "road_buffer_m": road_buffer,
        "isolated": plan.isolated_ok, "sources_inside": list(plan.sources_inside),
        "rings": plan.rings, "valves_to_close": len(plan.close),
        "stuck_valves": sorted(plan.stuck), "already_closed": list(plan.already_closed),
        "left_open": len(plan.not_needed),
        "isolated_pipes": len(isolated), "isolated_km": _km(isolated),
        "cut_off_pipes": len(cut_off), "cut_off_km": _km(cut_off),
        "buildings": len(buildings), "households": total("households"),
        "occupied": total("occupied"), "residents": total("residents"),
        "contacts": len(notify),
        "key_units": len(key_unit_features),
        "key_units_cut_off": sum(bool(r["cut_off"]) for r in key_units),
        "hazard_sources": len(hazard_features), "roads": len(road_features),
        "fallback": {
            "pipes": sum(plan.isolated.values()) + sum(plan.cut_off.values()),
            "km": round(_km(isolated, True) + _km(cut_off, True), 3),
            "buildings": sum(1 for f in buildings if f["properties"]["fallback"]),
            "households": total("households", True), "residents": total("residents", True)},
        "scenario": inputs["scenario"],
    }
    return ProcessResult(
        summary=summary,
        features={"failed": FeatureSet(failed), "valves": FeatureSet(valves),
                  "isolated": FeatureSet(isolated), "cut_off": FeatureSet(cut_off),
                  "buildings": FeatureSet(buildings), "key_units": FeatureSet(key_unit_features),
                  "hazards": FeatureSet(hazard_features), "roads": FeatureSet(road_features)},
        tables={"contacts": Table(CONTACT_COLUMNS, notify)})


_PIPE = {"segment_id": INT, "code": STR_N, "diameter_mm": {"type": "number", "nullable": True},
         "material": STR_N, "pressure_class": STR_N, "length_m": NUM}
_LINES = ("LineString",)




PROCESS = Process(
    id="pipeline-incident",
    title=text("Pipeline incident response", "地下管线事故应急处置（关阀分析）"),
    description=text(
        "For a failed pipe segment (by id, a point snapped to the nearest pipe of a utility, "
        "or a sensor alarm): the valves to close — the smallest operable set bounding the "
        "failed pipe's valve segment; when a valve is stuck or not operable, the next ring "
        "outward (N-1), with what that fallback costs — the isolated pipes, the pipes cut "
        "off from every source once they are closed, the buildings, households and residents "
        "losing supply (counts for everyone; names and phones only where your scope allows), "
        "the key units cut off or within the impact radius, the hazard sources within it and "
        "the roads to close. The radius defaults per utility and pressure class "
        "(onemap.pipe_incident_radius). With a what-if scenario, its valve_fails edits are "
        "stuck valves too; the stored city is never changed. Drainage has no valves: its "
        "failed pipe and what loses every way to the outlet.",
        "针对一段事故管段（按 id、按点吸附到某类管线的最近管段，或按监测报警）：需关闭的阀门"
        "（隔离事故管段所在阀门分段的最少可操作阀门；阀门卡死或不可操作时改关外一圈，即 N-1，"
        "并给出扩大的代价）、隔离管段、关阀后与所有水源/气源/热源断开的停供管段、停供楼栋及其"
        "户数与居民数（数量对所有人可见，姓名电话仅限您的数据权限范围）、停供或在影响半径内的"
        "重点单位、半径内的危险源以及需管制的道路。影响半径默认按管线类型与压力级制取值"
        "（onemap.pipe_incident_radius）。指定假设情景时，其 valve_fails 阀门视为卡死；"
        "不改动已存储数据。排水管网无阀门：给出事故管段及失去排出口的上游管段。"),
    keywords=("关阀分析", "pipeline", "incident", "valve isolation", "管线事故", "应急"),
    inputs=(
        IncidentInput(),
        Value("radius_m", title=text("Impact radius (m)", "影响半径（米）"),
              description=text(
                  "Key units and hazard sources within it of the failed pipe; default per "
                  "utility and pressure class (onemap.pipe_incident_radius).",
                  "事故管段此距离内的重点单位与危险源；默认按管线类型与压力级制取值。"),
              schema={"type": "number", "minimum": 0, "maximum": 5000}),
        ScenarioInput(),
    ),
    outputs=(
        SummaryOutput(
            "summary", title=text("Incident summary", "事故处置汇总"),
            description=text(
                "utility, failed_segment, found_by (segment, point, alarm), snap_distance_m, "
                "alarm (id, sensor, level, href), radius_m and its basis, road_buffer_m, "
                "isolated (false: a source lies inside the section), rings (valve failures "
                "met), valves_to_close, stuck_valves, isolated_pipes/km, cut_off_pipes/km, "
                "buildings, households, occupied, residents, contacts, key_units, "
                "hazard_sources, roads, fallback (what the valve failures added), scenario.",
                "utility、failed_segment、found_by（segment/point/alarm）、snap_distance_m、"
                "alarm（报警 id、传感器、级别、链接）、radius_m 及依据、road_buffer_m、isolated"
                "（false 表示隔离段内含水源）、rings（遇到的失效阀门数）、valves_to_close、"
                "stuck_valves、隔离与停供管段数和公里数、楼栋、户数、实住户数、居民数、可通知"
                "居民数、重点单位、危险源、道路、fallback（阀门失效扩大的部分）、scenario。"),
            properties={
                "utility": {"type": "string"}, "failed_segment": INT,
                "found_by": {"type": "string", "enum": ["segment", "point", "alarm"]},
                "snap_distance_m": NUM, "alarm": {"type": "object", "nullable": True},
                "radius_m": NUM, "radius_basis": STR_N, "road_buffer_m": NUM,
                "isolated": {"type": "boolean"},
                "sources_inside": {"type": "array", "items": INT}, "rings": INT,
                "valves_to_close": INT, "stuck_valves": {"type": "array", "items": INT},
                "already_closed": {"type": "array", "items": INT}, "left_open": INT,
                "isolated_pipes": INT, "isolated_km": NUM, "cut_off_pipes": INT,
                "cut_off_km": NUM, "buildings": INT, "households": INT, "occupied": INT,
                "residents": INT, "contacts": INT, "key_units": INT,
                "key_units_cut_off": INT, "hazard_sources": INT, "roads": INT,
                "fallback": {"type": "object", "properties": {
                    "pipes": INT, "km": NUM, "buildings": INT, "households": INT,
                    "residents": INT}},
                "scenario": STR_N}),
        FeatureOutput(
            "failed", title=text("Failed pipe", "事故管段"),
            description=text("The failed segment (found_by, snap_distance_m).",
                              "事故管段（found_by、snap_distance_m）。"),
            geometry=_LINES, properties={**_PIPE, "utility": {"type": "string"},
                                         "found_by": {"type": "string"},
                                         "snap_distance_m": NUM}),
        FeatureOutput(
            "valves", title=text("Valves to close", "需关闭阀门"),
            description=text(
                "action close: the valves to close; action stuck: those that would have been "
                "closed but are stuck (given) or not operable, so the next ring closes. ring: "
                "0 next to the failed pipe, k after k valve failures.",
                "action 为 close：需关闭的阀门；为 stuck：本应关闭但卡死（输入给出）或不可操作的"
                "阀门，故改关外一圈。ring：0 为紧邻事故管段的一圈，k 为第 k 次失效后的一圈。"),
            geometry=("Point",),
            properties={"valve_id": INT, "code": STR_N, "kind": STR_N, "ring": INT,
                        "action": {"type": "string", "enum": ["close", "stuck"]},
                        "operable": {"type": "boolean"}, "stuck": {"type": "boolean"},
                        "diameter_mm": {"type": "number", "nullable": True},
                        "node_id": {"type": "integer", "nullable": True}},
            colour_by="ring"),
        FeatureOutput(
            "isolated", title=text("Isolated pipes", "隔离管段"),
            description=text("The closed-off section; fallback: only because a valve failed.",
                              "关阀隔离的管段；fallback 表示因阀门失效而扩大的部分。"),
            geometry=_LINES, properties={**_PIPE, "fallback": {"type": "boolean"}}),
        FeatureOutput(
            "cut_off", title=text("Pipes cut off", "停供管段"),
            description=text(
                "Pipes outside the section that lose every path to a source once the valves "
                "are closed; fallback: only because a valve failed.",
                "关阀后与所有水源/气源/热源断开的隔离段外管段；fallback 表示因阀门失效而停供。"),
            geometry=_LINES, properties={**_PIPE, "fallback": {"type": "boolean"}}),
        FeatureOutput(
            "buildings", title=text("Buildings losing supply", "停供楼栋"),
            description=text(
                "Buildings served through a service connection on an isolated or cut-off "
                "pipe: households, occupied, residents (counts), cause (isolated, cut_off), "
                "fallback.",
                "接户点位于隔离或停供管段上的楼栋：户数、实住户数、居民数（仅数量）、原因"
                "（isolated 隔离 / cut_off 停供）、fallback。"),
            geometry=("Polygon", "MultiPolygon"),
            properties={"building_id": INT, "name": STR_N, "address": STR_N,
                        "grid_id": {"type": "integer", "nullable": True}, "households": INT,
                        "occupied": INT, "residents": INT,
                        "cause": {"type": "string", "enum": ["isolated", "cut_off"]},
                        "fallback": {"type": "boolean"}},
            colour_by="households"),
        FeatureOutput(
            "key_units", title=text("Key units", "重点单位"),
            description=text(
                "Key units (hospitals, schools …) cut off (in a building losing supply, or "
                "their nearest service connection is cut off) or within the impact radius.",
                "停供（位于停供楼栋内或其最近接户点停供）或在影响半径内的重点单位（医院、学校等）。"),
            geometry=("Point",),
            properties={"key_unit_id": INT, "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "people_count": {"type": "integer", "nullable": True},
                        "cut_off": {"type": "boolean"}, "in_range": {"type": "boolean"},
                        "distance_m": NUM}),
        FeatureOutput(
            "hazards", title=text("Hazard sources in range", "影响范围内危险源"),
            description=text("Hazard sources within the impact radius of the failed pipe.",
                              "事故管段影响半径内的危险源。"),
            geometry=("Point",),
            properties={"hazard_source_id": INT, "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "level": {"type": "integer", "nullable": True}, "distance_m": NUM}),
        FeatureOutput(
            "roads", title=text("Roads to close", "需管制道路"),
            description=text(
                "Road rows within road_buffer_m of the failed pipe or the isolated pipes; "
                "along_failed: within it of the failed pipe itself.",
                "事故管段或隔离管段 road_buffer_m 范围内的道路；along_failed 表示紧邻事故管段。"),
            geometry=("LineString", "MultiLineString"),
            properties={"road_id": INT, "name": STR_N, "road_class": STR_N,
                        "distance_m": NUM, "along_failed": {"type": "boolean"}}),
        TableOutput(
            "contacts", title=text("Residents to notify", "需通知居民"),
            description=text(
                "Residents of the buildings losing supply whose name or phone you may see "
                "(your data scope; analysts see masks), by building and room.",
                "停供楼栋中您有权查看姓名或电话的居民（按数据权限；分析人员为脱敏信息），"
                "按楼栋与户室排序。"),
            columns={"building_id": INT, "household_id": INT, "room_no": STR_N,
                     "name": STR_N, "phone": STR_N}),
    ),
    run=run,
    example={"alarm": 1, "stuck_valves": [5]},
    stages=(Stage("load", text("loading the network", "读取管网"), 1),
            Stage("isolate", text("finding the valves to close", "关阀分析"), 1),
            Stage("affected", text("finding who and what is affected", "影响分析"), 2),
            Stage("draw", text("drawing the plan", "绘制处置方案"), 1)),
)
