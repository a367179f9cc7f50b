"""Session fixtures shared by every test level: real services, started once per test session.

Each fixture starts its service itself and FAILS (never skips) when it cannot, with the
service's own words. Add shared fixtures as small functions below; helpers go in tests/support.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from tests.support.pgcluster import PgCluster, PgClusterError, managed_logging_settings
from tests.support.sshd import Sshd, SshdError


def _started_cluster(label: str, settings: dict[str, str] | None = None) -> PgCluster:
    cluster = PgCluster(tempfile.mkdtemp(prefix=f"dblogpack-{label}-"), settings=settings)
    try:
        return cluster.start()
    except PgClusterError as exc:
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
