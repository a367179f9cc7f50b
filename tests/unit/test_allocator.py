"""The allocator of a scanning process (allocator.py, _heap.c): a `pack` process's first reads
land in memory a thread faulted in while the process was importing, and a worker keeps the
memory of each chunk for the next. Each case runs in a process of its own: the allocator's
settings are process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dblogpack import _heap, allocator
from dblogpack.chunkreads import MAX_CHUNK

# Faults of reading 4 MiB into memory faulted in already: a few pages of bookkeeping.
FEW = 100

READ_AFTER = """
import os, resource, sys, threading, time
from dblogpack import _heap, allocator
path, how = sys.argv[1], sys.argv[2]
if how == "warmed by a thread":
    _heap.tune(allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD, arenas=1)
    thread = threading.Thread(target=_heap.warm, args=(allocator.WARM_BYTES,))
    thread.start()
    thread.join()
elif how == "tuned only":
    _heap.tune(allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD, arenas=1)
elif how == "warm_for_pack":
    allocator.warm_for_pack()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seen, deadline = -1, time.monotonic() + 10  # its thread is done once no page faults in
    while seen != faults() and time.monotonic() < deadline:
        seen = faults()
        time.sleep(0.05)
fd = os.open(path, os.O_RDONLY)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
data = os.pread(fd, 4 << 20, 0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, len(data))
"""


@pytest.fixture(scope="module")
def four_mib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reads") / "log"
    path.write_bytes(b"2024-05-01 00:00:00 UTC [1] LOG:  a line of the log\n" * (80 << 10))
    return path


def _faults_of_a_read(path: Path, how: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", READ_AFTER, str(path), how],
        capture_output=True, text=True, check=True,
    )
    faults, read = map(int, done.stdout.split())
    assert read == 4 << 20
    return faults


def test_a_read_lands_in_memory_another_thread_faulted_in(four_mib: Path) -> None:
    cold = _faults_of_a_read(four_mib, "tuned only")
    warmed = _faults_of_a_read(four_mib, "warmed by a thread")
    assert cold > (4 << 20) // 4096 // 2  # page by page
    assert warmed < FEW


def test_a_pack_process_warms_its_allocator_as_it_starts(four_mib: Path) -> None:
    assert _faults_of_a_read(four_mib, "warm_for_pack") < FEW


def test_a_workers_settings_are_taken_and_keep_every_chunks_block_on_the_heap() -> None:
    code = (
        "from dblogpack import _heap, allocator;"
        "print(_heap.tune(allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD))"
    )
    taken = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert taken.stdout.split() == ["True"]
    assert allocator.MMAP_THRESHOLD > MAX_CHUNK  # the longest read's block too


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        _heap.warm(-1)
    with pytest.raises(ValueError, match="negative"):
        _heap.tune(-1, 0)
