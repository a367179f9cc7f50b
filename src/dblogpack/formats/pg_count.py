"""pg-stderr's exact entry count: the lines that can start an entry, less the follow-up lines
(DETAIL, HINT, CONTEXT, STATEMENT, QUERY, LOCATION) of the same process as the line before them,
which belong to its entry (a follow-up line of another process starts an entry of its own).

One SIMD pass over the bytes mapped to a few classes counts the line heads and finds the
follow-up levels' tags. Each tag is read with the line before it by one match, and only where
that pair does not apply (an unprefixed line before, a tag in message text) line by line, by
the format's own judgement of an entry start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from itertools import compress, repeat
from operator import add, and_, eq, itemgetter, not_

from stringzilla import rfind

from dblogpack.formats.framing import count_and_find_mapped, count_line_heads, count_matches
from dblogpack.formats.pg_prefix import captured, line_program, unread_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.pg_prefix import CompiledPrefix

FOLLOW_UP_LEVELS = frozenset({"DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION"})
_FOLLOW_UP_WORDS = frozenset(level.encode() for level in FOLLOW_UP_LEVELS)
# The classes of the mapped pass (framing.count_and_find_mapped; other bytes map to 0). A line
# head is a newline and a byte a prefix can start with; a follow-up tag one of the levels' last
# letters (L, N, T, Y) and `:  `. The pass (~0.8 ms of mapping per 4 MiB, one count, one search)
# took 1.9 ms a chunk of pg-stderr-1g.log where the line heads' three counts (all newlines, TAB
# continuations, newline + a timestamp's "2") and one search per letter took 3.0 ms. The line's
# match tells a follow-up level from FATAL's and from message text.
_HEAD_CLASS, _TAG_CLASS = 1, 2
_HEAD = b"\n" + bytes((_HEAD_CLASS,))
_TAG = bytes((_TAG_CLASS,)) + b":  "
_TAG_CLASSES = {ord(":"): ord(":"), ord(" "): ord(" ")} | {
    ord(level[-1]): _TAG_CLASS for level in FOLLOW_UP_LEVELS
}
_START, _END = re.Match.start, re.Match.end
# Follow-ups read in pairs: of the line before's process, of another, and (line, colon) of each
# tag the pair does not read.
Pairs = tuple[int, int, list[tuple[int, int]]]
# A follow-up line's pair match, what is read of it, and the numbers of two of its groups.
_Pair = tuple[
    Callable[[bytes, int], re.Match[bytes]],
    Callable[[re.Match[bytes]], tuple[bytes | None, ...]],
    int,
    int,
]


class EntryCount:
    """The entry count of logs with one `log_line_prefix`. `guarded_line` (`\\n(?=X)`, X one
    byte) finds a newline before a line that can be prefixed, when no TAB line can (else None);
    `next_primary` finds a newline before a primary line; `starts_entry(buf, pos)` tells whether
    the line at `pos` starts an entry."""

    def __init__(
        self,
        prefix: CompiledPrefix,
        guarded_line: re.Pattern[bytes] | None,
        next_primary: re.Pattern[bytes],
        starts_entry: Callable[[bytes, int], bool],
    ) -> None:
        self._prefix, self._guarded_line = prefix, guarded_line
        self._next_primary, self._starts_entry = next_primary, starts_entry

    def count(self, buf: bytes, lo: int, hi: int) -> int:
        """Entries starting in buf[lo:hi]."""
        if hi <= lo:
            return 0
        if self._guarded_line is None:
            primaries = count_matches(self._next_primary, buf, max(lo - 1, 0), hi)
            if lo == 0 and self._starts_entry(buf, 0):
                primaries += 1
            return primaries + self.follow_ups(buf, lo, hi, orphans=True)
        # Lines whose first byte can start a prefix (so neither TAB continuations nor most
        # stray lines) less follow-ups attached to the entry before them. A stray line that
        # starts like a prefix is counted (its bytes are packaged all the same).
        first_line = 1 if self._guarded_line.match(b"\n" + buf[lo : lo + 1]) else 0
        heads, tags = self._heads_and_tags(buf, lo, hi)
        return first_line + heads - self._follow_ups(buf, lo, tags, orphans=False)

    def follow_ups(self, buf: bytes, lo: int, hi: int, *, orphans: bool) -> int:
        """Follow-up lines in buf[lo:hi] of another process than the line before them.

        Those are `orphans`, entries of their own; with orphans=False, the ones of
        the same process are counted instead (parts of the entry before them).
        """
        return self._follow_ups(buf, lo, follow_up_tags(buf, _TAG_TABLE, lo, hi), orphans)

    def _heads_and_tags(self, buf: bytes, lo: int, hi: int) -> tuple[int, list[int]]:
        """Lines after the first of buf[lo:hi] whose first byte can start a prefix, and the
        follow-up tags: one compiled pass (heads_and_tags); when a byte a prefix can start with
        is one the tags map (`L`, space...), a mapped pass for the lines and the tags' compiled
        pass; when a prefix can start with a newline, the regex's count of the lines and the
        tags' pass."""
        table, shared = self._heads_table
        if shared:
            return heads_and_tags(buf, table, lo, hi)
        if table:
            heads = count_and_find_mapped(buf, table, lo, hi, (_HEAD, hi - 1), None)[0]
        else:
            assert self._guarded_line is not None
            heads = count_line_heads(self._guarded_line, buf, lo, hi - 1)
        return heads, follow_up_tags(buf, _TAG_TABLE, lo, hi)

    @cached_property
    def _heads_table(self) -> tuple[bytes, bool]:
        """The classes `_heads_and_tags` maps bytes to (b"" when a prefix can start with a
        newline), and whether the tags' classes are among them."""
        assert self._guarded_line is not None
        match = self._guarded_line.match
        heads = [byte for byte in range(256) if match(b"\n" + bytes((byte,)))]
        if 10 in heads:
            return b"", False
        classes = {10: 10} | dict.fromkeys(heads, _HEAD_CLASS)
        shared = classes.keys().isdisjoint(_TAG_CLASSES)
        return _class_table(classes | _TAG_CLASSES if shared else classes), shared

    def _follow_ups(self, buf: bytes, lo: int, tags: list[int], orphans: bool) -> int:
        """`follow_ups` among the lines of `tags` (offsets of the mapped tags, in order)."""
        # Follow-up lines are ~2% of all lines (~780 of 36.5 k in a 4 MiB chunk of
        # pg-stderr-1g.log). Each is read with the line before it: by one compiled pass over
        # all of them where the prefix's heads have a program (0.68 -> 0.10 ms a 2 MiB chunk),
        # else by one match of the pair regex each. Hits that do not read as two prefixed lines,
        # the second ending its level at the tag, take the general `_general` (a stray line
        # before, a tag in message text).
        program = self._program
        if program is None or pair_follow_ups is None:
            same, other, unpaired = self.pairs_by_regex(buf, lo, tags)
        else:
            same, other, unpaired = pair_follow_ups(
                buf, lo, tags, program, self._guarded_line is not None
            )
        general = sum(self._general(buf, line, colon, orphans) for line, colon in unpaired)
        return general + (other if orphans else same)

    @cached_property
    def _program(self) -> bytes | None:
        """The heads' program for the compiled pairing (None: the pair regex reads them)."""
        return line_program(self._prefix)

    def pairs_by_regex(self, buf: bytes, lo: int, tags: list[int]) -> Pairs:
        """The tags' lines read in pairs by the pair regex: (follow-ups of the process of the line
        before, follow-ups of another process, (line, colon) of each tag the pair does not
        read). The reference of the compiled pairing (_scan.pair_follow_ups)."""
        # Per hit one match reads its line and the line before it, what follows is mapped in C
        # (a loop body with a match of each line took ~2.9 us a hit); the matches stay in a
        # comprehension, whose loop lets other threads take the GIL (~0.7 ms a chunk).
        match, read, second, level = self._pair
        hits = list(map(add, tags, repeat(1)))
        lines, befores = _lines_and_befores(buf, lo, hits)
        if self._guarded_line is not None:
            # TAB lines have no prefix: the pair is read from the line before them (the
            # DETAIL of a deadlock has one; ~50 hits a chunk took the general reading, ~5 us).
            befores = [_before_tabs(buf, at) if buf[at] == 9 else at for at in befores]
        pairs = [match(buf, before) for before in befores]
        starts = map(_START, pairs, repeat(second))
        ends = map(_END, pairs, repeat(level))
        paired = list(map(and_, map(eq, starts, lines), map(eq, ends, hits)))
        unpaired = list(compress(zip(lines, hits, strict=True), map(not_, paired)))
        same_process = [
            this == other
            for found, this, other in map(read, compress(pairs, paired))
            if found in _FOLLOW_UP_WORDS
        ]
        same = sum(same_process)
        return same, len(same_process) - same, unpaired

    @cached_property
    def _pair(self) -> _Pair:
        """A line and the line before it (TAB lines between), each read as `prefix.line` reads
        it alone (atomic groups), or an empty match (so `map` needs no None). With that match:
        an itemgetter of the second line's level, its process and the first line's (the whole
        match twice when the prefix has no process: every follow-up line then belongs to the
        entry before), and the numbers of the groups `second` (where the second line starts)
        and `level`."""
        names = {self._prefix.process_group} - {None}
        line = self._prefix.line.pattern
        before = unread_names(captured(line, names, "before_"))
        this = unread_names(captured(line, names | {"level"}))
        pattern = re.compile(
            b"(?:(?>" + before + rb")[^\n]*+(?:\n\t[^\n]*+)*+\n(?P<second>)(?>" + this + b")|)"
        )
        groups = pattern.groupindex
        processes = [groups[f"{first}{name}"] for first in ("", "before_") for name in names]
        read = itemgetter(groups["level"], *(processes or [0, 0]))
        # The empty alternative matches where the pair does not: the match is never None.
        return pattern.match, read, groups["second"], groups["level"]  # type: ignore[return-value]

    def _general(self, buf: bytes, line: int, colon: int, orphans: bool) -> bool:
        """Whether the line at `line`, whose level may end at `colon`, is a follow-up line of
        the process before it (of another one, with `orphans`)."""
        if line == 0:
            return False  # nothing before it in the buffer: not an entry start
        head = self._prefix.line.match(buf, line)
        if head is None or head.end("level") != colon or head["level"] not in _FOLLOW_UP_WORDS:
            return False
        # A follow-up line starts an entry exactly when its process is not the one before it.
        return self._starts_entry(buf, line) == orphans


def heads_and_tags_reference(buf: bytes, table: bytes, lo: int, hi: int) -> tuple[int, list[int]]:
    """With buf's bytes mapped by `table` (a newline, colon and space to themselves alone): the
    line heads (newline + head class) in buf[lo:hi-1] and the offsets of the follow-up tags (tag
    class + `:  `) in buf[lo:hi]. The reference of the compiled pass (and what runs where it is
    not built): one mapping, count and search a slice at a time."""
    return count_and_find_mapped(buf, table, lo, hi, (_HEAD, hi - 1), _TAG)


def follow_up_tags_reference(buf: bytes, table: bytes, lo: int, hi: int) -> list[int]:
    """heads_and_tags_reference's tags alone, for a table mapping a colon and space to themselves
    alone: the reference of the compiled pass (and what runs where it is not built)."""
    return count_and_find_mapped(buf, table, lo, hi, None, _TAG)[1]


def _lines_and_befores(buf: bytes, lo: int, hits: list[int]) -> tuple[list[int], list[int]]:
    """The starts of the lines of `hits` (ascending offsets in buf[lo:]; a line starts at `lo`
    at the earliest) and of the lines before them (0 for a line at 0)."""
    # Searched by stringzilla's rfind, mapped in C: two comprehensions of bytes.rfind took
    # ~3.5 k instructions a hit, these ~2.1 k.
    newlines = list(map(rfind, repeat(buf), repeat(b"\n"), repeat(lo), hits))
    lines = list(map(add, newlines, repeat(1)))
    befores = list(map(add, map(rfind, repeat(buf), repeat(b"\n"), repeat(0), newlines), repeat(1)))
    for first, newline in enumerate(newlines):  # the hits on the range's first line, if any
        if newline >= 0:
            break
        lines[first] = lo
        befores[first] = buf.rfind(b"\n", 0, lo - 1) + 1 if lo else 0
    return lines, befores


def _before_tabs(buf: bytes, start: int) -> int:
    """Start of the nearest line at or before the line at `start` that does not open with TAB."""
    while start > 0 and buf[start] == 9:
        start = buf.rfind(b"\n", 0, start - 1) + 1
    return start


def _class_table(classes: dict[int, int]) -> bytes:
    """A `bytes.translate` table mapping each byte of `classes` to its class, the others to 0."""
    return bytes(classes.get(byte, 0) for byte in range(256))


_TAG_TABLE = _class_table(_TAG_CLASSES)


PairFollowUps = Callable[[bytes, int, list[int], bytes, bool], Pairs]
pair_follow_ups: PairFollowUps | None
try:
    from dblogpack.formats._scan import follow_up_tags, heads_and_tags, pair_follow_ups
except ImportError:  # a source tree whose extension is not built: the reference passes run
    follow_up_tags, heads_and_tags = follow_up_tags_reference, heads_and_tags_reference
    pair_follow_ups = None  # and the pair regex reads every follow-up
