"""Whole-process figures of `dblogpack pack`: start-up time and peak memory on 1 GB inputs."""

from __future__ import annotations

import statistics

from bench.groups import scan
from bench.measure import CommandError, repeated, tree_pss_kb
from bench.rows import DBLOGPACK, Context, Row, RowResult

RSS_LIMIT_MB = 100.0
START_LIMIT_S = 0.3
ONE_GB_ROWS = ("slow-pg", "slow-mongo", "error-pg", "error-mongo", "all-pg")


def startup(ctx: Context) -> RowResult:
    result = RowResult("startup", "`dblogpack pack --help` start time", "-", f"< {START_LIMIT_S} s")
    try:
        runs = repeated([DBLOGPACK, "pack", "--help"], max(ctx.repeats, 5))
    except CommandError as exc:
        result.note = str(exc)
        return result
    result.a_runs = [run.seconds for run in runs]
    result.a_seconds = statistics.median(result.a_runs)
    result.passed = result.a_seconds < START_LIMIT_S
    result.check = "-"
    return result


def peak_rss(ctx: Context) -> RowResult:
    """Both the largest process (wait4) and the whole tree (summed PSS, sampled) must stay under."""
    result = RowResult(
        "rss", "peak memory of `dblogpack pack` on 1 GB inputs", "-", f"< {RSS_LIMIT_MB:.0f} MB"
    )
    if not any(key in ctx.commands for key in ONE_GB_ROWS):
        dict(scan.ROWS)["slow-pg"](ctx)
    rows = [key for key in ONE_GB_ROWS if key in ctx.commands]
    if not rows:
        result.note = "no 1 GB row ran to completion"
        return result
    with ctx.console.status("measuring the memory of dblogpack's process tree"):
        try:
            trees = {key: tree_pss_kb(ctx.commands[key]) for key in rows}
        except CommandError as exc:
            result.note = str(exc)
            return result
    largest = max(rows, key=ctx.rss_kb.__getitem__)
    biggest_tree = max(rows, key=trees.__getitem__)
    largest_mb, tree_mb = ctx.rss_kb[largest] / 1024, trees[biggest_tree] / 1024
    result.passed = max(largest_mb, tree_mb) < RSS_LIMIT_MB
    result.check = "-"
    result.note = (
        f"largest process {largest_mb:.0f} MB RSS ({largest}); "
        f"whole tree {tree_mb:.0f} MB PSS ({biggest_tree})"
    )
    return result


ROWS: list[tuple[str, Row]] = [("startup", startup), ("rss", peak_rss)]
