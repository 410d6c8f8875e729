"""Fixtures shared by the library-level tests: a service on each embedded store."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.times import ManualClock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

from blog import Post, PostsPerAuthor  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Service]:
    """The blog example on a fresh store, projected only when a test says so."""
    url = "memory:" if request.param == "memory" else str(tmp_path / "blog.db")
    store = open_store(url, clock=clock)
    service = Service(store, [Post.spec()], views=[PostsPerAuthor()], clock=clock, background=False)
    await service.start()
    yield service
    await service.stop()
