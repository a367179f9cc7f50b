"""pg-csv's records are found by reading their fields, not by lines that read like a record's
start: a logged statement or message that quotes csvlog lines stays one entry, counted once,
packaged whole, never selected for what its quoted lines say; and a record cut off inside a
quoted field does not swallow the records written after it. A file ending in such a statement
ends at its time, not at the time of the lines it quotes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.engine_logs import pack, spec_for
from tests.unit.test_compiled_scan import csv_soup
from tests.unit.test_formats_window import BASE_MS, csv_record, pg_time

from dblogpack.formats import build
from dblogpack.formats.pg_csv import record_starts, record_starts_reference
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow
from dblogpack.selector import Framing, Margins, entry_at_or_after, file_edges, plan_range
from dblogpack.sources.local import DirSource

CSV = build(FormatConfig("pg-csv"))
EVERYTHING = TimeWindow(None, None)


def record(ms: int, message: str, severity: str = "LOG", code: str = "00000") -> bytes:
    return csv_record(ms, message, severity, code).encode()


def quoting(ms: int, severity: str = "ERROR") -> str:
    """A statement holding csvlog lines (an application storing its logs in a table): one with
    quoted fields, one without (which reads as a whole record, quotes and all)."""
    quoted = record(ms, "relation x does not exist", severity, "42P01").decode()
    plain = f"{pg_time(ms)},,,7,,1.7,1,,,3/0,0,{severity},42P01,relation x,,,,,,,,,,,,0"
    return f"statement: INSERT INTO logs VALUES ('{quoted}{plain}')"


def scan(data: bytes, kind: LogKind, window: TimeWindow = EVERYTHING) -> tuple[int, list[bytes]]:
    result = CSV.scan(data, Query(window, kind), "postgresql.csv", 0)
    return result.entries, [data[start:end] for start, end in result.spans]


def test_a_statement_quoting_csvlog_lines_is_one_entry_packaged_whole() -> None:
    first, quoting_one, last = (
        record(BASE_MS, "a"),
        record(BASE_MS + 1000, quoting(BASE_MS - 5000)),
        record(BASE_MS + 2000, "b"),
    )
    data = first + quoting_one + last
    assert list(record_starts(data, 0, len(data))) == [0, len(first), len(data) - len(last)]
    assert scan(data, LogKind.ALL) == (3, [data])


def test_an_error_quoted_inside_a_message_is_not_an_error_entry() -> None:
    data = record(BASE_MS, quoting(BASE_MS)) + record(BASE_MS + 1000, "boom", "ERROR", "XX000")
    assert scan(data, LogKind.ERROR) == (1, [record(BASE_MS + 1000, "boom", "ERROR", "XX000")])


def test_window_edges_fall_between_records_not_on_their_quoted_lines() -> None:
    # The quoted lines' times lie inside the window; the record quoting them does not.
    before = record(BASE_MS, quoting(BASE_MS + 60_000))
    inside = [record(BASE_MS + 60_000 + i * 100, f"m{i}") for i in range(50)]
    after = record(BASE_MS + 120_000, quoting(BASE_MS + 61_000))
    data = before + b"".join(inside) + after
    window = TimeWindow((BASE_MS + 30_000) / 1000, (BASE_MS + 90_000) / 1000)
    assert scan(data, LogKind.ALL, window) == (50, [b"".join(inside)])


def test_records_after_one_cut_off_inside_a_quoted_field_are_all_found() -> None:
    cut = record(BASE_MS, "connection received: host=[local]")
    cut = cut[: cut.index(b"received") + 4] + b"\n"  # the writer died mid-message
    following = [record(BASE_MS + 1000 + i, f"after {i}", "ERROR", "XX000") for i in range(3)]
    data = record(BASE_MS - 1000, "before") + cut + b"".join(following)
    assert scan(data, LogKind.ALL)[0] == 5
    assert scan(data, LogKind.ERROR) == (3, [b"".join(following)])
    # Nor does it hold back where the chunk's whole records end (counting quotes from the
    # chunk's start, the cut record's start was taken for the last one: the next chunk began
    # there and doubled until it reached the range's end or 64 MiB).
    assert CSV.complete_length(data) == len(data) - len(following[-1])


def test_a_chunk_ends_before_a_record_whose_quoted_field_it_cuts() -> None:
    # Cut anywhere once the record's start is in the chunk: inside its quoted statement, the
    # lines it quotes are not where the chunk's whole records end.
    first = record(BASE_MS, "a")
    data = first + record(BASE_MS + 1000, quoting(BASE_MS))
    for cut in range(len(first) + len(pg_time(BASE_MS)) + 1, len(data)):
        assert CSV.complete_length(data[:cut]) == len(first)


# ---- any log: the engine's records are the ones written -----------------------------------

_TEXT = st.text(alphabet=st.sampled_from([*'ab ",\n\t\'', "é"]), max_size=30)


@st.composite
def messages(draw: st.DrawFn) -> str:
    """Message text: quotes, commas, newlines, and lines that read like whole csvlog records."""
    parts = draw(st.lists(st.one_of(_TEXT, st.builds(quoting, st.integers(0, 10**7))), max_size=4))
    return "\n".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=12), st.data())
def test_any_log_scans_to_the_records_written_and_the_window_to_their_own_times(
    texts: list[str], data: st.DataObject
) -> None:
    stamps = [BASE_MS + 10 * i for i in range(len(texts))]
    records = [record(ms, text) for ms, text in zip(stamps, texts, strict=True)]
    log = b"".join(records)
    assert scan(log, LogKind.ALL) == (len(records), [log])
    lo = data.draw(st.integers(0, len(stamps)), label="first record in the window")
    hi = data.draw(st.integers(lo, len(stamps)), label="first record after it")
    begin, end = BASE_MS + 10 * lo, BASE_MS + 10 * hi  # record i is at BASE_MS + 10 i
    if end == begin:  # no record: the 5 ms before record `lo`'s time
        begin -= 5
    window = TimeWindow(begin / 1000, end / 1000)
    chosen = b"".join(records[lo:hi])
    assert scan(log, LogKind.ALL, window) == (hi - lo, [chosen] if chosen else [])


@settings(max_examples=300, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=8), st.data())
def test_the_compiled_record_starts_are_the_reference_ones_on_any_cut(
    texts: list[str], data: st.DataObject
) -> None:
    log = b"".join(record(BASE_MS + i, text) for i, text in enumerate(texts))
    lo = data.draw(st.integers(0, len(log)))
    hi = data.draw(st.integers(lo, len(log)))
    assert list(record_starts(log, lo, hi)) == record_starts_reference(log, lo, hi)


def test_a_file_ending_in_a_statement_that_quotes_older_lines_ends_at_its_own_time(
    tmp_path: Path,
) -> None:
    # The file's entries run from 12:00 to 12:10; the lines its last one quotes say 12:02. A
    # window of 12:05-12:15 must not skip the file for ending at 12:02.
    log = b"".join(record(BASE_MS + i * 1000, f"m{i}") for i in range(600))
    last = record(BASE_MS + 600_000, quoting(BASE_MS + 120_000))
    (tmp_path / "postgresql.csv").write_bytes(log + last)
    assert CSV.last_timestamp(last) == (BASE_MS + 600_000) / 1000

    spec = spec_for(LogKind.ALL, BASE_MS + 300_000, BASE_MS + 900_000)
    result, files, _ = pack(DirSource(tmp_path), spec, FormatConfig("pg-csv"))

    assert [(f.name, f.entries) for f in result.files] == [("postgresql.csv", 301)]
    from_window = log.index(record(BASE_MS + 300_000, "m300"))
    assert files["logs/postgresql.csv"] == log[from_window:] + last


@settings(max_examples=500, deadline=None)
@given(csv_soup())
def test_a_framed_chunk_is_scanned_as_its_records_were_read_to_frame_it(
    buf_and_bounds: tuple[bytes, int, int],
) -> None:
    # With the bytes after the chunk in view: a record cut off inside a quoted field whose next
    # quote lies past the chunk ends at the next record start, as it does in the whole buffer
    # (read alone, the chunk would end that record at its own end).
    buf = buf_and_bounds[0]
    framing = build(FormatConfig("pg-csv"))
    whole = framing.complete_length(buf)
    starts = [start for start in record_starts(buf, 0, len(buf)) if start < whole]
    everything = Query(EVERYTHING, LogKind.ALL)
    result = framing.scan(buf[:whole], everything, "f", 0)
    assert result.entries == len(starts)
    assert result.spans == ([(starts[0], whole)] if starts else [])
    # Bytes of it that do not end at a record start are not a framed chunk: read alone.
    for cut in {whole - 1, len(buf) - 1} - {*starts, -1}:
        framing.complete_length(buf)
        framed = framing.scan(buf[:cut], everything, "f", 0)
        fresh = build(FormatConfig("pg-csv")).scan(buf[:cut], everything, "f", 0)
        assert (framed.entries, framed.spans) == (fresh.entries, fresh.spans)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages(), min_size=2, max_size=8), st.integers(0, 10**6))
def test_a_scan_after_framing_is_the_scan_of_a_format_that_framed_nothing(
    texts: list[str], cut: int
) -> None:
    log = b"".join(record(BASE_MS + i, text, "ERROR", "XX000") for i, text in enumerate(texts))
    chunk = log[: cut % len(log) + 1]
    framing = build(FormatConfig("pg-csv"))
    whole = framing.complete_length(chunk)
    everything, errors = Query(EVERYTHING, LogKind.ALL), Query(EVERYTHING, LogKind.ERROR)
    for buf, query in ((chunk[:whole], everything), (chunk, errors), (log, everything)):
        fresh = build(FormatConfig("pg-csv")).scan(buf, query, "f", 0)
        framing.complete_length(chunk)
        framed = framing.scan(buf, query, "f", 0)
        assert (framed.entries, framed.spans) == (fresh.entries, fresh.spans)
    # Another buffer of the same length and records but one byte: its own records are read.
    other = chunk[:whole].replace(b'"', b"'", 1)
    framing.complete_length(chunk)
    framed, fresh = (
        fmt.scan(other, everything, "f", 0) for fmt in (framing, build(FormatConfig("pg-csv")))
    )
    assert (framed.entries, framed.spans) == (fresh.entries, fresh.spans)


def test_a_probe_inside_a_statement_quoting_csvlog_lines_finds_the_record_after_it() -> None:
    # csvlog quotes its text fields: a quoted line read as a record breaks the quoting (its
    # quotes are doubled), so a probe passes over the lines a statement quotes.
    quoted = "\n".join(
        record(BASE_MS + 86_400_000 + i, "relation x does not exist", "ERROR", "42P01").decode()
        for i in range(50)
    )
    before = record(BASE_MS, "m0")
    statement = record(BASE_MS + 1000, f"statement: INSERT INTO logs VALUES ('{quoted}')")
    after = record(BASE_MS + 2000, "m2") + record(BASE_MS + 3000, "m3")
    log = before + statement + after

    def read(offset: int, size: int) -> bytes:
        return log[offset : offset + size]

    framing = Framing(CSV.next_entry, CSV.last_timestamp)
    for inside in (len(before) + 200, len(before) + len(statement) // 2, len(log) - len(after) - 5):
        assert entry_at_or_after(read, len(log), inside, framing, 16384) == (
            len(before) + len(statement), (BASE_MS + 2000) / 1000
        )
    assert entry_at_or_after(read, len(log), 0, framing, 16384) == (0, BASE_MS / 1000)
    # A tail that begins inside the statement ends at the last record's time.
    assert CSV.last_timestamp(log[len(before) + 300 :]) == (BASE_MS + 3000) / 1000


def quoting_file() -> tuple[bytes, bytes, bytes]:
    """Records 1 s apart from 12:00 (m0 ... m2000, but m1000); in the middle, one that logs a
    statement quoting 3,000 csvlog lines (~0.6 MB) that say a day later."""
    day = 86_400_000
    quoted = "\n".join(
        record(BASE_MS + day + i, "relation x does not exist", "ERROR", "42P01").decode()
        for i in range(3000)
    )
    statement = record(BASE_MS + 1_000_000, f"statement: INSERT INTO logs VALUES ('{quoted}')")
    return _records(0, 1000), statement, _records(1001, 1000)


def _records(first: int, count: int) -> bytes:
    return b"".join(record(BASE_MS + i * 1000, f"m{i}") for i in range(first, first + count))


def test_a_probe_reads_on_past_a_statement_quoting_more_csvlog_lines_than_it_holds(
    tmp_path: Path,
) -> None:
    # A probe wholly inside the statement has only the quoted lines, none of which reads whole:
    # it reads a longer one, until the record after the statement. Their time (a day later) is
    # never taken for the file's, so the file is not out of order and only the window's part
    # of it is scanned.
    before, statement, after = quoting_file()
    (tmp_path / "postgresql.csv").write_bytes(before + statement + after)
    assert len(statement) > len(before) + len(after)  # the first probes land in it

    for kind, begin, end in (
        (LogKind.ALL, 1500, 1620),
        (LogKind.ALL, 200, 320),
        (LogKind.ERROR, 0, 2001),  # the file's own edges: nothing to bisect
    ):
        spec = spec_for(kind, BASE_MS + begin * 1000, BASE_MS + end * 1000)
        result, files, _ = pack(DirSource(tmp_path), spec, FormatConfig("pg-csv"))
        expected = 0 if kind is LogKind.ERROR else end - begin
        assert [f.entries for f in result.files] == [expected]
        if expected:
            assert files["logs/postgresql.csv"] == _records(begin, end - begin)
            assert result.files[0].bytes_scanned < len(statement)
        assert result.warnings == []


def test_a_quoted_line_a_probe_cuts_off_before_its_quotes_is_not_taken_for_a_record() -> None:
    # Cut after its time, the quoted line reads like a record so far; its quoting breaks past
    # the cut. The probe reads no record, so a longer one is read.
    before, statement, after = quoting_file()
    log = before + statement + after
    line = log.index(b"\n", len(before) + len(statement) // 2) + 1
    cut = log.index(b",", line) + 1
    assert CSV.next_entry(log[line - 1 : cut], 1) is None
    # The record after the statement, which the buffer ends with, newline and all, reads whole.
    next_record = len(before) + len(statement)
    through_it = log[line - 1 : next_record + len(record(BASE_MS + 1_001_000, "m1001"))]
    assert CSV.next_entry(through_it, 1) == (next_record - line + 1, (BASE_MS + 1_001_000) / 1000)
    assert CSV.next_entry(through_it[:-1], 1) is None
    assert CSV.last_timestamp(log[line:]) == (BASE_MS + 2_000_000) / 1000


def test_a_file_whose_first_record_is_longer_than_its_head_is_dated_by_it() -> None:
    # A file (or a chunk) begins at a record: the head needs none after it to trust it.
    first = record(BASE_MS, f"statement: SELECT '{'x' * 100_000}'")
    log = first + _records(1, 10)
    framing = Framing(CSV.next_entry, CSV.last_timestamp)

    def read(offset: int, size: int) -> bytes:
        return log[offset : offset + size]

    assert file_edges(read, len(log), framing) == (BASE_MS / 1000, (BASE_MS + 10_000) / 1000)
    assert entry_at_or_after(read, len(log), 0, framing, 16384) == (0, BASE_MS / 1000)


def test_a_statement_longer_than_a_probe_grows_to_leaves_the_range_wider_and_exact() -> None:
    before, statement, after = quoting_file()
    log = before + statement + after
    framing = Framing(CSV.next_entry, CSV.last_timestamp)
    bound = Margins(probe_max=64 * 1024)  # the statement is ten times longer

    def read(offset: int, size: int) -> bytes:
        assert size <= bound.probe_max or offset == max(0, len(log) - size)  # a probe, or a tail
        return log[offset : offset + size]

    for begin, end in ((1500, 1620), (200, 320), (990, 1010)):
        window = TimeWindow((BASE_MS + begin * 1000) / 1000, (BASE_MS + end * 1000) / 1000)
        edges = file_edges(read, len(log), framing, bound)
        scan = plan_range("postgresql.csv", read, len(log), framing, window, edges, bound)
        assert scan.warning is None
        found = CSV.scan(log[scan.start : scan.stop], Query(window, LogKind.ALL), "f", 0)
        kept = b"".join(log[scan.start + a : scan.start + b] for a, b in found.spans)
        assert kept == b"".join(
            statement if i == 1000 else record(BASE_MS + i * 1000, f"m{i}")
            for i in range(begin, end)
        )
        assert found.entries == end - begin
