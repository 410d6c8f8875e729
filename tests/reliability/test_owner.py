"""One owner per SQLite file, with real processes: a server, and others beside it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server import BLOG_JSON, Server, free_port

EXIT_TIMEOUT = 60.0


def eventdocs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``eventdocs`` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "eventdocs", *args],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        env=None if env is None else {**os.environ, **env},
    )


def schema(path: Path) -> list[tuple[str, str]]:
    """sqlite_master, read through a read-only connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, coalesce(sql, '') FROM sqlite_master ORDER BY 1")
        return rows.fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settled(path: Path) -> str:
    """The file's digest once the server's background checkpoint of its last commits
    is done (it follows them within a quarter of a second): the same for a second."""
    last = digest(path)
    for _ in range(60):
        time.sleep(1.0)
        now = digest(path)
        if now == last:
            return now
        last = now
    raise AssertionError(f"{path} kept changing")


def assert_refused(result: subprocess.CompletedProcess[str], store: Path, pid: int) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(store) in lines[0] and f"process {pid}" in lines[0], lines[0]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "blog.db", tmp_path / "serve.log") as running:
        running.start()
        yield running


def created(server: Server, title: str) -> str:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post("/v1/post", json={"title": title, "blog": 1, "author": "ann"})
        assert answer.status_code == 201, answer.text
        doc_id: str = answer.json()["id"]
        return doc_id


def test_a_second_server_is_refused_and_the_first_keeps_writing(server: Server) -> None:
    created(server, "before")
    second = eventdocs("serve", BLOG_JSON, "--store", str(server.store), "--port", str(free_port()))
    assert_refused(second, server.store, server.pid)
    assert (server.store.parent / "blog.db-owner").read_text().strip() == str(server.pid)
    created(server, "after")


def test_writing_commands_beside_a_server_are_refused(server: Server, tmp_path: Path) -> None:
    doc_id = created(server, "first")
    dump = tmp_path / "log.jsonl"
    exported = eventdocs("export", "--store", str(server.store), "-o", str(dump))
    assert exported.returncode == 0, exported.stderr
    store = str(server.store)
    for command in (
        ["revert", "post", doc_id, "--to-revision", "1", "--target", BLOG_JSON],
        ["import", str(dump), "--force"],
        ["replay"],
    ):
        assert_refused(eventdocs(*command, "--store", store), server.store, server.pid)
        created(server, f"after {command[0]}")  # the owner's next request answers
    with httpx.Client(base_url=server.url, timeout=10) as client:
        revisions = client.get(f"/v1/post/{doc_id}/revisions").json()
    assert [r["action"] for r in revisions["resources"]] == ["create"]


def test_reading_commands_beside_a_server_change_nothing(server: Server, tmp_path: Path) -> None:
    doc_id = created(server, "first")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.put(f"/v1/post/{doc_id}", json={"title": "second"}).status_code == 200
    before, bytes_before = schema(server.store), settled(server.store)
    store = ["--store", str(server.store)]
    verified = eventdocs("verify", *store, "--target", BLOG_JSON)
    assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified.stderr
    exported = eventdocs("export", *store)
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2, exported.stderr
    history = eventdocs("history", "post", doc_id, *store, "--json")
    assert history.returncode == 0 and '"update"' in history.stdout, history.stderr
    diff = eventdocs("diff", "post", doc_id, "--from", "1", "--to", "2", *store)
    assert diff.returncode == 0 and '"second"' in diff.stdout, diff.stderr
    assert schema(server.store) == before
    assert digest(server.store) == bytes_before  # no checkpoint, no header change
    created(server, "after")


def test_reading_a_foreign_or_missing_file_writes_nothing(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before, bytes_before = schema(foreign), digest(foreign)
    for command in (["verify"], ["export"], ["history", "post", "x"], ["diff", "post", "x"]):
        result = eventdocs(*command, "--store", str(foreign))
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "not an eventdocs store" in result.stderr
        missing = eventdocs(*command, "--store", str(tmp_path / "missing.db"))
        assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
        assert "no store at" in missing.stderr
    assert schema(foreign) == before and digest(foreign) == bytes_before
    assert sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "missing.db").exists()


def test_kill_9_of_the_owner_frees_the_file(server: Server) -> None:
    doc_id = created(server, "first")
    server.kill()
    server.start()  # a new owner on the same file
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get(f"/v1/post/{doc_id}").status_code == 200
    created(server, "second")


def test_a_second_uvicorn_worker_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "blog.db"
    env = {**os.environ, "EVENTDOCS_TARGET": BLOG_JSON, "EVENTDOCS_STORE": str(store)}
    factory = "eventdocs.http.serve:from_environment"
    command = [sys.executable, "-m", "uvicorn", "--factory", factory]
    args = ["--workers", "2", "--port", str(free_port()), "--lifespan", "on"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=EXIT_TIMEOUT
    )
    refusals = [line for line in done.stderr.splitlines() if line.startswith("eventdocs:")]
    assert len(refusals) == 1, done.stderr
    assert str(store) in refusals[0] and "owned by process" in refusals[0]
    verified = eventdocs("verify", "--store", str(store), "--target", BLOG_JSON)
    assert verified.returncode == 0, verified.stderr
