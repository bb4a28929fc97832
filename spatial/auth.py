"""Users, passwords, login, bearer tokens and API keys.

Who a caller is, decided against the tables of ``005_security.sql`` and
``131_auth.sql`` through the owner's connection (:mod:`spatial.db`): the
serving role ``onemap_api`` can read none of the secrets. What a caller may
see is decided by PostgreSQL afterwards (:mod:`spatial.access`).

- Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory
  profile); the policy asks for at least :data:`MIN_PASSWORD_LENGTH`
  characters and a password other than the user name.
- :func:`login` writes one row to ``onemap.login_log`` for every attempt and
  locks a login name after :data:`MAX_FAILURES` failures within
  :data:`LOCKOUT_WINDOW` (等保三级). Unknown names cost the same argon2
  verification as known ones and lock the same way, so neither the timing nor
  the answer tells whether a name exists.
- Tokens (``om_…``) and API keys (``omk_<prefix>_<secret>``) are random
  strings of 256 bits; only their sha256 is stored. A token lives
  :func:`token_ttl` (8 hours unless ``ONEMAP_TOKEN_TTL_HOURS`` says otherwise).

Connections passed in should be in autocommit mode (the pool's and
``connect(autocommit=True)`` are): a failed login raises after logging, and
the log row must not be rolled back with the caller's transaction.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import sql
from psycopg.rows import dict_row

from spatial.access import Principal
from spatial.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)

LOGGER = logging.getLogger(__name__)

#: Admin levels a data scope can name; each is a table ``onemap.<level>``.
LEVELS = ("district", "street_office", "community", "grid")
MIN_PASSWORD_LENGTH = 10
#: Longer passwords are refused: argon2 hashes every byte it is given.
MAX_PASSWORD_LENGTH = 1024
#: Failed logins within :data:`LOCKOUT_WINDOW` that lock a login name.
MAX_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
DEFAULT_TOKEN_TTL = timedelta(hours=8)
TOKEN_PREFIX = "om_"  # noqa: S105 - a marker, not a secret
API_KEY_PREFIX = "omk_"
#: ``login_log.reason`` values.
REASONS = ("unknown_user", "bad_password", "disabled", "locked")
#: Reasons that count towards the lockout (attempts refused while locked do
#: not, so the lock ends on time).
_COUNTED = ["unknown_user", "bad_password"]
#: ``last_used_at`` is written at most this often per token or key.
_TOUCH_EVERY = timedelta(minutes=1)
_MAX_LOGGED_NAME = 150
_MAX_USER_AGENT = 512
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

INVALID_CREDENTIALS = "invalid credentials / 用户名或密码错误"
ACCOUNT_LOCKED = (
    f"too many failed logins; try again in {LOCKOUT_WINDOW.seconds // 60} minutes"
    f" / 登录失败次数过多，请{LOCKOUT_WINDOW.seconds // 60}分钟后再试"
)
ACCOUNT_DISABLED = "account disabled / 账户已停用"
EXPIRED_CREDENTIAL = "invalid or expired credentials / 凭证无效或已过期，请重新登录"

# argon2 with RFC 9106's low-memory profile takes 64 MiB per hash; a burst of
# logins must not take the worker's memory with it.
_HASH_SLOTS = threading.BoundedSemaphore(4)


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


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token just issued; :attr:`value` is shown to its holder once.

    The value is left out of ``repr`` so it cannot slip into a log line.
    """

    id: int
    user_id: int
    expires_at: datetime
    value: str = field(repr=False)


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key without its secret.

    Attributes
    ----------
    id : int
    prefix : str
        Public part of the key (``omk_<prefix>_…``), how it is named and revoked.
    username : str
        Owner.
    label : str or None
    status : str
        ``active``, ``revoked`` or ``expired``.
    created_at, expires_at, revoked_at, last_used_at : datetime or None
    """

    id: int
    prefix: str
    username: str
    label: str | None
    status: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class IssuedApiKey:
    """An API key just created; :attr:`key` is shown once and never stored."""

    info: ApiKeyInfo
    key: str = field(repr=False)


@dataclass(frozen=True)
class LoginRecord:
    """One row of ``onemap.login_log``."""

    id: int
    at: datetime
    username: str
    user_id: int | None
    success: bool
    ip: str | None
    user_agent: str | None
    reason: str | None


# ---------------------------------------------------------------- helpers


def _rows(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> dict[str, Any] | None:
    rows = _rows(conn, query, params)
    return rows[0] if rows else None


def sha256_hex(secret: str) -> str:
    """The sha256 of a token or key, as stored.

    Examples
    --------
    >>> sha256_hex("om_x")[:12]
    '46239325f94e'
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_ttl() -> timedelta:
    """How long a login token lives (``ONEMAP_TOKEN_TTL_HOURS``, default 8).

    Read on every call, so it is never fixed at import time.

    Raises
    ------
    ValueError
        If the variable is not a positive number.
    """
    raw = os.environ.get("ONEMAP_TOKEN_TTL_HOURS", "")
    if raw == "":
        return DEFAULT_TOKEN_TTL
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"ONEMAP_TOKEN_TTL_HOURS must be a number, got {raw!r}") from None
    if not hours > 0:
        raise ValueError(f"ONEMAP_TOKEN_TTL_HOURS must be positive, got {raw!r}")
    return timedelta(hours=hours)


def _inet(ip: str | None) -> str | None:
    """An address PostgreSQL's ``inet`` accepts, or None (a test client's
    ``testclient``, a unix socket)."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    """A timezone-aware time; a naive one is taken as local time."""
    return moment if moment.tzinfo is not None else moment.astimezone()


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


def _login_name(username: str) -> str:
    return username.strip().lower()[:_MAX_LOGGED_NAME]


# ---------------------------------------------------------------- passwords


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106 low-memory parameters


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password with the current parameters: unknown users
    are verified against it, so they cost what known users cost."""
    return hash_password(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Hash a password with argon2id.

    Parameters
    ----------
    password : str

    Returns
    -------
    str
        A PHC string ``$argon2id$v=19$m=…``, salted.

    Examples
    --------
    >>> hash_password("correct horse battery").startswith("$argon2id$")
    True
    """
    with _HASH_SLOTS:
        return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``.

    Parameters
    ----------
    password_hash : str
        A PHC string from :func:`hash_password`.
    password : str

    Returns
    -------
    bool
        False for a wrong password or a malformed hash (never raises for those).

    Examples
    --------
    >>> h = hash_password("correct horse battery")
    >>> verify_password(h, "correct horse battery"), verify_password(h, "wrong")
    (True, False)
    """
    try:
        with _HASH_SLOTS:
            return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password_policy(password: str, username: str) -> None:
    """Refuse a password that breaks the policy.

    Parameters
    ----------
    password : str
        The new password.
    username : str
        Whose password it is.

    Raises
    ------
    InvalidInputError
        Naming every rule broken (never echoing the password).

    Examples
    --------
    >>> check_password_policy("a long enough one", "wang")
    >>> check_password_policy("short", "wang")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: password must have at least 10 characters / 密码至少10位
    """
    if not isinstance(password, str):
        raise TypeError(f"password must be a string, got {type(password).__name__}")
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters"
            f" / 密码至少{MIN_PASSWORD_LENGTH}位"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(
            f"password must have at most {MAX_PASSWORD_LENGTH} characters"
            f" / 密码最多{MAX_PASSWORD_LENGTH}位"
        )
    if password.strip().lower() == username.strip().lower():
        problems.append("password must not be the user name / 密码不能与用户名相同")
    if password.strip() == "":
        problems.append("password must not be blank / 密码不能为空白")
    if problems:
        raise InvalidInputError("; ".join(problems))


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


def _user_id(conn: psycopg.Connection[Any], user: int | str) -> int:
    """The id of a user named by id or user name.

    Raises
    ------
    NotFoundError
        If there is no such user.
    """
    if isinstance(user, bool) or not isinstance(user, int | str):
        raise TypeError(f"user must be an id or a user name, got {user!r}")
    if isinstance(user, int):
        row = _one(conn, "SELECT id FROM onemap.app_user WHERE id = %s", (user,))
    else:
        row = _one(conn, "SELECT id FROM onemap.app_user WHERE username = %s",
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
    uid = _user_id(conn, user)
    row = _one(conn, _USER_SELECT + sql.SQL("WHERE u.id = %s"), (uid,))
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
    return [_user_info(r) for r in _rows(conn, _USER_SELECT + sql.SQL("ORDER BY u.username"))]


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
        row = _one(
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
    uid = _user_id(conn, user)
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
    uid = _user_id(conn, user)
    conn.execute("UPDATE onemap.app_user SET unlocked_at = now() WHERE id = %s", (uid,))


def _role_id(conn: psycopg.Connection[Any], role: str) -> int:
    row = _one(conn, "SELECT id FROM onemap.app_role WHERE code = %s", (role,))
    if row is None:
        known = [r["code"] for r in _rows(conn, "SELECT code FROM onemap.app_role ORDER BY id")]
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
    uid = _user_id(conn, user)
    rid = _role_id(conn, role)
    row = _one(
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
    uid = _user_id(conn, user)
    rid = _role_id(conn, role)
    row = _one(
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
    uid = _user_id(conn, user)
    exists = _one(
        conn,
        sql.SQL("SELECT 1 AS ok FROM {} WHERE id = %s").format(sql.Identifier("onemap", level)),
        (unit_id,),
    )
    if exists is None:
        raise NotFoundError(f"no {level} with id {unit_id} / 行政单元不存在")
    row = _one(
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
    uid = _user_id(conn, user)
    row = _one(
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
    rows = _rows(
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


# ---------------------------------------------------------------- principals

_ROLES_OF = sql.SQL("""ARRAY(SELECT r.code FROM onemap.user_role ur
                   JOIN onemap.app_role r ON r.id = ur.role_id
                   WHERE ur.user_id = u.id ORDER BY r.code)""")


def _principal(row: dict[str, Any], api_key_id: int | None = None) -> Principal:
    # A user without any role is treated as the public.
    roles = frozenset(row["roles"]) or frozenset({"public"})
    return Principal(int(row["user_id"]), row["username"], roles, api_key_id)


def principal_for_user(
    conn: psycopg.Connection[Any], user_id: int, *, api_key_id: int | None = None
) -> Principal:
    """The principal of an active user, with the roles granted in ``user_role``.

    Parameters
    ----------
    conn : psycopg.Connection
    user_id : int
    api_key_id : int, optional
        The key the caller authenticated with.

    Returns
    -------
    Principal
        A user without roles gets the role ``public``.

    Raises
    ------
    AuthenticationError
        If the user does not exist or is disabled.
    """
    row = _one(
        conn,
        sql.SQL(
            "SELECT u.id AS user_id, u.username, u.active, {roles} AS roles "
            "FROM onemap.app_user u WHERE u.id = %s"
        ).format(roles=_ROLES_OF),
        (user_id,),
    )
    if row is None or not row["active"]:
        raise AuthenticationError(ACCOUNT_DISABLED if row else EXPIRED_CREDENTIAL)
    return _principal(row, api_key_id)


# ---------------------------------------------------------------- login


def _log_attempt(
    conn: psycopg.Connection[Any],
    name: str,
    user_id: int | None,
    success: bool,
    ip: str | None,
    user_agent: str | None,
    reason: str | None,
) -> None:
    conn.execute(
        """
        INSERT INTO onemap.login_log (username, user_id, success, ip, user_agent, reason)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (name, user_id, success, ip, user_agent, reason),
    )


def failed_logins(
    conn: psycopg.Connection[Any], username: str, unlocked_at: datetime | None = None
) -> int:
    """Failures that count towards the lockout of a login name right now.

    Counted: unknown-user and bad-password attempts within
    :data:`LOCKOUT_WINDOW`, after the name's last successful login and after
    an administrator's unlock or password reset.

    Parameters
    ----------
    conn : psycopg.Connection
    username : str
        Login name (lower-cased here).
    unlocked_at : datetime, optional
        ``app_user.unlocked_at`` of the user, if known.

    Returns
    -------
    int
    """
    name = _login_name(username)
    row = _one(
        conn,
        """
        SELECT count(*) AS n FROM onemap.login_log
        WHERE username = %(name)s AND NOT success AND reason = ANY(%(reasons)s)
          AND at > greatest(
                now() - %(window)s,
                coalesce((SELECT max(at) FROM onemap.login_log
                          WHERE username = %(name)s AND success), '-infinity'),
                coalesce(%(unlocked)s::timestamptz, '-infinity'))
        """,
        {"name": name, "reasons": _COUNTED, "window": LOCKOUT_WINDOW, "unlocked": unlocked_at},
    )
    return int(row["n"]) if row else 0


def login(
    conn: psycopg.Connection[Any],
    username: str,
    password: str,
    ip: str | None = None,
    user_agent: str | None = None,
    *,
    ttl: timedelta | None = None,
) -> tuple[IssuedToken, Principal]:
    """Check a user name and password and issue a bearer token.

    Every attempt is written to ``onemap.login_log`` with its reason
    (``unknown_user``, ``bad_password``, ``disabled``, ``locked``).

    Parameters
    ----------
    conn : psycopg.Connection
        Owner connection in autocommit mode (so a failure stays logged).
    username, password : str
        As typed; the name is compared lower-case.
    ip : str, optional
        Client address; anything that is not an IP address is logged as NULL.
    user_agent : str, optional
        Client's ``User-Agent`` (truncated to 512 characters).
    ttl : timedelta, optional
        Token lifetime; defaults to :func:`token_ttl`.

    Returns
    -------
    (IssuedToken, Principal)

    Raises
    ------
    AuthenticationError
        For a wrong name or password (one message for both), a disabled
        account (only said when the password was right) or a locked name.
    """
    if not isinstance(username, str) or not isinstance(password, str):
        raise TypeError("username and password must be strings")
    name = _login_name(username)
    address = _inet(ip)
    agent = user_agent[:_MAX_USER_AGENT] if user_agent else None
    candidate = password[:MAX_PASSWORD_LENGTH + 1]
    user = _one(
        conn,
        "SELECT id, password_hash, active, unlocked_at FROM onemap.app_user WHERE username = %s",
        (name,),
    )
    uid = int(user["id"]) if user else None

    def refuse(reason: str, message: str) -> AuthenticationError:
        _log_attempt(conn, name, uid, False, address, agent, reason)
        LOGGER.info("login refused for %r: %s", name, reason)
        return AuthenticationError(message)

    if failed_logins(conn, name, user["unlocked_at"] if user else None) >= MAX_FAILURES:
        verify_password(_dummy_hash(), candidate)
        raise refuse("locked", ACCOUNT_LOCKED)
    if user is None:
        verify_password(_dummy_hash(), candidate)
        raise refuse("unknown_user", INVALID_CREDENTIALS)
    stored = user["password_hash"]
    if stored is None:  # an API-key-only account
        verify_password(_dummy_hash(), candidate)
        raise refuse("bad_password", INVALID_CREDENTIALS)
    # Verified whatever the length, so that too costs one argon2 run.
    if not verify_password(stored, candidate) or len(password) > MAX_PASSWORD_LENGTH:
        raise refuse("bad_password", INVALID_CREDENTIALS)
    if not user["active"]:
        raise refuse("disabled", ACCOUNT_DISABLED)
    if _hasher().check_needs_rehash(stored):
        conn.execute(
            "UPDATE onemap.app_user SET password_hash = %s WHERE id = %s",
            (hash_password(password), uid),
        )
    assert uid is not None
    principal = principal_for_user(conn, uid)
    token = issue_token(conn, uid, ttl=ttl, ip=address, user_agent=agent)
    _log_attempt(conn, name, uid, True, address, agent, None)
    LOGGER.info("login of %r", name)
    return token, principal


# ---------------------------------------------------------------- tokens


def issue_token(
    conn: psycopg.Connection[Any],
    user_id: int,
    *,
    ttl: timedelta | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedToken:
    """Issue a bearer token for a user (no password check: :func:`login` does that).

    Parameters
    ----------
    conn : psycopg.Connection
    user_id : int
    ttl : timedelta, optional
        Lifetime; defaults to :func:`token_ttl`.
    ip, user_agent : str, optional
        Recorded with the token.

    Returns
    -------
    IssuedToken
        ``value`` is ``om_`` followed by 43 URL-safe characters.
    """
    lifetime = ttl if ttl is not None else token_ttl()
    if lifetime <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {lifetime}")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = _one(
        conn,
        """
        INSERT INTO onemap.auth_token (token_hash, user_id, expires_at, ip, user_agent)
        VALUES (%s, %s, now() + %s, %s, %s)
        RETURNING id, expires_at
        """,
        (sha256_hex(value), user_id, lifetime, _inet(ip), user_agent),
    )
    assert row is not None
    # Expired tokens are kept a month for the record, then dropped.
    conn.execute(
        "DELETE FROM onemap.auth_token "
        "WHERE user_id = %s AND expires_at < now() - interval '30 days'",
        (user_id,),
    )
    return IssuedToken(int(row["id"]), user_id, row["expires_at"], value)


def verify_token(conn: psycopg.Connection[Any], token: str) -> Principal:
    """The principal a bearer token stands for.

    Parameters
    ----------
    conn : psycopg.Connection
    token : str
        ``om_…`` as presented.

    Returns
    -------
    Principal

    Raises
    ------
    AuthenticationError
        If the token is unknown, expired or revoked, or its user disabled.
    """
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationError(EXPIRED_CREDENTIAL)
    row = _one(
        conn,
        sql.SQL("""
        SELECT t.id, t.user_id, u.username, u.active, {roles} AS roles,
               t.revoked_at IS NULL AND t.expires_at > now() AS valid,
               t.last_used_at IS NULL OR t.last_used_at < now() - %s AS stale
        FROM onemap.auth_token t JOIN onemap.app_user u ON u.id = t.user_id
        WHERE t.token_hash = %s
        """).format(roles=_ROLES_OF),
        (_TOUCH_EVERY, sha256_hex(token)),
    )
    if row is None or not row["valid"]:
        raise AuthenticationError(EXPIRED_CREDENTIAL)
    if not row["active"]:
        raise AuthenticationError(ACCOUNT_DISABLED)
    if row["stale"]:
        conn.execute("UPDATE onemap.auth_token SET last_used_at = now() WHERE id = %s",
                     (row["id"],))
    return _principal(row)


def revoke_token(conn: psycopg.Connection[Any], token: str) -> bool:
    """Revoke a bearer token (logout).

    Returns
    -------
    bool
        False if the token was unknown or already revoked.
    """
    row = _one(
        conn,
        "UPDATE onemap.auth_token SET revoked_at = now() "
        "WHERE token_hash = %s AND revoked_at IS NULL RETURNING id",
        (sha256_hex(token),),
    )
    return row is not None


def revoke_user_tokens(conn: psycopg.Connection[Any], user: int | str) -> int:
    """Revoke every live token of a user.

    Returns
    -------
    int
        How many were revoked.
    """
    uid = _user_id(conn, user)
    rows = _rows(
        conn,
        "UPDATE onemap.auth_token SET revoked_at = now() "
        "WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now() RETURNING id",
        (uid,),
    )
    return len(rows)


# ---------------------------------------------------------------- API keys


_KEY_SELECT = """
SELECT k.id, k.prefix, u.username, k.label, k.created_at, k.expires_at, k.revoked_at,
       k.last_used_at,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired'
            ELSE 'active' END AS status
FROM onemap.api_key k JOIN onemap.app_user u ON u.id = k.user_id
"""


def _key_info(row: dict[str, Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        prefix=row["prefix"],
        username=row["username"],
        label=row["label"],
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def create_api_key(
    conn: psycopg.Connection[Any],
    user: int | str,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedApiKey:
    """Create an API key for a user; the full key is returned only here.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str
        Owner (id or user name); the key acts with the owner's roles and scope.
    label : str, optional
        What the key is for ("12345 hotline").
    expires_at : datetime, optional
        When it stops working (naive = local time); never if None.

    Returns
    -------
    IssuedApiKey
        ``key`` is ``omk_<8 hex>_<43 URL-safe characters>``; only its sha256
        and the prefix are stored.

    Raises
    ------
    NotFoundError
        No such user.
    InvalidInputError
        An expiry in the past.
    """
    uid = _user_id(conn, user)
    if expires_at is not None:
        expires_at = _aware(expires_at)
        if expires_at <= datetime.now(UTC):
            raise InvalidInputError(
                f"expiry {expires_at.isoformat()} is in the past / 过期时间已过"
            )
    for _ in range(5):
        prefix = secrets.token_hex(4)
        key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = _one(
            conn,
            """
            INSERT INTO onemap.api_key (prefix, key_hash, user_id, label, expires_at)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (prefix) DO NOTHING RETURNING id
            """,
            (prefix, sha256_hex(key), uid, label, expires_at),
        )
        if row is not None:
            info = _one(conn, _KEY_SELECT + "WHERE k.id = %s", (row["id"],))
            assert info is not None
            LOGGER.info("API key %s created for user %d", prefix, uid)
            return IssuedApiKey(_key_info(info), key)
    raise RuntimeError("could not draw an unused API key prefix in 5 attempts")


def _split_key(key: str) -> str | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]) or not parts[2]:
        return None
    return parts[1]


def verify_api_key(conn: psycopg.Connection[Any], key: str) -> Principal:
    """The principal an API key stands for.

    Parameters
    ----------
    conn : psycopg.Connection
    key : str
        ``omk_<prefix>_<secret>`` as presented.

    Returns
    -------
    Principal
        The owner's roles, with ``api_key_id`` set.

    Raises
    ------
    AuthenticationError
        If the key is malformed, unknown, revoked or expired, or its owner
        disabled.
    """
    prefix = _split_key(key)
    if prefix is None:
        raise AuthenticationError(EXPIRED_CREDENTIAL)
    row = _one(
        conn,
        sql.SQL("""
        SELECT k.id, k.key_hash, k.user_id, u.username, u.active, {roles} AS roles,
               k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) AS valid,
               k.last_used_at IS NULL OR k.last_used_at < now() - %s AS stale
        FROM onemap.api_key k JOIN onemap.app_user u ON u.id = k.user_id
        WHERE k.prefix = %s
        """).format(roles=_ROLES_OF),
        (_TOUCH_EVERY, prefix),
    )
    # The prefix is public; the comparison of the secret part is constant-time.
    if row is None or not hmac.compare_digest(row["key_hash"], sha256_hex(key)):
        raise AuthenticationError(EXPIRED_CREDENTIAL)
    if not row["valid"]:
        raise AuthenticationError(EXPIRED_CREDENTIAL)
    if not row["active"]:
        raise AuthenticationError(ACCOUNT_DISABLED)
    if row["stale"]:
        conn.execute("UPDATE onemap.api_key SET last_used_at = now() WHERE id = %s", (row["id"],))
    return _principal(row, api_key_id=int(row["id"]))


def revoke_api_key(conn: psycopg.Connection[Any], prefix: str) -> ApiKeyInfo:
    """Revoke an API key by its prefix (revoking twice keeps the first time).

    Parameters
    ----------
    conn : psycopg.Connection
    prefix : str
        The 8 hex characters after ``omk_`` (a full key is accepted too).

    Returns
    -------
    ApiKeyInfo

    Raises
    ------
    NotFoundError
        No key with that prefix.
    """
    wanted = _split_key(prefix) or prefix.strip()
    conn.execute(
        "UPDATE onemap.api_key SET revoked_at = now() WHERE prefix = %s AND revoked_at IS NULL",
        (wanted,),
    )
    row = _one(conn, _KEY_SELECT + "WHERE k.prefix = %s", (wanted,))
    if row is None:
        raise NotFoundError(f"no API key with prefix {wanted!r} / 密钥不存在")
    LOGGER.info("API key %s revoked", wanted)
    return _key_info(row)


def list_api_keys(conn: psycopg.Connection[Any], user: int | str | None = None) -> list[ApiKeyInfo]:
    """API keys (never their secrets), newest first.

    Parameters
    ----------
    conn : psycopg.Connection
    user : int or str, optional
        Only this user's keys.

    Returns
    -------
    list of ApiKeyInfo
    """
    if user is None:
        rows = _rows(conn, _KEY_SELECT + "ORDER BY k.created_at DESC, k.id DESC")
    else:
        rows = _rows(conn, _KEY_SELECT + "WHERE k.user_id = %s ORDER BY k.created_at DESC, "
                     "k.id DESC", (_user_id(conn, user),))
    return [_key_info(r) for r in rows]


def authenticate(conn: psycopg.Connection[Any], credential: str) -> Principal:
    """The principal of a presented credential: a token or an API key.

    Parameters
    ----------
    conn : psycopg.Connection
    credential : str
        ``om_…`` (login token) or ``omk_…`` (API key).

    Returns
    -------
    Principal

    Raises
    ------
    AuthenticationError
        If the credential is not valid.
    """
    if credential.startswith(API_KEY_PREFIX):
        return verify_api_key(conn, credential)
    return verify_token(conn, credential)


# ---------------------------------------------------------------- login log


def search_login_log(
    conn: psycopg.Connection[Any],
    username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    success: bool | None = None,
    ip: str | None = None,
    limit: int = 100,
) -> list[LoginRecord]:
    """Search the login log, newest first.

    Parameters
    ----------
    conn : psycopg.Connection
    username : str, optional
        Login name (compared lower-case).
    since, until : datetime, optional
        ``since <= at < until``; naive times are local time.
    success : bool, optional
        Only successful (True) or failed (False) attempts.
    ip : str, optional
        An address or a network (``10.0.0.0/8``).
    limit : int
        1–1000.

    Returns
    -------
    list of LoginRecord

    Raises
    ------
    InvalidInputError
        A bad limit or address.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInputError(f"limit must be 1–1000, got {limit!r} / limit 须在1–1000之间")
    where: list[sql.Composable] = []
    params: list[Any] = []
    if username is not None:
        where.append(sql.SQL("username = %s"))
        params.append(_login_name(username))
    if since is not None:
        where.append(sql.SQL("at >= %s"))
        params.append(_aware(since))
    if until is not None:
        where.append(sql.SQL("at < %s"))
        params.append(_aware(until))
    if success is not None:
        where.append(sql.SQL("success = %s"))
        params.append(success)
    if ip is not None:
        try:
            network = ipaddress.ip_network(ip.strip(), strict=False)
        except ValueError:
            raise InvalidInputError(f"invalid IP address or network {ip!r} / IP地址无效") from None
        where.append(sql.SQL("ip <<= %s::inet"))
        params.append(str(network))
    query = sql.SQL(
        "SELECT id, at, username, user_id, success, host(ip) AS ip, user_agent, reason "
        "FROM onemap.login_log {} ORDER BY at DESC, id DESC LIMIT %s"
    ).format(sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    params.append(limit)
    return [
        LoginRecord(r["id"], r["at"], r["username"], r["user_id"], r["success"], r["ip"],
                    r["user_agent"], r["reason"])
        for r in _rows(conn, query, params)
    ]


__all__ = [
    "LEVELS",
    "MAX_FAILURES",
    "ApiKeyInfo",
    "IssuedApiKey",
    "IssuedToken",
    "LoginRecord",
    "ScopeUnit",
    "UserInfo",
    "add_scope",
    "authenticate",
    "check_password_policy",
    "create_api_key",
    "create_user",
    "data_scope",
    "failed_logins",
    "get_user",
    "grant_role",
    "hash_password",
    "list_api_keys",
    "list_users",
    "login",
    "normalize_username",
    "parse_scope",
    "principal_for_user",
    "remove_scope",
    "revoke_api_key",
    "revoke_role",
    "revoke_token",
    "revoke_user_tokens",
    "search_login_log",
    "set_active",
    "set_password",
    "token_ttl",
    "unlock_user",
    "verify_api_key",
    "verify_password",
    "verify_token",
]
