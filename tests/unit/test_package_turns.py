"""Scanning workers write their pieces' gzip members straight into the package file, each at its
piece's turn; a piece whose turn does not come in time goes through a file of its own that the
pack process copies in. Either way the package is the one a single process makes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from tests.unit.engine_logs import (
    BASE_MS,
    Entry,
    members,
    mixed,
    noise,
    reference,
    spec_for,
    two_logs_in_pieces,
    write_log,
)

from dblogpack import packer, pieces, pipeline, planning, scanpool
from dblogpack import turns as turns_module
from dblogpack.members import GzipPiece
from dblogpack.model import FormatConfig, LogKind, PackageResult, PackageSpec, TimeWindow
from dblogpack.sources.local import DirSource
from dblogpack.turns import CLOSED, PackageTurns, WriteTarget

PG_STDERR = FormatConfig("pg-stderr")


def pack_into_file(
    logs: Path, out: Path, spec: PackageSpec, **options: object
) -> tuple[PackageResult, dict[str, bytes], bytes]:
    """A package written as `dblogpack pack` writes one: into a file, without its checksum."""
    with open(out, "wb") as file:
        result = pipeline.run(
            spec, DirSource(logs), PG_STDERR, file, checksum=False, **options  # type: ignore[arg-type]
        )
    data = out.read_bytes()
    return result, members(data), data


@pytest.fixture
def two_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, list[Entry]]]:
    """Two logs, each split in many pieces between two worker processes."""
    logs = tmp_path / "logs"
    logs.mkdir()
    return logs, two_logs_in_pieces(logs, monkeypatch)


def pieces_added(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each piece the pack process adds to a member, whether its worker had written it into
    the package already."""
    written: list[bool] = []
    add = packer.MemberSpool.add

    def spy(self: packer.MemberSpool, piece: GzipPiece) -> None:
        written.append(piece.path is None)
        add(self, piece)

    monkeypatch.setattr(packer.MemberSpool, "add", spy)
    return written


@pytest.mark.parametrize("kind", [LogKind.ALL, LogKind.SLOW])
@pytest.mark.parametrize("threaded", [False, True], ids=["fork", "forkserver-in-threaded-caller"])
def test_workers_write_pieces_into_the_package_file_at_their_turns(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    two_logs: tuple[Path, dict[str, list[Entry]]],
    kind: LogKind,
    threaded: bool,
) -> None:
    logs, entries = two_logs
    spec = spec_for(kind, BASE_MS + 1_234, BASE_MS + 1_250_321)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    # Each piece waits for its turn as long as it takes (a second per 8 bytes of its member: the
    # smallest, of a piece that selected nothing, wait seconds even on a busy machine), so
    # every one goes straight in, whatever the order the workers finish them in.
    monkeypatch.setattr(turns_module, "SPILL_RATE", 8.0)
    written = pieces_added(monkeypatch)
    idle = threading.Event()
    other_thread = threading.Thread(target=idle.wait)
    if threaded:
        other_thread.start()
    try:
        parallel, files, package = pack_into_file(logs, tmp_path / "p.tar.gz", spec, workers=2)
    finally:
        idle.set()
    single, single_files, _ = pack_into_file(logs, tmp_path / "s.tar.gz", spec, workers=1)

    assert len(written) > 10 and all(written)
    window = TimeWindow(spec.window.begin, spec.window.end)
    listed = {f["member"]: f["sha256"] for f in json.loads(files["manifest.json"])["files"]}
    for name, lines in entries.items():
        member = f"logs/{name}"
        assert files[member] == reference(lines, window, kind) == single_files[member]
        assert listed[member] == hashlib.sha256(files[member]).hexdigest()
    assert files["summary.json"] == single_files["summary.json"]
    assert parallel.entries == single.entries
    assert subprocess.run(["gzip", "-t"], input=package, check=False).returncode == 0
    assert [p.name for p in temporary.iterdir() if p.name.startswith("dblogpack")] == []


def test_pieces_whose_turn_does_not_come_in_time_go_through_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_logs: tuple[Path, dict[str, list[Entry]]]
) -> None:
    logs, _ = two_logs
    spec = spec_for(LogKind.ALL, None, None)
    # No piece waits in memory, nor for its turn once compressed: only a piece whose turn is
    # open when it starts goes straight in.
    monkeypatch.setattr(turns_module, "WAITING_MAX", 0)
    monkeypatch.setattr(turns_module, "SPILL_RATE", float("inf"))
    written = pieces_added(monkeypatch)

    _, files, package = pack_into_file(logs, tmp_path / "p.tar.gz", spec, workers=2)
    _, single_files, _ = pack_into_file(logs, tmp_path / "s.tar.gz", spec, workers=1)

    assert len(written) > 10 and not all(written)
    assert files == single_files
    assert subprocess.run(["gzip", "-t"], input=package, check=False).returncode == 0


def test_a_member_written_by_its_workers_and_found_empty_is_cut_off_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The middle file holds no slow entry: its workers write their (empty) gzip members into the
    # package at their turns, and the member is taken out again once the last is in.
    logs = tmp_path / "logs"
    logs.mkdir()
    made = {
        "postgresql-a.log": mixed(BASE_MS, 6000, step_ms=50),
        "postgresql-b.log": [noise(BASE_MS + 400_000 + 50 * i) for i in range(6000)],
        "postgresql-c.log": mixed(BASE_MS + 800_000, 6000, step_ms=50),
    }
    for n, (name, lines) in enumerate(made.items()):
        os.utime(write_log(logs / name, lines), (1000 + n, 1000 + n))
    monkeypatch.setattr(planning, "PARALLEL_MIN", 128 * 1024)
    monkeypatch.setattr(planning, "PIECE", 100 * 1024)
    monkeypatch.setattr(scanpool, "CHUNK", 32 * 1024)
    monkeypatch.setattr(turns_module, "SPILL_RATE", 8.0)
    written = pieces_added(monkeypatch)
    spec = spec_for(LogKind.SLOW, None, None)

    _, files, package = pack_into_file(logs, tmp_path / "p.tar.gz", spec, workers=2)

    assert len(written) > 6 and all(written)
    assert [name for name in files if name.startswith("logs/")] == [
        "logs/postgresql-a.log", "logs/postgresql-c.log"
    ]
    window = TimeWindow(None, None)
    for name in ("postgresql-a.log", "postgresql-c.log"):
        assert files[f"logs/{name}"] == reference(made[name], window, LogKind.SLOW)
    assert subprocess.run(["gzip", "-t"], input=package, check=False).returncode == 0


def test_a_package_replaced_under_its_name_is_not_written_into(tmp_path: Path) -> None:
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"x" * 100)
    found = package.stat()
    turns = PackageTurns(multiprocessing.get_context("fork"))
    target = WriteTarget(str(package), found.st_dev, found.st_ino, turns.reserve(1))
    turns.grant(target.turn, 10)
    package.rename(tmp_path / "old.tar.gz")
    package.write_bytes(b"y" * 100)  # another file now has the name

    out = pieces._GzipOut(str(tmp_path), target, turns)
    out.write(b"member bytes")
    piece = out.finish()

    assert piece.path is not None and Path(piece.path).read_bytes() == b"member bytes"
    assert package.read_bytes() == b"y" * 100
    assert (tmp_path / "old.tar.gz").read_bytes() == b"x" * 100


def test_a_piece_at_its_turn_passes_it_on_past_its_bytes(tmp_path: Path) -> None:
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"head")
    found = package.stat()
    turns = PackageTurns(multiprocessing.get_context("fork"))
    first = turns.reserve(2)
    targets = [
        WriteTarget(str(package), found.st_dev, found.st_ino, first + n) for n in (0, 1)
    ]
    turns.grant(first, 4)
    second = pieces._GzipOut(str(tmp_path), targets[1], turns)
    second.write(b"BB")  # not its turn yet: it waits in memory

    one = pieces._GzipOut(str(tmp_path), targets[0], turns)
    one.write(b"AAA")
    assert one.finish() == GzipPiece(None, 3)
    assert second.finish() == GzipPiece(None, 2)

    assert package.read_bytes() == b"headAAABB"
    assert turns.close() == 9
    assert turns.offset_if_mine(first + 2) is None  # closed: nobody's turn


def test_turns_of_the_next_member_wait_for_its_grant() -> None:
    turns = PackageTurns(multiprocessing.get_context("fork"))
    first = turns.reserve(2)
    second = turns.reserve(1)
    turns.grant(first, 0)
    turns.pass_on(first, 5)
    turns.pass_on(first + 1, 9)  # the member's last piece: no piece of the next one may write

    assert second > first + 2
    assert turns.offset_if_mine(second) is None
    started = time.monotonic()
    assert turns.wait(second, 0.05) is None
    assert time.monotonic() - started >= 0.05
    turns.grant(second, 9)
    assert turns.wait(second, 0.05) == 9
    assert CLOSED < 0 <= first


def test_a_lock_left_held_stalls_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker that died holding the lock: the others take it anyway after a while (the pool is
    # broken then, and the package fails).
    monkeypatch.setattr(turns_module, "_LOCK_TIMEOUT", 0.05)
    turns = PackageTurns(multiprocessing.get_context("fork"))
    first = turns.reserve(1)
    turns.grant(first, 7)
    turns._lock.acquire()

    assert turns.offset_if_mine(first) == 7
