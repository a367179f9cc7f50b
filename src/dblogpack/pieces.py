"""What a scan's selected bytes become while it goes on: in a worker process, a gzip member in
a file (and, while they are a small share, a copy of them as they are, for the parent to hash);
in this process, a member deflated and hashed by threads.
"""

from __future__ import annotations

import os
from itertools import starmap

from dblogpack.members import BackgroundMember, SpanList, gzip_member
from dblogpack.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import IO

# Below this share of a piece selected, its bytes are read back from the copy the worker wrote
# as they are, or, when the worker dropped it (its selection passed this share on the way), by
# decompressing its gzip member, rather than from the file (a read window per few spans, and
# thousands of spans to join: 29-83 ms per 128 MiB piece of the slow and error bench packages,
# against 1-29 ms decompressing). The copy: packing the slow mongo-json-1g.log, the parent spent
# 0.40 s user + 0.22 s sys (44k page faults on fresh output blocks) decompressing and hashing,
# 0.26 + 0.10 reading the copy and hashing; the workers' writes cost them 0.05-0.1 s sys.
SPARSE_SHARE = 0.25
# A worker's piece keeps at most this many spans as its scan made them (~120 bytes each): see
# CompressedPiece.
WAITING_SPANS = 1 << 16


class PieceFiles(NamedTuple):
    """A worker's piece as it hands it back: its gzip member's file, the copy's (None: dropped),
    and the spans of what it selected (only their total when the copy is kept)."""

    compressed: str
    raw: str | None
    spans: SpanList


class CompressedPiece:
    """The selected bytes of one piece as one gzip member in a file of `directory`, and as they
    are in another while they stay a small share of the bytes scanned (SPARSE_SHARE; the parent
    hashes them from there, then removes the copy: temporary space grows by at most that share of
    the pieces the workers are ahead by). A worker writes them as it scans; a failed worker's
    files go with the directory.

    The piece keeps the spans of what it selected only for a parent that reads the bytes from the
    log file: while the copy is kept, each chunk's list waits as the scan made it (~120 bytes a
    span, ~3 MB for a 64 MiB piece of the slow pg-stderr-1g.log package), and if the copy goes,
    they are added to the span list then. Adding every chunk's spans as they came cost ~2.8 M
    instructions a 4 MiB chunk of that package (~1,500 spans), ~7% of its scan. At most
    WAITING_SPANS wait: a piece selecting many short entries (a 64 MiB piece of 40-byte lines,
    a fifth of them selected, has ~300,000) adds them as it goes, and its memory stays bounded
    by the span list's spilling."""

    def __init__(self, directory: str, level: int) -> None:
        import tempfile

        self._file = tempfile.NamedTemporaryFile(
            dir=directory, prefix="piece-", suffix=".gz", delete=False
        )
        self._compress = gzip_member(level)
        self._raw: IO[bytes] | None = tempfile.NamedTemporaryFile(
            dir=directory, prefix="piece-", suffix=".raw", delete=False, buffering=0
        )
        self._scanned = self._selected = 0
        self._spans = SpanList()
        self._waiting: list[tuple[list[tuple[int, int]], int]] = []  # (a chunk's spans, its base)
        self._waiting_spans = 0

    def add(self, buf: bytes, spans: list[tuple[int, int]], base: int) -> None:
        """A chunk's selected `spans` (relative to the chunk, at `base` in the file)."""
        self._scanned += len(buf)
        if not spans:
            return
        data = selected(buf, spans)
        self._file.write(self._compress(data))
        self._selected += len(data)
        if self._raw is not None:
            if self._selected < SPARSE_SHARE * self._scanned:
                self._raw.write(data)
            else:  # no small share: the parent reads the bytes from the log file
                self._drop_raw()
        self._waiting.append((spans, base))
        self._waiting_spans += len(spans)
        if self._raw is None or self._waiting_spans > WAITING_SPANS:
            self._add_waiting()

    def _add_waiting(self) -> None:
        for waiting, at in self._waiting:
            self._spans.append_all(waiting, at)
        self._waiting.clear()
        self._waiting_spans = 0

    def finish(self) -> PieceFiles:
        """End the gzip member: its file, the copy's, and the spans (only their total with a
        copy)."""
        self._file.write(self._compress(None))
        if self._raw is None:
            return PieceFiles(self._file.name, None, self._spans)
        self._raw.close()
        self._spans.close()
        return PieceFiles(self._file.name, self._raw.name, SpanList.total_only(self._selected))

    def _drop_raw(self) -> None:
        assert self._raw is not None
        self._raw.close()
        os.unlink(self._raw.name)
        self._raw = None

    def close(self) -> None:
        self._file.close()
        if self._raw is not None:
            self._raw.close()


class ThreadPiece:
    """The selected bytes of an in-process scan (at most `size`), compressed and hashed by
    threads of this process while the scan goes on (see BackgroundMember)."""

    def __init__(self, level: int, size: int) -> None:
        self._member = BackgroundMember(level, size)

    def add(self, buf: bytes, spans: list[tuple[int, int]]) -> None:
        if spans:
            self._member.add(selected(buf, spans))

    def finish(self) -> BackgroundMember:
        """End the gzip member and hand it over (closed by whoever packs it)."""
        self._member.wait()
        return self._member

    def close(self) -> None:
        # The thread's failure is raised by finish(); here the scan may be leaving with its own
        # error, which is the one to report.
        self._member.join()


Piece = CompressedPiece | ThreadPiece


def selected(buf: bytes, spans: list[tuple[int, int]]) -> bytes | memoryview:
    """The bytes of `spans` of `buf`: a view for one span (an all-entries chunk), else joined
    in one C-level pass (a slow scan's chunk selects thousands of short spans)."""
    if len(spans) == 1:
        start, end = spans[0]
        return memoryview(buf)[start:end]
    # Slices of the bytes (short copies) mapped in C: no view object or Python frame per span.
    return b"".join(map(buf.__getitem__, starmap(slice, spans)))
