"""Schemathesis holds the server to its own OpenAPI document, over every operation.

A real uvicorn serves the application on a clone of the tiny city (with the
coverage rasters, so the coverages are in the document), and the schemathesis
CLI reads ``/openapi?f=json`` from it and runs its phases — the schema's
examples, the coverage phase (boundary and invalid values of every parameter
and body, undocumented methods), a few random cases per operation and the
stateful links — once anonymous and once with the API key of a district
administrator, who may write every editable layer (Part 4 writes, processes,
job dismissals and photos included; the clone is dropped afterwards).

Every response is checked: no 5xx (``not_a_server_error``), the status is one
the operation documents (``status_code_conformance``) and the body matches the
documented schema (``response_schema_conformance``). Generation is
deterministic (``--generation-deterministic``: derandomized, no example
database), so a run sends the same requests every time (two workers share
them out, one core each for client and server: only their interleaving
varies); the work is bounded by the number of cases (three random ones per
operation on top of the coverage phase, about 21,000 requests a run), not by
a clock. A failure lists every failing operation with the request that
reproduces it (curl), the exceptions in the server's log and schemathesis's
own report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from server.coverage import RASTER_DIR_ENV
from tests.api.test_coverages import tiny_city_clone, write_test_rasters
from tests.conftest import live_uvicorn

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")
#: Random cases per operation (the coverage phase adds its own, derived from the schema).
MAX_EXAMPLES = 3
#: A bound on a hung run, not a speed check: a run takes one to two minutes.
RUN_TIMEOUT_S = 600


@dataclass
class Server:
    url: str
    key: str
    log: Path


@pytest.fixture(scope="module")
def server(server_conninfo: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """uvicorn over a clone of the tiny city, and a district administrator's API key."""
    from spatial import auth, users

    tmp = tmp_path_factory.mktemp("schemathesis")
    write_test_rasters(tmp)
    with tiny_city_clone(server_conninfo, template_db) as database:
        with psycopg.connect(database) as conn, conn.transaction():
            (district,) = conn.execute("SELECT min(id) FROM onemap.district").fetchone()  # type: ignore[misc]
            users.create_user(conn, "st_admin", None, roles=["district_admin"],
                              scopes=[("district", district)])
            key = auth.create_api_key(conn, "st_admin", label="schemathesis").key
        log = tmp / "uvicorn.log"
        env = {"DATABASE_URL": database, RASTER_DIR_ENV: str(tmp)}
        with live_uvicorn(env, log) as url:
            yield Server(url, key, log)


def failures(junit: Path) -> list[str]:
    """One line per failing case of a schemathesis JUnit report: operation, problem,
    status, and the curl command that reproduces it."""
    out = []
    for case in ET.parse(junit).iter("testcase"):
        for problem in case:
            if problem.tag not in ("failure", "error"):
                continue
            text = f"{problem.get('message') or ''}\n{problem.text or ''}"
            found = re.split(r"\n\d+\. Test Case ID: \w+\n", "\n" + text)[1:] or [text]
            for one in found:
                checks = re.findall(r"^- (ST\d+ [^\n]+)", one, re.MULTILINE) or [problem.tag]
                status = re.findall(r"^\[(\d{3})\]", one, re.MULTILINE)
                curl = re.findall(r"^\s*(curl -X [^\n]+)", one, re.MULTILINE)
                out.append(f"{case.get('name')}: {'; '.join(checks)}"
                           f" -> {status[0] if status else '?'}"
                           f"\n    {curl[0] if curl else one.strip()[:500]}")
    return out


def server_errors(log: str) -> list[str]:
    """The exception of each request the server could not answer (uvicorn's
    "Exception in ASGI application") and the frame that raised it."""
    out = []
    for block in log.split("Exception in ASGI application")[1:]:
        frames, raised = [], "?"
        for line in block.splitlines()[1:]:
            if line.strip().startswith('File "'):
                frames.append(line.strip().replace(f"{ROOT}/", ""))
            elif re.match(r"^[A-Za-z_][\w.]*(: |$)", line):
                raised = line
                break
        out.append(f"{raised[:300]}  ({frames[-1] if frames else '?'})")
    return sorted(set(out))


def _section(text: str, start: str, end: str) -> str:
    """The lines of the CLI's output from the heading ``start`` to ``end`` (or the tail)."""
    first = text.find(f" {start} ")
    last = text.find(f" {end} ", first + 1)
    return text[first:last] if first >= 0 and last > first else text[-6000:]


@pytest.mark.parametrize("who", ["anonymous", "signed_in"])
def test_the_server_keeps_its_openapi_document(server: Server, who: str,
                                               tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    args = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi?f=json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",  # implies no example database
        "--workers", "2", "--request-timeout", "60", "--no-color",
        "--report", "junit", "--report-junit-path", str(junit),
    ]
    if who == "signed_in":
        args += ["--header", f"X-API-Key: {server.key}"]
    before = len(server.log.read_text(encoding="utf-8", errors="replace"))
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "COLUMNS": "120"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=RUN_TIMEOUT_S, check=False)
    summary = re.findall(r"^\s*(?:API Operations|Test cases|Selected|Tested|\d+ generated).*$",
                         done.stdout, re.MULTILINE)
    print(f"schemathesis ({who}):", *summary, sep="\n  ")
    if done.returncode == 0:
        return
    found = failures(junit) if junit.exists() else []
    logged = server_errors(server.log.read_text(encoding="utf-8", errors="replace")[before:])
    report = "\n".join([
        f"schemathesis ({who}) exited {done.returncode}; {len(found)} failing cases:",
        *found,
        "server exceptions:", *(f"    {line}" for line in logged),
        "schemathesis's report:", _section(done.stdout, "FAILURES", "SUMMARY")[:20000],
        done.stderr[-3000:],
    ])
    pytest.fail(report, pytrace=False)
