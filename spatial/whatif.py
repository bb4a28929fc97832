"""What-if scenarios (假设情景): named, stored sets of edits an analysis applies in memory.

A scenario never changes the stored city. It is a list of edits, each parsed
and validated once here (:func:`parse_edits`: a 400 naming the edit's index
and field) and checked against what the caller may see through the caller's
connection (:func:`check_edits`: a 404 naming the edit):

==================  ============================================================
``close_road``      ``road_ids``: roads taken out of the network
``valve_fails``     ``valve_ids``: valves that fail to close when asked to
``remove_facility`` ``collection``, ``id``: a facility out of service
``add_facility``    ``collection`` and an existing ``id`` put into service, or a
                    new one at ``point`` (``x``, ``y``, ``crs``) with
                    ``attributes`` (``name``, ``capacity``)
``set_capacity``    ``collection``, ``id``, ``capacity``: a changed capacity
==================  ============================================================

The store is ``onemap.scenario`` (``185_whatif.sql``), read and written on
the caller's connection (:func:`spatial.access.request_connection`), so
row-level security decides who sees what: owners their own, a shared
scenario the staff of the owner's street office, a district administrator
all; only the owner changes or deletes one. The analyses read a
:class:`Scenario`'s edits through its helpers (:meth:`Scenario.closed_roads`,
:meth:`Scenario.origins` …); ``scenarios/service_area.py`` is the first.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial.crs import parse_crs, to_storage
from spatial.db import fetch_dicts
from spatial.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from spatial.wellformed import check_json_value

LOGGER = logging.getLogger(__name__)

#: Prefix of every scenario input error.
INVALID = "invalid scenario / 情景无效"
#: Facility collections an edit may name, with their capacity column.
FACILITY_COLLECTIONS: Mapping[str, str] = {"refuse_facility": "capacity_t_per_day"}
#: Edit types.
EDIT_TYPES = ("close_road", "valve_fails", "remove_facility", "add_facility", "set_capacity")
#: At most this many edits per scenario, and ids per edit.
MAX_EDITS = 200
MAX_IDS = 1000
#: A new facility farther than this from every district is outside the city.
CITY_MARGIN_M = 5000.0
_BODY_KEYS = frozenset({"name", "description", "shared", "edits"})


def _bad(where: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"{INVALID}: {where}: {reason}")


def _unseen(where: str, what: str, ids: Sequence[int]) -> NotFoundError:
    shown = ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")
    return NotFoundError(f"{where}: no {what} with id {shown} / 无此要素")


# Edits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseRoad:
    """Roads closed: their rows leave the road network."""

    road_ids: tuple[int, ...]
    type: str = "close_road"

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"type": self.type, "road_ids": list(self.road_ids)}


@dataclass(frozen=True)
class ValveFails:
    """Valves that fail to close when an incident is isolated."""

    valve_ids: tuple[int, ...]
    type: str = "valve_fails"

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"type": self.type, "valve_ids": list(self.valve_ids)}


@dataclass(frozen=True)
class RemoveFacility:
    """A facility out of service."""

    collection: str
    id: int
    type: str = "remove_facility"

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"type": self.type, "collection": self.collection, "id": self.id}


@dataclass(frozen=True)
class NewPoint:
    """Where a new facility stands: as given and in EPSG:4490."""

    x: float
    y: float
    crs: int | str
    lon: float
    lat: float

    @property
    def wkt(self) -> str:
        """WKT in EPSG:4490."""
        return f"POINT ({self.lon!r} {self.lat!r})"


@dataclass(frozen=True)
class AddFacility:
    """A facility put into service: an existing one (``id``) or a new one (``point``)."""

    collection: str
    id: int | None = None
    point: NewPoint | None = None
    name: str | None = None
    capacity: float | None = None
    type: str = "add_facility"

    def to_json(self) -> dict[str, Any]:
        """The stored form (the point as given, with its CRS)."""
        out: dict[str, Any] = {"type": self.type, "collection": self.collection}
        if self.id is not None:
            out["id"] = self.id
        if self.point is not None:
            crs = self.point.crs if isinstance(self.point.crs, str) else f"EPSG:{self.point.crs}"
            out["point"] = {"x": self.point.x, "y": self.point.y, "crs": crs}
        attributes = {k: v for k, v in (("name", self.name), ("capacity", self.capacity))
                      if v is not None}
        if attributes:
            out["attributes"] = attributes
        return out


@dataclass(frozen=True)
class SetCapacity:
    """A facility's capacity changed."""

    collection: str
    id: int
    capacity: float
    type: str = "set_capacity"

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"type": self.type, "collection": self.collection, "id": self.id,
                "capacity": self.capacity}


Edit = CloseRoad | ValveFails | RemoveFacility | AddFacility | SetCapacity

_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # required, optional
    "close_road": (frozenset({"road_ids"}), frozenset()),
    "valve_fails": (frozenset({"valve_ids"}), frozenset()),
    "remove_facility": (frozenset({"collection", "id"}), frozenset()),
    "add_facility": (frozenset({"collection"}), frozenset({"id", "point", "attributes"})),
    "set_capacity": (frozenset({"collection", "id", "capacity"}), frozenset()),
}


def _id(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise _bad(where, f"must be a positive integer id, got {value!r} / 须为正整数编号")
    return value


def _ids(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise _bad(where, f"must be a non-empty list of ids, got {value!r} / 须为非空编号列表")
    if len(value) > MAX_IDS:
        raise _bad(where, f"at most {MAX_IDS} ids, got {len(value)} / 编号过多")
    return tuple(sorted({_id(f"{where}[{i}]", v) for i, v in enumerate(value)}))


def _capacity(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 <= value <= 1e9:
        raise _bad(where, f"must be a number from 0 to 1e9, got {value!r} / 须为 0 至 1e9 的数")
    return float(value)


def _collection(where: str, value: Any) -> str:
    if value not in FACILITY_COLLECTIONS:
        raise _bad(where, f"must be one of {', '.join(FACILITY_COLLECTIONS)}, got "
                          f"{str(value)[:64]!r} / 不支持的设施图层")
    return str(value)


def _point(where: str, value: Any) -> NewPoint:
    if not isinstance(value, dict) or not {"x", "y"} <= value.keys() \
            or not value.keys() <= {"x", "y", "crs"}:
        raise _bad(where, "must be an object {x, y, crs} / 须为 {x, y, crs} 对象")
    x, y = value["x"], value["y"]
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _bad(f"{where}.{name}", f"must be a number, got {v!r} / 须为数字")
    try:
        crs = parse_crs(value.get("crs", "EPSG:4326"))
        lon_a, lat_a = to_storage([float(x)], [float(y)], crs)
    except (TypeError, ValueError) as exc:
        raise _bad(f"{where}.crs", str(exc)) from None
    lon, lat = float(lon_a[0]), float(lat_a[0])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise _bad(where, f"({x}, {y}) is outside the longitude/latitude range / 超出经纬度范围")
    return NewPoint(float(x), float(y), crs, lon, lat)


def _attributes(where: str, value: Any) -> tuple[str | None, float | None]:
    if not isinstance(value, dict) or not value.keys() <= {"name", "capacity"}:
        raise _bad(where, "must be an object with name and/or capacity / 仅可含 name 与 capacity")
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 200):
        raise _bad(f"{where}.name", "must be a text of 1 to 200 characters / 须为 1–200 字的文本")
    capacity = value.get("capacity")
    return (name.strip() if name else None,
            None if capacity is None else _capacity(f"{where}.capacity", capacity))


def parse_edit(index: int, raw: Any) -> Edit:
    """One edit from its JSON form.

    Parameters
    ----------
    index : int
        Its position in the list (named in errors as ``edits[index]``).
    raw : dict
        ``{"type": ..., ...}``.

    Returns
    -------
    Edit

    Raises
    ------
    InvalidInputError
        Naming ``edits[index]`` and the field that is wrong.

    Examples
    --------
    >>> parse_edit(0, {"type": "close_road", "road_ids": [7, 3, 7]})
    CloseRoad(road_ids=(3, 7), type='close_road')
    >>> parse_edit(2, {"type": "set_capacity", "collection": "refuse_facility", "id": 4,
    ...                "capacity": -1})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid scenario / 情景无效: edits[2].capacity: must be \
a number from 0 to 1e9, got -1 / 须为 0 至 1e9 的数
    """
    where = f"edits[{index}]"
    if not isinstance(raw, dict):
        raise _bad(where, f"must be an object, got {type(raw).__name__} / 须为对象")
    kind = raw.get("type")
    if kind not in _KEYS:
        raise _bad(f"{where}.type", f"must be one of {', '.join(EDIT_TYPES)}, got "
                                    f"{str(kind)[:64]!r} / 未知的改动类型")
    required, optional = _KEYS[kind]
    keys = set(raw) - {"type"}
    if missing := sorted(required - keys):
        raise _bad(where, f"{kind} needs {', '.join(missing)} / 缺少字段")
    if unknown := sorted(keys - required - optional):
        raise _bad(where, f"{kind} takes no {', '.join(unknown)[:200]} / 多余字段")
    if kind == "close_road":
        return CloseRoad(_ids(f"{where}.road_ids", raw["road_ids"]))
    if kind == "valve_fails":
        return ValveFails(_ids(f"{where}.valve_ids", raw["valve_ids"]))
    collection = _collection(f"{where}.collection", raw["collection"])
    if kind == "remove_facility":
        return RemoveFacility(collection, _id(f"{where}.id", raw["id"]))
    if kind == "set_capacity":
        return SetCapacity(collection, _id(f"{where}.id", raw["id"]),
                           _capacity(f"{where}.capacity", raw["capacity"]))
    if ("id" in raw) == ("point" in raw):
        raise _bad(where, "add_facility needs either id (an existing facility) or point "
                          "(a new one) / 请给出 id 或 point 之一")
    name, capacity = _attributes(f"{where}.attributes", raw.get("attributes", {}))
    if "id" in raw:
        return AddFacility(collection, id=_id(f"{where}.id", raw["id"]), name=name,
                           capacity=capacity)
    return AddFacility(collection, point=_point(f"{where}.point", raw["point"]), name=name,
                       capacity=capacity)


def parse_edits(raw: Any) -> tuple[Edit, ...]:
    """The edits of a scenario from their JSON list (see :func:`parse_edit`).

    Raises
    ------
    InvalidInputError
        Not a list, too many edits, or the first bad edit (by index and field).
    """
    if not isinstance(raw, list):
        raise _bad("edits", f"must be a list, got {type(raw).__name__} / 须为列表")
    if len(raw) > MAX_EDITS:
        raise _bad("edits", f"at most {MAX_EDITS} edits, got {len(raw)} / 改动过多")
    return tuple(parse_edit(i, e) for i, e in enumerate(raw))


def _existing(conn: psycopg.Connection[Any], table: str, ids: Sequence[int]) -> set[int]:
    query = sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier("onemap", table))
    return {r["id"] for r in fetch_dicts(conn, query, (list(ids),))}


def check_edits(conn: psycopg.Connection[Any], edits: Sequence[Edit]) -> None:
    """Every id an edit names exists and is visible to the caller; new points lie in the city.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (row-level security: an id the caller may not
        see reads as absent).
    edits : sequence of Edit

    Raises
    ------
    NotFoundError
        ``edits[i]: no road with id … / 无此要素`` — absent and hidden read the same.
    InvalidInputError
        A new facility's point outside the city.
    """
    for i, edit in enumerate(edits):
        where = f"edits[{i}]"
        table: str
        ids: tuple[int, ...]
        if isinstance(edit, CloseRoad):
            table, ids = "road", edit.road_ids
        elif isinstance(edit, ValveFails):
            table, ids = "valve", edit.valve_ids
        elif isinstance(edit, AddFacility) and edit.point is not None:
            row = fetch_dicts(conn, "SELECT onemap.near_city(ST_GeomFromText(%s, 4490), %s) AS n",
                              (edit.point.wkt, CITY_MARGIN_M))
            if not (row and row[0]["n"]):
                raise _bad(f"{where}.point", f"({edit.point.x}, {edit.point.y}) is outside the "
                                             "city / 不在本市范围内")
            continue
        elif isinstance(edit, RemoveFacility | SetCapacity | AddFacility) and edit.id is not None:
            table, ids = edit.collection, (edit.id,)
        else:  # parse_edit gives an add_facility an id or a point
            raise ValueError(f"{where}: unexpected edit {edit!r}")
        seen = _existing(conn, table, ids)
        missing = [j for j in ids if j not in seen]
        if missing:
            raise _unseen(where, table, missing)


def layers_of(edits: Sequence[Edit]) -> list[str]:
    """The base layers (``onemap`` tables) the edits refer to, sorted.

    Examples
    --------
    >>> layers_of([CloseRoad((1,)), RemoveFacility("refuse_facility", 2)])
    ['refuse_facility', 'road']
    """
    out = set()
    for edit in edits:
        if isinstance(edit, CloseRoad):
            out.add("road")
        elif isinstance(edit, ValveFails):
            out.add("valve")
        else:
            out.add(edit.collection)
    return sorted(out)


# Scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A stored scenario.

    Attributes
    ----------
    id : uuid.UUID
    name, description : str
    owner_id : int
        Its author (``app_user.id``).
    shared : bool
        Readable by the staff of the owner's street office.
    edits : tuple of Edit
    layers : tuple of str
        The base layers the edits refer to.
    created_at, updated_at : datetime
    """

    id: uuid.UUID
    name: str
    description: str | None
    owner_id: int
    shared: bool
    edits: tuple[Edit, ...]
    layers: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_json(self, caller_id: int | None = None) -> dict[str, Any]:
        """The JSON form (``mine``: whether ``caller_id`` owns it)."""
        return {
            "id": str(self.id), "name": self.name, "description": self.description,
            "owner_id": self.owner_id, "mine": caller_id is not None and caller_id == self.owner_id,
            "shared": self.shared, "edits": [e.to_json() for e in self.edits],
            "layers": list(self.layers),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    # What the analyses read -------------------------------------------------------

    def closed_roads(self) -> frozenset[int]:
        """Ids of the roads the scenario closes."""
        return frozenset(i for e in self.edits if isinstance(e, CloseRoad) for i in e.road_ids)

    def failed_valves(self) -> frozenset[int]:
        """Ids of the valves that fail to close."""
        return frozenset(i for e in self.edits if isinstance(e, ValveFails) for i in e.valve_ids)

    def removed(self, collection: str) -> frozenset[int]:
        """Ids of the facilities of ``collection`` taken out of service."""
        return frozenset(e.id for e in self.edits
                         if isinstance(e, RemoveFacility) and e.collection == collection)

    def added(self, collection: str) -> tuple[AddFacility, ...]:
        """The facilities of ``collection`` put into service (existing or new)."""
        return tuple(e for e in self.edits
                     if isinstance(e, AddFacility) and e.collection == collection)

    def capacities(self, collection: str) -> dict[int, float]:
        """Changed capacities of facilities of ``collection``, by id (the last edit wins)."""
        return {e.id: e.capacity for e in self.edits
                if isinstance(e, SetCapacity) and e.collection == collection}


def scenario_uuid(value: Any) -> uuid.UUID:
    """A scenario id from a URL or an input.

    Raises
    ------
    NotFoundError
        When it is not a UUID: no such scenario can exist.

    Examples
    --------
    >>> scenario_uuid("../x")
    Traceback (most recent call last):
    spatial.errors.NotFoundError: no scenario '../x' / 无此情景
    """
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise no_scenario(value) from None


def no_scenario(value: Any) -> NotFoundError:
    """The 404 for a scenario the caller cannot see (or that does not exist)."""
    return NotFoundError(f"no scenario {str(value)[:64]!r} / 无此情景")


@dataclass(frozen=True)
class Draft:
    """A scenario as a request body gives it, parsed (not yet checked against the database)."""

    name: str
    description: str | None
    shared: bool
    edits: tuple[Edit, ...] = field(default_factory=tuple)


def parse_body(body: Any) -> Draft:
    """The body of ``POST /scenarios`` or ``PUT /scenarios/{id}`` (the whole scenario).

    ``{"name": ..., "description"?: ..., "shared"?: false, "edits": [...]}``.

    Raises
    ------
    InvalidInputError
        Naming the member that is wrong (``edits[i].field`` for an edit).

    Examples
    --------
    >>> parse_body({"name": " 关闭示范路 ", "edits": []}).name
    '关闭示范路'
    >>> parse_body({"name": "x", "edits": [], "colour": "red"})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid scenario / 情景无效: colour: unknown member / 未知字段
    """
    if not isinstance(body, dict):
        raise _bad("body", "must be a JSON object / 须为 JSON 对象")
    check_json_value(body, INVALID)
    if unknown := sorted(set(body) - _BODY_KEYS):
        raise _bad(", ".join(unknown)[:200], "unknown member / 未知字段")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise _bad("name", "required, a text of 1 to 200 characters / 必填，1–200 字")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 4000):
        raise _bad("description", "a text of at most 4000 characters / 至多 4000 字")
    shared = body.get("shared", False)
    if not isinstance(shared, bool):
        raise _bad("shared", f"must be true or false, got {shared!r} / 须为 true 或 false")
    if "edits" not in body:
        raise _bad("edits", "required (a list, may be empty) / 必填（列表）")
    return Draft(name.strip(), description, shared, parse_edits(body["edits"]))


_COLUMNS = sql.SQL("id, name, description, owner_id, shared, edits, layers, created_at, updated_at")


def _scenario(row: dict[str, Any]) -> Scenario:
    # Stored edits were validated when written; parsing again keeps one reader.
    return Scenario(row["id"], row["name"], row["description"], row["owner_id"], row["shared"],
                    parse_edits(row["edits"]), tuple(row["layers"]), row["created_at"],
                    row["updated_at"])


def create(conn: psycopg.Connection[Any], draft: Draft) -> Scenario:
    """Store a new scenario owned by the caller.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (``onemap.user_id`` set: the owner).
    draft : Draft
        From :func:`parse_body`.

    Returns
    -------
    Scenario

    Raises
    ------
    NotFoundError, InvalidInputError
        From :func:`check_edits`.
    PermissionDeniedError
        An anonymous caller (row-level security refuses the row).
    """
    check_edits(conn, draft.edits)
    try:
        rows = fetch_dicts(conn, sql.SQL("""
            INSERT INTO onemap.scenario (name, description, shared, edits, layers)
            VALUES (%s, %s, %s, %s, %s) RETURNING {}""").format(_COLUMNS),
                           (draft.name, draft.description, draft.shared,
                            Jsonb([e.to_json() for e in draft.edits]), layers_of(draft.edits)))
    except psycopg.errors.InsufficientPrivilege:
        raise PermissionDeniedError("sign in to store scenarios / 请登录后保存情景") from None
    return _scenario(rows[0])


def get(conn: psycopg.Connection[Any], scenario_id: Any) -> Scenario:
    """A scenario the caller may see.

    Raises
    ------
    NotFoundError
        No such scenario, or not visible to the caller (the same answer).
    """
    rows = fetch_dicts(conn, sql.SQL("SELECT {} FROM onemap.scenario WHERE id = %s").format(
        _COLUMNS),
                       (scenario_uuid(scenario_id),))
    if not rows:
        raise no_scenario(scenario_id)
    return _scenario(rows[0])


def list_scenarios(conn: psycopg.Connection[Any], *, limit: int = 100,
                   offset: int = 0) -> tuple[list[Scenario], int]:
    """The scenarios the caller may see, last changed first, and how many there are."""
    rows = fetch_dicts(conn, sql.SQL("""
        SELECT {}, count(*) OVER () AS total FROM onemap.scenario
        ORDER BY updated_at DESC, id LIMIT %s OFFSET %s""").format(_COLUMNS), (limit, offset))
    if not rows and offset:
        total = fetch_dicts(conn, "SELECT count(*) AS n FROM onemap.scenario")[0]["n"]
        return [], int(total)
    return [_scenario(r) for r in rows], int(rows[0]["total"]) if rows else 0


def _owned(conn: psycopg.Connection[Any], scenario_id: Any) -> uuid.UUID:
    """The id of a scenario the caller owns: 404 when unseen, 403 when someone else's."""
    found = get(conn, scenario_id)
    rows = fetch_dicts(conn, "SELECT onemap.request_user_id() AS me")
    if rows[0]["me"] != found.owner_id:
        raise PermissionDeniedError("only the scenario's owner may change or delete it / "
                                    "仅情景创建者可修改或删除")
    return found.id


def update(conn: psycopg.Connection[Any], scenario_id: Any, draft: Draft) -> Scenario:
    """Replace a scenario the caller owns (name, description, shared, edits).

    Raises
    ------
    NotFoundError
        Unseen scenario, or an edit naming an unseen feature.
    PermissionDeniedError
        Someone else's scenario.
    """
    sid = _owned(conn, scenario_id)
    check_edits(conn, draft.edits)
    rows = fetch_dicts(conn, sql.SQL("""
        UPDATE onemap.scenario SET name = %s, description = %s, shared = %s, edits = %s,
               layers = %s WHERE id = %s RETURNING {}""").format(_COLUMNS),
                       (draft.name, draft.description, draft.shared,
                        Jsonb([e.to_json() for e in draft.edits]), layers_of(draft.edits), sid))
    if not rows:  # pragma: no cover - deleted meanwhile
        raise no_scenario(scenario_id)
    return _scenario(rows[0])


def delete(conn: psycopg.Connection[Any], scenario_id: Any) -> None:
    """Delete a scenario the caller owns (404 unseen, 403 someone else's)."""
    sid = _owned(conn, scenario_id)
    fetch_dicts(conn, "DELETE FROM onemap.scenario WHERE id = %s RETURNING id", (sid,))


__all__ = [
    "EDIT_TYPES", "FACILITY_COLLECTIONS", "AddFacility", "CloseRoad", "Draft", "Edit",
    "NewPoint", "RemoveFacility", "Scenario", "SetCapacity", "ValveFails", "check_edits",
    "create", "delete", "get", "layers_of", "list_scenarios", "no_scenario", "parse_body",
    "parse_edit", "parse_edits", "scenario_uuid", "update",
]
