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

The types live in :mod:`.scalars` and :mod:`.containers` beside their base
class (:mod:`.base`); :mod:`.formats` holds the value formats validation
checks and :mod:`.from_schema` reads JSON Schema back into fields. This
module is their public face: import fields from ``eventdocs.fields``.
"""

from eventdocs.fields.base import UNSET, Field, check_field_name, collect_fields
from eventdocs.fields.containers import Map, Sequence, Structure
from eventdocs.fields.formats import pointer
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
