"""The SQLite store: the embedded default, one database file in WAL mode.

``schema`` holds the tables and statements, ``compile`` turns queries into
SQL, ``writer`` is the thread that owns the write connection and
group-commits, ``store`` is the contract over them.
"""

from eventdocs.storage.sqlite.compile import _compile
from eventdocs.storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "_compile"]
