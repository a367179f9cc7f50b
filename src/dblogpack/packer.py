"""The package file: a streamed `.tar.gz` (tar headers written here, gzip compressed by ISA-L, in
its own threads for big packages). Standard gzip, standard ustar/pax tar. Its documents
(manifest.json, summary.json) are written by `manifest`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from dblogpack.errors import InternalError
from dblogpack.members import (
    COMPRESS_BLOCK,
    GZIP_HEADER,
    HASHLIB_MIN,
    BackgroundMember,
    CompressedMember,
    GzipPiece,
    file_chunks,
    gzip_trailer,
    sha256,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import BinaryIO, Protocol

    from dblogpack.turns import PackageTurns

    class GzipStream(Protocol):
        def write(self, data: bytes | memoryview, /) -> int: ...
        def close(self) -> None: ...

BLOCK = 512
RECORD = 20 * BLOCK  # tar readers expect the archive to end on a whole record
_USTAR_MAX_SIZE = 0o77777777777


class _HashingWriter:
    """Passes bytes to the real output, counting and (with `checksum`) hashing what the package
    is made of."""

    def __init__(self, out: BinaryIO, checksum: bool) -> None:
        self.out = out
        self.size = 0
        self.sha256 = sha256() if checksum else None

    def write(self, data: bytes) -> int:
        self.out.write(data)
        if self.sha256 is not None:
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


class _ThreadedHash:
    """sha256 of a big member (hashlib's, which releases the GIL) in its own thread, overlapping
    the copy and compression.

    Chunks are handed over through a short queue, so memory stays a few chunks.
    """

    def __init__(self) -> None:
        import queue  # only members of 16 MiB and more: kept off small packages' start-up
        import threading

        self._digest = sha256()
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


class _OneMember:
    """The package as one gzip member deflated by ISA-L in the caller's thread, its header and
    trailer written here: deflate segments made elsewhere (a scanning thread's) are spliced in,
    so the file stays one member, which every gzip reader streams. For packages whose big
    members arrive deflated already, where compression threads would only cost their start-up.
    """

    def __init__(self, sink: _HashingWriter, level: int) -> None:
        from isal import isal_zlib

        self._zlib, self._sink, self._level = isal_zlib, sink, level
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)  # raw deflate
        self._crc = self._size = 0
        self._open = True
        sink.write(GZIP_HEADER)

    def write(self, data: bytes | memoryview, /) -> int:
        self._sink.write(self._deflate.compress(data))
        self._crc = self._zlib.crc32(data, self._crc)
        self._size += len(data)
        return len(data)

    def splice(self, member: BackgroundMember) -> None:
        """Append a member's raw deflate segment (it ends byte-aligned, as ours is made to)."""
        self._sink.write(self._deflate.flush(self._zlib.Z_SYNC_FLUSH))
        for chunk in member.deflate_segment():
            self._sink.write(chunk)
        self._crc = self._zlib.crc32_combine(self._crc, member.crc, member.size)
        self._size += member.size
        # A fresh deflater: back-references must not reach across the spliced bytes.
        self._deflate = self._zlib.compressobj(self._level, self._zlib.DEFLATED, -15)

    def close(self) -> None:
        """End the member, once (an abort after a failed close has nothing left to end)."""
        if self._open:
            self._open = False
            self._sink.write(self._deflate.flush() + gzip_trailer(self._crc, self._size))


class MemberSpool:
    """A member whose bytes arrive as gzip members in files, one after the other, before its size
    is known (a file's pieces from the scanning workers, as they come in). Each is copied into
    the package as it arrives, and its file removed; the member's tar header goes first, in a
    gzip member of its own whose one block is stored, not deflated, so that its length does not
    depend on the size: written with size 0 at first, and again in its place once the size is
    known.

    The pieces used to wait in their files until the last one was in, and were then copied
    into the package while the other core idled: ~70 ms of a 1.1 GB all-entries package, and
    up to ~0.3 s when the kernel had started writing the pieces out meanwhile.

    With `turns` (the turns and the first of them that the workers were given for this
    member's pieces), a piece's worker writes it into the package itself when its turn comes
    (see turns), and a piece that comes in a file is copied in at its turn's offset.
    """

    def __init__(
        self,
        tar: TarGzWriter,
        name: str,
        mtime: int,
        sink: _HashingWriter,
        out: BinaryIO,
        turns: tuple[PackageTurns, int] | None = None,
    ) -> None:
        self._tar, self._name, self._mtime, self._sink, self._out = tar, name, mtime, sink, out
        out.flush()
        self._at, self._size_at = out.tell(), sink.size
        sink.write(_stored_member(tar_header(name, 0, mtime)))
        # The turns, and the next piece's turn (pieces without turns are counted from 0).
        self._turns: PackageTurns | None
        self._turns, self._turn = turns if turns is not None else (None, 0)
        if self._turns is not None:
            out.flush()
            self._turns.grant(self._turn, out.tell())

    def add(self, piece: GzipPiece) -> None:
        """One gzip member into the package: copied from its file, which is then removed, or
        written there already by its worker."""
        turn, self._turn = self._turn, self._turn + 1
        if piece.path is None:
            if self._turns is None:
                raise InternalError("a piece was written into the package without turns")
            self._sink.size += piece.size  # its worker passed the turn on
            return
        with open(piece.path, "rb", buffering=0) as file:
            if self._turns is not None:
                self._copy_at_turn(file, turn)
            elif (copied := _copy_file(file, self._out)) is not None:
                self._sink.size += copied
            else:
                for chunk in file_chunks(file):
                    self._sink.write(chunk)
        os.unlink(piece.path)

    def _copy_at_turn(self, file: BinaryIO, turn: int) -> None:
        # Every piece before this one is in: its worker wrote it before its result came, or
        # this process copied it in.
        assert self._turns is not None
        offset = self._turns.offset_if_mine(turn)
        if offset is None:
            raise InternalError(f"piece {turn} of {self._name} came in before its turn")
        self._out.flush()
        copied = _copy_file_at(file, self._out.fileno(), offset)
        self._sink.size += copied
        self._turns.pass_on(turn, offset + copied)

    def _end_turns(self) -> None:
        """Every piece is in: the package goes on after the last one."""
        if self._turns is not None:
            self._out.seek(self._turns.close())
            self._turns = None

    def finish(self, size: int) -> None:
        """The member holds `size` bytes: its header's gzip member is written again in its
        place (the same length: one stored block)."""
        self._end_turns()
        header = tar_header(self._name, size, self._mtime)
        stored = _stored_member(header)  # refuses a header grown past one block
        out = self._out
        out.flush()
        end = out.tell()
        out.seek(self._at)
        out.write(stored)
        out.seek(end)
        self._tar.end_spooled_member(header, size)

    def discard(self) -> None:
        """The member holds nothing: the package ends where it began."""
        self._end_turns()
        self._out.flush()
        self._out.seek(self._at)
        self._out.truncate()
        self._sink.size = self._size_at


def _copy_file(source: BinaryIO, out: BinaryIO) -> int | None:
    """Copy all of `source` to the end of `out` (see _copy_file_at), leaving `out` after it; how
    many bytes, or None where `out` is no file."""
    try:
        out_fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # an in-memory output
    out.flush()
    at = out.tell()
    copied = _copy_file_at(source, out_fd, at)
    out.seek(at + copied)
    return copied


def _copy_file_at(source: BinaryIO, out_fd: int, offset: int) -> int:
    """Copy all of `source` into the file `out_fd` at `offset` inside the kernel
    (copy_file_range: nothing goes through this process, ~20 ms less of a 1.1 GB all-entries
    package's 142 MB), or through this process where the kernel cannot (another file system, an
    old kernel) before anything was copied; how many bytes."""
    size, copied = os.fstat(source.fileno()).st_size, 0
    try:
        while copied < size and (
            done := os.copy_file_range(
                source.fileno(), out_fd, size - copied, copied, offset + copied
            )
        ):
            copied += done
    except OSError:
        if copied:
            raise
        while chunk := os.pread(source.fileno(), COMPRESS_BLOCK, copied):
            copied += os.pwrite(out_fd, chunk, offset + copied)
    if copied != size:
        raise OSError(f"{source.name!r}: {copied} of its {size} bytes copied")
    return copied


def _seekable(out: BinaryIO) -> bool:
    try:
        return out.seekable()
    except (AttributeError, OSError, ValueError):
        return False


# A stored deflate block's head for a 512-byte tar header block: BFINAL=1, BTYPE=00, the bits
# up to the byte's end unused, then LEN and NLEN.
_STORED_BLOCK_HEAD = b"\x01" + (512).to_bytes(2, "little") + (0xFFFF - 512).to_bytes(2, "little")


def _stored_member(data: bytes) -> bytes:
    """`data` (one 512-byte block) as a gzip member holding it stored, not deflated."""
    if len(data) != 512:
        raise ValueError(f"a stored member holds one 512-byte block, not {len(data)} bytes")
    return GZIP_HEADER + _STORED_BLOCK_HEAD + data + gzip_trailer(_crc32(data), len(data))


def _crc32(data: bytes) -> int:
    from isal import isal_zlib  # loaded already: the pieces it heads are ISA-L's

    return int(isal_zlib.crc32(data))


class TarGzWriter:
    """Streams tar members into gzip on `out`; compression runs in `threads` threads of ISA-L
    (0: in the caller's thread). `checksum=False`: no hash of the package.

    Members are written one after the other: a member's size must be known before its bytes,
    and `add_member` checks that the chunks add up to it.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        compresslevel: int = 1,
        threads: int = 2,
        mtime: float | None = None,
        checksum: bool = True,
    ) -> None:
        self._sink = _HashingWriter(out, checksum)
        self._open_gzip: Callable[[], GzipStream] = (
            self._threaded_gzip(compresslevel, threads) if threads
            else lambda: _OneMember(self._sink, compresslevel)
        )
        # Opened at the first write, after a small range's scan: ISA-L's import (~1.2 ms) then
        # overlaps the scan's first read instead of coming before it.
        self._gzip: GzipStream | None = None
        self._mtime = int(time.time() if mtime is None else mtime)
        self._tar_bytes = 0
        self._closed = False

    def _threaded_gzip(self, level: int, threads: int) -> Callable[[], GzipStream]:
        from isal import igzip_threaded  # imported here: `pack --help` must not pay for it

        gzip_open: Callable[..., BinaryIO] = igzip_threaded.open  # untyped library function
        return lambda: gzip_open(
            self._sink, "wb", compresslevel=level, threads=threads, block_size=COMPRESS_BLOCK
        )

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
        hasher = _ThreadedHash() if size >= HASHLIB_MIN else sha256(size)
        written = 0
        try:
            for chunk in chunks:
                hasher.update(chunk)
                self._write(chunk)
                written += len(chunk)
        finally:
            hexdigest = hasher.hexdigest()  # also ends a _ThreadedHash's thread
        if written != size:
            raise ValueError(f"member {name}: {written} bytes written, {size} announced")
        self._write(_padding(size))
        return hexdigest

    def can_spool(self, name: str, most: int) -> bool:
        """Whether `spool_member` gives a spool for this member: not into an output that is not
        seekable, or hashed as it is written, nor for a size a ustar header cannot hold (its
        header would then grow with the size)."""
        if self._sink.sha256 is not None or most > _USTAR_MAX_SIZE:
            return False
        if not _seekable(self._sink.out):
            return False
        return len(tar_header(name, most, self._mtime)) == BLOCK  # not a long name's pax header

    def spool_member(
        self, name: str, most: int, turns: tuple[PackageTurns, int] | None = None
    ) -> MemberSpool | None:
        """A member of at most `most` bytes whose gzip members will be added one by one as they
        come, before its size is known (see MemberSpool); None where this output cannot take one
        (see can_spool)."""
        if not self.can_spool(name, most):
            return None
        if self._gzip is not None:  # the spool's members start on their own
            self._gzip.close()
            self._gzip = None
        return MemberSpool(self, name, self._mtime, self._sink, self._sink.out, turns)

    def package_file(self) -> tuple[str, int, int] | None:
        """The path, device and inode of the file this package is written to, when it is one
        (workers may then write their pieces into it, see turns)."""
        out = self._sink.out
        name = getattr(out, "name", None)
        if not isinstance(name, str):
            return None
        try:
            found, named = os.fstat(out.fileno()), os.stat(name)
        except (OSError, ValueError, AttributeError):
            return None
        if (found.st_dev, found.st_ino) != (named.st_dev, named.st_ino):
            return None
        return name, found.st_dev, found.st_ino

    def end_spooled_member(self, header: bytes, size: int) -> None:
        """A spooled member's header and bytes are in the package: its padding follows."""
        self._tar_bytes += len(header) + size
        self._write(_padding(size))

    def add_compressed_member(
        self, name: str, member: CompressedMember | BackgroundMember
    ) -> None:
        """Write a member whose bytes arrive already compressed (by the scanning workers or
        thread). A scanning thread's deflate segment is spliced into this writer's own member
        when it writes one; otherwise the current gzip member is ended, theirs are copied as they
        are, and a new one carries on (concatenated gzip members are one standard gzip stream).
        A spooled member (CompressedMember.spool) is in the package already: its header is
        written in its place."""
        if isinstance(member, CompressedMember) and member.spool is not None:
            member.spool.finish(member.size)
            return
        self._write(tar_header(name, member.size, self._mtime))
        gzip = self._stream()
        if isinstance(gzip, _OneMember) and isinstance(member, BackgroundMember):
            gzip.splice(member)
            self._tar_bytes += member.size
            self._write(_padding(member.size))
            return
        gzip.close()
        for chunk in member.compressed_chunks():
            self._sink.write(chunk)
        self._tar_bytes += member.size
        self._gzip = self._open_gzip()
        self._write(_padding(member.size))

    def add_bytes(self, name: str, data: bytes) -> str:
        return self.add_member(name, len(data), [data])

    def _stream(self) -> GzipStream:
        if self._gzip is None:
            self._gzip = self._open_gzip()
        return self._gzip

    def _write(self, data: bytes | memoryview) -> None:
        if data:
            self._stream().write(data)
            self._tar_bytes += len(data)

    def close(self) -> tuple[int, str | None]:
        """Finish the archive; returns the size and sha256 (hex; None without `checksum`) of
        the .tar.gz written."""
        if not self._closed:
            end = 2 * BLOCK
            self._write(b"\0" * (end + (-(self._tar_bytes + end) % RECORD)))
            self._stream().close()
            self._closed = True
        digest = self._sink.sha256
        return self._sink.size, None if digest is None else digest.hexdigest()

    def abort(self) -> None:
        """Stop the compression threads after a failure; the output is left incomplete."""
        if not self._closed:
            self._closed = True
            if self._gzip is None:
                return  # nothing written, nothing to stop
            try:
                self._gzip.close()
            except (OSError, ValueError):
                # The failure that brought us here is the one to report.
                return
