"""The `ssh` source against a real OpenSSH server: listing, byte ranges, and every failure an
operator meets (wrong key, wrong host key, closed port, silent host, vanished or unreadable
files, dropped connections) reported as a SourceError that says what went wrong.
"""

from __future__ import annotations

import json
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.pgcluster import free_port
from tests.support.s3server import S3Server
from tests.support.sshd import Sshd, generate_key

from dblogpack import pipeline
from dblogpack.errors import FileVanishedError, SourceError
from dblogpack.model import FormatConfig, LogKind, PackageSpec, ResourceKind, TimeWindow
from dblogpack.sources.sftp import SftpSource
from dblogpack.stores.s3 import S3Store


@pytest.fixture
def log_dir(sshd: Sshd) -> Path:
    return sshd.make_readable_dir(f"logs-{uuid.uuid4().hex[:8]}")


def make_source(
    sshd: Sshd, log_dir: Path, pattern: str = "postgresql-*", **kw: object
) -> SftpSource:
    options: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "private_key_pem": sshd.client_key,
        "known_host_key": sshd.host_public_key,
        "log_dir": str(log_dir),
        "pattern": pattern,
        "timeout": 5.0,
    }
    options.update(kw)
    return SftpSource(**options)  # type: ignore[arg-type]


@pytest.fixture
def source(sshd: Sshd, log_dir: Path) -> Iterator[SftpSource]:
    with make_source(sshd, log_dir) as src:
        assert isinstance(src, SftpSource)
        yield src


def write(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- listing and reading -------------------------------------------------------------------


def test_lists_matching_regular_files_oldest_first_with_size_and_mtime(
    source: SftpSource, log_dir: Path
) -> None:
    write(log_dir / "postgresql-2024-01-02.log", b"b" * 20, mtime=1_700_000_200)
    write(log_dir / "postgresql-2024-01-01.log", b"a" * 10, mtime=1_700_000_100)
    write(log_dir / "postgresql-2023-12-31.log.gz", b"\x1f\x8b" + b"z" * 5, mtime=1_700_000_000)
    write(log_dir / "pg_upgrade.txt", b"not a log")
    (log_dir / "postgresql-subdir").mkdir()

    files = source.list_files()

    assert [(f.name, f.size, f.mtime) for f in files] == [
        ("postgresql-2023-12-31.log.gz", 7, 1_700_000_000),
        ("postgresql-2024-01-01.log", 10, 1_700_000_100),
        ("postgresql-2024-01-02.log", 20, 1_700_000_200),
    ]
    assert files[0].compressed


def test_reads_exact_byte_ranges_including_across_large_spans_and_past_the_end(
    source: SftpSource, log_dir: Path
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)  # larger than one read span (8 MiB)
    write(log_dir / "postgresql-big.log", data)

    assert source.read("postgresql-big.log", 0, 100) == data[:100]
    assert source.read("postgresql-big.log", 5_000_000, 1_000_000) == data[5_000_000:6_000_000]
    assert source.read("postgresql-big.log", 0, len(data)) == data
    assert source.read("postgresql-big.log", len(data) - 10, 100) == data[-10:]
    assert source.read("postgresql-big.log", len(data), 100) == b""


def test_reads_from_several_threads_at_once_share_one_connection(
    sshd: Sshd, source: SftpSource, log_dir: Path
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    write(log_dir / "postgresql-shared.log", data)
    ranges = [(offset, 300_000) for offset in range(0, len(data), 150_000)]
    connections_before = len(sshd.connection_children())

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda r: source.read("postgresql-shared.log", *r), ranges))

    assert results == [data[offset : offset + size] for offset, size in ranges]
    assert len(sshd.connection_children()) <= connections_before + 1


def test_refuses_names_that_are_not_log_files_of_the_directory(source: SftpSource) -> None:
    for name in ["../etc/passwd", "sub/postgresql-x.log", "/etc/passwd", "..", "other.log", ""]:
        with pytest.raises(SourceError, match="is not a log file name"):
            source.read(name, 0, 10)


def test_check_passes_with_the_right_host_key(source: SftpSource) -> None:
    source.check()


def test_a_host_key_line_copied_from_ssh_keyscan_is_understood(sshd: Sshd, log_dir: Path) -> None:
    keyscan_line = f"[127.0.0.1]:{sshd.port} {sshd.host_public_key.rsplit(' ', 1)[0]}"
    with make_source(sshd, log_dir, known_host_key=keyscan_line) as src:
        src.check()


def test_a_malformed_host_key_is_refused_at_construction(sshd: Sshd, log_dir: Path) -> None:
    with pytest.raises(SourceError, match="SSHKnownHostKey is not an OpenSSH public key"):
        make_source(sshd, log_dir, known_host_key="ssh-ed25519 not-base64")


def test_without_a_known_host_key_any_host_key_is_accepted(sshd: Sshd, log_dir: Path) -> None:
    with make_source(sshd, log_dir, known_host_key=None) as src:
        src.check()


def test_a_dropped_connection_is_reopened_on_the_next_read(
    sshd: Sshd, source: SftpSource, log_dir: Path
) -> None:
    write(log_dir / "postgresql-1.log", b"first line\n")
    assert source.read("postgresql-1.log", 0, 5) == b"first"

    assert sshd.drop_connections() >= 1
    time.sleep(0.2)

    assert source.read("postgresql-1.log", 6, 4) == b"line"


def test_a_forked_worker_opens_its_own_connection(source: SftpSource, log_dir: Path) -> None:
    write(log_dir / "postgresql-1.log", b"parent and child\n")
    assert source.read("postgresql-1.log", 0, 6) == b"parent"

    child = os.fork()
    if child == 0:  # the child must not touch the parent's connection or event loop
        ok = source.read("postgresql-1.log", 11, 5) == b"child"
        source.close()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert source.read("postgresql-1.log", 7, 3) == b"and"


# -- the ssh source in a whole package -------------------------------------------------------


def mongo_slow_query(unix_seconds: int, millis: int) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(unix_seconds))
    return json.dumps(
        {
            "t": {"$date": stamp},
            "s": "I",
            "c": "COMMAND",
            "id": 51803,
            "ctx": "conn7",
            "msg": "Slow query",
            "attr": {"ns": "shop.orders", "durationMillis": millis},
        },
        separators=(",", ":"),
    )


def test_a_window_of_a_large_remote_log_is_packaged_into_s3_reading_only_around_it(
    sshd: Sshd, log_dir: Path, s3server: S3Server
) -> None:
    start = 1_704_067_200  # 2024-01-01T00:00:00Z, one slow query a second for 40 hours
    lines = [mongo_slow_query(start + i, 100 + i % 50) for i in range(144_000)]
    write(log_dir / "mongod.log", ("\n".join(lines) + "\n").encode())
    window = TimeWindow(start + 72_000, start + 72_060)
    spec = PackageSpec("pkg-1", "slow-1", ResourceKind.MONGODB, "c-1", "n-1", LogKind.SLOW, window)
    store = S3Store(
        s3server.create_bucket(f"pkg-{uuid.uuid4().hex[:8]}"),
        "packages",
        s3server.endpoint_url,
        s3server.region,
        s3server.access_key,
        s3server.secret_key,
    )

    with make_source(sshd, log_dir, pattern="mongod.log*") as source:
        with store.writer("proj/pkg-1/slow-1.tar.gz") as out:
            result = pipeline.run(spec, source, FormatConfig("auto"), out)

    assert result.entries == 60
    assert (log_dir / "mongod.log").stat().st_size > 20_000_000
    assert result.files[0].bytes_scanned < 2_000_000  # bisection, not a 20 MB download
    with (
        store.open("proj/pkg-1/slow-1.tar.gz") as package,
        tarfile.open(fileobj=package, mode="r:gz") as tar,
    ):
        member = tar.extractfile("logs/mongod.log")
        assert member is not None
        assert member.read().decode().splitlines() == lines[72_000:72_060]


# -- failures ------------------------------------------------------------------------------


def test_wrong_private_key_is_an_authentication_failure(
    sshd: Sshd, log_dir: Path, tmp_path: Path
) -> None:
    other_key, _ = generate_key(tmp_path / "stranger")
    with make_source(sshd, log_dir, private_key_pem=other_key) as src:
        with pytest.raises(SourceError, match=r"authentication failed.*nobody") as info:
            src.check()
    assert "127.0.0.1" in str(info.value)


def test_unexpected_host_key_is_refused(sshd: Sshd, log_dir: Path, tmp_path: Path) -> None:
    _, impostor_public = generate_key(tmp_path / "impostor")
    with make_source(sshd, log_dir, known_host_key=impostor_public) as src:
        with pytest.raises(SourceError, match="host key does not match"):
            src.check()


def test_closed_port_is_refused_within_the_timeout(sshd: Sshd, log_dir: Path) -> None:
    with make_source(sshd, log_dir, port=free_port(), timeout=3.0) as src:
        started = time.monotonic()
        with pytest.raises(SourceError, match="connection refused"):
            src.check()
    assert time.monotonic() - started < 3.0


def test_a_host_that_never_answers_times_out_instead_of_hanging(sshd: Sshd, log_dir: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with make_source(sshd, log_dir, port=port, timeout=1.0) as src:
            started = time.monotonic()
            with pytest.raises(SourceError, match="no answer within 1s"):
                src.check()
    assert time.monotonic() - started < 5.0


def test_a_file_removed_after_listing_is_reported_as_vanished(
    source: SftpSource, log_dir: Path
) -> None:
    write(log_dir / "postgresql-rotated.log", b"x" * 100)
    assert [f.name for f in source.list_files()] == ["postgresql-rotated.log"]

    (log_dir / "postgresql-rotated.log").unlink()

    with pytest.raises(FileVanishedError, match=r"postgresql-rotated\.log: file vanished"):
        source.read("postgresql-rotated.log", 0, 10)


def test_an_unreadable_file_is_permission_denied(source: SftpSource, log_dir: Path) -> None:
    write(log_dir / "postgresql-secret.log", b"x" * 100).chmod(0o000)

    with pytest.raises(SourceError, match="permission denied for user 'nobody'"):
        source.read("postgresql-secret.log", 0, 10)


def test_a_missing_log_directory_fails_the_check(sshd: Sshd, log_dir: Path) -> None:
    with make_source(sshd, log_dir / "nope") as src:
        with pytest.raises(SourceError, match="no such directory"):
            src.check()


def test_an_unreadable_private_key_is_refused_at_construction(sshd: Sshd, log_dir: Path) -> None:
    with pytest.raises(SourceError, match="private key cannot be read"):
        make_source(sshd, log_dir, private_key_pem="not a key")
