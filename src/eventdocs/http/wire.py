"""JSON on the wire: reading bodies and headers, rendering documents and events.

Encoding and decoding go through one prebuilt msgspec encoder and decoder.
Bodies are read under a size limit that is checked against
``Content-Length`` before anything is read, and chunk by chunk otherwise.
Internal times are integer microseconds; they leave as RFC 3339 with ``Z``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote

import falcon
import falcon.asgi
import msgspec

from eventdocs.errors import (
    ErrorDetail,
    InvalidRequest,
    LimitExceeded,
    PreconditionFailed,
    ValidationFailed,
)
from eventdocs.events import Cancel, Create, Event, Revert, Update
from eventdocs.fold import Result
from eventdocs.http.errors import ProblemError
from eventdocs.storage.contract import Document
from eventdocs.times import format_time, parse_time

__all__ = [
    "JSON",
    "MERGE_PATCH",
    "decode",
    "encode",
    "etag_of",
    "if_match",
    "if_match_list",
    "if_none_match",
    "location",
    "project",
    "read_json",
    "render_document",
    "render_event",
    "render_revision",
    "send",
    "struct_from",
    "toa_header",
]

JSON: Final = "application/json"
MERGE_PATCH: Final = "application/merge-patch+json"
TOA_HEADERS: Final = ("Caesium-TOA", "TOA")

encode = msgspec.json.Encoder().encode
_decoder: Final = msgspec.json.Decoder()
T = TypeVar("T")
# One entity tag of an If-Match/If-None-Match list: W/ (weak), then "…" or a bare revision.
_ETAG = re.compile(r'\s*(W/)?(?:"([^"]*)"|(\d{1,18}))\s*(?:,|$)')
_REV_TAG = re.compile(r"(\d{1,18})(?:-[0-9a-f]{8})?")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def decode(data: bytes) -> Any:
    """Any JSON value; :class:`InvalidRequest` (400) when it is not JSON.

    Also 400: invalid UTF-8 inside a string, nesting deeper than the decoder's
    recursion limit, and an object that repeats a key (RFC 8259 leaves its
    meaning open, so the document stored could differ from the one meant).
    """
    try:
        value = _decoder.decode(data)
        if isinstance(value, dict | list):
            members = _members(value)
            # Each member has one ':' outside strings: more of them than decoded
            # members means a repeated key (counted fast first, strings aside).
            if data.count(b":") > members and _STRING.sub(b"", data).count(b":") > members:
                _reject_duplicates(data)
    except msgspec.DecodeError as exc:
        raise InvalidRequest("the body is not valid JSON", [ErrorDetail("", str(exc))]) from None
    except UnicodeDecodeError:
        raise InvalidRequest(
            "the body is not valid JSON", [ErrorDetail("", "invalid UTF-8 in a string")]
        ) from None
    except RecursionError:
        raise InvalidRequest(
            "the body is nested too deeply", [ErrorDetail("", "nested too deeply")]
        ) from None
    return value


def _members(value: Any) -> int:
    """The number of object members in a decoded JSON value."""
    if isinstance(value, dict):
        return len(value) + sum(_members(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return sum(_members(v) for v in value if isinstance(v, dict | list))
    return 0


def _reject_duplicates(data: bytes) -> None:
    """Raise :class:`InvalidRequest` naming the first key an object repeats."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise InvalidRequest(
                    f"the body repeats the key {key!r}",
                    [ErrorDetail("", f"duplicate key {key!r}")],
                )
            seen.add(key)
        return dict(items)

    json.loads(data, object_pairs_hook=pairs)


async def read_json(
    req: falcon.asgi.Request,
    max_body: int,
    *,
    media: Collection[str] = (JSON,),
    default: Any = None,
) -> Any:
    """The request's JSON body, or ``default`` when there is none.

    Raises:
        LimitExceeded: (413) the body is larger than ``max_body`` bytes.
        ProblemError: (415) the Content-Type is not one of ``media``.
        InvalidRequest: (400) the body is not JSON, or is missing without a default.
    """
    content_type = req.content_type
    if content_type is not None:
        kind = content_type.partition(";")[0].strip().lower()
        if kind not in media:
            raise ProblemError(
                415,
                f"expected Content-Type {' or '.join(media)}, not {kind or 'nothing'}",
                [ErrorDetail("Content-Type", f"use {' or '.join(media)}")],
            )
    length = req.content_length
    if length is not None:
        if length > max_body:
            raise _too_large(max_body)
        data = await req.stream.read() if length else b""
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in req.stream:
            size += len(chunk)
            if size > max_body:
                raise _too_large(max_body)
            chunks.append(chunk)
        data = b"".join(chunks)
    if not data.strip():
        if default is not None:
            return default
        raise InvalidRequest("a JSON body is required", [ErrorDetail("", "missing body")])
    return decode(data)


def _too_large(max_body: int) -> LimitExceeded:
    return LimitExceeded(
        f"the body is larger than {max_body} bytes",
        "body",
        [ErrorDetail("", f"at most {max_body} bytes")],
    )


def struct_from(kind: type[T], value: Any, what: str) -> T:
    """``value`` converted to the Struct ``kind``; 422 naming the failing path."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{what} must be a JSON object", [ErrorDetail("", "not an object")])
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at ")
        path = "".join(
            "/" + (name or index) for name, index in _PATH_PART.findall(where.strip("`$"))
        )
        named = _NAMED_FIELD.search(text)
        if named:
            path += "/" + named.group(1)
        raise ValidationFailed(f"{what} is not valid", [ErrorDetail(path, text)]) from None


def toa_header(req: falcon.asgi.Request) -> int | None:
    """The time of action of ``Caesium-TOA`` (or its alias ``TOA``), if given.

    Both headers naming different times is a 400: which one was meant?
    """
    found: list[tuple[str, int]] = []
    for name in TOA_HEADERS:
        value = req.get_header(name)
        if value is not None:
            found.append((name, parse_time(value, path=name)))
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise InvalidRequest(
            "Caesium-TOA and TOA name different times",
            [ErrorDetail("TOA", "differs from Caesium-TOA; send one of them")],
        )
    return found[0][1] if found else None


def _entity_tags(header: str, name: str) -> list[tuple[bool, str]]:
    """The ``(weak, opaque tag)`` pairs of an ETag list (RFC 9110 section 8.8.3)."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(header):
        found = _ETAG.match(header, position)
        if found is None or found.end() == position:
            raise InvalidRequest(
                f"{name} is not a list of ETags",
                [ErrorDetail(name, 'expected ETags such as "3", W/"3" or *')],
            )
        tags.append((found.group(1) is not None, found.group(2) or found.group(3) or ""))
        position = found.end()
    return tags


def etag_of(rev: int, fields: Sequence[str] | None = None) -> str:
    """The ETag of a document at ``rev``: ``"3"``; ``"3-1a2b3c4d"`` for a ``?fields`` subset.

    A subset is another representation, so it has another strong tag; its
    digits still name the revision, and ``If-Match`` accepts it as such.
    """
    if fields is None:
        return f'"{rev}"'
    digest = hashlib.sha1(",".join(fields).encode(), usedforsecurity=False).hexdigest()
    return f'"{rev}-{digest[:8]}"'


def if_match_list(req: falcon.asgi.Request) -> list[int] | None:
    """The revisions ``If-Match`` names; ``None`` without the header or for ``*``.

    Weak tags never match in ``If-Match`` (RFC 9110 section 13.1.1), so they
    name nothing: a list of weak tags only is an empty list, which nothing
    matches.
    """
    value = req.get_header("If-Match")
    if value is None or value.strip() == "*":
        return None
    revs: list[int] = []
    for weak, tag in _entity_tags(value, "If-Match"):
        rev = _REV_TAG.fullmatch(tag)
        if not weak and rev is not None:
            revs.append(int(rev.group(1)))
    return revs


def if_match(req: falcon.asgi.Request) -> int | None:
    """The one revision ``If-Match`` names (``"3"``, ``3``); ``*`` is none.

    Raises:
        PreconditionFailed: (412) the header names only weak or foreign tags.
    """
    revs = if_match_list(req)
    if revs is None:
        return None
    if not revs:
        raise PreconditionFailed(
            "If-Match names no current revision (a weak ETag never matches)",
            [ErrorDetail("If-Match", 'use the strong ETag, such as "3"')],
        )
    return revs[0]


def if_none_match(req: falcon.asgi.Request, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (weak comparison; ``*`` matches)."""
    value = req.get_header("If-None-Match")
    if value is None:
        return False
    if value.strip() == "*":
        return True
    mine = etag.removeprefix("W/").strip('"')
    return any(tag == mine for _, tag in _entity_tags(value, "If-None-Match"))


def location(prefix: str, doc_id: str) -> str:
    return f"{prefix}/{quote(doc_id, safe='')}"


def render_document(doc: Document) -> dict[str, Any]:
    """``{"id", ...fields, "_rev", "_updated"}``."""
    out: dict[str, Any] = {"id": doc.id}
    if doc.data:
        out.update(doc.data)
    out["_rev"] = doc.rev
    out["_updated"] = format_time(doc.updated)
    return out


def project(rendered: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Only ``fields`` of a rendered document, with ``id``, ``_rev`` and ``_updated``."""
    keep = ("id", *fields, "_rev", "_updated")
    return {name: rendered[name] for name in keep if name in rendered}


def render_event(event: Event) -> dict[str, Any]:
    """An event as clients see it: times as RFC 3339, the body where it has one."""
    out: dict[str, Any] = {
        "seq": event.seq,
        "resource": event.resource,
        "id": event.id,
        "action": event.action,
        "toa": format_time(event.toa),
        "recorded_at": format_time(event.recorded_at),
    }
    if isinstance(event, Create | Revert):
        out["body"] = event.body
    elif isinstance(event, Update):
        out["body"] = event.body
        out["merge"] = event.merge
    elif isinstance(event, Cancel):
        out["target"] = event.target
    if not isinstance(event, Create | Cancel) and event.expect_rev is not None:
        out["if_match"] = event.expect_rev
    if event.meta:
        out["meta"] = event.meta
    return out


def render_revision(result: Result) -> dict[str, Any]:
    """One entry of a document's revisions: the event and what became of it."""
    out = render_event(result.event)
    out["outcome"] = result.outcome
    if result.reason is not None:
        out["reason"] = result.reason
    if result.rev is not None:
        out["rev"] = result.rev
    return out


def send(
    resp: falcon.asgi.Response,
    body: Any,
    status: int = 200,
    *,
    etag: int | str | None = None,
) -> None:
    """Answer ``body`` as JSON (no body for ``None``), with the ETag of a revision.

    ``etag`` is a revision (sent as ``"3"``) or a ready tag from :func:`etag_of`.
    """
    resp.status = status
    if body is not None:
        resp.content_type = JSON
        resp.data = encode(body)
    if etag is not None:
        resp.set_header("ETag", etag if isinstance(etag, str) else f'"{etag}"')
