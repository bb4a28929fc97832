"""The project's own PostgreSQL/PostGIS cluster under ``var/pg``.

``make up`` and ``make test`` use it unless ``DATABASE_URL`` or a libpq
``PG*`` variable points at another server. The cluster listens on 127.0.0.1
and on a unix socket in ``var/run``. PostgreSQL refuses to run as root, so when
onemap runs as root every server command goes through ``runuser -u postgres``.

Authentication: ``trust`` on the unix socket, whose directory only the cluster's
owner (and root) may enter; ``scram-sha-256`` on TCP, so nothing on the
machine reaches the data through 127.0.0.1 without a password.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from spatial.errors import ConfigurationError, DatabaseUnavailableError
from spatial.settings import Settings

LOGGER = logging.getLogger(__name__)

#: Extensions installed in ``template1`` so every database (the test clones
#: included) has them without superuser rights.
EXTENSIONS = ("postgis", "pgrouting")

#: Row-level security lets only leakproof operators into index scans, and
#: PostGIS does not mark ``&&`` so: without this every bbox and tile query on
#: a table with policies (all layers, as onemap_api) scans the whole table.
#: The bounding-box test raises no error that could reveal a row's values.
#: Needs a superuser; on an external server, ask one to run it once.
LEAKPROOF_OVERLAPS = "ALTER FUNCTION public.geometry_overlaps(geometry, geometry) LEAKPROOF"
SERVER_USER = "postgres"


def find_bindir() -> Path:
    """Locate the PostgreSQL server binaries.

    Returns
    -------
    Path
        Directory holding ``initdb``, ``pg_ctl`` and ``postgres``:
        ``ONEMAP_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``,
        else the directory of ``pg_ctl`` on the PATH.

    Raises
    ------
    ConfigurationError
        When no PostgreSQL server is installed.
    """
    env = os.environ.get("ONEMAP_PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ConfigurationError(
        "PostgreSQL server binaries not found: install postgresql-15-postgis-3 "
        "(make up does this as root) or set ONEMAP_PG_BINDIR"
    )


@dataclass
class Cluster:
    """A PostgreSQL cluster owned by this project.

    Parameters
    ----------
    settings : Settings
        Where the cluster lives (``var/pg``), its socket dir and port.
    """

    settings: Settings

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.settings.pg_dir.resolve() / "data"

    @property
    def log_file(self) -> Path:
        """The server log."""
        return self.settings.pg_dir.resolve() / "postgres.log"

    @property
    def as_root(self) -> bool:
        """Whether server commands must be run through ``runuser``."""
        return os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        if self.as_root:
            return ["runuser", "-u", SERVER_USER, "--", *args]
        return list(args)

    def _owned_dir(self, path: Path, mode: int) -> None:
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        path.chmod(mode)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = self._cmd(*args)
        LOGGER.debug("running %s", " ".join(cmd))
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def _ensure_reachable(self) -> None:
        """Make ``var/pg`` and ``var/run`` reachable by the server user.

        A clone under a private directory (``/root/...``) cannot be entered by
        ``postgres``; then the cluster lives in ``/var/lib/onemap/<hash>`` and
        ``var/pg`` and ``var/run`` are symlinks to it.
        """
        if not self.as_root:
            return
        probe = subprocess.run(self._cmd("test", "-x", str(self.settings.var_dir)), check=False)
        if probe.returncode == 0:
            return
        digest = hashlib.sha1(str(self.settings.var_dir).encode()).hexdigest()[:10]  # noqa: S324
        home = Path("/var/lib/onemap") / digest
        home.mkdir(parents=True, exist_ok=True)
        for name in ("pg", "run"):
            link = self.settings.var_dir / name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(home / name)
        LOGGER.info("postgres cannot enter %s; cluster placed in %s", self.settings.var_dir, home)

    # -- lifecycle ---------------------------------------------------------

    def initialized(self) -> bool:
        """Whether ``initdb`` has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster if it does not exist.

        Returns
        -------
        bool
            True when a new cluster was created.
        """
        if self.initialized():
            return False
        if self.as_root:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise ConfigurationError(
                    "running as root needs the 'postgres' system user (from the postgresql package)"
                ) from None
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_reachable()
        self._owned_dir(self.settings.pg_dir, 0o700)
        self._owned_dir(self.settings.socket_dir, 0o700)
        bindir = find_bindir()
        LOGGER.info("initialising PostgreSQL cluster in %s", self.data_dir)
        result = self._run(
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SERVER_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            check=False,
        )
        if result.returncode != 0:
            raise ConfigurationError(f"initdb failed: {result.stderr.strip()[-500:]}")
        return True

    def running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        if not self.initialized():
            return False
        result = self._run(
            str(find_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir), check=False
        )
        return result.returncode == 0

    def start(self, timeout: float = 60.0) -> bool:
        """Start the server if it is not running.

        Parameters
        ----------
        timeout : float
            Seconds to wait for it to accept connections.

        Returns
        -------
        bool
            True when it was started by this call.

        Raises
        ------
        DatabaseUnavailableError
            When it does not come up; the log's tail is in the message.
        """
        if self.running():
            return False
        # Socket dir may have vanished with a cleaned var/; recreate it with the right owner.
        self._owned_dir(self.settings.socket_dir, 0o700)
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.settings.pg_port} "
            f"-k {self.settings.socket_dir.resolve()} "
            "-c shared_buffers=512MB -c work_mem=32MB -c maintenance_work_mem=256MB "
            "-c max_connections=200 -c fsync=on -c synchronous_commit=off "
            "-c jit=off -c max_wal_size=2GB"
        )
        result = self._run(
            str(find_bindir() / "pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(int(timeout)),
            "-l",
            str(self.log_file),
            "-o",
            options,
            check=False,
        )
        if result.returncode != 0:
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-10:])
            raise DatabaseUnavailableError(f"PostgreSQL did not start:\n{tail}")
        return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown).

        Returns
        -------
        bool
            True when it was running.
        """
        if not self.running():
            return False
        self._run(
            str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"
        )
        return True

    # -- roles and databases ---------------------------------------------

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        """Connection string for the cluster's superuser over the socket."""
        return psycopg.conninfo.make_conninfo(
            host=str(self.settings.socket_dir.resolve()),
            port=str(self.settings.pg_port),
            user=SERVER_USER,
            dbname=dbname,
        )

    def bootstrap(self) -> None:
        """Create the application role and database and the extensions.

        Idempotent. The role ``onemap`` may create databases (tests clone a
        template) and roles (the serving role ``onemap_api`` of migration 130)
        but is not a superuser.
        """
        s = self.settings
        with psycopg.connect(self.superuser_conninfo("template1"), autocommit=True) as conn:
            for ext in EXTENSIONS:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                )
            conn.execute(LEAKPROOF_OVERLAPS)
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (s.pg_user,)
            ).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(s.pg_user))
                )
            # CREATEROLE: migration 130 creates the serving role onemap_api.
            conn.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(s.pg_user)))
            # Lets DROP DATABASE ... WITH (FORCE) end an autovacuum worker in a test clone.
            conn.execute(
                sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(s.pg_user))
            )
            db = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (s.pg_database,)
            ).fetchone()
            if not db:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(s.pg_database), sql.Identifier(s.pg_user)
                    )
                )
        # A database made before the template had it (an older clone of the project).
        with psycopg.connect(self.superuser_conninfo(s.pg_database), autocommit=True) as conn:
            conn.execute(LEAKPROOF_OVERLAPS)


def wait_for(conninfo: str, timeout: float = 30.0) -> None:
    """Wait until a server accepts connections.

    Parameters
    ----------
    conninfo : str
        libpq connection string.
    timeout : float
        Seconds to wait.

    Raises
    ------
    DatabaseUnavailableError
        When it does not answer in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=3):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError("the database does not answer") from exc
            time.sleep(0.3)
