"""The scalar field types: text, numbers, booleans, dates, times, UUIDs, enumerations.

Each says its JSON Schema type, the query operators and :data:`~eventdocs.query.Kind`
it compares as, how a query-string value parses, and its canonical stored form
(times are UTC text with six fraction digits, decimals plain strings, UUIDs
lowercase), so stored text compares like the values it stands for.
"""

from __future__ import annotations

import decimal
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Final

from eventdocs import times
from eventdocs.errors import ErrorDetail, InvalidRequest
from eventdocs.fields.base import (
    _ALL_OPS,
    _BOOLEAN_OPS,
    _EQUALITY_OPS,
    _ORDERED_OPS,
    Field,
    _bound_decimal,
    _bound_int,
    _bound_number,
    _fail,
    _ordered,
    _put,
)
from eventdocs.fields.formats import _NUMBER, _UUID, _is_date
from eventdocs.query import Kind

_INTEGER = re.compile(r"[+-]?\d+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL_PATTERN: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$"
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


def _json_number(value: decimal.Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _canonical_decimal(value: Any) -> str:
    number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


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
