"""The package file: a streamed `.tar.gz` (tar headers written here, gzip compressed by ISA-L in its
own threads), the manifest.json every package carries, and the selected byte ranges of a local file
(`SpanList`) copied with large reads. Standard gzip, standard ustar/pax tar.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO

from dblogpack import __version__
from dblogpack.model import PackageResult, PackageSpec

BLOCK = 512
RECORD = 20 * BLOCK  # tar readers expect the archive to end on a whole record
_USTAR_MAX_SIZE = 0o77777777777
COMPRESS_BLOCK = 1024 * 1024


class _HashingWriter:
    """Passes bytes to the real output, counting and hashing what the package is made of."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def _ustar_header(name: bytes, size: int, mtime: int, typeflag: bytes) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(mtime, 12)
    header[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    return bytes(header)


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """The header block(s) of a regular file member; a pax header carries long names and sizes."""
    encoded = name.encode("utf-8", "surrogateescape")
    pax = b""
    if len(encoded) > 100 or not name.isascii():
        pax += _pax_record("path", name)
        encoded = encoded[:100]
    if size > _USTAR_MAX_SIZE:
        pax += _pax_record("size", str(size))
    if not pax:
        return _ustar_header(encoded, size, mtime, b"0")
    pax_header = _ustar_header(b"././@PaxHeader", len(pax), mtime, b"x")
    return pax_header + pax + _padding(len(pax)) + _ustar_header(
        encoded, min(size, _USTAR_MAX_SIZE), mtime, b"0"
    )


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


_THREADED_HASH_MIN = 16 * 1024 * 1024


class _ThreadedHash:
    """sha256 in its own thread (hashlib releases the GIL), overlapping the copy and compression.

    Chunks are handed over through a short queue, so memory stays a few chunks.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, name="dblogpack-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def update(self, chunk: bytes | memoryview) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest()


class TarGzWriter:
    """Streams tar members into gzip on `out`; compression runs in `threads` threads of ISA-L.

    Members are written one after the other: a member's size must be known before its bytes,
    and `add_member` checks that the chunks add up to it.
    """

    def __init__(
        self, out: BinaryIO, *, compresslevel: int = 1, threads: int = 2, mtime: float | None = None
    ) -> None:
        from isal import igzip_threaded  # imported here: `pack --help` must not pay for it

        gzip_open: Callable[..., BinaryIO] = igzip_threaded.open  # untyped library function
        self._sink = _HashingWriter(out)
        self._open_gzip: Callable[[], BinaryIO] = lambda: gzip_open(
            self._sink, "wb", compresslevel=compresslevel, threads=max(1, threads),
            block_size=COMPRESS_BLOCK,
        )
        self._gzip = self._open_gzip()
        self._mtime = int(datetime.now(UTC).timestamp() if mtime is None else mtime)
        self._tar_bytes = 0
        self._closed = False

    def __enter__(self) -> TarGzWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_member(self, name: str, size: int, chunks: Iterable[bytes | memoryview]) -> str:
        """Write a member of exactly `size` bytes from `chunks`; returns their sha256 (hex)."""
        self._write(tar_header(name, size, self._mtime))
        hasher = _ThreadedHash() if size >= _THREADED_HASH_MIN else None
        digest = hashlib.sha256()
        written = 0
        try:
            for chunk in chunks:
                if hasher is None:
                    digest.update(chunk)
                else:
                    hasher.update(chunk)
                self._write(chunk)
                written += len(chunk)
        finally:
            hexdigest = digest.hexdigest() if hasher is None else hasher.hexdigest()
        if written != size:
            raise ValueError(f"member {name}: {written} bytes written, {size} announced")
        self._write(_padding(size))
        return hexdigest

    def add_compressed_member(self, name: str, member: CompressedMember) -> None:
        """Write a member whose bytes arrive already compressed as gzip members (by the
        scanning workers): the current gzip member is ended, theirs are copied as they are, and
        a new one carries on. Concatenated gzip members are one standard gzip stream."""
        self._write(tar_header(name, member.size, self._mtime))
        self._gzip.close()
        for chunk in member.compressed_chunks():
            self._sink.write(chunk)
        self._tar_bytes += member.size
        self._gzip = self._open_gzip()
        self._write(_padding(member.size))

    def add_bytes(self, name: str, data: bytes) -> str:
        return self.add_member(name, len(data), [data])

    def _write(self, data: bytes | memoryview) -> None:
        if data:
            self._gzip.write(data)
            self._tar_bytes += len(data)

    def close(self) -> tuple[int, str]:
        """Finish the archive; returns the size and sha256 (hex) of the .tar.gz written."""
        if not self._closed:
            end = 2 * BLOCK
            self._write(b"\0" * (end + (-(self._tar_bytes + end) % RECORD)))
            self._gzip.close()
            self._closed = True
        return self._sink.size, self._sink.sha256.hexdigest()

    def abort(self) -> None:
        """Stop the compression threads after a failure; the output is left incomplete."""
        if not self._closed:
            self._closed = True
            try:
                self._gzip.close()
            except (OSError, ValueError):
                # The failure that brought us here is the one to report.
                return


class SpanList:
    """Byte ranges [start, end) in file order, adjacent ones merged.

    16 bytes a range; past `spill_at` integers they move to a temporary file, so memory stays
    bounded however many entries a file selects. Pickles as plain bytes (worker results).
    """

    def __init__(self, spill_at: int = 1 << 20) -> None:
        self._mem = array("q")
        self._spill: BinaryIO | None = None
        self._spill_at = spill_at
        self._total = 0

    def __reduce__(self) -> tuple[Callable[[bytes], SpanList], tuple[bytes]]:
        return SpanList._from_bytes, (b"".join(block.tobytes() for block in self._blocks()),)

    @staticmethod
    def _from_bytes(data: bytes) -> SpanList:
        spans = SpanList()
        spans._mem.frombytes(data)
        mem = spans._mem
        spans._total = sum(mem[1::2]) - sum(mem[0::2])
        return spans

    def append(self, start: int, end: int) -> None:
        mem = self._mem
        if mem and mem[-1] == start:
            mem[-1] = end
        else:
            mem.append(start)
            mem.append(end)
            if len(mem) >= self._spill_at:
                self._spill_memory()
        self._total += end - start

    def append_all(self, spans: list[tuple[int, int]], base: int) -> None:
        """Append `spans` (in order, not touching each other), each shifted by `base`: one
        C-level pass instead of a call per span (a slow scan selects hundreds of thousands)."""
        if not spans:
            return
        flat = array("q", [offset + base for span in spans for offset in span])
        self._total += sum(flat[1::2]) - sum(flat[0::2])
        mem = self._mem
        if mem and mem[-1] == flat[0]:
            mem[-1] = flat[1]
            del flat[:2]
        mem.extend(flat)
        if len(mem) >= self._spill_at:
            self._spill_memory()

    def extend(self, other: SpanList) -> None:
        for block in other._blocks():
            if not block:
                continue
            if self._mem and self._mem[-1] == block[0]:
                self._mem[-1] = block[1]
                block = block[2:]
            self._mem.extend(block)
            if len(self._mem) >= self._spill_at:
                self._spill_memory()
        self._total += other._total

    def total(self) -> int:
        """Bytes covered by all ranges."""
        return self._total

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for block in self._blocks():
            yield from zip(block[0::2], block[1::2], strict=True)

    def _blocks(self) -> Iterator[array[int]]:
        if self._spill is not None:
            self._spill.seek(0)
            while data := self._spill.read(self._spill_at * 8):
                block = array("q")
                block.frombytes(data)
                yield block
        yield self._mem

    def _spill_memory(self) -> None:
        # The last range stays in memory: the next append may still merge with it.
        keep = self._mem[-2:]
        del self._mem[-2:]
        if self._spill is None:
            import tempfile  # rarely needed; kept off the start-up path of small packages

            self._spill = tempfile.TemporaryFile()
        self._spill.seek(0, os.SEEK_END)
        self._spill.write(self._mem.tobytes())
        self._mem = keep

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None


class CompressedMember:
    """A member's bytes as gzip members that other processes wrote to files, in order, kept until
    the member's size is known (its tar header comes first), with the size and sha256 of the bytes
    they hold. Memory stays a read buffer whatever the member's size.
    """

    def __init__(self) -> None:
        self._files: list[str] = []
        self._digest = hashlib.sha256()
        self.size = 0

    def add(self, compressed_file: str, content: Iterable[bytes | memoryview]) -> None:
        """The file of one gzip member and the bytes it holds (hashed here, in order)."""
        self._files.append(compressed_file)
        for chunk in content:
            self._digest.update(chunk)
            self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def compressed_chunks(self) -> Iterator[bytes]:
        for path in self._files:
            with open(path, "rb") as file:
                while chunk := file.read(COMPRESS_BLOCK):
                    yield chunk

    def close(self) -> None:
        """Remove the members' files (once copied into the package, or on failure)."""
        for path in self._files:
            with suppress(FileNotFoundError):
                os.unlink(path)
        self._files.clear()


def gunzipped(path: str) -> Iterator[bytes]:
    """The content of a gzip file, decompressed a block at a time (a worker's piece)."""
    from isal import isal_zlib

    inflate = isal_zlib.decompressobj(wbits=31)
    with open(path, "rb") as file:
        while data := file.read(COMPRESS_BLOCK // 4):
            while data:  # at most a block out at a time: logs compress tenfold and more
                yield inflate.decompress(data, COMPRESS_BLOCK)
                data = inflate.unconsumed_tail
    yield inflate.flush()
    if not inflate.eof:
        raise OSError(f"{path}: the compressed piece ends early")


def gzip_member(level: int) -> Callable[[bytes | memoryview | None], bytes]:
    """A compressor of one gzip member: call it with each piece of data, then with None for the
    member's end."""
    from isal import isal_zlib

    deflate = isal_zlib.compressobj(level, wbits=31)

    def compress(data: bytes | memoryview | None) -> bytes:
        return deflate.flush() if data is None else deflate.compress(data)

    return compress


def span_bytes(
    fd: int, spans: Iterable[tuple[int, int]], window: int
) -> Iterator[bytes | memoryview]:
    """The bytes of `spans` from file `fd`, read `window` bytes at a time; the ranges inside one
    read are joined into one piece, so thousands of small ranges cost one syscall, not one each.
    At most one read window is alive at a time.
    """
    loaded_at, loaded = 0, memoryview(b"")
    batch: list[memoryview] = []
    for start, end in spans:
        while start < end:
            if not loaded_at <= start < loaded_at + len(loaded):
                if batch:
                    yield _joined(batch)
                    batch = []
                loaded_at, loaded = start, memoryview(os.pread(fd, window, start))
                if not loaded:
                    raise OSError(f"file ended at {start}, before the selected range's end {end}")
            piece_end = min(end, loaded_at + len(loaded))
            batch.append(loaded[start - loaded_at : piece_end - loaded_at])
            start = piece_end
    if batch:
        yield _joined(batch)


def _joined(batch: list[memoryview]) -> bytes | memoryview:
    # One range is passed as a view of the read (no copy); several are joined into one piece.
    return batch[0] if len(batch) == 1 else b"".join(batch)


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds (the logs' own precision), or None."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def manifest(spec: PackageSpec, result: PackageResult) -> dict[str, Any]:
    """manifest.json, with exactly the keys DESIGN.md lists.

    Every source file considered is listed; one without entries in the window has
    `entries: 0` and `member`/`sha256` null (no member is written for it). `first_ts`/`last_ts`
    are those of the file's selected entries. `totals.files` counts the log members written.
    """
    members = [f for f in result.files if f.member is not None]
    return {
        "format_version": 1,
        "package": {
            "id": spec.id,
            "name": spec.name,
            "kind": spec.kind.value,
            "resource_id": spec.resource_id,
            "node_id": spec.node_id,
            "log_type": spec.log_type.value,
            "min_duration_ms": spec.min_duration_ms,
        },
        "window": {
            "begin": spec.window.begin,
            "end": spec.window.end,
            "begin_iso": iso(spec.window.begin),
            "end_iso": iso(spec.window.end),
        },
        "files": [
            {
                "name": f.name,
                "format": f.format,
                "bytes_scanned": f.bytes_scanned,
                "entries": f.entries,
                "first_ts": iso(f.first_ts),
                "last_ts": iso(f.last_ts),
                "member": f.member,
                "sha256": f.sha256,
            }
            for f in result.files
        ],
        "totals": {
            "entries": result.entries,
            "bytes": sum(f.bytes_written for f in members),
            "bytes_scanned": sum(f.bytes_scanned for f in result.files),
            "files": len(members),
        },
        "warnings": [
            {"file": w.file, "offset": w.offset, "kind": w.kind, "detail": w.detail}
            for w in result.warnings
        ],
        "generator": f"dblogpack {__version__}",
    }


def json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"
