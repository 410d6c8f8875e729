"""``serve`` end to end: tokens and limits from its options, and the refusal to go public."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server import BLOG_JSON, Server, free_port

from eventdocs.errors import InvalidRequest
from eventdocs.http import serve
from eventdocs.http.auth import hash_token

SECRET = "serve-test-secret-0123456789"
POST = {"title": "Hello", "blog": 1}


def test_serve_applies_tokens_and_every_limit(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    entry = {"name": "ci", "sha256": hash_token(SECRET), "scopes": {"*": ["admin"]}}
    tokens.write_text(json.dumps({"tokens": [entry]}))
    options = ["--tokens", str(tokens), "--max-body", "2048", "--max-limit", "10"]
    options += ["--max-bulk-ids", "2", "--max-pending", "1"]
    server = Server(tmp_path / "limits.db", tmp_path / "serve.log", args=options)
    server.start()
    try:
        auth = {"Authorization": f"Bearer {SECRET}"}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            anonymous = client.get("/v1/post")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert client.get("/healthz").status_code == 200

            def problem(response: httpx.Response, status: int) -> dict[str, Any]:
                assert response.status_code == status, response.text
                assert response.headers["content-type"] == "application/problem+json"
                body: dict[str, Any] = response.json()
                return body

            big = {**POST, "body": "x" * 4096}
            assert (
                "2048 bytes"
                in problem(client.post("/v1/post", json=big, headers=auth), 413)["detail"]
            )
            ids = [client.post("/v1/post", json=POST, headers=auth).json()["id"] for _ in range(3)]
            page = client.get("/v1/post", params={"limit": 11}, headers=auth)
            assert problem(page, 400)["detail"] == "?limit: at most 10"
            bulk = {"action": "update", "ids": ids, "body": {"title": "x"}}
            too_many = client.post("/v1/post/_bulk", json=bulk, headers=auth)
            assert "at most 2 ids" in problem(too_many, 413)["detail"]
            later = {**auth, "Caesium-TOA": "2100-01-01T00:00:00Z"}
            assert (
                client.put(f"/v1/post/{ids[0]}", json={"title": "a"}, headers=later).status_code
                == 202
            )
            pending = client.put(f"/v1/post/{ids[1]}", json={"title": "b"}, headers=later)
            assert "1 scheduled writes pending" in problem(pending, 429)["detail"]
            assert client.get("/healthz").json()["resources"]["post"]["last_seq"] == 4
            document = client.get("/openapi.json", headers=auth).json()
            assert document["components"]["parameters"]["Limit"]["schema"]["maximum"] == 10
    finally:
        server.terminate()
    assert SECRET not in (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize("command", ["serve", "cli"])
def test_serve_refuses_a_public_host_without_tokens(tmp_path: Path, command: str) -> None:
    module = ["eventdocs.http.serve"] if command == "serve" else ["eventdocs", "serve"]
    store = tmp_path / "never.db"
    done = subprocess.run(
        [sys.executable, "-m", *module, BLOG_JSON, "--host", "0.0.0.0", "--port", str(free_port()),
         "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "refusing to serve on 0.0.0.0 without tokens" in lines[0]
    assert "--tokens" in lines[0] and "--insecure" in lines[0]
    assert not store.exists()


def test_run_binds_publicly_only_with_tokens_or_insecure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(serve.uvicorn.Server, "run", lambda self: started.append(self.config))
    store = str(tmp_path / "x.db")
    with pytest.raises(InvalidRequest, match="refusing"):
        serve.run(BLOG_JSON, host="::", store=store)
    assert not started
    with caplog.at_level(logging.WARNING, logger="eventdocs.serve"):
        serve.run(BLOG_JSON, host="0.0.0.0", store=store, insecure=True)
    assert "without authentication" in caplog.text
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": []}))
    serve.run(BLOG_JSON, host="0.0.0.0", store=store, tokens=str(tokens), max_limit=5)
    serve.run(BLOG_JSON, host="127.0.0.1", store=store)
    assert [c.host for c in started] == ["0.0.0.0", "0.0.0.0", "127.0.0.1"]


def test_max_pending_holds_under_concurrent_scheduled_writes(tmp_path: Path) -> None:
    """Concurrent scheduled writes against a real server never pass --max-pending."""
    import asyncio

    server = Server(tmp_path / "pending.db", tmp_path / "serve.log", args=["--max-pending", "20"])
    server.start()
    try:

        async def burst() -> list[int]:
            later = {"Caesium-TOA": "2100-01-01T00:00:00Z"}
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                answers = await asyncio.gather(
                    *(client.post("/v1/post", json=POST, headers=later) for _ in range(60))
                )
                return [a.status_code for a in answers]

        statuses = asyncio.run(burst())
        assert sorted(set(statuses)) == [202, 429] and statuses.count(202) == 20
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/v1/post/_scheduled").json()["total"] == 20
            health = client.get("/healthz").json()["resources"]["post"]
            assert health["scheduled"] == 20 and health["last_seq"] == 20
    finally:
        server.terminate()
