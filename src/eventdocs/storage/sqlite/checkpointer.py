"""WAL checkpoints in a thread of their own, off the writer's path.

SQLite checkpoints the WAL in the connection whose commit crosses
``wal_autocheckpoint``: that commit then copies the WAL's pages into the
database file and syncs it, and every append and projection step queued
behind it waits (a scheduled write's activation lag at p99 was 37 ms with
them, 3 to 6 ms without). The writer's connection turns them off; this
thread, with a connection of its own, runs a PASSIVE checkpoint after
commits, at most every ``interval`` seconds. A PASSIVE checkpoint takes no
lock a writer or reader waits on: it copies what no reader still needs and
leaves the rest for the next one, so commits go on while it runs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

__all__ = ["Checkpointer"]


class Checkpointer:
    """Checkpoints the WAL of ``path`` in the background after commits."""

    def __init__(self, path: str, *, interval: float = 0.25) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self._committed = threading.Event()
        self._halt = threading.Event()
        self.thread = threading.Thread(
            target=self._main, name="eventdocs-sqlite-checkpointer", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def committed(self) -> None:
        """A commit added to the WAL (called by the writer thread)."""
        self._committed.set()

    def stop(self) -> None:
        self._halt.set()
        self._committed.set()
        self.thread.join()

    def _main(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._committed.wait()
                self._halt.wait(self.interval)  # gather the commits of an interval in one
                self._committed.clear()
                with contextlib.suppress(sqlite3.Error):  # busy now: the next one copies it
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                if self._halt.is_set():  # after a last checkpoint
                    return
        finally:
            conn.close()
