"""The package file: standard tar.gz any tool reads, members of announced size, span copying."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.engine_logs import members

from dblogpack.members import BackgroundMember, SpanList, span_bytes
from dblogpack.packer import TarGzWriter, iso


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


def test_span_list_merges_adjacent_ranges_and_spills_to_disk_past_its_bound() -> None:
    spans = SpanList(spill_at=8)
    ranges = [(i * 10, i * 10 + 5) for i in range(100)] + [(995, 1000), (1000, 1010)]

    for start, end in ranges:
        spans.append(start, end)

    expected = [(i * 10, i * 10 + 5) for i in range(99)] + [(990, 1010)]
    assert list(spans) == expected
    assert spans.total() == sum(end - start for start, end in expected)
    copy = pickle.loads(pickle.dumps(spans))
    assert list(copy) == expected and copy.total() == spans.total()
    merged = SpanList()
    merged.append(-10, 0)
    merged.extend(copy)
    assert list(merged)[:2] == [(-10, 5), (10, 15)]
    assert merged.total() == spans.total() + 10
    spans.close()


def test_a_scan_s_spans_appended_at_once_are_those_appended_one_by_one() -> None:
    one_by_one, at_once = SpanList(spill_at=8), SpanList(spill_at=8)
    chunks = [[(0, 5), (7, 9)], [], [(0, 3), (4, 6), (10, 20)], [(1, 2)]]
    bases = [100, 109, 109, 130]  # the second chunk's first span touches the first's last

    for spans, base in zip(chunks, bases, strict=True):
        for start, end in spans:
            one_by_one.append(base + start, base + end)
        at_once.append_all(spans, base)

    assert list(at_once) == list(one_by_one) == [
        (100, 105), (107, 112), (113, 115), (119, 129), (131, 132)
    ]
    assert at_once.total() == one_by_one.total() == 5 + 5 + 2 + 10 + 1
    one_by_one.close()
    at_once.close()


def test_span_bytes_are_the_ranges_joined_whatever_the_read_window(tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    path = tmp_path / "f"
    path.write_bytes(data)
    ranges = [(0, 10), (10, 20), (500, 5000), (5001, 5002), (90_000, 102_400)]

    fd = os.open(path, os.O_RDONLY)
    try:
        for window in (7, 4096, 1 << 20):
            joined = b"".join(span_bytes(fd, ranges, window))
            assert joined == b"".join(data[a:b] for a, b in ranges)
    finally:
        os.close(fd)


def test_span_bytes_keep_one_read_window_alive_for_sparse_ranges(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"." * 1_000_000)
    sparse = [(offset, offset + 10) for offset in range(0, 1_000_000, 5_000)]

    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = list(span_bytes(fd, sparse, 50_000))
    finally:
        os.close(fd)

    # One piece per read window: memory is one window, however sparse the selection.
    assert len(pieces) == 20 and all(len(p) == 100 for p in pieces)


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


@pytest.mark.parametrize(("threads", "level"), [(0, 1), (1, 1), (0, 0), (0, 3)])
def test_bytes_deflated_by_a_scanning_thread_join_the_package(threads: int, level: int) -> None:
    # threads=0: the thread's raw deflate segment is spliced into the package's one gzip member;
    # a threaded writer gets it wrapped as a gzip member of its own. Pieces refer back to the
    # ones before (short, empty and incompressible ones included).
    pieces = [b"2024-05-01 LOG:  a\n" * 3000, b"", b"LOG:  b\n", os.urandom(200_000),
              b"2024-05-01 LOG:  a\n" * 5000]
    member = BackgroundMember(level)
    for piece in pieces:
        member.add(piece)
    member.finish()
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


def test_a_failure_in_the_deflating_thread_is_raised_in_the_scanning_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from isal import isal_zlib

    class Broken:
        def __init__(self, *args: object) -> None:
            pass

        def compress_and_crc(self, data: object, window: object) -> tuple[bytes, int]:
            raise OverflowError("compressed output exceeds buffer size")

    monkeypatch.setattr(isal_zlib, "_ParallelCompress", Broken)
    member = BackgroundMember(1)
    member.add(b"2024-05-01 LOG:  a\n")
    with pytest.raises(OverflowError, match="buffer size"):
        member.finish()
    member.close()

