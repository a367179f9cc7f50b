"""A slow package of a 200 MB mongo-legacy file against mtools' `mlogfilter --slow 100`.

mtools 1.7.2 is installed from PyPI into a bench-only venv (bench/.venv-mtools) on first use, made
from the interpreter dblogpack runs on, so both sides of the row run on the same CPython build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.rows import Comparison, Context, Row, RowResult, compare
from bench.verify import Selection
from dblogpack.model import LogKind, TimeWindow

VENV = Path(__file__).resolve().parents[1] / ".venv-mtools"
MLOGFILTER = VENV / "bin" / "mlogfilter"
# mtools 1.7.2 imports dateutil without declaring it.
REQUIREMENTS = ["mtools==1.7.2", "python-dateutil"]


def ensure_mtools(ctx: Context) -> None:
    if MLOGFILTER.exists() and _same_interpreter():
        return
    with ctx.console.status("installing mtools 1.7.2 into bench/.venv-mtools"):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *REQUIREMENTS], check=True)


def _same_interpreter() -> bool:
    """Whether the mtools venv was made from the interpreter this process runs on (a venv made
    before the project moved to another CPython build would time mlogfilter on the old one)."""
    ours = os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
    try:
        config = (VENV / "pyvenv.cfg").read_text()
    except OSError:
        return False
    return f"executable = {ours}" in config.splitlines()


def legacy_slow(ctx: Context) -> RowResult:
    try:
        ensure_mtools(ctx)
    except (OSError, subprocess.CalledProcessError) as exc:
        return RowResult(
            "slow-legacy",
            "slow package of a mongo-legacy file",
            "mlogfilter",
            "≥ 100x faster",
            note=f"could not install mtools: {exc}",
        )
    comparison = Comparison(
        "slow-legacy",
        "slow package (≥ 100 ms) of a mongo-legacy file",
        "mongo-legacy-200m",
        ["--type", "slow", "--min-duration", "100"],
        # mlogfilter reads a file argument only from a terminal; elsewhere it reads stdin.
        f"{MLOGFILTER} --slow 100 < {{src}} > {{out}}",
        "≥ 100x faster",
        100.0,
        Selection(TimeWindow(), LogKind.SLOW, 100.0),
        baseline_once=True,  # one mlogfilter run takes minutes; the gap is orders of magnitude
    )
    return compare(ctx, comparison)


ROWS: list[tuple[str, Row]] = [("slow-legacy", legacy_slow)]
