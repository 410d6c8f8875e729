"""The baseline of the HTTP benchmark: a bare falcon ASGI app on uvicorn.

``GET /v1/post/{id}`` answers a small document and ``POST /v1/post`` echoes
the JSON it is sent, both through msgspec like eventdocs; no storage, no
validation. Served exactly as ``eventdocs serve`` is (one worker, httptools,
uvloop, no access log), so the ratio measures what eventdocs adds::

    python benchmarks/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

import falcon
import falcon.asgi
import msgspec
import uvicorn

encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode

DOCUMENT = {
    "title": "Hello",
    "blog": 1,
    "author": "ann",
    "published": False,
    "tags": ["a", "b"],
    "_rev": 1,
    "_updated": "2024-01-01T00:00:00.000000Z",
}


class Posts:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = decode(await req.stream.read())
        resp.status = 201
        resp.content_type = "application/json"
        resp.data = encode(body)

    async def on_get_one(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str
    ) -> None:
        resp.content_type = "application/json"
        resp.data = encode({"id": id, **DOCUMENT})


def create_app() -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response] = falcon.asgi.App()
    posts = Posts()
    app.add_route("/v1/post", posts)
    app.add_route("/v1/post/{id}", posts, suffix="one")
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
