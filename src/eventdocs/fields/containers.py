"""The container field types: arrays, structures with known keys, and maps.

They hold other fields and pass each question down to them, so a value's
defaults, refinements and normal form apply at every depth; their errors
name the path inside the value (``/tags/2``, ``/author/name``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from eventdocs.errors import ErrorDetail
from eventdocs.fields.base import (
    _CONTAINER_OPS,
    UNSET,
    Field,
    _bound_int,
    _fail,
    _ordered,
    _put,
    collect_fields,
)
from eventdocs.fields.formats import pointer


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
