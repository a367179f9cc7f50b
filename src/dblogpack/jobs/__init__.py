"""Durable package jobs (DESIGN §2): the package row is the job. queue.py (leases, attempts,
states), worker.py (the build loop and the worker pool), sweeper.py (deletion and retention).
"""

from dblogpack.jobs.queue import Claim, JobPolicy, JobQueue, LeaseLost, package_key, package_prefix
from dblogpack.jobs.sweeper import Sweeper, SweepReport, delete_package
from dblogpack.jobs.worker import (
    Heartbeat,
    SourceFactory,
    Worker,
    WorkerPool,
    default_worker_name,
    run_until_signalled,
)

__all__ = [
    "Claim",
    "Heartbeat",
    "JobPolicy",
    "JobQueue",
    "LeaseLost",
    "SourceFactory",
    "SweepReport",
    "Sweeper",
    "Worker",
    "WorkerPool",
    "default_worker_name",
    "delete_package",
    "package_key",
    "package_prefix",
    "run_until_signalled",
]
