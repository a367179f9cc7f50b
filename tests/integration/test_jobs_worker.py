"""Workers build real packages from a node's logs into a real file store: what users see of a
package's row and object while it is built, when it fails, when it is deleted and when it expires.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from tests.support.jobs import (
    CLUSTER,
    JobWorld,
    metadata_database,
    mongo_log,
    open_world,
    slow_factory,
)

from dblogpack.app import build_source
from dblogpack.catalog.packages import PackageRecord
from dblogpack.catalog.tables import package_summaries
from dblogpack.jobs import (
    JobPolicy,
    JobQueue,
    Sweeper,
    Worker,
    WorkerPool,
    delete_package,
    package_prefix,
)
from dblogpack.jobs import worker as worker_module
from dblogpack.model import PackageState, ResourceKind
from dblogpack.service import Service
from dblogpack.service.accounts import Caller
from dblogpack.stores import PARTIAL_PREFIX


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from metadata_database(request, tmp_path)


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[JobWorld]:
    yield from open_world(database_url, tmp_path)


class Clock:
    """Wall-clock time plus whatever the test skips forward."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped


FAST = JobPolicy(lease_seconds=3, max_attempts=2, retry_delay_seconds=0, retention_days=7)


def worker_for(world: JobWorld, queue: JobQueue) -> Worker:
    return Worker(queue, world.store, build_source, name="test-worker", pipeline_workers=1)


def current(queue: JobQueue, package_id: str) -> PackageRecord:
    found = queue.get(package_id)
    assert found is not None
    return found


def store_files(world: JobWorld) -> list[str]:
    """Every file under the store's root, temporary ones included."""
    root = world.store.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_worker_builds_publishes_and_records_one_package(world: JobWorld) -> None:
    world.add_node("n1", mongo_log(slow_queries=5, errors=2))
    queue = world.queue(FAST)
    package = queue.enqueue(world.spec("n1", "slow-jan"), project_id=world.project_id)
    worker = worker_for(world, queue)
    assert worker.run_once()
    assert not worker.run_once()  # nothing left to do
    done = current(queue, package.id)
    assert (done.state, done.progress, done.message, done.entry_count) == (
        PackageState.SUCCESS, 100, "", 5
    )
    assert done.store_key is not None and done.store_key.endswith("/slow-jan.tar.gz")
    assert list(world.store.keys(package_prefix(done))) == [done.store_key]
    assert store_files(world) == [done.store_key]  # no temporary file left beside it
    with world.store.open(done.store_key) as published:
        data = published.read()
    assert done.size == len(data) and done.checksum == hashlib.sha256(data).hexdigest()
    assert done.builds == 1 and done.attempts == 1 and done.lease_owner is None
    assert done.finished_at is not None and done.expires_at == done.finished_at + 7 * 86400
    with world.store.open(done.store_key) as published, tarfile.open(fileobj=published) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        summary = tar.extractfile("summary.json").read()  # type: ignore[union-attr]
    assert manifest["package"]["id"] == package.id and manifest["totals"]["entries"] == 5
    # The summary is recorded with the success, byte for byte as the package holds it.
    assert queue.summary(package.id) == summary.decode()


def test_an_unreadable_log_fails_at_once_naming_the_node(world: JobWorld) -> None:
    world.add_node("n1", "this is not a database log\n" * 20)
    queue = world.queue(FAST)
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    assert worker_for(world, queue).run_once()
    failed = current(queue, package.id)
    assert failed.state is PackageState.FAILED and failed.attempts == 1  # no retry
    assert failed.message.startswith("node n1 (cluster umongodb-jobs): mongod.log: ")
    assert store_files(world) == []


def test_a_source_that_keeps_failing_is_retried_then_fails_with_its_last_error(
    world: JobWorld,
) -> None:
    log_dir = world.add_node("n1", mongo_log(3, 0))
    shutil.rmtree(log_dir)  # the mount went away
    queue = world.queue(FAST)
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    worker = worker_for(world, queue)
    assert worker.run_once()
    retrying = current(queue, package.id)
    assert retrying.state is PackageState.RUNNING
    assert retrying.message.startswith("attempt 1 of 2 failed, retrying: node n1 (cluster")
    assert worker.run_once()
    failed = current(queue, package.id)
    assert failed.state is PackageState.FAILED
    assert failed.message.startswith(
        "attempted 2 time(s); the last attempt failed: node n1 (cluster umongodb-jobs): "
        f"cannot list log directory {log_dir}"
    )


def test_progress_is_written_while_a_package_builds(
    world: JobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Progress reaches the database at most once a PROGRESS_INTERVAL; the scan's progress
    # lasts ~0.5 s here (3 files read at 0.25 s each, after planning them), so at the usual 1 s
    # whether a write fell inside it depended on the machine's speed (it once did not: {0, 1}).
    monkeypatch.setattr(worker_module, "PROGRESS_INTERVAL", 0.1)
    for name in ("a", "b", "c"):
        log_dir = world.add_node("n1") if name == "a" else world.log_root / "n1"
        (log_dir / f"mongod-{name}.log").write_text(mongo_log(4, 1))
    queue = world.queue(FAST)
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    worker = Worker(queue, world.store, slow_factory(0.25), name="slow", pipeline_workers=1)
    building = threading.Thread(target=worker.run_once)
    building.start()
    seen: set[int] = set()
    while building.is_alive():
        seen.add(current(queue, package.id).progress)
        time.sleep(0.05)
    building.join()
    assert any(1 < p < 100 for p in seen), seen
    assert current(queue, package.id).progress == 100


def test_a_stopped_pool_hands_its_unfinished_job_to_the_next_worker(
    world: JobWorld, tmp_path: Path
) -> None:
    world.add_node("n1", mongo_log(20, 5))
    queue = world.queue(FAST)
    package = queue.enqueue(world.spec("n1"), project_id=world.project_id)
    marker = tmp_path / "reading"
    slow = Worker(queue, world.store, slow_factory(0.3, marker), name="slow", pipeline_workers=1)
    pool = WorkerPool([slow])
    pool.start()
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the worker never started reading"
    pool.stop(grace_seconds=0)  # cannot wait: the job goes back at once
    released = current(queue, package.id)
    assert (released.state, released.attempts, released.lease_owner) == (
        PackageState.RUNNING, 0, None
    )
    assert pool.join(timeout=20)
    assert store_files(world) == []  # the abandoned build published nothing
    assert worker_for(world, queue).run_once()
    done = current(queue, package.id)
    assert (done.state, done.builds, done.attempts) == (PackageState.SUCCESS, 1, 1)


def test_in_process_workers_build_every_package_once(world: JobWorld) -> None:
    for node in ("n1", "n2", "n3"):
        world.add_node(node, mongo_log(4, 2))
    queue = world.queue(JobPolicy(lease_seconds=5, per_node_concurrency=1))
    ids = [
        queue.enqueue(world.spec(node), project_id=world.project_id, refuse_busy_node=False).id
        for node in ("n1", "n2", "n3")
        for _ in range(2)
    ]
    pool = WorkerPool(
        [Worker(queue, world.store, build_source, name=f"w{i}", poll_interval=0.05,
                pipeline_workers=1) for i in range(3)]
    )
    pool.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(current(queue, i).state is PackageState.SUCCESS for i in ids):
            break
        time.sleep(0.1)
    pool.stop(grace_seconds=10)
    assert pool.join(timeout=10)
    rows = [current(queue, i) for i in ids]
    assert [(r.state, r.builds) for r in rows] == [(PackageState.SUCCESS, 1)] * 6
    assert len(store_files(world)) == 6


# -- deleting --------------------------------------------------------------------------------


def built_package(world: JobWorld, queue: JobQueue, node: str) -> PackageRecord:
    if node not in world.nodes:
        world.add_node(node, mongo_log(3, 1))
    package = queue.enqueue(world.spec(node), project_id=world.project_id)
    assert worker_for(world, queue).run_once()
    done = current(queue, package.id)
    assert done.state is PackageState.SUCCESS
    return done


def test_a_package_deleted_on_request_loses_its_object(world: JobWorld) -> None:
    queue = world.queue(FAST)
    package = built_package(world, queue, "n1")
    assert queue.summary(package.id) is not None
    deleted = delete_package(queue, world.store, package.id)
    assert (deleted.state, deleted.message) == (PackageState.DELETED, "")
    assert store_files(world) == []
    assert queue.summary(package.id) is None  # its recorded summary goes with it


def test_a_store_that_refuses_a_deletion_leaves_delete_failed_with_its_reason(
    world: JobWorld,
) -> None:
    queue = world.queue(FAST)
    package = built_package(world, queue, "n1")
    assert package.store_key is not None
    directory = world.store.path_of(package.store_key).parent
    subprocess.run(["chattr", "+i", str(directory)], check=True)  # even root cannot unlink
    try:
        refused = delete_package(queue, world.store, package.id)
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    assert refused.state is PackageState.DELETE_FAILED
    assert refused.message.startswith("the store refused: cannot delete package ")
    assert refused.message.endswith("Operation not permitted")
    assert delete_package(queue, world.store, package.id).state is PackageState.DELETED


def test_the_sweeper_deletes_packages_past_their_retention(world: JobWorld) -> None:
    clock = Clock()
    queue = world.queue(FAST, clock)
    old = built_package(world, queue, "n1")
    clock.skipped += 2 * 86400
    recent = built_package(world, queue, "n2")
    clock.skipped += 6 * 86400  # old is 8 days old, recent 6
    report = Sweeper(queue, world.store).sweep_once()
    assert (report.deleted, report.delete_failed) == (1, 0)
    assert current(queue, old.id).state is PackageState.DELETED
    assert current(queue, recent.id).state is PackageState.SUCCESS
    assert store_files(world) == [recent.store_key]
    assert Sweeper(queue, world.store).sweep_once().deleted == 0


def test_the_sweeper_removes_what_a_worker_killed_while_publishing_left(world: JobWorld) -> None:
    clock = Clock()
    queue = world.queue(FAST, clock)
    kept = built_package(world, queue, "n1")
    assert kept.store_key is not None
    directory = world.store.path_of(kept.store_key).parent
    (directory / f"{PARTIAL_PREFIX}killed").write_bytes(b"half a package")
    sweeper = Sweeper(queue, world.store)

    assert sweeper.sweep_once().abandoned_writes == 0  # it may still be written to
    clock.skipped += 7 * 3600
    assert sweeper.sweep_once().abandoned_writes == 1
    later = directory / f"{PARTIAL_PREFIX}killed-later"
    later.write_bytes(b"half a package")
    os.utime(later, (0, 0))
    assert sweeper.sweep_once().abandoned_writes == 0  # the store is walked once an hour
    clock.skipped += 3600
    assert sweeper.sweep_once().abandoned_writes == 1

    assert sorted(p.name for p in directory.iterdir()) == [Path(kept.store_key).name]
    assert current(queue, kept.id).state is PackageState.SUCCESS


# -- summaries -------------------------------------------------------------------------------


def test_the_summary_is_served_from_the_record_and_from_the_package_without_one(
    world: JobWorld,
) -> None:
    queue = world.queue(FAST)
    package = built_package(world, queue, "n1")
    service = Service(world.catalog, build_source, default_region="cn-bj2",
                      default_zone="cn-bj2-01", jobs=queue, store=world.store)
    caller = Caller("jobs-key", "jobs-account", False, world.project_id,
                    frozenset({world.project_id}))
    where = (caller, world.project_id, None, None, ResourceKind.MONGODB, CLUSTER, package.id)
    recorded = service.package_summary(*where)
    assert recorded["log_type"] == "slow" and recorded["entries"] == 3
    with world.catalog.write() as conn:  # a package finished before summaries were recorded
        conn.execute(delete(package_summaries))
    assert service.package_summary(*where) == recorded  # read from the package itself
