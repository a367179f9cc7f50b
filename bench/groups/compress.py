"""An all-entries package of a 1 GB window against compressing the same bytes with `igzip -1`."""

from __future__ import annotations

from bench.rows import Comparison, Context, Row, RowResult, compare
from bench.verify import Selection
from dblogpack.model import LogKind, TimeWindow


def all_entries(ctx: Context) -> RowResult:
    data_set = ctx.data["pg-stderr-1g"]
    # The window covers the whole file, so both sides compress the same bytes.
    window = TimeWindow(data_set.begin, data_set.end)
    comparison = Comparison(
        "all-pg",
        "all-entries package of a whole-file window (pg-stderr)",
        "pg-stderr-1g",
        ["--type", "all", "--begin", str(int(data_set.begin)), "--end", str(int(data_set.end))],
        "igzip -1 -c {src} > {out}",
        "time ≤ 0.8x igzip -1 (single thread)",
        1.25,
        Selection(window, LogKind.ALL),
    )
    return compare(ctx, comparison)


ROWS: list[tuple[str, Row]] = [("all-pg", all_entries)]
