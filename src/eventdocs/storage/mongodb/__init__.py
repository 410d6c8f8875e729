"""The MongoDB store: PyMongo's native async API, safe with many app processes.

Collections, per resource ``r``: the log ``r_revisions`` (one document per
event, ``_id`` = seq), the master collection ``r`` (``_id`` = document id)
and the history ``r_history``; shared by all resources: ``eventdocs_counters``
(the seq counter of each log), ``eventdocs_checkpoints``, ``eventdocs_keys``
(idempotency keys, unique by ``_id``), ``eventdocs_view_checkpoints``,
``eventdocs_journal``, ``eventdocs_leases`` and ``eventdocs_resources``; each
view ``v`` has ``view_v``. Rows carry query keys (:mod:`.keys`).

**Appends** (:mod:`.append`) allocate seqs on a counter document, write the
events, then commit; readers stop at the high-water mark (:mod:`.hwm`), so a
batch is never seen in part. No multi-document transaction is needed, so one
algorithm serves a replica set, a sharded cluster and a standalone server.

**Projection writes** (:mod:`.projection`) are serialized per resource by a
lock in the checkpoint document and applied only if the stored checkpoint is
the batch's base: in one transaction on a replica set, through a journal on a
standalone server.

Writes use ``w="majority"`` on a replica set or cluster and ``j=True`` on a
standalone server. Driver errors become :class:`~eventdocs.errors.StorageError`
or :class:`~eventdocs.errors.StoreUnavailable` in :mod:`.errors` only.
"""

from eventdocs.storage.mongodb.store import MongoStore

__all__ = ["MongoStore"]
