"""JSON on the wire: reading bodies and headers, rendering documents and events.

Encoding and decoding go through one prebuilt msgspec encoder and decoder.
Bodies are read under a size limit that is checked against
``Content-Length`` before anything is read, and chunk by chunk otherwise.
Internal times are integer microseconds; they leave as RFC 3339 with ``Z``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote

import falcon
import falcon.asgi
import msgspec

from eventdocs.errors import ErrorDetail, InvalidRequest, LimitExceeded, ValidationFailed
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
    "if_match",
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
_IF_MATCH = re.compile(r'\s*(?:W/)?"?(\d{1,18})"?\s*')
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
    """The time of action of ``Caesium-TOA`` (or its alias ``TOA``), if given."""
    for name in TOA_HEADERS:
        value = req.get_header(name)
        if value is not None:
            return parse_time(value, path=name)
    return None


def if_match(req: falcon.asgi.Request) -> int | None:
    """The revision ``If-Match`` names (``"3"``, ``3`` or ``W/"3"``); ``*`` is none."""
    value = req.get_header("If-Match")
    if value is None or value.strip() == "*":
        return None
    found = _IF_MATCH.fullmatch(value)
    if found is None:
        raise InvalidRequest(
            "If-Match is not a revision",
            [ErrorDetail("If-Match", 'expected an ETag such as "3"')],
        )
    return int(found.group(1))


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
    etag: int | None = None,
) -> None:
    """Answer ``body`` as JSON (no body for ``None``), with the ETag of a revision."""
    resp.status = status
    if body is not None:
        resp.content_type = JSON
        resp.data = encode(body)
    if etag is not None:
        resp.set_header("ETag", f'"{etag}"')
