"""Scanning remote and gzip files as streams: read in chunks (decompressed for gzip files), each
chunk's whole entries scanned as a local chunk is, the selected bytes copied to a spool for the
packer (re-reading a remote file would cost a second transfer; a gzip file has no byte ranges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dblogpack.chunkreads import MAX_CHUNK, whole_length
from dblogpack.model import LogFile, LogWarning, Query
from dblogpack.pieces import selected
from dblogpack.planning import FilePlan, Meter, dialect_of, format_of, gzip_error, reader
from dblogpack.scanpool import CHUNK, Scanned, add_found, scan_chunk
from dblogpack.summary import SummaryBuilder

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import IO

    from dblogpack.sources.base import LogSource


def stream_scan(
    plan: FilePlan, source: LogSource, query: Query, spool: IO[bytes], meter: Meter
) -> Scanned:
    """Scan a remote or gzip file as a stream, copying the selected bytes to `spool`."""
    assert plan.range is not None
    log_format = format_of(plan.config)
    scanned = Scanned(summary=SummaryBuilder(dialect_of(plan.config)) if query.details else None)
    read = reader(source, plan.file.name, plan.path)
    chunks = (
        decompressed_chunks(read, plan.file, CHUNK, scanned.warnings)
        if plan.file.compressed
        else raw_chunks(read, plan.range.start, plan.range.stop, CHUNK)
    )
    base = 0 if plan.file.compressed else plan.range.start
    tail = b""
    past_end = False
    continuing: bool | None = None  # see scanpool.scan_chunk
    for chunk, last in chunks:
        buf = tail + chunk if tail else chunk
        whole = whole_length(log_format, buf, last, len(buf), carried=continuing is not None)
        tail = buf[whole:]
        if whole == 0:
            continue  # one long entry so far: wait for more of it
        cut_inside = len(buf) >= MAX_CHUNK and not last
        found, continuing = scan_chunk(
            log_format, buf[:whole], query, plan.file.name, base, continuing, cut_inside
        )
        if found.spans:
            spool.write(selected(buf, found.spans))
        add_found(scanned, found, base)
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
            except gzip_error() as exc:
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

