"""Queries over a collection, independent of any backend.

A :class:`Query` holds filters whose values are already parsed by the field's
type. :func:`matches` and :func:`sort_documents` are the reference semantics:
the memory backend and reads that fold in Python use them, and the SQL of the
SQLite backend must agree with them (the contract tests check it).

Semantics a user relies on: a filter on a missing or null field matches only
``not``, ``inot``, ``notin`` and ``null=true``; ``i*`` operators compare
lower-cased text; ``sort`` puts missing values first when ascending and breaks
ties on ``id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from eventdocs.errors import LimitExceeded

__all__ = [
    "MAX_LIMIT",
    "OPERATORS",
    "Filter",
    "Kind",
    "Query",
    "SortKey",
    "answer_too_large",
    "decimal_sort_key",
    "field_value",
    "matches",
    "project_fields",
    "sort_documents",
]

OPERATORS = (
    "equal", "iequal", "not", "inot", "prefix", "iprefix", "suffix", "isuffix",
    "contains", "icontains", "gt", "gte", "lt", "lte", "null", "in", "notin",
)  # fmt: skip
MAX_LIMIT = 1000

# How stored values compare: ``decimal`` values are stored as strings and
# compared as numbers; ``time`` values are canonical RFC 3339 text, which sorts.
Kind = Literal["text", "integer", "float", "decimal", "boolean", "time", "other"]


class Filter(msgspec.Struct, frozen=True):
    """``field op value``; for ``in``/``notin`` value is a list, for ``null`` a bool."""

    field: str
    op: str
    value: Any
    kind: Kind = "other"


class SortKey(msgspec.Struct, frozen=True):
    field: str
    descending: bool = False
    kind: Kind = "other"


class Query(msgspec.Struct, frozen=True):
    """Filters (combined with AND), order, page and the fields to return."""

    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    limit: int = 50
    offset: int = 0
    fields: tuple[str, ...] | None = None
    # The most bytes of stored JSON the page may hold (``None``: any); more is refused.
    max_bytes: int | None = None


def answer_too_large(max_bytes: int) -> LimitExceeded:
    """The error of a page whose documents would pass ``max_bytes`` of JSON."""
    return LimitExceeded(
        f"the answer would hold more than {max_bytes} bytes of documents (max_answer_bytes);"
        " ask for a smaller ?limit= or narrow the query",
        "answer_bytes",
    )


def _coerce(value: Any, kind: Kind) -> Any:
    if kind == "decimal" and value is not None and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return value


def field_value(doc: dict[str, Any], name: str) -> Any:
    """The value at dotted ``name`` in ``doc`` (``None`` where a part is missing)."""
    value: Any = doc
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return True
    return type(a) is type(b)


def _test(value: Any, f: Filter) -> bool:
    op, arg = f.op, f.value
    if op == "null":
        return (value is None) == bool(arg)
    if op in ("not", "inot", "notin"):
        if value is None:
            return True
        if op == "not":
            return not (_comparable(value, arg) and bool(value == arg))
        if op == "inot":
            return _text(value) != _text(arg)
        return not any(_comparable(value, a) and bool(value == a) for a in arg)
    if value is None:
        return False
    if op == "equal":
        return _comparable(value, arg) and bool(value == arg)
    if op == "in":
        return any(_comparable(value, a) and bool(value == a) for a in arg)
    if op in ("gt", "gte", "lt", "lte"):
        if not _comparable(value, arg):
            return False
        return bool(
            {"gt": value > arg, "gte": value >= arg, "lt": value < arg, "lte": value <= arg}[op]
        )
    if not isinstance(value, str) or not isinstance(arg, str):
        return False
    text, needle = (value.lower(), arg.lower()) if op.startswith("i") else (value, arg)
    op = op.removeprefix("i")
    if op == "equal":
        return text == needle
    if op == "prefix":
        return text.startswith(needle)
    if op == "suffix":
        return text.endswith(needle)
    if op == "contains":
        return needle in text
    raise ValueError(f"unknown operator {f.op!r}")


def matches(doc_id: str, data: dict[str, Any], filters: Iterable[Filter]) -> bool:
    """Whether the document ``data`` with id ``doc_id`` passes every filter."""
    for f in filters:
        raw = doc_id if f.field == "id" else field_value(data, f.field)
        value = _coerce(raw, f.kind)
        if f.op in ("in", "notin"):
            arg = [_coerce(a, f.kind) for a in f.value]
        else:
            arg = _coerce(f.value, f.kind) if f.op != "null" else f.value
        if not _test(value, Filter(f.field, f.op, arg, f.kind)):
            return False
    return True


class _Ordered:
    """Sort wrapper: None first, then by value; reversed for descending keys."""

    __slots__ = ("descending", "value")

    def __init__(self, value: Any, descending: bool) -> None:
        self.value = value
        self.descending = descending

    def _lt(self, other: _Ordered) -> bool:
        a, b = self.value, other.value
        if a is None or b is None:
            return a is None and b is not None
        if not _comparable(a, b):
            return type(a).__name__ < type(b).__name__
        return bool(a < b)

    def __lt__(self, other: _Ordered) -> bool:
        return other._lt(self) if self.descending else self._lt(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and not self._lt(other) and not other._lt(self)

    __hash__ = None  # type: ignore[assignment]


def sort_documents(
    docs: Sequence[tuple[str, dict[str, Any]]], keys: Sequence[SortKey]
) -> list[tuple[str, dict[str, Any]]]:
    """``(id, data)`` pairs in the query's order, ties broken on id ascending."""

    def key(item: tuple[str, dict[str, Any]]) -> list[Any]:
        doc_id, data = item
        parts: list[Any] = [
            _Ordered(
                _coerce(doc_id if k.field == "id" else field_value(data, k.field), k.kind),
                k.descending,
            )
            for k in keys
        ]
        parts.append(doc_id)
        return parts

    return sorted(docs, key=key)


_KEY_OFFSET = 10**20
_NINES = str.maketrans("0123456789", "9876543210")


def decimal_sort_key(d: Decimal) -> str | None:
    """Text that sorts like the numbers: sign class, exponent, digits (``None`` for NaN).

    Backends index and compare numbers stored as text with it, so that
    ``decimal`` fields order as numbers without floating-point rounding.
    """
    if d.is_nan():
        return None
    if d.is_infinite():
        return "4" if d > 0 else "0"
    if not d:
        return "2"
    digits = "".join(map(str, d.as_tuple().digits)).rstrip("0")
    if d > 0:
        return f"3{d.adjusted() + _KEY_OFFSET:021d}{digits}"
    return f"1{_KEY_OFFSET - d.adjusted():021d}{digits.translate(_NINES)}~"


def project_fields(data: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """Only the top-level ``fields`` of ``data`` (all of them for ``None``)."""
    if fields is None:
        return data
    return {name: data[name] for name in fields if name in data}
