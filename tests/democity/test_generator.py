"""The whole ``onemap generate`` run: every step, determinism, the truth kept apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from democity import STEPS, data_tables, generate
from spatial.db import connect
from spatial.errors import InvalidInputError
from tests import declared
from tests.conftest import create_database, drop_database

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
                  "checkpoint_hit", "spill_report", "utility_tunnel"):
        assert counts[table] > 0, f"{table} is empty"
    # what is not the city survives its generation: who may read what, above all
    assert counts["layer_access"] >= 35 and counts["tile_version"] > 0
    assert generation["scale"] == "S" and generation["seed"] == 5
    assert generation["row_counts"]["household"] == counts["household"]
    assert next(s for s, _ in STEPS) == "city"


def test_utility_tunnels_run_under_main_roads(two_cities: list[str]) -> None:
    """The S city has a tunnel named after the main road it follows, under that road."""
    with connect(two_cities[0], autocommit=True) as conn:
        tunnels = conn.execute(
            "SELECT t.code, t.name, t.utilities, t.status, ST_Length(t.geom::geography) AS len, "
            "ST_Within(t.geom, ST_Buffer(t.footprint, 0.000001)) AS inside, "
            "(SELECT ST_Length(ST_Intersection(t.geom, ST_SetSRID(ST_Buffer(ST_Collect(r.geom)"
            "::geography, 15)::geometry, 4490))::geography) FROM onemap.road r "
            " WHERE r.road_class IN ('expressway', 'arterial', 'secondary') "
            "   AND t.name = r.name || '综合管廊' AND ST_DWithin(r.geom, t.geom, 0.001)) AS under "
            "FROM onemap.utility_tunnel t ORDER BY t.id").fetchall()
        facts = conn.execute(
            "SELECT facts -> 'pipelines' -> 'utility_tunnel' AS f FROM truth.generation"
        ).fetchone()["f"]
    assert len(tunnels) >= 1 and facts["tunnels"] == len(tunnels)
    for t in tunnels:
        assert t["name"].endswith("综合管廊") and t["code"].startswith("GL-")
        assert {"water", "power", "telecom"} <= set(t["utilities"])
        assert t["status"] in ("in_service", "under_repair", "under_construction")
        assert t["len"] > 200 and t["inside"]
        # all of it lies within 15 m of the road it is named after
        assert t["under"] is not None and t["under"] >= 0.99 * t["len"], t


def test_waybills_carry_the_planned_route(two_cities: list[str]) -> None:
    """Each waybill's line runs from its construction site to its disposal site."""
    with connect(two_cities[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) AS n, count(w.geom) AS routed, "
            "count(*) FILTER (WHERE ST_DWithin(ST_StartPoint(w.geom)::geography, "
            "  c.geom::geography, 60)) AS from_site, "
            "count(*) FILTER (WHERE ST_DWithin(ST_EndPoint(w.geom)::geography, "
            "  d.geom::geography, 60)) AS to_disposal, "
            "min(ST_Length(w.geom::geography) / nullif(ST_Distance(c.geom::geography, "
            "  d.geom::geography), 0)) AS detour "
            "FROM onemap.waybill w "
            "JOIN onemap.construction_site c ON c.id = w.construction_site_id "
            "JOIN onemap.disposal_site d ON d.id = w.disposal_site_id").fetchone()
    assert row["n"] > 0 and row["routed"] == row["n"]
    assert row["from_site"] == row["n"] and row["to_disposal"] == row["n"]
    assert row["detour"] >= 1.0


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
    tables = {c.table for c in declared.collections().values() if c.table}
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
