"""pg-json's slow and error entries alike but for their time and duration (and session) are
parsed once for the summary and counted each; entries that differ in anything else are
summarised apart, each with its own details."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_formats_window import BASE_MS, pg_time

from dblogpack.formats import build
from dblogpack.model import DetailGroup, FormatConfig, LogKind, Query, TimeWindow

JSONLOG = build(FormatConfig("pg-json"))
EVERYTHING = TimeWindow(None, None)


def json_line(
    ms: int, severity: str, message: str, statement: str | None = None, code: str | None = None,
    pid: int = 7,
) -> bytes:
    """One jsonlog line in PostgreSQL's key order (session keys first, then the severity)."""
    doc: dict[str, object] = {
        "timestamp": pg_time(ms), "user": "u", "dbname": "d", "pid": pid,
        "session_id": f"1.{pid:x}", "line_num": ms % 1000, "error_severity": severity,
    }
    if code is not None:
        doc["state_code"] = code
    doc["message"] = message
    if statement is not None:
        doc["statement"] = statement
    doc.update(application_name="psql", backend_type="client backend", query_id=0)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def scanned(data: bytes, kind: LogKind) -> tuple[int, list[DetailGroup]]:
    result = JSONLOG.scan(data, Query(EVERYTHING, kind, details=True), "postgresql.json", 0)
    return result.entries, result.details


def alone(line: bytes, kind: LogKind) -> DetailGroup:
    entries, groups = scanned(line, kind)
    assert entries == 1
    return groups[0]


TEXT = st.lists(
    st.sampled_from(['a', '"', '\\', '\n', '\t', ',', 'é', '\u2028', 'SELECT 1', ' ']), max_size=8
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 999), TEXT, st.integers(1, 3)), min_size=1, max_size=8))
def test_slow_entries_are_grouped_by_all_but_their_time_duration_and_session(
    entries_: list[tuple[int, str, int]],
) -> None:
    lines = [
        json_line(BASE_MS + i, "LOG", f"duration: {ms}.25 ms  statement: {text}", pid=pid)
        for i, (ms, text, pid) in enumerate(entries_)
    ]
    entries, groups = scanned(b"".join(lines), LogKind.SLOW)
    assert entries == len(lines) == sum(group.count for group in groups)
    first_of: dict[str, int] = {}
    for i, (_, text, _) in enumerate(entries_):
        first_of.setdefault(text, i)
    assert [group.first for group in groups] == [
        alone(lines[i], LogKind.SLOW).first for i in first_of.values()
    ]
    for group, text in zip(groups, first_of, strict=True):
        durations = [ms + 0.25 for ms, other, _ in entries_ if other == text]
        assert (group.count, group.total_ms, group.max_ms) == (
            len(durations), sum(durations), max(durations)
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["WARNING", "ERROR", "FATAL"]), TEXT, st.sampled_from(
            [None, "42P01", "XX000"]), st.integers(1, 3)),
        min_size=1, max_size=8,
    )
)
def test_error_entries_are_grouped_by_all_but_their_time_and_session(
    entries_: list[tuple[str, str, str | None, int]],
) -> None:
    lines = [
        json_line(BASE_MS + i, severity, "boom " + text, "SELECT " + text, code, pid)
        for i, (severity, text, code, pid) in enumerate(entries_)
    ]
    entries, groups = scanned(b"".join(lines), LogKind.ERROR)
    assert entries == len(lines) == sum(group.count for group in groups)
    first_of: dict[tuple[str, str, str | None], int] = {}
    for i, (severity, text, code, _) in enumerate(entries_):
        first_of.setdefault((severity, text, code), i)
    assert [group.first for group in groups] == [
        alone(lines[i], LogKind.ERROR).first for i in first_of.values()
    ]
    assert [group.count for group in groups] == [
        sum(1 for severity, text, code, _ in entries_ if (severity, text, code) == key)
        for key in first_of
    ]


def test_a_duration_is_read_from_each_entry_of_a_group() -> None:
    data = b"".join(
        json_line(BASE_MS + i, "LOG", f"duration: {ms} ms  statement: SELECT 1")
        for i, ms in enumerate([5, 7.5, 2])
    )
    entries, groups = scanned(data, LogKind.SLOW)
    assert entries == 3 and len(groups) == 1
    assert (groups[0].count, groups[0].total_ms, groups[0].max_ms) == (3, 14.5, 7.5)
    assert groups[0].first.duration_ms == 5 and groups[0].first.statement == "SELECT 1"
