"""``python -m eventdocs.http.serve``, reporting where its memory goes to a file.

The soak runs the server through this wrapper: a daemon thread writes, every
half second, as JSON to ``$EVENTDOCS_MEMORY_REPORT``:

* ``sqlite``: ``sqlite3_memory_used()``, SQLite's own allocations, mostly the
  page caches its ``cache_size`` pragmas allow to grow (64 + 32 MiB);
* ``malloc_free``: the free memory the C allocator keeps instead of giving it
  back (glibc's ``mallinfo2``): freed, so no leak, but still in the RSS.

RSS less both is memory in use by everything else, where a leak would show.
Where a library is missing its figure is left out and the soak judges more
coarsely.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import threading
import time
from collections.abc import Callable

from eventdocs.http.serve import main


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _probes() -> dict[str, Callable[[], int]]:
    probes: dict[str, Callable[[], int]] = {}
    sqlite = ctypes.util.find_library("sqlite3")
    if sqlite is not None:
        used = ctypes.CDLL(sqlite).sqlite3_memory_used
        used.restype = ctypes.c_int64
        probes["sqlite"] = used
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
        probes["malloc_free"] = lambda: int(mallinfo2().fordblks)
    return probes


def _report(path: str) -> None:
    probes = _probes()
    while True:
        with contextlib.suppress(OSError):
            with open(path + ".tmp", "w", encoding="ascii") as out:
                json.dump({name: probe() for name, probe in probes.items()}, out)
            os.replace(path + ".tmp", path)
        time.sleep(0.5)


if __name__ == "__main__":
    target = os.environ.get("EVENTDOCS_MEMORY_REPORT")
    if target:
        threading.Thread(target=_report, args=(target,), daemon=True).start()
    main()
