"""A member's parts: span lists (merged, spilled, pickled), the spans' bytes copied with large
reads, bytes deflated by a thread whose failure reaches the scanning thread, and their hash."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import pickle
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dblogpack import _sha256
from dblogpack.errors import InternalError
from dblogpack.members import (
    HASHLIB_MIN,
    BackgroundMember,
    SpanList,
    read_buffer,
    sha256,
    span_bytes,
)


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


def test_spans_known_by_their_total_only_refuse_to_be_read_and_so_does_what_they_extend() -> None:
    # A worker's piece whose bytes the parent takes from the worker's copy: only the total.
    known = pickle.loads(pickle.dumps(SpanList.total_only(25)))
    assert known.total() == 25
    with pytest.raises(InternalError, match="not kept"):
        list(known)
    merged = SpanList()
    merged.append(0, 10)
    merged.extend(known)
    assert merged.total() == 35
    with pytest.raises(InternalError, match="not kept"):
        list(merged)


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
            # Read into one reused buffer, each piece taken before the next is read.
            for buffer in (bytearray(window), read_buffer(window)):
                pieces = span_bytes(fd, ranges, window, buffer)
                reused = b"".join(bytes(piece) for piece in pieces)
                assert reused == joined
    finally:
        os.close(fd)


def test_a_read_buffer_starts_on_a_page() -> None:
    # A big bytearray starts 16 bytes past one, where the kernel copies 3-4x slower.
    buffer = read_buffer(4 << 20)
    assert len(buffer) == 4 << 20
    assert ctypes.addressof(ctypes.c_char.from_buffer(buffer)) % mmap.PAGESIZE == 0


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


@pytest.fixture
def broken_deflate(monkeypatch: pytest.MonkeyPatch) -> None:
    """ISA-L's block compressor failing in the deflating thread."""
    from isal import isal_zlib

    class Broken:
        def __init__(self, *args: object) -> None:
            pass

        def compress_and_crc(self, data: object, window: object) -> tuple[bytes, int]:
            raise OverflowError("compressed output exceeds buffer size")

    monkeypatch.setattr(isal_zlib, "_ParallelCompress", Broken)


@pytest.mark.usefixtures("broken_deflate")
def test_a_failure_in_the_deflating_thread_is_raised_in_the_scanning_one() -> None:
    member = BackgroundMember(1, 100)
    member.add(b"2024-05-01 LOG:  a\n")
    with pytest.raises(OverflowError, match="buffer size"):
        member.wait()
    member.close()


@pytest.mark.usefixtures("broken_deflate")
def test_a_scan_failing_while_the_thread_fails_too_reports_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dblogpack import scanpool
    from dblogpack.errors import SourceError
    from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

    path = tmp_path / "postgresql.log"
    path.write_bytes(b"2024-05-01 00:00:00.000 UTC [7] LOG:  checkpoint starting: time\n" * 100)

    def failing_step(*args: object) -> None:
        raise SourceError("the source failed mid-scan")

    monkeypatch.setattr(scanpool, "add_found", failing_step)  # after the thread got the chunk
    task = scanpool._PieceTask(
        str(path), path.name, FormatConfig("pg-stderr", "%m [%p] "),
        Query(TimeWindow(), LogKind.ALL), 0, path.stat().st_size, "sql",
    )
    with pytest.raises(SourceError, match="mid-scan"):
        scanpool._scan_piece(task, level=1)


@pytest.fixture
def pack_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a `pack` process: hashlib not loaded (this module's import of it is put back)."""
    monkeypatch.delitem(sys.modules, "hashlib")


@pytest.mark.usefixtures("pack_process")
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_a_small_hash_in_a_pack_process_is_libcryptos_and_hashlibs_digest(
    chunks: list[bytes], views: bool
) -> None:
    digest = sha256(HASHLIB_MIN - 1)
    assert isinstance(digest, _sha256.Sha256) and "hashlib" not in sys.modules
    for chunk in chunks:
        digest.update(memoryview(chunk)[1:] if views else chunk)
    expected = b"".join(chunk[1:] if views else chunk for chunk in chunks)
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.mark.usefixtures("pack_process")
def test_a_small_hash_where_the_libcrypto_hasher_is_not_built_is_stringzillas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stringzilla

    monkeypatch.setitem(sys.modules, "dblogpack._sha256", None)  # its import fails
    digest = sha256(HASHLIB_MIN - 1)
    assert isinstance(digest, stringzilla.Sha256) and "hashlib" not in sys.modules
    digest.update(b"abc")
    assert digest.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_big_hashes_and_hashes_where_hashlib_is_loaded_are_hashlibs() -> None:
    assert type(sha256()) is type(sha256(0)) is type(sha256(HASHLIB_MIN)) is type(hashlib.sha256())
