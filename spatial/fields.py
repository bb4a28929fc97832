"""Titles of the collections' properties in Chinese and English (``layers/fields.yml``).

A property is titled by its column name, shared by every collection that has it
(``created_at`` is 创建时间 everywhere), unless the collection overrides it
because the name means something else there (a resident's ``name`` is 姓名).
The titles are data: the OGC API serves them as the JSON Schema ``title`` of each
property of ``/collections/{id}/queryables`` and ``/schema`` (server.fixes),
and the widget labels its record popup with them.

Coded values (``status: working``) have labels too, by column name. They are served
where the database declares the column's domain — a ``CHECK (col IN (...))`` on the
collection's table, read by :func:`check_domains` — as the property's ``enum`` and
``oneOf: [{const, title}]``.

Examples
--------
>>> titles = FieldTitles.from_mapping({
...     "fields": {"name": {"zh": "名称", "en": "Name"}},
...     "collections": {"resident": {"name": {"zh": "姓名", "en": "Full name"}}}})
>>> titles.title("road", "name", "zh"), titles.title("resident", "name", "en-US")
('名称', 'Full name')
>>> titles.title("road", "width_m", "en") is None
True
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from spatial.settings import database_conninfo, get_settings

LOGGER = logging.getLogger(__name__)

#: The languages every title has; the first is the default.
LANGUAGES = ("zh", "en")

Title = Mapping[str, str]  # language → text


def language(tag: object) -> str:
    """The title language for a language tag or locale (``en-US``, ``en_US``, ``zh-CN``).

    English for any ``en`` tag, Chinese otherwise (the server's default language).

    Examples
    --------
    >>> language("en_US"), language("EN"), language("zh-Hans"), language(None)
    ('en', 'en', 'zh', 'zh')
    """
    text = str(tag or "").strip().lower()
    return "en" if text == "en" or text.startswith(("en-", "en_")) else LANGUAGES[0]


def _title(where: str, value: Any) -> Title:
    if not isinstance(value, Mapping) or set(value) != set(LANGUAGES):
        raise ValueError(f"{where}: expected a mapping with keys {list(LANGUAGES)}, got {value!r}")
    for lang in LANGUAGES:
        text = value[lang]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}.{lang}: expected a non-empty string, got {text!r}")
    return {lang: value[lang].strip() for lang in LANGUAGES}


def _titles(where: str, value: Any) -> dict[str, Title]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping of column names, got {value!r}")
    return {str(name): _title(f"{where}.{name}", v) for name, v in value.items()}


@dataclass(frozen=True)
class FieldTitles:
    """zh/en titles of properties: shared by column name, overridden per collection.

    Parameters
    ----------
    shared : mapping
        Column name → ``{"zh": ..., "en": ...}``.
    overrides : mapping
        Collection id → column name → ``{"zh": ..., "en": ...}``.
    values : mapping
        Column name → coded value → ``{"zh": ..., "en": ...}``.
    """

    shared: Mapping[str, Title]
    overrides: Mapping[str, Mapping[str, Title]]
    values: Mapping[str, Mapping[str, Title]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Any) -> FieldTitles:
        """Check and build from the parsed file (keys ``fields``, ``collections``, ``values``).

        Raises
        ------
        ValueError
            If a key is unknown or a title lacks a non-empty ``zh`` or ``en`` text;
            the message names the entry.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"field titles: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"fields", "collections", "values"}
        if unknown:
            raise ValueError(f"field titles: unknown keys {sorted(unknown)}")
        collections = data.get("collections") or {}
        if not isinstance(collections, Mapping):
            raise ValueError(f"collections: expected a mapping, got {collections!r}")
        values = data.get("values") or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"values: expected a mapping, got {values!r}")
        return cls(
            shared=_titles("fields", data.get("fields") or {}),
            overrides={str(c): _titles(f"collections.{c}", v) for c, v in collections.items()},
            values={str(c): _titles(f"values.{c}", v) for c, v in values.items()},
        )

    @classmethod
    def from_file(cls, path: Path) -> FieldTitles:
        """Read and check a field-titles YAML file (see :meth:`from_mapping`)."""
        with path.open(encoding="utf-8") as f:
            try:
                return cls.from_mapping(yaml.load(f, Loader=_UniqueKeyLoader))  # noqa: S506
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc

    def title(self, collection: str, name: str, lang: object = "zh") -> str | None:
        """The title of ``collection``'s property ``name`` in ``lang``; None if it has none.

        ``lang`` is a language tag or locale (see :func:`language`).
        """
        entry = self.overrides.get(collection, {}).get(name) or self.shared.get(name)
        return entry[language(lang)] if entry else None

    def titles(self, collection: str, names: Iterable[str], lang: object = "zh") -> dict[str, str]:
        """Titles of the given properties that have one, by name."""
        out = {}
        for name in names:
            text = self.title(collection, name, lang)
            if text is not None:
                out[name] = text
        return out

    def value_titles(self, name: str, lang: object = "zh") -> dict[str, str]:
        """Labels of the coded values of column ``name`` in ``lang``, by value.

        Examples
        --------
        >>> FieldTitles({}, {}, {"status": {"fault": {"zh": "故障", "en": "Fault"}}}
        ...             ).value_titles("status", "en")
        {'fault': 'Fault'}
        """
        lang = language(lang)
        return {value: t[lang] for value, t in self.values.get(name, {}).items()}


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's where present), refusing a key given twice in one
    mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"line {node.start_mark.line + 1}: keys given twice: {twice}")
        return super().construct_mapping(node, deep=deep)


#: ``CHECK ((col = ANY (ARRAY['a'::text, 'b'::text])))`` as PostgreSQL prints ``col IN ('a', 'b')``.
_IN_CHECK = re.compile(r"^CHECK \(\((\w+) = ANY \(ARRAY\[((?:'[^']*'::\w+(?:, )?)+)\]\)\)\)$")
_LITERAL = re.compile(r"'([^']*)'::\w+")


def check_domains(conn: psycopg.Connection[Any], schema: str = "onemap"
                  ) -> dict[str, dict[str, tuple[str, ...]]]:
    """The coded columns of the tables in ``schema``: their ``CHECK (col IN (...))`` values.

    Parameters
    ----------
    conn : psycopg.Connection
        Any connection (reads the catalog only).
    schema : str
        The tables' schema.

    Returns
    -------
    dict
        Table → column → allowed values, in the order the constraint lists them.
        Other kinds of check (ranges, ``IS NULL OR ...``) are left out.
    """
    rows = conn.execute(
        """
        SELECT t.relname::text, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE c.contype = 'c' AND t.relnamespace = to_regnamespace(%s)
        ORDER BY c.conname
        """,
        (schema,),
        prepare=False,
    ).fetchall()
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for row in rows:
        table, definition = row if isinstance(row, tuple) else tuple(row.values())
        match = _IN_CHECK.match(definition)
        if match:
            out.setdefault(table, {})[match[1]] = tuple(_LITERAL.findall(match[2]))
    return out


_domains_lock = threading.Lock()
_domains: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {}


def domains(collection: str) -> dict[str, tuple[str, ...]]:
    """The coded columns of ``collection``'s table (:func:`check_domains`).

    Read once per database and process (a migration that changes a domain takes
    effect at the next start); the collection id names its table in schema ``onemap``.
    """
    from spatial.db import get_pool

    key = database_conninfo()
    with _domains_lock:
        known = _domains.get(key)
    if known is None:
        with get_pool().connection() as conn:
            known = check_domains(conn)
        with _domains_lock:
            _domains[key] = known
    return known.get(collection, {})


@functools.cache
def field_titles() -> FieldTitles:
    """The project's titles (``layers/fields.yml``), read and checked on first use."""
    path = get_settings().layers_dir / "fields.yml"
    titles = FieldTitles.from_file(path)
    LOGGER.debug("%d shared field titles, overrides for %d collections",
                 len(titles.shared), len(titles.overrides))
    return titles
