"""The batched slow and error scans of pg-stderr (one match per hit, the window judged per chunk,
summary groups by what the summary counts) select and summarise exactly like the generic
per-entry scan over `_candidates`, on the sample logs and on generated ones full of odd shapes;
the last entry start of a chunk is found walking back as the window search finds it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.engine_logs import scan_told

from dblogpack.formats import build, pg_slow, pg_times
from dblogpack.formats.base import ScanResult
from dblogpack.formats.framing import find_any, last_match_start
from dblogpack.formats.pg_errors import LEVEL_TAGS
from dblogpack.formats.pg_stderr import PgStderrFormat
from dblogpack.formats.scanner import EntryScanner
from dblogpack.model import FormatConfig, LogKind, Query, TimeWindow

LOGS = Path(__file__).resolve().parents[1] / "logs"
EXPECTED: dict[str, dict[str, Any]] = json.loads((LOGS / "expected.json").read_text())

PREFIXES = {
    "debian": "%m [%p] %q%u@%d ",
    "default": "%m [%p] ",
    "coded": "%m [%p] %e ",
    "epoch": "%n [%p] ",
    "app-first": "%a %m [%p] ",  # a TAB line may parse as prefixed: every end is searched
    "no-process": "%m ",
    "optional-process": "%m %q[%p] ",  # process 12 writes no session part
    # Digits after the pid: its process is not in place, the scan compares follow-up lines'.
    "glued": "%m [%p%l] ",
}


def scanned(fmt: PgStderrFormat, buf: bytes, query: Query, *, generic: bool) -> dict[str, Any]:
    """What a scan of one chunk tells the package: spans, counts, times and the summary."""
    result = ScanResult()
    first = fmt._start_at_or_after(buf, 0, len(buf))
    if first is not None:
        if generic:
            EntryScanner._scan_kind(fmt, buf, first, query, result)
        else:
            fmt._scan_kind(buf, first, query, result)
    return scan_told(result, "sql")


def assert_same_as_generic(fmt: PgStderrFormat, buf: bytes, query: Query) -> None:
    assert scanned(fmt, buf, query, generic=False) == scanned(fmt, buf, query, generic=True)


def pg_stderr(config: FormatConfig) -> PgStderrFormat:
    fmt = build(config)
    assert isinstance(fmt, PgStderrFormat)
    return fmt


@pytest.mark.parametrize(
    "sample",
    [
        "pg15-debian-chicago.log",
        "pg-stderr-pgbadger.log",
        "pg-stderr-malformed.log",
        "pg-stderr-epoch.log",
    ],
)
def test_samples_scan_as_the_generic_path_does(sample: str) -> None:
    fmt = pg_stderr(FormatConfig(**EXPECTED[sample]["config"]))
    buf = (LOGS / sample).read_bytes()
    first = fmt.next_entry(buf, 0)
    last = fmt.last_timestamp(buf)
    edges = [None] if first is None or last is None else [None, first[1], (first[1] + last) / 2]
    for begin in edges:
        for kind, least in ((LogKind.SLOW, None), (LogKind.SLOW, 100.0), (LogKind.ERROR, None)):
            query = Query(TimeWindow(begin, None), kind, least, details=True)
            assert_same_as_generic(fmt, buf, query)


# ---- generated logs -------------------------------------------------------------------------

# Local times with their zone text, one family per log: out of order, across hours, a DST
# change (CDT then CST for the repeated hour), a wrong abbreviation in the spring gap, and texts
# that are not times (minute 61, February 30) between valid ones of the same zone.
STAMPS = [
    [
        "2024-11-03 00:59:59.900 CDT",
        "2024-11-03 01:10:00.000 CDT",
        "2024-11-03 01:10:00.000 CST",
        "2024-11-03 01:05:00.500 CST",
        "2024-13-03 01:10:00.000 CST",
    ],
    [
        "2024-11-03 01:05:00.500 CST",
        "2024-11-03 01:61:00.000 CST",
        "2024-11-03 02:00:00.001 CST",
        "2024-11-03 03:10:00.000 CST",
    ],
    ["2024-02-28 23:10:00.000 CST", "2024-02-30 01:10:00.000 CST", "2024-03-01 00:00:00.000 CST"],
    [
        "2024-03-10 01:59:00.000 CST",
        "2024-03-10 02:30:00.000 CST",
        "2024-03-10 03:10:00.000 CST",
        "2024-03-10 03:20:00.000 CDT",
    ],
]
MESSAGES = [
    "duration: 12.5 ms  statement: SELECT 1",
    "duration: 7 ms  statement: SELECT 'a'\n\tFROM t WHERE x = 2",
    "duration: 0.25 ms  execute S_1: SELECT $1",
    "duration: 3 ms  parse <unnamed>: UPDATE t SET a = 'x'",
    "duration: 900.1 ms  plan:\n\tQuery Text: SELECT * FROM t\n\tSeq Scan on t  (cost=0.00..1.01)",
    "duration: 4 ms",
    "duration: 5 ms  bind foo",
    "duration: 2 ms  statement: SELECT 'LOG:  duration: 1 ms  statement: x'",
    "connection received: host=[local]",
    "deadlock detected ERROR:  twice on a line",
    "statement: SELECT 1",
]
# %u@%d words: several @ (the user ends at the first), and a LOG: where the name should be.
USERS = ["app@db", "a@b@db", "[unknown]@[unknown]", "LOG:@x"]
FOLLOW_UPS = ["DETAIL:  parameters: $1 = '1'", "STATEMENT:  SELECT 9", "HINT:  try again"]


@st.composite
def pg_logs(draw: st.DrawFn) -> str:
    lines = []
    stamps = draw(st.sampled_from(STAMPS))
    for _ in range(draw(st.integers(1, 12))):
        stamp = draw(st.sampled_from(stamps))
        pid = draw(st.sampled_from(["11", "12"]))
        level = draw(st.sampled_from(["LOG", "LOG", "LOG", "ERROR", "WARNING", "FATAL", "XERROR"]))
        user = draw(st.sampled_from(USERS))
        lines.append(f"{stamp} [{pid}] {user} {level}:  {draw(st.sampled_from(MESSAGES))}")
        for _ in range(draw(st.integers(0, 7))):  # past pg_batch.FOLLOW_UPS too
            other = draw(st.sampled_from(["11", "12"]))
            lines.append(f"{stamp} [{other}] {user} {draw(st.sampled_from(FOLLOW_UPS))}")
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["a stray line", "\tLOG:  duration: 1 ms", ""])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def rendered(log: str, prefix: str) -> bytes:
    """The generated log (written with the Debian prefix) in the layout of PREFIXES[prefix] (or
    of `%p %m ` for "pid-first", where pid 12 is written 912, and `pg: %m [%p] `)."""
    if prefix == "debian":
        return log.encode()
    out = []
    for line in log.split("\n"):
        parts = line.split(" ", 4)
        if len(parts) < 5 or not parts[3].startswith("["):
            out.append(line)
            continue
        stamp, pid, rest = " ".join(parts[:3]), parts[3], parts[4].split(" ", 1)[1]
        head = {
            "default": f"{stamp} {pid} ",
            "coded": f"{stamp} {pid} 42P01 ",
            "app-first": f"psql {stamp} {pid} ",
            "no-process": f"{stamp} ",
            "optional-process": f"{stamp} " + (f"{pid} " if pid != "[12]" else ""),
            "epoch": f"1730{stamp[14:16]}{stamp[17:19]}00.{stamp[20:23]} {pid} ",
            "pid-first": f"{'9' if pid == '[12]' else ''}{pid[1:-1]} {stamp} ",
            "literal-first": f"pg: {stamp} {pid} ",
            "glued": f"{stamp} [{pid[1:-1]}1] ",
        }[prefix]
        out.append(head + rest)
    return "\n".join(out).encode()


# Around 2024-11-03 01:30 CDT, 01:30 CST and 2024-03-10 02:00 CST, and open.
ZONE_EDGES = [None, 1730615400.0, 1730619000.0, 1709183400.0, 1710057600.0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=pg_logs(),
    prefix=st.sampled_from(
        [
            "debian",
            "default",
            "coded",
            "app-first",
            "no-process",
            "epoch",
            "optional-process",
            "glued",
        ]
    ),
    begin=st.sampled_from(ZONE_EDGES),
    end=st.sampled_from(ZONE_EDGES),
    kind=st.sampled_from([LogKind.SLOW, LogKind.ERROR]),
    least=st.sampled_from([None, 4.0]),
)
def test_generated_logs_scan_as_the_generic_path_does(
    log: str,
    prefix: str,
    begin: float | None,
    end: float | None,
    kind: LogKind,
    least: float | None,
) -> None:
    if begin is not None and end is not None and begin >= end:
        end = None
    fmt = pg_stderr(FormatConfig("pg-stderr", PREFIXES[prefix], "America/Chicago"))
    query = Query(TimeWindow(begin, end), kind, least, details=True)
    assert_same_as_generic(fmt, rendered(log, prefix), query)


@settings(max_examples=200, deadline=None)
@given(log=pg_logs(), tabs=st.integers(0, 40), cut=st.integers(0, 2000))
def test_last_entry_start_is_found_walking_back_as_by_the_window_search(
    log: str, tabs: int, cut: int
) -> None:
    fmt = pg_stderr(FormatConfig("pg-stderr", PREFIXES["debian"], "America/Chicago"))
    buf = (log + "\t more\n" * tabs).encode()
    hi = min(cut, len(buf))
    found = last_match_start(fmt._next_primary, buf, 0, hi)
    assert fmt._last_primary_newline(buf, hi) == found


def test_slow_summary_is_the_same_when_the_statement_cache_keeps_clearing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_slow, "_KNOWN_LIMIT", 2)
    sample = "pg15-debian-chicago.log"
    fmt = pg_stderr(FormatConfig(**EXPECTED[sample]["config"]))
    buf = (LOGS / sample).read_bytes()
    query = Query(TimeWindow(), LogKind.SLOW, None, details=True)
    assert_same_as_generic(fmt, buf + buf, query)


@settings(max_examples=200, deadline=None)
@given(log=pg_logs(), prefix=st.sampled_from(sorted(PREFIXES)))
def test_slow_details_read_from_the_match_are_the_formats(log: str, prefix: str) -> None:
    fmt = pg_stderr(FormatConfig("pg-stderr", PREFIXES[prefix], "America/Chicago"))
    buf = rendered(log, prefix)
    first = fmt._start_at_or_after(buf, 0, len(buf))
    query = Query(TimeWindow(), LogKind.SLOW, None, details=True)
    scan = fmt._slow
    heads = scan._heads(buf, first or 0, query) if first is not None else []
    for head, end in zip(heads, scan._ends(buf, heads), strict=True):
        expected = fmt._detail(buf, head.start(), end, 1.5, 2.5)
        assert scan._detail(buf, head, end, 1.5, 2.5) == expected


# ---- the byte searches the scans are built on -----------------------------------------------

# What the error scans found their hits with before stringzilla: every `:  ` after the last
# letters of an error level, then the level word ending there.
_LEVEL_TAG = re.compile(rb":  (?<=(?:NING|RROR|ATAL|ANIC):  )")
_LEVEL_WORDS = (b"WARNING", b"ERROR", b"FATAL", b"PANIC")


def regex_level_starts(buf: bytes, lo: int, hi: int) -> list[int]:
    starts = []
    for found in _LEVEL_TAG.finditer(buf, lo, hi):
        colon = found.start()
        starts.extend(
            colon - len(w) for w in _LEVEL_WORDS if buf.startswith(w, colon - len(w), colon)
        )
    return starts


LEVEL_PARTS = [*b"WARNING ERROR FATAL PANIC XERROR NING RROR LOG DETAIL x @".split(), b":  ", b": "]
LEVEL_TEXT = st.lists(st.sampled_from([*LEVEL_PARTS, b":", b" ", b"\n", b"\t"]), max_size=40).map(
    b"".join
)


@settings(max_examples=500, deadline=None)
@given(text=LEVEL_TEXT, lines=st.integers(0, 40))
def test_error_tags_find_the_level_starts_the_level_regex_found(text: bytes, lines: int) -> None:
    # The scans search from a line start (the chunk's first entry) to the chunk's end.
    newlines = [i + 1 for i, byte in enumerate(text) if byte == 10]
    lo = ([0, *newlines])[lines % (len(newlines) + 1)]
    found = list(find_any(text, LEVEL_TAGS, lo, len(text)))
    assert found == regex_level_starts(text, lo, len(text))


@st.composite
def stamp_texts(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Timestamp texts of one zone (`%m` or `%t` layout), minute and second tens of any digit;
    zones with a `:` of their own."""
    zone = draw(st.sampled_from([b"CST", b"UTC", b"+05:30", b"-07:60", b"+1:7"]))
    millis = draw(st.sampled_from([b".123", b""]))
    digits = st.sampled_from(b"0123456789").map(lambda digit: bytes((digit,)))
    texts = []
    for _ in range(draw(st.integers(1, 12))):
        minute, second = draw(digits) + b"5", draw(digits) + b"9"
        texts.append(b"2024-11-03 01:" + minute + b":" + second + millis + b" " + zone)
    return texts, zone


@settings(max_examples=300, deadline=None)
@given(stamps=stamp_texts())
def test_clock_fields_read_by_stride_find_what_the_regex_finds(
    stamps: tuple[list[bytes], bytes],
) -> None:
    texts, zone = stamps
    joined = b"\n".join(texts) + b"\n"
    expected = pg_times._BAD_CLOCK.search(joined) is not None
    assert pg_times._bad_clock(joined, min(texts), zone) == expected
