"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README shows the library in use"
    for i, code in enumerate(blocks):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr


def test_quickstart_over_http_runs_twice_on_one_store(tmp_path: Path) -> None:
    """The shell quickstart, on a fresh store and again on the same one: no request fails."""
    import os
    import shutil
    import signal
    import socket
    import time
    import urllib.request

    import pytest

    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.skip("needs curl and jq")
    [block] = [
        b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S) if "DOC=$(curl" in b
    ]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "quickstart.sh"
    script.write_text(
        "set -euo pipefail\n"
        'curl() { command curl --fail-with-body --max-time 10 "$@"; }\n'
        + block.replace("localhost:8000", f"127.0.0.1:{port}")
    )
    log = tmp_path / "serve.log"
    blog = README.parent / "examples" / "blog.py"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "eventdocs", "serve", str(blog), "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        for run in (1, 2):
            done = subprocess.run(
                ["bash", str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
            )
            assert done.returncode == 0, (run, done.stdout[-2000:], done.stderr[-2000:])
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
