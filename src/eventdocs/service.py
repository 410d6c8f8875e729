"""The service: one store, its projector and scheduler, and every resource's API.

This is the object a Python user holds and the HTTP app wraps::

    service = Service(open_store("blog.db"), [Post.spec()])
    async with service:
        posts = service.documents("post")
        created = await posts.create({"title": "Hello"})
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from eventdocs.documents import Documents, Limits
from eventdocs.errors import DeclarationError, NotFound, StorageError
from eventdocs.projections.declared import bind_views
from eventdocs.projections.lease import lease_for
from eventdocs.projections.projector import Projector
from eventdocs.projections.scheduler import Scheduler
from eventdocs.projections.views import View, rebuild_stale_views
from eventdocs.storage.contract import EventStore, IndexSpec
from eventdocs.times import Clock, SystemClock

if TYPE_CHECKING:
    from eventdocs.resources import ResourceSpec

__all__ = ["Service"]


class Service:
    """Everything eventdocs does for a set of resources on one store."""

    def __init__(
        self,
        store: EventStore,
        resources: Sequence[ResourceSpec],
        *,
        views: Sequence[View] = (),
        clock: Clock | None = None,
        limits: Limits | None = None,
        background: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock or getattr(store, "clock", None) or SystemClock()
        self._limits = limits or Limits()
        self.specs = list(resources)
        self.views = list(views)
        self.background = background
        names = {spec.name for spec in self.specs}
        for view in self.views:
            missing = set(view.sources) - names
            if missing:
                raise DeclarationError(f"view {view.name!r} reads undeclared {sorted(missing)}")
        bind_views(self.views, self.specs)
        self.projector = Projector(store, self.clock, self.views)
        self.scheduler = Scheduler(self.projector, sorted(names), lease=lease_for(store))
        self._documents = {
            (s.name, s.version): Documents(
                store,
                s,
                clock=self.clock,
                limits=self._limits,
                projector=self.projector,
                scheduled=self.scheduler.notify,
            )
            for s in self.specs
        }

    @property
    def limits(self) -> Limits:
        """The configured limits; setting them applies to every resource at once."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        for documents in self._documents.values():
            documents.limits = limits

    @property
    def resource_names(self) -> list[str]:
        return sorted({spec.name for spec in self.specs})

    def documents(self, name: str, version: int | None = None) -> Documents:
        """The document API of resource ``name`` (its latest version by default)."""
        if version is None:
            versions = [v for (n, v) in self._documents if n == name]
            if not versions:
                raise NotFound(f"unknown resource {name!r}")
            version = max(versions)
        try:
            return self._documents[(name, version)]
        except KeyError:
            raise NotFound(f"unknown resource {name!r} version {version}") from None

    async def start(self) -> None:
        """Open the store, create what is missing, catch up and start scheduling."""
        await self.store.open()
        indexes: dict[str, dict[str, IndexSpec]] = {}
        for spec in self.specs:
            for index in spec.indexes():
                indexes.setdefault(spec.name, {})[index.field] = index
        for name in self.resource_names:
            await self.store.ensure_resource(name, list(indexes.get(name, {}).values()))
            await self.store.set_pending_limit(name, self.limits.pending_per_resource)
        for view in self.views:
            await self.store.ensure_view(view.name)
        for view in self.views:
            try:
                await rebuild_stale_views(self.store, [view])
            except StorageError:
                raise
            except Exception as exc:  # the view's own code: serve without it
                self.projector.view_failed(view, view.sources[0], 0, exc)
        if self.background:
            await self.scheduler.start()
        else:
            await self.scheduler.run_once()

    async def stop(self) -> None:
        """Stop scheduling and close the store; acknowledged writes are already durable."""
        await self.scheduler.stop()
        await self.store.close()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
