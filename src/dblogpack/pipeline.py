"""One package, start to finish: list files, detect formats, find each file's range (selector), scan
it in bounded chunks (in worker processes for big local files), pack the selected bytes (packer).
The stages in order, no backend choices: the caller hands in the source and the output file.

Memory stays bounded: chunks of CHUNK bytes, span lists spilled to disk past a bound, selected bytes
of remote or gzip files spooled to a temporary file (the tar header needs a member's size first).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from dblogpack import formats
from dblogpack.errors import FormatError, InternalError, SourceError
from dblogpack.model import (
    FileResult,
    FormatConfig,
    LogFile,
    LogKind,
    LogWarning,
    PackageResult,
    PackageSpec,
    Query,
)
from dblogpack.packer import SpanList, TarGzWriter, json_bytes, manifest, span_bytes
from dblogpack.selector import (
    Framing,
    Margins,
    ScanRange,
    entry_at_or_after,
    file_edges,
    may_overlap,
    plan_range,
)
from dblogpack.summary import SummaryBuilder, render_text

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from dblogpack.formats.base import LogFormat
    from dblogpack.sources.base import LogSource

# 4 MiB chunks: C-speed scans amortise their call overhead long before that, and each of the
# three processes holds about two chunks, so memory stays well under 100 MB in all.
CHUNK = 4 * 1024 * 1024
HEAD = 64 * 1024
PIECE = 64 * 1024 * 1024  # a worker task: big enough to amortise, small enough to balance
PARALLEL_MIN = 48 * 1024 * 1024  # below this, a process pool costs more than it saves
# A chunk grows to hold one long entry, up to this; past it, the bytes are scanned as they are
# (a garbage file without entry starts must not be read into memory whole).
MAX_CHUNK = 64 * 1024 * 1024
MAX_WARNINGS = 1000
MARGINS = Margins()

Progress = Callable[[float], None]


def run(
    spec: PackageSpec,
    source: LogSource,
    fmt: FormatConfig,
    out: BinaryIO,
    *,
    progress: Progress | None = None,
    workers: int = 2,
    compresslevel: int = 1,
) -> PackageResult:
    """Write the package `spec` describes to `out` as a .tar.gz; returns what it holds.

    `fmt` is the node's configured format ("auto": detected per file from its head).
    `workers` processes scan big local files; compression uses as many threads.
    """
    result = PackageResult()
    query = Query(spec.window, spec.log_type, spec.min_duration_ms, details=_wants_details(spec))
    plans = [_plan(source, f, fmt, query, result) for f in _chosen_files(source, spec, result)]
    total = sum(p.cost for p in plans) or 1
    meter = _Meter(total, progress)
    pool = _pool(workers) if workers > 1 and _parallel_bytes(plans) >= PARALLEL_MIN else None
    summary = SummaryBuilder(_dialect(plans, fmt))
    try:
        scans = _scans(plans, query, pool, meter)
        with TarGzWriter(out, compresslevel=compresslevel, threads=_threads(workers, total)) as tar:
            packing = _Packing(tar, source, query, result, summary, meter)
            for plan, scanned in zip(plans, scans, strict=True):
                result.files.append(packing.file(plan, scanned()))
                meter.reach_file_end(plan.cost)
            _add_summary(tar, spec, summary, result.entries)
            tar.add_bytes("manifest.json", json_bytes(manifest(spec, result)))
            result.size, result.sha256 = tar.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    meter.done()
    return result


def detect_kind(source: LogSource, fmt: FormatConfig) -> str:
    """"sql" or "mongo": which database wrote the source's logs (from the first non-empty file)."""
    if fmt.name == "auto":
        for file in source.list_files():
            if file.size:
                read = _reader(source, file.name, source.local_path(file.name))
                head = _gzip_head(read, file) if file.compressed else read(0, HEAD)
                if head:
                    return _dialect_of(_detected(head, fmt, file.name))
    return _dialect_of(fmt)


# ---- planning: which files, which format, which byte range -------------------------------------


@dataclass(slots=True)
class _FilePlan:
    file: LogFile
    config: FormatConfig
    range: ScanRange | None = None  # None: nothing to scan (empty, or outside the window)
    path: str | None = None  # local path: read with os.pread, in worker processes if big
    pieces: list[tuple[int, int]] = field(default_factory=list)

    @property
    def cost(self) -> int:
        if self.range is None:
            return 0
        return self.range.size

    @property
    def streamed(self) -> bool:
        return self.file.compressed or self.path is None


def _wants_details(spec: PackageSpec) -> bool:
    # Summaries describe slow and error packages; an all-entries package needs no per-entry parse.
    return spec.log_type is not LogKind.ALL


def _chosen_files(source: LogSource, spec: PackageSpec, result: PackageResult) -> list[LogFile]:
    files = source.list_files()
    if spec.files is None:
        return files
    by_name = {f.name: f for f in files}
    for name in spec.files:
        if name not in by_name:
            result.warnings.append(LogWarning(name, 0, "vanished", "the file is no longer listed"))
    wanted = set(spec.files)
    return [f for f in files if f.name in wanted]


def _reader(source: LogSource, name: str, path: str | None) -> Callable[[int, int], bytes]:
    if path is None:
        return lambda offset, size: source.read(name, offset, size)
    return lambda offset, size: _pread(path, offset, size)


def _pread(path: str, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), size, offset)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc


def _plan(
    source: LogSource, file: LogFile, fmt: FormatConfig, query: Query, result: PackageResult
) -> _FilePlan:
    path = source.local_path(file.name)
    plan = _FilePlan(file, fmt, path=path)
    if file.size == 0:
        return plan
    try:
        _plan_range(plan, source, fmt, query, result)
    except SourceError:
        if not _vanished(source, file.name):
            raise
        result.warnings.append(_vanished_warning(file.name, 0))
        plan.range = None
    return plan


def _vanished(source: LogSource, name: str) -> bool:
    """Whether a file that failed to read is simply gone (rotated away) rather than unreadable."""
    return all(f.name != name for f in source.list_files())


def _vanished_warning(name: str, offset: int) -> LogWarning:
    return LogWarning(name, offset, "vanished", "the file disappeared while it was read")


def _plan_range(
    plan: _FilePlan, source: LogSource, fmt: FormatConfig, query: Query, result: PackageResult
) -> None:
    file, path = plan.file, plan.path
    read = _reader(source, file.name, path)
    head = _gzip_head(read, file) if file.compressed else read(0, HEAD)
    if head is None:
        detail = "not a valid gzip file; it was skipped"
        result.warnings.append(LogWarning(file.name, 0, "corrupt", detail))
        return
    plan.config = _detected(head, fmt, file.name)
    framing = _framing(_format(plan.config))
    if file.compressed:
        first = framing.next_entry(head, 0)
        if may_overlap(query.window, first[1] if first else None, None, MARGINS):
            plan.range = ScanRange(0, file.size)
        return
    edges = file_edges(read, file.size, framing, MARGINS, head)
    if not may_overlap(query.window, *edges, MARGINS):
        return
    plan.range = plan_range(file.name, read, file.size, framing, query.window, edges, MARGINS)
    if plan.range.warning is not None:
        result.warnings.append(plan.range.warning)
    if path is not None and plan.range.size >= PARALLEL_MIN:
        plan.pieces = _split(read, file.size, plan.range, framing)


def _detected(head: bytes, fmt: FormatConfig, name: str) -> FormatConfig:
    """The file's format: "auto" detected, a pg-stderr without prefix given its prefix."""
    try:
        return formats.detect(head, fmt)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc.message}") from exc


def _framing(log_format: LogFormat) -> Framing:
    return Framing(log_format.next_entry, log_format.last_timestamp)


_BUILT: dict[FormatConfig, LogFormat] = {}


def _format(config: FormatConfig) -> LogFormat:
    """One format object per configuration and process (worker processes rebuild their own)."""
    built = _BUILT.get(config)
    if built is None:
        built = _BUILT[config] = formats.build(config)
    return built


def _split(
    read: Callable[[int, int], bytes], size: int, scan: ScanRange, framing: Framing
) -> list[tuple[int, int]]:
    """Cut a range into worker pieces at entry boundaries."""
    count = max(2, -(-scan.size // PIECE))
    cuts = [scan.start]
    for i in range(1, count):
        found = entry_at_or_after(read, size, scan.start + scan.size * i // count, framing, 16384)
        if found is not None and cuts[-1] < found[0] < scan.stop:
            cuts.append(found[0])
    cuts.append(scan.stop)
    return list(pairwise(cuts))


def _gzip_head(read: Callable[[int, int], bytes], file: LogFile) -> bytes | None:
    """The first decompressed bytes of a gzip file; None when it is not gzip at all."""
    from isal import isal_zlib

    decompressor = isal_zlib.decompressobj(wbits=31)
    try:
        return decompressor.decompress(read(0, HEAD), HEAD)
    except _gzip_error():
        return None


def _gzip_error() -> type[Exception]:
    from isal import isal_zlib

    # The stubs declare `error` as an instance; at run time it is the exception class.
    return cast("type[Exception]", isal_zlib.error)


def _dialect(plans: list[_FilePlan], fmt: FormatConfig) -> str:
    configs = [p.config for p in plans if p.config.name != "auto"] or [fmt]
    return _dialect_of(configs[0])


def _dialect_of(config: FormatConfig) -> str:
    return "mongo" if config.name.startswith("mongo") else "sql"


def _parallel_bytes(plans: list[_FilePlan]) -> int:
    return sum(p.cost for p in plans if p.pieces)


def _threads(workers: int, total: int) -> int:
    # Thread start-up is cheap, but a small package gains nothing from a second compressor.
    return max(1, workers) if total >= 8 * 1024 * 1024 else 1


def _pool(workers: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is fastest, and safe while this process runs one thread (the CLI); a threaded
    # server uses forkserver so no child inherits another thread's held locks.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    # (forkserver re-imports the main module in its children: a script must guard its entry
    # point with `if __name__ == "__main__"`, as console scripts and pytest do.) A worker that
    # dies breaks the executor with an error instead of hanging the package.
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # The server process imports the engine once; each worker forked from it inherits it.
        context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(workers, mp_context=context)


class _Meter:
    """Progress 0-100 by bytes scanned; 100 only once the package is complete."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress = total, progress
        self.done_bytes = self.files_bytes = 0

    def advance(self, size: int) -> None:
        self.done_bytes += size
        if self.progress is not None:
            self.progress(min(99.0, 100.0 * self.done_bytes / self.total))

    def reach_file_end(self, cost: int) -> None:
        """A file is packed: count exactly its planned bytes, whatever its chunks reported."""
        self.files_bytes += cost
        self.done_bytes = self.files_bytes - cost
        self.advance(cost)

    def done(self) -> None:
        if self.progress is not None:
            self.progress(100.0)


# ---- scanning ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Scanned:
    """What scanning one file (or one piece of it) found; spans are absolute file offsets."""

    spans: SpanList = field(default_factory=SpanList)
    entries: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    bytes_scanned: int = 0
    warnings: list[LogWarning] = field(default_factory=list)
    summary: SummaryBuilder | None = None

    def add(self, other: _Scanned) -> None:
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


@dataclass(frozen=True, slots=True)
class _PieceTask:
    path: str
    name: str
    config: FormatConfig
    query: Query
    start: int
    stop: int
    dialect: str


def _scans(
    plans: list[_FilePlan], query: Query, pool: Executor | None, meter: _Meter
) -> Iterator[Callable[[], _Scanned | None]]:
    """Per plan, a function returning its local scan (None for streamed files, scanned later).

    With a pool, every piece of every file is queued at once, so workers scan the next file
    while this process packs the previous one.
    """
    tasks = [
        _PieceTask(p.path, p.file.name, p.config, query, a, b, _dialect([p], p.config))
        for p in plans
        if p.pieces and p.path is not None
        for a, b in p.pieces
    ]
    results: Iterator[_Scanned] = iter(())
    if pool is not None and tasks:
        results = _worker_results(pool, tasks)
    for plan in plans:
        yield _local_scanner(plan, query, results if pool is not None else None, meter)


def _worker_results(pool: Executor, tasks: list[_PieceTask]) -> Iterator[_Scanned]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        yield from pool.map(_scan_piece, tasks)
    except BrokenProcessPool as exc:
        raise InternalError(f"a log-scanning worker process died: {exc}") from exc


def _local_scanner(
    plan: _FilePlan, query: Query, results: Iterator[_Scanned] | None, meter: _Meter
) -> Callable[[], _Scanned | None]:
    def scanned() -> _Scanned | None:
        if plan.range is None or plan.streamed or plan.path is None:
            return None
        dialect = _dialect([plan], plan.config)
        if results is not None and plan.pieces:
            total = _Scanned()
            for _ in plan.pieces:
                piece = next(results)
                meter.advance(piece.bytes_scanned)
                total.add(piece)
            return total
        scan = plan.range
        name = plan.file.name
        task = _PieceTask(plan.path, name, plan.config, query, scan.start, scan.stop, dialect)
        return _scan_piece(task, meter.advance)

    return scanned


def _scan_piece(task: _PieceTask, on_chunk: Callable[[int], None] | None = None) -> _Scanned:
    """Scan bytes [start, stop) of a local file in chunks; runs in worker processes too.

    `on_chunk` hears the bytes of each chunk scanned (in-process scans report progress).
    """
    log_format = _format(task.config)
    scanned = _Scanned(summary=SummaryBuilder(task.dialect) if task.query.details else None)
    try:
        fd = os.open(task.path, os.O_RDONLY)
    except FileNotFoundError:
        scanned.warnings.append(_vanished_warning(task.name, task.start))
        return scanned
    except OSError as exc:
        raise SourceError(f"cannot open {task.path}: {exc.strerror}") from exc
    try:
        _scan_fd(fd, task, log_format, scanned, on_chunk)
    finally:
        os.close(fd)
    return scanned


def _scan_fd(
    fd: int,
    task: _PieceTask,
    log_format: LogFormat,
    scanned: _Scanned,
    on_chunk: Callable[[int], None] | None,
) -> None:
    pos, chunk = task.start, CHUNK
    while pos < task.stop:
        buf = os.pread(fd, min(chunk, task.stop - pos), pos)
        if not buf:
            scanned.warnings.append(
                LogWarning(task.name, pos, "truncated", "the file shrank while it was read")
            )
            return
        last = pos + len(buf) >= task.stop
        whole = _whole_length(log_format, buf, last, chunk)
        if whole == 0:
            chunk *= 2  # one entry longer than the chunk: read more of it at once
            continue
        # The unfinished tail is not carried: the next read starts where it begins.
        whole_entries = buf if whole == len(buf) else buf[:whole]
        del buf  # one copy of the chunk in memory while it is scanned
        _take(scanned, log_format.scan(whole_entries, task.query, task.name, pos), pos)
        pos += whole
        scanned.bytes_scanned += whole
        if on_chunk is not None:
            on_chunk(whole)
        chunk = CHUNK


def _whole_length(log_format: LogFormat, buf: bytes, last: bool, chunk: int) -> int:
    """How much of `buf` is whole entries: all of it at the end of the range or at MAX_CHUNK."""
    if last or chunk >= MAX_CHUNK:
        return len(buf)
    return log_format.complete_length(buf)


def _take(scanned: _Scanned, found: formats.ScanResult, base: int) -> None:
    for start, end in found.spans:
        scanned.spans.append(base + start, base + end)
    scanned.entries += found.entries
    scanned.first_ts = _min(scanned.first_ts, found.first_ts)
    scanned.last_ts = _max(scanned.last_ts, found.last_ts)
    if len(scanned.warnings) < MAX_WARNINGS:
        scanned.warnings.extend(found.warnings)
    if scanned.summary is not None:
        for group in found.details:
            scanned.summary.add_group(group)


# ---- streamed files (remote sources, gzip): selected bytes spooled, then packed ----------------


def _stream_scan(
    plan: _FilePlan, source: LogSource, query: Query, spool: IO[bytes], meter: _Meter
) -> _Scanned:
    """Scan a remote or gzip file as a stream, copying the selected bytes to `spool`."""
    assert plan.range is not None
    log_format = _format(plan.config)
    dialect = _dialect([plan], plan.config)
    scanned = _Scanned(summary=SummaryBuilder(dialect) if query.details else None)
    read = _reader(source, plan.file.name, plan.path)
    chunks = (
        decompressed_chunks(read, plan.file, CHUNK, scanned.warnings)
        if plan.file.compressed
        else raw_chunks(read, plan.range.start, plan.range.stop, CHUNK)
    )
    base = 0 if plan.file.compressed else plan.range.start
    tail = b""
    past_end = False
    for chunk, last in chunks:
        buf = tail + chunk if tail else chunk
        whole = _whole_length(log_format, buf, last, len(buf))
        tail = buf[whole:]
        if whole == 0:
            continue  # one long entry so far: wait for more of it
        found = log_format.scan(buf[:whole], query, plan.file.name, base)
        for start, end in found.spans:
            spool.write(memoryview(buf)[start:end])
        _take(scanned, found, base)
        scanned.bytes_scanned += whole
        base += whole
        if not plan.file.compressed:
            meter.advance(whole)  # gzip files count as a whole, their sizes are compressed ones
        if past_end:
            break  # a whole chunk past the window's end: the disorder margin is covered
        past_end = found.end_offset is not None
    return scanned


def raw_chunks(
    read: Callable[[int, int], bytes], start: int, stop: int, size: int
) -> Iterator[tuple[bytes, bool]]:
    """(chunk, is_last) over bytes [start, stop) of a file, read `size` bytes at a time."""
    pos = start
    while pos < stop:
        chunk = read(pos, min(size, stop - pos))
        pos += len(chunk)
        last = pos >= stop or not chunk
        yield chunk, last
        if last:
            return
    yield b"", True


def decompressed_chunks(
    read: Callable[[int, int], bytes], file: LogFile, size: int, warnings: list[LogWarning]
) -> Iterator[tuple[bytes, bool]]:
    """(chunk, is_last) of a gzip file's content (members concatenated), at most `size` each.

    A file that ends mid-stream yields what could be decompressed and a "truncated" warning.
    """
    from isal import isal_zlib

    decompressor = isal_zlib.decompressobj(wbits=31)
    pending = False  # a gzip member has begun and not ended
    pos = 0
    for compressed, _ in raw_chunks(read, 0, file.size, 1024 * 1024):
        pos += len(compressed)
        data = compressed
        while data:
            pending = True
            try:
                out = decompressor.decompress(data, size)
            except _gzip_error() as exc:
                warnings.append(LogWarning(file.name, pos, "corrupt", f"bad gzip data: {exc}"))
                yield b"", True
                return
            data = decompressor.unconsumed_tail
            if decompressor.eof:
                # Concatenated gzip members (as `cat a.gz b.gz` makes) form one stream.
                data = data or decompressor.unused_data
                decompressor = isal_zlib.decompressobj(wbits=31)
                pending = False
            if out:
                yield out, False
    if pending:
        detail = "the gzip stream ends early; the entries before the cut are packed"
        warnings.append(LogWarning(file.name, file.size, "truncated", detail))
    yield b"", True


# ---- packing -----------------------------------------------------------------------------------


def _member_name(file: LogFile) -> str:
    # A .gz file's selected entries are stored decompressed, so the member drops the suffix.
    name = file.name[:-3] if file.compressed else file.name
    return f"logs/{name}"


@dataclass(slots=True)
class _Packing:
    """What packing each file needs, gathered once per package."""

    tar: TarGzWriter
    source: LogSource
    query: Query
    result: PackageResult
    summary: SummaryBuilder
    meter: _Meter

    def file(self, plan: _FilePlan, scanned: _Scanned | None) -> FileResult:
        row = FileResult(name=plan.file.name, format=plan.config.name)
        if plan.range is None:
            return row
        if scanned is None:
            return self._streamed(plan, row)
        assert plan.path is not None  # scanned locally, so it has a path
        size = scanned.spans.total()
        try:
            if scanned.entries and size:
                with open(plan.path, "rb", buffering=0) as f:
                    chunks = span_bytes(f.fileno(), scanned.spans, CHUNK)
                    self._record(row, scanned)
                    self._member(row, plan.file, size, chunks)
            else:
                self._record(row, scanned)
        except FileNotFoundError:
            # Rotated away between scanning and packing: nothing of it is in the package.
            self.result.warnings.append(_vanished_warning(plan.file.name, 0))
        finally:
            scanned.spans.close()
        return row

    def _streamed(self, plan: _FilePlan, row: FileResult) -> FileResult:
        import tempfile

        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            try:
                scanned = _stream_scan(plan, self.source, self.query, spool, self.meter)
            except SourceError:
                if not _vanished(self.source, plan.file.name):
                    raise
                self.result.warnings.append(_vanished_warning(plan.file.name, 0))
                return row
            self._record(row, scanned)
            size = spool.tell()
            if scanned.entries and size:
                spool.seek(0)
                self._member(row, plan.file, size, iter(lambda: spool.read(CHUNK), b""))
        return row

    def _member(
        self, row: FileResult, file: LogFile, size: int, chunks: Iterator[bytes | memoryview]
    ) -> None:
        row.member = _member_name(file)
        row.sha256 = self.tar.add_member(row.member, size, chunks)
        row.bytes_written = size

    def _record(self, row: FileResult, scanned: _Scanned) -> None:
        row.entries = scanned.entries
        row.first_ts, row.last_ts = scanned.first_ts, scanned.last_ts
        row.bytes_scanned = scanned.bytes_scanned
        room = MAX_WARNINGS - len(self.result.warnings)
        self.result.warnings.extend(scanned.warnings[: max(0, room)])
        if scanned.summary is not None:
            self.summary.merge(scanned.summary)


def _add_summary(
    tar: TarGzWriter, spec: PackageSpec, summary: SummaryBuilder, entries: int
) -> None:
    # The package's own count: all-entries packages parse no details, yet have entries.
    document = {"log_type": spec.log_type.value, **summary.to_json(), "entries": entries}
    tar.add_bytes("summary.json", json_bytes(document))
    title = f"dblogpack summary of {spec.name} ({spec.log_type.value} entries)"
    tar.add_bytes("summary.txt", render_text(document, title).encode())
