"""Users, their roles and their data scope.

The accounts of ``005_security.sql``, managed through the owner's connection
(:mod:`spatial.db`): creating users, setting passwords (hashed by
:mod:`spatial.passwords`), disabling and unlocking accounts, granting roles and
admin units of the data scope. Logging in and checking credentials is
:mod:`spatial.auth`; what a user may see is decided by PostgreSQL
(:mod:`spatial.access`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from spatial.db import fetch_dict, fetch_dicts
from spatial.errors import ConflictError, InvalidInputError, NotFoundError
from spatial.passwords import check_password_policy, hash_password

LOGGER = logging.getLogger(__name__)

#: Admin levels a data scope can name; each is a table ``onemap.<level>``.
LEVELS = ("district", "street_office", "community", "grid")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class UserInfo:
    """A user as administrators see it (never a hash).

    Attributes
    ----------
    id : int
    username : str
    display_name : str or None
    active : bool
    roles : tuple of str
        Role codes, sorted.
    scopes : tuple of (str, int)
        ``(level, unit_id)`` of the data scope.
    has_password : bool
        False for accounts that authenticate by API key only.
    created_at : datetime
    last_login_at : datetime or None
        Time of the last successful login.
    """

    id: int
    username: str
    display_name: str | None
    active: bool
    roles: tuple[str, ...]
    scopes: tuple[tuple[str, int], ...]
    has_password: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class ScopeUnit:
    """One admin unit of a user's data scope, with its code and name."""

    level: str
    unit_id: int
    code: str | None
    name: str | None


# ---------------------------------------------------------------- helpers


def normalize_username(username: str) -> str:
    """Check a new user name and return it as stored (lower case).

    Parameters
    ----------
    username : str
        2–64 characters: letters, digits, ``.``, ``_``, ``@``, ``-``; starts
        with a letter or digit.

    Returns
    -------
    str
        The name in lower case.

    Raises
    ------
    InvalidInputError
        If the name does not fit.

    Examples
    --------
    >>> normalize_username(" Wang.Fang ")
    'wang.fang'
    """
    if not isinstance(username, str):
        raise TypeError(f"username must be a string, got {type(username).__name__}")
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInputError(
            f"invalid user name {username!r}: 2–64 letters, digits, '.', '_', '@', '-' "
            "/ 用户名须为2–64位字母、数字或 . _ @ -"
        )
    return name


# ---------------------------------------------------------------- users


_USER_SELECT = sql.SQL("""
SELECT u.id, u.username, u.display_name, u.active, u.created_at,
       u.password_hash IS NOT NULL AS has_password,
       ARRAY(SELECT r.code FROM onemap.user_role ur
             JOIN onemap.app_role r ON r.id = ur.role_id
             WHERE ur.user_id = u.id ORDER BY r.code) AS roles,
       ARRAY(SELECT s.level || ':' || s.unit_id FROM onemap.data_scope s
             WHERE s.user_id = u.id
             ORDER BY array_position(ARRAY['district', 'street_office', 'community', 'grid'],
                                     s.level), s.unit_id) AS scopes,
       (SELECT max(l.at) FROM onemap.login_log l
        WHERE l.user_id = u.id AND l.success) AS last_login_at
FROM onemap.app_user u
""")


def _user_info(row: dict[str, Any]) -> UserInfo:
    scopes = []
    for item in row["scopes"]:
        level, _, unit = item.partition(":")
        scopes.append((level, int(unit)))
    return UserInfo(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        active=row["active"],
        roles=tuple(row["roles"]),
        scopes=tuple(scopes),
        has_password=row["has_password"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


def user_id_of(conn: psycopg.Connection[Any], user: int | str) -> int:
    """The id of a user named by id or user name.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str
        Id, or user name (compared lower-case).

    Returns
    -------
    int

    Raises
    ------
    NotFoundError
        If there is no such user.
    """
    if isinstance(user, bool) or not isinstance(user, int | str):
        raise TypeError(f"user must be an id or a user name, got {user!r}")
    if isinstance(user, int):
        row = fetch_dict(conn, "SELECT id FROM onemap.app_user WHERE id = %s", (user,))
    else:
        row = fetch_dict(conn, "SELECT id FROM onemap.app_user WHERE username = %s",
                   (user.strip().lower(),))
    if row is None:
        raise NotFoundError(f"no user {user!r} / 用户不存在")
    return int(row["id"])


def get_user(conn: psycopg.Connection[Any], user: int | str) -> UserInfo:
    """A user by id or name.

    Raises
    ------
    NotFoundError
        If there is no such user.
    """
    uid = user_id_of(conn, user)
    row = fetch_dict(conn, _USER_SELECT + sql.SQL("WHERE u.id = %s"), (uid,))
    assert row is not None
    return _user_info(row)


def list_users(conn: psycopg.Connection[Any]) -> list[UserInfo]:
    """Every user, by name, with roles, scopes and last login (never hashes).

    Parameters
    ----------
    conn : psycopg.Connection
        Owner connection.

    Returns
    -------
    list of UserInfo
    """
    return [_user_info(r) for r in fetch_dicts(conn, _USER_SELECT + sql.SQL("ORDER BY u.username"))]


def create_user(
    conn: psycopg.Connection[Any],
    username: str,
    password: str | None,
    *,
    display_name: str | None = None,
    roles: Iterable[str] = (),
    scopes: Iterable[tuple[str, int]] = (),
    created_by: int | None = None,
) -> UserInfo:
    """Create a user with roles and a data scope, all or nothing.

    Parameters
    ----------
    conn : psycopg.Connection
        Owner connection.
    username : str
        Login name (see :func:`normalize_username`); stored lower-case.
    password : str or None
        Checked against the policy and hashed; None for an account that
        authenticates by API key only (an external system).
    display_name : str, optional
    roles : iterable of str
        Role codes (``onemap.app_role.code``).
    scopes : iterable of (str, int)
        ``(level, unit_id)`` pairs; every unit must exist.
    created_by : int, optional
        The administrator's user id, recorded as ``granted_by``.

    Returns
    -------
    UserInfo

    Raises
    ------
    InvalidInputError
        A bad name, a password breaking the policy, an unknown role or level.
    NotFoundError
        A scope unit that does not exist.
    ConflictError
        If the name is taken.
    """
    name = normalize_username(username)
    password_hash = None
    if password is not None:
        check_password_policy(password, name)
        password_hash = hash_password(password)
    with conn.transaction():
        row = fetch_dict(
            conn,
            """
            INSERT INTO onemap.app_user (username, display_name, password_hash)
            VALUES (%s, %s, %s)
            ON CONFLICT (username) DO NOTHING
            RETURNING id
            """,
            (name, display_name, password_hash),
        )
        if row is None:
            raise ConflictError(f"user {name!r} already exists / 用户已存在")
        uid = int(row["id"])
        for role in roles:
            grant_role(conn, uid, role, granted_by=created_by)
        for level, unit_id in scopes:
            add_scope(conn, uid, level, unit_id)
    LOGGER.info("user %s created (id %d)", name, uid)
    return get_user(conn, uid)


def set_password(conn: psycopg.Connection[Any], user: int | str, password: str) -> None:
    """Set a user's password; unlocks the account and ends its sessions.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str
        Id or user name.
    password : str
        The new password (policy-checked).

    Raises
    ------
    NotFoundError
        No such user.
    InvalidInputError
        The password breaks the policy.
    """
    info = get_user(conn, user)
    check_password_policy(password, info.username)
    password_hash = hash_password(password)
    with conn.transaction():
        conn.execute(
            "UPDATE onemap.app_user SET password_hash = %s, unlocked_at = now() WHERE id = %s",
            (password_hash, info.id),
        )
        revoke_user_tokens(conn, info.id)
    LOGGER.info("password of user %s changed", info.username)


def set_active(conn: psycopg.Connection[Any], user: int | str, active: bool) -> None:
    """Enable or disable a user; disabling ends their sessions.

    API keys of a disabled user stop working too (they are checked against
    ``app_user.active``) and work again when the user is enabled.

    Raises
    ------
    NotFoundError
        No such user.
    """
    uid = user_id_of(conn, user)
    with conn.transaction():
        conn.execute("UPDATE onemap.app_user SET active = %s WHERE id = %s", (active, uid))
        if not active:
            revoke_user_tokens(conn, uid)
    LOGGER.info("user %d %s", uid, "enabled" if active else "disabled")


def unlock_user(conn: psycopg.Connection[Any], user: int | str) -> None:
    """Forget the failed logins of a locked user.

    Raises
    ------
    NotFoundError
        No such user.
    """
    uid = user_id_of(conn, user)
    conn.execute("UPDATE onemap.app_user SET unlocked_at = now() WHERE id = %s", (uid,))


def revoke_user_tokens(conn: psycopg.Connection[Any], user: int | str) -> int:
    """Revoke every live login token of a user (end their sessions).

    Tokens are issued by :mod:`spatial.auth`; ending a user's sessions is part
    of changing the user (:func:`set_password`, :func:`set_active`), so it
    lives here.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str
        Id or user name.

    Returns
    -------
    int
        How many were revoked.

    Raises
    ------
    NotFoundError
        No such user.
    """
    uid = user_id_of(conn, user)
    rows = fetch_dicts(
        conn,
        "UPDATE onemap.auth_token SET revoked_at = now() "
        "WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now() RETURNING id",
        (uid,),
    )
    return len(rows)


def _role_id(conn: psycopg.Connection[Any], role: str) -> int:
    row = fetch_dict(conn, "SELECT id FROM onemap.app_role WHERE code = %s", (role,))
    if row is None:
        roles = fetch_dicts(conn, "SELECT code FROM onemap.app_role ORDER BY id")
        known = [r["code"] for r in roles]
        raise InvalidInputError(f"unknown role {role!r}; known: {', '.join(known)} / 角色不存在")
    return int(row["id"])


def grant_role(
    conn: psycopg.Connection[Any], user: int | str, role: str, *, granted_by: int | None = None
) -> bool:
    """Grant a role.

    Returns
    -------
    bool
        False if the user already had it.

    Raises
    ------
    NotFoundError
        No such user.
    InvalidInputError
        No such role.
    """
    uid = user_id_of(conn, user)
    rid = _role_id(conn, role)
    row = fetch_dict(
        conn,
        """
        INSERT INTO onemap.user_role (user_id, role_id, granted_by) VALUES (%s, %s, %s)
        ON CONFLICT (user_id, role_id) DO NOTHING RETURNING id
        """,
        (uid, rid, granted_by),
    )
    return row is not None


def revoke_role(conn: psycopg.Connection[Any], user: int | str, role: str) -> bool:
    """Take a role away.

    Returns
    -------
    bool
        False if the user did not have it.
    """
    uid = user_id_of(conn, user)
    rid = _role_id(conn, role)
    row = fetch_dict(
        conn,
        "DELETE FROM onemap.user_role WHERE user_id = %s AND role_id = %s RETURNING id",
        (uid, rid),
    )
    return row is not None


def parse_scope(text: str) -> tuple[str, int]:
    """Parse ``LEVEL:UNIT_ID``.

    Examples
    --------
    >>> parse_scope("community:12")
    ('community', 12)
    """
    level, sep, unit = text.partition(":")
    level = level.strip()
    if not sep or level not in LEVELS or not unit.strip().isdigit():
        raise InvalidInputError(
            f"invalid scope {text!r}: expected LEVEL:UNIT_ID with LEVEL one of "
            f"{', '.join(LEVELS)} / 数据范围格式应为 层级:编号"
        )
    return level, int(unit)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidInputError(
            f"unknown level {level!r}; known: {', '.join(LEVELS)} / 层级不存在"
        )


def add_scope(conn: psycopg.Connection[Any], user: int | str, level: str, unit_id: int) -> bool:
    """Add an admin unit to a user's data scope.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str
    level : str
        One of :data:`LEVELS`.
    unit_id : int
        Id in ``onemap.<level>``.

    Returns
    -------
    bool
        False if the unit was already in scope.

    Raises
    ------
    InvalidInputError
        Unknown level.
    NotFoundError
        No such user or unit.
    """
    _check_level(level)
    uid = user_id_of(conn, user)
    exists = fetch_dict(
        conn,
        sql.SQL("SELECT 1 AS ok FROM {} WHERE id = %s").format(sql.Identifier("onemap", level)),
        (unit_id,),
    )
    if exists is None:
        raise NotFoundError(f"no {level} with id {unit_id} / 行政单元不存在")
    row = fetch_dict(
        conn,
        """
        INSERT INTO onemap.data_scope (user_id, level, unit_id) VALUES (%s, %s, %s)
        ON CONFLICT (user_id, level, unit_id) DO NOTHING RETURNING id
        """,
        (uid, level, unit_id),
    )
    return row is not None


def remove_scope(
    conn: psycopg.Connection[Any], user: int | str, level: str, unit_id: int
) -> bool:
    """Remove an admin unit from a user's data scope.

    Returns
    -------
    bool
        False if it was not in scope.
    """
    _check_level(level)
    uid = user_id_of(conn, user)
    row = fetch_dict(
        conn,
        "DELETE FROM onemap.data_scope WHERE user_id = %s AND level = %s AND unit_id = %s "
        "RETURNING id",
        (uid, level, unit_id),
    )
    return row is not None


def data_scope(conn: psycopg.Connection[Any], user_id: int) -> list[ScopeUnit]:
    """The admin units a user may see, with codes and names.

    Parameters
    ----------
    conn : psycopg.Connection
    user_id : int

    Returns
    -------
    list of ScopeUnit
        Coarsest level first; a unit deleted since keeps ``code``/``name`` None.
    """
    rows = fetch_dicts(
        conn,
        """
        SELECT s.level, s.unit_id,
               coalesce(d.code, so.code, c.code, g.code) AS code,
               coalesce(d.name, so.name, c.name, g.name) AS name
        FROM onemap.data_scope s
        LEFT JOIN onemap.district d ON s.level = 'district' AND d.id = s.unit_id
        LEFT JOIN onemap.street_office so ON s.level = 'street_office' AND so.id = s.unit_id
        LEFT JOIN onemap.community c ON s.level = 'community' AND c.id = s.unit_id
        LEFT JOIN onemap.grid g ON s.level = 'grid' AND g.id = s.unit_id
        WHERE s.user_id = %s
        ORDER BY array_position(ARRAY['district', 'street_office', 'community', 'grid'],
                                s.level), s.unit_id
        """,
        (user_id,),
    )
    return [ScopeUnit(r["level"], r["unit_id"], r["code"], r["name"]) for r in rows]


@dataclass(frozen=True)
class AdminUnit:
    """An admin unit as ``onemap units`` lists it, to fill ``--scope``.

    Attributes
    ----------
    level : str
        One of :data:`LEVELS`.
    id : int
    code : str or None
    name : str
    parent : str or None
        The name of the unit it lies in (a grid's community or parent grid).
    """

    level: str
    id: int
    code: str | None
    name: str
    parent: str | None

    @property
    def scope(self) -> str:
        """The ``LEVEL:UNIT_ID`` text ``--scope`` takes.

        Examples
        --------
        >>> AdminUnit("grid", 17, None, "霞光里第1网格", "霞光里社区").scope
        'grid:17'
        """
        return f"{self.level}:{self.id}"


_UNITS = sql.SQL("""
SELECT * FROM (
    SELECT 'district' AS level, d.id, d.code, d.name, NULL::text AS parent, 1 AS depth
    FROM onemap.district d
    UNION ALL
    SELECT 'street_office', s.id, s.code, s.name, d.name, 2
    FROM onemap.street_office s JOIN onemap.district d ON d.id = s.district_id
    UNION ALL
    SELECT 'community', c.id, c.code, c.name, s.name, 3
    FROM onemap.community c JOIN onemap.street_office s ON s.id = c.street_office_id
    UNION ALL
    SELECT 'grid', g.id, g.code, g.name, coalesce(p.name, c.name), 4
    FROM onemap.grid g JOIN onemap.community c ON c.id = g.community_id
    LEFT JOIN onemap.grid p ON p.id = g.parent_id
) AS u
WHERE (%(level)s::text IS NULL OR u.level = %(level)s)
  AND (%(name)s::text IS NULL OR u.name ILIKE %(pattern)s OR u.parent ILIKE %(pattern)s
       OR u.code = %(name)s)
ORDER BY u.depth, u.id
LIMIT %(limit)s
""")


def find_units(
    conn: psycopg.Connection[Any],
    level: str | None = None,
    name: str | None = None,
    limit: int = 200,
) -> list[AdminUnit]:
    """Admin units by level and name, to find the id a data scope needs.

    Parameters
    ----------
    conn : psycopg.Connection
    level : str, optional
        Only this level (one of :data:`LEVELS`).
    name : str, optional
        Part of the unit's name or of the name of the unit it lies in
        (``霞光里`` finds 霞光里社区 and its grids), or its exact code.
        Wildcards are taken literally.
    limit : int
        At most this many, coarsest level first.

    Returns
    -------
    list of AdminUnit

    Raises
    ------
    InvalidInputError
        An unknown level.
    """
    if level is not None:
        _check_level(level)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")
    text = name.strip() if name and name.strip() else None
    pattern = None
    if text is not None:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = fetch_dicts(conn, _UNITS, {"level": level, "name": text, "pattern": pattern,
                                      "limit": limit})
    return [AdminUnit(r["level"], int(r["id"]), r["code"], r["name"], r["parent"])
            for r in rows]


__all__ = [
    "LEVELS",
    "AdminUnit",
    "ScopeUnit",
    "UserInfo",
    "add_scope",
    "create_user",
    "data_scope",
    "find_units",
    "get_user",
    "grant_role",
    "list_users",
    "normalize_username",
    "parse_scope",
    "remove_scope",
    "revoke_role",
    "revoke_user_tokens",
    "set_active",
    "set_password",
    "unlock_user",
    "user_id_of",
]
