"""Views: user-defined projections over one or more resources.

A view folds the changes of its source resources' master collections into a
keyed collection of its own (e.g. posts per author). The projector hands it
every change as it applies events, in the same transaction as the master
rows, so a view is never behind its sources.

The rule a view must keep, so that it can always be rebuilt from the log: its
rows depend only on the current states of the source documents, i.e. applying
``a -> b`` then ``b -> c`` gives the same rows as ``a -> c``. Counts, sums,
indexes and groupings keep it naturally. Rebuild and verify rely on it: they
apply one change ``None -> state`` per existing document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import msgspec

from eventdocs.errors import DeclarationError

__all__ = ["Change", "Rows", "View"]

Rows = dict[str, dict[str, Any] | None]


class Change(msgspec.Struct, frozen=True):
    """Document ``id`` of ``resource`` went from ``before`` to ``after`` (``None``: absent)."""

    resource: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class View:
    """Subclass with ``name``, ``sources`` and the two methods below."""

    name: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
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
