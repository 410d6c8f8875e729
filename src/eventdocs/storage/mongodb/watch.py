"""Change streams: other processes' appends wake this process's scheduler.

Every append ends with an update of its log's counter document (the commit of
:mod:`.append`), so one change stream on ``eventdocs_counters`` sees every
append of every process as soon as it is final. Where the server has no change
streams (a standalone server) :meth:`Watch.watch_appends` says so and the
scheduler keeps polling; a stream that breaks is reopened, and the wake-up
after reopening covers whatever happened in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pymongo.errors import OperationFailure, PyMongoError

from eventdocs.storage.mongodb.base import Base

__all__ = ["Watch"]

log = logging.getLogger("eventdocs.storage.mongodb")

# The server cannot run $changeStream: not a replica set, or not implemented.
_UNSUPPORTED = {40573, 40324, 115, 136}


class Watch(Base):
    """``watch_appends``: a background task that calls ``notify`` after appends."""

    async def watch_appends(self, notify: Callable[[], None]) -> asyncio.Task[None] | None:
        """Start calling ``notify()`` whenever any process appends; ``None`` if the
        server has no change streams (the caller then polls)."""
        if self.standalone:
            return None
        counters = self._coll("eventdocs_counters")
        try:
            stream = await counters.watch([{"$match": {"operationType": "update"}}])
        except OperationFailure as exc:
            if exc.code in _UNSUPPORTED:
                return None
            raise

        async def run() -> None:
            current = stream
            delay = 0.05
            while True:
                try:
                    async with current:
                        async for _ in current:
                            notify()
                            delay = 0.05
                except PyMongoError as exc:
                    log.warning("change stream broke (%s); reopening", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                with contextlib.suppress(PyMongoError):
                    current = await counters.watch([{"$match": {"operationType": "update"}}])
                    notify()  # whatever was appended while the stream was down

        return asyncio.create_task(run(), name="eventdocs-watch")
