"""Deleting packages: on request (Package_Deleting → Package_Deleted, or Package_DeleteFailed with
the store's reason) and by the retention sweeper, which deletes packages past `retention_days`
and finishes deletions whose deleter died.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from dblogpack.catalog.packages import PackageRecord
from dblogpack.errors import NotFound, StoreError
from dblogpack.jobs.queue import JobQueue, package_prefix
from dblogpack.model import PackageState
from dblogpack.stores.base import PackageStore

log = logging.getLogger("dblogpack.jobs")


def delete_package(
    queue: JobQueue, store: PackageStore, package_id: str, *, deleter: str = "api"
) -> PackageRecord:
    """Delete a package on request, or cancel a queued one, and return its final row (Deleted
    or DeleteFailed).

    NotFound for an unknown id; StateConflict (1003) while a worker builds it or it is being
    deleted.
    Scoping to the caller's projects is the service's job, before calling this.
    """
    token = queue.start_deleting(package_id, deleter)
    return _remove_objects(queue, store, package_id, token)


def _remove_objects(
    queue: JobQueue, store: PackageStore, package_id: str, token: str
) -> PackageRecord:
    package = queue.get(package_id)
    if package is None:
        raise NotFound(f"package {package_id!r} not found")
    try:
        # Every object under the package's prefix: the recorded one and any a dead attempt left.
        for key in list(store.keys(package_prefix(package))):
            store.delete(key)
    except StoreError as exc:
        log.warning("package %s: the store refused the deletion: %s", package_id, exc.message)
        return queue.finish_deleting(package_id, token, f"the store refused: {exc.message}")
    return queue.finish_deleting(package_id, token)


@dataclass(frozen=True, slots=True)
class SweepReport:
    deleted: int = 0
    delete_failed: int = 0
    abandoned_writes: int = 0


# An unfinished write untouched this long belongs to a dead writer (a live one writes all along;
# S3 dates an upload by its start, and no package upload lasts hours).
ABANDONED_WRITE_SECONDS = 6 * 3600
# Looking for them walks the whole store: not at every sweep.
ABANDONED_CHECK_SECONDS = 3600


class Sweeper:
    """Deletes packages past their expiry (`retention_days` after they finished)."""

    def __init__(
        self,
        queue: JobQueue,
        store: PackageStore,
        *,
        name: str = "sweeper",
        interval_seconds: float = 60.0,
        batch: int = 100,
    ) -> None:
        self.queue, self.store = queue, store
        self.name = name
        self.interval_seconds = interval_seconds
        self.batch = batch
        self._abandoned_check_due = 0.0

    def sweep_once(self) -> SweepReport:
        """Delete one batch of expired packages (and finish abandoned deletions); now and then,
        remove the unfinished writes of workers that died while publishing."""
        deleted = failed = 0
        for package_id, token in self.queue.take_over_sweepable(self.name, self.batch):
            final = _remove_objects(self.queue, self.store, package_id, token)
            if final.state is PackageState.DELETED:
                deleted += 1
            else:
                failed += 1
        return SweepReport(deleted, failed, self._remove_abandoned_writes())

    def _remove_abandoned_writes(self) -> int:
        now = self.queue.clock()
        if now < self._abandoned_check_due:
            return 0
        self._abandoned_check_due = now + ABANDONED_CHECK_SECONDS
        try:
            return self.store.remove_abandoned(now - ABANDONED_WRITE_SECONDS)
        except StoreError as exc:
            log.warning("sweeper cannot remove unfinished writes: %s", exc.message)
            return 0

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                report = self.sweep_once()
            except SQLAlchemyError as exc:
                log.warning("sweeper cannot reach the metadata database: %s", exc)
                report = SweepReport()
            if report.deleted or report.delete_failed:
                log.info("sweeper deleted %d package(s), %d refused by the store",
                         report.deleted, report.delete_failed)
            if report.abandoned_writes:
                log.info("sweeper removed %d unfinished write(s) of dead workers",
                         report.abandoned_writes)
            if report.deleted < self.batch:  # a full batch deleted: more may be waiting
                stop.wait(self.interval_seconds * random.uniform(0.9, 1.1))
