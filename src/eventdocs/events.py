"""Events: the immutable records of a resource's log.

An event is one of five frozen structs tagged by ``action``. Its ``seq`` and
``recorded_at`` are given by the store when it is appended; a :class:`Draft`
is the same event before that. New fields must get defaults and old fields
never change type, so every log ever written stays decodable.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ACTIONS",
    "Action",
    "Cancel",
    "Create",
    "Delete",
    "Draft",
    "Event",
    "Revert",
    "Update",
    "decode_event",
    "encode_event",
]

Action = Literal["create", "update", "delete", "revert", "cancel"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "revert", "cancel")
Body = dict[str, Any]


class _Event(msgspec.Struct, frozen=True, tag_field="action", kw_only=True):
    seq: int
    resource: str
    id: str
    toa: int
    recorded_at: int
    meta: dict[str, Any] = {}

    @property
    def action(self) -> Action:
        """The tag: ``create``, ``update``, ``delete``, ``revert`` or ``cancel``."""
        tag: Action = self.__struct_config__.tag  # type: ignore[assignment]
        return tag


class Create(_Event, tag="create", frozen=True):
    """Make a document that does not exist (or was deleted) exist with ``body``."""

    body: Body


class Update(_Event, tag="update", frozen=True):
    """Set the fields of ``body`` (``merge``: RFC 7396 merge patch, null removes).

    ``expect_rev`` (``If-Match``) is a precondition the fold checks at the TOA.
    """

    body: Body
    merge: bool = False
    expect_rev: int | None = None


class Delete(_Event, tag="delete", frozen=True):
    """Remove an existing document (``expect_rev``: as for :class:`Update`)."""

    expect_rev: int | None = None


class Revert(_Event, tag="revert", frozen=True):
    """Set the document to ``body``, a full state; ``None`` means deleted.

    ``expect_rev``: as for :class:`Update`.
    """

    body: Body | None
    expect_rev: int | None = None


class Cancel(_Event, tag="cancel", frozen=True):
    """Cancel event ``target`` of the same document, which must not yet be in effect."""

    target: int


Event = Create | Update | Delete | Revert | Cancel


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """An event before it is appended: the store assigns ``seq`` and ``recorded_at``.

    ``toa=None`` means "when recorded" (an immediate write; always so for cancel).
    """

    action: Action
    id: str
    body: Body | None = None
    toa: int | None = None
    merge: bool = False
    target: int = 0
    meta: dict[str, Any] = {}
    expect_rev: int | None = None

    def record(self, resource: str, seq: int, recorded_at: int) -> Event:
        """The event this draft becomes when appended as ``seq`` at ``recorded_at``."""
        toa = recorded_at if self.toa is None else self.toa
        common: dict[str, Any] = {
            "seq": seq,
            "resource": resource,
            "id": self.id,
            "toa": toa,
            "recorded_at": recorded_at,
            "meta": self.meta,
        }
        match self.action:
            case "create":
                return Create(body=self.body or {}, **common)
            case "update":
                return Update(
                    body=self.body or {}, merge=self.merge, expect_rev=self.expect_rev, **common
                )
            case "delete":
                return Delete(expect_rev=self.expect_rev, **common)
            case "revert":
                return Revert(body=self.body, expect_rev=self.expect_rev, **common)
            case "cancel":
                common["toa"] = recorded_at
                return Cancel(target=self.target, **common)
        raise AssertionError(self.action)


_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """The event as JSON, as stored in every backend and in exports."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """The event encoded by :func:`encode_event`."""
    return _decoder.decode(data)
