"""What a bench row is and how one is run: dblogpack (A) against a baseline (B) on the same file,
alternating, then the package checked against the generator's record.
"""

from __future__ import annotations

import shlex
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bench.data import DATA_DIR, DataSet, ensure
from bench.measure import CommandError, Paired, paired, shell
from bench.verify import Selection, verify

DBLOGPACK = str(Path(sys.executable).with_name("dblogpack"))
OUT_DIR = DATA_DIR / "out"
REPO = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Context:
    quick: bool
    repeats: int
    data: dict[str, DataSet]
    console: Console
    rss_kb: dict[str, int] = field(default_factory=dict)  # peak RSS of dblogpack per row
    commands: dict[str, list[str]] = field(default_factory=dict)  # dblogpack's argv per row


@dataclass(slots=True)
class RowResult:
    key: str
    title: str
    baseline: str
    target: str
    a_seconds: float | None = None
    b_seconds: float | None = None
    speedup: float | None = None  # B time / A time
    passed: bool = False
    check: str = "not checked"
    note: str = ""
    a_runs: list[float] = field(default_factory=list)
    b_runs: list[float] = field(default_factory=list)
    bytes_in: int = 0


@dataclass(frozen=True, slots=True)
class Comparison:
    """One row: `pack_args` for dblogpack, a shell `baseline` ({src} and {out} are filled in)."""

    key: str
    title: str
    data_set: str
    pack_args: list[str]
    baseline: str
    target: str
    min_speedup: float
    selection: Selection
    max_a_seconds: float | None = None
    repeats: int | None = None
    # The baseline takes minutes: one run of it, amid A's (see measure.paired).
    baseline_once: bool = False


Row = Callable[[Context], RowResult]


def compare(ctx: Context, row: Comparison) -> RowResult:
    data_set = ctx.data[row.data_set]
    ensure(data_set, ctx.console)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    package = OUT_DIR / f"{row.key}.tar.gz"
    ours = [
        DBLOGPACK,
        "pack",
        str(data_set.path),
        *data_set.pack_format_args(),
        *row.pack_args,
        "--out",
        str(package),
    ]
    baseline_out = OUT_DIR / f"{row.key}.baseline.gz"
    theirs = row.baseline.format(
        src=shlex.quote(str(data_set.path)), out=shlex.quote(str(baseline_out))
    )
    result = RowResult(
        row.key,
        row.title,
        theirs.replace(str(DATA_DIR) + "/", "").replace(str(REPO) + "/", ""),
        row.target,
        bytes_in=data_set.path.stat().st_size,
    )
    with ctx.console.status(f"{row.key}: alternating dblogpack and baseline"):
        try:
            runs = paired(
                ours, shell(theirs), row.repeats or ctx.repeats,
                outputs=(package, baseline_out), baseline_once=row.baseline_once,
            )
        except CommandError as exc:
            result.note = str(exc)
            return result
    _score(result, runs, row)
    ctx.rss_kb[row.key] = max(run.max_rss_kb for run in runs.a)
    ctx.commands[row.key] = ours
    with ctx.console.status(f"{row.key}: checking the package against the record"):
        try:
            difference = verify(package, data_set, row.selection)
        except (OSError, tarfile.TarError, ValueError, EOFError) as exc:
            difference = f"unreadable package: {exc}"
    result.check = "identical" if difference is None else difference
    result.passed = result.passed and difference is None
    return result


def _score(result: RowResult, runs: Paired, row: Comparison) -> None:
    result.a_runs = [run.seconds for run in runs.a]
    result.b_runs = [run.seconds for run in runs.b]
    result.a_seconds, result.b_seconds, result.speedup = (
        runs.a_seconds,
        runs.b_seconds,
        runs.speedup,
    )
    result.passed = runs.speedup >= row.min_speedup
    if row.max_a_seconds is not None and runs.a_seconds >= row.max_a_seconds:
        result.passed = False
        result.note = (
            f"dblogpack took {runs.a_seconds * 1000:.0f} ms, over {row.max_a_seconds * 1000:.0f} ms"
        )
