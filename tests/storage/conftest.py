"""Fixtures of the storage tests: every backend behind one ``store`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventdocs.storage import EventStore
from stores import BACKENDS, Clock, dispose, make_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[EventStore]:
    s = await make_store(request.param, tmp_path, clock)
    await s.ensure_resource("post")
    yield s
    await dispose(s)
