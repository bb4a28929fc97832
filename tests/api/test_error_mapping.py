"""One error, one answer: every OnemapError gets the same status and OGC code on every route.

Each subclass of :class:`spatial.errors.OnemapError` is raised under each surface —
the streaming features path (server.items), pygeoapi's features path through
the provider (server.provider), the tiles (tiles.web), a process execution
through pygeoapi and the job manager (server.manager) and a plain route of
ours (/search) — and the answer must carry the status and code of
:data:`spatial.errors.ERROR_ANSWERS`.

Not covered on purpose: ``/jobs/{id}`` of a job that does not exist answers
pygeoapi's ``NoSuchJob``, the exception OGC API Processes requires there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import spatial.jobs
import spatial.photos
from spatial.errors import ERROR_ANSWERS, NamedInputError, OnemapError, error_answer


def _all_subclasses(cls: type[OnemapError]) -> list[type[OnemapError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _all_subclasses(sub)
    return found


assert spatial.jobs and spatial.photos  # their subclasses are defined when imported
ERRORS = sorted({c for c in _all_subclasses(OnemapError) if c.__module__.startswith("spatial")},
                key=lambda c: c.__name__)


def _raiser(error: OnemapError) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


def _async_raiser(error: OnemapError) -> Callable[..., Any]:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


#: surface → (what to patch, how, the request).
SURFACES: dict[str, tuple[str, bool, str, str]] = {
    "features (streaming)": ("server.items.check_can_read", False, "GET",
                             "/collections/lamp/items?f=json&limit=1"),
    "features (pygeoapi provider)": ("server.provider.get_feature", False, "GET",
                                     "/collections/lamp/items/1?f=json"),
    "tiles": ("tiles.render.render", True, "GET",
              "/collections/lamp/tiles/WebMercatorQuad/13/3103/6746"),
    "processes": ("server.manager.validate_for", False, "POST",
                  "/processes/locate/execution"),
    "plain route": ("server.search._search", False, "GET", "/search?q=lamp"),
}


def test_the_table_covers_every_error() -> None:
    assert OnemapError in ERROR_ANSWERS
    for cls in ERRORS:
        status, code = error_answer(cls)
        assert 400 <= status < 600 and code, cls


@pytest.mark.parametrize("surface", list(SURFACES))
def test_same_error_same_answer_on_every_surface(
        client: Any, monkeypatch: pytest.MonkeyPatch, surface: str) -> None:
    target, is_async, method, path = SURFACES[surface]
    module_name, _, attribute = target.rpartition(".")
    module = __import__(module_name, fromlist=[attribute])
    seen: dict[str, tuple[int, str]] = {}
    for n, cls in enumerate(ERRORS):
        reason = f"refused on purpose ({cls.__name__})"
        error = cls("input", reason) if issubclass(cls, NamedInputError) else cls(reason)
        monkeypatch.setattr(module, attribute,
                            (_async_raiser if is_async else _raiser)(error))
        # a window of its own each time: a cached tile would not reach the renderer
        url = path if surface != "tiles" else f"{path}?datetime=2001-01-{n + 1:02d}"
        if method == "POST":
            r = client.post(url, json={"inputs": {"x": 116.4, "y": 39.9}})
        else:
            r = client.get(url)
        body = r.json()
        seen[cls.__name__] = (r.status_code, body.get("code"))
        assert (r.status_code, body.get("code")) == error_answer(cls), (surface, cls, r.text)
        assert body.get("description") == str(error), (surface, cls, r.text)
        if r.status_code == 401:  # pygeoapi's own answers too (ChallengeMiddleware)
            assert r.headers["www-authenticate"] == 'Bearer realm="onemap"', (surface, cls)
    assert len(seen) == len(ERRORS)
