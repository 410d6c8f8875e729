"""Asking a running server to replay: ``eventdocs replay --url``.

A served SQLite file has one owner, the server; a replay beside it goes
through the server's ``POST /admin/replay/{name}`` (the ``admin`` scope),
which rebuilds while the server keeps answering reads and writes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from eventdocs.errors import InvalidRequest, StorageError

__all__ = ["replay_remote"]


def replay_remote(url: str, resource: str, token: str | None, *, timeout: float = 3600) -> Any:
    """The server's answer to a replay of ``resource``: events, seconds, views rebuilt."""
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"--url {url!r} must start with http:// or https://")
    request = urllib.request.Request(
        f"{url.rstrip('/')}/admin/replay/{quote(resource, safe='')}", method="POST", data=b""
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail") or exc.reason
        except (ValueError, AttributeError):
            detail = exc.reason
        raise StorageError(f"{url}: replay of {resource} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StorageError(f"{url}: cannot reach the server ({reason})") from None
