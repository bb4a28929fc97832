"""/auth routes and the authentication middleware, through the real ASGI app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from server.auth import CACHE, PrincipalCache, credential_from_headers
from spatial import auth
from spatial.users import create_user, set_active

PASSWORD = "Street-office-42"


@pytest.fixture
def owner(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    from spatial.db import connect

    with connect(tiny_city_db, autocommit=True) as c:
        yield c


@pytest.fixture
def users(owner: psycopg.Connection[Any]) -> dict[str, int]:
    street = owner.execute("SELECT min(id) AS id FROM onemap.street_office").fetchone()
    assert street is not None
    return {
        "admin": create_user(owner, "admin", PASSWORD, roles=["district_admin"]).id,
        "staff": create_user(owner, "staff", PASSWORD, display_name="街道干部",
                             roles=["street_staff"],
                             scopes=[("street_office", street["id"])]).id,
        "analyst": create_user(owner, "analyst", PASSWORD, roles=["analyst"]).id,
    }


def _login(client: Any, username: str, password: str = PASSWORD) -> str:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "NotAuthenticated"


def test_login_then_me(client: Any, users: dict[str, int]) -> None:
    response = client.post("/auth/login", json={"username": "Staff", "password": PASSWORD},
                           headers={"User-Agent": "qgis/3.34"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("om_")
    assert body["user"] == {"username": "staff", "display_name": "街道干部",
                            "roles": ["street_staff"]}
    assert body["expires_at"]
    me = client.get("/auth/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "user_id": users["staff"],
        "username": "staff",
        "display_name": "街道干部",
        "roles": ["street_staff"],
        "authenticated_by": "token",
        "sees_personal_data": True,
        "data_scope": [{"level": "street_office", "unit_id": me.json()["data_scope"][0]["unit_id"],
                        "code": "110105001", "name": "示范街道"}],
    }


def test_wrong_password_is_401_and_logged(client: Any, users: dict[str, int],
                                          owner: psycopg.Connection[Any]) -> None:
    wrong = client.post("/auth/login", json={"username": "staff", "password": "not-it-at-all"})
    unknown = client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
    _assert_401(wrong)
    _assert_401(unknown)
    assert wrong.json()["description"] == unknown.json()["description"]
    assert "access_token" not in wrong.text
    rows = owner.execute(
        "SELECT username, success, reason, user_agent FROM onemap.login_log ORDER BY id"
    ).fetchall()
    assert [(r["username"], r["success"], r["reason"]) for r in rows] == [
        ("staff", False, "bad_password"), ("nobody", False, "unknown_user")]
    assert rows[0]["user_agent"] == "testclient"


def test_lockout_through_the_api(client: Any, users: dict[str, int]) -> None:
    for _ in range(auth.MAX_FAILURES):
        _assert_401(client.post("/auth/login", json={"username": "analyst", "password": "x"}))
    locked = client.post("/auth/login", json={"username": "analyst", "password": PASSWORD})
    _assert_401(locked)
    assert "too many failed logins" in locked.json()["description"]


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b"{not json", {"Content-Type": "application/json"}, "not valid JSON"),
    (b'{"username": "\xff\xfe"}', {"Content-Type": "application/json"}, "not UTF-8"),
    (b"[1, 2]", {}, "must be a JSON object"),
    (b'{"username": "staff"}', {}, "'password'"),
    (b'{"username": 7, "password": "x"}', {}, "'username'"),
    (b"", {}, "not valid JSON"),
])
def test_bad_login_bodies_are_400(client: Any, users: dict[str, int], body: bytes,
                                  headers: dict[str, str], message: str) -> None:
    response = client.post("/auth/login", content=body, headers=headers)
    assert response.status_code == 400
    # A body that is not UTF-8 JSON is stopped by the contract middleware
    # (OGC's code); the rest by the login route.
    assert response.json()["code"] in ("InvalidParameterValue", "OperationParsingFailed")
    assert message in response.json()["description"]


def test_huge_login_body_is_refused(client: Any, users: dict[str, int]) -> None:
    response = client.post("/auth/login", content=b'{"username": "' + b"a" * 20000 + b'"}')
    assert response.status_code == 400
    assert "larger than" in response.json()["description"]


def test_credentials_on_any_path(client: Any, users: dict[str, int]) -> None:
    assert client.get("/collections?f=json").status_code == 200  # anonymous is allowed
    token = _login(client, "analyst")
    assert client.get("/collections?f=json", headers=_bearer(token)).status_code == 200
    for headers in (
        _bearer("om_" + "A" * 43),
        _bearer("nonsense"),
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer "},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": "omk_00000000_" + "B" * 43},
        {**_bearer(token), "X-API-Key": "omk_00000000_x"},
    ):
        response = client.get("/collections?f=json", headers=headers)
        _assert_401(response)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    _assert_401(client.get("/auth/me"))


def test_login_works_despite_a_stale_token(client: Any, users: dict[str, int]) -> None:
    response = client.post("/auth/login", json={"username": "analyst", "password": PASSWORD},
                           headers=_bearer("om_stale"))
    assert response.status_code == 200


def test_api_key_works_in_both_headers(client: Any, users: dict[str, int],
                                       owner: psycopg.Connection[Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_AUTH_CACHE_SECONDS", "0")
    create_user(owner, "hotline", None, roles=["external_system"])
    issued = auth.create_api_key(owner, "hotline", "12345 hotline")
    for headers in ({"X-API-Key": issued.key}, _bearer(issued.key)):
        me = client.get("/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["username"] == "hotline"
        assert me.json()["authenticated_by"] == "api_key"
        assert me.json()["sees_personal_data"] is False
    # A key is not logged out; it is revoked by an administrator.
    assert client.post("/auth/logout", headers={"X-API-Key": issued.key}).status_code == 400
    auth.revoke_api_key(owner, issued.info.prefix)
    _assert_401(client.get("/auth/me", headers={"X-API-Key": issued.key}))


def test_logout_revokes_the_token(client: Any, users: dict[str, int]) -> None:
    # With the cache on (the default): logout must evict it.
    token = _login(client, "staff")
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 200
    assert client.post("/auth/logout", headers=_bearer(token)).status_code == 204
    _assert_401(client.get("/auth/me", headers=_bearer(token)))
    _assert_401(client.post("/auth/logout"))


def test_disabled_user_loses_access(client: Any, users: dict[str, int],
                                    owner: psycopg.Connection[Any]) -> None:
    token = _login(client, "staff")
    set_active(owner, "staff", False)
    CACHE.clear()  # another process changed the user: the cache may lag a few seconds
    _assert_401(client.get("/auth/me", headers=_bearer(token)))
    refused = client.post("/auth/login", json={"username": "staff", "password": PASSWORD})
    _assert_401(refused)
    assert "disabled" in refused.json()["description"]


def test_login_log_is_for_district_admins(client: Any, users: dict[str, int]) -> None:
    client.post("/auth/login", json={"username": "staff", "password": "wrong-password"})
    _assert_401(client.get("/auth/login-log"))
    analyst = _login(client, "analyst")
    forbidden = client.get("/auth/login-log", headers=_bearer(analyst))
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "Forbidden"
    admin = _bearer(_login(client, "admin"))
    everything = client.get("/auth/login-log", headers=admin).json()
    assert [(r["username"], r["success"]) for r in everything["records"]] == [
        ("admin", True), ("analyst", True), ("staff", False)]
    failed = client.get("/auth/login-log", params={"username": "staff", "success": "false"},
                        headers=admin).json()
    assert failed["count"] == 1
    assert failed["records"][0]["reason"] == "bad_password"
    assert client.get("/auth/login-log", params={"since": "2999-01-01"},
                      headers=admin).json()["count"] == 0
    assert client.get("/auth/login-log", params={"limit": "1"},
                      headers=admin).json()["count"] == 1
    for params in ({"since": "last week"}, {"limit": "0"}, {"limit": "x"},
                   {"success": "maybe"}, {"password": "x"}, {"ip": "300.1.1.1"}):
        response = client.get("/auth/login-log", params=params, headers=admin)
        assert response.status_code == 400, params
        assert response.json()["code"] == "InvalidParameterValue"


def test_principal_cache_expires_and_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    from spatial.access import Principal

    cache = PrincipalCache(max_entries=2)
    who = Principal(1, "a", frozenset({"analyst"}))
    monkeypatch.setenv("ONEMAP_AUTH_CACHE_SECONDS", "0")
    cache.put("k", who)
    assert cache.get("k") is None
    monkeypatch.setenv("ONEMAP_AUTH_CACHE_SECONDS", "60")
    cache.put("k", who)
    assert cache.get("k") == who
    cache.discard("k")
    assert cache.get("k") is None
    for key in ("a", "b", "c"):
        cache.put(key, who)
    assert cache.get("a") is None and cache.get("c") == who  # bounded


def test_credential_header_parsing() -> None:
    from starlette.datastructures import Headers

    assert credential_from_headers(Headers({"authorization": "bearer  om_x "})) == "om_x"
    assert credential_from_headers(Headers({"authorization": "Bearer omk_1_2"})) == "omk_1_2"
