"""What the MongoDB tests share: the server to use, fresh databases, and cleaning up.

``EVENTDOCS_TEST_MONGODB_URL`` names the server (``scripts/mongo-test-server
start`` prints one; docs/mongodb.md tells how to use a real MongoDB). Each
test gets a database of its own and removes its data when done.
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

_SYSTEM = (
    "eventdocs_checkpoints",
    "eventdocs_counters",
    "eventdocs_journal",
    "eventdocs_keys",
    "eventdocs_leases",
    "eventdocs_resources",
    "eventdocs_view_checkpoints",
)


def database_url(name: str) -> str:
    """``URL`` pointing at database ``name`` (its options kept)."""
    assert URL
    return urlunsplit(urlsplit(URL)._replace(path="/" + name))


def fresh_url() -> str:
    """A database no other test uses."""
    return database_url(f"eventdocs_test_{uuid.uuid4().hex[:12]}")


async def is_jongodb(store: MongoStore) -> bool:
    """Whether ``store``'s server is jongodb, the wire-compatible server of CI."""
    info = await store.db.client.admin.command("buildInfo")
    return "jongodb" in str(info.get("version", ""))


async def discard(store: MongoStore) -> None:
    """Remove ``store``'s data and close it.

    A real MongoDB drops the database. jongodb has neither ``dropDatabase``
    nor ``listCollections``, so every collection the store uses is emptied:
    its transactions copy all the data it holds, and leftovers would slow
    every later test.
    """
    with contextlib.suppress(PyMongoError, StorageError):
        db = store.db
        if not await is_jongodb(store):
            await db.client.drop_database(db.name)
        else:
            names = list(_SYSTEM)
            for resource in await store.resources():
                names += [resource, f"{resource}_revisions", f"{resource}_history"]
            views = {d["view"] async for d in db["eventdocs_view_checkpoints"].find({})}
            names += [f"view_{view}" for view in views]
            for name in names:
                await db[name].delete_many({})
    await store.close()
