"""Checking an exported log against the declarations, line by line, before it loads.

An import writes events verbatim, so nothing downstream would catch an event
the API could never have appended: a body that breaks the schema, an id no
URL can reach, a time outside years 1..9999. :class:`ImportCheck` refuses
those with one line naming the line number and the field; the log's own rules
(seqs, ``recorded_at``, cancel targets) are the store's, in ``load_stream``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import msgspec

from eventdocs.errors import ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.events import Cancel, Create, Event, Revert, Update, decode_event
from eventdocs.resources import ResourceSpec
from eventdocs.times import MAX_TIME, MIN_TIME

__all__ = ["ImportCheck", "read_checked"]

T = TypeVar("T")


class ImportCheck:
    """The declarations' rules for imported events; without specs, ids and times only."""

    def __init__(self, specs: list[ResourceSpec]) -> None:
        self.declared = bool(specs)
        self.specs: dict[str, ResourceSpec] = {}
        for spec in sorted(specs, key=lambda s: s.version):  # the latest version decides
            self.specs[spec.name] = spec

    def check(self, event: Event) -> None:
        """Refuse ``event`` if the API could not have appended it.

        Raises:
            InvalidRequest: with one :class:`ErrorDetail` per failing field.
        """
        for name, value in (("toa", event.toa), ("recorded_at", event.recorded_at)):
            if not MIN_TIME <= value <= MAX_TIME:
                _refuse(name, f"{value} is outside years 1..9999")
        if isinstance(event, Cancel) and event.toa != event.recorded_at:
            _refuse("toa", "a cancel takes effect when recorded: toa must equal recorded_at")
        spec = self.specs.get(event.resource)
        if spec is None:
            if self.declared:
                _refuse("resource", f"{event.resource!r} is not declared by the target")
            _check_segment(event.id)
            return
        if spec.client_ids:
            normal = _validated("", lambda: spec.validate_id(event.id))
            if normal != event.id:
                _refuse("id", f"{event.id!r} is not in its normal form {normal!r}")
        else:
            _check_segment(event.id)
        match event:
            case Create():
                _validated("body", lambda: spec.validate(event.body))
            case Update():
                _validated("body", lambda: spec.validate_update(event.body, merge=event.merge))
            case Revert() if event.body is not None:
                _validated("body", lambda: spec.validate(event.body))


def _validated(prefix: str, validate: Callable[[], T]) -> T:
    """``validate()``'s result; its first failing path, under ``prefix``, refuses."""
    try:
        return validate()
    except ValidationFailed as exc:
        first = exc.errors[0] if exc.errors else ErrorDetail("", exc.detail)
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        path = f"{prefix}{first.path}".lstrip("/") or prefix or "document"
        raise InvalidRequest(f"{path}: {first.message}{more}") from exc


def _refuse(path: str, message: str) -> NoReturn:
    raise InvalidRequest(f"{path}: {message}", [ErrorDetail(path, message)])


def _check_segment(doc_id: str) -> None:
    # The rule of ResourceSpec.validate_id, for server ids: one URL path segment.
    if (
        not doc_id
        or "/" in doc_id
        or doc_id in (".", "..")
        or doc_id.startswith("_")
        or not doc_id.isprintable()
    ):
        _refuse("id", f"{doc_id!r} cannot be a path segment (no URL could reach it)")


def read_checked(path: Path, check: ImportCheck, line: list[int]) -> Iterator[Event]:
    """The events of a JSON Lines export, each checked; ``line[0]`` is the current line.

    Raises:
        InvalidRequest: ``path:line: field: why`` for the first bad line.
    """
    with path.open("rb") as f:
        for number, text in enumerate(f, 1):
            line[0] = number
            if not text.strip():
                continue
            try:
                event = decode_event(text)
                check.check(event)
            except msgspec.DecodeError as exc:
                raise InvalidRequest(f"{path}:{number}: not an eventdocs event: {exc}") from exc
            except InvalidRequest as exc:
                raise InvalidRequest(f"{path}:{number}: {exc.detail}") from exc
            yield event
