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
            request_uuid=request_uuid,
            public_key=public_key,
            action=action[:128],
            resource_id=None if resource_id is None else resource_id[:128],
            ret_code=ret_code,
            remote_addr=remote_addr,
        )
    )


def recent_audit_records(conn: Connection, limit: int = 100) -> list[AuditRecord]:
    """The newest records first."""
    query = select(audit_records).order_by(audit_records.c.id.desc()).limit(limit)
    return [
        AuditRecord(r.at, r.request_uuid, r.public_key, r.action, r.resource_id, r.ret_code,
                    r.remote_addr)
        for r in conn.execute(query)
    ]
