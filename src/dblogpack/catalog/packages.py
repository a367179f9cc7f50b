"""Queries on package rows, which are also the jobs (DESIGN §2): the row, insert, look up, list,
deletion states and gauges. Claiming and the build's lease are in `leases`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from dblogpack.catalog.tables import package_summaries, packages
from dblogpack.model import LogKind, PackageSpec, PackageState, ResourceKind, TimeWindow

RUNNING = PackageState.RUNNING.value
DELETING = PackageState.DELETING.value
# The states a deletion may start from: the package's job has ended.
DELETABLE = (
    PackageState.SUCCESS.value,
    PackageState.FAILED.value,
    PackageState.DELETE_FAILED.value,
)


def _queued() -> ColumnElement[bool]:
    """Package_Running with no worker on it: not claimed yet, or waiting for its retry."""
    return and_(packages.c.state == RUNNING, packages.c.lease_owner.is_(None))


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
    def queued(self) -> bool:
        """Package_Running with no worker on it: not claimed yet, or waiting for its retry."""
        return self.state is PackageState.RUNNING and self.lease_owner is None

    @property
    def node_label(self) -> str:
        """How messages name the node: `node udb-1 (cluster umongodb-1)` or `instance upgsql-1`."""
        if self.node_id is None:
            return f"instance {self.resource_id}"
        return f"node {self.node_id} (cluster {self.resource_id})"

    def same_request(self, spec: PackageSpec, project_id: str) -> bool:
        """Whether `spec` asks for exactly this package again (a safe retry), whatever its id."""
        return self.project_id == project_id and spec._replace(id=self.id) == self.spec


def record_of(row: Row[Any]) -> PackageRecord:
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
    return None if row is None else record_of(row)


def find_live_package(conn: Connection, resource_id: str, name: str) -> PackageRecord | None:
    """The package of `resource_id` called `name` that is not Package_Deleted, if any."""
    row = conn.execute(
        select(packages).where(
            packages.c.resource_id == resource_id,
            packages.c.name == name,
            packages.c.state != PackageState.DELETED.value,
        )
    ).one_or_none()
    return None if row is None else record_of(row)


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
    # The total rides along with the page (one statement for the usual call); a page past the
    # end has no row to carry it, so only then is it counted apart.
    rows = conn.execute(
        select(packages, func.count().over().label("listed_total"))
        .where(*where)
        .order_by(packages.c.created_at.desc(), packages.c.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    if rows:
        total = rows[0].listed_total
    elif offset == 0:
        total = 0
    else:
        total = count_packages(conn, *where)
    return [record_of(r) for r in rows], int(total)


def same_node(resource_id: str, node_id: str | None) -> ColumnElement[bool]:
    node = packages.c.node_id.is_(None) if node_id is None else packages.c.node_id == node_id
    return and_(packages.c.resource_id == resource_id, node)


def count_packages(conn: Connection, *where: ColumnElement[bool]) -> int:
    """How many package rows match all of `where`."""
    return int(conn.execute(select(func.count()).select_from(packages).where(*where)).scalar_one())


def count_running_on_node(conn: Connection, resource_id: str, node_id: str | None) -> int:
    """Packages of the node that are queued or being built (Package_Running)."""
    return count_packages(conn, same_node(resource_id, node_id), packages.c.state == RUNNING)


def lock_for_update(conn: Connection, key: str) -> None:
    """Serialize writers of `key` until the transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite needs nothing: a write transaction
    holds the database's single write lock from its first statement (BEGIN IMMEDIATE).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


# -- deleting ---------------------------------------------------------------------------------


def start_deleting(
    conn: Connection, package_id: str, token: str, *, lease_until: float
) -> bool:
    """Package_Deleting under a deletion lease, from Success, Failed or DeleteFailed, or from
    the queue (a package no worker holds, which no worker can claim from then on).

    Atomic against a claim: on SQLite both run under the one write lock; on PostgreSQL the
    claim locks the row (FOR UPDATE), and this UPDATE, waiting for that lock, evaluates its
    WHERE again on the claimed row: the lease is set, nothing changes.
    """
    changed = conn.execute(
        update(packages)
        .where(
            packages.c.id == package_id,
            or_(packages.c.state.in_(DELETABLE), _queued()),
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
    if changed.rowcount == 1 and state is PackageState.DELETED:
        conn.execute(delete(package_summaries).where(package_summaries.c.package_id == package_id))
    return changed.rowcount == 1


def package_summary(conn: Connection, package_id: str) -> str | None:
    """summary.json of a finished package as recorded with its success (None: none recorded,
    as for packages finished before summaries were kept)."""
    document: str | None = conn.execute(
        select(package_summaries.c.document).where(package_summaries.c.package_id == package_id)
    ).scalar_one_or_none()
    return document


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
