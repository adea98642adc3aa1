"""SQLite's WAL checkpoints, run by a thread of their own instead of by commits.

Left to itself, SQLite checkpoints in whichever connection commits once the
write-ahead log passes 1,000 pages: that commit copies the log into the
database file and waits for two fsyncs. A million-row import paid ~4 µs a row
for it inside its commits (docs/benchmarks.md), and a request that happened to
commit at the threshold waited milliseconds for pages others wrote.

Here a daemon thread per `Database` runs `PRAGMA wal_checkpoint(PASSIVE)` on a
connection of its own, shortly after the log grows. A passive checkpoint never
blocks readers or the writer (it copies what no reader still needs), and
Python's sqlite3 lets go of the GIL while it runs, so the copying and the
fsyncs overlap the writer's work. Connections still checkpoint themselves
past `FALLBACK_PAGES`, so the log stays bounded if the thread ever falls far
behind or stops.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("convmem.db")

# Pages of log after which a committing connection checkpoints itself anyway
# (SQLite's default is 1,000): only reached if the thread falls behind.
FALLBACK_PAGES = 10_000
# How often the thread checkpoints. Each pass that copies anything costs two
# fsyncs: a quarter second keeps that near SQLite's own pace under a stream of
# small commits (~1,000 pages apart), and an import's log at a batch or two.
INTERVAL_SECONDS = 0.25


class WalCheckpointer:
    """Checkpoints one SQLite database file's log until `stop`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # connections open on many threads

    def start(self) -> None:
        """Start the thread, unless it runs (a Database disposed of and used
        again starts a new one)."""
        with self._lock:
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._stop,),
                    name="convmem-wal-checkpoint",
                    daemon=True,
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def _run(self, stop: threading.Event) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception("the WAL checkpoint thread cannot open the database")
            return
        try:
            while not stop.wait(INTERVAL_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed", exc_info=True)
        finally:
            conn.close()
