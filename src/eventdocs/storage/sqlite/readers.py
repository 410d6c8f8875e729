"""Reader connections in threads: reads whose cost grows with the data run here.

A query over 50,000 documents takes tens of milliseconds of SQLite work; on
the event loop's thread it would stall every other request for that long.
WAL lets any number of readers run beside the writer, so such reads go to a
small pool of threads, each with its own connection (opened on first use in
that thread). SQLite releases the GIL while it steps a statement, so the loop
keeps answering meanwhile. Point reads (one index seek) stay on the loop's
connection: the hop to a thread would cost more than they take.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["Readers"]

T = TypeVar("T")


class Readers:
    """A pool of ``workers`` threads, each with a reader connection of its own."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], workers: int = 2) -> None:
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="eventdocs-sqlite-reader")
        self.threads: set[int] = set()  # the threads that ran a read (tests check it)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._conns.append(conn)
                self.threads.add(threading.get_ident())
        return conn

    def _run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        return read(self._conn())

    async def run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(connection)`` in a reader thread; its result on the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, read)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
