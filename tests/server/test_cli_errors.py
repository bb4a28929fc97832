"""Every ``onemap`` command a newcomer types either works or stops with one line.

The CLI runs in a subprocess, as a user runs it. A stopped database is a
``DATABASE_URL`` naming a port nobody listens on (the shared database is never
stopped); missing arguments, missing files and unknown values are given as
typed. Each failure must exit non-zero, print no traceback, and say in one
line (``error: …``, click's ``Error: …`` or argparse's ``…: error: …``) what
is wrong — naming the database's address when that is what is missing.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
#: The console script installed beside the interpreter, else the module.
ONEMAP = ([str(Path(sys.executable).parent / "onemap")]
          if (Path(sys.executable).parent / "onemap").exists()
          else [sys.executable, "-m", "server.cli"])
_ERROR_LINE = re.compile(r"(^|: )error: ", re.IGNORECASE)


def onemap(*args: str, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``onemap ARGS`` with standard input closed; output of both streams."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full.update({"COLUMNS": "80", "NO_COLOR": "1", **(env or {})})
    return subprocess.run([*ONEMAP, *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *names: str) -> str:
    """Non-zero exit, no traceback, exactly one error line, naming ``names``."""
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if _ERROR_LINE.search(line)]
    assert len(errors) == 1, out
    for name in names:
        assert name in errors[0], out
    return errors[0]


@pytest.fixture(scope="module")
def down() -> dict[str, str]:
    """The environment of a database that is not running."""
    port = free_port()
    return {"DATABASE_URL": f"postgresql://onemap@127.0.0.1:{port}/onemap", "PORT": str(port)}


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "lamps.csv"
    path.write_text("code,lon,lat\nL-1,116.47,39.92\n", encoding="utf-8")
    return path


def test_help_works() -> None:
    done = onemap("--help")
    assert done.returncode == 0 and "Commands:" in done.stdout
    for command in ("db", "setup", "serve", "worker", "generate", "import", "export", "bench",
                    "user", "key", "login-log", "units"):
        assert command in done.stdout
        sub = onemap(command, "--help")
        assert sub.returncode == 0, sub.stdout + sub.stderr
        assert "Traceback" not in sub.stdout + sub.stderr


@pytest.mark.parametrize("args", [
    ("db", "status"),
    ("db", "migrate"),
    ("generate",),
    ("worker", "--once"),
    ("export", "--layer", "building", "--format", "geojson", "-o", "never.geojson"),
    ("user", "list"),
    ("key", "list"),
    ("login-log",),
    ("units",),
    ("bench", "tiles", "--quick"),
], ids=" ".join)
def test_a_stopped_database_is_one_line_naming_it(down: dict[str, str],
                                                 args: tuple[str, ...]) -> None:
    line = assert_one_clear_line(onemap(*args, env=down), f"127.0.0.1:{down['PORT']}/onemap",
                                 "DATABASE_URL")
    assert "database" in line
    assert not (ROOT / "never.geojson").exists()


def test_serve_without_a_database_stops_before_serving(down: dict[str, str]) -> None:
    done = onemap("serve", "--port", str(free_port()), env=down)
    assert_one_clear_line(done, f"127.0.0.1:{down['PORT']}")
    assert "serving at" not in done.stdout + done.stderr


def test_serve_on_a_port_in_use_is_one_line(down: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = onemap("serve", "--host", "127.0.0.1", "--port", str(port), env=down)
    assert_one_clear_line(done, f"127.0.0.1:{port}", "--port")


def test_setup_against_a_stopped_external_database(down: dict[str, str]) -> None:
    # waits for the server (15 s) before it says it does not answer
    assert_one_clear_line(onemap("setup", "--no-demo", env=down), "does not answer",
                          f"127.0.0.1:{down['PORT']}")


@pytest.mark.parametrize(("args", "names"), [
    (("import",), ["Missing argument 'PATH'"]),
    (("import", "/nonexistent/lamps.gpkg", "--layer", "lamp"), ["does not exist"]),
    (("export",), ["Missing option '--layer'"]),
    (("export", "--layer", "lamp", "--format", "kml"), ["--format", "kml"]),
    (("export", "--layer", "lamp", "--format", "csv", "--bbox", "1,2,3"), ["--bbox"]),
    (("user", "add"), ["Missing argument 'USERNAME'"]),
    (("user", "add", "bob"), ["Missing option '--role'"]),
    (("key", "create"), ["Missing argument 'USERNAME'"]),
    (("worker", "--threads", "0", "--once"), ["--threads"]),
    (("generate", "--scale", "XL"), ["--scale", "XL"]),
    (("bench", "tiles", "--bogus"), ["--bogus"]),
    (("no-such-command",), ["No such command"]),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_missing_or_wrong_arguments(down: dict[str, str], args: tuple[str, ...],
                                    names: list[str]) -> None:
    assert_one_clear_line(onemap(*args, env=down), *names)


def test_import_checks_its_options_before_the_database(down: dict[str, str],
                                                       csv_file: Path) -> None:
    assert_one_clear_line(onemap("import", str(csv_file), env=down),
                          "--layer or --mapping")
    assert_one_clear_line(onemap("import", str(csv_file), "--layer", "lamp",
                                 "--encoding", "no-such-encoding", env=down),
                          "unknown text encoding", "no-such-encoding")


def test_psql_missing_is_named(down: dict[str, str], tmp_path: Path) -> None:
    assert_one_clear_line(onemap("db", "psql", env={**down, "PATH": str(tmp_path)}),
                          "psql not found")


def test_with_a_database_bad_values_are_one_line(tiny_city_db: str, tmp_path: Path,
                                                 csv_file: Path) -> None:
    env = {"DATABASE_URL": tiny_city_db}
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a GeoPackage", encoding="utf-8")
    assert_one_clear_line(onemap("import", str(junk), "--layer", "lamp", "--dry-run", env=env),
                          "junk.gpkg")
    assert_one_clear_line(onemap("import", str(csv_file), "--layer", "no_such_layer",
                                 "--dry-run", "--report", str(tmp_path / "r.json"), env=env),
                          "no_such_layer")
    assert_one_clear_line(onemap("export", "--layer", "no_such_layer", "--format", "csv",
                                 "-o", str(tmp_path / "x.csv"), env=env), "no_such_layer")
    assert_one_clear_line(onemap("export", "--layer", "lamp", "--format", "csv",
                                 "--crs", "bogus", "-o", str(tmp_path / "x.csv"), env=env),
                          "bogus")
    assert_one_clear_line(onemap("export", "--layer", "lamp", "--format", "csv",
                                 "--as", "nobody_here", "-o", str(tmp_path / "x.csv"), env=env),
                          "nobody_here")
    assert_one_clear_line(onemap("generate", "--scale", "S", env=env), "--replace")
    assert_one_clear_line(onemap("user", "grant", "nobody_here", "analyst", env=env),
                          "nobody_here")
    assert_one_clear_line(onemap("login-log", "--since", "yesterday-ish", env=env),
                          "yesterday-ish")
    # and a command that works says so
    done = onemap("export", "--layer", "lamp", "--format", "csv", "-o",
                  str(tmp_path / "lamps.csv"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "lamps.csv").read_text(encoding="utf-8").count("\n") > 20
