"""Import GIS files into the model's layers (``onemap import``).

A file (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, or CSV with longitude and
latitude columns) is read with pyogrio, or an EPANET network (``.inp``) with
wntr as the layers nodes, pipes and valves; its columns are mapped onto a
layer's columns (:class:`ImportMapping`, from command-line options or a small
YAML file), its coordinates are brought to the storage CRS with
:func:`spatial.crs.to_storage` (EPSG codes, ``gcj02``, ``bd09``, and an
optional local planar grid), and the rows are loaded in one transaction:

1. COPY into a temporary staging table, every value as text;
2. in SQL, per row: geometry parsed, repaired with ``ST_MakeValid`` keeping
   its type family and fitted to the column's type
   (``onemap.import_geometry``); references resolved through the referenced
   layer's ``source_key``; values cast to the column types; required values,
   CHECK, foreign-key and unique constraints checked — a row that fails is
   rejected with its reason instead of failing the batch;
3. ``INSERT … ON CONFLICT (source_key) DO UPDATE``, so importing the same file
   again updates rows instead of duplicating them.

Nothing is dropped silently: every row read is loaded or rejected, and the
:class:`ImportSummary` (also stored in ``onemap.import_run``) says
read / loaded (inserted, updated) / repaired / rejected, with the reasons.

Source keys are ``<source>:<value>``: the source name (``osm``,
``epanet:ky10`` …; the file's stem by default) before the value of a key column
or template (``{osm_type}/{id}``), so sources never collide. Without a key, a
hash of the geometry and the mapped attributes is used: then a changed row
comes back as a new row, which the summary says.

Modules: :mod:`~spatial.importer.mapping` (the mapping and its YAML form),
:mod:`~spatial.importer.source` (reading, coordinates),
:mod:`~spatial.importer.epanet` (an EPANET file as layers),
:mod:`~spatial.importer.load` (staging, checks and upsert in SQL); the SQL
helpers and the ``onemap.import_run`` log are in ``spatial/sql/110_import.sql``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from spatial.errors import InvalidInputError
from spatial.importer.load import Loader, ProgressFn, check_mapping, describe, map_rows
from spatial.importer.mapping import TEMPLATE_FIELD, ColumnSpec, ImportMapping
from spatial.importer.source import SourceData, read_source, storage_transformer

LOGGER = logging.getLogger(__name__)

#: Report entries kept in ``onemap.import_run.report`` (the file keeps all).
REPORT_DB_LIMIT = 10_000


@dataclass
class ImportSummary:
    """What an import did; ``read == loaded + rejected``, ``loaded == inserted + updated``.

    Attributes
    ----------
    run_id : int or None
        Row of ``onemap.import_run`` (None for a dry run).
    layer, source_name, path, source_crs, key_strategy : str
        What was imported from where, and how keys were made.
    read, loaded, inserted, updated, repaired, rejected : int
        Row counts.
    rejects : list of dict
        ``row`` (1-based, file order), ``key``, ``reason`` for each rejected row.
    repairs : list of dict
        ``row``, ``key``, ``reason`` (the validity problem) for each repaired geometry.
    nulled : list of dict
        ``row``, ``key``, ``column``, ``reason`` for each value of a lenient
        column that could not be read and became NULL.
    warnings : list of str
        What the file reader warned about (e.g. a geometry GDAL could not
        read, which then counts as missing).
    dry_run : bool
        Nothing was written.
    """

    layer: str
    source_name: str
    path: str
    source_crs: str
    key_strategy: str
    read: int = 0
    loaded: int = 0
    inserted: int = 0
    updated: int = 0
    repaired: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    nulled: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    run_id: int | None = None
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        """The figures: read, loaded, inserted, updated, repaired, rejected, nulled."""
        return {
            "read": self.read,
            "loaded": self.loaded,
            "inserted": self.inserted,
            "updated": self.updated,
            "repaired": self.repaired,
            "rejected": self.rejected,
            "nulled": len(self.nulled),
        }

    def reasons(self, top: int = 10) -> list[tuple[str, int]]:
        """Most frequent rejection reasons with their counts."""
        from collections import Counter

        return Counter(r["reason"] for r in self.rejects).most_common(top)

    def report(self, limit: int | None = None) -> dict[str, Any]:
        """The report as JSON-ready data (entries cut to `limit` each when given)."""

        def cut(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return items if limit is None else items[:limit]

        return {
            "run_id": self.run_id,
            "layer": self.layer,
            "source_name": self.source_name,
            "path": self.path,
            "source_crs": self.source_crs,
            "key_strategy": self.key_strategy,
            "dry_run": self.dry_run,
            "summary": self.counts(),
            "rejected": cut(self.rejects),
            "repaired": cut(self.repairs),
            "nulled": cut(self.nulled),
            "reader_warnings": self.warnings,
            "truncated": limit is not None
            and max(len(self.rejects), len(self.repairs), len(self.nulled)) > limit,
        }

    def write_report(self, path: str | Path) -> Path:
        """Write the full report as JSON and return its path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.report(), ensure_ascii=False, indent=1), encoding="utf-8")
        return out


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def import_file(
    conn: psycopg.Connection[Any],
    path: str | Path,
    mapping: ImportMapping,
    *,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> ImportSummary:
    """Import a file into a layer; every row is loaded or rejected with a reason.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection with dict rows; the import runs in one transaction of
        its own (or a savepoint, inside the caller's).
    path : str or Path
        The file.
    mapping : ImportMapping
        Target layer, column mapping, CRS, key.
    dry_run : bool
        Check everything, then roll back: the summary says what would happen.
    progress : callable, optional
        ``progress(phase, done, total)``.

    Returns
    -------
    ImportSummary
        Counts and report; ``run_id`` is the ``onemap.import_run`` row.

    Raises
    ------
    InvalidInputError
        When the file cannot be read, the mapping does not fit the layer, or
        the CRS is unknown.
    NotFoundError
        When the layer does not exist.

    Examples
    --------
    A CSV of AMap (GCJ-02) points into key units, keyed by its 编号 column:

    >>> mapping = ImportMapping.from_dict({
    ...     "layer": "key_unit", "source": "amap", "source_crs": "gcj02", "key": "编号",
    ...     "columns": {"name": "名称", "kind": "类别"}})
    >>> mapping.column("name").source
    '名称'

    then ``import_file(conn, "units.csv", mapping)``.
    """
    report = progress or _no_progress
    started = datetime.now(UTC)
    p = Path(path)
    target = describe(conn, mapping.layer)
    report("reading", 0, 1)
    data = read_source(p, mapping)
    report("reading", 1, 1)
    available = [str(c) for c in data.attributes.columns]
    check_mapping(target, mapping, available)
    source_name = mapping.source or p.stem
    no_geometry = all(g is None for g in data.geometries) and not data.errors
    if target.geom_type is not None and target.columns["geom"].not_null and len(data) and (
        no_geometry
    ):
        raise InvalidInputError(
            f"{p.name} has no geometry and {target.name} needs one; for a CSV, name the "
            "coordinate columns (lon/lat)"
        )
    storage_fn = None
    crs_name = "none"
    if target.geom_type is not None and any(g is not None for g in data.geometries):
        storage_fn, crs_name = storage_transformer(
            mapping.source_crs or data.crs, mapping.local_transform
        )
        if mapping.source_crs and data.crs and crs_name not in str(data.crs):
            crs_name += f" (given; the file declares {data.crs})"
    key_strategy = (
        f"{'template' if TEMPLATE_FIELD.search(mapping.key) else 'column'} {mapping.key!r}"
        if mapping.key
        else "hash of geometry and attributes (no key given): a changed row comes back as a new row"
    )
    summary = ImportSummary(
        layer=target.name, source_name=source_name, path=p.name, source_crs=crs_name,
        key_strategy=key_strategy, dry_run=dry_run, warnings=data.warnings,
    )
    prepared = map_rows(data, mapping, storage_fn, source_name, report)
    try:
        with conn.transaction():
            loader = Loader(conn, target, mapping, prepared, source_name, report)
            inserted, updated, sql_rejects, repairs, sql_nulled = loader.run()
            rejects = sorted(prepared.rejects + sql_rejects, key=lambda r: r["row"])
            summary.read = len(data)
            summary.inserted, summary.updated = inserted, updated
            summary.loaded = inserted + updated
            summary.rejected = len(rejects)
            summary.repaired = len(repairs)
            summary.rejects, summary.repairs = rejects, repairs
            summary.nulled = sorted(prepared.nulled + sql_nulled, key=lambda r: r["row"])
            if summary.read != summary.loaded + summary.rejected:
                raise RuntimeError(
                    f"import arithmetic broken: read {summary.read} != loaded {summary.loaded} "
                    f"+ rejected {summary.rejected}"
                )
            if dry_run:
                raise _DryRunError
            row = conn.execute(
                """
                INSERT INTO onemap.import_run (layer, source_name, source_path, source_crs,
                    key_strategy, started_at, finished_at, read, loaded, inserted, updated,
                    repaired, rejected, report)
                VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp(), %s, %s, %s, %s, %s, %s, %s)
                RETURNING id
                """,
                (
                    target.name, source_name, p.name, crs_name, key_strategy, started,
                    summary.read,
                    summary.loaded, summary.inserted, summary.updated, summary.repaired,
                    summary.rejected, json.dumps(summary.report(limit=REPORT_DB_LIMIT)),
                ),
            ).fetchone()
            summary.run_id = int(row["id"]) if row else None
    except _DryRunError:
        pass
    LOGGER.info(
        "imported %s into %s: read %d, loaded %d (inserted %d, updated %d), repaired %d, "
        "rejected %d", p.name, target.name, summary.read, summary.loaded, summary.inserted,
        summary.updated, summary.repaired, summary.rejected,
    )
    return summary


class _DryRunError(Exception):
    """Rolls back the transaction of a dry run."""


__all__ = [
    "ColumnSpec",
    "ImportMapping",
    "ImportSummary",
    "SourceData",
    "import_file",
    "read_source",
    "storage_transformer",
]
