"""The compiled scan loops (formats/_scan.c) give exactly what their Python references give, on
generated logs, on lines of every layout the references tell apart, and on byte soup; and the
installed engine runs them (a build that silently fell back would pass every other test)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_pg_count import (
    ALL_PREFIXES,
    laid_out,
    laid_out_range,
    prefixed_format,
    tagged_logs,
)
from tests.unit.test_mongo_slow_lines import _lines

from dblogpack.formats import _scan, json_lines, mongo_slow, mongo_slow_lines, pg_count, pg_csv
from dblogpack.formats.json_lines import every_line_starts_with_reference
from dblogpack.formats.mongo_slow import _MET_ONCE as MET_ONCE
from dblogpack.formats.mongo_slow import _UNSEEN as UNSEEN
from dblogpack.formats.mongo_slow import group_lines_reference
from dblogpack.formats.mongo_slow_lines import (
    AFTER_COMMAND,
    NEEDLE,
    Columns,
    SlowLines,
    last_duration,
    slow_lines_reference,
)
from dblogpack.formats.pg_count import _TAG_TABLE as TAG_TABLE
from dblogpack.formats.pg_count import follow_up_tags_reference, heads_and_tags_reference
from dblogpack.formats.pg_csv import record_starts_reference
from dblogpack.formats.pg_prefix import captured, line_program, unread_names
from dblogpack.model import DetailGroup
from dblogpack.synth import Plan, build, generate

START = 1714564800.0  # 2024-05-01T12:00:00Z
PgLogTest = Callable[[str, str, st.DataObject], None]


def test_the_installed_engine_runs_the_compiled_loops() -> None:
    assert mongo_slow_lines.slow_lines is not slow_lines_reference
    assert mongo_slow.group_lines is not group_lines_reference
    assert pg_count.heads_and_tags is not heads_and_tags_reference
    assert pg_count.follow_up_tags is not follow_up_tags_reference
    assert json_lines.every_line_starts_with is not every_line_starts_with_reference
    assert pg_csv.record_starts is not record_starts_reference
    assert pg_count.pair_follow_ups is _scan.pair_follow_ups
    assert mongo_slow_lines.slow_lines.__module__ == "dblogpack.formats._scan"


def test_the_compiled_passes_run_their_avx2_loops_where_the_cpu_has_them() -> None:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    assert _scan.use_avx2() == ("avx2" in flags)


@contextmanager
def avx2_loops(on: bool) -> Iterator[None]:
    """The compiled passes with their AVX2 loops on or off (where the CPU has none, off):
    both ways are held to the references."""
    before = _scan.use_avx2()
    _scan.use_avx2(on)
    try:
        yield
    finally:
        _scan.use_avx2(before)


def both_ways(data: bytes, lo: int, hi: int, least: float, keyed: bool) -> None:
    """Each way finds the lines twice (the second time through the shapes the first learnt):
    every column and every learnt shape alike."""
    compiled, reference = SlowLines(), SlowLines()
    for _ in range(2):
        got = mongo_slow_lines.slow_lines(
            data, lo, hi, least, keyed, compiled._shapes, compiled._judge, last_duration
        )
        expected: Columns = slow_lines_reference(
            data, lo, hi, least, keyed, reference._shapes, reference._judge, last_duration
        )
        assert got == expected
        assert compiled._shapes == reference._shapes


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_lines(), min_size=1, max_size=30),
    st.sampled_from([0.0, 150.0, 500.0]),
    st.booleans(),
    st.data(),
)
def test_slow_lines_are_those_of_the_reference_loop(
    lines: list[bytes], least: float, keyed: bool, data: st.DataObject
) -> None:
    buf = b"".join(lines)
    hi = data.draw(st.integers(0, len(buf)))
    lo = data.draw(st.integers(0, hi))
    both_ways(buf, 0, len(buf), least, keyed)
    both_ways(buf, lo, hi, least, keyed)


# Lines alike but for their digits share one shape: after the first, the compiled loop reads
# them itself (its fast path): minutes and seconds past 59, every ending of the line, and what
# after the key's region takes the key away (an error code, an escape, a NUL) included.
_ALIKE_TAILS = [
    '"durationMillis":{ms}}}}}\n', '"durationMillis":{ms}.5}}}}\n', '"durationMillis":{ms}}}}} \n',
    '"durationMillis":{ms}}}}}', '"durationMillis":{ms}}}}}}}\n', '"durationMillis":"{ms}"}}}}\n',
    '"ok":0,"code":11000,"durationMillis":{ms}}}}}\n', '"x":"a\\\\b","durationMillis":{ms}}}}}\n',
    '"x":"\0","durationMillis":{ms}}}}}\n', '"codeName":"c","durationMillis":{ms}}}}}\n',
]


@st.composite
def _alike_line(draw: st.DrawFn) -> bytes:
    minute, second = draw(st.integers(0, 99)), draw(st.integers(0, 99))
    millis, digits = draw(st.integers(100, 999)), st.integers(0, 10**12)
    tail = draw(st.sampled_from(_ALIKE_TAILS)).format(ms=draw(digits))
    return (
        f'{{"t":{{"$date":"2024-05-01T12:{minute:02d}:{second:02d}.{millis}Z"}},"s":"I",'
        f'"c":"COMMAND","id":51803,"ctx":"conn{draw(st.integers(10, 99))}",'
        f'"msg":"Slow query","attr":{{"command":{{"find":"o","n":{draw(digits):013d}}},'
        f'"planSummary":"COLLSCAN",{tail}'
    ).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(_alike_line(), min_size=2, max_size=40), st.sampled_from([0.0, 5e11]))
def test_slow_lines_of_one_shape_are_those_of_the_reference_loop(
    lines: list[bytes], least: float
) -> None:
    buf = b"".join(lines)
    for keyed in (True, False):
        both_ways(buf, 0, len(buf), least, keyed)


_SOUP = [
    NEEDLE, AFTER_COMMAND, b"\n", b'"durationMillis":', b"12", b"7", b"}}\n", b"}}", b".5",
    b'{"t":{"$date":"2024-05-01T12:00:01.000Z"},"s":"I","c":"C",', b'"ctx":"c","msg":"m",',
    b'"attr":{"command":{"find":"o"}', b"\\", b"\0", b"\xff", b"9" * 30, b" ",
]


@st.composite
def soup(draw: st.DrawFn, parts: list[bytes], past_end: int = 2) -> tuple[bytes, int, int]:
    """Some of `parts` joined, and two bounds anywhere in them or up to `past_end` past them."""
    buf = b"".join(draw(st.lists(st.sampled_from(parts), max_size=60)))
    bound = st.integers(0, len(buf) + past_end)
    return buf, draw(bound), draw(bound)


@settings(max_examples=500, deadline=None)
@given(soup(_SOUP, past_end=0), st.booleans())
def test_slow_lines_of_byte_soup_are_those_of_the_reference_loop(
    buf_and_bounds: tuple[bytes, int, int], keyed: bool
) -> None:
    buf, *bounds = buf_and_bounds
    lo, hi = sorted(bounds)
    both_ways(buf, lo, hi, 0.0, keyed)


@pytest.mark.parametrize("style", ["iso-local", "iso-utc", "number-long"])
def test_slow_lines_of_generated_logs_are_those_of_the_reference_loop(
    tmp_path: Path, style: str
) -> None:
    fmt = build("mongo-json", timezone="Asia/Shanghai" if style == "iso-local" else None,
                style=style)
    path = tmp_path / "mongod.log"
    generate(fmt, path, Plan(start=START, end=START + 3600, size=600_000, seed=7))
    buf = path.read_bytes()
    for least in (0.0, 400.0):
        for keyed in (True, False):
            both_ways(buf, 0, len(buf), least, keyed)
    assert len(SlowLines().find(buf, 0, len(buf), 0.0, True).starts) > 50
    # A range whose first line holds a hit: from the line's start, and from inside it.
    hit = buf.find(NEEDLE, 10_000)
    line = buf.rfind(b"\n", 0, hit) + 1
    for lo in (line, line + 1, hit - 1):
        both_ways(buf, lo, len(buf), 0.0, True)


def test_slow_lines_refuse_bounds_outside_the_buffer() -> None:
    finder = SlowLines()
    with pytest.raises(ValueError, match="lo <= hi"):
        mongo_slow_lines.slow_lines(b"ab", 1, 3, 0.0, True, {}, finder._judge, last_duration)


_PIECES = [b"\n", b'{"t":{"$date":', b'{"t":', b"x", b"{", b"\r", b"\xff"]


@settings(max_examples=500, deadline=None)
@given(soup(_PIECES))
def test_every_line_starts_with_is_what_the_two_counts_tell(
    buf_and_bounds: tuple[bytes, int, int],
) -> None:
    buf, lo, stop = buf_and_bounds
    marker = b'{"t":{"$date":'
    assert json_lines.every_line_starts_with(buf, marker, lo, stop) == (
        every_line_starts_with_reference(buf, marker, lo, stop)
    )


def test_every_line_starts_with_refuses_a_marker_holding_a_newline_or_negative_bounds() -> None:
    with pytest.raises(ValueError, match="newline"):
        json_lines.every_line_starts_with(b"a\nb", b"x\n", 0, 3)
    with pytest.raises(ValueError, match="0 <= lo and 0 <= hi"):
        json_lines.every_line_starts_with(b"a\nb", b"x", 0, -1)


class _Commands:
    """A command_of that learns as mongo_slow's does: a key met once is marked, its command
    learnt the second time (None for keys that are not alike); every call recorded."""

    def __init__(self, learnt: dict[bytes, bytes | None], durations: list[float]) -> None:
        self.learnt, self.durations = learnt, durations
        self.calls: list[tuple[str, int, object]] = []

    def command_of(self, i: int, key: bytes) -> bytes | None:
        self.calls.append(("command", i, key))
        if key not in self.learnt:
            self.learnt[key] = MET_ONCE
            return None
        self.learnt[key] = None if key.startswith(b"odd") else b"cmd-" + key
        return self.learnt[key]

    def new_group(self, i: int, alike: bool) -> DetailGroup:
        self.calls.append(("group", i, alike))
        return DetailGroup((i, alike), 0, 0.0, self.durations[i])  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, b"a", b"b", b"odd", b"c"]),
            st.sampled_from([0.0, 1.0, 2.5, 100.0, 0.1, 1e300, 7.0, -5.0]),
        ),
        max_size=40,
    ),
    st.dictionaries(
        st.sampled_from([b"a", b"b", b"odd"]),
        st.sampled_from([None, b"cmd-a", b"cmd-x", MET_ONCE, UNSEEN]),
    ),
    st.data(),
)
def test_groups_are_those_of_the_reference_loop(
    lines: list[tuple[bytes | None, float]],
    learnt: dict[bytes, bytes | None],
    data: st.DataObject,
) -> None:
    keys, durations = [key for key, _ in lines], [ms for _, ms in lines]
    every = range(len(lines))
    subsets = st.lists(st.sampled_from(every), unique=True).map(sorted) if lines else st.just([])
    chosen = data.draw(st.just(every) | subsets)
    results = []
    for group_lines in (mongo_slow.group_lines, group_lines_reference):
        commands = _Commands(dict(learnt), durations)
        groups = group_lines(
            chosen, keys, durations, commands.learnt, UNSEEN, MET_ONCE,
            commands.command_of, commands.new_group,
        )
        told = [(group.first, group.count, group.total_ms, group.max_ms) for group in groups]
        results.append((told, commands.calls, commands.learnt))
    assert mongo_slow.group_lines is not group_lines_reference
    assert results[0] == results[1]


def on_pg_logs(examples: int, prefixes: list[str]) -> Callable[[PgLogTest], PgLogTest]:
    """Cases of a test(log, prefix, data): a generated pg log with tagged lines (laid out for
    `prefix`, one of `prefixes`) and draws from `data`."""

    def decorate(test: PgLogTest) -> PgLogTest:
        cases = given(tagged_logs(), st.sampled_from(prefixes), st.data())(test)
        slow = [HealthCheck.too_slow]
        return settings(max_examples=examples, deadline=None, suppress_health_check=slow)(cases)

    return decorate


@on_pg_logs(400, ALL_PREFIXES)
def test_heads_and_tags_of_pg_logs_are_those_of_the_mapped_pass(
    log: str, prefix: str, data: st.DataObject
) -> None:
    count = prefixed_format(prefix)._entry_count
    assume(count._guarded_line is not None and count._heads_table[1])  # the pass's own prefixes
    table = count._heads_table[0]
    buf, lo, hi = laid_out_range(log, prefix, data)
    hi = data.draw(st.sampled_from([hi, hi + 1, len(buf) + 3]))
    with avx2_loops(data.draw(st.booleans())):
        found = pg_count.heads_and_tags(buf, table, lo, hi)
    assert found == heads_and_tags_reference(buf, table, lo, hi)


@on_pg_logs(300, ALL_PREFIXES)
def test_follow_up_tags_of_pg_logs_are_those_of_the_mapped_pass(
    log: str, prefix: str, data: st.DataObject
) -> None:
    buf, lo, hi = laid_out_range(log, prefix, data)
    with avx2_loops(data.draw(st.booleans())):
        found = pg_count.follow_up_tags(buf, TAG_TABLE, lo, hi)
    assert found == follow_up_tags_reference(buf, TAG_TABLE, lo, hi)


_PG_SOUP = [b"\n", b"2", b"L", b"T", b"Y", b"N", b"R", b":", b" ", b":  ", b"L:  ", b"\t", b"\xff"]


@settings(max_examples=500, deadline=None)
@given(soup(_PG_SOUP), st.booleans())
def test_heads_and_tags_of_byte_soup_are_those_of_the_mapped_pass(
    buf_and_bounds: tuple[bytes, int, int], avx2: bool
) -> None:
    buf, lo, hi = buf_and_bounds
    table = prefixed_format("pgbadger")._entry_count._heads_table[0]
    assert_passes_find_what_the_mapped_pass_does(buf, (table, TAG_TABLE), lo, hi, avx2)


def assert_passes_find_what_the_mapped_pass_does(
    buf: bytes, tables: tuple[bytes, bytes], lo: int, hi: int, avx2: bool
) -> None:
    """heads_and_tags (with the first table) and follow_up_tags (with the second), their AVX2
    loops on or off, find what their references find."""
    table, tag_table = tables
    with avx2_loops(avx2):
        found = pg_count.heads_and_tags(buf, table, lo, hi), pg_count.follow_up_tags(
            buf, tag_table, lo, hi
        )
    assert found == (
        heads_and_tags_reference(buf, table, lo, hi),
        follow_up_tags_reference(buf, tag_table, lo, hi),
    )


@settings(max_examples=300, deadline=None)
@given(st.sets(st.integers(0, 255)), st.sets(st.integers(0, 255)), st.data())
def test_heads_and_tags_of_any_bytes_and_classes_are_those_of_the_mapped_pass(
    heads: set[int], tags: set[int], data: st.DataObject
) -> None:
    # Any byte may be of the head class or the tag class (the marks, a newline, colon and
    # space, are mapped to themselves), and the bytes are the marks and bytes of either class
    # or none, so that heads and tags of every byte turn up.
    table = bytes(
        byte if byte in b"\n: " else 1 if byte in heads else 2 if byte in tags else 0
        for byte in range(256)
    )
    tags_table = bytes(c if c in b": " or c == 2 else 0 for c in table)
    some = st.sampled_from(sorted(heads | tags)) if heads | tags else st.integers(0, 255)
    parts = st.sampled_from([b"\n", b":  "]) | (some | st.integers(0, 255)).map(
        lambda byte: bytes((byte,))
    )
    buf = b"".join(data.draw(st.lists(parts, min_size=40, max_size=300)))
    # Ranges over many vector steps mostly, and anywhere.
    lo = data.draw(st.integers(0, 40) | st.integers(0, len(buf) + 2))
    hi = data.draw(st.integers(len(buf) - 40, len(buf) + 2) | st.integers(0, len(buf) + 2))
    for avx2 in (True, False):
        assert_passes_find_what_the_mapped_pass_does(buf, (table, tags_table), lo, hi, avx2)


def test_heads_and_tags_end_exactly_at_every_bound_in_every_alignment() -> None:
    # Heads and tags at every offset modulo a vector step, and every range around them: a
    # vector step must count no newline and no tag reaching past `hi`.
    buf = b"".join(b"2" * n + b"\nL:  2\n" + b"Y:  " for n in range(40))
    table = prefixed_format("pgbadger")._entry_count._heads_table[0]
    for avx2 in (True, False):
        with avx2_loops(avx2):
            for lo in range(0, 70, 3):
                for hi in [*range(lo, lo + 80), *range(len(buf) - 80, len(buf) + 3)]:
                    found = pg_count.heads_and_tags(buf, table, lo, hi)
                    assert found == heads_and_tags_reference(buf, table, lo, hi), (avx2, lo, hi)


def test_heads_and_tags_refuse_a_table_that_maps_other_bytes_to_the_marks() -> None:
    table = bytearray(prefixed_format("pgbadger")._entry_count._heads_table[0])
    table[ord("x")] = ord(":")
    with pytest.raises(ValueError, match="newline, colon and space"):
        pg_count.heads_and_tags(b"x:  \n", bytes(table), 0, 5)
    with pytest.raises(ValueError, match="colon and space"):
        pg_count.follow_up_tags(b"x:  \n", bytes(table), 0, 5)
    with pytest.raises(ValueError, match="0 <= lo and 0 <= hi"):
        pg_count.follow_up_tags(b"x:  \n", TAG_TABLE, 0, -1)


# The prefixes whose line heads the compiled pairing reads from a program, and those whose every
# parse is not decided byte by byte (free text, names but `%u@%d `, a process after %q or glued
# to digits, a newline), left to the pair regex.
PROGRAMMED = ["coded", "debian", "default", "epoch", "literal-first", "no-process", "pid-first",
              "session-first", "space-first", "sqlstate-first", "tag-letter-first", "xid-first"]


def test_the_common_prefixes_have_line_programs_and_the_undecided_ones_none() -> None:
    assert [p for p in ALL_PREFIXES if line_program(prefixed_format(p).prefix)] == sorted(
        PROGRAMMED, key=ALL_PREFIXES.index
    )


def both_pairings(count: pg_count.EntryCount, buf: bytes, lo: int, hi: int) -> None:
    """The compiled pairing reads the follow-up tags of buf[lo:hi] as the pair regex does: the
    same counts, and the same tags left to the general reading."""
    program = line_program(count._prefix)
    assert program is not None
    tags = follow_up_tags_reference(buf, TAG_TABLE, lo, hi)
    skip_tabs = count._guarded_line is not None
    assert _scan.pair_follow_ups(buf, lo, tags, program, skip_tabs) == count.pairs_by_regex(
        buf, lo, tags
    )


def head_by_regex(prefix: str, buf: bytes, at: int) -> tuple[int, ...] | None:
    """What the pair regex reads of the line head at `at`: its end, its process's span (-1, -1
    without one) and its level's."""
    compiled = prefixed_format(prefix).prefix
    names = {compiled.process_group, "level"} - {None}
    found = re.compile(unread_names(captured(compiled.line.pattern, names))).match(buf, at)
    if found is None:
        return None
    process = found.span(compiled.process_group) if compiled.process_group else (-1, -1)
    return (found.end(), *process, *found.span("level"))


@on_pg_logs(800, PROGRAMMED)
def test_line_heads_read_by_program_are_those_the_pair_regex_reads(
    log: str, prefix: str, data: st.DataObject
) -> None:
    buf = laid_out(log, prefix)
    # Lines as written, and cut, or with a byte changed or put anywhere in their heads.
    line = data.draw(st.sampled_from([0, *(at + 1 for at in range(len(buf)) if buf[at] == 10)]))
    edit = data.draw(st.integers(line, min(line + 60, len(buf))))
    put = data.draw(st.sampled_from([b"", b"x", b"9", b"1", b"a", b"A", b" ", b"@", b"[", b"\n",
                                     b":", b"-", b"."]))
    program = line_program(prefixed_format(prefix).prefix)
    assert program is not None
    changed, inserted = buf[:edit] + put + buf[edit + 1 :], buf[:edit] + put + buf[edit:]
    for text in (buf, buf[:edit], changed, inserted):
        assert _scan.read_head(text, line, program) == head_by_regex(prefix, text, line)


@on_pg_logs(400, PROGRAMMED)
def test_follow_ups_paired_by_program_are_those_the_pair_regex_pairs(
    log: str, prefix: str, data: st.DataObject
) -> None:
    buf, lo, hi = laid_out_range(log, prefix, data)
    both_pairings(prefixed_format(prefix)._entry_count, buf, lo, hi)


_HEAD_SOUP = [b"\n", b"\t", b"2024-11-03 01:10:00.000 CDT ", b"[11] ", b"[12] ", b"a@db ",
              b"42P01 ", b"DETAIL:  ", b"HINT:  ", b"LOG:  ", b"FATAL:  ", b"DEBUG2:  ",
              b"CONT:  ", b"QUERY:  ", b"x", b"9", b"\xff"]


@settings(max_examples=500, deadline=None)
@given(soup(_HEAD_SOUP, past_end=0), st.sampled_from(["debian", "coded", "no-process"]))
def test_follow_ups_of_head_soup_paired_by_program_are_those_the_pair_regex_pairs(
    buf_and_bounds: tuple[bytes, int, int], prefix: str
) -> None:
    buf, lo, hi = buf_and_bounds
    lo, hi = min(lo, hi), max(lo, hi)
    both_pairings(prefixed_format(prefix)._entry_count, buf, lo, hi)


def test_levels_that_only_begin_or_end_like_a_follow_up_level_are_not_one() -> None:
    head = "2024-11-03 01:10:00.000 CDT [11] a@db "
    levels = ["CONT", "HIN", "TEXT", "XDETAIL", "LOCATIONN", "DETAIL"]
    buf = "".join(f"{head}{level}:  x\n" for level in ["LOG", *levels]).encode()
    count = prefixed_format("debian")._entry_count
    both_pairings(count, buf, 0, len(buf))
    program = line_program(count._prefix)
    assert program is not None
    tags = follow_up_tags_reference(buf, TAG_TABLE, 0, len(buf))
    assert len(tags) == len(levels)
    assert _scan.pair_follow_ups(buf, 0, tags, program, True) == (1, 0, [])


@pytest.mark.parametrize(
    "program",
    [b"", b"R", b"L\x05ab", b"O\x09V", b"Z", b"VL\x01a", b"L\x01aO\x02VVV", b"O\x01VV",
     b"R\x01\x01" + b"\0" * 31],
)
def test_the_pairing_refuses_what_is_not_a_line_program(program: bytes) -> None:
    with pytest.raises(ValueError, match="not a line program"):
        _scan.read_head(b"2024-11-03 LOG:  x\n", 0, program)
    with pytest.raises(ValueError, match="not a line program"):
        _scan.pair_follow_ups(b"x DETAIL:  y\n", 0, [7], program, True)


_CSV_TIME = b"2024-05-01 12:00:00.000 UTC,"
_CSV_FIELD_SOUP = [b'"', b'""', b",", b"x", b"\n", b'"x"', b'"a\nb"', b"\xff", b"\n" + _CSV_TIME]


@st.composite
def csv_soup(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """Lines, most starting like a record, of field-ish bytes (quotes paired or not, quoted
    newlines, lines that read like a record's start inside them), and two bounds: mostly the
    whole buffer, else anywhere."""
    lines = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [_CSV_TIME, _CSV_TIME, _CSV_TIME[:-4] + b"Z,", _CSV_TIME[:12], b""]
                ),
                st.lists(st.sampled_from(_CSV_FIELD_SOUP), max_size=8),
            ),
            max_size=12,
        )
    )
    ending = draw(st.sampled_from([b"\n", b""]))
    buf = b"\n".join(start + b"".join(fields) for start, fields in lines) + ending
    lo = draw(st.one_of(st.just(0), st.integers(0, len(buf))))
    hi = draw(st.one_of(st.just(len(buf)), st.integers(lo, len(buf))))
    return buf, lo, hi


@settings(max_examples=1000, deadline=None)
@given(csv_soup())
@example((_CSV_TIME[:-4] + b"Z,", 0, 26))  # a start whose comma is the range's last byte
def test_csv_record_starts_of_field_soup_are_those_of_the_reference_loop(
    buf_and_bounds: tuple[bytes, int, int],
) -> None:
    buf, lo, hi = buf_and_bounds
    compiled = memoryview(_scan.csv_record_starts(buf, lo, hi)).cast("q")
    assert list(compiled) == record_starts_reference(buf, lo, hi)


def test_csv_record_starts_refuse_negative_bounds() -> None:
    with pytest.raises(ValueError, match="0 <= lo"):
        _scan.csv_record_starts(b"x", -1, 1)
