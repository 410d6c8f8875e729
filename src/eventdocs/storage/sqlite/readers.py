"""Reader connections in threads: reads whose cost grows with the data run here.

A query over 50,000 documents takes tens of milliseconds of SQLite work; on
the event loop's thread it would stall every other request for that long.
WAL lets any number of readers run beside the writer, so such reads go to a
small pool of threads, each with its own connection (opened on first use in
that thread). SQLite releases the GIL while it steps a statement, so the loop
keeps answering meanwhile. Point reads (one index seek) stay on the loop's
connection: the hop to a thread would cost more than they take.

Readers map the file (up to SQLite's default ceiling, 2 GiB) instead of
read() calls into a private cache: the pages are the OS's, shared by every
reader, so a read over a history larger than the cache pays no system call
per page (at 100,000 documents a query as of a past time ran at 1.9x the
same query on master with only the 32 MiB cache; mapped, 1.2x).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import quote

from eventdocs.errors import StorageError
from eventdocs.storage.sqlite.compile import _sql_decimal, _sql_lower
from eventdocs.storage.sqlite.schema import _storage_error

__all__ = ["Readers", "connect_reader", "open_error"]

T = TypeVar("T")
_PRAGMAS = "PRAGMA query_only=1; PRAGMA cache_size=-32768; PRAGMA mmap_size=2147418112;"


def open_error(path: str, exc: sqlite3.Error) -> StorageError:
    error = _storage_error(exc)  # busy stays StoreUnavailable: a retry may succeed
    return type(error)(f"{path}: {error.detail}")


def connect_reader(path: str, *, read_only: bool) -> sqlite3.Connection:
    """A reader connection: query-only, mapped, with the functions queries call."""
    # mode=ro: never a write to the file, whoever else has it open.
    target = f"file:{quote(os.path.abspath(path))}?mode=ro" if read_only else path
    try:
        conn = sqlite3.connect(
            target,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
            uri=read_only,
        )
    except sqlite3.Error as exc:
        raise open_error(path, exc) from exc
    try:
        conn.executescript(_PRAGMAS)
        conn.create_function("eventdocs_lower", 1, _sql_lower, deterministic=True)
        conn.create_function("eventdocs_decimal", 2, _sql_decimal, deterministic=True)
    except sqlite3.Error as exc:
        conn.close()
        raise open_error(path, exc) from exc
    return conn


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
