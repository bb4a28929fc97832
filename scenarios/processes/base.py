"""Processes declared as data: :class:`Process`, the declaration a process module makes.

A process is a :class:`Process` value — its id, titles, inputs, outputs, job
control options, stages and an example — plus one ``run`` function over the
caller's connection. Everything its description shows is built from these
declarations, and every input is parsed and validated by its type
(:mod:`scenarios.processes.inputs`), once. A run returns a
:class:`~scenarios.processes.outputs.ProcessResult`
(:mod:`scenarios.processes.outputs`) and reports progress by stage
(:mod:`scenarios.processes.progress`).

This module re-exports the pieces, so a process module imports from here only.
Nothing here imports pygeoapi: :mod:`scenarios.processes.adapter` is the edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from jsonschema import Draft202012Validator

from scenarios.processes.inputs import (
    AREA_LEVELS,
    CITY_MARGIN_M,
    CITY_TZ,
    INVALID,
    Area,
    AreaInput,
    DateInput,
    IdSetInput,
    Input,
    Point,
    PointInput,
    ScenarioInput,
    Text,
    TimeWindow,
    TimeWindowInput,
    Value,
    input_description,
    invalid,
    polygon_wkt,
    text,
)
from scenarios.processes.outputs import (
    BOOL,
    INT,
    INT_N,
    NUM,
    NUM_N,
    STR_N,
    FeatureOutput,
    FeatureSet,
    Output,
    ProcessResult,
    SummaryOutput,
    Table,
    TableOutput,
)
from scenarios.processes.progress import Progress, Stage
from spatial import jobs
from spatial.access import request_connection
from spatial.errors import InvalidInputError, NamedInputError
from spatial.wellformed import check_json_value

__all__ = [
    "AREA_LEVELS",
    "ASYNC",
    "BOOL",
    "CITY_MARGIN_M",
    "CITY_TZ",
    "INT",
    "INT_N",
    "INVALID",
    "NUM",
    "NUM_N",
    "STORAGE_CRS",
    "STR_N",
    "SYNC",
    "Area",
    "AreaInput",
    "DateInput",
    "FeatureOutput",
    "FeatureSet",
    "IdSetInput",
    "Input",
    "Output",
    "Parsed",
    "Point",
    "PointInput",
    "Process",
    "ProcessResult",
    "Progress",
    "ScenarioInput",
    "Stage",
    "SummaryOutput",
    "Table",
    "TableOutput",
    "Text",
    "TimeWindow",
    "TimeWindowInput",
    "Value",
    "input_description",
    "invalid",
    "json_schema",
    "polygon_wkt",
    "text",
]

STORAGE_CRS = "http://www.opengis.net/def/crs/EPSG/0/4490"
SYNC = "sync-execute"
ASYNC = "async-execute"
_ID = re.compile(r"^[a-z][a-z0-9_-]*$")


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema object (process descriptions) as JSON Schema.

    OGC API Processes 1.0 describes inputs and outputs with OpenAPI 3.0
    schema objects: ``nullable: true`` instead of a type list. JSON Schema
    validators need the type list.

    Examples
    --------
    >>> json_schema({"type": "object", "nullable": True, "properties": {
    ...     "n": {"type": "integer", "nullable": True}}})
    {'type': ['object', 'null'], 'properties': {'n': {'type': ['integer', 'null']}}}
    """
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    elif schema.get("nullable") and ("oneOf" in out or "anyOf" in out):
        key = "oneOf" if "oneOf" in out else "anyOf"
        out[key] = [*out[key], {"type": "null"}]
    return out


#: A run: the caller's connection (one transaction), the parsed inputs, progress.
Runner = Callable[[psycopg.Connection[Any], Mapping[str, Any], Progress], ProcessResult]

DEFAULT_STAGES = (Stage("run", {"en": "running", "zh": "运行中"}),)


@dataclass(frozen=True)
class Parsed:
    """Inputs parsed once: ``raw`` (JSON, defaults filled in: what a job stores) and
    ``values`` (each input type's value, by key)."""

    raw: dict[str, Any]
    values: dict[str, Any]



@contextmanager
def named_inputs() -> Iterator[None]:
    """Answer an analysis's :class:`~spatial.errors.NamedInputError` as the process's 400
    naming the input (``invalid input / 输入无效: <name>: <reason>``): the one mapping."""
    try:
        yield
    except NamedInputError as exc:
        raise invalid(exc.name, exc.reason) from None

@dataclass(frozen=True)
class Process:
    """A process declared as data.

    Attributes
    ----------
    id : str
        Its id (the key of its entry in ``pygeoapi-config.yml``).
    title, description : Text
        ``{"en": ..., "zh": ...}``.
    keywords : tuple of str
    inputs : tuple of Input
        Their names must not overlap.
    outputs : tuple of Output
        Ids unique; at most one :class:`SummaryOutput`.
    run : callable
        ``(conn, inputs, progress) → ProcessResult``: inputs by key.
    example : dict
        Example inputs: shown in the description and run by the registry test.
    job_control : tuple of str
        ``sync-execute`` and/or ``async-execute`` (a long optimisation: async only).
    stages : tuple of Stage
        Progress stages, in order.
    """

    id: str
    title: Text
    description: Text
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    run: Runner
    example: Mapping[str, Any]
    keywords: tuple[str, ...] = ()
    job_control: tuple[str, ...] = (SYNC, ASYNC)
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    version: str = "1.0.0"

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"process id must match {_ID.pattern}, got {self.id!r}")
        names = [n for i in self.inputs for n in i.describe()]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.id}: input names overlap: {names}")
        ids = [o.id for o in self.outputs]
        if not ids or len(ids) != len(set(ids)):
            raise ValueError(f"{self.id}: outputs must have unique ids, got {ids}")
        if sum(isinstance(o, SummaryOutput) for o in self.outputs) > 1:
            raise ValueError(f"{self.id}: at most one summary output")
        if not self.job_control or set(self.job_control) - {SYNC, ASYNC}:
            raise ValueError(f"{self.id}: job_control must be among {SYNC}, {ASYNC}, "
                             f"got {self.job_control}")
        if not self.stages:
            raise ValueError(f"{self.id}: declare at least one stage")

    def describe(self) -> dict[str, Any]:
        """The OGC API Processes 1.0 description (a new dict each call)."""
        inputs: dict[str, Any] = {}
        for item in self.inputs:
            inputs.update(item.describe())
        return {
            "version": self.version, "id": self.id, "title": dict(self.title),
            "description": dict(self.description), "keywords": list(self.keywords),
            "jobControlOptions": list(self.job_control), "outputTransmission": ["value"],
            "links": [], "inputs": inputs,
            "outputs": {o.id: o.describe() for o in self.outputs},
            "example": {"inputs": dict(self.example)},
        }

    def inputs_schema(self) -> dict[str, Any]:
        """The JSON Schema of the execute request's ``inputs`` (nothing undeclared)."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, spec in self.describe()["inputs"].items():
            properties[name] = json_schema(spec["schema"])
            if spec["minOccurs"] >= 1:
                required.append(name)
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": properties, "required": required, "additionalProperties": False}

    def parse(self, data: Any) -> Parsed:
        """Check the request's inputs against the declared schemas, then parse each input.

        Raises
        ------
        InvalidInputError
            Naming each offending input and what was wrong (the first three
            schema errors), or the first input its type refuses.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(f"{INVALID}: inputs must be a JSON object, "
                                    f"got {type(data).__name__}")
        check_json_value(data, f"{INVALID}: inputs")
        validator = Draft202012Validator(self.inputs_schema(),
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(data),
                        key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            reasons = []
            for error in errors[:3]:
                where = ".".join(str(p) for p in error.absolute_path)
                text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
                reasons.append(f"{where}: {text}" if where else text)
            raise InvalidInputError(f"{INVALID}: " + "; ".join(reasons))
        raw = dict(data)
        for name, spec in self.describe()["inputs"].items():
            if name not in raw and "default" in spec["schema"]:
                raw[name] = spec["schema"]["default"]
        return Parsed(raw, {item.key: item.parse(raw) for item in self.inputs})

    def check(self, conn: psycopg.Connection[Any], parsed: Parsed) -> None:
        """The inputs' database checks, through the caller's connection (an analysis's
        :class:`~spatial.errors.NamedInputError` answered as the 400 naming its input)."""
        with named_inputs():
            for item in self.inputs:
                item.check(conn, parsed.values[item.key])

    def outputs_of(self, result: ProcessResult) -> dict[str, jobs.Output]:
        """The declared outputs of a run, by id."""
        return {o.id: jobs.Output(o.media_type, o.value(result)) for o in self.outputs}

    def execute(
        self,
        data: Any,
        connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]] = (
            request_connection),
    ) -> dict[str, jobs.Output]:
        """Parse, check and run on the caller's connection, in one transaction.

        Inside a job the connection is :func:`spatial.jobs.cancellable`: a
        dismissal cancels its statement, and everything the run wrote rolls
        back.

        Parameters
        ----------
        data : dict
            The request's ``inputs``.
        connection : callable
            Opens the connection (default: the current principal's).

        Returns
        -------
        dict of str to spatial.jobs.Output
            Every declared output, by id.
        """
        parsed = self.parse(data)
        progress = Progress(self.stages)
        with connection() as conn, jobs.cancellable(conn):
            self.check(conn, parsed)
            with named_inputs():
                result = self.run(conn, parsed.values, progress)
            jobs.check_dismissed()  # nothing of a dismissed run commits
        return self.outputs_of(result)
