"""The real server: ``python -m eventdocs.http.serve`` in a subprocess, driven over TCP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from httpkit import ROOT

START_TIMEOUT = 30.0
APPLY_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


def test_serve_blog_json_schedules_and_applies(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "eventdocs.http.serve",
        str(ROOT / "examples" / "blog.json"),
        "--store",
        str(tmp_path / "blog.db"),
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_up(client, proc, log)
            created = client.post("/v1/post", json={"title": "Hello", "blog": 1})
            assert created.status_code == 201, created.text
            path = created.headers["location"]
            toa = f"{time.time() + 1:.6f}"
            scheduled = client.put(path, json={"title": "Later"}, headers={"Caesium-TOA": toa})
            assert scheduled.status_code == 202, scheduled.text
            assert client.get(path).json()["title"] == "Hello"
            deadline = time.monotonic() + APPLY_TIMEOUT
            while client.get(path).json()["title"] != "Later":
                assert time.monotonic() < deadline, "the scheduled write never applied"
                time.sleep(0.05)
            doc = client.get(path).json()
            assert doc["_rev"] == 2 and doc["_updated"] == scheduled.json()["toa"]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


async def test_build_app_loads_every_kind_of_target() -> None:
    from falcon.testing import ASGIConductor

    from eventdocs.http.serve import _is_loopback, build_app

    for target in (str(ROOT / "examples" / "blog.py"), "httpkit:Thing"):
        async with ASGIConductor(build_app(target, store="memory:")) as client:
            assert (await client.simulate_get("/healthz")).status_code == 200
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("example.org")
