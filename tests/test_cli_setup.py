"""Getting started from the command line: init, token, and one-line errors for a bad store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from eventdocs.cli import main
from eventdocs.http.auth import load_tokens
from eventdocs.resources import load_target, load_views

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "http"))
from test_serve import free_port, wait_until_up  # noqa: E402


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="eventdocs")


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("eventdocs: error: ")
    return lines[0]


def test_init_writes_the_blog_declarations_and_refuses_to_overwrite(tmp_path: Path) -> None:
    done = run("init", "--dir", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert "eventdocs serve" in done.output
    [post] = load_target(str(tmp_path / "blog.json"))
    assert post.name == "post"
    assert [v.name for v in load_views(str(tmp_path / "blog.py"))] == ["posts_per_author"]
    again = run("init", "--dir", str(tmp_path))
    assert again.exit_code == 1 and "--force" in again.output
    assert run("init", "--dir", str(tmp_path), "--force").exit_code == 0


def test_token_prints_the_entry_and_the_secret_apart() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventdocs", "token", "ci", "read", "write", "--resource", "post"],
        capture_output=True,
        text=True,
        check=True,
    )
    entry = json.loads(done.stdout)
    secret = done.stderr.rsplit(": ", 1)[1].strip()
    found = load_tokens([entry]).identify(secret)
    assert found is not None and found.granted("post") == {"read", "write"}
    bad = subprocess.run(
        [sys.executable, "-m", "eventdocs", "token", "ci", "root"], capture_output=True, text=True
    )
    assert "unknown scope 'root'" in one_line_error(bad)


def test_an_unreachable_mongodb_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "eventdocs", "serve", str(ROOT / "examples" / "blog.json"),
            "--store", "mongodb://127.0.0.1:1/eventdocs?serverSelectionTimeoutMS=300",
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert "cannot open the store mongodb://127.0.0.1:1" in one_line_error(done)


@pytest.mark.parametrize("command", ["serve", "verify"])
def test_mongodb_without_pymongo_names_the_extra(tmp_path: Path, command: str) -> None:
    script = (
        "import sys; sys.modules['pymongo'] = None\n"
        "from eventdocs.cli import main\n"
        f"main([{command!r}, *sys.argv[1:]], prog_name='eventdocs')\n"
    )
    args = [str(ROOT / "examples" / "blog.json")] if command == "serve" else []
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--store", "mongodb://127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert "pip install 'eventdocs[mongodb]'" in one_line_error(done)


def test_serve_logs_json_lines_with_request_ids(tmp_path: Path) -> None:
    """eventdocs' own records and the access log reach stderr, as JSON with the request id."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({"tokens": [{"name": "t", "token": "s" * 20, "scopes": {"*": ["read"]}}]})
    )
    port = free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "eventdocs", "serve", str(ROOT / "examples" / "blog.json"),
        "--store", str(tmp_path / "blog.db"), "--port", str(port), "--tokens", str(tokens),
        "--access-log", "--log-format", "json", "--cors-origin", "https://app.example",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_up(client, proc, log)
            got = client.get(
                "/v1/post",
                headers={"Authorization": "Bearer " + "s" * 20, "X-Request-ID": "req-42"},
            )
            assert got.status_code == 200 and got.headers["x-request-id"] == "req-42"
            preflight = client.options(
                "/v1/post",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            big = client.get("/openapi.json", headers={"Authorization": "Bearer " + "s" * 20})
            assert big.headers["content-encoding"] == "gzip"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {r["logger"] for r in records}
    assert "eventdocs.serve" in loggers, records  # "1 bearer tokens accepted"
    access = [r for r in records if r["logger"] == "eventdocs.access"]
    mine = [r for r in access if r["request_id"] == "req-42"]
    assert mine and mine[0]["http"]["status"] == 200 and mine[0]["http"]["route"] == "/v1/post"
