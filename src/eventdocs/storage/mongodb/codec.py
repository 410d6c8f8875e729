"""How eventdocs records map to BSON documents, and back, exactly.

Documents stay readable by other tools: integers, floats, strings, nested
objects and arrays are stored as they are. A value BSON cannot hold exactly
(an integer beyond 64 bits, a key starting with ``$`` or holding ``.``) makes
the whole document JSON text in ``json`` instead. Master and history rows
also carry the query keys of :mod:`.keys`; reads leave them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from bson.int64 import Int64

from eventdocs.events import Event, decode_event, encode_event
from eventdocs.storage.contract import Checkpoint, Document
from eventdocs.storage.mongodb.keys import keys_of

__all__ = [
    "OPEN",
    "ROW_FIELDS",
    "Doc",
    "checkpoint_of",
    "closed_doc",
    "data_of",
    "document_of",
    "event_doc",
    "event_of",
    "native",
    "plain",
    "put_data",
    "row_doc",
]

Doc = dict[str, Any]
OPEN = 2**62  # "until" of a history row that is still in effect
INT64 = 2**63


def native(value: Any, depth: int = 0) -> bool:
    """Whether BSON keeps ``value`` exactly (else it is stored as JSON text)."""
    if value is None or isinstance(value, bool | float | str):
        return True
    if isinstance(value, int):
        return -INT64 <= value < INT64
    if depth > 90:
        return False
    if isinstance(value, list):
        return all(native(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and k and not k.startswith("$") and "." not in k and "\x00" not in k
            and native(v, depth + 1)
            for k, v in value.items()
        )  # fmt: skip
    return False


def put_data(doc: Doc, data: Mapping[str, Any] | None) -> Doc:
    if data is None or native(data):
        doc["data"] = data
    else:
        doc["data"] = None
        doc["json"] = msgspec.json.encode(data).decode()
    return doc


def data_of(doc: Doc) -> dict[str, Any] | None:
    if "json" in doc:
        value: dict[str, Any] = msgspec.json.decode(doc["json"])
        return value
    data: dict[str, Any] | None = plain(doc.get("data"))
    return data


def plain(value: Any) -> Any:
    """``value`` with BSON's ``Int64`` (what int64 always decodes to) as plain ``int``."""
    kind = type(value)
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    if kind is Int64:
        return int(value)
    return value


def checkpoint_of(doc: Doc) -> Checkpoint:
    return Checkpoint(int(doc["seq"]), int(doc["toa"]))


def event_doc(event: Event) -> Doc:
    doc: Doc = msgspec.to_builtins(event)
    doc["_id"] = doc.pop("seq")
    if native(doc):
        return doc
    slim: Doc = {
        k: doc[k] for k in ("_id", "id", "action", "toa", "recorded_at", "target") if k in doc
    }
    slim["json"] = encode_event(event).decode()
    return slim


def event_of(doc: Doc) -> Event:
    if "json" in doc:
        return decode_event(doc["json"])
    fields = plain(doc)
    fields["seq"] = fields.pop("_id")
    fields.pop("prev", None)  # its place in the document's chain (see .append)
    fields.pop("n", None)  # its number there
    event: Event = msgspec.convert(fields, Event)
    return event


def row_doc(doc_id: str, row: Document, *, history: bool) -> Doc:
    doc: Doc = {"rev": row.rev, "updated": row.updated, "seq": row.seq, "valid_to": row.valid_to}
    if history:
        doc["id"] = doc_id
        doc["live"] = row.data is not None
        doc["until"] = OPEN if row.valid_to is None else row.valid_to
        doc["known_from"] = row.known_from
        doc["end_known"] = row.end_known
        if row.known_from < row.updated:  # recorded before it took effect: scheduled
            doc["ahead"] = True
    else:
        doc["_id"] = doc_id
    put_data(doc, row.data)
    if row.data is not None:
        doc.update(keys_of(doc_id, row.data))
    return doc


def closed_doc(doc_id: str, row: Document) -> Doc:
    """A history row no longer believed, keyed by its place and recording interval
    (so a roll-forward that writes it again replaces it)."""
    doc = row_doc(doc_id, row, history=True)
    doc["_id"] = {"id": doc_id, "rev": row.rev, "from": row.known_from, "to": row.known_to}
    doc["known_to"] = row.known_to
    return doc


def document_of(doc: Doc) -> Document:
    doc_id = doc["id"] if "id" in doc else doc["_id"]
    valid_to = doc["valid_to"]
    return Document(
        doc_id,
        data_of(doc),
        int(doc["rev"]),
        int(doc["updated"]),
        int(doc["seq"]),
        None if valid_to is None else int(valid_to),
        int(doc.get("known_from", 0)),
        None if doc.get("end_known") is None else int(doc["end_known"]),
        None if doc.get("known_to") is None else int(doc["known_to"]),
    )


ROW_FIELDS = {"_k": 0, "_d": 0, "_l": 0}
