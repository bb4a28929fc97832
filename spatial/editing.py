"""Writing features: create, replace and delete rows of the model's tables.

The core of OGC API Features Part 4 (the provider in :mod:`server.provider`
only adapts). A GeoJSON feature is checked against its base table
``onemap.<table>`` before PostgreSQL is asked to store it, so a bad write is a
400 naming the property, never a 500, and nothing half-written stays:

* **who** — the caller's roles must allow the action on the layer
  (``onemap.can_write``: 401 for the anonymous, 403 otherwise); the row-level
  security policies of ``130_access.sql`` decide everything else (scope), and
  their refusal is a 403. Writes run on the request's connection
  (:func:`spatial.access.request_connection`), so every write is audited by
  ``onemap.audit_row`` with who, when, before and after.
* **properties** — unknown names are refused, naming them. Read-only ones are
  *ignored*, so a feature read from the API can be sent back unchanged: ``id``,
  ``created_at``, ``updated_at``, ``version``, generated columns, and what the
  layer publishes but the table does not hold (a resident's ``building_id``,
  ``grid_id`` and ``room_no`` come from the household). Values are cast by
  PostgreSQL, property by property (``onemap.cast_errors``), and CHECK,
  NOT NULL, UNIQUE and foreign-key violations come back naming the property.
* **geometry** — GeoJSON in the ``Content-Crs`` of the request (CRS84 when
  none, axes in the CRS's declared order as in Features Part 2), of the
  column's type (a Polygon is promoted to a MultiPolygon column), valid
  (``ST_IsValidReason`` in the message), inside the district (``ST_Covers`` of
  the union of ``onemap.district``). Z values are dropped. A table without a
  geometry column (residents live at their household) ignores a geometry sent.
* **属地原则** — a table's jurisdiction columns (``street_office_id``,
  ``community_id``, ``grid_id``) left out are filled from the location
  (``onemap.jurisdiction``) before the write, so the scope policies see them.
* **replace is a merge** — an update sets the properties it names and the
  geometry when it has one; properties left out keep their values (pygeoapi
  0.24 has no PATCH and hands the provider "a partial or full item"); ``null``
  clears a property. A ``null`` geometry (GeoJSON requires the member, so a
  properties-only update carries one) leaves the geometry as it is; the API
  does not remove a feature's location.
* **optimistic concurrency** — rows carry ``version`` (bumped by a trigger on
  every update, ``135_editing.sql``). With ``If-Match`` an update or delete
  happens only while the row still has one of the given versions (checked in
  the same statement) and is a 412 otherwise; without ``If-Match`` it proceeds
  (last writer wins, as for clients that do not know ETags). On a table without
  ``version`` only ``If-Match: *`` is understood.
* **idempotent events** — an event sent again with the same ``client_uuid``
  (or the same ``source`` and ``external_ref``: a 12345 ticket) returns the
  event stored the first time (``WriteResult.replayed``): a phone that lost its
  connection after sending loses nothing and duplicates nothing. The first
  write wins; the resend's content is not compared.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial.catalog import LAYERS_SCHEMA, get_table
from spatial.crs import BD09, GCJ02, parse_crs
from spatial.db import SCHEMA, fetch_tuples
from spatial.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from spatial.privacy import PERSONAL_COLUMNS, PERSONAL_TABLES
from spatial.wellformed import check_json_value, loads

LOGGER = logging.getLogger(__name__)

Action = Literal["insert", "update", "delete"]

#: Columns the server keeps; ignored when a feature carries them.
READ_ONLY = frozenset({"id", "created_at", "updated_at", "version", "geom_3857"})
#: Admin units a location belongs to, filled by 属地 when left out.
JURISDICTION = ("street_office_id", "community_id", "grid_id")
#: Columns naming the caller: on create NULL or the caller's own user id, never
#: changed by an update (who reported an event is not for a client to rewrite).
CALLER_COLUMNS: dict[str, frozenset[str]] = {"event": frozenset({"reporter_user_id"})}
#: Unique keys by which a resend is recognised and answered with the stored row.
IDEMPOTENCY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "event": (("client_uuid",), ("source", "external_ref")),
}
#: Storage CRS of every geometry column (CGCS2000).
STORAGE_SRID = 4490
#: CRSs numerically identical to CGCS2000 for onemap (see :mod:`spatial.crs`).
_SAME_AS_STORAGE = frozenset({4326, 4490})
#: Deepest nesting of GeometryCollections in a geometry written (RFC 7946 §3.1.8
#: advises against nesting them at all; PostGIS reads them by recursion).
MAX_GEOMETRY_NESTING = 8
#: Nesting depth of positions in each GeoJSON geometry type.
_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
          "Polygon": 2, "MultiPolygon": 3}
_VERBS = {"insert": ("create", "新增"), "update": ("change", "修改"),
          "delete": ("delete", "删除")}
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


# ---------------------------------------------------------------------------
# Results, ETags and If-Match
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """What a create or update stored.

    Attributes
    ----------
    id : int or str
        The feature id.
    version : int or None
        The row version after the write; None for a table without one.
    replayed : bool
        A resend of an event already stored: nothing was written.
    """

    id: int | str
    version: int | None
    replayed: bool = False

    @property
    def etag(self) -> str | None:
        """The strong ETag of the stored row, ``"<version>"``."""
        return None if self.version is None else format_etag(self.version)


def format_etag(version: int) -> str:
    """The strong ETag of a row version.

    Examples
    --------
    >>> format_etag(3)
    '"3"'
    """
    return f'"{int(version)}"'


def feature_etag(feature: Mapping[str, Any]) -> str:
    """The ETag of a feature as the API returns it.

    Its row version when the layer publishes one (what ``If-Match`` is
    compared with); otherwise a hash of the feature's JSON, which changes with
    any change of the row.

    Examples
    --------
    >>> feature_etag({"type": "Feature", "id": 1, "properties": {"version": 4}})
    '"4"'
    >>> feature_etag({"type": "Feature", "id": 1, "properties": {}})[:3]
    '"h-'
    """
    version = (feature.get("properties") or {}).get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return format_etag(version)
    text = json.dumps(feature, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f'"h-{hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]}"'


@dataclass(frozen=True)
class IfMatch:
    """A parsed ``If-Match`` header (RFC 9110 §13.1.1).

    Attributes
    ----------
    any : bool
        ``*``: any current row.
    versions : tuple of int
        Row versions named by strong entity tags; weak tags and tags that are
        not a version never match (strong comparison).
    """

    any: bool = False
    versions: tuple[int, ...] = field(default_factory=tuple)

    def matches(self, version: int | None) -> bool:
        """Whether a row with this version satisfies the condition."""
        return self.any or (version is not None and version in self.versions)


def parse_if_match(value: str | None) -> IfMatch | None:
    """Parse an ``If-Match`` header value.

    A bare number (``If-Match: 3``) is read as ``"3"`` for convenience.

    Parameters
    ----------
    value : str or None
        The header, None or blank when absent.

    Returns
    -------
    IfMatch or None
        None when there is no condition.

    Examples
    --------
    >>> parse_if_match('"3", "4"')
    IfMatch(any=False, versions=(3, 4))
    >>> parse_if_match('W/"3"').matches(3)
    False
    >>> parse_if_match("*").matches(17)
    True
    >>> parse_if_match(None) is None
    True
    """
    if value is None or not value.strip():
        return None
    versions: list[int] = []
    for part in (p.strip() for p in value.split(",")):
        if part == "*":
            return IfMatch(any=True)
        tag = part[1:-1] if len(part) >= 2 and part[0] == part[-1] == '"' else part
        if part.startswith("W/") or not tag.isdigit():
            continue  # a weak or foreign tag never matches a strong comparison
        versions.append(int(tag))
    return IfMatch(versions=tuple(versions))


@functools.lru_cache(maxsize=64)
def input_crs(value: str | None) -> tuple[int, bool]:
    """SRID and axis order of a request's ``Content-Crs``.

    Parameters
    ----------
    value : str or None
        The header: a CRS URI, optionally in angle brackets (Features Part 2);
        None means CRS84.

    Returns
    -------
    tuple
        ``(srid, northing_first)``; CRS84 is stored as is (4490, longitude
        first), EPSG:4326 and EPSG:4490 are latitude first as EPSG declares.

    Raises
    ------
    InvalidInputError
        For an unknown or unsupported CRS, GCJ-02 and BD-09 included.

    Examples
    --------
    >>> input_crs("<http://www.opengis.net/def/crs/OGC/1.3/CRS84>")
    (4490, False)
    >>> input_crs("http://www.opengis.net/def/crs/EPSG/0/4326")
    (4326, True)
    >>> input_crs("http://www.opengis.net/def/crs/EPSG/0/3857")
    (3857, False)
    """
    text = (value or "").strip().strip("<>").strip()
    if not text or text.rstrip("/").lower().endswith(("crs84", "crs84h")):
        return STORAGE_SRID, False
    try:
        code = parse_crs(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"Content-Crs: {exc} / 坐标参照系不受支持") from None
    if code in (GCJ02, BD09) or not isinstance(code, int):
        raise InvalidInputError(
            f"Content-Crs {text!r}: send CRS84, EPSG:4326, 4490, 3857 or a CGCS2000 "
            "Gauss-Krüger CRS; GCJ-02/BD-09 coordinates must be converted first "
            "/ 请先将火星坐标或百度坐标转换为 CGCS2000")
    import pyproj

    axes = pyproj.CRS.from_epsg(code).axis_info
    northing_first = bool(axes) and axes[0].direction.lower() in ("north", "south")
    return code, northing_first


# ---------------------------------------------------------------------------
# The request body
# ---------------------------------------------------------------------------


def parse_feature(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Read a GeoJSON Feature from a request body.

    Parameters
    ----------
    body : bytes, str or mapping
        UTF-8 JSON, or an already parsed object.

    Returns
    -------
    dict
        The feature, with ``properties`` an object (empty when missing or null).

    Raises
    ------
    InvalidInputError
        When the body is not UTF-8, not strict JSON (``NaN`` included), nested
        deeper than :data:`~spatial.wellformed.MAX_JSON_DEPTH`, holds a NUL or
        a lone surrogate (:mod:`spatial.wellformed`), or is not a Feature.

    Examples
    --------
    >>> parse_feature(b'{"type": "Feature", "geometry": null, "properties": {"a": 1}}')
    {'type': 'Feature', 'geometry': None, 'properties': {'a': 1}}
    >>> parse_feature(b'[1]')
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body must be a GeoJSON Feature object \
/ 请求体必须是 GeoJSON 要素
    """
    if isinstance(body, bytes | bytearray | str):
        body = loads(body, "request body")
    else:
        check_json_value(body, "request body")
    if not isinstance(body, Mapping) or body.get("type") != "Feature":
        raise InvalidInputError(
            "request body must be a GeoJSON Feature object / 请求体必须是 GeoJSON 要素")
    feature = dict(body)
    props = feature.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise InvalidInputError("the feature's properties must be an object / 要素属性必须是对象")
    feature["properties"] = dict(props)
    return feature


def check_geojson_geometry(geometry: Any) -> None:
    """Check the structure of a GeoJSON geometry (RFC 7946 §3.1), without recursion.

    PostGIS reads a position ``["a", "b"]`` as ``(0, 0)``, so the numbers are
    checked here; rings, validity and emptiness are for PostGIS.
    GeometryCollections may nest at most :data:`MAX_GEOMETRY_NESTING` deep
    (RFC 7946 advises against nesting them at all).

    Raises
    ------
    InvalidInputError
        Naming what is wrong.

    Examples
    --------
    >>> check_geojson_geometry({"type": "Point", "coordinates": [116.4, 39.9]})
    >>> check_geojson_geometry({"type": "Point", "coordinates": ["116.4", 39.9]})
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: geometry: a position must be 2 or 3 finite numbers, \
got ['116.4', 39.9] / 几何图形格式有误
    >>> nested = {"type": "Point", "coordinates": [116.4, 39.9]}
    >>> for _ in range(9):
    ...     nested = {"type": "GeometryCollection", "geometries": [nested]}
    >>> check_geojson_geometry(nested)
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: geometry: GeometryCollections nested more than 8 deep; \
at most 8 are accepted / 几何图形格式有误
    """
    zh = " / 几何图形格式有误"
    # (geometry, how many GeometryCollections it is inside)
    geometries: list[tuple[Any, int]] = [(geometry, 0)]
    while geometries:
        current, nesting = geometries.pop()
        if not isinstance(current, Mapping):
            raise InvalidInputError(f"geometry must be a GeoJSON geometry object{zh}")
        kind = current.get("type")
        if kind == "GeometryCollection":
            if nesting >= MAX_GEOMETRY_NESTING:
                raise InvalidInputError(
                    f"geometry: GeometryCollections nested more than {MAX_GEOMETRY_NESTING} "
                    f"deep; at most {MAX_GEOMETRY_NESTING} are accepted{zh}")
            members = current.get("geometries")
            if not isinstance(members, list):
                raise InvalidInputError(f"geometry: a GeometryCollection needs 'geometries'{zh}")
            geometries.extend((member, nesting + 1) for member in reversed(members))
            continue
        if kind not in _DEPTH:
            raise InvalidInputError(
                f"geometry: unknown type {kind!r}; expected one of "
                f"{', '.join([*_DEPTH, 'GeometryCollection'])}{zh}")
        if "coordinates" not in current:
            raise InvalidInputError(f"geometry: a {kind} needs 'coordinates'{zh}")
        _check_positions(kind, current["coordinates"], zh)


def _check_positions(kind: str, coordinates: Any, zh: str) -> None:
    """Coordinates nested as ``kind`` requires, ending in 2 or 3 finite numbers."""
    stack: list[tuple[Any, int]] = [(coordinates, _DEPTH[kind])]
    while stack:
        value, depth = stack.pop()
        if depth == 0:
            if not (isinstance(value, list) and 2 <= len(value) <= 3 and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value)):
                raise InvalidInputError(
                    f"geometry: a position must be 2 or 3 finite numbers, got {value!r}{zh}")
            continue
        if not isinstance(value, list):
            raise InvalidInputError(f"geometry: {kind} coordinates must be nested arrays{zh}")
        stack.extend((item, depth - 1) for item in reversed(value))


# ---------------------------------------------------------------------------
# The target table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    not_null: bool
    has_default: bool
    generated: bool


@dataclass(frozen=True)
class _Target:
    """A base table as writing sees it."""

    name: str
    regclass: str
    columns: dict[str, _Column]
    geometry: str | None
    geometry_type: str | None
    derived: frozenset[str]  # published by the layer view, not held by the table
    id_udt: str

    @property
    def has_version(self) -> bool:
        return "version" in self.columns

    @property
    def writable(self) -> frozenset[str]:
        return frozenset(
            c.name for c in self.columns.values()
            if c.name not in READ_ONLY and not c.generated and c.name != self.geometry
        )

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(
            c.name for c in self.columns.values()
            if c.not_null and not c.has_default and c.name in self.writable
        )

    def ident(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(self.name))

    def row_id(self, identifier: int | str) -> int | str:
        """The id as the column's type, NotFoundError for one it cannot be."""
        if self.id_udt in ("int2", "int4", "int8"):
            text = str(identifier).strip()
            if not re.fullmatch(r"[+-]?\d{1,19}", text):
                raise _not_found(self, identifier)
            return int(text)
        return str(identifier)


def _target(conn: psycopg.Connection[Any], table: str) -> _Target:
    described = get_table(conn, table)  # NotFoundError for an unknown table
    rows = fetch_tuples(
        conn,
        """
        SELECT c.oid::regclass::text, a.attname, a.attnotnull,
               a.atthasdef OR a.attidentity <> '', a.attgenerated <> '' OR a.attidentity = 'a'
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
        ORDER BY a.attnum
        """,
        (SCHEMA, described.name),
    )
    if not rows:
        raise NotFoundError(f"no table {table!r} to write to / 图层不可编辑")
    columns = {r[1]: _Column(r[1], r[2], r[3], r[4]) for r in rows}
    geoms = [g for g in described.geometry if g != "geom_3857" and g in columns]
    geometry = "geom" if "geom" in geoms else (geoms[0] if geoms else None)
    try:
        view = get_table(conn, described.name, schema=LAYERS_SCHEMA)
        derived = frozenset(view.names - set(columns))
    except NotFoundError:
        derived = frozenset()
    return _Target(
        name=described.name,
        regclass=rows[0][0],
        columns=columns,
        geometry=geometry,
        geometry_type=described.geometry[geometry][0].upper() if geometry else None,
        derived=derived,
        id_udt=described.column("id").udt,
    )


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def check_can_write(conn: psycopg.Connection[Any], table: str, action: Action) -> int | None:
    """Refuse a caller whose roles may not write the layer (``onemap.can_write``).

    The web edge asks this before pygeoapi handles a write
    (:class:`server.auth.AuthMiddleware`), and every write here asks it
    again first.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection acting as the caller (:func:`spatial.access.request_connection`).
    table : str
        Base table (``onemap.layer_access.table_name``).
    action : {"insert", "update", "delete"}

    Returns
    -------
    int or None
        The caller's user id (None for the anonymous, who may then write).

    Raises
    ------
    AuthenticationError
        An anonymous caller whose role may not (401).
    PermissionDeniedError
        A signed-in caller whose roles may not (403).
    """
    allowed, user_id = fetch_tuples(
        conn, "SELECT onemap.can_write(%s, %s), onemap.request_user_id()", (table, action)
    )[0]
    if allowed:
        return user_id if user_id is None else int(user_id)
    verb, zh = _VERBS[action]
    if user_id is None:
        raise AuthenticationError(
            f"sign in to {verb} features of layer {table!r} / 请先登录再{zh} {table} 图层要素")
    raise PermissionDeniedError(
        f"your role may not {verb} features of layer {table!r} / 当前角色无权{zh} {table} 图层要素")


def _personal(table: str, column: str) -> bool:
    return column in PERSONAL_COLUMNS or table in PERSONAL_TABLES


def _properties(
    target: _Target, props: Mapping[str, Any], *, creating: bool, caller: int | None
) -> dict[str, Any]:
    """The writable values of a feature's properties; unknown names refused."""
    known = target.writable | READ_ONLY | target.derived | {
        c for c, col in target.columns.items() if col.generated}
    known -= {target.geometry} if target.geometry else set()
    unknown = sorted(k for k in props if k not in known)
    if unknown:
        raise InvalidInputError(
            f"unknown properties for {target.name}: {', '.join(unknown)}; editable are "
            f"{', '.join(sorted(target.writable))} / 未知属性: {', '.join(unknown)}")
    values = {k: v for k, v in props.items() if k in target.writable}
    for column in CALLER_COLUMNS.get(target.name, frozenset()):
        if not creating:
            values.pop(column, None)
        elif values.get(column) is not None and str(values[column]) != str(caller):
            raise PermissionDeniedError(
                f"{column} may only name yourself (user {caller}) / {column} 只能填写本人")
    return values


def _check_values(conn: psycopg.Connection[Any], target: _Target, values: dict[str, Any]) -> None:
    """Let PostgreSQL cast every value; name the properties it cannot read."""
    if not values:
        return
    errors = fetch_tuples(
        conn, "SELECT property, message FROM onemap.cast_errors(%s::regclass, %s)",
        (target.regclass, Jsonb(values)),
    )
    if errors:
        parts = [
            f"{name}: not a valid value" if _personal(target.name, name) else f"{name}: {msg}"
            for name, msg in errors
        ]
        names = ", ".join(name for name, _ in errors)
        raise InvalidInputError(
            f"invalid property values: {'; '.join(parts)} / 属性取值有误: {names}")
    # Row-level security checks a row before its foreign keys: ask first, so a
    # reference to nothing is a 400 naming it rather than "outside your scope".
    missing = fetch_tuples(
        conn, "SELECT columns, referenced FROM onemap.missing_references(%s::regclass, %s)",
        (target.regclass, Jsonb(values)),
    )
    if missing:
        names = ", ".join(", ".join(cols) for cols, _ in missing)
        what = "; ".join(f"{', '.join(cols)}: no {ref} with this id" for cols, ref in missing)
        raise InvalidInputError(f"{what} / 关联对象不存在: {names}")


def _check_required(target: _Target, values: Mapping[str, Any], *, creating: bool,
                    has_geometry: bool) -> None:
    if creating:
        missing = [c for c in target.required if values.get(c) is None]
        if target.geometry and target.columns[target.geometry].not_null and not has_geometry:
            missing.append("geometry")
    else:  # an update may leave properties out, but not clear a NOT NULL one
        missing = [c for c, v in values.items() if v is None and target.columns[c].not_null]
    if missing:
        raise InvalidInputError(
            f"missing required properties for {target.name}: {', '.join(missing)} "
            f"/ 缺少必填属性: {', '.join(missing)}")


def _geometry(
    conn: psycopg.Connection[Any], target: _Target, geometry: Any, content_crs: str | None
) -> str | None:
    """Validate a GeoJSON geometry; return it as hex EWKB in the storage CRS."""
    if geometry is None:
        return None
    check_geojson_geometry(geometry)
    srid, northing_first = input_crs(content_crs)
    expr: sql.Composable = sql.SQL("ST_GeomFromGeoJSON(%(g)s)")
    if northing_first:
        expr = sql.SQL("ST_FlipCoordinates({})").format(expr)
    if srid in _SAME_AS_STORAGE:
        expr = sql.SQL("ST_SetSRID({}, {})").format(expr, sql.Literal(STORAGE_SRID))
    else:
        expr = sql.SQL("ST_Transform(ST_SetSRID({}, %(srid)s::integer), {})").format(
            expr, sql.Literal(STORAGE_SRID))
    query = sql.SQL(
        """
        WITH i AS (SELECT ST_Force2D({expr}) AS g)
        SELECT GeometryType(g), ST_IsEmpty(g), ST_IsValid(g), ST_IsValidReason(g),
               CASE WHEN ST_IsValid(g) AND NOT ST_IsEmpty(g) THEN COALESCE(ST_Covers(
                   (SELECT ST_Union(d.geom) FROM onemap.district d), g), false) END,
               g::text, ST_Multi(g)::text
        FROM i
        """
    ).format(expr=expr)
    try:
        with conn.transaction():
            row = fetch_tuples(conn, query, {"g": json.dumps(geometry), "srid": srid})[0]
    except (psycopg.errors.InternalError, psycopg.errors.DataError,
            psycopg.errors.InvalidParameterValue) as exc:
        reason = exc.diag.message_primary or type(exc).__name__
        raise InvalidInputError(f"geometry is not valid GeoJSON: {reason} / 几何图形格式有误") \
            from None
    kind, empty, valid, reason, inside, ewkb, multi = row
    zh = " / 几何图形有误"
    if empty:
        raise InvalidInputError(f"geometry is empty{zh}")
    want = target.geometry_type or "GEOMETRY"
    if want not in ("GEOMETRY", kind):
        if want != f"MULTI{kind}":
            raise InvalidInputError(
                f"geometry of {target.name} must be a {_title(want)}, got a {_title(kind)}"
                f" / 几何类型应为 {_title(want)}")
        ewkb = multi
    if not valid:
        raise InvalidInputError(f"geometry is not valid: {reason}{zh}")
    if not inside:
        raise InvalidInputError("geometry lies outside the district / 几何图形超出辖区范围")
    return str(ewkb)


def _title(kind: str) -> str:
    names = {k.upper(): k for k in (*_DEPTH, "GeometryCollection", "Geometry")}
    return names.get(kind, kind)


def _fill_jurisdiction(
    conn: psycopg.Connection[Any], target: _Target, values: dict[str, Any], ewkb: str | None
) -> None:
    """Fill the table's jurisdiction columns left out, from the given ones and the location."""
    present = [c for c in JURISDICTION if c in target.writable]
    if not present or all(values.get(c) is not None for c in present):
        return
    given = [values.get(c) if c in present else None for c in JURISDICTION]
    row = fetch_tuples(
        conn,
        "SELECT street_office_id, community_id, grid_id FROM onemap.jurisdiction("
        "CAST(%s AS geometry), CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bigint))",
        (ewkb, *(None if v is None else str(v) for v in given)),
    )[0]
    for column, value in zip(JURISDICTION, row, strict=True):
        if column in present and values.get(column) is None:
            values[column] = value


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _describe_constraint(
    conn: psycopg.Connection[Any], target: _Target, name: str | None
) -> tuple[list[str], str, str | None]:
    """Columns, definition and referenced table of a constraint of the table."""
    rows = fetch_tuples(
        conn,
        """
        SELECT array_remove(array_agg(a.attname::text ORDER BY a.attnum), NULL),
               pg_get_constraintdef(c.oid), NULLIF(c.confrelid, 0)::regclass::text
        FROM pg_constraint c
        LEFT JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conname = %s
          AND (c.conrelid = %s::regclass OR c.confrelid = %s::regclass)
        GROUP BY c.oid ORDER BY c.conrelid = %s::regclass DESC LIMIT 1
        """,
        (name, target.regclass, target.regclass, target.regclass),
    )
    if not rows:
        return [], "", None
    return list(rows[0][0] or []), str(rows[0][1]), rows[0][2]


@contextmanager
def _statement(conn: psycopg.Connection[Any], target: _Target, action: Action) -> Iterator[None]:
    """Run a write in a savepoint; turn PostgreSQL's refusals into onemap errors."""
    try:
        with conn.transaction():
            yield
    except psycopg.errors.InsufficientPrivilege:
        # Roles were checked first, so this is the row-level security of the
        # table (130_access.sql): the row would leave the writer's scope.
        raise PermissionDeniedError(
            f"the {target.name} feature would lie outside your data scope "
            "/ 要素超出您的数据范围") from None
    except psycopg.errors.IntegrityError as exc:
        raise _integrity(conn, target, action, exc) from None
    except psycopg.errors.DataError as exc:
        raise InvalidInputError(
            f"invalid value: {exc.diag.message_primary} / 属性取值有误") from None
    except psycopg.errors.RaiseException as exc:  # a trigger's own check
        raise InvalidInputError(f"{exc.diag.message_primary} / 数据校验未通过") from None


def _integrity(
    conn: psycopg.Connection[Any], target: _Target, action: Action, exc: psycopg.Error
) -> InvalidInputError:
    diag = exc.diag
    if isinstance(exc, psycopg.errors.NotNullViolation):
        column = diag.column_name or "?"
        return InvalidInputError(
            f"missing required property {column} / 缺少必填属性: {column}")
    columns, definition, referenced = _describe_constraint(conn, target, diag.constraint_name)
    names = ", ".join(columns) or (diag.constraint_name or "?")
    if isinstance(exc, psycopg.errors.CheckViolation):
        allowed = [v.replace("''", "'") for v in _QUOTED.findall(definition)]
        hint = f" (allowed: {', '.join(allowed)})" if "ARRAY[" in definition and allowed else ""
        return InvalidInputError(
            f"{names}: value not allowed by {diag.constraint_name}{hint} / 属性取值不合法: {names}")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        if action == "delete" or diag.table_name != target.name:
            other = diag.table_name or "another table"
            return InvalidInputError(
                f"the {target.name} feature is still referenced by {other}; "
                f"move or delete those first / 要素仍被 {other} 引用，无法删除")
        what = (referenced or "").rsplit(".", 1)[-1] or "row"
        return InvalidInputError(f"{names}: no {what} with this id / 关联对象不存在: {names}")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return InvalidInputError(
            f"another {target.name} feature already has this {names} / 属性值重复: {names}")
    return InvalidInputError(f"{diag.message_primary} / 数据校验未通过")


def _populate(target: _Target, columns: list[str]) -> tuple[sql.Composable, sql.Composable]:
    """Column list and the matching select list from ``jsonb_populate_record``."""
    return (
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in columns),
    )


def _record(target: _Target) -> sql.Composed:
    return sql.SQL("jsonb_populate_record(NULL::{}, %(doc)s) AS r").format(target.ident())


def _current_version(
    conn: psycopg.Connection[Any], target: _Target, row_id: int | str
) -> tuple[bool, int | None]:
    """Whether the caller sees the row, and its version."""
    version = sql.SQL("t.version") if target.has_version else sql.SQL("NULL::integer")
    rows = fetch_tuples(
        conn,
        sql.SQL("SELECT {} FROM {} AS t WHERE t.id = %s").format(version, target.ident()),
        (row_id,),
    )
    return (bool(rows), rows[0][0] if rows else None)


def _precondition(target: _Target, if_match: IfMatch | None, version: int | None) -> None:
    if if_match is None:
        return
    if not target.has_version and not if_match.any:
        raise InvalidInputError(
            f"layer {target.name} has no row version; only If-Match: * is understood "
            "/ 该图层不支持版本校验")
    if not if_match.matches(version):
        raise ConflictError(
            f"the {target.name} feature changed since it was read: its ETag is now "
            f"{format_etag(version) if version is not None else 'none'} "
            "/ 要素已被他人修改，请重新读取后再提交")


def _not_found(target: _Target, row_id: int | str) -> NotFoundError:
    return NotFoundError(f"{target.name} has no feature {row_id} / 要素不存在")


def _if_match(if_match: str | IfMatch | None) -> IfMatch | None:
    """An ``If-Match`` argument as parsed, whether given as the header or already parsed."""
    return parse_if_match(if_match) if isinstance(if_match, str | None) else if_match


def _check_existing(
    conn: psycopg.Connection[Any], target: _Target, row_id: int | str, if_match: IfMatch | None
) -> None:
    """Before a write: a 404 unless the caller sees the row, a 412 if ``If-Match`` fails."""
    seen, version = _current_version(conn, target, row_id)
    if not seen:
        raise _not_found(target, row_id)
    _precondition(target, if_match, version)


def _version_clause(target: _Target, if_match: IfMatch | None) -> tuple[sql.Composable, list[int]]:
    if if_match is None or if_match.any or not target.has_version:
        return sql.SQL(""), []
    return sql.SQL(" AND t.version = ANY(%(versions)s::integer[])"), list(if_match.versions)


def _missed(
    conn: psycopg.Connection[Any], target: _Target, row_id: int | str,
    if_match: IfMatch | None, action: Action,
) -> Exception:
    """Why a conditional UPDATE or DELETE matched no row."""
    seen, version = _current_version(conn, target, row_id)
    if not seen:
        return _not_found(target, row_id)
    try:
        _precondition(target, if_match, version)
    except ConflictError as exc:
        return exc
    verb, zh = _VERBS[action]
    return PermissionDeniedError(
        f"you may not {verb} this {target.name} feature (outside your data scope) "
        f"/ 无权{zh}该要素（超出数据范围）")


def create_feature(
    conn: psycopg.Connection[Any],
    table: str,
    body: bytes | str | Mapping[str, Any],
    *,
    content_crs: str | None = None,
) -> WriteResult:
    """Insert a feature into ``onemap.<table>`` as the connection's caller.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection acting as the caller (:func:`spatial.access.request_connection`),
        inside a transaction or in autocommit.
    table : str
        Base table (the layer's name).
    body : bytes, str or mapping
        A GeoJSON Feature; ``id`` is assigned by the server.
    content_crs : str, optional
        The ``Content-Crs`` header; CRS84 when None.

    Returns
    -------
    WriteResult
        The new id and version, or the stored event for a resend.

    Raises
    ------
    AuthenticationError
        An anonymous caller (401).
    PermissionDeniedError
        The caller's roles may not insert into the layer, or the row would lie
        outside their data scope (403).
    InvalidInputError
        Bad body, property, value or geometry (400).
    NotFoundError
        No such table.
    """
    target = _target(conn, table)
    caller = check_can_write(conn, target.name, "insert")
    feature = parse_feature(body)
    values = _properties(target, feature["properties"], creating=True, caller=caller)
    _check_required(target, values, creating=True,
                    has_geometry=feature.get("geometry") is not None)
    _check_values(conn, target, values)
    ewkb = _geometry(conn, target, feature.get("geometry"), content_crs) \
        if target.geometry else None
    _fill_jurisdiction(conn, target, values, ewkb)
    if target.geometry and ewkb is not None:
        values[target.geometry] = ewkb

    keys = [k for k in IDEMPOTENCY_KEYS.get(target.name, ())
            if all(values.get(c) is not None for c in k)]
    columns = list(values)
    version = sql.SQL("t.version") if target.has_version else sql.SQL("NULL::integer")
    if columns:
        cols, picks = _populate(target, columns)
        query = sql.SQL(
            "INSERT INTO {t} AS t ({cols}) SELECT {picks} FROM {rec} {conflict} "
            "RETURNING t.id, {version}"
        ).format(t=target.ident(), cols=cols, picks=picks, rec=_record(target), version=version,
                 conflict=sql.SQL("ON CONFLICT DO NOTHING") if keys else sql.SQL(""))
    else:
        query = sql.SQL("INSERT INTO {t} AS t DEFAULT VALUES RETURNING t.id, {version}").format(
            t=target.ident(), version=version)
    with _statement(conn, target, "insert"):
        rows = fetch_tuples(conn, query, {"doc": Jsonb(values)})
    if rows:
        LOGGER.debug("created %s %s", target.name, rows[0][0])
        return WriteResult(rows[0][0], rows[0][1])
    return _replayed(conn, target, keys, values)


def _replayed(
    conn: psycopg.Connection[Any], target: _Target, keys: list[tuple[str, ...]],
    values: Mapping[str, Any],
) -> WriteResult:
    """The row a resend collided with (idempotent create)."""
    for key in keys:
        where = sql.SQL(" AND ").join(
            sql.SQL("t.{c} = r.{c}").format(c=sql.Identifier(c)) for c in key)
        query = sql.SQL("SELECT t.id, t.version FROM {t} AS t, {rec} WHERE {where}").format(
            t=target.ident(), rec=_record(target), where=where)
        rows = fetch_tuples(conn, query, {"doc": Jsonb({c: values[c] for c in key})})
        if rows:
            LOGGER.info("%s %s sent again (%s): the stored one is returned",
                        target.name, rows[0][0], ", ".join(key))
            return WriteResult(rows[0][0], rows[0][1], replayed=True)
    names = " or ".join(", ".join(k) for k in keys)
    raise PermissionDeniedError(
        f"a {target.name} feature with this {names} exists outside your data scope "
        "/ 相同编号的要素已存在且超出您的数据范围")


def update_feature(
    conn: psycopg.Connection[Any],
    table: str,
    identifier: int | str,
    body: bytes | str | Mapping[str, Any],
    *,
    if_match: str | IfMatch | None = None,
    content_crs: str | None = None,
) -> WriteResult:
    """Replace the named properties (and the geometry, when sent) of a feature.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection acting as the caller.
    table : str
        Base table.
    identifier : int or str
        The feature id (from the URL); an ``id`` in the body must agree.
    body : bytes, str or mapping
        A GeoJSON Feature; properties left out keep their values.
    if_match : str or IfMatch, optional
        The ``If-Match`` header: the write happens only while the row has one
        of these versions.
    content_crs : str, optional
        The ``Content-Crs`` header.

    Returns
    -------
    WriteResult
        The id and the new version.

    Raises
    ------
    NotFoundError
        No such feature, or not visible to the caller (404).
    ConflictError
        ``If-Match`` does not match the current version (412); nothing written.
    AuthenticationError, PermissionDeniedError, InvalidInputError
        As for :func:`create_feature`.
    """
    target = _target(conn, table)
    caller = check_can_write(conn, target.name, "update")
    condition = _if_match(if_match)
    row_id = target.row_id(identifier)
    feature = parse_feature(body)
    if feature.get("id") is not None and str(feature["id"]) != str(row_id):
        raise InvalidInputError(
            f"the feature's id {feature['id']!r} differs from the URL's {row_id} "
            "/ 要素编号与地址不一致")
    _check_existing(conn, target, row_id, condition)

    values = _properties(target, feature["properties"], creating=False, caller=caller)
    _check_values(conn, target, values)
    _check_required(target, values, creating=False, has_geometry=True)
    if target.geometry and feature.get("geometry") is not None:
        ewkb = _geometry(conn, target, feature["geometry"], content_crs)
        present = [c for c in JURISDICTION if c in target.writable]
        if present and not any(c in values for c in present):
            # moved without naming its units: 属地 follows the new location
            _fill_jurisdiction(conn, target, values, ewkb)
        values[target.geometry] = ewkb

    columns = list(values)
    cond, versions = _version_clause(target, condition)
    returning = sql.SQL("t.version") if target.has_version else sql.SQL("NULL::integer")
    assignment: sql.Composable
    if columns:
        cols, picks = _populate(target, columns)
        assignment = sql.SQL("({cols}) = (SELECT {picks} FROM {rec})").format(
            cols=cols, picks=picks, rec=_record(target))
    else:  # nothing to change: still a write (version, audit), as PUT of the same feature
        assignment = sql.SQL("id = t.id")
    query = sql.SQL("UPDATE {t} AS t SET {set} WHERE t.id = %(id)s{cond} RETURNING {ret}").format(
        t=target.ident(), set=assignment, cond=cond, ret=returning)
    with _statement(conn, target, "update"):
        rows = fetch_tuples(conn, query, {"doc": Jsonb(values), "id": row_id,
                                          "versions": versions})
    if not rows:
        raise _missed(conn, target, row_id, condition, "update")
    LOGGER.debug("updated %s %s", target.name, row_id)
    return WriteResult(row_id, rows[0][0])


def delete_feature(
    conn: psycopg.Connection[Any],
    table: str,
    identifier: int | str,
    *,
    if_match: str | IfMatch | None = None,
) -> None:
    """Delete a feature as the connection's caller.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection acting as the caller.
    table : str
        Base table.
    identifier : int or str
        The feature id.
    if_match : str or IfMatch, optional
        The ``If-Match`` header.

    Raises
    ------
    NotFoundError
        No such feature, or not visible to the caller (404).
    ConflictError
        ``If-Match`` does not match (412); nothing deleted.
    AuthenticationError, PermissionDeniedError
        As for :func:`create_feature`.
    InvalidInputError
        Other rows still refer to the feature (a household with residents).
    """
    target = _target(conn, table)
    check_can_write(conn, target.name, "delete")
    condition = _if_match(if_match)
    row_id = target.row_id(identifier)
    _check_existing(conn, target, row_id, condition)
    cond, versions = _version_clause(target, condition)
    query = sql.SQL("DELETE FROM {t} AS t WHERE t.id = %(id)s{cond} RETURNING t.id").format(
        t=target.ident(), cond=cond)
    with _statement(conn, target, "delete"):
        rows = fetch_tuples(conn, query, {"id": row_id, "versions": versions})
    if not rows:
        raise _missed(conn, target, row_id, condition, "delete")
    LOGGER.debug("deleted %s %s", target.name, row_id)
