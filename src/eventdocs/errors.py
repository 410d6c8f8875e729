"""The one error hierarchy of eventdocs.

Every failure a caller can act on is one of these; driver errors are
translated at the storage boundary and HTTP statuses are chosen only in
``eventdocs.http``::

    EventdocsError
    ├── InvalidRequest(ValueError)      bad parameter, operator, time, JSON
    │   └── ValidationFailed            document breaks the resource schema
    │       └── KeyReused               Idempotency-Key first used for another request
    ├── NotFound(LookupError)           unknown resource, document, revision, event
    ├── NotAllowed                      request not declared by the resource
    ├── Conflict                        create of an existing id, cancel in effect
    ├── PreconditionFailed              If-Match does not match ``_rev``
    ├── LimitExceeded                   a configured limit (body, bulk ids, pending)
    ├── DeclarationError(TypeError)     a resource or view declaration is wrong
    └── StorageError                    the database failed or is unreachable
        └── StoreUnavailable            ...and a retry later may succeed
            └── Stale                   the document moved between decision and append

Errors that concern input carry ``errors``: one :class:`ErrorDetail` per
failing path, so a client can point at the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

__all__ = [
    "Conflict",
    "DeclarationError",
    "ErrorDetail",
    "EventdocsError",
    "InvalidRequest",
    "KeyReused",
    "LimitExceeded",
    "NotAllowed",
    "NotFound",
    "PreconditionFailed",
    "Stale",
    "StorageError",
    "StoreUnavailable",
    "ValidationFailed",
]


class ErrorDetail(msgspec.Struct, frozen=True):
    """One failing path (``/title``, ``?limit``, ``Caesium-TOA``) and why."""

    path: str
    message: str


class EventdocsError(Exception):
    """Base of every error eventdocs raises on purpose."""

    def __init__(self, detail: str, errors: Iterable[ErrorDetail] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: Sequence[ErrorDetail] = tuple(errors)


class InvalidRequest(EventdocsError, ValueError):
    """The request itself is malformed: a parameter, a time, an operator, JSON."""


class ValidationFailed(InvalidRequest):
    """A document does not satisfy its resource's schema."""


class KeyReused(ValidationFailed):
    """An ``Idempotency-Key`` came back with another request than the one it first decided."""

    def __init__(self, detail: str = "this Idempotency-Key was first used for another request"):
        super().__init__(
            detail, [ErrorDetail("Idempotency-Key", "used for another request; use a new key")]
        )


class NotFound(EventdocsError, LookupError):
    """The resource, document, revision or event does not exist (at that time)."""


class NotAllowed(EventdocsError):
    """The resource does not declare this request."""

    def __init__(self, detail: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(detail)
        self.allowed = tuple(allowed)


class Conflict(EventdocsError):
    """The write contradicts the current state (existing id, event in effect)."""


class PreconditionFailed(EventdocsError):
    """``If-Match`` named a revision that is not the document's current one."""


class LimitExceeded(EventdocsError):
    """A configured limit was passed; ``limit`` says which one."""

    def __init__(self, detail: str, limit: str, errors: Iterable[ErrorDetail] = ()) -> None:
        super().__init__(detail, errors)
        self.limit = limit


class DeclarationError(EventdocsError, TypeError):
    """A resource or view declaration cannot be compiled."""


class StorageError(EventdocsError):
    """The store failed; nothing of the failing call was written."""


class StoreUnavailable(StorageError):
    """The store cannot be reached right now; the call may succeed later."""


class Stale(StoreUnavailable):
    """A guarded append found its document moved since the write was decided.

    Nothing was appended; the writer decides again against the new state. It
    reaches a client (as 503) only when the document keeps moving.
    """
