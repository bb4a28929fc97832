"""Settings, built lazily from the environment (never at import time).

Database settings have exactly one source: ``DATABASE_URL`` or the libpq
``PG*`` variables. When neither is set, onemap uses its own embedded cluster
under ``var/pg`` (see :mod:`spatial.cluster`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

#: libpq variables whose presence means "use that server, not the embedded one".
LIBPQ_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def _project_root() -> Path:
    env = os.environ.get("ONEMAP_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    """What onemap needs to know about its surroundings.

    Attributes
    ----------
    root : Path
        The project directory (``ONEMAP_HOME``; defaults to the clone).
    var_dir : Path
        Run-time state: the embedded cluster, sockets, logs, generated files.
    pg_port : int
        Port of the embedded cluster on 127.0.0.1 (``ONEMAP_PG_PORT``; by
        default 54000–54999, derived from the clone's path).
    pg_database : str
        Database name in the embedded cluster (``ONEMAP_PG_DATABASE``).
    pg_user : str
        Application role in the embedded cluster (``ONEMAP_PG_USER``).
    host : str
        Address the HTTP server binds to (``HOST``).
    port : int
        Port the HTTP server listens on (``PORT``).
    config_path : Path
        The pygeoapi configuration (``ONEMAP_CONFIG``).
    """

    root: Path
    var_dir: Path
    pg_port: int
    pg_database: str
    pg_user: str
    host: str
    port: int
    config_path: Path

    @property
    def public_url(self) -> str:
        """URL the server is reached at (``ONEMAP_URL`` overrides)."""
        return os.environ.get("ONEMAP_URL") or f"http://{self.host}:{self.port}"

    @property
    def layers_dir(self) -> Path:
        """Layer declarations: the published views (``layers/NNN_topic.sql``)."""
        return self.root / "layers"

    @property
    def socket_dir(self) -> Path:
        """Directory holding the embedded cluster's unix socket."""
        return self.var_dir / "run"

    @property
    def pg_dir(self) -> Path:
        """Directory holding the embedded cluster (data directory and log)."""
        return self.var_dir / "pg"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _default_pg_port(var_dir: Path) -> int:
    """A port in 54000–54999 derived from the var directory.

    Two clones on one machine (a working copy and a fresh clone under test)
    then run their clusters side by side without a port clash.
    """
    digest = hashlib.sha1(str(var_dir).encode()).digest()  # noqa: S324 - not security
    return 54000 + int.from_bytes(digest[:2], "big") % 1000


@functools.cache
def get_settings() -> Settings:
    """Build the settings once from the environment.

    Returns
    -------
    Settings
        The settings; cached for the life of the process.

    Raises
    ------
    ValueError
        If a numeric variable such as ``PORT`` is not an integer.
    """
    root = _project_root()
    var_dir = Path(os.environ.get("ONEMAP_VAR", root / "var")).resolve()
    return Settings(
        root=root,
        var_dir=var_dir,
        pg_port=_int_env("ONEMAP_PG_PORT", _default_pg_port(var_dir)),
        pg_database=os.environ.get("ONEMAP_PG_DATABASE", "onemap"),
        pg_user=os.environ.get("ONEMAP_PG_USER", "onemap"),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=_int_env("PORT", 8000),
        config_path=Path(os.environ.get("ONEMAP_CONFIG", root / "pygeoapi-config.yml")).resolve(),
    )


def external_database_configured() -> bool:
    """Whether ``DATABASE_URL`` or a libpq ``PG*`` variable names a server.

    Returns
    -------
    bool
        True when the embedded cluster must not be used.
    """
    return bool(os.environ.get("DATABASE_URL")) or any(os.environ.get(v) for v in LIBPQ_VARS)


def database_conninfo(dbname: str | None = None) -> str:
    """The libpq connection string of the application database.

    Parameters
    ----------
    dbname : str, optional
        Connect to this database on the same server instead.

    Returns
    -------
    str
        ``DATABASE_URL`` if set; an empty string (libpq then reads ``PG*``)
        when only libpq variables are set; otherwise the embedded cluster's
        unix socket.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = os.environ.get("DATABASE_URL")
    if url:
        base = url
    elif any(os.environ.get(v) for v in LIBPQ_VARS):
        base = ""
    else:
        s = get_settings()
        base = make_conninfo(
            host=str(s.socket_dir.resolve()),
            port=str(s.pg_port),
            dbname=s.pg_database,
            user=s.pg_user,
        )
    if dbname is None:
        return base
    params = conninfo_to_dict(base) if base else {}
    params["dbname"] = dbname
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
