"""The ``onemap`` command line.

``onemap db start|stop|status|migrate|psql`` manage the database,
``onemap setup`` prepares everything ``make up`` and ``make test`` need, and
``onemap serve`` runs the OGC API server.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from server.cli_users import error_line
from server.cli_users import register as register_user_commands
from spatial.errors import OnemapError

LOGGER = logging.getLogger(__name__)
console = Console(stderr=True)


def _fail(exc: OnemapError) -> NoReturn:
    console.print(error_line(exc), highlight=False, soft_wrap=True)  # one line, unwrapped
    sys.exit(1)


def require_port(host: str, port: int) -> None:
    """Stop with one line when ``host:port`` cannot be listened on.

    Raises
    ------
    ConfigurationError
        Naming the address and the system's reason (in use, not permitted …).
    """
    from spatial.errors import ConfigurationError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                " (another port: --port or PORT)") from None


def require_database() -> None:
    """Stop with one line when the database does not answer.

    Called before a command opens a connection pool: a pool would log its
    retries and wait for a connection instead of saying what is wrong.

    Raises
    ------
    DatabaseUnavailableError
        When no connection can be opened.
    """
    from spatial.db import connect

    with connect(autocommit=True):
        pass


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

    if shutil.which("psql") is None:
        raise click.ClickException(
            "psql not found: install the PostgreSQL client (apt-get install postgresql-client)")
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

    from democity import generate
    from spatial.db import connect

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"),
               TimeElapsedColumn())
    with connect(autocommit=True) as conn, Progress(*columns, console=console) as progress:
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
              help="Generate the demo city when the database is empty, and its demo users.")
def setup(demo: bool) -> None:
    """Start the database, migrate, and generate the demo city (scale M) if it is empty.

    ``ONEMAP_DEMO_SCALE`` chooses another scale for the demo city. A generated
    city gets one demo user per role (kept from run to run), their passwords
    in var/demo-users.txt; ``onemap serve`` shows how to sign in.
    """
    try:
        console.print(start_database())
        applied = run_migrations()
        console.print(f"migrations: {len(applied)} applied")
        if demo:
            from democity import is_empty
            from spatial.db import connect

            with connect(autocommit=True) as conn:
                empty = is_empty(conn)
            if empty:
                generate_city(os.environ.get("ONEMAP_DEMO_SCALE", "M"), 1, replace=False)
            else:
                console.print("database already holds a city")
            from democity.refuse import replay_today

            with connect(autocommit=True) as conn:  # the demo's refuse loads reach today
                console.print(f"refuse load readings replayed onto today: {replay_today(conn)}")
            setup_demo_users()
    except OnemapError as exc:
        _fail(exc)


def setup_demo_users() -> None:
    """Make the demo city's users (one per role) unless there are; say where they are.

    Only for a generated city (the demo): a database of imported data gets no
    demo user. Passwords go to ``var/demo-users.txt`` (0600), never to the log.
    """
    from democity.users import FILE_NAME, ensure_demo_users, is_generated_city
    from spatial.db import connect
    from spatial.settings import get_settings

    path = get_settings().var_dir / FILE_NAME
    with connect(autocommit=True) as conn:
        if not is_generated_city(conn):
            return
        credentials = ensure_demo_users(conn, path)
    if credentials:
        console.print(f"demo users: {', '.join(c.username for c in credentials)} "
                      f"(one per role; passwords in {path})", highlight=False)


def sign_in_block(url: str) -> list[str]:
    """The lines ``onemap serve`` prints before serving: where to sign in, and as whom.

    The demo users shown are those of ``var/demo-users.txt`` that still exist
    and are active; without the file (no demo city) only the addresses.
    """
    from democity.users import FILE_NAME, read_credentials, sign_in_lines
    from spatial.db import connect
    from spatial.settings import get_settings
    from spatial.users import list_users

    path = get_settings().var_dir / FILE_NAME
    credentials = read_credentials(path)
    if credentials:
        with connect(autocommit=True) as conn:
            active = {u.username for u in list_users(conn) if u.active}
        credentials = {k: v for k, v in credentials.items() if k in active}
    return sign_in_lines(url.rstrip("/"), credentials.values(), path)


@main.command("serve")
@click.option("--host", default=None, help="Bind address (default HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default PORT or 8000).")
@click.option(
    "--workers", type=int, envvar="ONEMAP_WORKERS", default=1, show_default=True,
    help="Worker processes (env ONEMAP_WORKERS); each has its own pool and job threads.",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the OGC API."""
    import uvicorn

    from spatial.settings import get_settings

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        require_port(host, port)  # uvicorn would build the whole app first, then fail
        require_database()  # else every worker process fails building the app
    except OnemapError as exc:
        _fail(exc)
    os.environ.setdefault("ONEMAP_URL", f"http://{host}:{port}")
    try:
        for line in sign_in_block(os.environ["ONEMAP_URL"]):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    except OnemapError as exc:
        _fail(exc)
    console.print(f"onemap serving at [bold]http://{host}:{port}[/bold]")
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@main.command("worker")
@click.option("--threads", type=int, default=1, show_default=True, help="Jobs run at once.")
@click.option("--once", is_flag=True, help="Run the jobs waiting now, then exit.")
def worker(threads: int, once: bool) -> None:
    """Run asynchronous process jobs (OGC API Processes) outside the web server."""
    from server.manager import run_worker

    if threads < 1:
        raise click.BadParameter(f"must be ≥ 1, got {threads}", param_hint="--threads")
    try:
        require_database()
    except OnemapError as exc:
        _fail(exc)
    if not once:
        console.print(f"onemap worker: {threads} thread(s), Ctrl-C to stop")
    try:
        ran = run_worker(threads, once=once)
    except OnemapError as exc:
        _fail(exc)
    if once:
        console.print(f"ran {ran} job(s)")


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise click.BadParameter(f"expected TARGET=VALUE, got {item!r}", param_hint=option)
        out[target.strip()] = source.strip()
    return out


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--layer", help="Target layer (table), e.g. building, road, pipe_segment.")
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML mapping file (examples in layers/import/).",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="TARGET=SOURCE",
    help="Map a column: the layer's column = a file column or a template '{a} {b}'.",
)
@click.option(
    "--default",
    "defaults",
    multiple=True,
    metavar="TARGET=VALUE",
    help="Value for a column where the file gives none.",
)
@click.option(
    "--source-crs",
    help="CRS of the file's coordinates: EPSG code, gcj02 or bd09 (overrides the file's).",
)
@click.option(
    "--key",
    help="Column or template giving each row's source key "
    "(default: a hash of geometry and attributes).",
)
@click.option("--source", "source_name", help="Source-key prefix (default: the file's stem).")
@click.option(
    "--source-layer",
    help="Layer inside a multi-layer file: a GeoPackage's, or an EPANET .inp file's "
    "nodes, pipes or valves.",
)
@click.option("--lon", help="Longitude column of a CSV file (default: lon/lng/longitude/x).")
@click.option("--lat", help="Latitude column of a CSV file (default: lat/latitude/y).")
@click.option("--encoding", help="Text encoding of the file, e.g. GBK.")
@click.option(
    "--lenient",
    multiple=True,
    metavar="COLUMN",
    help="A value of this column that cannot be read becomes NULL instead of rejecting the row.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Where to write the JSON report (default var/import/<run>-<layer>.json).",
)
@click.option("--dry-run", is_flag=True, help="Check everything, write nothing.")
def import_(
    path: str,
    layer: str | None,
    mapping_file: str | None,
    maps: tuple[str, ...],
    defaults: tuple[str, ...],
    source_crs: str | None,
    key: str | None,
    source_name: str | None,
    source_layer: str | None,
    lon: str | None,
    lat: str | None,
    encoding: str | None,
    lenient: tuple[str, ...],
    report_path: str | None,
    dry_run: bool,
) -> None:
    """Import a GIS file (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, CSV, EPANET) into a layer.

    Every row is loaded (inserted, or updated through its source key) or
    rejected with its reason in the report; invalid geometries are repaired.
    An EPANET .inp file is read with wntr (the epanet extra) as the layers
    nodes, pipes and valves: one per run, named by --source-layer or the
    mapping's source_layer.
    """
    from pathlib import Path

    from rich.table import Table as RichTable

    from spatial.db import connect
    from spatial.importer import ImportMapping, import_file
    from spatial.settings import get_settings

    try:
        if mapping_file is not None:
            mapping = ImportMapping.from_yaml(Path(mapping_file))
        elif layer:
            mapping = ImportMapping(layer=layer)
        else:
            raise click.UsageError("give --layer or --mapping")
        mapping = mapping.with_options(
            layer=layer,
            columns=_pairs(maps, "--map"),
            defaults=_pairs(defaults, "--default"),
            lenient=lenient,
            source_crs=source_crs,
            key=key,
            source=source_name,
            source_layer=source_layer,
            lon=lon,
            lat=lat,
            encoding=encoding,
        )
        with (
            connect(autocommit=True) as conn,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            task = progress.add_task("reading", total=1)

            def on_progress(phase: str, done: int, total: int) -> None:
                progress.update(task, description=phase, completed=done, total=max(total, 1))

            summary = import_file(
                conn, Path(path), mapping, dry_run=dry_run, progress=on_progress
            )
    except OnemapError as exc:
        _fail(exc)
    if report_path is None:
        name = f"dry-run-{summary.layer}.json" if dry_run else (
            f"{summary.run_id}-{summary.layer}.json"
        )
        written = summary.write_report(get_settings().var_dir / "import" / name)
    else:
        written = summary.write_report(report_path)
    title = f"{Path(path).name} → {summary.layer}" + (" (dry run)" if dry_run else "")
    table = RichTable(title=title)
    for name in ("read", "loaded", "inserted", "updated", "repaired", "rejected", "nulled"):
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in summary.counts().values()))
    console.print(table)
    console.print(f"source keys: {summary.source_name}:… ({summary.key_strategy})")
    console.print(f"coordinates: {summary.source_crs}")
    for reason, count in summary.reasons(top=10):
        console.print(f"  rejected {count:>6} × {reason}")
    console.print(f"report: {written}")


@main.command("export")
@click.option("--layer", required=True, help="Layer (table) to export.")
@click.option(
    "--format", "fmt", type=click.Choice(["gpkg", "geojson", "csv"]), required=True,
    help="Output format (CSV carries the geometry as WKT).",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False),
    help="Output file (default: <layer>.<format> here).",
)
@click.option(
    "--crs", default="4490", show_default=True,
    help="Output CRS: 4490, 4326, 3857, a Gauss-Krüger zone, gcj02 or bd09.",
)
@click.option("--bbox", help="Only features intersecting minx,miny,maxx,maxy (lon/lat).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option(
    "--as", "as_user", metavar="USERNAME",
    help="Export as this user: their roles and data scope decide rows and personal fields.",
)
def export(
    layer: str, fmt: str, output: str | None, crs: str, bbox: str | None, overwrite: bool,
    as_user: str | None,
) -> None:
    """Export a layer's features to a file.

    Only published map layers are exported, and never residents' personal
    data: tables without geometry (resident …) are refused and personal
    columns (phone, id number …) are left out. With --as, the export is what
    that user may see through the API (rows in their scope, fields by role).
    """
    from pathlib import Path

    from spatial.db import connect
    from spatial.exporter import FORMATS, export_layer

    box: tuple[float, float, float, float] | None = None
    if bbox:
        try:
            a, b, c, d = (float(v) for v in bbox.split(","))
        except ValueError:
            raise click.BadParameter(
                f"expected 4 numbers, got {bbox!r}", param_hint="--bbox"
            ) from None
        box = (a, b, c, d)
    out = Path(output) if output else Path(f"{layer}{FORMATS[fmt][1]}")
    try:
        with (
            connect(autocommit=True) as conn,
            Progress(
                TextColumn(f"exporting {layer}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            task = progress.add_task("export", total=None)
            principal = None
            if as_user:
                from spatial.auth import principal_for_user
                from spatial.users import get_user

                principal = principal_for_user(conn, get_user(conn, as_user).id)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = export_layer(
                conn, layer, out, fmt, crs=crs, bbox=box, overwrite=overwrite,
                progress=on_progress, principal=principal,
            )
    except OnemapError as exc:
        _fail(exc)
    console.print(f"{summary.rows} features of {layer} → {summary.path} ({summary.crs})")
    if summary.withheld:
        console.print(f"personal columns left out: {', '.join(summary.withheld)}")


@main.group()
def bench() -> None:
    """Benchmarks from bench/ (speed measured side by side, reported as ratios)."""


@bench.command("tiles", context_settings={"ignore_unknown_options": True,
                                          "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_tiles(args: tuple[str, ...]) -> None:
    """Vector tiles: onemap vs pygeoapi vs tipg vs raw SQL (bench/bench_tiles.py; --help)."""
    import importlib.util

    from spatial.settings import get_settings

    path = get_settings().root / "bench" / "bench_tiles.py"  # bench/ is not a package
    spec = importlib.util.spec_from_file_location("bench_tiles", path)
    if spec is None or spec.loader is None:
        raise click.ClickException(f"{path} not found: run from a clone of onemap")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_tiles"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    try:
        module.main(list(args))
    except OnemapError as exc:  # the database is down, no city loaded …
        _fail(exc)


register_user_commands(main)  # onemap user …, onemap key …, onemap login-log

if __name__ == "__main__":  # pragma: no cover
    main()
