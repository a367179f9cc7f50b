"""The worker loop: claim a package job, build it into a private spool file while a heartbeat
thread keeps the lease, publish it atomically, record it; and the pool of worker threads that
`serve` runs in-process and `dblogpack worker` runs on its own (stopping gracefully on SIGTERM).
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import BinaryIO

from sqlalchemy.exc import SQLAlchemyError

from dblogpack import pipeline
from dblogpack.catalog.leases import BuiltPackage
from dblogpack.errors import DblogpackError, SourceError, StoreError
from dblogpack.jobs.queue import Claim, JobQueue, LeaseLost, package_key, package_prefix
from dblogpack.jobs.sweeper import Sweeper
from dblogpack.logcontext import package_scope
from dblogpack.metrics import observe_package
from dblogpack.model import PackageResult, SourceConfig
from dblogpack.sources.base import LogSource
from dblogpack.stores.base import PackageStore

log = logging.getLogger("dblogpack.jobs")

SourceFactory = Callable[[SourceConfig], LogSource]

COPY_CHUNK = 1024 * 1024
PROGRESS_INTERVAL = 1.0  # progress reaches the database at most once a second
# Worth another attempt: the network, the remote host or the store may be back in a moment.
# Anything else (a log format we cannot read, a deregistered node) fails the same way again.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (SourceError, StoreError, OSError)


def default_worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class Heartbeat:
    """Renews a claim's lease in its own thread and writes progress, throttled.

    `report` is the pipeline's progress callback; it raises LeaseLost as soon as the lease is
    known to be gone, which stops the build at the next file.
    """

    def __init__(self, queue: JobQueue, claim: Claim) -> None:
        self.queue, self.claim = queue, claim
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._progress = 1
        self._written = 1
        self._renew_every = queue.policy.lease_seconds / 3
        # The thread runs in a copy of this context, so its log lines carry the package id too.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,),
            name=f"heartbeat-{claim.package.id}", daemon=True,
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, percent: float) -> None:
        self._progress = int(percent)
        if self.lost.is_set():
            raise LeaseLost(f"lost the lease of package {self.claim.package.id}")

    def confirm(self) -> None:
        """Renew the lease now, before an irreversible step; LeaseLost if it is gone."""
        if self.lost.is_set() or not self.queue.heartbeat(self.claim, 99):
            self.lost.set()
            raise LeaseLost(f"lost the lease of package {self.claim.package.id}")

    def _run(self) -> None:
        renewed_at = time.monotonic()
        while not self._stop.wait(min(PROGRESS_INTERVAL, self._renew_every)):
            due = time.monotonic() - renewed_at >= self._renew_every
            if not due and self._progress == self._written:
                continue
            progress = self._progress
            try:
                held = self.queue.heartbeat(self.claim, progress)
            except SQLAlchemyError as exc:
                # The lease may still be saved by the next beat; if not, another worker retries.
                log.warning("heartbeat of %s failed: %s", self.claim.package.id, exc)
                continue
            if not held:
                self.lost.set()
                return
            renewed_at, self._written = time.monotonic(), progress


class Worker:
    """Builds package jobs one at a time. Run several (threads or processes) to scale out."""

    def __init__(
        self,
        queue: JobQueue,
        store: PackageStore,
        source_factory: SourceFactory,
        *,
        name: str | None = None,
        poll_interval: float = 0.3,
        pipeline_workers: int = 2,
        compress_level: int = 1,
        spool_dir: str | None = None,
    ) -> None:
        self.queue, self.store, self.source_factory = queue, store, source_factory
        self.name = name or default_worker_name()
        self.poll_interval = poll_interval
        self.pipeline_workers = pipeline_workers
        self.compress_level = compress_level
        self.spool_dir = spool_dir
        self.current: Claim | None = None
        self._next_stall_check = 0.0

    def run_forever(self, stop: threading.Event) -> None:
        """Build jobs until `stop` is set; a job under way is finished first."""
        while not stop.is_set():
            try:
                worked = self.run_once()
            except SQLAlchemyError as exc:
                log.warning("worker %s cannot reach the metadata database: %s", self.name, exc)
                worked = False
            if not worked:
                # Jitter keeps many idle workers from polling in lockstep.
                stop.wait(self.poll_interval * random.uniform(0.5, 1.5))

    def run_once(self) -> bool:
        """Claim and build one job; False when there was nothing to claim."""
        self._requeue_stalled_now_and_then()
        claim = self.queue.claim(self.name)
        if claim is None:
            return False
        self.current = claim
        try:
            with package_scope(claim.package.id):
                self._execute(claim)
        finally:
            self.current = None
        return True

    def abandon(self) -> None:
        """Hand the job under way back to the queue now (a stop that cannot wait for it)."""
        claim = self.current
        if claim is not None and self.queue.release(claim):
            log.info("worker %s released package %s", self.name, claim.package.id)

    def _requeue_stalled_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self._next_stall_check:
            self._next_stall_check = now + self.queue.policy.lease_seconds / 2
            self.queue.requeue_stalled()

    def _execute(self, claim: Claim) -> None:
        package = claim.package
        log.info("worker %s builds package %s (attempt %d)", self.name, package.id,
                 package.attempts)
        started, outcome, result = time.monotonic(), "failed", PackageResult()
        try:
            with Heartbeat(self.queue, claim) as heartbeat:
                result = self._build_and_publish(claim, heartbeat)
            outcome = "success"
        except LeaseLost as exc:
            outcome = "lease_lost"
            log.warning("worker %s: %s; another worker has it", self.name, exc)
        except TRANSIENT_ERRORS as exc:
            state = self.queue.retry_or_fail(claim, f"{package.node_label}: {_words(exc)}")
            log.warning("package %s attempt failed (%s): %s", package.id, state, _words(exc))
        except DblogpackError as exc:
            self.queue.fail(claim, f"{package.node_label}: {exc.message}")
        except Exception as exc:
            log.exception("package %s: unexpected failure", package.id)
            self.queue.fail(claim, f"{package.node_label}: internal error: {_words(exc)}")
        except BaseException:
            outcome = "interrupted"
            self.queue.release(claim)  # interrupted: the job goes back untouched
            raise
        finally:
            # A package that was not published moved nothing: its result stays empty.
            observe_package(outcome, time.monotonic() - started, _bytes_scanned(result),
                            result.size)

    def _build_and_publish(self, claim: Claim, heartbeat: Heartbeat) -> PackageResult:
        package = claim.package
        config = self.queue.source_config(package)
        # The spool is anonymous: a worker killed mid-build leaves no file anywhere.
        with tempfile.TemporaryFile(dir=self.spool_dir) as spool:
            with self.source_factory(config) as source:
                result = pipeline.run(
                    package.spec, source, config.log_format, spool,
                    progress=heartbeat.report, workers=self.pipeline_workers,
                    compresslevel=self.compress_level,
                )
            heartbeat.confirm()  # a worker that lost its lease publishes nothing
            key = package_key(package)
            spool.seek(0)
            self._publish(spool, key)
        summary = None if result.summary is None else result.summary.decode()
        built = BuiltPackage(key, result.size, result.entries, result.sha256 or "", summary)
        if not self.queue.finish(claim, built):
            self.store.delete(key)  # a late duplicate: the row names another worker's object
            raise LeaseLost(f"package {package.id} was taken over before it was recorded")
        self._remove_other_objects(package_prefix(package), key)
        return result

    def _publish(self, spool: BinaryIO, key: str) -> None:
        with self.store.writer(key) as out:
            shutil.copyfileobj(spool, out, COPY_CHUNK)

    def _remove_other_objects(self, prefix: str, kept: str) -> None:
        """Objects an earlier attempt published but never recorded (it died in between)."""
        for key in list(self.store.keys(prefix)):
            if key != kept:
                self.store.delete(key)


def _bytes_scanned(result: PackageResult) -> int:
    return sum(file.bytes_scanned for file in result.files)


def _words(exc: BaseException) -> str:
    if isinstance(exc, DblogpackError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"


class WorkerPool:
    """Worker threads (and a sweeper thread) in one process: what `serve` runs in-process."""

    def __init__(self, workers: Sequence[Worker], sweeper: Sweeper | None = None) -> None:
        self.workers = list(workers)
        self.sweeper = sweeper
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            self._spawn(f"worker-{worker.name}", partial(worker.run_forever, self.stopping))
        if self.sweeper is not None:
            self._spawn("sweeper", partial(self.sweeper.run_forever, self.stopping))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        # Daemon threads: a stop that gave up waiting must not keep the process alive.
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop claiming, let jobs under way finish for up to `grace_seconds`, then hand the
        unfinished ones back to the queue (another worker starts them at once)."""
        self.stopping.set()
        deadline = time.monotonic() + grace_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.abandon()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end (after `stop`); whether they all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


def run_until_signalled(pool: WorkerPool, grace_seconds: float = 30.0) -> None:
    """Run `pool` until SIGTERM or SIGINT, then stop it gracefully (main thread only)."""
    signalled = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping workers", signum)
        signalled.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        pool.start()
        while not signalled.wait(1.0):
            pass
    finally:
        pool.stop(grace_seconds)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
