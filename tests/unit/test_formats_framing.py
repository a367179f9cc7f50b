"""Framing: however a log is cut into chunks, the same entries come out, byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.formats import build, detect, framing
from dblogpack.formats.base import LogFormat
from dblogpack.formats.framing import ChunkFramer
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

LOGS = Path(__file__).parent.parent / "logs"
EXPECTED = json.loads((LOGS / "expected.json").read_text())
SAMPLES = sorted(EXPECTED)
EVERYTHING = TimeWindow()


def fmt_of(sample: str) -> LogFormat:
    return build(FormatConfig(**EXPECTED[sample]["config"]))


def scan_pieces(
    fmt: LogFormat, pieces: list[bytes], kind: LogKind
) -> tuple[list[tuple[int, int]], int, list[int]]:
    """Spans (absolute offsets, merged), entry count and warning offsets of consecutive pieces."""
    spans: list[tuple[int, int]] = []
    entries, base = 0, 0
    warnings: list[int] = []
    for piece in pieces:
        result = fmt.scan(piece, Query(EVERYTHING, kind), "f", base)
        for start, end in result.spans:
            if spans and spans[-1][1] == start + base:
                spans[-1] = (spans[-1][0], end + base)
            else:
                spans.append((start + base, end + base))
        entries += result.entries
        warnings += [w.offset for w in result.warnings]
        base += len(piece)
    return spans, entries, warnings


def framed(fmt: LogFormat, chunks: list[bytes]) -> list[bytes]:
    framer = ChunkFramer(fmt.complete_length)
    pieces = [framer.feed(chunk) for chunk in chunks]
    pieces.append(framer.flush())
    return [piece for piece in pieces if piece]


@pytest.mark.parametrize("sample", SAMPLES)
def test_splitting_at_every_offset_yields_the_same_entries(sample: str) -> None:
    data = (LOGS / sample).read_bytes()
    fmt = fmt_of(sample)
    whole = {kind: scan_pieces(fmt, [data], kind) for kind in LogKind}
    for cut in range(len(data) + 1):
        pieces = framed(fmt, [data[:cut], data[cut:]])
        assert b"".join(pieces) == data
        for kind in LogKind:
            assert scan_pieces(fmt, pieces, kind) == whole[kind], (cut, kind)


@pytest.mark.parametrize("sample", ["pg15-debian-chicago.log", "pg15-chicago.csv", "mongo44.json"])
def test_byte_by_byte_feeding_holds_back_only_the_last_entry(sample: str) -> None:
    data = (LOGS / sample).read_bytes()
    fmt = fmt_of(sample)
    pieces = framed(fmt, [data[i : i + 1] for i in range(len(data))])
    assert b"".join(pieces) == data
    assert scan_pieces(fmt, pieces, LogKind.ALL) == scan_pieces(fmt, [data], LogKind.ALL)


def test_complete_length_keeps_the_last_entry_for_its_continuation_lines() -> None:
    fmt = fmt_of("pg15-debian-chicago.log")
    head = b"2024-05-01 12:00:00.000 UTC [1] LOG:  duration: 1.0 ms  statement: SELECT 1\n"
    tail = b"2024-05-01 12:00:01.000 UTC [1] ERROR:  boom\n"
    assert fmt.complete_length(head + tail) == len(head)
    # Its STATEMENT line may still come: the ERROR entry is not whole yet.
    assert fmt.complete_length(tail) == 0


@pytest.mark.parametrize("name", ["pg-stderr", "pg-csv", "pg-json", "mongo-json", "mongo-legacy"])
def test_empty_input_has_no_entries_and_no_warnings(name: str) -> None:
    fmt = build(FormatConfig(name))
    assert fmt.complete_length(b"") == 0
    assert fmt.next_entry(b"", 0) is None
    assert fmt.last_timestamp(b"") is None
    for kind in LogKind:
        result = fmt.scan(b"", Query(EVERYTHING, kind), "empty.log", 0)
        assert (result.spans, result.entries, result.warnings) == ([], 0, [])


def test_an_empty_head_is_read_as_pg_stderr() -> None:
    assert detect(b"", FormatConfig("auto")).name == "pg-stderr"


def test_a_10_mb_single_entry_comes_out_whole() -> None:
    line = b"\t" + b"x" * 99 + b"\n"
    head = b"2024-05-01 12:00:00.000 UTC [1] LOG:  duration: 99.0 ms  statement: SELECT\n"
    entry = head + line * (10 * 1024 * 1024 // len(line))
    after = b"2024-05-01 12:00:01.000 UTC [1] LOG:  checkpoint starting: time\n"
    fmt = build(FormatConfig("pg-stderr", "%m [%p] "))
    data = entry + after
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    pieces = framed(fmt, chunks)
    assert pieces[0] == entry
    result = fmt.scan(pieces[0], Query(EVERYTHING, LogKind.SLOW, details=True), "big.log", 0)
    assert result.spans == [(0, len(entry))]
    assert result.details[0].first.duration_ms == 99.0


def test_a_10_mb_csv_record_with_quoted_newlines_comes_out_whole() -> None:
    record = (
        b'2024-05-01 12:00:00.000 UTC,"u","d",1,"[local]",1.1,1,"SELECT",'
        b'2024-05-01 12:00:00 UTC,3/0,0,LOG,00000,"duration: 5.000 ms  statement: SELECT '
        + b"'a\"\"b',\n" * (10 * 1024 * 1024 // 8)
        + b'1",,,,,,,,,"psql","client backend",,0\n'
    )
    fmt = build(FormatConfig("pg-csv"))
    data = record + record.replace(b"12:00:00.000", b"12:00:01.000")
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    pieces = framed(fmt, chunks)
    assert pieces == [record, data[len(record) :]]
    result = fmt.scan(pieces[0], Query(EVERYTHING, LogKind.SLOW), "big.csv", 0)
    assert (result.spans, result.entries) == ([(0, len(record))], 1)


@pytest.mark.parametrize("sample", SAMPLES)
def test_invalid_utf8_is_kept_byte_for_byte_and_never_crashes(sample: str) -> None:
    data = (LOGS / sample).read_bytes().replace(b"o", b"\xff\xfe", 3)
    fmt = fmt_of(sample)
    for kind in LogKind:
        result = fmt.scan(memoryview(data), Query(EVERYTHING, kind, details=True), "f", 0)
        assert sum(group.count for group in result.details) == result.entries
        for start, end in result.spans:
            assert data[start:end] in data  # offsets index the original bytes


def test_invalid_utf8_inside_a_selected_entry_is_packaged_unchanged() -> None:
    data = (LOGS / "pg-stderr-malformed.log").read_bytes()
    fmt = fmt_of("pg-stderr-malformed.log")
    result = fmt.scan(data, Query(EVERYTHING, LogKind.SLOW, details=True), "f", 0)
    start, end = result.spans[0]
    assert b"caf\xe9 \xff\xfe" in data[start:end]
    assert "caf\ufffd" in (result.details[0].first.statement or "")


STRAY = {
    "pg-stderr": b"2024-05-01 12:00:00.000 UTC [1] ERROR:  boom\nstray\n",
    "pg-csv": b'2024-05-01 12:00:00.000 UTC,,,1,,1.1,1,,,,0,ERROR,XX000,"boom",,,,,,,,,""\nstray\n',
    "mongo-legacy": b"2019-01-01T02:00:00.000Z E  NETWORK  [conn1] boom\nstray\n",
}


@pytest.mark.parametrize("name", sorted(STRAY))
def test_a_stray_line_between_entries_stays_with_the_entry_before_it(name: str) -> None:
    data = STRAY[name] * 3
    fmt = build(FormatConfig(name, "%m [%p] "))
    for kind in (LogKind.ERROR, LogKind.ALL):
        result = fmt.scan(data, Query(TimeWindow(0, 2e9), kind, details=True), "f", 0)
        assert (result.spans, result.entries, result.warnings) == ([(0, len(data))], 3, [])


_LINES = st.lists(st.sampled_from([b"\n", b"2", b"\t", b"x\n", b"\n2", b"\n%"]), max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300) | _LINES.map(b"".join),
    guard=st.sampled_from([rb"\d", rb"[0-9a-f]", rb"%", rb"x"]),
    cuts=st.tuples(st.floats(0, 1), st.floats(0, 1.02)),
    slice_size=st.integers(1, 40),
)
def test_line_heads_counted_a_slice_at_a_time_are_those_counted_at_once(
    data: bytes, guard: bytes, cuts: tuple[float, float], slice_size: int
) -> None:
    """Property: a newline with a one-byte lookahead counted slice by slice (so a thread waiting
    for the GIL waits a slice at most) is counted exactly as one findall over the range counts it,
    heads at slice edges and at the range's end included."""
    pattern = re.compile(rb"\n(?=" + guard + rb")")
    lo, end = (int(cut * len(data)) for cut in cuts)
    expected = framing.count_matches(pattern, data, lo, end)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(framing, "COUNT_SLICE", slice_size)
        assert framing.count_line_heads(pattern, data, lo, end) == expected


# Byte strings whose bytes map to classes 0-3 (as a table maps them), and needles of classes
# that cannot overlap themselves (first class not the last).
_MAPPED = st.lists(st.sampled_from(b"\n2\tLT: x\0"), max_size=300).map(bytes)
_NEEDLES = st.sampled_from([b"\1\2", b"\3\2", b"\1\0\0\2", b"\2\1\1", b"\3"])


@settings(max_examples=500, deadline=None)
@given(
    data=_MAPPED | st.binary(max_size=300),
    classes=st.lists(st.integers(0, 3), min_size=256, max_size=256).map(bytes),
    counted=_NEEDLES,
    found=_NEEDLES | st.none(),
    bounds=st.tuples(st.integers(-5, 320), st.integers(-5, 320), st.integers(-5, 320)),
    slice_size=st.integers(1, 40),
)
def test_mapped_counts_and_searches_are_those_of_the_translated_bytes(
    data: bytes,
    classes: bytes,
    counted: bytes,
    found: bytes | None,
    bounds: tuple[int, int, int],
    slice_size: int,
) -> None:
    """Property: counting and finding needles of byte classes slice by slice, each slice mapped
    into a scratch buffer, gives bytes.count and bytes.find over the whole translated range
    (needles across slice edges, at the range's ends, bounds out of range or reversed)."""
    lo, hi, end = bounds
    mapped = data.translate(classes)
    start, stop, _ = slice(lo, hi).indices(len(data))
    last = min(slice(end).indices(len(data))[1], stop)
    expected = mapped.count(counted, start, last) if start <= last else 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(framing, "COUNT_BYTES_SLICE", slice_size)
        result = framing.count_and_find_mapped(data, classes, lo, hi, (counted, end), found)
        assert result[0] == expected
        assert result[1] == (_find_all_by_bytes(mapped, found, lo, hi) if found else [])
        assert framing.count_and_find_mapped(data, classes, lo, hi, None, None) == (0, [])


def _find_all_by_bytes(buf: bytes, needle: bytes, lo: int, hi: int) -> list[int]:
    found, at = [], buf.find(needle, lo, hi)
    while at >= 0:
        found.append(at)
        at = buf.find(needle, at + 1, hi)
    return found


@settings(max_examples=500, deadline=None)
@given(
    buf=st.binary(max_size=400) | st.text("ab\n\t", max_size=400).map(str.encode),
    needle=st.text("ab\n", min_size=1, max_size=4).map(str.encode),
    bounds=st.tuples(st.integers(-5, 420), st.integers(-5, 420)),
)
def test_needles_are_found_where_bytes_find_finds_them(
    buf: bytes, needle: bytes, bounds: tuple[int, int]
) -> None:
    """Property: find_all (stringzilla's SIMD search) yields the offsets bytes.find does, in
    order, overlapping occurrences and out-of-range or reversed bounds included."""
    lo, hi = bounds
    assert list(framing.find_all(buf, needle, lo, hi)) == _find_all_by_bytes(buf, needle, lo, hi)
