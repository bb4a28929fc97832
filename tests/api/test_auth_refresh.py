"""``POST /auth/refresh``: a login token exchanged for a new one before it expires."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from server.auth import CACHE
from spatial import auth
from spatial.errors import AuthenticationError
from spatial.users import create_user, set_active

PASSWORD = "Street-office-42"


@pytest.fixture
def owner(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    from spatial.db import connect

    with connect(tiny_city_db, autocommit=True) as c:
        yield c


@pytest.fixture
def staff(owner: psycopg.Connection[Any]) -> int:
    street = owner.execute("SELECT min(id) AS id FROM onemap.street_office").fetchone()
    assert street is not None
    return create_user(owner, "staff", PASSWORD, roles=["street_staff"],
                       scopes=[("street_office", street["id"])]).id


def _login(client: Any) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": "staff", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expires(owner: psycopg.Connection[Any], token: str) -> datetime:
    row = owner.execute("SELECT expires_at FROM onemap.auth_token WHERE token_hash = %s",
                        (auth.sha256_hex(token),)).fetchone()
    assert row is not None
    return row["expires_at"]


def test_refresh_gives_a_new_token_and_the_old_one_expires_soon(
        client: Any, staff: int, owner: psycopg.Connection[Any]) -> None:
    old = _login(client)
    response = client.post("/auth/refresh", headers=_bearer(old["access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    assert new["token_type"] == "Bearer"
    assert new["access_token"] != old["access_token"]
    assert new["access_token"].startswith(auth.TOKEN_PREFIX)
    assert datetime.fromisoformat(new["expires_at"]) >= datetime.fromisoformat(old["expires_at"])
    me = client.get("/auth/me", headers=_bearer(new["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "staff"
    # the old token works through the grace (requests in flight), then no more
    now = owner.execute("SELECT now() AS t").fetchone()["t"]  # type: ignore[index]
    left = _expires(owner, old["access_token"]) - now
    assert timedelta(0) < left <= auth.REFRESH_GRACE
    assert client.get("/auth/me", headers=_bearer(old["access_token"])).status_code == 200


def test_a_refreshed_token_stops_working_after_the_grace(
        owner: psycopg.Connection[Any], staff: int) -> None:
    old = auth.issue_token(owner, staff)
    new = auth.refresh_token(owner, old.value, grace=timedelta(0))
    assert auth.verify_token(owner, new.value).user_id == staff
    with pytest.raises(AuthenticationError):
        auth.verify_token(owner, old.value)
    with pytest.raises(AuthenticationError):  # and cannot be refreshed again
        auth.refresh_token(owner, old.value)
    with pytest.raises(ValueError, match="grace"):
        auth.refresh_token(owner, new.value, grace=timedelta(seconds=-1))


def test_expired_or_revoked_tokens_are_not_refreshed(
        client: Any, staff: int, owner: psycopg.Connection[Any]) -> None:
    expired = auth.issue_token(owner, staff, ttl=timedelta(seconds=1))
    owner.execute("UPDATE onemap.auth_token SET issued_at = now() - interval '2 hours', "
                  "expires_at = now() - interval '1 hour' WHERE id = %s", (expired.id,))
    refused = client.post("/auth/refresh", headers=_bearer(expired.value))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    revoked = _login(client)["access_token"]
    assert client.post("/auth/logout", headers=_bearer(revoked)).status_code == 204
    assert client.post("/auth/refresh", headers=_bearer(revoked)).status_code == 401
    assert client.post("/auth/refresh").status_code == 401


def test_a_disabled_user_cannot_refresh(client: Any, staff: int,
                                        owner: psycopg.Connection[Any]) -> None:
    token = _login(client)["access_token"]
    set_active(owner, "staff", False)
    CACHE.clear()  # the middleware's cache may lag a few seconds behind another process
    assert client.post("/auth/refresh", headers=_bearer(token)).status_code == 401


def test_an_api_key_is_not_refreshed(client: Any, staff: int,
                                     owner: psycopg.Connection[Any]) -> None:
    key = auth.create_api_key(owner, "staff", label="console backend")
    refused = client.post("/auth/refresh", headers={"X-API-Key": key.key})
    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidParameterValue"
