"""The package row is the job: how packages are queued, claimed, leased, retried and deleted,
on SQLite and on a real PostgreSQL alike (DESIGN §2).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.jobs import JobWorld, metadata_database, open_world

from dblogpack.catalog.leases import BuiltPackage
from dblogpack.errors import NameConflict, NodeBusy, NotFound, StateConflict
from dblogpack.jobs import Claim, JobPolicy, JobQueue
from dblogpack.model import LogKind, PackageState


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty metadata database: a SQLite file, or a fresh database on the shared cluster."""
    yield from metadata_database(request, tmp_path)


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[JobWorld]:
    yield from open_world(database_url, tmp_path)


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


POLICY = JobPolicy(lease_seconds=30, max_attempts=2, per_node_concurrency=2, retention_days=7)


def queue_of(world: JobWorld, clock: Clock, policy: JobPolicy = POLICY) -> JobQueue:
    return world.queue(policy, clock)


def built(claim: Claim) -> BuiltPackage:
    return BuiltPackage(f"{claim.package.project_id}/{claim.package.id}/x", 10, 3, "ab" * 32)


def claimed(queue: JobQueue, worker: str = "w") -> Claim:
    claim = queue.claim(worker)
    assert claim is not None
    return claim


# -- requests --------------------------------------------------------------------------------


def test_a_new_package_is_queued_running_at_progress_zero(world: JobWorld) -> None:
    queue = queue_of(world, Clock())
    spec = world.spec("n1", "nightly")
    package = queue.enqueue(spec, project_id=world.project_id, role="primary")
    assert (package.state, package.progress, package.attempts) == (PackageState.RUNNING, 0, 0)
    assert (package.name, package.role, package.log_type) == ("nightly", "primary", LogKind.SLOW)
    assert queue.get(package.id) == package


def test_repeating_the_same_request_returns_the_same_package(world: JobWorld) -> None:
    queue = queue_of(world, Clock())
    first = queue.enqueue(world.spec("n1", "nightly"), project_id=world.project_id)
    again = queue.enqueue(world.spec("n1", "nightly"), project_id=world.project_id)
    assert again.id == first.id
    with pytest.raises(NameConflict, match="'nightly' is already used"):
        queue.enqueue(world.spec("n1", "nightly", LogKind.ERROR), project_id=world.project_id)


def test_a_busy_node_refuses_more_packages_with_1004(world: JobWorld) -> None:
    queue = queue_of(world, Clock())
    for _ in range(2):
        queue.enqueue(world.spec("n1"), project_id=world.project_id)
    with pytest.raises(NodeBusy) as refused:
        queue.enqueue(world.spec("n1"), project_id=world.project_id)
    assert refused.value.ret_code == 1004
    assert "at most 2 at a time" in refused.value.message
    queue.enqueue(world.spec("n2"), project_id=world.project_id)  # another node has room
    queue.enqueue(world.spec("n1"), project_id=world.project_id, refuse_busy_node=False)


def test_packages_are_listed_newest_first_by_page(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    ids = []
    for node in ("n1", "n2", "n3"):
        ids.append(queue.enqueue(world.spec(node), project_id=world.project_id).id)
        clock.now += 1
    page, total = queue.list_packages([world.project_id], world.spec("n1").kind, offset=1, limit=1)
    assert total == 3 and [p.id for p in page] == [ids[1]]
    only_n3, total = queue.list_packages(
        [world.project_id], world.spec("n1").kind, node_id="n3"
    )
    assert total == 1 and only_n3[0].id == ids[2]
    assert queue.list_packages(["other-project"], world.spec("n1").kind) == ([], 0)
    # A page past the end is empty yet still says how many there are.
    past, total = queue.list_packages([world.project_id], world.spec("n1").kind, offset=5)
    assert (past, total) == ([], 3)


# -- claiming --------------------------------------------------------------------------------


def test_each_job_is_claimed_by_exactly_one_of_many_concurrent_workers(world: JobWorld) -> None:
    queue = world.queue(JobPolicy(per_node_concurrency=1))
    jobs = {
        queue.enqueue(world.spec(f"node-{i}"), project_id=world.project_id).id for i in range(24)
    }
    claims: list[tuple[str, str]] = []
    barrier = threading.Barrier(6)

    def work(worker: str) -> None:
        barrier.wait()
        while (claim := queue.claim(worker)) is not None:
            claims.append((claim.package.id, worker))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c[0] for c in claims) == sorted(jobs)  # every job once, none twice


def test_at_most_per_node_concurrency_jobs_of_a_node_are_leased(world: JobWorld) -> None:
    queue = world.queue(JobPolicy(per_node_concurrency=2))
    for _ in range(8):
        queue.enqueue(world.spec("busy"), project_id=world.project_id, refuse_busy_node=False)
    other = queue.enqueue(world.spec("quiet"), project_id=world.project_id)
    barrier = threading.Barrier(8)
    claims: list[Claim] = []

    def work() -> None:
        barrier.wait()
        claim = queue.claim("w")
        if claim is not None:
            claims.append(claim)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    nodes = sorted(c.package.node_id or "" for c in claims)
    assert nodes == ["busy", "busy", "quiet"]
    assert other.id in {c.package.id for c in claims}
    busy = next(c for c in claims if c.package.node_id == "busy")
    assert queue.finish(busy, built(busy))
    assert claimed(queue).package.node_id == "busy"  # a slot freed up
    assert queue.claim("w") is None


def test_a_claim_takes_the_oldest_job_and_marks_it_started(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    first = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    clock.now += 1
    queue.enqueue(world.spec("n2"), project_id=world.project_id)
    claim = claimed(queue, "host:1:0")
    assert claim.package.id == first.id
    assert claim.package.attempts == 1 and claim.package.progress == 1
    assert claim.package.started_at == clock.now
    assert claim.package.lease_owner == claim.token and claim.token.startswith("host:1:0#")


# -- leases ----------------------------------------------------------------------------------


def test_heartbeats_keep_the_lease_and_write_progress(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    queue.enqueue(world.spec("n1"), project_id=world.project_id)
    claim = claimed(queue)
    for _ in range(3):
        clock.now += 20  # within the 30 s lease each time
        assert queue.heartbeat(claim, 40)
    assert queue.claim("other") is None
    package = queue.get(claim.package.id)
    assert package is not None and package.progress == 40
    assert package.lease_expires_at == clock.now + 30


def test_an_expired_lease_is_requeued_and_retried_from_the_start(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    queue.enqueue(world.spec("n1"), project_id=world.project_id)
    first = claimed(queue, "dead-worker")
    queue.heartbeat(first, 70)
    clock.now += 31
    assert queue.requeue_stalled() == 1
    waiting = queue.get(first.package.id)
    assert waiting is not None
    assert (waiting.state, waiting.progress, waiting.lease_owner) == (PackageState.RUNNING, 0, None)
    assert waiting.message == (
        "attempt 1 of 2 failed, retrying: worker dead-worker stopped renewing its lease"
    )
    second = claimed(queue, "live-worker")
    assert second.package.id == first.package.id and second.package.attempts == 2
    # The dead worker comes back: it can neither renew nor finish nor fail the job any more.
    assert not queue.heartbeat(first, 90)
    assert not queue.finish(first, built(first))
    assert not queue.fail(first, "late")
    assert queue.finish(second, built(second))


def test_a_job_that_keeps_losing_its_worker_fails_after_max_attempts(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    for _ in range(2):
        claimed(queue)
        clock.now += 31  # claims take an expired lease even before requeue_stalled runs
    assert queue.claim("w") is None
    assert queue.requeue_stalled() == 1
    failed = queue.get(package.id)
    assert failed is not None and failed.state is PackageState.FAILED
    assert failed.message == (
        "attempted 2 time(s); the last attempt failed: worker w stopped renewing its lease"
    )
    assert failed.expires_at == clock.now + 7 * 86400


def test_a_transient_failure_is_retried_after_a_delay_then_fails(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock, JobPolicy(max_attempts=2, retry_delay_seconds=5))
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    first = claimed(queue)
    assert queue.retry_or_fail(first, "node n1: connection refused") is PackageState.RUNNING
    assert queue.claim("w") is None  # not before the delay
    clock.now += 6
    second = claimed(queue)
    assert queue.retry_or_fail(second, "node n1: connection refused") is PackageState.FAILED
    final = queue.get(package.id)
    assert final is not None and final.message == (
        "attempted 2 time(s); the last attempt failed: node n1: connection refused"
    )


def test_a_released_job_goes_back_without_using_an_attempt(world: JobWorld) -> None:
    queue = queue_of(world, Clock())
    queue.enqueue(world.spec("n1"), project_id=world.project_id)
    claim = claimed(queue)
    assert queue.release(claim)
    again = claimed(queue)
    assert again.package.attempts == 1 and again.token != claim.token


def test_success_records_what_was_published(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    queue.enqueue(world.spec("n1"), project_id=world.project_id)
    claim = claimed(queue)
    assert queue.finish(claim, BuiltPackage("k/1", 3_000_000_000, 12, "c" * 64))
    done = queue.get(claim.package.id)
    assert done is not None
    assert (done.state, done.progress, done.message) == (PackageState.SUCCESS, 100, "")
    assert (done.size, done.entry_count, done.checksum, done.store_key) == (
        3_000_000_000, 12, "c" * 64, "k/1"
    )  # sizes past 2 GiB fit
    assert (done.finished_at, done.expires_at) == (clock.now, clock.now + 7 * 86400)
    assert done.lease_owner is None and done.builds == 1


# -- deleting --------------------------------------------------------------------------------


def test_deletion_states_and_what_they_forbid(world: JobWorld) -> None:
    queue = queue_of(world, Clock())
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    claim = claimed(queue)
    with pytest.raises(StateConflict, match="still being built"):
        queue.start_deleting(package.id, "api")
    queue.fail(claim, "node n1: boom")
    token = queue.start_deleting(package.id, "api")
    deleting = queue.get(package.id)
    assert deleting is not None and deleting.state is PackageState.DELETING
    with pytest.raises(StateConflict, match="already being deleted"):
        queue.start_deleting(package.id, "api")
    refused = queue.finish_deleting(package.id, token, "the store refused: read-only")
    assert (refused.state, refused.message) == (
        PackageState.DELETE_FAILED, "the store refused: read-only"
    )
    token = queue.start_deleting(package.id, "api")  # a refused deletion may be asked again
    assert queue.finish_deleting(package.id, token).state is PackageState.DELETED
    with pytest.raises(StateConflict, match="already deleted"):
        queue.start_deleting(package.id, "api")
    with pytest.raises(NotFound):
        queue.start_deleting("pkg-none", "api")
    # A deleted package frees its name and leaves the listings.
    queue.enqueue(world.spec("n1", package.name), project_id=world.project_id)
    listed, total = queue.list_packages([world.project_id], package.kind)
    assert total == 1 and listed[0].id != package.id


def test_a_queued_package_is_cancelled_and_never_claimed(world: JobWorld) -> None:
    clock = Clock()
    queue = queue_of(world, clock)
    cancelled = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    token = queue.start_deleting(cancelled.id, "api")
    assert queue.claim("w") is None  # Package_Deleting: no worker takes it
    assert queue.finish_deleting(cancelled.id, token).state is PackageState.DELETED
    assert queue.claim("w") is None
    # A package waiting for its retry is queued too (no worker holds it).
    retried = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    assert queue.retry_or_fail(claimed(queue), "node n1: timeout") is PackageState.RUNNING
    queue.start_deleting(retried.id, "api")
    clock.now += 3600
    assert queue.claim("w") is None


def _claim_and_cancel_together(queue: JobQueue, package_id: str) -> tuple[Claim | None, bool]:
    """A claim and a delete of `package_id` started at the same instant: (the claim, whether
    the delete went through)."""
    barrier = threading.Barrier(2)
    claims: list[Claim | None] = []
    cancels: list[bool] = []

    def claim() -> None:
        barrier.wait()
        claims.append(queue.claim("w"))

    def cancel() -> None:
        barrier.wait()
        try:
            queue.start_deleting(package_id, "api")
            cancels.append(True)
        except StateConflict:
            cancels.append(False)

    threads = [threading.Thread(target=claim), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claims[0], cancels[0]


def test_a_claim_and_a_cancel_at_the_same_moment_have_one_winner(world: JobWorld) -> None:
    """Whichever commits first wins: a claimed package refuses the delete (1003), a cancelled
    one is never claimed."""
    queue = world.queue(JobPolicy(per_node_concurrency=50))
    for _ in range(20):
        package = queue.enqueue(world.spec("race"), project_id=world.project_id)
        claim, cancelled = _claim_and_cancel_together(queue, package.id)
        row = queue.get(package.id)
        assert row is not None
        if cancelled:
            assert claim is None and row.state is PackageState.DELETING
        else:
            assert claim is not None and claim.package.id == package.id
            assert row.state is PackageState.RUNNING and row.lease_owner == claim.token
