"""`python -m bench.run [--quick] [--only ROW ...] [--repeats N]`: generate data, run the rows.

Rows compare `dblogpack pack` (A, the real CLI in a subprocess) with a shell baseline (B) on the
same file, alternating A and B; each package is checked against the generator's record.
"""

from __future__ import annotations

import argparse
import compileall
import sys
from pathlib import Path

from rich.console import Console

from bench.data import data_sets, ensure
from bench.groups import GROUPS, ROWS
from bench.groups.mtools import ensure_mtools
from bench.report import save, show
from bench.rows import Context, RowResult


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the data, 3 repeats")
    parser.add_argument(
        "--prepare", action="store_true", help="only generate the data sets and install mtools"
    )
    parser.add_argument("--repeats", type=int, help="paired runs per row (default 5, quick 3)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="ROW",
        help=f"run only this row or group (repeatable): {', '.join([*GROUPS, *dict(ROWS)])}",
    )
    return parser.parse_args(argv)


def _selected(only: list[str] | None) -> list[tuple[str, object]]:
    if not only:
        return list(ROWS)
    unknown = [name for name in only if name not in GROUPS and name not in dict(ROWS)]
    if unknown:
        raise SystemExit(f"unknown row or group: {', '.join(unknown)}")
    wanted = {key for name in only for key, _ in GROUPS.get(name, [(name, None)])}
    return [(key, row) for key, row in ROWS if key in wanted]


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # Wide enough for the table when the output is a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 160)
    repeats = args.repeats or (3 if args.quick else 5)
    ctx = Context(args.quick, repeats, data_sets(args.quick), console)
    if args.prepare:
        for data_set in ctx.data.values():
            ensure(data_set, console)
        ensure_mtools(ctx)
        return 0
    _precompile()
    results: list[RowResult] = []
    for key, row in ROWS:
        if key not in dict(_selected(args.only)):
            continue
        results.append(row(ctx))
        console.print(f"{key}: {'PASS' if results[-1].passed else 'FAIL'}")
    show(results, console)
    console.print(f"results written to {save(results, args.quick, repeats)}")
    return 0 if all(r.passed for r in results) else 1


def _precompile() -> None:
    # A wheel install compiles the package's bytecode once; this editable tree (and
    # PYTHONDONTWRITEBYTECODE=1 here) would otherwise compile every module at every start.
    import dblogpack

    compileall.compile_dir(Path(dblogpack.__file__).parent, quiet=1)


if __name__ == "__main__":
    sys.exit(main())
