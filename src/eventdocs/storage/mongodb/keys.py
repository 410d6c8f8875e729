"""Query keys: how the MongoDB store reproduces :mod:`eventdocs.query` exactly.

MongoDB's own comparison rules differ from the reference semantics in many
places (``1`` equals ``[1]`` and ``1.0``, arrays match by element, embedded
documents compare by field order, sort order of mixed types, regex case
folding is not ``str.lower``). So every master and history row carries, next to
its data, three maps from each field path reachable through objects to a
string:

* ``_k``: an order-preserving key of the value, prefixed by a class character
  (``1`` bool, ``2`` object, ``3`` number, ``4`` array, ``5`` string) so that
  equal Python values get equal keys and comparable values compare as in
  Python;
* ``_d``: the key of the value coerced as the ``decimal`` kind does;
* ``_l``: ``str.lower()`` of string values, for the ``i*`` operators.

A missing or null value has no key. Filters then only compare strings, test
existence and match anchored regexes, which every MongoDB-compatible server
does identically, and indexes on ``_k.<path>`` serve them.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from eventdocs.query import Filter, Kind, Query, SortKey, decimal_sort_key

__all__ = ["compile_filter", "compile_sort", "key_of", "keys_of", "path_field"]

_MAX_DEPTH = 64


def _exact(value: int | float | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _element(value: Any, depth: int = 0) -> str:
    """A nested value's key: inside containers ``True == 1`` as in Python."""
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply to index")
    if value is None:
        return "0"
    if isinstance(value, bool | int | float | Decimal):
        return "3" + (
            decimal_sort_key(_exact(int(value) if isinstance(value, bool) else value)) or "n"
        )
    if isinstance(value, str):
        return "5" + value
    if isinstance(value, list | tuple):
        return "4" + _sequence(value, depth + 1)
    if isinstance(value, dict):
        return "2" + _digest(value, depth + 1)
    raise TypeError(f"cannot index {type(value).__name__}")


def _sequence(items: Any, depth: int) -> str:
    # Each element ends with NUL (NUL inside escaped as NUL 0xFF), so a shorter
    # list or string sorts first, as Python compares sequences.
    return "".join(_element(v, depth).replace("\x00", "\x00\xff") + "\x00" for v in items)


def _digest(obj: dict[str, Any], depth: int) -> str:
    """Objects only need equality (Python cannot order them): a hash of sorted items."""
    flat = [part for k in sorted(obj) for part in (k, obj[k])]
    return hashlib.sha1(_sequence(flat, depth).encode("utf-8", "surrogatepass")).hexdigest()


def key_of(value: Any) -> str | None:
    """The ``_k`` key of a top-level value (``None`` for missing, null or NaN)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "11" if value else "10"
    if isinstance(value, int | float | Decimal):
        number = decimal_sort_key(_exact(value))
        return None if number is None else "3" + number
    if isinstance(value, str):
        return "5" + value
    if isinstance(value, list | tuple):
        return "4" + _sequence(value, 1)
    if isinstance(value, dict):
        return "2" + _digest(value, 1)
    return None


def _coerced(value: Any) -> Any:
    """As :func:`eventdocs.query` coerces for the ``decimal`` kind."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def decimal_key_of(value: Any) -> str | None:
    """The ``_d`` key: decimals first (``3…``), then booleans (``6…``)."""
    value = _coerced(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "61" if value else "60"
    if value.is_nan():
        return "3n"  # present, equal to nothing an argument can give
    return "3" + (decimal_sort_key(value) or "n")


def path_field(path: str) -> str:
    """The key name of a dotted query path: ``meta.tag`` -> ``/meta/tag``."""
    parts = path.split(".")
    return "/" + "/".join(
        p.replace("%", "%25").replace("/", "%2F").replace("$", "%24").replace("\x00", "%00")
        for p in parts
    )


def keys_of(doc_id: str, data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The ``_k``, ``_d`` and ``_l`` maps of a row (``id`` is the document's id)."""
    k: dict[str, str] = {}
    d: dict[str, str] = {}
    low: dict[str, str] = {}

    def put(path: str, value: Any) -> None:
        name = path_field(path)
        key = key_of(value)
        if key is not None:
            k[name] = key
        dkey = decimal_key_of(value)
        if dkey is not None:
            d[name] = dkey
        if isinstance(value, str):
            low[name] = value.lower()

    def walk(obj: dict[str, Any], prefix: str, depth: int) -> None:
        for name, value in obj.items():
            if "." in name or depth > _MAX_DEPTH:
                continue  # a query path splits on dots: such a key cannot be named
            path = prefix + name
            if path != "id":
                put(path, value)
            if isinstance(value, dict):
                walk(value, path + ".", depth + 1)

    walk(data, "", 0)
    put("id", doc_id)
    return {"_k": k, "_d": d, "_l": low}


# -- filters and sorts -------------------------------------------------------------

_NOTHING: dict[str, Any] = {"_id": {"$in": []}}


def _escape(text: str) -> str:
    """A regex matching ``text`` literally, in PCRE and in Java's dialect."""
    out = []
    for ch in text:
        if ch == "\x00":
            out.append("\\x00")
        elif ch.isascii() and not ch.isalnum():
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _range(op: str, key: str) -> dict[str, Any]:
    """Keys of the same class as ``key`` that compare with it as ``op`` says."""
    low, high = key[0], chr(ord(key[0]) + 1)
    if op in ("gt", "gte"):
        return {f"${op}": key, "$lt": high}
    return {f"${op}": key, "$gte": low}


def compile_filter(f: Filter) -> dict[str, Any]:
    """A MongoDB filter true exactly where :func:`eventdocs.query.matches` passes ``f``."""
    name = path_field(f.field)
    decimal = f.kind == "decimal"
    field = ("_d." if decimal else "_k.") + name
    lower = "_l." + name
    key = decimal_key_of if decimal else key_of
    op, arg = f.op, f.value
    if op == "null":
        return {field: {"$exists": not arg}}
    if op in ("in", "notin"):
        keys = [k for k in map(key, arg) if k is not None and k != "3n"]
        return {field: {"$in" if op == "in" else "$nin": keys}}
    if decimal:
        arg = _coerced(arg)  # never text afterwards: the text operators match nothing
        if op == "inot":
            return {field: {"$exists": False}}
    if op in ("equal", "not", "gt", "gte", "lt", "lte"):
        k = key(arg)
        if k is None or k == "3n":
            return {} if op == "not" else _NOTHING
        if op == "equal":
            return {field: k}
        if op == "not":
            return {field: {"$ne": k}}
        return {field: _range(op, k)}
    if op == "inot":
        if not isinstance(arg, str):
            return {"$or": [{field: {"$exists": False}}, {lower: {"$exists": True}}]}
        return {lower: {"$ne": arg.lower()}}
    if not isinstance(arg, str) or decimal:
        return _NOTHING
    if op == "iequal":
        return {lower: arg.lower()}
    if op.startswith("i"):
        target, head, text, op = lower, "^", arg.lower(), op[1:]
    else:
        target, head, text = field, "^5", arg
    if op == "prefix":
        pattern = head + _escape(text)
    elif op == "suffix":
        pattern = head + r"[\s\S]*" + _escape(text) + r"\z"
    elif op == "contains":
        pattern = head + r"[\s\S]*" + _escape(text)
    else:
        raise ValueError(f"unknown operator {f.op!r}")
    return {target: {"$regex": pattern}}


def compile_query(query: Query) -> dict[str, Any]:
    """The filter of every condition of ``query`` (AND)."""
    parts = [compile_filter(f) for f in query.filters]
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def compile_sort(keys: tuple[SortKey, ...], id_field: str) -> list[tuple[str, int]]:
    """Sort keys: missing values first ascending (last descending), then id."""
    out: list[tuple[str, int]] = []
    for key in keys:
        kind: Kind = key.kind
        prefix = "_d." if kind == "decimal" else "_k."
        out.append((prefix + path_field(key.field), -1 if key.descending else 1))
    out.append((id_field, 1))
    return out
