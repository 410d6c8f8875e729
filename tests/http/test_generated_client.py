"""SPEC section 10: a client generated from the live /openapi.json performs every write.

``openapi-python-client`` generates a Python package from the document a
real server answers; the test imports it and drives create, get, update,
patch, delete, revert and bulk through it, failing on any operation the
generator dropped or any warning it printed.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpkit import ROOT
from test_serve import free_port, wait_until_up

GENERATOR = shutil.which("openapi-python-client") or str(
    Path(sys.executable).parent / "openapi-python-client"
)
OPERATIONS = ("create", "get", "update", "patch", "delete", "revert", "bulk", "query")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    log = tmp / "serve.log"
    command = [
        sys.executable, "-m", "eventdocs", "serve", str(ROOT / "examples" / "blog.json"),
        "--store", str(tmp / "blog.db"), "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            wait_until_up(client, proc, log)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def generated(server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not Path(GENERATOR).exists():
        pytest.skip("openapi-python-client is not installed (dev extra)")
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("package_name_override: blog_client\npost_hooks: []\n")
    done = subprocess.run(
        [
            GENERATOR, "generate", "--url", f"{server}/openapi.json", "--meta", "none",
            "--output-path", str(out / "blog_client"), "--config", str(config),
        ],
        capture_output=True, text=True, timeout=300, cwd=out,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout and "Unable to" not in done.stdout, done.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("blog_client")
    finally:
        sys.path.remove(str(out))


def _api(generated: Any, name: str) -> Any:
    return importlib.import_module(f"blog_client.api.post_v1.post_v1_{name}")


def _model(name: str, data: dict[str, Any]) -> Any:
    models = importlib.import_module("blog_client.models")
    return getattr(models, name).from_dict(data)


def test_the_generator_keeps_every_operation(generated: Any) -> None:
    for name in OPERATIONS:
        assert hasattr(_api(generated, name), "sync_detailed"), name


def test_the_generated_client_performs_every_write(generated: Any, server: str) -> None:
    client = generated.Client(base_url=server, raise_on_unexpected_status=True)
    with client as c:
        created = _api(generated, "create").sync_detailed(
            client=c, body=_model("PostV1Create", {"title": "Hello", "blog": 1, "author": "ann"})
        )
        assert created.status_code == 201, created.content
        doc_id = created.parsed.id
        got = _api(generated, "get").sync_detailed(doc_id, client=c)
        assert got.status_code == 200 and got.parsed.title == "Hello"
        assert got.headers["etag"] == '"1"'

        updated = _api(generated, "update").sync_detailed(
            doc_id, client=c, body=_model("PostV1Update", {"title": "Two"}), if_match='"1"'
        )
        assert updated.status_code == 200 and updated.parsed.title == "Two"
        patched = _api(generated, "patch").sync_detailed(
            doc_id, client=c, body=_model("PostV1Merge", {"author": None})
        )
        assert patched.status_code == 200, patched.content
        assert patched.parsed.to_dict().get("author") is None
        reverted = _api(generated, "revert").sync_detailed(
            doc_id, client=c, body={"to_revision": 1}
        )
        assert reverted.status_code == 200 and reverted.parsed.title == "Hello"

        other = _api(generated, "create").sync_detailed(
            client=c, body=_model("PostV1Create", {"title": "Other", "blog": 2})
        )
        bulk = _api(generated, "bulk").sync_detailed(
            client=c,
            body=_model(
                "PostV1BulkBody",
                {"action": "update", "ids": [doc_id, other.parsed.id], "body": {"blog": 7}},
            ),
        )
        assert bulk.status_code == 200, bulk.content
        assert [r.status for r in bulk.parsed.resources] == [200, 200]

        deleted = _api(generated, "delete").sync_detailed(doc_id, client=c)
        assert deleted.status_code == 204
        gone = _api(generated, "get").sync_detailed(doc_id, client=c)
        assert gone.status_code == 404
