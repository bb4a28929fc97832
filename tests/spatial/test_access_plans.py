"""Row-level security must not cost the spatial index (cluster LEAKPROOF_OVERLAPS)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from spatial.access import Principal, apply_principal


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    out = [plan]
    for child in plan.get("Plans", []):
        out += plan_nodes(child)
    return out


def act_as_district_admin(conn: Any) -> None:
    """Make a district administrator and act as them on ``conn`` (row-level security on)."""
    admin = conn.execute(
        "INSERT INTO onemap.app_user (username) VALUES ('plan_admin') RETURNING id"
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO onemap.user_role (user_id, role_id) "
        "SELECT %s, id FROM onemap.app_role WHERE code = 'district_admin'", (admin,))
    conn.execute(
        "INSERT INTO onemap.data_scope (user_id, level, unit_id) "
        "SELECT %s, 'district', min(id) FROM onemap.district", (admin,))
    apply_principal(conn, Principal(admin, "plan_admin", frozenset({"district_admin"})))


@pytest.mark.parametrize("view", ["household", "event", "building", "lamp"])
def test_bbox_on_a_policed_layer_can_use_the_spatial_index(
    tiny_city_db: str, view: str
) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        leakproof = conn.execute(
            "SELECT proleakproof FROM pg_proc WHERE oid = "
            "'public.geometry_overlaps(geometry, geometry)'::regprocedure"
        ).fetchone()[0]
        assert leakproof, (
            "geometry_overlaps is not LEAKPROOF: under row-level security no bbox query "
            "uses a spatial index. As a superuser: ALTER FUNCTION "
            "public.geometry_overlaps(geometry, geometry) LEAKPROOF"
        )
        act_as_district_admin(conn)
        conn.execute("SET LOCAL enable_seqscan = off")  # could an index be used at all?
        (plan,) = conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT id FROM layers.{view} "
            "WHERE geom_3857 && ST_MakeEnvelope(12965000, 4852000, 12966000, 4853000, 3857)"
        ).fetchone()
        nodes = plan_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
        scans = {(n["Node Type"], n.get("Index Name", "")) for n in nodes
                 if n.get("Relation Name") == view or "Index Name" in n}
        assert any("geom_3857" in index for _, index in scans), scans
