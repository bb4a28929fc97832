"""Loading mapped rows: staged with COPY, checked and upserted in SQL.

:func:`map_rows` turns the file's rows into staged text (Python side: value
maps, templates, keys, coordinates); :class:`Loader` then works in SQL inside
the caller's transaction — geometry repair (``onemap.import_geometry``),
references by source key, casts, required values, CHECK / foreign-key /
unique constraints — rejecting a failing row with its reason, and writes the
rest with ``INSERT … ON CONFLICT (source_key) DO UPDATE``.

Identifiers come from the catalog and are quoted with
:class:`psycopg.sql.Identifier`; the few SQL fragments taken verbatim (a
column's type spelling, its default, a CHECK expression) come from the
catalog too (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``),
never from the file or the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from spatial.catalog import get_table
from spatial.db import SCHEMA
from spatial.errors import InvalidInputError
from spatial.importer.mapping import (
    TEMPLATE_FIELD,
    ColumnSpec,
    ImportMapping,
    render,
    to_text,
)
from spatial.importer.source import SourceData

LOGGER = logging.getLogger(__name__)

#: Called as ``progress(phase, done, total)`` while an import runs.
type ProgressFn = Callable[[str, int, int], None]

#: Columns the importer writes itself or that nobody may set from a file.
RESERVED_COLUMNS = frozenset({"id", "source_key", "geom", "geom_3857", "version"})
#: Rows per COPY chunk (progress granularity).
COPY_CHUNK = 5000


@dataclass(frozen=True)
class _Col:
    """A column of the target table, as the catalog describes it."""

    name: str
    type_sql: str  # format_type(): "numeric(7,1)", "geometry(MultiPolygon,4490)" …
    type_oid: int
    typmod: int
    not_null: bool
    default_sql: str | None
    generated: bool
    is_array: bool


@dataclass(frozen=True)
class Target:
    """The table an import writes: its columns and the type of ``geom``."""

    name: str
    columns: dict[str, _Col]
    geom_type: str | None  # POINT, MULTIPOLYGON … of `geom`; None without one
    has_version: bool


def describe(conn: psycopg.Connection[Any], layer: str) -> Target:
    """Describe an importable table.

    Raises
    ------
    NotFoundError
        For an unknown name.
    InvalidInputError
        For a view, or a table without ``source_key``.
    """
    table = get_table(conn, layer)  # NotFoundError for an unknown name
    rows = conn.execute(
        """
        SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type_sql,
               a.atttypid::int AS type_oid, a.atttypmod AS typmod, a.attnotnull AS not_null,
               pg_get_expr(d.adbin, d.adrelid) AS default_sql,
               (a.attidentity <> '' OR a.attgenerated <> '') AS generated,
               t.typcategory = 'A' AS is_array, c.relkind::text AS relkind
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE n.nspname = %s AND c.relname = %s
        ORDER BY a.attnum
        """,
        (SCHEMA, table.name),
    ).fetchall()
    if not rows or rows[0]["relkind"] not in ("r", "p"):
        raise InvalidInputError(f"{layer} is not a table and cannot be imported into")
    cols = {
        r["name"]: _Col(
            r["name"], r["type_sql"], r["type_oid"], r["typmod"], r["not_null"],
            r["default_sql"], r["generated"], r["is_array"],
        )
        for r in rows
    }
    if "source_key" not in cols:
        raise InvalidInputError(f"{layer} has no source_key column and cannot be imported into")
    geom = table.geometry.get("geom")
    return Target(table.name, cols, geom[0].upper() if geom else None, "version" in cols)


def check_mapping(target: Target, mapping: ImportMapping, available: Sequence[str]) -> None:
    """Refuse a mapping that cannot work, before any row is read into the database.

    Raises
    ------
    InvalidInputError
        Naming every problem: unknown or reserved target columns, source columns
        absent from the file, required columns given no value.
    """
    problems: list[str] = []
    for spec in mapping.columns:
        if spec.target not in target.columns:
            problems.append(f"{target.name} has no column {spec.target!r}")
        elif spec.target in RESERVED_COLUMNS or target.columns[spec.target].generated:
            problems.append(f"{spec.target!r} is set by the importer, not by the mapping")
        elif target.columns[spec.target].type_sql.startswith("geometry"):
            problems.append(f"{spec.target!r} is a geometry column; only geom is imported")
        missing = [f for f in spec.fields if f not in available]
        if missing and not spec.optional:
            problems.append(f"columns.{spec.target}: the file has no column {', '.join(missing)}")
    for name in mapping.defaults:
        if name not in target.columns or name in RESERVED_COLUMNS:
            problems.append(f"defaults: {target.name} has no settable column {name!r}")
    if mapping.key:
        missing = [f for f in TEMPLATE_FIELD.findall(mapping.key) or [mapping.key]
                   if f not in available]
        if missing:
            problems.append(f"key: the file has no column {', '.join(missing)}")
    given = {c.target for c in mapping.columns} | set(mapping.defaults) | RESERVED_COLUMNS
    required = [
        c.name for c in target.columns.values()
        if c.not_null and c.default_sql is None and not c.generated and c.name not in given
    ]
    if required:
        problems.append(
            f"the mapping gives no value for the required column(s) {', '.join(required)} "
            f"of {target.name}"
        )
    if problems:
        raise InvalidInputError("; ".join(problems) + f". File columns: {', '.join(available)}")


# ---------------------------------------------------------------------------
# Mapping rows (Python side)
# ---------------------------------------------------------------------------


@dataclass
class Prepared:
    """Rows ready for COPY, and the rows already rejected or nulled in Python."""

    rows: list[tuple[Any, ...]]  # (rn, source_key, wkb, *texts)
    targets: list[str]
    rejects: list[dict[str, Any]]
    nulled: list[dict[str, Any]]


def map_rows(
    data: SourceData,
    mapping: ImportMapping,
    storage_fn: Callable[[Any], Any] | None,
    source_name: str,
    progress: ProgressFn,
) -> Prepared:
    """Map the file's rows onto the target columns, as staged text.

    Coordinates go to CGCS2000 through `storage_fn`; value maps, templates,
    factors and defaults are applied; source keys are made and checked for
    duplicates. A row that fails here (no key, a duplicate key, unreadable
    geometry or coordinates, a value outside its value map) is rejected with
    its reason; in a lenient column the value becomes NULL instead.
    """
    n = len(data)
    records = data.attributes.to_dict("records")
    targets = [c.target for c in mapping.columns] + [
        t for t in mapping.defaults if t not in {c.target for c in mapping.columns}
    ]
    rejects: list[dict[str, Any]] = []
    nulled: list[dict[str, Any]] = []
    geoms = data.geometries
    out_wkb: list[bytes | None] = [None] * n
    geo_errors = dict(data.errors)
    if storage_fn is not None and n:
        present = np.flatnonzero(np.array([g is not None for g in geoms], dtype=bool))
        moved = shapely.transform(shapely.force_2d(geoms[present]), storage_fn)
        coords, owner = shapely.get_coordinates(moved, return_index=True)
        finite = np.isfinite(coords).all(axis=1)
        in_range = (np.abs(coords[:, 0]) <= 180) & (np.abs(coords[:, 1]) <= 90)
        for k in np.unique(owner[~finite]).tolist():
            geo_errors[int(present[k])] = "coordinates cannot be brought to CGCS2000"
        for k in np.unique(owner[finite & ~in_range]).tolist():
            geo_errors.setdefault(
                int(present[k]), "coordinates outside longitude/latitude range after transform"
            )
        for j, blob in zip(present.tolist(), shapely.to_wkb(moved).tolist(), strict=True):
            if j not in geo_errors:
                out_wkb[j] = blob
    seen: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    step = max(1, n // 50)
    for i, rec in enumerate(records):
        rn = i + 1
        if i % step == 0:
            progress("mapping", i, n)
        texts: list[str | None] = []
        reasons: list[str] = []
        for spec in mapping.columns:
            value, problem = map_value(spec, rec)
            if problem is not None:
                if spec.lenient:
                    nulled.append({"row": rn, "column": spec.target, "reason": problem})
                else:
                    reasons.append(problem)
            if value is None and spec.target in mapping.defaults:
                value = to_text(mapping.defaults[spec.target])
            texts.append(value)
        for t in targets[len(mapping.columns):]:
            texts.append(to_text(mapping.defaults[t]))
        if mapping.key:
            key_value = (
                render(mapping.key, rec) if TEMPLATE_FIELD.search(mapping.key)
                else to_text(rec.get(mapping.key))
            )
        else:
            digest = hashlib.sha256(data.wkb[i] or b"")
            digest.update(json.dumps(texts, ensure_ascii=False).encode("utf-8"))
            key_value = "sha256:" + digest.hexdigest()[:24]
        key = None if key_value is None else f"{source_name}:{key_value}"
        if key is None:
            reasons.insert(0, f"no value for the source key ({mapping.key})")
        elif key in seen:
            reasons.insert(0, f"duplicate source key {key} (first in row {seen[key]})")
        else:
            seen[key] = rn
        if i in geo_errors:
            reasons.insert(0, geo_errors[i])
        if reasons:
            rejects.append({"row": rn, "key": key, "reason": "; ".join(reasons)})
            continue
        rows.append((rn, key, out_wkb[i], *texts))
    keys = {r[0]: r[1] for r in rows}
    nulled = [{**item, "key": keys.get(item["row"])} for item in nulled if item["row"] in keys]
    progress("mapping", n, n)
    return Prepared(rows, targets, rejects, nulled)


def map_value(spec: ColumnSpec, rec: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The staged text of one column, and the problem if the value cannot be mapped."""
    raw: Any = render(spec.source, rec) if spec.is_template else rec.get(spec.source)
    value = to_text(raw)
    if spec.values is not None:
        if value in spec.values:
            mapped = spec.values[value]
        elif value is not None and "*" in spec.values:
            mapped = spec.values["*"]
        elif value is None:
            return None, None
        else:
            return None, f"{spec.target}: {spec.source}={value!r} is not in the value map"
        value = to_text(mapped)
    if spec.multiply is not None and value is not None:
        try:
            value = to_text(float(value) * spec.multiply)
        except ValueError:
            return None, f"{spec.target}: {spec.source}={value!r} is not a number"
    return value, None


def array_literal(value: str) -> str:
    """A comma-separated list as a PostgreSQL array literal (``{a,b}`` passes through).

    Examples
    --------
    >>> array_literal("water, gas"), array_literal("{water}")
    ('{"water","gas"}', '{water}')
    """
    if value.startswith("{"):
        return value
    items = [v.strip() for v in value.split(",") if v.strip()]
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items]
    return "{" + ",".join(quoted) + "}"


# ---------------------------------------------------------------------------
# Loading (SQL side)
# ---------------------------------------------------------------------------


type _Entry = dict[str, Any]


class Loader:
    """Stages prepared rows and checks and writes them in SQL, in the caller's transaction."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        target: Target,
        mapping: ImportMapping,
        prepared: Prepared,
        source_name: str,
        progress: ProgressFn,
    ) -> None:
        self.conn = conn
        self.target = target
        self.mapping = mapping
        self.prepared = prepared
        self.source_name = source_name
        self.progress = progress
        self.stage_cols = [sql.Identifier(f"c{i}") for i in range(len(prepared.targets))]
        self.specs = {c.target: c for c in mapping.columns}

    def run(self) -> tuple[int, int, list[_Entry], list[_Entry], list[_Entry]]:
        """Stage, check and upsert; return inserted, updated, rejects, repairs, nulled."""
        self._stage()
        self._geometry()
        self._references()
        self._casts()
        self._typed()
        self._constraints()
        inserted, updated = self._upsert()
        rejects = self.conn.execute(
            "SELECT r.rn, s.source_key, string_agg(r.reason, '; ' ORDER BY r.ord) AS reason "
            "FROM _import_reject r JOIN _import_stage s USING (rn) GROUP BY r.rn, s.source_key"
        ).fetchall()
        rejected = [
            {"row": r["rn"], "key": r["source_key"], "reason": r["reason"]} for r in rejects
        ]
        repairs: list[dict[str, Any]] = []
        if self.target.geom_type is not None:
            repairs = [
                {"row": r["rn"], "key": r["source_key"], "reason": r["note"]}
                for r in self.conn.execute(
                    "SELECT g.rn, s.source_key, g.note FROM _import_geom g "
                    "JOIN _import_stage s USING (rn) WHERE g.repaired AND NOT EXISTS "
                    "(SELECT 1 FROM _import_reject r WHERE r.rn = g.rn) ORDER BY g.rn"
                ).fetchall()
            ]
        nulled = [
            {"row": r["rn"], "key": r["source_key"], "column": r["col"], "reason": r["reason"]}
            for r in self.conn.execute(
                "SELECT n.rn, s.source_key, n.col, n.reason FROM _import_nulled n "
                "JOIN _import_stage s USING (rn) ORDER BY n.rn"
            ).fetchall()
        ]
        return inserted, updated, rejected, repairs, nulled

    # -- staging ---------------------------------------------------------------

    def _stage(self) -> None:
        c = self.conn
        for name in ("_import_stage", "_import_reject", "_import_geom", "_import_typed",
                     "_import_nulled"):
            c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        c.execute(
            sql.SQL(
                "CREATE TEMP TABLE _import_stage (rn integer PRIMARY KEY, source_key text, "
                "wkb bytea{}) ON COMMIT DROP"
            ).format(sql.SQL("").join(sql.SQL(", {} text").format(col) for col in self.stage_cols))
        )
        c.execute(
            "CREATE TEMP TABLE _import_reject "
            "(rn integer NOT NULL, ord serial, reason text NOT NULL) ON COMMIT DROP"
        )
        c.execute(
            "CREATE TEMP TABLE _import_nulled (rn integer NOT NULL, col text NOT NULL, "
            "reason text NOT NULL) ON COMMIT DROP"
        )
        rows = self.prepared.rows
        arrays = [
            3 + i for i, t in enumerate(self.prepared.targets) if self.target.columns[t].is_array
        ]
        if arrays:
            rows = [
                tuple(array_literal(v) if k in arrays and v is not None else v
                      for k, v in enumerate(r))
                for r in rows
            ]
        total = len(rows)
        copy_sql = sql.SQL("COPY _import_stage (rn, source_key, wkb{}) FROM STDIN").format(
            sql.SQL("").join(sql.SQL(", {}").format(col) for col in self.stage_cols)
        )
        with c.cursor().copy(copy_sql) as copy:
            for start in range(0, total, COPY_CHUNK):
                for row in rows[start : start + COPY_CHUNK]:
                    copy.write_row(row)
                self.progress("staging", min(total, start + COPY_CHUNK), total)
        self.progress("staging", total, total)
        c.execute("ANALYZE _import_stage")

    def _reject(self, query: sql.Composable, params: Sequence[Any] = ()) -> None:
        self.conn.execute(
            sql.SQL("INSERT INTO _import_reject (rn, reason) {}").format(query), params
        )

    # -- geometry ------------------------------------------------------------------

    def _geometry(self) -> None:
        self.progress("checking geometry", 0, 1)
        if self.target.geom_type is None:
            return
        self.conn.execute(
            "CREATE TEMP TABLE _import_geom ON COMMIT DROP AS "
            "SELECT s.rn, g.geom, g.repaired, g.note "
            "FROM _import_stage s, LATERAL onemap.import_geometry(s.wkb, %s) g",
            (self.target.geom_type,),
        )
        self.conn.execute("ALTER TABLE _import_geom ADD PRIMARY KEY (rn)")
        geom_required = self.target.columns["geom"].not_null
        self._reject(
            sql.SQL(
                "SELECT rn, note FROM _import_geom WHERE geom IS NULL "
                "AND (note <> 'no geometry' OR {})"
            ).format(sql.Literal(geom_required))
        )
        self.progress("checking geometry", 1, 1)

    # -- references --------------------------------------------------------------

    def _ref_table(self, spec: ColumnSpec) -> str:
        assert spec.ref is not None
        ref = describe(self.conn, spec.ref)
        return ref.name

    def _references(self) -> None:
        for i, target in enumerate(self.prepared.targets):
            spec = self.specs.get(target)
            if spec is None or spec.ref is None:
                continue
            ref_table = self._ref_table(spec)
            prefix = f"{spec.ref_source or self.source_name}:"
            col = self.stage_cols[i]
            query = sql.SQL(
                "SELECT s.rn, format('%%s: no %%s with source key %%s', {target}::text, "
                "{ref}::text, {prefix}::text || s.{col}) "
                "FROM _import_stage s WHERE s.{col} IS NOT NULL AND NOT EXISTS ("
                "SELECT 1 FROM {schema}.{table} r WHERE r.source_key = {prefix} || s.{col})"
            ).format(
                target=sql.Literal(target), ref=sql.Literal(ref_table), prefix=sql.Literal(prefix),
                col=col, schema=sql.Identifier(SCHEMA), table=sql.Identifier(ref_table),
            )
            if spec.lenient:
                self._null_rows(i, target, query)
            else:
                self._reject(query)

    def _null_rows(
        self, i: int, target: str, failing: sql.Composable, params: Sequence[Any] = ()
    ) -> None:
        """Set column ``c<i>`` to NULL where `failing` (rn, reason) lists the row."""
        self.conn.execute(
            sql.SQL("INSERT INTO _import_nulled (rn, col, reason) SELECT f.rn, {}, f.r "
                    "FROM ({}) AS f (rn, r)").format(sql.Literal(target), failing),
            params,
        )
        self.conn.execute(
            sql.SQL("UPDATE _import_stage s SET {col} = NULL FROM _import_nulled n "
                    "WHERE n.rn = s.rn AND n.col = {target}").format(
                col=self.stage_cols[i], target=sql.Literal(target)
            )
        )

    # -- casts ---------------------------------------------------------------------

    def _value_sql(self, i: int, target: str) -> sql.Composable:
        """Expression of the typed value of target column ``c<i>`` from stage row ``s``."""
        col = self.target.columns[target]
        spec = self.specs.get(target)
        staged = sql.SQL("s.{}").format(self.stage_cols[i])
        if spec is not None and spec.ref is not None:
            prefix = f"{spec.ref_source or self.source_name}:"
            value: sql.Composable = sql.SQL(
                "(SELECT r.id FROM {schema}.{table} r WHERE r.source_key = {prefix} || {staged})"
            ).format(
                schema=sql.Identifier(SCHEMA), table=sql.Identifier(self._ref_table(spec)),
                prefix=sql.Literal(prefix), staged=staged,
            )
        else:
            # The type spelling comes from the catalog (format_type), not from input.
            value = sql.SQL("CAST({} AS {})").format(staged, sql.SQL(col.type_sql))
        if col.default_sql is not None and not col.generated:
            value = sql.SQL("COALESCE({}, {})").format(value, sql.SQL(col.default_sql))
        return value

    def _casts(self) -> None:
        """Reject (or null, when lenient) the values that do not cast to their column."""
        self.progress("checking values", 0, len(self.prepared.targets))
        for i, target in enumerate(self.prepared.targets):
            spec = self.specs.get(target)
            if spec is not None and spec.ref is not None:
                continue
            col = self.target.columns[target]
            probe = sql.SQL(
                "SELECT count(CAST(s.{c} AS {t})) FROM _import_stage s "
                "WHERE NOT EXISTS (SELECT 1 FROM _import_reject r WHERE r.rn = s.rn)"
            ).format(c=self.stage_cols[i], t=sql.SQL(col.type_sql))
            try:
                with self.conn.transaction():
                    self.conn.execute(probe)
                continue
            except psycopg.errors.DataError:
                pass
            failing = sql.SQL(
                "SELECT s.rn, {label} || ': ' || e.err FROM _import_stage s, "
                "LATERAL (SELECT onemap.import_cast_error(s.{c}, %s::oid::regtype, %s) AS err) e "
                "WHERE e.err IS NOT NULL"
            ).format(label=sql.Literal(target), c=self.stage_cols[i])
            params = (col.type_oid, col.typmod)
            if spec is not None and spec.lenient:
                self._null_rows(i, target, failing, params)
            else:
                self._reject(failing, params)
            self.progress("checking values", i + 1, len(self.prepared.targets))

    # -- typed rows and constraints ------------------------------------------------

    def _insert_columns(self) -> list[str]:
        cols = [*self.prepared.targets, "source_key"]
        if self.target.geom_type is not None:
            cols.append("geom")
        return cols

    def _typed(self) -> None:
        c = self.conn
        table = sql.Identifier(SCHEMA, self.target.name)
        c.execute(
            sql.SQL("CREATE TEMP TABLE _import_typed (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
            .format(table)
        )
        for col in self.target.columns.values():
            if col.not_null:
                c.execute(
                    sql.SQL("ALTER TABLE _import_typed ALTER COLUMN {} DROP NOT NULL").format(
                        sql.Identifier(col.name)
                    )
                )
        c.execute("ALTER TABLE _import_typed ADD COLUMN _rn integer PRIMARY KEY")
        values = [self._value_sql(i, t) for i, t in enumerate(self.prepared.targets)]
        values.append(sql.SQL("s.source_key"))
        join = sql.SQL("")
        if self.target.geom_type is not None:
            values.append(sql.SQL("g.geom"))
            join = sql.SQL(" LEFT JOIN _import_geom g ON g.rn = s.rn")
        c.execute(
            sql.SQL(
                "INSERT INTO _import_typed ({cols}, _rn) SELECT {values}, s.rn "
                "FROM _import_stage s{join} "
                "WHERE NOT EXISTS (SELECT 1 FROM _import_reject r WHERE r.rn = s.rn)"
            ).format(
                cols=sql.SQL(", ").join(sql.Identifier(n) for n in self._insert_columns()),
                values=sql.SQL(", ").join(values),
                join=join,
            )
        )
        # A row that updates a stored one keeps its unmapped columns: check
        # the constraints on the row as it will be, not on defaults.
        written = set(self._insert_columns())
        kept = [
            col.name for col in self.target.columns.values()
            if col.name not in written and not col.generated
        ]
        if kept:
            c.execute(
                sql.SQL(
                    "UPDATE _import_typed t SET {} FROM {} e WHERE e.source_key = t.source_key"
                ).format(
                    sql.SQL(", ").join(
                        sql.SQL("{} = e.{}").format(sql.Identifier(n), sql.Identifier(n))
                        for n in kept
                    ),
                    table,
                )
            )
        c.execute("ANALYZE _import_typed")

    def _constraints(self) -> None:
        c = self.conn
        self.progress("checking constraints", 0, 1)
        live = sql.SQL("NOT EXISTS (SELECT 1 FROM _import_reject r WHERE r.rn = t._rn)")
        for col in self.target.columns.values():
            if col.not_null and not col.generated and col.name != "id":
                self._reject(
                    sql.SQL(
                        "SELECT t._rn, {} FROM _import_typed t WHERE t.{} IS NULL AND {}"
                    ).format(
                        sql.Literal(f"{col.name}: a value is required"),
                        sql.Identifier(col.name), live,
                    )
                )
        constraints = c.execute(
            """
            SELECT con.conname, con.contype::text AS contype,
                   pg_get_constraintdef(con.oid) AS def,
                   ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                         ORDER BY k.o) AS cols,
                   fn.nspname AS ref_schema, fc.relname AS ref_table,
                   ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                         ORDER BY k.o) AS ref_cols
            FROM pg_constraint con
            JOIN pg_class cl ON cl.oid = con.conrelid
            JOIN pg_namespace n ON n.oid = cl.relnamespace
            LEFT JOIN pg_class fc ON fc.oid = con.confrelid
            LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
            WHERE n.nspname = %s AND cl.relname = %s AND con.contype IN ('c', 'f', 'u')
            ORDER BY con.contype, con.conname
            """,
            (SCHEMA, self.target.name),
        ).fetchall()
        for con in constraints:
            cols = [sql.Identifier(n) for n in con["cols"]]
            shown = sql.SQL("jsonb_build_object({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{}, t.{}").format(sql.Literal(n), sql.Identifier(n))
                    for n in con["cols"]
                )
            ) if cols else sql.SQL("'{}'::jsonb")
            if con["contype"] == "c":
                expr = re.sub(r"\s+NOT VALID$", "", con["def"])
                expr = expr[len("CHECK "):] if expr.startswith("CHECK ") else expr
                # The expression is the table's own CHECK, read from the catalog.
                self._reject(
                    sql.SQL(
                        "SELECT t._rn, format('violates %%s %%s: %%s', {name}::text, "
                        "{shown}::text, {defn}::text) FROM _import_typed t "
                        "WHERE ({expr}) IS FALSE AND {live}"
                    ).format(
                        name=sql.Literal(con["conname"]), shown=shown,
                        defn=sql.Literal(con["def"]), expr=sql.SQL(expr), live=live,
                    )
                )
            elif con["contype"] == "f":
                pairs = sql.SQL(" AND ").join(
                    sql.SQL("r.{} = t.{}").format(sql.Identifier(rc), col)
                    for rc, col in zip(con["ref_cols"], cols, strict=True)
                )
                present = sql.SQL(" AND ").join(sql.SQL("t.{} IS NOT NULL").format(x) for x in cols)
                self._reject(
                    sql.SQL(
                        "SELECT t._rn, format('violates %%s: no %%s row with %%s', {name}::text, "
                        "{ref}::text, {shown}::text) FROM _import_typed t "
                        "WHERE {present} AND {live} AND NOT EXISTS "
                        "(SELECT 1 FROM {rtable} r WHERE {pairs})"
                    ).format(
                        name=sql.Literal(con["conname"]), ref=sql.Literal(con["ref_table"]),
                        shown=shown, present=present, live=live,
                        rtable=sql.Identifier(con["ref_schema"], con["ref_table"]), pairs=pairs,
                    )
                )
            elif con["cols"] != ["source_key"] and "id" not in con["cols"]:
                self._unique(con["conname"], con["cols"], cols, shown, live)
        self.progress("checking constraints", 1, 1)

    def _unique(
        self,
        name: str,
        names: list[str],
        cols: list[sql.Identifier],
        shown: sql.Composable,
        live: sql.Composable,
    ) -> None:
        present = sql.SQL(" AND ").join(sql.SQL("t.{} IS NOT NULL").format(x) for x in cols)
        tuple_t = sql.SQL(", ").join(sql.SQL("t.{}").format(x) for x in cols)
        tuple_e = sql.SQL(", ").join(sql.SQL("e.{}").format(x) for x in cols)
        # Against rows already stored under another source key.
        self._reject(
            sql.SQL(
                "SELECT t._rn, format('violates %%s: %%s is already used by another row', "
                "{name}::text, {shown}::text) FROM _import_typed t "
                "WHERE {present} AND {live} AND EXISTS (SELECT 1 FROM {table} e "
                "WHERE ({te}) = ({tt}) AND e.source_key IS DISTINCT FROM t.source_key)"
            ).format(
                name=sql.Literal(name), shown=shown, present=present, live=live,
                table=sql.Identifier(SCHEMA, self.target.name), te=tuple_e, tt=tuple_t,
            )
        )
        # Within the file: the first row keeps the value.
        self._reject(
            sql.SQL(
                "SELECT d._rn, format('violates %%s: %%s repeats row %%s', {name}::text, "
                "d.shown::text, d.first) FROM (SELECT t._rn, {shown} AS shown, "
                "first_value(t._rn) OVER (PARTITION BY {tt} ORDER BY t._rn) AS first "
                "FROM _import_typed t WHERE {present} AND {live}) d WHERE d._rn <> d.first"
            ).format(name=sql.Literal(name), shown=shown, tt=tuple_t, present=present, live=live)
        )
        LOGGER.debug("checked unique %s on %s", name, names)

    # -- writing -------------------------------------------------------------------

    def _upsert(self) -> tuple[int, int]:
        self.progress("writing", 0, 1)
        cols = self._insert_columns()
        updates: list[sql.Composable] = [
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
            for n in cols if n != "source_key"
        ]
        if self.target.has_version:
            updates.append(sql.SQL("version = t.version + 1"))
        ident = sql.SQL(", ").join(sql.Identifier(n) for n in cols)
        row = self.conn.execute(
            sql.SQL(
                "WITH up AS (INSERT INTO {table} AS t ({cols}) "
                "SELECT {cols} FROM _import_typed x "
                "WHERE NOT EXISTS (SELECT 1 FROM _import_reject r WHERE r.rn = x._rn) "
                "ORDER BY x._rn "
                "ON CONFLICT (source_key) DO UPDATE SET {updates} "
                "RETURNING (xmax = 0) AS inserted) "
                "SELECT count(*) FILTER (WHERE inserted) AS inserted, "
                "count(*) FILTER (WHERE NOT inserted) AS updated FROM up"
            ).format(
                table=sql.Identifier(SCHEMA, self.target.name), cols=ident,
                updates=sql.SQL(", ").join(updates),
            )
        ).fetchone()
        self.progress("writing", 1, 1)
        assert row is not None
        return int(row["inserted"]), int(row["updated"])

