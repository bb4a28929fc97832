"""The synthetic city: ``onemap generate --scale S|M|L --seed N``.

A deterministic, plausible city around Chaoyang, Beijing, written straight
into PostGIS with COPY, with the answers to every analysis planted in the
``truth`` schema. Each step is a module with a ``build(ctx)`` function that
reads what earlier steps published in the :class:`~democity.context.CityContext`
and writes its own tables:

1. :mod:`~democity.city` — streets, blocks, water, green, the admin and
   grid hierarchy, compounds, buildings, units, households, residents, and
   (:mod:`~democity.footpaths`) compound gates and footpaths;
2. :mod:`~democity.pipelines` — water, drainage, gas and heat networks;
3. :mod:`~democity.lighting` — lamps, circuits, distribution boxes;
4. :mod:`~democity.alleys` — back alleys and a year of their problems;
5. :mod:`~democity.refuse` — refuse buildings, transfer stations, plants, loads,
   candidate sites for new ones;
6. :mod:`~democity.events` — events, key units, hazard sources, city furniture;
7. :mod:`~democity.trucks` — sites, trucks, GPS tracks, waybills, entries,
   checkpoint hits, spills;
8. :mod:`~democity.rasters` — population density and terrain COGs.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from democity.context import SCALES, CityContext, NullReporter, Reporter
from democity.writer import CopyWriter
from spatial.db import SCHEMA, fetch_tuples
from spatial.errors import InvalidInputError

LOGGER = logging.getLogger(__name__)

#: Generator steps in order: (module under democity, description).
STEPS: tuple[tuple[str, str], ...] = (
    ("city", "streets, hierarchy, buildings, residents"),
    ("pipelines", "pipeline networks"),
    ("lighting", "street lighting"),
    ("alleys", "back alleys and problems"),
    ("refuse", "refuse facilities"),
    ("events", "events and city-operations points"),
    ("trucks", "muck trucks"),
    ("rasters", "population and terrain rasters"),
)

#: Tables a regeneration leaves alone: configuration and people who log in.
#: Tables of schema onemap that are not the city: the migrations' record, who may
#: read what (layer_access), users and their sessions, logs, process jobs, and the
#: tile versions (caches must never see a version number twice).
KEEP_TABLES = frozenset({"schema_migrations", "layer_access", "app_role", "app_user",
                         "user_role", "data_scope", "api_key", "auth_token", "login_log",
                         "audit_log", "job", "tile_version"})


@dataclass
class GenerationReport:
    """What a run made.

    Attributes
    ----------
    scale : str
        ``S``, ``M`` or ``L``.
    seed : int
        The seed.
    seconds : float
        Wall time.
    rows : dict
        Table → rows written.
    step_seconds : dict
        Step → seconds.
    """

    scale: str
    seed: int
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)


def data_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(schema, table) of every table a regeneration empties."""
    rows = fetch_tuples(
        conn,
        """
        SELECT n.nspname, c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN (%s, 'truth', 'rollup') AND c.relkind IN ('r', 'p')
          AND NOT c.relispartition
          AND NOT (n.nspname = 'truth' AND c.relname = 'generation')
        ORDER BY 1, 2
        """,
        (SCHEMA,),
    )
    return [(schema, name) for schema, name in rows
            if not (schema == SCHEMA and name in KEEP_TABLES)]


def clear(conn: psycopg.Connection[Any]) -> None:
    """Empty every data table and reset its identity."""
    tables = data_tables(conn)
    if tables:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)))


def is_empty(conn: psycopg.Connection[Any]) -> bool:
    """Whether the city holds no district yet."""
    return bool(fetch_tuples(conn, "SELECT NOT EXISTS (SELECT 1 FROM onemap.district)")[0][0])


def _sync_identities(conn: psycopg.Connection[Any]) -> None:
    """Move identity sequences past the ids the generator chose."""
    rows = fetch_tuples(
        conn,
        """
        SELECT n.nspname, c.relname, a.attname
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN (%s, 'truth') AND a.attidentity <> '' AND c.relkind IN ('r', 'p')
          AND NOT c.relispartition
        """,
        (SCHEMA,),
    )
    for schema, table, col in rows:
        conn.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), "
                    "coalesce((SELECT max({col}) FROM {tbl}), 0) + 1, false)").format(
                col=sql.Identifier(col), tbl=sql.Identifier(schema, table)),
            (f"{schema}.{table}", col),
        )


def generate(
    conn: psycopg.Connection[Any],
    scale: str,
    seed: int,
    *,
    reporter: Reporter | None = None,
    replace: bool = False,
    steps: tuple[str, ...] | None = None,
) -> GenerationReport:
    """Generate the synthetic city into the database.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection; the city is written in one transaction.
    scale : str
        ``S`` (one community), ``M`` (one street office) or ``L`` (a district).
    seed : int
        Same seed, same rows.
    reporter : Reporter, optional
        Progress display.
    replace : bool
        Empty a database that already holds a city; otherwise refuse.
    steps : tuple of str, optional
        Run only these steps (and always ``city``); for tests.

    Returns
    -------
    GenerationReport
        Rows per table and timings.

    Raises
    ------
    InvalidInputError
        For an unknown scale, or a non-empty database without ``replace``.
    """
    if scale not in SCALES:
        raise InvalidInputError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    started = time.perf_counter()
    report = GenerationReport(scale, seed)
    with conn.transaction():
        if not is_empty(conn) and not replace:
            raise InvalidInputError("the database already holds a city; use --replace")
        clear(conn)
        writer = CopyWriter(conn)
        ctx = CityContext(SCALES[scale], seed, writer, reporter or NullReporter())
        for module, description in STEPS:
            if steps is not None and module != "city" and module not in steps:
                continue
            t0 = time.perf_counter()
            LOGGER.info("generating %s", description)
            importlib.import_module(f"democity.{module}").build(ctx)
            report.step_seconds[module] = round(time.perf_counter() - t0, 2)
        _sync_identities(conn)
        report.rows = dict(writer.rows)
        report.seconds = round(time.perf_counter() - started, 1)
        conn.execute(
            "INSERT INTO truth.generation (scale, seed, seconds, row_counts, facts) "
            "VALUES (%s, %s, %s, %s, %s)",
            (scale, seed, report.seconds, Jsonb(report.rows), Jsonb(ctx.truth)),
        )
    conn.execute("ANALYZE")
    return report
