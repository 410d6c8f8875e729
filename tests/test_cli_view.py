"""``eventdocs view`` and what ``verify`` says about views, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from eventdocs import Service, load_target, open_store
from eventdocs.cli import main
from eventdocs.resources import load_views
from eventdocs.times import format_time, parse_time

ROOT = Path(__file__).resolve().parents[1]
BLOG_JSON = str(ROOT / "examples" / "blog.json")
BLOG_PY = str(ROOT / "examples" / "blog.py")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="eventdocs")


async def _fill(path: Path, target: str) -> int:
    """Posts by ann, bob and cy; returns a time between the first and the later ones."""
    service = Service(open_store(str(path)), load_target(target), views=load_views(target))
    async with service:
        posts = service.documents("post")
        for author in ("ann", "bob"):
            await posts.create({"title": "t", "blog": 1, "author": author, "published": True})
        between = service.clock.now()
        await asyncio.sleep(0.01)
        for author in ("ann", "ann", "cy"):
            await posts.create({"title": "t", "blog": 1, "author": author, "published": True})
        return between


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, int]:
    path = tmp_path / "blog.db"
    return str(path), asyncio.run(_fill(path, BLOG_JSON))


def test_view_prints_a_table_of_rows(store: tuple[str, int]) -> None:
    path, _ = store
    result = run("view", "posts_per_author", "--store", path, "--target", BLOG_JSON)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("author" in line and "posts" in line and "latest" in line for line in lines)
    assert any("ann" in line and "3" in line for line in lines)


def test_view_filters_sorts_and_prints_json(store: tuple[str, int]) -> None:
    path, _ = store
    args = ["--store", path, "--target", BLOG_JSON, "--json"]
    result = run("view", "posts_per_author", "posts__lt=3", "sort=-author", *args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["total"] == 2
    assert [(r["author"], r["posts"]) for r in body["resources"]] == [("cy", 1), ("bob", 1)]
    picked = run("view", "posts_per_author", "author=ann", "fields=posts", *args)
    assert json.loads(picked.stdout)["resources"] == [{"posts": 3}]


def test_view_as_of_a_past_time(store: tuple[str, int]) -> None:
    path, between = store
    args = ["--store", path, "--target", BLOG_JSON, "--json", "sort=author"]
    result = run("view", "posts_per_author", "--as-of", format_time(between), *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["resources"]
    assert [(r["author"], r["posts"]) for r in rows] == [("ann", 1), ("bob", 1)]
    epoch = str(parse_time(format_time(between)) / 1_000_000)
    same = run("view", "posts_per_author", "--as-of", epoch, *args)
    assert json.loads(same.stdout)["resources"] == rows
    now = run("view", "posts_per_author", "--as-of", "now", *args)
    assert len(json.loads(now.stdout)["resources"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown view 'nope'"),
        (["posts_per_author", "title=x"], "no field 'title'"),
        (["posts_per_author", "posts__contains=1"], "does not allow operator"),
        (["posts_per_author", "posts__gt=many"], "?posts__gt"),
        (["posts_per_author", "oops"], "expected FIELD=VALUE"),
        (["posts_per_author", "--as-of", "soon"], "--as-of"),
    ],
)
def test_view_bad_input_is_one_line(store: tuple[str, int], args: list[str], message: str) -> None:
    path, _ = store
    result = run("view", *args, "--store", path, "--target", BLOG_JSON)
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_view_needs_a_target(store: tuple[str, int]) -> None:
    result = run("view", "posts_per_author", "--store", store[0])
    assert result.exit_code == 2
    assert "--target" in result.stderr


def test_a_python_view_refuses_as_of(tmp_path: Path) -> None:
    path = tmp_path / "py.db"
    asyncio.run(_fill(path, BLOG_PY))
    args = ["--store", str(path), "--target", BLOG_PY]
    result = run("view", "posts_per_author", "--json", *args)
    assert json.loads(result.stdout)["total"] == 3
    refused = run("view", "posts_per_author", "--as-of", "now", *args)
    assert refused.exit_code == 1
    assert "read now only" in refused.stderr


def test_verify_names_the_views_it_checked_and_finds_a_corrupted_one(
    store: tuple[str, int],
) -> None:
    path, _ = store
    clean = run("verify", "--store", path, "--target", BLOG_JSON)
    assert clean.exit_code == 0, clean.output
    assert "views checked: posts_per_author" in clean.stderr
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE view_posts_per_author SET obj = json_set(obj, '$.posts', 9)")
    conn.close()
    broken = run("verify", "--store", path, "--target", BLOG_JSON)
    assert broken.exit_code == 1
    assert "view" in broken.stdout and "posts_per_author" in broken.stdout
    blind = run("verify", "--store", path)
    assert "views: not checked" in blind.stderr
