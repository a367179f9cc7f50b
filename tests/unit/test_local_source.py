"""A local log directory or explicit paths: listing oldest first, byte ranges, confinement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dblogpack.errors import SourceError
from dblogpack.sources.local import DirSource, PathsSource


def _write(path: Path, data: bytes, mtime: float) -> None:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_lists_matching_files_oldest_first_by_mtime_then_name(tmp_path: Path) -> None:
    _write(tmp_path / "postgresql-b.log", b"b", 200)
    _write(tmp_path / "postgresql-a.log", b"aa", 200)
    _write(tmp_path / "postgresql-z.log", b"zzz", 100)
    _write(tmp_path / "notes.txt", b"x", 50)
    (tmp_path / "postgresql-dir.log").mkdir()

    files = DirSource(tmp_path, "postgresql-*.log").list_files()

    assert [(f.name, f.size) for f in files] == [
        ("postgresql-z.log", 3),
        ("postgresql-a.log", 2),
        ("postgresql-b.log", 1),
    ]


def test_reads_byte_ranges_short_only_at_end_of_file(tmp_path: Path) -> None:
    _write(tmp_path / "a.log", b"0123456789", 1)
    source = DirSource(tmp_path)

    assert source.read("a.log", 2, 3) == b"234"
    assert source.read("a.log", 8, 100) == b"89"
    assert source.read("a.log", 50, 10) == b""


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "sub/a.log", "..", ""])
def test_names_outside_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "secret").write_bytes(b"s")

    with pytest.raises(SourceError):
        DirSource(logs).read(name, 0, 10)


def test_a_symlink_escaping_the_directory_is_neither_listed_nor_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "secret").write_bytes(b"s")
    (logs / "evil.log").symlink_to(tmp_path / "secret")
    _write(logs / "good.log", b"g", 1)
    source = DirSource(logs)

    assert [f.name for f in source.list_files()] == ["good.log"]
    with pytest.raises(SourceError, match="outside"):
        source.read("evil.log", 0, 1)


def test_check_names_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        DirSource(tmp_path / "nope").check()


def test_a_file_that_vanished_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="vanished"):
        DirSource(tmp_path).read("gone.log", 0, 1)


def test_explicit_paths_mix_files_and_directories(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "b.log", b"bb", 20)
    _write(tmp_path / "a.log", b"a", 10)

    source = PathsSource([tmp_path / "a.log", logs])

    assert [f.name for f in source.list_files()] == ["a.log", "b.log"]
    assert source.read("b.log", 0, 10) == b"bb"
    assert source.local_path("a.log") == str(tmp_path / "a.log")


def test_explicit_paths_refuse_missing_files_and_clashing_names(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "a.log").write_bytes(b"1")
    (tmp_path / "y" / "a.log").write_bytes(b"2")

    with pytest.raises(SourceError, match="no such file"):
        PathsSource([tmp_path / "missing.log"]).check()
    with pytest.raises(SourceError, match="two files are named"):
        PathsSource([tmp_path / "x", tmp_path / "y"]).check()
    with pytest.raises(SourceError, match="unknown log file"):
        PathsSource([tmp_path / "x"]).read("../y/a.log", 0, 1)
