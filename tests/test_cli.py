"""The ``eventdocs`` command through its real entry point, on real SQLite store files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventdocs import Service, load_target, open_store
from eventdocs.cli import main
from eventdocs.resources import load_views

ROOT = Path(__file__).resolve().parents[1]
BLOG = str(ROOT / "examples" / "blog.py")
DAY = 86_400_000_000


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="eventdocs")


async def _fill(path: Path) -> dict[str, str]:
    """A blog store with updates, a delete, a scheduled write and a cancelled one."""
    service = Service(open_store(str(path)), load_target(BLOG), views=load_views(BLOG))
    async with service:
        posts = service.documents("post")
        ids = {}
        for name, author in (("first", "ann"), ("second", "bob"), ("third", "ann")):
            created = await posts.create({"title": name, "blog": 1, "author": author})
            ids[name] = created.event.id
        await posts.update(ids["first"], {"title": "first, edited"})
        await posts.update(ids["first"], {"body": "text", "published": True})
        await posts.delete(ids["third"])
        later = service.clock.now() + DAY
        await posts.update(ids["second"], {"title": "tomorrow"}, toa=later)
        cancelled = await posts.update(ids["second"], {"title": "never"}, toa=later + 1)
        await posts.cancel(cancelled.event.seq)
    return ids


@pytest.fixture
def blog(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "blog.db"
    return path, asyncio.run(_fill(path))


def rows(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def execute(path: Path, sql: str, *params: Any) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def projections(path: Path) -> dict[str, list[Any]]:
    return {
        "master": rows(path, "SELECT * FROM post ORDER BY id"),
        "history": rows(path, "SELECT * FROM post_history ORDER BY id, rev"),
        "view": rows(path, "SELECT * FROM view_posts_per_author ORDER BY key"),
        "log": rows(path, "SELECT * FROM post_revisions ORDER BY seq"),
    }


def last_seq(path: Path) -> int:
    seq: int = rows(path, "SELECT max(seq) FROM post_revisions")[0][0]
    return seq


def test_replay_restores_a_corrupted_projection(blog: tuple[Path, dict[str, str]]) -> None:
    path, ids = blog
    before = projections(path)
    execute(
        path, "UPDATE post SET doc = json_set(doc, '$.title', 'vandal') WHERE id = ?", ids["first"]
    )
    execute(path, "DELETE FROM post_history WHERE id = ? AND rev = 2", ids["first"])
    execute(path, "DELETE FROM post WHERE id = ?", ids["second"])

    broken = run("verify", "--store", str(path))
    assert broken.exit_code == 1
    assert ids["first"] in broken.stdout and ids["second"] in broken.stdout

    replayed = run("replay", "--store", str(path), "--target", BLOG)
    assert replayed.exit_code == 0, replayed.output
    assert "replayed post: 9 events" in replayed.stdout
    assert "rebuilt views: posts_per_author" in replayed.stdout

    assert projections(path) == before
    ok = run("verify", "--store", str(path), "--target", BLOG)
    assert ok.exit_code == 0, ok.output
    assert "ok: post" in ok.stdout


def test_verify_in_a_real_process_names_a_hand_edited_row(
    blog: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, ids = blog
    clean = subprocess.run(
        [sys.executable, "-m", "eventdocs", "verify", "--store", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert clean.returncode == 0, clean.stderr
    execute(path, "UPDATE post SET rev = 7 WHERE id = ?", ids["second"])
    found = subprocess.run(
        [sys.executable, "-m", "eventdocs", "verify", "--store", str(path), "--target", BLOG],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert found.returncode == 1
    assert ids["second"] in found.stdout
    assert found.stderr.strip().splitlines() == [
        "views checked: posts_per_author",
        "1 differences in post",
    ]


def test_verify_json_lists_each_difference(blog: tuple[Path, dict[str, str]]) -> None:
    path, ids = blog
    execute(path, "UPDATE post SET doc = json_set(doc, '$.blog', 2) WHERE id = ?", ids["first"])
    result = run("verify", "--store", str(path), "--json")
    assert result.exit_code == 1
    (diff,) = json.loads(result.stdout)
    assert diff["collection"] == "master" and diff["id"] == ids["first"]
    assert diff["expected"]["data"]["blog"] == 1 and diff["actual"]["data"]["blog"] == 2


def test_export_import_round_trip(blog: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, _ = blog
    dump, copy = tmp_path / "log.jsonl", tmp_path / "copy.db"
    exported = run("export", "--store", str(path), "-o", str(dump))
    assert exported.exit_code == 0, exported.output
    assert len(dump.read_text().splitlines()) == last_seq(path) == 9

    imported = run("import", str(dump), "--store", str(copy), "--target", BLOG)
    assert imported.exit_code == 0, imported.output
    assert "imported post 9" in imported.stdout
    assert projections(copy) == projections(path)
    verified = run("verify", "--store", str(copy), "--target", BLOG)
    assert verified.exit_code == 0, verified.output

    again = run("import", str(dump), "--store", str(copy))
    assert again.exit_code == 1
    assert again.stderr.count("\n") == 1 and "already holds 9 events" in again.stderr
    forced = run("import", str(dump), "--store", str(copy), "--force")
    assert forced.exit_code == 1 and "continues the log" in forced.stderr
    assert last_seq(copy) == 9


def test_export_to_stdout_of_one_resource_and_after_a_seq(
    blog: tuple[Path, dict[str, str]],
) -> None:
    path, _ = blog
    result = run("export", "--store", str(path), "--resource", "post", "--after", "5")
    assert result.exit_code == 0
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [6, 7, 8, 9]


def test_revert_dry_run_appends_nothing(blog: tuple[Path, dict[str, str]]) -> None:
    path, ids = blog
    before = projections(path)
    dry = run(
        "revert", "post", ids["first"], "--to-revision", "1", "--dry-run", "--store", str(path)
    )
    assert dry.exit_code == 0, dry.output
    patch = json.loads(dry.stdout)
    assert {"op": "replace", "path": "/title", "value": "first"} in patch
    assert {"op": "remove", "path": "/body"} in patch
    assert projections(path) == before

    done = run(
        "revert", "post", ids["first"], "--to-revision", "1", "--store", str(path), "--target", BLOG
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.split("\nappended")[0]) == patch
    assert last_seq(path) == 10
    assert run("diff", "post", ids["first"], "--from", "1", "--store", str(path)).stdout == "[]\n"
    assert run("verify", "--store", str(path), "--target", BLOG).exit_code == 0


def test_history_and_diff(blog: tuple[Path, dict[str, str]]) -> None:
    path, ids = blog
    history = run("history", "post", ids["second"], "--store", str(path), "--json")
    assert history.exit_code == 0, history.output
    assert [(r["action"], r["outcome"]) for r in json.loads(history.stdout)] == [
        ("create", "applied"),
        ("cancel", "applied"),
        ("update", "pending"),
        ("update", "cancelled"),
    ]
    table = run("history", "post", ids["first"], "--store", str(path))
    assert table.exit_code == 0 and "recorded at" in table.stdout and "applied" in table.stdout

    diff = run("diff", "post", ids["first"], "--from", "1", "--to", "3", "--store", str(path))
    assert sorted(json.loads(diff.stdout), key=lambda op: op["path"]) == [
        {"op": "add", "path": "/body", "value": "text"},
        {"op": "replace", "path": "/published", "value": True},
        {"op": "replace", "path": "/title", "value": "first, edited"},
    ]
    future = run("diff", "post", ids["second"], "--to-time", "4102444800", "--store", str(path))
    assert json.loads(future.stdout) == [{"op": "replace", "path": "/title", "value": "tomorrow"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "post"], "Missing argument 'ID'"),
        (["verify", "--store", "{tmp}/missing.db"], "no store at"),
        (["verify", "--store", "ftp://example.org/x"], "unknown store URL"),
        (["export", "--store", "sqlite:///{tmp}/missing.db"], "no store at sqlite:///"),
        (["history", "post", "nope", "--store", "{db}"], "has no history"),
        (["history", "nothing", "x", "--store", "{db}"], "unknown resource"),
        (["replay", "--resource", "nothing", "--store", "{db}"], "has no resource 'nothing'"),
        (["revert", "post", "x", "--store", "{db}"], "exactly one of --to-revision and --as-of"),
        (["revert", "post", "x", "--as-of", "1", "--store", "{db}"], "needs --target"),
        (["diff", "post", "x", "--from-time", "soon", "--store", "{db}"], "is not a time"),
        (["diff", "post", "x", "--bogus"], "No such option"),
        (["import", "{tmp}/nothing.jsonl"], "does not exist"),
        (["import", "{tmp}/bad.jsonl", "--store", "{tmp}/new.db"], "bad.jsonl:2: not an event"),
        (["replay", "--store", "{db}", "--target", "{tmp}/nothing.py"], "no such file"),
        (["bench", "--only", "everything", "--out", "{tmp}/out"], "unknown benchmarks"),
        (["serve", "{tmp}/blog.py", "--port", "70000"], "Invalid value for '--port'"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(
    blog: tuple[Path, dict[str, str]], tmp_path: Path, args: list[str], message: str
) -> None:
    path, _ = blog
    first = run("export", "--store", str(path)).stdout.splitlines()[0]
    (tmp_path / "bad.jsonl").write_text(first + "\nnot json\n")
    argv = [a.format(tmp=tmp_path, db=path) for a in args]
    result = run(*argv)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("eventdocs: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
