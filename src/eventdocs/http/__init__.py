"""The REST API of eventdocs: a falcon ASGI app over a :class:`~eventdocs.Service`."""

from eventdocs.http.app import create_app

__all__ = ["create_app"]
