"""``valve-segments`` (阀门分段): every valve-bounded segment of a network at once.

A utility's network → each segment (what stays connected when every valve is
closed: :meth:`scenarios.pipeline.PipeNetwork.valve_segments`, WNTR's
partition) as a feature with its size, pipe length and the households it
serves, and the critical valves — those whose failure joins segments, the
largest joined segment first (:meth:`~scenarios.pipeline.PipeNetwork.critical_valves`):
the network's weak points, as a layer.

``operable_only`` leaves out the valves that cannot be relied on
(``operable = false``), and a scenario's ``valve_fails`` edits leave out
those valves too: the segments a duty officer can actually make.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import psycopg

from scenarios.pipeline import PipeNetwork, pipe_network
from scenarios.processes.base import (
    INT,
    NUM,
    FeatureOutput,
    FeatureSet,
    Process,
    ProcessResult,
    Progress,
    ScenarioInput,
    Stage,
    SummaryOutput,
    Value,
)
from scenarios.processes.pipeline_incident import DIGITS
from spatial import whatif
from spatial.network import Graph, Valves, pipe_graph

#: Networks with valves.
UTILITIES = ("water", "gas", "heat")
#: The critical valves drawn, at most.
MAX_CRITICAL = 500


def without_valves(graph: Graph, drop: np.ndarray) -> Graph:
    """The graph with some valves taken out (a boolean mask over :attr:`Graph.valves`)."""
    v = graph.valves
    if v is None or not drop.any():
        return graph
    keep = ~drop
    return dataclasses.replace(graph, valves=Valves(v.ids[keep], v.node[keep], v.edge[keep],
                                                    v.operable[keep], v.closed[keep]))


def segment_households(conn: psycopg.Connection[Any], network: PipeNetwork,
                       node_segment: np.ndarray, n_segments: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Buildings, households and residents per segment, through the service connections.

    Counts for everyone (``onemap.pipe_incident_buildings``), never a resident's field.
    """
    counted = conn.execute("SELECT node_id, households, residents "
                           "FROM onemap.pipe_incident_buildings(%s)",
                           (network.link_ids.tolist(),)).fetchall()
    pos = {k: i for i, k in enumerate(network.node_ids.tolist())}
    buildings = np.zeros(n_segments, np.int64)
    households = np.zeros(n_segments, np.int64)
    residents = np.zeros(n_segments, np.int64)
    for r in counted:
        i = pos.get(r["node_id"])
        if i is None:
            continue
        s = node_segment[i]
        buildings[s] += 1
        households[s] += int(r["households"])
        residents[s] += int(r["residents"])
    return buildings, households, residents


def run(conn: psycopg.Connection[Any], inputs: Mapping[str, Any],
        progress: Progress) -> ProcessResult:
    """Load the network, partition it, count the households, draw the segments."""
    progress.stage("load")
    utility = str(inputs["utility"])
    scenario = whatif.get(conn, inputs["scenario"]) if inputs["scenario"] else None
    graph = pipe_graph(conn, utility)
    drop = np.zeros(0 if graph.valves is None else len(graph.valves.ids), bool)
    if graph.valves is not None:
        if inputs["operable_only"]:
            drop |= ~graph.valves.operable
        if scenario is not None:
            drop |= np.isin(graph.valves.ids, sorted(scenario.failed_valves()))
    network = (PipeNetwork.from_graph(without_valves(graph, drop)) if drop.any()
               else pipe_network(conn, utility))

    progress.stage("segments")
    seg = network.valve_segments()
    critical = network.critical_valves()
    progress.stage("households")
    n = seg.n_segments
    buildings, households, residents = segment_households(conn, network, seg.node_segment, n)

    progress.stage("draw")
    with_links = np.flatnonzero(seg.n_links > 0)
    rows = conn.execute(
        "SELECT v.seg, ST_AsGeoJSON(ST_Multi(ST_Collect(p.geom ORDER BY p.id)), %s)::json AS g "
        "FROM unnest(%s::bigint[], %s::int[]) AS v(id, seg) "
        "JOIN onemap.pipe_segment p ON p.id = v.id GROUP BY v.seg ORDER BY v.seg",
        (DIGITS, network.link_ids.tolist(), seg.link_segment.tolist())).fetchall()
    geometry = {int(r["seg"]): r["g"] for r in rows}
    n_valves = np.diff(seg.valve_ptr)
    segments = [{
        "type": "Feature", "id": int(s), "geometry": dict(geometry[int(s)]),
        "properties": {"segment": int(s), "pipes": int(seg.n_links[s]),
                       "nodes": int(seg.n_nodes[s]), "size": int(seg.size[s]),
                       "length_m": round(float(seg.length[s]), 1), "valves": int(n_valves[s]),
                       "buildings": int(buildings[s]), "households": int(households[s]),
                       "residents": int(residents[s])}}
        for s in with_links.tolist() if int(s) in geometry]

    # what a critical valve's failure joins: the segments on its sides, summed
    side_households: dict[int, int] = {}
    joined: dict[int, set[int]] = {}
    for s in range(n):
        for vi in seg.valve_index[seg.valve_ptr[s]:seg.valve_ptr[s + 1]].tolist():
            joined.setdefault(vi, set()).add(s)
    for vi, segs in joined.items():
        side_households[vi] = int(sum(households[list(segs)]))
    top = min(len(critical), MAX_CRITICAL)
    ids = critical.valve_ids[:top].tolist()
    vrows = {r["id"]: r for r in conn.execute(
        "SELECT id, code, operable, ST_AsGeoJSON(geom, %s)::json AS g FROM onemap.valve "
        "WHERE id = ANY(%s)", (DIGITS, ids)).fetchall()}
    valves = []
    for rank, (vid, vi) in enumerate(zip(ids, critical.valve_index[:top].tolist(),
                                         strict=True), start=1):
        r = vrows.get(vid)
        if r is None:
            continue
        valves.append({"type": "Feature", "id": int(vid), "geometry": dict(r["g"]),
                       "properties": {
                           "valve_id": int(vid), "code": r["code"], "rank": rank,
                           "operable": bool(r["operable"]),
                           "joined_segments": int(critical.joined_segments[rank - 1]),
                           "joined_size": int(critical.joined_size[rank - 1]),
                           "joined_length_m": round(float(critical.joined_length[rank - 1]), 1),
                           "joined_households": side_households.get(vi, 0)}})

    largest = int(np.argmax(seg.size)) if n else None
    summary = {
        "utility": utility, "segments": int(n), "pipes": int(network.n_links),
        "valves": int(network.n_valves),
        "left_out_valves": int(drop.sum()),
        "largest": None if largest is None else {
            "segment": largest, "size": int(seg.size[largest]),
            "pipes": int(seg.n_links[largest]),
            "length_m": round(float(seg.length[largest]), 1),
            "households": int(households[largest])},
        "most_households": int(households.max()) if n else 0,
        "mean_size": round(float(seg.size.mean()), 2) if n else 0.0,
        "critical_valves": len(critical), "critical_drawn": len(valves),
        "operable_only": bool(inputs["operable_only"]), "scenario": inputs["scenario"],
    }
    return ProcessResult(summary=summary, features={
        "segments": FeatureSet(segments), "critical_valves": FeatureSet(valves)})



PROCESS = Process(
    id="valve-segments",
    title={"en": "Valve segments and critical valves", "zh": "阀门分段与关键阀门"},
    description={
        "en": "Every valve-bounded segment of a water, gas or heat network (what stays "
              "connected when every valve is closed — WNTR's valve segments), with its "
              "pipes, length, buildings, households and residents (counts only), and the "
              "critical valves: those whose failure joins segments, largest joined segment "
              "first — the network's weak points. operable_only leaves out the valves that "
              "cannot be relied on; a what-if scenario's valve_fails edits leave out those "
              "valves too.",
        "zh": "供水、燃气或供热管网的全部阀门分段（所有阀门关闭时仍相连的部分，即 WNTR 的"
              "阀门分段），给出各分段的管段数、长度、楼栋数、户数与居民数（仅数量），以及关键阀门：失效时会合并"
              "分段的阀门，按合并后分段大小排序——管网的薄弱点。operable_only 表示不计不可操作的"
              "阀门；指定假设情景时其 valve_fails 阀门亦不计。"},
    keywords=("阀门分段", "valve segments", "critical valves", "pipeline", "关键阀门"),
    inputs=(
        Value("utility", title={"en": "Utility", "zh": "管线类型"},
              description={"en": "The network: water, gas or heat.",
                           "zh": "管网：water 供水、gas 燃气、heat 供热。"},
              schema={"type": "string", "enum": list(UTILITIES), "default": "water"}),
        Value("operable_only", title={"en": "Operable valves only", "zh": "仅计可操作阀门"},
              description={"en": "Leave out the valves marked not operable.",
                           "zh": "不计标记为不可操作的阀门。"},
              schema={"type": "boolean", "default": False}),
        ScenarioInput(),
    ),
    outputs=(
        SummaryOutput(
            "summary", title={"en": "Segments summary", "zh": "分段汇总"},
            description={
                "en": "utility, segments, pipes, valves, left_out_valves, largest (segment, "
                      "size, pipes, length_m, households), most_households, mean_size, "
                      "critical_valves, critical_drawn, operable_only, scenario.",
                "zh": "utility、分段数、管段数、阀门数、未计阀门数、最大分段（编号、规模、管段数、"
                      "长度、户数）、最多户数、平均规模、关键阀门数、绘制数、operable_only、scenario。"},
            properties={"utility": {"type": "string"}, "segments": INT, "pipes": INT,
                        "valves": INT, "left_out_valves": INT,
                        "largest": {"type": "object", "nullable": True},
                        "most_households": INT, "mean_size": NUM,
                        "critical_valves": INT, "critical_drawn": INT,
                        "operable_only": {"type": "boolean"},
                        "scenario": {"type": "string", "nullable": True}}),
        FeatureOutput(
            "segments", title={"en": "Valve segments", "zh": "阀门分段"},
            description={
                "en": "Each segment with pipes (its pipes' lines): segment, pipes, nodes, "
                      "size (nodes + pipes), length_m, valves (bounding it), buildings, "
                      "households, residents.",
                "zh": "每个含管段的分段（其管段线）：编号、管段数、节点数、规模"
                      "（节点数 + 管段数）、长度、边界阀门数、楼栋数、户数、居民数。"},
            geometry=("MultiLineString",),
            properties={"segment": INT, "pipes": INT, "nodes": INT, "size": INT,
                        "length_m": NUM, "valves": INT, "buildings": INT,
                        "households": INT, "residents": INT},
            colour_by="households"),
        FeatureOutput(
            "critical_valves", title={"en": "Critical valves", "zh": "关键阀门"},
            description={
                "en": f"Valves whose failure joins segments (at most {MAX_CRITICAL}), by rank: "
                      "joined_segments, joined_size, joined_length_m and joined_households of "
                      "the segment their failure makes.",
                "zh": f"失效时会合并分段的阀门（最多 {MAX_CRITICAL} 个），按排名：合并的分段数、"
                      "合并后规模、长度与户数。"},
            geometry=("Point",),
            properties={"valve_id": INT, "code": {"type": "string", "nullable": True},
                        "rank": INT, "operable": {"type": "boolean"},
                        "joined_segments": INT, "joined_size": INT, "joined_length_m": NUM,
                        "joined_households": INT},
            colour_by="joined_households"),
    ),
    run=run,
    example={"utility": "water"},
    stages=(Stage("load", {"en": "loading the network", "zh": "读取管网"}, 1),
            Stage("segments", {"en": "finding the segments", "zh": "计算阀门分段"}, 2),
            Stage("households", {"en": "counting households", "zh": "统计住户"}, 1),
            Stage("draw", {"en": "drawing the segments", "zh": "绘制分段"}, 1)),
)
