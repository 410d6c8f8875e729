"""JSON Schema fragments to fields: the declarations file's side of :meth:`Field.from_dict`.

A fragment maps to exactly one field type by its ``type``, ``format`` and
``enum``; keywords that type cannot honour are refused rather than ignored,
naming the path inside the file (``resources[0].schema.properties.title``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from eventdocs.errors import DeclarationError
from eventdocs.fields.base import Field, _fail, check_field_name
from eventdocs.fields.containers import Map, Sequence, Structure
from eventdocs.fields.scalars import (
    UUID,
    Boolean,
    Date,
    DateTime,
    Decimal,
    Email,
    Enumeration,
    Float,
    Integer,
    Text,
)

_ANNOTATIONS: Final = frozenset(
    {"title", "description", "default", "readOnly", "examples", "$comment", "deprecated",
     "type", "nullable", "x-required", "x-operators", "x-sortable"}
)  # fmt: skip

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
