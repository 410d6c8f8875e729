"""``eventdocs import``: every event checked, and all or nothing, on real SQLite files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result

from eventdocs.cli import main
from eventdocs.events import Cancel, Create, Event, Revert, Update, encode_event

ROOT = Path(__file__).resolve().parents[1]
BLOG = str(ROOT / "examples" / "blog.json")
T0 = 1_700_000_000_000_000
KILL_TIMEOUT = 120.0


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="eventdocs")


def write(path: Path, events: list[Event] | list[bytes]) -> Path:
    lines = [e if isinstance(e, bytes) else encode_event(e) for e in events]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def create(seq: int, id: str = "d1", **body: Any) -> Create:
    return Create(
        seq=seq, resource="post", id=id, toa=T0 + seq, recorded_at=T0 + seq,
        body={"title": f"t{seq}", "blog": 1, **body},
    )  # fmt: skip


def update(
    seq: int, body: dict[str, Any], *, merge: bool = False, toa: int | None = None
) -> Update:
    at = T0 + seq
    return Update(
        seq=seq, resource="post", id="d1", toa=at if toa is None else toa, recorded_at=at,
        body=body, merge=merge,
    )  # fmt: skip


def snapshot(path: Path) -> tuple[list[Any], list[Any]]:
    """The log's rows and the file's schema, read without writing."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY 1").fetchall()
        tables = {name for name, _ in schema}
        if "post_revisions" not in tables:
            return [], schema
        return conn.execute("SELECT * FROM post_revisions ORDER BY seq").fetchall(), schema
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store holding four events of d1: create, update, a scheduled update, its cancel."""
    path = tmp_path / "store.db"
    base = [
        create(1),
        update(2, {"title": "edited"}),
        update(3, {"title": "later"}, toa=T0 + 10**12),
        Cancel(seq=4, resource="post", id="d1", toa=T0 + 4, recorded_at=T0 + 4, target=3),
    ]
    done = run("import", str(write(tmp_path / "base.jsonl", base)), "--store", str(path),
               "--target", BLOG)  # fmt: skip
    assert done.exit_code == 0, done.output
    return path


BAD: dict[str, tuple[Event | bytes, str]] = {
    "create body breaks the schema": (create(7, "d2", blog="one"), "body/blog"),
    "create body lacks a required field": (
        Create(seq=7, resource="post", id="d2", toa=T0 + 7, recorded_at=T0 + 7, body={}),
        "body",
    ),
    "update sets an unknown field": (update(7, {"colour": "red"}), "body/colour"),
    "update breaks a field": (update(7, {"title": "x" * 201}), "body/title"),
    "merge patch removes a required field": (update(7, {"title": None}, merge=True), "body/title"),
    "revert to a document that breaks the schema": (
        Revert(seq=7, resource="post", id="d1", toa=T0 + 7, recorded_at=T0 + 7, body={"blog": 1}),
        "body",
    ),
    "an id no URL can reach": (create(7, "a/b"), "id"),
    "an id starting with _": (create(7, "_bulk"), "id"),
    "a toa in year 148108": (
        Create(
            seq=7,
            resource="post",
            id="d2",
            toa=4_611_686_018_427_387_904,
            recorded_at=T0 + 7,
            body={"title": "x", "blog": 1},
        ),
        "toa",
    ),
    "a recorded_at in year -144169": (
        Create(
            seq=7,
            resource="post",
            id="d2",
            toa=T0,
            recorded_at=-4_611_686_018_427_387_904,
            body={"title": "x", "blog": 1},
        ),
        "recorded_at",
    ),
    "recorded_at going backwards": (
        Create(
            seq=7,
            resource="post",
            id="d2",
            toa=T0,
            recorded_at=T0 + 1,
            body={"title": "x", "blog": 1},
        ),
        "recorded_at",
    ),
    "a seq that skips": (create(8, "d2"), "seq"),
    "a seq that repeats": (create(6, "d2"), "seq"),
    "a cancel taking effect later than recorded": (
        Cancel(seq=7, resource="post", id="d1", toa=T0 + 99, recorded_at=T0 + 7, target=3),
        "toa",
    ),
    "a cancel of a missing event": (
        Cancel(seq=7, resource="post", id="d1", toa=T0 + 7, recorded_at=T0 + 7, target=70),
        "target",
    ),
    "a cancel of another document's event": (
        Cancel(seq=7, resource="post", id="d9", toa=T0 + 7, recorded_at=T0 + 7, target=5),
        "target",
    ),
    "a cancel of a cancel": (
        Cancel(seq=7, resource="post", id="d1", toa=T0 + 7, recorded_at=T0 + 7, target=4),
        "target",
    ),
    "a resource the target does not declare": (
        Create(seq=1, resource="page", id="p1", toa=T0, recorded_at=T0 + 7, body={}),
        "resource",
    ),
    "not an event": (b'{"action": "create", "seq": "one"}', "not an eventdocs event"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_event_refuses_the_whole_import(store: Path, tmp_path: Path, case: str) -> None:
    bad, field = BAD[case]
    before = snapshot(store)
    # Two good events first: they must not be written either.
    lines = [encode_event(create(5, "d5")), encode_event(update(6, {"title": "fine"}))]
    lines.append(bad if isinstance(bad, bytes) else encode_event(bad))
    dump = write(tmp_path / "more.jsonl", lines)
    result = run("import", str(dump), "--store", str(store), "--target", BLOG, "--force")
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{dump}:3: " in result.stderr and field in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(store) == before


def test_ids_and_times_are_checked_without_a_target(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    dump = write(tmp_path / "bad.jsonl", [create(1), create(2, "a/b")])
    result = run("import", str(dump), "--store", str(path))
    assert result.exit_code == 1 and f"{dump}:2: id:" in result.stderr, result.stderr
    log, schema = snapshot(path)
    assert log == [] and not [name for name, _ in schema if name.startswith("post")]
    named = write(
        tmp_path / "named.jsonl", [create(1), msgspec.structs.replace(create(2), resource="a-b")]
    )
    result = run("import", str(named), "--store", str(path))
    assert result.exit_code == 1 and f"{named}:2: resource name 'a-b'" in result.stderr, (
        result.stderr
    )


def test_a_good_continuation_imports(store: Path, tmp_path: Path) -> None:
    more = write(tmp_path / "more.jsonl", [create(5, "d5"), update(6, {"body": None}, merge=True)])
    result = run("import", str(more), "--store", str(store), "--target", BLOG, "--force")
    assert result.exit_code == 0, result.output
    assert [row[0] for row in snapshot(store)[0]] == [1, 2, 3, 4, 5, 6]
    assert run("verify", "--store", str(store), "--target", BLOG).exit_code == 0


def _read_position(pid: int, name: Path) -> int | None:
    """How far process ``pid`` has read file ``name`` (Linux ``/proc``), or None."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(name):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    return int(info.readline().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_import_leaves_the_store_as_it_was(store: Path, tmp_path: Path) -> None:
    count = 200_000
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        for seq in range(5, 5 + count):
            f.write(encode_event(create(seq, f"d{seq:07d}")) + b"\n")
    size = big.stat().st_size
    before = snapshot(store)
    command = [sys.executable, "-m", "eventdocs", "import", str(big), "--store", str(store),
               "--target", BLOG, "--force"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT
        while (_read_position(proc.pid, big) or 0) < size // 4:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the import never got a quarter through"
            time.sleep(0.01)
        position = _read_position(proc.pid, big)
        assert position is not None and position < size, "the import read the whole file"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(store) == before
    verified = run("verify", "--store", str(store), "--target", BLOG)
    assert verified.exit_code == 0, verified.output
    again = run("import", str(big), "--store", str(store), "--target", BLOG, "--force")
    assert again.exit_code == 0, again.output
    assert f"imported post {count:,}" in again.stdout
    assert len(snapshot(store)[0]) == 4 + count
