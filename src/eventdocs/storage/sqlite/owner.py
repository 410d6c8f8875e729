"""One owner per SQLite file: an exclusive ``flock`` on ``<db>-owner``.

The process that opens a store for writing takes the lock and writes its PID
into the sidecar file; another process that would write is refused at once
with one line naming the store and that PID. The kernel drops the lock when
the owner closes the store or dies in any way (even ``kill -9``), so a stale
file never blocks anyone: only a held lock does. The file itself is left in
place (deleting it would let two processes lock two different files).

Ownership is per process and counted: the server claims the file before
uvicorn starts (so a refusal is one line, not a lifespan traceback), and the
store it then opens shares that claim. A forked child does not inherit it.
"""

from __future__ import annotations

import fcntl
import os
import threading

from eventdocs.errors import StorageError

__all__ = ["Ownership", "StoreOwned", "claim", "owner_file"]


class StoreOwned(StorageError):
    """Another process owns the SQLite file; it alone may write to it."""


_lock = threading.Lock()
_held: dict[str, tuple[int, int, int]] = {}  # owner file -> (fd, claims, pid)


def owner_file(db: str) -> str:
    """The sidecar lock file of the database at ``db``."""
    return os.path.realpath(db) + "-owner"


class Ownership:
    """One claim on a file; :meth:`release` it once (the last release unlocks)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._released = False

    def release(self) -> None:
        with _lock:
            if self._released:
                return
            self._released = True
            fd, claims, pid = _held[self.path]
            if claims > 1:
                _held[self.path] = (fd, claims - 1, pid)
                return
            del _held[self.path]
        if pid == os.getpid():
            os.close(fd)  # closing the only descriptor drops the flock


def claim(db: str) -> Ownership:
    """Own the SQLite file ``db`` for this process, or refuse at once.

    Raises:
        StoreOwned: another process holds it, naming that process.
    """
    path = owner_file(db)
    pid = os.getpid()
    with _lock:
        held = _held.get(path)
        if held is not None and held[2] == pid:
            _held[path] = (held[0], held[1] + 1, pid)
            return Ownership(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open {db}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_pid(fd)
            os.close(fd)
            who = f"process {other}" if other else "another process"
            raise StoreOwned(
                f"{db} is owned by {who} (eventdocs serve, or a command writing to it);"
                " stop that process first, or use a read-only command"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
        _held[path] = (fd, 1, pid)
        return Ownership(path)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
