"""Authentication at the web edge: the ``/auth`` routes and the middleware
that turns a bearer token or an API key into the request's principal.

Credentials arrive as ``Authorization: Bearer om_…`` (a login token),
``Authorization: Bearer omk_…`` or ``X-API-Key: omk_…`` (an API key). No
credentials means the anonymous principal (role ``public``); credentials that
do not check out are answered 401 with ``WWW-Authenticate: Bearer`` — never
silently downgraded to anonymous. The checking itself is :mod:`spatial.auth`.

Who may write is decided here too (:func:`write_refusal`), before pygeoapi
handles the request: a Features Part 4 write (``POST`` of a GeoJSON feature,
``PUT`` or ``DELETE`` of one) on an editable collection is refused 401 (with
``WWW-Authenticate``) for an anonymous caller and 403 for a signed-in one whose
roles may not (:func:`spatial.editing.check_can_write`, ``onemap.can_write``).
pygeoapi reads a feature before deleting it and answers any refusal of that
read but "not found" with a 500; deciding first makes every write answer the
same way.

A verified credential is remembered for ``ONEMAP_AUTH_CACHE_SECONDS``
(default 5, 0 turns it off), so a page of tile requests costs one lookup; a
token revoked by logout in this worker is forgotten at once, one revoked
elsewhere (another worker, the CLI) within those seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import weakref
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.contract import classify, feature_provider
from server.problems import CHALLENGE, error_response
from spatial import auth, editing, users
from spatial.access import ANONYMOUS, Principal, acting_as, current_principal, request_connection
from spatial.db import UNAVAILABLE
from spatial.errors import (
    AuthenticationError,
    DatabaseUnavailableError,
    InvalidInputError,
    PermissionDeniedError,
)

LOGGER = logging.getLogger(__name__)

#: Login bodies are a name and a password; anything bigger is refused unread.
MAX_BODY = 16 * 1024
#: Paths that must work whatever stale credentials a client still sends.
_OPEN_PATHS = frozenset({"/auth/login"})
_LOGIN_LOG_PARAMS = frozenset({"username", "since", "until", "success", "ip", "limit", "f"})
NO_CREDENTIALS = "authentication required / 请先登录"
#: Features Part 4 writes: (method, kind of resource) → the action ``onemap.can_write``
#: checks. pygeoapi 0.24 has no PATCH (405 for everyone).
_WRITES: dict[tuple[str, str], editing.Action] = {
    ("POST", "items"): "insert",
    ("PUT", "item"): "update",
    ("DELETE", "item"): "delete",
}
_PROVIDER = "server.provider.PostGISProvider"


# ---------------------------------------------------------------- cache


class PrincipalCache:
    """Principals of recently verified credentials, for a few seconds.

    Keys are sha256 digests of the credentials, never the credentials.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    @staticmethod
    def seconds() -> float:
        """How long an entry lives (``ONEMAP_AUTH_CACHE_SECONDS``, default 5, at most 60)."""
        raw = os.environ.get("ONEMAP_AUTH_CACHE_SECONDS", "")
        try:
            return min(max(float(raw), 0.0), 60.0) if raw else 5.0
        except ValueError:
            LOGGER.warning("ONEMAP_AUTH_CACHE_SECONDS=%r is not a number; using 5", raw)
            return 5.0

    def get(self, key: str) -> Principal | None:
        """The cached principal, if still fresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        """Remember a verified principal."""
        ttl = self.seconds()
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl, principal)

    def discard(self, key: str) -> None:
        """Forget one credential (logout)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


#: The worker's cache of verified credentials.
CACHE = PrincipalCache()


# ---------------------------------------------------------------- helpers


def credential_from_headers(headers: Headers) -> str | None:
    """The token or API key a request presents.

    Parameters
    ----------
    headers : starlette.datastructures.Headers

    Returns
    -------
    str or None
        None when the request carries no credentials.

    Raises
    ------
    AuthenticationError
        Another scheme than Bearer, an empty credential, or both headers.

    Examples
    --------
    >>> credential_from_headers(Headers({"authorization": "Bearer om_abc"}))
    'om_abc'
    >>> credential_from_headers(Headers({"x-api-key": "omk_1234abcd_xyz"}))
    'omk_1234abcd_xyz'
    >>> credential_from_headers(Headers({})) is None
    True
    """
    authorization = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if authorization is not None and api_key is not None:
        raise AuthenticationError("send Authorization or X-API-Key, not both / 请只提供一种凭证")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise AuthenticationError(
                "unsupported authorization scheme; use Bearer / 仅支持 Bearer 认证"
            )
        value = value.strip()
        if not value:
            raise AuthenticationError(auth.EXPIRED_CREDENTIAL)
        return value
    if api_key is not None:
        value = api_key.strip()
        if not value.startswith(auth.API_KEY_PREFIX):
            raise AuthenticationError(auth.EXPIRED_CREDENTIAL)
        return value
    return None


def unauthorized(message: str, *, invalid: bool = True) -> JSONResponse:
    """A 401 OGC exception document with ``WWW-Authenticate: Bearer``.

    Parameters
    ----------
    message : str
        Safe to show.
    invalid : bool
        Credentials were presented and refused (RFC 6750 ``invalid_token``);
        False when there were none.
    """
    challenge = CHALLENGE + (', error="invalid_token"' if invalid else "")
    return error_response(AuthenticationError(message), {"WWW-Authenticate": challenge})


def forbidden(message: str) -> JSONResponse:
    """A 403 OGC exception document.

    Parameters
    ----------
    message : str
        Safe to show.
    """
    return error_response(PermissionDeniedError(message))


def feature_write(method: str, path: str, content_type: str | None
                  ) -> tuple[str, editing.Action] | None:
    """The table and action of a request writing features of an editable collection.

    Parameters
    ----------
    method : str
        The HTTP method.
    path : str
        The request path.
    content_type : str or None
        A ``POST`` to items creates a feature only as ``application/geo+json``
        (any other type is a search).

    Returns
    -------
    tuple or None
        ``(table, "insert" | "update" | "delete")``; None when the request
        writes nothing, or not through onemap's provider on an editable
        collection (pygeoapi answers those).
    """
    found = classify(path)
    if found is None:
        return None
    kind, collection = found
    action = _WRITES.get((method, kind))
    if action is None or collection is None:
        return None
    if action == "insert" and (content_type or "").split(";")[0].strip().lower() \
            != "application/geo+json":
        return None
    provider = feature_provider(collection)
    if provider is None or provider.get("name") != _PROVIDER or not provider.get("editable"):
        return None
    data = provider.get("data")
    return (str(data["table"]) if isinstance(data, dict) else str(data)), action


def _check_can_write(principal: Principal, table: str, action: editing.Action) -> None:
    with request_connection(principal) as conn:
        editing.check_can_write(conn, table, action)


async def write_refusal(scope: Scope) -> Response | None:
    """The answer refusing a feature write the caller may not make, None when they may.

    Called by :class:`server.contract.ContractMiddleware` once a request
    is well-formed (a malformed body is a 400 whoever sends it), inside
    :class:`AuthMiddleware`, so the caller is :func:`~spatial.access.current_principal`.

    Parameters
    ----------
    scope : ASGI scope
        The request.

    Returns
    -------
    Response or None
        401 with ``WWW-Authenticate`` for an anonymous caller, 403 for a
        signed-in one whose roles may not (:func:`feature_write`,
        :func:`spatial.editing.check_can_write`), 503 when the database cannot
        say; None for a permitted write or a request that writes no features.
    """
    if scope["method"] not in ("POST", "PUT", "DELETE"):
        return None
    write = feature_write(scope["method"], scope.get("path", ""),
                          Headers(scope=scope).get("content-type"))
    if write is None:
        return None
    try:
        await run_in_threadpool(_check_can_write, current_principal(), *write)
    except AuthenticationError as exc:
        return unauthorized(str(exc), invalid=False)
    except PermissionDeniedError as exc:
        return forbidden(str(exc))
    except (DatabaseUnavailableError, psycopg.OperationalError, PoolTimeout):
        LOGGER.exception("cannot check write access")
        return _unavailable()
    return None


def _unavailable() -> JSONResponse:
    return error_response(DatabaseUnavailableError(UNAVAILABLE))


def _resolve(credential: str) -> Principal:
    from spatial.db import get_pool

    with get_pool().connection() as conn:
        return auth.authenticate(conn, credential)


async def principal_for(credential: str) -> Principal:
    """Verify a credential (through the cache) and return its principal.

    Raises
    ------
    AuthenticationError
        If it does not check out.
    """
    key = auth.sha256_hex(credential)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    # One lookup per credential at a time in this event loop: when an entry runs
    # out under load (a map view sends dozens of tile requests at once), the
    # requests then in flight share it instead of each taking an owner-pool
    # connection and a thread.
    loop = asyncio.get_running_loop()
    pending = _PENDING.setdefault(loop, {})
    lookup = pending.get(key)
    if lookup is None:
        lookup = loop.create_task(_lookup(credential, key))
        pending[key] = lookup
        lookup.add_done_callback(lambda t: _forget(pending, key, t))
    # shield: a caller going away must not cancel the lookup the others await
    return await asyncio.shield(lookup)


async def _lookup(credential: str, key: str) -> Principal:
    principal = await run_in_threadpool(_resolve, credential)
    CACHE.put(key, principal)
    return principal


def _forget(pending: dict[str, asyncio.Task[Principal]], key: str,
            task: asyncio.Task[Principal]) -> None:
    if pending.get(key) is task:
        del pending[key]
    if not task.cancelled():
        task.exception()  # retrieved: the callers that awaited it re-raise it


#: Credential lookups under way, per event loop (keys are digests, as in :data:`CACHE`).
_PENDING: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Task[Principal]]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- middleware


class AuthMiddleware:
    """Resolve the caller and run the rest of the application as them.

    Parameters
    ----------
    app : ASGI application
        The application to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal = ANONYMOUS
        if scope.get("path") not in _OPEN_PATHS:
            try:
                credential = credential_from_headers(Headers(scope=scope))
                if credential is not None:
                    principal = await principal_for(credential)
            except AuthenticationError as exc:
                await unauthorized(str(exc))(scope, receive, send)
                return
            except (DatabaseUnavailableError, psycopg.OperationalError, PoolTimeout):
                LOGGER.exception("cannot verify credentials")
                await _unavailable()(scope, receive, send)
                return
        # The context variable is set in this task around the downstream
        # call, so every route, and pygeoapi's executor threads, see it.
        with acting_as(principal):
            await self.app(scope, receive, send)


# ---------------------------------------------------------------- routes


async def _json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (400 for anything else)."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidInputError(f"request body larger than {MAX_BODY} bytes / 请求体过大")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError("request body is not UTF-8 / 请求体不是 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            " / 请求体不是有效的 JSON"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"request body must be a JSON object, got {type(data).__name__} / 请求体须为 JSON 对象"
        )
    return data


def _do_login(
    username: str, password: str, ip: str | None, user_agent: str | None
) -> tuple[auth.IssuedToken, Principal, str | None]:
    from spatial.db import get_pool

    with get_pool().connection() as conn:
        token, principal = auth.login(conn, username, password, ip, user_agent)
        assert principal.user_id is not None
        display_name = users.get_user(conn, principal.user_id).display_name
    return token, principal, display_name


async def login_endpoint(request: Request) -> Response:
    """``POST /auth/login``: ``{"username", "password"}`` → a bearer token."""
    data = await _json_body(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not username.strip():
        raise InvalidInputError("'username' (a non-empty string) is required / 请提供用户名")
    if not isinstance(password, str) or not password:
        raise InvalidInputError("'password' (a non-empty string) is required / 请提供密码")
    ip = request.client.host if request.client else None
    try:
        token, principal, display_name = await run_in_threadpool(
            _do_login, username, password, ip, request.headers.get("user-agent")
        )
    except AuthenticationError as exc:
        return unauthorized(str(exc), invalid=False)
    return JSONResponse(
        {
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_at": token.expires_at.isoformat(),
            "user": {
                "username": principal.username,
                "display_name": display_name,
                "roles": sorted(principal.roles),
            },
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _revoke(token: str) -> None:
    from spatial.db import get_pool

    with get_pool().connection() as conn:
        auth.revoke_token(conn, token)


def presented_login_token(request: Request, not_for_keys: str) -> str | Response:
    """The login token a request presents, or the 401 to answer when it presents none.

    Parameters
    ----------
    request : Request
        The request.
    not_for_keys : str
        The message of the 400 raised when an API key is presented instead.

    Raises
    ------
    InvalidInputError
        For an API key.
    """
    try:
        credential = credential_from_headers(request.headers)
    except AuthenticationError as exc:
        return unauthorized(str(exc))
    if credential is None:
        return unauthorized(NO_CREDENTIALS, invalid=False)
    if credential.startswith(auth.API_KEY_PREFIX):
        raise InvalidInputError(not_for_keys)
    return credential


async def logout_endpoint(request: Request) -> Response:
    """``POST /auth/logout``: revoke the presented login token (204)."""
    credential = presented_login_token(
        request, "an API key is revoked with `onemap key revoke PREFIX`, not by logging out"
        " / API 密钥请用 onemap key revoke 吊销")
    if isinstance(credential, Response):
        return credential
    await run_in_threadpool(_revoke, credential)
    CACHE.discard(auth.sha256_hex(credential))
    return Response(status_code=204)


def _refresh(token: str, ip: str | None, user_agent: str | None) -> auth.IssuedToken:
    from spatial.db import get_pool

    with get_pool().connection() as conn:
        return auth.refresh_token(conn, token, ip=ip, user_agent=user_agent)


async def refresh_endpoint(request: Request) -> Response:
    """``POST /auth/refresh``: the presented login token → a new one with a new expiry.

    The old token keeps working for :data:`spatial.auth.REFRESH_GRACE` (requests in
    flight finish), then expires. An API key is not refreshed (400).
    """
    credential = presented_login_token(
        request, "an API key does not expire by itself and is not refreshed; only login"
        " tokens are / API 密钥无需刷新，仅登录令牌可刷新")
    if isinstance(credential, Response):
        return credential
    ip = request.client.host if request.client else None
    try:
        token = await run_in_threadpool(
            _refresh, credential, ip, request.headers.get("user-agent"))
    except AuthenticationError as exc:
        return unauthorized(str(exc))
    return JSONResponse(
        {"access_token": token.value, "token_type": "Bearer",
         "expires_at": token.expires_at.isoformat()},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _me(principal: Principal) -> dict[str, Any]:
    from spatial.db import get_pool

    assert principal.user_id is not None
    with get_pool().connection() as conn:
        user = users.get_user(conn, principal.user_id)
        scope = users.data_scope(conn, principal.user_id)
    return {
        "user_id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(principal.roles),
        "authenticated_by": "api_key" if principal.api_key_id is not None else "token",
        "sees_personal_data": principal.sees_personal_data,
        "data_scope": [
            {"level": u.level, "unit_id": u.unit_id, "code": u.code, "name": u.name}
            for u in scope
        ],
    }


async def me_endpoint(request: Request) -> Response:
    """``GET /auth/me``: who the caller is, their roles and data scope."""
    principal = current_principal()
    if principal.is_anonymous:
        return unauthorized(NO_CREDENTIALS, invalid=False)
    return JSONResponse(await run_in_threadpool(_me, principal))


def _time_param(name: str, raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInputError(
            f"{name} must be an ISO 8601 date or time, got {raw!r} / 时间格式应为 ISO 8601"
        ) from None


def _bool_param(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    raise InvalidInputError(f"{name} must be true or false, got {raw!r}")


def _login_log(query: dict[str, Any]) -> list[auth.LoginRecord]:
    from spatial.db import get_pool

    with get_pool().connection() as conn:
        return auth.search_login_log(conn, **query)


async def login_log_endpoint(request: Request) -> Response:
    """``GET /auth/login-log``: search the login log (district administrators only).

    Query parameters: ``username``, ``since``, ``until`` (ISO 8601),
    ``success`` (true/false), ``ip`` (address or network), ``limit`` (1–1000,
    default 100).
    """
    principal = current_principal()
    if principal.is_anonymous:
        return unauthorized(NO_CREDENTIALS, invalid=False)
    if "district_admin" not in principal.roles:
        raise PermissionDeniedError(
            "the login log is for district administrators / 仅区级管理员可查看登录日志"
        )
    params = request.query_params
    unknown = sorted(set(params) - _LOGIN_LOG_PARAMS)
    if unknown:
        raise InvalidInputError(
            f"unknown parameter(s): {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_LOGIN_LOG_PARAMS))} / 未知参数"
        )
    query: dict[str, Any] = {}
    if "username" in params:
        query["username"] = params["username"]
    for name in ("since", "until"):
        if name in params:
            query[name] = _time_param(name, params[name])
    if "success" in params:
        query["success"] = _bool_param("success", params["success"])
    if "ip" in params:
        query["ip"] = params["ip"]
    if "limit" in params:
        try:
            query["limit"] = int(params["limit"])
        except ValueError:
            raise InvalidInputError(f"limit must be an integer, got {params['limit']!r}") from None
    records = await run_in_threadpool(_login_log, query)
    return JSONResponse(
        {
            "records": [
                {
                    "id": r.id,
                    "at": r.at.isoformat(),
                    "username": r.username,
                    "user_id": r.user_id,
                    "success": r.success,
                    "ip": r.ip,
                    "user_agent": r.user_agent,
                    "reason": r.reason,
                }
                for r in records
            ],
            "count": len(records),
        },
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[BaseRoute]:
    """The ``/auth`` routes, to be placed before pygeoapi's mount."""
    return [
        Route("/auth/login", login_endpoint, methods=["POST"]),
        Route("/auth/logout", logout_endpoint, methods=["POST"]),
        Route("/auth/refresh", refresh_endpoint, methods=["POST"]),
        Route("/auth/me", me_endpoint, methods=["GET"]),
        Route("/auth/login-log", login_log_endpoint, methods=["GET"]),
    ]


__all__ = [
    "CACHE",
    "AuthMiddleware",
    "PrincipalCache",
    "credential_from_headers",
    "feature_write",
    "forbidden",
    "principal_for",
    "routes",
    "unauthorized",
    "write_refusal",
]
