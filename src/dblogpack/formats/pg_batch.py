"""What the batched pg-stderr scans of slow and error entries share.

Per hit, one compiled match from the line start reads the prefix (`_line`'s first parse, atomic
as `_line.match` reads it), the message with its TAB continuations and, in the common shapes (then
a primary line, or up to FOLLOW_UPS follow-up lines of the same process and then a primary line),
where the entry ends; other shapes take the general end search. The window is judged once per
chunk from the extreme timestamp texts (pg_times) unless the chunk straddles an edge.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable
from itertools import chain, compress, count, repeat, starmap
from operator import add, attrgetter, eq, itemgetter, ne
from typing import TYPE_CHECKING, TypeVar, cast

from stringzilla import rfind

from dblogpack.formats.base import ScanResult
from dblogpack.formats.pg_prefix import (
    CompiledPrefix,
    always_set,
    captured,
    process_in_place,
    referring_to_process,
    unread_names,
)
from dblogpack.formats.pg_times import StampSpan
from dblogpack.formats.scanner import count_selected, window_bounds
from dblogpack.model import DetailGroup, Query, TimeWindow

if TYPE_CHECKING:
    from dblogpack.formats.pg_stderr import PgStderrFormat

MESSAGE = rb"[^\n]*+(?:\n\t[^\n]*+)*+"
# What follows the level word of a line's head (pg_prefix.LEVEL): the message starts after it.
LEVEL_END = b":  "
# Follow-up lines (DETAIL, HINT, STATEMENT...) an entry's match reads before giving the end
# search to the general loop (at least 2: match.group of several names returns a tuple). A
# deadlock ERROR has four (DETAIL, HINT, CONTEXT, STATEMENT), five with LOCATION lines: at 3,
# the general loop took a fifth of the error scan of pg-stderr-1g.log (22.0 -> 18.7 M
# instructions a 4 MiB chunk at 5; each level adds ~0.8 ms to the pattern's compile, once).
FOLLOW_UPS = 5
# Match methods mapped over a batch of matches: C calls, no Python frame per match. A group's
# text is read with an itemgetter of its number (`match[n]`): Match.group takes its arguments as
# a tuple, built anew for every call.
_START, _END = re.Match.start, re.Match.end
_LAST = attrgetter("lastindex")

Heads = list[re.Match[bytes]]
_Kind = TypeVar("_Kind", bound=Hashable)


def total(pattern: bytes) -> bytes:
    """`pattern` or, where it fails, an empty match (all groups unset): `map` needs no None."""
    return b"(?:" + pattern + b"|)"


def end_pattern(prefix: CompiledPrefix, primary: bytes) -> bytes:
    """What follows a message when the match finds the entry's end: a newline before a primary
    line (`primary`, a lookahead body), or up to FOLLOW_UPS follow-up lines of the entry's process
    and then a primary line. Each branch is tried only when the one before failed, so a follow-up
    line is never a primary one. A follow-up line's process is the entry's when the prefix puts it
    in place (pg_prefix.process_in_place: then a backreference to the entry's matches it, and one
    of another process ends the match's reading); else each one's is read into groups `f1_`,
    `f2_`... for the caller to compare (comparing them took ~1 M instructions a 4 MiB chunk of
    the slow pg-stderr-1g.log package, where 22% of the entries have a DETAIL line).

    The match's last closed group (`lastindex`) tells the caller what it read: `said` (first,
    empty) when it found the end without reading a process group, `open` when it found no end,
    or the process group of the last follow-up line read."""
    pattern = b"\n(?=" + primary + b")"
    name = prefix.process_group
    process = set() if name is None else {name}
    # The caller takes an unset process group for "no follow-up line read": when the process may
    # be unset (its escape comes after %q), follow-up lines are left to the general search.
    follow_ups = FOLLOW_UPS if name is None or always_set(prefix, name) else 0
    in_place = name is not None and process_in_place(prefix)
    for n in range(follow_ups, 0, -1):
        if in_place:
            follow_up = captured(referring_to_process(prefix.line.pattern, prefix), ())
        else:
            follow_up = captured(prefix.line.pattern, process, f"f{n}_")
        follow_up = unread_names(follow_up)
        pattern = b"\n(?=" + primary + b")|\n(?>" + follow_up + b")" + MESSAGE + b"(?:" + pattern
        pattern += b")"
    return b"(?P<said>)(?:" + pattern + b"|(?P<open>))"


def head_pattern(prefix: CompiledPrefix) -> bytes:
    """A line's prefix and level as `_line.match` parses it first (an atomic group), capturing
    only what the scans read: the timestamp, the process, the level and the SQLSTATE."""
    read = {prefix.timestamp_group, prefix.process_group, "level", "sqlstate"} - {None}
    return b"(?>" + unread_names(captured(prefix.line.pattern, read)) + b")"


def first_entries(kinds: list[_Kind], distinct: Iterable[_Kind]) -> list[tuple[int, _Kind]]:
    """Each kind with the index of its first entry, in order of first entry; `distinct`: the
    kinds once each in that order (the keys of a dict filled in entry order)."""
    # Each index is searched from the one before's, so the searches cover the list once in all
    # (a dict of every entry's index built from the last one back, then sorted, cost 0.6 M
    # instructions a 4 MiB chunk of the slow pg-stderr-1g.log package).
    firsts, index = [], 0
    for kind in distinct:
        index = kinds.index(kind, index)
        firsts.append((index, kind))
    return firsts


class BatchScan(ABC):
    """Selection of matched heads in one chunk: window, spans and entry ends; a subclass finds
    the heads of its kind and groups the selected entries for the summary."""

    __slots__ = (
        "_follow_ups",
        "_format",
        "_level",
        "_match",
        "_message",
        "_open",
        "_pattern",
        "_process",
        "_said",
        "_span",
        "_stamp",
        "_stamps",
    )

    def __init__(self, log_format: PgStderrFormat, pattern: bytes, span: StampSpan) -> None:
        self._format, self._span = log_format, span
        compiled = self._pattern = re.compile(total(pattern))
        self._match = compiled.match
        # Groups are read by number: a name costs a dictionary lookup per entry.
        groups, prefix = compiled.groupindex, log_format.prefix
        self._stamp, self._level, self._message = (
            groups[prefix.timestamp_group],
            groups["level"],
            groups["message"],
        )
        self._stamps = itemgetter(self._stamp)
        process = prefix.process_group
        self._process = None if process is None else groups[process]
        # The process groups of the follow-up lines a match may read (FOLLOW_UPS of them, or
        # none: when the match compares the processes itself, see end_pattern, and when TAB
        # lines may parse as prefixed and the general search finds every end).
        names = [f"f{n}_{process}" for n in range(1, FOLLOW_UPS + 1)]
        self._follow_ups = tuple(groups[name] for name in names if name in groups)
        # None: no end pattern, the general search finds every end.
        self._said, self._open = groups.get("said"), groups.get("open")

    def scan(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        heads, ends, times = self._select(buf, self._heads(buf, first, query), query.window, result)
        if heads and query.details:
            result.details.extend(self._groups(buf, heads, ends, times))

    @abstractmethod
    def _heads(self, buf: bytes, first: int, query: Query) -> Heads:
        """Matches at the line starts of the chunk's entries of the scan's kind."""

    @abstractmethod
    def _groups(
        self, buf: bytes, heads: Heads, ends: list[int], times: list[float] | None
    ) -> list[DetailGroup]:
        """The summary groups of the selected entries (`_select`'s heads, ends and times), in
        order of first entry."""

    def _matched(self, buf: bytes, first: int, hits: list[int]) -> Heads:
        """The matches at the start of each hit's line whose level starts at the hit."""
        # `first` starts a line, so the newline before it (if any) bounds the backward search
        # (stringzilla's rfind: 0.10 ms a 4 MiB chunk's hits, bytes.rfind's 0.18).
        newlines = map(rfind, repeat(buf), repeat(b"\n"), repeat(max(first - 1, 0)), hits)
        starts = map(add, newlines, repeat(1))  # operator.add: no method-wrapper call per hit
        heads = cast(Heads, list(map(self._match, repeat(buf), starts)))
        # A line that does not parse matches the pattern's empty alternative: its level is at -1.
        levels = map(_START, heads, repeat(self._level))
        return list(compress(heads, map(eq, levels, hits)))

    def _select(
        self, buf: bytes, heads: Heads, window: TimeWindow, result: ScanResult
    ) -> tuple[Heads, list[int], list[float] | None]:
        """The heads inside the window, their ends and (when judged one by one) their times;
        adds their spans, count and time range to `result`."""
        if not heads:
            return [], [], None
        earliest, latest = window_bounds(window)
        span = self._span.span(list(map(self._stamps, heads)))
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
        ends = list(map(_END, heads))
        if self._said is None:
            self._search_ends(buf, heads, ends, range(len(heads)))
            return ends
        lasts = list(map(_LAST, heads))
        said = lasts.count(self._said)
        if said < len(lasts):
            self._search_ends(buf, heads, ends, self._suspects(heads, lasts, len(lasts) - said))
        return ends

    def _suspects(self, heads: Heads, lasts: list[int | None], unsaid: int) -> list[int]:
        """The entries whose match found no end or read a follow-up line of another process
        (`unsaid` of them did not find the end without reading one).

        A match that read follow-up lines closed the process group of the last one: when that is
        the first (one line read, the common case), the processes are compared in C, and the
        others are looked at only when there are any (by C-level passes over every entry: a
        loop over those that read follow-up lines cost ~0.5 M instructions a 4 MiB chunk of
        pg-stderr-1g.log, where 22% of the slow entries read one, when its scan compared
        processes here: see end_pattern)."""
        if not self._follow_ups:  # no process groups: every one of them found no end
            return list(compress(count(), map(ne, lasts, repeat(self._said))))
        first, process = self._follow_ups[0], self._process or 0
        ones = list(compress(count(), map(eq, lasts, repeat(first))))
        suspects = []
        if len(ones) < unsaid:
            suspects = [
                index
                for index, last in enumerate(lasts)
                if last != self._said
                and last != first
                and (last == self._open or self._others(heads[index]))
            ]
        if ones:
            processes = map(itemgetter(first, process), map(heads.__getitem__, ones))
            suspects.extend(compress(ones, starmap(ne, processes)))
        return suspects

    def _others(self, head: re.Match[bytes]) -> bool:
        """Whether a follow-up line the match read is of another process than the entry's."""
        processes, own = head.group(*self._follow_ups), head.group(self._process or 0)
        return processes.count(None) + processes.count(own) != len(processes)

    def _search_ends(
        self, buf: bytes, heads: Heads, ends: list[int], indices: Iterable[int]
    ) -> None:
        """The general end search for the entries at `indices`."""
        end_after, hi, process = self._format._end_after, len(buf), self._process
        for index in indices:
            head = heads[index]
            own = head.group(process) if process is not None else None
            ends[index] = end_after(buf, head.start(), own, hi)

    def _time(self, heads: Heads, times: list[float] | None, index: int) -> float:
        ts = times[index] if times is not None else self._format._timestamp(heads[index])
        assert ts is not None  # selected entries have a valid timestamp
        return ts


def _add_spans(spans: list[tuple[int, int]], heads: Heads, ends: list[int]) -> None:
    """Spans of the entries, adjacent ones merged (mapped in C)."""
    starts = list(map(_START, heads))
    if spans and spans[-1][1] == starts[0]:
        starts[0] = spans.pop()[0]
    # A run of adjacent entries starts where the entry before did not end, and ends where the
    # entry after does not start.
    apart = list(map(ne, starts[1:], ends[:-1]))
    run_starts = compress(starts, chain((True,), apart))
    run_ends = compress(ends, chain(apart, (True,)))
    spans.extend(zip(run_starts, run_ends, strict=True))
