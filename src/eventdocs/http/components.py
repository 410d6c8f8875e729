"""The shared parts of the OpenAPI document: problems, events, headers, times.

Everything here is the same for every resource; :mod:`eventdocs.http.openapi`
builds the paths of each resource version on top and refers to these by
``$ref``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "MAX_INTEGER",
    "PROBLEM_TITLES",
    "REF",
    "TIME_SCHEMA",
    "TIME_TEXT",
    "common_parameters",
    "common_schemas",
    "json_content",
    "page",
    "param",
    "problem",
    "problem_response",
    "time_parameter",
]

REF: Final = "#/components"
TIME_TEXT: Final = "RFC 3339 with an offset, or Unix epoch seconds (integer or decimal)"
# What parse_time accepts: an RFC 3339 date-time, or epoch seconds.
TIME_SCHEMA: Final = {
    "type": "string",
    "anyOf": [{"format": "date-time"}, {"pattern": r"^-?\d{1,12}(\.\d+)?$"}],
    "description": TIME_TEXT,
}
# The same as one pattern, for parameters: client generators reject an anyOf in a header.
TIME_PATTERN: Final = (
    r"^(?:-?\d{1,12}(?:\.\d+)?"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))$"
)
MAX_INTEGER: Final = 2**62
_ACTIONS: Final = ["create", "update", "delete", "revert", "cancel"]
PROBLEM_TITLES: Final = {
    400: "Bad JSON, parameter, header or operator",
    404: "Unknown resource or document (or not at that time)",
    405: "Request not declared by the resource",
    409: "Conflict: the id exists, or the event is in effect",
    412: "If-Match does not match the current _rev",
    413: "Body (or bulk) too large",
    415: "Content-Type is not JSON",
    422: "Schema violation, one entry per failing path",
    429: "Too many scheduled writes pending",
    501: "Custom request declared without code",
    503: "Store unavailable; retry later",
}


def problem(status: int) -> dict[str, Any]:
    return {"$ref": f"{REF}/responses/{status}"}


def param(name: str) -> dict[str, Any]:
    return {"$ref": f"{REF}/parameters/{name}"}


def json_content(description: str, schema: dict[str, Any], **headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        out["headers"] = headers
    return out


def page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "resources": {"type": "array", "items": item},
        },
        "required": ["total", "resources"],
    }


def problem_response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": PROBLEM_TITLES[status],
        "content": {"application/problem+json": {"schema": {"$ref": f"{REF}/schemas/Problem"}}},
    }
    if status == 405:
        out["headers"] = {"Allow": {"required": True, "schema": {"type": "string"}}}
    return out


def time_parameter(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "description": f"{description}: {TIME_TEXT}.",
        "schema": {"type": "string", "pattern": TIME_PATTERN},
        "examples": {
            "rfc3339": {"value": "2030-01-01T00:00:00Z"},
            "epoch": {"value": "1893456000"},
        },
    }


def common_parameters() -> dict[str, Any]:
    return {
        "CaesiumTOA": time_parameter(
            "Caesium-TOA", "header", "Time of action: a future one schedules the write (202)"
        ),
        "TOA": time_parameter("TOA", "header", "Alias of Caesium-TOA"),
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "description": 'ETags the document must be at ("3", or a list "3", "4"); else'
            ' 412. A weak ETag (W/"3") never matches.',
            "schema": {
                "type": "string",
                "pattern": r'^\s*(\*|\d{1,18}|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)\s*$',
            },
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "description": "ETags (or *) the client holds: a match answers 304 without a body.",
            "schema": {"type": "string"},
        },
        "Prefer": {
            "name": "Prefer",
            "in": "header",
            "description": "return=minimal: answer without the document (204 with ETag).",
            "schema": {"type": "string", "enum": ["return=minimal", "return=representation"]},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "A retry with this key gets the first response, appending nothing.",
            "schema": {"type": "string"},
        },
        "AsOf": time_parameter("as_of", "query", "Valid time to read at (past or future)"),
        "KnownAt": time_parameter("known_at", "query", "Only what was recorded by then"),
        "Limit": {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 50},
        },
        "Offset": {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER},
        },
    }


def common_schemas() -> dict[str, Any]:
    time = {"type": "string", "format": "date-time"}
    event: dict[str, Any] = {
        "type": "object",
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "resource": {"type": "string"},
            "id": {"type": "string"},
            "action": {"type": "string", "enum": _ACTIONS},
            "toa": time,
            "recorded_at": time,
            "body": {"type": ["object", "null"]},
            "merge": {"type": "boolean"},
            "target": {"type": "integer"},
            "meta": {"type": "object"},
        },
        "required": ["seq", "resource", "id", "action", "toa", "recorded_at"],
    }
    # Event's properties spelled out again rather than allOf: generators drop an allOf
    # that adds properties.
    revision = {
        "type": "object",
        "properties": {
            **event["properties"],
            "outcome": {"type": "string", "enum": ["applied", "failed", "cancelled", "pending"]},
            "reason": {"type": "string"},
            "rev": {"type": "integer", "minimum": 1},
        },
        "required": [*event["required"], "outcome"],
    }
    problem = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["path", "message"],
                },
            },
        },
        "required": ["type", "title", "status", "detail", "errors"],
    }
    patch = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                "path": {"type": "string"},
                "from": {"type": "string"},
                "value": {},
            },
            "required": ["op", "path"],
        },
    }
    revert = {
        "type": "object",
        "properties": {
            "to_revision": {"type": "integer", "minimum": 1},
            "as_of": {"anyOf": [TIME_SCHEMA, {"type": "number"}]},
        },
        "oneOf": [{"required": ["to_revision"]}, {"required": ["as_of"]}],
        "additionalProperties": False,
    }
    health = {
        "type": "object",
        "properties": {
            "status": {"const": "ok"},
            "time": time,
            "next_toa": {"type": ["string", "null"], "format": "date-time"},
            "resources": {"type": "object", "additionalProperties": {"type": "object"}},
        },
        "required": ["status", "time", "resources"],
    }
    return {
        "Event": event,
        "Revision": revision,
        "Problem": problem,
        "JSONPatch": patch,
        "Revert": revert,
        "Health": health,
        "EventPage": page({"$ref": f"{REF}/schemas/Event"}),
        "RevisionPage": page({"$ref": f"{REF}/schemas/Revision"}),
    }
