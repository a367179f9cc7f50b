"""One hour out of a 7-day 1 GB file against an awk window filter: bisection instead of reading."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.data import HOUR
from bench.rows import Comparison, Context, Row, RowResult, compare
from bench.verify import Selection
from dblogpack.model import LogKind, TimeWindow

# Continuation lines (TAB) follow the decision taken for the line that starts their entry.
AWK = (
    "LC_ALL=C awk -v b='{begin}' -v e='{end}'"
    " '/^\\t/ {{ if (keep) print; next }} {{ t = $1 \" \" $2; keep = (t >= b && t < e) }} keep'"
)


def hour_of_week(ctx: Context) -> RowResult:
    data_set = ctx.data["pg-stderr-week"]
    begin = data_set.begin + 3.5 * 24 * HOUR  # the middle of the week
    window = TimeWindow(begin, begin + HOUR)
    # The baseline is formatted again with {src}/{out}: keep awk's braces doubled.
    awk = AWK.replace("{begin}", _pg_time(begin)).replace("{end}", _pg_time(begin + HOUR))
    comparison = Comparison(
        "hour-of-week",
        "1-hour window out of a 7-day file (pg-stderr, all entries)",
        "pg-stderr-week",
        ["--type", "all", "--begin", str(int(begin)), "--end", str(int(begin + HOUR))],
        awk + " {src} | gzip -1 > {out}",
        "≥ 50x faster, < 50 ms whole process",
        50.0,
        Selection(window, LogKind.ALL),
        max_a_seconds=0.05,
    )
    return compare(ctx, comparison)


def _pg_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


ROWS: list[tuple[str, Row]] = [("hour-of-week", hour_of_week)]
