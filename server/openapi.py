"""A self-contained OpenAPI document: pygeoapi's, with every ``$ref`` local.

pygeoapi refers to OGC schemas by URL (schemas.opengis.net, GitHub), which
offline validators and code generators cannot follow. :func:`self_contained`
rewrites each remote ``$ref`` to the component of the same name in
``openapi_components.yml`` (shipped with the package) and adds those
components. It also says what onemap does where pygeoapi's generic answer is
wrong: the conformance page and the collection list get their own responses,
coverages a GeoTIFF/CoverageJSON response, and the ``vendorSpecificParameters``
placeholder goes (onemap answers unknown parameters 400, see
:mod:`server.contract`).

:func:`add_own_routes` then adds what pygeoapi does not know: the routes
onemap serves beside it (auth, tiles, styles, search, event photos, pages,
health, metrics) and the security schemes (bearer token, ``X-API-Key``),
described as data in ``openapi_paths.yml``; :func:`complete_answers` adds the
answers pygeoapi's operations leave out (401/403 of access control, 404/412 of
edits, 413) and corrects the ones it gets wrong (job dismissal, ``lang``).
tests/api/test_schemathesis.py holds the server to the document.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from spatial.settings import Settings

LOGGER = logging.getLogger(__name__)

COMPONENTS_FILE = "openapi_components.yml"
PATHS_FILE = "openapi_paths.yml"
_KINDS = ("schemas", "parameters", "responses")
# .../<kind>/<name>.yaml, as OGC API - Processes lays out its building blocks
_FILE_REF = re.compile(r"/(schemas|parameters|responses)/([A-Za-z0-9_.-]+)\.(?:ya?ml|json)$")
# Responses pygeoapi gets wrong (landing page for everything): (path suffix, status) → name
_RESPONSES = {
    ("/conformance", "200"): "ConformanceDeclaration",
    ("/collections", "200"): "Collections",
    ("/coverage", "200"): "Coverage",
}
_VENDOR = "#/components/parameters/vendorSpecificParameters"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_WRITES = ("post", "put", "patch", "delete")
# A feature collection's items or one item (literal collection ids in pygeoapi's paths)
_FEATURES = re.compile(r"^/collections/[^/{}]+/items(/\{featureId\})?$")
_WRITE_PATHS = re.compile(r"^/processes/[^/{}]+/execution$|^/jobs/\{jobId\}$")


@functools.cache
def _components_text() -> str:
    return files("server").joinpath(COMPONENTS_FILE).read_text(encoding="utf-8")


@functools.cache
def _paths_text() -> str:
    return files("server").joinpath(PATHS_FILE).read_text(encoding="utf-8")


def load_paths() -> dict[str, Any]:
    """onemap's own routes as the document describes them (``openapi_paths.yml``).

    Returns
    -------
    dict
        ``{"tags", "security", "components", "paths"}``, a fresh copy in
        which nothing is shared (the file's YAML anchors are expanded).
    """
    data: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(_paths_text())))
    return data


def load_components() -> dict[str, Any]:
    """The local components and the aliases of whole remote documents.

    Returns
    -------
    dict
        ``{"components": {...}, "aliases": {url: local ref}}`` (a fresh copy).
    """
    data: dict[str, Any] = yaml.safe_load(_components_text())
    return data


def local_ref(ref: str, aliases: dict[str, str] | None = None) -> str:
    """The local ``$ref`` standing for a remote one.

    Parameters
    ----------
    ref : str
        A ``$ref`` value.
    aliases : dict, optional
        Whole remote documents → local refs (the ``aliases`` of the components file).

    Returns
    -------
    str
        ``ref`` itself when already local, else ``#/components/<kind>/<name>``.

    Raises
    ------
    ValueError
        When the remote ref names nothing this module knows how to map.

    Examples
    --------
    >>> local_ref("https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/"
    ...           "ogcapi-features-1.yaml#/components/responses/Features")
    '#/components/responses/Features'
    >>> local_ref("https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/"
    ...           "schemas/exception.yaml")
    '#/components/schemas/exception'
    """
    if ref.startswith("#"):
        return ref
    if aliases and ref in aliases:
        return aliases[ref]
    _, _, fragment = ref.partition("#")
    parts = fragment.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "components" and parts[1] in _KINDS:
        return f"#/components/{parts[1]}/{parts[2]}"
    match = _FILE_REF.search(ref.partition("#")[0])
    if match and not fragment:
        return f"#/components/{match.group(1)}/{match.group(2)}"
    raise ValueError(f"no local component for the remote $ref {ref!r}")


def iter_refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value in a document, depth first.

    Examples
    --------
    >>> list(iter_refs({"a": [{"$ref": "#/x"}, {"b": {"$ref": "#/y"}}]}))
    ['#/x', '#/y']
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The object a local ``$ref`` points at.

    Raises
    ------
    KeyError
        When ``ref`` is not local or points at nothing.

    Examples
    --------
    >>> resolve({"components": {"schemas": {"a/b": 1}}}, "#/components/schemas/a~1b")
    1
    """
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node: Any = document
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            raise KeyError(ref)
        node = node[key]
    return node


def broken_refs(document: dict[str, Any]) -> list[str]:
    """The ``$ref`` values of a document that are remote or resolve to nothing.

    Examples
    --------
    >>> broken_refs({"a": {"$ref": "#/a"}, "b": {"$ref": "http://x/y.yaml"}})
    ['http://x/y.yaml']
    """
    out = []
    for ref in iter_refs(document):
        try:
            resolve(document, ref)
        except KeyError:
            out.append(ref)
    return sorted(set(out))


def _rewrite(node: Any, aliases: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (local_ref(v, aliases) if k == "$ref" and isinstance(v, str)
                    else _rewrite(v, aliases)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(item, aliases) for item in node]
    return node


def self_contained(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite pygeoapi's OpenAPI document so that every ``$ref`` is local.

    Parameters
    ----------
    document : dict
        pygeoapi's document (:func:`pygeoapi.openapi.get_oas`); not modified.

    Returns
    -------
    dict
        A new document: remote refs rewritten, the local components added
        (pygeoapi's own components of the same name win), the wrong generic
        responses replaced, ``vendorSpecificParameters`` removed.

    Raises
    ------
    ValueError
        When a remote ref has no local component or a ref resolves to nothing.

    Examples
    --------
    >>> doc = {"openapi": "3.0.2", "paths": {"/conformance": {"get": {"responses": {
    ...     "200": {"$ref": "https://schemas.opengis.net/ogcapi/features/part1/1.0/"
    ...                     "openapi/ogcapi-features-1.yaml#/components/responses/LandingPage"}}}}}}
    >>> out = self_contained(doc)
    >>> out["paths"]["/conformance"]["get"]["responses"]["200"]
    {'$ref': '#/components/responses/ConformanceDeclaration'}
    >>> broken_refs(out)
    []
    """
    local = load_components()
    out = _rewrite(copy.deepcopy(document), local.get("aliases") or {})
    components = out.setdefault("components", {})
    for kind, entries in local["components"].items():
        mine = components.setdefault(kind, {})
        for name, value in entries.items():
            mine.setdefault(name, value)
    components.get("parameters", {}).pop("vendorSpecificParameters", None)
    for path, item in (out.get("paths") or {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            if "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"]
                                           if p.get("$ref") != _VENDOR]
            for (suffix, status), name in _RESPONSES.items():
                if path.endswith(suffix) and status in operation.get("responses", {}):
                    operation["responses"][status] = {"$ref": f"#/components/responses/{name}"}
    broken = broken_refs(out)
    if broken:
        raise ValueError(f"OpenAPI refs that resolve to nothing: {broken}")
    return out


def add_own_routes(document: dict[str, Any],
                   own: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add the routes onemap serves beside pygeoapi to a self-contained document.

    Parameters
    ----------
    document : dict
        A document from :func:`self_contained`; not modified.
    own : dict, optional
        The description to add (default :func:`load_paths`).

    Returns
    -------
    dict
        A new document with the paths, components, tags and the top-level
        ``security`` of ``own``.

    Raises
    ------
    ValueError
        When ``document`` already has one of the operations, a different
        component of the same name, or a ref resolves to nothing.

    Examples
    --------
    >>> own = {"paths": {"/health": {"get": {"responses": {"200": {
    ...     "$ref": "#/components/responses/Ok"}}}}},
    ...     "components": {"responses": {"Ok": {"description": "up"}}},
    ...     "tags": [{"name": "operations"}], "security": [{}]}
    >>> out = add_own_routes({"openapi": "3.0.2", "paths": {}, "tags": []}, own)
    >>> sorted(out["paths"]), out["tags"], out["security"]
    (['/health'], [{'name': 'operations'}], [{}])
    >>> add_own_routes(out, own)
    Traceback (most recent call last):
    ...
    ValueError: component responses/Ok is both pygeoapi's and onemap's
    """
    own = own if own is not None else load_paths()
    out = copy.deepcopy(document)
    components = out.setdefault("components", {})
    for kind, entries in (own.get("components") or {}).items():
        mine = components.setdefault(kind, {})
        for name, value in entries.items():
            if name in mine:
                raise ValueError(f"component {kind}/{name} is both pygeoapi's and onemap's")
            mine[name] = value
    paths = out.setdefault("paths", {})
    for path, item in (own.get("paths") or {}).items():
        have = paths.setdefault(path, {})
        for method, operation in item.items():
            if method in have:
                raise ValueError(f"{method.upper()} {path} is both pygeoapi's and onemap's")
            have[method] = operation
    tags = out.setdefault("tags", [])
    known = {tag.get("name") for tag in tags}
    tags.extend(tag for tag in own.get("tags") or [] if tag["name"] not in known)
    if "security" in own:
        out["security"] = own["security"]
    broken = broken_refs(out)
    if broken:
        raise ValueError(f"OpenAPI refs that resolve to nothing: {broken}")
    return out


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


_IF_MATCH = {
    "name": "If-Match", "in": "header", "required": False,
    "description": ("The ETag read with the feature (\"<version>\"); a stale one is a 412 "
                    "and nothing is written, * matches any version / 读取时的版本"),
    "schema": {"type": "string"},
}
_CONTENT_CRS = {
    "name": "Content-Crs", "in": "header", "required": False,
    "description": ("The CRS of the body's coordinates as <URI> (Features Part 2), e.g. "
                    "<http://www.opengis.net/def/crs/EPSG/0/4490>; default CRS84 / 坐标系"),
    "schema": {"type": "string"},
}

#: Query parameters of a feature collection's items that onemap serves and pygeoapi's
#: document leaves out (accepted in server.contract.ITEMS).
_ITEMS_QUERY: list[dict[str, Any]] = [
    {"name": "filter", "in": "query", "required": False,
     "description": "A CQL2 filter (Features Part 3), cql2-text unless filter-lang says "
                    "otherwise / 过滤条件", "schema": {"type": "string"}},
    {"name": "filter-lang", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}},
    {"name": "filter-crs", "in": "query", "required": False,
     "description": "The CRS of the filter's geometries (URI); default CRS84",
     "schema": {"type": "string"}},
    {"$ref": "#/components/parameters/q"},
    {"name": "resulttype", "in": "query", "required": False,
     "description": "hits: the count only (numberMatched), no features",
     "schema": {"type": "string", "enum": ["results", "hits"], "default": "results"}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "Keyset paging in id order: the last id of the previous page, as the "
                    "next link gives it; not with sortby / 翻页游标",
     "schema": {"type": "string"}},
]


def complete_answers(document: dict[str, Any]) -> dict[str, Any]:
    """Say what the server answers where pygeoapi's generated operations are silent or wrong.

    Run on a document from :func:`add_own_routes` (it refers to onemap's response
    components). Access is decided per request (row-level security and
    ``onemap.layer_access``, README "Data access"), so the document lists what
    may follow:

    * every operation: 400 — a path or query string holding NUL, or a query
      string that is not UTF-8, is refused on every route
      (:mod:`server.contract`); 401 — wrong or expired credentials are
      refused on every route, never downgraded to anonymous; and with a path
      parameter, 404;
    * a feature collection's items and items: 401 and 403 (a layer that is not
      public, anonymous or for a role without it); every write (Part 4 on items,
      process execution, job dismissal): 401 and 403;
    * updating or deleting an item: 404, 412 (a stale ``If-Match``), the
      ``If-Match`` header; writing one: the ``Content-Crs`` header; any body: 413;
    * reading items: the parameters onemap serves that pygeoapi leaves out
      (``filter``, ``filter-lang``, ``filter-crs``, ``q``, ``resulttype``, ``cursor``);
    * ``DELETE /jobs/{jobId}``: 200 with the job's status info (OGC API -
      Processes, dismiss), not pygeoapi's 204;
    * ``lang``: any string — an unsupported language falls back to the
      ``Accept-Language`` header or the default, as its description says, so the
      languages served are named in the description, not as an enum.

    Parameters
    ----------
    document : dict
        Not modified.

    Returns
    -------
    dict
        A new document.

    Examples
    --------
    >>> doc = {"paths": {"/collections/lamp/items/{featureId}": {"delete": {
    ...     "responses": {"200": {"description": "Successful delete"}}}}},
    ...     "components": {"parameters": {}}}
    >>> op = complete_answers(doc)["paths"]["/collections/lamp/items/{featureId}"]["delete"]
    >>> sorted(op["responses"]), [p["name"] for p in op["parameters"]]
    (['200', '400', '401', '403', '404', '412'], ['If-Match'])
    """
    out = copy.deepcopy(document)
    for path, item in (out.get("paths") or {}).items():
        for method, operation in item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            answers = operation.setdefault("responses", {})
            answers.setdefault("400", _ref("responses", "BadRequest"))
            answers.setdefault("401", _ref("responses", "Unauthorized"))
            if "{" in path:  # an id nothing has, or one no route takes (a line break)
                answers.setdefault("404", _ref("responses", "NotFound"))
            features = _FEATURES.match(path)
            if not (features or _WRITE_PATHS.match(path)) or method == "options":
                continue
            if features or method in _WRITES:
                answers.setdefault("403", _ref("responses", "Forbidden"))
            if "requestBody" in operation:
                answers.setdefault("413", _ref("responses", "JsonTooLarge"))
            if features and features.group(1) and method in ("put", "patch", "delete"):
                answers.setdefault("404", _ref("responses", "NotFound"))
                answers.setdefault("412", _ref("responses", "PreconditionFailed"))
                operation.setdefault("parameters", []).append(copy.deepcopy(_IF_MATCH))
            if features and not features.group(1) and method == "get":
                params = operation.setdefault("parameters", [])
                named = {p.get("name") or p.get("$ref", "").rpartition("/")[2] for p in params}
                params += [copy.deepcopy(p) for p in _ITEMS_QUERY
                           if (p.get("name") or p["$ref"].rpartition("/")[2]) not in named]
            if features and (method in ("put", "patch")
                             or (method == "post" and "201" in answers)):
                operation.setdefault("parameters", []).append(copy.deepcopy(_CONTENT_CRS))
    dismiss = (out.get("paths") or {}).get("/jobs/{jobId}", {}).get("delete")
    if dismiss is not None and "204" in dismiss.get("responses", {}):
        del dismiss["responses"]["204"]
        dismiss["responses"]["200"] = {
            "description": "The job is dismissed: its status info / 作业已撤销",
            "content": {"application/json": {"schema": _ref("schemas", "statusInfo")}},
        }
    lang = out.get("components", {}).get("parameters", {}).get("lang")
    if lang is not None and "enum" in lang.get("schema", {}):
        supported = lang["schema"].pop("enum")
        lang["schema"]["example"] = supported[0]
        lang["description"] = (f"{lang.get('description', '').rstrip()} "
                               f"Languages served: {', '.join(supported)}.").lstrip()
    return out


def process_answers(document: dict[str, Any],
                    outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Document what a process's execution answers, for every output form.

    pygeoapi documents an execution's 200 as its first output's schema. A process
    with several outputs answers (:func:`server.manager.render_outputs`) with a
    JSON object keyed by output id (``response=raw``, the default), a results
    document keyed likewise (``response=document``), one output as it is
    (one selected with ``outputs``, in its media type), or ``multipart/related``
    (raw, when ``Accept`` asks for it). The 200 says all four.

    Parameters
    ----------
    document : dict
        Not modified.
    outputs : dict
        Per process id, its ``outputs`` as described (id → description with a
        ``schema`` and optionally its ``contentMediaType`` inside).

    Returns
    -------
    dict
        A new document.

    Examples
    --------
    >>> doc = {"paths": {"/processes/p/execution": {"post": {"responses": {}}}}}
    >>> outs = {"p": {"a": {"schema": {"type": "integer"}},
    ...               "b": {"schema": {"type": "object",
    ...                                "contentMediaType": "application/geo+json"}}}}
    >>> answer = process_answers(doc, outs)["paths"]["/processes/p/execution"]["post"]
    >>> content = answer["responses"]["200"]["content"]
    >>> sorted(content), len(content["application/json"]["schema"]["anyOf"])
    (['application/geo+json', 'application/json', 'multipart/related'], 3)
    """
    out = copy.deepcopy(document)
    for pid, described in outputs.items():
        operation = (out.get("paths") or {}).get(f"/processes/{pid}/execution", {}).get("post")
        if operation is None or len(described) < 2:
            continue
        schemas: dict[str, Any] = {}
        by_type: dict[str, list[Any]] = {}
        for oid, output in described.items():
            schema = copy.deepcopy(output.get("schema") or {})
            media = schema.pop("contentMediaType", "application/json")
            schemas[oid] = schema
            by_type.setdefault(media, []).append(schema)
        ids = sorted(schemas)
        keyed = {"type": "object", "properties": schemas, "additionalProperties": False}
        qualified = {"type": "object", "additionalProperties": False,
                     "properties": {k: {"anyOf": [
                         {"type": "object", "required": ["value"],
                          "properties": {"value": s, "mediaType": {"type": "string"}}},
                         s]} for k, s in schemas.items()}}
        content: dict[str, Any] = {"application/json": {"schema": {"anyOf": [
            keyed, qualified, *by_type.pop("application/json", [])]}}}
        for media, alone in by_type.items():
            content[media] = {"schema": alone[0] if len(alone) == 1 else {"anyOf": alone}}
        # raw with several outputs when Accept asks for it: a part per output
        # (Content-ID: <output id>), OGC API Processes 1.0
        content["multipart/related"] = {"schema": {"type": "string", "format": "binary"}}
        operation.setdefault("responses", {})["200"] = {
            "description": (f"The outputs ({', '.join(ids)}): all keyed by id (raw, the "
                            "default), a results document (response=document), or the one "
                            "selected with outputs as it is / 处理结果"),
            "content": content,
        }
    return out


def available_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The configuration without the coverages whose data cannot be opened.

    pygeoapi opens every coverage to describe it in OpenAPI and fails as a
    whole when one is missing (a fresh clone before ``onemap generate``).

    Returns
    -------
    config : dict
        A copy without those resources.
    missing : list of str
        Their names, sorted.
    """
    from pygeoapi.plugin import load_plugin
    from pygeoapi.provider.base import ProviderGenericError

    missing = []
    for name, resource in (config.get("resources") or {}).items():
        for provider in resource.get("providers") or []:
            if provider.get("type") != "coverage":
                continue
            try:
                load_plugin("provider", provider)
            except ProviderGenericError:
                missing.append(name)
    if not missing:
        return config, []
    LOGGER.warning("coverages left out of OpenAPI until their data exists: %s",
                   ", ".join(sorted(missing)))
    kept = dict(config)
    kept["resources"] = {k: v for k, v in config["resources"].items() if k not in missing}
    return kept, sorted(missing)


def build_document(config: dict[str, Any]) -> dict[str, Any]:
    """pygeoapi's OpenAPI document for a configuration, self-contained.

    Parameters
    ----------
    config : dict
        The loaded pygeoapi configuration.

    Returns
    -------
    dict
        The document (see :func:`self_contained`) with onemap's own routes
        (:func:`add_own_routes`), the answers completed (:func:`complete_answers`)
        and each process's outputs in every form (:func:`process_answers`).
    """
    from pygeoapi.openapi import get_oas

    from scenarios.processes.registry import PROCESSES

    usable, _ = available_config(config)
    outputs = {pid: p.describe()["outputs"] for pid, p in PROCESSES.items()}
    return process_answers(complete_answers(add_own_routes(self_contained(get_oas(usable)))),
                           outputs)


def _plugin_sources(config: dict[str, Any]) -> list[bytes]:
    """Source of every process module the configuration names (dotted paths)."""
    import importlib.util

    out = []
    for res in config.get("resources", {}).values():
        name = (res.get("processor") or {}).get("name", "") if res.get("type") == "process" else ""
        module = name.rpartition(".")[0]
        spec = importlib.util.find_spec(module) if module else None
        if spec is not None and spec.origin:
            out.append(Path(spec.origin).read_bytes())
    return out


def document_digest(settings: Settings, config: dict[str, Any], missing: list[str],
                    config_path: Path | None = None) -> str:
    """The hash naming the cached document: of everything the document is made of.

    Parameters
    ----------
    settings : Settings
        For the public URL (and the configuration when ``config_path`` is not given).
    config : dict
        The loaded configuration (its process modules are hashed too, and every
        registered process's description: they are the processes' part of the
        document).
    missing : list of str
        The coverages without data (left out of the document).
    config_path : Path, optional
        The configuration pygeoapi reads; by default the one generated from the
        declarations (:func:`server.config.write_config`).

    Returns
    -------
    str
        16 hex digits.
    """
    from scenarios.processes.registry import PROCESSES
    from server.config import write_config

    path = config_path or write_config(settings)
    described = json.dumps({pid: p.describe() for pid, p in PROCESSES.items()},
                           sort_keys=True, default=str)
    digest = hashlib.sha256(described.encode())
    for part in (path.read_bytes(), settings.public_url.encode(),
                 version("pygeoapi").encode(), _components_text().encode(),
                 _paths_text().encode(), Path(__file__).read_bytes(), ",".join(missing).encode(),
                 *_plugin_sources(config)):
        digest.update(part)
    return digest.hexdigest()[:16]


#: Parsed configurations by (text, the variables it names): every application
#: start writes the document, and parsing the file took ~0.1 s of it.
def _load_config(path: Path) -> dict[str, Any]:
    """pygeoapi's configuration at ``path`` (``${VAR}`` substituted), the caller's copy."""
    from server.config import parse_config

    return parse_config(path.read_text(encoding="utf-8"))


def write_document(settings: Settings, config_path: Path | None = None) -> Path:
    """Write the OpenAPI document for the configuration, once per change.

    Parameters
    ----------
    settings : Settings
        Where the declarations are and where generated files go.
    config_path : Path, optional
        The configuration pygeoapi reads; by default the one generated from the
        declarations (:func:`server.config.write_config`).

    Returns
    -------
    Path
        The YAML document under ``var/``, named by :func:`document_digest`
        (the configuration, the public URL, the pygeoapi version, the local
        components, onemap's own routes in ``openapi_paths.yml``, this module,
        the process modules, and which coverages have data).
    """
    from server.config import write_config

    config_path = config_path or write_config(settings)
    config = _load_config(config_path)
    _, missing = available_config(config)
    digest = document_digest(settings, config, missing, config_path)
    path = settings.var_dir / f"openapi-{digest}.yml"
    if not path.exists():
        document = build_document(config)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        tmp.replace(path)  # atomic: several workers may start at once
    return path
