"""`python -m bench.pg_formats`: the same PostgreSQL entries as stderr, csvlog and jsonlog (a
server with `log_destination = 'stderr,csvlog,jsonlog'`), packaged slow, error and all: each
format's time against pg-stderr's, which `make bench` measures against its baselines.

The entries (seeded): 5% slow statements drawn from a pool of 500, a quarter of them spanning
lines; 2% errors, each with its statement; the rest connection lines. Every package's entry
count is checked against the generator's. Medians of alternating runs (docs/engine.md, "pg-csv's
slow and error entries").
"""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.csv_records import csvlog_record, pg_time
from bench.data import DATA_DIR
from bench.measure import run

SEED, ENTRIES = 11, 3_000_000
FORMATS = ("pg-stderr", "pg-csv", "pg-json")
KINDS = ("slow", "error", "all")
REPEATS = 3
DBLOGPACK = str(Path(sys.executable).with_name("dblogpack"))
START_MS = 1714564800_000  # 2024-05-01 12:00:00 UTC


def _time(ms: int) -> str:
    """The time `ms` milliseconds after START_MS, as log_line_prefix's %m."""
    return pg_time(START_MS + ms)


def _entries(rng: random.Random) -> tuple[list[tuple[str, str, str, str | None]], dict[str, int]]:
    """(severity, SQLSTATE, message, statement) of each entry, and how many of each kind."""
    pool = [f"SELECT * FROM t{k} WHERE id = $1 AND v > {k}" for k in range(500)]
    pool[::4] = [sql.replace(" WHERE ", "\n WHERE ") for sql in pool[::4]]
    entries: list[tuple[str, str, str, str | None]] = []
    counts = dict.fromkeys(KINDS, 0)
    for _ in range(ENTRIES):
        draw = rng.randrange(100)
        if draw < 5:
            millis = rng.randrange(100_000) / 1000
            entries.append(("LOG", "00000", f"duration: {millis:.3f} ms  statement: "
                            + rng.choice(pool), None))
            counts["slow"] += 1
        elif draw < 7:
            relation = rng.randrange(50)
            entries.append(("ERROR", "42P01", f'relation "x{relation}" does not exist',
                            rng.choice(pool)))
            counts["error"] += 1
        else:
            entries.append(("LOG", "00000", "connection received: host=10.0.0.1 port=5432", None))
        counts["all"] += 1
    return entries, counts


def _stderr(ms: int, pid: int, severity: str, message: str, statement: str | None) -> str:
    prefix = f"{_time(ms)} [{pid}] "
    text = f"{prefix}{severity}:  {message.replace(chr(10), chr(10) + chr(9))}\n"
    if statement is not None:
        text += f"{prefix}STATEMENT:  {statement.replace(chr(10), chr(10) + chr(9))}\n"
    return text


def _json(ms: int, pid: int, severity: str, code: str, message: str, statement: str | None) -> str:
    doc: dict[str, object] = {
        "timestamp": _time(ms), "user": "u", "dbname": "d", "pid": pid,
        "session_id": f"1.{pid:x}", "line_num": 1, "error_severity": severity,
    }
    if severity != "LOG":
        doc["state_code"] = code
    doc["message"] = message
    if statement is not None:
        doc["statement"] = statement
    doc.update(application_name="psql", backend_type="client backend", query_id=0)
    return json.dumps(doc, separators=(",", ":")) + "\n"


def _path(fmt: str) -> Path:
    return DATA_DIR / f"pg-formats-{fmt.removeprefix('pg-')}.log"


def ensure_data(console: Console) -> dict[str, int]:
    """The three logs (made once for this seed and size) and the entry counts they hold."""
    meta = DATA_DIR / "pg-formats.json"
    wanted = {"seed": SEED, "entries": ENTRIES, "version": 3}
    if meta.exists() and all(_path(f).exists() for f in FORMATS):
        known = json.loads(meta.read_text())
        if known["made"] == wanted:
            return dict(known["counts"])
    console.print(f"writing {ENTRIES:,} entries as stderr, csvlog and jsonlog")
    rng = random.Random(SEED)
    entries, counts = _entries(rng)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with (
        _path("pg-stderr").open("w") as stderr,
        _path("pg-csv").open("w") as csv,
        _path("pg-json").open("w") as jsonlog,
    ):
        ms = 0
        for severity, code, message, statement in entries:
            ms += rng.randrange(4)
            pid = 1000 + rng.randrange(64)
            stderr.write(_stderr(ms, pid, severity, message, statement))
            csv.write(csvlog_record(_time(ms), pid, severity, code, message, statement))
            jsonlog.write(_json(ms, pid, severity, code, message, statement))
    meta.write_text(json.dumps({"made": wanted, "counts": counts}))
    return counts


def _pack(fmt: str, kind: str, out: Path) -> list[str]:
    extra = ["--log-line-prefix", "%m [%p] "] if fmt == "pg-stderr" else []
    return [DBLOGPACK, "pack", "--format", fmt, *extra, "--timezone", "UTC", "--type", kind,
            "--out", str(out), str(_path(fmt))]


_ENTRIES = re.compile(r": (\d+) entries from")


def _entry_count(argv: list[str]) -> int:
    """Run a pack once, untimed, and read the entry count it reports."""
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    found = _ENTRIES.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no entry count in {done.stdout!r}")
    return int(found[1])


def main() -> None:
    console = Console()
    counts = ensure_data(console)
    out = DATA_DIR / "out"
    out.mkdir(exist_ok=True)
    table = Table(title="the same entries in the three PostgreSQL formats")
    columns = ("package", "format", "size", "entries", "time (median)", "MB/s", "x pg-stderr")
    for column in columns:
        table.add_column(column)
    for kind in KINDS:
        commands = {fmt: _pack(fmt, kind, out / f"formats-{fmt}-{kind}.tar.gz") for fmt in FORMATS}
        for fmt, argv in commands.items():
            got = _entry_count(argv)
            if got != counts[kind]:
                raise SystemExit(f"{fmt} {kind}: {got} entries, the generator wrote {counts[kind]}")
        times: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        for round_number in range(REPEATS):
            order = FORMATS if round_number % 2 == 0 else FORMATS[::-1]
            for fmt in order:
                times[fmt].append(run(commands[fmt]).seconds)
        base = statistics.median(times["pg-stderr"])
        for fmt in FORMATS:
            median, size = statistics.median(times[fmt]), _path(fmt).stat().st_size / 1e6
            table.add_row(
                kind, fmt, f"{size:.0f} MB", f"{counts[kind]:,}", f"{median:.2f} s",
                f"{size / median:.0f}", f"{median / base:.2f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
