"""The audit trail's writer: group commit. A call returns once its record is committed, and the
records of calls that arrive while a batch is being written share the next transaction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dblogpack.catalog import Catalog
from dblogpack.catalog import audit as audit_queries
from dblogpack.catalog.records import AuditRecord


@dataclass(slots=True, eq=False)
class _Entry:
    record: AuditRecord
    done: bool = False
    error: Exception | None = None


class AuditLog:
    """Appends audit records to the catalog, one write transaction per batch of callers.

    A transaction per call made concurrent calls queue for SQLite's one write lock in the busy
    handler's growing sleeps (the API's slowest 1%). Here one caller at a time writes, for
    itself and every caller waiting behind it; no call returns before its record is committed.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._pending: list[_Entry] = []
        self._pending_lock = threading.Lock()
        self._writer = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        """Commit `record`; returns once it is committed, raises what kept it out."""
        entry = _Entry(record)
        with self._pending_lock:
            self._pending.append(entry)
        with self._writer:
            # Whoever held the writer meanwhile may have committed this entry with its batch.
            if not entry.done:
                batch = self._take()
                if entry not in batch:  # taken by a writer that was interrupted (BaseException)
                    batch.append(entry)
                self._write(batch)
        if entry.error is not None:
            raise entry.error

    def _take(self) -> list[_Entry]:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        return batch

    def _write(self, batch: list[_Entry]) -> None:
        try:
            self._insert(batch)
        except Exception as exc:
            if len(batch) > 1:
                # One record the database refuses must not cost the others theirs.
                for entry in batch:
                    self._write([entry])
                return
            batch[0].error = exc
        for entry in batch:
            entry.done = True

    def _insert(self, batch: list[_Entry]) -> None:
        with self._catalog.write() as conn:
            audit_queries.insert_audit_records(conn, [entry.record for entry in batch])
