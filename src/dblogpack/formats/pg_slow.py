"""Slow entries of pg-stderr, a chunk at a time.

Per `LOG:  duration: ` hit, one compiled match reads the prefix, the duration, the logged
statement and, in the common shapes (the entry is its line and TAB continuations, or those plus
one follow-up line of its process, then another entry), where the entry ends; other shapes take
the general end search. The window is judged once per chunk from the extreme timestamp texts
(pg_times) unless the chunk straddles an edge. Summary groups gather the entries of one SQLSTATE
and statement fingerprint, found from each entry's statement text by a per-process cache.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, cast

from dblogpack.formats.base import ScanResult
from dblogpack.formats.pg_prefix import CompiledPrefix
from dblogpack.formats.pg_times import StampSpan
from dblogpack.formats.scanner import count_selected, window_bounds
from dblogpack.model import DetailGroup, EntryDetail, Query
from dblogpack.sqlshape import fingerprint_sql

if TYPE_CHECKING:
    from dblogpack.formats.pg_stderr import PgStderrFormat

NEEDLE = b"LOG:  duration: "
# What follows `duration: N ms  ` when the statement is logged with it (pg_stderr's
# _STATEMENT_LEAD, anchored right after the duration).
_LEAD = (
    rb"(?:statement|(?:execute|parse|bind) [^:\n]*|fastpath function call): "
    rb"|plan:\n\tQuery Text: "
)
_MESSAGE = rb"[^\n]*+(?:\n\t[^\n]*+)*+"
_NAMED_GROUP = re.compile(rb"\(\?P<(\w+)>")
# Statements parsed in earlier chunks are remembered up to this many, each up to _MAX_KEY bytes.
_KNOWN_LIMIT = 4096
_MAX_KEY = 4096
_DURATION = methodcaller("group", "duration")
_NEEDLE = re.compile(re.escape(NEEDLE))
_START = re.Match.start
_NEXT = (1).__add__

# An entry's key: the text that decides its statement, with the SQLSTATE when the prefix has one.
_Key = bytes | tuple[bytes, bytes]
# What the summary counts an entry as: its SQLSTATE and its statement's fingerprint.
_Kind = tuple[str | None, str | None]


def slow_entry_pattern(prefix: CompiledPrefix, primary: bytes, tabs_start_entries: bool) -> bytes:
    """The match a hit's line start gets: `_line`'s first parse (atomic, as `_line.match` reads
    it), the duration, the statement after its lead, the message with its TAB continuations, and
    the end: a newline before a primary line (`primary`, a lookahead body), or one follow-up line
    (its process in `f_` groups, compared by the caller) and then a primary line.

    When a TAB line may parse as a prefixed line, the general end search decides every end."""
    head = b"(?>" + prefix.line.pattern + rb")duration: (?P<duration>\d+(?:\.\d+)?) ms"
    body = head + b"(?P<key>(?:  (?P<lead>" + _LEAD + b"))?(?P<message>" + _MESSAGE + b"))"
    if tabs_start_entries:
        return body
    follow_up = _NAMED_GROUP.sub(rb"(?P<f_\1>", prefix.line.pattern)
    # The second branch runs only when the first failed: the next line is not a primary one.
    ends = b"\n(?=" + primary + b")|\n(?>" + follow_up + b")"
    return body + b"(?:" + ends + _MESSAGE + b"\n(?=" + primary + b"))?"


class SlowScan:
    """The slow-entry scan of one chunk for a `PgStderrFormat` (built once per format)."""

    __slots__ = ("_coded", "_format", "_known", "_match", "_process", "_span", "_stamp")

    def __init__(self, log_format: PgStderrFormat, pattern: bytes, span: StampSpan) -> None:
        self._format, self._span = log_format, span
        self._match = re.compile(pattern).match
        prefix = log_format.prefix
        self._stamp = prefix.timestamp_group
        self._process = prefix.process_group
        self._coded = "sqlstate" in prefix.line.groupindex
        # (SQLSTATE, fingerprint) by key, across chunks: a statement is parsed once.
        self._known: dict[_Key, _Kind] = {}

    def scan(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        heads = self._heads(buf, first)
        least = query.min_duration_ms or 0.0
        if least > 0:
            heads = [head for head in heads if float(head["duration"]) >= least]
        if not heads:
            return
        earliest, latest = window_bounds(query.window)
        span = self._span.span([head[self._stamp] for head in heads])
        if span is not None and span[0] >= earliest and span[1] < latest:
            times: list[float] | None = None
            low, high = span
        elif span is not None and (span[1] < earliest or span[0] >= latest):
            return
        else:
            heads, times = self._inside(heads, earliest, latest)
            if not times:
                return
            low, high = min(times), max(times)
        ends = self._ends(buf, heads)
        _add_spans(result.spans, heads, ends)
        count_selected(result, len(heads), low, high)
        if query.details:
            self._group(buf, heads, ends, times, result.details)

    def _heads(self, buf: bytes, first: int) -> list[re.Match[bytes]]:
        """Matches at the line starts of the hits whose `LOG` is the line's level.

        Calls go through map (C loops): no bytecode runs per hit until the level check."""
        hits = list(map(_START, _NEEDLE.finditer(buf, first)))
        # `first` starts a line, so the newline before it (if any) bounds the backward search.
        newlines = map(buf.rfind, repeat(b"\n"), repeat(max(first - 1, 0)), hits)
        heads = map(self._match, repeat(buf), map(_NEXT, newlines))
        return [
            head
            for head, at in zip(heads, hits, strict=True)
            if head is not None and head.start("level") == at
        ]

    def _inside(
        self, heads: list[re.Match[bytes]], earliest: float, latest: float
    ) -> tuple[list[re.Match[bytes]], list[float]]:
        """Heads whose own timestamp is inside the window, and those timestamps."""
        timestamp = self._format._timestamp
        kept, times = [], []
        for head in heads:
            ts = timestamp(head)
            if ts is not None and earliest <= ts < latest:
                kept.append(head)
                times.append(ts)
        return kept, times

    def _ends(self, buf: bytes, heads: list[re.Match[bytes]]) -> list[int]:
        """Where each entry ends: from its match when it found the end, else the general search."""
        end_after, hi = self._format._end_after, len(buf)
        process = self._process
        if process is None:
            return [
                end
                if (end := head.end()) > head.end("message")
                else end_after(buf, head.start(), None, hi)
                for head in heads
            ]
        other = "f_" + process
        return [
            end
            if (end := head.end()) > head.end("message") and head[other] in (None, head[process])
            else end_after(buf, head.start(), head[process], hi)
            for head in heads
        ]

    def _group(
        self,
        buf: bytes,
        heads: list[re.Match[bytes]],
        ends: list[int],
        times: list[float] | None,
        groups: list[DetailGroup],
    ) -> None:
        """Summary groups in order of first entry: entries the summary counts alike (same SQLSTATE
        and statement fingerprint) share one group, its details those of its first entry."""
        durations = list(map(float, map(_DURATION, heads)))
        kinds = self._kinds(buf, heads, ends, times, durations)
        values: defaultdict[_Kind, list[float]] = defaultdict(list)
        for kind, ms in zip(kinds, durations, strict=True):
            values[kind].append(ms)
        # Each kind's first index: later (reversed) pairs overwrite, so the smallest one stays.
        firsts = dict(zip(reversed(kinds), range(len(kinds) - 1, -1, -1), strict=True))
        for kind, index in sorted(firsts.items(), key=itemgetter(1)):
            ts = self._time(heads, times, index)
            detail = self._format._detail(
                buf, heads[index].start(), ends[index], ts, durations[index]
            )
            alike = values[kind]  # summed in entry order, as one at a time would
            groups.append(DetailGroup(detail, len(alike), sum(alike), max(alike)))

    def _kinds(
        self,
        buf: bytes,
        heads: list[re.Match[bytes]],
        ends: list[int],
        times: list[float] | None,
        durations: list[float],
    ) -> list[_Kind]:
        """Each entry's (SQLSTATE, fingerprint) from its key; a key is parsed once per process."""
        keys = self._keys(buf, heads, ends)
        kinds = list(map(self._known.get, keys))
        if None in kinds:
            for index, kind in enumerate(kinds):
                if kind is None:
                    ts = self._time(heads, times, index)
                    start, end = heads[index].start(), ends[index]
                    detail = self._format._detail(buf, start, end, ts, durations[index])
                    kinds[index] = self._learn(keys[index], detail)
        return cast(list[_Kind], kinds)

    def _keys(self, buf: bytes, heads: list[re.Match[bytes]], ends: list[int]) -> list[_Key]:
        """What decides an entry's statement and SQLSTATE: the text after the duration up to the
        message's end when a statement leads it, else up to the entry's end (a STATEMENT line)."""
        keys = [
            head["key"] if head.start("lead") >= 0 else buf[head.start("key") : end]
            for head, end in zip(heads, ends, strict=True)
        ]
        if self._coded:
            return [(head["sqlstate"], key) for head, key in zip(heads, keys, strict=True)]
        return keys

    def _learn(self, key: _Key, detail: EntryDetail) -> _Kind:
        statement = detail.statement
        kind = detail.code, fingerprint_sql(statement) if statement else None
        if len(key if isinstance(key, bytes) else key[1]) <= _MAX_KEY:
            if len(self._known) >= _KNOWN_LIMIT:
                self._known.clear()
            self._known[key] = kind
        return kind

    def _time(self, heads: list[re.Match[bytes]], times: list[float] | None, index: int) -> float:
        ts = times[index] if times is not None else self._format._timestamp(heads[index])
        assert ts is not None  # selected entries have a valid timestamp
        return ts


def _add_spans(spans: list[tuple[int, int]], heads: list[re.Match[bytes]], ends: list[int]) -> None:
    for head, end in zip(heads, ends, strict=True):
        start = head.start()
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
