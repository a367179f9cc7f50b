"""Reading a node's logs while the caller waits: each file's first and last timestamps
(`ListUPgSQLLog`) and a bounded excerpt of a window's entries (`Get…Log`), with the package
engine's formats, selector and chunk readers; nothing here frames or parses bytes itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dblogpack import formats
from dblogpack.chunkreads import whole_length
from dblogpack.errors import ConfigError, FormatError
from dblogpack.formats.base import LogFormat
from dblogpack.model import (
    FormatConfig,
    LogFile,
    LogWarning,
    Query,
    SourceConfig,
    SourceType,
    TimeWindow,
)
from dblogpack.selector import Framing, Margins, file_edges, may_overlap, plan_range
from dblogpack.sources.base import LogSource
from dblogpack.streamscan import decompressed_chunks, raw_chunks

HEAD = 64 * 1024
CHUNK = 1024 * 1024
MARGINS = Margins()
# PostgreSQL writes the same entries to .log, .csv and .json when several destinations are on.
_PG_DESTINATION_SUFFIXES = (".log", ".csv", ".json")

Reader = Callable[[int, int], bytes]


@dataclass(frozen=True, slots=True)
class Excerpt:
    """A window's entries as text, cut at whole entries; `next_time` continues after them."""

    text: str
    lines: int
    truncated: bool
    next_time: float | None


def resolved_format(config: SourceConfig, source: LogSource) -> FormatConfig:
    """The node's format, completed from what a PostgreSQL server says of its logging (SHOW)
    where registration left the line prefix or the time zone open."""
    fmt = config.log_format
    if config.type is not SourceType.POSTGRES or (fmt.log_line_prefix and fmt.timezone):
        return fmt
    told = source.logging_settings()
    if told is None:
        return fmt
    return FormatConfig(
        fmt.name,
        fmt.log_line_prefix or told.log_line_prefix or None,
        fmt.timezone or _iana_zone(told.log_timezone),
    )


def _iana_zone(name: str | None) -> str | None:
    """The server's log_timezone, which must be an IANA name to read its local timestamps."""
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"the server's log_timezone {name!r} is not an IANA time zone name: register the "
            "instance with LogTimezone (e.g. Asia/Shanghai)"
        ) from exc
    return name


def _reader(source: LogSource, name: str) -> Reader:
    return lambda offset, size: source.read(name, offset, size)


def _head(read: Reader, file: LogFile) -> bytes:
    if not file.compressed:
        return read(0, min(file.size, HEAD))
    warnings: list[LogWarning] = []
    for chunk, _ in decompressed_chunks(read, file, HEAD, warnings):
        return chunk
    return b""


def _format_of(head: bytes, fmt: FormatConfig) -> LogFormat | None:
    """The file's format (detected when "auto"); None for a file that is no log we know."""
    try:
        return formats.build(formats.detect(head, fmt))
    except FormatError:
        return None


def _framing(log_format: LogFormat) -> Framing:
    return Framing(log_format.next_entry, log_format.last_timestamp)


def file_with_edges(source: LogSource, file: LogFile, fmt: FormatConfig) -> LogFile:
    """`file` with its first and last entry timestamps, read from its head and tail.

    A gzip file cannot be read from its end: its last timestamp is its modification time.
    """
    if file.size == 0:
        return file
    read = _reader(source, file.name)
    head = _head(read, file)
    log_format = _format_of(head, fmt) if head else None
    if log_format is None:
        return file
    framing = _framing(log_format)
    if file.compressed:
        found = framing.next_entry(head, 0)
        return file._replace(first_ts=found[1] if found else None, last_ts=file.mtime)
    first, last = file_edges(read, file.size, framing, MARGINS, head)
    return file._replace(first_ts=first, last_ts=last)


def files_overlapping(source: LogSource, fmt: FormatConfig, window: TimeWindow) -> list[LogFile]:
    """The source's files (oldest first) whose entries may fall in `window`, with their edges."""
    described = (file_with_edges(source, file, fmt) for file in source.list_files())
    return [f for f in described if window.overlaps(f.first_ts, f.last_ts)]


def one_destination(files: list[LogFile]) -> list[LogFile]:
    """PostgreSQL files of the newest file's destination only (stderr, csvlog or jsonlog), so an
    excerpt does not show each entry once per destination."""
    if not files:
        return files
    suffix = _destination(files[-1].name)
    if suffix is None:
        return files
    return [f for f in files if _destination(f.name) in (suffix, None)]


def _destination(name: str) -> str | None:
    plain = name.removesuffix(".gz")
    return next((s for s in _PG_DESTINATION_SUFFIXES if plain.endswith(s)), None)


@dataclass(slots=True)
class _Collector:
    """Selected entries kept until `max_lines` lines or `max_bytes` bytes would be exceeded."""

    max_lines: int
    max_bytes: int
    pieces: list[tuple[float, bytes]] = field(default_factory=list)
    lines: int = 0
    size: int = 0

    def fits(self, entry: bytes) -> bool:
        if not self.pieces:
            return True  # one entry always goes through, so paging moves on
        lines = self.lines + _line_count(entry)
        return lines <= self.max_lines and self.size + len(entry) <= self.max_bytes

    def add(self, timestamp: float, entry: bytes) -> None:
        self.pieces.append((timestamp, entry))
        self.lines += _line_count(entry)
        self.size += len(entry)

    def cut_before(self, timestamp: float) -> None:
        """Drop the kept entries at or after `timestamp` (they come again from NextTime), unless
        that would drop them all."""
        keep = len(self.pieces)
        while keep > 0 and self.pieces[keep - 1][0] >= timestamp:
            keep -= 1
        if keep:
            del self.pieces[keep:]
            self.lines = sum(_line_count(p) for _, p in self.pieces)
            self.size = sum(len(p) for _, p in self.pieces)

    def excerpt(self, truncated: bool, next_time: float | None) -> Excerpt:
        text = b"".join(p for _, p in self.pieces).decode("utf-8", errors="replace")
        return Excerpt(text, self.lines, truncated, next_time)


def _line_count(entry: bytes) -> int:
    return entry.count(b"\n") + (0 if entry.endswith(b"\n") else 1)


class _Stop(Exception):
    """The excerpt is full (or the scan budget spent): continue from `next_time`."""

    def __init__(self, next_time: float | None) -> None:
        super().__init__(next_time)
        self.next_time = next_time


def read_excerpt(
    source: LogSource,
    fmt: FormatConfig,
    files: list[LogFile],
    query: Query,
    *,
    max_lines: int,
    max_bytes: int,
    scan_budget: int,
) -> Excerpt:
    """The entries of `files` (with edges, oldest first) that `query` selects, at most
    `max_lines` lines and `max_bytes` bytes, reading at most about `scan_budget` bytes."""
    collector = _Collector(max_lines, max_bytes)
    budget = [scan_budget]
    try:
        for file in files:
            _collect_file(source, fmt, file, query, collector, budget)
    except _Stop as stop:
        if stop.next_time is not None:
            collector.cut_before(stop.next_time)
        return collector.excerpt(True, stop.next_time)
    return collector.excerpt(False, query.window.end)


def _collect_file(
    source: LogSource,
    fmt: FormatConfig,
    file: LogFile,
    query: Query,
    collector: _Collector,
    budget: list[int],
) -> None:
    if file.size == 0 or not may_overlap(query.window, file.first_ts, file.last_ts, MARGINS):
        return
    read = _reader(source, file.name)
    head = _head(read, file)
    log_format = _format_of(head, fmt) if head else None
    if log_format is None:
        return
    for base, buf, last in _whole_chunks(read, file, log_format, query.window):
        found = log_format.scan(buf, query, file.name, base)
        for start, end in found.spans:
            _take_entries(log_format, buf, start, end, collector)
        if found.end_offset is not None:
            return
        budget[0] -= len(buf)
        if budget[0] <= 0 and not last:
            raise _Stop(log_format.last_timestamp(buf))


def _whole_chunks(
    read: Reader, file: LogFile, log_format: LogFormat, window: TimeWindow
) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, bytes of whole entries, is_last) over the part of the file the window needs."""
    if file.compressed:
        base, chunks = 0, decompressed_chunks(read, file, CHUNK, [])
    else:
        edges = (file.first_ts, file.last_ts)
        scan = plan_range(file.name, read, file.size, _framing(log_format), window, edges, MARGINS)
        base, chunks = scan.start, raw_chunks(read, scan.start, scan.stop, CHUNK)
    tail = b""
    for chunk, last in chunks:
        buf = tail + chunk if tail else chunk
        # Bounded as a package's scan is: one long entry grows a buffer up to MAX_CHUNK, bytes
        # no entry holds are passed as they are.
        whole = whole_length(log_format, buf, last, len(buf))
        tail = buf[whole:]
        if whole:
            yield base, buf[:whole], last
            base += whole


def _take_entries(
    log_format: LogFormat, buf: bytes, start: int, end: int, collector: _Collector
) -> None:
    """Add the entries of one selected span, one by one (bounded by the collector's limits)."""
    current = log_format.next_entry(buf, start)
    while current is not None and current[0] < end:
        following = log_format.next_entry(buf, current[0] + 1)
        stop = following[0] if following is not None and following[0] < end else end
        entry = buf[current[0] : stop]
        if not collector.fits(entry):
            raise _Stop(current[1])
        collector.add(current[1], entry)
        current = following if stop < end else None
