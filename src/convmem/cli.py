"""The `convmem` command: serve, worker, migrate, accounts, keys, merges.

A configuration mistake ends in one line on stderr saying what is wrong and
how to fix it, and exit code 2; never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from convmem import migrate as migrations
from convmem.accounts import service as accounts
from convmem.accounts.secrets import ACCOUNT_SID
from convmem.kit import logging as logs
from convmem.kit.db import Database
from convmem.kit.errors import ConvmemError
from convmem.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="convmem: Conversation Memory server.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
accounts_app = typer.Typer(no_args_is_help=True, help="Manage accounts.", rich_markup_mode=None)
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.", rich_markup_mode=None)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the embedded SQLite database.",
        show_default="./convmem-data, or CONVMEM_DATA_DIR",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CACHE_NOTE = (
    "Processes that verified it recently keep accepting it for up to "
    "CONVMEM_CREDENTIAL_CACHE_SECONDS (default 60 s)."
)


def fail(message: str) -> NoReturn:
    errors.print(f"convmem: error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(2)


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = "CONVMEM_" + "_".join(str(p) for p in problem["loc"]).upper()
        fail(f"{name}: {problem['msg']} (got {str(problem.get('input'))[:60]!r})")


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _open(settings: Settings, *, create: bool = False) -> Database:
    """The migrated database. Only serve, worker and migrate may create it:
    an admin command pointed at the wrong directory must not make an empty one."""
    if settings.is_sqlite:
        # The file the URL names (the data dir's convmem.db unless
        # CONVMEM_DATABASE_URL names another one).
        path = Path(make_url(settings.resolved_database_url).database or "")
        if not create and not path.exists():
            fail(
                f"no convmem database at {path}: pass the server's --data-dir "
                "(or CONVMEM_DATA_DIR / CONVMEM_DATABASE_URL), or run `convmem migrate` first"
            )
        # Private to this user: it holds every store's data and the credentials.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    try:
        db = Database(url, async_pool_size=settings.pool_size)
        migrations.upgrade(db)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        fail(
            f"cannot use the database at {_safe_url(url)}: {reason[:200]}. "
            "Check CONVMEM_DATABASE_URL and that the database server is running."
        )
    except Exception as exc:  # a URL SQLAlchemy cannot use, say
        fail(f"cannot open the database at {_safe_url(url)}: {exc}")
    return db


@contextmanager
def _user_errors() -> Iterator[None]:
    """A ConvmemError from a command is the user's mistake: one line, exit 2."""
    try:
        yield
    except ConvmemError as exc:
        fail(exc.message)


def _check_account_settings(settings: Settings) -> None:
    if bool(settings.account_sid) != bool(settings.auth_token):
        fail("set both CONVMEM_ACCOUNT_SID and CONVMEM_AUTH_TOKEN, or neither")
    if settings.account_sid and not ACCOUNT_SID.match(settings.account_sid):
        fail(
            f"CONVMEM_ACCOUNT_SID: '{settings.account_sid[:40]}' is not an account SID "
            "('AC' followed by 32 lowercase hex digits)"
        )


def _bootstrap_account(settings: Settings, db: Database) -> None:
    with db.transaction() as session:
        if settings.account_sid and settings.auth_token:
            try:
                accounts.ensure_account(
                    session, sid=settings.account_sid, token=settings.auth_token
                )
            except ConvmemError as exc:
                fail(f"CONVMEM_ACCOUNT_SID: {exc.message}")
            return
        if accounts.has_accounts(session):
            return
        created = accounts.create_account(session, friendly_name="default")
    console.print("[bold]Created the first account.[/bold] Keep these; they are shown once:")
    console.print(f"  Account SID: [cyan]{created.sid}[/cyan]")
    console.print(f"  Auth token:  [cyan]{created.secret}[/cyan]")


def _listing(columns: Sequence[str], rows: list[dict[str, Any]], as_json: bool) -> None:
    """Rows as JSON lines' worth of objects, or a table that never cuts a value
    short (ids must survive a pipe or an 80-column terminal whole)."""
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(*columns)
    for column in table.columns:
        column.no_wrap = True
    for row in rows:
        table.add_row(*(str(value if value is not None else "") for value in row.values()))
    options = console.options.update(width=10_000)
    width = max(console.width, console.measure(table, options=options).maximum)
    Console(width=width, force_terminal=console.is_terminal).print(table)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on.", show_default="127.0.0.1, or CONVMEM_HOST"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on.", show_default="8000, or CONVMEM_PORT"),
    ] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        bool | None,
        typer.Option(
            "--workers/--no-workers",
            help="Run background workers in this process.",
            show_default="--workers, or CONVMEM_RUN_WORKERS",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Server processes sharing the port.", show_default="1, or CONVMEM_PROCESSES"
        ),
    ] = None,
) -> None:
    """Start the HTTP API (and, by default, background workers)."""
    settings = _settings(data_dir, host=host, port=port, run_workers=workers, processes=processes)
    _check_account_settings(settings)
    logs.configure(settings.log_level, settings.log_format)
    db = _open(settings, create=True)
    _bootstrap_account(settings, db)
    if settings.processes > 1:
        db.dispose()
        _serve_processes(settings)
        return
    _serve_one(settings, db=db)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def _serve_one(settings: Settings, *, db: Database | None = None, sock: Any = None) -> None:
    import uvicorn

    from convmem.app import create_app

    application = create_app(settings, db=db, run_workers=settings.run_workers)
    config = uvicorn.Config(application, **_uvicorn_options(settings))
    server = uvicorn.Server(config)
    if sock is None:
        server.run()
    else:
        server.run(sockets=[sock])


def _serve_processes(settings: Settings) -> None:
    """N server processes on one listening socket. Each child is forked with
    the parent's Settings object, so nothing travels through the environment;
    a child that dies is replaced, and SIGTERM/SIGINT stop them all."""
    try:
        sock = socket.create_server((settings.host, settings.port), reuse_port=False)
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    sock.set_inheritable(True)
    # Metrics of all processes in one scrape (prometheus_client's multiprocess
    # mode): each child writes its counters to this directory.
    # prometheus_client reads the variable when it is first imported, so this
    # happens before anything imports it (the app is imported in the children).
    metrics_dir = tempfile.mkdtemp(prefix="convmem-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import multiprocess

    children: set[int] = set()
    stopping = threading.Event()

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the child serves until it is told to stop
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                _serve_one(settings, sock=sock)
            finally:
                os._exit(0)
        children.add(pid)

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()
        for pid in list(children):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(settings.processes):
        spawn()
    while children:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
        if not stopping.is_set():
            logging.getLogger("convmem").warning(
                "server process exited; starting another", extra={"pid": pid}
            )
            spawn()
    sock.close()
    shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run background workers only (scale them apart from the API)."""
    from convmem import wiring
    from convmem.operations.worker import WorkerPool

    settings = _settings(data_dir)
    logs.configure(settings.log_level, settings.log_format)
    db = _open(settings, create=True)
    pool = WorkerPool(db, settings, wiring.jobs(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool.start()
    stop.wait()
    pool.shutdown()


@app.command("import")
def import_csv(
    store: Annotated[
        str, typer.Option("--store", help="The store to import into (mem_store_...).")
    ],
    file: Annotated[
        Path,
        typer.Option("--file", help="The CSV file.", exists=True, dir_okay=False, readable=True),
    ],
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="column=Group.trait (repeat it). Default: columns named Group.trait, or "
            "like a trait of the store.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    url: Annotated[
        str, typer.Option("--url", help="The convmem server.", envvar="CONVMEM_URL")
    ] = "http://127.0.0.1:8000",
    account: Annotated[
        str | None,
        typer.Option("--account", help="Account SID or API key.", envvar="CONVMEM_ACCOUNT_SID"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Auth token or key secret.", envvar="CONVMEM_AUTH_TOKEN"),
    ] = None,
) -> None:
    """Import profiles from a CSV file through a running server's import API."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
    )

    from convmem.imports import client as imports

    if not account or not token:
        fail("credentials needed: --account and --token (or CONVMEM_ACCOUNT_SID/_AUTH_TOKEN)")
    api = imports.ImportClient(url, account, token)
    try:
        header = imports.read_header(file)
        if maps:
            mappings = imports.parse_maps(maps)
        else:
            mappings = imports.infer_maps(header, api.store_traits(store))
            if not mappings:
                fail(
                    "no column is named like a trait of the store (Group.trait or trait); "
                    "map them with --map column=Group.trait"
                )
        created = api.create(store, file, mappings, dry_run=dry_run)
        import_id = created["importId"]
        errors.print(f"import {import_id}" + (" (dry run)" if dry_run else ""), highlight=False)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            console=errors,
        ) as bars:
            sending = bars.add_task("upload ", total=file.stat().st_size)
            api.upload(created["url"], file, lambda n: bars.advance(sending, n))
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]}"),
            console=errors,
        ) as bars:
            working = bars.add_task("process", total=1.0, rows="")
            for status in api.follow(store, import_id):
                done = (status.get("counts") or {}).get("processed", 0)
                bars.update(
                    working, completed=float(status.get("progress") or 0), rows=f"{done:,} rows"
                )
    except (imports.ClientError, ValueError, UnicodeDecodeError) as exc:
        fail(str(exc))
    counts = status.get("counts") or {}
    say = functools.partial(console.print, highlight=False, markup=False, soft_wrap=True)
    say(f"{status['status']}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    if status.get("message"):
        say(status["message"])
    summary = status.get("summary") or {}
    if summary.get("errors") or summary.get("warnings"):
        say(
            f"{summary.get('errors', 0):,} errors, {summary.get('warnings', 0):,} warnings; "
            f"report: {status.get('errorReportUrl')}"
        )
    if status["status"] != "COMPLETED":
        raise typer.Exit(1)


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations and exit (creating the database if needed)."""
    _open(_settings(data_dir), create=True)
    console.print("Database is up to date.")


@app.command()
def merges(
    store: Annotated[str, typer.Argument(help="Store id (mem_store_...).", show_default=False)],
    profile: Annotated[
        str | None, typer.Option(help="Only merges into this canonical profile.")
    ] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Audit profile merges of a store: which ids merged into which, when, by which rule."""
    from sqlalchemy import select

    from convmem.kit import ids
    from convmem.profiles.models import ProfileMerge
    from convmem.stores.models import Store

    if not ids.is_valid(ids.STORE_ID, store):
        fail(f"'{store[:80]}' is not a store id (mem_store_ followed by 26 characters)")
    db = _open(_settings(data_dir))
    query = select(ProfileMerge).where(ProfileMerge.store_id == store)
    if profile:
        query = query.where(ProfileMerge.canonical_id == profile)
    with db.transaction(write=False) as session:
        if session.get(Store, store) is None:
            fail(f"no store {store} in this database")
        rows = session.scalars(query.order_by(ProfileMerge.id)).all()
    _listing(
        ("Merged at", "Merged profile", "Into", "Rule"),
        [
            {
                "mergedAt": row.merged_at.isoformat(),
                "mergedId": row.merged_id,
                "canonicalId": row.canonical_id,
                "rule": row.rule,
            }
            for row in rows
        ],
        as_json,
    )


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str | None, typer.Option(help="A friendly name.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an account and print its SID and auth token (shown once)."""
    db = _open(_settings(data_dir))
    with _user_errors(), db.transaction() as session:
        created = accounts.create_account(session, friendly_name=name)
    console.print(f"Account SID: {created.sid}")
    console.print(f"Auth token:  {created.secret}")


@accounts_app.command("list")
def accounts_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List accounts."""
    db = _open(_settings(data_dir))
    with db.transaction(write=False) as session:
        rows = accounts.list_accounts(session)
    _listing(
        ("Account SID", "Name", "Created"),
        [
            {"sid": r.sid, "friendlyName": r.friendly_name, "createdAt": r.created_at.isoformat()}
            for r in rows
        ],
        as_json,
    )


@accounts_app.command("rotate-token")
def accounts_rotate_token(
    account: Annotated[str, typer.Argument(help="Account SID (AC...).", show_default=False)],
    data_dir: DataDir = None,
) -> None:
    """Give an account a new auth token (shown once); the old one stops working."""
    db = _open(_settings(data_dir))
    with _user_errors(), db.transaction() as session:
        token = accounts.rotate_token(session, account_sid=account)
    console.print(f"Auth token:  {token}")
    console.print(f"The old token is revoked. {CACHE_NOTE}", highlight=False)


@keys_app.command("create")
def keys_create(
    account: Annotated[
        str, typer.Option("--account", help="Account SID (AC...).", show_default=False)
    ],
    name: Annotated[str | None, typer.Option(help="A friendly name.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key for an account and print its SID and secret (shown once)."""
    db = _open(_settings(data_dir))
    with _user_errors(), db.transaction() as session:
        created = accounts.create_api_key(session, account_sid=account, friendly_name=name)
    console.print(f"API key SID: {created.sid}")
    console.print(f"Secret:      {created.secret}")


@keys_app.command("list")
def keys_list(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account's keys.")
    ] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """List API keys (never their secrets)."""
    db = _open(_settings(data_dir))
    with _user_errors(), db.transaction(write=False) as session:
        rows = accounts.list_api_keys(session, account_sid=account)
    _listing(
        ("API key SID", "Account SID", "Name", "Created"),
        [
            {
                "sid": r.sid,
                "accountSid": r.account_sid,
                "friendlyName": r.friendly_name,
                "createdAt": r.created_at.isoformat(),
            }
            for r in rows
        ],
        as_json,
    )


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="API key SID (SK...).", show_default=False)],
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key."""
    db = _open(_settings(data_dir))
    with _user_errors(), db.transaction() as session:
        accounts.revoke_api_key(session, key_sid=key)
    console.print(f"Revoked {key}. {CACHE_NOTE}", highlight=False)
