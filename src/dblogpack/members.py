"""What a package member is made of before the packer writes it: the selected byte ranges of a
local file (`SpanList`, copied with large reads by `span_bytes`) and selected bytes already
compressed as gzip members, by worker processes (`CompressedMember`) or by a thread of this one
while the scan goes on (`BackgroundMember`, its calls run by `Background`).
"""

from __future__ import annotations

import _thread
import os
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator

from dblogpack.errors import InternalError
from dblogpack.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from mmap import mmap
    from types import ModuleType
    from typing import BinaryIO, Protocol

    # A buffer reads go into, one after the other (see read_buffer).
    ReadBuffer = bytearray | mmap

    class Sha256(Protocol):
        """hashlib's and stringzilla's sha256 hashers alike."""

        def update(self, data: bytes | memoryview, /) -> object: ...
        def hexdigest(self) -> str: ...

    class CopyableSha256(Sha256, Protocol):
        """hashlib's: its state can be copied (a hash kept at a point, to carry on from)."""

        def copy(self) -> CopyableSha256: ...

    class PieceSink(Protocol):
        """Where a CompressedMember's pieces go as they are added, in order, rather than wait
        in their files for the member's size (packer.MemberSpool)."""

        def add(self, piece: GzipPiece) -> None: ...
        def finish(self, size: int) -> None: ...
        def discard(self) -> None: ...


COMPRESS_BLOCK = 1024 * 1024
# Below this many bytes, a hash is stringzilla's where hashlib is not loaded yet (see sha256).
HASHLIB_MIN = 16 * 1024 * 1024


def sha256(size: int | None = None) -> Sha256:
    """A new sha256 hasher for about `size` bytes (None: a big or unknown amount).

    hashlib's, unless the hash is small and hashlib not loaded yet (a `pack` process).
    Importing hashlib loads and initialises OpenSSL, 4.5-6 ms of a 1-hour window's pack, all of
    it holding the GIL (it held the scanning thread back as long when imported in another
    thread). A small hash is then _sha256's: OpenSSL's SHA-256 too, its library loaded by the
    hashing thread's first update without the GIL, and run without it. Where that extension is
    not built, or libcrypto cannot be loaded, stringzilla's (loaded already by the scans),
    which holds the GIL as it hashes (the 1-hour window's scanning thread waited ~2 ms for it)
    and is slower (3.09 against 2.77 ms per 4 MiB).
    """
    if size is not None and size < HASHLIB_MIN and "hashlib" not in sys.modules:
        from stringzilla import Sha256

        try:
            from dblogpack._sha256 import Sha256 as LibcryptoSha256
        except ImportError:  # a source tree whose extension is not built
            return Sha256()
        return LibcryptoSha256(Sha256)
    return _hashlib_sha256()


def _hashlib_sha256() -> CopyableSha256:
    """hashlib's sha256 hasher (every big hash's, see sha256), whose state can be copied."""
    import hashlib

    return hashlib.sha256()


class SpanList:
    """Byte ranges [start, end) in file order, adjacent ones merged.

    16 bytes a range; past `spill_at` integers they move to a temporary file, so memory stays
    bounded however many entries a file selects. Pickles as plain bytes (worker results).
    A list made by `total_only` knows how many bytes its ranges cover, not the ranges.
    """

    def __init__(self, spill_at: int = 1 << 20) -> None:
        self._mem = array("q")
        self._spill: BinaryIO | None = None
        self._spill_at = spill_at
        self._total = 0
        self._ranges_kept = True

    @staticmethod
    def total_only(total: int) -> SpanList:
        """Ranges covering `total` bytes that nobody will read (a worker's piece whose bytes the
        parent takes from the worker's copy of them): reading them raises InternalError, and so
        does reading a list extended with these."""
        spans = SpanList()
        spans._total, spans._ranges_kept = total, False
        return spans

    def __reduce__(self) -> tuple[Callable[[bytes, int, bool], SpanList], tuple[bytes, int, bool]]:
        # The total goes along: summing a worker's hundreds of thousands of offsets again cost
        # the receiving process about a millisecond per piece.
        data = b"".join(block.tobytes() for block in self._blocks()) if self._ranges_kept else b""
        return SpanList._from_bytes, (data, self._total, self._ranges_kept)

    @staticmethod
    def _from_bytes(data: bytes, total: int, ranges_kept: bool) -> SpanList:
        spans = SpanList()
        spans._mem.frombytes(data)
        spans._total, spans._ranges_kept = total, ranges_kept
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
        if not other._ranges_kept:
            self._ranges_kept = False
            self._total += other._total
            return
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
        if not self._ranges_kept:
            raise InternalError("the ranges of these spans were not kept, only their total")
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


class GzipPiece(NamedTuple):
    """One piece's gzip member, `size` bytes long: in the file `path`, or (path None) in the
    package already, written there by the worker at the piece's turn (see turns)."""

    path: str | None
    size: int


class CompressedMember:
    """A member's bytes as gzip members that other processes wrote to files, in order, kept until
    the member's size is known (its tar header comes first), with the size and sha256 of the bytes
    they hold. Memory stays a read buffer whatever the member's size.

    With a `spool`, each file goes there as it is added instead (the package takes it at once).
    """

    def __init__(self, spool: PieceSink | None = None) -> None:
        self._files: list[str] = []
        self.spool = spool
        # Pieces of ranges of 48 MiB and more (planning.PARALLEL_MIN): a big hash.
        self._digest = _hashlib_sha256()
        self.size = 0

    def add(self, piece: GzipPiece, content: Iterable[bytes | memoryview]) -> None:
        """One gzip member and the bytes it holds (hashed here, in order)."""
        for chunk in content:
            self._digest.update(chunk)
            self.size += len(chunk)
        self._keep(piece)

    def add_hashed(self, piece: GzipPiece, size: int) -> None:
        """One gzip member holding `size` bytes hashed elsewhere (a HashAhead whose hash becomes
        this member's by `resume`)."""
        self.size += size
        self._keep(piece)

    def _keep(self, piece: GzipPiece) -> None:
        if self.spool is not None:
            self.spool.add(piece)
        elif piece.path is None:  # only a spool's pieces are given turns in the package
            raise InternalError("a piece was written into the package without a spool")
        else:
            self._files.append(piece.path)

    def hash_so_far(self) -> CopyableSha256:
        """A copy of the hash of the bytes added so far, to hash ahead from."""
        return self._digest.copy()

    def resume(self, digest: CopyableSha256) -> None:
        """Carry on from `digest`: the hash of every byte added so far, hashed elsewhere."""
        self._digest = digest

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def compressed_chunks(self) -> Iterator[bytes]:
        for path in self._files:
            with open(path, "rb") as file:
                yield from file_chunks(file)

    def close(self) -> None:
        """Remove the members' files (once copied into the package, or on failure)."""
        for path in self._files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue  # gone already: nothing to remove
        self._files.clear()


def file_chunks(file: BinaryIO) -> Iterator[bytes]:
    """The rest of an open file, a block at a time."""
    while chunk := file.read(COMPRESS_BLOCK):
        yield chunk


class HashAhead:
    """A file's bytes from the start of `pieces` hashed by a thread, ahead of the scan's results,
    on the guess that each piece is selected whole (an all-entries package): the parent would
    otherwise hash each piece only once a worker is done with it, and be left hashing alone, with
    a core idle, after the last one. The hash is kept at each piece's start, so a piece that
    turns out not to be whole is hashed exactly from there (`hash_before`). Call `close` in the
    end: the thread reads `fd`.
    """

    def __init__(self, fd: int, digest: CopyableSha256, pieces: list[tuple[int, int]]) -> None:
        import threading  # only packages big enough for worker processes (which import it) get here

        self._fd, self._digest, self._pieces = fd, digest, pieces
        self._kept: dict[int, CopyableSha256] = {}  # a piece's start -> the hash before it
        self._changed = threading.Condition()
        self._stopping = self._ended = False
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="hash-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = read_buffer(4 * COMPRESS_BLOCK)
        try:
            for start, stop in self._pieces:
                self._keep(start, self._digest.copy())
                for read in span_bytes(self._fd, [(start, stop)], len(buffer), buffer):
                    if self._stopping:
                        return
                    self._digest.update(read)
            self._keep(self._pieces[-1][1], self._digest)
        except Exception as exc:
            self._failure = exc  # raised by hash_before or result, in the caller's thread
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _keep(self, at: int, digest: CopyableSha256) -> None:
        with self._changed:
            self._kept[at] = digest
            self._changed.notify_all()

    def hash_before(self, start: int) -> CopyableSha256:
        """The hash of the bytes before the piece at `start` (once the thread is there); the
        thread then stops."""
        with self._changed:
            self._changed.wait_for(lambda: start in self._kept or self._ended)
        self.close()
        if start not in self._kept:
            raise self._failure or InternalError(f"the hash ahead never reached offset {start}")
        return self._kept[start]

    def result(self) -> CopyableSha256:
        """The hash of every piece's bytes, once the thread is done."""
        return self.hash_before(self._pieces[-1][1])

    def close(self) -> None:
        """Stop the thread and wait for it (it reads the caller's file)."""
        self._stopping = True
        self._thread.join()


class Background:
    """One call run in a thread of its own, for C work that releases the GIL (reads, deflate,
    hashes); `wait()` returns once it is done and raises what failed there. `_thread` directly:
    importing `threading` costs ~0.9 ms of every `pack` start."""

    __slots__ = ("_done", "_failure")

    def __init__(self, call: Callable[[], object]) -> None:
        self._failure: Exception | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()  # released by the thread once the call returns
        _thread.start_new_thread(self._run, (call,))

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            self._failure = exc  # raised in the caller's thread by wait(): never swallowed
        finally:
            self._done.release()

    def join(self) -> None:
        """Return once the call is done."""
        with self._done:  # free once the call is done; left free, so joins may come again
            pass

    def wait(self) -> None:
        """Return once the call is done; raise what failed in it."""
        self.join()
        if self._failure is not None:
            raise self._failure


class BackgroundMember:
    """A member's bytes deflated and hashed in threads while the caller goes on scanning: ISA-L
    releases the GIL, so deflate runs on the other core, and so does hashlib's hash; a small
    member's hash in a pack process (stringzilla's, see sha256) takes turns with the scan for
    the GIL instead, and runs beside the last piece's deflate.

    The bytes end up as one raw deflate segment ending byte-aligned (a sync flush), with their
    CRC-32 and size: a packer writing its own gzip member splices it in, so the package stays one
    gzip member (tarfile's streaming mode reads only the first member of a file); wrapped as a
    gzip member of its own otherwise. Each piece is deflated with the previous piece's last 32
    KiB as its history, as isal's threaded writer does, so a piece's deflate starts as soon as
    it is added, beside the previous one's when that is still running (the scanning thread would
    wait for it otherwise, with a core idle); at most two are in flight, so memory is the
    caller's chunks of those two and their compressed output. Hashes run in order, one after
    the other.
    """

    def __init__(self, level: int, size: int) -> None:
        """`size`: about how many bytes will be added (chooses the hash)."""
        from isal import isal_zlib

        self._zlib, self._level = isal_zlib, level
        self._window: bytes | memoryview = b""  # the last 32 KiB added: the next piece's history
        self._digest = sha256(size)
        self._segment: list[bytes] = []
        self._deflating: list[_PieceDeflate] = []  # in the order added
        self._hashing: Background | None = None
        self.size = self.crc = 0

    def add(self, data: bytes | memoryview) -> None:
        """Deflate and hash `data` after the bytes added before it."""
        self._fold(keep=1)
        self.size += len(data)
        self._deflating.append(_PieceDeflate(self._zlib, self._level, data, self._window))
        self._window = data[-_WINDOW:]
        previous, digest = self._hashing, self._digest

        def hash_in_turn() -> None:
            if previous is not None:
                previous.wait()
            digest.update(data)

        self._hashing = Background(hash_in_turn)

    def _fold(self, keep: int) -> None:
        """Wait for the deflates in flight but the last `keep`, and append them in order."""
        while len(self._deflating) > keep:
            piece = self._deflating.pop(0)
            piece.job.wait()
            self._segment.append(piece.compressed)
            self.crc = self._zlib.crc32_combine(self.crc, piece.crc, piece.size)

    def wait(self) -> None:
        """Return once the pieces added so far are deflated and hashed (the threads are done;
        each piece ends byte-aligned already, so the member is then complete); raise what
        failed there."""
        self._fold(keep=0)
        if self._hashing is not None:
            self._hashing.wait()

    def join(self) -> None:
        """Return once the threads are done, without raising what failed there (for a caller
        already leaving with an error of its own, which must not be replaced)."""
        for piece in self._deflating:
            piece.job.join()
        if self._hashing is not None:
            self._hashing.join()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def deflate_segment(self) -> Iterator[bytes]:
        """The raw deflate segment, to splice into a deflate stream (not its last segment)."""
        return iter(self._segment)

    def compressed_chunks(self) -> Iterator[bytes]:
        """The bytes as a gzip member of their own."""
        yield GZIP_HEADER
        yield from self._segment
        yield EMPTY_LAST_BLOCK + gzip_trailer(self.crc, self.size)

    def close(self) -> None:
        """Drop the segment once the threads are done (a failure is raised by wait(), not here)."""
        self.join()
        self._deflating.clear()
        self._segment.clear()


class _PieceDeflate:
    """One piece deflated by a thread, after `history` (the bytes before it, up to 32 KiB)."""

    __slots__ = ("compressed", "crc", "job", "size")

    def __init__(
        self, zlib: ModuleType, level: int, data: bytes | memoryview, history: bytes | memoryview
    ) -> None:
        self.size, self.crc, self.compressed = len(data), 0, b""
        self.job = Background(lambda: self._deflate(zlib, level, data, history))

    def _deflate(
        self, zlib: ModuleType, level: int, data: bytes | memoryview, history: bytes | memoryview
    ) -> None:
        # The block compressor isal's own threaded gzip writer uses: deflate and CRC-32 in one
        # call that holds the GIL once, then ends byte-aligned (sync flush). A compressobj holds
        # it again each time its output buffer grows (5 times for a 2 MiB piece), and each time
        # this thread may wait a switch interval for the scanning thread to let go.
        room = _deflate_bound(len(data), level)
        self.compressed, self.crc = zlib._ParallelCompress(room, level).compress_and_crc(
            data, history
        )


_WINDOW = 32 * 1024  # deflate's history


def _deflate_bound(size: int, level: int) -> int:
    """Room for `size` bytes deflated, as isal's threaded writer reserves it: incompressible data
    grows by under a tenth, and by under double at level 0 (one fixed Huffman table)."""
    return 2 * size + 500 if level == 0 else size + max(size // 10, 500)


# A gzip member's header (RFC 1952) without name or time, and the deflate block that ends a stream
# left open by a sync flush: an empty final block of fixed codes (BFINAL=1, BTYPE=01, EOB).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
EMPTY_LAST_BLOCK = b"\x03\x00"


def gzip_trailer(crc: int, size: int) -> bytes:
    """A gzip member's trailer: CRC-32 and size (modulo 2**32) of its content, little-endian."""
    return crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


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


def read_buffer(size: int) -> ReadBuffer:
    """A buffer for reads of up to `size` bytes, used again for each read, that starts on a page.

    A bytearray this large is served by glibc's mmap with its 16-byte header in front: its bytes
    start 16 bytes past a page, and in this VM the kernel's copy out of the page cache runs 3-4x
    slower to there than to any other offset when nothing else runs (docs/benchmarks.md, "Read
    buffers on a page"). The parent's buffer for the member hash started there: its reads of the
    1.1 GB all-entries package took 271-282 ms, now 238-259 ms. An anonymous map starts on a
    page boundary.
    """
    import mmap  # only processes that gather workers' pieces read into one

    return mmap.mmap(-1, size)


def span_bytes(
    fd: int, spans: Iterable[tuple[int, int]], window: int, buffer: ReadBuffer | None = None
) -> Iterator[bytes | memoryview]:
    """The bytes of `spans` from file `fd`, read `window` bytes at a time; the ranges inside one
    read are joined into one piece, so thousands of small ranges cost one syscall, not one each.
    At most one read window is alive at a time.

    With a `buffer` (at least `window` long), every read goes into it, and a piece is valid only
    until the next is asked for: for a consumer that hashes each piece at once. A fresh 4 MiB
    read is fresh memory, faulted in page by page: the parent of a 1.1 GB all-entries package
    spent ~0.15 s of system time on that alone.
    """
    loaded_at, loaded = 0, memoryview(b"")
    batch: list[memoryview] = []
    for start, end in spans:
        while start < end:
            if not loaded_at <= start < loaded_at + len(loaded):
                if batch:
                    yield _joined(batch)
                    batch = []
                loaded_at, loaded = start, _read(fd, window, start, buffer)
                if not loaded:
                    raise OSError(f"file ended at {start}, before the selected range's end {end}")
            piece_end = min(end, loaded_at + len(loaded))
            batch.append(loaded[start - loaded_at : piece_end - loaded_at])
            start = piece_end
    if batch:
        yield _joined(batch)


def _read(fd: int, size: int, at: int, buffer: ReadBuffer | None) -> memoryview:
    if buffer is None:
        return memoryview(os.pread(fd, size, at))
    view = memoryview(buffer)[:size]
    return view[: os.preadv(fd, [view], at)]


def _joined(batch: list[memoryview]) -> bytes | memoryview:
    # One range is passed as a view of the read (no copy); several are joined into one piece.
    return batch[0] if len(batch) == 1 else b"".join(batch)
