"""``/docs``: Swagger UI over ``/openapi.json``, and ``/``: where things are.

The page's scripts and styles are the files the ``swagger-ui-py`` package
ships (the ``docs`` extra), served from ``/docs/static/``; nothing is loaded
from elsewhere. Without the extra ``/docs`` answers a 404 that names it.
The page and its files hold no data, so they need no token; the document
they load does (Swagger UI's *Authorize* asks for it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Final

import falcon
import falcon.asgi

from eventdocs.errors import NotFound
from eventdocs.http.wire import send

__all__ = ["DocsResource", "IndexResource", "swagger_ui_files"]

_ASSETS: Final = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>eventdocs API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"""


def swagger_ui_files() -> Path | None:
    """The folder of Swagger UI's files, if ``swagger-ui-py`` is installed (not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


class DocsResource:
    """``GET /docs`` and ``GET /docs/static/{name}``."""

    public = True  # no data here: BearerAuth lets it through

    def __init__(self) -> None:
        self.folder = swagger_ui_files()
        self.cache: dict[str, bytes] = {}

    def _need(self) -> Path:
        if self.folder is None:
            raise NotFound("/docs needs the docs extra: pip install 'eventdocs[docs]'")
        return self.folder

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self._need()
        resp.content_type = "text/html; charset=utf-8"
        resp.text = _PAGE

    async def on_get_static(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str
    ) -> None:
        folder = self._need()
        if name not in _ASSETS:
            raise NotFound(f"no file {name!r} here")
        if name not in self.cache:
            self.cache[name] = (folder / name).read_bytes()
        resp.content_type = _ASSETS[name]
        resp.cache_control = ["public", "max-age=86400"]
        resp.data = self.cache[name]


class IndexResource:
    """``GET /``: links to the document, the docs, health and every resource version."""

    def __init__(self, prefixes: list[str]) -> None:
        self.body: dict[str, Any] = {
            "openapi": "/openapi.json",
            "docs": "/docs",
            "healthz": "/healthz",
            "readyz": "/readyz",
            "metrics": "/metrics",
            "resources": prefixes,
        }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send(resp, self.body)
