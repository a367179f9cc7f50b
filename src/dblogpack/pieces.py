"""What a scan's selected bytes become while it goes on: in a worker process, a gzip member
written into the package at its piece's turn, or into a file (and, while they are a small share,
a copy of them as they are, for the parent to hash); in this process, a member deflated and
hashed by threads.
"""

from __future__ import annotations

import os
from itertools import starmap

from dblogpack.members import BackgroundMember, GzipPiece, SpanList, gzip_member
from dblogpack.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import IO

    from dblogpack.turns import PackageTurns, WriteTarget

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
    """A worker's piece as it hands it back: its gzip member (in a file, or in the package at its
    turn), the copy's file (None: dropped), and the spans of what it selected (only their total
    when the copy is kept)."""

    compressed: GzipPiece
    raw: str | None
    spans: SpanList


class CompressedPiece:
    """The selected bytes of one piece as one gzip member (see _GzipOut: into the package at the
    piece's turn, or into a file of `directory`), and as they are in another file while they stay
    a small share of the bytes scanned (SPARSE_SHARE; the parent hashes them from there, then
    removes the copy: temporary space grows by at most that share of the pieces the workers are
    ahead by). A worker writes them as it scans; a failed worker's files go with the directory.

    The piece keeps the spans of what it selected only for a parent that reads the bytes from the
    log file: while the copy is kept, each chunk's list waits as the scan made it (~120 bytes a
    span, ~3 MB for a 64 MiB piece of the slow pg-stderr-1g.log package), and if the copy goes,
    they are added to the span list then. Adding every chunk's spans as they came cost ~2.8 M
    instructions a 4 MiB chunk of that package (~1,500 spans), ~7% of its scan. At most
    WAITING_SPANS wait: a piece selecting many short entries (a 64 MiB piece of 40-byte lines,
    a fifth of them selected, has ~300,000) adds them as it goes, and its memory stays bounded
    by the span list's spilling."""

    def __init__(self, directory: str, level: int, target: WriteTarget | None = None) -> None:
        import tempfile

        self._out = _GzipOut(directory, target, _worker_turns)
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
        self._out.write(self._compress(data))
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
        """End the gzip member: where it is, the copy's file, and the spans (only their total
        with a copy)."""
        self._out.write(self._compress(None))
        compressed = self._out.finish()
        if self._raw is None:
            return PieceFiles(compressed, None, self._spans)
        self._raw.close()
        self._spans.close()
        return PieceFiles(compressed, self._raw.name, SpanList.total_only(self._selected))

    def _drop_raw(self) -> None:
        assert self._raw is not None
        self._raw.close()
        os.unlink(self._raw.name)
        self._raw = None

    def close(self) -> None:
        self._out.close()
        if self._raw is not None:
            self._raw.close()


# A worker process's turns at writing into the package (set as it starts, see workerpool).
_worker_turns: PackageTurns | None = None


def use_turns(turns: PackageTurns) -> None:
    """This worker process writes pieces into the package with `turns`."""
    global _worker_turns
    _worker_turns = turns



class _GzipOut:
    """Where one piece's gzip member goes. With a target, it waits in memory for the piece's turn
    and is written straight into the package once the turn is open (the rest of the piece then
    follows it there as it is compressed); one that waited as long as the turns allow, or grew
    past what they let wait in memory, goes to a file instead. Without a target, it goes to a
    file: the parent copies it into the package, or keeps it until the member's size is known
    (see members.CompressedMember).

    Through a file, the member is written twice, by the worker and by the parent's copy: 50-65 ms
    more CPU for the 142 MB of pieces of the 1.1 GB all-entries package, 2-4% of its time.
    """

    def __init__(
        self, directory: str, target: WriteTarget | None, turns: PackageTurns | None
    ) -> None:
        self._directory = directory
        self._target = target if turns is not None else None
        self._turns = turns if target is not None else None
        self._waiting: list[bytes] = []
        self._waiting_size = 0
        self._file: IO[bytes] | None = None
        self._package: int | None = None  # the package's descriptor while this piece writes
        self._offset = 0  # where in the package it writes next
        self._size = 0

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._package is not None:
            self._offset = _write_at(self._package, data, self._offset)
        elif self._file is not None:
            self._file.write(data)
        else:
            self._waiting.append(data)
            self._waiting_size += len(data)
            if self._turns is None or self._waiting_size > self._turns.waiting_max:
                self._to_file()
            elif (offset := self._offset_if_turn(0)) is not None:
                self._to_package(offset)

    def finish(self) -> GzipPiece:
        """The member is complete: where it is."""
        if self._package is None and self._file is None:
            assert self._turns is not None  # else the first write went to a file
            offset = self._offset_if_turn(self._waiting_size / self._turns.spill_rate)
            if offset is None or not self._to_package(offset):
                self._to_file()
        if self._package is not None:
            assert self._turns is not None and self._target is not None
            os.close(self._package)
            self._package = None
            self._turns.pass_on(self._target.turn, self._offset)
            return GzipPiece(None, self._size)
        assert self._file is not None
        self._file.close()
        return GzipPiece(self._file.name, self._size)

    def _offset_if_turn(self, seconds: float) -> int | None:
        assert self._turns is not None and self._target is not None
        turn = self._target.turn
        if seconds <= 0:
            return self._turns.offset_if_mine(turn)
        return self._turns.wait(turn, seconds)

    def _to_package(self, offset: int) -> bool:
        """Write what waited into the package at `offset` and go on there; False when the
        package is no longer the file the target names."""
        assert self._target is not None
        try:
            package = os.open(self._target.path, os.O_WRONLY)
        except OSError:
            return False
        found = os.fstat(package)
        if (found.st_dev, found.st_ino) != (self._target.device, self._target.inode):
            os.close(package)
            return False
        self._package, self._offset = package, offset
        for data in self._waiting:
            self._offset = _write_at(package, data, self._offset)
        self._waiting.clear()
        return True

    def _to_file(self) -> None:
        import tempfile

        self._file = tempfile.NamedTemporaryFile(
            dir=self._directory, prefix="piece-", suffix=".gz", delete=False
        )
        for data in self._waiting:
            self._file.write(data)
        self._waiting.clear()

    def close(self) -> None:
        """Let go of the package or the file (after a failure: the turn is not passed on)."""
        if self._package is not None:
            os.close(self._package)
            self._package = None
        if self._file is not None:
            self._file.close()


def _write_at(fd: int, data: bytes, offset: int) -> int:
    """Write all of `data` at `offset` of `fd`; returns the offset after it."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
    return offset


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
