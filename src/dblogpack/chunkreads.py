"""A local file's byte range read chunk by chunk, each chunk exactly to its last whole entry when
its tail shows where that is (the tail-framed formats); ahead of the scan, by a thread, when asked.
"""

from __future__ import annotations

import os

from dblogpack.members import Background

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.base import LogFormat

# A chunk grows to hold one long entry, up to this; past it, the bytes are scanned as they are
# (a garbage file without entry starts must not be read into memory whole).
MAX_CHUNK = 64 * 1024 * 1024


class Reads:
    """A piece's chunks, each read exactly to its whole entries when its tail shows where they
    end; `ahead` has one read by a thread while the caller scans (pread releases the GIL, and
    faulting in a fresh 2 MiB buffer costs ~1.5 ms: a 1-hour window's pack spent ~5 ms of its
    scanning thread on reads)."""

    def __init__(self, fd: int, log_format: LogFormat, stop: int) -> None:
        self._fd, self._format, self._stop = fd, log_format, stop
        self._tail_framed = log_format.name in TAIL_FRAMED
        # The chunk read ahead as (pos, chunk, whole length or None), its bytes once read, and
        # the thread reading them.
        self._ahead: tuple[int, int, int | None] | None = None
        self._done: list[bytes] = []
        self._thread: Background | None = None

    def read(self, pos: int, chunk: int) -> tuple[bytes, int | None]:
        """The chunk at `pos` (up to `chunk` bytes) and its length when that is exactly its whole
        entries (None: the caller finds where they end)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and self._thread is not None and ahead[:2] == (pos, chunk):
            self._thread.wait()
            return self._done.pop(), ahead[2]
        self.close()  # a read ahead of another chunk (the file shrank): not needed
        length, whole = self._extent(pos, chunk)
        return os.pread(self._fd, length, pos), whole

    def ahead(self, pos: int, chunk: int) -> None:
        """Start reading the chunk at `pos` in a thread; `read(pos, chunk)` takes it."""
        length, whole = self._extent(pos, chunk)
        fd, done = self._fd, self._done
        self._ahead = (pos, chunk, whole)
        self._thread = Background(lambda: done.append(os.pread(fd, length, pos)))

    def _extent(self, pos: int, chunk: int) -> tuple[int, int | None]:
        size = min(chunk, self._stop - pos)
        whole = None
        if self._tail_framed and pos + size < self._stop and chunk < MAX_CHUNK:  # a middle chunk
            whole = _tail_boundary(self._fd, self._format, pos, size)
        return (size if whole is None else whole), whole

    def close(self) -> None:
        """Let a read still running end (its file descriptor is closed next)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._done.clear()


# Formats whose complete_length is the last match of a forward-looking pattern (a line start
# or newline followed by what starts an entry): their answer for a chunk's last 64 KiB is their
# answer for the whole chunk whenever that tail holds an entry start. Not pg-csv: a record
# start there depends on the quotes counted from the chunk's beginning.
TAIL_FRAMED = frozenset({"pg-stderr", "pg-json", "mongo-json", "mongo-legacy"})
_TAIL = 64 * 1024


def _tail_boundary(fd: int, log_format: LogFormat, pos: int, size: int) -> int | None:
    """Length of the whole entries in the `size` bytes from `pos`, read from their tail alone.

    None when its tail holds no entry start: the caller then reads the chunk and asks the
    format (as for every other format). Reading exactly the whole entries spares copying them
    out of a larger read (a fresh 4 MiB, page faults included): the worker processes of a
    1.1 GB all-entries package spent 3.27 s CPU before, 3.07 s after.
    """
    if size <= _TAIL:
        return None
    tail = os.pread(fd, _TAIL, pos + size - _TAIL)
    if len(tail) < _TAIL:
        return None  # the file shrank: the general path reports it
    found = log_format.complete_length(tail)
    return size - _TAIL + found if found > 0 else None


def whole_length(
    log_format: LogFormat, buf: bytes, last: bool, chunk: int, carried: bool = False
) -> int:
    """How much of `buf` is whole entries: all of it at the end of the range or at MAX_CHUNK.

    0 when one entry fills it (read on: it is scanned whole, up to MAX_CHUNK). When no entry
    starts in it at all (a file in another format than the one given, bytes between entries),
    no more of it would end one: its whole lines are taken as they are, bytes the scan passes
    over with a warning, so such a file is read a chunk at a time, not in growing reads.
    `carried`: `buf` begins inside an entry longer than MAX_CHUNK (see scanpool.scan_chunk);
    with no newline in it, it lies inside that entry's line, and all of it is that entry's.
    """
    if last or chunk >= MAX_CHUNK:
        return len(buf)
    whole = log_format.complete_length(buf)
    if whole == 0 and log_format.next_entry(buf, 0) is None:
        # The last line may be the start of an entry cut by the chunk's end: it waits. With no
        # line start in the chunk, no entry starts in it.
        lines = buf.rfind(b"\n") + 1
        return len(buf) if carried and not lines else lines
    return whole
