"""Job operations on package rows: enqueue, claim, heartbeat, finish, fail, retry, release,
requeue stalled jobs, and the deletion states. Policy (leases, attempts, retention) lives here;
the SQL lives in catalog.packages and catalog.leases.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from dblogpack.catalog import Catalog, leases, resources
from dblogpack.catalog import packages as rows
from dblogpack.catalog.leases import BuiltPackage
from dblogpack.catalog.packages import PackageRecord
from dblogpack.errors import NameConflict, NodeBusy, NotFound, StateConflict
from dblogpack.model import PackageSpec, PackageState, ResourceKind, SourceConfig

log = logging.getLogger("dblogpack.jobs")
DAY = 86400.0


class LeaseLost(Exception):
    """This worker no longer holds the job: another worker took it, or it was released."""


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How long a lease lasts, how often a job is tried, how many run per node, how long kept."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    per_node_concurrency: int = 2
    retention_days: float = 7.0
    retry_delay_seconds: float = 2.0  # times the attempt number: 2 s, 4 s, ...

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0 or self.max_attempts < 1 or self.per_node_concurrency < 1:
            raise ValueError(f"invalid job policy {self}")


@dataclass(frozen=True, slots=True)
class Claim:
    """A job leased by one worker; `token` is this lease's identity (unique per claim)."""

    package: PackageRecord
    token: str


def package_prefix(package: PackageRecord) -> str:
    """Store prefix under which every object of a package lives (one per attempt at most)."""
    return f"{package.project_id}/{package.id}/"


def package_key(package: PackageRecord) -> str:
    """Store key of this attempt's object: unique per attempt, so a late worker's object can be
    told from the one the row records, and removed."""
    return f"{package_prefix(package)}attempt-{package.attempts}/{package.name}.tar.gz"


class JobQueue:
    """The package rows of one catalog, seen as a durable job queue."""

    def __init__(
        self,
        catalog: Catalog,
        policy: JobPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.policy = policy or JobPolicy()
        self.clock = clock

    # -- requests ----------------------------------------------------------------------------

    def enqueue(
        self,
        spec: PackageSpec,
        *,
        project_id: str,
        role: str | None = None,
        refuse_busy_node: bool = True,
    ) -> PackageRecord:
        """Queue `spec` as a new package, or return the live package the very same request made.

        NameConflict (1002) when the name is taken by a package with other parameters;
        NodeBusy (1004) when `refuse_busy_node` and the node already has `per_node_concurrency`
        packages queued or running.
        """
        try:
            with self.catalog.write() as conn:
                rows.lock_for_update(conn, f"resource:{spec.resource_id}")
                existing = rows.find_live_package(conn, spec.resource_id, spec.name)
                if existing is not None:
                    return _same_or_conflict(existing, spec, project_id)
                if refuse_busy_node:
                    self._check_node_not_busy(conn, spec)
                package = rows.insert_package(
                    conn, spec, project_id=project_id, role=role, now=self.clock()
                )
            # Logged within the API call: the line ties its RequestUUID to the package id.
            log.info("package %s queued for %s", package.id, package.node_label,
                     extra={"package_id": package.id})
            return package
        except IntegrityError as exc:
            # Only a package id chosen twice gets here: names are checked under the lock above.
            raise NameConflict(f"package id {spec.id!r} is already used") from exc

    def _check_node_not_busy(self, conn: Connection, spec: PackageSpec) -> None:
        running = rows.count_running_on_node(conn, spec.resource_id, spec.node_id)
        limit = self.policy.per_node_concurrency
        if running >= limit:
            node = spec.node_id or spec.resource_id
            raise NodeBusy(
                f"{running} package(s) of {node} are still running (at most {limit} at a time); "
                "wait for one to finish and try again"
            )

    def get(self, package_id: str) -> PackageRecord | None:
        with self.catalog.read() as conn:
            return rows.get_package(conn, package_id)

    def summary(self, package_id: str) -> str | None:
        """summary.json of a finished package as its build recorded it (None: not recorded)."""
        with self.catalog.read() as conn:
            return rows.package_summary(conn, package_id)

    def list_packages(
        self,
        project_ids: Sequence[str],
        kind: ResourceKind,
        *,
        resource_id: str | None = None,
        node_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[PackageRecord], int]:
        """A page of live packages, newest first, and their total count."""
        with self.catalog.read() as conn:
            return rows.list_packages(
                conn, project_ids, kind, resource_id=resource_id, node_id=node_id,
                offset=offset, limit=limit,
            )

    def source_config(self, package: PackageRecord) -> SourceConfig:
        """The decrypted log source of the package's node; NotFound when it was deregistered."""
        with self.catalog.read() as conn:
            if package.kind is ResourceKind.PGSQL:
                found = resources.pgsql_source(conn, self.catalog.box, package.resource_id)
            else:
                found = resources.mongodb_node_source(
                    conn, self.catalog.box, package.node_id or ""
                )
        if found is None:
            raise NotFound(f"{package.node_label} is no longer registered")
        return found

    def state_counts(self) -> dict[str, int]:
        """How many packages are in each state (for the /metrics gauges)."""
        with self.catalog.read() as conn:
            return rows.count_by_state(conn)

    def depth(self) -> int:
        """Packages waiting for a worker: Running, unleased, attempts left."""
        with self.catalog.read() as conn:
            return leases.count_claimable(conn, self.clock(), self.policy.max_attempts)

    # -- a worker's side ---------------------------------------------------------------------

    def claim(self, worker_name: str) -> Claim | None:
        """Lease the oldest job a node has room for; None when there is nothing to do."""
        token = _lease_token(worker_name)
        with self.catalog.write() as conn:
            package = leases.claim_next(
                conn,
                token,
                now=self.clock(),
                lease_seconds=self.policy.lease_seconds,
                per_node_limit=self.policy.per_node_concurrency,
                max_attempts=self.policy.max_attempts,
            )
        return None if package is None else Claim(package, token)

    def heartbeat(self, claim: Claim, progress: int) -> bool:
        """Renew the lease and record progress (clamped to 1-99); False when the lease is lost."""
        with self.catalog.write() as conn:
            return leases.renew_lease(
                conn,
                claim.package.id,
                claim.token,
                expires_at=self.clock() + self.policy.lease_seconds,
                progress=max(1, min(99, progress)),
            )

    def finish(self, claim: Claim, built: BuiltPackage) -> bool:
        """Package_Success with the published object; False (nothing changed) if the lease is lost.

        Call only after the object is published under `built.store_key`.
        """
        now = self.clock()
        with self.catalog.write() as conn:
            return leases.record_success(
                conn, claim.package.id, claim.token, built, now=now, expires_at=self._expiry(now)
            )

    def fail(self, claim: Claim, message: str) -> bool:
        """Package_Failed with `message` (a deterministic failure: no retry)."""
        now = self.clock()
        with self.catalog.write() as conn:
            return leases.record_failure(
                conn, claim.package.id, claim.token, message, now=now, expires_at=self._expiry(now)
            )

    def retry_or_fail(self, claim: Claim, error: str) -> PackageState | None:
        """After a transient failure: queue the job again, or fail it when attempts are spent.

        Returns the package's new state, or None when the lease was already lost.
        """
        attempts, limit = claim.package.attempts, self.policy.max_attempts
        if attempts >= limit:
            done = self.fail(claim, exhausted_message(attempts, error))
            return PackageState.FAILED if done else None
        message = retrying_message(attempts, limit, error)
        not_before = self.clock() + self.policy.retry_delay_seconds * attempts
        with self.catalog.write() as conn:
            done = leases.requeue(
                conn, claim.package.id, claim.token, message, not_before=not_before
            )
        return PackageState.RUNNING if done else None

    def release(self, claim: Claim) -> bool:
        """Give the job back without counting the attempt (a worker stopping gracefully)."""
        with self.catalog.write() as conn:
            return leases.release_lease(conn, claim.package.id, claim.token)

    def requeue_stalled(self) -> int:
        """Queue again (or fail, when attempts are spent) jobs whose worker stopped renewing its
        lease; how many were touched. Claims take expired leases anyway; this makes the state
        honest for users and bounds the attempts of jobs that keep killing their workers."""
        now = self.clock()
        touched = 0
        with self.catalog.write() as conn:
            for stalled in leases.stalled_packages(conn, now):
                error = f"worker {_worker_of(stalled.lease_owner)} stopped renewing its lease"
                if stalled.attempts >= self.policy.max_attempts:
                    message = exhausted_message(stalled.attempts, error)
                    done = leases.fail_stalled(
                        conn, stalled, message, now=now, expires_at=self._expiry(now)
                    )
                else:
                    message = retrying_message(stalled.attempts, self.policy.max_attempts, error)
                    done = leases.requeue_stalled(conn, stalled, message)
                touched += done
        return touched

    def _expiry(self, now: float) -> float:
        return now + self.policy.retention_days * DAY

    # -- deleting ----------------------------------------------------------------------------

    def start_deleting(self, package_id: str, deleter: str) -> str:
        """Package_Deleting on request, from a finished or failed package or a queued one (its
        job is cancelled); the deletion lease's token.

        NotFound when there is no such live package; StateConflict (1003) while a worker builds
        it or it is already being deleted.
        """
        token = _lease_token(deleter)
        with self.catalog.write() as conn:
            if rows.start_deleting(conn, package_id, token, lease_until=self._deletion_lease()):
                return token
            found = rows.get_package(conn, package_id)
        raise _cannot_delete(package_id, found)

    def take_over_sweepable(self, deleter: str, limit: int = 100) -> list[tuple[str, str]]:
        """Lease for deletion the expired packages and abandoned deletions: (id, token) pairs."""
        now = self.clock()
        taken: list[tuple[str, str]] = []
        with self.catalog.write() as conn:
            for package_id in rows.sweepable_ids(conn, now, limit):
                token = _lease_token(deleter)
                lease = self._deletion_lease()
                if rows.start_deleting(conn, package_id, token, lease_until=lease) or (
                    rows.take_over_deletion(conn, package_id, token, now=now, lease_until=lease)
                ):
                    taken.append((package_id, token))
        return taken

    def finish_deleting(
        self, package_id: str, token: str, refusal: str | None = None
    ) -> PackageRecord:
        """Package_Deleted, or Package_DeleteFailed with the store's `refusal`."""
        state = PackageState.DELETED if refusal is None else PackageState.DELETE_FAILED
        with self.catalog.write() as conn:
            rows.finish_deleting(conn, package_id, token, state, refusal or "")
            found = rows.get_package(conn, package_id)
        assert found is not None  # rows are never removed, only marked
        return found

    def _deletion_lease(self) -> float:
        return self.clock() + self.policy.lease_seconds


def exhausted_message(attempts: int, error: str) -> str:
    return f"attempted {attempts} time(s); the last attempt failed: {error}"


def retrying_message(attempts: int, limit: int, error: str) -> str:
    return f"attempt {attempts} of {limit} failed, retrying: {error}"


def _lease_token(owner: str) -> str:
    """A lease's identity, unique per lease: its owner's name, then `#` and a random tag."""
    return f"{owner}#{uuid.uuid4().hex[:8]}"


def _worker_of(token: str | None) -> str:
    return (token or "?").split("#", 1)[0]


def _same_or_conflict(
    existing: PackageRecord, spec: PackageSpec, project_id: str
) -> PackageRecord:
    if existing.same_request(spec, project_id):
        return existing
    raise NameConflict(
        f"name {spec.name!r} is already used by package {existing.id} with other parameters; "
        "choose another name"
    )


def _cannot_delete(package_id: str, found: PackageRecord | None) -> Exception:
    if found is None:
        return NotFound(f"package {package_id!r} not found")
    if found.state is PackageState.RUNNING:
        return StateConflict(f"package {package_id} is still being built; delete it once done")
    if found.state is PackageState.DELETED:
        return StateConflict(f"package {package_id} is already deleted")
    return StateConflict(f"package {package_id} is already being deleted")
