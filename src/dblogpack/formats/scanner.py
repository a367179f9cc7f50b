"""Selection shared by every format: window edges by bisection, candidates by compiled patterns.

A format supplies the primitives (next entry start, timestamp, entry end,
candidates of a kind); this class turns them into `LogFormat` with Python work
only for selected entries and for entries near the window edges.
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from collections.abc import Iterator

from dblogpack.formats.base import LogFormat, ScanResult
from dblogpack.formats.framing import Buffer, as_bytes, count_matches, last_match_start
from dblogpack.model import DetailGroup, EntryDetail, LogKind, LogWarning, Query, TimeWindow

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import ClassVar

# Entries of a file are assumed out of order by less than this much (writers race for the log
# by milliseconds). Entries within it of a window edge are each judged by their own timestamp;
# farther ones are judged by bisection, and a chunk whose first and last entries are farther
# inside the window than this is taken whole. (Between files, a rotated file's late entries,
# the selector's margin is 5 s.) At 5 s, the 1-hour window's pack judged ~320 entries one by
# one where it judges ~60 (2.6-6.1 ms against 0.5-0.6 ms, of a process that must take < 50 ms).
DISORDER_TOLERANCE_S = 1.0

# A garbage file must not produce a warning per line.
MAX_WARNINGS_PER_SCAN = 100

# (start, end, timestamp, duration or None, group key or None) of one selected entry. Entries
# with equal keys have equal details but for time, duration and message: one parse serves all.
Candidate = tuple[int, int, float, float | None, bytes | None]

# Bisection stops narrowing below this many bytes.
_BISECT_GRAIN = 512


class EntryScanner(LogFormat):
    """`LogFormat` built from a format's primitives; buffers are handled as bytes."""

    # ---- primitives a format provides -------------------------------------------------

    @abstractmethod
    def _start_at_or_after(self, buf: bytes, pos: int, hi: int) -> int | None:
        """Offset of the first entry start in buf[pos:hi]."""

    @abstractmethod
    def _last_start_before(self, buf: bytes, hi: int) -> int | None:
        """Offset of the last entry start in buf[:hi]."""

    @abstractmethod
    def _timestamp_at(self, buf: bytes, start: int) -> float | None:
        """Timestamp of the entry starting at `start`; None if it cannot be read."""

    @abstractmethod
    def _entry_end(self, buf: bytes, start: int, hi: int) -> int:
        """End of the entry starting at `start` (its last line's newline included)."""

    @abstractmethod
    def _count_entries(self, buf: bytes, lo: int, hi: int) -> int:
        """Number of entries starting in buf[lo:hi], at C speed."""

    @abstractmethod
    def _candidates(
        self, buf: bytes, kind: LogKind, window: TimeWindow, lo: int, hi: int
    ) -> Iterator[Candidate]:
        """(start, end, timestamp, duration, key) of the entries of `kind` in buf[lo:hi] inside
        `window`; the duration when it came cheaply with the match, else None; a key when the
        entry's details (but for time, duration and message) are known from its bytes alone."""

    @abstractmethod
    def _detail(
        self, buf: bytes, start: int, end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        """Parsed fields of one selected entry."""

    def _duration_ms(self, buf: bytes, start: int, end: int) -> float | None:
        """Duration of a slow entry; None when the entry is not a slow one after all."""
        return None

    def _garbage(self, buf: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """Byte ranges in buf[lo:hi] that belong to no entry (formats with one entry a line)."""
        return iter(())

    # ---- LogFormat ---------------------------------------------------------------------

    def complete_length(self, buf: Buffer) -> int:
        data = as_bytes(buf)
        last = self._last_start_before(data, len(data))
        return last or 0

    def next_entry(self, buf: Buffer, pos: int) -> tuple[int, float] | None:
        data = as_bytes(buf)
        start = self._start_at_or_after(data, pos, len(data))
        while start is not None:
            ts = self._timestamp_at(data, start)
            if ts is not None:
                return start, ts
            start = self._start_at_or_after(data, start + 1, len(data))
        return None

    def last_timestamp(self, buf: Buffer) -> float | None:
        data = as_bytes(buf)
        start = self._last_start_before(data, len(data))
        while start is not None:
            ts = self._timestamp_at(data, start)
            if ts is not None:
                return ts
            start = self._last_start_before(data, start)
        return None

    def scan(self, buf: Buffer, query: Query, file: str, base_offset: int) -> ScanResult:
        data = as_bytes(buf)
        result = ScanResult()
        warnings = _WarningLog(result, file, base_offset)
        first = self._start_at_or_after(data, 0, len(data))
        if first is None:
            warnings.add(0, len(data), data)
            return result
        warnings.add(0, first, data)
        garbage = list(self._garbage(data, first, len(data)))
        for lo, hi in garbage:
            warnings.add(lo, hi, data)
        warnings.close()
        after_begin, tail = self._inside(data, first, query)
        if query.kind is LogKind.ALL:
            self._scan_all(data, first, query, result, garbage, after_begin, tail)
        else:
            self._scan_kind(data, first, query, result)
        if query.window.end is not None:
            from_start = first if tail is None else tail
            stop = self._first_at_or_after(data, from_start, len(data), query.window.end)
            result.end_offset = stop if stop < len(data) else None
        return result

    def _inside(self, buf: bytes, first: int, query: Query) -> tuple[bool, int | None]:
        """How much of buf[first:] the window's edges may cut, as the times of its first and
        last entries say (entries are out of order by less than DISORDER_TOLERANCE_S, as
        bisection assumes): whether every entry is at or after its begin, and the start of the
        last entry before which every one is before its end (None: not known so).

        Most chunks of a window lie wholly inside it, and no bisection then looks for an edge:
        an all-entries package of a 1.1 GB file bisected three times a 4 MiB chunk (~0.4 ms).
        Only the last entry start the framing finds is known; lines after it may start entries
        of their own (pg-stderr's follow-up lines of another process), judged each.
        """
        begin, end = query.window
        if not query.ordered:
            return begin is None, None
        first_ts = None if begin is None else self._timestamp_at(buf, first)
        after_begin = begin is None or (
            first_ts is not None and first_ts - DISORDER_TOLERANCE_S >= begin
        )
        if end is None:
            return after_begin, None
        last = self._last_start_before(buf, len(buf))
        if last is None or last < first:
            return after_begin, None
        last_ts = self._timestamp_at(buf, last)
        before_end = last_ts is not None and last_ts + DISORDER_TOLERANCE_S <= end
        return after_begin, last if before_end else None

    # ---- selection ---------------------------------------------------------------------

    def _scan_kind(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        # The hot loop of slow and error scans: spans and times are kept in locals.
        slow, least = query.kind is LogKind.SLOW, query.min_duration_ms or 0.0
        spans, groups = result.spans, DetailGroups(self, buf, result.details)
        count, earliest, latest = 0, math.inf, -math.inf
        candidates = self._candidates(buf, query.kind, query.window, first, len(buf))
        for start, end, ts, known, key in candidates:
            duration = (
                known if known is not None or not slow else self._duration_ms(buf, start, end)
            )
            if slow and (duration is None or duration < least):
                continue
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            count += 1
            earliest, latest = min(earliest, ts), max(latest, ts)
            if query.details:
                groups.add(start, end, ts, duration, key)
        count_selected(result, count, earliest, latest)

    def _scan_all(
        self,
        buf: bytes,
        first: int,
        query: Query,
        result: ScanResult,
        garbage: list[tuple[int, int]],
        after_begin: bool,
        tail: int | None,
    ) -> None:
        """`after_begin` and `tail`: see _inside."""
        n, begin, end = len(buf), query.window.begin, query.window.end
        if not query.ordered and (begin is not None or end is not None):
            self._judge_each(buf, first, n, query, result)  # no bisection in disordered times
            return
        edge_a = (first, first)
        if not after_begin and begin is not None:
            edge_a = self._edge_zone(buf, first, begin)
        edge_b = (n, n)
        if tail is not None:
            edge_b = (tail, n)
        elif end is not None:
            edge_b = self._edge_zone(buf, first, end)
        if edge_a[1] >= edge_b[0]:
            self._judge_each(buf, edge_a[0], edge_b[1], query, result)
            return
        self._judge_each(buf, edge_a[0], edge_a[1], query, result)
        self._take_whole(buf, edge_a[1], edge_b[0], query, result, garbage)
        self._judge_each(buf, edge_b[0], edge_b[1], query, result)

    def _edge_zone(self, buf: bytes, first: int, edge: float) -> tuple[int, int]:
        """Entry-start offsets around a window edge inside which each entry is judged alone."""
        lo = self._first_at_or_after(buf, first, len(buf), edge - DISORDER_TOLERANCE_S)
        hi = self._first_at_or_after(buf, lo, len(buf), edge + DISORDER_TOLERANCE_S)
        return lo, hi

    def _judge_each(self, buf: bytes, lo: int, hi: int, query: Query, result: ScanResult) -> None:
        for start, end in self._walk(buf, lo, hi):
            ts = self._timestamp_at(buf, start)
            if ts is not None and query.window.contains(ts):
                _select(result, start, end, ts)
                if query.details:
                    duration = self._duration_ms(buf, start, end)
                    detail = self._detail(buf, start, end, ts, duration)
                    result.details.append(DetailGroup(detail, 1, duration or 0.0, duration or 0.0))

    def _take_whole(
        self,
        buf: bytes,
        lo: int,
        hi: int,
        query: Query,
        result: ScanResult,
        garbage: list[tuple[int, int]],
    ) -> None:
        """Every entry of buf[lo:hi] is inside the window: counted, not parsed.

        `garbage` (ranges belonging to no entry) is left out of the spans.
        """
        if query.details:
            self._judge_each(buf, lo, hi, query, result)
            return
        first_ts = self._timestamp_at(buf, lo)
        last = self._last_start_before(buf, hi)
        last_ts = self._timestamp_at(buf, last) if last is not None else None
        pos = lo
        for bad_lo, bad_hi in garbage:
            if lo <= bad_lo < hi:
                _add_span(result, pos, bad_lo)
                pos = bad_hi
        _add_span(result, pos, hi)
        result.entries += self._count_entries(buf, lo, hi)
        for ts in (first_ts, last_ts):
            if ts is not None:
                _widen(result, ts)

    def _walk(self, buf: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        start: int | None = lo
        while start is not None and start < hi:
            end = self._entry_end(buf, start, len(buf))
            yield start, end
            start = self._start_at_or_after(buf, end, len(buf))

    def _first_at_or_after(self, buf: bytes, lo: int, hi: int, when: float) -> int:
        """First entry start at or after `lo` whose time is >= `when`; len(buf) if none.

        `lo` must be an entry start. Bisection narrows [lo, hi) assuming time grows
        with offset (up to DISORDER_TOLERANCE_S, which callers handle).
        """
        while hi - lo > _BISECT_GRAIN:
            mid = (lo + hi) // 2
            found = self.next_entry(buf, mid)
            if found is None or found[0] >= hi or found[1] >= when:
                hi = mid
            else:
                lo = found[0]  # an entry start, so the walk below sees every entry after it
        for start, _ in self._walk(buf, lo, len(buf)):
            ts = self._timestamp_at(buf, start)
            if ts is not None and ts >= when:
                return start
        return len(buf)


class LineStartScanner(EntryScanner):
    """Entry starts found by two compiled patterns, for the text formats whose entries start a line.

    `_line_start` matches at an entry's first byte; `_next_start` matches the newline before one.
    """

    _line_start: ClassVar[re.Pattern[bytes]]
    _next_start: ClassVar[re.Pattern[bytes]]

    def _start_at_or_after(self, buf: bytes, pos: int, hi: int) -> int | None:
        if pos < hi and (pos == 0 or buf[pos - 1] == 10) and self._line_start.match(buf, pos):
            return pos
        found = self._next_start.search(buf, pos)
        return found.start() + 1 if found is not None and found.start() + 1 < hi else None

    def _last_start_before(self, buf: bytes, hi: int) -> int | None:
        found = last_match_start(self._next_start, buf, 0, hi)
        if found is not None:
            return found + 1
        return 0 if hi > 0 and self._line_start.match(buf, 0) else None

    def _count_entries(self, buf: bytes, lo: int, hi: int) -> int:
        count = count_matches(self._next_start, buf, max(lo - 1, 0), hi)
        return count + (1 if lo == 0 and self._line_start.match(buf, 0) else 0)


def window_bounds(window: TimeWindow) -> tuple[float, float]:
    """The window as `earliest <= t < latest` with infinite open edges (cheap to test inline)."""
    begin = -math.inf if window.begin is None else window.begin
    return begin, math.inf if window.end is None else window.end


def count_selected(result: ScanResult, count: int, earliest: float, latest: float) -> None:
    """Add `count` selected entries whose times span [earliest, latest] to `result`."""
    if count:
        result.entries += count
        _widen(result, earliest)
        _widen(result, latest)


def _select(result: ScanResult, start: int, end: int, ts: float) -> None:
    _add_span(result, start, end)
    result.entries += 1
    _widen(result, ts)


def _add_span(result: ScanResult, start: int, end: int) -> None:
    if start >= end:
        return
    spans = result.spans
    if spans and spans[-1][1] == start:
        spans[-1] = (spans[-1][0], end)
    else:
        spans.append((start, end))


def _widen(result: ScanResult, ts: float) -> None:
    if result.first_ts is None or ts < result.first_ts:
        result.first_ts = ts
    if result.last_ts is None or ts > result.last_ts:
        result.last_ts = ts


class DetailGroups:
    """Details of selected entries, grouped by their candidate key within one scan."""

    __slots__ = ("_buf", "_by_key", "_format", "_groups")

    def __init__(self, log_format: EntryScanner, buf: bytes, groups: list[DetailGroup]) -> None:
        self._format, self._buf, self._groups = log_format, buf, groups
        self._by_key: dict[bytes, DetailGroup] = {}

    def add(
        self, start: int, end: int, ts: float, duration: float | None, key: bytes | None
    ) -> None:
        ms = duration or 0.0
        group = None if key is None else self._by_key.get(key)
        if group is None:
            detail = self._format._detail(self._buf, start, end, ts, duration)
            group = DetailGroup(detail, 0, 0.0, ms)
            self._groups.append(group)
            if key is not None:
                self._by_key[key] = group
        group.count += 1
        group.total_ms += ms
        if ms > group.max_ms:
            group.max_ms = ms


class _WarningLog:
    """Unparseable byte ranges as warnings: at most MAX_WARNINGS_PER_SCAN, then one summary."""

    def __init__(self, result: ScanResult, file: str, base_offset: int) -> None:
        self._result, self._file, self._base = result, file, base_offset
        self._dropped = 0

    def add(self, lo: int, hi: int, buf: bytes) -> None:
        if hi <= lo or not buf[lo:hi].strip():
            return
        if len(self._result.warnings) >= MAX_WARNINGS_PER_SCAN:
            self._dropped += 1
            return
        sample = buf[lo : min(hi, lo + 80)].decode("utf-8", "replace").rstrip("\n")
        detail = f"{hi - lo} bytes that are not a log entry: {sample!r}"
        self._result.warnings.append(LogWarning(self._file, self._base + lo, "unparseable", detail))

    def close(self) -> None:
        if self._dropped:
            detail = f"{self._dropped} more unparseable ranges in this chunk were not listed"
            self._result.warnings.append(LogWarning(self._file, self._base, "unparseable", detail))
