"""The widget's first view, per style, in headless Chromium: cold and warm.

Not a comparison: figures for the README against the customer's 2 s budget for
"map display" (002 §3.1.4), never asserted. For every style in ``styles/``:

cold
    a new browser context (empty HTTP cache) opens ``/widget/?theme=…#key=…`` at
    1280×800 with no centre given, so the view is the widget's default one (the
    data's extent). The server starts with an empty tile cache and the styles run
    one after another on it; they share no tiles, as each theme's tiles carry the
    base map's layers (``include: [base]`` in layers/themes.yml; before, the base
    map's tiles were in the server's cache after the first style).
warm
    the same page loaded again ``--repeat`` times in that context (the browser's
    cache and the server's tile cache).

Measured by ``tests/web/firstview.mjs``: navigation start to the map's first
``idle`` (every tile of the view drawn), the tile requests made before it (per
source), and whether the view statistics (``grid-statistics``) started only after
it. Run with the database up and the demo city loaded::

    PYTHONPATH=. .venv/bin/python bench/bench_first_view.py --repeat 3

or against a running server: ``--base http://host:8000 --key omk_…``. The JSON goes
to ``var/bench/first-view-<time>.json`` (and ``first-view-latest.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench"
#: The customer's budget for a map display (002 §3.1.4).
BUDGET_MS = 2000


def themes() -> list[str]:
    """The style ids: ``styles/*.json``."""
    return sorted(p.stem for p in (ROOT / "styles").glob("*.json"))


@contextmanager
def server(workers: int) -> Iterator[str]:
    """uvicorn over the configured database, with an empty tile cache; yields its URL."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tiles import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cache = BENCH_DIR / "first-view-tiles"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    env = {**os.environ, "ONEMAP_TILE_CACHE_DIR": str(cache), "ONEMAP_URL": url,
           "ONEMAP_JOB_THREADS": "0", "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost"}
    log = (BENCH_DIR / "first-view-uvicorn.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"uvicorn exited {proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"{url}/conformance?f=json", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("uvicorn did not answer within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def run_browser(base: str, key: str, names: Sequence[str], repeat: int) -> dict[str, Any]:
    """``node tests/web/firstview.mjs`` against ``base``; its result."""
    env = {**os.environ, "BASE_URL": base,
           "PARAMS": json.dumps({"themes": list(names), "key": key, "repeat": repeat}),
           "ARTIFACTS": str(ROOT / "var" / "test-artifacts"),
           "CHROMIUM": os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium"),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    done = subprocess.run(["node", str(ROOT / "tests" / "web" / "firstview.mjs")], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False,
                          timeout=300 + 120 * len(names) * (1 + repeat))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"firstview.mjs gave no answer:\n{done.stderr[-3000:]}")
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        log = "\n".join(answer.get("log", []))
        raise SystemExit(f"firstview.mjs: {answer.get('error')}\n{log}")
    return dict(answer["result"])


def markdown(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    rows = ["| style | cold: first idle | warm: first idle (median) | tile requests (cold) "
            "| per source | statistics after idle | within 2 s (cold / warm) |",
            "|---|---:|---:|---:|---|---|---|"]
    for theme, runs in result.items():
        cold = runs["cold"]
        warm = statistics.median(r["idle_ms"] for r in runs["warm"]) if runs["warm"] else None
        sources = ", ".join(f"{k.split('/')[-1] if k.startswith('tiles/') else k} {v}"
                            for k, v in sorted(cold["tile_sources"].items()))
        rows.append(
            f"| {theme} | {cold['idle_ms'] / 1000:.2f} s | "
            f"{'' if warm is None else f'{warm / 1000:.2f} s'} | {cold['tile_requests']} | "
            f"{sources} | {cold['stats_after_idle']} | "
            f"{'yes' if cold['idle_ms'] <= BUDGET_MS else 'no'} / "
            f"{'' if warm is None else ('yes' if warm <= BUDGET_MS else 'no')} |")
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", help="a running server (default: start one, empty tile cache)")
    ap.add_argument("--key", help="an API key for --base (default: an analyst's, made for the run)")
    ap.add_argument("--themes", help="comma-separated style ids (default: every style)")
    ap.add_argument("--repeat", type=int, default=3, help="warm loads per style (3)")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers (1)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the first views; write the JSON under ``var/bench/``."""
    args = parse_args(argv)
    names = args.themes.split(",") if args.themes else themes()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tiles import drop_user, make_analyst_key

    user = None
    if args.base:
        if not args.key:
            raise SystemExit("--base needs --key")
        result = run_browser(args.base.rstrip("/"), args.key, names, args.repeat)
    else:
        user, key = make_analyst_key()
        try:
            with server(args.workers) as base:
                result = run_browser(base, key, names, args.repeat)
        finally:
            drop_user(user)
    table = markdown(result)
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps({"budget_ms": BUDGET_MS, "repeat": args.repeat, "result": result,
                       "table": table}, ensure_ascii=False, indent=1)
    (BENCH_DIR / f"first-view-{stamp}.json").write_text(text, encoding="utf-8")
    (BENCH_DIR / "first-view-latest.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
