"""Declarative views: group a resource's documents and aggregate them, without code.

Declared in the JSON declarations file, or in Python with the same shape::

    {"views": [{"name": "posts_per_author", "source": "post",
                "group_by": ["author"], "where": {"published": true},
                "aggregates": {"posts": {"count": "*"}, "latest": {"max": "posted"}}}]}

    views = [declare_view(name="posts_per_author", source="post", group_by=["author"],
                          aggregates={"posts": {"count": "*"}})]

A :class:`DeclaredView` is an ordinary :class:`~eventdocs.projections.views.View`
(``keys``/``apply``), so the projector keeps it current change by change, and
rebuild and verify treat it like any other. Each row holds the ``group_by``
values, the aggregates, and under ``_state`` what the next change needs to
update them exactly: the group's document count, exact sums as fractions
(``"7/2"``: float sums by deltas would drift from a fresh computation), and for
``min``/``max`` how many documents hold each value, so removing the current
minimum finds the next one without reading the group again. A group whose
count falls to zero has no row.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn

import msgspec

from eventdocs.errors import DeclarationError, ErrorDetail
from eventdocs.fields import UNSET, Decimal, Field, Float, Integer, Map, Structure
from eventdocs.fields import Sequence as SequenceField
from eventdocs.projections.views import Change, Rows, View
from eventdocs.query import Filter, field_value, matches

if TYPE_CHECKING:
    from eventdocs.resources import ResourceSpec

__all__ = [
    "FUNCTIONS",
    "DeclaredView",
    "bind_views",
    "declare_view",
    "parse_views",
    "public_row",
]

FUNCTIONS: Final = ("count", "sum", "min", "max", "avg")
STATE: Final = "_state"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ENTRY_KEYS: Final = frozenset({"name", "source", "group_by", "where", "aggregates", "description"})
_RANGE_OPS: Final = ("gt", "gte", "lt", "lte")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _fail(path: str, message: str) -> NoReturn:
    raise DeclarationError(f"{path}: {message}", [ErrorDetail(path, message)])


def public_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row without what only the projector reads (keys starting with ``_``)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


class Aggregate(msgspec.Struct, frozen=True):
    """``name`` is ``function`` of source ``field`` (``"*"``: ``count`` of documents)."""

    name: str
    function: str
    field: str


class DeclaredView(View, abstract=True):
    """A view declared by data: see the module docstring. Build with :func:`declare_view`."""

    source: ClassVar[str]

    def __init__(
        self,
        group_by: Sequence[str],
        where: Mapping[str, Any],
        aggregates: Sequence[Aggregate],
        description: str | None = None,
        where_path: str = "where",
    ) -> None:
        self.group_by = tuple(group_by)
        self.where = dict(where)
        self.aggregates = tuple(aggregates)
        self.description = description
        self._where_path = where_path
        self._filters: tuple[Filter, ...] = ()
        self._kinds: dict[str, str] = {}
        self.fields: Mapping[str, Field] = {}  # the rows' fields, known once bound
        self.bound = False

    # -- binding to the source's declaration -----------------------------------

    def bind(self, spec: ResourceSpec) -> None:
        """Check the declaration against its source's fields and derive the row fields.

        Raises:
            DeclarationError: naming the part of the declaration that is wrong.
        """
        where = f"views.{self.name}"
        fields: dict[str, Field] = {}
        for name in self.group_by:
            f = _source_field(spec, name, f"{where}.group_by")
            if isinstance(f, Structure | Map | SequenceField):
                _fail(f"{where}.group_by", f"{name!r} is not a scalar field")
            ops = ("equal", *(op for op in f.operators if op != "equal"))
            fields[name.replace(".", "_")] = _row_field(f, ops)
        kinds: dict[str, str] = {}
        for agg in self.aggregates:
            path = f"{where}.aggregates.{agg.name}"
            if agg.name in fields:
                _fail(path, f"{agg.name!r} is also a group_by field")
            if agg.field == "*":
                if agg.function != "count":
                    _fail(path, f"{agg.function} needs a field, not '*'")
                fields[agg.name] = Integer(operators=_RANGE_OPS, sortable=True)
                continue
            f = _source_field(spec, agg.field, path)
            kinds[agg.name] = f.kind
            if agg.function == "count":
                fields[agg.name] = Integer(operators=_RANGE_OPS, sortable=True)
            elif agg.function in ("sum", "avg"):
                if f.kind not in ("integer", "float", "decimal"):
                    _fail(path, f"{agg.function} needs a number field; {agg.field!r} is not one")
                if f.kind == "decimal":
                    fields[agg.name] = Decimal(operators=_RANGE_OPS, sortable=True)
                elif agg.function == "sum" and f.kind == "integer":
                    fields[agg.name] = Integer(operators=_RANGE_OPS, sortable=True)
                else:
                    fields[agg.name] = Float(operators=_RANGE_OPS, sortable=True)
            else:
                if f.kind in ("other", "boolean") or not f.can_sort:
                    _fail(path, f"{agg.function} needs an ordered field; {agg.field!r} is not one")
                fields[agg.name] = _row_field(f, _RANGE_OPS)
        self._filters = tuple(self._where_filters(spec))
        self._kinds = kinds
        self.fields = fields
        self.bound = True

    def _where_filters(self, spec: ResourceSpec) -> Iterable[Filter]:
        for key, value in self.where.items():
            path = f"views.{self.name}.{self._where_path}.{key}"
            name, sep, op = key.partition("__")
            op = op if sep else "equal"
            f = _source_field(spec, name, path)
            if op not in f.allowed_operators:
                allowed = ", ".join(f.allowed_operators) or "none"
                _fail(path, f"operator {op!r} does not apply to {name!r} (allowed: {allowed})")
            if op == "null":
                if not isinstance(value, bool):
                    _fail(path, "expected true or false")
                yield Filter(name, op, value, f.kind)
                continue
            if op in ("in", "notin"):
                if not isinstance(value, list):
                    _fail(path, "expected a list of values")
                yield Filter(name, op, [_where_value(f, v, path) for v in value], f.kind)
                continue
            yield Filter(name, op, _where_value(f, value, path), f.kind)

    # -- the View protocol -------------------------------------------------------

    def _group(self, doc: dict[str, Any] | None, doc_id: str) -> str | None:
        if doc is None or not self.bound or not matches(doc_id, doc, self._filters):
            return None
        return row_key([field_value(doc, name) for name in self.group_by])

    def keys(self, change: Change) -> list[str]:
        found = {self._group(change.before, change.id), self._group(change.after, change.id)}
        return sorted(k for k in found if k is not None)

    def apply(self, rows: Rows, change: Change) -> None:
        for doc, delta in ((change.before, -1), (change.after, 1)):
            key = self._group(doc, change.id)
            if key is None or doc is None:
                continue
            state = _state(rows.get(key))
            self._fold(state, doc, delta)
            if state["n"] <= 0:
                rows[key] = None
            else:
                rows[key] = self._row(doc, state)

    def _fold(self, state: dict[str, Any], doc: dict[str, Any], delta: int) -> None:
        state["n"] += delta
        for agg in self.aggregates:
            if agg.field == "*":
                continue
            value = field_value(doc, agg.field)
            if value is None:
                continue
            one = state.setdefault(agg.name, {"c": 0})
            if agg.function in ("sum", "avg"):
                number = _fraction(value)
                if number is None:
                    continue
                total = Fraction(one.get("s", "0")) + delta * number
                one["s"] = str(total)
            elif agg.function in ("min", "max"):
                counts = one.setdefault("v", {})
                key = _encode(value).decode()
                counts[key] = counts.get(key, 0) + delta
                if counts[key] <= 0:
                    del counts[key]
            one["c"] += delta
            if one["c"] <= 0:  # as if the group never held a value: equal to a rebuild's
                del state[agg.name]

    def _row(self, doc: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            name.replace(".", "_"): field_value(doc, name) for name in self.group_by
        }
        for agg in self.aggregates:
            one = state.get(agg.name, {"c": 0})
            row[agg.name] = self._value(agg, one, state["n"])
        row[STATE] = state
        return row

    def _value(self, agg: Aggregate, one: dict[str, Any], n: int) -> Any:
        if agg.function == "count":
            return n if agg.field == "*" else one["c"]
        if one["c"] <= 0:
            return None
        kind = self._kinds.get(agg.name)
        if agg.function in ("sum", "avg"):
            total = Fraction(one.get("s", "0"))
            value = total if agg.function == "sum" else total / one["c"]
            if kind == "decimal":
                return _decimal_text(value)
            if kind == "integer" and agg.function == "sum":
                return int(value)
            return float(value)
        values = [_decode(k) for k in one.get("v", {})]
        if not values:
            return None
        order = _decimal_order if kind == "decimal" else _plain_order
        return (min if agg.function == "min" else max)(values, key=order)

    def rows_of(self, docs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """The rows of this view over ``docs`` (``(id, data)`` pairs), computed afresh."""
        rows: Rows = {}
        for doc_id, data in docs:
            self.apply(rows, Change(self.source, doc_id, None, data))
        return {k: v for k, v in rows.items() if v is not None}


def row_key(values: Sequence[Any]) -> str:
    """The stored key of a group: its values as a JSON array (never ambiguous)."""
    return _encode(list(values)).decode()


def _state(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"n": 0}
    state: dict[str, Any] = msgspec.json.decode(_encode(row.get(STATE, {"n": 0})))
    return state  # a deep copy: the row read from the store stays as it was


def _fraction(value: Any) -> Fraction | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(value)
    if isinstance(value, str):
        try:
            return Fraction(decimal.Decimal(value))
        except (decimal.InvalidOperation, ValueError):
            return None
    return None


def _decimal_text(value: Fraction) -> str:
    with decimal.localcontext() as context:
        context.prec = 60
        number = decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)
    number = number.normalize()
    return format(number, "f") if number else "0"


def _decimal_order(value: Any) -> decimal.Decimal:
    return decimal.Decimal(str(value))


def _plain_order(value: Any) -> Any:
    return value


def _source_field(spec: ResourceSpec, name: str, path: str) -> Field:
    if name == "id":
        _fail(path, "'id' cannot be grouped or aggregated")
    try:
        return spec.field_for(name)
    except Exception:
        known = ", ".join(n for n in spec.fields if n != "id")
        _fail(path, f"{spec.name} has no field {name!r} (fields: {known})")


def _row_field(f: Field, operators: Iterable[str]) -> Field:
    ops = tuple(op for op in operators if op in f.allowed_operators)
    return f.replace(
        required=False,
        nonnull=False,
        default=UNSET,
        readonly=False,
        operators=ops,
        sortable=f.can_sort,
    )


def _where_value(f: Field, value: Any, path: str) -> Any:
    if isinstance(value, str) and f.kind not in ("text", "other"):
        try:
            return f.parse_query_value(value)
        except ValueError as exc:
            _fail(path, str(exc))
    if isinstance(value, dict | list):
        _fail(path, "expected a scalar value")
    return value


# -- declarations ------------------------------------------------------------------


def declare_view(
    *,
    name: str,
    source: str,
    group_by: Sequence[str] = (),
    where: Mapping[str, Any] | None = None,
    aggregates: Mapping[str, Mapping[str, str]] | None = None,
    description: str | None = None,
    where_path: str | None = None,
) -> DeclaredView:
    """A declarative view, from the same shape as a JSON ``views`` entry.

    Raises:
        DeclarationError: naming the wrong part (``views.posts_per_author.aggregates.n``).
    """
    path = where_path or f"views.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        _fail(f"{path}.name", f"{name!r} is not a view name (lowercase letters, digits, _)")
    if not isinstance(source, str) or not _NAME.fullmatch(source):
        _fail(f"{path}.source", f"{source!r} is not a resource name")
    if isinstance(group_by, str) or not isinstance(group_by, Sequence):
        _fail(f"{path}.group_by", "expected a list of field names")
    for field_name in group_by:
        if not isinstance(field_name, str) or not field_name:
            _fail(f"{path}.group_by", f"{field_name!r} is not a field name")
    if len(set(group_by)) != len(group_by):
        _fail(f"{path}.group_by", "a field is named twice")
    if where is not None and not isinstance(where, Mapping):
        _fail(f"{path}.where", 'expected {"field": value, "field__op": value}')
    if aggregates is None or not isinstance(aggregates, Mapping) or not aggregates:
        _fail(f"{path}.aggregates", 'expected {"name": {"count": "*"}, ...}')
    if description is not None and not isinstance(description, str):
        _fail(f"{path}.description", "expected a string")
    parsed: list[Aggregate] = []
    for agg_name, spec in aggregates.items():
        where_agg = f"{path}.aggregates.{agg_name}"
        if not isinstance(agg_name, str) or not _FIELD_NAME.fullmatch(agg_name):
            _fail(where_agg, "an aggregate's name is an identifier not starting with '_'")
        if not isinstance(spec, Mapping) or len(spec) != 1:
            _fail(where_agg, f'expected one of {{"{FUNCTIONS[0]}": "*"}}, {{"sum": "field"}}, ...')
        [(function, field_name)] = spec.items()
        if function not in FUNCTIONS:
            _fail(where_agg, f"unknown function {function!r}; functions are {', '.join(FUNCTIONS)}")
        if not isinstance(field_name, str) or not field_name:
            _fail(where_agg, "expected a field name (or '*' for count)")
        parsed.append(Aggregate(agg_name, function, field_name))
    cls = type(
        f"DeclaredView_{name}",
        (DeclaredView,),
        {"name": name, "sources": (source,), "source": source, "__module__": __name__},
    )
    view: DeclaredView = cls(group_by, where or {}, parsed, description, "where")
    return view


def parse_views(entries: Any, where: str = "views") -> list[DeclaredView]:
    """The declarative views of a JSON file's ``views`` list (not yet bound)."""
    if not isinstance(entries, list):
        _fail(where, "expected a list of view declarations")
    out: list[DeclaredView] = []
    for index, entry in enumerate(entries):
        path = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            _fail(path, "expected an object")
        for key in entry:
            if key not in _ENTRY_KEYS:
                _fail(f"{path}.{key}", f"unknown key; keys are {', '.join(sorted(_ENTRY_KEYS))}")
        out.append(
            declare_view(
                name=entry.get("name"),  # type: ignore[arg-type]  # checked inside
                source=entry.get("source"),  # type: ignore[arg-type]
                group_by=entry.get("group_by", []),
                where=entry.get("where"),
                aggregates=entry.get("aggregates"),
                description=entry.get("description"),
                where_path=path,
            )
        )
    return out


def bind_views(views: Iterable[object], specs: Iterable[ResourceSpec]) -> None:
    """Bind every declarative view to its source's latest declared version.

    Raises:
        DeclarationError: a view's source is not declared, or its fields are wrong;
            two views share a name.
    """
    latest: dict[str, ResourceSpec] = {}
    for spec in specs:
        if spec.name not in latest or spec.version > latest[spec.name].version:
            latest[spec.name] = spec
    seen: set[str] = set()
    for view in views:
        if not isinstance(view, View):
            continue  # the service refuses it; loading a target only reads it
        if view.name in seen:
            _fail(f"views.{view.name}", "two views have this name")
        seen.add(view.name)
        if isinstance(view, DeclaredView):
            source = latest.get(view.source)
            if source is None:
                _fail(f"views.{view.name}.source", f"{view.source!r} is not a declared resource")
            view.bind(source)
