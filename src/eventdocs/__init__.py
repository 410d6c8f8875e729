"""eventdocs: an event-sourced document store with a REST API.

Every write is an immutable, timestamped event in its resource's log; the
master collections, history, views and every read at another time are folds
of that log.
"""

from eventdocs.documents import Documents, Limits, WriteResult
from eventdocs.errors import EventdocsError
from eventdocs.projections.views import Change, View
from eventdocs.resources import Resource, ResourceSpec, load_declarations, load_target
from eventdocs.service import Service
from eventdocs.storage import open_store

__all__ = [
    "Change",
    "Documents",
    "EventdocsError",
    "Limits",
    "Resource",
    "ResourceSpec",
    "Service",
    "View",
    "WriteResult",
    "load_declarations",
    "load_target",
    "open_store",
]
__version__ = "0.1.0"
