"""What the server publishes and what the database holds.

:func:`load_layers` reads the collections from the files declaring them (the
layers of ``layers/tiles.yml``, the coverages of ``pygeoapi-config.yml``), with
``${VAR}`` substituted as pygeoapi does; :func:`get_table` describes the tables
and views of the schema. Identifiers coming from configuration or requests are
checked against this catalog before they are quoted into SQL (as tipg does).
"""

from __future__ import annotations

import copy
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from spatial.db import SCHEMA, fetch_tuples
from spatial.errors import ConfigurationError, NotFoundError
from spatial.privacy import PERSONAL_COLUMNS

#: PostgreSQL type → JSON Schema type (and format) for queryables.
_JSON_TYPES: dict[str, tuple[str, str | None]] = {
    "smallint": ("integer", None),
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "numeric": ("number", None),
    "real": ("number", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "date": ("string", "date"),
    "timestamp with time zone": ("string", "date-time"),
    "timestamp without time zone": ("string", "date-time"),
    "time without time zone": ("string", "time"),
    "interval": ("string", "duration"),
    "uuid": ("string", "uuid"),
    "jsonb": ("object", None),
    "json": ("object", None),
    "ARRAY": ("array", None),
}


@dataclass(frozen=True)
class Column:
    """A column of a table.

    Attributes
    ----------
    name : str
        Column name.
    data_type : str
        ``information_schema`` data type (``USER-DEFINED`` for geometry).
    udt : str
        Underlying type name (``geometry``, ``int8``, ``_text`` …).
    """

    name: str
    data_type: str
    udt: str

    @property
    def is_geometry(self) -> bool:
        """Whether the column holds a PostGIS geometry."""
        return self.udt == "geometry"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the column's values (for queryables and schemas)."""
        kind, fmt = _JSON_TYPES.get(self.data_type, ("string", None))
        out: dict[str, Any] = {"type": kind}
        if fmt:
            out["format"] = fmt
        return out


@dataclass(frozen=True)
class Table:
    """A table or view of the application schema.

    Attributes
    ----------
    name : str
        Table or view name, unqualified.
    columns : tuple of Column
        In table order.
    geometry : dict
        Geometry column → (geometry type, SRID).
    schema : str
        :data:`spatial.db.SCHEMA` for the model's tables, :data:`LAYERS_SCHEMA`
        for the published layer views.
    """

    name: str
    columns: tuple[Column, ...]
    geometry: dict[str, tuple[str, int]] = field(default_factory=dict)
    schema: str = SCHEMA

    def column(self, name: str) -> Column:
        """Return a column by name.

        Raises
        ------
        NotFoundError
            When the table has no such column; the message names it.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise NotFoundError(f"{self.name} has no property {name!r}")

    @property
    def names(self) -> set[str]:
        """All column names."""
        return {c.name for c in self.columns}

    @property
    def properties(self) -> tuple[Column, ...]:
        """Columns that are not geometry."""
        return tuple(c for c in self.columns if not c.is_geometry)

    @property
    def published(self) -> tuple[Column, ...]:
        """Feature properties a caller may see.

        A layer view chose its columns and masks personal fields by role
        (``layers/*.sql``), so all of them but the tile geometry are
        published; of a base table, personal columns never are.
        """
        return tuple(
            c for c in self.properties
            if c.name not in _INTERNAL
            and (self.schema == LAYERS_SCHEMA or c.name not in PERSONAL_COLUMNS)
        )


#: Schema of the published layer views (``layers/*.sql``).
LAYERS_SCHEMA = "layers"

#: Columns kept for the server's own use: the stored Web Mercator copy for tiles.
_INTERNAL = frozenset({"geom_3857"})

#: Tables with a ``geom`` column that hold the server's own records, not the
#: city's: the features of job results (``142_job_features.sql``), each readable
#: by who may see its job only. Never a layer, never exported.
SYSTEM_GEOMETRY_TABLES = frozenset({"job_feature"})

_cache: dict[tuple[str, str, str], Table] = {}
_lock = threading.Lock()


def get_table(
    conn: psycopg.Connection[Any], name: str, *, schema: str = SCHEMA, refresh: bool = False
) -> Table:
    """Describe a table of the application schema, or a layer view.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection (dict rows).
    name : str
        Table or view name.
    schema : str
        ``onemap`` (tables) or ``layers`` (published views).
    refresh : bool
        Bypass the per-process cache.

    Returns
    -------
    Table
        Its columns and geometry columns.

    Raises
    ------
    NotFoundError
        When the schema holds no such table or view.
    """
    key = (conn.info.dsn, schema, name)
    with _lock:
        if not refresh and key in _cache:
            return _cache[key]
    rows = fetch_tuples(
        conn,
        """
        SELECT column_name, data_type, udt_name
        FROM information_schema.columns
        WHERE table_schema = %s AND table_name = %s
        ORDER BY ordinal_position
        """,
        (schema, name),
    )
    if not rows:
        raise NotFoundError(f"no table or view {name!r} in schema {schema!r}")
    cols = tuple(Column(*r) for r in rows)
    geoms = fetch_tuples(
        conn,
        """
        SELECT f_geometry_column, type, srid FROM geometry_columns
        WHERE f_table_schema = %s AND f_table_name = %s
        """,
        (schema, name),
    )
    table = Table(name, cols, {g[0]: (g[1], int(g[2])) for g in geoms}, schema)
    with _lock:
        _cache[key] = table
    return table


def geometry_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of the schema's tables (not views) that carry a ``geom`` column.

    The city's tables: :data:`SYSTEM_GEOMETRY_TABLES` are left out.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.

    Returns
    -------
    list of str
        Sorted table names; partitions are left out (their parent counts).
    """
    rows = fetch_tuples(
        conn,
        """
        SELECT g.f_table_name
        FROM geometry_columns g
        JOIN pg_class c ON c.relname = g.f_table_name
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = g.f_table_schema
        WHERE g.f_table_schema = %s AND g.f_geometry_column = 'geom'
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT g.f_table_name = ANY(%s)
        ORDER BY 1
        """,
        (SCHEMA, sorted(SYSTEM_GEOMETRY_TABLES)),
    )
    return [r[0] for r in rows]


def clear_cache() -> None:
    """Forget every described table (after migrations)."""
    with _lock:
        _cache.clear()


# -- the collections: what is published, declared in files ---------------------------

#: The file declaring the feature collections (layers), in :attr:`Settings.layers_dir`.
LAYERS_FILE = "tiles.yml"

#: The keys of a layer's entry in :data:`LAYERS_FILE` that describe the collection;
#: the others are its tiles (:mod:`tiles.spec`).
COLLECTION_KEYS = frozenset({"title", "description", "keywords", "time_field", "editable"})

#: The two languages every title and description is given in.
LANGUAGES = ("zh", "en")

# pygeoapi's ``${VAR}`` / ``${VAR:-default}`` in a plain scalar (pygeoapi.util.yaml_load).
_ENV_VAR = re.compile(r".*?\$\{(?P<varname>\w+)(:-(?P<default>[^}]*))?\}")
_ENV_NAME = re.compile(r"\$\{(\w+)")
_YAML_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _typed(value: str) -> bool | float | int | str:
    """A substituted value typed as pygeoapi types it (``get_typed_value``)."""
    try:
        if "." in value:
            return float(value)
        if len(value) > 1 and value.startswith("0"):
            return value
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        return int(value)
    except ValueError:
        return value


def _env_constructor(loader: Any, node: Any) -> bool | float | int | str:
    raw, out, start = node.value, "", 0
    for match in _ENV_VAR.finditer(raw):
        name, default = match.group("varname"), match.group("default")
        out += raw[start:match.span("varname")[0] - 2]
        value = os.environ.get(name)
        if value is None and default is None:
            raise ConfigurationError(f"the environment variable {name} is not set "
                                     "(the configuration names it without a default)")
        out += value if value is not None else default
        start = match.end()
    return _typed(out + raw[start:])


class _EnvLoader(_YAML_BASE):
    """The safe loader substituting ``${VAR}`` in plain scalars, as pygeoapi reads."""


_EnvLoader.add_implicit_resolver("!env", _ENV_VAR, None)
_EnvLoader.add_constructor("!env", _env_constructor)

_yaml_cache: dict[tuple[Any, ...], Any] = {}
_MISSING = object()


def read_declarations(path: Path, *, expand: bool = True) -> Any:
    """A declaration file (YAML), read as pygeoapi reads its configuration.

    Parameters
    ----------
    path : Path
        ``pygeoapi-config.yml``, ``layers/tiles.yml`` …
    expand : bool
        Substitute ``${VAR}`` and ``${VAR:-default}`` in plain scalars from the
        environment (what pygeoapi does when it loads its configuration); False
        keeps them as written (to write a configuration pygeoapi expands).

    Returns
    -------
    Any
        A fresh copy of the parsed document (``{}`` for an empty file); parsed once
        per text and values of the variables it names.

    Raises
    ------
    ConfigurationError
        When the file is not YAML or names an unset variable without a default.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "c.yml"
    ...     _ = path.write_text("u: ${ONEMAP_NO_SUCH_VAR:-http://x}\\nn: ${ONEMAP_NO_SUCH_VAR:-1}")
    ...     read_declarations(path), read_declarations(path, expand=False)["n"]
    ({'u': 'http://x', 'n': 1}, '${ONEMAP_NO_SUCH_VAR:-1}')
    """
    text = path.read_text(encoding="utf-8")
    names = sorted(set(_ENV_NAME.findall(text))) if expand else []
    key = (text, expand, tuple((n, os.environ.get(n)) for n in names))
    with _lock:
        parsed = _yaml_cache.get(key, _MISSING)
    if parsed is _MISSING:
        try:
            parsed = yaml.load(text, Loader=_EnvLoader if expand else _YAML_BASE) or {}  # noqa: S506 (safe loaders)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path.name} is not valid YAML: {exc}") from None
        with _lock:
            if len(_yaml_cache) > 64:
                _yaml_cache.clear()
            _yaml_cache[key] = parsed
    return copy.deepcopy(parsed)



@dataclass(frozen=True)
class Collection:
    """A collection the server publishes: a layer (features) or a coverage.

    Attributes
    ----------
    id : str
        The collection id; a layer's view is ``layers.<id>``.
    kind : str
        ``feature`` (a layer of :data:`LAYERS_FILE`) or ``coverage`` (a raster of
        ``pygeoapi-config.yml``).
    title, description : dict
        ``{"zh": …, "en": …}``; a layer without a description has its title.
    keywords : tuple of str
    time_field : str or None
        The column ``datetime=`` filters (features only).
    editable : bool
        Written through OGC API Features Part 4 (who may: ``onemap.layer_access``).
    bbox : tuple of float or None
        The declared extent (coverages); a layer's comes from its rows.
    """

    id: str
    kind: str
    title: dict[str, str]
    description: dict[str, str]
    keywords: tuple[str, ...] = ()
    time_field: str | None = None
    editable: bool = False
    bbox: tuple[float, ...] | None = None

    @property
    def table(self) -> str | None:
        """The view ``layers.<table>`` a layer reads (its id); None for a coverage."""
        return self.id if self.kind == "feature" else None

    def title_in(self, language: str) -> str:
        """The title in ``zh`` or ``en``."""
        return self.title[language]


def _texts(value: Any, where: str, what: str, *, plain: bool = False) -> dict[str, str]:
    if plain and isinstance(value, str):  # pygeoapi takes one text for every language
        return dict.fromkeys(LANGUAGES, value)
    if (not isinstance(value, dict) or set(value) != set(LANGUAGES)
            or not all(isinstance(v, str) and v.strip() for v in value.values())):
        raise ConfigurationError(
            f"{where}: {what} must be {{zh: …, en: …}} (two non-empty texts), got {value!r}")
    return {lang: value[lang] for lang in LANGUAGES}


def _layer(lid: str, raw: Any, where: str) -> Collection:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: must be a mapping, got {raw!r}")
    if "title" not in raw:
        raise ConfigurationError(f"{where}: has no title ({{zh: …, en: …}})")
    title = _texts(raw["title"], where, "title")
    description = _texts(raw["description"], where, "description") \
        if "description" in raw else dict(title)
    keywords = raw.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ConfigurationError(f"{where}: keywords must be a list of words, got {keywords!r}")
    time_field = raw.get("time_field")
    if time_field is not None and not (isinstance(time_field, str) and time_field.isidentifier()):
        raise ConfigurationError(f"{where}: time_field names a column, got {time_field!r}")
    editable = raw.get("editable", False)
    if not isinstance(editable, bool):
        raise ConfigurationError(f"{where}: editable must be true or false, got {editable!r}")
    return Collection(lid, "feature", title, description, tuple(keywords), time_field, editable)


def _coverage(cid: str, raw: dict[str, Any], where: str) -> Collection:
    bbox = ((raw.get("extents") or {}).get("spatial") or {}).get("bbox")
    return Collection(
        cid, "coverage", _texts(raw.get("title", cid), where, "title", plain=True),
        _texts(raw.get("description", raw.get("title", cid)), where, "description", plain=True),
        tuple(raw.get("keywords") or ()),
        bbox=tuple(float(v) for v in bbox) if bbox else None)


def load_layers(layers_path: Path, config_path: Path, *,
                expand: bool = True) -> dict[str, Collection]:
    """Every collection the server publishes, from the files declaring them.

    The one reader of the declarations: the layers (feature collections) of
    ``layers/tiles.yml``, one entry each beside its tiles, then the coverages of
    ``pygeoapi-config.yml``. The server's pygeoapi configuration is generated
    from these (:mod:`server.config`).

    Parameters
    ----------
    layers_path : Path
        ``layers/tiles.yml`` (:data:`LAYERS_FILE`): ``layers: {id: {title, …}}``.
    config_path : Path
        ``pygeoapi-config.yml``: the server, the coverages and the processes.
    expand : bool
        Substitute ``${VAR}`` as pygeoapi does (:func:`read_declarations`).

    Returns
    -------
    dict
        id → :class:`Collection`, the layers in their file's order, then the coverages.

    Raises
    ------
    ConfigurationError
        Naming the file and the entry: a layer without zh/en title, keywords that
        are not a list, a bad ``time_field`` or ``editable``, a feature collection
        written in ``pygeoapi-config.yml`` (layers are declared in ``tiles.yml``), an
        id declared in both.

    Examples
    --------
    >>> from spatial.settings import get_settings
    >>> s = get_settings()
    >>> found = load_layers(s.layers_dir / LAYERS_FILE, s.config_path)
    >>> found["event"].title["en"], found["event"].time_field, found["event"].editable
    ('Events (citizen and grid-worker reports)', 'reported_at', True)
    >>> found["terrain"].kind
    'coverage'
    """
    declared = read_declarations(layers_path, expand=expand).get("layers") or {}
    if not isinstance(declared, dict):
        raise ConfigurationError(f"{layers_path.name}: layers must be a mapping of ids")
    out = {str(lid): _layer(str(lid), body, f"{layers_path.name}: {lid}")
           for lid, body in declared.items()}
    resources = read_declarations(config_path, expand=expand).get("resources") or {}
    for cid, res in resources.items():
        where = f"{config_path.name}: resources.{cid}"
        if not isinstance(res, dict) or res.get("type") != "collection":
            continue
        kinds = {p.get("type") for p in res.get("providers") or [] if isinstance(p, dict)}
        if cid in out:
            raise ConfigurationError(f"{where}: {cid} is a layer of {layers_path.name}; "
                                     "its pygeoapi resource is generated from there")
        if "feature" in kinds:
            raise ConfigurationError(
                f"{where}: a feature collection is declared in {layers_path.name} "
                "(title, keywords, time_field, editable beside its tiles), not here")
        out[cid] = _coverage(cid, res, where)
    return out
