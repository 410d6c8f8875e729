"""What the MongoDB tests share: the server to use, fresh databases, and cleaning up.

``EVENTDOCS_TEST_MONGODB_URL`` names the server, a replica set (``scripts/mongo-test-server
start`` prints one; docs/mongodb.md tells how to use a real MongoDB), and
``EVENTDOCS_TEST_MONGODB_STANDALONE_URL`` a standalone server, for the tests of
what differs there (``scripts/mongo-test-server start --standalone``). Each
test gets a database of its own and drops it when done.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo.errors import PyMongoError

from eventdocs.errors import StorageError
from eventdocs.storage.mongodb import MongoStore

URL = os.environ.get("EVENTDOCS_TEST_MONGODB_URL")
SKIP_REASON = "set EVENTDOCS_TEST_MONGODB_URL to run the MongoDB tests"
needs_server = pytest.mark.skipif(not URL, reason=SKIP_REASON)
STANDALONE_URL = os.environ.get("EVENTDOCS_TEST_MONGODB_STANDALONE_URL")
STANDALONE_SKIP_REASON = "set EVENTDOCS_TEST_MONGODB_STANDALONE_URL to run the standalone tests"
needs_standalone = pytest.mark.skipif(not STANDALONE_URL, reason=STANDALONE_SKIP_REASON)


def database_url(name: str, server: str | None = None) -> str:
    """``server`` (``URL`` by default) pointing at database ``name`` (its options kept)."""
    server = server or URL
    assert server
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


def fresh_url(server: str | None = None) -> str:
    """A database no other test uses, on ``server`` (``URL`` by default)."""
    return database_url(f"eventdocs_test_{uuid.uuid4().hex[:12]}", server)


async def discard(store: MongoStore) -> None:
    """Drop ``store``'s database and close it."""
    with contextlib.suppress(PyMongoError, StorageError):
        db = store.db
        await db.client.drop_database(db.name)
    await store.close()
