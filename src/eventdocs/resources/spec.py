"""The compiled resource: :class:`ResourceSpec` and its :class:`CustomRequest` s.

Declarations (classes or a JSON file) compile into these frozen records; the
service, HTTP and the stores read nothing else. A spec validates documents,
updates and ids against its fields, and answers the JSON Schemas that
OpenAPI shows and the indexes that stores build.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventdocs.errors import ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.fields import UNSET, Field, Map, Structure, Text, pointer
from eventdocs.storage.contract import IndexSpec

if TYPE_CHECKING:
    from eventdocs.resources.classes import Resource

_SERVER_ID = Text(
    required=True,
    nonnull=True,
    readonly=True,
    sortable=True,
    operators=("equal", "not", "in", "notin", "prefix", "gt", "gte", "lt", "lte"),
    description="The document's id, assigned by the server.",
)


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
