"""Package rows as jobs (DESIGN §2): claiming the next one, the lease a worker holds while it
builds, and how a build ends (success, failure, retry, stalled). A change made under a lease
names the lease's token in its WHERE clause, so a worker that lost its lease changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)

from dblogpack.catalog.packages import (
    RUNNING,
    PackageRecord,
    count_packages,
    get_package,
    lock_for_update,
    record_of,
    same_node,
)
from dblogpack.catalog.tables import package_summaries, packages
from dblogpack.model import PackageState


def _leased(now: float) -> ColumnElement[bool]:
    return and_(
        packages.c.state == RUNNING,
        packages.c.lease_owner.is_not(None),
        packages.c.lease_expires_at >= now,
    )


def _claimable(now: float, max_attempts: int) -> ColumnElement[bool]:
    # lease_expires_at doubles as "not before" for a job waiting to be retried (owner NULL).
    return and_(
        packages.c.state == RUNNING,
        packages.c.attempts < max_attempts,
        or_(packages.c.lease_expires_at.is_(None), packages.c.lease_expires_at < now),
    )


def leased_on_node(conn: Connection, resource_id: str, node_id: str | None, now: float) -> int:
    """Packages of the node a live worker holds right now."""
    return count_packages(conn, same_node(resource_id, node_id), _leased(now))


def claim_next(
    conn: Connection,
    token: str,
    *,
    now: float,
    lease_seconds: float,
    per_node_limit: int,
    max_attempts: int,
) -> PackageRecord | None:
    """Lease the oldest claimable package whose node is below `per_node_limit`; None if none.

    Run inside one write transaction. On PostgreSQL the candidate is locked with FOR UPDATE
    SKIP LOCKED (concurrent claimers pass over it) and the node's lease count is checked again
    under the node's advisory lock, which a concurrent claim of the same node's other package
    holds until it commits. On SQLite the write transaction already excludes every other writer.
    """
    full = _full_nodes(conn, now, per_node_limit)
    while (candidate := _candidate(conn, now, max_attempts, full)) is not None:
        lock_for_update(conn, f"node:{candidate.resource_id}/{candidate.node_id or ''}")
        if leased_on_node(conn, candidate.resource_id, candidate.node_id, now) < per_node_limit:
            claimed = conn.execute(
                update(packages)
                .where(packages.c.id == candidate.id, _claimable(now, max_attempts))
                .values(
                    lease_owner=token,
                    lease_expires_at=now + lease_seconds,
                    attempts=packages.c.attempts + 1,
                    progress=1,
                    started_at=func.coalesce(packages.c.started_at, now),
                )
            )
            return get_package(conn, candidate.id) if claimed.rowcount == 1 else None
        # A concurrent claim filled this node since the candidate was chosen: try other nodes.
        full.append(same_node(candidate.resource_id, candidate.node_id))
    return None


def _full_nodes(conn: Connection, now: float, per_node_limit: int) -> list[ColumnElement[bool]]:
    """Conditions matching the nodes that already have `per_node_limit` live leases.

    Computed once from the (few) leased rows, so the candidate query needs no per-row count.
    """
    found = conn.execute(
        select(packages.c.resource_id, packages.c.node_id)
        .where(_leased(now))
        .group_by(packages.c.resource_id, packages.c.node_id)
        .having(func.count() >= per_node_limit)
    ).all()
    return [same_node(r.resource_id, r.node_id) for r in found]


def _candidate(
    conn: Connection, now: float, max_attempts: int, full_nodes: Sequence[ColumnElement[bool]]
) -> Row[Any, Any, Any] | None:
    """The oldest claimable package (id, resource_id, node_id) outside `full_nodes`."""
    return conn.execute(
        select(packages.c.id, packages.c.resource_id, packages.c.node_id)
        .where(_claimable(now, max_attempts), *(not_(node) for node in full_nodes))
        .order_by(packages.c.created_at, packages.c.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=packages)
    ).one_or_none()


def _held(package_id: str, token: str) -> ColumnElement[bool]:
    return and_(
        packages.c.id == package_id,
        packages.c.lease_owner == token,
        packages.c.state == RUNNING,
    )


def renew_lease(
    conn: Connection, package_id: str, token: str, *, expires_at: float, progress: int
) -> bool:
    """Extend the lease and record progress; False when the lease is no longer `token`'s."""
    changed = conn.execute(
        update(packages)
        .where(_held(package_id, token))
        .values(lease_expires_at=expires_at, progress=progress)
    )
    return changed.rowcount == 1


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    """What a finished build published."""

    store_key: str
    size: int
    entry_count: int
    checksum: str
    summary: str | None = None  # the package's summary.json


def record_success(
    conn: Connection,
    package_id: str,
    token: str,
    built: BuiltPackage,
    *,
    now: float,
    expires_at: float,
) -> bool:
    """Package_Success with what was published; False (row untouched) when the lease was lost.

    The build is counted either way, so duplicated work shows in `builds`.
    """
    conn.execute(
        update(packages).where(packages.c.id == package_id).values(builds=packages.c.builds + 1)
    )
    changed = conn.execute(
        update(packages)
        .where(_held(package_id, token))
        .values(
            state=PackageState.SUCCESS.value,
            progress=100,
            message="",
            lease_owner=None,
            lease_expires_at=None,
            store_key=built.store_key,
            size=built.size,
            entry_count=built.entry_count,
            checksum=built.checksum,
            finished_at=now,
            expires_at=expires_at,
        )
    )
    if changed.rowcount == 1 and built.summary is not None:
        # In the same transaction as the state: a Package_Success row has its summary. A row
        # reaches Success once (the lease is gone after), so no earlier summary is there.
        conn.execute(
            insert(package_summaries).values(package_id=package_id, document=built.summary)
        )
    return changed.rowcount == 1


def record_failure(
    conn: Connection, package_id: str, token: str, message: str, *, now: float, expires_at: float
) -> bool:
    """Package_Failed with `message`; False when the lease was lost."""
    changed = conn.execute(
        update(packages)
        .where(_held(package_id, token))
        .values(
            state=PackageState.FAILED.value,
            message=message,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            expires_at=expires_at,
        )
    )
    return changed.rowcount == 1


def requeue(
    conn: Connection, package_id: str, token: str, message: str, *, not_before: float | None
) -> bool:
    """Back to the queue, claimable from `not_before` (None: at once); False when the lease
    was lost."""
    changed = conn.execute(
        update(packages)
        .where(_held(package_id, token))
        .values(message=message, progress=0, lease_owner=None, lease_expires_at=not_before)
    )
    return changed.rowcount == 1


def release_lease(conn: Connection, package_id: str, token: str) -> bool:
    """Hand the job back untouched (a worker stopping): the attempt does not count."""
    changed = conn.execute(
        update(packages)
        .where(_held(package_id, token))
        .values(
            attempts=packages.c.attempts - 1, progress=0, lease_owner=None, lease_expires_at=None
        )
    )
    return changed.rowcount == 1


def stalled_packages(conn: Connection, now: float, limit: int = 100) -> list[PackageRecord]:
    """Running packages whose worker stopped renewing its lease."""
    rows = conn.execute(
        select(packages)
        .where(
            packages.c.state == RUNNING,
            packages.c.lease_owner.is_not(None),
            packages.c.lease_expires_at < now,
        )
        .order_by(packages.c.lease_expires_at)
        .limit(limit)
    ).all()
    return [record_of(r) for r in rows]


def fail_stalled(
    conn: Connection, stalled: PackageRecord, message: str, *, now: float, expires_at: float
) -> bool:
    """Package_Failed for a stalled package, unless someone claimed it meanwhile."""
    assert stalled.lease_owner is not None
    return record_failure(
        conn, stalled.id, stalled.lease_owner, message, now=now, expires_at=expires_at
    )


def requeue_stalled(conn: Connection, stalled: PackageRecord, message: str) -> bool:
    """Back to the queue (claimable at once), unless someone claimed it meanwhile."""
    assert stalled.lease_owner is not None
    return requeue(conn, stalled.id, stalled.lease_owner, message, not_before=None)


def count_claimable(conn: Connection, now: float, max_attempts: int) -> int:
    """Packages Running that no worker holds and that may be claimed now: the queue's depth."""
    return count_packages(conn, _claimable(now, max_attempts))
