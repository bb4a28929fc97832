"""How a file's rows become a layer's rows: :class:`ImportMapping` and its columns.

A mapping is data: a YAML file (examples in ``layers/import/``) or command-line
options, read into frozen dataclasses. Values are staged for PostgreSQL as text
(:func:`to_text`), so every cast and check happens in SQL, row by row.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spatial.crs import PlanarTransform
from spatial.errors import InvalidInputError

#: A template field: ``{column}`` (OSM column names may hold colons).
TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class ColumnSpec:
    """Where one target column's value comes from.

    Attributes
    ----------
    target : str
        Column of the layer.
    source : str
        A column of the file, or a template such as ``"{addr:street} {addr:housenumber}"``
        (fields in braces; missing values render empty, an all-empty result is NULL).
    values : dict, optional
        Value map applied to the source value (compared as text; integral
        numbers as integers, so ``140.0`` matches the key ``140``). The key
        ``"*"`` catches every other non-null value, the key ``null`` a missing
        one. A value not in the map rejects the row (or nulls it if lenient).
    multiply : float, optional
        Factor for numeric values (metres → millimetres: 1000).
    ref : str, optional
        The value is the source key (without prefix) of a row of this layer;
        the column receives that row's ``id``.
    ref_source : str, optional
        Prefix of the referenced keys; defaults to the mapping's source.
    lenient : bool
        A value that cannot be read (not in the value map, not a number, not
        castable to the column type) becomes NULL and is listed in the report
        instead of rejecting the row.
    optional : bool
        The source column may be absent from the file (an OSM tag no feature
        of the extract carries): the target is then NULL. Otherwise an absent
        column is an error before anything is loaded.
    """

    target: str
    source: str
    values: Mapping[str | None, Any] | None = None
    multiply: float | None = None
    ref: str | None = None
    ref_source: str | None = None
    lenient: bool = False
    optional: bool = False

    @property
    def fields(self) -> list[str]:
        """Source columns the spec reads."""
        found = TEMPLATE_FIELD.findall(self.source)
        return found if found else [self.source]

    @property
    def is_template(self) -> bool:
        """Whether `source` is a template rather than a column name."""
        return bool(TEMPLATE_FIELD.search(self.source))


@dataclass(frozen=True)
class ImportMapping:
    """How a file's rows become a layer's rows.

    Attributes
    ----------
    layer : str
        Target table of the application schema (must have ``source_key``).
    columns : tuple of ColumnSpec
        Column mapping.
    defaults : dict
        Target column → value used where the mapped value is missing (or the
        column is not mapped).
    source_crs : str, optional
        CRS of the file's coordinates (EPSG code, ``gcj02``, ``bd09``, an OGC
        URI, or anything pyproj reads); overrides the CRS the file declares.
    local_transform : PlanarTransform, optional
        Applied to the file's coordinates first: they are on a local grid and
        the transform takes them to `source_crs`.
    key : str, optional
        Column or template giving each row's source key; None hashes geometry
        and attributes.
    source : str, optional
        Source-key prefix; defaults to the file's stem.
    source_layer : str, optional
        Layer inside a multi-layer file (GeoPackage).
    lon, lat : str, optional
        Coordinate columns of a CSV file.
    encoding : str, optional
        Text encoding of the file (``GBK`` for many Chinese CSV/Shapefiles);
        a name Python does not know is an :class:`InvalidInputError`.

    Examples
    --------
    >>> m = ImportMapping.from_dict({
    ...     "layer": "road", "source": "osm", "key": "{osm_type}/{id}",
    ...     "columns": {"name": "name",
    ...                 "road_class": {"source": "highway", "values": {"primary": "arterial"}}},
    ... })
    >>> m.column("road_class").values
    {'primary': 'arterial'}
    >>> m.with_options(columns={"name": "name:zh"}).column("name").source
    'name:zh'
    """

    layer: str
    columns: tuple[ColumnSpec, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source_crs: str | None = None
    local_transform: PlanarTransform | None = None
    key: str | None = None
    source: str | None = None
    source_layer: str | None = None
    lon: str | None = None
    lat: str | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise InvalidInputError(
                    f"unknown text encoding {self.encoding!r}; e.g. utf-8, gbk, gb18030"
                ) from None

    def column(self, target: str) -> ColumnSpec:
        """Return the spec of a target column.

        Raises
        ------
        KeyError
            When the column is not mapped.
        """
        for spec in self.columns:
            if spec.target == target:
                return spec
        raise KeyError(target)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportMapping:
        """Build a mapping from its YAML/JSON form.

        Parameters
        ----------
        data : mapping
            Keys ``layer``, ``columns`` (target → source column, template, or a
            dict with ``source``, ``values``, ``multiply``, ``ref``,
            ``ref_source``, ``lenient``, ``optional``), ``defaults``,
            ``source_crs``, ``key``, ``source``, ``source_layer``, ``lon``,
            ``lat``, ``encoding``, ``lenient`` and ``optional`` (lists of target
            columns), ``local_transform`` (``{affine: [a, b, c, d, e, f]}`` or
            ``{helmert: {dx, dy, scale, rotation_deg}}``).

        Returns
        -------
        ImportMapping
            The mapping.

        Raises
        ------
        InvalidInputError
            For unknown keys or malformed entries.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a mapping must be a dictionary, got {type(data).__name__}")
        known = {
            "layer", "columns", "defaults", "source_crs", "local_transform", "key", "source",
            "source_layer", "lon", "lat", "encoding", "lenient", "optional", "description",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown mapping keys {unknown}; expected some of {sorted(known)}"
            )
        layer = data.get("layer")
        if not isinstance(layer, str) or not layer:
            raise InvalidInputError(f"the mapping needs a layer name, got {layer!r}")
        lenient = set(_str_list(data.get("lenient") or [], "lenient"))
        optional = set(_str_list(data.get("optional") or [], "optional"))
        columns = tuple(
            _column_spec(str(target), value, str(target) in lenient, str(target) in optional)
            for target, value in (data.get("columns") or {}).items()
        )
        mapped = {c.target for c in columns}
        for name, listed in (("lenient", lenient), ("optional", optional)):
            if listed - mapped:
                raise InvalidInputError(
                    f"{name} names columns that are not mapped: {sorted(listed - mapped)}"
                )
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise InvalidInputError(f"defaults must be a dictionary, got {defaults!r}")
        return cls(
            layer=layer,
            columns=columns,
            defaults={str(k): v for k, v in defaults.items()},
            source_crs=_opt_str(data.get("source_crs"), "source_crs"),
            local_transform=_local_transform(data.get("local_transform")),
            key=_opt_str(data.get("key"), "key"),
            source=_opt_str(data.get("source"), "source"),
            source_layer=_opt_str(data.get("source_layer"), "source_layer"),
            lon=_opt_str(data.get("lon"), "lon"),
            lat=_opt_str(data.get("lat"), "lat"),
            encoding=_opt_str(data.get("encoding"), "encoding"),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> ImportMapping:
        """Read a mapping file (see :meth:`from_dict` for its keys).

        Raises
        ------
        InvalidInputError
            When the file is not valid YAML or not a valid mapping.
        """
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInputError(f"cannot read mapping {Path(path).name}: {exc}") from None
        return cls.from_dict(data or {})

    def with_options(
        self,
        *,
        layer: str | None = None,
        columns: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        lenient: Iterable[str] = (),
        **scalars: Any,
    ) -> ImportMapping:
        """Return a copy with command-line options applied over the file's.

        Parameters
        ----------
        layer : str, optional
            Target layer; must agree with the file's when both are given.
        columns : mapping, optional
            Target → source column or template; replaces the file's spec of
            that target.
        defaults : mapping, optional
            Target → value, over the file's defaults.
        lenient : iterable of str
            Mapped columns to make lenient.
        **scalars
            ``source_crs``, ``key``, ``source``, ``source_layer``, ``lon``,
            ``lat``, ``encoding``: set when not None.

        Returns
        -------
        ImportMapping
            The combined mapping.

        Raises
        ------
        InvalidInputError
            When `layer` contradicts the mapping file, or `lenient` names an
            unmapped column.
        """
        out = self
        if layer and layer != self.layer:
            if self.layer:
                raise InvalidInputError(
                    f"--layer {layer} contradicts the mapping file's layer {self.layer}"
                )
            out = replace(out, layer=layer)
        if columns:
            kept = tuple(c for c in out.columns if c.target not in columns)
            added = tuple(ColumnSpec(str(t), str(s)) for t, s in columns.items())
            out = replace(out, columns=kept + added)
        if defaults:
            out = replace(out, defaults={**out.defaults, **defaults})
        lenient = set(lenient)
        if lenient:
            unknown = sorted(lenient - {c.target for c in out.columns})
            if unknown:
                raise InvalidInputError(f"--lenient names columns that are not mapped: {unknown}")
            out = replace(
                out,
                columns=tuple(
                    replace(c, lenient=True) if c.target in lenient else c for c in out.columns
                ),
            )
        updates = {k: v for k, v in scalars.items() if v is not None}
        bad = sorted(
            set(updates)
            - {"source_crs", "key", "source", "source_layer", "lon", "lat", "encoding"}
        )
        if bad:
            raise TypeError(f"unknown mapping options {bad}")
        return replace(out, **updates) if updates else out


def _opt_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInputError(f"{name} must be a string, got {value!r}")
    return str(value)


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"{name} must be a list of column names, got {value!r}")
    return value


def _column_spec(target: str, value: Any, lenient: bool, optional: bool) -> ColumnSpec:
    if isinstance(value, str):
        return ColumnSpec(target, value, lenient=lenient, optional=optional)
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"columns.{target} must be a source column, a template or a dictionary, got {value!r}"
        )
    known = {"source", "values", "multiply", "ref", "ref_source", "lenient", "optional"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInputError(f"columns.{target}: unknown keys {unknown}")
    source = value.get("source")
    if not isinstance(source, str) or not source:
        raise InvalidInputError(f"columns.{target} needs a source, got {source!r}")
    values = value.get("values")
    if values is not None and not isinstance(values, Mapping):
        raise InvalidInputError(f"columns.{target}.values must be a dictionary, got {values!r}")
    multiply = value.get("multiply")
    if isinstance(multiply, bool) or not isinstance(multiply, (int, float, type(None))):
        raise InvalidInputError(f"columns.{target}.multiply must be a number, got {multiply!r}")
    keyed = {(None if k is None else to_text(k)): v for k, v in values.items()} if values else None
    return ColumnSpec(
        target,
        source,
        values=keyed,
        multiply=float(multiply) if multiply is not None else None,
        ref=_opt_str(value.get("ref"), f"columns.{target}.ref"),
        ref_source=_opt_str(value.get("ref_source"), f"columns.{target}.ref_source"),
        lenient=bool(value.get("lenient", lenient)),
        optional=bool(value.get("optional", optional)),
    )


def _local_transform(value: Any) -> PlanarTransform | None:
    if value is None:
        return None
    try:
        if isinstance(value, Mapping) and set(value) == {"affine"}:
            a, b, c, d, e, f = (float(v) for v in value["affine"])
            return PlanarTransform.from_affine(a, b, c, d, e, f)
        if isinstance(value, Mapping) and set(value) == {"helmert"}:
            h = value["helmert"]
            return PlanarTransform.from_helmert(
                dx=float(h.get("dx", 0.0)),
                dy=float(h.get("dy", 0.0)),
                scale=float(h.get("scale", 1.0)),
                rotation_rad=math.radians(float(h.get("rotation_deg", 0.0))),
            )
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"local_transform is malformed: {exc}") from None
    raise InvalidInputError(
        "local_transform must be {affine: [a, b, c, d, e, f]} or "
        f"{{helmert: {{dx, dy, scale, rotation_deg}}}}, got {value!r}"
    )


# ---------------------------------------------------------------------------
# Values as text
# ---------------------------------------------------------------------------


def to_text(value: Any) -> str | None:
    """A source value as the text staged for PostgreSQL, None for missing.

    Blank strings count as missing (CSV and Shapefile have no NULL); integral
    floats lose their ``.0`` so they cast to integer columns.

    Examples
    --------
    >>> to_text(140.0), to_text(152.4), to_text(True), to_text("  "), to_text(float("nan"))
    ('140', '152.4', 'true', None, None)
    >>> to_text(np.datetime64("2026-10-31T08:00")), to_text(np.datetime64("NaT", "s"))
    ('2026-10-31T08:00:00', None)
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        stamp = pd.Timestamp(value)
        return None if stamp is pd.NaT else stamp.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def render(template: str, row: Mapping[str, Any]) -> str | None:
    parts: list[str | None] = []

    def sub(match: re.Match[str]) -> str:
        value = to_text(row.get(match.group(1)))
        parts.append(value)
        return value or ""

    out = TEMPLATE_FIELD.sub(sub, template).strip()
    if not out or all(p is None for p in parts):
        return None
    return re.sub(r"\s{2,}", " ", out)

