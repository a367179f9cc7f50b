"""A small world for job tests: a catalog with one project and MongoDB nodes whose logs live in a
directory, a file store, a queue with short leases, and a slow log source for crash tests.

Run as `python -m tests.support.jobs DATABASE_URL STORE_ROOT LOG_DIR NAME MARKER` to get a
`dblogpack worker`-like process (one Worker thread, SIGTERM stops it) reading the node's logs
slowly; it touches MARKER once it has started reading a package.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert

from dblogpack.catalog import Catalog, open_catalog, resources
from dblogpack.catalog.tables import projects
from dblogpack.jobs import (
    JobPolicy,
    JobQueue,
    SourceFactory,
    Worker,
    WorkerPool,
    run_until_signalled,
)
from dblogpack.model import (
    FormatConfig,
    LogKind,
    PackageSpec,
    ResourceKind,
    SourceConfig,
    SourceType,
    TimeWindow,
)
from dblogpack.secretbox import SecretBox
from dblogpack.sources.base import LogSource
from dblogpack.sources.local import DirSource
from dblogpack.stores.fs import FileStore

if TYPE_CHECKING:
    import pytest
    from tests.support.pgcluster import PgCluster

SECRET_ENV = "DBLOGPACK_TEST_JOBS_SECRET"
CLUSTER = "umongodb-jobs"
BEGIN = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the logs below lie in [BEGIN, BEGIN + 60)


def mongo_log(slow_queries: int, errors: int) -> str:
    """A MongoDB 4.4 JSON log with `slow_queries` slow queries and `errors` error lines."""
    lines = []
    for i in range(slow_queries):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BEGIN + i % 60))
        lines.append(
            f'{{"t":{{"$date":"{stamp}.000+00:00"}},"s":"I",  "c":"COMMAND",  "id":51803,   '
            f'"ctx":"conn{i}","msg":"Slow query","attr":{{"type":"command","ns":"shop.orders",'
            f'"command":{{"find":"orders","filter":{{"n":{i}}}}},"durationMillis":{150 + i}}}}}'
        )
    for i in range(errors):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BEGIN + i % 60))
        lines.append(
            f'{{"t":{{"$date":"{stamp}.500+00:00"}},"s":"E",  "c":"STORAGE",  "id":22435,   '
            f'"ctx":"conn{i}","msg":"WiredTiger error","attr":{{"error":{i}}}}}'
        )
    return "\n".join(lines) + "\n"


@dataclass
class JobWorld:
    """One project, one MongoDB cluster; nodes are added with `add_node`."""

    catalog: Catalog
    store: FileStore
    log_root: Path
    project_id: str = "org-jobs"
    nodes: list[str] = field(default_factory=list)

    def add_node(self, node_id: str, log_text: str | None = None, fmt: str = "auto") -> Path:
        """A node reading `<log_root>/<node_id>/*.log`; `log_text` becomes its mongod.log."""
        log_dir = self.log_root / node_id
        log_dir.mkdir(parents=True, exist_ok=True)
        if log_text is not None:
            (log_dir / "mongod.log").write_text(log_text)
        source = SourceConfig(
            SourceType.DIR, log_dir=str(log_dir), log_pattern="*.log",
            log_format=FormatConfig(fmt),
        )
        with self.catalog.write() as conn:
            resources.insert_mongodb_node(
                conn, self.catalog.box, node_id=node_id, cluster_id=CLUSTER, role="primary",
                source=source,
            )
        self.nodes.append(node_id)
        return log_dir

    def spec(
        self, node_id: str, name: str | None = None, kind: LogKind = LogKind.SLOW
    ) -> PackageSpec:
        return PackageSpec(
            id=f"pkg-{uuid.uuid4().hex[:10]}",
            name=name or f"p-{uuid.uuid4().hex[:8]}",
            kind=ResourceKind.MONGODB,
            resource_id=CLUSTER,
            node_id=node_id,
            log_type=kind,
            window=TimeWindow(BEGIN, BEGIN + 3600),
        )

    def queue(
        self, policy: JobPolicy | None = None, clock: Callable[[], float] = time.time
    ) -> JobQueue:
        return JobQueue(self.catalog, policy, clock=clock)


def metadata_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty metadata database of the kind `request.param` names: a SQLite file, or a fresh
    database on the session's `pg_metadata_cluster`."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_metadata_cluster")
    name = f"jobs_{uuid.uuid4().hex[:12]}"
    cluster.execute(f'CREATE DATABASE "{name}"')
    yield cluster.sqlalchemy_url(dbname=name)
    cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def open_world(database_url: str, base: Path, secret: bytes | None = None) -> Iterator[JobWorld]:
    """A world (`create_world`) on a catalog opened for it and closed afterwards."""
    box = SecretBox(secrets.token_bytes(32) if secret is None else secret)
    catalog = open_catalog(database_url, box)
    yield create_world(catalog, base)
    catalog.close()


def create_world(catalog: Catalog, base: Path) -> JobWorld:
    """The project and the cluster rows, a file store under `base/store`."""
    world = JobWorld(catalog, FileStore(base / "store"), base / "logs")
    with catalog.write() as conn:
        conn.execute(insert(projects).values(id=world.project_id, name="jobs", created_at=0.0))
        resources.insert_mongodb_cluster(
            conn, cluster_id=CLUSTER, project_id=world.project_id, region="cn-bj2",
            zone="cn-bj2-01", name="jobs",
        )
    return world


class SlowDirSource(DirSource):
    """A DirSource whose every read takes `delay` seconds: a slow disk or network, for tests.

    No local path, so the pipeline reads through `read` and feels the delay.
    """

    def __init__(self, log_dir: str, pattern: str, delay: float, marker: Path | None) -> None:
        super().__init__(log_dir, pattern)
        self.delay = delay
        self.marker = marker

    def local_path(self, name: str) -> str | None:
        return None

    def read(self, name: str, offset: int, size: int) -> bytes:
        if self.marker is not None:
            self.marker.touch()
        time.sleep(self.delay)
        path = DirSource.local_path(self, name)  # the confined path; reads stay as DirSource's
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)


def slow_factory(delay: float, marker: Path | None = None) -> SourceFactory:
    def build(config: SourceConfig) -> LogSource:
        assert config.log_dir is not None
        return SlowDirSource(config.log_dir, config.log_pattern or "*", delay, marker)

    return build


def main(argv: list[str]) -> None:
    database_url, store_root, name, marker, lease = argv
    box = SecretBox(bytes.fromhex(os.environ[SECRET_ENV]))
    catalog = open_catalog(database_url, box, migrate=False)
    queue = JobQueue(catalog, JobPolicy(lease_seconds=float(lease), retry_delay_seconds=0.1))
    factory = slow_factory(0.4, Path(marker))
    worker = Worker(queue, FileStore(store_root), factory, name=name, poll_interval=0.1,
                    pipeline_workers=1)
    run_until_signalled(WorkerPool([worker]), grace_seconds=0.0)
    catalog.close()


if __name__ == "__main__":
    main(sys.argv[1:])
