"""A worker process dies in the middle of a package (SIGKILL) or is stopped (SIGTERM): another
worker completes the package, exactly one object is published, no temporary object is left.
The log source is made slow by the test (tests.support.jobs.SlowDirSource), not by the code.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.jobs import (
    SECRET_ENV,
    JobWorld,
    metadata_database,
    mongo_log,
    open_world,
)

from dblogpack.app import build_source
from dblogpack.catalog.packages import PackageRecord
from dblogpack.jobs import JobPolicy, JobQueue, Worker
from dblogpack.model import PackageState

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from metadata_database(request, tmp_path)


@pytest.fixture
def secret() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def world(database_url: str, secret: bytes, tmp_path: Path) -> Iterator[JobWorld]:
    yield from open_world(database_url, tmp_path, secret)


def start_worker_process(
    database_url: str, world: JobWorld, secret: bytes, marker: Path
) -> subprocess.Popen[bytes]:
    """A `dblogpack worker`-like process with one worker thread and a slow log source."""
    argv = [sys.executable, "-m", "tests.support.jobs", database_url, str(world.store.root),
            "doomed", str(marker), str(LEASE_SECONDS)]
    env = {**os.environ, SECRET_ENV: secret.hex()}
    return subprocess.Popen(argv, cwd=REPO, env=env, stderr=subprocess.PIPE)


def wait_until_reading(process: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + 30
    while not marker.exists():
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the worker process ended before reading: {stderr}")
        assert time.monotonic() < deadline, "the worker process never started reading"
        time.sleep(0.05)


def current(queue: JobQueue, package_id: str) -> PackageRecord:
    found = queue.get(package_id)
    assert found is not None
    return found


def finish_with_another_worker(world: JobWorld, queue: JobQueue, package_id: str) -> None:
    survivor = Worker(queue, world.store, build_source, name="survivor", pipeline_workers=1)
    deadline = time.monotonic() + 30
    while current(queue, package_id).state is PackageState.RUNNING:
        assert time.monotonic() < deadline, "no worker completed the package"
        if not survivor.run_once():
            time.sleep(0.1)


def every_file(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_killed_workers_package_is_completed_by_another_worker(
    database_url: str, world: JobWorld, secret: bytes, tmp_path: Path
) -> None:
    world.add_node("n1", mongo_log(slow_queries=40, errors=10))
    queue = world.queue(JobPolicy(lease_seconds=LEASE_SECONDS))
    package = queue.enqueue(world.spec("n1", "crash-me"), project_id=world.project_id)
    marker = tmp_path / "reading"
    process = start_worker_process(database_url, world, secret, marker)
    try:
        wait_until_reading(process, marker)
        assert (current(queue, package.id).lease_owner or "").startswith("doomed#")
        process.send_signal(signal.SIGKILL)  # mid-package: no cleanup of any kind
    finally:
        process.kill()
        process.communicate(timeout=10)  # reaps it and closes its stderr pipe
    finish_with_another_worker(world, queue, package.id)
    done = current(queue, package.id)
    assert (done.state, done.attempts, done.builds, done.entry_count) == (
        PackageState.SUCCESS, 2, 1, 40
    )
    assert done.lease_owner is None and done.message == ""
    assert every_file(world.store.root) == [done.store_key]  # one object, nothing temporary


def test_a_terminated_worker_hands_its_package_back_and_exits(
    database_url: str, world: JobWorld, secret: bytes, tmp_path: Path
) -> None:
    world.add_node("n1", mongo_log(slow_queries=40, errors=10))
    queue = world.queue(JobPolicy(lease_seconds=30))  # only a release can free it in time
    package = queue.enqueue(world.spec("n1", "stop-me"), project_id=world.project_id)
    marker = tmp_path / "reading"
    process = start_worker_process(database_url, world, secret, marker)
    try:
        wait_until_reading(process, marker)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        process.kill()
        process.communicate(timeout=10)  # reaps it and closes its stderr pipe
    released = current(queue, package.id)
    assert (released.state, released.attempts, released.lease_owner) == (
        PackageState.RUNNING, 0, None
    )
    finish_with_another_worker(world, queue, package.id)
    done = current(queue, package.id)
    assert (done.state, done.attempts, done.builds) == (PackageState.SUCCESS, 1, 1)
    assert every_file(world.store.root) == [done.store_key]
