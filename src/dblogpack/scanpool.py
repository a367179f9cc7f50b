"""Scanning the planned byte ranges of local files in bounded chunks: big ones in a pool of worker
processes (workerpool) that send back spans, counts, partial summaries and their selected bytes
compressed as a gzip member; small ones in this process, a thread compressing what each chunk
selects while the next is scanned. Remote and gzip files are scanned as streams (streamscan),
chunk by chunk as here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import starmap

from dblogpack.chunkreads import Reads, whole_length
from dblogpack.errors import InternalError, SourceError
from dblogpack.members import (
    BackgroundMember,
    CompressedMember,
    SpanList,
    gunzipped,
    gzip_member,
    span_bytes,
)
from dblogpack.model import FormatConfig, LogWarning, Query
from dblogpack.planning import FilePlan, Meter, dialect_of, format_of, vanished_warning
from dblogpack.records import NamedTuple
from dblogpack.summary import SummaryBuilder

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from concurrent.futures import Executor
    from typing import IO, BinaryIO

    from dblogpack.formats.base import LogFormat, ScanResult

# 4 MiB chunks: C-speed scans amortise their call overhead long before that, and each of the
# three processes holds about two chunks, so memory stays well under 100 MB in all.
CHUNK = 4 * 1024 * 1024
# Chunks of an in-process scan whose selected bytes a thread compresses meanwhile: small enough
# that the thread starts early and finishes soon after the scan, big enough to amortise a scan.
THREADED_CHUNK = 2 * 1024 * 1024
# Ranges below this are scanned that way; their compressed member waits in memory (a fifth of
# it, for logs) until the packer copies it. Bigger ones are read back from the file after the scan.
THREADED_MAX = 48 * 1024 * 1024
MAX_WARNINGS = 1000


class Scanned:
    """What scanning one file (or one piece of it) found; spans are absolute file offsets.

    A plain slotted class (pickled back from workers), cheaper to create than a dataclass.
    """

    __slots__ = (
        "bytes_scanned", "compressed", "entries", "first_ts", "last_ts", "member", "raw", "spans",
        "summary", "vanished", "warnings",
    )

    def __init__(self, summary: SummaryBuilder | None = None) -> None:
        self.spans = SpanList()
        self.entries = self.bytes_scanned = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.warnings: list[LogWarning] = []
        self.summary = summary
        # A worker's piece: the file holding its selected bytes as one gzip member (when asked),
        # and the file holding them as they are when they are a small share (see SPARSE_SHARE).
        self.compressed: str | None = None
        self.raw: str | None = None
        # The whole file in the parent: the pieces' gzip members with the bytes' sha256 (or the
        # member a thread compressed while this process scanned).
        self.member: CompressedMember | BackgroundMember | None = None
        # The file was gone when this process came to read the bytes the workers selected (a
        # piece's spans may be only their total, and a file under that name now is another).
        self.vanished = False

    def add(self, other: Scanned) -> None:
        self.spans.extend(other.spans)
        self.entries += other.entries
        self.first_ts = _min(self.first_ts, other.first_ts)
        self.last_ts = _max(self.last_ts, other.last_ts)
        self.bytes_scanned += other.bytes_scanned
        self.warnings.extend(other.warnings[:MAX_WARNINGS])
        if other.summary is not None:
            if self.summary is None:
                self.summary = other.summary
            else:
                self.summary.merge(other.summary)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class _PieceTask(NamedTuple):
    path: str
    name: str
    config: FormatConfig
    query: Query
    start: int
    stop: int
    dialect: str
    # Where the worker writes the selected bytes compressed as one gzip member, and at which
    # level; None: it does not compress.
    piece_dir: str | None = None
    level: int = 1
    # Bytes read at a time; 0: CHUNK. An in-process scan whose selected bytes a thread compresses
    # reads smaller ones, so the thread's work overlaps the scan's from the first chunk on.
    chunk: int = 0


def scans(
    plans: list[FilePlan],
    query: Query,
    pool: Executor | None,
    meter: Meter,
    piece_dir: str | None,
    level: int,
) -> Iterator[Callable[[], Scanned | None]]:
    """Per plan, a function returning its local scan (None for streamed files, scanned later).

    With a pool, every piece of every file is queued at once, so workers scan the next file
    while this process packs the previous one. With `piece_dir`, the workers also compress the
    bytes they select (at gzip `level`) into files there, so compression runs on every core
    while scanning goes on. Small files scanned here are compressed by a thread meanwhile.
    """
    tasks = [
        _PieceTask(
            p.path, p.file.name, p.config, p.query(query), a, b, dialect_of(p.config), piece_dir,
            level,
        )
        for p in plans
        if p.pieces and p.path is not None
        for a, b in p.pieces
    ]
    results: Iterator[Scanned] = iter(())
    if pool is not None and tasks:
        for config in {task.config for task in tasks}:
            format_of(config).prepare(query)  # once here, not in each worker
        results = _worker_results(pool, tasks)
    for plan in plans:
        yield _local_scanner(plan, query, results if pool is not None else None, meter, level)


def _worker_results(pool: Executor, tasks: list[_PieceTask]) -> Iterator[Scanned]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        yield from pool.map(_scan_piece, tasks)
    except BrokenProcessPool as exc:
        raise InternalError(f"a log-scanning worker process died: {exc}") from exc


def _local_scanner(
    plan: FilePlan, query: Query, results: Iterator[Scanned] | None, meter: Meter, level: int
) -> Callable[[], Scanned | None]:
    def scanned() -> Scanned | None:
        if plan.range is None or plan.streamed or plan.path is None:
            return None
        if results is not None and plan.pieces:
            return _gathered(plan, results, meter)
        scan = plan.range
        name = plan.file.name
        threaded = scan.size < THREADED_MAX
        task = _PieceTask(
            plan.path, name, plan.config, plan.query(query), scan.start, scan.stop,
            dialect_of(plan.config),
            chunk=min(THREADED_CHUNK, CHUNK) if threaded else 0,
        )
        return _scan_piece(task, meter.advance, level if threaded else None)

    return scanned


def _gathered(plan: FilePlan, results: Iterator[Scanned], meter: Meter) -> Scanned:
    """A file's pieces as the workers finish them: their gzip members' files kept in order, the
    bytes they hold hashed from the file meanwhile (this process is idle otherwise).

    A file rotated away since its scan gets no member and is marked vanished: the packer then
    reports it as gone.
    """
    assert plan.path is not None
    total, member = Scanned(), CompressedMember()
    # Every piece's reads for its hash go here: a fresh block for each read faults its pages in
    # (see span_bytes).
    buffer = bytearray(CHUNK)
    try:
        file: BinaryIO | None = open(plan.path, "rb", buffering=0)  # closed below
    except FileNotFoundError:
        file = None
    try:
        for _ in plan.pieces:  # every piece is taken, so the next file gets its own
            piece = next(results)
            meter.advance(piece.bytes_scanned)
            if file is not None:
                if piece.compressed is None:
                    raise InternalError(f"a scanning worker compressed nothing of {plan.path}")
                member.add(piece.compressed, _selected_bytes(piece, piece.compressed, file, buffer))
            total.add(piece)
    finally:
        if file is not None:
            file.close()
    if file is not None:  # else no piece was added to the member: it holds no file
        total.member = member
    else:
        total.vanished = True
    return total


# Below this share of a piece selected, its bytes are read back from the copy the worker wrote
# as they are, or, when the worker dropped it (its selection passed this share on the way), by
# decompressing its gzip member, rather than from the file (a read window per few spans, and
# thousands of spans to join: 29-83 ms per 128 MiB piece of the slow and error bench packages,
# against 1-29 ms decompressing). The copy: packing the slow mongo-json-1g.log, the parent spent
# 0.40 s user + 0.22 s sys (44k page faults on fresh output blocks) decompressing and hashing,
# 0.26 + 0.10 reading the copy and hashing; the workers' writes cost them 0.05-0.1 s sys.
SPARSE_SHARE = 0.25
# A worker's piece keeps at most this many spans as its scan made them (~120 bytes each): see
# _CompressedPiece.
WAITING_SPANS = 1 << 16


def _selected_bytes(
    piece: Scanned, compressed: str, file: BinaryIO, buffer: bytearray
) -> Iterator[bytes | memoryview]:
    """The bytes a piece selected, in order, for the member's hash (each piece valid until the
    next is asked for)."""
    if piece.raw is not None:
        return _raw_bytes(piece.raw, buffer)
    if piece.spans.total() < SPARSE_SHARE * piece.bytes_scanned:
        return gunzipped(compressed)
    return span_bytes(file.fileno(), piece.spans, CHUNK, buffer)


def _raw_bytes(path: str, buffer: bytearray) -> Iterator[memoryview]:
    """The bytes of a worker's copy of its selection, read into `buffer` a block at a time; the
    copy is removed once read."""
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as raw:
            while size := raw.readinto(buffer):
                yield view[:size]
    finally:
        os.unlink(path)


def _scan_piece(
    task: _PieceTask, on_chunk: Callable[[int], None] | None = None, level: int | None = None
) -> Scanned:
    """Scan bytes [start, stop) of a local file in chunks; runs in worker processes too.

    `on_chunk` hears the bytes of each chunk scanned (in-process scans report progress). With a
    gzip `level`, a thread compresses and hashes each chunk's selected bytes while the next one
    is scanned: the result's `member` (what a pool's pieces give too, through files).
    """
    log_format = format_of(task.config)
    scanned = Scanned(summary=SummaryBuilder(task.dialect) if task.query.details else None)
    try:
        fd = os.open(task.path, os.O_RDONLY)
    except FileNotFoundError:
        scanned.warnings.append(vanished_warning(task.name, task.start))
        return scanned
    except OSError as exc:
        raise SourceError(f"cannot open {task.path}: {exc.strerror}") from exc
    reads = Reads(fd, log_format, task.stop)
    piece: _Piece | None = None
    try:
        if task.piece_dir is not None:
            piece = _CompressedPiece(task.piece_dir, task.level)
        elif level is not None:
            reads.ahead(task.start, task.chunk or CHUNK)  # read while ISA-L loads
            piece = _ThreadPiece(level, task.stop - task.start)
        _scan_fd(reads, task, log_format, scanned, on_chunk, piece)
        if piece is not None:
            piece.finish(scanned)
    finally:
        reads.close()
        os.close(fd)
        if piece is not None:
            piece.close()
    return scanned


class _CompressedPiece:
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

    def finish(self, scanned: Scanned) -> None:
        """End the gzip member; `scanned.compressed` names its file, `scanned.raw` the copy, and
        `scanned.spans` holds the spans (only their total with a copy)."""
        self._file.write(self._compress(None))
        scanned.compressed = self._file.name
        if self._raw is not None:
            self._raw.close()
            scanned.raw = self._raw.name
            self._spans.close()
            self._spans = SpanList.total_only(self._selected)
        scanned.spans = self._spans

    def _drop_raw(self) -> None:
        assert self._raw is not None
        self._raw.close()
        os.unlink(self._raw.name)
        self._raw = None

    def close(self) -> None:
        self._file.close()
        if self._raw is not None:
            self._raw.close()


class _ThreadPiece:
    """The selected bytes of an in-process scan (at most `size`), compressed and hashed by
    threads of this process while the scan goes on (see BackgroundMember)."""

    def __init__(self, level: int, size: int) -> None:
        self._member = BackgroundMember(level, size)

    def add(self, buf: bytes, spans: list[tuple[int, int]]) -> None:
        if spans:
            self._member.add(selected(buf, spans))

    def finish(self, scanned: Scanned) -> None:
        """End the gzip member; `scanned.member` holds it (closed by whoever packs it)."""
        self._member.wait()
        scanned.member = self._member

    def close(self) -> None:
        # The thread's failure is raised by finish(); here the scan may be leaving with its own
        # error, which is the one to report.
        self._member.join()


_Piece = _CompressedPiece | _ThreadPiece


def _scan_fd(
    reads: Reads,
    task: _PieceTask,
    log_format: LogFormat,
    scanned: Scanned,
    on_chunk: Callable[[int], None] | None,
    piece: _Piece | None,
) -> None:
    pos, chunk = task.start, task.chunk or CHUNK
    while pos < task.stop:
        buf, whole = reads.read(pos, chunk)
        if whole is None or len(buf) != whole:
            if not buf:
                scanned.warnings.append(
                    LogWarning(task.name, pos, "truncated", "the file shrank while it was read")
                )
                break
            whole = whole_length(log_format, buf, pos + len(buf) >= task.stop, chunk)
            if whole == 0:
                chunk *= 2  # one entry longer than the chunk: read more of it at once
                continue
        # The unfinished tail is not carried: the next read starts where it begins.
        whole_entries = buf if whole == len(buf) else buf[:whole]
        del buf  # one copy of the chunk in memory while it is scanned
        chunk = task.chunk or CHUNK
        if isinstance(piece, _ThreadPiece) and pos + whole < task.stop:
            reads.ahead(pos + whole, chunk)  # the next chunk read while this one is scanned
        found = log_format.scan(whole_entries, task.query, task.name, pos)
        if isinstance(piece, _CompressedPiece):
            piece.add(whole_entries, found.spans, pos)  # it keeps the spans the parent needs
            add_tallies(scanned, found)
        else:
            if piece is not None:
                piece.add(whole_entries, found.spans)
            add_found(scanned, found, pos)
        pos += whole
        scanned.bytes_scanned += whole
        if on_chunk is not None:
            on_chunk(whole)


def selected(buf: bytes, spans: list[tuple[int, int]]) -> bytes | memoryview:
    """The bytes of `spans` of `buf`: a view for one span (an all-entries chunk), else joined
    in one C-level pass (a slow scan's chunk selects thousands of short spans)."""
    if len(spans) == 1:
        start, end = spans[0]
        return memoryview(buf)[start:end]
    # Slices of the bytes (short copies) mapped in C: no view object or Python frame per span.
    return b"".join(map(buf.__getitem__, starmap(slice, spans)))


def add_found(scanned: Scanned, found: ScanResult, base: int) -> None:
    """Add what the scan of one chunk found (its spans relative to the chunk at `base`)."""
    scanned.spans.append_all(found.spans, base)
    add_tallies(scanned, found)


def add_tallies(scanned: Scanned, found: ScanResult) -> None:
    """Add what the scan of one chunk found but its spans: counts, times, warnings, groups."""
    scanned.entries += found.entries
    scanned.first_ts = _min(scanned.first_ts, found.first_ts)
    scanned.last_ts = _max(scanned.last_ts, found.last_ts)
    if len(scanned.warnings) < MAX_WARNINGS:
        scanned.warnings.extend(found.warnings)
    if scanned.summary is not None:
        for group in found.details:
            scanned.summary.add_group(group)
