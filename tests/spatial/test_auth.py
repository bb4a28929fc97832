"""Passwords (spatial.passwords), users (spatial.users), login with lockout,
tokens, API keys and the login log (spatial.auth), and the user-management
CLI, against a real PostGIS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from spatial import auth, passwords, users
from spatial.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)

PASSWORD = "Gr1d-worker-2024"


@pytest.fixture
def city(tiny_city_db: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit owner connection to a clone holding the tiny city."""
    from spatial.db import connect

    with connect(tiny_city_db, autocommit=True) as c:
        yield c


def _unit_id(conn: psycopg.Connection[Any], level: str) -> int:
    row = conn.execute(f"SELECT min(id) AS id FROM onemap.{level}").fetchone()
    assert row is not None and row["id"] is not None
    return int(row["id"])


def _log(conn: psycopg.Connection[Any], username: str) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT success, reason, user_id, host(ip) AS ip, user_agent FROM onemap.login_log "
        "WHERE username = %s ORDER BY id",
        (username,),
    ).fetchall()


# ---------------------------------------------------------------- passwords


def test_password_hash_is_salted_argon2id_and_verifies() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second  # salted
    assert PASSWORD not in first
    assert passwords.verify_password(first, PASSWORD)
    assert not passwords.verify_password(first, PASSWORD + "x")
    assert not passwords.verify_password("not a hash", PASSWORD)


def test_dummy_hash_costs_what_a_real_hash_costs() -> None:
    # Unknown users are verified against it: same algorithm and parameters.
    dummy = passwords.dummy_hash()
    assert dummy.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(dummy)
    assert dummy.split("$")[3] == passwords.hash_password("x" * 12).split("$")[3]


@pytest.mark.parametrize(("password", "username", "message"), [
    ("short1!", "wang", "at least 10"),
    ("wang.fang.x", "wang.fang.x", "not be the user name"),
    ("WANG.FANG.X", "wang.fang.x", "not be the user name"),
    (" " * 12, "wang", "blank"),
    ("x" * 1025, "wang", "at most 1024"),
])
def test_password_policy_refuses(password: str, username: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        passwords.check_password_policy(password, username)
    assert password.strip() == "" or password not in str(info.value)


def test_password_policy_accepts_ten_characters() -> None:
    passwords.check_password_policy("abcdefghij", "wang")


@pytest.mark.parametrize("name", ["", "a", "wang fang", "王芳", "-lead", "x" * 65, "a/b"])
def test_bad_user_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid user name"):
        users.normalize_username(name)


# ---------------------------------------------------------------- users


def test_create_user_stores_only_the_hash(conn: psycopg.Connection[Any]) -> None:
    info = users.create_user(conn, "Wang.Fang", PASSWORD, display_name="王芳",
                             roles=["grid_worker", "analyst"])
    assert info.username == "wang.fang"
    assert info.roles == ("analyst", "grid_worker")
    assert info.has_password and info.active and info.last_login_at is None
    row = conn.execute("SELECT password_hash FROM onemap.app_user WHERE id = %s",
                       (info.id,)).fetchone()
    assert row is not None
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]
    assert not hasattr(info, "password_hash")
    with pytest.raises(ConflictError, match="already exists"):
        users.create_user(conn, "WANG.FANG", PASSWORD)


def test_create_user_is_all_or_nothing(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(InvalidInputError, match="unknown role 'mayor'"):
        users.create_user(conn, "li.lei", PASSWORD, roles=["analyst", "mayor"])
    with pytest.raises(NotFoundError, match="no community with id 999"):
        users.create_user(conn, "li.lei", PASSWORD, scopes=[("community", 999)])
    assert [u.username for u in users.list_users(conn)] == []


def test_roles_make_the_principal(conn: psycopg.Connection[Any]) -> None:
    uid = users.create_user(conn, "zhao", PASSWORD).id
    assert auth.principal_for_user(conn, uid).roles == frozenset({"public"})
    assert users.grant_role(conn, "zhao", "street_staff")
    assert not users.grant_role(conn, "zhao", "street_staff")
    assert users.grant_role(conn, uid, "analyst")
    principal = auth.principal_for_user(conn, uid)
    assert principal.user_id == uid and principal.username == "zhao"
    assert principal.roles == frozenset({"street_staff", "analyst"})
    assert principal.sees_personal_data and principal.api_key_id is None
    assert users.revoke_role(conn, "zhao", "street_staff")
    assert not users.revoke_role(conn, "zhao", "street_staff")
    assert auth.principal_for_user(conn, uid).roles == frozenset({"analyst"})
    users.set_active(conn, "zhao", False)
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.principal_for_user(conn, uid)
    with pytest.raises(NotFoundError):
        users.grant_role(conn, "nobody", "analyst")


def test_scope_units_must_exist(city: psycopg.Connection[Any]) -> None:
    users.create_user(city, "sun", PASSWORD, roles=["community_staff"])
    community, grid = _unit_id(city, "community"), _unit_id(city, "grid")
    assert users.add_scope(city, "sun", "community", community)
    assert not users.add_scope(city, "sun", "community", community)
    assert users.add_scope(city, "sun", "grid", grid)
    with pytest.raises(NotFoundError, match="no street_office with id 99999"):
        users.add_scope(city, "sun", "street_office", 99999)
    with pytest.raises(InvalidInputError, match="unknown level 'city'"):
        users.add_scope(city, "sun", "city", community)
    info = users.get_user(city, "sun")
    assert info.scopes == (("community", community), ("grid", grid))
    units = users.data_scope(city, info.id)
    assert [(u.level, u.name) for u in units] == [("community", "示范社区"), ("grid", "第一网格")]
    assert users.remove_scope(city, "sun", "grid", grid)
    assert not users.remove_scope(city, "sun", "grid", grid)
    assert users.get_user(city, "sun").scopes == (("community", community),)


@pytest.mark.parametrize("text", ["community", "town:3", "grid:x", "grid:-1"])
def test_parse_scope_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid scope"):
        users.parse_scope(text)


# ---------------------------------------------------------------- login


def test_login_issues_a_token_and_logs_it(conn: psycopg.Connection[Any]) -> None:
    uid = users.create_user(conn, "qian", PASSWORD, roles=["analyst"]).id
    token, principal = auth.login(conn, " Qian ", PASSWORD, "10.1.2.3", "pytest/1")
    assert re.fullmatch(r"om_[A-Za-z0-9_-]{43}", token.value)
    assert token.value not in repr(token)
    assert principal.user_id == uid and principal.roles == frozenset({"analyst"})
    assert timedelta(hours=7, minutes=59) < token.expires_at - datetime.now(UTC) <= timedelta(
        hours=8)
    stored = conn.execute("SELECT token_hash, ip::text, user_agent FROM onemap.auth_token"
                          ).fetchall()
    assert stored == [{"token_hash": auth.sha256_hex(token.value), "ip": "10.1.2.3/32",
                       "user_agent": "pytest/1"}]
    assert _log(conn, "qian") == [
        {"success": True, "reason": None, "user_id": uid, "ip": "10.1.2.3",
         "user_agent": "pytest/1"}
    ]
    assert auth.verify_token(conn, token.value) == principal
    assert users.get_user(conn, uid).last_login_at is not None


def test_failed_logins_are_logged_with_their_reason(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "zhou", PASSWORD, roles=["analyst"])
    users.create_user(conn, "wu", PASSWORD, roles=["analyst"])
    users.set_active(conn, "wu", False)
    with pytest.raises(AuthenticationError) as unknown:
        auth.login(conn, "nobody", PASSWORD, "not-an-ip")
    with pytest.raises(AuthenticationError) as bad:
        auth.login(conn, "zhou", "wrong password")
    # Same answer for an unknown name and a wrong password.
    assert str(unknown.value) == str(bad.value) == auth.INVALID_CREDENTIALS
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.login(conn, "wu", PASSWORD)
    with pytest.raises(AuthenticationError, match="用户名或密码错误"):
        auth.login(conn, "wu", "wrong password")  # disabled is only said to the right password
    assert _log(conn, "nobody") == [
        {"success": False, "reason": "unknown_user", "user_id": None, "ip": None,
         "user_agent": None}
    ]
    assert [r["reason"] for r in _log(conn, "zhou")] == ["bad_password"]
    assert [r["reason"] for r in _log(conn, "wu")] == ["disabled", "bad_password"]


def test_key_only_account_cannot_log_in(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "hotline", None, roles=["external_system"])
    with pytest.raises(AuthenticationError, match="用户名或密码错误"):
        auth.login(conn, "hotline", "")
    assert [r["reason"] for r in _log(conn, "hotline")] == ["bad_password"]


def test_lockout_after_five_failures(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "zheng", PASSWORD, roles=["analyst"])
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthenticationError, match="用户名或密码错误"):
            auth.login(conn, "zheng", "wrong password")
    assert auth.failed_logins(conn, "zheng") == 5
    # Now even the right password is refused, and that is logged too.
    with pytest.raises(AuthenticationError, match="too many failed logins"):
        auth.login(conn, "zheng", PASSWORD)
    assert _log(conn, "zheng")[-1]["reason"] == "locked"
    assert auth.failed_logins(conn, "zheng") == 5  # refusals while locked do not extend it
    # A password reset by an administrator unlocks.
    users.set_password(conn, "zheng", "another-password-1")
    auth.login(conn, "zheng", "another-password-1")


def test_lockout_counts_only_the_window_and_since_success(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "feng", PASSWORD, roles=["analyst"])
    # Five failures 20 minutes ago are outside the 15-minute window.
    conn.execute(
        "INSERT INTO onemap.login_log (at, username, success, reason) "
        "SELECT now() - interval '20 minutes', 'feng', false, 'bad_password' "
        "FROM generate_series(1, 5)"
    )
    assert auth.failed_logins(conn, "feng") == 0
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            auth.login(conn, "feng", "wrong password")
    auth.login(conn, "feng", PASSWORD)  # success resets the count
    assert auth.failed_logins(conn, "feng") == 0
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            auth.login(conn, "feng", "wrong password")
    auth.login(conn, "feng", PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            auth.login(conn, "feng", "wrong password")
    users.unlock_user(conn, "feng")
    auth.login(conn, "feng", PASSWORD)


def test_unknown_names_lock_like_real_ones(conn: psycopg.Connection[Any]) -> None:
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthenticationError, match="用户名或密码错误"):
            auth.login(conn, "ghost", "whatever-password")
    with pytest.raises(AuthenticationError, match="too many failed logins"):
        auth.login(conn, "ghost", "whatever-password")


# ---------------------------------------------------------------- tokens


def test_tokens_expire_and_are_revoked(conn: psycopg.Connection[Any]) -> None:
    uid = users.create_user(conn, "chen", PASSWORD, roles=["street_staff"]).id
    first, _ = auth.login(conn, "chen", PASSWORD)
    second = auth.issue_token(conn, uid, ttl=timedelta(minutes=5))
    assert auth.verify_token(conn, second.value).username == "chen"
    assert auth.revoke_token(conn, second.value)
    assert not auth.revoke_token(conn, second.value)
    with pytest.raises(AuthenticationError):
        auth.verify_token(conn, second.value)
    conn.execute("UPDATE onemap.auth_token SET expires_at = now() - interval '1 second', "
                 "issued_at = now() - interval '1 hour' WHERE id = %s", (first.id,))
    with pytest.raises(AuthenticationError, match="expired"):
        auth.verify_token(conn, first.value)
    with pytest.raises(AuthenticationError):
        auth.verify_token(conn, "om_" + "x" * 43)
    with pytest.raises(AuthenticationError):
        auth.verify_token(conn, "garbage")


def test_password_change_and_disabling_end_sessions(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "yang", PASSWORD, roles=["analyst"])
    before, _ = auth.login(conn, "yang", PASSWORD)
    users.set_password(conn, "yang", "a-new-password-9")
    with pytest.raises(AuthenticationError):
        auth.verify_token(conn, before.value)
    with pytest.raises(AuthenticationError):
        auth.login(conn, "yang", PASSWORD)
    after, _ = auth.login(conn, "yang", "a-new-password-9")
    users.set_active(conn, "yang", False)
    with pytest.raises(AuthenticationError):
        auth.verify_token(conn, after.value)


def test_token_ttl_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEMAP_TOKEN_TTL_HOURS", raising=False)
    assert auth.token_ttl() == timedelta(hours=8)
    monkeypatch.setenv("ONEMAP_TOKEN_TTL_HOURS", "0.5")
    assert auth.token_ttl() == timedelta(minutes=30)
    monkeypatch.setenv("ONEMAP_TOKEN_TTL_HOURS", "-1")
    with pytest.raises(ValueError, match="positive"):
        auth.token_ttl()


# ---------------------------------------------------------------- API keys


def test_api_keys(conn: psycopg.Connection[Any]) -> None:
    uid = users.create_user(conn, "platform", None, roles=["external_system"]).id
    issued = auth.create_api_key(conn, "platform", "city platform")
    key, info = issued.key, issued.info
    assert re.fullmatch(r"omk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert key not in repr(issued)
    assert key.split("_")[1] == info.prefix and info.status == "active"
    row = conn.execute("SELECT key_hash FROM onemap.api_key").fetchone()
    assert row == {"key_hash": auth.sha256_hex(key)}
    principal = auth.verify_api_key(conn, key)
    assert principal.user_id == uid and principal.api_key_id == info.id
    assert principal.roles == frozenset({"external_system"})
    assert auth.authenticate(conn, key) == principal
    # The prefix is public; the rest must match.
    with pytest.raises(AuthenticationError):
        auth.verify_api_key(conn, key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(AuthenticationError):
        auth.verify_api_key(conn, f"omk_{info.prefix}")
    revoked = auth.revoke_api_key(conn, info.prefix)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    assert auth.revoke_api_key(conn, info.prefix).revoked_at == revoked.revoked_at
    with pytest.raises(AuthenticationError):
        auth.verify_api_key(conn, key)
    with pytest.raises(NotFoundError):
        auth.revoke_api_key(conn, "00000000")


def test_api_key_expiry_and_owner(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "hotline", None, roles=["external_system"])
    with pytest.raises(InvalidInputError, match="in the past"):
        auth.create_api_key(conn, "hotline", "old", datetime.now(UTC) - timedelta(days=1))
    soon = auth.create_api_key(conn, "hotline", "12345", datetime.now(UTC) + timedelta(days=1))
    never = auth.create_api_key(conn, "hotline", "backup")
    assert auth.verify_api_key(conn, soon.key).username == "hotline"
    conn.execute("UPDATE onemap.api_key SET expires_at = now() - interval '1 second' "
                 "WHERE id = %s", (soon.info.id,))
    with pytest.raises(AuthenticationError):
        auth.verify_api_key(conn, soon.key)
    keys = auth.list_api_keys(conn, "hotline")
    assert [(k.label, k.status) for k in keys] == [("backup", "active"), ("12345", "expired")]
    assert auth.list_api_keys(conn) == keys
    users.set_active(conn, "hotline", False)
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.verify_api_key(conn, never.key)
    users.set_active(conn, "hotline", True)
    assert auth.verify_api_key(conn, never.key).username == "hotline"


# ---------------------------------------------------------------- login log


def test_search_login_log(conn: psycopg.Connection[Any]) -> None:
    users.create_user(conn, "lin", PASSWORD, roles=["analyst"])
    conn.execute(
        "INSERT INTO onemap.login_log (at, username, success, ip, reason) VALUES "
        "(now() - interval '3 days', 'lin', true, '192.168.1.5', NULL), "
        "(now() - interval '2 hours', 'lin', false, '10.0.0.7', 'bad_password'), "
        "(now() - interval '1 hour', 'lin', true, '10.0.0.7', NULL), "
        "(now() - interval '1 hour', 'other', false, '10.9.9.9', 'unknown_user')"
    )
    auth.login(conn, "lin", PASSWORD, "172.16.0.1")
    assert len(auth.search_login_log(conn, username="LIN")) == 4
    failed = auth.search_login_log(conn, success=False)
    assert [(r.username, r.reason) for r in failed] == [
        ("other", "unknown_user"), ("lin", "bad_password")]
    recent = auth.search_login_log(conn, username="lin",
                                   since=datetime.now(UTC) - timedelta(days=1))
    assert len(recent) == 3
    assert recent[0].ip == "172.16.0.1"  # newest first
    old = auth.search_login_log(conn, until=datetime.now(UTC) - timedelta(days=1))
    assert [r.ip for r in old] == ["192.168.1.5"]
    assert {r.ip for r in auth.search_login_log(conn, ip="10.0.0.0/8")} == {
        "10.0.0.7", "10.9.9.9"}
    assert len(auth.search_login_log(conn, limit=2)) == 2
    for bad in (0, 1001):
        with pytest.raises(InvalidInputError, match="limit"):
            auth.search_login_log(conn, limit=bad)
    with pytest.raises(InvalidInputError, match="invalid IP"):
        auth.search_login_log(conn, ip="10.0.0.300")


# ---------------------------------------------------------------- secrets


def test_serving_role_cannot_read_secrets(conn: psycopg.Connection[Any]) -> None:
    checks = conn.execute(
        """
        SELECT has_table_privilege('onemap_api', 'onemap.auth_token', 'SELECT') AS tokens,
               has_table_privilege('onemap_api', 'onemap.api_key', 'SELECT') AS keys,
               has_column_privilege('onemap_api', 'onemap.app_user', 'password_hash', 'SELECT')
                   AS hashes
        """
    ).fetchone()
    assert checks == {"tokens": False, "keys": False, "hashes": False}


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli(tiny_city_db: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from server.cli import main

    monkeypatch.setenv("DATABASE_URL", tiny_city_db)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    return run


def test_cli_manages_users_and_keys(cli: Any, city: psycopg.Connection[Any]) -> None:
    community = _unit_id(city, "community")
    added = cli("user", "add", "Wang.Fang", "--role", "community_staff", "--role", "analyst",
                "--scope", f"community:{community}", "--display-name", "王芳",
                "--password-stdin", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "user wang.fang created" in added.stderr
    token, principal = auth.login(city, "wang.fang", PASSWORD)
    assert principal.roles == frozenset({"community_staff", "analyst"})

    listed = cli("user", "list")
    assert listed.exit_code == 0
    assert "wang.fang" in listed.stdout and "王芳" in listed.stdout
    assert f"community:{community}" in listed.stdout
    assert "$argon2" not in listed.output

    assert cli("user", "grant", "wang.fang", "grid_worker").exit_code == 0
    assert cli("user", "revoke", "wang.fang", "analyst").exit_code == 0
    grid = _unit_id(city, "grid")
    assert cli("user", "scope", "add", "wang.fang", f"grid:{grid}").exit_code == 0
    assert cli("user", "scope", "remove", "wang.fang", f"community:{community}").exit_code == 0
    info = users.get_user(city, "wang.fang")
    assert info.roles == ("community_staff", "grid_worker")
    assert info.scopes == (("grid", grid),)

    created = cli("key", "create", "wang.fang", "--label", "field tablet",
                  "--expires", "2999-12-31")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert auth.verify_api_key(city, key).username == "wang.fang"
    prefix = key.split("_")[1]
    keys = cli("key", "list", "wang.fang")
    assert prefix in keys.stdout and "field tablet" in keys.stdout
    assert key not in keys.output and key.split("_", 2)[2] not in keys.output
    assert cli("key", "revoke", prefix).exit_code == 0
    with pytest.raises(AuthenticationError):
        auth.verify_api_key(city, key)

    assert cli("user", "disable", "wang.fang").exit_code == 0
    with pytest.raises(AuthenticationError):
        auth.verify_token(city, token.value)
    assert cli("user", "enable", "wang.fang").exit_code == 0
    assert cli("user", "passwd", "wang.fang", "--password-stdin",
               stdin="fresh-password-7\n").exit_code == 0
    auth.login(city, "wang.fang", "fresh-password-7")


def test_cli_login_log_and_errors(cli: Any, city: psycopg.Connection[Any]) -> None:
    users.create_user(city, "he", PASSWORD, roles=["analyst"])
    with pytest.raises(AuthenticationError):
        auth.login(city, "he", "wrong password", "10.3.3.3")
    auth.login(city, "he", PASSWORD, "10.4.4.4")
    failed = cli("login-log", "--user", "he", "--failed", "--since", "1h")
    assert failed.exit_code == 0
    assert "10.3.3.3" in failed.stdout and "bad_password" in failed.stdout
    assert "10.4.4.4" not in failed.stdout
    assert "10.4.4.4" in cli("login-log", "--limit", "5").stdout

    unknown_role = cli("user", "add", "ma", "--role", "mayor", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert unknown_role.exit_code == 1 and "unknown role 'mayor'" in unknown_role.stderr
    weak = cli("user", "add", "ma", "--role", "analyst", "--password-stdin", stdin="short\n")
    assert weak.exit_code == 1 and "at least 10" in weak.stderr
    bad_scope = cli("user", "add", "ma", "--role", "analyst", "--scope", "grid:99999",
                    "--no-password")
    assert bad_scope.exit_code == 1 and "no grid with id 99999" in bad_scope.stderr
    assert [u.username for u in users.list_users(city)] == ["he"]
    assert cli("key", "revoke", "ffffffff").exit_code == 1
    assert cli("login-log", "--since", "yesterday").exit_code == 1
