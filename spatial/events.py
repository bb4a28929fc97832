"""An event's course: the status changes recorded in ``event_status_history``.

Every status change made through the API is recorded by the trigger of
``135_editing.sql`` (the generator writes the demo's own); the rows follow
their event's row-level security (``130_access.sql``), so a caller reads the
course of exactly the events they may see.
"""

from __future__ import annotations

from typing import Any

import psycopg

from spatial.db import fetch_dicts
from spatial.errors import NotFoundError

_EVENT = "SELECT 1 FROM onemap.event WHERE id = %(id)s"
_HISTORY = """
SELECT from_status, to_status, at, note
FROM onemap.event_status_history
WHERE event_id = %(id)s
ORDER BY at, id
"""


def status_history(conn: psycopg.Connection[Any], event_id: int) -> list[dict[str, Any]]:
    """The status changes of one event, oldest first, as the caller may see them.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection (:func:`spatial.access.request_connection`).
    event_id : int
        The event.

    Returns
    -------
    list of dict
        ``{"from_status", "to_status", "at", "note"}`` per change; ``from_status``
        is None for the report itself. Who made a change (a user id) is left out.

    Raises
    ------
    NotFoundError
        When there is no such event, or the caller may not see it (the same answer).
    """
    if not fetch_dicts(conn, _EVENT, {"id": event_id}):
        raise NotFoundError(f"no event {event_id} / 无此事件")
    return fetch_dicts(conn, _HISTORY, {"id": event_id})
