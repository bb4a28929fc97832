"""Login, bearer tokens, API keys, the login log and principals.

Who a caller is, decided against the tables of ``005_security.sql`` and
``131_auth.sql`` through the owner's connection (:mod:`spatial.db`): the
serving role ``onemap_api`` can read none of the secrets. What a caller may
see is decided by PostgreSQL afterwards (:mod:`spatial.access`). The accounts
themselves are managed in :mod:`spatial.users`, passwords hashed in
:mod:`spatial.passwords`.

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

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from spatial.access import Principal
from spatial.db import fetch_dict, fetch_dicts
from spatial.errors import AuthenticationError, InvalidInputError, NotFoundError
from spatial.passwords import (
    MAX_PASSWORD_LENGTH,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from spatial.users import user_id_of

LOGGER = logging.getLogger(__name__)

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

INVALID_CREDENTIALS = "invalid credentials / 用户名或密码错误"
ACCOUNT_LOCKED = (
    f"too many failed logins; try again in {LOCKOUT_WINDOW.seconds // 60} minutes"
    f" / 登录失败次数过多，请{LOCKOUT_WINDOW.seconds // 60}分钟后再试"
)
ACCOUNT_DISABLED = "account disabled / 账户已停用"
EXPIRED_CREDENTIAL = "invalid or expired credentials / 凭证无效或已过期，请重新登录"


# ---------------------------------------------------------------- records


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


def _login_name(username: str) -> str:
    return username.strip().lower()[:_MAX_LOGGED_NAME]


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
    row = fetch_dict(
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
    row = fetch_dict(
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
    user = fetch_dict(
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
        verify_password(dummy_hash(), candidate)
        raise refuse("locked", ACCOUNT_LOCKED)
    if user is None:
        verify_password(dummy_hash(), candidate)
        raise refuse("unknown_user", INVALID_CREDENTIALS)
    stored = user["password_hash"]
    if stored is None:  # an API-key-only account
        verify_password(dummy_hash(), candidate)
        raise refuse("bad_password", INVALID_CREDENTIALS)
    # Verified whatever the length, so that too costs one argon2 run.
    if not verify_password(stored, candidate) or len(password) > MAX_PASSWORD_LENGTH:
        raise refuse("bad_password", INVALID_CREDENTIALS)
    if not user["active"]:
        raise refuse("disabled", ACCOUNT_DISABLED)
    if needs_rehash(stored):
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
    row = fetch_dict(
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
    row = fetch_dict(
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
    row = fetch_dict(
        conn,
        "UPDATE onemap.auth_token SET revoked_at = now() "
        "WHERE token_hash = %s AND revoked_at IS NULL RETURNING id",
        (sha256_hex(token),),
    )
    return row is not None


#: How long a refreshed token keeps working after :func:`refresh_token` replaced it:
#: requests already in flight with it (a map view's tiles) and other tabs sharing it
#: finish instead of failing.
REFRESH_GRACE = timedelta(seconds=60)


def refresh_token(
    conn: psycopg.Connection[Any],
    token: str,
    *,
    grace: timedelta = REFRESH_GRACE,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedToken:
    """Exchange a valid bearer token for a new one with a new expiry.

    The new token lives :func:`token_ttl` from now; the old one expires ``grace``
    from now (or earlier, when it was due to expire sooner), so a console that
    refreshes before expiry keeps working across a working day without asking for
    the password again, and a stolen token stops working once it has been replaced.
    The account must still be active: a disabled user cannot refresh.

    Parameters
    ----------
    conn : psycopg.Connection
    token : str
        ``om_…`` as presented; an API key is refused.
    grace : timedelta
        How long the old token keeps working; zero revokes it at once.
    ip, user_agent : str, optional
        Recorded with the new token.

    Returns
    -------
    IssuedToken

    Raises
    ------
    AuthenticationError
        If the token is unknown, expired or revoked, or its user disabled.
    ValueError
        If ``grace`` is negative.

    Examples
    --------
    >>> new = refresh_token(conn, old.value)  # doctest: +SKIP
    >>> verify_token(conn, new.value).username  # doctest: +SKIP
    'worker'
    """
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    principal = verify_token(conn, token)  # unknown, expired, revoked, disabled → 401
    assert principal.user_id is not None
    fresh = issue_token(conn, principal.user_id, ip=ip, user_agent=user_agent)
    if grace > timedelta(0):
        conn.execute(
            "UPDATE onemap.auth_token SET expires_at = greatest(issued_at + interval '1 "
            "microsecond', least(expires_at, now() + %s)) WHERE token_hash = %s",
            (grace, sha256_hex(token)),
        )
    else:
        revoke_token(conn, token)
    LOGGER.info("token of %r refreshed", principal.username)
    return fresh


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
    uid = user_id_of(conn, user)
    if expires_at is not None:
        expires_at = _aware(expires_at)
        if expires_at <= datetime.now(UTC):
            raise InvalidInputError(
                f"expiry {expires_at.isoformat()} is in the past / 过期时间已过"
            )
    for _ in range(5):
        prefix = secrets.token_hex(4)
        key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = fetch_dict(
            conn,
            """
            INSERT INTO onemap.api_key (prefix, key_hash, user_id, label, expires_at)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (prefix) DO NOTHING RETURNING id
            """,
            (prefix, sha256_hex(key), uid, label, expires_at),
        )
        if row is not None:
            info = fetch_dict(conn, _KEY_SELECT + "WHERE k.id = %s", (row["id"],))
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
    row = fetch_dict(
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
    row = fetch_dict(conn, _KEY_SELECT + "WHERE k.prefix = %s", (wanted,))
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
        rows = fetch_dicts(conn, _KEY_SELECT + "ORDER BY k.created_at DESC, k.id DESC")
    else:
        rows = fetch_dicts(conn, _KEY_SELECT + "WHERE k.user_id = %s ORDER BY k.created_at DESC, "
                     "k.id DESC", (user_id_of(conn, user),))
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
        for r in fetch_dicts(conn, query, params)
    ]


__all__ = [
    "MAX_FAILURES",
    "REFRESH_GRACE",
    "ApiKeyInfo",
    "IssuedApiKey",
    "IssuedToken",
    "LoginRecord",
    "authenticate",
    "create_api_key",
    "failed_logins",
    "issue_token",
    "list_api_keys",
    "login",
    "principal_for_user",
    "refresh_token",
    "revoke_api_key",
    "revoke_token",
    "search_login_log",
    "sha256_hex",
    "token_ttl",
    "verify_api_key",
    "verify_token",
]
