"""pg-stderr follow-up lines (DETAIL, HINT, CONTEXT, STATEMENT, QUERY, LOCATION) counted for the
exact entry count: those of the same process as the line before them belong to its entry, the
others start entries of their own.

Each hit of a level tag is read with the line before it by one match, and only where that pair
does not apply (an unprefixed line before, a tag in message text) line by line, by the format's
own judgement of an entry start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from itertools import compress, repeat
from operator import and_, eq, itemgetter, not_

from dblogpack.formats.framing import find_all
from dblogpack.formats.pg_prefix import captured, unread_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from dblogpack.formats.pg_prefix import CompiledPrefix

FOLLOW_UP_LEVELS = frozenset({"DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION"})
# The `:  ` after a level word ending like a follow-up level, one SIMD search per last letter
# (~0.25 ms per 4 MiB each, where one regex of them all took 4.5 ms and a search per level needs
# six); the line's match tells a follow-up level from FATAL's and from message text.
_FOLLOW_UP_TAGS = tuple(sorted({level[-1].encode() + b":  " for level in FOLLOW_UP_LEVELS}))
_FOLLOW_UP_WORDS = frozenset(level.encode() for level in FOLLOW_UP_LEVELS)
_START, _END = re.Match.start, re.Match.end
# A follow-up line's pair match, what is read of it, and the numbers of two of its groups.
_Pair = tuple[
    Callable[[bytes, int], re.Match[bytes]],
    Callable[[re.Match[bytes]], tuple[bytes | None, ...]],
    int,
    int,
]


class FollowUps:
    """The follow-up lines of logs with one `log_line_prefix`: `guarded` when no TAB line can
    read as a prefixed line; `starts_entry(buf, pos)` tells whether the line at `pos` starts an
    entry (a follow-up line does when its process is not the one before it)."""

    def __init__(
        self, prefix: CompiledPrefix, guarded: bool, starts_entry: Callable[[bytes, int], bool]
    ) -> None:
        self._prefix, self._guarded, self._starts_entry = prefix, guarded, starts_entry

    def count(self, buf: bytes, lo: int, hi: int, orphans: bool) -> int:
        """Follow-up lines in buf[lo:hi] of the same process as the line before them (of
        another one, with `orphans`)."""
        # Follow-up lines are ~2% of all lines (~780 of 36.5 k in a 4 MiB chunk of
        # pg-stderr-1g.log). Per hit, one match reads its line and the line before it, what
        # follows is mapped in C (a loop body with a match of each line took ~2.9 us a hit);
        # the matches stay in a comprehension, whose loop lets other threads take the GIL
        # (~0.7 ms of matches a chunk). Hits that do not read as two prefixed lines, the second
        # ending its level at the tag, take the general `_general` (a stray line before, a tag
        # in message text).
        hits = [at + 1 for tag in _FOLLOW_UP_TAGS for at in find_all(buf, tag, lo, hi)]
        match, read, second, level = self._pair
        rfind = buf.rfind
        lines = [rfind(b"\n", lo, colon) + 1 or lo for colon in hits]
        befores = [rfind(b"\n", 0, line - 1) + 1 if line else 0 for line in lines]
        if self._guarded:
            # TAB lines have no prefix: the pair is read from the line before them (the
            # DETAIL of a deadlock has one; ~50 hits a chunk took the general reading, ~5 us).
            befores = [_before_tabs(buf, at) if buf[at] == 9 else at for at in befores]
        pairs = [match(buf, before) for before in befores]
        starts = map(_START, pairs, repeat(second))
        ends = map(_END, pairs, repeat(level))
        paired = list(map(and_, map(eq, starts, lines), map(eq, ends, hits)))
        count = sum(
            self._general(buf, line, colon, orphans)
            for line, colon in compress(zip(lines, hits, strict=True), map(not_, paired))
        )
        return count + sum(
            (this == other) != orphans
            for found, this, other in map(read, compress(pairs, paired))
            if found in _FOLLOW_UP_WORDS
        )

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


def _before_tabs(buf: bytes, start: int) -> int:
    """Start of the nearest line at or before the line at `start` that does not open with TAB."""
    while start > 0 and buf[start] == 9:
        start = buf.rfind(b"\n", 0, start - 1) + 1
    return start
