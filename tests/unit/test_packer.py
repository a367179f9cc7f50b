"""The package file: standard tar.gz any tool reads, members of announced size, members
compressed elsewhere joined in."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.engine_logs import members

from dblogpack.manifest import iso
from dblogpack.members import (
    HASHLIB_MIN,
    BackgroundMember,
    CompressedMember,
    GzipPiece,
    gzip_member,
)
from dblogpack.packer import TarGzWriter


def test_members_read_back_with_tarfile_gzip_and_tar(tmp_path: Path) -> None:
    long_name = "logs/" + "postgresql-2024-05-01_" * 8 + ".log"
    out = io.BytesIO()
    with TarGzWriter(out, threads=2) as tar:
        tar.add_bytes("logs/a.log", b"line 1\n")
        tar.add_member(long_name, 3 << 20, [b"x" * (1 << 20)] * 3)
        tar.add_bytes("logs/journal-é.log", b"")
    package = tmp_path / "p.tar.gz"
    package.write_bytes(out.getvalue())

    assert subprocess.run(["gzip", "-t", str(package)], check=False).returncode == 0
    listing = subprocess.run(["tar", "-tzf", str(package)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert listing == ["logs/a.log", long_name, "logs/journal-é.log"]
    read_back = members(package)
    assert read_back["logs/a.log"] == b"line 1\n"
    assert read_back[long_name] == b"x" * (3 << 20)


def test_close_reports_size_and_checksum_of_the_written_file() -> None:
    out = io.BytesIO()
    tar = TarGzWriter(out, threads=1)
    digest = tar.add_bytes("a", b"abc")
    size, sha256 = tar.close()

    assert size == len(out.getvalue())
    assert sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert digest == hashlib.sha256(b"abc").hexdigest()


def test_without_checksum_the_same_file_is_written_and_no_hash_reported() -> None:
    files = []
    for checksum in (True, False):
        out = io.BytesIO()
        tar = TarGzWriter(out, threads=0, mtime=0, checksum=checksum)
        tar.add_bytes("a", b"abc")
        size, sha256 = tar.close()
        assert size == len(out.getvalue()) and (sha256 is None) == (not checksum)
        files.append(out.getvalue())
    assert files[0] == files[1]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_every_isal_level_makes_standard_gzip(level: int) -> None:
    out = io.BytesIO()
    with TarGzWriter(out, compresslevel=level) as tar:
        tar.add_bytes("logs/a.log", b"2024-05-01 LOG:  x\n" * 1000)

    assert members(out.getvalue())["logs/a.log"] == b"2024-05-01 LOG:  x\n" * 1000


def test_a_member_shorter_than_announced_is_refused() -> None:
    tar = TarGzWriter(io.BytesIO())
    with pytest.raises(ValueError, match="announced"):
        tar.add_member("a", 10, [b"short"])
    tar.abort()


def test_timestamps_are_iso_utc_with_the_logs_millisecond_precision() -> None:
    assert iso(1714550400.123) == "2024-05-01T08:00:00.123Z"
    assert iso(1714550400) == "2024-05-01T08:00:00.000Z"
    assert iso(None) is None


@given(st.floats(min_value=-10**9, max_value=10**10, allow_nan=False) | st.integers(0, 10**10))
def test_iso_writes_what_datetime_isoformat_writes(ts: float) -> None:
    # iso() spares every `pack` the datetime import; its text must not change.
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    assert iso(ts) == text.replace("+00:00", "Z")


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_every_thread_count_makes_the_same_members(threads: int) -> None:
    # threads=0 compresses in the caller's thread (small packages); the bytes are the same.
    out = io.BytesIO()
    with TarGzWriter(out, threads=threads) as tar:
        tar.add_bytes("logs/a.log", b"2024-05-01 LOG:  x\n" * 50_000)
        tar.add_member("logs/b.log", 2 << 20, [b"y" * (1 << 20)] * 2)

    read_back = members(out.getvalue())
    assert read_back["logs/a.log"] == b"2024-05-01 LOG:  x\n" * 50_000
    assert read_back["logs/b.log"] == b"y" * (2 << 20)



def _pieces_on_disk(tmp_path: Path, pieces: list[bytes]) -> list[Path]:
    paths = []
    for number, piece in enumerate(pieces):
        compress, path = gzip_member(1), tmp_path / f"piece-{number}.gz"
        path.write_bytes(compress(piece) + compress(None))
        paths.append(path)
    return paths


def _piece(path: Path) -> GzipPiece:
    return GzipPiece(str(path), path.stat().st_size)


def test_members_compressed_by_workers_are_copied_in_and_the_checksum_covers_them(
    tmp_path: Path,
) -> None:
    pieces = [b"2024-05-01 LOG:  a\n" * 50_000, os.urandom(3 << 20), b"", b"LOG:  b\n"]
    member = CompressedMember()
    for path, piece in zip(_pieces_on_disk(tmp_path, pieces), pieces, strict=True):
        member.add(_piece(path), [piece])
    out = io.BytesIO()
    with TarGzWriter(out, threads=2) as tar:
        tar.add_bytes("logs/a.log", b"first\n")
        tar.add_compressed_member("logs/b.log", member)
        tar.add_bytes("manifest.json", b"{}\n")
    size, sha256 = tar.close()

    assert members(out.getvalue())["logs/b.log"] == b"".join(pieces)
    assert member.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert size == len(out.getvalue())
    assert sha256 == hashlib.sha256(out.getvalue()).hexdigest()


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("into", ["memory", "file", "file-no-kernel-copy"])
def test_members_compressed_by_workers_go_into_the_package_as_they_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int, into: str
) -> None:
    # Each piece is in the package (and its file gone) once added; the member's header, written
    # before them, is written again in its place once the size is known. Into a file, the
    # kernel copies the pieces (copy_file_range), or this process where the kernel cannot.
    if into == "file-no-kernel-copy":

        def cannot_copy(*args: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", cannot_copy)
    pieces = [b"2024-05-01 LOG:  a\n" * 50_000, os.urandom(3 << 20), b"", b"LOG:  b\n"]
    out: io.BytesIO | io.BufferedRandom = (
        io.BytesIO() if into == "memory" else open(tmp_path / "out.tar.gz", "w+b")
    )
    with out, TarGzWriter(out, threads=threads, checksum=False) as tar:
        tar.add_bytes("logs/a.log", b"first\n")
        spool = tar.spool_member("logs/b.log", 10 << 20)
        assert spool is not None
        member = CompressedMember(spool)
        for path, piece in zip(_pieces_on_disk(tmp_path, pieces), pieces, strict=True):
            member.add(_piece(path), [piece])
            assert not path.exists()
        tar.add_compressed_member("logs/b.log", member)
        tar.add_bytes("manifest.json", b"{}\n")
        size, _ = tar.close()
        out.flush()
        out.seek(0)
        written = out.read()

    assert list(members(written).items()) == [
        ("logs/a.log", b"first\n"), ("logs/b.log", b"".join(pieces)), ("manifest.json", b"{}\n")
    ]
    assert size == len(written)
    package = tmp_path / "p.tar.gz"
    package.write_bytes(written)
    assert subprocess.run(["gzip", "-t", str(package)], check=False).returncode == 0
    listing = subprocess.run(["tar", "-tvzf", str(package)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert [line.split()[2] for line in listing] == ["6", str(len(b"".join(pieces))), "3"]


def test_a_spooled_member_found_empty_leaves_the_package_as_before_it(tmp_path: Path) -> None:
    out = io.BytesIO()
    with TarGzWriter(out, threads=2, checksum=False) as tar:
        tar.add_bytes("logs/a.log", b"first\n")
        spool = tar.spool_member("logs/b.log", 1 << 20)
        assert spool is not None
        member = CompressedMember(spool)
        for path in _pieces_on_disk(tmp_path, [b"", b""]):
            member.add(_piece(path), [])
        spool.discard()
        tar.add_bytes("manifest.json", b"{}\n")
    size, _ = tar.close()

    assert list(members(out.getvalue())) == ["logs/a.log", "manifest.json"]
    assert size == len(out.getvalue())


class _Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


def test_a_member_is_spooled_only_into_a_seekable_unhashed_output_with_room_in_its_header() -> None:
    with TarGzWriter(_Unseekable(), checksum=False) as tar:
        assert tar.spool_member("logs/a.log", 1 << 20) is None
    with TarGzWriter(io.BytesIO(), checksum=True) as tar:
        assert tar.spool_member("logs/a.log", 1 << 20) is None  # its bytes are hashed as written
    with TarGzWriter(io.BytesIO(), checksum=False) as tar:
        assert tar.spool_member("logs/a.log", 1 << 40) is None  # a size in a pax header
        assert tar.spool_member("logs/" + "a" * 100 + ".log", 1 << 20) is None  # a long name
        assert tar.spool_member("logs/a.log", 1 << 20) is not None


def test_a_failed_deflate_of_a_scanning_thread_is_raised_when_the_member_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from isal import isal_zlib

    class Broken:
        def __init__(self, room: int, level: int) -> None:
            pass

        def compress_and_crc(self, data: bytes, history: bytes) -> tuple[bytes, int]:
            raise MemoryError("no room for the output")

    member = BackgroundMember(1, 0)
    member.add(b"first\n" * 1000)  # deflated before the compressor breaks
    member.wait()
    monkeypatch.setattr(isal_zlib, "_ParallelCompress", Broken)
    for piece in (b"second\n", b"third\n"):  # two in flight: the failure is the older one's
        member.add(piece)
    with pytest.raises(MemoryError, match="no room"):
        member.wait()
    member.close()


@pytest.mark.parametrize(
    ("threads", "level", "size"), [(0, 1, 0), (1, 1, HASHLIB_MIN), (0, 0, 0), (0, 3, HASHLIB_MIN)]
)
def test_bytes_deflated_by_a_scanning_thread_join_the_package(
    threads: int, level: int, size: int
) -> None:
    # threads=0: the thread's raw deflate segment is spliced into the package's one gzip member;
    # a threaded writer gets it wrapped as a gzip member of its own. Pieces refer back to the
    # ones before (short, empty and incompressible ones included).
    pieces = [b"2024-05-01 LOG:  a\n" * 3000, b"", b"LOG:  b\n", os.urandom(200_000),
              b"2024-05-01 LOG:  a\n" * 5000]
    member = BackgroundMember(level, size)
    for piece in pieces:
        member.add(piece)
    member.wait()
    out = io.BytesIO()
    with TarGzWriter(out, threads=threads, compresslevel=level) as tar:
        tar.add_bytes("logs/a.log", b"first\n")
        tar.add_compressed_member("logs/b.log", member)
        tar.add_bytes("manifest.json", b"{}\n")

    expected = b"".join(pieces)
    assert members(out.getvalue())["logs/b.log"] == expected
    assert member.hexdigest() == hashlib.sha256(expected).hexdigest()
    inflate = zlib.decompressobj(31)
    inflate.decompress(out.getvalue())
    assert inflate.eof and (inflate.unused_data == b"") == (threads == 0)
