"""The form hints of the process inputs (``x-onemap-input``, scenarios/processes/inputs.py):
what the widget's analysis panel builds its form from, for every declared process.

No database: the descriptions only. A process added later with the shared input types
gets its hints from them; one whose hints a generic form could not read fails here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from scenarios.processes.base import AreaInput, IdSetInput, PointInput, ScenarioInput
from scenarios.processes.inputs import FORM, form_hint
from scenarios.processes.registry import PROCESSES
from spatial.errors import InvalidInputError

KINDS = {"point", "points", "area", "id-set", "scenario", "time-window", "date"}
PARTS = {"point": {"x", "y", "crs"}, "points": {"points", "crs"},
         "area": {"level", "unit_id", "polygon", "crs"}}


def _groups(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for name, spec in description["inputs"].items():
        hint = spec["schema"].get(FORM)
        if hint is None:
            continue
        group = groups.setdefault(hint["group"], {"kind": hint["kind"], "parts": {}})
        assert group["kind"] == hint["kind"], (name, hint, group)
        part = hint.get("part", "value")
        assert part not in group["parts"], (name, hint, group)
        group["parts"][part] = (name, hint)
    return groups


@pytest.mark.parametrize("process_id", sorted(PROCESSES))
def test_every_hint_is_one_a_generic_form_can_build(process_id: str) -> None:
    description = PROCESSES[process_id].describe()
    names = set(description["inputs"])
    for key, group in _groups(description).items():
        kind, parts = group["kind"], group["parts"]
        assert kind in KINDS, (process_id, key, kind)
        if kind in PARTS:
            assert set(parts) <= PARTS[kind], (process_id, key, parts)
        if kind == "point":
            assert {"x", "y"} <= set(parts), (process_id, key, parts)
        if kind == "area":
            assert {"level", "unit_id"} <= set(parts) or "polygon" in parts, (process_id, key)
            if "unit_id" in parts:
                # the units' collection names another input of the group: the level
                template = parts["unit_id"][1]["collection"]
                named = re.findall(r"\{([a-z_]+)\}", template)
                assert named and set(named) <= names, (process_id, template)
                assert parts["level"][0] in named, (process_id, template)
        if kind == "id-set":
            collection = parts["value"][1]["collection"]
            assert re.fullmatch(r"[a-z][a-z0-9_]*", collection), (process_id, collection)
            spec = description["inputs"][parts["value"][0]]["schema"]
            assert spec["type"] == "array" and spec["x-onemap-collection"] == collection
        if kind == "scenario":
            assert parts["value"][1]["list"].startswith("/"), (process_id, parts)
        if kind == "points":
            # a GeoJSON MultiPoint the form fills with the points clicked on the map
            spec = description["inputs"][parts["points"][0]]["schema"]
            assert spec["properties"]["type"]["enum"] == ["MultiPoint"], (process_id, spec)


def test_the_shared_types_carry_their_hints() -> None:
    point = PointInput(key="origin", x="lon", y="lat", crs="srs").describe()
    assert {n: s["schema"][FORM] for n, s in point.items()} == {
        "lon": {"kind": "point", "group": "origin", "part": "x"},
        "lat": {"kind": "point", "group": "origin", "part": "y"},
        "srs": {"kind": "point", "group": "origin", "part": "crs"}}
    area = AreaInput(level="lvl", unit_id="uid").describe()
    assert area["uid"]["schema"][FORM] == {"kind": "area", "group": "area", "part": "unit_id",
                                          "collection": "{lvl}"}
    assert area["polygon"]["schema"][FORM]["part"] == "polygon"
    # the polygon's own schema keywords are kept beside the hint
    assert area["polygon"]["schema"]["format"] == "geojson-geometry"
    ids = IdSetInput("pipes", collection="pipe_segment").describe()["pipes"]["schema"]
    assert ids[FORM] == {"kind": "id-set", "group": "pipes", "collection": "pipe_segment"}
    assert ScenarioInput().describe()["scenario"]["schema"][FORM]["list"] == "/scenarios"


def test_refuse_placement_candidates_are_points_picked_on_the_map() -> None:
    inputs = PROCESSES["refuse-placement"].describe()["inputs"]
    assert inputs["candidate_points"]["schema"][FORM] == {
        "kind": "points", "group": "candidate_points", "part": "points"}
    assert inputs["candidate_crs"]["schema"][FORM] == {
        "kind": "points", "group": "candidate_points", "part": "crs"}
    # the schema's own keywords are kept beside the hint
    assert inputs["candidate_points"]["schema"]["format"] == "geojson-geometry"


def test_a_hint_leaves_validation_alone() -> None:
    """JSON Schema validators ignore the keyword: the inputs validate as before."""
    from scenarios.processes.base import Process

    process: Process = PROCESSES["grid-statistics"]
    parsed = process.parse({"level": "community", "unit_id": 1})
    assert parsed.raw["level"] == "community"
    placement = PROCESSES["refuse-placement"]
    points = {"type": "MultiPoint", "coordinates": [[116.4705, 39.9175], [116.46, 39.9175]]}
    request = placement.parse({"level": "community", "unit_id": 1,
                               "candidate_points": points, "candidate_crs": "CRS84"})
    assert len(request.values["placement"].candidate_points) == 2
    with pytest.raises(InvalidInputError, match="candidate_points"):
        placement.parse({"level": "community", "unit_id": 1,
                         "candidate_points": {"type": "Point", "coordinates": [116.46, 39.9]}})
    assert form_hint("date", "d") == {FORM: {"kind": "date", "group": "d"}}
