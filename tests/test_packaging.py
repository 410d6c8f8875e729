"""The wheel works without a checkout: install it in a fresh venv, init, serve, /healthz.

Slow (it builds the wheel and installs its dependencies), so it runs when
``CI=true``, as the CI run sets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "http"))
from test_serve import free_port, wait_until_up  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("CI") != "true", reason="builds and installs the wheel: runs with CI=true"
)


def _run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_wheel_installs_inits_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, cwd=tmp_path)
    [wheel] = dist.glob("eventdocs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "eventdocs/examples/blog.json" in names
    assert not any(n.startswith("eventdocs/bench/") for n in names), "benchmarks stay out"
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names), names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_dir = venv / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    installed = _run(bin_dir / "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    for unused in ("watchfiles", "websockets", "python-dotenv", "pytest", "ruff"):
        assert f"{unused}==" not in installed.lower(), installed

    work = tmp_path / "work"  # outside the checkout: only the wheel's files are there
    work.mkdir()
    _run(bin_dir / "eventdocs", "init", cwd=work)
    bench = subprocess.run(
        [bin_dir / "eventdocs", "bench", "--tiny"], cwd=work, capture_output=True, text=True
    )
    assert bench.returncode == 1 and "source checkout" in bench.stderr, bench.stderr
    assert "Traceback" not in bench.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [bin_dir / "eventdocs", "serve", "blog.json", "--port", str(port)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_up(client, proc, log)
            assert client.get("/healthz").json()["status"] == "ok"
            created = client.post("/v1/post", json={"title": "Hello", "blog": 1})
            assert created.status_code == 201, created.text
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (work / "eventdocs.db").exists()
