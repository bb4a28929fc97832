"""The CLI creates, starts, reports and stops a cluster of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from spatial.settings import LIBPQ_VARS

ONEMAP = str(Path(sys.executable).with_name("onemap"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def scratch_env() -> dict[str, str]:
    if shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.skip("runuser missing")
    home = Path(tempfile.mkdtemp(prefix="onemap-cli-"))
    home.chmod(0o755)  # the postgres user must be able to enter it
    env = {k: v for k, v in os.environ.items() if k not in (*LIBPQ_VARS, "DATABASE_URL")}
    env["ONEMAP_VAR"] = str(home / "var")
    env["ONEMAP_PG_PORT"] = str(_free_port())
    yield env
    subprocess.run([ONEMAP, "db", "stop"], env=env, check=False, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ONEMAP, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.db
def test_cli_starts_migrates_reports_and_stops_the_cluster(scratch_env: dict[str, str]) -> None:
    status = run(scratch_env, "db", "status")
    assert status.returncode != 0  # nothing there yet
    started = run(scratch_env, "db", "start")
    assert started.returncode == 0, started.stderr
    assert "created and started" in started.stderr
    status = run(scratch_env, "db", "status")
    assert status.returncode == 0, status.stderr
    assert "running" in status.stdout and "pending migrations: 0" in status.stdout
    # Postgres listens on 127.0.0.1 too, with a password required there.
    with socket.create_connection(("127.0.0.1", int(scratch_env["ONEMAP_PG_PORT"])), timeout=5):
        pass
    again = run(scratch_env, "db", "start")
    assert again.returncode == 0 and "already running" in again.stderr
    stopped = run(scratch_env, "db", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    status = run(scratch_env, "db", "status")
    assert status.returncode != 0 and "stopped" in status.stdout
    # A second start reuses the cluster.
    restarted = run(scratch_env, "db", "start")
    assert restarted.returncode == 0 and "started" in restarted.stderr
    assert "created" not in restarted.stderr
