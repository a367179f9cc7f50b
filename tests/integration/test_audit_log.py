"""The audit trail's group commit, on SQLite and on a real PostgreSQL: every record is committed
before its call returns, calls that arrive together share a transaction, and a record the
database refuses costs no other call its record.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from tests.support.pgcluster import PgCluster

from dblogpack.catalog import Catalog, audit, open_catalog
from dblogpack.catalog.records import AuditRecord
from dblogpack.secretbox import SecretBox
from dblogpack.service import auditlog
from dblogpack.service.auditlog import AuditLog


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    box = SecretBox(secrets.token_bytes(32))
    if request.param == "sqlite":
        opened = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", box)
        yield opened
        opened.close()
        return
    cluster: PgCluster = request.getfixturevalue("pg_metadata_cluster")
    name = f"audit_{uuid.uuid4().hex[:12]}"
    cluster.execute(f'CREATE DATABASE "{name}"')
    opened = open_catalog(cluster.sqlalchemy_url(dbname=name), box)
    yield opened
    opened.close()
    cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _record(action: str) -> AuditRecord:
    return AuditRecord(time.time(), str(uuid.uuid4()), "pk", action, None, 0, "127.0.0.1")


def _count(catalog: Catalog, action: str) -> int:
    with catalog.read() as conn:
        query = text("SELECT count(*) FROM audit_records WHERE action = :action")
        return int(conn.execute(query, {"action": action}).scalar_one())


class _Interrupted(BaseException):
    """What no `except Exception` catches: a writer thread ending in the middle of a batch."""


class _HeldFirstBatch:
    """Stands in for the INSERT: the first batch waits until `release`, so the calls that
    arrive meanwhile queue behind it; a batch holding a `Refused` action fails, and with
    `interrupt_second` the second batch is interrupted."""

    def __init__(self, insert: Callable[[Connection, Sequence[AuditRecord]], None],
                 interrupt_second: bool = False) -> None:
        self._insert = insert
        self._interrupt_second = interrupt_second
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        self.batches.append([record.action for record in records])
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)
        if self._interrupt_second and len(self.batches) == 2:
            raise _Interrupted()
        if any(record.action == "Refused" for record in records):
            raise ValueError("refused")
        self._insert(conn, records)


def _append_all(log: AuditLog, actions: list[str], held: _HeldFirstBatch) -> list[str]:
    """Append the first action, then the others while the first is being written; the
    actions whose append raised."""
    failed: list[str] = []

    def append(action: str) -> None:
        try:
            log.append(_record(action))
        except (ValueError, _Interrupted):
            failed.append(action)

    threads = [threading.Thread(target=append, args=(action,)) for action in actions]
    threads[0].start()
    assert held.entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(log._pending) < len(actions) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    held.release.set()
    for thread in threads:
        thread.join(10)
    return failed


def test_calls_arriving_together_share_one_transaction(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldFirstBatch(audit.insert_audit_records)
    monkeypatch.setattr(auditlog.audit_queries, "insert_audit_records", held)
    failed = _append_all(AuditLog(catalog), ["First", *["Later"] * 5], held)
    assert failed == []
    assert held.batches == [["First"], ["Later"] * 5]
    assert _count(catalog, "First") == 1 and _count(catalog, "Later") == 5


def test_a_refused_record_costs_no_other_call_its_record(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldFirstBatch(audit.insert_audit_records)
    monkeypatch.setattr(auditlog.audit_queries, "insert_audit_records", held)
    failed = _append_all(AuditLog(catalog), ["First", "Kept", "Refused", "Kept"], held)
    assert failed == ["Refused"]
    assert _count(catalog, "Kept") == 2 and _count(catalog, "Refused") == 0


def test_the_calls_of_an_interrupted_batch_write_their_own_records(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _HeldFirstBatch(audit.insert_audit_records, interrupt_second=True)
    monkeypatch.setattr(auditlog.audit_queries, "insert_audit_records", held)
    failed = _append_all(AuditLog(catalog), ["First", *["Later"] * 4], held)
    assert failed == ["Later"]  # only the call whose thread was interrupted has no record
    assert held.batches[1] == ["Later"] * 4
    assert _count(catalog, "First") == 1 and _count(catalog, "Later") == 3


def test_each_record_is_committed_before_its_call_returns(catalog: Catalog) -> None:
    log, missing = AuditLog(catalog), []

    def append_and_read(worker: int) -> None:
        for i in range(10):
            log.append(_record(f"Probe-{worker}-{i}"))
            if _count(catalog, f"Probe-{worker}-{i}") != 1:
                missing.append(f"{worker}-{i}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(append_and_read, range(6)))
    assert missing == []
