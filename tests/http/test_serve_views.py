"""The JSON-only user's journey: declare a view in JSON, serve it, read it now and last week."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from httpkit import ROOT
from test_serve import free_port, wait_until_up

from eventdocs.cli import main
from eventdocs.times import format_time

BLOG_JSON = str(ROOT / "examples" / "blog.json")
DAY = 86_400


def test_a_json_view_over_http_and_the_cli_now_and_last_week(tmp_path: Path) -> None:
    port, store, log = free_port(), tmp_path / "blog.db", tmp_path / "serve.log"
    command = [sys.executable, "-m", "eventdocs.http.serve", BLOG_JSON]
    command += ["--store", str(store), "--port", str(port)]
    week_ago = time.time() - 7 * DAY
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_up(client, proc, log)
            posts = [("ann", week_ago - DAY), ("bob", week_ago - DAY), ("ann", None)]
            for author, toa in posts:  # two written (backdated) before last week, one now
                headers = {} if toa is None else {"Caesium-TOA": f"{toa:.6f}"}
                body = {"title": "t", "blog": 1, "author": author, "published": True}
                created = client.post("/v1/post", json=body, headers=headers)
                assert created.status_code == 201, created.text
            now = client.get("/views/posts_per_author", params={"sort": "author"}).json()
            assert [(r["author"], r["posts"]) for r in now["resources"]] == [("ann", 2), ("bob", 1)]
            then = client.get(
                "/views/posts_per_author",
                params={"author": "ann", "as_of": format_time(int(week_ago * 1_000_000))},
            ).json()
            assert [(r["author"], r["posts"]) for r in then["resources"]] == [("ann", 1)]
            row = client.get("/views/posts_per_author/bob")
            assert row.json()["posts"] == 1 and row.headers["etag"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    args = ["view", "posts_per_author", "--store", str(store), "--target", BLOG_JSON, "--json"]
    result = CliRunner().invoke(main, [*args, "--as-of", f"{week_ago:.6f}", "sort=author"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["resources"]
    assert [(r["author"], r["posts"]) for r in rows] == [("ann", 1), ("bob", 1)]
