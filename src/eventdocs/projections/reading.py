"""Reading views: their rows now or at another time, filtered, sorted and paged.

HTTP (``/views``) and the CLI (``eventdocs view``) read through here. Rows now
come from the view's own collection; a view is small next to its sources (one
row per group), so filters, sort and page run over its rows in memory with
the reference semantics of :mod:`eventdocs.query`.

At another time (``as_of``, ``known_at``) a declarative view is computed: the
source documents as they were then are paged out of the store (the history
rows valid at ``as_of``, or the log folded as known at ``known_at``) and
aggregated afresh, so the cost is one read of every source document that
existed then. A Python view cannot be recomputed that way (its fold may
depend on more than one document's state at a time the projector never
showed it), so it answers only now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from eventdocs.errors import ErrorDetail, InvalidRequest, NotFound
from eventdocs.projections.declared import DeclaredView, public_row, row_key
from eventdocs.projections.views import View
from eventdocs.query import Query, SortKey, matches, project_fields, sort_documents
from eventdocs.resources import ResourceSpec

if TYPE_CHECKING:
    from eventdocs.service import Service

__all__ = ["ViewPage", "find_view", "read_row", "read_rows", "view_spec"]

_PAGE = 1000
_BY_ID = (SortKey("id", kind="text"),)  # pages that neither repeat nor skip a document


@dataclass(frozen=True)
class ViewPage:
    """``total`` rows match; ``rows`` is the requested page of them."""

    total: int
    rows: list[dict[str, Any]]


def find_view(service: Service, name: str) -> View:
    """The view ``name`` serves, or :class:`NotFound` naming those it has."""
    for view in service.views:
        if view.name == name:
            return view
    known = ", ".join(v.name for v in service.views) or "none"
    raise NotFound(f"unknown view {name!r} (views: {known})", [ErrorDetail("{name}", known)])


def view_spec(view: View) -> ResourceSpec:
    """The view's rows as a read-only resource, so the query language applies to them."""
    return ResourceSpec(
        name=view.name,
        version=1,
        fields=dict(view.fields),
        requests=frozenset({"query", "get"}),
        custom={},
        overrides={},
        client_ids=False,
        description=getattr(view, "description", None) or (type(view).__doc__ or None),
    )


async def _rows(
    service: Service, view: View, as_of: int | None, known_at: int | None
) -> dict[str, dict[str, Any]]:
    if as_of is None and known_at is None:
        stored = await service.store.read_view(view.name)
        return {k: public_row(v) for k, v in stored.items()}
    if not isinstance(view, DeclaredView):
        param = "?as_of" if as_of is not None else "?known_at"
        raise InvalidRequest(
            f"view {view.name!r} is a Python view: it is read now only",
            [ErrorDetail(param, "only declarative views are read at another time")],
        )
    documents = service.documents(view.source)
    docs: list[tuple[str, dict[str, Any]]] = []
    offset = 0
    while True:
        page = await documents.query(
            Query(sort=_BY_ID, limit=_PAGE, offset=offset), as_of=as_of, known_at=known_at
        )
        docs += [(d.id, d.data) for d in page.items if d.data is not None]
        offset += len(page.items)
        if len(page.items) < _PAGE or offset >= page.total:
            break
    return {k: public_row(v) for k, v in view.rows_of(docs).items()}


async def read_rows(
    service: Service,
    view: View,
    query: Query,
    *,
    as_of: int | None = None,
    known_at: int | None = None,
) -> ViewPage:
    """The rows of ``view`` that match ``query``, in its order, one page of them."""
    rows = await _rows(service, view, as_of, known_at)
    chosen = [(k, row) for k, row in rows.items() if matches(k, row, query.filters)]
    ordered = sort_documents(chosen, query.sort)
    page = ordered[query.offset : query.offset + query.limit]
    return ViewPage(len(ordered), [project_fields(row, query.fields) for _, row in page])


def _stored_key(view: View, key: str) -> str | None:
    """The stored key a URL's key names (``None``: it cannot name a row)."""
    if not isinstance(view, DeclaredView):
        return key
    names = [n.replace(".", "_") for n in view.group_by]
    if len(names) == 1:
        texts = [key]
    elif key.startswith("["):
        try:
            values = msgspec.json.decode(key)
        except msgspec.DecodeError:
            return None
        return row_key(values) if isinstance(values, list) else None
    else:
        texts = key.split(",")
    if len(texts) != len(names):
        return None
    values = []
    for name, text in zip(names, texts, strict=True):
        field = view.fields[name]
        try:
            values.append(field.normalize(field.parse_query_value(text)))
        except ValueError:
            return None
    return row_key(values)


async def read_row(
    service: Service,
    view: View,
    key: str,
    *,
    as_of: int | None = None,
    known_at: int | None = None,
) -> dict[str, Any]:
    """One row by its key (a one-field ``group_by``: that field's value).

    Raises:
        NotFound: no row has that key (at that time).
    """
    stored = _stored_key(view, key)
    row: dict[str, Any] | None = None
    if stored is not None:
        if as_of is None and known_at is None:
            found = await service.store.read_view(view.name, [stored])
            row = public_row(found[stored]) if stored in found else None
        else:
            row = (await _rows(service, view, as_of, known_at)).get(stored)
    if row is None:
        when = "" if as_of is None and known_at is None else " at that time"
        raise NotFound(f"view {view.name!r} has no row {key!r}{when}")
    return row
