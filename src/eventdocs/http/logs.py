"""Logging under ``serve``: one handler on stderr, plain text or JSON lines.

uvicorn's own configuration is not used (``log_config=None``), so eventdocs'
records (``eventdocs.*``: the projector, the scheduler, errors) and
uvicorn's (``uvicorn.error``) go through the same handler, at the level
``--log-level`` sets. Every record carries the ``request_id`` of the request
being served (``-`` outside one).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Final, Literal

from eventdocs.http.middleware import request_id

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "configure"]

FORMATS: Final = ("plain", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
_PLAIN: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id() or "-"
        return True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (and replaces when called again)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        http = getattr(record, "http", None)
        if http is not None:
            out["http"] = http
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "info", fmt: Literal["plain", "json"] | str = "plain") -> None:
    """Send every record at ``level`` or above to stderr in ``fmt``."""
    handler = _Handler(sys.stderr)
    handler.addFilter(_RequestId())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):  # ours from an earlier call; others are left alone
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
