"""Error entries (WARNING or worse) of pg-stderr, a chunk at a time (pg_batch): levels are found
with their `:  ` tag by stringzilla, and each hit's line gets one match. Summary groups gather
the entries of one level and SQLSTATE.
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter
from typing import TYPE_CHECKING

from dblogpack.formats.framing import find_any
from dblogpack.formats.pg_batch import MESSAGE, BatchScan, Heads, first_entries, head_pattern
from dblogpack.formats.pg_prefix import CompiledPrefix
from dblogpack.formats.pg_times import StampSpan
from dblogpack.model import DetailGroup, Query

if TYPE_CHECKING:
    from dblogpack.formats.pg_stderr import PgStderrFormat

# Each error level with the `:  ` that follows a level in a line's head, found by one
# stringzilla pass each (1.03 ms a 4 MiB chunk for the four, where one regex pass over every
# `:  ` with a lookbehind on the level's last letters took 2.5); a hit is an error entry when
# its line's prefix parse puts the level there.
LEVEL_TAGS = (b"WARNING:  ", b"ERROR:  ", b"FATAL:  ", b"PANIC:  ")


def error_pattern(prefix: CompiledPrefix, ends: bytes) -> bytes:
    """An error hit's match: the line's prefix and level, the message and `ends`."""
    return head_pattern(prefix) + b"(?P<message>" + MESSAGE + b")" + ends


class ErrorScan(BatchScan):
    """The error-entry scan of one chunk for a `PgStderrFormat` (built once per format)."""

    __slots__ = ("_codes", "_levels")

    def __init__(self, log_format: PgStderrFormat, pattern: bytes, span: StampSpan) -> None:
        super().__init__(log_format, pattern, span)
        # A group's text by its number (see pg_batch).
        self._levels = itemgetter(self._level)
        sqlstate = self._pattern.groupindex.get("sqlstate")
        self._codes = None if sqlstate is None else itemgetter(sqlstate)

    def _heads(self, buf: bytes, first: int, query: Query) -> Heads:
        """Matches at the line starts of the hits whose line's level starts at the hit."""
        return self._matched(buf, first, find_any(buf, LEVEL_TAGS, first, len(buf)))

    def _groups(
        self, buf: bytes, heads: Heads, ends: list[int], times: list[float] | None
    ) -> list[DetailGroup]:
        """Groups in order of first entry, one per level and SQLSTATE, with the first's details."""
        kinds: list[object] = list(map(self._levels, heads))
        if self._codes is not None:
            kinds = list(zip(kinds, map(self._codes, heads), strict=True))
        counts, groups = Counter(kinds), []
        for index, kind in first_entries(kinds, counts):
            ts = self._time(heads, times, index)
            detail = self._format._detail(buf, heads[index].start(), ends[index], ts, None)
            groups.append(DetailGroup(detail, counts[kind], 0.0, 0.0))
        return groups
