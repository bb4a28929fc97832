"""The OpenAPI document is self-contained: no remote $ref, every $ref resolves, it validates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from server.openapi import (
    broken_refs,
    iter_refs,
    load_components,
    load_paths,
    local_ref,
    resolve,
)


def declared_config() -> dict[str, Any]:
    """pygeoapi's configuration, generated from the declarations as the app does."""
    from server.config import load_config
    from spatial.settings import get_settings

    return load_config(get_settings())


@pytest.fixture
def document(tiny_city_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The document for the configuration, built as the app builds it, with coverage data.

    Built here rather than fetched: pygeoapi loads its document once per process, so the
    one served in a test session is whichever app came first."""
    from server.coverage import RASTER_DIR_ENV
    from server.openapi import build_document
    from tests.api.test_coverages import write_test_rasters

    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path))
    write_test_rasters(tmp_path)
    return build_document(declared_config())


def test_the_served_document_is_self_contained(client: Any) -> None:
    r = client.get("/openapi", params={"f": "json"})
    assert r.status_code == 200
    served = r.json()
    assert broken_refs(served) == []
    assert "/collections/lamp/items" in served["paths"]
    # onemap's own routes are in the document the server serves
    assert {"/search", "/styles/{styleId}", "/collections/event/items/{featureId}/photos",
            "/auth/login", "/tiles/{themeId}/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
            } <= set(served["paths"])
    assert set(served["components"]["securitySchemes"]) == {"bearerAuth", "apiKey"}


def test_no_remote_ref_and_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = list(iter_refs(document))
    assert len(refs) > 500  # pygeoapi refers to components everywhere
    remote = sorted({r for r in refs if not r.startswith("#/")})
    assert remote == []
    assert broken_refs(document) == []
    assert "schemas.opengis.net" not in str(document)


def test_document_validates_as_openapi_3(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.0")
    validate(document)


def test_standard_responses_are_the_right_ones(document: dict[str, Any]) -> None:
    paths = document["paths"]

    def ok(path: str) -> dict[str, Any]:
        ref = paths[path]["get"]["responses"]["200"]["$ref"]
        return dict(resolve(document, ref))

    assert "confClasses" in str(ok("/conformance"))
    assert "collections" in str(ok("/collections"))
    assert "featureCollectionGeoJSON" in str(ok("/collections/lamp/items"))
    assert "featureGeoJSON" in str(ok("/collections/lamp/items/{featureId}"))
    exception = resolve(document, "#/components/schemas/exception")
    assert exception["required"] == ["code"]
    # unknown parameters are refused (server.contract): none is advertised as welcome
    assert "vendorSpecificParameters" not in str(document)


def test_coverages_are_described(document: dict[str, Any]) -> None:
    for cid in ("population_density", "terrain"):
        op = document["paths"][f"/collections/{cid}/coverage"]["get"]
        content = resolve(document, op["responses"]["200"]["$ref"])["content"]
        assert "application/tiff" in content
        names = {resolve(document, p["$ref"])["name"] if "$ref" in p else p["name"]
                 for p in op["parameters"]}
        assert {"bbox", "bbox-crs", "subset", "f"} <= names


def test_remote_refs_map_to_components_of_the_same_name() -> None:
    oapif = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
    oapip = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi"
    aliases = load_components()["aliases"]
    assert local_ref(f"{oapif}#/components/parameters/datetime") == (
        "#/components/parameters/datetime")
    assert local_ref(f"{oapip}/responses/ProcessList.yaml") == "#/components/responses/ProcessList"
    assert local_ref("https://schemas.opengis.net/cql2/1.0/cql2.json", aliases) == (
        "#/components/schemas/cql2expression")
    assert local_ref("#/components/parameters/f") == "#/components/parameters/f"
    with pytest.raises(ValueError, match="no local component"):
        local_ref("https://example.org/whatever.html")


def test_every_remote_ref_pygeoapi_can_emit_has_a_component() -> None:
    """The refs in pygeoapi's source for the APIs onemap serves (features, coverages,
    processes, tiles) all land on a component of openapi_components.yml."""
    import re

    import pygeoapi

    components = load_components()
    root = Path(pygeoapi.__file__).parent
    from pygeoapi.openapi import OPENAPI_YAML

    found = set()
    for name in ("openapi.py", "api/itemtypes.py", "api/coverages.py", "api/processes.py",
                 "api/tiles.py"):
        text = (root / name).read_text(encoding="utf-8")
        for key, tail in re.findall(r"OPENAPI_YAML\['([a-z0-9-]+)'\]\}([^\"']*)", text):
            found.add(OPENAPI_YAML[key] + tail)
    found.add(OPENAPI_YAML["oapip"] + "/schemas/exception.yaml")
    found.add(OPENAPI_YAML["cql2"])
    assert len(found) > 15
    doc = {"components": components["components"]}
    for ref in sorted(found):
        target = local_ref(ref, components["aliases"])
        assert resolve(doc, target) is not None, ref


# --- onemap's own routes (openapi_paths.yml) ----------------------------------------------------

#: Routes the document leaves out, and why. Everything else the application serves
#: beside pygeoapi's mount must be documented.
UNDOCUMENTED = {
    "/static/maplibre-gl/{path:path}": "MapLibre's own files: assets of the pages, not API",
    "/static/maplibre-gl": "308 redirect to the slash form",
    "/widget": "308 redirect to /widget/ (documented)",
    "/m": "308 redirect to /m/ (documented)",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def served_app() -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """The application's routes in front of pygeoapi's mount, and the document it serves
    (the file create_app wrote). No database needed: nothing is started."""
    from starlette.routing import Mount, Route

    from server.app import create_app
    from server.openapi import write_document
    from spatial.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for name in ("PYGEOAPI_CONFIG", "PYGEOAPI_OPENAPI", "ONEMAP_URL"):
            mp.delenv(name, raising=False)  # create_app sets them; restored afterwards
        app = create_app()
        document = yaml.safe_load(write_document(get_settings()).read_text(encoding="utf-8"))
    mounts = [r for r in app.routes if isinstance(r, Mount)]
    assert [m.path for m in mounts] == [""]  # pygeoapi at /: its routes are get_oas's part
    yield [r for r in app.routes if isinstance(r, Route)], document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                yield path, method, operation


def test_every_route_we_serve_is_documented(
        served_app: tuple[list[Any], dict[str, Any]]) -> None:
    """Walk the Starlette routes: a route added later without a description fails here."""
    routes, document = served_app
    missing = []
    for route in routes:
        if route.path in UNDOCUMENTED:
            continue
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            if not any(method.lower() in item and route.path_regex.match(path)
                       for path, item in document["paths"].items()):
                missing.append(f"{method} {route.path}")
    assert missing == []
    # the allow-list stays short and true: each entry is a route the app has
    assert set(UNDOCUMENTED) <= {r.path for r in routes}


def test_every_path_we_describe_is_served(served_app: tuple[list[Any], dict[str, Any]]) -> None:
    routes, _ = served_app
    for path, method, _operation in _operations(load_paths()):
        assert any(r.path_regex.match(path) and method.upper() in (r.methods or ())
                   for r in routes), f"{method.upper()} {path} is described but not served"


def test_our_operations_are_complete(served_app: tuple[list[Any], dict[str, Any]]) -> None:
    """Tags, an English / Chinese summary, security that names declared schemes, and
    error answers in the exception shape."""
    _, document = served_app
    schemes = set(document["components"]["securitySchemes"])
    ids = []
    for path, method, operation in _operations(load_paths()):
        where = f"{method.upper()} {path}"
        ids.append(operation["operationId"])
        assert operation["tags"], where
        english, _, chinese = operation["summary"].partition(" / ")
        assert english.isascii() and any("\u4e00" <= c <= "\u9fff" for c in chinese), where
        for requirement in operation.get("security", document["security"]):
            assert set(requirement) <= schemes, where
        for status, response in operation["responses"].items():
            response = resolve(document, response["$ref"]) if "$ref" in response else response
            if status.startswith(("4", "5")) and "health" not in str(response):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/exception"}, (where, status)
        if method == "post" or "{" in path:
            assert "400" in operation["responses"] or "404" in operation["responses"], where
    assert len(ids) == len(set(ids))
    all_ids = [op["operationId"] for _, _, op in _operations(document) if "operationId" in op]
    assert len(all_ids) == len(set(all_ids))  # none of ours repeats one of pygeoapi's


def test_enums_are_what_the_code_accepts() -> None:
    """The values the description lists are the ones the routes take."""
    from spatial import photos, search
    from spatial.settings import get_settings
    from spatial.styles import StyleCatalog
    from tiles import tms
    from tiles.spec import load_spec

    own = load_paths()
    params = own["components"]["parameters"]
    schemas = own["components"]["schemas"]
    settings = get_settings()
    spec = load_spec(settings.layers_dir / "tiles.yml", settings.layers_dir / "themes.yml",
                     settings.config_path)
    assert schemas["themeName"]["enum"] == list(spec.themes)
    assert params["tiledCollectionId"]["schema"]["enum"] == list(spec.layers)
    assert params["servedTileMatrixSetId"]["schema"]["enum"] == list(tms.TMS_IDS)
    assert sorted(params["styleId"]["schema"]["enum"]) == sorted(
        StyleCatalog(settings.root / "styles").ids)
    assert schemas["photoMediaType"]["enum"] == list(photos.MEDIA_TYPES)
    upload = own["paths"]["/collections/event/items/{featureId}/photos"]["post"]
    body = upload["requestBody"]["content"]
    assert list(body) == list(photos.MEDIA_TYPES)
    assert {c["schema"]["maxLength"] for c in body.values()} == {photos.MAX_BYTES}
    assert set(upload["responses"]) == {"200", "201", "400", "401", "403", "404", "413", "415"}
    query = {p["name"]: p for p in own["paths"]["/search"]["get"]["parameters"] if "name" in p}
    assert set(query) | {"f"} == set(search.PARAMETERS)
    assert query["limit"]["schema"]["maximum"] == search.MAX_LIMIT
    assert query["limit"]["schema"]["default"] == search.DEFAULT_LIMIT
    assert query["q"]["schema"]["maxLength"] == search.MAX_QUERY


def test_the_cached_file_name_follows_the_described_routes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing openapi_paths.yml names a new cached document (no stale one is served)."""
    from server import openapi
    from spatial.settings import get_settings

    config = declared_config()
    settings = get_settings()
    before = openapi.document_digest(settings, config, [])
    text = openapi._paths_text()
    assert openapi.document_digest(settings, config, []) == before
    monkeypatch.setattr(openapi, "_paths_text", lambda: text + "\n# edited\n")
    assert openapi.document_digest(settings, config, []) != before


ANSWERS = [  # (method, path and query, body): the status must be one the document lists
    ("GET", "/health", None), ("GET", "/styles", None), ("GET", "/styles?x=1", None),
    ("GET", "/styles/base", None), ("GET", "/styles/nope", None),
    ("GET", "/styles/base/legend", None), ("GET", "/fonts/DejaVu%20Sans/1-255.pbf", None),
    ("GET", "/search?q=%E4%B8%89", None), ("GET", "/search", None),
    ("GET", "/tiles", None), ("GET", "/tiles/nope", None),
    ("GET", "/tiles/base/WebMercatorQuad/tilejson.json", None),
    ("GET", "/tiles/base/WebMercatorQuad/x/0/0", None),
    ("GET", "/collections/resident/tiles/WebMercatorQuad", None),
    ("GET", "/tileMatrixSets/Nope", None), ("GET", "/basemaps/amap/1/1/1.png", None),
    ("GET", "/auth/me", None), ("GET", "/auth/login-log", None),
    ("POST", "/auth/login", b"[]"), ("POST", "/auth/logout", None),
    ("GET", "/collections/event/items/abc/photos", None),
    ("GET", "/collections/event/items/1/photos/2", None),
    ("POST", "/collections/event/items/1/photos", b"GIF89a"),
]


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    import re

    for template, item in document["paths"].items():
        pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", pattern), path) and method.lower() in item:
            return dict(item[method.lower()])
    raise AssertionError(f"{method} {path} matches no documented operation")


def test_answers_are_documented(client: Any) -> None:
    """Real answers of our routes, good and bad, are among the statuses the document lists."""
    document = client.get("/openapi", params={"f": "json"}).json()
    seen = set()
    for method, target, body in ANSWERS:
        r = client.request(method, target, content=body)
        path = target.partition("?")[0].replace("%20", " ")
        operation = _operation(document, method, path)
        assert str(r.status_code) in operation["responses"], (method, target, r.status_code)
        seen.add(r.status_code)
    assert {200, 400, 401, 404} <= seen
