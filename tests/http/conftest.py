"""Fixtures of the HTTP tests (helpers live in ``httpkit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpkit import POST, Api, Thing, running


@pytest.fixture(params=["memory", "sqlite", "mongodb"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Every backend, for the tests where storage matters (MongoDB when a server is given)."""
    if request.param == "memory":
        yield "memory:"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'api.db'}"
    else:
        from eventdocs.storage.mongodb import MongoStore
        from mongotest import SKIP_REASON, URL, discard, fresh_url

        if not URL:
            pytest.skip(SKIP_REASON)
        url = fresh_url()
        yield url
        store = MongoStore(url)
        await store.open()
        await discard(store)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """The blog's Post and the all-operators Thing on the memory store."""
    async with running([POST, Thing.spec()], with_views=True) as running_api:
        yield running_api


@pytest.fixture
async def durable_api(store_url: str) -> AsyncIterator[Api]:
    """Post on every backend (see ``store_url``)."""
    async with running([POST], store_url=store_url) as running_api:
        yield running_api
