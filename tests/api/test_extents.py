"""Each collection's extent comes from its data, stays current and leaks no rows
(spatial/extents.py, server/collections.py), through the real application."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import psycopg
import pytest

from tests import declared

TOLERANCE = 1e-7  # degrees; the box goes through ST_Transform 4490 → 4326


def _layer_extent(db: str, view: str, time_field: str | None = None,
                  where: str = "true") -> tuple[list[float] | None, tuple[Any, Any] | None]:
    """ST_Extent of a layer view's rows (as the owner: every row; None when it has
    none) and its time range."""
    with psycopg.connect(db) as conn:
        row = conn.execute(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            f"FROM (SELECT ST_Extent(geom) e FROM layers.{view} WHERE {where}) x").fetchone()
        times = None
        if time_field:
            times = conn.execute(
                f"SELECT min({time_field}), max({time_field}) FROM layers.{view} "
                f"WHERE {where}").fetchone()
    assert row is not None
    if row[0] is None:
        return None, times
    return [float(v) for v in row], times


def _bbox(doc: dict[str, Any]) -> list[float]:
    assert doc["extent"]["spatial"]["crs"].endswith("/OGC/1.3/CRS84")
    (box,) = doc["extent"]["spatial"]["bbox"]
    return [float(v) for v in box]


def _close(a: list[float], b: list[float]) -> bool:
    return all(abs(x - y) <= TOLERANCE for x, y in zip(a, b, strict=True))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_feature_collections_declare_no_static_extent() -> None:
    resources = declared.resources()
    features = declared.feature_collections()
    assert features
    assert [cid for cid in features if "extents" in resources[cid]] == []


def test_public_extents_are_their_datas(client: Any, tiny_city_db: str) -> None:
    with psycopg.connect(tiny_city_db) as conn:
        public = {r[0] for r in conn.execute(
            "SELECT table_name FROM onemap.layer_access WHERE audience = 'public'")}
    docs = {c["id"]: c for c in client.get("/collections?f=json").json()["collections"]}
    city, _ = _layer_extent(tiny_city_db, "district")
    assert city is not None
    checked = 0
    for cid in sorted(public & docs.keys()):
        box, _ = _layer_extent(tiny_city_db, cid)
        # an empty layer advertises the city's extent
        assert _close(_bbox(docs[cid]), box or city), (cid, _bbox(docs[cid]), box)
        checked += box is not None
    assert checked >= 5
    # the single collection says the same, with its time range
    lamp = client.get("/collections/lamp?f=json").json()
    box, times = _layer_extent(tiny_city_db, "lamp", "last_report_at")
    assert box is not None and _close(_bbox(lamp), box)
    if times and times[0] is not None:
        (begin, end), = lamp["extent"]["temporal"]["interval"]
        assert (_instant(begin), _instant(end)) == times
    # the HTML page draws the same box
    page = client.get("/collections/lamp?f=html")
    assert page.status_code == 200
    assert repr(_bbox(lamp)[0])[:10] in page.text


def test_an_edit_outside_grows_the_extent(client: Any, tiny_city_db: str) -> None:
    before = _bbox(client.get("/collections/lamp?f=json").json())
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO onemap.lamp (code, status, last_report_at, geom) "
            "VALUES ('EXT-1', 'working', '2030-01-02T03:04:05Z', "
            "ST_Point(%s, %s, 4490))", (before[2] + 0.05, before[3] + 0.05))
    deadline = time.monotonic() + 5  # bounds the wait; not a speed check
    while True:
        doc = client.get("/collections/lamp?f=json").json()
        if _bbox(doc)[2] > before[2] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    box, _ = _layer_extent(tiny_city_db, "lamp")
    assert box is not None and _close(_bbox(doc), box) and box[2] == pytest.approx(before[2] + 0.05)
    (_, end), = doc["extent"]["temporal"]["interval"]
    assert end == "2030-01-02T03:04:05Z"
    # the list says so too
    listed = {c["id"]: c for c in client.get("/collections?f=json").json()["collections"]}
    assert _close(_bbox(listed["lamp"]), box)


@pytest.fixture
def events(tiny_city_db: str, tiny_city_ids: dict[str, int]) -> None:
    """One event in each grid of the tiny city, far apart in time."""
    with psycopg.connect(tiny_city_db, autocommit=True) as conn:
        for grid, when in (("grid1", "2026-01-01T00:00:00Z"), ("grid2", "2031-06-01T00:00:00Z")):
            conn.execute(
                """
                INSERT INTO onemap.event (source, category, description, geom, status,
                                          reported_at, community_id, grid_id)
                SELECT 'citizen', 'sanitation', '垃圾满溢', ST_PointOnSurface(g.geom),
                       'reported', %s, g.community_id, g.id
                FROM onemap.grid g WHERE g.id = %s
                """, (when, tiny_city_ids[grid]))


def test_a_scoped_caller_learns_only_its_rows_extent(
        make_client: Any, tiny_city_db: str, tiny_city_ids: dict[str, int],
        events: None) -> None:
    worker = make_client(["grid_worker"], [("grid", tiny_city_ids["grid1"])])
    admin = make_client(["district_admin"], [("district", tiny_city_ids["district"])])
    anonymous = make_client([])

    mine = f"grid_id = {int(tiny_city_ids['grid1'])}"
    box, times = _layer_extent(tiny_city_db, "event", "reported_at", mine)
    assert box is not None
    doc = worker.get("/collections/event?f=json").json()
    assert _close(_bbox(doc), box)
    (begin, end), = doc["extent"]["temporal"]["interval"]
    assert (_instant(begin), _instant(end)) == times
    assert not end.startswith("2031")  # the other grid's later event stays unknown

    whole, all_times = _layer_extent(tiny_city_db, "event", "reported_at")
    assert whole is not None and not _close(whole, box)  # the two grids' events do differ
    doc = admin.get("/collections/event?f=json").json()
    assert _close(_bbox(doc), whole)
    (_, end), = doc["extent"]["temporal"]["interval"]
    assert _instant(end) == all_times[1]  # type: ignore[index]

    # not readable at all: the city's extent, no time range
    city, _ = _layer_extent(tiny_city_db, "district")
    assert city is not None
    doc = anonymous.get("/collections/event?f=json").json()
    assert _close(_bbox(doc), city)
    assert "temporal" not in doc["extent"]
    listed = {c["id"]: c for c in anonymous.get("/collections?f=json").json()["collections"]}
    assert _close(_bbox(listed["household"]), city)


def test_tiles_bound_what_the_collections_advertise(
        make_client: Any, tiny_city_ids: dict[str, int], events: None) -> None:
    worker = make_client(["grid_worker"], [("grid", tiny_city_ids["grid1"])])
    for cid in ("lamp", "event"):
        box = _bbox(worker.get(f"/collections/{cid}?f=json").json())
        tilejson = worker.get(f"/collections/{cid}/tiles/WebMercatorQuad/tilejson.json").json()
        assert _close(tilejson["bounds"], box), cid
