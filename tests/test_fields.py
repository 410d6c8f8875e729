"""Typed fields: schema, validation, normalization, query values, declarations."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from eventdocs.errors import DeclarationError, ErrorDetail, ValidationFailed
from eventdocs.fields import (
    UNSET,
    UUID,
    Boolean,
    Date,
    DateTime,
    Decimal,
    Email,
    Enumeration,
    Field,
    Float,
    Integer,
    Map,
    Sequence,
    Structure,
    Text,
    check_field_name,
    collect_fields,
    pointer,
)

# (field, valid input, normalized, invalid input, message of the invalid one)
CASES: list[tuple[Field, Any, Any, Any, str]] = [
    (Text(min_length=2, max_length=4), "abc", "abc", "a", "must be longer than or equal to 2"),
    (Text(pattern="^[a-z]+$"), "abc", "abc", "ABC", "must match pattern ^[a-z]+$"),
    (Integer(minimum=0, maximum=10), 5.0, 5, 11, "must be smaller than or equal to 10"),
    (Integer(), 3, 3, True, "must be integer or null"),
    (Float(minimum=0.5), 1, 1.0, 0.25, "must be bigger than or equal to 0.5"),
    (Decimal(), "1.500", "1.5", "1,5", "must match pattern"),
    (Decimal(maximum="9.99"), 1e2 / 100, "1", "10.00", "must be smaller than or equal to 9.99"),
    (Boolean(), False, False, "false", "must be boolean or null"),
    (Date(), "2024-02-29", "2024-02-29", "2023-02-29", "must be a date YYYY-MM-DD"),
    (
        DateTime(),
        "2024-01-02T03:04:05+02:00",
        "2024-01-02T01:04:05.000000Z",
        "2024-01-02T03:04:05",
        "must be an RFC 3339 time with an offset",
    ),
    (Enumeration(["draft", "published"]), "draft", "draft", "gone", "must be one of"),
    (
        UUID(),
        "0F8FAD5B-D9CB-469F-A165-70867728950E",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "0f8fad5bd9cb469fa16570867728950e",
        "must be a UUID",
    ),
    (Email(), "ann@example.org", "ann@example.org", "ann@example", "must be an email address"),
    (Sequence(Text(), max_length=2), ["a", None], ["a", None], ["a", "b", "c"], "must contain"),
    (Map(Integer(nonnull=True)), {"a": 1}, {"a": 1}, {"a": None}, "must be integer"),
]


@pytest.mark.parametrize(("field", "good", "normalized", "bad", "message"), CASES)
def test_validation_and_normalization(
    field: Field, good: Any, normalized: Any, bad: Any, message: str
) -> None:
    assert field.check(good) == []
    assert field.validate(good) == normalized
    assert field.check(None) == []  # nullable unless nonnull
    [error] = field.check(bad, "/x")
    assert error.path.startswith("/x")
    assert message in error.message
    with pytest.raises(ValidationFailed) as caught:
        field.validate(bad, path="/x")
    assert caught.value.errors == (error,)


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        (Text(max_length=3, nonnull=True), {"type": "string", "maxLength": 3}),
        (Integer(minimum=1), {"type": ["integer", "null"], "minimum": 1}),
        (Float(nonnull=True), {"type": "number"}),
        (Boolean(description="why"), {"type": ["boolean", "null"], "description": "why"}),
        (Date(nonnull=True), {"type": "string", "format": "date"}),
        (
            DateTime(nonnull=True, readonly=True),
            {"type": "string", "format": "date-time", "readOnly": True},
        ),
        (Enumeration(["a", "b"]), {"enum": ["a", "b", None]}),
        (Enumeration([1, 2], nonnull=True, default=1), {"enum": [1, 2], "default": 1}),
        (UUID(nonnull=True), {"type": "string", "format": "uuid"}),
        (Email(nonnull=True), {"type": "string", "format": "email"}),
        (
            Sequence(Integer(nonnull=True), min_length=1),
            {"type": ["array", "null"], "items": {"type": "integer"}, "minItems": 1},
        ),
        (
            Structure({"city": Text(required=True, nonnull=True), "zip": Text()}, nonnull=True),
            {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        ),
        (
            Map(Boolean(nonnull=True), nonnull=True),
            {"type": "object", "additionalProperties": {"type": "boolean"}},
        ),
    ],
)
def test_json_schema(field: Field, schema: dict[str, Any]) -> None:
    assert field.json_schema() == schema
    assert "$ref" not in str(schema)


def test_decimal_schema_and_canonical_strings() -> None:
    field = Decimal(minimum="0.10", nonnull=True)
    schema = field.json_schema()
    assert schema["type"] == ["number", "string"]
    assert schema["format"] == "decimal"
    assert schema["minimum"] == 0.1
    cases = {"1.500": "1.5", "100": "100", "1e2": "100", "0.10": "0.1", 2.5: "2.5", 7: "7"}
    for given, stored in cases.items():
        assert field.validate(given) == stored
    assert Decimal().validate("-0.000") == "0"
    assert Decimal().validate("1234567890.123456789012345678901") == (
        "1234567890.123456789012345678901"
    )
    assert field.check("0.0999") == [ErrorDetail("", "must be bigger than or equal to 0.10")]
    assert field.check(0.05)[0].message.startswith("must be bigger than or equal to")
    assert Decimal().check(float("inf")) != []
    assert Decimal().check("NaN") != []


def test_datetime_text_order_is_time_order() -> None:
    field = DateTime()
    later = field.validate("2024-01-01T00:30:00+01:00")  # 23:30 UTC the day before
    earlier = field.validate("2023-12-31T23:00:00.5-00:00")
    assert earlier == "2023-12-31T23:00:00.500000Z"
    assert later == "2023-12-31T23:30:00.000000Z"
    assert earlier < later
    assert field.check("1700000000") != []  # epoch seconds only in query values


def test_float_rejects_non_finite() -> None:
    assert Float().check(float("inf")) == [ErrorDetail("", "must be a finite number")]
    assert Float().check(float("nan")) != []


def test_nested_paths() -> None:
    field = Structure(
        {
            "city": Text(required=True, nonnull=True),
            "tags": Sequence(Integer(maximum=3)),
            "price": Decimal(maximum=10),
        }
    )
    assert field.check({"tags": [1]}, "/address") == [ErrorDetail("/address/city", "is required")]
    assert field.check({"city": 1}, "/a") == [ErrorDetail("/a/city", "must be string")]
    assert field.check({"city": "x", "tags": [1, 2, 5]}, "/a") == [
        ErrorDetail("/a/tags/2", "must be smaller than or equal to 3")
    ]
    assert field.check({"city": "x", "price": "11"}, "/a") == [
        ErrorDetail("/a/price", "must be smaller than or equal to 10")
    ]
    assert field.check({"city": "x", "zip": "1"}, "/a") == [
        ErrorDetail("/a/zip", "is not a known field")
    ]
    assert Sequence(Decimal(maximum=1)).check(["0", "2"], "/d") == [
        ErrorDetail("/d/1", "must be smaller than or equal to 1")
    ]
    assert pointer("a/b", "c~d", 3) == "/a~1b/c~0d/3"


def test_recursive_normalization_and_nested_defaults() -> None:
    field = Structure(
        {
            "at": DateTime(),
            "ids": Sequence(UUID()),
            "prices": Map(Decimal()),
            "status": Text(default="new"),
            "tags": Sequence(Text(), default=[]),
        }
    )
    value = {
        "at": "2024-05-01T12:00:00+00:00",
        "ids": ["ABCDEF00-0000-0000-0000-000000000000"],
        "prices": {"a": "1.10", "b": 3},
    }
    assert field.validate(value) == {
        "at": "2024-05-01T12:00:00.000000Z",
        "ids": ["abcdef00-0000-0000-0000-000000000000"],
        "prices": {"a": "1.1", "b": "3"},
        "status": "new",
        "tags": [],
    }
    first, second = field.validate({}), field.validate({})
    first["tags"].append("x")
    assert second["tags"] == []  # defaults are copied, never shared
    assert field.normalize(None) is None


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        (Text(), "Hello World", "Hello World"),
        (Email(), "example.org", "example.org"),
        (Integer(), "-42", -42),
        (Float(), "2.5e3", 2500.0),
        (Decimal(), "10.50", decimal.Decimal("10.50")),
        (Boolean(), "TRUE", True),
        (Boolean(), "0", False),
        (Date(), "2024-02-29", "2024-02-29"),
        (DateTime(), "2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00.000000Z"),
        (DateTime(), "1700000000.5", "2023-11-14T22:13:20.500000Z"),
        (UUID(), "ABCDEF00-0000-0000-0000-000000000000", "abcdef00-0000-0000-0000-000000000000"),
        (Enumeration(["a", "b"]), "b", "b"),
        (Enumeration([1, 2]), "2", 2),
        (Enumeration([True, False]), "true", True),
    ],
)
def test_parse_query_value(field: Field, text: str, value: Any) -> None:
    parsed = field.parse_query_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        (Integer(), "1.5", "is not an integer"),
        (Integer(), "ten", "is not an integer"),
        (Float(), "nan", "is not a number"),
        (Decimal(), "1,5", "is not a decimal number"),
        (Boolean(), "yes", "is not a boolean"),
        (Date(), "2024-13-01", "is not a date"),
        (DateTime(), "yesterday", "is not a time"),
        (DateTime(), "2024-01-01T00:00:00", "is not a time"),
        (UUID(), "abc", "is not a UUID"),
        (Enumeration(["a"]), "b", "is not one of a"),
        (Sequence(Text()), "a", "cannot be compared"),
        (Structure({}), "a", "cannot be compared"),
        (Map(Text()), "a", "cannot be compared"),
    ],
)
def test_parse_query_value_errors(field: Field, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        field.parse_query_value(text)


def test_kinds() -> None:
    kinds = {
        Text(): "text",
        Email(): "text",
        UUID(): "text",
        Enumeration(["a"]): "text",
        Date(): "text",
        Integer(): "integer",
        Float(): "float",
        Decimal(): "decimal",
        Boolean(): "boolean",
        DateTime(): "time",
        Sequence(Text()): "other",
        Structure({}): "other",
        Map(Text()): "other",
    }
    assert {type(f).__name__: f.kind for f in kinds} == {
        type(f).__name__: kind for f, kind in kinds.items()
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Text(operators=["like"]), "unknown operator 'like'"),
        (lambda: Integer(operators=["contains"]), "'contains' does not apply to Integer"),
        (lambda: Boolean(operators=["gt"]), "'gt' does not apply to Boolean"),
        (lambda: DateTime(operators=["prefix"]), "'prefix' does not apply to DateTime"),
        (lambda: Sequence(Text(), operators=["equal"]), "'equal' does not apply to Sequence"),
        (lambda: Structure({}, sortable=True), "cannot be sortable"),
        (lambda: Integer(default="x"), "default 'x' is not valid"),
        (lambda: Text(min_length=3, max_length=2), "lower bound 3 is above"),
        (lambda: Text(pattern="("), "not a regular expression"),
        (lambda: Integer(minimum=1.5), "expected an integer"),
        (lambda: Decimal(minimum="abc"), "expected a decimal number"),
        (lambda: Enumeration([]), "must not be empty"),
        (lambda: Enumeration("ab"), "expected a list"),
        (lambda: Enumeration([["a"]]), "is not a JSON string"),
        (lambda: Enumeration(["a", "a"]), "unique"),
        (lambda: Sequence("text"), "expected a Field"),  # type: ignore[arg-type]
        (lambda: Map(Text), "expected a Field"),  # type: ignore[arg-type]
        (lambda: Structure({"a__b": Text()}), "cannot name a field"),
        (lambda: Structure({"a": Text}), "must be instantiated"),
        (lambda: Structure({"a": 1}), "expected a Field"),
    ],
)
def test_bad_declarations(make: Any, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        make()


def test_operators_are_kept_in_order_without_duplicates() -> None:
    assert Text(operators=["equal", "in", "equal"]).operators == ("equal", "in")
    assert Text(operators="equal, icontains").operators == ("equal", "icontains")


@pytest.mark.parametrize(
    "field",
    [
        Text(required=True, min_length=1, max_length=9, pattern="^x", operators=["prefix"]),
        Integer(minimum=0, maximum=5, nonnull=True, sortable=True, default=3),
        Float(minimum=-1.5, operators=["gt", "lt"], description="temperature"),
        Decimal(minimum="0.01", maximum=100, readonly=True),
        Boolean(nonnull=True, default=False, operators=["equal"]),
        Date(sortable=True),
        DateTime(required=True, nonnull=True, operators=["gte", "lte"]),
        Enumeration(["a", "b"], default=None),
        UUID(nonnull=True, operators=["equal", "in"]),
        Email(operators=["isuffix"]),
        Sequence(Structure({"n": Integer(required=True)}), min_length=1, max_length=3),
        Structure({"city": Text(required=True, operators=["equal"]), "geo": Map(Float())}),
        Map(Sequence(Text(nonnull=True))),
    ],
)
def test_declaration_round_trip(field: Field) -> None:
    data = field.to_dict()
    again = Field.from_dict(data)
    assert again == field
    assert hash(again) == hash(field)
    assert again.json_schema() == field.json_schema()
    assert repr(again) == repr(field)


def test_from_dict_maps_json_schema() -> None:
    field = Field.from_dict(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "born": {"type": ["string", "null"], "format": "date"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["a", "b"]},
                "score": {"type": "number", "nullable": True},
            },
            "required": ["name"],
        },
        required=True,
    )
    assert field == Structure(
        {
            "name": Text(min_length=1, required=True, nonnull=True),
            "born": Date(),
            "tags": Sequence(Text(nonnull=True), nonnull=True),
            "kind": Enumeration(["a", "b"], nonnull=True),
            "score": Float(),
        },
        required=True,
        nonnull=True,
    )


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"type": "string", "format": "ipv4"}, "f.format", "unsupported format"),
        ({"type": "string", "exclusiveMinimum": 1}, "f.exclusiveMinimum", "unsupported keyword"),
        ({"type": ["string", "integer"]}, "f.type", "unsupported type"),
        ({"type": "array"}, "f", "needs 'items'"),
        (
            {"type": "array", "items": {"type": "integer", "minimum": "x"}},
            "f.items",
            "expected an integer",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "bogus"}}},
            "f.properties.a.type",
            "unsupported type",
        ),
        ({"type": "object", "properties": {}, "required": ["a"]}, "f.required", "not a property"),
        ({"type": "integer", "x-operators": ["contains"]}, "f", "does not apply"),
        ("string", "f", "expected a JSON Schema object"),
    ],
)
def test_from_dict_errors_name_the_path(data: Any, path: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        Field.from_dict(data, path="f")
    assert caught.value.errors[0].path == path


def test_collect_fields_from_classes() -> None:
    class Base:
        a = Text()
        b = Integer()

    class Child(Base):
        b = None
        c = Boolean()

    assert collect_fields(Child, "x") == {"a": Text(), "b": None, "c": Boolean()}
    assert collect_fields({"a": Text()}, "x") == {"a": Text()}
    with pytest.raises(DeclarationError, match="expected a dict of fields"):
        collect_fields(42, "x")


def test_field_names() -> None:
    assert check_field_name("first-name_2", "p") == "first-name_2"
    for bad in ("_rev", "$set", "a.b", "a__b", "2x", "", 3):
        with pytest.raises(DeclarationError):
            check_field_name(bad, "p")


def test_replace_and_options() -> None:
    field = Text(max_length=5, operators=["equal"])
    changed = field.replace(required=True)
    assert changed.required and changed.max_length == 5 and changed.operators == ("equal",)
    assert not field.required
    assert field.options()["default"] is UNSET
    assert field != changed
    assert field != "Text"
