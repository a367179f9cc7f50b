"""Finding a window inside a log file: edges, bisection cost, tolerance of disorder, and refusal to
trust bisection in a file whose time goes backwards. Uses a tiny line format ("<unix ms> text").
"""

from __future__ import annotations

import itertools
import random

from dblogpack.model import TimeWindow
from dblogpack.selector import Framing, Margins, file_edges, may_overlap, plan_range


def _line_start(buf: bytes, pos: int) -> int | None:
    if pos == 0:
        return 0
    if buf[pos - 1 : pos] == b"\n":
        return pos
    newline = buf.find(b"\n", pos)
    return None if newline < 0 else newline + 1


def next_entry(buf: bytes, pos: int) -> tuple[int, float] | None:
    start = _line_start(buf, pos)
    while start is not None and start < len(buf):
        space = buf.find(b" ", start, start + 20)
        if space < 0:
            return None
        if buf[start:space].isdigit():
            return start, int(buf[start:space]) / 1000
        start = _line_start(buf, start + 1)  # a line of no entry
    return None


def last_timestamp(buf: bytes) -> float | None:
    start = buf.rfind(b"\n", 0, len(buf) - 1) + 1
    found = next_entry(buf, start) if start else next_entry(buf, 0)
    return None if found is None else found[1]


FRAMING = Framing(next_entry, last_timestamp)


class File:
    """An in-memory log whose reads are counted, and the largest one recorded."""

    def __init__(self, stamps_ms: list[int], width: int = 60) -> None:
        self.lines = [f"{ms} {'x' * width}\n".encode() for ms in stamps_ms]
        self.stamps_ms = stamps_ms
        self.data = b"".join(self.lines)
        self.bytes_read = self.largest = 0

    def read(self, offset: int, size: int) -> bytes:
        chunk = self.data[offset : offset + size]
        self.bytes_read += len(chunk)
        self.largest = max(self.largest, size)
        return chunk

    @classmethod
    def of_bytes(cls, data: bytes) -> File:
        """A file of any bytes, lines of no entry included."""
        f = cls([])
        f.data = data
        return f

    def in_window(self, window: TimeWindow) -> list[tuple[int, int]]:
        """Offsets (start, end) of the lines whose own timestamp is in the window."""
        spans, pos = [], 0
        for ms, line in zip(self.stamps_ms, self.lines, strict=True):
            if window.contains(ms / 1000):
                spans.append((pos, pos + len(line)))
            pos += len(line)
        return spans

    def boundaries(self) -> set[int]:
        offsets, pos = {0, len(self.data)}, 0
        for line in self.lines:
            pos += len(line)
            offsets.add(pos)
        return offsets


def steady(count: int, start_ms: int = 1_000_000, step_ms: int = 100) -> list[int]:
    return [start_ms + i * step_ms for i in range(count)]


def test_the_range_holds_every_window_entry_and_little_else() -> None:
    f = File(steady(200_000))  # 13 MB, 20 000 s of log
    window = TimeWindow(6_000.0, 6_060.0)

    scan = plan_range("a", f.read, len(f.data), FRAMING, window)

    wanted = f.in_window(window)
    assert scan.warning is None
    assert scan.start <= wanted[0][0] and wanted[-1][1] <= scan.stop
    assert {scan.start, scan.stop} <= f.boundaries()
    margins = Margins()
    slack = 2 * (margins.bytes + margins.seconds * 10 * 80) + 2 * margins.probe
    assert scan.size <= wanted[-1][1] - wanted[0][0] + slack


def test_bisection_reads_grow_with_the_log_of_the_size_not_the_size() -> None:
    small, big = File(steady(20_000)), File(steady(400_000))
    window_small = TimeWindow(1_500.0, 1_501.0)
    window_big = TimeWindow(30_000.0, 30_001.0)

    plan_range("s", small.read, len(small.data), FRAMING, window_small)
    plan_range("b", big.read, len(big.data), FRAMING, window_big)

    assert big.bytes_read < 1_000_000 < len(big.data) // 20
    assert big.bytes_read < 2 * small.bytes_read


def test_a_window_edge_outside_the_file_needs_no_bisection() -> None:
    f = File(steady(100_000))
    edges = file_edges(f.read, len(f.data), FRAMING)
    f.bytes_read = 0

    scan = plan_range("a", f.read, len(f.data), FRAMING, TimeWindow(0.0, 1e12), edges)

    assert (scan.start, scan.stop) == (0, len(f.data))
    assert f.bytes_read == 0


def test_time_going_back_in_the_middle_of_a_file_is_detected_too() -> None:
    stamps = steady(30_000) + steady(30_000, start_ms=90_000_000) + steady(30_000, 4_000_000)
    f = File(stamps)
    edges = file_edges(f.read, len(f.data), FRAMING)

    scan = plan_range("a", f.read, len(f.data), FRAMING, TimeWindow(2_000.0, 2_001.0), edges)

    assert scan.warning is not None and scan.warning.kind == "disorder"
    assert (scan.start, scan.stop) == (0, len(f.data))


def test_local_disorder_within_the_margin_loses_no_entry() -> None:
    rng = random.Random(7)
    stamps = [ms + rng.randint(-800, 800) for ms in steady(100_000)]  # writers racing by < 1 s
    f = File(stamps)

    for begin in (2_000.0, 5_000.5, 9_000.25):
        window = TimeWindow(begin, begin + 30)
        scan = plan_range("a", f.read, len(f.data), FRAMING, window)
        wanted = f.in_window(window)
        assert scan.warning is None
        assert scan.start <= wanted[0][0] and wanted[-1][1] <= scan.stop


def test_a_file_spliced_out_of_order_is_scanned_whole_with_a_disorder_warning() -> None:
    later, earlier = steady(50_000, start_ms=9_000_000), steady(50_000, start_ms=1_000_000)
    f = File(later + earlier)  # time jumps back by more than two hours halfway
    edges = file_edges(f.read, len(f.data), FRAMING)
    window = TimeWindow(2_000.0, 2_010.0)

    scan = plan_range("spliced.log", f.read, len(f.data), FRAMING, window, edges)

    assert (scan.start, scan.stop) == (0, len(f.data))
    assert scan.warning is not None and scan.warning.kind == "disorder"
    assert scan.warning.file == "spliced.log"


def test_an_entry_longer_than_a_probe_is_still_found() -> None:
    stamps = steady(2_000)
    f = File(stamps, width=40_000)  # every line is longer than a 16 KiB probe

    window = TimeWindow(1_100.0, 1_101.0)
    scan = plan_range("a", f.read, len(f.data), FRAMING, window, margins=Margins(bytes=0))

    wanted = f.in_window(window)
    assert scan.start <= wanted[0][0] and wanted[-1][1] <= scan.stop
    assert scan.size < len(f.data) // 10


def test_an_entry_longer_than_a_probe_grows_to_widens_the_range_and_loses_nothing() -> None:
    # One entry of 300 KB among short ones, probes bounded at 64 KiB: a probe inside it meets
    # no entry start, and says nothing of the entries past it.
    bound = Margins(probe_max=64 * 1024)
    for long_at, length in itertools.product((100, 1_000, 1_900), range(70_000, 300_000, 7_000)):
        stamps = steady(2_000)
        lines = [f"{ms} {'x' * (length if i == long_at else 60)}\n".encode()
                 for i, ms in enumerate(stamps)]
        f = File.of_bytes(b"".join(lines))
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        for first, last in ((50, 60), (1_050, 1_060), (1_950, 1_960), (0, 1_999)):
            window = TimeWindow(stamps[first] / 1000, stamps[last] / 1000 + 0.001)
            scan = plan_range("a", f.read, len(f.data), FRAMING, window, margins=bound)
            wanted = offsets[first], offsets[last + 1]
            assert scan.start <= wanted[0] and wanted[1] <= scan.stop, (long_at, length)
            assert scan.warning is None
        assert f.largest <= bound.probe_max


def test_bytes_of_another_format_are_never_read_whole_by_a_probe() -> None:
    # No line reads as an entry (a file given the wrong format): probes stop at their bound.
    f = File.of_bytes(b"".join(b"not a log line %d\n" % i for i in range(200_000)))
    bound = Margins(probe_max=256 * 1024, edge_max=256 * 1024)

    assert file_edges(f.read, len(f.data), FRAMING, bound) == (None, None)
    scan = plan_range("a", f.read, len(f.data), FRAMING, TimeWindow(100.0, 200.0), margins=bound)

    assert (scan.start, scan.stop) == (0, len(f.data))  # nothing known: all of it is scanned
    assert f.largest <= bound.probe_max
    assert f.bytes_read < 8 * bound.probe_max  # each edge's bisection ends at its first probe


def test_edges_come_from_a_head_and_a_tail_chunk() -> None:
    f = File(steady(100_000))

    first, last = file_edges(f.read, len(f.data), FRAMING)

    assert (first, last) == (1_000.0, (1_000_000 + 99_999 * 100) / 1000)
    assert f.bytes_read <= 2 * Margins().edge


def test_overlap_allows_the_disorder_margin_and_unknown_edges() -> None:
    window = TimeWindow(100.0, 200.0)
    margin = Margins(seconds=5.0)

    assert not may_overlap(window, 206.0, 300.0, margin)
    assert may_overlap(window, 204.0, 300.0, margin)  # an entry may still be before 200
    assert not may_overlap(window, 10.0, 94.0, margin)
    assert may_overlap(window, 10.0, 96.0, margin)
    assert may_overlap(window, None, None, margin)
    assert may_overlap(TimeWindow(), 1.0, 2.0, margin)
