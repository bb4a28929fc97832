"""Demo users of the demo city: one per role, so a newcomer can sign in.

``onemap setup`` calls :func:`ensure_demo_users` when the database holds a
generated (synthetic) city. Each user is created once, with a random password
(an API key for the external system) written to ``var/demo-users.txt``
(git-ignored, mode 0600) — never a constant in the repository, never logged.
A later run keeps the users and their passwords; a user whose credential is no
longer in the file (the file was deleted) gets a new one.

The scopes hang together: the grid worker's grid is the top-level grid holding
the most households, the community staff's community is that grid's, and so on
up to the district, so every scoped user sees the same households from their
level.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from spatial.db import fetch_dict, fetch_tuples

LOGGER = logging.getLogger(__name__)

#: File name of the credentials, in the settings' ``var_dir``.
FILE_NAME = "demo-users.txt"


@dataclass(frozen=True)
class DemoUserSpec:
    """One demo user to be.

    Attributes
    ----------
    username : str
    role : str
        Its one role (``onemap.app_role.code``).
    level : str or None
        The level of its data scope (``district`` … ``grid``), None for none.
    display_name : str
    api_key : bool
        Authenticates with an API key instead of a password (external systems).
    """

    username: str
    role: str
    level: str | None
    display_name: str
    api_key: bool = False


#: The demo users, one per role but ``public`` (which is every anonymous caller).
SPECS: tuple[DemoUserSpec, ...] = (
    DemoUserSpec("demo.district", "district_admin", "district", "区级管理员(演示)"),
    DemoUserSpec("demo.street", "street_staff", "street_office", "街道工作人员(演示)"),
    DemoUserSpec("demo.community", "community_staff", "community", "社区工作人员(演示)"),
    DemoUserSpec("demo.grid", "grid_worker", "grid", "网格员(演示)"),
    DemoUserSpec("demo.analyst", "analyst", None, "分析人员(演示)"),
    DemoUserSpec("demo.system", "external_system", None, "外部系统(演示)", api_key=True),
)


@dataclass(frozen=True)
class DemoCredential:
    """A demo user's line of the credentials file.

    Attributes
    ----------
    role, username : str
    secret : str
        The password, or the API key (``omk_…``) of an external system.
    scope : str
        ``level:id`` or ``-``.
    scope_name : str
        The unit's name, or empty.
    """

    role: str
    username: str
    secret: str
    scope: str
    scope_name: str

    @property
    def is_api_key(self) -> bool:
        """Whether the secret is an API key rather than a password."""
        return self.secret.startswith("omk_")


def is_generated_city(conn: psycopg.Connection[Any]) -> bool:
    """Whether the database holds a city made by ``onemap generate`` (the demo).

    Imported real data has no ``truth.generation`` row: no demo user is made there.
    """
    return bool(fetch_tuples(
        conn,
        "SELECT to_regclass('truth.generation') IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM truth.generation) "
        "AND EXISTS (SELECT 1 FROM onemap.grid)",
    )[0][0])


def demo_units(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
    """The unit of each level the demo users are scoped to.

    Returns
    -------
    dict
        ``{level: (id, name)}`` for ``district``, ``street_office``,
        ``community`` and ``grid``; empty if the city has no grid.
    """
    row = fetch_dict(
        conn,
        """
        SELECT g.id AS grid, g.name AS grid_name, c.id AS community, c.name AS community_name,
               so.id AS street_office, so.name AS street_office_name,
               d.id AS district, d.name AS district_name
        FROM onemap.grid g
        JOIN onemap.community c ON c.id = g.community_id
        JOIN onemap.street_office so ON so.id = c.street_office_id
        JOIN onemap.district d ON d.id = so.district_id
        LEFT JOIN LATERAL (
            SELECT count(*) AS n FROM onemap.household h
            JOIN onemap.building b ON b.id = h.building_id
            WHERE b.grid_id = g.id) AS hh ON true
        WHERE g.parent_id IS NULL
        ORDER BY hh.n DESC, g.id
        LIMIT 1
        """,
    )
    if row is None:
        return {}
    return {level: (int(row[level]), str(row[f"{level}_name"]))
            for level in ("district", "street_office", "community", "grid")}


def read_credentials(path: Path) -> dict[str, DemoCredential]:
    """The credentials file, by user name (empty when there is none).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / FILE_NAME
    >>> write_credentials(p, [DemoCredential("grid_worker", "demo.grid", "s3cret-pass",
    ...                                      "grid:4", "金盏第4网格")])
    >>> read_credentials(p)["demo.grid"].scope_name
    '金盏第4网格'
    >>> oct(p.stat().st_mode & 0o777)
    '0o600'
    """
    if not path.is_file():
        return {}
    out: dict[str, DemoCredential] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 4)
        if len(parts) < 4:
            continue
        role, username, secret, scope = parts[:4]
        out[username] = DemoCredential(role, username, secret, scope,
                                       parts[4] if len(parts) > 4 else "")
    return out


def write_credentials(path: Path, credentials: Iterable[DemoCredential]) -> None:
    """Write the credentials file, readable by its owner only (0600).

    The file is created with mode 0600 (never readable by others, not even for
    a moment) and an existing one is set to 0600 too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# onemap demo users of the demo city — a local demo only; made by `onemap setup`.",
        "# Passwords sign in at POST /auth/login (and in the widget and mobile map);",
        "# the external system's API key goes in the X-API-Key header.",
        "# Delete a line (or the file) and run `.venv/bin/onemap setup` for a new one.",
        "# role            username          password-or-api-key              scope  name",
    ]
    lines += [f"{c.role:<16}  {c.username:<16}  {c.secret:<32} {c.scope}  {c.scope_name}".rstrip()
              for c in credentials]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def new_password() -> str:
    """A random password meeting the policy (18 URL-safe characters).

    Examples
    --------
    >>> len(new_password()), new_password() != new_password()
    (18, True)
    """
    return secrets.token_urlsafe(18)[:18]


def ensure_demo_users(conn: psycopg.Connection[Any], path: Path) -> list[DemoCredential]:
    """Create the demo users that are missing and keep the others; write ``path``.

    Parameters
    ----------
    conn : psycopg.Connection
        Owner connection (autocommit).
    path : Path
        The credentials file (``var/demo-users.txt``).

    Returns
    -------
    list of DemoCredential
        One per :data:`SPECS`, in that order; empty when the city has no grid.

    Raises
    ------
    OnemapError
        From :mod:`spatial.users` (a role or unit missing).
    """
    from spatial import auth, users

    units = demo_units(conn)
    if not units:
        return []
    known = read_credentials(path)
    existing = {u.username: u for u in users.list_users(conn)}
    out: list[DemoCredential] = []
    for spec in SPECS:
        scope, scope_name = "", ""
        scopes: list[tuple[str, int]] = []
        if spec.level is not None:
            unit_id, scope_name = units[spec.level]
            scopes = [(spec.level, unit_id)]
            scope = f"{spec.level}:{unit_id}"
        user = existing.get(spec.username)
        kept = known.get(spec.username)
        if user is not None and kept is not None and kept.is_api_key == spec.api_key:
            out.append(DemoCredential(spec.role, spec.username, kept.secret,
                                      kept.scope, kept.scope_name))
            continue
        with conn.transaction():
            password = None if spec.api_key else new_password()
            if user is None:
                users.create_user(conn, spec.username, password,
                                  display_name=spec.display_name, roles=[spec.role],
                                  scopes=scopes)
            elif password is not None:  # its password was lost with the file: a new one
                users.set_password(conn, spec.username, password)
            secret = (auth.create_api_key(conn, spec.username, "onemap demo").key
                      if password is None else password)
        LOGGER.debug("demo user %s ready (credentials in %s)", spec.username, path)
        out.append(DemoCredential(spec.role, spec.username, secret, scope or "-", scope_name))
    write_credentials(path, out)
    return out


def sign_in_lines(url: str, credentials: Iterable[DemoCredential], path: Path) -> list[str]:
    """The "sign in" block ``onemap serve`` prints (plain text, one line each).

    Parameters
    ----------
    url : str
        The server's URL, without a trailing slash.
    credentials : iterable of DemoCredential
        The demo users; the grid worker's and the street staff's are shown.
    path : Path
        Where the others are.

    Examples
    --------
    >>> lines = sign_in_lines("http://127.0.0.1:8000", [DemoCredential(
    ...     "grid_worker", "demo.grid", "pw-1234567890", "grid:4", "金盏第4网格")],
    ...     Path("var/demo-users.txt"))
    >>> [line for line in lines if "demo.grid" in line]
    ['  网格员 grid worker  demo.grid / pw-1234567890  (grid:4 金盏第4网格)']
    """
    titles = {"grid_worker": "网格员 grid worker", "street_staff": "街道 street staff"}
    out = [
        "sign in / 登录:",
        f"  map widget / 地图组件       {url}/widget/",
        f"  mobile map / 网格员移动端   {url}/m/",
        f"  API / 接口                  {url}/  ({url}/openapi, {url}/collections)",
    ]
    shown = [c for c in credentials if c.role in titles]
    if shown:
        out.append("  demo users (local demo only) / 演示账号:")
        out += [f"  {titles[c.role]}  {c.username} / {c.secret}  ({c.scope} {c.scope_name})"
                for c in shown]
        out.append(f"  every role's user and password: {path}")
    out.append("  more users, unit ids for --scope: .venv/bin/onemap user add --help, "
               ".venv/bin/onemap units --level grid --name 霞光里 "
               "(or `source .venv/bin/activate` first)")
    return out


__all__ = ["FILE_NAME", "SPECS", "DemoCredential", "DemoUserSpec", "demo_units",
           "ensure_demo_users", "is_generated_city", "new_password", "read_credentials",
           "sign_in_lines", "write_credentials"]
