"""The ``onemap`` command line.

``onemap db start|stop|status|migrate|psql`` manage the database,
``onemap setup`` prepares everything ``make up`` and ``make test`` need, and
``onemap serve`` runs the OGC API server.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from spatial.errors import OnemapError

LOGGER = logging.getLogger(__name__)
console = Console(stderr=True)


def _fail(exc: OnemapError) -> None:
    console.print(f"[red]error:[/red] {exc}")
    sys.exit(1)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """onemap — 城市运行一张图 map server and spatial service."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.group()
def db() -> None:
    """Manage the database (the embedded cluster unless DATABASE_URL/PG* is set)."""


def start_database() -> str:
    """Start the embedded cluster (or check the external server) and bootstrap it.

    Returns
    -------
    str
        A one-line description of the database in use, without credentials.
    """
    from spatial.cluster import Cluster, wait_for
    from spatial.settings import database_conninfo, external_database_configured, get_settings

    if external_database_configured():
        wait_for(database_conninfo(), timeout=15)
        return "external database (DATABASE_URL / PG* variables)"
    settings = get_settings()
    cluster = Cluster(settings)
    created = cluster.init()
    started = cluster.start()
    cluster.bootstrap()
    state = "created and started" if created else ("started" if started else "already running")
    return (
        f"embedded cluster {state}: {cluster.data_dir} "
        f"(socket {settings.socket_dir.resolve()}, 127.0.0.1:{settings.pg_port})"
    )


def run_migrations(reapply: bool = False) -> list[str]:
    """Apply pending migrations with a progress bar.

    Parameters
    ----------
    reapply : bool
        Apply every file again.

    Returns
    -------
    list of str
        The files applied.
    """
    from spatial.db import connect
    from spatial.migrate import migrations, pending

    with connect(autocommit=True) as conn:
        todo = len(migrations()) if reapply else len(pending(conn))
        if todo == 0:
            return []
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("migrating", total=todo)

            def step(m: Any) -> None:
                progress.update(task, description=f"migrating {m.name}", advance=1)

            from spatial.migrate import migrate

            return migrate(conn, reapply=reapply, on_step=step)


@db.command("start")
def db_start() -> None:
    """Create if needed and start the database, then apply migrations."""
    try:
        console.print(start_database())
        applied = run_migrations()
        console.print(f"migrations: {len(applied)} applied")
    except OnemapError as exc:
        _fail(exc)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    from spatial.cluster import Cluster
    from spatial.settings import external_database_configured, get_settings

    if external_database_configured():
        console.print("external database in use: nothing to stop")
        return
    stopped = Cluster(get_settings()).stop()
    console.print("stopped" if stopped else "not running")


@db.command("status")
def db_status() -> None:
    """Say whether the database runs and which migrations are pending."""
    from spatial.cluster import Cluster
    from spatial.db import connect
    from spatial.migrate import pending
    from spatial.settings import external_database_configured, get_settings

    settings = get_settings()
    if not external_database_configured():
        cluster = Cluster(settings)
        up = cluster.running()
        click.echo(
            f"embedded cluster: {'running' if up else 'stopped'} "
            f"({cluster.data_dir}, port {settings.pg_port})"
        )
        if not up:
            sys.exit(3)
    try:
        with connect(autocommit=True) as conn:
            row = conn.execute("SELECT postgis_lib_version() AS postgis").fetchone()
            todo = pending(conn)
    except OnemapError as exc:
        _fail(exc)
    click.echo(f"PostGIS {row['postgis'] if row else '?'}; pending migrations: {len(todo)}")


@db.command("migrate")
@click.option("--reapply", is_flag=True, help="Apply every migration again (they are idempotent).")
def db_migrate(reapply: bool) -> None:
    """Apply pending SQL migrations."""
    try:
        applied = run_migrations(reapply=reapply)
    except OnemapError as exc:
        _fail(exc)
    click.echo(f"{len(applied)} migrations applied")


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def db_psql(args: tuple[str, ...]) -> None:
    """Open psql on the application database."""
    from spatial.settings import database_conninfo

    os.execvp("psql", ["psql", database_conninfo(), *args])  # noqa: S606


class _RichTask:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self.progress = progress
        self.task_id = task_id

    def advance(self, n: int = 1) -> None:
        self.progress.update(self.task_id, advance=n)


class RichReporter:
    """Shows generator progress as rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def task(self, description: str, total: int | None) -> _RichTask:
        """Start a bar for one piece of work."""
        return _RichTask(self.progress, self.progress.add_task(description, total=total))


def generate_city(scale: str, seed: int, replace: bool) -> None:
    """Generate the synthetic city with progress bars and a summary table."""
    from rich.table import Table

    from spatial.db import connect
    from spatial.synth import generate

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, connect(autocommit=True) as conn:
        report = generate(conn, scale, seed, reporter=RichReporter(progress), replace=replace)
    table = Table(title=f"city {report.scale} (seed {report.seed}) in {report.seconds} s")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in sorted(report.rows.items()):
        table.add_row(name, f"{n:,}")
    console.print(table)


@main.command("generate")
@click.option("--scale", type=click.Choice(["S", "M", "L"]), default="M", show_default=True,
              help="S: one community; M: one street office; L: a district.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same city.")
@click.option("--replace", is_flag=True, help="Replace the city already in the database.")
def generate_cmd(scale: str, seed: int, replace: bool) -> None:
    """Generate the synthetic city (with its ground truth) into the database."""
    try:
        generate_city(scale, seed, replace)
    except OnemapError as exc:
        _fail(exc)


@main.command("setup")
@click.option("--demo/--no-demo", default=True,
              help="Generate the demo city when the database is empty.")
def setup(demo: bool) -> None:
    """Start the database, migrate, and generate the demo city (scale M) if it is empty.

    ``ONEMAP_DEMO_SCALE`` chooses another scale for the demo city.
    """
    try:
        console.print(start_database())
        applied = run_migrations()
        console.print(f"migrations: {len(applied)} applied")
        if demo:
            from spatial.db import connect
            from spatial.synth import is_empty

            with connect(autocommit=True) as conn:
                empty = is_empty(conn)
            if empty:
                generate_city(os.environ.get("ONEMAP_DEMO_SCALE", "M"), 1, replace=False)
            else:
                console.print("database already holds a city")
    except OnemapError as exc:
        _fail(exc)


@main.command("serve")
@click.option("--host", default=None, help="Bind address (default HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default PORT or 8000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the OGC API."""
    import uvicorn

    from spatial.settings import get_settings

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    os.environ.setdefault("ONEMAP_URL", f"http://{host}:{port}")
    console.print(f"onemap serving at [bold]http://{host}:{port}[/bold]")
    uvicorn.run(
        "spatial.ogc.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


if __name__ == "__main__":  # pragma: no cover
    main()
