"""The ASGI app factory: every declared resource version on one falcon app.

::

    service = Service(open_store("blog.db"), load_target("examples/blog.json"))
    app = create_app(service)          # serve with any ASGI server

The service is started and stopped by the ASGI lifespan, so the projector
and the scheduler live exactly as long as the server. Routes, for each
resource version, are ``/v{version}/{name}`` plus the standard sub-routes of
:mod:`eventdocs.http.routes` and the resource's custom requests; then
``/openapi.json``, ``/healthz``, ``/readyz``, ``/metrics``, ``/docs`` and ``/``.
Anything else is a problem+json 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import falcon
import falcon.asgi

from eventdocs.errors import DeclarationError, ErrorDetail
from eventdocs.http.auth import BearerAuth, Tokens, secure_openapi
from eventdocs.http.custom import CustomResource, route_template
from eventdocs.http.docs import DocsResource, IndexResource
from eventdocs.http.errors import install_error_handlers
from eventdocs.http.health import HealthResource, ReadyResource
from eventdocs.http.metrics import Metrics, MetricsResource
from eventdocs.http.middleware import HeadAsGet, RequestLog
from eventdocs.http.openapi import openapi_document
from eventdocs.http.routes import (
    COLLECTION_ROUTES,
    DOCUMENT_ROUTES,
    CollectionResource,
    DocumentResource,
    NotDeclared,
)
from eventdocs.http.views import mount_views, views_openapi
from eventdocs.http.wire import encode
from eventdocs.resources import CustomRequest, ResourceSpec
from eventdocs.service import Service

__all__ = ["App", "create_app"]

App = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


class _Lifespan:
    """Falcon middleware that starts the service on startup and stops it on shutdown."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.service.start()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.service.stop()


class _OpenAPIResource:
    def __init__(self, document: bytes) -> None:
        self.document = document

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = "application/json"
        resp.data = self.document


# Response headers a browser script may read on a cross-origin answer.
CORS_EXPOSED = ("ETag", "Location", "Link", "X-Request-ID", "Preference-Applied")


def create_app(
    service: Service,
    *,
    max_body: int = 1 << 20,
    tokens: Tokens | None = None,
    cors_origins: Sequence[str] = (),
    access_log: bool = False,
) -> App:
    """A falcon ASGI app serving ``service``'s resources (bodies up to ``max_body`` bytes).

    With ``tokens`` every request but ``/healthz`` needs a bearer token with
    the scope it implies (:mod:`eventdocs.http.auth`); without, anyone who
    can connect may do anything. The other limits are ``service.limits``.
    ``cors_origins`` (``"*"`` for any) turns CORS on for those origins; it is
    off by default. ``access_log`` writes one ``eventdocs.access`` record per
    request.

    Raises:
        DeclarationError: a custom request's endpoint collides with a standard route,
            or a token is granted scopes on a resource that is not served.
    """
    metrics = Metrics()
    middleware: list[Any] = [
        _Lifespan(service),
        HeadAsGet(),
        RequestLog(access=access_log),
        metrics,
    ]
    if cors_origins:
        origins = "*" if "*" in cors_origins else list(cors_origins)
        middleware.append(falcon.CORSMiddleware(allow_origins=origins, expose_headers=CORS_EXPOSED))
    document = openapi_document(service.specs)
    views_openapi(document, service.views)
    limit = document["components"]["parameters"]["Limit"]["schema"]
    limit["maximum"] = service.limits.query_limit
    limit["default"] = min(limit["default"], service.limits.query_limit)
    if tokens is not None:
        tokens.check_resources(service.resource_names)
        middleware.append(BearerAuth(tokens, service))
        document = secure_openapi(document)
    app: App = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handlers(app)
    for spec in service.specs:
        _mount(app, service, spec, max_body)
    mount_views(app, service)
    app.add_route("/healthz", HealthResource(service))
    app.add_route("/readyz", ReadyResource(service))
    app.add_route("/metrics", MetricsResource(service, metrics))
    app.add_route("/openapi.json", _OpenAPIResource(encode(document)))
    docs = DocsResource()
    app.add_route("/docs", docs)
    app.add_route("/docs/static/{name}", docs, suffix="static")
    app.add_route("/", IndexResource([s.prefix for s in service.specs]))
    return app


def _mount(app: App, service: Service, spec: ResourceSpec, max_body: int) -> None:
    documents = service.documents(spec.name, spec.version)
    collection = CollectionResource(documents, max_body)
    document = DocumentResource(documents, max_body)
    taken: set[str] = set()
    for resource, routes in ((collection, COLLECTION_ROUTES), (document, DOCUMENT_ROUTES)):
        for path, suffix in routes:
            taken.add(_shape(path))
            if suffix is None or any(
                getattr(resource, f"on_{m}_{suffix}", None) is not None
                for m in ("get", "post", "put", "patch", "delete")
            ):
                app.add_route(spec.prefix + path, resource, suffix=suffix)
            else:
                app.add_route(spec.prefix + path, NotDeclared(f"{spec.name} v{spec.version}"))

    groups: dict[str, dict[str, tuple[CustomRequest, dict[str, str]]]] = {}
    for request in spec.custom.values():
        template, names = route_template(request.path)
        if _shape("/" + template) in taken:
            where = f"{spec.name} v{spec.version} {request.name}.endpoint"
            raise DeclarationError(
                f"{where}: {request.path!r} is taken by a standard route",
                [ErrorDetail(where, "taken by a standard route")],
            )
        groups.setdefault(template, {})[request.method] = (request, names)
    for template, requests in groups.items():
        custom = CustomResource(spec, documents, requests, max_body)
        app.add_route(f"{spec.prefix}/{template}", custom)


def _shape(path: str) -> str:
    return re.sub(r"\{[^}/]*\}", "{}", path)
