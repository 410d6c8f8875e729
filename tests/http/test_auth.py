"""Bearer tokens with scopes: the auth matrix (who can do what), and its edges.

``MATRIX`` is the contract: for each request, the tokens that may make it.
Every other token gets a 403 (a 401 without a valid token), both
problem+json, and nothing is appended. ``docs/reliability.md`` shows the
same table; a test keeps the two equal.
"""

# ruff: noqa: RUF012  (declarations are mesh-style class attributes)

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from falcon.testing import ASGIConductor, Result
from httpkit import POST, ROOT, assert_problem, post

from eventdocs import Service, open_store
from eventdocs.documents import Documents
from eventdocs.errors import DeclarationError
from eventdocs.fields import Boolean, Text
from eventdocs.http import create_app
from eventdocs.http.auth import (
    SCOPES,
    hash_token,
    load_tokens,
    read_tokens_file,
    tokens_of_target,
)
from eventdocs.resources import Resource
from eventdocs.times import ManualClock, format_time


class Job(Resource):
    """A resource with an admin-only custom request (a replay-type operation)."""

    name = "job"
    version = 1

    class schema:
        title = Text()

    class reindex:
        endpoint = ("POST", "reindex")
        scope = "admin"
        responses = {200: {"done": Boolean(required=True)}}

        async def handle(self, documents: Documents, body: dict[str, Any]) -> Any:
            return {"done": True}

    class count:
        endpoint = ("GET", "count")
        responses = {200: {"done": Boolean(required=True)}}

        async def handle(self, documents: Documents, body: dict[str, Any]) -> Any:
            return {"done": True}


SECRETS = {
    "reader": "reader-secret-0123456789",
    "writer": "writer-secret-0123456789",
    "scheduler": "scheduler-secret-012345",
    "canceller": "canceller-secret-012345",
    "admin": "admin-secret-0123456789",
    "other": "other-secret-01234567890",
}
TOKENS = {
    "tokens": [
        {"name": "reader", "sha256": hash_token(SECRETS["reader"]), "scopes": {"*": ["read"]}},
        {
            "name": "writer",
            "sha256": hash_token(SECRETS["writer"]),
            "scopes": {"post": ["read", "write"], "job": ["read"]},
        },
        {
            "name": "scheduler",
            "sha256": hash_token(SECRETS["scheduler"]),
            "scopes": {"post": ["write", "schedule"], "*": ["read"]},
        },
        {"name": "canceller", "token": SECRETS["canceller"], "scopes": {"post": ["schedule"]}},
        {"name": "admin", "sha256": hash_token(SECRETS["admin"]), "scopes": {"*": ["admin"]}},
        {
            "name": "other",
            "sha256": hash_token(SECRETS["other"]),
            "scopes": {"job": ["read", "write", "schedule"]},
        },
    ]
}
WHO = ("nobody", "forged", *SECRETS)


@dataclass
class Secured:
    client: ASGIConductor
    service: Service
    clock: ManualClock

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        if who == "nobody":
            return extra
        secret = "forged-secret-0123456789" if who == "forged" else SECRETS[who]
        return {"Authorization": f"Bearer {secret}", **extra}

    def toa(self, seconds: float) -> str:
        return format_time(self.clock.now() + int(seconds * 1_000_000))

    async def seq(self) -> int:
        return await self.service.store.last_seq("post")

    async def as_admin(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**kwargs.pop("headers", {}), **self.headers("admin")}
        result = await self.client.simulate_request(method, path, headers=headers, **kwargs)
        assert result.status_code < 300, result.text
        return result.json


@asynccontextmanager
async def secured() -> AsyncIterator[Secured]:
    clock = ManualClock()
    service = Service(
        open_store("memory:", clock=clock), [POST, Job.spec()], clock=clock, background=False
    )
    app = create_app(service, tokens=load_tokens(TOKENS))
    async with ASGIConductor(app) as client:
        yield Secured(client, service, clock)


Request = Callable[[Secured, str], Awaitable[tuple[Result, int]]]


def _call(method: str, path: str, body: Any = None, *, toa: float | None = None) -> Request:
    """A request on a fresh post (``{id}``, or a callable body) or a scheduled write (``{seq}``).

    Returns the result and the log's last seq before the request (after the setup).
    """

    async def call(api: Secured, who: str) -> tuple[Result, int]:
        doc_id = seq = ""
        if "{id}" in path or "{seq}" in path or callable(body):
            doc_id = str((await api.as_admin("POST", "/v1/post", json=post()))["id"])
        if "{seq}" in path:
            later = {"Caesium-TOA": api.toa(60)}
            event = await api.as_admin(
                "PUT", f"/v1/post/{doc_id}", json={"title": "later"}, headers=later
            )
            seq = str(event["seq"])
        api.clock.advance(10_000_000)  # so a TOA 1 s back is after the setup
        data = body(doc_id) if callable(body) else body
        extra = {} if toa is None else {"Caesium-TOA": api.toa(toa)}
        before = await api.seq()
        result = await api.client.simulate_request(
            method, path.format(id=doc_id, seq=seq), json=data, headers=api.headers(who, **extra)
        )
        return result, before

    return call


def _bulk(doc_id: str) -> dict[str, Any]:
    return {"action": "update", "ids": [doc_id], "body": {"title": "bulk"}}


READERS = {"reader", "writer", "scheduler", "admin"}
REQUESTS: dict[str, tuple[Request, set[str]]] = {
    "GET /healthz": (_call("GET", "/healthz"), {*WHO}),
    "GET /openapi.json": (_call("GET", "/openapi.json"), {*READERS, "other"}),
    "GET /v1/post (query)": (_call("GET", "/v1/post"), READERS),
    "GET /v1/post/{id}": (_call("GET", "/v1/post/{id}"), READERS),
    "GET /v1/post/{id}/revisions": (_call("GET", "/v1/post/{id}/revisions"), READERS),
    "GET /v1/post/_scheduled": (_call("GET", "/v1/post/_scheduled"), READERS),
    "POST /v1/post (create)": (_call("POST", "/v1/post", post()), {"writer", "scheduler", "admin"}),
    "PUT /v1/post/{id}": (
        _call("PUT", "/v1/post/{id}", {"title": "x"}),
        {"writer", "scheduler", "admin"},
    ),
    "PATCH /v1/post/{id}": (
        _call("PATCH", "/v1/post/{id}", {"title": "x"}),
        {"writer", "scheduler", "admin"},
    ),
    "DELETE /v1/post/{id}": (_call("DELETE", "/v1/post/{id}"), {"writer", "scheduler", "admin"}),
    "PUT backdated (TOA in the past)": (
        _call("PUT", "/v1/post/{id}", {"title": "x"}, toa=-1),
        {"writer", "scheduler", "admin"},
    ),
    "POST /v1/post/{id}/revert": (
        _call("POST", "/v1/post/{id}/revert", {"to_revision": 1}),
        {"writer", "scheduler", "admin"},
    ),
    "POST /v1/post/_bulk": (
        _call("POST", "/v1/post/_bulk", _bulk),
        {"writer", "scheduler", "admin"},
    ),
    "POST /v1/post scheduled (TOA ahead)": (
        _call("POST", "/v1/post", post(), toa=60),
        {"scheduler", "admin"},
    ),
    "PUT /v1/post/{id} scheduled": (
        _call("PUT", "/v1/post/{id}", {"title": "x"}, toa=60),
        {"scheduler", "admin"},
    ),
    "POST /v1/post/{id}/revert scheduled": (
        _call("POST", "/v1/post/{id}/revert", {"to_revision": 1}, toa=60),
        {"scheduler", "admin"},
    ),
    "POST /v1/post/_bulk scheduled": (
        _call("POST", "/v1/post/_bulk", _bulk, toa=60),
        {"scheduler", "admin"},
    ),
    "DELETE /v1/post/_scheduled/{seq} (cancel)": (
        _call("DELETE", "/v1/post/_scheduled/{seq}"),
        {"scheduler", "canceller", "admin"},
    ),
    "GET /v1/job/count (custom read)": (_call("GET", "/v1/job/count"), {*READERS, "other"}),
    "POST /v1/job/reindex (custom, admin)": (_call("POST", "/v1/job/reindex", {}), {"admin"}),
}
MATRIX = {name: allowed for name, (_, allowed) in REQUESTS.items()}


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_auth_matrix(name: str) -> None:
    """Each token, on each request: allowed, or 401/403 problem+json appending nothing."""
    request, allowed = REQUESTS[name]
    async with secured() as api:
        for who in WHO:
            result, before = await request(api, who)
            if who in allowed:
                assert result.status_code < 300, (who, result.text)
                continue
            status = 401 if who in ("nobody", "forged") else 403
            body = assert_problem(result, status)
            assert await api.seq() == before, (who, "appended")
            if status == 401:
                challenge = result.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="eventdocs"')
                assert ("invalid_token" in challenge) == (who == "forged")
            else:
                assert who in body["detail"] and "scope" in body["detail"]
                challenge = result.headers["www-authenticate"]
                scope = re.search(r'scope="([^"]*)"', challenge)
                assert scope is not None and "insufficient_scope" in challenge
                # RFC 6750 section 3: a space-delimited list of scope names
                assert all(s in SCOPES for s in scope.group(1).split(" ")), challenge


def matrix_table() -> str:
    """The auth matrix as the markdown table in docs/reliability.md."""
    lines = [
        "| request | " + " | ".join(WHO) + " |",
        "|---|" + "---|" * len(WHO),
    ]
    for name, allowed in MATRIX.items():
        cells = [
            "yes" if t in allowed else ("401" if t in ("nobody", "forged") else "403") for t in WHO
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_docs_show_the_matrix_the_tests_check() -> None:
    docs = (ROOT / "docs" / "reliability.md").read_text()
    assert matrix_table() in docs, (
        "the table: cd tests/http; python -c 'import test_auth as t; print(t.matrix_table())'"
    )


async def test_tokens_are_not_logged_nor_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with secured() as api:
        for secret in (SECRETS["reader"], "forged-secret-0123456789"):
            for path in ("/v1/post", "/v1/nope", "/v1/post/x"):
                result = await api.client.simulate_post(
                    path, json=post(), headers={"Authorization": f"Bearer {secret}"}
                )
                assert secret not in result.text and secret not in str(result.headers)
        assert not any(
            secret in r.getMessage() for r in caplog.records for secret in SECRETS.values()
        )


async def test_openapi_declares_the_bearer_scheme() -> None:
    async with secured() as api:
        document = await api.as_admin("GET", "/openapi.json")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    create = document["paths"]["/v1/post"]["post"]["responses"]
    assert {"401", "403"} <= set(create)


async def test_malformed_authorization_headers_answer_401() -> None:
    async with secured() as api:
        for header in (
            "Basic YWRtaW46YWRtaW4=",
            "Bearer",
            "Bearer  ",
            f"Token {SECRETS['admin']}",
            f"Bearer {SECRETS['admin']} extra",
            "Bearer \u00e9\u00e9",
        ):
            result = await api.client.simulate_get("/v1/post", headers={"Authorization": header})
            assert_problem(result, 401)
        ok = await api.client.simulate_get(
            "/v1/post", headers={"Authorization": f"bearer {SECRETS['admin']}"}
        )
        assert ok.status_code == 200


def test_identify_compares_every_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = load_tokens(TOKENS)
    assert tokens.identify(SECRETS["admin"]) is not None
    assert tokens.identify(SECRETS["admin"] + "x") is None
    assert tokens.identify("") is None
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    tokens.identify(SECRETS["reader"])  # the first: the others are still compared
    assert len(calls) == len(tokens)
    digest = hashlib.sha256(SECRETS["reader"].encode()).digest()
    assert all(a == digest for a, _ in calls)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({}, "tokens"),
        ({"tokens": [{"name": "a", "scopes": {"*": ["read"]}}]}, "tokens[0]"),
        ({"tokens": [{"name": "a", "sha256": "xyz", "scopes": {"*": ["read"]}}]}, "sha256"),
        ({"tokens": [{"name": "a", "token": "short", "scopes": {"*": ["read"]}}]}, "token"),
        ({"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": ["root"]}}]}, "root"),
        ({"tokens": [{"name": "a", "token": "x" * 20, "scopes": {}}]}, "scopes"),
        ({"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": "read"}}]}, "scopes.*"),
        ({"tokens": [{"name": "", "token": "x" * 20, "scopes": {"*": ["read"]}}]}, "name"),
        (
            {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": ["read"]}, "role": 1}]},
            "role",
        ),
        (
            {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": ["read"]}}] * 2},
            "used twice",
        ),
        (
            {
                "tokens": [
                    {"name": "a", "token": "x" * 20, "scopes": {"*": ["read"]}},
                    {"name": "b", "sha256": hash_token("x" * 20), "scopes": {"*": ["admin"]}},
                ]
            },
            "same token",
        ),
    ],
)
def test_bad_tokens_files_name_what_is_wrong(data: Any, where: str) -> None:
    with pytest.raises(DeclarationError, match=where.replace("[", r"\[").replace("*", r"\*")):
        load_tokens(data)


def test_scopes_on_an_unknown_resource_or_custom_scope_fail_at_build() -> None:
    service = Service(open_store("memory:"), [POST], background=False)
    tokens = load_tokens(
        {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"psot": ["read"]}}]}
    )
    with pytest.raises(DeclarationError, match="psot"):
        create_app(service, tokens=tokens)

    class Bad(Job):
        name = "bad"

        class reindex(Job.reindex):
            scope = "superuser"

    service = Service(open_store("memory:"), [Bad.spec()], background=False)
    with pytest.raises(DeclarationError, match="superuser"):
        create_app(service, tokens=load_tokens({"tokens": []}))


def test_tokens_come_from_a_file_or_the_declarations(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    entry = {"name": "ci", "token": "t" * 20, "scopes": {"*": ["read"]}}
    path.write_text(json.dumps({"tokens": [entry]}))
    assert read_tokens_file(path).identify("t" * 20) is not None
    with pytest.raises(DeclarationError, match="cannot read"):
        read_tokens_file(tmp_path / "missing.json")
    declarations = tmp_path / "blog.json"
    blog = json.loads((ROOT / "examples" / "blog.json").read_text())
    declarations.write_text(json.dumps({**blog, "tokens": TOKENS["tokens"][:1]}))
    declared = tokens_of_target(str(declarations))
    assert declared is not None and declared.identify(SECRETS["reader"]) is not None
    assert tokens_of_target(str(ROOT / "examples" / "blog.json")) is None
    module = tmp_path / "secured_blog.py"
    module.write_text(
        "from eventdocs.resources import Resource\n"
        "from eventdocs.fields import Text\n"
        "class Note(Resource):\n    name = 'note'\n    class schema:\n        text = Text()\n"
        f"tokens = [{{'name': 'ci', 'token': '{'t' * 20}', 'scopes': {{'note': ['read']}}}}]\n"
    )
    from_module = tokens_of_target(str(module))
    assert from_module is not None and from_module.identify("t" * 20) is not None


def test_eventdocs_token_makes_a_token_and_its_entry() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventdocs", "token", "ci", "read", "write"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Warning" not in done.stderr
    token = done.stderr.rsplit(": ", 1)[1].strip()
    tokens = load_tokens([json.loads(done.stdout)])
    found = tokens.identify(token)
    assert found is not None and found.granted("post") == {"read", "write"}
    assert token not in done.stdout
