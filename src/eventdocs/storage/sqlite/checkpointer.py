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

A PASSIVE checkpoint never makes the WAL start over, though: a writer
rewinds it only when every frame is copied and no reader still reads one,
which under steady reads and writes almost never happens. The WAL then grew
to 1.7 GB in 30 s of the live projection benchmark (the database was 110 MB)
and every page lookup, which searches the WAL's index, slowed with it. So
once the WAL holds ``restart_frames`` frames, a RESTART checkpoint follows:
it holds new writers back for at most ``restart_wait`` seconds while the
readers of older snapshots finish (reads are short), and the next commit
writes the WAL from its start again. Busy past that, it is tried again after
the next interval.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

__all__ = ["Checkpointer"]


class Checkpointer:
    """Checkpoints the WAL of ``path`` in the background after commits."""

    def __init__(
        self,
        path: str,
        *,
        interval: float = 0.25,
        restart_frames: int = 16384,
        restart_wait: float = 0.02,
    ) -> None:
        self.path = path
        self.interval = interval
        self.restart_frames = restart_frames
        self.restart_wait = restart_wait
        self.runs = 0
        self.restarts = 0  # RESTART checkpoints that completed
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
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.restart_wait
        )
        try:
            while True:
                self._committed.wait()
                self._halt.wait(self.interval)  # gather the commits of an interval in one
                self._committed.clear()
                with contextlib.suppress(sqlite3.Error):  # busy now: the next one copies it
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.runs += 1
                    if frames >= self.restart_frames:
                        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                        self.restarts += 0 if busy else 1
                if self._halt.is_set():  # after a last checkpoint
                    return
        finally:
            conn.close()
