"""The audit trail: one record per signed call (who, what, on which resource, with what RetCode)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, insert, select

from dblogpack.catalog.records import AuditRecord
from dblogpack.catalog.tables import audit_records


def insert_audit_record(
    conn: Connection,
    *,
    request_uuid: str,
    public_key: str | None,
    action: str,
    resource_id: str | None,
    ret_code: int,
    remote_addr: str | None,
) -> None:
    conn.execute(
        insert(audit_records).values(
            at=time.time(),
            request_uuid=_fit(request_uuid, 64) or "",
            public_key=_fit(public_key, 128),
            action=_fit(action, 128) or "",
            resource_id=_fit(resource_id, 128),
            ret_code=ret_code,
            remote_addr=_fit(remote_addr, 64),
        )
    )


def _fit(value: str | None, length: int) -> str | None:
    """`value` as its column can hold it: whatever a caller sent is recorded, never refused."""
    if value is None:
        return None
    return value.replace("\x00", "\\0")[:length]


def recent_audit_records(conn: Connection, limit: int = 100) -> list[AuditRecord]:
    """The newest records first."""
    query = select(audit_records).order_by(audit_records.c.id.desc()).limit(limit)
    return [
        AuditRecord(r.at, r.request_uuid, r.public_key, r.action, r.resource_id, r.ret_code,
                    r.remote_addr)
        for r in conn.execute(query)
    ]
