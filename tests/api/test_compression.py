"""Response compression: every body decodes by its own headers, compressed at most once.

The application compresses in one place (Starlette's GZipMiddleware, wired in
``server.app``); pygeoapi's own gzip is off (``server.fixes``). It used
to label its format errors ``Content-Encoding: gzip`` without compressing them.
The bodies are read raw here (``iter_raw``), as a client that does not trust the
headers blindly would see them.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import psycopg
import pytest

#: Where pygeoapi answered a bad ``f=`` with a plain body labelled gzip (issue 12).
FORMAT_ERROR_PATHS = ["/", "/conformance", "/collections", "/collections/lamp",
                      "/collections/lamp/items/{lamp}", "/processes", "/jobs"]


def raw(client: Any, method: str, url: str, **kwargs: Any) -> tuple[Any, bytes]:
    """The response and its body as sent (not decoded by the client)."""
    with client.stream(method, url, **kwargs) as r:
        return r, b"".join(r.iter_raw())


def decoded(response: Any, body: bytes) -> bytes:
    """The body decoded by the response's own ``Content-Encoding`` (gzip or none)."""
    encoding = response.headers.get("content-encoding", "identity")
    assert encoding in ("gzip", "identity"), encoding
    return gzip.decompress(body) if encoding == "gzip" else body


@pytest.fixture
def lamp(tiny_city_db: str) -> int:
    with psycopg.connect(tiny_city_db) as conn:
        (fid,) = conn.execute("SELECT min(id) FROM onemap.lamp").fetchone()  # type: ignore[misc]
    return int(fid)


@pytest.mark.parametrize("encoding", ["gzip", "gzip, deflate, br", "identity"])
def test_format_errors_decode_by_their_headers(client: Any, lamp: int, encoding: str) -> None:
    for template in FORMAT_ERROR_PATHS:
        path = template.format(lamp=lamp)
        r, body = raw(client, "GET", path, params={"f": "xyz"},
                      headers={"Accept-Encoding": encoding})
        assert r.status_code == 400, path
        doc = json.loads(decoded(r, body))
        assert doc["code"] == "InvalidParameterValue", (path, doc)
        if encoding == "identity":
            assert "content-encoding" not in r.headers, path


def test_f_gzip_is_not_a_format(client: Any) -> None:
    """pygeoapi's ``server.gzip`` made ``f=gzip`` a format (JSON labelled application/gzip)."""
    r, body = raw(client, "GET", "/collections", params={"f": "gzip"},
                  headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 400
    assert json.loads(decoded(r, body))["code"] == "InvalidParameterValue"


def test_good_answers_are_compressed_once(client: Any, lamp: int) -> None:
    for path in ("/collections", "/collections/lamp/items", "/openapi", "/styles/base",
                 f"/collections/lamp/items/{lamp}"):
        r, body = raw(client, "GET", path, params={"f": "json"},
                      headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200, path
        assert r.headers["content-encoding"] == "gzip", path
        assert "Accept-Encoding" in r.headers["vary"], path
        plain = gzip.decompress(body)
        assert not plain.startswith(b"\x1f\x8b"), path  # not gzip twice
        json.loads(plain)
        r, body = raw(client, "GET", path, params={"f": "json"},
                      headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in r.headers, path
        json.loads(body)


def test_streamed_pages_decode(client: Any) -> None:
    """GeoJSON pages stream from a cursor: compressed chunk by chunk, one gzip stream."""
    r, body = raw(client, "GET", "/collections/building/items",
                  params={"f": "json", "limit": 1000}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["type"] == "FeatureCollection"


def test_tiles_are_not_compressed_again(client: Any) -> None:
    """A cached tile is gzipped once by the tile service; the app passes it through."""
    url = "/tiles/base/WebMercatorQuad/13/3103/6746"
    r, body = raw(client, "GET", url, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert not gzip.decompress(body).startswith(b"\x1f\x8b")
    r, body = raw(client, "GET", url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers
    assert r.headers["vary"].count("Accept-Encoding") == 1
    assert not body.startswith(b"\x1f\x8b")


def test_no_content_carries_no_encoding(staff_client: Any, lamp: int) -> None:
    """pygeoapi labelled a 204 gzip although it has no body."""
    r = staff_client.put(f"/collections/lamp/items/{lamp}",
                         content=json.dumps({"type": "Feature", "geometry": None,
                                             "properties": {"status": "fault"}}),
                         headers={"Content-Type": "application/geo+json",
                                  "Accept-Encoding": "gzip"})
    assert r.status_code == 204, r.text
    assert "content-encoding" not in r.headers
    assert r.content == b""
