"""Value formats: what ``date-time``, ``uuid``, ``email``... accept, and where a value fails.

Validation compiles each field's JSON Schema with fastjsonschema; these checks
replace its own formats so that "valid" means exactly what the fields'
normalizers and :func:`~eventdocs.times.parse_time` accept, and :func:`_detail`
turns its errors into :class:`~eventdocs.errors.ErrorDetail` paths.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Final

import fastjsonschema

from eventdocs import times
from eventdocs.errors import ErrorDetail, InvalidRequest

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")


def pointer(*parts: str | int) -> str:
    """The JSON Pointer (RFC 6901) of ``parts``: ``pointer("tags", 2) == "/tags/2"``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _is_datetime(text: str) -> bool:
    if not _RFC3339.fullmatch(text):
        return False
    try:
        times.parse_time(text)
    except InvalidRequest:
        return False
    return True


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


# Our own format checks replace fastjsonschema's so that "valid" means exactly
# what the normalizers and parse_time accept.
_FORMATS: Final[dict[str, Callable[[Any], bool]]] = {
    "date-time": _is_datetime,
    "date": _is_date,
    "uuid": lambda s: bool(_UUID.fullmatch(s)),
    "email": lambda s: bool(_EMAIL.fullmatch(s)),
    "decimal": lambda s: bool(_NUMBER.fullmatch(s)),
}
_FORMAT_MESSAGES: Final = {
    "date-time": "must be an RFC 3339 time with an offset",
    "date": "must be a date YYYY-MM-DD",
    "uuid": "must be a UUID",
    "email": "must be an email address",
    "decimal": "must be a decimal number",
}


def _detail(exc: fastjsonschema.JsonSchemaValueException, path: str) -> ErrorDetail:
    """One error of fastjsonschema, pointing at the failing key where it can."""
    path += pointer(*exc.path[1:])
    value, definition = exc.value, exc.definition
    if exc.rule == "required" and isinstance(value, dict) and isinstance(definition, dict):
        missing = [k for k in definition.get("required", ()) if k not in value]
        if missing:
            return ErrorDetail(path + pointer(missing[0]), "is required")
    if exc.rule == "additionalProperties" and isinstance(value, dict):
        known = definition.get("properties", {}) if isinstance(definition, dict) else {}
        extra = [k for k in value if k not in known]
        if extra:
            return ErrorDetail(path + pointer(extra[0]), "is not a known field")
    if exc.rule == "format" and isinstance(exc.rule_definition, str):
        return ErrorDetail(path, _FORMAT_MESSAGES.get(exc.rule_definition, exc.message))
    return ErrorDetail(path, exc.message.removeprefix(f"{exc.name} "))
