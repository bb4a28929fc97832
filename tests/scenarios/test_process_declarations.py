"""The declarative pieces of scenarios/processes without a server: declarations refused
when inconsistent, the shared input types' parsing (CRS conversion included), progress
stages and their cancellation, outputs built from a ProcessResult."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from scenarios.processes.base import (
    ASYNC,
    AreaInput,
    FeatureOutput,
    FeatureSet,
    PointInput,
    Process,
    ProcessResult,
    Progress,
    Stage,
    SummaryOutput,
    Table,
    TableOutput,
    TimeWindowInput,
    Value,
    json_schema,
)
from scenarios.processes.registry import PROCESSES
from spatial.crs import wgs84_to_bd09, wgs84_to_gcj02
from spatial.errors import InvalidInputError
from spatial.jobs import JobDismissedError

TEXT = {"en": "t", "zh": "t"}


def declare(**changes: Any) -> Process:
    fields: dict[str, Any] = {
        "id": "probe", "title": TEXT, "description": TEXT,
        "inputs": (Value("n", TEXT, TEXT, {"type": "integer"}, required=True),),
        "outputs": (SummaryOutput("out", TEXT, TEXT),),
        "run": lambda conn, inputs, progress: ProcessResult(summary={"n": inputs["n"]}),
        "example": {"n": 1},
    }
    return Process(**{**fields, **changes})


@pytest.mark.parametrize(("changes", "reason"), [
    ({"id": "Bad Id"}, "process id"),
    ({"inputs": (PointInput(), Value("x", TEXT, TEXT, {"type": "number"}))},
     "input names overlap"),
    ({"outputs": (SummaryOutput("a", TEXT, TEXT), TableOutput("a", TEXT, TEXT))},
     "unique ids"),
    ({"outputs": ()}, "unique ids"),
    ({"outputs": (SummaryOutput("a", TEXT, TEXT), SummaryOutput("b", TEXT, TEXT))},
     "at most one summary"),
    ({"job_control": ()}, "job_control"),
    ({"job_control": ("dismiss-execute",)}, "job_control"),
    ({"stages": ()}, "at least one stage"),
])
def test_inconsistent_declarations_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        declare(**changes)


def test_descriptions_come_from_the_declarations() -> None:
    described = declare(job_control=(ASYNC,)).describe()
    assert described["jobControlOptions"] == ["async-execute"]
    assert described["inputs"]["n"]["minOccurs"] == 1
    assert described["outputs"]["out"]["schema"]["contentMediaType"] == "application/json"
    assert described["example"] == {"inputs": {"n": 1}}
    for process in PROCESSES.values():  # each call a fresh dict: pygeoapi edits it in place
        assert process.describe() is not process.describe()
        assert process.describe() == process.describe()


@pytest.mark.parametrize("crs", ["gcj02", "GCJ-02", "bd09", "BD-09", "EPSG:4326", 4490,
                                 "http://www.opengis.net/def/crs/OGC/1.3/CRS84"])
def test_a_point_in_any_supported_crs_arrives_in_the_storage_crs(crs: Any) -> None:
    lon, lat = 116.465, 39.9225
    if str(crs).lower().startswith("gcj"):
        x, y = wgs84_to_gcj02(lon, lat)
    elif str(crs).lower().startswith("bd"):
        x, y = wgs84_to_bd09(lon, lat)
    else:
        x, y = lon, lat
    point = PointInput().parse({"x": float(x), "y": float(y), "crs": crs})
    assert (point.lon, point.lat) == pytest.approx((lon, lat), abs=1e-6)
    assert (point.x, point.y) == (float(x), float(y))


@pytest.mark.parametrize(("raw", "reason"), [
    ({"x": 1, "y": 2, "crs": "mars2000"}, "crs: unknown CRS 'mars2000'"),
    ({"x": 1, "y": 2, "crs": "EPSG:3"}, "crs: unsupported CRS"),
    ({"x": 1, "y": 2, "crs": True}, "crs: CRS must be an int or str"),
    ({"x": 500, "y": 2, "crs": "EPSG:4326"}, "x/y"),
    ({"x": 10**400, "y": 2, "crs": "EPSG:4326"}, "x/y: a coordinate is too large"),
])
def test_a_bad_point_names_the_input(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        PointInput().parse(raw)


def test_an_area_is_a_unit_or_a_polygon_in_any_crs() -> None:
    area = AreaInput()
    assert area.parse({"level": "district", "unit_id": 4, "crs": "CRS84"}).unit_id == 4
    ring = [[116.46, 39.915], [116.47, 39.915], [116.47, 39.93], [116.46, 39.915]]
    gcj = [[float(v) for v in wgs84_to_gcj02(x, y)] for x, y in ring]
    plain = area.parse({"polygon": {"type": "Polygon", "coordinates": [ring]}, "crs": "CRS84"})
    moved = area.parse({"polygon": {"type": "Polygon", "coordinates": [gcj]}, "crs": "gcj02"})
    assert plain.wkt is not None and moved.wkt is not None
    assert plain.wkt.startswith("POLYGON ((116.46 39.915")
    assert moved.wkt.startswith("POLYGON ((116.46")
    for raw in ({"crs": "CRS84"}, {"unit_id": 4, "crs": "CRS84"},
                {"level": "grid", "unit_id": 4, "polygon": {}, "crs": "CRS84"}):
        with pytest.raises(InvalidInputError, match="give either level and unit_id, or polygon"):
            area.parse(raw)
    huge = [[10**400, 0], [1, 0], [1, 1], [10**400, 0]]  # valid JSON, no float
    with pytest.raises(InvalidInputError, match="polygon: int too large"):
        area.parse({"polygon": {"type": "Polygon", "coordinates": [huge]}, "crs": "CRS84"})
    with pytest.raises(ValueError, match="levels must be among"):
        AreaInput(levels=("province",))


def test_a_time_window_is_local_time_unless_it_says_otherwise() -> None:
    window = TimeWindowInput("w").parse({"w": {"start": "2024-05-01",
                                               "end": "2024-05-01T12:00:00+00:00"}})
    assert window is not None
    assert window.start == datetime(2024, 4, 30, 16, 0, tzinfo=UTC)  # Beijing midnight
    assert window.end == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert TimeWindowInput("w").parse({}) is None


def test_progress_reports_stage_names_and_fractions_and_stops_when_dismissed() -> None:
    seen: list[tuple[int, str | None]] = []
    answer = {"ours": True}

    def report(percent: int, message: str | None) -> bool:
        seen.append((percent, message))
        return answer["ours"]

    progress = Progress([Stage("a", {"en": "first", "zh": "一"}, 1),
                         Stage("b", {"en": "second", "zh": "二"}, 3)], report=report,
                        min_interval=0)
    progress.stage("a")
    progress.advance(1.0)
    progress.stage("b")
    progress.advance(0.5)
    assert seen == [(0, "first / 一 (1/2)"), (25, "first / 一 (1/2) 100%"),
                    (25, "second / 二 (2/2)"), (62, "second / 二 (2/2) 50%")]
    answer["ours"] = False  # the job was dismissed meanwhile
    with pytest.raises(JobDismissedError):
        progress.advance(0.6)
    with pytest.raises(ValueError, match="no stage 'c'"):
        progress.stage("c")
    throttled = Progress([Stage("a", {"en": "first", "zh": "一"})], report=report,
                         min_interval=60)
    answer["ours"], seen[:] = True, []
    throttled.stage("a")
    throttled.advance(0.5)  # within a minute of the last report: not written
    assert seen == [(0, "first / 一 (1/1)")]


def test_outputs_are_built_from_a_process_result() -> None:
    feature = {"type": "Feature", "id": "grid.1", "properties": {"n": 1},
               "geometry": {"type": "Point", "coordinates": [116.4, 39.9]}}
    process = declare(outputs=(
        SummaryOutput("summary", TEXT, TEXT, properties={"n": {"type": "integer"}}),
        FeatureOutput("points", TEXT, TEXT, geometry=("Point",),
                      properties={"n": {"type": "integer"}}),
        TableOutput("table", TEXT, TEXT, columns={"k": {"type": "string"},
                                                  "v": {"type": "integer", "nullable": True}}),
    ))
    result = ProcessResult(summary={"n": 1}, features={"points": FeatureSet([feature])},
                           tables={"table": Table(("k", "v"), [("a", 1), ("b", None)])})
    outputs = process.outputs_of(result)
    assert {k: v.media_type for k, v in outputs.items()} == {
        "summary": "application/json", "points": "application/geo+json",
        "table": "application/json"}
    assert outputs["table"].value == {"columns": ["k", "v"], "rows": [["a", 1], ["b", None]]}
    import jsonschema

    for output in process.outputs:
        jsonschema.validate(outputs[output.id].value, json_schema(output.schema()))
    with pytest.raises(jsonschema.ValidationError):  # a polygon where points are declared
        bad = {**feature, "geometry": {"type": "Polygon", "coordinates": []}}
        jsonschema.validate(FeatureSet([bad]).to_geojson(),
                            json_schema(process.outputs[1].schema()))
