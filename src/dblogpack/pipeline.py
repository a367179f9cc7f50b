"""One package, start to finish: plan the files (planning), scan them (scanpool, streamscan),
pack the selected bytes (packer). The stages in order, no backend choices: the caller hands in the
source and the output file.

Memory stays bounded: chunks of CHUNK bytes, span lists spilled to disk past a bound, selected bytes
of remote or gzip files spooled to a temporary file (the tar header needs a member's size first).
"""

from __future__ import annotations

from collections.abc import Iterator

from dblogpack.errors import InternalError, SourceError
from dblogpack.manifest import json_bytes, load_json, manifest
from dblogpack.members import BackgroundMember, CompressedMember, span_bytes
from dblogpack.model import FileResult, FormatConfig, LogFile, PackageResult, PackageSpec, Query
from dblogpack.packer import MemberSpool, TarGzWriter
from dblogpack.planning import (
    FilePlan,
    FileReads,
    Meter,
    Progress,
    chosen_files,
    detected,
    dialect,
    dialect_of,
    file_head,
    plan_file,
    vanished,
    vanished_warning,
    wants_details,
    wants_pool,
)
from dblogpack.scanpool import CHUNK, MAX_WARNINGS, Scanned, scans
from dblogpack.summary import SummaryBuilder, render_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    import tempfile
    from concurrent.futures import Executor
    from typing import BinaryIO

    from dblogpack.sources.base import LogSource
    from dblogpack.turns import PackageTurns, WriteTarget


def run(
    spec: PackageSpec,
    source: LogSource,
    fmt: FormatConfig,
    out: BinaryIO,
    *,
    progress: Progress | None = None,
    workers: int = 2,
    compresslevel: int = 1,
    checksum: bool = True,
) -> PackageResult:
    """Write the package `spec` describes to `out` as a .tar.gz; returns what it holds.

    `fmt` is the node's configured format ("auto": detected per file from its head).
    `workers` processes scan big local files; compression uses as many threads.
    `checksum=False`: the result's `sha256` of the package stays None (not computed).
    """
    result = PackageResult()
    query = Query(spec.window, spec.log_type, spec.min_duration_ms, details=wants_details(spec))
    plans = [
        plan_file(source, f, fmt, query, result, workers)
        for f in chosen_files(source, spec, result)
    ]
    total = sum(p.cost for p in plans) or 1
    meter = Meter(total, progress)
    pool, turns = _open_pool(workers) if wants_pool(plans, workers) else (None, None)
    summary = SummaryBuilder(dialect(plans, fmt))
    pieces = _piece_directory() if pool is not None else None
    try:
        piece_dir = None if pieces is None else pieces.name
        with TarGzWriter(
            out, compresslevel=compresslevel, threads=_threads(workers, total), checksum=checksum,
        ) as tar:

            scanned_files = scans(
                plans, query, pool, meter, piece_dir, compresslevel, while_compressing=load_json,
                spool_for=_Spools(tar, turns),
            )
            packing = _Packing(tar, source, query, result, summary, meter)
            for plan, scanned in zip(plans, scanned_files, strict=True):
                result.files.append(packing.file(plan, scanned()))
                meter.reach_file_end(plan.cost)
            result.summary = _add_summary(tar, spec, summary, result.entries)
            tar.add_bytes("manifest.json", json_bytes(manifest(spec, result)))
            result.size, result.sha256 = tar.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if pieces is not None:
            pieces.cleanup()
    meter.done()
    return result


def detect_kind(source: LogSource, fmt: FormatConfig) -> str:
    """"sql" or "mongo": which database wrote the source's logs (from the first non-empty file)."""
    if fmt.name == "auto":
        for file in source.list_files():
            if file.size:
                with FileReads(source, file.name, source.local_path(file.name)) as read:
                    head = file_head(read, file)
                if head:
                    return dialect_of(detected(head, fmt, file.name))
    return dialect_of(fmt)


def _open_pool(workers: int) -> tuple[Executor, PackageTurns]:
    from dblogpack.workerpool import open_pool  # only packages big enough for workers need it

    return open_pool(workers)


class _Spools:
    """The package's members whose pieces go in as they come (see packer.MemberSpool), and the
    workers' turns at writing them there themselves (see turns)."""

    def __init__(self, tar: TarGzWriter, turns: PackageTurns | None) -> None:
        self._tar, self._turns = tar, turns
        # The file workers may write into (path, device, inode): one for the whole package.
        self._package = tar.package_file() if turns is not None else None
        self._first_turns: dict[int, int] = {}  # a plan's id -> its pieces' first turn

    def targets(self, plan: FilePlan) -> list[WriteTarget | None] | None:
        """Where the workers may write each of the plan's pieces (None: they may not); the
        pieces' turns are theirs from now on."""
        package, turns = self._package, self._turns
        name, size = _member_name(plan.file), self._spooled_size(plan)
        if turns is None or package is None or not self._tar.can_spool(name, size):
            return None
        from dblogpack.turns import WriteTarget

        first = turns.reserve(len(plan.pieces))
        self._first_turns[id(plan)] = first
        return [WriteTarget(*package, first + index) for index in range(len(plan.pieces))]

    def __call__(self, plan: FilePlan) -> MemberSpool | None:
        name = _member_name(plan.file)
        first = self._first_turns.pop(id(plan), None)
        turns = None if first is None or self._turns is None else (self._turns, first)
        return self._tar.spool_member(name, self._spooled_size(plan), turns)

    @staticmethod
    def _spooled_size(plan: FilePlan) -> int:
        assert plan.range is not None  # only planned ranges have pieces
        return plan.range.size


def _piece_directory() -> tempfile.TemporaryDirectory[str]:
    """Where the workers' compressed pieces wait until their file's member is written."""
    import tempfile  # only packages big enough for worker processes need it

    return tempfile.TemporaryDirectory(prefix="dblogpack-pieces-")


def _threads(workers: int, total: int) -> int:
    # A small package's file members arrive compressed by the scan's thread: the rest (headers,
    # manifest, summary) is compressed in this thread, sparing the compressors' start-up.
    return max(1, workers) if total >= 8 * 1024 * 1024 else 0


# ---- packing -----------------------------------------------------------------------------------


def _member_name(file: LogFile) -> str:
    # A .gz file's selected entries are stored decompressed, so the member drops the suffix.
    name = file.name[:-3] if file.compressed else file.name
    return f"logs/{name}"


class _Packing:
    """What packing each file needs, gathered once per package."""

    __slots__ = ("meter", "query", "result", "source", "summary", "tar")

    def __init__(
        self,
        tar: TarGzWriter,
        source: LogSource,
        query: Query,
        result: PackageResult,
        summary: SummaryBuilder,
        meter: Meter,
    ) -> None:
        self.tar, self.source, self.query = tar, source, query
        self.result, self.summary, self.meter = result, summary, meter

    def file(self, plan: FilePlan, scanned: Scanned | None) -> FileResult:
        row = FileResult(name=plan.file.name, format=plan.config.name)
        if plan.range is None:
            return row
        if scanned is None:
            return self._streamed(plan, row)
        assert plan.path is not None  # scanned locally, so it has a path
        if scanned.member is not None:
            return self._compressed(row, plan.file, scanned, scanned.member)
        size = scanned.spans.total()
        try:
            if scanned.vanished:
                # Rotated away before its selected bytes were read (a file of that name now is
                # another one, which its spans do not describe): as if gone when opened below.
                raise FileNotFoundError(plan.path)
            if scanned.entries and size:
                with open(plan.path, "rb", buffering=0) as f:
                    chunks = span_bytes(f.fileno(), scanned.spans, CHUNK)
                    self._record(row, scanned)
                    self._member(row, plan.file, size, chunks)
            else:
                self._record(row, scanned)
        except FileNotFoundError:
            # Rotated away between scanning and packing: nothing of it is in the package.
            self.result.warnings.append(vanished_warning(plan.file.name, 0))
        finally:
            scanned.spans.close()
        return row

    def _compressed(
        self,
        row: FileResult,
        file: LogFile,
        scanned: Scanned,
        member: CompressedMember | BackgroundMember,
    ) -> FileResult:
        """A file whose selected bytes were compressed and hashed as it was scanned (by worker
        processes, or a thread of this one): their gzip members go into the package as they are."""
        try:
            self._record(row, scanned)
            if scanned.entries and member.size:
                if member.size != scanned.spans.total():
                    raise InternalError(
                        f"{file.name}: {member.size} bytes compressed, "
                        f"{scanned.spans.total()} selected"
                    )
                row.member = _member_name(file)
                self.tar.add_compressed_member(row.member, member)
                row.sha256, row.bytes_written = member.hexdigest(), member.size
            elif isinstance(member, CompressedMember) and member.spool is not None:
                member.spool.discard()  # its empty pieces are in the package already
        finally:
            member.close()
            scanned.spans.close()
        return row

    def _streamed(self, plan: FilePlan, row: FileResult) -> FileResult:
        import tempfile

        # Imported here: only remote and gzip files are streamed, not `pack`'s usual local ones.
        from dblogpack.streamscan import stream_scan

        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            try:
                scanned = stream_scan(plan, self.source, self.query, spool, self.meter)
            except SourceError:
                if not vanished(self.source, plan.file.name):
                    raise
                self.result.warnings.append(vanished_warning(plan.file.name, 0))
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

    def _record(self, row: FileResult, scanned: Scanned) -> None:
        row.entries = scanned.entries
        row.first_ts, row.last_ts = scanned.first_ts, scanned.last_ts
        row.bytes_scanned = scanned.bytes_scanned
        room = MAX_WARNINGS - len(self.result.warnings)
        self.result.warnings.extend(scanned.warnings[: max(0, room)])
        if scanned.summary is not None:
            self.summary.merge(scanned.summary)


def _add_summary(
    tar: TarGzWriter, spec: PackageSpec, summary: SummaryBuilder, entries: int
) -> bytes:
    """Write summary.json and summary.txt; returns summary.json (the service keeps a copy)."""
    # The package's own count: all-entries packages parse no details, yet have entries.
    document = {"log_type": spec.log_type.value, **summary.to_json(), "entries": entries}
    summary_json = json_bytes(document)
    tar.add_bytes("summary.json", summary_json)
    title = f"dblogpack summary of {spec.name} ({spec.log_type.value} entries)"
    tar.add_bytes("summary.txt", render_text(document, title).encode())
    return summary_json
