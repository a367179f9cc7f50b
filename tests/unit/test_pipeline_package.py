"""A package holds exactly the window's entries of the asked type, byte for byte, and a manifest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest
from tests.unit.engine_logs import (
    BASE_MS,
    CountingSource,
    error,
    mixed,
    noise,
    pack,
    prefix,
    reference,
    slow,
    spec_for,
    two_logs_in_pieces,
    write_log,
)
from tests.unit.test_formats_window import mongo_json

from dblogpack import chunkreads, pipeline, planning, scanpool, streamscan
from dblogpack.model import (
    FormatConfig,
    LogFile,
    LogKind,
    TimeWindow,
)
from dblogpack.service.packages import summary_of
from dblogpack.sources.base import LogSource
from dblogpack.sources.local import DirSource


def test_manifest_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    write_log(tmp_path / "postgresql-1.log", mixed(BASE_MS, 50))
    spec = spec_for(LogKind.SLOW, BASE_MS, BASE_MS + 30_000, min_duration_ms=50.0)

    _, files, _ = pack(DirSource(tmp_path), spec)
    manifest = json.loads(files["manifest.json"])

    assert list(manifest) == [
        "format_version", "package", "window", "files", "totals", "warnings", "generator"
    ]
    assert manifest["format_version"] == 1
    assert manifest["package"] == {
        "id": "pkg-1", "name": "night", "kind": "pgsql", "resource_id": "upgsql-1",
        "node_id": None, "log_type": "slow", "min_duration_ms": 50.0,
    }
    assert manifest["window"] == {
        "begin": 1714550400.0, "end": 1714550430.0,
        "begin_iso": "2024-05-01T08:00:00.000Z", "end_iso": "2024-05-01T08:00:30.000Z",
    }
    [row] = manifest["files"]
    assert list(row) == [
        "name", "format", "bytes_scanned", "entries", "first_ts", "last_ts", "member", "sha256"
    ]
    assert row["member"] == "logs/postgresql-1.log" and row["format"] == "pg-stderr"
    assert row["entries"] == 5 and row["first_ts"] == "2024-05-01T08:00:00.000Z"
    assert list(manifest["totals"]) == ["entries", "bytes", "bytes_scanned", "files"]
    assert manifest["totals"]["entries"] == 5
    assert manifest["totals"]["bytes"] == len(files["logs/postgresql-1.log"])
    assert manifest["warnings"] == []
    assert manifest["generator"].startswith("dblogpack ")


@pytest.mark.parametrize("kind", [LogKind.SLOW, LogKind.ERROR, LogKind.ALL])
@pytest.mark.parametrize("local", [True, False], ids=["local", "remote"])
def test_entries_are_byte_for_byte_those_the_reference_selects(
    tmp_path: Path, kind: LogKind, local: bool
) -> None:
    entries = mixed(BASE_MS, 400)
    write_log(tmp_path / "a.log", entries)
    window_ms = (BASE_MS + 37_000, BASE_MS + 301_000)
    source: LogSource = DirSource(tmp_path) if local else CountingSource(DirSource(tmp_path))

    result, files, _ = pack(source, spec_for(kind, *window_ms))

    expected = reference(entries, TimeWindow(window_ms[0] / 1000, window_ms[1] / 1000), kind)
    assert files["logs/a.log"] == expected
    assert result.entries == expected.count(b" UTC [4242] ") - expected.count(b"STATEMENT:  ")


def test_an_entry_exactly_at_begin_is_kept_and_one_exactly_at_end_dropped(tmp_path: Path) -> None:
    entries = [slow(BASE_MS + ms, 10.0) for ms in (999, 1000, 1500, 1999, 2000)]
    write_log(tmp_path / "a.log", entries)

    spec = spec_for(LogKind.SLOW, BASE_MS + 1000, BASE_MS + 2000)
    result, files, _ = pack(DirSource(tmp_path), spec)

    assert files["logs/a.log"] == b"".join(e.text() for e in entries[1:4])
    assert result.entries == 3


def test_min_duration_raises_the_bar_for_slow_entries(tmp_path: Path) -> None:
    entries = [slow(BASE_MS + i, float(ms)) for i, ms in enumerate((5, 50, 500, 49.9))]
    write_log(tmp_path / "a.log", entries)

    _, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW, min_duration_ms=50.0))

    assert files["logs/a.log"] == entries[1].text() + entries[2].text()


def test_package_is_standard_gzip_with_summary_and_manifest_last(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", mixed(BASE_MS, 30))
    package = tmp_path / "out.tar.gz"

    _, files, data = pack(DirSource(tmp_path), spec_for(LogKind.ERROR))
    package.write_bytes(data)

    assert subprocess.run(["gzip", "-t", str(package)], check=False).returncode == 0
    assert list(files) == ["logs/a.log", "summary.json", "summary.txt", "manifest.json"]
    summary = json.loads(files["summary.json"])
    assert summary["log_type"] == "error"
    assert [(s["severity"], s["count"]) for s in summary["severities"]] == [("ERROR", 2)]


def test_slow_summary_groups_statements_by_fingerprint(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", [
        slow(BASE_MS, 10.0, "SELECT * FROM t WHERE id = 1"),
        slow(BASE_MS + 1, 30.0, "select * from t where id = 22"),
        slow(BASE_MS + 2, 5.0, "UPDATE u SET n = 'x'"),
    ])

    _, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW))

    fingerprints = json.loads(files["summary.json"])["fingerprints"]
    assert [(f["fingerprint"], f["count"], f["max_ms"]) for f in fingerprints] == [
        ("select * from t where id = ?", 2, 30.0),
        ("update u set n = ?", 1, 5.0),
    ]
    assert "select * from t where id = ?" in files["summary.txt"].decode()


def test_files_without_entries_in_the_window_are_listed_but_get_no_member(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", [noise(BASE_MS)])
    (tmp_path / "empty.log").write_bytes(b"")

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW))

    assert [name for name in files if name.startswith("logs/")] == []
    assert sorted((f.name, f.entries, f.member) for f in result.files) == [
        ("a.log", 0, None), ("empty.log", 0, None)
    ]


def test_gzip_rotated_files_are_read_streamed_into_plain_members(tmp_path: Path) -> None:
    entries = mixed(BASE_MS, 200)
    (tmp_path / "old.log.gz").write_bytes(gzip.compress(b"".join(e.text() for e in entries)))

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW, BASE_MS + 20_000))

    expected = reference(entries, TimeWindow(BASE_MS / 1000 + 20), LogKind.SLOW)
    assert files["logs/old.log"] == expected
    assert result.warnings == []


def test_a_truncated_gzip_file_gives_a_warning_and_the_entries_before_the_cut(
    tmp_path: Path,
) -> None:
    entries = mixed(BASE_MS, 3000)
    whole = gzip.compress(b"".join(e.text() for e in entries))
    (tmp_path / "cut.log.gz").write_bytes(whole[: len(whole) // 2])

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.ALL))

    assert [w.kind for w in result.warnings] == ["truncated"]
    packed = files["logs/cut.log"]
    assert len(packed) > 0 and b"".join(e.text() for e in entries).startswith(packed)


def test_named_files_only_are_packed_and_a_missing_one_is_a_warning(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", [error(BASE_MS, "a")])
    write_log(tmp_path / "b.log", [error(BASE_MS, "b")])

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.ERROR, files=("b.log", "c.log")))

    assert [name for name in files if name.startswith("logs/")] == ["logs/b.log"]
    assert [(w.file, w.kind) for w in result.warnings] == [("c.log", "vanished")]


@pytest.mark.parametrize("local", [True, False], ids=["local", "remote"])
def test_progress_grows_by_bytes_scanned_to_100(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    monkeypatch.setattr(streamscan, "CHUNK", 16 * 1024)
    write_log(tmp_path / "a.log", mixed(BASE_MS, 2000))  # ~200 KB: a dozen chunks
    write_log(tmp_path / "b.log", mixed(BASE_MS + 3_000_000, 100))
    source: LogSource = DirSource(tmp_path) if local else CountingSource(DirSource(tmp_path))
    seen: list[float] = []

    pack(source, spec_for(LogKind.ALL), progress=seen.append)

    assert seen == sorted(seen) and seen[-1] == 100.0
    assert len({round(p) for p in seen if 0 < p < 90}) >= 5


@pytest.mark.parametrize("kind", [LogKind.SLOW, LogKind.ALL])
@pytest.mark.parametrize("threaded", [False, True], ids=["fork", "forkserver-in-threaded-caller"])
def test_worker_processes_make_the_same_package_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threaded: bool, kind: LogKind
) -> None:
    logs = two_logs_in_pieces(tmp_path, monkeypatch)
    spec = spec_for(kind, BASE_MS + 1_234, BASE_MS + 1_250_321)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    # A server runs packages beside other threads: its workers are not forked from it.
    idle = threading.Event()
    other_thread = threading.Thread(target=idle.wait)
    if threaded:
        other_thread.start()
    try:
        parallel, files, package = pack(DirSource(tmp_path), spec, workers=2)
    finally:
        idle.set()
    single, single_files, _ = pack(DirSource(tmp_path), spec, workers=1)

    window = TimeWindow(spec.window.begin, spec.window.end)
    listed = {f["member"]: f["sha256"] for f in json.loads(files["manifest.json"])["files"]}
    for name, entries in logs.items():
        member = f"logs/{name}"
        assert files[member] == reference(entries, window, kind)
        assert files[member] == single_files[member]
        assert listed[member] == hashlib.sha256(files[member]).hexdigest()
    assert files["summary.json"] == single_files["summary.json"]
    assert parallel.entries == single.entries
    # The workers' gzip members and the package's own form one standard gzip stream.
    assert subprocess.run(["gzip", "-t"], input=package, check=False).returncode == 0
    # ...which the service's summary reader (console, API) reads through to summary.json.
    assert summary_of(io.BytesIO(package)) == json.loads(files["summary.json"])
    # The workers' compressed pieces are gone (multiprocessing's own pymp-* directory is not ours).
    assert [p.name for p in temporary.iterdir() if p.name.startswith("dblogpack")] == []


@pytest.mark.parametrize("kind", list(LogKind))
def test_a_small_file_compressed_while_scanned_packs_as_when_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: LogKind
) -> None:
    # Below THREADED_MAX a thread compresses and hashes each chunk's selected bytes while the
    # next chunk is scanned; above, the selected ranges are read back from the file after the
    # scan. Many small chunks, so the thread takes many pieces in turn.
    entries = mixed(BASE_MS, 6_000, step_ms=50)
    write_log(tmp_path / "a.log", entries)
    monkeypatch.setattr(scanpool, "CHUNK", 24 * 1024)
    spec = spec_for(kind, BASE_MS + 1_234, BASE_MS + 250_321)

    threaded, files, package = pack(DirSource(tmp_path), spec)
    monkeypatch.setattr(scanpool, "THREADED_MAX", 0)
    read_back, read_back_files, _ = pack(DirSource(tmp_path), spec)

    assert files["logs/a.log"] == reference(entries, TimeWindow(*spec.window), kind)
    assert files == read_back_files  # members, manifest (entries, sha256, bytes) and summary
    assert threaded.entries == read_back.entries > 0
    assert subprocess.run(["gzip", "-t"], input=package, check=False).returncode == 0
    # One gzip member (the thread's deflate segment is spliced in): streaming readers, such as
    # tarfile's "r|gz" that reads the summary for the console, see every member.
    with tarfile.open(fileobj=io.BytesIO(package), mode="r|gz") as stream:
        assert [m.name for m in stream] == list(files)


def test_an_all_entries_summary_counts_the_package_entries(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", mixed(BASE_MS, 40))

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.ALL))

    summary = json.loads(files["summary.json"])
    assert summary["entries"] == result.entries == 40
    assert summary["fingerprints"] == []


def test_a_long_stretch_without_entry_starts_is_warned_about_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scanpool, "CHUNK", 8 * 1024)
    monkeypatch.setattr(chunkreads, "MAX_CHUNK", 32 * 1024)
    garbage = b"not a log line at all\n" * 10_000  # 220 KB before the first entry
    entry = slow(BASE_MS, 12.0)
    (tmp_path / "a.log").write_bytes(garbage + entry.text())
    configured = FormatConfig("pg-stderr", log_line_prefix="%m [%p] ")

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW), configured)

    assert files["logs/a.log"] == entry.text()
    assert result.warnings and {w.kind for w in result.warnings} == {"unparseable"}


class StaleListing(DirSource):
    """A directory whose first listing is taken before a rotation removed some files."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.snapshot: list[LogFile] | None = super().list_files()

    def list_files(self) -> list[LogFile]:
        snapshot, self.snapshot = self.snapshot, None
        return snapshot if snapshot is not None else super().list_files()


@pytest.mark.parametrize("local", [True, False], ids=["local", "remote"])
def test_a_file_rotated_away_while_packing_is_a_warning(tmp_path: Path, local: bool) -> None:
    write_log(tmp_path / "gone.log", [error(BASE_MS, "lost")])
    write_log(tmp_path / "kept.log", [error(BASE_MS, "kept")])
    stale = StaleListing(tmp_path)
    (tmp_path / "gone.log").unlink()
    source: LogSource = stale if local else CountingSource(stale)

    result, files, _ = pack(source, spec_for(LogKind.ERROR))

    assert [name for name in files if name.startswith("logs/")] == ["logs/kept.log"]
    assert [(w.file, w.kind) for w in result.warnings] == [("gone.log", "vanished")]


def test_a_gz_file_that_is_not_gzip_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "a.log.gz").write_bytes(b"this was never compressed\n")
    write_log(tmp_path / "b.log", [error(BASE_MS, "b")])

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.ERROR))

    assert [name for name in files if name.startswith("logs/")] == ["logs/b.log"]
    assert [(w.file, w.kind) for w in result.warnings] == [("a.log.gz", "corrupt")]


def test_pg_stderr_without_a_prefix_gets_it_detected(tmp_path: Path) -> None:
    # Debian's prefix: "%m [%p] %q%u@%d "; the default one would misread these lines.
    lines = [
        f"{prefix(BASE_MS + i, 77)}app@shop LOG:  duration: 5.000 ms  statement: SELECT {i}\n"
        for i in range(3)
    ]
    (tmp_path / "a.log").write_text("".join(lines))

    result, files, _ = pack(DirSource(tmp_path), spec_for(LogKind.SLOW), FormatConfig("pg-stderr"))

    assert files["logs/a.log"] == "".join(lines).encode()
    assert result.entries == 3


class FullDisk(io.RawIOBase):
    """An output that fails once some bytes were written, as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        size = len(data)  # type: ignore[arg-type]
        if size > self.room:
            raise OSError(28, "No space left on device")
        self.room -= size
        return size


def test_an_output_that_fails_fails_the_package_with_its_own_error(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", mixed(BASE_MS, 20_000))

    with pytest.raises(OSError, match="No space left"):
        pipeline.run(spec_for(LogKind.ALL), DirSource(tmp_path), FormatConfig("auto"),
                     FullDisk(100_000))  # type: ignore[arg-type]


@pytest.mark.parametrize("junk_at", [None, 0.5, 0.93], ids=["whole", "junk-mid", "junk-late"])
@pytest.mark.parametrize("windowed", [False, True])
@pytest.mark.parametrize("checksum", [True, False], ids=["hashed", "spooled"])
def test_an_all_entries_package_of_workers_lists_the_sha256_of_each_member_it_holds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    junk_at: float | None,
    windowed: bool,
    checksum: bool,
) -> None:
    # The parent hashes the file ahead of the workers' results, on the guess that each piece is
    # selected whole; a piece holding lines of no entry (left out of the member) or cut by the
    # window is hashed exactly from where it starts, and the guessing goes on after it.
    lines = [mongo_json(BASE_MS + 50 * n, "other", n).encode() for n in range(12_000)]
    if junk_at is not None:
        at = int(len(lines) * junk_at)
        lines[at:at] = [b"this line is no log entry\n"] * 3
    (tmp_path / "mongod.log").write_bytes(b"".join(lines))
    monkeypatch.setattr(planning, "PARALLEL_MIN", 256 * 1024)
    monkeypatch.setattr(planning, "PIECE", 200 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 64 * 1024)
    window = (BASE_MS + 40_000, BASE_MS + 580_000) if windowed else (None, None)
    spec = spec_for(LogKind.ALL, *window)
    fmt = FormatConfig("mongo-json")

    # Without the package's checksum, the workers' pieces go into it as they come (spooled).
    parallel, files, _ = pack(DirSource(tmp_path), spec, fmt, workers=2, checksum=checksum)
    single, single_files, _ = pack(DirSource(tmp_path), spec, fmt, workers=1)

    listed = json.loads(files["manifest.json"])["files"][0]
    assert files["logs/mongod.log"] == single_files["logs/mongod.log"]
    assert listed["sha256"] == hashlib.sha256(files["logs/mongod.log"]).hexdigest()
    assert parallel.entries == single.entries
    assert [w.kind for w in parallel.warnings] == [w.kind for w in single.warnings]
    assert bool(parallel.warnings) == (junk_at is not None)


def test_files_of_workers_with_nothing_selected_leave_no_member_when_spooled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each file's pieces go into the package as they come; a file whose pieces hold nothing
    # (no slow entry) is taken out again, and the package is the one hashed as it is written.
    monkeypatch.setattr(planning, "PARALLEL_MIN", 64 * 1024)
    monkeypatch.setattr(planning, "PIECE", 48 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 16 * 1024)
    logs = {
        "postgresql-a.log": mixed(BASE_MS, 2000),
        "postgresql-b.log": [noise(BASE_MS + 2_000_000 + 1000 * i) for i in range(2000)],
        "postgresql-c.log": mixed(BASE_MS + 4_000_000, 2000),
    }
    for n, (name, entries) in enumerate(logs.items()):
        write_log(tmp_path / name, entries)
        os.utime(tmp_path / name, (1000 + n, 1000 + n))
    spec = spec_for(LogKind.SLOW, None, None)

    spooled, files, _ = pack(DirSource(tmp_path), spec, workers=2, checksum=False)
    hashed, hashed_files, _ = pack(DirSource(tmp_path), spec, workers=2)

    assert list(files) == list(hashed_files)
    assert [name for name in files if name.startswith("logs/")] == [
        "logs/postgresql-a.log", "logs/postgresql-c.log"
    ]
    for name in ("logs/postgresql-a.log", "logs/postgresql-c.log"):
        assert files[name] == hashed_files[name]
    assert [f.entries for f in spooled.files] == [f.entries for f in hashed.files]
    assert spooled.files[1].entries == 0 and spooled.files[1].bytes_scanned > 64 * 1024
