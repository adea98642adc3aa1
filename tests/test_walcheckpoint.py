"""SQLite's WAL is checkpointed by a thread of the Database, not by the
connections that commit (kit.walcheckpoint)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import text

from convmem.kit.db import Database
from convmem.kit.walcheckpoint import FALLBACK_PAGES

THREAD = "convmem-wal-checkpoint"


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD and t.is_alive()]


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_committed_pages_reach_the_database_file_without_a_commit_checkpointing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    before = len(_threads())
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"))
        # ~4 MB: a thousand pages of log, far below where a connection would
        # checkpoint itself, so only the thread can move them.
        for _ in range(4):
            with db.transaction() as session:
                session.execute(
                    text("INSERT INTO blobs (body) VALUES (randomblob(1000000))"),
                )
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == FALLBACK_PAGES
        assert len(_threads()) == before + 1
        assert _wait_for(lambda: os.path.getsize(path) >= 4_000_000), os.path.getsize(path)
    finally:
        db.dispose()
    assert len(_threads()) == before  # dispose stops it


def test_a_database_used_again_after_dispose_checkpoints_again(tmp_path: Path) -> None:
    path = tmp_path / "again.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"))
        db.dispose()
        with db.transaction() as session:
            session.execute(text("INSERT INTO blobs (body) VALUES (randomblob(2000000))"))
        assert _wait_for(lambda: os.path.getsize(path) >= 2_000_000), os.path.getsize(path)
    finally:
        db.dispose()
