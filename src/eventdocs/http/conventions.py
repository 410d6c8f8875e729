"""Small HTTP conventions of responders: the next page's ``Link`` and ``Prefer``.

A page with more results after it answers ``Link: <…>; rel="next"`` (RFC
8288): the same request with ``offset`` moved on, so a client follows links
to the end without computing anything (with ``after=<last id>`` when the
request pages by that cursor). ``Prefer: return=minimal`` (RFC 7240)
on a write answers without the document (``201``/``204`` with ``ETag`` and
``Location``) and says so in ``Preference-Applied``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeVar
from urllib.parse import urlencode

import falcon.asgi

from eventdocs.http.query import pairs

__all__ = ["link_after", "link_next", "link_page", "minimal"]

T = TypeVar("T")

_MINIMAL: Final = re.compile(r"(?:^|[,;\s])return\s*=\s*\"?minimal\"?(?:$|[,;\s])", re.IGNORECASE)


def link_after(req: falcon.asgi.Request, resp: falcon.asgi.Response, last: str) -> None:
    """Add ``Link: <path?…&after=LAST>; rel="next"``: a page read by the ``after``
    cursor that has more after it (the responder read one item past the page)."""
    params = [(k, v) for k, v in pairs(req.query_string) if k != "after"]
    params.append(("after", last))
    resp.append_link(f"{req.path}?{urlencode(params)}", "next")


def link_page(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    items: list[T],
    *,
    limit: int,
    offset: int,
    total: int,
    after: int | None,
    seq: Callable[[T], int],
) -> list[T]:
    """The page of an event listing, with its next page's ``Link``: by ``offset``,
    or by the ``after`` cursor, for which the responder read one item past the
    page (``limit + 1``) to know whether another page follows."""
    if after is None:
        link_next(req, resp, offset, len(items), total)
        return items
    page = items[:limit]
    if len(items) > limit and page:
        link_after(req, resp, str(seq(page[-1])))
    return page


def link_next(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    offset: int,
    count: int,
    total: int,
    *,
    last_id: str | None = None,
) -> None:
    """Add ``Link: <path?…&offset=N>; rel="next"`` when results remain after this page.

    A request that pages with the ``after`` cursor gets ``after=<last id>``
    instead (``last_id``: the id of this page's last document).
    """
    if count == 0 or offset + count >= total:
        return
    params = pairs(req.query_string)
    if last_id is not None and any(k == "after" for k, _ in params):
        params = [(k, v) for k, v in params if k != "after"]
        params.append(("after", last_id))
    else:
        params = [(k, v) for k, v in params if k != "offset"]
        params.append(("offset", str(offset + count)))
    resp.append_link(f"{req.path}?{urlencode(params)}", "next")


def minimal(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> bool:
    """Whether the client prefers no body (``Prefer: return=minimal``); says it is applied."""
    prefer = req.get_header("Prefer")
    if prefer is None or _MINIMAL.search(prefer) is None:
        return False
    resp.set_header("Preference-Applied", "return=minimal")
    resp.append_header("Vary", "Prefer")
    return True
