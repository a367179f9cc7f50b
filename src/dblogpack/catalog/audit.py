"""The audit trail: one record per signed call (who, what, on which resource, with what RetCode)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, insert, select

from dblogpack.catalog.paging import page
from dblogpack.catalog.records import AuditRecord
from dblogpack.catalog.tables import audit_records


def insert_audit_records(conn: Connection, records: Sequence[AuditRecord]) -> None:
    """Append `records` in one statement (executemany)."""
    conn.execute(insert(audit_records), [_values(record) for record in records])


def _values(record: AuditRecord) -> dict[str, object]:
    return {
        "at": record.at,
        "request_uuid": _fit(record.request_uuid, 64) or "",
        "public_key": _fit(record.public_key, 128),
        "action": _fit(record.action, 128) or "",
        "resource_id": _fit(record.resource_id, 128),
        "ret_code": record.ret_code,
        "remote_addr": _fit(record.remote_addr, 64),
    }


def _fit(value: str | None, length: int) -> str | None:
    """`value` as its column can hold it: whatever a caller sent is recorded, never refused."""
    if value is None:
        return None
    return value.replace("\x00", "\\0")[:length]


def recent_audit_records(conn: Connection, limit: int = 100) -> list[AuditRecord]:
    """The newest records first."""
    query = select(audit_records).order_by(audit_records.c.id.desc()).limit(limit)
    return [_record(row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a listing keeps; None means any."""

    public_key: str | None = None
    action: str | None = None
    begin: float | None = None  # at >= begin
    end: float | None = None  # at < end


def list_audit_records(
    conn: Connection, where: AuditFilter, offset: int, limit: int
) -> tuple[list[AuditRecord], int]:
    """A page of the records `where` keeps, newest first, and how many it keeps in all."""
    query = select(audit_records).where(*_conditions(where))
    rows, total = page(conn, query, (audit_records.c.id.desc(),), offset, limit)
    return [_record(row) for row in rows], total


def _conditions(where: AuditFilter) -> list[ColumnElement[bool]]:
    columns = audit_records.c
    conditions: list[ColumnElement[bool]] = []
    if where.public_key is not None:
        conditions.append(columns.public_key == where.public_key)
    if where.action is not None:
        conditions.append(columns.action == where.action)
    if where.begin is not None:
        conditions.append(columns.at >= where.begin)
    if where.end is not None:
        conditions.append(columns.at < where.end)
    return conditions


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(row.at, row.request_uuid, row.public_key, row.action, row.resource_id,
                       row.ret_code, row.remote_addr)
