"""Static routes (server/web.py): MapLibre, the widget, the mobile map."""

from __future__ import annotations

import os
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from server import web

WEB = Path(__file__).resolve().parents[2] / "web"
MAPLIBRE = WEB / "node_modules" / "maplibre-gl" / "dist" / "maplibre-gl.js"


def test_widget_and_maplibre_are_served_by_the_app(client: Any) -> None:
    js = client.get("/widget/onemap-widget.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert b"window.onemap" in js.content
    page = client.get("/widget/?theme=lighting&lang=zh")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert b"onemap-widget.js" in page.content
    assert client.get("/widget", follow_redirects=False).headers["location"].endswith("/widget/")
    if not MAPLIBRE.exists():
        pytest.fail("web/node_modules is missing: run `npm ci --prefix web` (make does)")
    lib = client.get("/static/maplibre-gl/maplibre-gl.js")
    assert lib.status_code == 200 and lib.headers["content-type"].startswith("text/javascript")
    assert lib.content == MAPLIBRE.read_bytes()
    css = client.get("/static/maplibre-gl/maplibre-gl.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    head = client.head("/static/maplibre-gl/maplibre-gl.js")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize("path", [
    "/static/maplibre-gl/%2e%2e/package.json",       # the dist directory's parent
    "/static/maplibre-gl/..%2fpackage.json",
    "/widget/%2e%2e/package.json",
    "/widget/%2e%2e/%2e%2e/pyproject.toml",
    "/widget/nope.js",
    "/m/%2e%2e/widget/onemap-widget.js",
])
def test_nothing_outside_the_directories(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.json()["code"] == "NotFound"


@pytest.fixture
def tmp_web(tmp_path: Path) -> TestClient:
    (tmp_path / "widget").mkdir()
    (tmp_path / "widget" / "index.html").write_text("<p>widget</p>", encoding="utf-8")
    (tmp_path / "widget" / "a.css").write_text("p{}", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    os.symlink(tmp_path / "secret.txt", tmp_path / "widget" / "link.txt")
    return TestClient(Starlette(routes=web.routes(tmp_path)))


def test_symlinks_out_and_missing_directories_are_404(tmp_web: TestClient) -> None:
    assert tmp_web.get("/widget/").text == "<p>widget</p>"
    assert tmp_web.get("/widget/a.css").headers["content-type"].startswith("text/css")
    assert tmp_web.get("/widget/a.css").headers["cache-control"] == "no-cache"
    assert tmp_web.get("/widget/link.txt").status_code == 404
    assert tmp_web.get("/m/").status_code == 404  # web/mobile missing: 404, not 500
    assert tmp_web.get("/static/maplibre-gl/maplibre-gl.js").status_code == 404
    assert tmp_web.get("/widget/a.css%00").status_code == 404


def test_cors_lets_pages_of_other_origins_send_credentials(client: Any) -> None:
    pre = client.options("/search", headers={
        "Origin": "http://host.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, x-api-key"})
    assert pre.status_code == 200
    allowed = pre.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-api-key" in allowed
    for path in ("/search?q=示范", "/collections?f=json", "/tiles"):
        got = client.get(path, headers={"Origin": "http://host.example"})
        assert got.status_code == 200, path
        assert got.headers["access-control-allow-origin"] == "*", path


def test_cors_origins_limit_every_route(tiny_city_db: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With ONEMAP_CORS_ORIGINS set, no route (pygeoapi's included) allows another origin."""

    from server.app import create_app

    monkeypatch.setenv("ONEMAP_CORS_ORIGINS", "https://console.example")
    with TestClient(create_app()) as c:
        for path in ("/collections?f=json", "/search?q=示范", "/tiles"):
            ok = c.get(path, headers={"Origin": "https://console.example"})
            assert ok.headers.get("access-control-allow-origin") == "https://console.example"
            other = c.get(path, headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers, path


def test_only_the_server_frames_the_widget_by_default_and_nobody_the_mobile_map(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ONEMAP_CORS_ORIGINS (CORS for every origin) no other page may frame /widget/."""
    monkeypatch.delenv("ONEMAP_CORS_ORIGINS", raising=False)
    for path in ("/widget/", "/widget/?theme=lighting&origin=https://evil.example",
                 "/widget/onemap-widget.js"):
        got = client.get(path)
        assert got.status_code == 200, path
        assert got.headers["content-security-policy"] == "frame-ancestors 'self'", path
    for path in ("/m/", "/m/manifest.webmanifest"):
        got = client.get(path)
        assert got.status_code == 200, path
        assert got.headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert got.headers["x-frame-options"] == "DENY", path
    # the iframe page is not the rest of the API: no framing policy there to break clients
    assert "content-security-policy" not in client.get("/collections?f=json").headers


def test_the_widgets_host_origins_may_frame_it(tiny_city_db: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """ONEMAP_CORS_ORIGINS names the consoles: they may call the API and frame /widget/."""
    from server.app import create_app

    monkeypatch.setenv("ONEMAP_CORS_ORIGINS",
                       "https://console.example, http://10.1.2.3:8080")
    with TestClient(create_app()) as c:
        page = c.get("/widget/?theme=lighting")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == (
            "frame-ancestors 'self' https://console.example http://10.1.2.3:8080")
        assert c.get("/m/").headers["content-security-policy"] == "frame-ancestors 'none'"
    # '*' beside named origins: any page may call the API, only those frame the widget
    monkeypatch.setenv("ONEMAP_CORS_ORIGINS", "*,https://console.example")
    tmp = TestClient(Starlette(routes=web.routes()))
    assert tmp.get("/widget/").headers["content-security-policy"] == (
        "frame-ancestors 'self' https://console.example")


@pytest.mark.parametrize("value", ["https://console.example/", "https://a.example; script-src *",
                                   "console.example", "https://a.example https://b.example"])
def test_an_entry_that_is_not_an_origin_is_refused_at_start(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_CORS_ORIGINS", value)
    with pytest.raises(ValueError, match=r"ONEMAP_CORS_ORIGINS: .* is not an origin"):
        web.routes()


class _Head(HTMLParser):
    """The ``<link>`` and ``<meta>`` tags of a page, as attribute dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append(dict(attrs))
        elif tag == "meta":
            self.metas.append(dict(attrs))


def _png_size(body: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first, by the format)."""
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR", body[:16]
    width, height = struct.unpack(">II", body[16:24])
    return width, height


def test_mobile_app_icons_are_served_at_the_sizes_the_manifest_states(client: Any) -> None:
    """The phone installs /m/ with its icons: manifest, page and service worker agree."""
    manifest = client.get("/m/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    data = manifest.json()
    sizes = set()
    for icon in data["icons"]:
        got = client.get(urljoin("/m/manifest.webmanifest", icon["src"]))
        assert got.status_code == 200, icon
        assert got.headers["content-type"].split(";")[0] == icon["type"], icon
        if icon["type"] == "image/png":
            width, height = _png_size(got.content)
            assert f"{width}x{height}" in icon["sizes"].split(), icon
            sizes.add(width)
        else:
            assert icon["type"] == "image/svg+xml" and icon["sizes"] == "any"
            assert b"<svg" in got.content and b'viewBox="0 0 512 512"' in got.content
    assert {192, 512} <= sizes  # what Chromium requires to offer installation
    page = _Head()
    page.feed(client.get("/m/").text)
    touch = [lk["href"] for lk in page.links if lk.get("rel") == "apple-touch-icon"]
    assert len(touch) == 1 and touch[0]
    assert _png_size(client.get(urljoin("/m/", touch[0])).content) == (180, 180)
    theme = [m["content"] for m in page.metas if m.get("name") == "theme-color"]
    assert theme == [data["theme_color"]]
    assert [lk["href"] for lk in page.links if lk.get("rel") == "manifest"] == [
        "manifest.webmanifest"]
    # the service worker keeps the icons with the shell, so an installed app opens offline
    sw = client.get("/m/sw.js").text
    for src in [i["src"] for i in data["icons"]] + touch:
        assert f'"./{src}"' in sw, src
