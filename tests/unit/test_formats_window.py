"""Time windows are exact (Begin <= t < End, by each entry's own time) and times are read in
the instance's IANA zone, whatever the format."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dblogpack.formats import build
from dblogpack.formats.base import LogFormat
from dblogpack.formats.scanner import EntryScanner
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

BASE_MS = 1714564800_000  # 2024-05-01T12:00:00Z


def pg_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d} UTC"


def iso_time(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def pg_stderr(ms: int, kind: str, i: int) -> str:
    ts = pg_time(ms)
    if kind == "slow":
        return f"{ts} [{i}] LOG:  duration: {i}.000 ms  statement: SELECT {i}\n\tFROM t\n"
    if kind == "error":
        return f"{ts} [{i}] ERROR:  boom {i}\n{ts} [{i}] STATEMENT:  SELECT {i}\n"
    return f"{ts} [{i}] LOG:  connection received: host=[local]\n"


def pg_csv(ms: int, kind: str, i: int) -> str:
    severity, code, message = {
        "slow": ("LOG", "00000", f"duration: {i}.000 ms  statement: SELECT 'a\nb', {i}"),
        "error": ("ERROR", "42P01", 'relation "x" does not exist'),
        "other": ("LOG", "00000", "connection received"),
    }[kind]
    return csv_record(ms, message, severity, code, i)


def csv_record(
    ms: int, message: str, severity: str = "LOG", code: str = "00000", i: int = 7
) -> str:
    """One csvlog record as PostgreSQL writes it (text fields quoted, quotes doubled), of
    process `i`."""
    return csv_record_bytes(ms, message.encode(), severity.encode(), code.encode(), i).decode()


def csv_record_bytes(
    ms: int,
    message: bytes,
    severity: bytes = b"LOG",
    code: bytes = b"00000",
    i: int = 7,
    *,
    query: bytes = b"",
    user: bytes = b"u",
) -> bytes:
    """csv_record byte for byte (any bytes in the message, query and user columns; 26 columns,
    PostgreSQL 14-17), with a `query` column when given."""

    def quoted(text: bytes) -> bytes:
        return b'"' + text.replace(b'"', b'""') + b'"'

    ts = pg_time(ms).encode()
    return (
        ts + b"," + quoted(user) + b',"d",%d,"[local]",1.%x,1,"SELECT",' % (i, i) + ts
        + b",3/0,0," + severity + b"," + code + b"," + quoted(message) + b",,,,,,"
        + (quoted(query) if query else b"") + b',,,"psql","client backend",,0\n'
    )


def pg_json(ms: int, kind: str, i: int) -> str:
    body = {
        "slow": f'"error_severity":"LOG","message":"duration: {i}.000 ms  statement: SELECT {i}"',
        "error": '"error_severity":"ERROR","state_code":"42P01","message":"boom"',
        "other": '"error_severity":"LOG","message":"connection received"',
    }[kind]
    return f'{{"timestamp":"{pg_time(ms)}","pid":{i},{body}}}\n'


def mongo_json(ms: int, kind: str, i: int) -> str:
    severity, ident, attr = {
        "slow": ("I", 51803, f'"attr":{{"durationMillis":{i}}}'),
        "error": ("E", 22435, '"attr":{"error":{"code":28}}'),
        "other": ("I", 22943, '"attr":{}'),
    }[kind]
    return (
        f'{{"t":{{"$date":"{iso_time(ms)}"}},"s":"{severity}",  "c":"COMMAND",  '
        f'"id":{ident},   "ctx":"conn{i}","msg":"m",{attr}}}\n'
    )


def mongo_legacy(ms: int, kind: str, i: int) -> str:
    ts = iso_time(ms)
    if kind == "slow":
        return f'{ts} I  COMMAND  [conn{i}] command db.c command: find {{ find: "c" }} {i}ms\n'
    if kind == "error":
        return f"{ts} E  NETWORK  [conn{i}] socket exception\n"
    return f"{ts} I  NETWORK  [listener] connection accepted\n"


RENDERERS: dict[str, Callable[[int, str, int], str]] = {
    "pg-stderr": pg_stderr,
    "pg-csv": pg_csv,
    "pg-json": pg_json,
    "mongo-json": mongo_json,
    "mongo-legacy": mongo_legacy,
}


def synthetic_log(name: str, count: int = 3000) -> tuple[bytes, list[tuple[int, int, int, str]]]:
    """Entries 100 ms apart, some a few ms out of order; returns (log, [(start, end, ms, kind)])."""
    render = RENDERERS[name]
    parts, entries, offset = [], [], 0
    for i in range(count):
        ms = BASE_MS + i * 100 + (-7 if i % 13 == 5 else 0) + (i % 3)
        kind = "slow" if i % 5 == 1 else "error" if i % 7 == 2 else "other"
        text = render(ms, kind, i).encode()
        parts.append(text)
        entries.append((offset, offset + len(text), ms, kind))
        offset += len(text)
    return b"".join(parts), entries


def reference(
    entries: list[tuple[int, int, int, str]], window: TimeWindow, kind: LogKind
) -> tuple[list[tuple[int, int]], int]:
    """The simplest filter: each entry by its own time and kind; adjacent ones merged."""
    spans: list[tuple[int, int]] = []
    count = 0
    for start, end, ms, entry_kind in entries:
        if window.contains(ms / 1000) and kind.value in ("all", entry_kind):
            count += 1
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    return spans, count


def windows(entries: list[tuple[int, int, int, str]]) -> list[TimeWindow]:
    at = [ms / 1000 for _, _, ms, _ in entries]
    return [
        TimeWindow(),
        TimeWindow(at[700], at[2300]),  # edges exactly on entries: begin kept, end dropped
        TimeWindow(at[1000] - 0.0005, at[1001] + 0.0005),
        TimeWindow(at[5], at[6]),  # next to an out-of-order entry
        TimeWindow(None, at[1500]),
        TimeWindow(at[1500], None),
        TimeWindow(at[0] - 100, at[0]),  # before everything
        TimeWindow(at[-1] + 0.001, at[-1] + 100),  # after everything
    ]


@pytest.mark.parametrize("name", sorted(RENDERERS))
@pytest.mark.parametrize("kind", list(LogKind))
def test_every_entry_is_judged_by_its_own_time(name: str, kind: LogKind) -> None:
    data, entries = synthetic_log(name)
    fmt = build(FormatConfig(name, "%m [%p] "))
    for window in windows(entries):
        result = fmt.scan(data, Query(window, kind), "f", 0)
        assert (result.spans, result.entries) == reference(entries, window, kind), window


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_entry_exactly_at_begin_is_kept_and_exactly_at_end_dropped(name: str) -> None:
    data, entries = synthetic_log(name, count=50)
    fmt = build(FormatConfig(name, "%m [%p] "))
    first, last = entries[10], entries[20]
    window = TimeWindow(first[2] / 1000, last[2] / 1000)
    result = fmt.scan(data, Query(window, LogKind.ALL), "f", 0)
    assert result.spans[0][0] == first[0]
    assert result.spans[-1][1] == entries[19][1]
    assert result.first_ts == first[2] / 1000


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_scan_tells_where_entries_past_the_window_end_begin(name: str) -> None:
    data, entries = synthetic_log(name, count=400)
    fmt = build(FormatConfig(name, "%m [%p] "))
    end_entry = entries[300]
    result = fmt.scan(data, Query(TimeWindow(None, end_entry[2] / 1000), LogKind.SLOW), "f", 0)
    assert result.end_offset == end_entry[0]
    after = fmt.scan(data, Query(TimeWindow(None, entries[-1][2] / 1000 + 1), LogKind.SLOW), "f", 0)
    assert after.end_offset is None


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_next_entry_from_inside_an_entry_finds_the_following_one(name: str) -> None:
    data, entries = synthetic_log(name, count=40)
    fmt = build(FormatConfig(name, "%m [%p] "))
    for start, end, ms, _ in entries[:-1]:
        following = next(e for e in entries if e[0] == end)
        assert fmt.next_entry(data, start + 1) == (following[0], following[2] / 1000)
        assert fmt.next_entry(data, start) == (start, ms / 1000)


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_min_duration_raises_the_bar_for_slow_entries(name: str) -> None:
    data, entries = synthetic_log(name, count=100)
    fmt = build(FormatConfig(name, "%m [%p] "))
    result = fmt.scan(data, Query(TimeWindow(), LogKind.SLOW, min_duration_ms=50), "f", 0)
    assert result.entries == sum(1 for i, e in enumerate(entries) if e[3] == "slow" and i >= 50)


def times_of(fmt: LogFormat, lines: list[bytes]) -> list[float]:
    found = [fmt.next_entry(line, 0) for line in lines]
    return [entry[1] for entry in found if entry is not None]


CHICAGO_FALL_BACK = b"""2024-11-03 01:30:00.000 CDT [1] LOG:  first pass through 01:30
2024-11-03 01:30:00.000 CST [1] LOG:  second pass through 01:30
2024-11-03 01:30:00.000 XYZ [1] LOG:  an abbreviation matching neither offset
2024-03-10 03:30:00.000 CDT [1] LOG:  just after spring forward
"""


def test_the_abbreviation_only_chooses_between_the_two_offsets_of_a_repeated_hour() -> None:
    fmt = build(FormatConfig("pg-stderr", "%m [%p] ", "America/Chicago"))
    lines = CHICAGO_FALL_BACK.splitlines(keepends=True)
    utc = [datetime.fromtimestamp(ts, UTC).isoformat() for ts in times_of(fmt, lines)]
    assert utc == [
        "2024-11-03T06:30:00+00:00",  # CDT, UTC-5
        "2024-11-03T07:30:00+00:00",  # CST, UTC-6
        "2024-11-03T06:30:00+00:00",  # unknown: the first (fold=0)
        "2024-03-10T08:30:00+00:00",
    ]


def test_the_configured_zone_decides_never_the_printed_abbreviation() -> None:
    line = b"2024-05-01 20:00:00.000 CST [1] LOG:  CST is UTC+8 in Shanghai, UTC-6 in Chicago\n"
    shanghai = build(FormatConfig("pg-stderr", "%m [%p] ", "Asia/Shanghai")).next_entry(line, 0)
    utc = build(FormatConfig("pg-stderr", "%m [%p] ")).next_entry(line, 0)
    assert shanghai == (0, datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp())
    assert utc == (0, datetime(2024, 5, 1, 20, tzinfo=UTC).timestamp())


def _with_a_record_like_line_last(name: str) -> bytes:
    """synthetic_log's entries, the last one a pg-csv record whose quoted message holds a line
    that reads like a record start 5 s earlier (other formats: the log as it is)."""
    data, entries = synthetic_log(name)
    if name != "pg-csv":
        return data
    last_ms = entries[-1][2] + 1000
    fake = pg_csv(last_ms - 5000, "other", 99).rstrip("\n").replace('"', '""')
    last = pg_csv(last_ms, "other", 7).replace(
        '"connection received"', f'"connection received\n{fake}"'
    )
    return data + last.encode()


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_a_chunk_taken_whole_inside_the_window_scans_as_its_bisection_does(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk whose first and last entries are inside the window by the tolerance is taken
    # whole, where its edges would be bisected for: the same entries either way, even where a
    # line inside an entry reads like an entry's start (pg-csv's quoted messages).
    data = _with_a_record_like_line_last(name)
    fmt = build(FormatConfig(name, "%m [%p] "))
    first = fmt.next_entry(data, 0)
    last = fmt.last_timestamp(data)
    assert first is not None and last is not None
    found = []
    for bisected in (False, True):
        if bisected:
            monkeypatch.setattr(
                EntryScanner, "_inside", lambda self, buf, at, query: (False, None)
            )
        for end in (last - 3.0, last + 0.5, last + 3.0):
            query = Query(TimeWindow(first[1] - 3.0, end), LogKind.ALL)
            result = fmt.scan(data, query, "f", 0)
            found.append((result.spans, result.entries, result.first_ts, result.last_ts))
    assert found[:3] == found[3:]


def test_pg_csv_and_json_read_their_times_in_the_configured_zone() -> None:
    csv_line = pg_csv(BASE_MS, "other", 1).replace(" UTC", " JST").encode()
    json_line = pg_json(BASE_MS, "other", 1).replace(" UTC", " JST").encode()
    wanted = (0, BASE_MS / 1000 - 9 * 3600)
    assert build(FormatConfig("pg-csv", None, "Asia/Tokyo")).next_entry(csv_line, 0) == wanted
    assert build(FormatConfig("pg-json", None, "Asia/Tokyo")).next_entry(json_line, 0) == wanted


def test_whole_second_and_epoch_prefixes() -> None:
    line = b"2024-05-01 12:00:00 UTC 1714564800.250 [9] LOG:  x\n"
    assert build(FormatConfig("pg-stderr", "%t %n [%p] ")).next_entry(line, 0) == (0, 1714564800.25)
    assert build(FormatConfig("pg-stderr", "%t ")).next_entry(line[:24] + b"LOG:  x\n", 0) == (
        0,
        1714564800.0,
    )


@pytest.mark.parametrize(
    "stamp",
    [
        b'{"$date":"2024-05-01T20:00:00.5+08:00"}',
        b'{"$date":"2024-05-01T20:00:00.500+0800"}',
        b'{"$date":"2024-05-01T12:00:00.500Z"}',
        b'{"$date":{"$numberLong":"1714564800500"}}',
    ],
)
def test_mongo_json_dates_in_every_form(stamp: bytes) -> None:
    line = b'{"t":' + stamp + b',"s":"I",  "c":"-",  "id":1,   "ctx":"x","msg":"m"}\n'
    assert build(FormatConfig("mongo-json")).next_entry(line, 0) == (0, 1714564800.5)


def test_mongo_legacy_offsets_and_ctime_year_rule() -> None:
    fmt = build(FormatConfig("mongo-legacy", None, "Asia/Shanghai"))
    local = b"2019-01-01T10:00:00.123+0800 I  NETWORK  [listener] x\n"
    assert fmt.next_entry(local, 0) == (0, 1546308000.123)
    ctime = b"Tue Jan  1 10:00:00.123 I NETWORK  [listener] x\n"
    found = fmt.next_entry(ctime, 0)
    # The latest year not after this one in which 1 January is a Tuesday.
    year = next(y for y in range(time.gmtime().tm_year, 1970, -1) if date(y, 1, 1).weekday() == 1)
    wanted = datetime(year, 1, 1, 2, 0, 0, 123000, tzinfo=UTC).timestamp()
    assert found is not None and found[0] == 0
    assert found[1] == pytest.approx(wanted)


Entry = tuple[int, int, int, str]  # start, end, time in ms, kind


def extend_last(entries: list[Entry], end: int) -> None:
    start, _, ms, kind = entries[-1]
    entries[-1] = (start, end, ms, kind)


def window_on_entries(entries: list[Entry], edges: tuple[int, int]) -> TimeWindow:
    """Edges exactly on entries' times: the one at Begin is kept, the one at End dropped."""
    times = sorted(ms for _, _, ms, _ in entries)
    first, last = sorted(edge % len(times) for edge in edges)
    end = times[last] / 1000 if times[last] > times[first] else times[first] / 1000 + 0.001
    return TimeWindow(times[first] / 1000, end)


# Prefixes whose lines start with a digit, with a literal, or with free text (no
# cheap first-byte test: entries are then counted by the full prefix regex).
PREFIX_STYLES = {
    "%m [%p] ": "{ts} [{pid}] ",
    "<%p> %m ": "<{pid}> {ts} ",
    "%u %m [%p] ": "app {ts} [{pid}] ",
}
LEVELS = ["LOG", "ERROR", "WARNING", "FATAL", "LOG-slow", "DETAIL", "HINT", "STATEMENT", "STRAY"]


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(LEVELS),
            st.integers(1, 3),  # pid
            st.integers(0, 2),  # TAB continuation lines
            st.integers(0, 1500),  # ms after the previous line
        ),
        min_size=1,
        max_size=40,
    ),
    edges=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    prefix=st.sampled_from(sorted(PREFIX_STYLES)),
)
# Follow-up lines of other processes after the last primary line, seconds later, the window
# ending among them: entries of their own, each judged by its time.
@example(
    lines=[("LOG", 1, 0, 0), ("LOG", 2, 0, 0), ("DETAIL", 1, 0, 2500), ("DETAIL", 2, 0, 2500),
           ("DETAIL", 1, 0, 1424)],
    edges=(0, 4),
    prefix="%m [%p] ",
)
def test_follow_up_lines_join_the_entry_of_their_own_process(
    lines: list[tuple[str, int, int, int]], edges: tuple[int, int], prefix: str
) -> None:
    """Property: spans and counts equal a line-by-line reading of the rule, for any interleaving.

    The log opens with a LOG line: a follow-up line with nothing before it is not an
    entry (it may belong to the chunk before) but leading bytes, a warning.
    """
    text, ms, previous_pid = b"", BASE_MS, 0
    entries: list[Entry] = []
    for level, pid, tabs, gap in [("LOG", 1, 0, 0), *lines]:
        if level == "STRAY":  # a line without a prefix stays with the entry before it
            text += b"stray line\n"
            extend_last(entries, len(text))
            continue
        ms += gap
        word = "LOG" if level == "LOG-slow" else level
        body = f"duration: {gap}.0 ms  statement: SELECT 1" if level == "LOG-slow" else "m"
        head = PREFIX_STYLES[prefix].format(ts=pg_time(ms), pid=pid)
        line = f"{head}{word}:  {body}\n" + "\tmore\n" * tabs
        if word in ("DETAIL", "HINT", "STATEMENT") and pid == previous_pid:
            extend_last(entries, len(text) + len(line))
        else:
            kind = "slow" if level == "LOG-slow" else "error" if word != "LOG" else "other"
            if word in ("DETAIL", "HINT", "STATEMENT"):
                kind = "other"  # a follow-up of another process: an entry of its own
            entries.append((len(text), len(text) + len(line), ms, kind))
        text += line.encode()
        previous_pid = pid
    fmt = build(FormatConfig("pg-stderr", prefix))
    window = window_on_entries(entries, edges)
    for kind in LogKind:
        result = fmt.scan(text, Query(window, kind), "f", 0)
        assert (result.spans, result.entries) == reference(entries, window, kind), kind


JSON_LINES = {"mongo-json", "pg-json"}


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(RENDERERS)),
    items=st.lists(
        st.tuples(st.sampled_from(["slow", "error", "other", "stray"]), st.integers(0, 1500)),
        min_size=1,
        max_size=60,
    ),
    edges=st.tuples(st.integers(0, 60), st.integers(0, 60)),
)
def test_any_sequence_with_stray_lines_is_selected_exactly(
    name: str, items: list[tuple[str, int]], edges: tuple[int, int]
) -> None:
    """Property: stray lines join the entry before them, except in the one-document-a-line
    formats (mongo-json, pg-json) where they belong to no entry and are reported."""
    text, ms, strays = b"", BASE_MS, 0
    entries: list[Entry] = []
    for i, (kind, gap) in enumerate([("other", 0), *items]):
        if kind == "stray":
            text += b"stray line\n"
            strays += 1
            if name not in JSON_LINES:
                extend_last(entries, len(text))
            continue
        ms += gap
        line = RENDERERS[name](ms, kind, i).encode()
        entries.append((len(text), len(text) + len(line), ms, kind))
        text += line
    fmt = build(FormatConfig(name, "%m [%p] "))
    window = window_on_entries(entries, edges)
    for kind in LogKind:
        result = fmt.scan(text, Query(window, kind), "f", 0)
        assert (result.spans, result.entries) == reference(entries, window, kind), kind
        assert len(result.warnings) == (strays if name in JSON_LINES else 0)
