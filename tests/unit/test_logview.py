"""Synchronous log reads (`Get…Log`) cut a window's entries at whole entries and say where to
continue: entries sharing the cut's timestamp wait for the next call, a spent read budget still
gives a NextTime, and PostgreSQL excerpts read one log destination only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dblogpack.model import FormatConfig, LogFile, LogKind, Query, TimeWindow
from dblogpack.service import logview
from dblogpack.service.logview import Excerpt, files_overlapping, one_destination, read_excerpt
from dblogpack.sources.local import DirSource

T0 = 1714564800  # 2024-05-01T12:00:00Z
AUTO = FormatConfig("auto")


def error_line(second: int, text: str) -> str:
    stamp = f"2024-05-01T12:{second // 60:02d}:{second % 60:02d}.000Z"
    return (f'{{"t":{{"$date":"{stamp}"}},"s":"E","c":"NETWORK","id":1,"ctx":"conn",'
            f'"msg":"{text}"}}\n')


def node(tmp_path: Path, seconds: list[int]) -> DirSource:
    lines = [error_line(s, f"entry {i}") for i, s in enumerate(seconds)]
    (tmp_path / "mongod.log").write_text("".join(lines))
    return DirSource(tmp_path)


def excerpt(source: DirSource, max_lines: int, begin: float = T0, budget: int = 1 << 20) -> Excerpt:
    window = TimeWindow(begin, T0 + 3600)
    files = files_overlapping(source, AUTO, window)
    return read_excerpt(source, AUTO, files, Query(window, LogKind.ERROR), max_lines=max_lines,
                        max_bytes=1 << 20, scan_budget=budget)


def test_entries_sharing_the_cut_timestamp_wait_for_the_next_call(tmp_path: Path) -> None:
    source = node(tmp_path, [1, 2, 3, 3, 3, 4])
    first = excerpt(source, 3)
    assert first.truncated and first.next_time == T0 + 3
    assert first.text.count("\n") == 2  # entries 0 and 1; the three at :03 come next
    second = excerpt(source, 10, begin=first.next_time or 0)
    assert not second.truncated and second.lines == 4
    assert first.text + second.text == excerpt(source, 10).text


def test_a_first_entry_is_returned_even_when_the_cut_lands_on_its_timestamp(
    tmp_path: Path,
) -> None:
    source = node(tmp_path, [5, 5, 5])
    first = excerpt(source, 1)
    assert first.truncated and first.lines == 1 and first.next_time == T0 + 5


def test_a_spent_read_budget_still_says_where_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logview, "CHUNK", 4096)  # many chunks from a small file
    source = node(tmp_path, list(range(0, 3000)))
    partial = excerpt(source, 10_000, budget=1)
    assert partial.truncated and partial.next_time is not None
    rest = excerpt(source, 10_000, begin=partial.next_time)
    assert partial.text + rest.text == excerpt(source, 10_000).text


def test_postgresql_excerpts_read_the_newest_files_destination_only() -> None:
    files = [LogFile(n, 1) for n in ("pg-1.log.gz", "pg-1.csv", "pg-2.log", "pg-2.csv", "pg-2.json",
                                     "pg-3.log")]
    assert [f.name for f in one_destination(files)] == ["pg-1.log.gz", "pg-2.log", "pg-3.log"]
    # Names without a destination suffix (MongoDB's rotated files) are always kept.
    mongo = [LogFile("mongod.log.2024-05-01T12-00-00", 1), LogFile("mongod.log", 1)]
    assert one_destination(mongo) == mongo
