"""pygeoapi's HTML pages without a CDN: every asset from the server itself.

pygeoapi's templates load Bootstrap, Leaflet and its plugins, Swagger UI and
ReDoc from unpkg, cdnjs and jsDelivr; on an intranet the pages break. onemap's
templates (``web/templates``, ``server.templates.path``) load them from
``/static/vendor/`` (``server/web.py``, ``web/package.json``).

For a sample of pages: every ``src`` and every ``<link>`` that loads something
(stylesheet, icon, preload …) names the server's own origin, and answers 200.
Other references (``<a href>``, ``<link rel="about">``) may name another host
only when it is an identifier (``www.opengis.net``, CRS and conformance URIs)
or a URL of the configuration's metadata (license, provider, contact): those
are data the operator writes, not assets.

The Leaflet maps of the collection, items and item pages draw only the server's
own base map (``server.map``, :func:`spatial.basemap.leaflet_base_map`): the AMap
proxy with ``ONEMAP_AMAP=1``, otherwise none; their scripts name no other host.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import yaml

#: Pages pygeoapi renders for onemap, one per template in use.
PAGES = [
    "/?f=html",
    "/collections?f=html",
    "/collections/building?f=html",
    "/collections/building/items?f=html&limit=3",
    "/collections/building/queryables?f=html",
    "/collections/terrain?f=html",
    "/collections/terrain/coverage?f=html",
    "/processes?f=html",
    "/jobs?f=html",
    "/conformance?f=html",
    "/openapi?f=html",
    "/openapi?f=html&ui=redoc",
]
#: The pages with a Leaflet map (``{item}``: a building's page, its id found at run time).
MAP_PAGES = ["/collections/building?f=html", "/collections/building/items?f=html&limit=3",
             "{item}"]
#: A URL in a page's text (scripts included).
URL = re.compile(r"""https?://[^\s'"<>\\)]+""")
#: A ``<link>`` of these relations loads something into the page.
LOADING_RELS = {"stylesheet", "icon", "shortcut", "preload", "modulepreload", "manifest",
                "apple-touch-icon", "prefetch"}
#: Hosts of identifiers, not of anything loaded.
IDENTIFIER_HOSTS = {"www.opengis.net"}


class References(HTMLParser):
    """Collects ``(kind, url)``: ``asset`` for what a page loads, ``link`` for the rest;
    and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        self._in_script = tag == "script"
        if "src" in values:
            self.found.append(("asset", values["src"]))
        if "href" in values:
            rels = set((values.get("rel") or "").lower().split())
            loads = tag == "link" and bool(rels & LOADING_RELS)
            self.found.append(("asset" if loads else "link", values["href"]))


def references(html: str) -> list[tuple[str, str]]:
    parser = References()
    parser.feed(html)
    return parser.found


def script_urls(html: str) -> list[str]:
    """Every http(s) URL the page's inline scripts name (tile templates included)."""
    parser = References()
    parser.feed(html)
    return [m.group(0) for text in parser.scripts for m in URL.finditer(text)]


def metadata_urls() -> set[str]:
    """The URLs the configuration's metadata names (license, provider, contact …)."""
    from spatial.settings import get_settings

    config = yaml.safe_load(get_settings().config_path.read_text(encoding="utf-8"))
    out: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            out.add(value)

    walk(config["metadata"])
    return out


@pytest.fixture(scope="module")
def pages(tiny_template_db: str, server_conninfo: str) -> Iterator[dict[str, Any]]:
    """Each sample page's status, text and base URL, and the server's origin,
    from one application start on the tiny city."""
    from starlette.testclient import TestClient

    from server.app import create_app
    from spatial.db import close_pools
    from tests.conftest import create_database, drop_database

    # a clone of its own: a connection to the template would stop other tests cloning it
    name = f"onemap_landing_{uuid.uuid4().hex[:10]}"
    info = create_database(server_conninfo, name, template=tiny_template_db)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", info)
        with TestClient(create_app()) as client:
            origin = urlsplit(next(link["href"] for link in client.get("/?f=json").json()["links"]
                                   if link["rel"] == "self"))
            item = client.get("/collections/building/items?f=json&limit=1").json()
            answers = {path: client.get(path) for path in PAGES}
            answers["{item}"] = client.get(
                f"/collections/building/items/{item['features'][0]['id']}?f=html")
            served: dict[str, int] = {}
            for path, response in answers.items():
                for kind, ref in references(response.text):
                    url = urlsplit(urljoin(f"{origin.scheme}://{origin.netloc}{path}", ref))
                    if kind == "asset" and url.netloc == origin.netloc:
                        local = url.path + (f"?{url.query}" if url.query else "")
                        if local not in served:
                            served[local] = client.get(local).status_code
        close_pools()
    drop_database(server_conninfo, name)
    yield {"answers": answers, "origin": origin.netloc, "served": served,
           "item": item["features"][0]}


@pytest.mark.parametrize("path", PAGES)
def test_a_page_loads_nothing_from_another_host(pages: dict[str, Any], path: str) -> None:
    response = pages["answers"][path]
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    allowed_links = metadata_urls()
    foreign = []
    for kind, ref in references(response.text):
        url = urlsplit(ref)
        if url.scheme not in ("http", "https") or url.netloc == pages["origin"]:
            continue
        if kind == "link" and (url.netloc in IDENTIFIER_HOSTS or ref in allowed_links):
            continue
        foreign.append((kind, ref))
    assert foreign == []
    for cdn in ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "fonts.googleapis.com"):
        assert cdn not in response.text, cdn


@pytest.mark.parametrize("path", MAP_PAGES)
def test_a_map_page_draws_no_tiles_from_another_host(pages: dict[str, Any], path: str) -> None:
    """No OpenStreetMap (nor any host but the server) in the scripts of a Leaflet page:
    without ONEMAP_AMAP there is no base map at all, the features on a plain background."""
    response = pages["answers"][path]
    assert response.status_code == 200, response.text[:500]
    assert "L.map(" in response.text  # the page has its map
    urls = script_urls(response.text)
    assert [u for u in urls if urlsplit(u).netloc != pages["origin"]] == []
    assert "openstreetmap" not in response.text.lower()
    assert "L.TileLayer(" not in response.text  # no base map without ONEMAP_AMAP


def test_with_amap_the_map_pages_draw_the_servers_amap_proxy(
        tiny_city_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from server.app import create_app

    monkeypatch.setenv("ONEMAP_AMAP", "1")
    with TestClient(create_app()) as client:
        origin = urlsplit(next(link["href"] for link in client.get("/?f=json").json()["links"]
                               if link["rel"] == "self"))
        fid = client.get("/collections/building/items?f=json&limit=1").json()["features"][0]["id"]
        for path in ("/collections/building?f=html", "/collections/building/items?f=html&limit=3",
                     f"/collections/building/items/{fid}?f=html"):
            text = client.get(path).text
            tiles = [u for u in script_urls(text) if "{z}" in u]
            assert tiles == [f"{origin.scheme}://{origin.netloc}/basemaps/amap/{{z}}/{{x}}/{{y}}.png"
                             ], (path, tiles)
            assert [u for u in script_urls(text) if urlsplit(u).netloc != origin.netloc] == []
            assert "高德地图" in text, path  # its attribution
    monkeypatch.delenv("ONEMAP_AMAP")
    with TestClient(create_app()) as client:  # set per app: gone again without it
        assert "L.TileLayer(" not in client.get("/collections/building?f=html").text


def test_an_item_page_opens_its_feature_in_the_widget(pages: dict[str, Any]) -> None:
    """在一张图中查看 / Open in the one map: the widget, in a theme drawing buildings,
    opens the record (the page's script adds its centre)."""
    text = pages["answers"]["{item}"].text
    links = [ref for _, ref in references(text) if "/widget/?" in ref]
    assert len(links) == 1, links
    url = urlsplit(links[0])
    assert url.netloc == pages["origin"] and url.path == "/widget/"
    query = dict(pair.split("=", 1) for pair in url.query.split("&"))
    assert query["theme"] == "grid_management"
    assert query["record"] == f"building/{pages['item']['id']}"
    assert query["lang"] in ("zh", "en")
    assert ("在一张图中查看" in text) or ("Open in the one map" in text)


def test_the_local_assets_answer(pages: dict[str, Any]) -> None:
    served = pages["served"]
    vendor = {p for p in served if p.startswith("/static/vendor/")}
    assert {"/static/vendor/bootstrap/css/bootstrap.min.css",
            "/static/vendor/leaflet/leaflet.js",
            "/static/vendor/swagger-ui/swagger-ui-bundle.js"} <= vendor
    assert {p: s for p, s in served.items() if s != 200} == {}


def test_the_landing_page_leads_to_the_widget_mobile_map_and_api(pages: dict[str, Any]) -> None:
    text = pages["answers"]["/?f=html"].text
    hrefs = {urlsplit(ref).path + (f"?{urlsplit(ref).query}" if urlsplit(ref).query else "")
             for _, ref in references(text)}
    assert {"/widget/", "/m/", "/openapi?f=html", "/collections?f=html"} <= hrefs
    for words in ("地图组件", "Map widget", "网格员移动端", "Mobile map", "接口文档",
                  "API (OpenAPI)"):
        assert words in text


def test_vendor_files_outside_the_packages_are_not_served(client: Any) -> None:
    assert client.get("/static/vendor/bootstrap/css/bootstrap.min.css").status_code == 200
    for path in ("/static/vendor/playwright-core/package.json",
                 "/static/vendor/bootstrap/%2e%2e/%2e%2e/package.json",
                 "/static/vendor/bootstrap", "/static/vendor/nothing/x.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "NotFound"


def test_tile_matrix_set_pages_load_nothing_from_a_cdn(client: Any) -> None:
    for path in ("/TileMatrixSets?f=html", "/TileMatrixSets/WebMercatorQuad?f=html"):
        text = client.get(path).text
        assert "unpkg.com" not in text and "cdnjs.cloudflare.com" not in text, path
