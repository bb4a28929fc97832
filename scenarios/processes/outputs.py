"""Outputs of the processes: their declarations and what a run produces.

A run returns a :class:`ProcessResult` — a summary, feature collections and
tables, by output id; each declared :class:`Output` takes its value from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scenarios.processes.inputs import Text

#: JSON Schemas (OpenAPI 3.0) of the usual properties of outputs.
INT: dict[str, Any] = {"type": "integer"}
INT_N: dict[str, Any] = {"type": "integer", "nullable": True}
NUM: dict[str, Any] = {"type": "number"}
NUM_N: dict[str, Any] = {"type": "number", "nullable": True}
STR_N: dict[str, Any] = {"type": "string", "nullable": True}
BOOL: dict[str, Any] = {"type": "boolean"}


@dataclass(frozen=True)
class FeatureSet:
    """Features of one kind of geometry, an output as a GeoJSON FeatureCollection.

    Attributes
    ----------
    features : list of dict
        GeoJSON features (``id``, ``geometry`` in EPSG:4490 lon/lat, ``properties``).
    """

    features: list[dict[str, Any]]

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON FeatureCollection."""
        return {"type": "FeatureCollection", "features": list(self.features),
                "numberReturned": len(self.features)}


@dataclass(frozen=True)
class Table:
    """Rows under named columns: an output as ``{"columns": [...], "rows": [[...]]}``."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True)
class ProcessResult:
    """What a run produced: a summary, feature collections and tables by output id.

    Attributes
    ----------
    summary : dict
        The process's JSON document (its :class:`SummaryOutput`).
    features : dict of str to FeatureSet
        Feature outputs by id.
    tables : dict of str to Table
        Table outputs by id.
    """

    summary: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, FeatureSet] = field(default_factory=dict)
    tables: Mapping[str, Table] = field(default_factory=dict)


@dataclass(frozen=True)
class Output(ABC):
    """A declared output: its id, titles and schema."""

    id: str
    title: Text
    description: Text
    media_type: ClassVar[str] = "application/json"

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """Its schema (OpenAPI 3.0 schema object)."""

    @abstractmethod
    def value(self, result: ProcessResult) -> Any:
        """Its value from a run's result."""

    def describe(self) -> dict[str, Any]:
        """The OGC output description."""
        return {"title": dict(self.title), "description": dict(self.description),
                "schema": {**self.schema(), "contentMediaType": self.media_type}}


@dataclass(frozen=True)
class SummaryOutput(Output):
    """The run's summary: one JSON object with these properties."""

    properties: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": dict(self.properties)}

    def value(self, result: ProcessResult) -> Any:
        return dict(result.summary)


@dataclass(frozen=True)
class FeatureOutput(Output):
    """Features with one kind of geometry and these properties (GeoJSON).

    A job stores its features as a map layer too (``/jobs/{id}/results/{output}/
    items``, ``tiles``, ``style``); ``colour_by`` names a numeric property its
    style colours the features by (None: one colour).
    """

    geometry: tuple[str, ...] = ("Polygon", "MultiPolygon")
    properties: Mapping[str, Any] = field(default_factory=dict)
    colour_by: str | None = None
    media_type: ClassVar[str] = "application/geo+json"

    def schema(self) -> dict[str, Any]:
        feature = {
            "type": "object", "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"enum": ["Feature"]},
                "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "geometry": {"type": "object", "required": ["type", "coordinates"],
                             "properties": {"type": {"enum": list(self.geometry)},
                                            "coordinates": {"type": "array"}}},
                "properties": {"type": "object", "properties": dict(self.properties)},
            },
        }
        return {"type": "object", "format": "geojson-feature-collection",
                "required": ["type", "features"],
                "properties": {"type": {"enum": ["FeatureCollection"]},
                               "features": {"type": "array", "items": feature},
                               "numberReturned": {"type": "integer"}}}

    def value(self, result: ProcessResult) -> Any:
        return result.features[self.id].to_geojson()


@dataclass(frozen=True)
class TableOutput(Output):
    """A table with these columns (name → schema of its values)."""

    columns: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        # OpenAPI 3.0 schemas (the process description's and the execution's)
        # have no tuple form (prefixItems): a row's values are any of the columns'
        # schemas, in the order ``columns`` names them.
        kinds: list[Any] = []
        for column in self.columns.values():
            if column not in kinds:
                kinds.append(column)
        value = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        return {"type": "object", "required": ["columns", "rows"],
                "properties": {"columns": {"type": "array", "items": {"enum": list(self.columns)}},
                               "rows": {"type": "array", "items": {
                                   "type": "array", "items": value,
                                   "description": "values in the order of columns: "
                                                  + ", ".join(self.columns),
                                   "minItems": len(self.columns),
                                   "maxItems": len(self.columns)}}}}

    def value(self, result: ProcessResult) -> Any:
        return result.tables[self.id].to_json()
