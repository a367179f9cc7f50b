"""Planning a package: which files, in which format, which byte range of each (the selector's
bisection), cut into worker pieces when big; and the progress meter over the planned bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import chain, pairwise

from dblogpack import formats
from dblogpack.errors import FormatError, SourceError
from dblogpack.model import (
    FormatConfig,
    LogFile,
    LogKind,
    LogWarning,
    PackageResult,
    PackageSpec,
    Query,
)
from dblogpack.selector import (
    Framing,
    ScanRange,
    entry_at_or_after,
    file_edges,
    may_overlap,
    plan_range,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.base import LogFormat
    from dblogpack.sources.base import LogSource

HEAD = 64 * 1024
PIECE = 64 * 1024 * 1024  # a worker task: big enough to amortise, small enough to balance
QUARTERS = 4  # the last piece of each worker is cut in this many (see _split)
PARALLEL_MIN = 48 * 1024 * 1024  # below this, a process pool costs more than it saves

Progress = Callable[[float], None]


class FilePlan:
    """One file's plan: its format, the range to scan and its worker pieces.

    A plain slotted class, not a dataclass: cheaper to create at every `pack` start.
    """

    __slots__ = ("config", "file", "path", "pieces", "range")

    def __init__(self, file: LogFile, config: FormatConfig, path: str | None = None) -> None:
        self.file, self.config = file, config
        self.range: ScanRange | None = None  # None: nothing to scan (empty, or outside the window)
        self.path = path  # local path: read with os.pread, in worker processes if big
        self.pieces: list[tuple[int, int]] = []

    @property
    def cost(self) -> int:
        if self.range is None:
            return 0
        return self.range.size

    @property
    def streamed(self) -> bool:
        return self.file.compressed or self.path is None

    def query(self, query: Query) -> Query:
        """`query` as this file is scanned: unordered when planning found its times going back."""
        warning = None if self.range is None else self.range.warning
        disordered = warning is not None and warning.kind == "disorder"
        return query._replace(ordered=False) if disordered else query


def wants_details(spec: PackageSpec) -> bool:
    # Summaries describe slow and error packages; an all-entries package needs no per-entry parse.
    return spec.log_type is not LogKind.ALL


def chosen_files(source: LogSource, spec: PackageSpec, result: PackageResult) -> list[LogFile]:
    files = source.list_files()
    if spec.files is None:
        return files
    by_name = {f.name: f for f in files}
    for name in spec.files:
        if name not in by_name:
            result.warnings.append(LogWarning(name, 0, "vanished", "the file is no longer listed"))
    wanted = set(spec.files)
    return [f for f in files if f.name in wanted]


def reader(source: LogSource, name: str, path: str | None) -> Callable[[int, int], bytes]:
    if path is None:
        return lambda offset, size: source.read(name, offset, size)
    return lambda offset, size: _pread(path, offset, size)


class FileReads:
    """A file's reads for planning (head, edges, bisection probes), as `reader` reads it, but a
    local file through one descriptor opened at the first read: opening it for each of a
    bisection's ~40 probes cost ~0.6 ms of every pack start. A context manager: closed at exit."""

    __slots__ = ("_fd", "_path", "_remote")

    def __init__(self, source: LogSource, name: str, path: str | None) -> None:
        self._path, self._fd = path, -1
        self._remote = reader(source, name, path) if path is None else None

    def __call__(self, offset: int, size: int) -> bytes:
        if self._remote is not None:
            return self._remote(offset, size)
        assert self._path is not None  # local, as there is no remote reader
        try:
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_RDONLY)
            return os.pread(self._fd, size, offset)
        except OSError as exc:
            raise SourceError(f"cannot read {self._path}: {exc.strerror}") from exc

    def __enter__(self) -> FileReads:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _pread(path: str, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), size, offset)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc


def plan_file(
    source: LogSource,
    file: LogFile,
    fmt: FormatConfig,
    query: Query,
    result: PackageResult,
    workers: int = 1,
) -> FilePlan:
    """Where to read `file` for `query`, cut into pieces for `workers` processes when big."""
    path = source.local_path(file.name)
    plan = FilePlan(file, fmt, path=path)
    if file.size == 0:
        return plan
    try:
        _plan_range(plan, source, fmt, query, result, workers)
    except SourceError:
        if not vanished(source, file.name):
            raise
        result.warnings.append(vanished_warning(file.name, 0))
        plan.range = None
    return plan


def vanished(source: LogSource, name: str) -> bool:
    """Whether a file that failed to read is simply gone (rotated away) rather than unreadable."""
    return all(f.name != name for f in source.list_files())


def vanished_warning(name: str, offset: int) -> LogWarning:
    return LogWarning(name, offset, "vanished", "the file disappeared while it was read")


def _plan_range(
    plan: FilePlan,
    source: LogSource,
    fmt: FormatConfig,
    query: Query,
    result: PackageResult,
    workers: int,
) -> None:
    with FileReads(source, plan.file.name, plan.path) as read:
        _plan_read_range(plan, read, fmt, query, result, workers)


def _plan_read_range(
    plan: FilePlan,
    read: Callable[[int, int], bytes],
    fmt: FormatConfig,
    query: Query,
    result: PackageResult,
    workers: int,
) -> None:
    file, path = plan.file, plan.path
    head = file_head(read, file)
    if head is None:
        detail = "not a valid gzip file; it was skipped"
        result.warnings.append(LogWarning(file.name, 0, "corrupt", detail))
        return
    plan.config = detected(head, fmt, file.name)
    framing = _framing(format_of(plan.config))
    if file.compressed:
        first = framing.next_entry(head, 0)
        if may_overlap(query.window, first[1] if first else None, None):
            plan.range = ScanRange(0, file.size)
        return
    edges = file_edges(read, file.size, framing, head=head)
    if not may_overlap(query.window, *edges):
        return
    plan.range = plan_range(file.name, read, file.size, framing, query.window, edges)
    if plan.range.warning is not None:
        result.warnings.append(plan.range.warning)
    if path is not None and plan.range.size >= PARALLEL_MIN:
        plan.pieces = _split(read, file.size, plan.range, framing, workers)


def detected(head: bytes, fmt: FormatConfig, name: str) -> FormatConfig:
    """The file's format: "auto" detected, a pg-stderr without prefix given its prefix."""
    try:
        return formats.detect(head, fmt)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc.message}") from exc


def _framing(log_format: LogFormat) -> Framing:
    return Framing(log_format.next_entry, log_format.last_timestamp)


_BUILT: dict[FormatConfig, LogFormat] = {}


def format_of(config: FormatConfig) -> LogFormat:
    """One format object per configuration and process (worker processes rebuild their own)."""
    built = _BUILT.get(config)
    if built is None:
        built = _BUILT[config] = formats.build(config)
    return built


def _split(
    read: Callable[[int, int], bytes], size: int, scan: ScanRange, framing: Framing, workers: int
) -> list[tuple[int, int]]:
    """Cut a range into worker pieces at entry boundaries, as many for each worker, the last
    one of each cut in quarters.

    Workers take pieces as they finish them, and the one sharing a core with this process
    (which hashes what they select) runs slower: whoever takes the last piece scans it alone
    while the other core idles. With 17 pieces of a 1.1 GB file on 2 workers that was ~0.2 s;
    with 18 equal ones still ~0.1 s (a slow pg package: one worker took 10 pieces, the other 8,
    and scanned the last alone, 1,251 -> 1,360 ms). Quarter pieces at the end bound it by a
    quarter piece. A cut whose probe meets no entry start (within Margins.probe_max) is left
    out: the piece before it runs on into the next.
    """
    workers = max(1, workers)
    count = max(2, -(-scan.size // PIECE))
    count = -(-count // workers) * workers
    quarters = count * QUARTERS
    # Cut points counted in quarter pieces: each whole piece's end, then every quarter of the
    # last `workers` pieces.
    quartered = (count - workers) * QUARTERS
    points = chain(range(QUARTERS, quartered, QUARTERS), range(max(quartered, 1), quarters))
    cuts = [scan.start]
    for i in points:
        at = scan.start + scan.size * i // quarters
        found = entry_at_or_after(read, size, at, framing, 16384)
        if found is not None and cuts[-1] < found[0] < scan.stop:
            cuts.append(found[0])
    cuts.append(scan.stop)
    return list(pairwise(cuts))


def file_head(read: Callable[[int, int], bytes], file: LogFile) -> bytes | None:
    """The first bytes of a file, decompressed for a .gz; None when a .gz is not gzip at all."""
    return gzip_head(read, file) if file.compressed else read(0, HEAD)


def gzip_head(read: Callable[[int, int], bytes], file: LogFile) -> bytes | None:
    """The first decompressed bytes of a gzip file; None when it is not gzip at all."""
    from isal import isal_zlib

    decompressor = isal_zlib.decompressobj(wbits=31)
    try:
        return decompressor.decompress(read(0, HEAD), HEAD)
    except gzip_error():
        return None


def gzip_error() -> type[Exception]:
    from typing import cast  # imported here, as isal: only gzip files need either

    from isal import isal_zlib

    # The stubs declare `error` as an instance; at run time it is the exception class.
    return cast("type[Exception]", isal_zlib.error)


def dialect(plans: list[FilePlan], fmt: FormatConfig) -> str:
    configs = [p.config for p in plans if p.config.name != "auto"] or [fmt]
    return dialect_of(configs[0])


def dialect_of(config: FormatConfig) -> str:
    return "mongo" if config.name.startswith("mongo") else "sql"


def wants_pool(plans: list[FilePlan], workers: int) -> bool:
    """Whether worker processes pay off: enough bytes of big local files to scan."""
    return workers > 1 and sum(p.cost for p in plans if p.pieces) >= PARALLEL_MIN


class Meter:
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
