"""Session fixtures shared by every test level: real services, started once per test session.

Each fixture starts its service itself and FAILS (never skips) when it cannot, with the
service's own words. Add shared fixtures as small functions below; helpers go in tests/support.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
from tests.support.pgcluster import PgCluster, PgClusterError, managed_logging_settings
from tests.support.s3server import S3Server, S3ServerError
from tests.support.sshd import Sshd, SshdError


def _started_cluster(label: str, settings: dict[str, str] | None = None) -> PgCluster:
    cluster = PgCluster(tempfile.mkdtemp(prefix=f"dblogpack-{label}-"), settings=settings)
    try:
        return cluster.start()
    except PgClusterError as exc:
        shutil.rmtree(cluster.base_dir, ignore_errors=True)  # the message keeps the server's words
        pytest.fail(f"could not start the {label} PostgreSQL cluster: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pg_metadata_cluster() -> Iterator[PgCluster]:
    """A plain PostgreSQL 15 for metadata-database tests; create a database per test on it."""
    cluster = _started_cluster("pg-metadata")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def pg_logging_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL 15 logging like a managed instance: three destinations, slow log, rotation."""
    cluster = _started_cluster("pg-logging", managed_logging_settings())
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1 serving SFTP to a non-root user with a generated key."""
    server = Sshd(tempfile.mkdtemp(prefix="dblogpack-sshd-"))
    try:
        server.start()
    except (SshdError, KeyError, OSError) as exc:
        pytest.fail(f"could not start sshd: {exc}", pytrace=False)
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def s3server() -> Iterator[S3Server]:
    """A real S3-compatible HTTP server (moto_server) on 127.0.0.1, in its own process."""
    base_dir = tempfile.mkdtemp(prefix="dblogpack-s3-")
    server = S3Server(base_dir)
    try:
        server.start()
    except (S3ServerError, OSError) as exc:
        pytest.fail(f"could not start the S3 server: {exc}", pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(base_dir, ignore_errors=True)
