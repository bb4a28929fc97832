"""Who is asking: the request's principal, and how it reaches PostgreSQL.

Access rules live in the database (row-level security policies, masking
views; see ``spatial/sql/130_access.sql``). Python only tells PostgreSQL who
the caller is: :func:`request_connection` opens a transaction, drops to the
serving role ``onemap_api`` (which row-level security applies to) and sets
``onemap.user_id`` for that transaction. Every code path that serves a
request — features, tiles, exports, processes — reads through it.

The principal travels in a context variable set by the web edge
(authentication middleware) or by a job runner.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from spatial.db import fetch_tuples
from spatial.errors import AuthenticationError, PermissionDeniedError

LOGGER = logging.getLogger(__name__)

#: The database role request transactions run as (no table ownership, so
#: row-level security applies). Created by migration 130.
SERVING_ROLE = "onemap_api"

#: Application roles (``onemap.app_role.code``) whose holders may see residents'
#: personal fields within their data scope.
PERSONAL_DATA_ROLES = frozenset(
    {"district_admin", "street_staff", "community_staff", "grid_worker"}
)


@dataclass(frozen=True)
class Principal:
    """The caller of a request.

    Attributes
    ----------
    user_id : int or None
        ``onemap.app_user.id``; None for an anonymous caller (role ``public``).
    username : str
        Login name (never a secret).
    roles : frozenset of str
        Application role codes.
    api_key_id : int or None
        The API key used, if the caller authenticated with one.
    """

    user_id: int | None
    username: str
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"public"}))
    api_key_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        """Whether nobody authenticated."""
        return self.user_id is None

    @property
    def sees_personal_data(self) -> bool:
        """Whether any role allows personal fields (within scope).

        Examples
        --------
        >>> Principal(1, "li", frozenset({"analyst"})).sees_personal_data
        False
        """
        return bool(self.roles & PERSONAL_DATA_ROLES)


#: The caller nobody authenticated as.
ANONYMOUS = Principal(None, "anonymous")

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "onemap_principal", default=ANONYMOUS
)


def current_principal() -> Principal:
    """The principal of the running request or job (anonymous by default)."""
    return _current.get()


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run a block as ``principal`` (web middleware, job runner, tests).

    Examples
    --------
    >>> with acting_as(Principal(7, "wang", frozenset({"grid_worker"}))):
    ...     current_principal().username
    'wang'
    >>> current_principal().username
    'anonymous'
    """
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def apply_principal(conn: psycopg.Connection[Any], principal: Principal) -> None:
    """Drop to the serving role and tell PostgreSQL who the caller is.

    Must run inside a transaction: both settings end with it.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection inside a transaction block.
    principal : Principal
        The caller.
    """
    conn.execute(f"SET LOCAL ROLE {SERVING_ROLE}")
    conn.execute(
        "SELECT set_config('onemap.user_id', %s, true)",
        ("" if principal.user_id is None else str(principal.user_id),),
    )


@contextmanager
def request_connection(
    principal: Principal | None = None, *, conninfo: str | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection inside a transaction, acting as the caller.

    Parameters
    ----------
    principal : Principal, optional
        Defaults to :func:`current_principal`.
    conninfo : str, optional
        Database; defaults to the application database.

    Yields
    ------
    psycopg.Connection
        Row-level security and masking apply as for ``principal``; the
        transaction commits when the block ends without an exception.

    Raises
    ------
    DatabaseUnavailableError
        At once while the database is away, when the connection is lost in
        the block, or when no connection comes free (:class:`spatial.db.Pool`):
        the edges answer 503.
    """
    from spatial.db import get_pool

    who = principal if principal is not None else current_principal()
    with get_pool(conninfo).connection() as conn, conn.transaction():
        apply_principal(conn, who)
        yield conn


def check_can_read(conn: psycopg.Connection[Any], table: str, principal: Principal) -> None:
    """Refuse a layer the caller may not read at all (``onemap.can_read``).

    Row-level security would answer such a caller with no rows; this turns
    "you may not see this layer" into a clear 401 or 403 instead.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection after :func:`apply_principal`.
    table : str
        Table name (``onemap.layer_access.table_name``).
    principal : Principal
        The caller, for the message.

    Raises
    ------
    AuthenticationError
        An anonymous caller asks for a layer that is not public.
    PermissionDeniedError
        A signed-in caller's roles do not include the layer.
    """
    if fetch_tuples(conn, "SELECT onemap.can_read(%s)", (table,))[0][0]:
        return
    if principal.is_anonymous:
        raise AuthenticationError(
            f"layer {table!r} is not public: sign in / 图层 {table} 不公开，请先登录"
        )
    raise PermissionDeniedError(
        f"your role may not read layer {table!r} / 当前角色无权查看图层 {table}"
    )
