"""Resource classes: :class:`Resource` declarations compiled into specs.

A declaration class is checked when it is created (mistakes surface at
import time as :class:`~eventdocs.errors.DeclarationError`, naming the path
``Post.schema.title``) and compiled once into a :class:`ResourceSpec`, cached
on the class. A subclass is the next version: it inherits fields, requests
and custom requests.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, NoReturn

from eventdocs.errors import DeclarationError, ErrorDetail
from eventdocs.fields import UUID, Field, Integer, Text, collect_fields
from eventdocs.resources.spec import CustomRequest, ResourceSpec

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


def _fail(path: str, message: str) -> NoReturn:
    raise DeclarationError(f"{path}: {message}", [ErrorDetail(path, message)])


class StandardRequest:
    """Base of the five standard requests; subclass one to add response ``fields``."""

    fields: ClassVar[Any] = {}


class Resource:
    """Base of every resource declaration; see :mod:`eventdocs.resources`.

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
