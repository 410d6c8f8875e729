"""The field base class: a value's options, JSON Schema and validation, declared once.

Every field type (:mod:`.scalars`, :mod:`.containers`) is a :class:`Field`
subclass that says its JSON type; this module holds what they share: the
options every field takes, the schema and ``x-`` declaration keywords they
produce, the check-then-normalize pipeline, and the checks of constructor
arguments and field names (which raise :class:`~eventdocs.errors.DeclarationError`).
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any, ClassVar, Final, NoReturn

import fastjsonschema

from eventdocs.errors import DeclarationError, ErrorDetail, ValidationFailed
from eventdocs.fields.formats import _FORMATS, _detail
from eventdocs.query import OPERATORS, Kind


class _Unset:
    """The absence of a default (``None`` is a legitimate default)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

_ALL_OPS: Final = OPERATORS
_ORDERED_OPS: Final = ("equal", "not", "gt", "gte", "lt", "lte", "null", "in", "notin")
_EQUALITY_OPS: Final = ("equal", "not", "null", "in", "notin")
_BOOLEAN_OPS: Final = ("equal", "not", "null")
_CONTAINER_OPS: Final = ("null",)

# "__" separates a field from its operator in query strings, "." walks into
# structures, "_" and "$" prefix what the server adds; so names avoid them.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def check_field_name(name: object, path: str) -> str:
    """``name`` if it can name a field, else :class:`DeclarationError` at ``path``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or "__" in name:
        _fail(
            path,
            f"{name!r} cannot name a field (letters, digits, '_' and '-', starting with"
            " a letter, no '__')",
        )
    return name


def collect_fields(obj: object, path: str) -> dict[str, Field | None]:
    """The fields of a declaration: a mapping, or a class whose attributes are fields.

    A class merges its bases first, so ``class schema(Post.schema)`` extends
    ``Post.schema``. ``None`` entries are kept: they remove an inherited field.
    """
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        items: list[tuple[object, object]] = list(obj.items())
    elif isinstance(obj, type):
        items = [
            (key, value)
            for klass in reversed(obj.__mro__)
            if klass is not object
            for key, value in vars(klass).items()
            if not key.startswith("_")
        ]
    else:
        _fail(path, f"expected a dict of fields or a class, not {type(obj).__name__}")
    out: dict[str, Field | None] = {}
    for key, value in items:
        where = f"{path}.{key}"
        name = check_field_name(key, where)
        if isinstance(value, type) and issubclass(value, Field):
            _fail(where, f"{value.__name__} must be instantiated: {value.__name__}()")
        if value is not None and not isinstance(value, Field):
            _fail(where, f"expected a Field, not {type(value).__name__}")
        out[name] = value
    return out


def _fail(path: str, message: str) -> NoReturn:
    raise DeclarationError(f"{path}: {message}", [ErrorDetail(path, message)])


class Field:
    """A typed value of a document; subclasses say which type.

    Args:
        required: the document must have the field.
        nonnull: ``null`` is not a valid value.
        default: the value given to a missing field on create.
        readonly: may be given on create, never changed by an update.
        sortable: queries may ``sort`` on it; by default every field whose type
            can sort (scalars) may, so this is an opt-out (``sortable=False``).
        operators: the query operators it accepts (see :data:`query.OPERATORS`).
        description: shown in the OpenAPI document.
    """

    kind: ClassVar[Kind] = "other"
    allowed_operators: ClassVar[tuple[str, ...]] = ()
    can_sort: ClassVar[bool] = True

    def __init__(
        self,
        *,
        required: bool = False,
        nonnull: bool = False,
        default: Any = UNSET,
        readonly: bool = False,
        sortable: bool | None = None,
        operators: Iterable[str] | str = (),
        description: str | None = None,
    ) -> None:
        self.required = bool(required)
        self.nonnull = bool(nonnull)
        self.readonly = bool(readonly)
        # None: the default, sortable when the type can sort; only an explicit
        # True asks the stores for an index (a sort without one still works).
        self.sortable_option = None if sortable is None else bool(sortable)
        self.sortable = self.can_sort if sortable is None else bool(sortable)
        self.description = description
        self.default = default
        self.operators = self._check_operators(operators)
        name = type(self).__name__
        if self.sortable_option and not self.can_sort:
            _fail(name, f"{name} fields cannot be sortable")
        if description is not None and not isinstance(description, str):
            _fail(name, "description must be a string")
        if default is not UNSET:
            errors = self.check(default)
            if errors:
                _fail(name, f"default {default!r} is not valid: {errors[0].message}")

    def _check_operators(self, operators: Iterable[str] | str) -> tuple[str, ...]:
        name = type(self).__name__
        if isinstance(operators, str):
            operators = operators.replace(",", " ").split()
        if not isinstance(operators, Iterable) or isinstance(operators, Mapping):
            _fail(name, f"operators must be a list of names, not {operators!r}")
        out: list[str] = []
        for op in operators:
            if not isinstance(op, str) or op not in OPERATORS:
                _fail(name, f"unknown operator {op!r}; operators are {', '.join(OPERATORS)}")
            if op not in self.allowed_operators:
                allowed = ", ".join(self.allowed_operators)
                _fail(name, f"operator {op!r} does not apply to {name} fields (allowed: {allowed})")
            if op not in out:
                out.append(op)
        return tuple(out)

    # -- declaration ---------------------------------------------------------

    def _own_options(self) -> dict[str, Any]:
        """The type-specific constructor arguments."""
        return {}

    def options(self) -> dict[str, Any]:
        """Every constructor argument, so ``type(f)(**f.options())`` equals ``f``."""
        return {
            **self._own_options(),
            "required": self.required,
            "nonnull": self.nonnull,
            "default": self.default,
            "readonly": self.readonly,
            "sortable": self.sortable_option,
            "operators": self.operators,
            "description": self.description,
        }

    def replace(self, **changes: Any) -> Field:
        """A copy of this field with some constructor arguments changed."""
        return type(self)(**{**self.options(), **changes})

    def __repr__(self) -> str:
        shown = [
            f"{k}={v!r}"
            for k, v in self.options().items()
            if not (v is None or v is False or v is UNSET or v == ())
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Field)
            and type(self) is type(other)
            and (self.to_dict() == other.to_dict())
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, json.dumps(self.to_dict(), sort_keys=True, default=str)))

    # -- schema --------------------------------------------------------------

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _schema(self, declaration: bool) -> dict[str, Any]:
        schema = self._type_schema(declaration)
        if not self.nonnull:
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
            else:
                types = schema["type"]
                schema["type"] = [*types, "null"] if isinstance(types, list) else [types, "null"]
        if self.description is not None:
            schema["description"] = self.description
        if self.default is not UNSET:
            schema["default"] = self.default
        if self.readonly:
            schema["readOnly"] = True
        if declaration:
            if self.required:
                schema["x-required"] = True
            if self.operators:
                schema["x-operators"] = list(self.operators)
            if self.sortable_option is not None:
                schema["x-sortable"] = self.sortable_option
        return schema

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12) fragment of one value of this field."""
        return self._schema(False)

    def to_dict(self) -> dict[str, Any]:
        """The declaration as JSON: :meth:`json_schema` plus the ``x-`` keywords."""
        return self._schema(True)

    @staticmethod
    def from_dict(data: Any, *, required: bool = False, path: str = "field") -> Field:
        """The field a JSON Schema fragment declares (see :mod:`eventdocs.fields`).

        Raises:
            DeclarationError: naming ``path`` (and the keyword) when it cannot be mapped.
        """
        from eventdocs.fields.from_schema import _from_dict  # it imports every field type

        return _from_dict(data, required=required, path=path)

    # -- values --------------------------------------------------------------

    @cached_property
    def _validator(self) -> Callable[[Any], Any]:
        return fastjsonschema.compile(
            self.json_schema(), handlers={}, formats=_FORMATS, use_default=False
        )

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        """Checks JSON Schema cannot express, on a value the schema accepted."""
        return iter(())

    def check(self, value: Any, path: str = "") -> list[ErrorDetail]:
        """The errors of ``value`` (empty when valid); paths extend ``path``."""
        try:
            self._validator(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            return [_detail(exc, path)]
        return list(self._refine(value, path))

    def with_defaults(self, value: Any) -> Any:
        """``value`` with the defaults of missing nested fields filled in."""
        return value

    def normalize(self, value: Any) -> Any:
        """The canonical stored form of a valid ``value``."""
        return value

    def validate(self, value: Any, *, path: str = "") -> Any:
        """The normalized ``value``, or :class:`ValidationFailed` naming each path."""
        value = self.with_defaults(value)
        errors = self.check(value, path)
        if errors:
            raise ValidationFailed(f"{path or 'value'} is not valid", errors)
        return self.normalize(value)

    def parse_query_value(self, text: str) -> Any:
        """A query-string value as this field's type; ``ValueError`` if it does not parse."""
        raise ValueError(f"{type(self).__name__} fields cannot be compared with a value")


# -- constructor argument checks ----------------------------------------------


def _put(schema: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        schema[key] = value


def _bound_int(value: Any, path: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected an integer, not {value!r}")
    if minimum is not None and value < minimum:
        _fail(path, f"must be at least {minimum}")
    return int(value)


def _bound_number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(path, f"expected a finite number, not {value!r}")
    return float(value) if isinstance(value, float) else int(value)


def _bound_decimal(value: Any, path: str) -> decimal.Decimal | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise decimal.InvalidOperation
        number = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        _fail(path, f"expected a decimal number, not {value!r}")
    if not number.is_finite():
        _fail(path, f"expected a finite number, not {value!r}")
    return number


def _ordered(low: Any, high: Any, name: str) -> None:
    if low is not None and high is not None and low > high:
        _fail(name, f"the lower bound {low} is above the upper bound {high}")
