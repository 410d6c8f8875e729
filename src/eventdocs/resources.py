"""Resource declarations, mesh-style, compiled once into frozen specs.

A resource is declared as a class (or as an entry of a JSON declarations
file); everything else in eventdocs reads only the compiled
:class:`ResourceSpec`::

    class Post(Resource):
        name = "post"
        version = 1
        requests = ["query", "get", "create", "update", "delete"]

        class schema:
            title = Text(required=True, operators=["contains"], sortable=True)

        class hello:
            endpoint = ("POST", "hello")
            schema = {"name": Text()}
            responses = {200: {"message": Text(required=True, nonnull=True)}}

A subclass is the next version: it inherits fields, requests and custom
requests, adds or overrides fields, and removes one by setting it to ``None``.
Declarations are checked when the class is created, so mistakes surface at
import time as :class:`~eventdocs.errors.DeclarationError`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Final, NoReturn

from eventdocs.errors import DeclarationError, ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.fields import (
    UNSET,
    UUID,
    Field,
    Integer,
    Map,
    Structure,
    Text,
    check_field_name,
    collect_fields,
    pointer,
)
from eventdocs.storage.contract import IndexSpec

__all__ = [
    "STANDARD_REQUESTS",
    "CustomRequest",
    "Resource",
    "ResourceSpec",
    "StandardRequest",
    "compile_resource",
    "load_declarations",
    "load_target",
    "load_views",
]

STANDARD_REQUESTS: Final = ("query", "get", "create", "update", "delete")
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Query-string parameters that are not filters; a filterable field cannot take them.
_QUERY_PARAMETERS: Final = frozenset({"sort", "limit", "offset", "fields", "as_of", "known_at"})
# Shapes of the standard routes under /v{version}/{name}/ ("{}" is any parameter).
_STANDARD_PATHS: Final = frozenset({"", "{}", "{}/revisions", "{}/revisions/{}", "{}/revert"})
_RESOURCE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REQUEST_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SPEC_ATTR: Final = "_eventdocs_spec"
_WHERE_ATTR: Final = "_eventdocs_where"

_SERVER_ID = Text(
    required=True,
    nonnull=True,
    readonly=True,
    sortable=True,
    operators=("equal", "not", "in", "notin", "prefix", "gt", "gte", "lt", "lte"),
    description="The document's id, assigned by the server.",
)


def _fail(path: str, message: str) -> NoReturn:
    raise DeclarationError(f"{path}: {message}", [ErrorDetail(path, message)])


class StandardRequest:
    """Base of the five standard requests; subclass one to add response ``fields``."""

    fields: ClassVar[Any] = {}


class Resource:
    """Base of every resource declaration; see the module docstring.

    Attributes:
        name: the resource's name (lowercase); same name means same log.
        version: served under ``/v{version}/{name}``.
        requests: the standard requests it exposes (default: all five).
        schema: its fields, as an inner class or a dict.
    """

    name: ClassVar[str | None] = None
    version: ClassVar[int] = 1
    requests: ClassVar[Iterable[str] | str] = STANDARD_REQUESTS
    schema: ClassVar[Any] = None

    class query(StandardRequest):
        """``GET /v{version}/{name}``."""

    class get(StandardRequest):
        """``GET /v{version}/{name}/{id}``."""

    class create(StandardRequest):
        """``POST /v{version}/{name}``."""

    class update(StandardRequest):
        """``PUT`` and ``PATCH /v{version}/{name}/{id}``."""

    class delete(StandardRequest):
        """``DELETE /v{version}/{name}/{id}``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name is not None:
            compile_resource(cls)  # fail at import, not at the first request

    @classmethod
    def spec(cls) -> ResourceSpec:
        """The compiled declaration (built once, then cached on the class)."""
        return compile_resource(cls)


def _object_schema(fields: Mapping[str, Field], *, required: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: f.json_schema() for name, f in fields.items()},
    }
    names = [name for name, f in fields.items() if f.required]
    if required and names:
        schema["required"] = names
    schema["additionalProperties"] = False
    return schema


@functools.lru_cache(maxsize=4096)
def _pointer(name: str) -> str:
    # Validation runs on every write: build each field's path once.
    return pointer(name)


def _validate_object(
    fields: Mapping[str, Field],
    body: Any,
    what: str,
    *,
    server_id: bool = False,
    optional: Iterable[str] = (),
) -> dict[str, Any]:
    """``body`` checked against ``fields``, defaults applied, normalized; all errors at once."""
    if not isinstance(body, dict):
        raise ValidationFailed(f"{what} must be a JSON object", [ErrorDetail("", "not an object")])
    errors: list[ErrorDetail] = []
    out: dict[str, Any] = {}
    for name, f in fields.items():
        path = _pointer(name)
        if name in body:
            value = body[name]
        elif f.default is not UNSET:
            value = copy.deepcopy(f.default)
        elif f.required and name not in optional:
            errors.append(ErrorDetail(path, "is required"))
            continue
        else:
            continue
        value = f.with_defaults(value)
        failed = f.check(value, path)
        if failed:
            errors.extend(failed)
        else:
            out[name] = f.normalize(value)
    for name in body:
        if name not in fields:
            message = "is assigned by the server" if server_id and name == "id" else "unknown field"
            errors.append(ErrorDetail(pointer(name), message))
    if errors:
        raise ValidationFailed(f"{what} is not valid ({len(errors)} errors)", errors)
    return out


@dataclass(frozen=True)
class CustomRequest:
    """A request of the resource's own (mesh's ``hello``).

    ``fields`` describe the JSON body (the query string for ``GET``);
    ``responses`` maps a status to its body's fields (``None``: no body).
    """

    name: str
    method: str
    path: str
    fields: dict[str, Field]
    responses: dict[int, dict[str, Field] | None]
    description: str | None = None

    def __hash__(self) -> int:
        return hash((self.name, self.method, self.path))

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the request body."""
        return _object_schema(self.fields)

    def response_schema(self, status: int) -> dict[str, Any] | None:
        """The JSON Schema of the body answered with ``status`` (``None``: no body)."""
        fields = self.responses[status]
        return None if fields is None else _object_schema(fields)

    def validate(self, body: Any) -> dict[str, Any]:
        """The normalized body, or :class:`ValidationFailed` with one entry per path."""
        return _validate_object(self.fields, body, f"{self.name} request")


@dataclass(frozen=True)
class ResourceSpec:
    """A compiled resource declaration: what the service, HTTP and stores read.

    Attributes:
        fields: the document's fields (``id`` among them only for client ids).
        requests: the standard requests it serves.
        custom: its own requests by name.
        overrides: extra response fields of overridden standard requests.
        client_ids: whether clients supply ``id`` (the schema declares it).
        json_schema: the document schema, as stored (without ``_rev``/``_updated``).
    """

    name: str
    version: int
    fields: dict[str, Field]
    requests: frozenset[str]
    custom: dict[str, CustomRequest]
    overrides: dict[str, dict[str, Field]]
    client_ids: bool
    description: str | None = None
    declaration: type[Resource] | None = field(default=None, compare=False, repr=False)
    json_schema: dict[str, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "json_schema", _object_schema(self.fields))

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    @property
    def prefix(self) -> str:
        """Where it is served: ``/v{version}/{name}``."""
        return f"/v{self.version}/{self.name}"

    def indexes(self) -> list[IndexSpec]:
        """One index per field that queries filter or sort on (dotted inside structures)."""
        out: list[IndexSpec] = []

        def walk(fields: Mapping[str, Field], prefix: str) -> None:
            for name, f in fields.items():
                dotted = prefix + name
                if dotted != "id" and (f.operators or f.sortable_option):
                    out.append(IndexSpec(dotted, f.kind))
                if isinstance(f, Structure):
                    walk(f.fields, dotted + ".")

        walk(self.fields, "")
        return out

    def field_for(self, name: str) -> Field:
        """The field a query names: ``id``, a field, or ``a.b`` inside structures.

        Raises:
            InvalidRequest: with path ``?name`` when the resource has no such field.
        """
        if name == "id":
            return self.fields.get("id", _SERVER_ID)
        head, *rest = name.split(".")
        found: Field | None = self.fields.get(head)
        for part in rest:
            if isinstance(found, Structure):
                found = found.fields.get(part)
            elif isinstance(found, Map):
                found = found.value
            else:
                found = None
        if found is None:
            known = ", ".join(["id", *(n for n in self.fields if n != "id")])
            raise InvalidRequest(
                f"{self.name} has no field {name!r}",
                [ErrorDetail(f"?{name}", f"unknown field; fields are {known}")],
            )
        return found

    def validate(self, doc: Any) -> dict[str, Any]:
        """A full document (create, revert) checked, defaulted and normalized.

        ``id`` travels beside the data, so it is checked when present but never
        required here (see :meth:`validate_id`).

        Raises:
            ValidationFailed: one entry per failing path (``/title``, ``/tags/2``).
        """
        return _validate_object(
            self.fields,
            doc,
            f"{self.name} document",
            server_id=not self.client_ids,
            optional=("id",),
        )

    def validate_id(self, value: Any) -> str:
        """A client-supplied id, checked and normalized (UUIDs lowercase).

        Raises:
            ValidationFailed: at ``/id``, also when the server assigns the ids.
        """
        id_field = self.fields.get("id")
        if id_field is None:
            raise ValidationFailed(
                f"{self.name} ids are assigned by the server",
                [ErrorDetail("/id", "is assigned by the server")],
            )
        validated = id_field.validate(value, path="/id")
        # An Integer id is kept as its decimal text: ids are URL path segments.
        normalized: str = str(validated) if isinstance(validated, int) else validated
        if not normalized:
            raise ValidationFailed("the id is empty", [ErrorDetail("/id", "must not be empty")])
        # An id is one path segment of its URL: these could never be addressed.
        if (
            "/" in normalized
            or normalized in (".", "..")
            or normalized.startswith("_")
            or not normalized.isprintable()
        ):
            raise ValidationFailed(
                f"the id {normalized!r} cannot be a path segment",
                [ErrorDetail("/id", "no '/', control characters, '.', '..' or leading '_'")],
            )
        return normalized

    def validate_update(self, body: Any, *, merge: bool = False) -> dict[str, Any]:
        """The fields an update sets, each checked and normalized.

        Nothing is required; ``id``, read-only and unknown fields are rejected.
        With ``merge`` (RFC 7396) ``null`` removes a field that is not required,
        and objects for structures and maps pass unchecked: they are partial, so
        the service validates the merged document with :meth:`validate`.

        Raises:
            ValidationFailed: one entry per failing path.
        """
        if not isinstance(body, dict):
            raise ValidationFailed(
                "an update must be a JSON object", [ErrorDetail("", "not an object")]
            )
        errors: list[ErrorDetail] = []
        out: dict[str, Any] = {}
        for name, value in body.items():
            path = pointer(name)
            f = self.fields.get(name)
            if name == "id":
                errors.append(ErrorDetail(path, "cannot be changed"))
            elif f is None:
                errors.append(ErrorDetail(path, "unknown field"))
            elif f.readonly:
                errors.append(ErrorDetail(path, "is read-only"))
            elif merge and value is None:
                if f.required:
                    errors.append(ErrorDetail(path, "is required and cannot be removed"))
                else:
                    out[name] = None
            elif merge and isinstance(f, Structure | Map) and isinstance(value, dict):
                out[name] = value
            else:
                failed = f.check(value, path)
                if failed:
                    errors.extend(failed)
                else:
                    out[name] = f.normalize(value)
        if errors:
            raise ValidationFailed(
                f"{self.name} update is not valid ({len(errors)} errors)", errors
            )
        return out

    def validate_change(
        self, current: Mapping[str, Any] | None, body: Any, *, merge: bool = False
    ) -> dict[str, Any]:
        """The validated body of an update of ``current`` through this version.

        Only what the body sets is checked, against this version's fields: a
        document written through another version keeps the fields this one
        does not declare, and lacks the ones it does not require, without
        making the update fail (SPEC section 10). With ``merge`` a structure's
        partial object is merged into the current value, then checked whole.

        Raises:
            ValidationFailed: one entry per failing path.
        """
        change = self.validate_update(body, merge=merge)
        if not merge:
            return change
        from eventdocs.fold import merge_patch  # the fold's own merge, so both agree

        merged = merge_patch(dict(current or {}), change)
        errors: list[ErrorDetail] = []
        out: dict[str, Any] = {}
        for name, value in change.items():
            if value is None:
                out[name] = None
                continue
            f = self.fields[name]
            path = _pointer(name)
            full = f.with_defaults(merged.get(name))
            failed = f.check(full, path)
            if failed:
                errors.extend(failed)
            else:
                out[name] = f.normalize(full)
        if errors:
            raise ValidationFailed(
                f"{self.name} update is not valid ({len(errors)} errors)", errors
            )
        return out

    def update_schema(self) -> dict[str, Any]:
        """The JSON Schema of a ``$set`` update body: writable fields, none required."""
        writable = {n: f for n, f in self.fields.items() if n != "id" and not f.readonly}
        return _object_schema(writable, required=False)

    def document_schema(self, request: str = "get") -> dict[str, Any]:
        """The JSON Schema of a document in a response, with ``id``, ``_rev``, ``_updated``."""
        fields = {"id": self.fields.get("id", _SERVER_ID), **self.fields}
        fields.update(self.overrides.get(request, {}))
        schema = _object_schema(fields)
        schema["properties"]["_rev"] = {"type": "integer", "minimum": 1}
        schema["properties"]["_updated"] = {"type": "string", "format": "date-time"}
        schema["required"] = ["id", *(n for n in schema.get("required", []) if n != "id")]
        schema["required"] += ["_rev", "_updated"]
        return schema


# -- compiling class declarations ----------------------------------------------


def compile_resource(cls: type[Resource]) -> ResourceSpec:
    """The spec of a declaration class, compiled on first use and cached on it.

    Raises:
        DeclarationError: naming the declaration path (``Post.schema.title``).
    """
    cached = cls.__dict__.get(_SPEC_ATTR)
    if isinstance(cached, ResourceSpec):
        return cached
    spec = _compile(cls)
    setattr(cls, _SPEC_ATTR, spec)
    return spec


def _declarations(cls: type[Resource]) -> list[type[Resource]]:
    """The declaration classes of ``cls``, oldest first (``Resource`` excluded)."""
    return [k for k in reversed(cls.__mro__) if issubclass(k, Resource) and k is not Resource]


def _merged_fields(classes: Iterable[type], attr: str, where: str) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for klass in classes:
        if attr in vars(klass):
            for name, f in collect_fields(vars(klass)[attr], f"{where}.{attr}").items():
                if f is None:
                    fields.pop(name, None)
                else:
                    fields[name] = f
    return fields


def _compile(cls: type[Resource]) -> ResourceSpec:
    where: str = cls.__dict__.get(_WHERE_ATTR) or cls.__qualname__
    name, version = cls.name, cls.version
    if not isinstance(name, str) or not _RESOURCE_NAME.fullmatch(name):
        _fail(f"{where}.name", f"{name!r} is not a resource name (lowercase letters, digits, _)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _fail(f"{where}.version", f"{version!r} is not a positive integer")

    fields = _merged_fields(_declarations(cls), "schema", where)
    for fname, f in fields.items():
        if fname in _QUERY_PARAMETERS and f.operators:
            _fail(
                f"{where}.schema.{fname}", f"{fname!r} is a query parameter; it cannot be filtered"
            )
    id_field = fields.get("id")
    if id_field is not None:
        if not isinstance(id_field, Text | UUID | Integer):
            _fail(f"{where}.schema.id", "a client-supplied id must be Text, UUID or Integer")
        if isinstance(id_field, Integer) and set(id_field.operators) & {"gt", "gte", "lt", "lte"}:
            # Ids are stored as text (they are URL segments): a range would compare text.
            _fail(f"{where}.schema.id", "an Integer id takes equal, not, in and notin only")
        if not id_field.required:
            _fail(f"{where}.schema.id", "a client-supplied id must be required")
        if not id_field.nonnull:
            fields["id"] = id_field.replace(nonnull=True)

    raw = cls.requests
    declared = raw.split() if isinstance(raw, str) else list(raw)
    for request in declared:
        if request not in STANDARD_REQUESTS:
            _fail(
                f"{where}.requests",
                f"{request!r} is not a standard request ({', '.join(STANDARD_REQUESTS)});"
                " declare custom requests as inner classes",
            )
    requests = frozenset(declared)

    inner: dict[str, tuple[type, type]] = {}
    for klass in _declarations(cls):
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr == "schema":
                continue
            if isinstance(value, type):
                inner[attr] = (value, klass)
            elif value is None:
                inner.pop(attr, None)  # disables an inherited custom request

    custom: dict[str, CustomRequest] = {}
    overrides: dict[str, dict[str, Field]] = {}
    routes: dict[tuple[str, str], str] = {}
    for attr, (value, owner) in inner.items():
        path = vars(value).get(_WHERE_ATTR) or f"{where}.{attr}"
        if attr in STANDARD_REQUESTS:
            if attr not in requests:
                if owner is cls:
                    _fail(path, f"overrides {attr!r}, which is not among the resource's requests")
                continue
            extra = _merged_fields(value.__mro__[::-1], "fields", path)
            if extra:
                overrides[attr] = extra
        elif issubclass(value, StandardRequest):
            _fail(path, "only query, get, create, update and delete can extend a standard request")
        else:
            custom_request = _custom(attr, value, path)
            route = (custom_request.method, re.sub(r"\{[^}/]*\}", "{}", custom_request.path))
            if route in routes:
                _fail(f"{path}.endpoint", f"same route as {routes[route]!r}")
            routes[route] = attr
            custom[attr] = custom_request

    return ResourceSpec(
        name=name,
        version=version,
        fields=fields,
        requests=requests,
        custom=custom,
        overrides=overrides,
        client_ids=id_field is not None,
        description=inspect.getdoc(cls) if "__doc__" in vars(cls) and cls.__doc__ else None,
        declaration=cls,
    )


def _custom(name: str, value: type, where: str) -> CustomRequest:
    if not _REQUEST_NAME.fullmatch(name):
        _fail(where, f"{name!r} cannot name a request")
    endpoint = getattr(value, "endpoint", None)
    if (
        not isinstance(endpoint, tuple | list)
        or len(endpoint) != 2
        or not all(isinstance(part, str) for part in endpoint)
    ):
        _fail(f"{where}.endpoint", "a custom request needs endpoint = (METHOD, 'path')")
    method, path = endpoint[0].upper(), endpoint[1].strip("/")
    if method not in METHODS:
        _fail(f"{where}.endpoint", f"{endpoint[0]!r} is not one of {', '.join(sorted(METHODS))}")
    shape = re.sub(r"\{[^}/]*\}", "{}", path)
    if shape in _STANDARD_PATHS or path.startswith("_") or "/_" in path:
        _fail(f"{where}.endpoint", f"{path!r} is taken by the standard requests")
    classes = value.__mro__[::-1]
    responses: dict[int, dict[str, Field] | None] = {}
    for klass in classes:
        declared = vars(klass).get("responses")
        if declared is None:
            continue
        if not isinstance(declared, Mapping):
            _fail(f"{where}.responses", "expected {status: fields}")
        for status, body in declared.items():
            code = int(status) if isinstance(status, str) and status.isdigit() else status
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                _fail(f"{where}.responses", f"{status!r} is not an HTTP status")
            if body is None:
                responses[code] = None
            else:
                resp = collect_fields(body, f"{where}.responses.{code}")
                responses[code] = {k: f for k, f in resp.items() if f is not None}
    return CustomRequest(
        name=name,
        method=method,
        path=path,
        fields=_merged_fields(classes, "schema", where),
        responses=responses,
        description=inspect.getdoc(value) if value.__doc__ else None,
    )


# -- the JSON declarations file ------------------------------------------------

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
        "__module__": __name__,
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


# -- targets -------------------------------------------------------------------

_imported: dict[Path, ModuleType] = {}


def _import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file once, with its directory importable (like ``python file.py``)."""
    path = path.resolve()
    if path in _imported:
        return _imported[path]
    if not path.is_file():
        _fail(str(path), "no such file")
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:8]
    name = f"_eventdocs_target_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        _fail(str(path), "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DeclarationError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise DeclarationError(
            f"{path}: cannot import: {exc}", [ErrorDetail(str(path), str(exc))]
        ) from exc
    _imported[path] = module
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except DeclarationError:
        raise
    except Exception as exc:
        raise DeclarationError(
            f"{name}: cannot import: {exc}", [ErrorDetail(name, str(exc))]
        ) from exc


def _resolve(target: str) -> tuple[ModuleType, object]:
    """The module TARGET names and the object in it (the module itself without ``:attr``)."""
    module_part, colon, attr = target.partition(":")
    if colon and len(module_part) == 1 and module_part.isalpha():  # C:\path\file.py
        module_part, colon, attr = target, "", ""
    if module_part.endswith(".py") or Path(module_part).is_file():
        module = _import_file(Path(module_part))
    else:
        module = _import_module(module_part)
    obj: object = module
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            _fail(target, f"{part!r} not found")
    return module, obj


def _specs_of(obj: object, target: str) -> list[ResourceSpec]:
    if isinstance(obj, ModuleType):
        found = [
            v
            for v in vars(obj).values()
            if isinstance(v, type)
            and issubclass(v, Resource)
            and v.__module__ == obj.__name__
            and v.name is not None
        ]
        return [compile_resource(c) for c in found]
    if isinstance(obj, type) and issubclass(obj, Resource):
        return [compile_resource(obj)]
    if isinstance(obj, ResourceSpec):
        return [obj]
    if isinstance(obj, list | tuple):
        return [s for item in obj for s in _specs_of(item, target)]
    _fail(target, f"expected resources, a list of them or a module, not {type(obj).__name__}")


def load_target(target: str) -> list[ResourceSpec]:
    """The resources a TARGET declares: a ``.py`` file, ``package.module:attr``, or ``.json``.

    Raises:
        DeclarationError: the target cannot be loaded, or two resources share a
            name and version.
    """
    if target.endswith(".json"):
        return load_declarations(Path(target))
    _, obj = _resolve(target)
    specs = _specs_of(obj, target)
    seen: dict[tuple[str, int], ResourceSpec] = {}
    unique: list[ResourceSpec] = []
    for spec in specs:
        key = (spec.name, spec.version)
        if key in seen:
            if seen[key] is spec:
                continue
            _fail(target, f"{spec.name!r} version {spec.version} is declared twice")
        seen[key] = spec
        unique.append(spec)
    return unique


def load_views(target: str) -> list[Any]:
    """The views a TARGET declares, declarative ones bound to its resources.

    A ``.json`` file's ``views`` list (declarative views); a Python target's
    module-level ``views`` list (:class:`~eventdocs.projections.views.View`
    instances, declarative ones from ``declare_view`` among them).

    Raises:
        DeclarationError: naming the view and what is wrong with it.
    """
    from eventdocs.projections.declared import bind_views, parse_views

    specs = load_target(target)  # fails first, with its own message, on a bad file
    if target.endswith(".json"):
        data = json.loads(Path(target).read_text(encoding="utf-8"))
        entries = data.get("views", []) if isinstance(data, Mapping) else []
        views: list[Any] = list(parse_views(entries))
    else:
        module, _ = _resolve(target)
        found = getattr(module, "views", [])
        if not isinstance(found, list | tuple):
            _fail(f"{target}.views", "expected a list")
        views = list(found)
    bind_views(views, specs)
    return views
