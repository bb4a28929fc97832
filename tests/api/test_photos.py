"""Event photos through the real application: upload, dedupe, types, sizes,
scope, bytes round-trip and the row in PostGIS (spatial/photos.py,
server/photos.py, spatial/sql/165_photos.sql).

The tiny city: grid 1 west of 116.47, grid 2 east (tests/data/tiny_city.sql).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from spatial import photos

IN_GRID1 = [116.465, 39.921]


@pytest.fixture(autouse=True)
def photo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ONEMAP_PHOTO_DIR", str(tmp_path / "photos"))
    return tmp_path / "photos"


@pytest.fixture
def workers(make_client: Any, tiny_city_ids: dict[str, int]) -> dict[str, Any]:
    return {
        "grid1": make_client(["grid_worker"], [("grid", tiny_city_ids["grid1"])]),
        "grid2": make_client(["grid_worker"], [("grid", tiny_city_ids["grid2"])]),
        "analyst": make_client(["analyst"]),
        "public": make_client([]),
    }


def jpeg(colour: tuple[int, int, int] = (200, 30, 30), size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(out, "PNG")
    return out.getvalue()


def report(client: Any) -> int:
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": IN_GRID1},
            "properties": {"source": "grid_worker", "category": "sanitation",
                           "client_uuid": str(uuid.uuid4()), "description": "垃圾桶满溢"}}
    r = client.post("/collections/event/items", content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/geo+json"})
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def upload(client: Any, event_id: int, data: bytes, media: str = "image/jpeg") -> Any:
    return client.post(f"/collections/event/items/{event_id}/photos", content=data,
                       headers={"Content-Type": media})


def rows(db: str, event_id: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT id, content_type, size_bytes, sha256, phase, storage_ref "
            "FROM onemap.event_photo WHERE event_id = %s ORDER BY id", (event_id,)).fetchall()


def test_grid_worker_uploads_a_photo_that_round_trips(
        workers: dict[str, Any], tiny_city_db: str, photo_dir: Path) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    data = jpeg()
    r = upload(gw, event_id, data)
    assert r.status_code == 201, r.text
    body = r.json()
    digest = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == digest and body["size_bytes"] == len(data)
    assert body["content_type"] == "image/jpeg" and body["phase"] == "report"
    href = f"/collections/event/items/{event_id}/photos/{body['id']}"
    assert r.headers["Location"].endswith(href)
    assert "storage_ref" not in body
    # the row in PostGIS, and the file under ONEMAP_PHOTO_DIR named by its digest
    (row,) = rows(tiny_city_db, event_id)
    assert row[:5] == (body["id"], "image/jpeg", len(data), digest, "report")
    assert (photo_dir / row[5]).read_bytes() == data
    # the bytes come back, and the list names the photo
    got = gw.get(f"/collections/event/items/{event_id}/photos/{body['id']}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/jpeg" and got.content == data
    listed = gw.get(f"/collections/event/items/{event_id}/photos").json()
    assert [p["id"] for p in listed["photos"]] == [body["id"]]
    # written as the caller: the audit log names the worker
    me = gw.get("/auth/me").json()
    with psycopg.connect(tiny_city_db) as conn:
        audit = conn.execute("SELECT user_id, action FROM onemap.audit_log "
                             "WHERE table_name = 'event_photo' AND row_id = %s",
                             (body["id"],)).fetchall()
    assert audit == [(me["user_id"], "insert")]


def test_same_bytes_are_one_row_and_one_file(
        workers: dict[str, Any], tiny_city_db: str, photo_dir: Path) -> None:
    gw = workers["grid1"]
    first_event, second_event = report(gw), report(gw)
    data = jpeg()
    first = upload(gw, first_event, data)
    again = upload(gw, first_event, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(rows(tiny_city_db, first_event)) == 1
    # the same picture on another event: a second row, still one file
    other = upload(gw, second_event, data)
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    files = [p for p in photo_dir.rglob("*") if p.is_file()]
    assert len(files) == 1
    # a different picture on the same event: a second row and file
    assert upload(gw, first_event, jpeg((0, 0, 200))).status_code == 201
    assert len(rows(tiny_city_db, first_event)) == 2
    assert len([p for p in photo_dir.rglob("*") if p.is_file()]) == 2


def test_png_is_accepted(workers: dict[str, Any]) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    r = upload(gw, event_id, png(), "image/png")
    assert r.status_code == 201, r.text
    assert gw.get(r.headers["Location"]).headers["content-type"] == "image/png"


@pytest.mark.parametrize(("media", "status"), [
    ("image/gif", 415), ("application/octet-stream", 415), ("text/plain", 415)])
def test_wrong_type_is_415(workers: dict[str, Any], tiny_city_db: str,
                           media: str, status: int) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    r = upload(gw, event_id, b"GIF89a" + b"\0" * 32, media)
    assert r.status_code == status, r.text
    assert "JPEG" in r.json()["description"]
    assert rows(tiny_city_db, event_id) == []


def test_bytes_not_matching_the_declared_type_are_400(
        workers: dict[str, Any], tiny_city_db: str, photo_dir: Path) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    for data, media in ((png(), "image/jpeg"), (b"<html>not an image</html>", "image/jpeg"),
                        (b"", "image/webp")):
        r = upload(gw, event_id, data, media)
        assert r.status_code == 400, (media, r.text)
    assert rows(tiny_city_db, event_id) == []
    assert not photo_dir.exists() or not any(p.is_file() for p in photo_dir.rglob("*"))


def test_too_big_is_413(workers: dict[str, Any], tiny_city_db: str) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    data = jpeg() + b"\0" * photos.MAX_BYTES
    r = upload(gw, event_id, data)
    assert r.status_code == 413, r.text
    assert rows(tiny_city_db, event_id) == []


def test_a_chunked_upload_over_the_cap_is_413_and_not_read_to_the_end(
        workers: dict[str, Any], tiny_city_db: str) -> None:
    """No Content-Length: the route stops reading once the bytes pass the cap (nothing
    before it buffers an image body), so 64 MB sent in 64 kB chunks are not all read."""
    from tests.api.test_contract import post_streamed

    gw = workers["grid1"]
    event_id = report(gw)
    chunk = 64 * 1024
    r, pulled = post_streamed(gw.client.app, f"/collections/event/items/{event_id}/photos",
                              {"Content-Type": "image/jpeg", **gw.headers},
                              jpeg()[:16] + b"\0" * (chunk - 16), 1024)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "PayloadTooLarge" and "8 MB" in r.json()["description"]
    assert pulled == photos.MAX_BYTES // chunk + 1  # the chunk that passed the cap, no more
    assert rows(tiny_city_db, event_id) == []


def test_a_declared_length_over_the_cap_is_413_before_reading(
        workers: dict[str, Any], tiny_city_db: str) -> None:
    from tests.api.test_contract import post_streamed

    gw = workers["grid1"]
    event_id = report(gw)
    r, pulled = post_streamed(gw.client.app, f"/collections/event/items/{event_id}/photos",
                              {"Content-Type": "image/jpeg", **gw.headers,
                               "Content-Length": str(photos.MAX_BYTES + 1)}, b"\0" * 4096, 3)
    assert (r.status_code, pulled) == (413, 0), r.text
    assert str(photos.MAX_BYTES + 1) in r.json()["description"]
    # a chunked photo under the cap is read whole and stored as before
    data = jpeg()
    r, pulled = post_streamed(gw.client.app, f"/collections/event/items/{event_id}/photos",
                              {"Content-Type": "image/jpeg", **gw.headers}, data, 1)
    assert (r.status_code, pulled) == (201, 1), r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_another_grids_worker_can_neither_attach_nor_see(
        workers: dict[str, Any], tiny_city_db: str) -> None:
    mine, stranger = workers["grid1"], workers["grid2"]
    event_id = report(mine)
    photo = upload(mine, event_id, jpeg()).json()
    r = upload(stranger, event_id, jpeg((1, 2, 3)))
    assert r.status_code in (403, 404), r.text
    assert len(rows(tiny_city_db, event_id)) == 1
    assert stranger.get(f"/collections/event/items/{event_id}/photos").status_code == 404
    assert stranger.get(
        f"/collections/event/items/{event_id}/photos/{photo['id']}").status_code == 404


def test_row_level_security_refuses_a_photo_on_an_invisible_event(
        workers: dict[str, Any], tiny_city_db: str) -> None:
    """The policy of 165_photos.sql, below the Python check: an INSERT naming
    an event the caller cannot see fails in PostgreSQL itself."""
    from spatial.access import Principal, request_connection

    event_id = report(workers["grid1"])
    me = workers["grid2"].get("/auth/me").json()
    stranger = Principal(me["user_id"], me["username"], frozenset({"grid_worker"}))
    with (pytest.raises(psycopg.errors.InsufficientPrivilege),
          request_connection(stranger, conninfo=tiny_city_db) as conn):
        conn.execute(
            "INSERT INTO onemap.event_photo (event_id, storage_ref, content_type, "
            "size_bytes, sha256) VALUES (%s, 'x', 'image/jpeg', 1, %s)",
            (event_id, "0" * 64))
    assert rows(tiny_city_db, event_id) == []


def test_analyst_sees_but_may_not_attach_and_public_is_401(
        workers: dict[str, Any], tiny_city_db: str, photo_dir: Path) -> None:
    event_id = report(workers["grid1"])
    photo = upload(workers["grid1"], event_id, jpeg()).json()
    analyst = workers["analyst"]
    assert analyst.get(f"/collections/event/items/{event_id}/photos/{photo['id']}").status_code \
        == 200
    assert upload(analyst, event_id, jpeg((9, 9, 9))).status_code == 403
    stored = [f for f in photo_dir.rglob("*") if f.is_file()]
    assert len(stored) == 1, stored  # the refused upload left no file behind
    public = workers["public"]
    assert upload(public, event_id, jpeg()).status_code == 401
    assert public.get(f"/collections/event/items/{event_id}/photos").status_code == 401
    assert len(rows(tiny_city_db, event_id)) == 1


def test_bad_ids_are_400_and_unknown_ones_404(workers: dict[str, Any]) -> None:
    gw = workers["grid1"]
    assert gw.get("/collections/event/items/abc/photos").status_code == 400
    assert upload(gw, 99999999, jpeg()).status_code == 404
    event_id = report(gw)
    assert gw.get(f"/collections/event/items/{event_id}/photos/x").status_code == 400
    assert gw.get(f"/collections/event/items/{event_id}/photos/12345").status_code == 404


def test_missing_file_is_404_not_500(workers: dict[str, Any], photo_dir: Path) -> None:
    gw = workers["grid1"]
    event_id = report(gw)
    photo = upload(gw, event_id, jpeg()).json()
    for f in photo_dir.rglob("*.jpg"):
        f.unlink()
    assert gw.get(photo["href"]).status_code == 404


# -- the event's course ---------------------------------------------------------------------

def test_history_follows_the_event_and_its_scope(workers: dict[str, Any]) -> None:
    """A reported event's course is its report; a change of status through the API is
    added; a worker of another grid and the public get the event's own 404/401."""
    gw = workers["grid1"]
    event_id = report(gw)
    path = f"/collections/event/items/{event_id}/history"
    first = gw.get(path)
    assert first.status_code == 200, first.text
    (reported,) = first.json()["history"]
    assert (reported["from_status"], reported["to_status"]) == (None, "reported")
    assert "by_user_id" not in reported  # who made a change is not published
    etag = gw.get(f"/collections/event/items/{event_id}", params={"f": "json"}).headers["ETag"]
    body = {"type": "Feature", "geometry": None, "properties": {"status": "assigned"}}
    r = gw.put(f"/collections/event/items/{event_id}", content=json.dumps(body).encode(),
               headers={"Content-Type": "application/geo+json", "If-Match": etag})
    assert r.status_code == 204, r.text
    course = gw.get(path).json()["history"]
    assert [(c["from_status"], c["to_status"]) for c in course] == [
        (None, "reported"), ("reported", "assigned")]
    assert course[0]["at"] <= course[1]["at"]
    # the event's scope decides: another grid's worker cannot tell it exists
    other = workers["grid2"].get(path)
    assert other.status_code == 404, other.text
    assert other.json()["code"] == "NotFound"
    assert workers["public"].get(path).status_code == 401  # the public reads no events
    assert gw.get("/collections/event/items/999999999/history").status_code == 404
    assert gw.get("/collections/event/items/abc/history").status_code == 400
