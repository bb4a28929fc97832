"""Grid drill-down statistics (网格统计): population, households, tagged residents
and events for an admin unit or any polygon, per level down the hierarchy:
street office → community → grid (sub-grids under their parent) → building.

Only counts are computed; no resident's fields leave the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from spatial.errors import InvalidInputError, NotFoundError

UNIT_LEVELS = ("street_office", "community", "grid")
_UNIT_FILTER = {
    # buildings and events belong to a unit through their (finest) grid
    "street_office": "c.street_office_id = %(unit)s",
    "community": "g.community_id = %(unit)s",
    "grid": "g.id IN (SELECT id FROM sub)",
}


@dataclass
class StatsNode:
    """Statistics of one unit, with its children.

    Attributes
    ----------
    level : str
        ``area``, ``street_office``, ``community``, ``grid`` or ``building``.
    id : int or None
        The unit's id (None for a free polygon).
    name : str
        Its name.
    households, occupied, residents, elderly : int
        Counts (elderly: 65 and over on the reference date).
    tags : Counter
        Residents per tag (``elderly_alone``, ``disabled`` …).
    events : Counter
        Events per status (grids and above).
    children : list of StatsNode
        The next level down.
    """

    level: str
    id: int | None
    name: str
    households: int = 0
    occupied: int = 0
    residents: int = 0
    elderly: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    children: list[StatsNode] = field(default_factory=list)

    def add(self, other: StatsNode) -> None:
        """Add another node's counts into this one."""
        self.households += other.households
        self.occupied += other.occupied
        self.residents += other.residents
        self.elderly += other.elderly
        self.tags.update(other.tags)
        self.events.update(other.events)

    def find(self, level: str, id_: int) -> StatsNode | None:
        """The node of a level and id below (or at) this one."""
        if self.level == level and self.id == id_:
            return self
        for child in self.children:
            found = child.find(level, id_)
            if found is not None:
                return found
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready tree."""
        return {
            "level": self.level, "id": self.id, "name": self.name,
            "households": self.households, "occupied": self.occupied,
            "residents": self.residents, "elderly": self.elderly,
            "tags": dict(sorted(self.tags.items())), "events": dict(sorted(self.events.items())),
            "children": [c.to_dict() for c in self.children],
        }


_SUBGRIDS = (
    "WITH RECURSIVE sub AS ("
    " SELECT id FROM onemap.grid WHERE id = %(unit)s"
    " UNION ALL SELECT g.id FROM onemap.grid g JOIN sub ON g.parent_id = sub.id) "
)


def _members(conn: psycopg.Connection[Any], select: str, table: str, level: str | None,
             unit_id: int | None, polygon_wkt: str | None,
             grid_col: str = "grid_id") -> list[dict[str, Any]]:
    """Rows of ``table`` (alias x, with a grid_id and geom) in the unit or polygon,
    with their grid's community and street office."""
    where = _UNIT_FILTER[level] if polygon_wkt is None and level is not None else (
        "ST_Intersects(ST_GeomFromText(%(wkt)s, 4490), "
        "CASE WHEN GeometryType(x.geom) LIKE '%%POLYGON' "
        "THEN ST_PointOnSurface(x.geom) ELSE x.geom END)")
    query = sql.SQL(
        _SUBGRIDS + "SELECT {select}, x.{grid} AS grid_id, g.community_id, c.street_office_id "
        "FROM {table} x JOIN onemap.grid g ON g.id = x.{grid} "
        "JOIN onemap.community c ON c.id = g.community_id WHERE " + where
    ).format(select=sql.SQL(select), table=sql.Identifier("onemap", table),
             grid=sql.Identifier(grid_col))
    return conn.execute(query, {"unit": unit_id, "wkt": polygon_wkt}).fetchall()


def grid_statistics(
    conn: psycopg.Connection[Any],
    *,
    level: str | None = None,
    unit_id: int | None = None,
    polygon_wkt: str | None = None,
    as_of: date | None = None,
    depth: str = "building",
) -> StatsNode:
    """Statistics of an admin unit or a polygon, as a drill-down tree.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection (dict rows).
    level, unit_id : str, int
        An admin unit: ``street_office``, ``community`` or ``grid`` and its id.
    polygon_wkt : str
        Or any polygon (WKT, EPSG:4490): buildings whose representative point
        lies in it count.
    as_of : date, optional
        Reference date for ages (default: today).
    depth : str
        Deepest level in the tree: ``community``, ``grid`` or ``building``.

    Returns
    -------
    StatsNode
        The root (the unit, or ``area`` for a polygon) with children down to ``depth``.

    Raises
    ------
    InvalidInputError
        For neither or both of unit and polygon, an unknown level or depth, a bad polygon.
    NotFoundError
        For an unknown unit.
    """
    if (polygon_wkt is None) == (level is None or unit_id is None):
        raise InvalidInputError("give either level and unit_id, or polygon_wkt")
    if level is not None and level not in UNIT_LEVELS:
        raise InvalidInputError(f"level must be one of {', '.join(UNIT_LEVELS)}, got {level!r}")
    if depth not in ("community", "grid", "building"):
        raise InvalidInputError(f"depth must be community, grid or building, got {depth!r}")
    as_of = as_of or date.today()
    try:
        buildings = _members(conn, "x.id, x.name", "building", level, unit_id, polygon_wkt)
        event_rows = _members(conn, "x.status", "event", level, unit_id, polygon_wkt)
        grid_rows = _members(conn, "x.id", "grid", level, unit_id, polygon_wkt, grid_col="id")
    except (psycopg.errors.DataError, psycopg.errors.InternalError) as exc:  # bad WKT
        raise InvalidInputError(f"polygon: {exc.diag.message_primary}") from None

    names: dict[tuple[str, int], tuple[str, int | None]] = {}
    for lvl, query in (
        ("street_office", "SELECT id, name, NULL::bigint AS parent_id FROM onemap.street_office"),
        ("community", "SELECT id, name, street_office_id AS parent_id FROM onemap.community"),
        ("grid", "SELECT id, name, parent_id FROM onemap.grid"),
    ):
        for r in conn.execute(query).fetchall():
            names[(lvl, r["id"])] = (r["name"], r["parent_id"])
    if level is not None and unit_id is not None and (level, unit_id) not in names:
        raise NotFoundError(f"no {level} with id {unit_id}")

    stats = {r["building_id"]: r for r in conn.execute(
        "SELECT * FROM onemap.building_statistics(%s, %s)",
        ([b["id"] for b in buildings], as_of)).fetchall()}

    root = (StatsNode("area", None, "polygon") if level is None or unit_id is None
            else StatsNode(level, unit_id, names[(level, unit_id)][0]))
    nodes: dict[tuple[str, int | None], StatsNode] = {(root.level, root.id): root}
    linked: set[tuple[tuple[str, int | None], tuple[str, int | None]]] = set()

    def path(row: dict[str, Any]) -> list[StatsNode]:
        """Nodes from just below the root down to the row's finest grid, linked as a tree."""
        grids: list[tuple[str, int | None]] = []
        gid: int | None = row["grid_id"]
        while gid is not None:
            grids.append(("grid", gid))
            gid = names[("grid", gid)][1]
        keys = [("street_office", row["street_office_id"]),
                ("community", row["community_id"]), *reversed(grids)]
        root_key = (root.level, root.id)
        if root_key in keys:
            keys = keys[keys.index(root_key) + 1:]
        if depth == "community":
            keys = [k for k in keys if k[0] != "grid"]
        out, parent_key = [], root_key
        for key in keys:
            if key not in nodes:
                nodes[key] = StatsNode(key[0], key[1], names[key][0])
            if (parent_key, key) not in linked:
                nodes[parent_key].children.append(nodes[key])
                linked.add((parent_key, key))
            out.append(nodes[key])
            parent_key = key
        return out

    for g in grid_rows:  # every grid shows, an empty one with zeros
        path(g)
    for b in buildings:
        leaf = StatsNode("building", b["id"], b["name"] or str(b["id"]))
        s = stats.get(b["id"])
        if s is not None:
            leaf.households, leaf.occupied = int(s["households"]), int(s["occupied"])
            leaf.residents, leaf.elderly = int(s["residents"]), int(s["elderly"])
            leaf.tags.update({k: int(v) for k, v in s["tags"].items()})
        chain = path(b)
        for n in chain:
            n.add(leaf)
        root.add(leaf)
        if depth == "building":
            (chain[-1] if chain else root).children.append(leaf)
    for e in event_rows:
        for n in [*path(e), root]:
            n.events[e["status"]] += 1
    return root


#: Levels of a statistics tree whose units have a geometry, with their tables.
_SHAPED = ("street_office", "community", "grid", "building")


def unit_features(conn: psycopg.Connection[Any], root: StatsNode,
                  polygon_wkt: str | None = None) -> list[dict[str, Any]]:
    """The units of a statistics tree as GeoJSON features with their figures.

    Parameters
    ----------
    conn : psycopg.Connection
        The connection the tree was computed on (dict rows): a unit the
        caller cannot see has no geometry and is left out.
    root : StatsNode
        From :func:`grid_statistics`.
    polygon_wkt : str, optional
        The polygon of an ``area`` root (WKT, EPSG:4490), drawn as its feature.

    Returns
    -------
    list of dict
        One feature per node, depth first from the root: ``id``
        (``level.id``), geometry (EPSG:4490 lon/lat) and properties
        ``level``, ``unit_id``, ``name``, ``parent`` (the parent feature's
        id), ``households``, ``occupied``, ``residents``, ``elderly``,
        ``tags``, ``events``.
    """
    nodes: list[tuple[StatsNode, StatsNode | None]] = []
    pending: list[tuple[StatsNode, StatsNode | None]] = [(root, None)]
    while pending:
        node, parent = pending.pop()
        nodes.append((node, parent))
        pending.extend((c, node) for c in reversed(node.children))
    wanted: dict[str, list[int]] = {}
    for node, _ in nodes:
        if node.level in _SHAPED and node.id is not None:
            wanted.setdefault(node.level, []).append(node.id)
    shapes: dict[tuple[str, int | None], Any] = {}
    for level, ids in wanted.items():
        query = sql.SQL("SELECT id, ST_AsGeoJSON(geom, 9)::json AS geometry FROM {} "
                        "WHERE id = ANY(%s)").format(sql.Identifier("onemap", level))
        for r in conn.execute(query, (ids,)).fetchall():
            shapes[(level, r["id"])] = r["geometry"]
    if polygon_wkt is not None:
        row = conn.execute("SELECT ST_AsGeoJSON(ST_GeomFromText(%s, 4490), 9)::json AS g",
                           (polygon_wkt,)).fetchone()
        shapes[("area", None)] = row["g"] if row else None

    def key(node: StatsNode) -> str:
        return node.level if node.id is None else f"{node.level}.{node.id}"

    features = []
    for node, parent in nodes:
        geometry = shapes.get((node.level, node.id))
        if geometry is None:
            continue
        features.append({
            "type": "Feature", "id": key(node), "geometry": geometry,
            "properties": {
                "level": node.level, "unit_id": node.id, "name": node.name,
                "parent": None if parent is None else key(parent),
                "households": node.households, "occupied": node.occupied,
                "residents": node.residents, "elderly": node.elderly,
                "tags": dict(sorted(node.tags.items())),
                "events": dict(sorted(node.events.items())),
            },
        })
    return features
