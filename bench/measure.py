"""Timing processes: paired A/B runs alternated so machine drift hits both sides alike."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Run:
    seconds: float
    max_rss_kb: int  # largest resident set of the process and its waited-for children
    returncode: int


@dataclass(slots=True)
class Paired:
    a: list[Run] = field(default_factory=list)
    b: list[Run] = field(default_factory=list)

    @property
    def a_seconds(self) -> float:
        return statistics.median(r.seconds for r in self.a)

    @property
    def b_seconds(self) -> float:
        return statistics.median(r.seconds for r in self.b)

    @property
    def speedup(self) -> float:
        """How many times faster A is than B (B time / A time), from the medians."""
        return self.b_seconds / self.a_seconds


class CommandError(RuntimeError):
    pass


# /usr/bin/time reports the peak RSS of the process it forks itself. A process this (large)
# Python forks directly would report ours: Linux keeps the high-water RSS across exec, and the
# child starts as a copy of us.
TIME = "/usr/bin/time"


def run(argv: list[str], *, stdout_path: str | None = None) -> Run:
    """Run a process to completion: wall time, and peak RSS as /usr/bin/time reports it."""
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as rss:
        stdout = open(stdout_path, "wb") if stdout_path else None
        try:
            started = time.perf_counter()
            process = subprocess.Popen(
                [TIME, "-f", "%M", "-o", rss.name, *argv],
                stdout=stdout or subprocess.DEVNULL,
                stderr=errors,
            )
            _, status, _ = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
        finally:
            if stdout is not None:
                stdout.close()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-500:]
            raise CommandError(f"{' '.join(argv)} exited {process.returncode}: {tail}")
        max_rss_kb = int(rss.read().split()[-1])
    return Run(elapsed, max_rss_kb, process.returncode)


def shell(command: str) -> list[str]:
    # pipefail: a baseline whose first stage fails must not look fast.
    return ["bash", "-o", "pipefail", "-c", command]


def paired(
    a: list[str],
    b: list[str],
    repeats: int,
    outputs: tuple[Path, Path] | None = None,
    baseline_once: bool = False,
) -> Paired:
    """Alternate A and B `repeats` times each (A first on even rounds, B first on odd ones),
    after one untimed run of each (page cache warm).

    `baseline_once`: B takes minutes (mlogfilter), so it runs once, with no warm-up run,
    between the two halves of A's `repeats` runs (A is warmed up first). A's median then rests on
    as many runs as any row's: the legacy row's single A run took 0.90-1.54 s in full runs, where
    five in a row took 0.78-0.99 s.

    `outputs` (A's and B's) are removed before each run, untimed: each run writes a new file,
    as a user's does, rather than replacing the last run's (on ext4, replacing a file forces
    its blocks out: 1.5-2 ms, a few percent of the 1-hour window row).
    """
    fresh = outputs or (None, None)
    result = Paired()
    record = (result.a, result.b)

    def timed(side: int) -> None:
        argv, output = (a, b)[side], fresh[side]
        if output is not None:
            output.unlink(missing_ok=True)
        record[side].append(run(argv))

    run(a)
    if baseline_once:
        for index in range(repeats):
            if index == repeats // 2:
                timed(1)
            timed(0)
        return result
    run(b)
    for round_number in range(repeats):
        for side in (0, 1) if round_number % 2 == 0 else (1, 0):
            timed(side)
    return result


def repeated(argv: list[str], repeats: int) -> list[Run]:
    run(argv)
    return [run(argv) for _ in range(repeats)]


def tree_pss_kb(argv: list[str], interval: float = 0.01) -> int:
    """Peak memory of a process tree in kB: the summed PSS of the process and its descendants,
    so shared pages are split between processes and forked workers are not counted twice.
    Sampled: peaks shorter than `interval` are missed."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, sum(_pss_kb(member) for member in _tree(process.pid)))
        time.sleep(interval)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise CommandError(f"{' '.join(argv)} exited {process.returncode}")
    return peak


def _tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except OSError:
            continue  # exited between two reads
    return pids


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0  # exited between two reads
    return 0
