"""The format-independent generator: a seeded clock, a weighted pool of pre-rendered entries,
large block writes, rotation, and the record of every entry written.

Speed comes from rendering entry bodies once (a pool of templates) and only splicing a
cached timestamp into them per entry; blocks of thousands of entries are written at once.
"""

from __future__ import annotations

import os
import random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO, Protocol

from dblogpack.synth.record import ERROR, SLOW, EntryBlock, Record

BLOCK_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class EntryTemplate:
    """One pre-rendered entry: its bytes are `timestamp.join(segments)`.

    A multi-line PostgreSQL entry repeats the timestamp in every line's prefix, hence
    several segments; most entries have two (before and after the timestamp). `weight` is
    how often it appears relative to the other templates of its kind.
    """

    segments: tuple[bytes, ...]
    flags: int = 0
    duration_ms: float = float("nan")
    weight: float = 1.0


class SynthFormat(Protocol):
    """What a log format contributes to the generator."""

    name: str
    precision_ms: int  # 1, or 1000 when timestamps print whole seconds

    def templates(self, rng: random.Random) -> list[EntryTemplate]: ...

    timestamp: Callable[[int], bytes]

    def rotated_name(self, live: Path, ts_ms: int) -> str: ...


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative weights of slow, error and other entries."""

    slow: float = 0.05
    error: float = 0.01
    other: float = 0.94

    def weight(self, flags: int) -> float:
        if flags & SLOW:
            return self.slow
        if flags & ERROR:
            return self.error
        return self.other


@dataclass(frozen=True, slots=True)
class Plan:
    """What to generate: from `start` (unix s) until `end` or `size` bytes, whichever first.

    With both, entries are spread evenly so the size is reached near the end. `rate` (entries
    per second) applies when only one of them is given. `disorder_ms`: entries of concurrent
    threads are written up to that many ms out of timestamp order. `rotate_bytes`: start a new
    file once the current one holds that much (the older one is renamed the way the server does).
    """

    start: float
    end: float | None = None
    size: int | None = None
    seed: int = 0
    mix: Mix = field(default_factory=Mix)
    rate: float = 500.0
    disorder_ms: int = 3
    rotate_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.end is None and self.size is None:
            raise ValueError("a plan needs an end time or a size")
        if self.end is not None and self.end <= self.start:
            raise ValueError("plan end must be after its start")


@dataclass(slots=True)
class WrittenFile:
    name: str
    size: int = 0
    entries: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None


@dataclass(slots=True)
class GenerateResult:
    files: list[WrittenFile]
    record: Record

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)


class EntryRenderer:
    """Picks templates by weight and renders entries for given timestamps."""

    def __init__(
        self, fmt: SynthFormat, rng: random.Random, mix: Mix, typical_ts_ms: int = 0
    ) -> None:
        self.fmt = fmt
        self.rng = rng
        pool = fmt.templates(rng)
        per_kind: dict[int, float] = {}
        for tpl in pool:
            per_kind[_kind(tpl.flags)] = per_kind.get(_kind(tpl.flags), 0.0) + tpl.weight
        weights = [mix.weight(t.flags) * t.weight / per_kind[_kind(t.flags)] for t in pool]
        self.pool = pool
        self.cum_weights = list(accumulate(weights))
        self.flags = bytes(t.flags for t in pool)
        self.durations = [t.duration_ms for t in pool]
        # Timestamps have the width of the era written (epoch millis: 13 digits today, 1 in 1970).
        sample_ts = fmt.timestamp(typical_ts_ms)
        total = self.cum_weights[-1]
        self.mean_length = (
            sum(w * len(sample_ts.join(t.segments)) for w, t in zip(weights, pool, strict=True))
            / total
        )

    def render(self, ts_list: Sequence[int]) -> tuple[list[bytes], bytes, array[float]]:
        """Entries for `ts_list` (one each), with their flags and durations."""
        picks = self.rng.choices(
            range(len(self.pool)), cum_weights=self.cum_weights, k=len(ts_list)
        )
        pool = self.pool
        stamp = self.fmt.timestamp
        rendered = [stamp(ts).join(pool[i].segments) for ts, i in zip(ts_list, picks, strict=True)]
        flags = bytes(map(self.flags.__getitem__, picks))
        durations = array("d", map(self.durations.__getitem__, picks))
        return rendered, flags, durations


def _kind(flags: int) -> int:
    return SLOW if flags & SLOW else ERROR if flags & ERROR else 0


class _Clock:
    """Seeded timestamps: mean spacing `gap_ms`, each entry jittered back up to `disorder_ms`."""

    def __init__(self, plan: Plan, gap_ms: float, precision_ms: int, rng: random.Random) -> None:
        self.now = plan.start * 1000.0 + plan.disorder_ms
        self.floor = int(plan.start * 1000)
        self.span = 2.0 * gap_ms
        self.disorder = plan.disorder_ms
        self.precision = precision_ms
        self.end = None if plan.end is None else plan.end * 1000.0
        self.rand = rng.random

    def next_block(self, count: int) -> list[int]:
        rand, span, disorder, precision = self.rand, self.span, self.disorder, self.precision
        stamps: list[int] = []
        now = self.now
        for _ in range(count):
            now += span * rand()
            if self.end is not None and now >= self.end:
                break
            ts = max(int(now - disorder * rand()), self.floor)
            stamps.append(ts - ts % precision)
        self.now = now
        return stamps


def _gap_ms(plan: Plan, mean_length: float) -> float:
    if plan.end is not None and plan.size is not None:
        # Plan 2% more entries than the mean length suggests, so the size is reached before the end.
        return (plan.end - plan.start) * 1000.0 / max(1.02 * plan.size / mean_length, 1.0)
    return 1000.0 / plan.rate


class Output:
    """The file being written, rotated when full; mtimes follow the last entry written."""

    def __init__(
        self, fmt: SynthFormat, target: str | Path | BinaryIO, record: Record, append: bool = False
    ) -> None:
        self.fmt = fmt
        self.record = record
        self.files: list[WrittenFile] = []
        self.live: Path | None = None
        if isinstance(target, (str, Path)):
            self.live = Path(target)
            self.stream: BinaryIO = self.live.open("ab" if append else "wb")
            name = self.live.name
        else:
            self.stream = target
            name = getattr(target, "name", "stream")
            name = os.path.basename(name) if isinstance(name, str) else "stream"
        self._open(name)

    def _open(self, name: str) -> None:
        size = self.stream.tell() if self.stream.seekable() else 0
        self.files.append(WrittenFile(name, size))
        self.record.begin_file(name)

    @property
    def current(self) -> WrittenFile:
        return self.files[-1]

    def write(
        self, rendered: list[bytes], ts: list[int], flags: bytes, durations: array[float]
    ) -> None:
        lengths = array("I", map(len, rendered))
        ends = list(accumulate(lengths, initial=self.current.size))
        self.stream.write(b"".join(rendered))
        block = EntryBlock(
            len(self.files) - 1, array("q", ts), array("q", ends[:-1]), lengths, flags, durations
        )
        self.record.add(block)
        current = self.current
        current.size = ends[-1]
        current.entries += len(ts)
        if current.first_ts_ms is None:
            current.first_ts_ms = ts[0]
        current.last_ts_ms = ts[-1]

    def room(self, rotate_bytes: int | None) -> int | None:
        return None if rotate_bytes is None else max(rotate_bytes - self.current.size, 0)

    def rotate(self) -> None:
        """Close the current file under its rotated name and start a fresh live file."""
        if self.live is None:
            raise ValueError("rotation needs a path, not a file object")
        self.stream.close()
        current = self.current
        rotated = _unused_name(self.live, self.fmt.rotated_name(self.live, current.last_ts_ms or 0))
        os.replace(self.live, self.live.with_name(rotated))
        _touch(self.live.with_name(rotated), current.last_ts_ms)
        current.name = rotated
        self.record.rename_file(len(self.files) - 1, rotated)
        self.stream = self.live.open("wb")
        self._open(self.live.name)

    def close(self) -> None:
        if self.live is None:
            self.stream.flush()
            return
        self.stream.close()
        _touch(self.live, self.current.last_ts_ms)


def _unused_name(live: Path, name: str) -> str:
    # Rotation names have one-second resolution: never overwrite a file rotated the same second.
    candidate, number = name, 0
    while live.with_name(candidate).exists():
        number += 1
        candidate = f"{name}.{number}"
    return candidate


def _touch(path: Path, ts_ms: int | None) -> None:
    # Sources order files by mtime: make it the time of the file's last entry, as on a server.
    if ts_ms is not None:
        os.utime(path, (ts_ms / 1000, ts_ms / 1000))


def generate(
    fmt: SynthFormat,
    target: str | Path | BinaryIO,
    plan: Plan,
    record: Record | None = None,
    on_block: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write entries of `fmt` to `target` following `plan`; return what was written.

    `record` defaults to an in-memory Record; pass `Record(sink)` for large outputs.
    `on_block(bytes_written_so_far)` is called after each block (progress reports).
    """
    rng = random.Random(plan.seed)
    renderer = EntryRenderer(fmt, rng, plan.mix, int(plan.start * 1000))
    clock = _Clock(plan, _gap_ms(plan, renderer.mean_length), fmt.precision_ms, rng)
    out = Output(fmt, target, record if record is not None else Record())
    written = 0
    while plan.size is None or written < plan.size:
        stamps = clock.next_block(BLOCK_ENTRIES)
        if not stamps:
            break
        rendered, flags, durations = renderer.render(stamps)
        if plan.size is not None:
            # Keep entries until the size is reached: the smallest prefix whose end is >= size.
            cut = bisect_left(list(accumulate(map(len, rendered), initial=written)), plan.size)
            stamps, rendered, flags, durations = (
                stamps[:cut],
                rendered[:cut],
                flags[:cut],
                durations[:cut],
            )
        written += write_rotating(out, plan.rotate_bytes, rendered, stamps, flags, durations)
        if on_block is not None:
            on_block(written)
    out.close()
    return GenerateResult(out.files, out.record)


def write_rotating(
    out: Output,
    rotate_bytes: int | None,
    rendered: list[bytes],
    stamps: list[int],
    flags: bytes,
    durations: array[float],
) -> int:
    """Write a block, rotating as many times as it needs; returns the bytes written."""
    total = 0
    while rendered:
        room = out.room(rotate_bytes)
        cut = len(rendered)
        if room is not None:
            cut = bisect_right(list(accumulate(map(len, rendered))), room)
            if cut == 0 and out.current.size > 0:
                out.rotate()
                continue
            cut = max(cut, 1)
        head = rendered[:cut]
        out.write(head, stamps[:cut], flags[:cut], durations[:cut])
        total += sum(map(len, head))
        rendered, stamps, flags, durations = (
            rendered[cut:],
            stamps[cut:],
            flags[cut:],
            durations[cut:],
        )
    return total
