"""The `postgres` source on a real PostgreSQL 15: listing, reading, settings, privileges."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.pgcluster import PgCluster, free_port

from dblogpack.errors import SourceError
from dblogpack.sources.pgsql import (
    GRANT_LIST,
    GRANT_READ,
    GRANT_SETTINGS,
    PIECE,
    REQUIRED_GRANTS,
    PostgresSource,
)

PASSWORD = "s3cret-Pa55"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


@pytest.fixture(scope="module")
def least_privileged_dsn(pg_logging_cluster: PgCluster) -> str:
    """A login role holding exactly the documented GRANTs, nothing more."""
    return pg_logging_cluster.create_role("src_reader", PASSWORD, *REQUIRED_GRANTS)


@pytest.fixture
def source(least_privileged_dsn: str) -> Iterator[PostgresSource]:
    src = PostgresSource(least_privileged_dsn, connect_timeout=5, statement_timeout=10)
    yield src
    src.close()


Plant = Callable[[str, bytes], Path]


@pytest.fixture
def plant(pg_logging_cluster: PgCluster) -> Iterator[Plant]:
    """Drops files into the server's log directory, owned by the server; removed afterwards."""
    planted: list[Path] = []

    def plant_file(name: str, content: bytes) -> Path:
        path = pg_logging_cluster.log_dir / name
        path.write_bytes(content)
        if os.geteuid() == 0:
            shutil.chown(path, user="postgres", group="postgres")
        planted.append(path)
        return path

    yield plant_file
    for path in planted:
        path.unlink(missing_ok=True)


def a_role_with(cluster: PgCluster, name: str, *grants: str) -> PostgresSource:
    return PostgresSource(cluster.create_role(name, PASSWORD, *grants), connect_timeout=5)


class TestListing:
    def test_lists_every_log_file_of_each_destination_with_its_size(
        self, source: PostgresSource, pg_logging_cluster: PgCluster
    ) -> None:
        listed = {f.name: f for f in source.list_files()}
        on_disk = {p.name: p for p in pg_logging_cluster.log_dir.iterdir()}
        assert set(listed) == set(on_disk)
        assert {Path(name).suffix for name in listed} >= {".log", ".csv", ".json"}
        for name, file in listed.items():
            assert file.size <= on_disk[name].stat().st_size  # the server may append meanwhile
            assert file.mtime == pytest.approx(on_disk[name].stat().st_mtime, abs=1)

    def test_lists_oldest_first(self, source: PostgresSource) -> None:
        files = source.list_files()
        keys = [(f.mtime, f.name) for f in files]
        assert keys == sorted(keys)

    def test_check_passes_with_exactly_the_documented_grants(self, source: PostgresSource) -> None:
        source.check()

    def test_check_passes_with_pg_monitor_instead_of_the_narrow_grants(
        self, pg_logging_cluster: PgCluster
    ) -> None:
        with a_role_with(
            pg_logging_cluster, "src_monitor", "GRANT pg_monitor TO {role}", GRANT_READ
        ) as src:
            src.check()


class TestReading:
    def test_reads_exactly_the_bytes_on_disk_at_any_offset(
        self, source: PostgresSource, plant: Plant
    ) -> None:
        content = bytes(range(256)) * 40
        plant("planted-read.log", content)
        source.list_files()
        for offset, size in [(0, 10), (0, len(content)), (1234, 999), (len(content) - 5, 5)]:
            assert source.read("planted-read.log", offset, size) == content[offset : offset + size]

    def test_a_large_read_is_whole_and_in_order(self, source: PostgresSource, plant: Plant) -> None:
        content = os.urandom(3 * PIECE + 12345)
        plant("planted-large.log", content)
        source.list_files()
        assert source.read("planted-large.log", 0, len(content)) == content
        assert source.read("planted-large.log", 1000, 2 * PIECE) == content[1000 : 1000 + 2 * PIECE]
        assert source.read("planted-large.log", PIECE - 1, 10 * PIECE) == content[PIECE - 1 :]

    def test_reads_fewer_bytes_only_at_end_of_file(
        self, source: PostgresSource, plant: Plant
    ) -> None:
        plant("planted-eof.log", b"0123456789")
        assert source.read("planted-eof.log", 6, 100) == b"6789"
        assert source.read("planted-eof.log", 10, 100) == b""
        assert source.read("planted-eof.log", 50, 100) == b""

    def test_reads_the_servers_own_log_files(
        self, source: PostgresSource, pg_logging_cluster: PgCluster
    ) -> None:
        first = source.list_files()[0]
        on_disk = (pg_logging_cluster.log_dir / first.name).read_bytes()[: first.size]
        assert source.read(first.name, 0, first.size) == on_disk

    def test_a_file_rotated_in_after_listing_can_be_read(
        self, source: PostgresSource, plant: Plant
    ) -> None:
        source.list_files()
        plant("planted-new.log", b"fresh\n")
        assert source.read("planted-new.log", 0, 100) == b"fresh\n"

    @pytest.mark.parametrize(
        "name",
        [
            "../postgresql.auto.conf",
            "/etc/passwd",
            "log/../../postgresql.conf",
            "..",
            "",
            "not-a-log-file.log",
        ],
    )
    def test_refuses_names_that_are_not_listed_log_files(
        self, source: PostgresSource, name: str
    ) -> None:
        with pytest.raises(SourceError, match=r"not a log file name|no log file named"):
            source.read(name, 0, 100)

    def test_a_file_that_vanished_is_reported_by_name(
        self, source: PostgresSource, plant: Plant
    ) -> None:
        path = plant("planted-gone.log", b"soon gone\n")
        source.list_files()
        path.unlink()
        with pytest.raises(SourceError, match=r"'planted-gone.log' vanished"):
            source.read("planted-gone.log", 0, 100)

    def test_a_read_slower_than_the_statement_timeout_is_cancelled(
        self, least_privileged_dsn: str, plant: Plant
    ) -> None:
        # Every statement has the timeout: 20 ms is ~100x what listing and SHOW take (a 1 ms one
        # made them time out first on a loaded machine), and reading 96 MB takes ~200 ms here.
        plant("planted-big.log", os.urandom(1 << 20) * 96)
        with PostgresSource(least_privileged_dsn, statement_timeout=0.02) as src:
            src.list_files()
            with pytest.raises(SourceError, match="read timed out"):
                src.read("planted-big.log", 0, 96 << 20)

    def test_threads_and_forked_processes_can_share_one_source(
        self, source: PostgresSource, plant: Plant
    ) -> None:
        content = b"shared\n" * 1000
        plant("planted-shared.log", content)
        source.list_files()
        offsets = list(range(0, len(content), 700))
        with ThreadPoolExecutor(4) as pool:
            chunks = list(pool.map(lambda o: source.read("planted-shared.log", o, 700), offsets))
        assert b"".join(chunks) == content
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=fork) as procs:
            assert list(procs.map(_read_head, [source, source])) == [content[:7]] * 2
        assert source.read("planted-shared.log", 0, 7) == content[:7]  # parent's session intact

    def test_survives_pickling_for_worker_processes(self, source: PostgresSource) -> None:
        source.list_files()
        with pickle.loads(pickle.dumps(source)) as copy:
            assert [f.name for f in copy.list_files()] == [f.name for f in source.list_files()]


def _read_head(source: PostgresSource) -> bytes:
    return source.read("planted-shared.log", 0, 7)


class TestLogDirectories:
    def test_an_absolute_log_directory_is_read_as_the_server_writes_it(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="dblogpack-pg-abslog-"))
        settings = {
            "logging_collector": "on",
            "log_directory": str(base / "pglogs"),
            "log_min_messages": "info",
        }
        with PgCluster(base, settings=settings) as cluster:
            dsn = cluster.create_role("abs_reader", PASSWORD, *REQUIRED_GRANTS)
            with PostgresSource(dsn) as src:
                src.check()
                first = src.list_files()[0]
                on_disk = (base / "pglogs" / first.name).read_bytes()[: first.size]
                assert first.size > 0
                assert src.read(first.name, 0, first.size) == on_disk

    def test_a_server_without_log_files_is_told_to_turn_the_collector_on(
        self, pg_metadata_cluster: PgCluster
    ) -> None:
        with (
            PostgresSource(pg_metadata_cluster.dsn()) as src,
            pytest.raises(SourceError, match=r"no log directory.*logging_collector on"),
        ):
            src.check()


class TestLoggingSettings:
    def test_reports_what_the_server_shows(
        self, source: PostgresSource, pg_logging_cluster: PgCluster
    ) -> None:
        settings = source.logging_settings()
        assert settings.log_destination == "stderr,csvlog,jsonlog"
        assert settings.log_line_prefix == pg_logging_cluster.settings["log_line_prefix"]
        assert settings.log_timezone == pg_logging_cluster.settings["log_timezone"]
        assert settings.log_directory == "log"


class TestPrivileges:
    def test_a_role_without_grants_is_told_which_grant_lists_logs(
        self, pg_logging_cluster: PgCluster
    ) -> None:
        with (
            a_role_with(pg_logging_cluster, "src_nobody") as src,
            pytest.raises(
                SourceError, match=r"permission denied.*GRANT EXECUTE ON FUNCTION pg_ls_logdir\(\)"
            ),
        ):
            src.check()

    def test_a_role_that_can_list_but_not_read_is_told_which_grant_reads(
        self, pg_logging_cluster: PgCluster
    ) -> None:
        with a_role_with(pg_logging_cluster, "src_lister", GRANT_SETTINGS, GRANT_LIST) as src:
            name = src.list_files()[0].name
            with pytest.raises(SourceError, match=r"permission denied.*pg_read_binary_file"):
                src.read(name, 0, 10)
            with pytest.raises(SourceError, match=r"permission denied.*pg_read_binary_file"):
                src.check()  # registration finds out, not the first package

    def test_a_role_that_cannot_read_settings_is_told_so(
        self, pg_logging_cluster: PgCluster
    ) -> None:
        with (
            a_role_with(pg_logging_cluster, "src_blind", GRANT_LIST, GRANT_READ) as src,
            pytest.raises(SourceError, match=r"permission denied.*pg_read_all_settings"),
        ):
            src.check()

    def test_the_documented_grants_are_the_ones_the_source_needs(self) -> None:
        documented = DOCS.read_text()
        for grant in REQUIRED_GRANTS:
            assert grant.format(role="dblogpack_reader") in documented


class TestConnectionFailures:
    def test_wrong_password_is_reported_without_revealing_it(
        self, pg_logging_cluster: PgCluster
    ) -> None:
        pg_logging_cluster.create_role("src_victim", PASSWORD)
        dsn = pg_logging_cluster.dsn(user="src_victim", password="wrong-guess-123")
        with pytest.raises(SourceError, match="password authentication failed") as raised:
            PostgresSource(dsn, connect_timeout=5).check()
        assert "wrong-guess-123" not in str(raised.value)
        assert raised.value.__cause__ is not None

    def test_nobody_listening_is_reported_as_connection_refused(self) -> None:
        dsn = f"postgresql://someone:pw@127.0.0.1:{free_port()}/postgres"
        with pytest.raises(SourceError, match=r"cannot connect to PostgreSQL .*Connection refused"):
            PostgresSource(dsn, connect_timeout=2).check()

    def test_a_malformed_dsn_is_refused_up_front(self) -> None:
        with pytest.raises(SourceError, match="invalid PostgreSQL DSN"):
            PostgresSource("host=127.0.0.1 port")
