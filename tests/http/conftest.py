"""Fixtures of the HTTP tests (helpers live in ``httpkit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpkit import POST, Api, Thing, running


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both embedded backends, for the tests where storage matters."""
    return "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'api.db'}"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """The blog's Post and the all-operators Thing on the memory store."""
    async with running([POST, Thing.spec()], with_views=True) as running_api:
        yield running_api


@pytest.fixture
async def durable_api(store_url: str) -> AsyncIterator[Api]:
    """Post on the memory store and on a SQLite file."""
    async with running([POST], store_url=store_url) as running_api:
        yield running_api
