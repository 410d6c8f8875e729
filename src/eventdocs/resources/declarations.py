"""The JSON declarations file: resources as data, built into the same classes.

Each entry of ``resources`` becomes a :class:`Resource` subclass (entries of
one name inherit from the nearest lower version in the file), so JSON and
Python declarations compile through one path; errors name the place in the
file (``resources[0].operators.title``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from eventdocs.errors import DeclarationError
from eventdocs.fields import Field, Structure, check_field_name
from eventdocs.resources.classes import (
    _RESOURCE_NAME,
    _WHERE_ATTR,
    STANDARD_REQUESTS,
    Resource,
    _fail,
    compile_resource,
)
from eventdocs.resources.spec import ResourceSpec

_ENTRY_KEYS: Final = frozenset(
    {"name", "version", "description", "schema", "operators", "sortable", "requests",
     "custom", "overrides"}
)  # fmt: skip


_DOCUMENT_KEYWORDS: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "title", "description",
     "$schema", "$comment"}
)  # fmt: skip


def load_declarations(data: Mapping[str, Any] | str | Path) -> list[ResourceSpec]:
    """The resources of a JSON declarations file (a path, its text, or its parsed dict).

    Entries of one name inherit from the nearest lower version in the file.

    Raises:
        DeclarationError: naming the path inside the file (``resources[0].operators.title``).
    """
    if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        try:
            data = Path(data).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, not UTF-8
            _fail(str(data), f"cannot read: {getattr(exc, 'strerror', None) or exc}")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            _fail(f"line {exc.lineno} column {exc.colno}", f"not JSON: {exc.msg}")
    if not isinstance(data, Mapping):
        _fail("", "expected an object with 'resources'")
    entries = data.get("resources")
    if not isinstance(entries, list):
        _fail("resources", "expected a list of resource declarations")

    keyed: list[tuple[str, int, int]] = []
    for index, entry in enumerate(entries):
        where = f"resources[{index}]"
        if not isinstance(entry, Mapping):
            _fail(where, "expected an object")
        for key in entry:
            if key not in _ENTRY_KEYS:
                _fail(f"{where}.{key}", f"unknown key; keys are {', '.join(sorted(_ENTRY_KEYS))}")
        name, version = entry.get("name"), entry.get("version", 1)
        if not isinstance(name, str) or not _RESOURCE_NAME.fullmatch(name):
            _fail(
                f"{where}.name", f"{name!r} is not a resource name (lowercase letters, digits, _)"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            _fail(f"{where}.version", f"{version!r} is not a positive integer")
        keyed.append((name, version, index))

    built: dict[tuple[str, int], type[Resource]] = {}
    specs: dict[int, ResourceSpec] = {}
    for name, version, index in sorted(keyed):
        where = f"resources[{index}]"
        if (name, version) in built:
            _fail(f"{where}.version", f"{name!r} version {version} is declared twice")
        earlier = [v for (n, v) in built if n == name]
        parent = built[(name, max(earlier))] if earlier else Resource
        cls = _entry_class(entries[index], parent, where)
        built[(name, version)] = cls
        specs[index] = compile_resource(cls)
    return [specs[i] for i in range(len(entries))]


def _entry_class(entry: Mapping[str, Any], parent: type[Resource], where: str) -> type[Resource]:
    inherited = compile_resource(parent).fields if parent is not Resource else {}
    schema = entry.get("schema", {})
    if not isinstance(schema, Mapping):
        _fail(f"{where}.schema", "expected a JSON Schema object")
    if schema.get("type", "object") != "object":
        _fail(f"{where}.schema.type", "a document schema is of type 'object'")
    for key in schema:
        if key not in _DOCUMENT_KEYWORDS:
            _fail(f"{where}.schema.{key}", "unsupported keyword for a document schema")
    if schema.get("additionalProperties", False) is not False:
        _fail(f"{where}.schema.additionalProperties", "documents never have unknown fields")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        _fail(f"{where}.schema.properties", "expected an object")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        _fail(f"{where}.schema.required", "expected a list of property names")

    fields: dict[str, Field | None] = {}
    for pname, pschema in properties.items():
        path = f"{where}.schema.properties.{pname}"
        check_field_name(pname, path)
        if pschema is None:
            fields[pname] = None  # removes the field inherited from the earlier version
        else:
            fields[pname] = Field.from_dict(pschema, required=pname in required, path=path)
    current: dict[str, Field | None] = {**inherited, **fields}
    for pname in required:
        f = current.get(pname)
        if f is None:
            _fail(f"{where}.schema.required", f"{pname!r} is not a property")
        if not f.required:
            fields[pname] = current[pname] = f.replace(required=True)

    operators, sortable = entry.get("operators", {}), entry.get("sortable", [])
    if not isinstance(operators, Mapping):
        _fail(f"{where}.operators", "expected {field: [operators]}")
    if not isinstance(sortable, list) or not all(isinstance(n, str) for n in sortable):
        _fail(f"{where}.sortable", "expected a list of field names")
    changes: list[tuple[str, str, dict[str, Any]]] = []
    for fname, ops in operators.items():
        if not isinstance(ops, list):
            _fail(f"{where}.operators.{fname}", "expected a list of operators")
        changes.append((fname, f"{where}.operators.{fname}", {"operators": ops}))
    changes += [(fname, f"{where}.sortable", {"sortable": True}) for fname in sortable]
    for fname, path, change in changes:
        head = fname.split(".")[0]
        if current.get(head) is None:
            _fail(path, f"{fname!r} is not a property")
        fields[head] = current[head] = _changed(current[head], fname.split(".")[1:], change, path)

    ns: dict[str, Any] = {
        "name": entry["name"],
        "version": entry.get("version", 1),
        "schema": fields,
        _WHERE_ATTR: where,
        "__module__": "eventdocs.resources",  # where the public names are
    }
    if "description" in entry:
        if not isinstance(entry["description"], str):
            _fail(f"{where}.description", "expected a string")
        ns["__doc__"] = entry["description"]
    if "requests" in entry:
        if not isinstance(entry["requests"], list):
            _fail(f"{where}.requests", "expected a list of request names")
        ns["requests"] = entry["requests"]
    ns.update(_json_custom(entry.get("custom", {}), f"{where}.custom"))
    ns.update(_json_overrides(entry.get("overrides", {}), f"{where}.overrides"))
    class_name = f"{entry['name'].title().replace('_', '')}V{ns['version']}"
    return type(class_name, (parent,), ns)


def _changed(f: Field | None, rest: list[str], change: dict[str, Any], path: str) -> Field:
    """``f`` with ``change`` applied to the nested field ``rest`` names."""
    try:
        if f is None:
            _fail(path, "no such field")
        if not rest:
            return f.replace(**change)
        if not isinstance(f, Structure):
            _fail(path, f"{rest[0]!r} is not inside a structure")
        nested = dict(f.fields)
        nested[rest[0]] = _changed(nested.get(rest[0]), rest[1:], change, path)
        return f.replace(fields=nested)
    except DeclarationError as exc:
        if exc.errors and exc.errors[0].path == path:
            raise
        _fail(path, exc.errors[0].message if exc.errors else exc.detail)


def _json_fields(schema: Any, path: str) -> dict[str, Field]:
    if not isinstance(schema, Mapping):
        _fail(path, "expected a JSON Schema object")
    field_ = Field.from_dict({"type": "object", **schema}, required=False, path=path)
    if not isinstance(field_, Structure):
        _fail(path, "expected an object schema with properties")
    return dict(field_.fields)


def _json_custom(data: Any, where: str) -> dict[str, type]:
    if not isinstance(data, Mapping):
        _fail(where, "expected {request name: declaration}")
    out: dict[str, type] = {}
    for name, decl in data.items():
        path = f"{where}.{name}"
        if not isinstance(decl, Mapping):
            _fail(path, "expected an object")
        for key in decl:
            if key not in {"endpoint", "schema", "responses", "description"}:
                _fail(f"{path}.{key}", "unknown key")
        endpoint = decl.get("endpoint")
        ns: dict[str, Any] = {
            "endpoint": tuple(endpoint) if isinstance(endpoint, list) else endpoint,
            "schema": _json_fields(decl.get("schema", {}), f"{path}.schema"),
            "__doc__": decl.get("description"),
            _WHERE_ATTR: path,
        }
        responses = decl.get("responses", {})
        if not isinstance(responses, Mapping):
            _fail(f"{path}.responses", "expected {status: schema}")
        ns["responses"] = {
            status: None if body is None else _json_fields(body, f"{path}.responses.{status}")
            for status, body in responses.items()
        }
        out[name] = type(name, (), ns)
    return out


def _json_overrides(data: Any, where: str) -> dict[str, type]:
    if not isinstance(data, Mapping):
        _fail(where, "expected {standard request: schema}")
    out: dict[str, type] = {}
    for name, schema in data.items():
        if name not in STANDARD_REQUESTS:
            _fail(f"{where}.{name}", f"not a standard request ({', '.join(STANDARD_REQUESTS)})")
        fields = _json_fields(schema, f"{where}.{name}")
        ns = {"fields": fields, _WHERE_ATTR: f"{where}.{name}"}
        out[name] = type(name, (getattr(Resource, name),), ns)
    return out
