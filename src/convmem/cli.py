"""The `convmem` command: serve, worker, migrate, accounts, keys."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from convmem import migrate as migrations
from convmem.accounts import service as accounts
from convmem.kit import logging as logs
from convmem.kit.db import Database
from convmem.settings import Settings

app = typer.Typer(no_args_is_help=True, help="convmem: Conversation Memory server.")
accounts_app = typer.Typer(no_args_is_help=True, help="Manage accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./convmem-data, CONVMEM_DATA_DIR)."),
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    settings = Settings(**values)
    if settings.is_sqlite:
        # Private to this user: it holds every store's data and the credentials.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return settings


def _open(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url, async_pool_size=settings.pool_size)
    migrations.upgrade(db)
    return db


def _bootstrap_account(settings: Settings, db: Database) -> None:
    with db.transaction() as session:
        if settings.account_sid and settings.auth_token:
            accounts.ensure_account(session, sid=settings.account_sid, token=settings.auth_token)
            return
        if accounts.has_accounts(session):
            return
        created = accounts.create_account(session, friendly_name="default")
    console.print("[bold]Created the first account.[/bold] Keep these; they are shown once:")
    console.print(f"  Account SID: [cyan]{created.sid}[/cyan]")
    console.print(f"  Auth token:  [cyan]{created.secret}[/cyan]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        bool | None, typer.Option("--workers/--no-workers", help="Run background workers here.")
    ] = None,
    processes: Annotated[
        int | None, typer.Option(help="Server processes sharing the port (CONVMEM_PROCESSES).")
    ] = None,
) -> None:
    """Start the HTTP API (and, by default, background workers)."""
    import uvicorn

    from convmem.app import create_app

    settings = _settings(data_dir, host=host, port=port, run_workers=workers, processes=processes)
    logs.configure(settings.log_level, settings.log_format)
    db = _open(settings)
    _bootstrap_account(settings, db)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.processes > 1:
        db.dispose()
        # Child processes build their app from the environment: hand them our options.
        for name, value in settings.model_dump(exclude_none=True).items():
            os.environ[f"CONVMEM_{name.upper()}"] = str(value)
        uvicorn.run("convmem.app:app_from_env", factory=True, workers=settings.processes, **options)
        return
    uvicorn.run(create_app(settings, db=db, run_workers=settings.run_workers), **options)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run background workers only (scale them apart from the API)."""
    from convmem import wiring
    from convmem.operations.worker import WorkerPool

    settings = _settings(data_dir)
    logs.configure(settings.log_level, settings.log_format)
    db = _open(settings)
    pool = WorkerPool(db, settings, wiring.jobs())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool.start()
    stop.wait()
    pool.shutdown()


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations and exit."""
    settings = _settings(data_dir)
    _open(settings)
    console.print("Database is up to date.")


@app.command()
def merges(
    store: Annotated[str, typer.Argument(help="Store id (mem_store_...).")],
    profile: Annotated[
        str | None, typer.Option(help="Only merges into this canonical profile.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Audit profile merges of a store: which ids merged into which, when, by which rule."""
    from sqlalchemy import select

    from convmem.profiles.models import ProfileMerge

    db = _open(_settings(data_dir))
    query = select(ProfileMerge).where(ProfileMerge.store_id == store)
    if profile:
        query = query.where(ProfileMerge.canonical_id == profile)
    with db.transaction(write=False) as session:
        rows = session.scalars(query.order_by(ProfileMerge.id)).all()
    table = Table("Merged at", "Merged profile", "Into", "Rule")
    for row in rows:
        table.add_row(row.merged_at.isoformat(), row.merged_id, row.canonical_id, row.rule)
    console.print(table)


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str | None, typer.Option(help="A friendly name.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an account and print its SID and auth token (shown once)."""
    db = _open(_settings(data_dir))
    with db.transaction() as session:
        created = accounts.create_account(session, friendly_name=name)
    console.print(f"Account SID: {created.sid}")
    console.print(f"Auth token:  {created.secret}")


@accounts_app.command("list")
def accounts_list(data_dir: DataDir = None) -> None:
    """List accounts."""
    db = _open(_settings(data_dir))
    with db.transaction(write=False) as session:
        rows = accounts.list_accounts(session)
    table = Table("Account SID", "Name", "Created")
    for row in rows:
        table.add_row(row.sid, row.friendly_name or "", row.created_at.isoformat())
    console.print(table)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option("--account", help="Account SID (AC...).")],
    name: Annotated[str | None, typer.Option(help="A friendly name.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key for an account and print its SID and secret (shown once)."""
    from convmem.kit.errors import ConvmemError

    db = _open(_settings(data_dir))
    try:
        with db.transaction() as session:
            created = accounts.create_api_key(session, account_sid=account, friendly_name=name)
    except ConvmemError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"API key SID: {created.sid}")
    console.print(f"Secret:      {created.secret}")
