"""Scanning the planned byte ranges of local files in bounded chunks: big ones in a pool of worker
processes (workerpool) that send back spans, counts, partial summaries and their selected bytes
compressed as a gzip member; small ones in this process, a thread compressing what each chunk
selects while the next is scanned. Remote and gzip files are scanned as streams (streamscan),
chunk by chunk as here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from dblogpack.chunkreads import MAX_CHUNK, Reads, whole_length
from dblogpack.errors import InternalError, SourceError
from dblogpack.members import (
    BackgroundMember,
    CompressedMember,
    GzipPiece,
    HashAhead,
    SpanList,
    gunzipped,
    read_buffer,
    span_bytes,
)
from dblogpack.model import FormatConfig, LogKind, LogWarning, Query
from dblogpack.pieces import SPARSE_SHARE, CompressedPiece, Piece, ThreadPiece
from dblogpack.planning import FilePlan, Meter, dialect_of, format_of, vanished_warning
from dblogpack.records import NamedTuple
from dblogpack.summary import SummaryBuilder

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from concurrent.futures import Executor
    from typing import BinaryIO, Protocol

    from dblogpack.formats.base import LogFormat, ScanResult
    from dblogpack.members import PieceSink, ReadBuffer
    from dblogpack.turns import WriteTarget

    class SpoolFor(Protocol):
        """Where a file's pieces go as they come in: the sink it returns for its plan (None:
        they wait for the member's size), into which their workers may write them (`targets`)."""

        def __call__(self, plan: FilePlan) -> PieceSink | None: ...
        def targets(self, plan: FilePlan) -> list[WriteTarget | None] | None: ...

# 4 MiB chunks: C-speed scans amortise their call overhead long before that, and each of the
# three processes holds about two chunks, so memory stays well under 100 MB in all.
CHUNK = 4 * 1024 * 1024
# Chunks of an in-process scan whose selected bytes a thread compresses meanwhile: small enough
# that the thread starts early and finishes soon after the scan, big enough to amortise a scan.
THREADED_CHUNK = 2 * 1024 * 1024
# Their first chunk: the thread has nothing to compress until it is scanned, so a small one
# starts it sooner (a 1-hour window's pack: main's first 2 MiB kept the thread idle ~5 ms).
THREADED_FIRST_CHUNK = 256 * 1024
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
        # A worker's piece: its selected bytes as one gzip member (when asked), in a file or in
        # the package, and the file holding them as they are when they are a small share (see
        # SPARSE_SHARE).
        self.compressed: GzipPiece | None = None
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
    # Where the worker may write its gzip member straight into the package (see turns).
    target: WriteTarget | None = None


def scans(
    plans: list[FilePlan],
    query: Query,
    pool: Executor | None,
    meter: Meter,
    piece_dir: str | None,
    level: int,
    while_compressing: Callable[[], None] | None = None,
    spool_for: SpoolFor | None = None,
) -> Iterator[Callable[[], Scanned | None]]:
    """Per plan, a function returning its local scan (None for streamed files, scanned later).

    With a pool, every piece of every file is queued at once, so workers scan the next file
    while this process packs the previous one. With `piece_dir`, the workers also compress the
    bytes they select (at gzip `level`) into files there, so compression runs on every core
    while scanning goes on. Small files scanned here are compressed by a thread meanwhile; once
    their scan is over, this thread calls `while_compressing` before it waits for the last of it.
    A file whose pieces `spool_for` gives a sink to sends each one there as it comes in.
    """
    tasks = [
        _PieceTask(
            p.path, p.file.name, p.config, p.query(query), a, b, dialect_of(p.config), piece_dir,
            level, target=target,
        )
        for p in plans
        if p.pieces and p.path is not None
        for (a, b), target in zip(p.pieces, _targets(p, spool_for), strict=True)
    ]
    results: Iterator[Scanned] = iter(())
    if pool is not None and tasks:
        for config in {task.config for task in tasks}:
            format_of(config).prepare(query)  # once here, not in each worker
        results = _worker_results(pool, tasks)
    for plan in plans:
        yield _local_scanner(
            plan, query, results if pool is not None else None, meter, level, while_compressing,
            spool_for,
        )


def _targets(plan: FilePlan, spool_for: SpoolFor | None) -> list[WriteTarget | None]:
    """Where each of a plan's pieces may be written into the package by its worker."""
    if spool_for is not None and (targets := spool_for.targets(plan)) is not None:
        return targets
    return [None] * len(plan.pieces)


def _worker_results(pool: Executor, tasks: list[_PieceTask]) -> Iterator[Scanned]:
    """The workers' results in order; every task is queued now, so a forking pool starts its
    processes here, before any thread of this process (a HashAhead) does."""
    from concurrent.futures.process import BrokenProcessPool

    mapped = pool.map(_scan_piece, tasks)

    def in_order() -> Iterator[Scanned]:
        try:
            yield from mapped
        except BrokenProcessPool as exc:
            raise InternalError(f"a log-scanning worker process died: {exc}") from exc

    return in_order()


def _local_scanner(
    plan: FilePlan,
    query: Query,
    results: Iterator[Scanned] | None,
    meter: Meter,
    level: int,
    while_compressing: Callable[[], None] | None,
    spool_for: SpoolFor | None,
) -> Callable[[], Scanned | None]:
    def scanned() -> Scanned | None:
        if plan.range is None or plan.streamed or plan.path is None:
            return None
        if results is not None and plan.pieces:
            hash_ahead = query.kind is LogKind.ALL
            return _gathered(plan, results, meter, hash_ahead=hash_ahead, spool_for=spool_for)
        scan = plan.range
        name = plan.file.name
        threaded = scan.size < THREADED_MAX
        task = _PieceTask(
            plan.path, name, plan.config, plan.query(query), scan.start, scan.stop,
            dialect_of(plan.config),
            chunk=min(THREADED_CHUNK, CHUNK) if threaded else 0,
        )
        return _scan_piece(task, meter.advance, level if threaded else None, while_compressing)

    return scanned


def _gathered(
    plan: FilePlan,
    results: Iterator[Scanned],
    meter: Meter,
    *,
    hash_ahead: bool = False,
    spool_for: SpoolFor | None = None,
) -> Scanned:
    """A file's pieces as the workers finish them: their gzip members' files kept in order, the
    bytes they hold hashed from the file meanwhile (this process is idle otherwise).

    With `hash_ahead` (all entries: a piece inside the window is selected whole), a thread hashes
    the file from the first piece on without waiting for the workers (HashAhead); each piece
    that then proves whole is only counted, and one that does not is hashed exactly from where
    it starts, after which the thread starts again past it. The thread starts with the workers:
    started once the first piece was in, it hashed that one in this thread first, ~0.1 s of a
    1.1 GB all-entries package, and lagged the last piece by up to ~0.15 s.

    With `spool_for`, the member's pieces go to the sink it gives for this file (once it is
    open) as they come in.

    A file rotated away since its scan gets no member and is marked vanished: the packer then
    reports it as gone.
    """
    assert plan.path is not None
    total = Scanned()
    # Every piece's reads for its hash go here: a fresh block for each read faults its pages in
    # (see span_bytes), and a bytearray's bytes start where the kernel copies slowly to.
    buffer = read_buffer(CHUNK)
    try:
        file: BinaryIO | None = open(plan.path, "rb", buffering=0)  # closed below
    except FileNotFoundError:
        file = None
    spool = spool_for(plan) if spool_for is not None and file is not None else None
    member = CompressedMember(spool)
    ahead: HashAhead | None = None
    if hash_ahead and file is not None and plan.pieces:
        ahead = HashAhead(file.fileno(), member.hash_so_far(), plan.pieces)
    try:
        # Every piece is taken, so the next file gets its own.
        for index in range(len(plan.pieces)):
            piece = next(results)
            meter.advance(piece.bytes_scanned)
            if file is not None:
                pieces = plan.pieces[index:]
                ahead = _add_piece(member, piece, pieces, file, buffer, ahead)
            total.add(piece)
        if ahead is not None:
            member.resume(ahead.result())
            ahead = None
    finally:
        if ahead is not None:
            ahead.close()
        if file is not None:
            file.close()
    if file is not None:  # else no piece was added to the member: it holds no file
        total.member = member
    else:
        total.vanished = True
    return total


def _add_piece(
    member: CompressedMember,
    piece: Scanned,
    pieces: list[tuple[int, int]],
    file: BinaryIO,
    buffer: ReadBuffer,
    ahead: HashAhead | None,
) -> HashAhead | None:
    """Add a worker's piece, the first of `pieces` (this one and those after it), to the member;
    returns the hash ahead going on after it. Without one, the piece is hashed here. With one, a
    piece selected whole was hashed by it; any other is hashed here from its start, and a new
    HashAhead goes on from the next piece."""
    (start, stop), rest = pieces[0], pieces[1:]
    compressed = piece.compressed
    if compressed is None:
        raise InternalError(f"a scanning worker compressed nothing of {file.name}")
    if ahead is None:
        member.add(compressed, _selected_bytes(piece, compressed, file, buffer))
        return None
    if piece.spans.total() == stop - start:
        member.add_hashed(compressed, stop - start)
        return ahead
    member.resume(ahead.hash_before(start))
    member.add(compressed, _selected_bytes(piece, compressed, file, buffer))
    return HashAhead(file.fileno(), member.hash_so_far(), rest) if rest else None


def _selected_bytes(
    piece: Scanned, compressed: GzipPiece, file: BinaryIO, buffer: ReadBuffer
) -> Iterator[bytes | memoryview]:
    """The bytes a piece selected, in order, for the member's hash (each piece valid until the
    next is asked for)."""
    if piece.raw is not None:
        return _raw_bytes(piece.raw, buffer)
    if piece.spans.total() < SPARSE_SHARE * piece.bytes_scanned and compressed.path is not None:
        return gunzipped(compressed.path)
    return span_bytes(file.fileno(), piece.spans, CHUNK, buffer)


def _raw_bytes(path: str, buffer: ReadBuffer) -> Iterator[memoryview]:
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
    task: _PieceTask,
    on_chunk: Callable[[int], None] | None = None,
    level: int | None = None,
    while_compressing: Callable[[], None] | None = None,
) -> Scanned:
    """Scan bytes [start, stop) of a local file in chunks; runs in worker processes too.

    `on_chunk` hears the bytes of each chunk scanned (in-process scans report progress). With a
    gzip `level`, a thread compresses and hashes each chunk's selected bytes while the next one
    is scanned: the result's `member` (what a pool's pieces give too, through files), once
    `while_compressing` has run.
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
    piece: Piece | None = None
    try:
        if task.piece_dir is not None:
            piece = CompressedPiece(task.piece_dir, task.level, task.target)
        elif level is not None:
            reads.ahead(task.start, _first_chunk(task))  # read while ISA-L loads
            piece = ThreadPiece(level, task.stop - task.start)
        _scan_fd(reads, task, log_format, scanned, on_chunk, piece)
        if isinstance(piece, CompressedPiece):
            scanned.compressed, scanned.raw, scanned.spans = piece.finish()
        elif piece is not None:
            if while_compressing is not None:
                while_compressing()
            scanned.member = piece.finish()
    finally:
        reads.close()
        os.close(fd)
        if piece is not None:
            piece.close()
    return scanned


def _scan_fd(
    reads: Reads,
    task: _PieceTask,
    log_format: LogFormat,
    scanned: Scanned,
    on_chunk: Callable[[int], None] | None,
    piece: Piece | None,
) -> None:
    pos, chunk = task.start, _first_chunk(task)
    continuing: bool | None = None  # see scan_chunk
    while pos < task.stop:
        buf, whole = reads.read(pos, chunk)
        if whole is None or len(buf) != whole:
            if not buf:
                scanned.warnings.append(
                    LogWarning(task.name, pos, "truncated", "the file shrank while it was read")
                )
                break
            last = pos + len(buf) >= task.stop
            whole = whole_length(log_format, buf, last, chunk, carried=continuing is not None)
            if whole == 0:
                chunk *= 2  # one entry longer than the chunk: read more of it at once
                del buf  # not alive beside the larger read
                continue
        # The unfinished tail is not carried: the next read starts where it begins.
        whole_entries = buf if whole == len(buf) else buf[:whole]
        del buf  # one copy of the chunk in memory while it is scanned
        read_size, chunk = chunk, task.chunk or CHUNK
        if isinstance(piece, ThreadPiece) and pos + whole < task.stop:
            reads.ahead(pos + whole, chunk)  # the next chunk read while this one is scanned
        cut_inside = read_size >= MAX_CHUNK and pos + whole < task.stop
        found, continuing = scan_chunk(
            log_format, whole_entries, task.query, task.name, pos, continuing, cut_inside
        )
        if isinstance(piece, CompressedPiece):
            piece.add(whole_entries, found.spans, pos)  # it keeps the spans the parent needs
            add_tallies(scanned, found)
        else:
            if piece is not None:
                piece.add(whole_entries, found.spans)
            add_found(scanned, found, pos)
        del whole_entries  # not alive beside the next read
        pos += whole
        scanned.bytes_scanned += whole
        if on_chunk is not None:
            on_chunk(whole)


def scan_chunk(
    log_format: LogFormat,
    buf: bytes,
    query: Query,
    name: str,
    base: int,
    continuing: bool | None,
    cut_inside: bool,
) -> tuple[ScanResult, bool | None]:
    """The scan of a chunk of whole entries at `base` of file `name`, and the `continuing` of
    the chunk after it.

    `continuing`: the chunk begins inside an entry longer than MAX_CHUNK, which the chunk
    before was cut inside of; True when that entry is selected, False when not (None: the chunk
    begins at an entry, or at bytes no entry holds). Its bytes before its first entry start are
    that entry's: kept or not with it, not warned of as bytes of no entry. `cut_inside`: this
    chunk was cut at MAX_CHUNK inside its last entry, which the next one carries on.
    """
    if continuing is None and not cut_inside:
        return log_format.scan(buf, query, name, base), None
    first = log_format.next_entry(buf, 0)
    if continuing is None:
        found = log_format.scan(buf, query, name, base)
    else:
        found = _carried_scan(log_format, buf, query, name, base, continuing, first)
    if first is None:  # no entry starts in it: the next chunk goes on with the same one
        return found, continuing
    if cut_inside:
        return found, bool(found.spans) and found.spans[-1][1] == len(buf)
    return found, None


def _carried_scan(
    log_format: LogFormat,
    buf: bytes,
    query: Query,
    name: str,
    base: int,
    continuing: bool,
    first: tuple[int, float] | None,
) -> ScanResult:
    """scan_chunk's scan of a chunk beginning inside an entry (selected when `continuing`),
    whose first entry start is `first`."""
    lead = len(buf) if first is None else first[0]
    if lead < len(buf):
        found = log_format.scan(buf[lead:], query, name, base + lead)
    else:
        from dblogpack.formats.base import ScanResult

        found = ScanResult()
    found.spans = [(start + lead, end + lead) for start, end in found.spans]
    if found.end_offset is not None:
        found.end_offset += lead
    if continuing and lead:
        if found.spans and found.spans[0][0] == lead:
            found.spans[0] = (0, found.spans[0][1])
        else:
            found.spans.insert(0, (0, lead))
    return found


def _first_chunk(task: _PieceTask) -> int:
    """The bytes of a piece's first read: a small one when a thread compresses the selection."""
    return min(THREADED_FIRST_CHUNK, task.chunk) if task.chunk else CHUNK


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
