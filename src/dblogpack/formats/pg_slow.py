"""Slow entries of pg-stderr, a chunk at a time (pg_batch): per `LOG:  duration: ` hit one
match also reads the duration and the logged statement. Summary groups gather the entries of one
SQLSTATE and statement fingerprint, found from each entry's statement text by a per-process cache.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from functools import partial
from itertools import compress, count, repeat
from operator import is_, itemgetter, sub
from typing import TYPE_CHECKING, cast

from dblogpack.formats.framing import find_all
from dblogpack.formats.pg_batch import (
    LEVEL_END,
    MESSAGE,
    BatchScan,
    Heads,
    first_entries,
    head_pattern,
)
from dblogpack.formats.pg_message import detail_text
from dblogpack.formats.pg_prefix import CompiledPrefix
from dblogpack.formats.pg_stderr import UNTAB, entry_detail
from dblogpack.formats.pg_times import StampSpan
from dblogpack.model import LONGEST_KEY, DetailGroup, EntryDetail, Query
from dblogpack.sqlshape import fingerprint_sql

if TYPE_CHECKING:
    from dblogpack.formats.pg_stderr import PgStderrFormat

NEEDLE = b"LOG:  duration: "
# What follows `duration: N ms  ` when the statement is logged with it (pg_stderr searches for
# it, this scan's match reads it right after the duration).
LEAD = (
    rb"(?:statement|(?:execute|parse|bind) [^:\n]*|fastpath function call): "
    rb"|plan:\n\tQuery Text: "
)
# What follows the duration's digits; the text after it decides the statement.
DURATION_END = b" ms"
# Statements parsed in earlier chunks are remembered up to this many, each up to _MAX_KEY bytes.
_KNOWN_LIMIT = 4096
_MAX_KEY = 4096
_START = re.Match.start
# Keys are disjoint copies of a chunk's bytes: up to this size of chunk, they are all read as
# they are (at most as much memory again). A bigger chunk holds an entry longer than a chunk
# (read in chunks doubling up to 64 MiB): an entry's key longer than LONGEST_KEY is not read
# there. Looking for such an entry in every chunk cost ~2% of the slow pg-stderr package.
_KEYS_READ_WHOLE = 8 * 1024 * 1024


class _Unkeyed:
    """The key of an entry whose key text is longer than LONGEST_KEY: equal to no other key and
    never remembered, so the entry is parsed on its own (see model.LONGEST_KEY)."""

    __slots__ = ()


# An entry's key: the text that decides its statement, with the SQLSTATE when the prefix has one.
_KeyText = bytes | _Unkeyed
_Key = _KeyText | tuple[bytes, _KeyText]
# What the summary counts an entry as: its SQLSTATE and its statement's fingerprint.
_Kind = tuple[str | None, str | None]


def slow_pattern(prefix: CompiledPrefix, ends: bytes) -> bytes:
    """A slow hit's match: the line's prefix and level, the duration, the statement after its
    lead, the message and `ends` (pg_batch.end_pattern, or nothing)."""
    # An empty branch, not `?`, for the optional decimals: sre runs `(?:...)?` through its
    # general repeat (11.75 k instructions a match with the branch, 13.1 k with `?`).
    head = head_pattern(prefix) + rb"duration: (?P<duration>[0-9]++(?:\.[0-9]++|))" + DURATION_END
    # Without a lead, `key` (and `message`) is unset: SlowScan._keys finds those entries by
    # their unset key rather than by a pass reading every entry's lead.
    with_lead = b"(?P<key>  (?P<lead>" + LEAD + b")(?P<message>" + MESSAGE + b"))"
    return head + b"(?:" + with_lead + b"|" + MESSAGE + b")" + ends


class SlowScan(BatchScan):
    """The slow-entry scan of one chunk for a `PgStderrFormat` (built once per format)."""

    __slots__ = (
        "_codes",
        "_counter",
        "_duration",
        "_durations",
        "_fingerprints",
        "_inner_messages",
        "_key",
        "_keys_read",
        "_known",
        "_lead",
        "_numbers",
        "_sqlstate",
    )

    def __init__(self, log_format: PgStderrFormat, pattern: bytes, span: StampSpan) -> None:
        super().__init__(log_format, pattern, span)
        groups = self._pattern.groupindex
        self._duration, self._key, self._lead = groups["duration"], groups["key"], groups["lead"]
        self._sqlstate = groups.get("sqlstate")
        self._durations, self._keys_read = itemgetter(self._duration), itemgetter(self._key)
        self._codes = None if self._sqlstate is None else itemgetter(self._sqlstate)
        # When no TAB line can parse as prefixed, an entry holds its whole message.
        self._inner_messages = log_format._guarded_line is not None
        # Kinds, (SQLSTATE, fingerprint), are numbered; their numbers by key, across chunks, so
        # a statement is parsed once (both caches bounded by _KNOWN_LIMIT).
        self._known: dict[_Key, int] = {}
        self._numbers: dict[_Kind, int] = {}
        # Each number's fingerprint, handed to the summary with its groups (fingerprinting a
        # group's statement again cost ~1.2 M instructions a 4 MiB chunk of pg-stderr-1g.log);
        # cleared with the caches, the summary then computes the fingerprint itself.
        self._fingerprints: dict[int, str | None] = {}
        self._counter = count()

    def _heads(self, buf: bytes, first: int, query: Query) -> Heads:
        """Matches at the line starts of the hits whose `LOG` is the line's level, of entries
        lasting at least the query's least duration."""
        heads = self._matched(buf, first, find_all(buf, NEEDLE, first, len(buf)))
        least = query.min_duration_ms or 0.0
        if least > 0:
            duration = self._duration
            heads = [head for head in heads if float(head.group(duration)) >= least]
        return heads

    def _groups(
        self, buf: bytes, heads: Heads, ends: list[int], times: list[float] | None
    ) -> list[DetailGroup]:
        """Summary groups in order of first entry: entries the summary counts alike (same SQLSTATE
        and statement fingerprint) share one group, its details those of its first entry."""
        durations = list(map(float, map(self._durations, heads)))
        kinds = self._kinds(buf, heads, ends, times)
        alike: defaultdict[int, list[float]] = defaultdict(list)
        # Each duration appended to its kind's list, in entry order (summed below in that order,
        # as one by one; the kinds come in order of first entry); the loop runs in C, consumed
        # by an empty deque.
        deque(map(list.append, map(alike.__getitem__, kinds), durations), maxlen=0)
        groups = []
        for index, kind in first_entries(kinds, alike):
            entries, total_ms, max_ms = len(alike[kind]), sum(alike[kind]), max(alike[kind])
            ts = self._time(heads, times, index)
            detail = self._detail(buf, heads[index], ends[index], ts, durations[index])
            fingerprint = self._fingerprints.get(kind)
            groups.append(DetailGroup(detail, entries, total_ms, max_ms, fingerprint))
        return groups

    def _detail(
        self, buf: bytes, head: re.Match[bytes], end: int, ts: float, duration: float | None
    ) -> EntryDetail:
        """An entry's details as `_detail` of the format reads them, from its match when it holds
        them (see `_parsed`)."""
        if not self._inner_messages or head.start(self._lead) < 0:
            return self._format._detail(buf, head.start(), end, ts, duration)
        body = head.end(self._level) + len(LEVEL_END)
        statement, code = self._statement_and_code(head)
        return entry_detail(buf, body, end, ts, duration, head.group(self._level), statement, code)

    def _kinds(
        self, buf: bytes, heads: Heads, ends: list[int], times: list[float] | None
    ) -> list[int]:
        """Each entry's kind: the number of its (SQLSTATE, fingerprint), from its key; a key is
        parsed once per process."""
        keys = self._keys(buf, heads, ends)
        kinds = list(map(self._known.get, keys))
        if None in kinds:
            for index in compress(range(len(kinds)), map(is_, kinds, repeat(None))):
                kind = self._known.get(keys[index])  # learnt from an entry before in the chunk?
                if kind is None:
                    ts = self._time(heads, times, index)
                    statement, code = self._parsed(buf, heads[index], ends[index], ts)
                    kind = self._learn(keys[index], statement, code)
                kinds[index] = kind
        return cast(list[int], kinds)

    def _parsed(
        self, buf: bytes, head: re.Match[bytes], end: int, ts: float
    ) -> tuple[str | None, str | None]:
        """An entry's statement and SQLSTATE as `_detail` reads them: when a statement follows the
        duration and the message lies inside the entry (no TAB line parses as prefixed), they are
        the message and the SQLSTATE group of its match."""
        if not self._inner_messages or head.start(self._lead) < 0:
            detail = self._format._detail(buf, head.start(), end, ts, None)
            return detail.statement, detail.code
        return self._statement_and_code(head)

    def _statement_and_code(self, head: re.Match[bytes]) -> tuple[str, str | None]:
        """The statement (the message after the lead) and SQLSTATE of a match with a lead."""
        code = head.group(self._sqlstate) if self._sqlstate is not None else None
        statement = detail_text(head.string, *head.span(self._message), UNTAB)
        return statement, code.decode("ascii", "replace") if code else None

    def _keys(self, buf: bytes, heads: Heads, ends: list[int]) -> list[_Key]:
        """What decides an entry's statement and SQLSTATE: the text after the duration up to the
        message's end when a statement leads it (the `key` group), else up to the entry's end (a
        STATEMENT line)."""
        keys: list[_KeyText | None]
        if len(buf) > _KEYS_READ_WHOLE and self._longest(heads, ends) > LONGEST_KEY:
            keys = list(map(partial(self._long_key, buf), heads, ends))
        else:
            keys = list(map(self._keys_read, heads))
        if None in keys:
            duration, after = self._duration, len(DURATION_END)
            for index in compress(count(), map(is_, keys, repeat(None))):
                keys[index] = buf[heads[index].end(duration) + after : ends[index]]
        if self._codes is not None:
            return list(zip(map(self._codes, heads), keys, strict=True))  # type: ignore[arg-type]
        return cast(list[_Key], keys)

    @staticmethod
    def _longest(heads: Heads, ends: list[int]) -> int:
        return max(map(sub, ends, map(_START, heads)), default=0)

    def _long_key(self, buf: bytes, head: re.Match[bytes], end: int) -> _KeyText | None:
        """An entry's key in a chunk holding an entry longer than LONGEST_KEY (None: the text
        up to the entry's end, which `_keys` reads when it is not that long)."""
        start, stop = head.span(self._key)
        if start < 0:
            start, stop = head.end(self._duration) + len(DURATION_END), end
            if stop - start <= LONGEST_KEY:
                return None
        return buf[start:stop] if stop - start <= LONGEST_KEY else _Unkeyed()

    def _learn(self, key: _Key, statement: str | None, code: str | None) -> int:
        if len(self._known) >= _KNOWN_LIMIT or len(self._numbers) >= _KNOWN_LIMIT:
            self._known.clear()
            self._numbers.clear()
            self._fingerprints.clear()
        kind = code, fingerprint_sql(statement) if statement else None
        number = self._numbers.get(kind)
        if number is None:
            # Numbers are never reused, so clearing the caches cannot merge two kinds in a chunk.
            number = self._numbers[kind] = next(self._counter)
            self._fingerprints[number] = kind[1]
        text = key[1] if isinstance(key, tuple) else key
        if isinstance(text, bytes) and len(text) <= _MAX_KEY:
            self._known[key] = number
        return number
