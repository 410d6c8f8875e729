"""Query compilation: section 4 queries to SQL over json_extract/json_type.

Compiled queries reproduce :func:`eventdocs.query.matches` and
:func:`~eventdocs.query.sort_documents` exactly: type guards keep ``1`` from
equalling ``true`` or ``"1"``, ``i*`` operators go through Python's
``str.lower`` and ``decimal`` fields through an order-preserving text key.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from eventdocs.errors import (
    DeclarationError,
)
from eventdocs.query import Filter, Query, SortKey, decimal_sort_key
from eventdocs.storage.sqlite.schema import _DOC, _NAME, _json


def _decimal_key(d: Decimal) -> str:
    return decimal_sort_key(d) or "n"


def _decimal_arg(value: Any) -> str | None:
    """The key of a value coerced as :func:`eventdocs.query` does for ``decimal``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "b1" if value else "b0"
    try:
        return _decimal_key(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _sql_decimal(value: Any, json_type: str | None) -> str | None:
    if json_type in ("true", "false"):
        return "b1" if json_type == "true" else "b0"
    if json_type in ("object", "array"):
        return None
    return _decimal_arg(value)


def _sql_lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _operand(field: str) -> tuple[str, str]:
    """SQL for the field's value and its JSON type (the literal must match the index)."""
    if field == "id":
        return "id", "'text'"
    parts = field.split(".")
    if any('"' in p for p in parts):
        raise DeclarationError(f"field {field!r} cannot be queried")
    path = "$" + "".join(f".{p}" if _NAME.fullmatch(p) else f'."{p}"' for p in parts)
    path = "'" + path.replace("'", "''") + "'"
    return f"json_extract(doc, {path})", f"json_type(doc, {path})"


def _class(arg: Any) -> tuple[str, Any] | None:
    """The JSON types a Python argument is comparable with, and its bound value."""
    if isinstance(arg, bool):
        return "IN ('true', 'false')", int(arg)
    if isinstance(arg, Decimal):
        integral = arg.is_finite() and arg == arg.to_integral_value()
        arg = int(arg) if integral else float(arg)
    if isinstance(arg, int | float):
        return None if arg != arg else ("IN ('integer', 'real')", arg)  # NaN equals nothing
    if isinstance(arg, str):
        return "= 'text'", arg
    if isinstance(arg, dict | list):
        return ("= 'object'" if isinstance(arg, dict) else "= 'array'"), _json(arg)
    return None


_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _in(v: str, t: str, args: Sequence[Any], params: list[Any]) -> str:
    groups: dict[str, list[Any]] = {}
    for arg in args:
        c = _class(arg)
        if c is not None:
            groups.setdefault(c[0], []).append(c[1])
    terms = []
    for guard, values in groups.items():
        params.extend(values)
        terms.append(f"({t} {guard} AND {v} IN ({', '.join('?' * len(values))}))")
    return "(" + " OR ".join(terms) + ")" if terms else "0"


def _text_op(op: str, x: str, t: str, arg: str, params: list[Any]) -> str:
    if op == "equal":
        params.append(arg)
        return f"({t} = 'text' AND {x} = ?)"
    if not arg:
        return f"({t} = 'text')"
    if op == "prefix":
        params.extend((len(arg), arg))
        return f"({t} = 'text' AND substr({x}, 1, ?) = ?)"
    if op == "suffix":
        params.extend((-len(arg), arg))
        return f"({t} = 'text' AND substr({x}, ?) = ?)"
    params.append(arg)
    return f"({t} = 'text' AND instr({x}, ?) > 0)"


def _filter(f: Filter, params: list[Any]) -> str:
    """SQL true exactly where :func:`eventdocs.query.matches` passes ``f``."""
    v, t = _operand(f.field)
    op, arg = f.op, f.value
    if f.kind == "decimal":
        return _decimal_filter(f"eventdocs_decimal({v}, {t})", op, arg, params)
    if op == "null":
        return f"({v} IS NULL)" if arg else f"({v} IS NOT NULL)"
    if op in ("in", "notin"):
        cond = _in(v, t, arg, params)
        return cond if op == "in" else f"({v} IS NULL OR NOT {cond})"
    if op == "inot":
        if not isinstance(arg, str):
            return f"({v} IS NULL OR {t} = 'text')"
        params.append(arg.lower())
        return f"({v} IS NULL OR {t} != 'text' OR eventdocs_lower({v}) != ?)"
    if op in ("equal", "not") or op in _CMP:
        c = _class(arg)
        if c is None or (op in _CMP and c[0] in ("= 'object'", "= 'array'")):
            return "1" if op == "not" else "0"
        params.append(c[1])
        cond = f"({t} {c[0]} AND {v} {_CMP.get(op, '=')} ?)"
        return f"({v} IS NULL OR NOT {cond})" if op == "not" else cond
    if op in ("iequal", "prefix", "iprefix", "suffix", "isuffix", "contains", "icontains"):
        if not isinstance(arg, str):
            return "0"
        if op.startswith("i"):
            return _text_op(op[1:], f"eventdocs_lower({v})", t, arg.lower(), params)
        if op == "prefix" and arg:  # a range lets an index on the field narrow the scan
            last = ord(arg[-1]) + 1
            if last > 0x10FFFF or 0xD800 <= last < 0xE000:
                params.append(arg)
                return f"({v} >= ? AND {_text_op(op, v, t, arg, params)})"
            params.extend((arg, arg[:-1] + chr(last)))
            return f"({v} >= ? AND {v} < ? AND {_text_op(op, v, t, arg, params)})"
        return _text_op(op, v, t, arg, params)
    raise ValueError(f"unknown operator {op!r}")


def _decimal_filter(k: str, op: str, arg: Any, params: list[Any]) -> str:
    if op == "null":
        return f"({k} IS NULL)" if arg else f"({k} IS NOT NULL)"
    if op in ("in", "notin"):
        keys = [key for key in map(_decimal_arg, arg) if key not in (None, "n")]
        params.extend(keys)
        cond = f"{k} IN ({', '.join('?' * len(keys))})" if keys else "0"
        return cond if op == "in" else f"({k} IS NULL OR NOT {cond})"
    if op == "inot":
        return f"({k} IS NULL)"  # a coerced decimal is never text
    key = _decimal_arg(arg)
    if key is None or key == "n" or (op not in _CMP and op not in ("equal", "not")):
        return "1" if op == "not" else "0"
    params.append(key)
    if op == "equal":
        return f"({k} = ?)"
    if op == "not":
        return f"({k} IS NULL OR {k} != ?)"
    low, high = ("b", "c") if key.startswith("b") else ("0", "5")  # compare within a type
    return f"({k} {_CMP[op]} ? AND {k} >= '{low}' AND {k} < '{high}')"


def _order(keys: Sequence[SortKey]) -> str:
    """ORDER BY: Python's type order (None, bool, dict, number, list, str), then id."""
    terms = []
    for key in keys:
        v, t = _operand(key.field)
        way = " DESC" if key.descending else ""
        if key.kind == "decimal":
            terms.append(f"eventdocs_decimal({v}, {t}){way}")
        elif key.field == "id":
            terms.append(f"id{way}")
        else:
            rank = (
                f"CASE {t} WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'object' THEN 2"
                " WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'array' THEN 4"
                " WHEN 'text' THEN 5 ELSE 0 END"
            )
            terms += [f"{rank}{way}", f"{v}{way}"]
    return ", ".join([*terms, "id"])


def _compile(source: str | Sequence[str], query: Query, params: list[Any]) -> tuple[str, str]:
    """The COUNT and the page statements of ``query`` over ``source`` (``FROM … WHERE …``),
    or over the union of several such sources (disjoint), each filtered on its own so
    each can use its indexes."""
    sources = [source] if isinstance(source, str) else list(source)
    bodies = [" AND ".join([s, *(_filter(f, params) for f in query.filters)]) for s in sources]
    if len(bodies) == 1:
        (body,) = bodies
        page = f"SELECT {_DOC} {body} ORDER BY {_order(query.sort)} LIMIT ? OFFSET ?"
        return f"SELECT count(*) {body}", page
    union = " UNION ALL ".join(f"SELECT {_DOC} {body}" for body in bodies)
    page = f"SELECT {_DOC} FROM ({union}) ORDER BY {_order(query.sort)} LIMIT ? OFFSET ?"
    count = " + ".join(f"(SELECT count(*) {body})" for body in bodies)
    return f"SELECT {count}", page
