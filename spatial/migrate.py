"""Numbered, re-runnable SQL migrations (``spatial/sql/NNN_topic.sql``).

Every file is idempotent, so the runner may apply a file again whenever its
checksum changed; files are applied in lexical order, each in its own
transaction, under an advisory lock so two starting workers never race.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from spatial.db import SCHEMA, fetch_tuples, sql_text
from spatial.settings import get_settings

LOGGER = logging.getLogger(__name__)

SQL_PACKAGE = "spatial.sql"
_NAME = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")
#: Arbitrary constant for pg_advisory_xact_lock: "onemap migrate".
_LOCK_KEY = 0x0E3A_9001
_RECORD = sql.SQL(
    "INSERT INTO {}.schema_migrations (name, checksum) VALUES (%s, %s) "
    "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()"
).format(sql.Identifier(SCHEMA))


@dataclass(frozen=True)
class Migration:
    """One SQL migration file.

    Attributes
    ----------
    name : str
        File name, ``NNN_topic.sql``.
    sql : str
        Its text.
    """

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migrations() -> list[Migration]:
    """List the migrations, in the order they apply.

    First the package's ``spatial/sql/NNN_*.sql``, then the layer views in the
    project's ``layers/NNN_*.sql`` (recorded as ``layers/NNN_*.sql``).

    Returns
    -------
    list of Migration
        Sorted by file name.

    Examples
    --------
    >>> migrations()[0].name
    '000_migrations.sql'
    """
    names = sorted(
        entry.name for entry in resources.files(SQL_PACKAGE).iterdir() if _NAME.match(entry.name)
    )
    out = [Migration(name, sql_text(SQL_PACKAGE, name)) for name in names]
    # The published layer views come after the schema they select from.
    layers = get_settings().layers_dir
    if layers.is_dir():
        for path in sorted(p for p in layers.iterdir() if _NAME.match(p.name)):
            out.append(Migration(f"layers/{path.name}", path.read_text(encoding="utf-8")))
    return out


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Return the applied migrations and their checksums.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.

    Returns
    -------
    dict
        File name → checksum; empty when nothing was applied yet.
    """
    present = fetch_tuples(conn, "SELECT to_regclass(%s) IS NOT NULL",
                           (f"{SCHEMA}.schema_migrations",))[0][0]
    if not present:
        return {}
    query = sql.SQL("SELECT name, checksum FROM {}.schema_migrations").format(
        sql.Identifier(SCHEMA))
    return dict(fetch_tuples(conn, query))


def migrate(
    conn: psycopg.Connection[Any],
    *,
    reapply: bool = False,
    on_step: Callable[[Migration], None] | None = None,
) -> list[str]:
    """Apply pending migrations.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection; its autocommit setting is left as found.
    reapply : bool
        Apply every file again, even unchanged ones (they are idempotent).
    on_step : callable, optional
        Called with each migration before it is applied (progress display).

    Returns
    -------
    list of str
        Names of the files that were applied.
    """
    done: list[str] = []
    todo = migrations()
    for m in todo:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # Read inside the lock: another process may just have applied it.
            if not reapply and applied(conn).get(m.name) == m.checksum:
                continue
            if on_step is not None:
                on_step(m)
            LOGGER.info("applying migration %s", m.name)
            conn.execute(m.sql.encode("utf-8"))
            conn.execute(_RECORD, (m.name, m.checksum))
            done.append(m.name)
    return done


def pending(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of migrations not applied, or changed since they were.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.

    Returns
    -------
    list of str
        File names in apply order.
    """
    have = applied(conn)
    return [m.name for m in migrations() if have.get(m.name) != m.checksum]
