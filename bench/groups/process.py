"""Whole-process figures of `dblogpack pack`: start-up time and peak memory on 1 GB inputs."""

from __future__ import annotations

import statistics

from bench.groups import scan
from bench.measure import CommandError, repeated
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
    result = RowResult(
        "rss", "peak RSS of `dblogpack pack` on 1 GB inputs", "-", f"< {RSS_LIMIT_MB:.0f} MB"
    )
    if not any(key in ctx.rss_kb for key in ONE_GB_ROWS):
        slow_pg = dict(scan.ROWS)["slow-pg"]
        slow_pg(ctx)
    measured = {key: kb for key, kb in ctx.rss_kb.items() if key in ONE_GB_ROWS}
    if not measured:
        result.note = "no 1 GB row ran to completion"
        return result
    worst = max(measured, key=measured.__getitem__)
    megabytes = measured[worst] / 1024
    result.passed = megabytes < RSS_LIMIT_MB
    result.check = "-"
    result.note = f"{megabytes:.0f} MB (largest process, wait4 ru_maxrss; row {worst})"
    return result


ROWS: list[tuple[str, Row]] = [("startup", startup), ("rss", peak_rss)]
