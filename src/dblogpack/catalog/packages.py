"""Queries on package rows, which are also the jobs (DESIGN §2): insert, look up, list, claim, and
every state change a worker or the sweeper makes. A change made under a lease names the lease's
token in its WHERE clause, so a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    text,
    update,
)

from dblogpack.catalog.tables import packages
from dblogpack.model import LogKind, PackageSpec, PackageState, ResourceKind, TimeWindow

RUNNING = PackageState.RUNNING.value
DELETING = PackageState.DELETING.value
# The states a deletion may start from: the package's job has ended.
DELETABLE = (
    PackageState.SUCCESS.value,
    PackageState.FAILED.value,
    PackageState.DELETE_FAILED.value,
)


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """One package row: what was asked (the spec), where its job stands, and what it produced."""

    id: str
    project_id: str
    kind: ResourceKind
    resource_id: str
    node_id: str | None
    role: str | None
    name: str
    log_type: LogKind
    begin: float | None
    end: float | None
    min_duration_ms: float | None
    files: tuple[str, ...] | None
    state: PackageState
    progress: int
    message: str
    attempts: int
    lease_owner: str | None
    lease_expires_at: float | None
    size: int | None
    entry_count: int | None
    checksum: str | None
    store_key: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    builds: int

    @property
    def spec(self) -> PackageSpec:
        return PackageSpec(
            id=self.id,
            name=self.name,
            kind=self.kind,
            resource_id=self.resource_id,
            node_id=self.node_id,
            log_type=self.log_type,
            window=TimeWindow(self.begin, self.end),
            min_duration_ms=self.min_duration_ms,
            files=self.files,
        )

    @property
    def node_label(self) -> str:
        """How messages name the node: `node udb-1 (cluster umongodb-1)` or `instance upgsql-1`."""
        if self.node_id is None:
            return f"instance {self.resource_id}"
        return f"node {self.node_id} (cluster {self.resource_id})"

    def same_request(self, spec: PackageSpec, project_id: str) -> bool:
        """Whether `spec` asks for exactly this package again (a safe retry), whatever its id."""
        return self.project_id == project_id and replace(spec, id=self.id) == self.spec


def _record(row: Row[Any]) -> PackageRecord:
    return PackageRecord(
        id=row.id,
        project_id=row.project_id,
        kind=ResourceKind(row.kind),
        resource_id=row.resource_id,
        node_id=row.node_id,
        role=row.role,
        name=row.name,
        log_type=LogKind(row.log_type),
        begin=row.begin_ts,
        end=row.end_ts,
        min_duration_ms=row.min_duration_ms,
        files=None if row.files is None else tuple(json.loads(row.files)),
        state=PackageState(row.state),
        progress=row.progress,
        message=row.message,
        attempts=row.attempts,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        size=row.size,
        entry_count=row.entry_count,
        checksum=row.checksum,
        store_key=row.store_key,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        expires_at=row.expires_at,
        builds=row.builds,
    )


# -- creating and reading ---------------------------------------------------------------------


def insert_package(
    conn: Connection, spec: PackageSpec, *, project_id: str, role: str | None, now: float
) -> PackageRecord:
    """A new queued package (Package_Running, Progress 0) for `spec`."""
    conn.execute(
        insert(packages).values(
            id=spec.id,
            project_id=project_id,
            kind=spec.kind.value,
            resource_id=spec.resource_id,
            node_id=spec.node_id,
            role=role,
            name=spec.name,
            log_type=spec.log_type.value,
            begin_ts=spec.window.begin,
            end_ts=spec.window.end,
            min_duration_ms=spec.min_duration_ms,
            files=None if spec.files is None else json.dumps(list(spec.files)),
            state=RUNNING,
            created_at=now,
        )
    )
    found = get_package(conn, spec.id)
    assert found is not None  # inserted by this very transaction
    return found


def get_package(conn: Connection, package_id: str) -> PackageRecord | None:
    row = conn.execute(select(packages).where(packages.c.id == package_id)).one_or_none()
    return None if row is None else _record(row)


def find_live_package(conn: Connection, resource_id: str, name: str) -> PackageRecord | None:
    """The package of `resource_id` called `name` that is not Package_Deleted, if any."""
    row = conn.execute(
        select(packages).where(
            packages.c.resource_id == resource_id,
            packages.c.name == name,
            packages.c.state != PackageState.DELETED.value,
        )
    ).one_or_none()
    return None if row is None else _record(row)


def list_packages(
    conn: Connection,
    project_ids: Sequence[str],
    kind: ResourceKind,
    *,
    resource_id: str | None = None,
    node_id: str | None = None,
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[PackageRecord], int]:
    """A page of live packages (newest first) and how many there are in all."""
    where = [
        packages.c.project_id.in_(project_ids),
        packages.c.kind == kind.value,
        packages.c.state != PackageState.DELETED.value,
    ]
    if resource_id is not None:
        where.append(packages.c.resource_id == resource_id)
    if node_id is not None:
        where.append(packages.c.node_id == node_id)
    total = conn.execute(select(func.count()).select_from(packages).where(*where)).scalar_one()
    rows = conn.execute(
        select(packages)
        .where(*where)
        .order_by(packages.c.created_at.desc(), packages.c.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [_record(r) for r in rows], int(total)


def _same_node(resource_id: str, node_id: str | None) -> ColumnElement[bool]:
    node = packages.c.node_id.is_(None) if node_id is None else packages.c.node_id == node_id
    return and_(packages.c.resource_id == resource_id, node)


def count_running_on_node(conn: Connection, resource_id: str, node_id: str | None) -> int:
    """Packages of the node that are queued or being built (Package_Running)."""
    query = select(func.count()).select_from(packages).where(
        _same_node(resource_id, node_id), packages.c.state == RUNNING
    )
    return int(conn.execute(query).scalar_one())


def lock_for_update(conn: Connection, key: str) -> None:
    """Serialize writers of `key` until the transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite needs nothing: a write transaction
    holds the database's single write lock from its first statement (BEGIN IMMEDIATE).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


# -- claiming ---------------------------------------------------------------------------------


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
    query = select(func.count()).select_from(packages).where(
        _same_node(resource_id, node_id), _leased(now)
    )
    return int(conn.execute(query).scalar_one())


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
        full.append(_same_node(candidate.resource_id, candidate.node_id))
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
    return [_same_node(r.resource_id, r.node_id) for r in found]


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
    return [_record(r) for r in rows]


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


# -- deleting ---------------------------------------------------------------------------------


def start_deleting(
    conn: Connection, package_id: str, token: str, *, lease_until: float
) -> bool:
    """Package_Deleting under a deletion lease, from Success, Failed or DeleteFailed."""
    changed = conn.execute(
        update(packages)
        .where(
            packages.c.id == package_id,
            packages.c.state.in_(DELETABLE),
        )
        .values(state=DELETING, lease_owner=token, lease_expires_at=lease_until)
    )
    return changed.rowcount == 1


def finish_deleting(
    conn: Connection, package_id: str, token: str, state: PackageState, message: str
) -> bool:
    """Package_Deleted or Package_DeleteFailed, for the holder of the deletion lease."""
    changed = conn.execute(
        update(packages)
        .where(
            packages.c.id == package_id,
            packages.c.state == DELETING,
            packages.c.lease_owner == token,
        )
        .values(state=state.value, message=message, lease_owner=None, lease_expires_at=None)
    )
    return changed.rowcount == 1


def sweepable_ids(conn: Connection, now: float, limit: int) -> list[str]:
    """Packages the sweeper should delete: past their expiry, or a deletion whose deleter died."""
    expired = and_(
        packages.c.state.in_(DELETABLE),
        packages.c.expires_at < now,
    )
    abandoned = and_(packages.c.state == DELETING, packages.c.lease_expires_at < now)
    rows = conn.execute(
        select(packages.c.id).where(or_(expired, abandoned)).order_by(packages.c.id).limit(limit)
    ).all()
    return [r.id for r in rows]


def take_over_deletion(
    conn: Connection, package_id: str, token: str, *, now: float, lease_until: float
) -> bool:
    """Lease an abandoned Package_Deleting row (its deleter died) to finish the deletion."""
    changed = conn.execute(
        update(packages)
        .where(
            packages.c.id == package_id,
            packages.c.state == DELETING,
            packages.c.lease_expires_at < now,
        )
        .values(lease_owner=token, lease_expires_at=lease_until)
    )
    return changed.rowcount == 1


# -- gauges -----------------------------------------------------------------------------------


def count_by_state(conn: Connection) -> dict[str, int]:
    """How many package rows are in each state (one grouped count, for /metrics)."""
    query = select(packages.c.state, func.count()).group_by(packages.c.state)
    return {str(state): int(count) for state, count in conn.execute(query)}


def count_claimable(conn: Connection, now: float, max_attempts: int) -> int:
    """Packages Running that no worker holds and that may be claimed now: the queue's depth."""
    query = select(func.count()).select_from(packages).where(_claimable(now, max_attempts))
    return int(conn.execute(query).scalar_one())
