"""The one boundary where driver errors become eventdocs errors.

Every public method of the store is wrapped in :func:`boundary`; the append
pipeline, which settles many calls from one task, uses :func:`translate`
directly. Code inside the store tests for duplicate keys with
:func:`is_duplicate`, because a duplicate key comes as ``DuplicateKeyError``
from single writes but as ``BulkWriteError`` (code 11000 inside) from
``insert_many`` and ``bulk_write``.

What callers see:

* ``StoreUnavailable`` (HTTP 503, retry later) for what a retry may cure: the
  network, server selection and wait-queue timeouts, write-concern timeouts,
  "not primary" and other retryable server codes, and transient transaction
  errors. The store raises these only where the write did not happen (an
  append in doubt is voided before its caller hears of it).
* ``StorageError`` (HTTP 500) for anything else, such as an unexpected
  duplicate key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WTimeoutError,
)

from eventdocs.errors import StorageError, StoreUnavailable

__all__ = ["boundary", "duplicate_of", "is_duplicate", "translate"]

P = ParamSpec("P")
T = TypeVar("T")

DUPLICATE_KEY = 11000
# Server errors that say "try again": host unreachable or not found, network
# timeout, shutdown in progress, primary stepped down, interrupted, exceeded
# time limit, not writable primary, not primary or secondary, write conflict...
RETRYABLE_CODES = {
    6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50,
}  # fmt: skip
_TRANSIENT = (
    ConnectionFailure,  # includes AutoReconnect, NetworkTimeout, NotPrimaryError
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WTimeoutError,
    WaitQueueTimeoutError,
    NotPrimaryError,
)


def _codes(exc: PyMongoError) -> set[int]:
    """The server codes of ``exc``: its own, and each write error's of a bulk write."""
    codes: set[int] = set()
    if isinstance(exc, OperationFailure) and exc.code is not None:
        codes.add(exc.code)
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        codes |= {int(e.get("code", 0)) for e in details.get("writeErrors", [])}
        codes |= {int(e.get("code", 0)) for e in details.get("writeConcernErrors", [])}
    return codes


def is_duplicate(exc: BaseException) -> bool:
    """Whether ``exc`` is a duplicate key, from a single write or a bulk one."""
    return duplicate_of(exc) is not None


def duplicate_of(exc: BaseException) -> dict[str, Any] | None:
    """The key a duplicate-key error names (each field of the index, its value when the
    server says); ``None`` when ``exc`` is no duplicate key."""
    if isinstance(exc, DuplicateKeyError):
        errors = [{"code": DUPLICATE_KEY, **(exc.details or {})}]
    elif isinstance(exc, BulkWriteError):
        errors = (exc.details or {}).get("writeErrors", [])
    else:
        return None
    for error in errors:
        if error.get("code") != DUPLICATE_KEY:
            continue
        taken: dict[str, Any] = dict(error.get("keyValue") or {})
        for field in error.get("keyPattern") or {}:
            taken.setdefault(field, None)
        if not taken:  # an older server: the index name is in the message
            name = str(error.get("errmsg", ""))
            taken = {"id": None, "prev": None} if "id_prev" in name else {"_id": None}
        return taken
    return None


def is_transient(exc: PyMongoError) -> bool:
    """Whether a retry of the same call may succeed."""
    if isinstance(exc, _TRANSIENT) or exc.has_error_label("TransientTransactionError"):
        return True
    if isinstance(exc, BulkWriteError) and (exc.details or {}).get("writeConcernErrors"):
        return True
    return bool(_codes(exc) & RETRYABLE_CODES)


def translate(exc: PyMongoError) -> StorageError:
    """The eventdocs error a caller sees for driver error ``exc``."""
    if is_transient(exc):
        return StoreUnavailable(f"mongodb: {exc}")
    if is_duplicate(exc):
        return StorageError(f"mongodb: duplicate key: {exc}")
    return StorageError(f"mongodb: {exc}")


def boundary(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Wrap a public store method: driver errors leave it only as eventdocs errors."""

    @functools.wraps(fn)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except PyMongoError as exc:
            raise translate(exc) from exc

    return translated
