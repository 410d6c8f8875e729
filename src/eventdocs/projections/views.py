"""Views: user-defined projections over one or more resources.

A view folds the changes of its source resources' master collections into a
keyed collection of its own (e.g. posts per author). The projector hands it
every change as it applies events, in the same transaction as the master
rows, so a view is never behind its sources.

The rule a view must keep, so that it can always be rebuilt from the log: its
rows depend only on the current states of the source documents, i.e. applying
``a -> b`` then ``b -> c`` gives the same rows as ``a -> c``. Counts, sums,
indexes and groupings keep it naturally. Rebuild and verify rely on it: they
apply one change ``None -> state`` per existing document. Rebuilding lives
here too: the projector rebuilds after a reset, the service at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from eventdocs.errors import DeclarationError, StorageError
from eventdocs.projections.lease import lease_for
from eventdocs.storage.contract import Checkpoint, EventStore, ProjectionBatch, ViewWrite

if TYPE_CHECKING:
    from eventdocs.fields import Field

__all__ = ["Change", "Rows", "View", "fold_view", "rebuild_stale_views", "rebuild_view"]

Rows = dict[str, dict[str, Any] | None]


class Change(msgspec.Struct, frozen=True):
    """Document ``id`` of ``resource`` went from ``before`` to ``after`` (``None``: absent)."""

    resource: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class View:
    """Subclass with ``name``, ``sources`` and the two methods below.

    ``fields`` (optional) declares the rows' fields, with their operators, for
    reads over HTTP and the CLI: ``{"author": Text(operators=["equal"])}``.
    A view without them is read whole or paged, never filtered or sorted.
    """

    name: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]
    fields: Mapping[str, Field] = MappingProxyType({})

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise DeclarationError(f"view {cls.__name__} needs a name that is an identifier")
        if not getattr(cls, "sources", None):
            raise DeclarationError(f"view {name!r} needs at least one source resource")

    def keys(self, change: Change) -> Iterable[str]:
        """The keys of the rows ``change`` may touch (they are loaded before ``apply``)."""
        raise NotImplementedError

    def apply(self, rows: Rows, change: Change) -> None:
        """Fold ``change`` into ``rows`` (set a key to ``None`` to delete its row)."""
        raise NotImplementedError


async def fold_view(
    store: EventStore, view: View, changes: Sequence[Change], checkpoint: dict[str, Checkpoint]
) -> ViewWrite:
    """Apply ``changes`` to the stored rows of ``view``; the rows to write."""
    keys = sorted({k for change in changes for k in view.keys(change)})
    rows: Rows = dict(await store.read_view(view.name, keys)) if keys else {}
    for change in changes:
        view.apply(rows, change)
    return ViewWrite(
        puts={k: v for k, v in rows.items() if v is not None},
        deletes=[k for k, v in rows.items() if v is None],
        checkpoint=checkpoint,
    )


async def _master_changes(
    store: EventStore, resource: str, chunk: int = 1000
) -> AsyncIterator[list[Change]]:
    after = ""
    while docs := await store.scan(resource, after=after, limit=chunk):
        yield [Change(resource, d.id, None, d.data) for d in docs]
        after = docs[-1].id


async def rebuild_view(store: EventStore, view: View, *, attempts: int = 20) -> None:
    """Rebuild ``view`` from the current master collections of its sources.

    Every write is conditional on the source checkpoints read first, so a
    projector step in between (another process's) makes the attempt start
    over instead of folding its change in twice.
    """
    for _ in range(attempts):
        if await _rebuild_once(store, view):
            return
    raise StorageError(f"view {view.name!r}: its sources kept moving during {attempts} rebuilds")


async def _rebuild_once(store: EventStore, view: View) -> bool:
    bases = {resource: await store.read_checkpoint(resource) for resource in view.sources}
    await store.reset_view(view.name)
    for resource, base in bases.items():
        async for changes in _master_changes(store, resource):
            write = await fold_view(store, view, changes, {})
            batch = ProjectionBatch(base, views={view.name: write}, base=base)
            if not await store.write_projection(resource, batch):
                return False
        mark = ViewWrite(checkpoint={resource: base})
        if not await store.write_projection(
            resource, ProjectionBatch(base, views={view.name: mark}, base=base)
        ):
            return False
    return True


async def rebuild_stale_views(
    store: EventStore, views: Sequence[View], *, poll: float = 0.2
) -> None:
    """Rebuild every view whose checkpoints do not match its sources' (new views).

    Processes sharing a store (``uvicorn --workers 4``) start at once: a lease
    per view makes one of them rebuild it while the others wait until it is
    done, or until its lease expires if that process died.
    """
    for view in views:
        while await _stale(store, view):
            lease = lease_for(store, f"view:{view.name}", ttl=10.0)
            if lease is None:
                await rebuild_view(store, view)
                break
            await lease.start()
            try:
                if lease.held:
                    if await _stale(store, view):
                        await rebuild_view(store, view)
                    break
            finally:
                await lease.stop()
            await asyncio.sleep(poll)


async def _stale(store: EventStore, view: View) -> bool:
    marks = await store.view_checkpoints(view.name)
    for resource in view.sources:
        if marks.get(resource) != await store.read_checkpoint(resource):
            return True
    return False
