"""Migrations apply in order, twice, and leave the same schema."""

from __future__ import annotations

import subprocess
from typing import Any

import psycopg
import pytest

from spatial.catalog import geometry_tables
from spatial.migrate import applied, migrate, migrations, pending


def _schema_dump(info: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(info)
    args = ["pg_dump", "--schema-only", "--no-owner", "--schema=onemap"]
    for key, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
        if params.get(key):
            args += [flag, str(params[key])]
    args.append(str(params["dbname"]))
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    # pg_dump ≥ 15.14 brackets its output with \restrict <random key> lines.
    return "\n".join(
        line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )


@pytest.fixture
def empty_db(server_conninfo: str) -> Any:
    from tests.conftest import create_database, drop_database

    name = "onemap_t_empty_migrate"
    info = create_database(server_conninfo, name)
    yield info
    drop_database(server_conninfo, name)


def test_migration_files_are_numbered_and_unique() -> None:
    names = [m.name for m in migrations()]
    assert names == sorted(names)
    numbers = [n.split("_", 1)[0] for n in names]
    assert len(numbers) == len(set(numbers)), "two migrations share a number"
    assert names[0] == "000_migrations.sql"


def test_migrations_apply_twice_cleanly(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        first = migrate(conn)
        assert first == [m.name for m in migrations()]
        assert pending(conn) == []
        assert migrate(conn) == []  # nothing left to do
        before = _schema_dump(empty_db)
        # Every file is idempotent: applying all of them again changes nothing.
        again = migrate(conn, reapply=True)
        assert again == first
        assert _schema_dump(empty_db) == before
        assert set(applied(conn)) == set(first)


def test_changed_migration_is_reapplied(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn)
        conn.execute(
            "UPDATE onemap.schema_migrations SET checksum = 'stale' "
            "WHERE name = '000_migrations.sql'"
        )
        assert pending(conn) == ["000_migrations.sql"]
        assert migrate(conn) == ["000_migrations.sql"]


#: Geometry columns left untyped on purpose, and why.
UNTYPED = {
    "job_feature": "one table holds every process's feature outputs (142_job_features.sql), "
                   "whose geometry kinds differ; each output's kind is its declaration's",
}


def test_geometry_columns_are_typed_indexed_and_in_storage_crs(conn: psycopg.Connection) -> None:
    tables = geometry_tables(conn)
    assert len(tables) >= 30, tables
    rows = conn.execute(
        """
        SELECT f_table_name, f_geometry_column, srid, type FROM geometry_columns
        WHERE f_table_schema = 'onemap'
        """
    ).fetchall()
    for r in rows:
        expected = 3857 if r["f_geometry_column"] == "geom_3857" else 4490
        assert r["srid"] == expected, r
        if r["f_table_name"] not in UNTYPED:
            assert r["type"] != "GEOMETRY", f"untyped geometry column: {r}"
    unindexed = conn.execute(
        """
        SELECT g.f_table_name, g.f_geometry_column
        FROM geometry_columns g
        JOIN pg_class c ON c.relname = g.f_table_name
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = g.f_table_schema
        WHERE g.f_table_schema = 'onemap' AND NOT c.relispartition AND c.relkind IN ('r', 'p')
          AND NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_am am ON am.oid = ic.relam
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = c.oid AND am.amname = 'gist' AND a.attname = g.f_geometry_column)
        """
    ).fetchall()
    assert unindexed == []


HIERARCHY = [
    ("street_office", "district"),
    ("community", "street_office"),
    ("grid", "community"),
    ("grid", "grid"),  # multi-level grids
    ("compound", "grid"),
    ("building", "compound"),
    ("unit", "building"),
    ("household", "unit"),
    ("resident", "household"),
]


def test_hierarchy_foreign_keys_chain_up(conn: psycopg.Connection) -> None:
    fks = conn.execute(
        """
        SELECT cl.relname AS child, pcl.relname AS parent
        FROM pg_constraint c
        JOIN pg_class cl ON cl.oid = c.conrelid
        JOIN pg_class pcl ON pcl.oid = c.confrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        WHERE c.contype = 'f' AND n.nspname = 'onemap'
        """
    ).fetchall()
    pairs = {(r["child"], r["parent"]) for r in fks}
    missing = [p for p in HIERARCHY if p not in pairs]
    assert missing == []


def test_gps_points_are_partitioned_by_time(conn: psycopg.Connection) -> None:
    conn.execute("SELECT onemap.ensure_truck_gps_partition('2026-11-20'::date)")
    conn.execute("SELECT onemap.ensure_truck_gps_partition('2026-11-20'::date)")  # idempotent
    kind = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = 'onemap.truck_gps'::regclass"
    ).fetchone()
    assert kind["relkind"] == "p"
    parts = conn.execute(
        "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'onemap.truck_gps'::regclass"
    ).fetchone()
    assert parts["n"] >= 2  # the day and the default partition
