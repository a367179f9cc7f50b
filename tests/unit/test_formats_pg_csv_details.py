"""pg-csv's slow and error entries: each is selected where its own severity or message column
says so, whichever of its fields spans lines; its details (severity, SQLSTATE, message,
statement) are its fields as the csv module reads them, whatever the quoting or bytes; and
entries alike but for their time and duration are parsed once, counted each."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_window import BASE_MS, csv_record_bytes

from dblogpack.formats import build
from dblogpack.formats.pg_csv import csv_detail
from dblogpack.model import DetailGroup, FormatConfig, LogKind, Query, TimeWindow

CSV = build(FormatConfig("pg-csv"))
EVERYTHING = TimeWindow(None, None)


def raw_record(
    ms: int,
    message: bytes,
    query: bytes = b"",
    severity: bytes = b"ERROR",
    code: bytes = b"42P01",
    user: bytes = b"u",
) -> bytes:
    """One csvlog record (an error unless told) with the given message and query columns, byte
    for byte."""
    return csv_record_bytes(ms, message, severity, code, query=query, user=user)


def scanned(data: bytes, kind: LogKind) -> tuple[int, list[DetailGroup]]:
    result = CSV.scan(data, Query(EVERYTHING, kind, details=True), "postgresql.csv", 0)
    return result.entries, result.details


# Field text that csvlog quotes: quotes, commas, newlines, NUL, bytes that are not UTF-8.
TEXT = st.lists(
    st.sampled_from([b"a", b"x1", b'"', b'""', b",", b"\n", b"\x00", b"\xff", b"\xc3", b"\xa9",
                     b" ", b"SELECT 'q'", b"statement: "]),
    max_size=12,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=8))
@example([(b"relation \"x\" does not exist", b"SELECT * FROM x")])
@example([(b"", b"")])
def test_error_details_are_the_fields_as_the_csv_module_reads_them(
    texts: list[tuple[bytes, bytes]],
) -> None:
    records = [raw_record(BASE_MS + i, message, query) for i, (message, query) in enumerate(texts)]
    data = b"".join(records)
    entries, groups = scanned(data, LogKind.ERROR)
    assert entries == len(records) == sum(group.count for group in groups)
    starts = [sum(map(len, records[:i])) for i in range(len(records))]
    firsts: dict[bytes, int] = {}  # each group's first entry is the first record with its columns
    for i, record in enumerate(records):
        firsts.setdefault(record[record.index(b",ERROR,") :], i)
    expected = [
        csv_detail(data, starts[i], starts[i] + len(records[i]), (BASE_MS + i) / 1000, None)
        for i in sorted(firsts.values())
    ]
    assert [group.first for group in groups] == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99_999), TEXT), min_size=1, max_size=8))
def test_slow_details_and_durations_are_read_from_each_record(
    entries_: list[tuple[int, bytes]],
) -> None:
    records = [
        raw_record(BASE_MS + i, b"duration: %d.5 ms  statement: " % ms + statement, b"", b"LOG",
                   b"00000")
        for i, (ms, statement) in enumerate(entries_)
    ]
    data = b"".join(records)
    entries, groups = scanned(data, LogKind.SLOW)
    assert entries == len(records) == sum(group.count for group in groups)
    assert sum(group.total_ms for group in groups) == sum(ms + 0.5 for ms, _ in entries_)
    by_statement: dict[bytes, list[int]] = {}
    for i, (_, statement) in enumerate(entries_):
        by_statement.setdefault(statement, []).append(i)
    assert len(groups) == len(by_statement)
    for group, members in zip(groups, by_statement.values(), strict=True):
        first = members[0]
        start = sum(map(len, records[:first]))
        assert group.first == csv_detail(
            data, start, start + len(records[first]), (BASE_MS + first) / 1000,
            entries_[first][0] + 0.5,
        )
        assert group.count == len(members)
        assert group.max_ms == max(entries_[i][0] + 0.5 for i in members)


def test_entries_alike_but_for_time_and_duration_are_one_group_counted_each() -> None:
    slow = b"".join(
        raw_record(BASE_MS + i, b"duration: %d.000 ms  statement: SELECT 1" % (10 + i), b"",
                   b"LOG", b"00000")
        for i in range(3)
    )
    entries, groups = scanned(slow, LogKind.SLOW)
    assert entries == 3 and len(groups) == 1
    assert (groups[0].count, groups[0].total_ms, groups[0].max_ms) == (3, 33.0, 12.0)
    assert groups[0].first.statement == "SELECT 1" and groups[0].first.duration_ms == 10.0
    errors = (
        raw_record(BASE_MS, b'relation "x" does not exist', b"SELECT * FROM x")
        + raw_record(BASE_MS + 1, b'relation "x" does not exist', b"SELECT * FROM x")
        + raw_record(BASE_MS + 2, b'relation "y" does not exist', b"SELECT * FROM y")
    )
    entries, groups = scanned(errors, LogKind.ERROR)
    assert entries == 3 and [group.count for group in groups] == [2, 1]
    assert [group.first.statement for group in groups] == ["SELECT * FROM x", "SELECT * FROM y"]
    assert {group.first.code for group in groups} == {"42P01"}
    # The same message at another severity or with another SQLSTATE is counted apart.
    other = raw_record(BASE_MS + 3, b"boom", b"", b"WARNING", b"01000")
    data = raw_record(BASE_MS, b"boom") + other + raw_record(BASE_MS + 4, b"boom", code=b"XX000")
    _, groups = scanned(data, LogKind.ERROR)
    assert [(g.first.severity, g.first.code) for g in groups] == [
        ("ERROR", "42P01"), ("WARNING", "01000"), ("ERROR", "XX000")
    ]


def test_an_entry_is_selected_when_an_earlier_field_of_its_record_spans_lines() -> None:
    slow = raw_record(BASE_MS, b"duration: 5.000 ms  statement: SELECT 1", b"", b"LOG",
                      b"00000", user=b"two\nlines")
    error = raw_record(BASE_MS + 1, b"boom", b"", user=b"two\nlines")
    data = slow + error
    assert scanned(data, LogKind.SLOW)[0] == 1
    entries, groups = scanned(data, LogKind.ERROR)
    assert entries == 1 and groups[0].first.message == "boom"


def test_a_hit_outside_its_records_own_column_selects_nothing() -> None:
    # The needles inside a message or another column, on its first line or a later one.
    data = (
        raw_record(BASE_MS, b'x,"duration: 5.000 ms  statement: SELECT 1', b"", b"LOG", b"00000")
        + raw_record(BASE_MS + 1, b"a\n,ERROR,x", b"", b"LOG", b"00000")
        + raw_record(BASE_MS + 2, b"duration: 5.000 ms", b"", b"WARNING", b"01000")
    )
    assert scanned(data, LogKind.SLOW)[0] == 0
    entries, groups = scanned(data, LogKind.ERROR)
    assert entries == 1 and groups[0].first.severity == "WARNING"
