"""The bench's output: a table on the terminal and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.rows import RowResult

RESULTS = Path(__file__).resolve().parent / "results.json"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _throughput(result: RowResult, seconds: float | None) -> str:
    if seconds is None or not result.bytes_in:
        return ""
    return f"\n{result.bytes_in / seconds / 1e9:.2f} GB/s"


def _ratios(result: RowResult) -> str:
    """A/B of the median times, and its inverse: how many times faster A is."""
    speedup = result.speedup or 0.0
    return f"{1 / speedup:.2f} · {speedup:.2f}x" if speedup else "-"


def table(results: list[RowResult]) -> Table:
    out = Table(title="dblogpack pack (A) against baselines (B): medians of alternating runs")
    for column in (
        "row",
        "A dblogpack",
        "B baseline",
        "A/B time · speed-up",
        "target",
        "package check",
        "",
    ):
        out.add_column(column, overflow="fold")
    for r in results:
        verdict = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
        speed = _ratios(r) if r.speedup is not None else r.note or "-"
        out.add_row(
            f"{r.title} ({r.bytes_in / 1e6:.0f} MB)\n[dim]{r.baseline}[/]"
            if r.bytes_in
            else r.title,
            _seconds(r.a_seconds) + _throughput(r, r.a_seconds),
            _seconds(r.b_seconds) + _throughput(r, r.b_seconds),
            speed if r.speedup is None or not r.note else f"{speed}\n{r.note}",
            r.target,
            r.check,
            verdict,
        )
    return out


def save(results: list[RowResult], quick: bool, repeats: int) -> Path:
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "repeats": repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rows": [asdict(r) for r in results],
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(results))
    return RESULTS


def markdown(results: list[RowResult]) -> str:
    """The table as Markdown, for docs/benchmarks.md."""
    lines = [
        "| row | data | A dblogpack | B baseline | A/B time · speed-up"
        " | target | package | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speed = _ratios(r) if r.speedup is not None else ""
        note = (f" ({r.note})" if speed else r.note) if r.note else ""
        size = f"{r.bytes_in / 1e6:.0f} MB" if r.bytes_in else "-"
        baseline = r.baseline.replace("|", "\\|")  # a pipe would end the table cell
        lines.append(
            f"| {r.title}{f'<br>`{baseline}`' if baseline != '-' else ''} | {size} |"
            f" {_seconds(r.a_seconds)} |"
            f" {_seconds(r.b_seconds)} | {speed}{note} | {r.target} | {r.check} |"
            f" {'PASS' if r.passed else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def show(results: list[RowResult], console: Console) -> None:
    console.print(table(results))
