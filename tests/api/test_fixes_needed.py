"""Each runtime fix of server.fixes is still needed: the upstream behaviour is still there.

When pygeoapi is upgraded and one of these fails, upstream has fixed that
behaviour: remove the matching rewrite from server/fixes.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pygeoapi.crs
import pyproj
import pytest

from server import fixes

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CGCS2000 = "http://www.opengis.net/def/crs/EPSG/0/4490"


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    fixes.install()


def _count_transformers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    built: list[Any] = []
    original = pyproj.Transformer.from_crs

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(pyproj.Transformer, "from_crs", counting)
    return built


def test_transform_bbox_builds_a_transformer_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _count_transformers(monkeypatch)
    box = [116.4, 39.9, 116.5, 40.0]
    upstream = [pygeoapi.crs.transform_bbox(box, CRS84, CGCS2000) for _ in range(2)]
    assert len(built) == 2  # the upstream behaviour cached_transform_bbox fixes
    built.clear()
    ours = [fixes.cached_transform_bbox(box, CRS84, CGCS2000) for _ in range(2)]
    assert len(built) == 0  # warmed by install()
    assert ours[0] == pytest.approx(upstream[0])


def test_filter_geometries_build_a_transformer_each() -> None:
    source = Path(pygeoapi.crs.__file__).read_text(encoding="utf-8")
    body = source.split("def _inplace_transform_filter_geometries", 1)[1].split("\ndef ", 1)[0]
    assert "pyproj.Transformer.from_crs(" in body
    assert pygeoapi.crs._inplace_transform_filter_geometries is fixes.transform_filter_geometries


def test_crs_transform_spec_is_silent_about_the_storage_crs() -> None:
    provider = {"storage_crs": CGCS2000, "crs": [CRS84, CGCS2000]}
    assert pygeoapi.crs.create_crs_transform_spec(provider, CGCS2000) is None
    spec = fixes.explicit_crs_transform_spec(provider, CGCS2000)
    assert spec is not None and spec.target_crs_uri == CGCS2000


def test_delete_job_answers_without_headers() -> None:
    assert fixes._ORIGINAL_DELETE_JOB is not None
    assert "return {}, http_status" in inspect.getsource(fixes._ORIGINAL_DELETE_JOB)


def test_tile_matrix_set_pages_pass_the_whole_configuration() -> None:
    import pygeoapi.api.tiles as tiles_api

    assert "render_j2_template(api.tpl_config, api.tpl_config" in inspect.getsource(tiles_api)
