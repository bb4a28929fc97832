"""The OpenAPI document is self-contained: no remote $ref, every $ref resolves, it validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from spatial.ogc.openapi import broken_refs, iter_refs, load_components, local_ref, resolve

CONFIG = Path(__file__).resolve().parents[2] / "pygeoapi-config.yml"


@pytest.fixture
def document(tiny_city_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The document for the configuration, built as the app builds it, with coverage data.

    Built here rather than fetched: pygeoapi loads its document once per process, so the
    one served in a test session is whichever app came first."""
    from pygeoapi.util import yaml_load

    from spatial.ogc.coverage import RASTER_DIR_ENV
    from spatial.ogc.openapi import build_document
    from tests.api.test_coverages import write_test_rasters

    monkeypatch.setenv(RASTER_DIR_ENV, str(tmp_path))
    write_test_rasters(tmp_path)
    with CONFIG.open(encoding="utf-8") as fh:
        config = yaml_load(fh)
    return build_document(config)


def test_the_served_document_is_self_contained(client: Any) -> None:
    r = client.get("/openapi", params={"f": "json"})
    assert r.status_code == 200
    served = r.json()
    assert broken_refs(served) == []
    assert "/collections/lamp/items" in served["paths"]


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
    # unknown parameters are refused (spatial.ogc.contract): none is advertised as welcome
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
