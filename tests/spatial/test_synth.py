"""The whole ``onemap generate`` run: every step, determinism, the truth kept apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from spatial.db import connect
from spatial.errors import InvalidInputError
from spatial.synth import STEPS, data_tables, generate
from tests.conftest import create_database, drop_database

CONFIG = Path(__file__).resolve().parents[2] / "pygeoapi-config.yml"

#: Columns that record when a row was written, not what it says.
VOLATILE = {"created_at", "updated_at", "generated_at", "computed_at", "changed_at"}


def _fingerprints(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """md5 of every data table's rows (ordered, volatile columns left out)."""
    out = {}
    for schema, table in data_tables(conn):
        cols = [r["column_name"] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table)).fetchall() if r["column_name"] not in VOLATILE]
        row = conn.execute(sql.SQL(
            "SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) AS h, "
            "count(*) AS n FROM (SELECT {} FROM {}) r").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                sql.Identifier(schema, table))).fetchone()
        out[f"{schema}.{table}"] = f"{row['n']}:{row['h']}"
    return out


@pytest.fixture(scope="module")
def two_cities(server_conninfo: str, template_db: str) -> Iterator[list[str]]:
    """Three clones: S with seed 5, S with seed 5 again, S with seed 6."""
    names = [f"onemap_t_gen_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    infos = [create_database(server_conninfo, n, template=template_db) for n in names]
    for info, seed in zip(infos, (5, 5, 6), strict=True):
        with connect(info, autocommit=True) as conn:
            generate(conn, "S", seed)
    yield infos
    for n in names:
        drop_database(server_conninfo, n)


def test_every_step_writes_its_layers(two_cities: list[str]) -> None:
    with connect(two_cities[0], autocommit=True) as conn:
        counts = {r["relname"]: r["n"] for r in conn.execute(
                "SELECT c.relname, (xpath('/row/n/text()', query_to_xml("
                "format('SELECT count(*) AS n FROM onemap.%I', c.relname), false, true, '')))[1]"
                "::text::bigint AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
                "WHERE s.nspname = 'onemap' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            ).fetchall()}
        generation = conn.execute("SELECT scale, seed, row_counts FROM truth.generation").fetchone()
    for table in ("road", "land_use", "district", "street_office", "community", "grid",
                  "compound", "building", "unit", "household", "resident", "pipe_segment",
                  "pipe_node", "valve", "sensor", "lamp", "distribution_box", "alley",
                  "alley_problem", "refuse_facility", "refuse_load_reading", "event",
                  "key_unit", "hazard_source", "truck", "truck_gps", "waybill",
                  "construction_site", "disposal_site", "disposal_entry", "checkpoint",
                  "checkpoint_hit", "spill_report"):
        assert counts[table] > 0, f"{table} is empty"
    # what is not the city survives its generation: who may read what, above all
    assert counts["layer_access"] >= 35 and counts["tile_version"] > 0
    assert generation["scale"] == "S" and generation["seed"] == 5
    assert generation["row_counts"]["household"] == counts["household"]
    assert next(s for s, _ in STEPS) == "city"


def test_same_seed_same_city_other_seed_other_city(two_cities: list[str]) -> None:
    prints = []
    for info in two_cities:
        with connect(info, autocommit=True) as conn:
            prints.append(_fingerprints(conn))
    assert prints[0] == prints[1]
    differing = [t for t in prints[0] if prints[0][t] != prints[2][t]]
    assert "onemap.building" in differing and "onemap.truck_gps" in differing


def test_ground_truth_is_kept_apart(two_cities: list[str]) -> None:
    """Truth lives in its own schema; no published layer reads from it."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["resources"]
    tables = {p["data"]["table"] for r in config.values() for p in r.get("providers", [])
              if p["type"] == "feature"}
    with connect(two_cities[0], autocommit=True) as conn:
        truth = {r["relname"] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'truth' AND c.relkind IN ('r', 'p')").fetchall()}
        published = {r["t"] for r in conn.execute(
            "SELECT table_name AS t FROM information_schema.tables "
            "WHERE table_schema = 'onemap'").fetchall()}
    assert len(truth) >= 5
    assert tables <= published  # every layer is an onemap table (the provider's schema)
    assert not tables & (truth - published)


def test_refuses_to_overwrite_and_unknown_scale(two_cities: list[str]) -> None:
    with connect(two_cities[0], autocommit=True) as conn:
        with pytest.raises(InvalidInputError, match="already holds a city"):
            generate(conn, "S", 5)
        with pytest.raises(InvalidInputError, match="scale"):
            generate(conn, "XL", 5, replace=True)
