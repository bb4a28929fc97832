"""The error contract of the OGC API: bad input is a 4xx naming the problem.

pygeoapi silently ignores query parameters it does not know (``?lmit=5`` gives
the default page, not an error), answers some malformed values 500 (a bbox of
three numbers on a coverage, an offset beyond 64 bits) and fails on a request
body that is not UTF-8. This module states what a request may carry:

* :func:`check_query_params` — the parameter names each kind of resource
  accepts (OGC API Features Parts 1–3, Coverages, Processes, pygeoapi's
  ``f``/``lang``), plus a collection's property names on ``items``;
* :func:`check_query_values` — the format of the standard parameters
  (``limit``, ``offset``, ``skipGeometry`` …; ``bbox`` and ``datetime`` by
  :mod:`spatial.params`, the one reading every route shares);
* :func:`check_body` — a JSON request body must be UTF-8, well-formed strict
  JSON (:func:`spatial.wellformed.loads`: no ``NaN``/``Infinity``, nesting at
  most :data:`~spatial.wellformed.MAX_JSON_DEPTH` levels, no NUL or lone
  surrogate in a string or key) and an object; a body a route needs
  (:data:`BODY_NEEDED`) must not be empty;
* :func:`query_pairs` — on every route, the query string must be UTF-8 and
  hold no NUL (:func:`parse_query_string` adds: no parameter repeated);
* :class:`ContractMiddleware` — applies them to every request before pygeoapi
  sees it and answers an OGC exception document (``{"code", "type",
  "description"}``) with the status and code of
  :data:`spatial.errors.ERROR_ANSWERS`: 400 ``InvalidParameterValue`` for a
  query, 400 ``OperationParsingFailed`` for a body it cannot read
  (:class:`~spatial.errors.MalformedBodyError`), 413 or 415.

Only bodies it checks are read: JSON (or no ``Content-Type``) and ``text/*``,
at most :func:`json_body_cap` bytes (``ONEMAP_MAX_JSON_BYTES``, default
16 MiB), else 413. Any other body — an event photo's image bytes — streams
through unread to the route, which enforces its own cap.

A huge ``limit`` is not an error: OGC API Features lets a server clamp it, and
pygeoapi clamps it at ``server.limits.max_items`` (10,000), saying so through
``numberReturned`` and the ``next`` link. A ``limit`` that is not a positive
integer is a 400.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.problems import error_response
from spatial.errors import (
    InvalidInputError,
    MalformedBodyError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    http_status,
)
from spatial.params import parse_bbox, parse_datetime
from spatial.settings import Settings
from spatial.wellformed import bad_character, check_text, loads

LOGGER = logging.getLogger(__name__)

#: Accepted on every resource: output format and language (pygeoapi).
COMMON = frozenset({"f", "lang"})
#: Features Part 1 core, Part 2 CRS, Part 3 filtering and pygeoapi's extras.
ITEMS = COMMON | {
    "bbox", "bbox-crs", "crs", "datetime", "limit", "offset", "resulttype",
    "properties", "skipGeometry", "sortby", "q",
    "filter", "filter-lang", "filter-crs",
    "cursor",  # keyset paging of the streaming GeoJSON path (server.items)
}
#: The parameters of each kind of resource; ``items`` also takes property names.
ALLOWED: dict[str, frozenset[str]] = {
    "landing": COMMON,
    "conformance": COMMON,
    "openapi": COMMON | {"ui"},
    "collections": COMMON,
    "collection": COMMON,
    "items": ITEMS,
    "item": COMMON | {"crs"},
    "queryables": COMMON | {"properties", "profile"},
    "schema": COMMON,
    "coverage": COMMON | {"bbox", "bbox-crs", "datetime", "subset", "properties"},
    "processes": COMMON | {"limit"},
    "process": COMMON,
    "jobs": COMMON | {"limit", "offset"},
    "job": COMMON,
    "results": COMMON,
    "tiles": COMMON | {"datetime"},  # tilesets, TileJSON and tiles (tiles/web.py)
    "tilematrixsets": COMMON,
}

_SEG = r"([^/]+)"
#: Path → kind of resource; the first group, when present, is the collection.
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(f"^{pattern}$"), kind) for pattern, kind in (
        ("", "landing"),
        ("/conformance", "conformance"),
        ("/openapi", "openapi"),
        ("/collections", "collections"),
        (f"/collections/{_SEG}", "collection"),
        (f"/collections/{_SEG}/items", "items"),
        (f"/collections/{_SEG}/items/[^/]+", "item"),
        (f"/collections/{_SEG}/queryables", "queryables"),
        (f"/collections/{_SEG}/schema", "schema"),
        (f"/collections/{_SEG}/coverage", "coverage"),
        (f"/collections/{_SEG}/tiles(?:/.*)?", "tiles"),
        ("/tiles(?:/.*)?", "tiles"),
        ("/tileMatrixSets(?:/.*)?", "tilematrixsets"),
        ("/processes", "processes"),
        (f"/processes/{_SEG}", "process"),
        ("/jobs", "jobs"),
        ("/jobs/[^/]+", "job"),
        ("/jobs/[^/]+/results", "results"),
    )
)

#: Requests that need a body: method, path, and what the body should be (for the
#: message when it is empty). pygeoapi answers an empty body on some of these
#: vaguely, and a ``POST …/items`` without ``Content-Type`` with a 500.
BODY_NEEDED: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(f"^{pattern}/?$"), what) for method, pattern, what in (
        ("POST", f"/collections/{_SEG}/items",
         "a GeoJSON feature (Content-Type: application/geo+json) to create, "
         "or a CQL2 JSON filter (application/query-cql-json) to search"),
        ("PUT", f"/collections/{_SEG}/items/[^/]+",
         "a GeoJSON feature (Content-Type: application/geo+json)"),
        ("POST", f"/processes/{_SEG}/execution",
         'an execute request, {"inputs": {...}} (Content-Type: application/json)'),
    )
)
_ITEMS_POST = BODY_NEEDED[0][1]
_EXECUTION = BODY_NEEDED[2][1]

#: ``offset`` goes to PostgreSQL as a bigint.
MAX_OFFSET = 2**63 - 1
_TRUE_FALSE = frozenset({"true", "false", "1", "0", "yes", "no"})
_SORT_KEY = re.compile(r"^[+-]?[^\W\d]\w*$")
#: application/json, application/geo+json, application/query-cql-json, text/json …
_JSON_TYPES = re.compile(r"^(application|text)/([a-z0-9.+-]*[+-])?json$")
_ZH = " / 请求参数有误"
#: Environment variable capping the JSON/text bodies the middleware reads.
JSON_CAP_ENV = "ONEMAP_MAX_JSON_BYTES"
#: Default cap: 16 MiB. Part 4 writes one feature per request; a polygon of
#: 100,000 vertices at full float precision is 4.1 MB of GeoJSON, the
#: synthetic city's largest feature (a land-use polygon) 20 kB.
DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024


def classify(path: str) -> tuple[str, str | None] | None:
    """The kind of OGC API resource a path names, and its collection.

    Parameters
    ----------
    path : str
        The request path (a trailing slash is ignored).

    Returns
    -------
    tuple or None
        ``(kind, collection id or None)``, None for paths that are not OGC API
        resources (``/health``, ``/auth/...``, static files).

    Examples
    --------
    >>> classify("/collections/lamp/items")
    ('items', 'lamp')
    >>> classify("/jobs/abc/results")
    ('results', None)
    >>> classify("/health") is None
    True
    """
    path = path.rstrip("/")
    for pattern, kind in ROUTES:
        match = pattern.match(path)
        if match:
            cid = urllib.parse.unquote(match.group(1)) if match.groups() else None
            return kind, cid
    return None


def check_query_params(kind: str, params: Mapping[str, str],
                       queryables: Collection[str] = ()) -> None:
    """Refuse query parameters a kind of resource does not know.

    Parameters
    ----------
    kind : str
        One of :data:`ALLOWED` (``"items"``, ``"coverage"``, ``"processes"`` …).
    params : mapping
        Parameter names (values are not looked at).
    queryables : collection of str
        The collection's property names, accepted as equality filters on
        ``items`` (``?status=fault``).

    Raises
    ------
    InvalidInputError
        Naming the first unknown parameter (in sorted order) and what is accepted.
    ValueError
        For an unknown ``kind`` (a programmer error).

    Examples
    --------
    >>> check_query_params("items", {"limit": "5", "status": "fault"}, {"status"})
    >>> check_query_params("items", {"lmit": "5"})
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: unknown query parameter 'lmit' for items; accepted: \
bbox, bbox-crs, crs, cursor, datetime, f, filter, filter-crs, filter-lang, lang, limit, offset, \
properties, q, resulttype, skipGeometry, sortby and the collection's properties / 请求参数有误
    """
    try:
        allowed = ALLOWED[kind]
    except KeyError:
        raise ValueError(f"unknown kind of resource {kind!r}; known: {sorted(ALLOWED)}") from None
    extra = set(queryables) if kind == "items" else set()
    unknown = sorted(name for name in params if name not in allowed and name not in extra)
    if unknown:
        accepted = ", ".join(sorted(allowed))
        if kind == "items":
            accepted += " and the collection's properties"
        raise InvalidInputError(
            f"unknown query parameter {unknown[0]!r} for {kind}; accepted: {accepted}{_ZH}")


def _integer(name: str, value: str, low: int, high: int) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}{_ZH}")
    number = int(text)
    if not low <= number <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value!r}{_ZH}")
    return number


def check_query_values(kind: str, params: Mapping[str, str]) -> None:
    """Check the format of the standard parameters a request carries.

    Parameters
    ----------
    kind : str
        The kind of resource (see :data:`ALLOWED`); only parameters it accepts
        are looked at.
    params : mapping
        Parameter names and values.

    Raises
    ------
    InvalidInputError
        Naming the parameter and what was wrong with its value.

    Examples
    --------
    >>> check_query_values("items", {"limit": "100000", "offset": "0"})
    >>> check_query_values("items", {"limit": "ten"})
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: limit must be an integer, got 'ten' / 请求参数有误
    """
    if "limit" in params:
        # A limit above the server's maximum is clamped, not refused (OGC allows either).
        _integer("limit", params["limit"], 1, MAX_OFFSET)
    if "offset" in params:
        _integer("offset", params["offset"], 0, MAX_OFFSET)
    if "bbox" in params:
        parse_bbox(params["bbox"], params.get("bbox-crs"))
    if "datetime" in params:
        parse_datetime(params["datetime"])
    if "skipGeometry" in params and params["skipGeometry"].strip().lower() not in _TRUE_FALSE:
        raise InvalidInputError(
            f"skipGeometry must be true or false, got {params['skipGeometry']!r}{_ZH}")
    if "resulttype" in params and params["resulttype"] not in ("results", "hits"):
        raise InvalidInputError(
            f"resulttype must be results or hits, got {params['resulttype']!r}{_ZH}")
    if "filter" in params and not params["filter"].strip():
        raise InvalidInputError(f"filter is empty{_ZH}")
    for name in ("bbox-crs", "crs", "filter-crs", "filter-lang", "sortby", "properties",
                 "subset"):
        if name in params and not params[name].strip():
            raise InvalidInputError(f"{name} is empty{_ZH}")
    if "sortby" in params:
        for entry in params["sortby"].split(","):
            if not _SORT_KEY.match(entry.strip()):
                raise InvalidInputError(
                    f"sortby needs property names, each optionally prefixed + or -, "
                    f"got {entry.strip()!r} in {params['sortby']!r}{_ZH}")
    if "properties" in params and not all(p.strip() for p in params["properties"].split(",")):
        raise InvalidInputError(
            f"properties has an empty name: {params['properties']!r}{_ZH}")
    if kind == "items" and "filter" in params:
        lang = params.get("filter-lang", "cql2-text")
        if lang in ("cql2-text", "cql2-json"):  # others: pygeoapi names the language
            from spatial.cql import parse_filter

            parse_filter(params["filter"], lang)  # the parser's reason, not "Bad CQL text"


def json_body_cap() -> int:
    """The most bytes of a JSON or text request body the API reads.

    Returns
    -------
    int
        ``ONEMAP_MAX_JSON_BYTES`` when it is a positive integer, else
        :data:`DEFAULT_MAX_JSON_BYTES` (a bad value is logged).

    Examples
    --------
    >>> json_body_cap() >= 1
    True
    >>> DEFAULT_MAX_JSON_BYTES // 2**20  # MiB
    16
    """
    raw = os.environ.get(JSON_CAP_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_JSON_BYTES
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    LOGGER.warning("%s=%r is not a positive integer; using %d", JSON_CAP_ENV, raw,
                   DEFAULT_MAX_JSON_BYTES)
    return DEFAULT_MAX_JSON_BYTES


def body_is_checked(content_type: str | None) -> bool:
    """Whether the contract reads a body of this type (JSON, none, or text).

    Examples
    --------
    >>> [body_is_checked(t) for t in (None, "application/geo+json", "text/plain",
    ...                               "image/jpeg", "application/octet-stream")]
    [True, True, True, False, False]
    """
    media = (content_type or "").split(";")[0].strip().lower()
    return not media or bool(_JSON_TYPES.match(media)) or media.startswith("text/")


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None, cap: int,
                      too_large: Callable[[str], Exception]) -> bytes:
    """A request body read as it streams, refusing more than ``cap`` bytes.

    A declared ``Content-Length`` over the cap is refused before a byte is
    read; a chunked (or mis-declared) body as soon as what arrived passes the
    cap, the rest never read. ``too_large(size)`` makes the error (``size``:
    the declared length, or "more than <cap>").

    Examples
    --------
    >>> import asyncio
    >>> async def parts():
    ...     for _ in range(3):
    ...         yield b"abcd"
    >>> asyncio.run(read_capped(parts(), None, 12, ValueError))
    b'abcdabcdabcd'
    >>> asyncio.run(read_capped(parts(), None, 10, ValueError))
    Traceback (most recent call last):
    ...
    ValueError: more than 10
    """
    if declared and declared.isdigit() and int(declared) > cap:
        raise too_large(declared)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise too_large(f"more than {cap}")
        parts.append(chunk)
    return b"".join(parts)


def _too_large(size: str, cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body has {size} bytes, at most {cap} are accepted for JSON or text"
        f" ({JSON_CAP_ENV}) / 请求体过大"
    )


def body_needed(method: str, path: str) -> str | None:
    """What the body of a request must be, when the route needs one (:data:`BODY_NEEDED`).

    Examples
    --------
    >>> body_needed("PUT", "/collections/event/items/7")
    'a GeoJSON feature (Content-Type: application/geo+json)'
    >>> body_needed("POST", "/auth/logout") is None
    True
    """
    for wanted, pattern, what in BODY_NEEDED:
        if method == wanted and pattern.match(path):
            return what
    return None


def _kind_of_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def check_body(body: bytes, content_type: str | None, *,
               needed: str | None = None) -> dict[str, Any] | None:
    """A JSON request body must be UTF-8, strict well-formed JSON and an object.

    Parameters
    ----------
    body : bytes
        The request body.
    content_type : str or None
        The ``Content-Type`` header; a missing one counts as JSON (pygeoapi
        reads every body it takes as JSON), ``text/*`` must be UTF-8, other
        types are not looked at.
    needed : str, optional
        What the route needs the body to be (:func:`body_needed`); an empty
        body (or only white space) is then refused naming it. Without it an
        empty body is left to the endpoint.

    Returns
    -------
    dict or None
        The decoded object of a JSON body; None for an empty or a text body.

    Raises
    ------
    InvalidInputError
        Saying the body is empty, not UTF-8 (and where), where the JSON
        breaks, that it is nested deeper than
        :data:`~spatial.wellformed.MAX_JSON_DEPTH`, holds ``NaN``/``Infinity``
        or NUL or a lone surrogate (and where), or is not an object.

    Examples
    --------
    >>> check_body(b'{"op": "=", "args": [1, 1]}', "application/json")
    {'op': '=', 'args': [1, 1]}
    >>> check_body(b'{"op": ', "application/json")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body is not valid JSON: Expecting value at \
line 1 column 8 / 请求体不是合法的 JSON
    >>> check_body(b"[1, 2, 3]", None)
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body must be a JSON object, got an array \
/ 请求体须为 JSON 对象
    >>> check_body(b"", None, needed="a GeoJSON feature")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body is empty; this request needs a GeoJSON \
feature / 请求体为空
    """
    if not body.strip():
        if needed is not None:
            raise InvalidInputError(f"request body is empty; this request needs {needed}"
                                    " / 请求体为空")
        return None
    media = (content_type or "").split(";")[0].strip().lower()
    is_json = not media or bool(_JSON_TYPES.match(media))
    if not is_json and not media.startswith("text/"):
        return None
    if is_json:
        value = loads(body, "request body")
        if not isinstance(value, dict):
            raise InvalidInputError(
                f"request body must be a JSON object, got {_kind_of_value(value)}"
                " / 请求体须为 JSON 对象")
        return value
    # Text is only decoded: what it may hold is the route's to say (the photo
    # route answers a text body 415, whatever its characters).
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"request body is not UTF-8 (byte {exc.start}) / 请求体不是 UTF-8 编码") from None
    return None


#: Members of an OGC API Processes 1.0 execute request whose shape pygeoapi
#: assumes (``subscriber['successUri']`` on a list is a TypeError → 500); the
#: inputs are :func:`server.manager.validate_inputs`'s.
_EXECUTE_MEMBERS: dict[str, type] = {"outputs": dict, "subscriber": dict}
_EXECUTE_RESPONSES = ("raw", "document")
_SUBSCRIBER_URIS = ("successUri", "inProgressUri", "failedUri")


def check_execute_request(document: Mapping[str, Any]) -> None:
    """The members of an execute request are of the kinds OGC API Processes states.

    ``outputs`` and ``subscriber`` are objects, each output an object,
    ``response`` is ``raw`` or ``document``, the subscriber's ``successUri``
    (required) and ``inProgressUri``/``failedUri`` are strings. The inputs are
    the process's to check
    (:func:`server.manager.validate_inputs`).

    Raises
    ------
    InvalidInputError
        Naming the member and what it was.

    Examples
    --------
    >>> check_execute_request({"inputs": {"x": 1}, "response": "document"})
    >>> check_execute_request({"subscriber": [None]})
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: execute request: 'subscriber' must be an object, \
got an array / 请求体有误
    """
    def refuse(what: str) -> InvalidInputError:
        return InvalidInputError(f"execute request: {what} / 请求体有误")

    for name, kind in _EXECUTE_MEMBERS.items():
        value = document.get(name)
        if value is not None and not isinstance(value, kind):
            raise refuse(f"{name!r} must be an object, got {_kind_of_value(value)}")
    for output, spec in (document.get("outputs") or {}).items():
        if not isinstance(spec, dict):
            raise refuse(f"output {output!r} must be an object, got {_kind_of_value(spec)}")
    response = document.get("response")
    if response is not None and response not in _EXECUTE_RESPONSES:
        raise refuse(f"'response' must be 'raw' or 'document', got {response!r}")
    subscriber = document.get("subscriber")
    if subscriber:
        if "successUri" not in subscriber:
            raise refuse("'subscriber' needs a 'successUri'")
        for name in _SUBSCRIBER_URIS:
            if name in subscriber and not isinstance(subscriber[name], str):
                raise refuse(f"subscriber {name!r} must be a URI string, "
                             f"got {_kind_of_value(subscriber[name])}")


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decode a raw query string: UTF-8 once percent-decoded, no NUL, on every route.

    Raises
    ------
    InvalidInputError
        When a name or value is not UTF-8 once percent-decoded, or holds a
        NUL character (U+0000), naming the parameter.

    Examples
    --------
    >>> query_pairs(b"q=%E4%B8%89&q=b")
    [('q', '三'), ('q', 'b')]
    >>> query_pairs(b"q=a%00b")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: query parameter 'q' holds a NUL character (U+0000) \
at character 1, which text may not contain / 请求参数有误
    """
    try:
        text = raw.decode("ascii")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                                       errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError(f"the query string is not UTF-8 once percent-decoded{_ZH}") \
            from None
    for name, value in pairs:
        for what, piece in ((f"query parameter name {name!r}", name),
                            (f"query parameter {name!r}", value)):
            found = bad_character(piece)
            if found is not None:
                raise InvalidInputError(
                    f"{what} holds {found}, which text may not contain{_ZH}")
    return pairs


def parse_query_string(raw: bytes) -> dict[str, str]:
    """Decode a raw query string strictly: UTF-8, no NUL, each parameter once.

    Raises
    ------
    InvalidInputError
        When a name or value is not UTF-8 once percent-decoded or holds NUL
        (:func:`query_pairs`), or a parameter is repeated.

    Examples
    --------
    >>> parse_query_string(b"f=json&bbox=1%2C2%2C3%2C4")
    {'f': 'json', 'bbox': '1,2,3,4'}
    >>> parse_query_string(b"status=%ff")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: the query string is not UTF-8 once percent-decoded / \
请求参数有误
    """
    return _unique(query_pairs(raw))


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise InvalidInputError(f"query parameter {name!r} is given more than once{_ZH}")
        out[name] = value
    return out


class QueryablesCache:
    """Property names accepted as filters on a collection's items, per database.

    Parameters
    ----------
    loader : callable
        ``loader(collection_id) -> names or None`` (None: not a feature
        collection); called once per collection and database, in a worker
        thread.
    """

    def __init__(self, loader: Callable[[str], Collection[str] | None]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._names: dict[tuple[str, str], frozenset[str] | None] = {}

    def get(self, database: str, collection: str) -> frozenset[str] | None:
        """The names, loading them on first use (blocking)."""
        key = (database, collection)
        with self._lock:
            if key in self._names:
                return self._names[key]
        loaded = self._loader(collection)
        names = None if loaded is None else frozenset(loaded)
        with self._lock:
            self._names[key] = names
        return names

    def cached(self, database: str, collection: str) -> tuple[bool, frozenset[str] | None]:
        """``(known, names)`` without loading."""
        key = (database, collection)
        with self._lock:
            return key in self._names, self._names.get(key)

    def clear(self) -> None:
        """Forget everything (after migrations or a configuration change)."""
        with self._lock:
            self._names.clear()


def feature_provider(collection: str) -> dict[str, Any] | None:
    """The feature provider definition of a collection in pygeoapi's configuration.

    Returns
    -------
    dict or None
        The provider's ``name``, ``data``, ``editable`` …; None when there
        is no such feature collection.
    """
    from pygeoapi.provider import get_provider_by_type
    from pygeoapi.provider.base import ProviderTypeError

    from spatial.settings import get_settings

    config = _config(get_settings())
    resource = (config.get("resources") or {}).get(collection)
    if not resource or resource.get("type") != "collection":
        return None
    try:
        return dict(get_provider_by_type(resource["providers"], "feature"))
    except ProviderTypeError:
        return None


def provider_queryables(collection: str) -> frozenset[str] | None:
    """The property filters pygeoapi applies on a collection's items.

    pygeoapi passes a query parameter to the provider as an equality filter
    when it is one of the provider's ``fields`` (and drops it silently
    otherwise), so those are the names to accept.

    Returns
    -------
    frozenset of str or None
        The names; None when the configuration has no such feature collection.
    """
    from pygeoapi.plugin import load_plugin

    provider_def = feature_provider(collection)
    if provider_def is None:
        return None
    provider = load_plugin("provider", provider_def)
    return frozenset(provider.get_fields())


_config_lock = threading.Lock()
_configs: dict[tuple[Path, Path], dict[str, Any]] = {}


def _config(settings: Settings) -> dict[str, Any]:
    """pygeoapi's configuration (:func:`server.config.load_config`), read once per
    process: it is asked on every request to a collection."""
    key = (settings.config_path, settings.layers_dir)
    with _config_lock:
        if key not in _configs:
            from server.config import load_config

            _configs[key] = load_config(settings)
        return _configs[key]


QUERYABLES = QueryablesCache(provider_queryables)


class ContractMiddleware:
    """ASGI middleware answering bad requests 400 before pygeoapi or a route runs.

    On **every** request, whatever the path: the path and the query string
    must hold no NUL (nor a lone surrogate), and the query string must be
    UTF-8 (:func:`query_pairs`). On OGC API resources (:func:`classify`),
    ``GET``: no repeated parameters, only the parameters the resource knows
    (:func:`check_query_params`; on items, the collection's property names
    from :data:`QUERYABLES`) and well-formed standard values
    (:func:`check_query_values`). ``POST``, ``PUT``, ``PATCH`` on any path: a
    JSON body must be UTF-8, strict JSON of bounded depth without NUL or lone
    surrogates, and an object; a text body UTF-8
    (:func:`check_body`); a route that needs a body (:data:`BODY_NEEDED`) must
    get one, and ``POST …/items`` a ``Content-Type`` (415); no checked body
    may be bigger than the cap (413, refused from ``Content-Length`` before
    reading, or as soon as a chunked body passes it). Bodies of other types
    (:func:`body_is_checked`) sent elsewhere — an event photo — are not read
    here. Unknown collections (pygeoapi answers those 404) pass through.

    Parameters
    ----------
    app : ASGI application
        The application behind.
    queryables : QueryablesCache, optional
        Where items' property names come from (default :data:`QUERYABLES`).
    max_json_bytes : int, optional
        Cap of a checked body; default :func:`json_body_cap`, read per request.
    authorize : callable, optional
        ``await authorize(scope)`` once the request is well-formed: a response
        refusing it, or None to let it through; default
        :func:`server.auth.write_refusal` (401/403 for a feature write
        the caller may not make, so that pygeoapi never sees one).
    """

    def __init__(self, app: ASGIApp, queryables: QueryablesCache | None = None,
                 max_json_bytes: int | None = None,
                 authorize: Callable[[Scope], Awaitable[ASGIApp | None]] | None = None
                 ) -> None:
        self.app = app
        self.queryables = queryables or QUERYABLES
        self.max_json_bytes = max_json_bytes
        self.authorize = authorize or _write_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        try:
            check_text(scope.get("path", ""), "the path")
            pairs = query_pairs(scope.get("query_string", b""))
            if method in ("GET", "HEAD"):
                await self._check_get(scope, pairs)
            elif method in ("POST", "PUT", "PATCH"):
                try:
                    receive = await self._check_body(scope, receive)
                except InvalidInputError as exc:
                    if type(exc) is not InvalidInputError:  # 413, 415: their own answer
                        raise
                    raise MalformedBodyError(str(exc)) from None
        except InvalidInputError as exc:
            LOGGER.info("%d %s %s: %s", http_status(exc), method, scope.get("path"), exc)
            await error_response(exc)(scope, receive, send)
            return
        refusal = await self.authorize(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check_get(self, scope: Scope, pairs: list[tuple[str, str]]) -> None:
        found = classify(scope.get("path", ""))
        if found is None:
            return
        kind, collection = found
        params = _unique(pairs)
        queryables: Collection[str] = ()
        if kind == "items" and collection is not None:
            unknown = [n for n in params if n not in ALLOWED["items"]]
            if unknown:  # property filters: look the collection up (cached)
                names = await self._queryables(collection)
                if names is None:
                    return  # not a feature collection here: pygeoapi answers
                queryables = names
        check_query_params(kind, params, queryables)
        check_query_values(kind, params)

    async def _queryables(self, collection: str) -> frozenset[str] | None:
        from anyio import to_thread

        from spatial.settings import database_conninfo

        database = database_conninfo()
        known, names = self.queryables.cached(database, collection)
        if known:
            return names
        try:
            return await to_thread.run_sync(self.queryables.get, database, collection)
        except Exception:
            # The database may be down: let the request through, the provider answers.
            LOGGER.exception("queryables of %s could not be loaded", collection)
            return None

    async def _check_body(self, scope: Scope, receive: Receive) -> Receive:
        content_type = declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1").strip()
        path = scope.get("path", "")
        needed = body_needed(scope["method"], path.rstrip("/") or "/")
        if not body_is_checked(content_type) and classify(path) is None and needed is None:
            return receive  # e.g. photo bytes: their own route reads (and caps) them
        # an OGC resource reads whatever it is sent: capped whatever its type
        cap = self.max_json_bytes if self.max_json_bytes is not None else json_body_cap()
        gone: list[Message] = []

        async def chunks() -> AsyncIterator[bytes]:
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # client went away
                    gone.append(message)
                    return
                yield message.get("body", b"")
                more = message.get("more_body", False)

        body = await read_capped(chunks(), declared, cap, lambda size: _too_large(size, cap))
        if gone:
            return _replaying(gone[0], receive)
        document = check_body(body, content_type, needed=needed)
        if document is not None and needed is not None and _EXECUTION.match(path):
            check_execute_request(document)
        if content_type is None and scope["method"] == "POST" and _ITEMS_POST.match(path):
            # pygeoapi tells a feature to create from a filter by Content-Type alone
            raise UnsupportedMediaTypeError(
                f"POST {path} needs a Content-Type: application/geo+json to create a "
                "feature, application/query-cql-json to search with a CQL2 JSON filter"
                " / 请指定 Content-Type")
        return _replaying({"type": "http.request", "body": body, "more_body": False}, receive)


async def _write_refusal(scope: Scope) -> ASGIApp | None:
    from server.auth import write_refusal  # it imports this module

    return await write_refusal(scope)


def _replaying(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that gives ``first`` once, then hands over to ``receive``."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
