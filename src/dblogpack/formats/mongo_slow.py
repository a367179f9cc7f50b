"""mongo-json slow queries selected a chunk at a time, with few Python calls per entry.

The lines are found by mongo_slow_lines; this module decides which are in the window and groups
their details for the summary. An entry's details are keyed by its `attr` up to the command with
every digit masked: entries with one key differ only in digits, so once a key is learnt (one
JSON parse of one entry) the others need no parse at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import chain, compress, islice
from operator import itemgetter, ne

from dblogpack.formats.base import ScanResult
from dblogpack.formats.json_lines import dump_json, load_document
from dblogpack.formats.mongo_slow_lines import AFTER_COMMAND, HEAD, MASK_DIGITS, Lines, SlowLines
from dblogpack.formats.scanner import count_selected, window_bounds
from dblogpack.formats.timestamps import with_fraction
from dblogpack.model import DetailGroup, EntryDetail, Query

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import Any

_COMMAND = b'"command":'
# Masked numbers a JSON parser may refuse (past 64 bits) or write back differently (fractions,
# exponents): keys holding them are not learnt.
_UNSAFE_NUMBERS = re.compile(rb"\0{19}|\0[.eE]")
# Lines are grouped by their learnt command with each run of digits as one mask: learnt commands
# hold digits only in values, which a fingerprint replaces whatever their length, so commands
# alike but for how many digits a number has are summarised alike (a third fewer groups a chunk).
_DIGIT_RUN = re.compile(rb"\0+")
# Keys are a few hundred bytes: 4096 of them stay a megabyte or two (RSS stays bounded).
_CACHE_LIMIT = 4096
# Markers told apart by identity; neither is ever a command (which starts with a severity and a
# quote), so not even an equal one.
_UNSEEN = b"unseen"
_MET_ONCE = b"met once"

# A line's command from its index and key (mongo_slow: _command_of); a new group for a line from
# its index and whether its command is learnt.
CommandOf = Callable[[int, bytes], bytes | None]
NewGroup = Callable[[int, bool], DetailGroup]
# group_lines(chosen, keys, durations, learnt, unseen, met_once, command_of, new_group):
# group_lines_reference's signature, which the compiled loop shares.
GroupLines = Callable[
    [
        range | list[int],
        list[bytes | None],
        list[float],
        dict[bytes, bytes | None],
        bytes,
        bytes,
        CommandOf,
        NewGroup,
    ],
    list[DetailGroup],
]
# (first entry's detail) of one selected line: buf, start, end, timestamp, duration.
DetailOf = Callable[[bytes, int, int, float, float | None], EntryDetail]
TimeOf = Callable[["re.Match[bytes]"], float | None]
SecondsOf = Callable[[bytes, bytes], int]
_HOUR = itemgetter(slice(0, 13))
# Indices of the chosen lines; every line's time when it had to be read; earliest and latest.
_Window = tuple[range | list[int], list[float | None] | None, tuple[float, float]]


class SlowQueries:
    """Selects slow entries of whole-line buffers into a ScanResult; learnt keys are kept."""

    def __init__(self, detail_of: DetailOf, time_of: TimeOf, seconds_of: SecondsOf) -> None:
        self._detail_of, self._time_of, self._seconds_of = detail_of, time_of, seconds_of
        self._lines = SlowLines()
        # masked key → severity and masked command when its entries are summarised alike (see
        # _learnable), None when not, _MET_ONCE before it is learnt.
        self._learnt: dict[bytes, bytes | None] = {}

    def scan(self, buf: bytes, first: int, query: Query, result: ScanResult) -> None:
        lines = self._lines.find(buf, first, len(buf), query.min_duration_ms or 0.0, query.details)
        chosen, times, (earliest, latest) = self._in_window(lines, query)
        if isinstance(chosen, range):  # every line
            _add_spans(result.spans, lines.starts, lines.ends)
        else:
            starts = list(map(lines.starts.__getitem__, chosen))
            _add_spans(result.spans, starts, list(map(lines.ends.__getitem__, chosen)))
        count_selected(result, len(chosen), earliest, latest)
        if query.details:
            result.details.extend(self._groups(buf, lines, chosen, times))

    # ---- the window ----------------------------------------------------------------------

    def _in_window(self, lines: Lines, query: Query) -> _Window:
        """The lines inside the window; times in one format and offset order as their text does,
        so the chunk's earliest and latest decide for all lines whether the window holds them."""
        bounds = self._uniform_bounds(lines)
        earliest, latest = window_bounds(query.window)
        if bounds is not None and earliest <= bounds[0] and bounds[1] < latest:
            return range(len(lines.starts)), None, bounds
        times = list(map(self._time_of_text, lines.dates, lines.zones))
        chosen = [i for i, ts in enumerate(times) if ts is not None and earliest <= ts < latest]
        picked = [ts for i in chosen if (ts := times[i]) is not None]
        return chosen, times, (min(picked, default=math.inf), max(picked, default=-math.inf))

    def _uniform_bounds(self, lines: Lines) -> tuple[float, float] | None:
        """Earliest and latest time of the lines when all are valid ISO times alike, else None."""
        dates, zones = lines.dates, set(lines.zones)
        if len(zones) != 1 or -1 in zones or len(set(map(len, dates))) != 1:
            return None
        zone = zones.pop()
        offsets = set(map(itemgetter(slice(zone, None)), dates))
        if len(offsets) != 1:
            return None
        offset = offsets.pop()
        try:
            # Minutes and seconds are in range (HEAD): a line's time parses when its hour does.
            for hour in set(map(_HOUR, dates)):
                self._seconds_of(hour + b":00:00", offset)
        except ValueError:
            return None
        low, high = self._time_of_text(min(dates), zone), self._time_of_text(max(dates), zone)
        return None if low is None or high is None else (low, high)

    def _time_of_text(self, date: bytes, zone: int) -> float | None:
        """A line's time from its date text as Lines holds it (what the format's time of its
        head gives): ISO seconds, fraction and offset, or epoch milliseconds (zone -1)."""
        try:
            if zone < 0:
                return int(date) / 1000.0
            return with_fraction(self._seconds_of(date[:19], date[zone:]), date[20:zone])
        except ValueError:
            return None

    # ---- details -------------------------------------------------------------------------

    def _groups(
        self,
        buf: bytes,
        lines: Lines,
        chosen: range | list[int],
        times: list[float | None] | None,
    ) -> list[DetailGroup]:
        """The chosen lines' details in first-seen order; lines of learnt keys grouped by their
        severity and masked command (attr's other members do not change a summary)."""
        starts, durations = lines.starts, lines.durations

        def command_of(i: int, key: bytes) -> bytes | None:
            return self._command_of(buf, starts[i], key)

        def new_group(i: int, alike: bool) -> DetailGroup:
            detail = self._first_detail(buf, lines, i, times, alike)
            return DetailGroup(detail, 0, 0.0, durations[i])

        # The compiled loop is group_lines_reference's: 0.26 against 0.35 ms a chunk, most of it
        # the calls back for each group's first entry.
        return group_lines(
            chosen, lines.keys, durations, self._learnt, _UNSEEN, _MET_ONCE, command_of, new_group
        )

    def _command_of(self, buf: bytes, start: int, key: bytes | None) -> bytes | None:
        """Severity and masked command of a key met before, None if not alike. A key is learnt
        when met a second time: a line whose key is met once costs one parse, as it would alone."""
        assert key is not None
        if key not in self._learnt:
            if len(self._learnt) >= _CACHE_LIMIT:
                self._learnt.clear()
            self._learnt[key] = _MET_ONCE
            return None
        head = HEAD.match(buf, start)
        assert head is not None  # a keyed line has the standard head
        attr = head.start("attr")
        region = buf[attr : buf.find(AFTER_COMMAND, attr)]
        command = None
        if _learnable(region, key):
            masked = region[region.find(_COMMAND) :].translate(MASK_DIGITS)
            command = head["s"] + _DIGIT_RUN.sub(b"\0", masked)
        self._learnt[key] = command
        return command

    def _first_detail(
        self,
        buf: bytes,
        lines: Lines,
        i: int,
        times: list[float | None] | None,
        alike: bool,
    ) -> EntryDetail:
        start, end, ms = lines.starts[i], lines.ends[i], lines.durations[i]
        head = HEAD.match(buf, start)
        assert head is not None  # a chosen line has a slow entry's head
        ts = times[i] if times is not None else self._time_of(head)
        assert ts is not None  # chosen lines have a time
        if not alike:
            return self._detail_of(buf, start, end, ts, ms)
        # In a learnt key the first `"command":` is attr's own, and the command ends the region.
        attr = head.start("attr")
        command = buf[buf.find(_COMMAND, attr) + len(_COMMAND) : buf.find(AFTER_COMMAND, attr)]
        return EntryDetail(
            timestamp=ts,
            severity=head["s"].decode(),
            duration_ms=ms,
            statement=command.decode(),
            code=None,
            # As a parse would read it: invalid UTF-8 replaced (a quote ends any sequence).
            message=head["msg"].decode("utf-8", "replace"),
        )


def group_lines_reference(
    chosen: range | list[int],
    keys: list[bytes | None],
    durations: list[float],
    learnt: dict[bytes, bytes | None],
    unseen: bytes,
    met_once: bytes,
    command_of: CommandOf,
    new_group: NewGroup,
) -> list[DetailGroup]:
    """The chosen lines' groups in first-seen order: a line's command is learnt[key] (`unseen`
    when not there), or command_of(i, key) while it is `unseen` or `met_once`; lines of one
    command share a group, a line with none (None) has its own; new_group(i, alike) makes a
    group. The reference of the compiled loop (and what runs where it is not built)."""
    groups: list[DetailGroup] = []
    by_command: dict[bytes, DetailGroup] = {}
    for i in chosen:
        key, ms = keys[i], durations[i]
        command = None if key is None else learnt.get(key, unseen)
        if command is unseen or command is met_once:
            assert key is not None
            command = command_of(i, key)
        group = None if command is None else by_command.get(command)
        if group is None:
            group = new_group(i, command is not None)
            groups.append(group)
            if command is not None:
                by_command[command] = group
        group.count += 1
        group.total_ms += ms
        if ms > group.max_ms:
            group.max_ms = ms
    return groups


def _add_spans(spans: list[tuple[int, int]], starts: list[int], ends: list[int]) -> None:
    """Add the lines' spans (in order) to `spans`, a line merged into the span it continues:
    the breaks between spans found in one C-level pass (0.7k instructions a line, by a loop)."""
    if not starts:
        return
    if spans and spans[-1][1] == starts[0]:
        starts = [spans.pop()[0], *islice(starts, 1, None)]
    breaks = list(map(ne, ends, islice(starts, 1, None)))  # between line i and i + 1
    span_starts = compress(starts, chain((True,), breaks))
    span_ends = compress(ends, chain(breaks, (True,)))
    spans.extend(zip(span_starts, span_ends, strict=True))


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


try:
    from dblogpack.formats._scan import group_lines
except ImportError:  # a source tree whose extension is not built: the reference loop runs
    group_lines = group_lines_reference
