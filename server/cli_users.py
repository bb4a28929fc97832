"""``onemap user``, ``onemap key``, ``onemap login-log`` and ``onemap units``:
user, API key and login-log management from the command line, and the admin
units' ids a data scope names.

Registered on the main group by :func:`register`. Commands talk to the
application database as its owner (``DATABASE_URL`` / ``PG*`` or the embedded
cluster). Nothing here prints a hash; an API key is printed once, on
standard output, when it is created.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spatial.errors import DatabaseUnavailableError, InvalidInputError, OnemapError

console = Console(stderr=True)
#: Tables go to standard output, so they can be piped.
out = Console()

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def database_hint(conninfo: str | None = None, external: bool | None = None) -> str:
    """Which database the commands use, without credentials: for an error saying
    it does not answer.

    Parameters
    ----------
    conninfo : str, optional
        Defaults to the one the commands use.
    external : bool, optional
        Whether it comes from ``DATABASE_URL``/``PG*`` (default: as configured).

    Examples
    --------
    >>> database_hint("postgresql://u:secret@db.example:5433/city", external=True)
    'the database at db.example:5433/city (from DATABASE_URL / PG* variables)'
    >>> database_hint("dbname=onemap", external=False)
    'the embedded cluster (var/pg)'
    """
    from psycopg.conninfo import conninfo_to_dict

    from spatial.settings import database_conninfo, external_database_configured

    if not (external_database_configured() if external is None else external):
        return "the embedded cluster (var/pg)"
    try:
        params = conninfo_to_dict(conninfo if conninfo is not None else database_conninfo())
    except Exception:  # a malformed DATABASE_URL: say where it came from, not what it says
        return "the database named by DATABASE_URL / PG* variables (malformed)"
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    return (f"the database at {host}:{port}/{params.get('dbname') or ''}"
            " (from DATABASE_URL / PG* variables)")


def error_line(exc: OnemapError) -> str:
    """The one line a command prints for an onemap error (rich markup)."""
    text = escape(str(exc))
    if isinstance(exc, DatabaseUnavailableError):
        text += f" — {escape(database_hint())}"
    return f"[red]error:[/red] {text}"


def _handles_errors[F: Callable[..., Any]](fn: F) -> F:
    """Print an onemap error in red and exit 1, as the main CLI does."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OnemapError as exc:
            console.print(error_line(exc), highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _say(text: str) -> None:
    """A message on standard error, printed literally (names may hold brackets)."""
    console.print(text, highlight=False, markup=False)


def _conn() -> Any:
    from spatial.db import connect

    return connect(autocommit=True)


def parse_when(value: str, *, end_of_day: bool = False) -> datetime:
    """A time from the command line: ISO 8601 or relative to now (``30m``, ``2h``, ``7d``, ``1w``).

    Parameters
    ----------
    value : str
    end_of_day : bool
        A bare date means the end of that day (for expiry dates).

    Returns
    -------
    datetime
        Timezone-aware; naive input is local time.

    Raises
    ------
    InvalidInputError
        If the text is neither.

    Examples
    --------
    >>> parse_when("2025-01-31").isoformat()[:19]
    '2025-01-31T00:00:00'
    >>> parse_when("2025-01-31", end_of_day=True).isoformat()[:19]
    '2025-02-01T00:00:00'
    """
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return datetime.now().astimezone() - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"cannot read time {value!r}: use ISO 8601 (2025-01-31, 2025-01-31T08:00) "
            "or a span back from now (30m, 2h, 7d, 1w)"
        ) from None
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment if moment.tzinfo is not None else moment.astimezone()


def _fmt(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


# ---------------------------------------------------------------- users


@click.group("user")
def user() -> None:
    """Manage users: roles, data scopes, passwords (用户管理)."""


@user.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True,
              help="Role code (repeatable): district_admin, street_staff, community_staff, "
                   "grid_worker, analyst, external_system, public.")
@click.option("--scope", "scopes", multiple=True, metavar="LEVEL:UNIT_ID",
              help="Data scope (repeatable), e.g. community:3 or grid:17; "
                   "`onemap units --level grid --name 霞光里` lists the ids.")
@click.option("--display-name", help="Name shown in the application, e.g. 王芳.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True,
              help="No password: the account authenticates by API key only.")
@_handles_errors
def user_add(
    username: str,
    roles: tuple[str, ...],
    scopes: tuple[str, ...],
    display_name: str | None,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Create USERNAME with roles, data scope and a password (prompted unless given)."""
    from spatial import passwords, users

    if password_stdin and no_password:
        raise InvalidInputError("--password-stdin and --no-password exclude each other")
    name = users.normalize_username(username)
    units = [users.parse_scope(s) for s in scopes]
    password = None if no_password else _read_password(password_stdin)
    if password is not None:
        passwords.check_password_policy(password, name)
    with _conn() as conn:
        info = users.create_user(
            conn, name, password, display_name=display_name, roles=roles, scopes=units
        )
    _say(
        f"user {info.username} created (id {info.id}), roles: {', '.join(info.roles)}"
        + (f", scope: {', '.join(f'{lv}:{u}' for lv, u in info.scopes)}" if info.scopes else ""),
    )


@user.command("list")
@_handles_errors
def user_list() -> None:
    """List users with roles, scopes and last login."""
    from spatial.users import list_users

    with _conn() as conn:
        users = list_users(conn)
    table = Table(title=f"{len(users)} users / 用户")
    for column in ("id", "username", "display name", "active", "roles", "scope", "password",
                   "last login"):
        table.add_column(column)
    for u in users:
        table.add_row(
            str(u.id), escape(u.username), escape(u.display_name or ""),
            "yes" if u.active else "no",
            ", ".join(u.roles), ", ".join(f"{lv}:{i}" for lv, i in u.scopes),
            "set" if u.has_password else "none", _fmt(u.last_login_at),
        )
    out.print(table)


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_handles_errors
def user_passwd(username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (unlocks it and ends its sessions)."""
    from spatial import users

    with _conn() as conn:
        info = users.get_user(conn, username)
        users.set_password(conn, info.id, _read_password(password_stdin))
    _say(f"password of {info.username} set; its sessions were ended")


@user.command("disable")
@click.argument("username")
@_handles_errors
def user_disable(username: str) -> None:
    """Disable USERNAME: no login, sessions ended, API keys stop working."""
    from spatial import users

    with _conn() as conn:
        users.set_active(conn, username, False)
    _say(f"{username} disabled")


@user.command("enable")
@click.argument("username")
@_handles_errors
def user_enable(username: str) -> None:
    """Enable USERNAME again."""
    from spatial import users

    with _conn() as conn:
        users.set_active(conn, username, True)
    _say(f"{username} enabled")


@user.command("unlock")
@click.argument("username")
@_handles_errors
def user_unlock(username: str) -> None:
    """Forget USERNAME's failed logins (lift a lockout)."""
    from spatial import users

    with _conn() as conn:
        users.unlock_user(conn, username)
    _say(f"{username} unlocked")


@user.command("grant")
@click.argument("username")
@click.argument("role")
@_handles_errors
def user_grant(username: str, role: str) -> None:
    """Grant ROLE to USERNAME."""
    from spatial import users

    with _conn() as conn:
        new = users.grant_role(conn, username, role)
    _say(f"{username}: {role} {'granted' if new else 'already granted'}")


@user.command("revoke")
@click.argument("username")
@click.argument("role")
@_handles_errors
def user_revoke(username: str, role: str) -> None:
    """Take ROLE away from USERNAME."""
    from spatial import users

    with _conn() as conn:
        gone = users.revoke_role(conn, username, role)
    _say(f"{username}: {role} {'revoked' if gone else 'was not granted'}")


@user.group("scope")
def user_scope() -> None:
    """Change a user's data scope (数据范围)."""


@user_scope.command("add")
@click.argument("username")
@click.argument("unit", metavar="LEVEL:UNIT_ID")
@_handles_errors
def scope_add(username: str, unit: str) -> None:
    """Add an admin unit (district, street_office, community, grid) to USERNAME's scope."""
    from spatial import users

    level, unit_id = users.parse_scope(unit)
    with _conn() as conn:
        new = users.add_scope(conn, username, level, unit_id)
    _say(f"{username}: {level}:{unit_id} {'added' if new else 'already in scope'}")


@user_scope.command("remove")
@click.argument("username")
@click.argument("unit", metavar="LEVEL:UNIT_ID")
@_handles_errors
def scope_remove(username: str, unit: str) -> None:
    """Remove an admin unit from USERNAME's scope."""
    from spatial import users

    level, unit_id = users.parse_scope(unit)
    with _conn() as conn:
        gone = users.remove_scope(conn, username, level, unit_id)
    _say(f"{username}: {level}:{unit_id} {'removed' if gone else 'was not in scope'}")


@click.command("units")
@click.option("--level", type=click.Choice(["district", "street_office", "community", "grid"]),
              help="Only this level.")
@click.option("--name", help="Part of the name (or of the enclosing unit's name), or a code, "
                             "e.g. 霞光里.")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@_handles_errors
def units(level: str | None, name: str | None, limit: int) -> None:
    """List admin units with the LEVEL:UNIT_ID that --scope takes (行政单元).

    Example: onemap units --level grid --name 霞光里
    """
    from spatial.users import find_units

    with _conn() as conn:
        found = find_units(conn, level, name, limit)
    table = Table(title=f"{len(found)} units / 行政单元")
    for column in ("scope", "code", "name", "in"):
        table.add_column(column)
    for u in found:
        table.add_row(u.scope, escape(u.code or ""), escape(u.name), escape(u.parent or ""))
    out.print(table)
    if not found:
        _say("no unit matches / 没有匹配的单元"
             + (": is a city loaded? (.venv/bin/onemap setup)" if not name else ""))


# ---------------------------------------------------------------- API keys


@click.group("key")
def key() -> None:
    """Manage API keys for external systems (接口密钥)."""


@key.command("create")
@click.argument("username")
@click.option("--label", required=True, help="What the key is for, e.g. '12345 hotline'.")
@click.option("--expires", help="Expiry: a date (valid through that day) or an ISO time.")
@_handles_errors
def key_create(username: str, label: str, expires: str | None) -> None:
    """Create an API key for USERNAME and print it once."""
    from spatial import auth

    expires_at = parse_when(expires, end_of_day=True) if expires else None
    with _conn() as conn:
        issued = auth.create_api_key(conn, username, label, expires_at)
    info = issued.info
    _say(
        f"API key {info.prefix} for {info.username} ({info.label}), expires "
        f"{_fmt(info.expires_at) if info.expires_at else 'never'}. It is shown only now: "
        "store it safely / 密钥只显示这一次，请妥善保存",
    )
    click.echo(issued.key)


@key.command("list")
@click.argument("username", required=False)
@_handles_errors
def key_list(username: str | None) -> None:
    """List API keys (all, or USERNAME's)."""
    from spatial import auth

    with _conn() as conn:
        keys = auth.list_api_keys(conn, username)
    table = Table(title=f"{len(keys)} API keys / 接口密钥")
    for column in ("prefix", "user", "label", "status", "created", "expires", "last used"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.prefix, escape(k.username), escape(k.label or ""), k.status,
                      _fmt(k.created_at),
                      _fmt(k.expires_at) if k.expires_at else "never", _fmt(k.last_used_at))
    out.print(table)


@key.command("revoke")
@click.argument("prefix")
@_handles_errors
def key_revoke(prefix: str) -> None:
    """Revoke the API key with PREFIX (the 8 characters after omk_)."""
    from spatial import auth

    with _conn() as conn:
        info = auth.revoke_api_key(conn, prefix)
    _say(f"API key {info.prefix} of {info.username} revoked ({_fmt(info.revoked_at)})")


# ---------------------------------------------------------------- login log


@click.command("login-log")
@click.option("--user", "username", help="Only this login name.")
@click.option("--since", help="From this time: ISO 8601 or back from now (30m, 2h, 7d).")
@click.option("--until", help="Before this time (same forms).")
@click.option("--failed", is_flag=True, help="Only failed attempts.")
@click.option("--ip", help="Only this address or network (10.0.0.0/8).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@_handles_errors
def login_log(
    username: str | None, since: str | None, until: str | None, failed: bool, ip: str | None,
    limit: int,
) -> None:
    """Search the login log (登录日志), newest first."""
    from spatial import auth

    with _conn() as conn:
        records = auth.search_login_log(
            conn,
            username=username,
            since=parse_when(since) if since else None,
            until=parse_when(until) if until else None,
            success=False if failed else None,
            ip=ip,
            limit=limit,
        )
    table = Table(title=f"{len(records)} login attempts / 登录记录")
    for column in ("time", "user", "result", "reason", "ip", "client"):
        table.add_column(column)
    for r in records:
        table.add_row(
            _fmt(r.at), escape(r.username),
            "[green]ok[/green]" if r.success else "[red]failed[/red]",
            r.reason or "", r.ip or "", escape((r.user_agent or "")[:40]),
        )
    out.print(table)


def register(main: click.Group) -> None:
    """Add ``user``, ``key``, ``login-log`` and ``units`` to the main command group."""
    for command in (user, key, login_log, units):
        main.add_command(command)
