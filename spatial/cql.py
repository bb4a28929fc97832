"""CQL2 filters (OGC API Features Part 3) translated into SQL with bound values.

A filter is parsed with pygeofilter (``cql2-text`` or ``cql2-json``) and its
AST walked here: every property name is checked against the table's
published columns and quoted with :class:`psycopg.sql.Identifier`; every
value becomes a ``%s`` placeholder whose value goes into the parameter list.
pygeofilter's own SQL backends are not used because they format values into
the SQL text.

The translated fragment refers to the table as ``t`` (as
:mod:`spatial.features` does).

A filter's size is bounded (:func:`check_filter_size`, applied by
:func:`parse_filter` and :func:`to_sql`): at most :data:`MAX_FILTER_NODES`
terms and :data:`MAX_FILTER_DEPTH` levels of nesting, where a chain of the same
operator (``a AND b AND c …``) is one level, however long: pygeofilter parses
it into a left-deep tree, which is translated here as one flat ``AND`` list,
without recursion. A ``cql2-json`` text is also held to
:data:`spatial.wellformed.MAX_JSON_DEPTH` before it is decoded.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from psycopg import sql
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from spatial.catalog import Column, Table
from spatial.errors import InvalidInputError, NotFoundError
from spatial.wellformed import check_json_value, loads

LOGGER = logging.getLogger(__name__)

#: Filter languages :func:`parse_filter` understands.
LANGUAGES = ("cql2-text", "cql2-json")
#: Most terms in a filter: operators, properties, functions and values (a
#: geometry literal counts as one). Each value is a bound parameter, and
#: PostgreSQL takes at most 65,535 per statement.
MAX_FILTER_NODES = 10_000
#: Deepest nesting of a filter's expression; a chain of one operator
#: (``a AND b AND c …``, however long) is one level.
MAX_FILTER_DEPTH = 32
#: The geometry column spatial predicates apply to; ``geometry`` is its CQL2 alias.
GEOMETRY_COLUMN = "geom"
_GEOMETRY_ALIASES = {"geom", "geometry"}
_NUMERIC_UDTS = {"int2", "int4", "int8", "numeric", "float4", "float8"}
_TEXT_UDTS = {"text", "varchar", "bpchar", "name"}
_TIME_UDTS = {"timestamptz", "timestamp", "date"}
_METRE_UNITS = {"m", "meter", "meters", "metre", "metres"}

_COMPARISONS: dict[type[ast.Node], str] = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
_ARITHMETIC: dict[type[ast.Node], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mul: "*",
    ast.Div: "/",
}
_SPATIAL: dict[type[ast.Node], str] = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps",
    ast.GeometryEquals: "ST_Equals",
}
#: Temporal predicate with its operands swapped (literal first → property first).
_TEMPORAL_MIRROR: dict[type[ast.Node], type[ast.Node]] = {
    ast.TimeBefore: ast.TimeAfter,
    ast.TimeAfter: ast.TimeBefore,
    ast.TimeDuring: ast.TimeContains,
    ast.TimeContains: ast.TimeDuring,
    ast.TimeMeets: ast.TimeMetBy,
    ast.TimeMetBy: ast.TimeMeets,
    ast.TimeEquals: ast.TimeEquals,
    ast.TimeOverlaps: ast.TimeOverlaps,
}

_TRUE = sql.SQL("TRUE")
_FALSE = sql.SQL("FALSE")


def parse_filter(text: str | dict[str, Any], lang: str = "cql2-text") -> ast.Node:
    """Parse a CQL2 filter.

    Parameters
    ----------
    text : str or dict
        The filter; for ``cql2-json`` a JSON string or its decoded object.
    lang : {"cql2-text", "cql2-json"}
        The filter language.

    Returns
    -------
    pygeofilter.ast.Node
        The filter's syntax tree.

    Raises
    ------
    InvalidInputError
        For an unknown language or a malformed filter (the message carries the
        parser's reason, its first line), or one over the limits
        (:func:`check_filter_size`).

    Examples
    --------
    >>> parse_filter("floors > 6")
    GreaterThan(lhs=ATTRIBUTE floors, rhs=6)
    >>> parse_filter("floors >")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: malformed cql2-text filter: Unexpected end of input...
    """
    if lang not in LANGUAGES:
        raise InvalidInputError(f"filter-lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    if lang == "cql2-json":
        # pygeofilter decodes and walks the JSON by recursion: bound it first.
        try:
            if isinstance(text, str):
                text = loads(text, "the filter")
            else:
                check_json_value(text, "the filter")
        except InvalidInputError as exc:
            raise InvalidInputError(f"malformed {lang} filter: {exc}") from None
    try:
        node = parse_cql2_text(text) if lang == "cql2-text" else parse_cql2_json(text)
    except Exception as exc:  # lark, json and pygeofilter raise many kinds
        reason = _first_line(exc)
        if type(exc).__name__ == "UnexpectedEOF" or "$END" in str(exc):
            reason = "Unexpected end of input"
        raise InvalidInputError(f"malformed {lang} filter: {reason}") from None
    if not isinstance(node, ast.Node):
        raise InvalidInputError(f"malformed {lang} filter: not a predicate")
    check_filter_size(node)
    return node


def _children(item: Any) -> list[Any]:
    """What a filter term holds: sub-nodes, list members, a geometry's members."""
    if isinstance(item, ast.Node):
        return list(item.get_sub_nodes())
    if isinstance(item, values.Geometry):
        return [item.geometry]
    if isinstance(item, dict):
        return list(item.values())
    if isinstance(item, list | tuple):
        return list(item)
    if isinstance(item, values.Interval):
        return [item.start, item.end]
    return []


def _chain(node: ast.Node) -> list[Any]:
    """The operands of a chain of one operator, in order, without recursion.

    ``(a AND b) AND (c AND d)`` gives ``[a, b, c, d]``.
    """
    kind = type(node)
    out: list[Any] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if type(item) is kind:
            stack.extend(reversed(item.get_sub_nodes()))
        else:
            out.append(item)
    return out


def check_filter_size(node: ast.Node) -> None:
    """Refuse a filter with too many terms or nested too deep, walking it without recursion.

    Parameters
    ----------
    node : pygeofilter.ast.Node
        A parsed filter.

    Raises
    ------
    InvalidInputError
        More than :data:`MAX_FILTER_NODES` terms, or more than
        :data:`MAX_FILTER_DEPTH` levels; a chain of one operator
        (``a AND b AND c …``) is one level however long.

    Examples
    --------
    >>> check_filter_size(parse_filter(" AND ".join(["floors > 1"] * 500)))
    >>> deep = "floors > 1"
    >>> for level in range(40):
    ...     deep = f"(floors < 0 {'OR' if level % 2 else 'AND'} {deep})"
    >>> parse_filter(deep)
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: filter nests more than 32 levels deep (a chain of AND \
or OR counts as one); at most 32 are accepted / 过滤条件嵌套过深
    """
    terms = 0
    stack: list[tuple[Any, int, bool]] = [(node, 1, True)]
    while stack:
        item, depth, counted = stack.pop()
        if depth > MAX_FILTER_DEPTH:
            raise InvalidInputError(
                f"filter nests more than {MAX_FILTER_DEPTH} levels deep (a chain of AND or OR "
                f"counts as one); at most {MAX_FILTER_DEPTH} are accepted / 过滤条件嵌套过深")
        if counted:
            terms += 1
            if terms > MAX_FILTER_NODES:
                raise InvalidInputError(
                    f"filter has more than {MAX_FILTER_NODES} terms (operators, properties "
                    f"and values); at most {MAX_FILTER_NODES} are accepted / 过滤条件过长")
        children = _chain(item) if isinstance(item, ast.And | ast.Or) else _children(item)
        # a geometry literal is one term, its members only count towards depth
        inside = counted and not isinstance(item, values.Geometry)
        stack.extend((child, depth + 1, inside) for child in children)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return reason[:200]


@dataclass
class _Translator:
    table: Table
    northing_first: bool
    params: list[Any] = field(default_factory=list)

    @property
    def srid(self) -> int:
        if GEOMETRY_COLUMN not in self.table.geometry:
            raise InvalidInputError(f"{self.table.name} has no geometry to filter on")
        return self.table.geometry[GEOMETRY_COLUMN][1]

    # -- names and values ---------------------------------------------------

    def column(self, name: str) -> Column:
        try:
            col = self.table.column(name)
        except NotFoundError:
            col = None
        if col is None or col.is_geometry or col not in self.table.published:
            raise InvalidInputError(f"{self.table.name} has no queryable property {name!r}")
        return col

    def bind(self, value: Any, like: Column | None = None) -> sql.Composable:
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"filter number must be finite, got {value!r}")
        if isinstance(value, values.Geometry | values.Envelope | values.Interval):
            raise InvalidInputError(f"a {type(value).__name__.lower()} is not a scalar value")
        if not isinstance(value, str | bool | int | float | date | datetime):
            raise InvalidInputError(f"unsupported filter value {type(value).__name__}")
        self.params.append(value)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if like is None or (numeric and like.udt in _NUMERIC_UDTS):
            # A number stays a number: casting 6.5 to an integer column would round it.
            return sql.SQL("%s")
        # Cast the value, not the column, so an index on the column is usable.
        return sql.SQL("CAST(%s AS {})").format(sql.Identifier(like.udt))

    def column_of(self, node: Any) -> Column | None:
        if isinstance(node, ast.Attribute):
            return self.column(node.name)
        if isinstance(node, ast.Function) and node.name == "lower" and len(node.arguments) == 1:
            return self.column_of(node.arguments[0])
        return None

    def expr(self, node: Any, like: Column | None = None) -> sql.Composable:
        if isinstance(node, ast.Attribute):
            return sql.SQL("t.{}").format(sql.Identifier(self.column(node.name).name))
        if isinstance(node, ast.Function):
            if node.name == "lower" and len(node.arguments) == 1:  # CASEI
                return sql.SQL("lower({})").format(self.expr(node.arguments[0], like))
            raise InvalidInputError(f"unsupported filter function {node.name!r}")
        if isinstance(node, ast.Arithmetic):
            op = _ARITHMETIC[type(node)]
            # In double precision: CQL2 arithmetic is neither integer division nor
            # bounded by a column's integer type, so no row can overflow it.
            lhs = sql.SQL("CAST({} AS double precision)").format(self.expr(node.lhs))
            rhs = self.expr(node.rhs)
            if op == "/":  # a zero divisor gives NULL (no match), not an error mid-stream
                rhs = sql.SQL("NULLIF({}, 0)").format(rhs)
            return sql.SQL("({} {} {})").format(lhs, sql.SQL(op), rhs)
        if isinstance(node, ast.Node):
            raise InvalidInputError(f"a {type(node).__name__} is not a value")
        return self.bind(node, like)

    # -- predicates -----------------------------------------------------------

    def predicate(self, node: Any) -> sql.Composable:
        if isinstance(node, ast.And | ast.Or):
            # one flat list: a left-deep tree of 500 ANDs nests neither here nor in psycopg
            joiner = " AND " if isinstance(node, ast.And) else " OR "
            return sql.SQL("({})").format(
                sql.SQL(joiner).join([self.predicate(part) for part in _chain(node)])
            )
        if isinstance(node, ast.Not):
            return sql.SQL("NOT ({})").format(self.predicate(node.sub_node))
        if isinstance(node, ast.Include):
            return _FALSE if node.not_ else _TRUE
        if isinstance(node, ast.Comparison):
            like = self.column_of(node.lhs) or self.column_of(node.rhs)
            return sql.SQL("{} {} {}").format(
                self.expr(node.lhs, like),
                sql.SQL(_COMPARISONS[type(node)]),
                self.expr(node.rhs, like),
            )
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.Between):
            like = self.column_of(node.lhs)
            return sql.SQL("{} {}BETWEEN {} AND {}").format(
                self.expr(node.lhs, like),
                sql.SQL("NOT " if node.not_ else ""),
                self.expr(node.low, like),
                self.expr(node.high, like),
            )
        if isinstance(node, ast.In):
            like = self.column_of(node.lhs)
            return sql.SQL("{} {}IN ({})").format(
                self.expr(node.lhs, like),
                sql.SQL("NOT " if node.not_ else ""),
                sql.SQL(", ").join([self.expr(v, like) for v in node.sub_nodes]),
            )
        if isinstance(node, ast.IsNull):
            if isinstance(node.lhs, ast.Attribute) and node.lhs.name in _GEOMETRY_ALIASES:
                self.srid  # noqa: B018 - raises when the table has no geometry
                target: sql.Composable = sql.SQL("t.{}").format(sql.Identifier(GEOMETRY_COLUMN))
            else:
                target = self.expr(node.lhs)
            return sql.SQL("{} IS {}NULL").format(target, sql.SQL("NOT " if node.not_ else ""))
        if isinstance(node, ast.TemporalPredicate):
            return self.temporal(node)
        if isinstance(node, ast.SpatialComparisonPredicate):
            geom, other = self.spatial_operands(node.lhs, node.rhs)
            return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[type(node)]), geom, other)
        if isinstance(node, ast.BBox):
            if node.crs is not None:
                raise InvalidInputError("BBOX with a CRS is not supported; use filter-crs")
            geom, _ = self.spatial_operands(node.lhs, None)
            env = self.envelope(node.minx, node.miny, node.maxx, node.maxy)
            return sql.SQL("ST_Intersects({}, {})").format(geom, env)
        if isinstance(node, ast.Relate):
            geom, other = self.spatial_operands(node.lhs, node.rhs)
            self.params.append(str(node.pattern))
            return sql.SQL("ST_Relate({}, {}, %s)").format(geom, other)
        if isinstance(node, ast.SpatialDistancePredicate):
            return self.distance(node)
        raise InvalidInputError(f"unsupported filter operation {type(node).__name__}")

    def like(self, node: ast.Like) -> sql.Composable:
        col = self.column_of(node.lhs)
        lhs = self.expr(node.lhs)
        if col is not None and col.udt not in _TEXT_UDTS:
            lhs = sql.SQL("CAST({} AS text)").format(lhs)
        pattern = node.pattern
        if isinstance(pattern, ast.Function) and pattern.name == "lower" and pattern.arguments:
            pattern_sql: sql.Composable = sql.SQL("lower({})").format(
                self.expr(pattern.arguments[0])
            )
        elif isinstance(pattern, str):
            # CQL2 LIKE wildcards (%, _, backslash escape) are SQL's own.
            pattern_sql = self.bind(pattern)
        else:
            raise InvalidInputError("LIKE needs a text pattern")
        op = "ILIKE" if node.nocase else "LIKE"
        return sql.SQL("{} {}{} {}").format(
            lhs, sql.SQL("NOT " if node.not_ else ""), sql.SQL(op), pattern_sql
        )

    # -- time -----------------------------------------------------------------

    def temporal(self, node: ast.TemporalPredicate) -> sql.Composable:
        kind: type[ast.Node] = type(node)
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            if kind not in _TEMPORAL_MIRROR:
                raise InvalidInputError(f"unsupported temporal operation {kind.__name__}")
            kind, lhs, rhs = _TEMPORAL_MIRROR[kind], rhs, lhs
        if not isinstance(lhs, ast.Attribute):
            raise InvalidInputError("a temporal predicate needs a property")
        col = self.column(lhs.name)
        if col.udt not in _TIME_UDTS:
            raise InvalidInputError(f"{col.name!r} is not a date or time property")
        x = sql.SQL("t.{}").format(sql.Identifier(col.name))
        if isinstance(rhs, values.Interval):
            start, end = rhs.start, rhs.end
        elif isinstance(rhs, date | datetime):
            start = end = rhs
        else:
            raise InvalidInputError("a temporal predicate needs an instant or an interval")
        for bound in (start, end):
            if bound is not None and not isinstance(bound, date | datetime):
                raise InvalidInputError("interval ends must be dates or timestamps")

        def cmp(op: str, value: Any) -> sql.Composable:
            return sql.SQL("{} {} {}").format(x, sql.SQL(op), self.bind(value, col))

        def both(*parts: sql.Composable | None) -> sql.Composable:
            kept = [p for p in parts if p is not None]
            return sql.SQL("({})").format(sql.SQL(" AND ").join(kept)) if kept else _TRUE

        # The column holds instants; an open interval end drops that bound.
        if kind is ast.TimeBefore:
            return cmp("<", start) if start is not None else _FALSE
        if kind is ast.TimeAfter:
            return cmp(">", end) if end is not None else _FALSE
        if kind is ast.TimeEquals:
            if start is None or end is None:
                return _FALSE
            return both(cmp("=", start), cmp("=", end))
        if kind is ast.TimeOverlaps:  # pygeofilter parses T_INTERSECTS as this
            return both(
                cmp(">=", start) if start is not None else None,
                cmp("<=", end) if end is not None else None,
            )
        if kind is ast.TimeDuring:
            if not isinstance(rhs, values.Interval):
                raise InvalidInputError("T_DURING needs an interval")
            return both(
                cmp(">", start) if start is not None else None,
                cmp("<", end) if end is not None else None,
            )
        if kind is ast.TimeMeets:
            return cmp("=", start) if start is not None else _FALSE
        if kind is ast.TimeMetBy:
            return cmp("=", end) if end is not None else _FALSE
        raise InvalidInputError(f"unsupported temporal operation {kind.__name__}")

    # -- space ----------------------------------------------------------------

    def spatial_operands(self, lhs: Any, rhs: Any) -> tuple[sql.Composable, sql.Composable]:
        def is_geom(n: Any) -> bool:
            return isinstance(n, ast.Attribute) and n.name in _GEOMETRY_ALIASES

        if not is_geom(lhs) and is_geom(rhs):
            raise InvalidInputError("put the geometry property first in a spatial predicate")
        if not is_geom(lhs):
            name = lhs.name if isinstance(lhs, ast.Attribute) else type(lhs).__name__
            raise InvalidInputError(f"{self.table.name} has no geometry property {name!r}")
        srid = self.srid
        geom = sql.SQL("t.{}").format(sql.Identifier(GEOMETRY_COLUMN))
        if rhs is None:
            return geom, _TRUE
        return geom, self.geometry_literal(rhs, srid)

    def geometry_literal(self, node: Any, srid: int) -> sql.Composable:
        if isinstance(node, values.Geometry):
            geometry = {k: v for k, v in node.geometry.items() if k != "crs"}
            self.params.append(json.dumps(geometry))
            out = sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON(%s), {})").format(sql.Literal(srid))
            if self.northing_first:
                out = sql.SQL("ST_FlipCoordinates({})").format(out)
            return out
        if isinstance(node, values.Envelope):
            # pygeofilter fills Envelope positionally from a cql2-json
            # bbox [minx, miny, maxx, maxy]; its field names do not match.
            return self.envelope(node.x1, node.x2, node.y1, node.y2)
        if isinstance(node, ast.Function) and node.name == "bbox" and len(node.arguments) == 4:
            return self.envelope(*node.arguments)
        raise InvalidInputError("a spatial predicate needs a geometry or bbox literal")

    def envelope(self, minx: Any, miny: Any, maxx: Any, maxy: Any) -> sql.Composable:
        try:
            box = [float(v) for v in (minx, miny, maxx, maxy)]
        except (TypeError, ValueError):
            raise InvalidInputError("bbox needs 4 numbers") from None
        if not all(math.isfinite(v) for v in box) or box[0] > box[2] or box[1] > box[3]:
            raise InvalidInputError(f"bbox must be finite with minimum ≤ maximum: {box}")
        self.params.extend(box)
        return sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(self.srid))

    def distance(self, node: ast.SpatialDistancePredicate) -> sql.Composable:
        geom, other = self.spatial_operands(node.lhs, node.rhs)
        units = str(node.units or "meters").lower()
        if units in _METRE_UNITS:
            metres = float(node.distance)
        elif units in {"km", "kilometer", "kilometers", "kilometre", "kilometres"}:
            metres = float(node.distance) * 1000
        else:
            raise InvalidInputError(f"distance units must be metres or kilometres, got {units!r}")
        if not math.isfinite(metres) or metres < 0:
            raise InvalidInputError(f"distance must be a non-negative number, got {node.distance}")
        self.params.append(metres)
        within = sql.SQL("ST_DWithin({}::geography, {}::geography, %s)").format(geom, other)
        if isinstance(node, ast.DistanceWithin):
            return within
        return sql.SQL("NOT {}").format(within)


def to_sql(
    node: ast.Node, table: Table, *, northing_first: bool = False
) -> tuple[sql.Composable, list[Any]]:
    """Translate a parsed CQL2 filter into a WHERE fragment and its values.

    Parameters
    ----------
    node : pygeofilter.ast.Node
        The filter, from :func:`parse_filter` or pygeoapi.
    table : spatial.catalog.Table
        The table filtered, aliased ``t`` in the query.
    northing_first : bool
        Geometry literals have latitude first (pygeoapi hands them over so
        after transforming them into EPSG:4490's authority axis order).
        Bounding boxes are always longitude first.

    Returns
    -------
    tuple
        The fragment (placeholders ``%s``) and the list of values to bind.

    Raises
    ------
    InvalidInputError
        For an unknown or personal property, an unsupported operation, a
        value that cannot be used, or a filter over the limits
        (:func:`check_filter_size`: pygeoapi parses filters itself).

    Examples
    --------
    >>> from spatial.catalog import Column, Table
    >>> table = Table("lamp", (Column("status", "text", "text"),))
    >>> fragment, params = to_sql(parse_filter("status = 'fault'"), table)
    >>> params
    ['fault']
    >>> to_sql(parse_filter("phone = '1'"), table)
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: lamp has no queryable property 'phone'
    """
    check_filter_size(node)
    translator = _Translator(table, northing_first)
    fragment = translator.predicate(node)
    return fragment, translator.params
