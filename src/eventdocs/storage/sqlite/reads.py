"""The SQLite store's reads of the master collection and the history.

A point read (one index seek: ``get``, ``history_at``, a guard's head) runs on
a connection of the event loop's thread, where a hop to a thread would cost
more than it takes; a read whose cost grows with the data (a query, a scan, a
document's whole history) runs on a reader thread (:mod:`.readers`), so it
never stalls the loop. Each read sees the writer's last commit (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from eventdocs.errors import NotFound, StorageError
from eventdocs.events import Event, decode_event
from eventdocs.query import Query, answer_too_large
from eventdocs.storage.contract import Document, believed
from eventdocs.storage.sqlite.compile import _compile
from eventdocs.storage.sqlite.readers import Readers
from eventdocs.storage.sqlite.schema import _document, _json, _Sql, _storage_error

__all__ = ["Reads"]


def _capped(rows: Iterable[Any], max_bytes: int | None) -> list[Any]:
    """The rows of a page, refused as soon as their documents pass ``max_bytes``."""
    if max_bytes is None:
        return list(rows)
    out, size = [], 0
    for row in rows:
        size += len(row[1] or "")
        if size > max_bytes:
            raise answer_too_large(max_bytes)
        out.append(row)
    return out


class Reads:
    """Reads for :class:`~eventdocs.storage.sqlite.store.SQLiteStore`, which opens
    the connections and compiles each resource's statements."""

    _reader: sqlite3.Connection | None  # the loop thread's, for point reads
    _readers: Readers | None  # queries, scans: what a client asks for
    _quick: Readers | None  # the projector's and writers' bounded reads
    _sql: dict[str, _Sql]

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader is None:
            raise StorageError("the store is not open")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    async def _read(
        self, sql: str, params: Sequence[Any] = (), *, quick: bool = False
    ) -> list[Any]:
        """Rows of a read whose cost grows with the data, from a reader thread.

        ``quick`` reads (the projector's, a writer's) have a pool of their own, so
        that two long queries never hold up a write's projection.
        """
        readers = self._quick if quick else self._readers
        if readers is None:
            raise StorageError("the store is not open")

        def read(conn: sqlite3.Connection) -> list[Any]:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc

        return await readers.run(read)

    async def _read_events(
        self, sql: str, params: Sequence[Any], *, quick: bool = False
    ) -> list[Event]:
        readers = self._quick if quick else self._readers
        if readers is None:
            raise StorageError("the store is not open")

        def read(conn: sqlite3.Connection) -> list[Event]:
            try:
                return [decode_event(d) for (d,) in conn.execute(sql, params)]
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc

        return await readers.run(read)

    def _res(self, resource: str) -> _Sql:
        try:
            return self._sql[resource]
        except KeyError:
            raise NotFound(f"unknown resource {resource!r}") from None

    def _events(self, sql: str, params: Sequence[Any]) -> list[Event]:
        return [decode_event(d) for (d,) in self._rows(sql, params)]

    # -- the master collection and the history -----------------------------------

    async def get(self, resource: str, id: str) -> Document | None:
        rows = self._rows(self._res(resource).get, (id,))
        return _document(rows[0]) if rows else None

    async def _query(
        self,
        source: str | Sequence[str],
        query: Query,
        params: list[Any],
        *,
        unless: Sequence[tuple[str, tuple[Any, ...], str | Sequence[str]]] = (),
    ) -> tuple[int, list[Document]]:
        """The total and the page of ``query`` over ``source``; with ``unless``
        (tests, their parameters, other sources), over the source of the first
        test that finds a row, decided in the same snapshot as the query."""
        compiled = [
            (test, args, _compile(other, query, bound := list(params)), bound)
            for test, args, other in unless
        ]
        plain = _compile(source, query, first := list(params))
        if self._readers is None:
            raise StorageError("the store is not open")

        def read(conn: sqlite3.Connection) -> tuple[int, list[Any]]:
            try:
                conn.execute("BEGIN")  # one snapshot for the tests, the total and the page
                try:
                    (count, page), bound = plain, first
                    for test, args, statements, values in compiled:
                        if conn.execute(test, args).fetchone():
                            (count, page), bound = statements, values
                            break
                    total = conn.execute(count, bound).fetchone()[0]
                    rows = conn.execute(page, [*bound, query.limit, query.offset])
                    return total, _capped(rows, query.max_bytes)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc

        total, rows = await self._readers.run(read)
        return total, [_document(row) for row in rows]

    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        return await self._query(self._res(resource).master_from, query, [])

    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        rows = await self._read(self._res(resource).scan, (after, limit))
        return [_document(row) for row in rows]

    async def read_history(self, resource: str, id: str) -> list[Document]:
        return [_document(row) for row in await self._read(self._res(resource).history, (id,))]

    async def history_tails(self, resource: str, ids: Sequence[str]) -> dict[str, Document]:
        rows = await self._read(self._res(resource).tails, (_json(list(ids)),), quick=True)
        return {row[0]: _document(row) for row in rows}

    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        rows = self._rows(self._res(resource).history_at, (id, toa))
        return _document(rows[0]) if rows else None

    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        return await self._query(self._res(resource).alive_from, query, [toa])

    async def history_known(
        self, resource: str, id: str, *, toa: int, known_at: int
    ) -> Document | None:
        # One row is believed at (known_at, toa), if any: one of the history's two
        # candidates (an index seek each; the first nearly always), or else one of the
        # (few) rows a correction closed since.
        sql, params = self._res(resource), (id, toa, known_at)
        for candidates in (sql.known_by, sql.known_ahead, sql.closed_known):
            rows = self._rows(candidates, params)
            if rows and believed(row := _document(rows[0]), toa, known_at):
                return row
        return None

    async def query_known(
        self, resource: str, query: Query, *, toa: int, known_at: int
    ) -> tuple[int, list[Document]]:
        # Closed rows believed at known_at are rare (a correction since), and so are
        # rows recorded by known_at that took effect after it (scheduled): without
        # them the history's rows in effect by known_at answer, a seek as for as_of.
        sql = self._res(resource)
        return await self._query(
            sql.known_current[0],
            query,
            [toa, known_at],
            unless=(
                (sql.closed_at, (known_at,), sql.known_from),
                (sql.ahead_at, (known_at,), sql.known_current),
            ),
        )

    async def scan_history(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Document]:
        sql = self._res(resource)
        rows = await self._read(sql.scan_history, (after, limit + 1))
        if len(rows) > limit:  # drop the document the limit cut, or read all of the first
            cut = rows[-1][0]
            rows = [row for row in rows if row[0] != cut] or await self._read(sql.history, (cut,))
        return [_document(row) for row in rows]

    async def history_before(
        self, resource: str, id: str, *, toa: int, seq: int
    ) -> Document | None:
        rows = self._rows(self._res(resource).history_before, (id, toa, seq))
        return _document(rows[0]) if rows else None

    async def history_span(self, resource: str, id: str, *, start: int, end: int) -> list[Document]:
        rows = await self._read(self._res(resource).history_span, (id, start, end), quick=True)
        return [_document(row) for row in rows]

    async def history_rev(self, resource: str, id: str, rev: int) -> Document | None:
        rows = self._rows(self._res(resource).history_rev, (id, rev))
        return _document(rows[0]) if rows else None

    async def history_at_many(
        self, resource: str, ids: Sequence[str], *, toa: int
    ) -> dict[str, Document]:
        if not ids:
            return {}
        rows = await self._read(
            self._res(resource).history_at_many, (_json(list(ids)), toa), quick=True
        )
        return {row[0]: _document(row) for row in rows}
