"""Which bytes of a log file can hold a window's entries: file edges, then bisection to the window's
start and end, with margins for local disorder. Pure logic: the pipeline hands in the reads and the
format's framing functions, so this module never imports formats.

How a file's range is chosen (see docs/engine.md):

* The file's first and last timestamps come from a head chunk (`next_entry`) and a tail chunk
  (`last_timestamp`). A file whose range misses the window by more than `Margins.seconds` is skipped
  without reading more.
* Inside the file, bisection over byte offsets finds the first entry at or after
  `begin - Margins.seconds` (and likewise `end + Margins.seconds`), reading one small probe per
  step: the cost grows with log(size), not with the file. A probe grows to meet an entry start,
  up to `Margins.probe_max`; one that meets none (an entry that long, or bytes of another format)
  ends the bisection with the bounds it has: the range is wider, never narrower, and no read
  holds more than that of a file. The start then steps back `Margins.bytes` more. The scan of
  the chosen range judges every entry by its own timestamp, so the result is exact as long as
  entries are out of order by less than the margins (concurrent backends writing a few
  milliseconds apart, entries straddling a rotation).
* Grossly out-of-order files (a clock jump, files spliced together) are detected when the probe
  timestamps, sorted by offset, go back by more than `Margins.seconds`. Bisection cannot be trusted
  there, so the whole file is scanned (still exact) and a `LogWarning(kind="disorder")` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from dblogpack.model import LogWarning, TimeWindow
from dblogpack.records import NamedTuple

Reader = Callable[[int, int], bytes]
"""Read up to `size` bytes of the file from `offset`: (offset, size) -> bytes."""


# The value types are NamedTuples, not dataclasses: a `pack` process creates its classes at
# every start (records.py).


class Framing(NamedTuple):
    """The two framing functions of a log format that the selector needs."""

    next_entry: Callable[[bytes, int], tuple[int, float] | None]
    last_timestamp: Callable[[bytes], float | None]


class Margins(NamedTuple):
    """How much disorder is tolerated, and how much a bisection probe reads."""

    seconds: float = 5.0
    bytes: int = 64 * 1024
    probe: int = 16 * 1024
    # A probe grows up to this to meet an entry start: past it, none is taken to be there (an
    # entry or a stretch of bytes no entry holds that long leaves the range wider, never
    # narrower), so a file in another format than the one given never has a probe read it whole.
    probe_max: int = 8 * 1024 * 1024
    edge: int = 64 * 1024  # head/tail chunk read for a file's first and last timestamps
    edge_max: int = 8 * 1024 * 1024  # a tail chunk grows up to this to meet an entry start


DEFAULT_MARGINS = Margins()


class ScanRange(NamedTuple):
    """Bytes [start, stop) of a file to scan; both are entry boundaries (or the file's ends)."""

    start: int
    stop: int
    warning: LogWarning | None = None

    @property
    def size(self) -> int:
        return self.stop - self.start


def entry_at_or_after(
    read: Reader,
    size: int,
    offset: int,
    framing: Framing,
    probe: int,
    probe_max: int = DEFAULT_MARGINS.probe_max,
) -> tuple[int, float] | None:
    """The first entry starting at or after `offset` (before `size`), reading probes that double
    from `probe` bytes until one is met; None when none starts before `size`, or none within the
    `probe_max` bytes a probe grows to.

    A probe starts one byte early so the format sees whether `offset` itself begins a line.
    """
    if offset <= 0:
        return _first_entry_from(read, size, 0, 0, framing, probe, probe_max)
    return _first_entry_from(read, size, offset - 1, 1, framing, probe, probe_max)


def _first_entry_from(
    read: Reader, size: int, base: int, skip: int, framing: Framing, probe: int, probe_max: int
) -> tuple[int, float] | None:
    length = min(probe, probe_max)
    while True:
        buf = read(base, length)
        found = framing.next_entry(buf, skip)
        if found is not None:
            return base + found[0], found[1]
        if base + len(buf) >= size or len(buf) < length or length >= probe_max:
            return None
        length = min(2 * length, probe_max)


def file_edges(
    read: Reader,
    size: int,
    framing: Framing,
    margins: Margins = DEFAULT_MARGINS,
    head: bytes | None = None,
) -> tuple[float | None, float | None]:
    """First and last entry timestamps of a file, from a head and a tail chunk (None: unknown).

    `head`: the file's first bytes when the caller has them already.
    """
    if size == 0:
        return None, None
    if head is None:
        head = read(0, min(size, margins.edge))
    found = framing.next_entry(head, 0)
    first = found[1] if found is not None else None
    return first, _last_timestamp(read, size, framing, margins)


def _last_timestamp(read: Reader, size: int, framing: Framing, margins: Margins) -> float | None:
    length = margins.edge
    while True:
        offset = max(0, size - length)
        last = framing.last_timestamp(read(offset, size - offset))
        if last is not None or offset == 0 or length >= margins.edge_max:
            return last
        length *= 2


def may_overlap(
    window: TimeWindow, first: float | None, last: float | None, margins: Margins = DEFAULT_MARGINS
) -> bool:
    """Whether a file spanning [first, last] may hold window entries, disorder margin included.

    A file whose first entry is later than its last one is out of order: it may hold anything.
    """
    if first is not None and last is not None and first > last + margins.seconds:
        return True
    if first is not None and window.end is not None and first >= window.end + margins.seconds:
        return False
    if last is not None and window.begin is not None:
        return last >= window.begin - margins.seconds
    return True


class _Bisection:
    """One file's bisection state; `probes` records every (offset, timestamp) seen."""

    __slots__ = ("framing", "margins", "name", "probes", "read", "size")

    def __init__(
        self, name: str, read: Reader, size: int, framing: Framing, margins: Margins
    ) -> None:
        self.name, self.read, self.size = name, read, size
        self.framing, self.margins = framing, margins
        self.probes: list[tuple[int, float]] = []

    def first_offset_not_before(self, target: float) -> tuple[int, int]:
        """(lo, hi): entries starting before `lo` are before `target`; from `hi` on, not before.

        Both are only as true as the file is ordered; `disorder()` checks that afterwards. A
        probe that meets no entry within `probe_max` bytes says nothing of the entries past
        them: the bisection ends there, with the bounds it has, so the range scanned is wider.
        """
        lo, hi = 0, self.size
        while hi - lo > self.margins.probe:
            mid = (lo + hi) // 2
            found = self._probe(mid, hi)
            if found is None:
                if mid + self.margins.probe_max <= hi:
                    break
                hi = mid
            elif found[1] < target:
                lo = found[0]
            else:
                hi = mid
        return lo, hi

    def _probe(self, mid: int, hi: int) -> tuple[int, float] | None:
        found = entry_at_or_after(
            self.read, hi, mid, self.framing, self.margins.probe, self.margins.probe_max
        )
        if found is None or found[0] >= hi:
            return None
        self.probes.append(found)
        return found

    def aligned(self, offset: int) -> int:
        """The first entry boundary at or after `offset` (the file size when none)."""
        if offset <= 0:
            return 0
        found = entry_at_or_after(
            self.read, self.size, offset, self.framing, self.margins.probe, self.margins.probe_max
        )
        return self.size if found is None else found[0]

    def disorder(self) -> LogWarning | None:
        ordered = sorted(set(self.probes))
        for (off_a, ts_a), (off_b, ts_b) in pairwise(ordered):
            if ts_b < ts_a - self.margins.seconds:
                return LogWarning(
                    file=self.name,
                    offset=off_b,
                    kind="disorder",
                    detail=(
                        f"timestamps go back {ts_a - ts_b:.3f}s between offsets {off_a} and "
                        f"{off_b}; bisection is unreliable here, the whole file was scanned"
                    ),
                )
        return None


def plan_range(
    name: str,
    read: Reader,
    size: int,
    framing: Framing,
    window: TimeWindow,
    edges: tuple[float | None, float | None] = (None, None),
    margins: Margins = DEFAULT_MARGINS,
) -> ScanRange:
    """The range of an uncompressed file to scan for `window`, found by bisection.

    `edges` are the file's first/last timestamps when known: a window edge beyond them needs no
    bisection. Falls back to the whole file (with a disorder warning) when the file is not ordered.
    """
    first, last = edges
    bisection = _Bisection(name, read, size, framing, margins)
    if first is not None:
        bisection.probes.append((0, first))
    if last is not None:
        bisection.probes.append((size, last))
    start = 0
    if window.begin is not None and (first is None or first < window.begin):
        lo, _ = bisection.first_offset_not_before(window.begin - margins.seconds)
        start = bisection.aligned(lo - margins.bytes)
    stop = size
    if window.end is not None and (last is None or last >= window.end):
        _, hi = bisection.first_offset_not_before(window.end + margins.seconds)
        stop = bisection.aligned(hi + margins.bytes) if hi < size else size
    warning = bisection.disorder()
    if warning is not None:
        return ScanRange(0, size, warning)
    return ScanRange(start, max(start, stop))
