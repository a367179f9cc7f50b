"""What the batched pg-stderr scans of slow and error entries share.

Per hit, one compiled match from the line start reads the prefix (`_line`'s first parse, atomic
as `_line.match` reads it), the message with its TAB continuations and, in the common shapes (then
a primary line, or up to FOLLOW_UPS follow-up lines of the same process and then a primary line),
where the entry ends; other shapes take the general end search. The window is judged once per
chunk from the extreme timestamp texts (pg_times) unless the chunk straddles an edge.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import TYPE_CHECKING

from dblogpack.formats.base import ScanResult
from dblogpack.formats.pg_prefix import CompiledPrefix
from dblogpack.formats.pg_times import StampSpan
from dblogpack.formats.scanner import count_selected, window_bounds
from dblogpack.model import TimeWindow

if TYPE_CHECKING:
    from dblogpack.formats.pg_stderr import PgStderrFormat

MESSAGE = rb"[^\n]*+(?:\n\t[^\n]*+)*+"
# Follow-up lines (DETAIL, HINT, STATEMENT...) an entry's match reads before giving the end
# search to the general loop (at least 2: match.group of several names returns a tuple).
FOLLOW_UPS = 3
_NAMED_GROUP = re.compile(rb"\(\?P<(\w+)>")
_NEXT = (1).__add__

Heads = list[re.Match[bytes]]


def end_pattern(prefix: CompiledPrefix, primary: bytes) -> bytes:
    """What follows a message when the match finds the entry's end: a newline before a primary
    line (`primary`, a lookahead body), or up to FOLLOW_UPS follow-up lines (each one's process in
    groups `f1_`, `f2_`... for the caller to compare) and then a primary line. Each branch is tried
    only when the one before failed, so a follow-up line is never a primary one."""
    pattern = b"\n(?=" + primary + b")"
    for n in range(FOLLOW_UPS, 0, -1):
        follow_up = _NAMED_GROUP.sub(b"(?P<f%d_\\1>" % n, prefix.line.pattern)
        pattern = b"\n(?=" + primary + b")|\n(?>" + follow_up + b")" + MESSAGE + b"(?:" + pattern
        pattern += b")"
    return b"(?:" + pattern + b"|)"


class BatchScan:
    """Selection of matched heads in one chunk: window, spans and entry ends."""

    __slots__ = ("_follow_ups", "_format", "_match", "_process", "_span", "_stamp")

    def __init__(self, log_format: PgStderrFormat, pattern: bytes, span: StampSpan) -> None:
        self._format, self._span = log_format, span
        self._match = re.compile(pattern).match
        prefix = log_format.prefix
        self._stamp = prefix.timestamp_group
        self._process = prefix.process_group
        # The process groups of the follow-up lines a match may read (FOLLOW_UPS of them, or
        # none when TAB lines may parse as prefixed and the general search finds every end).
        names = [f"f{n}_{self._process}" for n in range(1, FOLLOW_UPS + 1)]
        groups = re.compile(pattern).groupindex
        self._follow_ups = tuple(name for name in names if name in groups)

    def _matched(self, buf: bytes, first: int, hits: list[int]) -> list[re.Match[bytes] | None]:
        """The match at the start of each hit's line (`first` starts a line, so the newline
        before it, if any, bounds the backward search). Calls are mapped in C."""
        newlines = map(buf.rfind, repeat(b"\n"), repeat(max(first - 1, 0)), hits)
        return list(map(self._match, repeat(buf), map(_NEXT, newlines)))

    def _select(
        self, buf: bytes, heads: Heads, window: TimeWindow, result: ScanResult
    ) -> tuple[Heads, list[int], list[float] | None]:
        """The heads inside the window, their ends and (when judged one by one) their times;
        adds their spans, count and time range to `result`."""
        if not heads:
            return [], [], None
        earliest, latest = window_bounds(window)
        span = self._span.span([head[self._stamp] for head in heads])
        times: list[float] | None = None
        if span is not None and span[0] >= earliest and span[1] < latest:
            low, high = span
        elif span is not None and (span[1] < earliest or span[0] >= latest):
            return [], [], None
        else:
            heads, times = self._inside(heads, earliest, latest)
            if not times:
                return [], [], None
            low, high = min(times), max(times)
        ends = self._ends(buf, heads)
        _add_spans(result.spans, heads, ends)
        count_selected(result, len(heads), low, high)
        return heads, ends, times

    def _inside(self, heads: Heads, earliest: float, latest: float) -> tuple[Heads, list[float]]:
        """Heads whose own timestamp is inside the window, and those timestamps."""
        timestamp = self._format._timestamp
        kept, times = [], []
        for head in heads:
            ts = timestamp(head)
            if ts is not None and earliest <= ts < latest:
                kept.append(head)
                times.append(ts)
        return kept, times

    def _ends(self, buf: bytes, heads: Heads) -> list[int]:
        """Where each entry ends: from its match when it found the end and every follow-up line
        it read is of the entry's process, else from the general search."""
        end_after, hi, process = self._format._end_after, len(buf), self._process
        follow_ups = self._follow_ups if process is not None else ()
        ends = []
        for head in heads:
            end, own = head.end(), head[process] if process is not None else None
            if end == head.end("message") or (follow_ups and _others(head.group(*follow_ups), own)):
                end = end_after(buf, head.start(), own, hi)
            ends.append(end)
        return ends

    def _time(self, heads: Heads, times: list[float] | None, index: int) -> float:
        ts = times[index] if times is not None else self._format._timestamp(heads[index])
        assert ts is not None  # selected entries have a valid timestamp
        return ts


def _others(processes: tuple[bytes | None, ...], own: bytes | None) -> bool:
    """Whether a follow-up line the match read is of another process (None: not read)."""
    return processes.count(None) + processes.count(own) != len(processes)


def _add_spans(spans: list[tuple[int, int]], heads: Heads, ends: list[int]) -> None:
    for head, end in zip(heads, ends, strict=True):
        start = head.start()
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
