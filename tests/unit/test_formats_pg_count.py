"""The exact entry count of pg-stderr from one SIMD pass over bytes mapped to classes (line
heads by newline + first byte, follow-up lines by their tags) is the count the regexes make, for
every prefix: with TAB continuations, follow-ups of the same and of other processes, stray lines,
any range."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_pg_batch import PREFIXES, pg_logs, pg_stderr, rendered

from dblogpack.formats import framing
from dblogpack.formats.framing import count_matches
from dblogpack.formats.pg_stderr import PgStderrFormat
from dblogpack.model import FormatConfig

# Prefixes whose lines start with a pid (two first bytes: pids 11 and 912) or with literal text
# (laid out so by `rendered`), and others laid out by `laid_out`: pgBadger's (%t, %l), a session
# (%c) or an xid first; first bytes the tags' classes hold (SQLSTATE's letters, `T`, a space),
# and a newline first (its line heads counted by the regex).
OTHER_PREFIXES = {"pid-first": "%p %m ", "literal-first": "pg: %m [%p] "}
MORE_PREFIXES = {
    "pgbadger": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "session-first": "%c %m ",
    "xid-first": "%x %m [%p] ",
    "sqlstate-first": "%e %m [%p] ",
    "tag-letter-first": "T %m [%p] ",
    "space-first": " %m [%p] ",
    "newline-first": "\n%m [%p] ",
}
ALL_PREFIXES = sorted(PREFIXES) + sorted(OTHER_PREFIXES) + sorted(MORE_PREFIXES)
_TAG = re.compile(rb":  (?<=[LTYN]:  )")
# Lines (in the Debian layout `rendered` rewrites) with a follow-up tag that is no level, a
# follow-up level without a prefix, and the levels the generated logs lack.
_TAGGED_LINES = [
    "2024-11-03 01:10:00.000 CDT [11] app@db LOG:  a message with DETAIL:  inside",
    "2024-11-03 01:10:00.000 CDT [12] app@db FATAL:  no HINT:  here",
    "2024-11-03 01:10:00.000 CDT [11] app@db DETAIL:  a key (HINT:  x) in the text",
    "\tHINT:  a TAB line",
    "QUERY:  a line without a prefix",
    "2024-11-03 01:10:00.000 CDT [12] app@db LOCATION:  exec_simple_query, postgres.c:1",
    "2024-11-03 01:10:00.000 CDT [11] app@db QUERY:  SELECT 1",
    "2024-11-03 01:10:00.000 CDT [11] app@db CONTEXT:  SQL function",
]
_FOLLOW_UP_WORDS = {b"DETAIL", b"HINT", b"CONTEXT", b"STATEMENT", b"QUERY", b"LOCATION"}


# A line head as `pg_logs` writes it (Debian's layout): the stamp, [pid] and user@db.
_DEBIAN_HEAD = re.compile(r"^(\S+ \S+ \S+) (\[\d+\]) \S+ ", re.MULTILINE)
_HEADS: dict[str, Callable[[str, str], str]] = {
    "pgbadger": lambda ts, pid: f"{ts[:19]}{ts[23:]} {pid}: [7-1] user=a,db=d,app=psql,client=h ",
    "session-first": lambda ts, pid: f"6650f00d.{pid[1:-1]} {ts} ",
    "xid-first": lambda ts, pid: f"0 {ts} {pid} ",
    "sqlstate-first": lambda ts, pid: f"{'42P01' if pid == '[11]' else 'LT000'} {ts} {pid} ",
    "tag-letter-first": lambda ts, pid: f"T {ts} {pid} ",
    "space-first": lambda ts, pid: f" {ts} {pid} ",
    "newline-first": lambda ts, pid: f"\n{ts} {pid} ",
}


def laid_out(log: str, prefix: str) -> bytes:
    """The generated log in the layout of `prefix` (a key of PREFIXES, OTHER_PREFIXES or
    MORE_PREFIXES)."""
    if prefix not in MORE_PREFIXES:
        return rendered(log, prefix)
    head = _HEADS[prefix]
    return _DEBIAN_HEAD.sub(lambda found: head(found[1], found[2]), log).encode()


def prefixed_format(prefix: str) -> PgStderrFormat:
    source = PREFIXES.get(prefix) or OTHER_PREFIXES.get(prefix) or MORE_PREFIXES[prefix]
    return pg_stderr(FormatConfig("pg-stderr", source, "America/Chicago"))


@st.composite
def tagged_logs(draw: st.DrawFn) -> str:
    """Generated logs with some of _TAGGED_LINES put anywhere (first line included)."""
    lines = draw(pg_logs()).split("\n")
    for _ in range(draw(st.integers(0, 6))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(_TAGGED_LINES)))
    return "\n".join(lines)


def regex_follow_ups(fmt: PgStderrFormat, buf: bytes, lo: int, hi: int, orphans: bool) -> int:
    """Follow-up lines counted from one regex of every tag, each line matched (the general way)."""
    group, count = fmt.prefix.process_group, 0
    for tag in _TAG.finditer(buf, lo, hi):
        line = buf.rfind(b"\n", lo, tag.start()) + 1 or lo
        head = fmt.prefix.line.match(buf, line)
        if head is None or head.end("level") != tag.start() or line == 0:
            continue
        if head["level"] not in _FOLLOW_UP_WORDS:
            continue
        same = group is None or head[group] == fmt._previous_process(buf, line)
        count += same != orphans
    return count


def regex_count(fmt: PgStderrFormat, buf: bytes, lo: int, hi: int) -> int:
    """The entry count made by regexes only: line heads by `\\n(?=guard)`, follow-ups by tag."""
    if hi <= lo:
        return 0
    if fmt._guarded_line is None:
        primaries = count_matches(fmt._next_primary, buf, max(lo - 1, 0), hi)
        primaries += 1 if lo == 0 and fmt._starts_entry(buf, 0) else 0
        return primaries + regex_follow_ups(fmt, buf, lo, hi, orphans=True)
    first_line = 1 if fmt._guarded_line.match(b"\n" + buf[lo : lo + 1]) else 0
    heads = count_matches(fmt._guarded_line, buf, lo, hi - 1)
    return first_line + heads - regex_follow_ups(fmt, buf, lo, hi, orphans=False)


@st.composite
def ranges(draw: st.DrawFn, buf: bytes) -> tuple[int, int]:
    """A range of `buf` whose ends are anywhere, or at line starts (any kind of line)."""
    starts = [0, *(at + 1 for at in range(len(buf)) if buf[at] == 10)]
    ends = st.floats(0, 1).map(lambda cut: int(cut * len(buf))) | st.sampled_from(starts)
    lo, hi = draw(ends), draw(ends)
    return min(lo, hi), max(lo, hi)


def laid_out_range(log: str, prefix: str, data: st.DataObject) -> tuple[bytes, int, int]:
    """The log laid out for `prefix` (laid_out), and a range of it drawn from `data` (ranges)."""
    buf = laid_out(log, prefix)
    lo, hi = data.draw(ranges(buf))
    return buf, lo, hi


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=tagged_logs(),
    prefix=st.sampled_from(ALL_PREFIXES),
    data=st.data(),
    slice_size=st.integers(1, 64),
)
def test_entry_count_is_the_regex_count(
    log: str, prefix: str, data: st.DataObject, slice_size: int
) -> None:
    """Property: on any range of a generated log, with any count slice, the count is the
    regexes' count."""
    fmt = prefixed_format(prefix)
    buf, lo, hi = laid_out_range(log, prefix, data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(framing, "COUNT_BYTES_SLICE", slice_size)
        assert fmt._count_entries(buf, lo, hi) == regex_count(fmt, buf, lo, hi)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=tagged_logs(),
    prefix=st.sampled_from(ALL_PREFIXES),
    data=st.data(),
    orphans=st.booleans(),
)
def test_follow_ups_read_in_pairs_are_those_read_line_by_line(
    log: str, prefix: str, data: st.DataObject, orphans: bool
) -> None:
    """Property: follow-up lines counted from one match of each hit's line and the line before
    (with the general reading where that pair does not apply) are those each line's own match
    and the walk back over unprefixed lines count, on any range."""
    fmt = prefixed_format(prefix)
    buf, lo, hi = laid_out_range(log, prefix, data)
    expected = regex_follow_ups(fmt, buf, lo, hi, orphans)
    assert fmt._entry_count.follow_ups(buf, lo, hi, orphans=orphans) == expected


_NEEDLE_BYTES = st.sampled_from([b"\n", b"\t", b"2", b"a"])


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(_NEEDLE_BYTES, max_size=200).map(b"".join) | st.binary(max_size=200),
    needle=st.lists(_NEEDLE_BYTES, min_size=1, max_size=3).map(b"".join),
    lo=st.integers(0, 220),
    hi=st.integers(-10, 220),
    slice_size=st.integers(1, 40),
)
# A needle overlapping itself across a slice edge (found by CI: it was counted twice).
@example(data=b"\n\n\n", needle=b"\n\n", lo=0, hi=3, slice_size=1)
def test_bytes_counted_a_slice_at_a_time_are_those_bytes_count_counts(
    data: bytes, needle: bytes, lo: int, hi: int, slice_size: int
) -> None:
    """Property: stringzilla's count, slice by slice, is bytes.count over the same range (ends
    past the data and before the start included)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(framing, "COUNT_BYTES_SLICE", slice_size)
        assert framing.count_bytes(data, needle, lo, hi) == data.count(needle, lo, max(hi, lo))
