"""The slow lines of a mongo-json chunk, found by a compiled loop (formats/_scan.c) that follows
slow_lines_reference here line for line.

A hit of `"id":51803,` is a candidate. Its line up to `,"planSummary":` with every digit written
as 0 is its *shape*: lines of one shape differ only in digits, so what the head pattern says of
one of them (the id is the head's own, where the date ends, the summary key) holds for all, but
for the range of minutes and seconds, checked for each line. A shape is learnt from the first
line that has it, judged alone (one head match, as every line was before); its later lines need
no pattern at all. What a shape cannot tell (a duration elsewhere than at the end, a code or an
escape after the key's region) is found as the per-line judgement finds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stringzilla import find as find_needle
from stringzilla import find_first_of, translate

from dblogpack.records import NamedTuple

NEEDLE = b'"id":51803,'
# The head of a slow entry; `attr` (the offset of attr's opening brace) only in the standard
# layout, where the summary key applies. Minutes and seconds past 59 are no time: such lines are
# not selected, as a head whose time does not parse is not.
HEAD = re.compile(
    rb'\{"t":\{"\$date":(?:"(?P<date>(?P<sec>\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d)(?:\.(?P<frac>\d++))?'
    rb'(?P<off>[^"\n]*+))"|\{"\$numberLong":"(?P<ms>-?\d+)"\})\},\s*+'
    rb'"s":"(?P<s>[A-Z]\d?)",\s*+"c":"[^"\n]*+",\s*+"id":51803,(?P<idend>)'
    rb'(?:\s*+"ctx":"[^"\\\n]*+",\s*+"msg":"(?P<msg>[^"\\\n]*+)",\s*+"attr":(?P<attr>)(?=\{))?'
)
_DURATION = b'"durationMillis":'
_NUMBER = re.compile(rb"\d+(?:\.\d+)?")
# The duration is the last member of a slow entry's attr: it is looked for near the end first.
_TAIL_BYTES = 64
# The usual end of a slow entry: its duration, whole digits, closing attr and the entry. One
# search of the last bytes (2.4k instructions a line) in place of an rfind of the key, an
# endswith, a slice and isdigit (4.2k).
_TAIL = re.compile(rb'"durationMillis":(\d++)\}\}\n\Z')
# In MongoDB's slow-query layout the command is followed by planSummary.
AFTER_COMMAND = b',"planSummary":'
CODE = b'"code":'
# Every digit masked alike: lines differing only in digits get one key.
MASK_DIGITS = bytes.maketrans(b"0123456789", b"\0" * 10)
# A shape writes digits as 0 (not NUL: no other byte shares a digit's mask, a NUL stays itself).
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"0" * 9)
# Where the tens of the minutes and of the seconds sit in a line whose date is ISO text: after
# `{"t":{"$date":"` (15 bytes) and `YYYY-MM-DDTHH:` / `YYYY-MM-DDTHH:MM:`.
_DATE_AT, _MINUTE_TENS, _SECOND_TENS = 15, 29, 32
_SIXTY = ord("6")
_NEWLINE = ord("\n")
# A backslash (an escape may spell a digit) or a NUL (the mask) in a line: see _plain.
_UNPLAIN = b"\\\0"
# Shapes are a few hundred bytes: 4096 of them stay a megabyte or two (RSS stays bounded).
_SHAPES_LIMIT = 4096


class _Shape(NamedTuple):
    """What the head pattern found in a line of this shape, as offsets from the line's start."""

    id_at: int
    date_end: int
    zone_at: int  # where the date's offset begins, from the date's start
    # Severity + attr up to the command with digits masked: the summary key (None: not plain).
    key: bytes | None


class Lines(NamedTuple):
    """Slow lines of one chunk, in order: their starts, ends, durations, summary keys (None: not
    summarised alike), date texts (ISO, or the digits of epoch milliseconds) and where an ISO
    date's offset begins (-1: epoch milliseconds)."""

    starts: list[int]
    ends: list[int]
    durations: list[float]
    keys: list[bytes | None]
    dates: list[bytes]
    zones: list[int]


# One line found: start, end, duration, key, date, zone (as Lines holds them).
Row = tuple[int, int, float, bytes | None, bytes, int]
# The lines found as columns, as Lines holds them.
Columns = tuple[list[int], list[int], list[float], list[bytes | None], list[bytes], list[int]]
Shapes = dict[bytes, _Shape]
# A line judged alone: buf, start, at (its hit), end, least, keyed → its row (its key final), or
# None.
Judge = Callable[[bytes, int, int, int, float, bool], Row | None]
DurationOf = Callable[[bytes, int, int], float | None]
# slow_lines(buf, lo, hi, least, keyed, shapes, judge, duration_of): slow_lines_reference's
# signature, which the compiled loop shares.
FindSlowLines = Callable[[bytes, int, int, float, bool, Shapes, Judge, DurationOf], Columns]


class SlowLines:
    """Finds slow lines; the shapes learnt are kept from chunk to chunk."""

    def __init__(self) -> None:
        self._shapes: Shapes = {}

    def find(self, buf: bytes, lo: int, hi: int, least: float, keyed: bool) -> Lines:
        """The slow lines of buf[lo:hi] (lo is a line start) whose duration is at least `least`;
        with `keyed`, their summary keys."""
        # The compiled loop is slow_lines_reference's, line for line (test_compiled_scan.py):
        # ~1 against ~3 us a slow line (0.69-0.78 against 1.95-2.13 ms a 4 MiB chunk).
        columns = slow_lines(buf, lo, hi, least, keyed, self._shapes, self._judge, last_duration)
        return Lines(*columns)

    def _judge(
        self, buf: bytes, start: int, at: int, end: int, least: float, keyed: bool
    ) -> Row | None:
        """One line judged alone, its shape learnt when it has the standard layout."""
        head = HEAD.match(buf, start)
        # A hit elsewhere than the head's own id is not a slow entry (nor is any later hit of
        # the same line: the head comes first).
        if head is None or head.start("idend") != at + len(NEEDLE):
            return None
        key = None
        attr = head.start("attr")
        cut = buf.find(AFTER_COMMAND, attr, end) if attr >= 0 else -1
        if cut >= 0 and head["date"] is not None and len(head["s"]) == 1:
            # (A severity with a digit, D1-D5, is not the same in all lines of a shape.)
            self._learn(buf, head, at, cut)
        duration = last_duration(buf, at, end)
        if duration is None or duration < least:
            return None
        if keyed and cut >= 0 and buf.endswith(b"}}\n", start, end):
            # No error code may hide after the key's region: attr's `code`, or its `error`'s
            # (which holds `"code":` too; an escaped name, a backslash).
            if buf.find(CODE, cut, end) < 0 and _plain(buf, start, end):
                key = head["s"] + buf[attr:cut].translate(MASK_DIGITS)
        if head["date"] is None:
            return start, end, duration, key, head["ms"], -1
        return start, end, duration, key, head["date"], head.start("off") - head.start("date")

    def _learn(self, buf: bytes, head: re.Match[bytes], at: int, cut: int) -> None:
        start, attr = head.start(), head.start("attr")
        if len(self._shapes) >= _SHAPES_LIMIT:
            self._shapes.clear()
        self._shapes[buf[start:cut].translate(_ZERO_DIGITS)] = _Shape(
            at - start,
            head.end("date") - start,
            head.start("off") - head.start("date"),
            # None: lines of this shape have an escape or a NUL before the cut.
            head["s"] + buf[attr:cut].translate(MASK_DIGITS) if _plain(buf, start, cut) else None,
        )


def slow_lines_reference(
    buf: bytes,
    lo: int,
    hi: int,
    least: float,
    keyed: bool,
    shapes: Shapes,
    judge: Judge,
    duration_of: DurationOf,
) -> Columns:
    """SlowLines.find's lines as columns, found by Python calling C primitives: the reference of
    the compiled loop (and what runs where the extension is not built). Lines of a shape in
    `shapes` are read here, the others by `judge`, which may learn their shape."""
    # A few C calls a line, no Python function call for a known shape, and one row a line (the
    # columns are made at C speed at the end), with where the key's region ends (the end for a
    # line judged alone).
    rows: list[tuple[int, int, float, bytes | None, bytes, int, int]] = []
    add, find, rfind, shape_of = rows.append, buf.find, buf.rfind, shapes.get
    tail_of = _TAIL.search
    ms: float | None
    # A line's start is first guessed from the last shape's id offset (heads pad their fields
    # alike: one offset serves nearly every line): a guess just after a newline (or at lo)
    # whose bytes up to the cut have a shape is the line's start, as no shape holds a newline.
    # (An rfind of the newline a line: 1.2k instructions, the guess's check 0.7k fewer.)
    at, id_at = find_needle(buf, NEEDLE, lo, hi), 0
    while at >= 0:
        end = find(b"\n", at, hi) + 1 or hi
        # (stringzilla's find: 1k instructions fewer a line than bytes.find)
        cut = find_needle(buf, AFTER_COMMAND, at, end)
        start = at - id_at
        shape = None
        # (stringzilla translates the range in place of a slice and bytes.translate: 0.21
        # against 0.43 us a line)
        if cut > 0 and ((start > lo and buf[start - 1] == _NEWLINE) or start == lo):
            shape = shape_of(translate(buf, _ZERO_DIGITS, False, start, cut))
        if shape is None:
            line_start = rfind(b"\n", lo, at) + 1 or lo
            if cut > 0 and line_start != start:  # (the guess's shape was looked up already)
                shape = shape_of(translate(buf, _ZERO_DIGITS, False, line_start, cut))
            start = line_start
        if (
            shape is not None
            and at - start == shape[0]
            and buf[start + _MINUTE_TENS] < _SIXTY
            and buf[start + _SECOND_TENS] < _SIXTY
        ):
            id_at, date_end, zone_at, key = shape
            # The last duration, as last_duration finds it; read here when it is whole digits
            # ending the line's attr and the entry (the usual layout), else by last_duration.
            tail = tail_of(buf, end - _TAIL_BYTES, end)
            if tail is not None and tail.start() > at:
                closed, ms = True, float(tail[1])
            else:
                closed, ms = buf.endswith(b"}}\n", start, end), duration_of(buf, at, end)
            if ms is not None and ms >= least:
                # What follows the key's region is checked for the whole chunk at once.
                if not (keyed and closed):
                    key = None
                add((start, end, ms, key, buf[start + _DATE_AT : start + date_end], zone_at, cut))
        else:
            row = judge(buf, start, at, end, least, keyed)
            if row is not None:
                add((*row, end))
        at = find_needle(buf, NEEDLE, end, hi)
    if not rows:
        return [], [], [], [], [], []
    starts, ends, durations, keys, dates, zones, cuts = map(list, zip(*rows, strict=True))
    if keyed:
        _drop_unsafe_keys(buf, keys, cuts, ends)
    return starts, ends, durations, keys, dates, zones


def _drop_unsafe_keys(
    buf: bytes, keys: list[bytes | None], cuts: list[int], ends: list[int]
) -> None:
    """No key for a line with an error code after its key's region (attr's `code`, or its
    `error`'s, which holds `"code":` too), or with an escape or a NUL there (an escaped name);
    looked for in the chunk's tails joined, line by line only when they hold one."""
    tails = b"".join(map(buf.__getitem__, map(slice, cuts, ends)))
    # stringzilla: 0.02 ms for the ~340 KB of a 4 MiB chunk's tails, `CODE in tails` 0.2 ms
    if find_needle(tails, CODE) >= 0 or find_first_of(tails, _UNPLAIN) >= 0:
        for i, (cut, end) in enumerate(zip(cuts, ends, strict=True)):
            if buf.find(CODE, cut, end) >= 0 or not _plain(buf, cut, end):
                keys[i] = None


def last_duration(buf: bytes, at: int, end: int) -> float | None:
    """The number after the last `"durationMillis":` in buf[at:end], if any."""
    near = end - _TAIL_BYTES
    found = buf.rfind(_DURATION, near if near > at else at, end)
    if found < 0:
        found = buf.rfind(_DURATION, at, end)
    number = _NUMBER.match(buf, found + len(_DURATION)) if found >= 0 else None
    return float(number[0]) if number is not None else None


def _plain(buf: bytes, start: int, end: int) -> bool:
    """Whether the line has no backslash (an escape may spell a digit) and no NUL (the mask)."""
    return find_first_of(buf, _UNPLAIN, start, end) < 0


try:
    from dblogpack.formats._scan import slow_lines
except ImportError:  # a source tree whose extension is not built: the reference loop runs
    slow_lines = slow_lines_reference
