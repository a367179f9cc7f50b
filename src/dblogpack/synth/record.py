"""What a generator wrote, entry by entry: timestamp, kind, byte range, duration.

Tests and benchmarks compute the expected package from this record alone, independently of
the engine. Small outputs keep it in memory; large ones stream it to a compact side file.
"""

from __future__ import annotations

import json
import math
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dblogpack.model import LogKind, TimeWindow

SLOW = 1
ERROR = 2
NO_DURATION = math.nan

MAGIC = b"DLPREC1\n"
_BLOCK = struct.Struct("<II")  # file index, entry count
_TRAILER = struct.Struct("<Q")  # byte length of the JSON file table that precedes it


@dataclass(slots=True)
class EntryBlock:
    """Consecutive entries of one file, as parallel columns (offsets are within the file)."""

    file_index: int
    ts_ms: array[int]
    offsets: array[int]
    lengths: array[int]
    flags: bytes
    durations: array[float]

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    file: str
    ts_ms: int
    flags: int
    offset: int
    length: int
    duration_ms: float | None

    def is_kind(self, kind: LogKind) -> bool:
        if kind is LogKind.SLOW:
            return bool(self.flags & SLOW)
        if kind is LogKind.ERROR:
            return bool(self.flags & ERROR)
        return True


class Record:
    """Accumulates EntryBlocks; with `sink`, streams them out instead; `keep=False` drops them."""

    def __init__(self, sink: BinaryIO | None = None, keep: bool = True) -> None:
        self.files: list[str] = []
        self._keep = keep
        self._blocks: list[EntryBlock] = []
        self._sink = sink
        if sink is not None:
            sink.write(MAGIC)

    def begin_file(self, name: str) -> int:
        self.files.append(name)
        return len(self.files) - 1

    def rename_file(self, index: int, name: str) -> None:
        self.files[index] = name

    def add(self, block: EntryBlock) -> None:
        if self._sink is None:
            if self._keep:
                self._blocks.append(block)
            return
        self._sink.write(_BLOCK.pack(block.file_index, len(block)))
        for column in (block.ts_ms, block.offsets, block.lengths):
            self._sink.write(column.tobytes())
        self._sink.write(block.flags)
        self._sink.write(block.durations.tobytes())

    def close(self, meta: dict[str, object] | None = None) -> None:
        """Write the file table (names are final only once rotation is done)."""
        if self._sink is None:
            return
        table = json.dumps({"files": self.files, "meta": meta or {}}).encode()
        self._sink.write(table)
        self._sink.write(_TRAILER.pack(len(table)))

    def blocks(self) -> list[EntryBlock]:
        if self._sink is not None:
            raise ValueError("a streamed record is read back with RecordFile")
        return self._blocks


class RecordFile:
    """A record side file written by `Record(sink)`, read back block by block."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError(f"{self.path} is not a synth record file")
            f.seek(-_TRAILER.size, 2)
            (table_len,) = _TRAILER.unpack(f.read(_TRAILER.size))
            self._blocks_end = f.seek(-_TRAILER.size - table_len, 2)
            table = json.loads(f.read(table_len))
        self.files: list[str] = table["files"]
        self.meta: dict[str, object] = table["meta"]

    def blocks(self) -> Iterator[EntryBlock]:
        with self.path.open("rb") as f:
            f.seek(len(MAGIC))
            while f.tell() < self._blocks_end:
                file_index, count = _BLOCK.unpack(f.read(_BLOCK.size))
                yield EntryBlock(
                    file_index,
                    _ints("q", f, count),
                    _ints("q", f, count),
                    _ints("I", f, count),
                    f.read(count),
                    _floats(f, count),
                )


def _ints(typecode: str, f: BinaryIO, count: int) -> array[int]:
    column = array(typecode)
    column.frombytes(f.read(count * column.itemsize))
    return column


def _floats(f: BinaryIO, count: int) -> array[float]:
    column = array("d")
    column.frombytes(f.read(count * column.itemsize))
    return column


def entries(files: list[str], blocks: Iterable[EntryBlock]) -> Iterator[RecordedEntry]:
    """Every recorded entry in write order."""
    for block in blocks:
        name = files[block.file_index]
        for ts, offset, length, flags, duration in zip(
            block.ts_ms, block.offsets, block.lengths, block.flags, block.durations, strict=True
        ):
            yield RecordedEntry(
                name, ts, flags, offset, length, None if duration != duration else duration
            )


@dataclass(slots=True)
class Selection:
    """A reference selection: per file, merged (offset, length) ranges, and the entry count."""

    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    entries: int = 0

    def add(self, file: str, offset: int, length: int) -> None:
        self.entries += 1
        file_spans = self.spans.setdefault(file, [])
        if file_spans and sum(file_spans[-1]) == offset:
            file_spans[-1] = (file_spans[-1][0], file_spans[-1][1] + length)
        else:
            file_spans.append((offset, length))


def select(
    files: list[str],
    blocks: Iterable[EntryBlock],
    window: TimeWindow,
    kind: LogKind,
    min_duration_ms: float | None = None,
) -> Selection:
    """Reference selection: what a package of `window` and `kind` must hold.

    Deliberately plain (one entry at a time, the documented rules read literally) so that it
    shares nothing with the engine it checks. Times compare in seconds at millisecond precision.
    """
    mask = {LogKind.SLOW: SLOW, LogKind.ERROR: ERROR}.get(kind)
    bar = min_duration_ms
    selection = Selection()
    for block in blocks:
        name = files[block.file_index]
        for ts, offset, length, flags, duration in zip(
            block.ts_ms, block.offsets, block.lengths, block.flags, block.durations, strict=True
        ):
            if mask is not None and not flags & mask:
                continue
            if not window.contains(ts / 1000):
                continue
            # A NaN duration (none printed) never reaches a bar.
            if bar is not None and not duration >= bar:
                continue
            selection.add(name, offset, length)
    return selection


def expected_spans(
    files: list[str],
    blocks: Iterable[EntryBlock],
    window: TimeWindow,
    kind: LogKind,
    min_duration_ms: float | None = None,
) -> dict[str, list[tuple[int, int]]]:
    """Per file, the byte ranges a package must hold (see `select`)."""
    return select(files, blocks, window, kind, min_duration_ms).spans


def read_spans(
    path: str | Path, spans: list[tuple[int, int]], chunk: int = 8 << 20
) -> Iterator[bytes]:
    """The bytes of `spans` of a file, in bounded pieces."""
    with open(path, "rb") as f:
        for offset, length in spans:
            f.seek(offset)
            while length > 0:
                piece = f.read(min(chunk, length))
                if not piece:
                    raise ValueError(f"{path} ends before offset {offset + length}")
                length -= len(piece)
                yield piece
