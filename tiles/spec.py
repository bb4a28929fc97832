"""What is in the tiles: ``layers/tiles.yml`` and ``layers/themes.yml``, checked.

:func:`load_spec` reads the two files — each layer of ``tiles.yml`` is a
feature collection, declared there with its title and time field
(:func:`spatial.catalog.load_layers`) — and refuses anything inconsistent
(overlapping zoom levels, unknown kinds, a theme naming no layer) with a
message naming the file and the entry.
:func:`bind_catalog` then checks every declared property, key and order
column against the columns of the views ``layers.<id>`` in the database and
records them, so the SQL built from the spec only ever names known columns.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from spatial.catalog import COLLECTION_KEYS, load_layers
from spatial.db import fetch_tuples
from spatial.errors import ConfigurationError, NotFoundError
from spatial.extents import FALLBACK_BBOX

LOGGER = logging.getLogger(__name__)
#: libyaml's safe loader where PyYAML has it (about 10× faster: the server reads
#: these files at every start), else the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    """A YAML file through the safe loader (``{}`` when empty)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}  # noqa: S506 (safe)

#: Kinds of zoom level: real features or one of the aggregates.
KINDS = frozenset({"features", "count_by", "grid", "lines"})
_WINDOW = re.compile(r"^\d{1,4} (minutes|hours|days)$")
#: JSON Schema of the PostgreSQL types ST_AsMVT encodes natively (others: text).
_MVT_TYPES: dict[str, dict[str, str]] = {
    **{key: {"type": "integer"} for key in ("smallint", "integer", "bigint")},
    **{key: {"type": "number"} for key in ("real", "double precision")},
    "boolean": {"type": "boolean"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "timestamp without time zone": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Side of a rollup cell in EPSG:3857 metres: 1/2^17 of the world, 16 pixels at
#: zoom 13 (``onemap.gps_cell_m()`` in spatial/sql/152_truck_gps_rollup.sql).
WORLD_M = 40075016.68557849
#: The columns a rollup table has (see :attr:`Level.rollup`).
ROLLUP_COLUMNS = frozenset({"hour", "count", "geom", "geom_3857"})
ROLLUP_CELL_M = WORLD_M / 2**17
#: Columns a grid level cannot be split ``by``: the geometries, and ``count``,
#: the property the cells carry.
_NOT_BY = frozenset({"geom", "geom_3857", "count"})
#: ``information_schema`` types a grid level cannot be split ``by``: geometries
#: (and other extension types), and values that are no single comparable scalar.
_NOT_BY_TYPES = frozenset({"USER-DEFINED", "ARRAY", "json", "jsonb", "bytea"})


class SpecError(ValueError):
    """``layers/tiles.yml`` or ``layers/themes.yml`` disagrees with itself or the catalog."""


@dataclass(frozen=True)
class Level:
    """What a layer's tiles carry over a range of (WebMercator) zooms.

    Attributes
    ----------
    zoom : tuple of int
        First and last zoom, inclusive.
    kind : str
        ``features``, ``count_by`` (one point per ``key`` with ``count``),
        ``grid`` (cells of ``cell_px`` pixels with ``count``, one per value of
        ``by`` when given) or ``lines`` (points joined per ``key`` in ``order``).
    properties : tuple of str
        Attributes of real features.
    simplify_px : float
        Simplification tolerance in pixels (0: none).
    key : str or None
        Grouping column of ``count_by`` and ``lines``.
    cell_px : int
        Cell size of ``grid``.
    order : str or None
        Vertex order of ``lines``.
    rollup : str or None
        A ``grid`` level's table in schema ``rollup`` of counts per UTC hour and
        :data:`ROLLUP_CELL_M` Web Mercator cell (``hour``, ``count``, cell
        centres ``geom_3857`` and ``geom``), read instead of counting every row.
    by : str or None
        A ``grid`` level's column splitting each cell: one point per (cell,
        value) carrying ``count`` and the value, so a style can draw open
        events' density and leave the closed ones out.
    """

    zoom: tuple[int, int]
    kind: str
    properties: tuple[str, ...] = ()
    simplify_px: float = 0.0
    key: str | None = None
    cell_px: int = 32
    order: str | None = None
    rollup: str | None = None
    by: str | None = None

    @property
    def carried(self) -> tuple[str, ...]:
        """The properties a tile carries at this level (besides geometry and feature id).

        Examples
        --------
        >>> Level((10, 11), "grid", by="status").carried
        ('status', 'count')
        >>> Level((12, 13), "count_by", key="building_id").carried
        ('building_id', 'count')
        >>> Level((14, 22), "features", properties=("name",)).carried
        ('name',)
        """
        if self.kind == "features":
            return self.properties
        return (*(n for n in (self.key, self.by) if n), "count")


@dataclass(frozen=True)
class LayerSpec:
    """The tiles of one collection (view ``layers.<id>``)."""

    id: str
    title: str
    minzoom: int
    maxzoom: int
    cache_seconds: int
    max_features: int
    order: tuple[tuple[str, bool], ...]  # (column, descending)
    levels: tuple[Level, ...]
    time_field: str | None = None
    #: Without ``datetime=``, only rows this recent (a PostgreSQL interval, e.g.
    #: ``2 hours`` before now) — live layers such as GPS fixes.
    default_window: str | None = None
    #: Extent (lon/lat) from the collection's configuration; feature collections
    #: declare none (their advertised extent comes from the data,
    #: :mod:`spatial.extents`), so the city's fallback box.
    bbox: tuple[float, float, float, float] = FALLBACK_BBOX
    #: Other tables (``onemap.layer_access`` names) the view ``layers.<id>``
    #: reads and that decide what a caller sees in it, e.g. the internal load
    #: readings joined to the public refuse facilities: they count for the
    #: tile cache's scope class (:attr:`LayerSet.tables`).
    reads: tuple[str, ...] = ()
    #: The view shows the current local (Beijing) day, e.g. today's newest load
    #: reading: a cached tile holds only for the day it was drawn.
    daily: bool = False
    #: Filled by :func:`bind_catalog`: the view's columns, their PostgreSQL
    #: types (``information_schema`` ``data_type``) and the geometry type.
    columns: frozenset[str] = frozenset()
    geometry_type: str | None = None
    column_types: tuple[tuple[str, str], ...] = ()

    def property_schema(self, name: str) -> dict[str, str]:
        """JSON Schema of a property as its tiles carry it.

        ``ST_AsMVT`` writes integers, floating-point numbers and booleans as
        such and every other type as its text (timestamps in ISO 8601, numeric
        as decimal text); ``count`` of an aggregate is an integer.

        Examples
        --------
        >>> lyr = LayerSpec("x", "x", 0, 1, 60, 10, (), (), column_types=(
        ...     ("ts", "timestamp with time zone"), ("n", "bigint")))
        >>> lyr.property_schema("ts"), lyr.property_schema("n"), lyr.property_schema("count")
        ({'type': 'string', 'format': 'date-time'}, {'type': 'integer'}, {'type': 'integer'})
        """
        if name == "count" and name not in self.columns:
            return {"type": "integer"}
        return dict(_MVT_TYPES.get(dict(self.column_types).get(name, ""), {"type": "string"}))

    def level(self, zoom: int) -> Level | None:
        """The level serving a WebMercator zoom, None outside the layer's range.

        Examples
        --------
        >>> lyr = LayerSpec("x", "x", 10, 12, 60, 10, (("id", False),),
        ...                 (Level((10, 11), "grid"), Level((12, 12), "features")))
        >>> lyr.level(11).kind, lyr.level(12).kind, lyr.level(13)
        ('grid', 'features', None)
        """
        for lvl in self.levels:
            if lvl.zoom[0] <= zoom <= lvl.zoom[1]:
                return lvl
        return None

    @property
    def cap_rule(self) -> str:
        """The stated rule applied when a tile holds more than ``max_features`` rows."""
        order = ", ".join(f"{c} {'desc' if d else 'asc'}" for c, d in self.order)
        return f"at most {self.max_features} features per tile: the first by {order}"


@dataclass(frozen=True, eq=False)  # hashed by identity: plans are cached per set
class LayerSet:
    """Layers served together as one tileset: one collection, or a theme."""

    id: str
    kind: str  # "collection" or "theme"
    title: Mapping[str, str]
    layers: tuple[LayerSpec, ...]

    @functools.cached_property
    def minzoom(self) -> int:
        """Smallest zoom any layer of the set is in."""
        return min(lyr.minzoom for lyr in self.layers)

    @functools.cached_property
    def maxzoom(self) -> int:
        """Largest zoom any layer of the set is in."""
        return max(lyr.maxzoom for lyr in self.layers)

    @functools.cached_property
    def cache_seconds(self) -> int:
        """Cache lifetime of the set's tiles: its freshest layer's."""
        return min(lyr.cache_seconds for lyr in self.layers)

    @functools.cached_property
    def live_seconds(self) -> int | None:
        """How long a tile of the set stays true by the clock alone, if it does not
        forever: the shortest ``cache_seconds`` of its layers with a default window
        (rows age out of "the last 2 hours" without any edit)."""
        live = [lyr.cache_seconds for lyr in self.layers if lyr.default_window]
        return min(live) if live else None

    @functools.cached_property
    def daily(self) -> bool:
        """Whether a layer of the set shows the current local day (``daily``)."""
        return any(lyr.daily for lyr in self.layers)

    @functools.cached_property
    def tables(self) -> tuple[str, ...]:
        """The tables whose audience decides the set's scope class: every layer's
        own table and the tables it declares under ``reads``.

        Examples
        --------
        >>> lyr = LayerSpec("refuse_facility", "x", 11, 22, 60, 10, (), (),
        ...                 reads=("refuse_load_reading",))
        >>> LayerSet("refuse", "theme", {}, (lyr,)).tables
        ('refuse_facility', 'refuse_load_reading')
        """
        return tuple(sorted({t for lyr in self.layers for t in (lyr.id, *lyr.reads)}))


@dataclass(frozen=True)
class TileSpec:
    """Every layer and theme that has tiles."""

    layers: Mapping[str, LayerSpec]
    themes: Mapping[str, LayerSet]
    _single: dict[str, LayerSet] = field(default_factory=dict, compare=False, repr=False)

    def collection(self, collection_id: str) -> LayerSet:
        """The tileset of one collection.

        Raises
        ------
        NotFoundError
            For a collection without tiles.
        """
        try:
            layer = self.layers[collection_id]
        except KeyError:
            raise NotFoundError(
                f"collection {collection_id!r} has no tiles / 图层不存在或无瓦片") from None
        found = self._single.get(collection_id)
        if found is None:
            found = LayerSet(layer.id, "collection", {"en": layer.title}, (layer,))
            self._single[collection_id] = found
        return found

    def theme(self, theme_id: str) -> LayerSet:
        """A themed tileset.

        Raises
        ------
        NotFoundError
            For an unknown theme.
        """
        try:
            return self.themes[theme_id]
        except KeyError:
            raise NotFoundError(
                f"unknown theme {theme_id!r}; themes: {', '.join(self.themes)} / 专题不存在"
            ) from None


def _zoom_pair(value: Any, where: str) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) for v in value) or value[0] > value[1]):
        raise SpecError(f"{where}: zoom must be [first, last] integers, got {value!r}")
    return value[0], value[1]


def _parse_order(value: Any, where: str) -> tuple[tuple[str, bool], ...]:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: order must be a list of columns, got {value!r}")
    parts = [p.strip() for p in value.split(",")]
    return tuple((p.lstrip("-"), p.startswith("-")) for p in parts if p)


def _parse_level(raw: Any, where: str) -> Level:
    if not isinstance(raw, dict) or len(raw) != 1 or not {"features", "aggregate"} & set(raw):
        raise SpecError(f"{where}: a level is {{features: ...}} or {{aggregate: ...}}, got {raw!r}")
    (what, body), = raw.items()
    if not isinstance(body, dict):
        raise SpecError(f"{where}: {what} must be a mapping, got {body!r}")
    known = {"zoom", "properties", "simplify_px", "kind", "key", "cell_px", "order", "rollup",
             "by"}
    unknown = set(body) - known
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
    kind = "features" if what == "features" else body.get("kind")
    if kind not in KINDS or (what == "aggregate" and kind == "features"):
        raise SpecError(f"{where}: unknown aggregate kind {kind!r}; known: count_by, grid, lines")
    if kind in ("count_by", "lines") and not body.get("key"):
        raise SpecError(f"{where}: {kind} needs a key column")
    rollup = body.get("rollup")
    if rollup is not None and (kind != "grid" or not isinstance(rollup, str)
                               or not _IDENTIFIER.match(rollup)):
        raise SpecError(f"{where}: rollup names a table of a grid level, got {rollup!r}")
    by = body.get("by")
    if by is not None:
        # A rollup table holds counts per hour and cell only: it cannot split them.
        if kind != "grid" or rollup is not None:
            raise SpecError(f"{where}: by splits the cells of a grid level without a rollup, "
                            f"not a {kind} level{' with a rollup' if rollup else ''}")
        if not isinstance(by, str) or not _IDENTIFIER.match(by) or by in _NOT_BY:
            raise SpecError(f"{where}: by names a plain column of the layer (not "
                            f"{', '.join(sorted(_NOT_BY))}), got {by!r}")
    props = body.get("properties", [])
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise SpecError(f"{where}: properties must be a list of column names, got {props!r}")
    return Level(
        zoom=_zoom_pair(body.get("zoom"), where),
        kind=kind,
        properties=tuple(props),
        simplify_px=float(body.get("simplify_px", 0.0)),
        key=body.get("key"),
        cell_px=int(body.get("cell_px", 32)),
        order=body.get("order"),
        rollup=rollup,
        by=by,
    )


def _check_rollup(level: Level, time_field: str | None, where: str) -> None:
    """A rollup level needs a time field, and its cells must nest rollup cells."""
    if time_field is None:
        raise SpecError(f"{where}: rollup {level.rollup!r} needs the layer's time field")
    for z in range(level.zoom[0], level.zoom[1] + 1):
        ratio = level.cell_px * WORLD_M / 256 / 2**z / ROLLUP_CELL_M
        if ratio < 1 or not float(ratio).is_integer() or int(ratio) & (int(ratio) - 1):
            raise SpecError(
                f"{where}: at zoom {z} cells of {level.cell_px} px are not whole multiples of "
                f"the rollup's {ROLLUP_CELL_M:.3f} m cells (16 px at zoom 13)")


def _parse_layer(lid: str, raw: Any, defaults: Mapping[str, Any], title: str,
                 time_field: str | None, bbox: Any = None) -> LayerSpec:
    where = f"layers/tiles.yml: {lid}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a mapping")
    unknown = set(raw) - {"minzoom", "maxzoom", "cache_seconds", "max_features", "order",
                          "levels", "default_window", "reads", "daily"} - COLLECTION_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
    minzoom, maxzoom = _zoom_pair([raw.get("minzoom"), raw.get("maxzoom")], where)
    levels = tuple(_parse_level(lvl, f"{where} level {i}")
                   for i, lvl in enumerate(raw.get("levels") or []))
    covered = sorted(z for lvl in levels for z in range(lvl.zoom[0], lvl.zoom[1] + 1))
    if covered != list(range(minzoom, maxzoom + 1)):
        raise SpecError(f"{where}: levels must cover zooms {minzoom}-{maxzoom} exactly once")
    for lvl in levels:
        if lvl.rollup:
            _check_rollup(lvl, time_field, where)
    window = raw.get("default_window")
    if window is not None and (time_field is None or not isinstance(window, str)
                               or not _WINDOW.match(window)):
        raise SpecError(f"{where}: default_window needs a time field and a value like "
                        f"'2 hours', got {window!r}")
    reads = raw.get("reads") or []
    if (not isinstance(reads, list)
            or not all(isinstance(t, str) and _IDENTIFIER.match(t) and t != lid for t in reads)):
        raise SpecError(f"{where}: reads must be a list of other tables, got {reads!r}")
    daily = raw.get("daily", False)
    if not isinstance(daily, bool):
        raise SpecError(f"{where}: daily must be true or false, got {daily!r}")
    max_features = int(raw.get("max_features", defaults.get("max_features", 20000)))
    if max_features < 1:
        raise SpecError(f"{where}: max_features must be positive, got {max_features}")
    return LayerSpec(
        id=lid, title=title, minzoom=minzoom, maxzoom=maxzoom,
        cache_seconds=int(raw.get("cache_seconds", defaults.get("cache_seconds", 300))),
        max_features=max_features,
        order=_parse_order(raw.get("order", defaults.get("order", "id")), where),
        levels=levels, time_field=time_field, default_window=window,
        bbox=tuple(bbox) if bbox and len(bbox) == 4 else FALLBACK_BBOX,
        reads=tuple(sorted(set(reads))), daily=daily,
    )


def load_spec(tiles_path: Path, themes_path: Path, config_path: Path) -> TileSpec:
    """Read and check the tile declarations.

    Parameters
    ----------
    tiles_path, themes_path : Path
        ``layers/tiles.yml`` and ``layers/themes.yml``.
    config_path : Path
        ``pygeoapi-config.yml``: with ``tiles.yml``, what
        :func:`spatial.catalog.load_layers` reads the collections from; each layer
        is a feature collection with its tiles, its title and time field.

    Returns
    -------
    TileSpec

    Raises
    ------
    SpecError
        Naming the file, the entry and what is wrong (the collections'
        declarations too).
    """
    try:
        collections = {cid: c for cid, c in load_layers(tiles_path, config_path).items()
                       if c.kind == "feature"}
    except ConfigurationError as exc:
        raise SpecError(str(exc)) from exc
    raw = _read_yaml(tiles_path)
    themes_raw = _read_yaml(themes_path)
    declared = raw.get("layers") or {}
    defaults = raw.get("defaults") or {}
    layers = {lid: _parse_layer(lid, body, defaults, collections[lid].title["en"],
                                collections[lid].time_field, collections[lid].bbox)
              for lid, body in declared.items()}
    themes: dict[str, LayerSet] = {}
    for tid, body in themes_raw.items():
        body = body or {}
        unknown_keys = sorted(set(body) - {"title", "layers", "include"})
        if unknown_keys:
            raise SpecError(f"layers/themes.yml: {tid}: unknown keys {unknown_keys}")
        ids = body.get("layers") or []
        unknown = [lid for lid in ids if lid not in layers]
        if unknown or not ids:
            raise SpecError(f"layers/themes.yml: {tid}: unknown or no layers {unknown}")
        themes[tid] = LayerSet(tid, "theme", dict(body.get("title") or {"en": tid}),
                               tuple(layers[lid] for lid in _theme_layers(tid, body, themes)))
    return TileSpec(layers, themes)


def _theme_layers(tid: str, body: Mapping[str, Any],
                  earlier: Mapping[str, LayerSet]) -> list[str]:
    """A theme's layer ids: those of the themes it ``include``s, then its own, each once.

    An included theme must be declared above (no cycles); its layers come first,
    in its order, because they are drawn underneath (the base map); a layer of
    the theme already included keeps the included position.

    Examples
    --------
    >>> base = LayerSet("base", "theme", {}, tuple(
    ...     LayerSpec(i, i, 0, 1, 60, 10, (), ()) for i in ("land_use", "grid", "road")))
    >>> _theme_layers("t", {"include": ["base"], "layers": ["grid", "event"]}, {"base": base})
    ['land_use', 'grid', 'road', 'event']
    """
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(t, str) for t in include):
        raise SpecError(f"layers/themes.yml: {tid}: include must be a list of theme ids, "
                        f"got {include!r}")
    ids: list[str] = []
    for other in include:
        if other not in earlier:
            raise SpecError(f"layers/themes.yml: {tid}: include names {other!r}, which is "
                            f"not a theme declared above it")
        ids.extend(lyr.id for lyr in earlier[other].layers)
    ids.extend(body.get("layers") or [])
    return list(dict.fromkeys(ids))


def view_tables(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """The ``onemap`` tables each published view ``layers.<id>`` reads (its own included).

    Parameters
    ----------
    conn : psycopg.Connection
        Any connection to the application database.
    """
    out: dict[str, set[str]] = {}
    for view, table in fetch_tuples(conn, """
            SELECT view_name::text, table_name::text FROM information_schema.view_table_usage
            WHERE view_schema = 'layers' AND table_schema = 'onemap'"""):
        out.setdefault(view, set()).add(table)
    return out


def bind_catalog(spec: TileSpec, conn: psycopg.Connection[Any]) -> TileSpec:
    """Check the spec against the views ``layers.<id>`` and record their columns.

    Parameters
    ----------
    spec : TileSpec
        From :func:`load_spec`.
    conn : psycopg.Connection
        Any connection to the application database.

    Returns
    -------
    TileSpec
        The same layers with ``columns`` and ``geometry_type`` filled.

    Raises
    ------
    SpecError
        A view is missing, a declared property, key, order or ``by`` column is
        not one of its columns, a ``by`` column is no plain column (a
        geometry, an array, JSON), a ``reads`` table is not read by the view, or the
        view of a public layer reads a non-public table it does not declare
        under ``reads`` (its tiles would be shared by callers who see
        different values).
    """
    rows = fetch_tuples(conn, """
        SELECT c.table_name, array_agg(c.column_name::text), array_agg(c.data_type::text)
        FROM information_schema.columns c
        WHERE c.table_schema = 'layers'
        GROUP BY c.table_name""")
    columns = {name: frozenset(cols) for name, cols, _ in rows}
    types = {name: tuple(zip(cols, dtypes, strict=True)) for name, cols, dtypes in rows}
    gtypes = dict(fetch_tuples(conn, """
        SELECT f_table_name::text, type::text FROM geometry_columns
        WHERE f_table_schema = 'onemap' AND f_geometry_column = 'geom'"""))
    rollups = {name: frozenset(cols) for name, cols in fetch_tuples(conn, """
        SELECT c.table_name, array_agg(c.column_name::text)
        FROM information_schema.columns c
        WHERE c.table_schema = 'rollup'
        GROUP BY c.table_name""")}
    # What each view reads besides its own table, and how public those are.
    audience = dict(fetch_tuples(conn, "SELECT table_name, audience FROM onemap.layer_access"))
    view_reads = {view: tables - {view} for view, tables in view_tables(conn).items()}
    bound: dict[str, LayerSpec] = {}
    problems = []
    for lid, layer in spec.layers.items():
        cols = columns.get(lid)
        if cols is None:
            problems.append(f"{lid}: no view layers.{lid}")
            continue
        wanted = {c for c, _ in layer.order} | ({layer.time_field} - {None})
        for lvl in layer.levels:
            wanted |= set(lvl.properties) | ({lvl.key, lvl.order, lvl.by} - {None})
        wanted |= {"id", "geom"}
        unknown = sorted(str(c) for c in wanted - cols)
        if unknown:
            problems.append(f"{lid}: columns {unknown} are not in layers.{lid}")
        read = view_reads.get(lid, set())
        stray = sorted(set(layer.reads) - read)
        if stray:
            problems.append(f"{lid}: reads {stray} but layers.{lid} does not read them")
        if audience.get(lid) == "public":
            hidden = sorted(t for t in read - set(layer.reads) if audience.get(t) != "public")
            if hidden:
                problems.append(f"{lid}: layers.{lid} reads non-public {hidden}: declare them "
                                f"under reads so its tiles are cached per scope class")
        gtype = gtypes.get(lid)
        if gtype is None and lid == "resident":  # at its household's point
            gtype = gtypes.get("household")
        bound[lid] = dataclasses.replace(layer, columns=cols, geometry_type=gtype,
                                         column_types=types[lid])
        for lvl in layer.levels:
            by_type = dict(types[lid]).get(lvl.by) if lvl.by else None
            if by_type in _NOT_BY_TYPES:
                problems.append(f"{lid}: grid cells split by {lvl.by!r}, a {by_type} column "
                                f"of layers.{lid}; by needs a plain column (text, a number, "
                                f"a date, a boolean)")
            if lvl.rollup:
                missing = sorted(ROLLUP_COLUMNS - rollups.get(lvl.rollup, frozenset()))
                if missing:
                    problems.append(f"{lid}: rollup table rollup.{lvl.rollup} lacks {missing}")
    if problems:
        raise SpecError("layers/tiles.yml disagrees with the database: " + "; ".join(problems))
    themes = {tid: dataclasses.replace(t, layers=tuple(bound[lyr.id] for lyr in t.layers))
              for tid, t in spec.themes.items()}
    return TileSpec(bound, themes)


def default_paths(layers_dir: Path, config_path: Path) -> tuple[Path, Path, Path]:
    """``layers/tiles.yml``, ``layers/themes.yml`` and the pygeoapi configuration."""
    return layers_dir / "tiles.yml", layers_dir / "themes.yml", config_path


__all__ = ["LayerSet", "LayerSpec", "Level", "SpecError", "TileSpec", "bind_catalog",
           "load_spec"]
