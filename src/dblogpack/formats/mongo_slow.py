"""mongo-json slow queries selected a chunk at a time, with few Python calls per entry.

Entries are found with bytes.find of `"id":51803,`; each hit costs a line-bounds lookup, one head
match and a duration lookup near the line's end. For the summary, an entry's details are keyed by
its `attr` up to the command with every digit masked: entries with one key differ only in digits,
so once a key is learnt (one JSON parse of one entry) the others need no parse at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from dblogpack.formats.base import ScanResult
from dblogpack.formats.json_lines import dump_json, load_document
from dblogpack.formats.scanner import count_selected, window_bounds
from dblogpack.model import DetailGroup, EntryDetail, Query

NEEDLE = b'"id":51803,'
# The head of a slow entry; `attr` (the offset of attr's opening brace) only in the standard
# layout, where the summary key applies. Minutes and seconds past 59 are no time: such lines are
# not selected, as a head whose time does not parse is not.
_HEAD = re.compile(
    rb'\{"t":\{"\$date":(?:"(?P<date>(?P<sec>\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d)(?:\.(?P<frac>\d++))?'
    rb'(?P<off>[^"\n]*+))"|\{"\$numberLong":"(?P<ms>-?\d+)"\})\},\s*+'
    rb'"s":"(?P<s>[A-Z]\d?)",\s*+"c":"[^"\n]*+",\s*+"id":51803,(?P<idend>)'
    rb'(?:\s*+"ctx":"[^"\\\n]*+",\s*+"msg":"(?P<msg>[^"\\\n]*+)",\s*+"attr":(?P<attr>)(?=\{))?'
)
# Per-line fields taken at C speed (map) when a chunk's times are judged together.
_DATE, _OFFSET, _HOUR = itemgetter("date"), itemgetter("off"), itemgetter(slice(0, 13))
_DURATION = b'"durationMillis":'
_NUMBER = re.compile(rb"\d+(?:\.\d+)?")
# The duration is the last member of a slow entry's attr: it is looked for near the end first.
_TAIL_BYTES = 64
# In MongoDB's slow-query layout the command is followed by planSummary.
_AFTER_COMMAND = b',"planSummary":'
_COMMAND = b'"command":'
# Every digit masked alike: lines differing only in digits get one key.
MASK_DIGITS = bytes.maketrans(b"0123456789", b"\0" * 10)
# Masked numbers a JSON parser may refuse (past 64 bits) or write back differently (fractions,
# exponents): keys holding them are not learnt.
_UNSAFE_NUMBERS = re.compile(rb"\0{19}|\0[.eE]")
# Keys are a few hundred bytes: 4096 of them stay a megabyte or two (RSS stays bounded).
_CACHE_LIMIT = 4096
_UNSEEN = b"unseen"  # (never a command: a command starts with a severity and a quote)
_MET_ONCE = b""

# (first entry's detail) of one selected line: buf, start, end, timestamp, duration.
DetailOf = Callable[[bytes, int, int, float, float | None], EntryDetail]
TimeOf = Callable[["re.Match[bytes]"], float | None]
SecondsOf = Callable[[bytes, bytes], int]
# Indices of the chosen lines; every line's time when it had to be read; earliest and latest.
_Window = tuple[range | list[int], list[float | None] | None, tuple[float, float]]


@dataclass(slots=True)
class _Lines:
    """Slow lines of one chunk, in order: their head matches, ends, durations and summary keys."""

    heads: list[re.Match[bytes]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)


class SlowQueries:
    """Selects slow entries of whole-line buffers into a ScanResult; learnt keys are kept."""

    def __init__(self, detail_of: DetailOf, time_of: TimeOf, seconds_of: SecondsOf) -> None:
        self._detail_of, self._time_of, self._seconds_of = detail_of, time_of, seconds_of
        # masked key → severity and masked command when its entries are summarised alike (see
        # _learnable), None when not, _MET_ONCE before it is learnt.
        self._learnt: dict[bytes, bytes | None] = {}

    def scan(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        lines = self._lines(buf, first, len(buf), query.min_duration_ms or 0.0, query.details)
        chosen, times, (earliest, latest) = self._in_window(lines, query)
        spans, count = result.spans, 0
        for i in chosen:
            start, end = lines.heads[i].start(), lines.ends[i]
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            count += 1
        count_selected(result, count, earliest, latest)
        if query.details:
            result.details.extend(self._groups(buf, lines, chosen, times))

    # ---- finding the lines -------------------------------------------------------------

    def _lines(self, buf: bytes, lo: int, hi: int, least: float, keyed: bool) -> _Lines:
        # The hot loop: a few C calls a line and no Python function call (measured 8% faster).
        lines = _Lines()
        heads, ends, durations, keys = lines.heads, lines.ends, lines.durations, lines.keys
        find, rfind, head_at, number_at = buf.find, buf.rfind, _HEAD.match, _NUMBER.match
        # Lines with a backslash or NUL are never keyed: a chunk without any spares a test a line.
        plain = find(b"\\", lo, hi) < 0 and find(b"\0", lo, hi) < 0
        at = find(NEEDLE, lo, hi)
        while at >= 0:
            start = rfind(b"\n", lo, at) + 1 or lo
            end = find(b"\n", at, hi) + 1 or hi
            head = head_at(buf, start)
            # A hit elsewhere than the head's own id is not a slow entry (nor is any later hit
            # of the same line: the head comes first).
            if head is not None and head.start("idend") == at + len(NEEDLE):
                near = end - _TAIL_BYTES
                found = rfind(_DURATION, near if near > at else at, end)
                if found < 0:
                    found = rfind(_DURATION, at, end)
                number = number_at(buf, found + len(_DURATION)) if found >= 0 else None
                if number is not None and (ms := float(number[0])) >= least:
                    heads.append(head)
                    ends.append(end)
                    durations.append(ms)
                    key = None
                    attr = head.start("attr")
                    if keyed and attr >= 0 and buf.endswith(b"}}\n", start, end):
                        cut = find(_AFTER_COMMAND, attr, end)
                        # No error code may hide after the key's region: attr's `code`, or its
                        # `error`'s (which holds `"code":` too; an escaped name, a backslash).
                        if cut >= 0 and find(b'"code":', cut, end) < 0:
                            if plain or _plain(buf, start, end):
                                key = head["s"] + buf[attr:cut].translate(MASK_DIGITS)
                    keys.append(key)
            at = find(NEEDLE, end, hi)
        return lines

    # ---- the window ----------------------------------------------------------------------

    def _in_window(self, lines: _Lines, query: Query) -> _Window:
        """The lines inside the window; times in one format and offset order as their text does,
        so the chunk's earliest and latest decide for all lines whether the window holds them."""
        bounds = self._uniform_bounds(lines)
        earliest, latest = window_bounds(query.window)
        if bounds is not None and earliest <= bounds[0] and bounds[1] < latest:
            return range(len(lines.heads)), None, bounds
        times = [self._time_of(head) for head in lines.heads]
        chosen = [i for i, ts in enumerate(times) if ts is not None and earliest <= ts < latest]
        picked = [ts for i in chosen if (ts := times[i]) is not None]
        return chosen, times, (min(picked, default=math.inf), max(picked, default=-math.inf))

    def _uniform_bounds(self, lines: _Lines) -> tuple[float, float] | None:
        """Earliest and latest time of the lines when all are valid ISO times alike, else None."""
        heads = lines.heads
        if not heads:
            return None
        dates = list(map(_DATE, heads))
        offsets = set(map(_OFFSET, heads))
        if None in dates or len(offsets) != 1 or len(set(map(len, dates))) != 1:
            return None
        offset = offsets.pop()
        try:
            # Minutes and seconds are in range (_HEAD): a line's time parses when its hour does.
            for hour in set(map(_HOUR, dates)):
                self._seconds_of(hour + b":00:00", offset)
        except ValueError:
            return None
        first, last = min(dates), max(dates)
        low = self._time_of(heads[dates.index(first)])
        high = self._time_of(heads[dates.index(last)])
        return None if low is None or high is None else (low, high)

    # ---- details -------------------------------------------------------------------------

    def _groups(
        self,
        buf: bytes,
        lines: _Lines,
        chosen: range | list[int],
        times: list[float | None] | None,
    ) -> list[DetailGroup]:
        """The chosen lines' details in first-seen order; lines of learnt keys grouped by their
        severity and masked command (attr's other members do not change a summary)."""
        groups: list[DetailGroup] = []
        by_command: dict[bytes, DetailGroup] = {}
        for i in chosen:
            key, ms = lines.keys[i], lines.durations[i]
            command = None if key is None else self._command_of(buf, lines.heads[i], key)
            group = None if command is None else by_command.get(command)
            if group is None:
                detail = self._first_detail(buf, lines, i, times, command is not None)
                group = DetailGroup(detail, 0, 0.0, ms)
                groups.append(group)
                if command is not None:
                    by_command[command] = group
            group.count += 1
            group.total_ms += ms
            if ms > group.max_ms:
                group.max_ms = ms
        return groups

    def _command_of(self, buf: bytes, head: re.Match[bytes], key: bytes) -> bytes | None:
        """Severity and masked command of a learnt key, None if not alike. A key is learnt when
        met a second time: a line whose key is met once costs one parse, as it would alone."""
        command = self._learnt.get(key, _UNSEEN)
        if command is _UNSEEN:
            if len(self._learnt) >= _CACHE_LIMIT:
                self._learnt.clear()
            self._learnt[key] = _MET_ONCE
            return None
        if command is _MET_ONCE:
            attr = head.start("attr")
            region = buf[attr : buf.find(_AFTER_COMMAND, attr)]
            command = None
            if _learnable(region, key):
                command = head["s"] + region[region.find(_COMMAND) :].translate(MASK_DIGITS)
            self._learnt[key] = command
        return command

    def _first_detail(
        self,
        buf: bytes,
        lines: _Lines,
        i: int,
        times: list[float | None] | None,
        alike: bool,
    ) -> EntryDetail:
        head, end, ms = lines.heads[i], lines.ends[i], lines.durations[i]
        ts = times[i] if times is not None else self._time_of(head)
        assert ts is not None  # chosen lines have a time
        if not alike:
            return self._detail_of(buf, head.start(), end, ts, ms)
        # In a learnt key the first `"command":` is attr's own, and the command ends the region.
        attr = head.start("attr")
        command = buf[buf.find(_COMMAND, attr) + len(_COMMAND) : buf.find(_AFTER_COMMAND, attr)]
        return EntryDetail(
            timestamp=ts,
            severity=head["s"].decode(),
            duration_ms=ms,
            statement=command.decode(),
            code=None,
            # As a parse would read it: invalid UTF-8 replaced (a quote ends any sequence).
            message=head["msg"].decode("utf-8", "replace"),
        )


def _plain(buf: bytes, start: int, end: int) -> bool:
    """Whether the line has no backslash (an escape may spell a digit) and no NUL (the mask)."""
    return buf.find(b"\\", start, end) < 0 and buf.find(b"\0", start, end) < 0


def _learnable(region: bytes, key: bytes) -> bool:
    """Whether every region with this masked key (attr up to the end of the command, without
    attr's closing brace) is summarised alike, judged from one of them.

    Regions of one key hold the same bytes but for their digits. They are
    alike when there is no error code, the command ends the region and its first `"command":`
    is attr's own, the command's text is what orjson writes back (so it is the statement as it
    stands), and its keys and first value hold no digit (so digits are values, which a
    fingerprint replaces).
    """
    if _UNSAFE_NUMBERS.search(key):
        return False
    try:
        region.decode()
    except UnicodeDecodeError:
        return False
    attr = load_document(region + b"}")
    if attr is None or "code" in attr or "error" in attr:
        return False
    command = attr.get("command")
    if not isinstance(command, dict) or not _digit_free_keys(command, first=True):
        return False
    text = _COMMAND + dump_json(command).encode()
    return region.endswith(text) and region.find(_COMMAND) == len(region) - len(text)


def _digit_free_keys(value: Any, first: bool = False) -> bool:
    if isinstance(value, dict):
        for index, (key, item) in enumerate(value.items()):
            if _has_digit(key) or not _digit_free_keys(item):
                return False
            if first and index == 0 and isinstance(item, str) and _has_digit(item):
                return False
        return True
    if isinstance(value, list):
        return all(_digit_free_keys(item) for item in value)
    return True


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)
