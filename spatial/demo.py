"""The demo city loaded by ``make up`` into an empty database."""

from __future__ import annotations

import logging
from importlib import resources

from spatial.db import connect

LOGGER = logging.getLogger(__name__)


def database_is_empty() -> bool:
    """Whether the admin hierarchy holds no district yet.

    Returns
    -------
    bool
        True for a freshly migrated database.
    """
    with connect() as conn:
        row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM onemap.district) AS empty").fetchone()
    return bool(row and row["empty"])


def load_demo_if_empty() -> bool:
    """Load the demo city when the database is empty.

    Returns
    -------
    bool
        True when it was loaded.
    """
    if not database_is_empty():
        return False
    text = (resources.files("spatial") / "data" / "demo_fixture.sql").read_text(encoding="utf-8")
    with connect() as conn, conn.transaction():
        conn.execute(text.encode("utf-8"))
    LOGGER.info("demo city loaded")
    return True
