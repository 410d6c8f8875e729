"""The standard requests of one resource version, as falcon responders.

Two falcon resources serve ``/v{version}/{name}``: :class:`CollectionResource`
(query, create, ``_bulk``, ``_scheduled``) and :class:`DocumentResource`
(get, put, patch, delete, revisions, revert, diff). A responder whose request
the resource does not declare is set to ``None``, so falcon answers 405 with
the right ``Allow``. Reads that belong to a request share its fate:

* ``get`` also gates revisions, a revision's state and diff;
* ``update`` also gates revert and ``_bulk`` updates; ``delete`` gates
  ``_bulk`` deletes;
* ``query`` (or ``get``) gates the ``_scheduled`` listing, and any write
  request gates cancelling a scheduled write.

Every input (headers, query string, body) is parsed before the document API
is called, and the document API checks before it appends, so a request that
answers an error appends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import falcon
import falcon.asgi
import msgspec

from eventdocs.documents import BulkItem, BulkTarget, Documents, WriteResult
from eventdocs.errors import (
    ErrorDetail,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from eventdocs.http.conventions import link_next, link_page, minimal
from eventdocs.http.custom import Extender, extender
from eventdocs.http.errors import problem_for
from eventdocs.http.query import (
    pairs,
    parse_event_page,
    parse_fields,
    parse_query,
    parse_read,
    reject_unknown,
)
from eventdocs.http.wire import (
    JSON,
    MERGE_PATCH,
    etag_of,
    if_match_list,
    if_none_match,
    location,
    project,
    read_json,
    render_document,
    render_event,
    render_revision,
    send,
    struct_from,
    toa_header,
)
from eventdocs.storage.contract import Document
from eventdocs.times import parse_time
from eventdocs.versions import visible

__all__ = [
    "COLLECTION_ROUTES",
    "DOCUMENT_ROUTES",
    "CollectionResource",
    "DocumentResource",
    "NotDeclared",
]

# (path under the resource prefix, falcon suffix)
COLLECTION_ROUTES: Final = (
    ("", None),
    ("/_bulk", "bulk"),
    ("/_scheduled", "scheduled"),
    ("/_scheduled/{seq}", "cancel"),
)
DOCUMENT_ROUTES: Final = (
    ("/{id}", None),
    ("/{id}/revisions", "revisions"),
    ("/{id}/revisions/{rev}", "revision"),
    ("/{id}/revert", "revert"),
    ("/{id}/diff", "diff"),
)
_WRITES: Final = frozenset({"create", "update", "delete"})


class RevertBody(msgspec.Struct, forbid_unknown_fields=True):
    to_revision: int | None = None
    as_of: str | int | float | None = None


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    action: Literal["update", "delete"]
    ids: list[str | BulkTarget]
    body: dict[str, Any] | None = None
    merge: bool = False


def _integer(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or value > 2**62:
        raise InvalidRequest(
            f"{where} is not a number", [ErrorDetail(where, "expected an integer")]
        )
    return value


class NotDeclared:
    """A standard route none of whose requests the resource declares: 405, empty Allow."""

    def __init__(self, what: str) -> None:
        self.what = what

    async def _refuse(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: str) -> None:
        raise NotAllowed(f"{self.what} does not declare {req.method} {req.path}", ())

    on_get = on_post = on_put = on_patch = on_delete = _refuse


class _Resource:
    """What both falcon resources of a resource version share."""

    def __init__(self, documents: Documents, max_body: int) -> None:
        self.documents = documents
        self.spec = documents.spec
        self.prefix = documents.spec.prefix
        self.clock = documents.clock
        self.max_body = max_body
        self.max_limit = documents.limits.query_limit
        self.extenders: dict[str, Extender | None] = {
            r: extender(self.spec, r, documents) for r in ("query", "get", "create", "update")
        }
        self.extra_fields = {r: tuple(self.spec.overrides.get(r, {})) for r in self.extenders}

    def _disable(self, *responders: str) -> None:
        for name in responders:
            setattr(self, name, None)

    async def _render(
        self, doc: Document, request: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        out = visible(self.spec, render_document(doc))
        extend = self.extenders[request]
        if extend is not None:
            out.update(await extend(out))
        return out if fields is None else project(out, fields)

    async def _current(self, result: WriteResult) -> Document | None:
        """The document to answer a write in effect with.

        An immediate write answers the state it produced; a backdated one the
        state now, so the ETag is the revision an ``If-Match`` must name.
        """
        event = result.event
        if result.replayed or event.toa >= event.recorded_at:
            return result.document
        try:
            return await self.documents.get(event.id)
        except NotFound:
            return None

    async def _answer(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        result: WriteResult,
        request: str,
        status: int = 200,
    ) -> None:
        if result.scheduled:
            send(resp, render_event(result.event), 202)
            return
        doc = await self._current(result)
        if doc is None or doc.data is None:
            send(resp, None, 204)
            return
        if status == 201:
            resp.set_header("Location", location(self.prefix, doc.id))
        if minimal(req, resp):
            send(resp, None, 201 if status == 201 else 204, etag=doc.rev)
            return
        send(resp, await self._render(doc, request), status, etag=doc.rev)

    async def _if_match(
        self, req: falcon.asgi.Request, doc_id: str, toa: int | None = None
    ) -> int | None:
        """The revision to make a write conditional on, from an ``If-Match`` list.

        The document API checks one revision atomically with the append: the
        current one when the list names it (a change in between answers 412,
        as it should), else the first, which fails with the current revision
        in the problem. A scheduled write's revision is decided at its TOA,
        when no one can pick from a list: it takes one ETag (400 otherwise).
        """
        revs = if_match_list(req)
        if revs is None:
            return None
        if not revs:
            raise PreconditionFailed(
                "If-Match names no strong ETag (a weak ETag never matches)",
                [ErrorDetail("If-Match", 'use the strong ETag, such as "3"')],
            )
        if len(set(revs)) > 1 and toa is not None and toa > self.clock.now():
            raise InvalidRequest(
                "a scheduled write is checked at its time of action: If-Match takes one ETag",
                [ErrorDetail("If-Match", "one ETag with a future Caesium-TOA")],
            )
        if len(revs) > 1:
            try:
                current = (await self.documents.get(doc_id)).rev
            except NotFound:
                return revs[0]
            if current in revs:
                return current
        return revs[0]


class CollectionResource(_Resource):
    """``/v{n}/{name}``: query and create; ``_bulk``; ``_scheduled`` and cancel."""

    def __init__(self, documents: Documents, max_body: int) -> None:
        super().__init__(documents, max_body)
        requests = self.spec.requests
        if "query" not in requests:
            self._disable("on_get")
        if "create" not in requests:
            self._disable("on_post")
        if not requests & {"update", "delete"}:
            self._disable("on_post_bulk")
        if not requests & {"query", "get"}:
            self._disable("on_get_scheduled")
        if not requests & _WRITES:
            self._disable("on_delete_cancel")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query, times = parse_query(
            self.spec,
            pairs(req.query_string),
            self.extra_fields["query"],
            max_limit=self.max_limit,
            limits=self.documents.limits,
        )
        page = await self.documents.query(query, as_of=times.as_of, known_at=times.known_at)
        items = [await self._render(doc, "query", query.fields) for doc in page.items]
        last_id = page.items[-1].id if page.items else None
        link_next(req, resp, query.offset, len(items), page.total, last_id=last_id)
        send(resp, {"total": page.total, "resources": items})

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        reject_unknown(pairs(req.query_string))
        toa = toa_header(req)
        key = req.get_header("Idempotency-Key")
        body = await read_json(req, self.max_body)
        result = await self.documents.create(body, toa=toa, idempotency_key=key)
        await self._answer(req, resp, result, "create", 201)

    async def on_post_bulk(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        reject_unknown(pairs(req.query_string))
        toa = toa_header(req)
        key = req.get_header("Idempotency-Key")
        bulk = struct_from(BulkBody, await read_json(req, self.max_body), "the bulk request")
        if bulk.action not in self.spec.requests:
            raise NotAllowed(f"{self.spec.name} does not declare {bulk.action}", ["POST"])
        if bulk.action == "update" and bulk.body is None:
            raise ValidationFailed("an update needs a body", [ErrorDetail("/body", "is required")])
        if bulk.action == "delete" and bulk.body is not None:
            raise ValidationFailed("a delete takes no body", [ErrorDetail("/body", "not allowed")])
        items = await self.documents.bulk(
            bulk.action, bulk.ids, bulk.body, toa=toa, merge=bulk.merge, idempotency_key=key
        )
        results = [await self._bulk_item(item) for item in items]
        scheduled = toa is not None and toa > self.clock.now()
        send(resp, {"total": len(results), "resources": results}, 202 if scheduled else 200)

    async def _bulk_item(self, item: BulkItem) -> dict[str, Any]:
        if item.error is not None or item.result is None:
            problem, _ = problem_for(item.error or InvalidRequest("not applied"))
            return {"id": item.id, "status": problem.status, "error": msgspec.to_builtins(problem)}
        result = item.result
        if result.scheduled:
            return {"id": item.id, "status": 202, "event": render_event(result.event)}
        doc = await self._current(result)
        if doc is None or doc.data is None:
            return {"id": item.id, "status": 204}
        return {"id": item.id, "status": 200, "document": await self._render(doc, "update")}

    async def on_get_scheduled(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        page, after = parse_event_page(pairs(req.query_string), max_limit=self.max_limit)
        total, events = await self.documents.scheduled(
            limit=page.limit + (after is not None), offset=page.offset, after=after
        )
        events = link_page(
            req, resp, events, limit=page.limit, offset=page.offset, total=total, after=after,
            seq=lambda e: e.seq,
        )  # fmt: skip
        send(resp, {"total": total, "resources": [render_event(e) for e in events]})

    async def on_delete_cancel(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, seq: str
    ) -> None:
        reject_unknown(pairs(req.query_string))
        if toa_header(req) is not None:
            raise InvalidRequest(
                "a cancel takes effect when it is recorded",
                [ErrorDetail("Caesium-TOA", "not allowed on a cancel")],
            )
        event = await self.documents.cancel(_integer(seq, "{seq}"))
        send(resp, render_event(event))


class DocumentResource(_Resource):
    """``/v{n}/{name}/{id}``: the document, its revisions, revert and diff."""

    def __init__(self, documents: Documents, max_body: int) -> None:
        super().__init__(documents, max_body)
        requests = self.spec.requests
        if "get" not in requests:
            self._disable("on_get", "on_get_revisions", "on_get_revision", "on_get_diff")
        if "update" not in requests:
            self._disable("on_put", "on_patch", "on_post_revert")
        if "delete" not in requests:
            self._disable("on_delete")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        fields = None
        if req.query_string:
            params = pairs(req.query_string)
            times = parse_read(params, ("fields",))
            texts = [v for k, v in params if k == "fields"]
            fields = parse_fields(self.spec, texts[-1] if texts else None, self.extra_fields["get"])
            doc = await self.documents.get(id, as_of=times.as_of, known_at=times.known_at)
        else:
            doc = await self.documents.get(id)
        etag = etag_of(doc.rev, fields)
        if if_none_match(req, etag):
            resp.status = 304
            resp.set_header("ETag", etag)
            return
        send(resp, await self._render(doc, "get", fields), etag=etag)

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        await self._update(req, resp, id, merge=False)

    async def on_patch(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        await self._update(req, resp, id, merge=True)

    async def _update(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, doc_id: str, *, merge: bool
    ) -> None:
        reject_unknown(pairs(req.query_string))
        toa = toa_header(req)
        match = await self._if_match(req, doc_id, toa)
        media = (JSON, MERGE_PATCH) if merge else (JSON,)
        body = await read_json(req, self.max_body, media=media)
        result = await self.documents.update(doc_id, body, merge=merge, toa=toa, if_match=match)
        await self._answer(req, resp, result, "update")

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str
    ) -> None:
        reject_unknown(pairs(req.query_string))
        toa = toa_header(req)
        match = await self._if_match(req, id, toa)
        result = await self.documents.delete(id, toa=toa, if_match=match)
        if result.scheduled:
            send(resp, render_event(result.event), 202)
        else:  # 204 even when later writes left the document existing now (a backdated delete)
            send(resp, None, 204)

    async def on_get_revisions(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str
    ) -> None:
        page, after = parse_event_page(pairs(req.query_string), max_limit=self.max_limit)
        total, chosen = await self.documents.revisions_page(
            id, limit=page.limit + (after is not None), offset=page.offset, after=after
        )
        chosen = link_page(
            req, resp, chosen, limit=page.limit, offset=page.offset, total=total, after=after,
            seq=lambda r: r.event.seq,
        )  # fmt: skip
        send(resp, {"total": total, "resources": [render_revision(r) for r in chosen]})

    async def on_get_revision(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str, rev: str
    ) -> None:
        reject_unknown(pairs(req.query_string))
        doc = await self.documents.at_revision(id, _integer(rev, "{rev}"))
        send(resp, visible(self.spec, render_document(doc)), etag=None)

    async def on_post_revert(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str
    ) -> None:
        reject_unknown(pairs(req.query_string))
        toa = toa_header(req)
        match = await self._if_match(req, id, toa)
        key = req.get_header("Idempotency-Key")
        body = struct_from(RevertBody, await read_json(req, self.max_body), "the revert request")
        if (body.to_revision is None) == (body.as_of is None):
            raise ValidationFailed(
                "give exactly one of to_revision and as_of",
                [ErrorDetail("", "give exactly one of to_revision and as_of")],
            )
        as_of = None
        if body.as_of is not None:
            try:
                as_of = parse_time(str(body.as_of), path="/as_of")
            except InvalidRequest as exc:
                raise ValidationFailed(exc.detail, exc.errors) from None
        result = await self.documents.revert(
            id,
            to_revision=body.to_revision,
            as_of=as_of,
            toa=toa,
            if_match=match,
            idempotency_key=key,
        )
        await self._answer(req, resp, result, "update")

    async def on_get_diff(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str
    ) -> None:
        params = pairs(req.query_string)
        reject_unknown(params, ("from", "to", "from_time", "to_time"))
        sides: dict[str, int | None] = {}
        for name in ("from", "to", "from_time", "to_time"):
            values = [v for k, v in params if k == name]
            if len(values) > 1:
                raise InvalidRequest(
                    f"?{name} given twice", [ErrorDetail(f"?{name}", "given twice")]
                )
            if not values:
                sides[name] = None
            elif name.endswith("_time"):
                sides[name] = parse_time(values[0], path=f"?{name}")
            else:
                sides[name] = _integer(values[0], f"?{name}")
        for side in ("from", "to"):
            if sides[side] is not None and sides[f"{side}_time"] is not None:
                raise InvalidRequest(
                    f"give {side} or {side}_time, not both",
                    [ErrorDetail(f"?{side}_time", f"not together with ?{side}")],
                )
        patch = await self.documents.diff(
            id,
            from_rev=sides["from"],
            to_rev=sides["to"],
            from_time=sides["from_time"],
            to_time=sides["to_time"],
        )
        send(resp, patch)
