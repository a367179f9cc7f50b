"""Slow and error packages of whole 1 GB files against `grep | gzip -1`."""

from __future__ import annotations

from bench.rows import Comparison, Context, Row, RowResult, compare
from bench.verify import Selection
from dblogpack.model import LogKind, TimeWindow

EVERYTHING = TimeWindow()


def _row(
    key: str, title: str, data_set: str, kind: LogKind, grep: str, target: str, min_speedup: float
) -> tuple[str, Row]:
    comparison = Comparison(
        key,
        title,
        data_set,
        ["--type", kind.value],
        f"{grep} {{src}} | gzip -1 > {{out}}",
        target,
        min_speedup,
        Selection(EVERYTHING, kind),
    )

    def run(ctx: Context) -> RowResult:
        return compare(ctx, comparison)

    return key, run


ROWS = [
    _row(
        "slow-pg",
        "slow package of pg-stderr",
        "pg-stderr-1g",
        LogKind.SLOW,
        "LC_ALL=C grep -F 'duration: '",
        "throughput ≥ 0.6x baseline",
        0.6,
    ),
    _row(
        "slow-mongo",
        "slow package of mongo-json",
        "mongo-json-1g",
        LogKind.SLOW,
        "LC_ALL=C grep -F '\"Slow query\"'",
        "throughput ≥ 1.5x baseline",
        1.5,
    ),
    _row(
        "error-pg",
        "error package of pg-stderr",
        "pg-stderr-1g",
        LogKind.ERROR,
        "LC_ALL=C grep -E ' (WARNING|ERROR|FATAL|PANIC):  '",
        "throughput ≥ 0.8x baseline",
        0.8,
    ),
    _row(
        "error-mongo",
        "error package of mongo-json",
        "mongo-json-1g",
        LogKind.ERROR,
        'LC_ALL=C grep -E \'"s":"[WEF]"\'',
        "throughput ≥ 0.8x baseline",
        0.8,
    ),
]
