"""``/scenarios``: what-if scenarios stored, listed, changed and compared (:mod:`spatial.whatif`).

* ``POST /scenarios`` — store one (201, ``Location``);
* ``GET /scenarios`` — the scenarios the caller may see (``limit``, ``offset``);
* ``GET /scenarios/{id}``, ``PUT /scenarios/{id}``, ``DELETE /scenarios/{id}`` —
  read; replace and delete are the owner's alone (403 for others who see it);
* ``POST /scenarios/{id}/compare`` with ``{"process": "<id>", "inputs": {...}}``
  — the process run on the stored city and with the scenario, in one
  read-only transaction, both results side by side and their ``differences``.

Every route needs a signed-in caller (401 otherwise) and runs on the caller's
connection (:func:`spatial.access.request_connection`), so row-level security
of ``onemap.scenario`` decides who sees what; a scenario the caller cannot see
is a 404 that says no more. Errors are :class:`spatial.errors.OnemapError`
answered by the application's handler.

A process is compared through the process manager the app gives
:func:`routes` (pygeoapi's), by its declaration's ``execute``: the same parse,
checks and run as ``/processes/{id}/execution``. It must take a ``scenario``
input (:class:`scenarios.processes.inputs.ScenarioInput`); nothing here
imports ``scenarios``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.contract import parse_query_string
from spatial import whatif
from spatial.access import Principal, current_principal, request_connection
from spatial.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from spatial.settings import get_settings
from spatial.wellformed import loads

LOGGER = logging.getLogger(__name__)

#: Name of the input that takes a scenario id.
SCENARIO_INPUT = "scenario"
MSG_SIGN_IN = "sign in to use what-if scenarios / 请登录后使用假设情景"
_COMPARE_KEYS = frozenset({"process", "inputs"})
#: How many added/removed feature keys a difference lists at most.
MAX_KEYS = 1000


class Manager(Protocol):
    """What the routes need of a process manager (pygeoapi's has both)."""

    processes: Mapping[str, Any]

    def get_processor(self, process_id: str) -> Any:
        """The processor of a configured process."""


def _signed_in() -> Principal:
    principal = current_principal()
    if principal.is_anonymous:
        raise AuthenticationError(MSG_SIGN_IN)
    return principal


async def _json(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, got {media[:100]!r} / 请以 JSON 提交")
    body = await request.body()  # capped by the contract middleware
    if not body.strip():
        raise InvalidInputError("request body is empty; send a JSON object / 请求体为空")
    return loads(body, "request body")


def _href(scenario_id: Any) -> str:
    return f"{get_settings().public_url.rstrip('/')}/scenarios/{scenario_id}"


def _answer(scenario: whatif.Scenario, principal: Principal, status: int = 200) -> JSONResponse:
    body = {**scenario.to_json(principal.user_id), "links": [
        {"rel": "self", "href": _href(scenario.id), "type": "application/json"},
        {"rel": "compare", "href": _href(scenario.id) + "/compare", "type": "application/json"}]}
    headers = {"Cache-Control": "no-store"}
    if status == 201:
        headers["Location"] = _href(scenario.id)
    return JSONResponse(body, status_code=status, headers=headers)


# ------------------------------------------------------------------ store


def _create(principal: Principal, draft: whatif.Draft) -> whatif.Scenario:
    with request_connection(principal) as conn:
        return whatif.create(conn, draft)


async def create(request: Request) -> Response:
    """``POST /scenarios``: store a scenario owned by the caller (201)."""
    principal = _signed_in()
    draft = whatif.parse_body(await _json(request))
    scenario = await run_in_threadpool(_create, principal, draft)
    return _answer(scenario, principal, 201)


def _page(params: Mapping[str, str]) -> tuple[int, int]:
    unknown = sorted(set(params) - {"limit", "offset", "f"})
    if unknown:
        raise InvalidInputError(f"unknown query parameter {unknown[0][:64]!r}; allowed: limit, "
                                "offset, f / 未知的查询参数")
    if params.get("f", "json") != "json":
        raise InvalidInputError("f: only json / 仅支持 json")
    out = []
    for name, default, high in (("limit", 100, 1000), ("offset", 0, 10**9)):
        raw = params.get(name, str(default))
        if not raw.isdigit() or len(raw) > 10 or not (name == "offset" or int(raw) >= 1):
            raise InvalidInputError(f"{name} must be a non-negative integer, got {raw[:32]!r} / "
                                    f"{name} 须为非负整数")
        out.append(min(int(raw), high))
    return out[0], out[1]


def _list(principal: Principal, limit: int, offset: int) -> tuple[list[whatif.Scenario], int]:
    with request_connection(principal) as conn:
        return whatif.list_scenarios(conn, limit=limit, offset=offset)


async def listing(request: Request) -> Response:
    """``GET /scenarios``: the scenarios the caller may see, last changed first."""
    principal = _signed_in()
    limit, offset = _page(parse_query_string(request.scope.get("query_string", b"")))
    found, total = await run_in_threadpool(_list, principal, limit, offset)
    return JSONResponse({
        "scenarios": [{**s.to_json(principal.user_id), "links": [
            {"rel": "self", "href": _href(s.id), "type": "application/json"}]} for s in found],
        "numberMatched": total, "numberReturned": len(found)},
        headers={"Cache-Control": "no-store"})


def _no_params(request: Request) -> None:
    params = parse_query_string(request.scope.get("query_string", b""))
    unknown = sorted(set(params) - {"f"})
    if unknown or params.get("f", "json") != "json":
        raise InvalidInputError(f"unknown query parameter {(unknown or ['f'])[0][:64]!r} / "
                                "未知的查询参数")


def _get(principal: Principal, scenario_id: str) -> whatif.Scenario:
    with request_connection(principal) as conn:
        return whatif.get(conn, scenario_id)


async def one(request: Request) -> Response:
    """``GET /scenarios/{id}``."""
    principal = _signed_in()
    _no_params(request)
    scenario = await run_in_threadpool(_get, principal, request.path_params["scenario_id"])
    return _answer(scenario, principal)


def _update(principal: Principal, scenario_id: str, draft: whatif.Draft) -> whatif.Scenario:
    with request_connection(principal) as conn:
        return whatif.update(conn, scenario_id, draft)


async def replace(request: Request) -> Response:
    """``PUT /scenarios/{id}``: replace name, description, shared and edits (owner only)."""
    principal = _signed_in()
    scenario_id = request.path_params["scenario_id"]
    whatif.scenario_uuid(scenario_id)  # a malformed id is a 404 before the body's 400
    draft = whatif.parse_body(await _json(request))
    scenario = await run_in_threadpool(_update, principal, scenario_id, draft)
    return _answer(scenario, principal)


def _delete(principal: Principal, scenario_id: str) -> None:
    with request_connection(principal) as conn:
        whatif.delete(conn, scenario_id)


async def remove(request: Request) -> Response:
    """``DELETE /scenarios/{id}`` (owner only): 204."""
    principal = _signed_in()
    await run_in_threadpool(_delete, principal, request.path_params["scenario_id"])
    return Response(status_code=204)


# ------------------------------------------------------------------ compare


def _key(feature: Mapping[str, Any], index: int) -> str:
    fid = feature.get("id")
    return str(fid) if fid is not None else f"#{index}"


def differences(base: Any, other: Any) -> dict[str, Any]:
    """What differs between one output's value on the base city and with a scenario.

    Parameters
    ----------
    base, other : object
        The output's two values: a GeoJSON FeatureCollection, a table
        (``{"columns", "rows"}``) or a summary object.

    Returns
    -------
    dict
        A feature collection: ``kind: features``, ``base``, ``scenario`` and
        ``delta`` counts, the feature keys (``id``) ``added`` and
        ``removed`` and those whose properties ``changed``. A table:
        ``kind: table`` and the row counts. A summary: ``kind: summary``,
        ``numbers`` (each shared number: ``base``, ``scenario``, ``delta``)
        and the other members that ``changed``.

    Examples
    --------
    >>> differences({"edges": 5, "mode": "walk"}, {"edges": 3, "mode": "walk"})
    {'kind': 'summary', 'numbers': {'edges': {'base': 5, 'scenario': 3, 'delta': -2}}, \
'changed': {}}
    >>> fc = lambda *ids: {"type": "FeatureCollection", "features": [
    ...     {"type": "Feature", "id": i, "properties": {}} for i in ids]}
    >>> d = differences(fc(1, 2, 3), fc(2, 3, 4))
    >>> d["base"], d["scenario"], d["delta"], d["added"], d["removed"]
    (3, 3, 0, ['4'], ['1'])
    """
    if isinstance(base, dict) and base.get("type") == "FeatureCollection" \
            and isinstance(other, dict):
        before = {_key(f, i): f for i, f in enumerate(base.get("features", []))}
        after = {_key(f, i): f for i, f in enumerate(other.get("features", []))}
        changed = sorted((k for k in before.keys() & after.keys()
                          if before[k].get("properties") != after[k].get("properties")),
                         key=_sortable)
        return {"kind": "features", "base": len(before), "scenario": len(after),
                "delta": len(after) - len(before),
                "added": sorted(after.keys() - before.keys(), key=_sortable)[:MAX_KEYS],
                "removed": sorted(before.keys() - after.keys(), key=_sortable)[:MAX_KEYS],
                "changed": changed[:MAX_KEYS]}
    if isinstance(base, dict) and "columns" in base and "rows" in base \
            and isinstance(other, dict):
        n0, n1 = len(base.get("rows", [])), len(other.get("rows", []))
        return {"kind": "table", "base": n0, "scenario": n1, "delta": n1 - n0}
    if isinstance(base, dict) and isinstance(other, dict):
        numbers: dict[str, Any] = {}
        changed_values: dict[str, Any] = {}
        for key in base.keys() | other.keys():
            a, b = base.get(key), other.get(key)
            if isinstance(a, int | float) and isinstance(b, int | float) \
                    and _number(a) and _number(b):
                delta = b - a
                numbers[key] = {"base": a, "scenario": b,
                                "delta": round(delta, 6) if isinstance(delta, float) else delta}
            elif a != b:
                changed_values[key] = {"base": a, "scenario": b}
        return {"kind": "summary", "numbers": dict(sorted(numbers.items())),
                "changed": dict(sorted(changed_values.items()))}
    return {"kind": "value", "equal": base == other}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sortable(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def parse_compare(body: Any) -> tuple[str, dict[str, Any]]:
    """``{"process": "<id>", "inputs": {...}}`` of a compare request.

    Raises
    ------
    InvalidInputError
        Naming the member that is wrong; an ``inputs.scenario`` (the path gives it).

    Examples
    --------
    >>> parse_compare({"process": "service-area", "inputs": {"x": 1}})
    ('service-area', {'x': 1})
    """
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object / 请求体须为 JSON 对象")
    if unknown := sorted(set(body) - _COMPARE_KEYS):
        raise InvalidInputError(f"{unknown[0][:64]}: unknown member; send process and inputs / "
                                "未知字段")
    process = body.get("process")
    if not isinstance(process, str) or not process:
        raise InvalidInputError("process: required, the id of a process / 必填，处理过程 id")
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise InvalidInputError("inputs: must be a JSON object / 须为 JSON 对象")
    if SCENARIO_INPUT in inputs:
        raise InvalidInputError(f"inputs.{SCENARIO_INPUT}: the scenario is the one in the path;"
                                f" leave it out / 情景由路径给出，请勿在 inputs 中重复")
    return process, dict(inputs)


def _declaration(manager: Manager, process_id: str) -> Any:
    """The declared process behind a configured process id, if it takes a scenario."""
    if process_id not in manager.processes:
        raise NotFoundError(f"process: no process {process_id[:64]!r} / 无此处理过程")
    declared = getattr(manager.get_processor(process_id), "process", None)
    takes = declared is not None and SCENARIO_INPUT in declared.describe().get("inputs", {})
    if not takes:
        raise InvalidInputError(f"process: {process_id[:64]!r} takes no what-if scenario / "
                                "该处理过程不支持假设情景")
    return declared


def _compare(principal: Principal, manager: Manager, scenario_id: str, process_id: str,
             inputs: dict[str, Any]) -> dict[str, Any]:
    declared = _declaration(manager, process_id)
    with request_connection(principal) as conn:
        scenario = whatif.get(conn, scenario_id)
        # Belt and braces: a compare reads, it never writes the stored city.
        conn.execute("SET TRANSACTION READ ONLY")

        @contextmanager
        def same() -> Iterator[psycopg.Connection[Any]]:
            yield conn

        base = declared.execute(inputs, connection=same)
        other = declared.execute({**inputs, SCENARIO_INPUT: str(scenario.id)}, connection=same)
    values = {k: v.value for k, v in base.items()}
    with_scenario = {k: v.value for k, v in other.items()}
    return {
        "process": process_id,
        "scenario": {"id": str(scenario.id), "name": scenario.name,
                     "edits": len(scenario.edits)},
        "inputs": inputs,
        "base": values,
        "with_scenario": with_scenario,
        "differences": {k: differences(values[k], with_scenario.get(k)) for k in values},
    }


def routes(manager: Manager) -> list[BaseRoute]:
    """The ``/scenarios`` routes, to be placed before pygeoapi's mount.

    Parameters
    ----------
    manager : Manager
        The process manager comparisons run processes through.
    """

    async def compare(request: Request) -> Response:
        """``POST /scenarios/{id}/compare``: base and scenario side by side."""
        principal = _signed_in()
        scenario_id = request.path_params["scenario_id"]
        whatif.scenario_uuid(scenario_id)
        process_id, inputs = parse_compare(await _json(request))
        answer = await run_in_threadpool(_compare, principal, manager, scenario_id,
                                         process_id, inputs)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return [
        Route("/scenarios", listing, methods=["GET", "HEAD"]),
        Route("/scenarios", create, methods=["POST"]),
        Route("/scenarios/{scenario_id}", one, methods=["GET", "HEAD"]),
        Route("/scenarios/{scenario_id}", replace, methods=["PUT"]),
        Route("/scenarios/{scenario_id}", remove, methods=["DELETE"]),
        Route("/scenarios/{scenario_id}/compare", compare, methods=["POST"]),
    ]


__all__ = ["Manager", "differences", "parse_compare", "routes"]
