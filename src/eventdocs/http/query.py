"""The query language of SPEC section 4, from a query string to a :class:`Query`.

``field=value`` is ``equal``; ``field__op=value`` applies ``op``, which the
field must declare. Values are parsed by the field's type, ``in``/``notin``
take comma-separated values or a repeated parameter (a value holding a comma
is double-quoted, CSV style: ``?author__in="Smith, Ann",bob``, with ``""``
for a quote inside quotes), ``sort`` takes fields
with ``-`` for descending. Every mistake is a 400 whose ``errors`` name the
parameter (``?title__equal``) and say what is allowed, and nothing unknown is
silently ignored. ``after=ID`` is a keyset cursor: the documents whose id
sorts after ID, in id order (stable under concurrent writes, unlike offset).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple
from urllib.parse import parse_qsl

from eventdocs.documents import Limits
from eventdocs.errors import ErrorDetail, InvalidRequest
from eventdocs.fields import Field
from eventdocs.query import MAX_LIMIT, Filter, Query, SortKey
from eventdocs.resources import ResourceSpec
from eventdocs.times import parse_time

__all__ = [
    "DEFAULT_LIMIT",
    "PAGE_PARAMETERS",
    "QUERY_PARAMETERS",
    "READ_PARAMETERS",
    "Page",
    "ReadTimes",
    "pairs",
    "parse_event_page",
    "parse_fields",
    "parse_page",
    "parse_query",
    "parse_read",
    "reject_unknown",
]

DEFAULT_LIMIT: Final = 50
READ_PARAMETERS: Final = frozenset({"as_of", "known_at"})
PAGE_PARAMETERS: Final = frozenset({"limit", "offset"})
QUERY_PARAMETERS: Final = READ_PARAMETERS | PAGE_PARAMETERS | {"sort", "fields", "after"}
_LIST_OPERATORS: Final = frozenset({"in", "notin"})
_LIMITS: Final = Limits()


class ReadTimes(NamedTuple):
    """``as_of`` (valid time) and ``known_at`` (transaction time) of a read."""

    as_of: int | None = None
    known_at: int | None = None


class Page(NamedTuple):
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"?{param}: {message}", [ErrorDetail(f"?{param}", message)])


def pairs(query_string: str) -> list[tuple[str, str]]:
    """The decoded ``(name, value)`` pairs of a query string, in order."""
    if not query_string:
        return []
    return parse_qsl(query_string, keep_blank_values=True)


def reject_unknown(params: Iterable[tuple[str, str]], allowed: Iterable[str] = ()) -> None:
    """400 for the first parameter not in ``allowed``."""
    allowed = frozenset(allowed)
    for name, _ in params:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise _bad(name, f"unknown parameter; parameters here are {known}")


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise _bad(name, "given more than once")
    return values[0] if values else None


def _integer(params: Sequence[tuple[str, str]], name: str, default: int, maximum: int) -> int:
    text = _single(params, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(name, "expected a non-negative integer") from None
    if value < 0:
        raise _bad(name, "expected a non-negative integer")
    if value > maximum:
        raise _bad(name, f"at most {maximum}")
    return value


def _read_times(params: Sequence[tuple[str, str]]) -> ReadTimes:
    times = []
    for name in ("as_of", "known_at"):
        text = _single(params, name)
        times.append(None if text is None else parse_time(text, path=f"?{name}"))
    return ReadTimes(*times)


def parse_read(params: Sequence[tuple[str, str]], extra: Iterable[str] = ()) -> ReadTimes:
    """``as_of``/``known_at`` of a read that takes nothing else (but ``extra``)."""
    if not params:
        return ReadTimes()
    reject_unknown(params, READ_PARAMETERS | set(extra))
    return _read_times(params)


def parse_page(
    params: Sequence[tuple[str, str]], extra: Iterable[str] = (), *, max_limit: int = MAX_LIMIT
) -> Page:
    """``limit`` (default 50, at most ``max_limit``) and ``offset`` of a listing."""
    if not params:
        return Page(min(DEFAULT_LIMIT, max_limit))
    reject_unknown(params, PAGE_PARAMETERS | set(extra))
    return Page(
        _integer(params, "limit", min(DEFAULT_LIMIT, max_limit), max_limit),
        _integer(params, "offset", 0, 2**62),
    )


def parse_event_page(
    params: Sequence[tuple[str, str]], *, max_limit: int = MAX_LIMIT
) -> tuple[Page, int | None]:
    """A page of a listing of events: ``limit`` and ``offset``, or ``limit`` and
    ``after=SEQ``, a keyset cursor (the events that come after event SEQ)."""
    page = parse_page(params, ("after",), max_limit=max_limit)
    if _single(params, "after") is None:
        return page, None
    if any(k == "offset" for k, _ in params):
        raise _bad("after", "give after or offset, not both")
    return page, _integer(params, "after", 0, 2**62)


def parse_fields(
    spec: ResourceSpec, text: str | None, extra: Iterable[str] = ()
) -> tuple[str, ...] | None:
    """The top-level fields a response keeps (``fields=title,author``)."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    known = {"id", *spec.fields, *extra}
    for name in names:
        if name not in known:
            raise _bad("fields", f"{name!r} is not a field; fields are {', '.join(sorted(known))}")
    return names


def parse_query(
    spec: ResourceSpec,
    params: Sequence[tuple[str, str]],
    extra_fields: Iterable[str] = (),
    *,
    max_limit: int = MAX_LIMIT,
    limits: Limits = _LIMITS,
) -> tuple[Query, ReadTimes]:
    """The query and read times a ``GET /v{n}/{name}`` query string asks for.

    A query past one of ``limits`` (filters, sort keys, fields, values of one
    ``in``) is a 400 naming the limit: its cost is bounded before it runs.
    """
    if not params:
        query = Query(limit=min(DEFAULT_LIMIT, max_limit), max_bytes=limits.answer_bytes)
        return query, ReadTimes()
    _check_complexity(params, limits)
    filters: list[Filter] = []
    lists: dict[tuple[str, str], list[object]] = {}
    for name, value in params:
        if name in QUERY_PARAMETERS:
            continue
        field_name, sep, op = name.partition("__")
        op = op if sep else "equal"
        field = _filterable(spec, name, field_name, op)
        if op in _LIST_OPERATORS:
            parts = _list_values(name, value)
            items = lists.setdefault((field_name, op), [])
            items.extend(_value(field, name, part) for part in parts)
            if not parts:
                raise _bad(name, "expected comma-separated values")
            continue
        if op == "null":
            parsed: object = _boolean(name, value)
        else:
            parsed = _value(field, name, value)
        if field_name == "id" and isinstance(parsed, int) and not isinstance(parsed, bool):
            filters.append(Filter("id", op, str(parsed), "text"))  # an Integer id is text
        else:
            filters.append(Filter(field_name, op, parsed, field.kind))
    for (field_name, op), items in lists.items():
        kind = spec.field_for(field_name).kind
        if field_name == "id" and kind == "integer":
            items, kind = [str(i) for i in items], "text"
        filters.append(Filter(field_name, op, list(dict.fromkeys(items)), kind))
    sort = _sort(spec, _single(params, "sort"))
    after = _single(params, "after")
    if after is not None:
        # A keyset cursor: the documents after this id, in id order.
        if any(key.field != "id" or key.descending for key in sort):
            raise _bad("after", "pages by id: give no sort, or sort=id")
        if _single(params, "offset") is not None:
            raise _bad("after", "give after or offset, not both")
        filters.append(Filter("id", "gt", after, spec.field_for("id").kind))
    query = Query(
        filters=tuple(filters),
        sort=sort,
        limit=_integer(params, "limit", min(DEFAULT_LIMIT, max_limit), max_limit),
        offset=_integer(params, "offset", 0, 2**62),
        fields=parse_fields(spec, _single(params, "fields"), extra_fields),
        max_bytes=limits.answer_bytes,
    )
    return query, _read_times(params)


def _list_values(param: str, text: str) -> list[str]:
    """The values of one ``in``/``notin`` parameter: comma-separated, CSV quoting."""
    if not text:
        return []
    if '"' not in text:
        return [p for p in text.split(",") if p != ""]
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        raise _bad(param, 'unbalanced quotes; quote a value with commas as "a,b"') from None
    return [p for row in rows for p in row if p != ""]


def _check_complexity(params: Sequence[tuple[str, str]], limits: Limits) -> None:
    """400 for a query past one of ``limits``, before anything is parsed."""
    filters = [(k, v) for k, v in params if k not in QUERY_PARAMETERS]
    if len(filters) > limits.query_filters:
        raise _limit(filters[0][0], f"at most {limits.query_filters} filters", "query_filters")
    for name, limit, what in (
        ("sort", limits.query_sort_keys, "query_sort_keys"),
        ("fields", limits.query_fields, "query_fields"),
    ):
        for k, v in params:
            if k == name and len([p for p in v.split(",") if p.strip()]) > limit:
                raise _limit(name, f"at most {limit} {name} keys", what)
    values: dict[str, int] = {}
    for k, v in filters:
        if k.partition("__")[2] in _LIST_OPERATORS:
            values[k] = values.get(k, 0) + v.count(",") + 1
            if values[k] > limits.query_in_values:
                raise _limit(k, f"at most {limits.query_in_values} values", "query_in_values")


def _limit(param: str, message: str, limit: str) -> InvalidRequest:
    return _bad(param, f"{message} ({limit}, a limit of this server)")


def _filterable(spec: ResourceSpec, param: str, field_name: str, op: str) -> Field:
    try:
        field = spec.field_for(field_name)
    except InvalidRequest:
        known = ", ".join(sorted(QUERY_PARAMETERS | {"id", *spec.fields}))
        raise _bad(
            param,
            f"unknown parameter; {spec.name} has no field {field_name!r} "
            f"(parameters are {known}, and field__operator)",
        ) from None
    if op not in field.operators:
        allowed = ", ".join(field.operators) or "none"
        raise _bad(param, f"{field_name!r} does not allow operator {op!r}; it allows: {allowed}")
    return field


def _value(field: Field, param: str, text: str) -> object:
    if "\x00" in text:  # never stored (a 422 on writes), so never searched for
        raise _bad(param, "U+0000 (NUL) is not allowed in text")
    try:
        return field.parse_query_value(text)
    except ValueError as exc:
        raise _bad(param, str(exc)) from None


def _boolean(param: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _bad(param, "expected true or false")


def _sort(spec: ResourceSpec, text: str | None) -> tuple[SortKey, ...]:
    if text is None:
        return ()
    keys: list[SortKey] = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        descending = raw.startswith("-")
        name = raw.lstrip("-+")
        try:
            field = spec.field_for(name)
        except InvalidRequest:
            raise _bad("sort", f"{spec.name} has no field {name!r}") from None
        if not field.sortable:
            sortable = ", ".join(_sortable(spec)) or "none"
            raise _bad("sort", f"{name!r} is not sortable; sortable fields: {sortable}")
        keys.append(SortKey(name, descending, field.kind))
    return tuple(keys)


def _sortable(spec: ResourceSpec) -> list[str]:
    names = ["id", *(n for n, f in spec.fields.items() if f.sortable and n != "id")]
    return names
