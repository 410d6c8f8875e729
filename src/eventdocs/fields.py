"""Typed fields: what one value of a document may be, and how it is stored.

A field is declared once and answers every question asked about that value:
its JSON Schema (for validation and OpenAPI), its query :data:`~eventdocs.query.Kind`,
how a query-string value parses, and its canonical stored form. Canonical forms
make stored text compare like the values it stands for: times are UTC text
with six fraction digits, decimals are plain strings, UUIDs are lowercase.

Fields are immutable after construction; validators are compiled once per
field and never resolve remote references.

``to_dict``/``from_dict`` speak the JSON declarations file format: a JSON
Schema fragment (nullable as ``type: [..., "null"]``) plus the extension
keywords ``x-required``, ``x-operators`` and ``x-sortable``.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any, ClassVar, Final, NoReturn

import fastjsonschema

from eventdocs import times
from eventdocs.errors import DeclarationError, ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.query import OPERATORS, Kind

__all__ = [
    "UNSET",
    "UUID",
    "Boolean",
    "Date",
    "DateTime",
    "Decimal",
    "Email",
    "Enumeration",
    "Field",
    "Float",
    "Integer",
    "Map",
    "Sequence",
    "Structure",
    "Text",
    "check_field_name",
    "collect_fields",
    "pointer",
]


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
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_INTEGER = re.compile(r"[+-]?\d+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")
_DECIMAL_PATTERN: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$"
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}
_ANNOTATIONS: Final = frozenset(
    {"title", "description", "default", "readOnly", "examples", "$comment", "deprecated",
     "type", "nullable", "x-required", "x-operators", "x-sortable"}
)  # fmt: skip


def pointer(*parts: str | int) -> str:
    """The JSON Pointer (RFC 6901) of ``parts``: ``pointer("tags", 2) == "/tags/2"``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


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


def _json_number(value: decimal.Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _canonical_decimal(value: Any) -> str:
    number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


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
        """The field a JSON Schema fragment declares (see the module docstring).

        Raises:
            DeclarationError: naming ``path`` (and the keyword) when it cannot be mapped.
        """
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


class Text(Field):
    """A string, optionally bounded in length and matched by a (searched) pattern."""

    kind: ClassVar[Kind] = "text"
    allowed_operators = _ALL_OPS

    def __init__(
        self,
        *,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        **options: Any,
    ) -> None:
        self.min_length = _bound_int(min_length, "Text.min_length", minimum=0)
        self.max_length = _bound_int(max_length, "Text.max_length", minimum=0)
        _ordered(self.min_length, self.max_length, "Text")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                _fail("Text.pattern", f"{pattern!r} is not a regular expression: {exc}")
        self.pattern = pattern
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {
            "min_length": self.min_length,
            "max_length": self.max_length,
            "pattern": self.pattern,
        }

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        _put(schema, "minLength", self.min_length)
        _put(schema, "maxLength", self.max_length)
        _put(schema, "pattern", self.pattern)
        return schema

    def parse_query_value(self, text: str) -> Any:
        return text


class Email(Field):
    """An email address (``local@domain.tld``), stored as given."""

    kind: ClassVar[Kind] = "text"
    allowed_operators = _ALL_OPS

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "string", "format": "email"}

    def parse_query_value(self, text: str) -> Any:
        return text  # partial addresses are fine for contains/suffix


class UUID(Field):
    """A hyphenated UUID in any case, stored lowercase."""

    kind: ClassVar[Kind] = "text"
    allowed_operators = _ORDERED_OPS

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}

    def normalize(self, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def parse_query_value(self, text: str) -> Any:
        if not _UUID.fullmatch(text):
            raise ValueError(f"{text!r} is not a UUID")
        return text.lower()


class Enumeration(Field):
    """One of a fixed list of JSON scalars (usually strings)."""

    kind: ClassVar[Kind] = "text"
    allowed_operators = _EQUALITY_OPS

    def __init__(self, values: Iterable[Any], **options: Any) -> None:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            _fail("Enumeration.values", "expected a list of values")
        self.values = tuple(values)
        if not self.values:
            _fail("Enumeration.values", "must not be empty")
        for value in self.values:
            if not isinstance(value, str | int | float | bool) or value is None:
                _fail("Enumeration.values", f"{value!r} is not a JSON string, number or boolean")
        if len({(type(v), v) for v in self.values}) != len(self.values):
            _fail("Enumeration.values", "values must be unique")
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"values": self.values}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"enum": list(self.values)}

    def normalize(self, value: Any) -> Any:
        for known in self.values:  # 1.0 is stored as the declared 1
            if known == value and isinstance(known, bool) == isinstance(value, bool):
                return known
        return value

    def parse_query_value(self, text: str) -> Any:
        for known in self.values:
            shown = json.dumps(known) if not isinstance(known, str) else known
            if text == shown:
                return known
        raise ValueError(f"{text!r} is not one of {', '.join(map(str, self.values))}")


class Integer(Field):
    """A whole number, optionally bounded (inclusive)."""

    kind: ClassVar[Kind] = "integer"
    allowed_operators = _ORDERED_OPS

    def __init__(
        self, *, minimum: int | None = None, maximum: int | None = None, **options: Any
    ) -> None:
        self.minimum = _bound_int(minimum, "Integer.minimum")
        self.maximum = _bound_int(maximum, "Integer.maximum")
        _ordered(self.minimum, self.maximum, "Integer")
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        _put(schema, "minimum", self.minimum)
        _put(schema, "maximum", self.maximum)
        return schema

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        # Stores index integers as 64-bit: a larger one would not compare right.
        if isinstance(value, int | float) and not _INT64_MIN <= value <= _INT64_MAX:
            yield ErrorDetail(path, "must be a 64-bit integer")

    def normalize(self, value: Any) -> Any:
        return int(value) if isinstance(value, float) else value

    def parse_query_value(self, text: str) -> Any:
        if not _INTEGER.fullmatch(text.strip()):
            raise ValueError(f"{text!r} is not an integer")
        value = int(text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{text!r} is not a 64-bit integer")
        return value


class Float(Field):
    """A finite binary floating-point number, optionally bounded (inclusive)."""

    kind: ClassVar[Kind] = "float"
    allowed_operators = _ORDERED_OPS

    def __init__(
        self,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        **options: Any,
    ) -> None:
        self.minimum = _bound_number(minimum, "Float.minimum")
        self.maximum = _bound_number(maximum, "Float.maximum")
        _ordered(self.minimum, self.maximum, "Float")
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        _put(schema, "minimum", self.minimum)
        _put(schema, "maximum", self.maximum)
        return schema

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        if isinstance(value, float) and not math.isfinite(value):
            yield ErrorDetail(path, "must be a finite number")
        elif isinstance(value, int) and not -sys.float_info.max <= value <= sys.float_info.max:
            yield ErrorDetail(path, "is too large for a floating-point number")

    def normalize(self, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def parse_query_value(self, text: str) -> Any:
        if not _NUMBER.fullmatch(text.strip()):
            raise ValueError(f"{text!r} is not a number")
        return float(text)


class Decimal(Field):
    """An exact decimal number: a JSON number or numeric string in, a canonical string stored.

    Canonical means no exponent and no trailing zeros (``"1.5"``, ``"100"``), so
    equal numbers are equal strings; queries compare them as numbers.
    """

    kind: ClassVar[Kind] = "decimal"
    allowed_operators = _ORDERED_OPS

    def __init__(
        self,
        *,
        minimum: decimal.Decimal | int | float | str | None = None,
        maximum: decimal.Decimal | int | float | str | None = None,
        **options: Any,
    ) -> None:
        self.minimum = _bound_decimal(minimum, "Decimal.minimum")
        self.maximum = _bound_decimal(maximum, "Decimal.maximum")
        _ordered(self.minimum, self.maximum, "Decimal")
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": ["number", "string"],
            "format": "decimal",
            "pattern": _DECIMAL_PATTERN,
        }
        # Bounds are checked exactly by _refine; here they document the type.
        if self.minimum is not None:
            schema["minimum"] = _json_number(self.minimum)
        if self.maximum is not None:
            schema["maximum"] = _json_number(self.maximum)
        return schema

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        if value is None:
            return
        number = decimal.Decimal(str(value))
        if not number.is_finite():
            yield ErrorDetail(path, "must be a finite number")
        elif self.minimum is not None and number < self.minimum:
            yield ErrorDetail(path, f"must be bigger than or equal to {self.minimum}")
        elif self.maximum is not None and number > self.maximum:
            yield ErrorDetail(path, f"must be smaller than or equal to {self.maximum}")

    def normalize(self, value: Any) -> Any:
        return None if value is None else _canonical_decimal(value)

    def parse_query_value(self, text: str) -> Any:
        if not _NUMBER.fullmatch(text.strip()):
            raise ValueError(f"{text!r} is not a decimal number")
        return decimal.Decimal(text.strip())


class Boolean(Field):
    """``true`` or ``false``."""

    kind: ClassVar[Kind] = "boolean"
    allowed_operators = _BOOLEAN_OPS

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "boolean"}

    def parse_query_value(self, text: str) -> Any:
        try:
            return _BOOLEANS[text.strip().lower()]
        except KeyError:
            raise ValueError(f"{text!r} is not a boolean (true, false, 1 or 0)") from None


class Date(Field):
    """A calendar date, ``YYYY-MM-DD`` (which sorts as text)."""

    kind: ClassVar[Kind] = "text"
    allowed_operators = _ORDERED_OPS

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "string", "format": "date"}

    def parse_query_value(self, text: str) -> Any:
        text = text.strip()
        if not _is_date(text):
            raise ValueError(f"{text!r} is not a date YYYY-MM-DD")
        return text


class DateTime(Field):
    """An instant: RFC 3339 with an offset in, canonical UTC text stored.

    Stored text is ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so text order is time order.
    """

    kind: ClassVar[Kind] = "time"
    allowed_operators = _ORDERED_OPS

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}

    def normalize(self, value: Any) -> Any:
        return times.format_time(times.parse_time(value)) if isinstance(value, str) else value

    def parse_query_value(self, text: str) -> Any:
        try:
            return times.format_time(times.parse_time(text))
        except InvalidRequest:
            raise ValueError(
                f"{text!r} is not a time (RFC 3339 with an offset, or Unix epoch seconds)"
            ) from None


class Sequence(Field):
    """A JSON array whose items are all ``item``."""

    allowed_operators = _CONTAINER_OPS
    can_sort = False

    def __init__(
        self,
        item: Field,
        *,
        min_length: int | None = None,
        max_length: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(item, Field):
            _fail("Sequence.item", f"expected a Field, not {type(item).__name__}")
        self.item = item
        self.min_length = _bound_int(min_length, "Sequence.min_length", minimum=0)
        self.max_length = _bound_int(max_length, "Sequence.max_length", minimum=0)
        _ordered(self.min_length, self.max_length, "Sequence")
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"item": self.item, "min_length": self.min_length, "max_length": self.max_length}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item._schema(declaration)}
        _put(schema, "minItems", self.min_length)
        _put(schema, "maxItems", self.max_length)
        return schema

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.item._refine(item, f"{path}/{index}")

    def with_defaults(self, value: Any) -> Any:
        return [self.item.with_defaults(v) for v in value] if isinstance(value, list) else value

    def normalize(self, value: Any) -> Any:
        return [self.item.normalize(v) for v in value] if isinstance(value, list) else value


class Structure(Field):
    """A JSON object with known keys, each its own field; other keys are rejected."""

    allowed_operators = _CONTAINER_OPS
    can_sort = False

    def __init__(self, fields: Mapping[str, Field] | type, **options: Any) -> None:
        declared = collect_fields(fields, "Structure.fields")
        self.fields: dict[str, Field] = {k: f for k, f in declared.items() if f is not None}
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"fields": dict(self.fields)}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: f._schema(declaration) for k, f in self.fields.items()},
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        if isinstance(value, dict):
            for key, field in self.fields.items():
                if key in value:
                    yield from field._refine(value[key], path + pointer(key))

    def with_defaults(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        for key, field in self.fields.items():
            if key in out:
                out[key] = field.with_defaults(out[key])
            elif field.default is not UNSET:
                out[key] = copy.deepcopy(field.default)
        return out

    def normalize(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: f.normalize(value[k]) for k, f in self.fields.items() if k in value}


class Map(Field):
    """A JSON object with arbitrary keys whose values are all ``value``."""

    allowed_operators = _CONTAINER_OPS
    can_sort = False

    def __init__(self, value: Field, **options: Any) -> None:
        if not isinstance(value, Field):
            _fail("Map.value", f"expected a Field, not {type(value).__name__}")
        self.value = value
        super().__init__(**options)

    def _own_options(self) -> dict[str, Any]:
        return {"value": self.value}

    def _type_schema(self, declaration: bool) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value._schema(declaration)}

    def _refine(self, value: Any, path: str) -> Iterator[ErrorDetail]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from self.value._refine(item, path + pointer(key))

    def with_defaults(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: self.value.with_defaults(v) for k, v in value.items()}

    def normalize(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: self.value.normalize(v) for k, v in value.items()}


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


# -- JSON Schema to fields -----------------------------------------------------

_KEYWORDS: Final[dict[type[Field], frozenset[str]]] = {
    Text: frozenset({"minLength", "maxLength", "pattern"}),
    Email: frozenset({"format"}),
    UUID: frozenset({"format"}),
    Date: frozenset({"format"}),
    DateTime: frozenset({"format"}),
    Decimal: frozenset({"format", "pattern", "minimum", "maximum"}),
    Enumeration: frozenset({"enum"}),
    Integer: frozenset({"minimum", "maximum"}),
    Float: frozenset({"minimum", "maximum"}),
    Boolean: frozenset(),
    Sequence: frozenset({"items", "minItems", "maxItems"}),
    Structure: frozenset({"properties", "required", "additionalProperties"}),
    Map: frozenset({"additionalProperties"}),
}
_STRING_FORMATS: Final[dict[str, type[Field]]] = {
    "date-time": DateTime,
    "date": Date,
    "email": Email,
    "uuid": UUID,
}
_SIMPLE_TYPES: Final[dict[str, type[Field]]] = {
    "integer": Integer,
    "number": Float,
    "boolean": Boolean,
}


def _from_dict(data: Any, *, required: bool, path: str) -> Field:
    if not isinstance(data, Mapping):
        _fail(path, f"expected a JSON Schema object, not {type(data).__name__}")
    raw_type = data.get("type")
    types = [raw_type] if isinstance(raw_type, str) else raw_type
    if types is not None and (
        not isinstance(types, list) or not all(isinstance(t, str) for t in types)
    ):
        _fail(f"{path}.type", "expected a type name or a list of them")
    enum = data.get("enum")
    nullable = bool(data.get("nullable")) or (types is not None and "null" in types)
    if enum is not None:
        if not isinstance(enum, list):
            _fail(f"{path}.enum", "expected a list")
        nullable = nullable or None in enum
    concrete = sorted({t for t in (types or []) if t != "null"})
    fmt = data.get("format")
    if fmt is not None and not isinstance(fmt, str):
        _fail(f"{path}.format", "expected a format name")

    cls: type[Field]
    own: dict[str, Any] = {}
    if enum is not None:
        cls = Enumeration
        own["values"] = [v for v in enum if v is not None]
    elif fmt == "decimal":
        cls = Decimal
        if not set(concrete) <= {"number", "string"}:
            _fail(f"{path}.type", "a decimal is a number or a string")
        own = {"minimum": data.get("minimum"), "maximum": data.get("maximum")}
    elif concrete == ["string"]:
        if fmt is None:
            cls = Text
            own = {
                "min_length": data.get("minLength"),
                "max_length": data.get("maxLength"),
                "pattern": data.get("pattern"),
            }
        elif fmt in _STRING_FORMATS:
            cls = _STRING_FORMATS[fmt]
        else:
            _fail(f"{path}.format", f"unsupported format {fmt!r}")
    elif len(concrete) == 1 and concrete[0] in _SIMPLE_TYPES:
        cls = _SIMPLE_TYPES[concrete[0]]
        if cls is not Boolean:
            own = {"minimum": data.get("minimum"), "maximum": data.get("maximum")}
    elif concrete == ["array"]:
        cls = Sequence
        if "items" not in data:
            _fail(path, "an array needs 'items'")
        own = {
            "item": _from_dict(data["items"], required=False, path=f"{path}.items"),
            "min_length": data.get("minItems"),
            "max_length": data.get("maxItems"),
        }
    elif concrete == ["object"]:
        extra = data.get("additionalProperties", False)
        if isinstance(extra, Mapping):
            if "properties" in data:
                _fail(path, "an object has either 'properties' or 'additionalProperties'")
            cls = Map
            own["value"] = _from_dict(extra, required=False, path=f"{path}.additionalProperties")
        elif extra is not False and extra is not None:
            _fail(f"{path}.additionalProperties", "expected false or a schema")
        else:
            cls = Structure
            own["fields"] = _object_fields(data, path)
    else:
        _fail(f"{path}.type", f"unsupported type {raw_type!r}")

    for key in data:
        if key not in _ANNOTATIONS and key not in _KEYWORDS[cls] and not key.startswith("x-"):
            _fail(f"{path}.{key}", f"unsupported keyword for {cls.__name__} fields")
    options: dict[str, Any] = {
        "required": required or bool(data.get("x-required", False)),
        "nonnull": not nullable,
        "readonly": bool(data.get("readOnly", False)),
        "sortable": None if data.get("x-sortable") is None else bool(data["x-sortable"]),
        "operators": data.get("x-operators", ()),
        "description": data.get("description"),
    }
    if "default" in data:
        options["default"] = data["default"]
    try:
        return cls(**own, **options)
    except DeclarationError as exc:
        message = exc.errors[0].message if exc.errors else exc.detail
        _fail(path, message)


def _object_fields(data: Mapping[str, Any], path: str) -> dict[str, Field]:
    """The fields of an object schema's ``properties``, honouring its ``required``."""
    properties = data.get("properties", {})
    if not isinstance(properties, Mapping):
        _fail(f"{path}.properties", "expected an object")
    required = data.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        _fail(f"{path}.required", "expected a list of property names")
    for name in required:
        if name not in properties:
            _fail(f"{path}.required", f"{name!r} is not a property")
    return {
        check_field_name(name, f"{path}.properties.{name}"): _from_dict(
            schema, required=name in required, path=f"{path}.properties.{name}"
        )
        for name, schema in properties.items()
    }
