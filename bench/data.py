"""The bench's data sets: generated once into bench/data/, reused while seed, size and generator
match.

Each data set is one log file plus its record side file (the expected selection of any
package is computed from the record, never from the engine).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from dblogpack.synth import (
    MongoJsonFormat,
    MongoLegacyFormat,
    PgStderrFormat,
    Plan,
    Record,
    SynthFormat,
)
from dblogpack.synth import generate as synth_generate
from dblogpack.synth.record import MAGIC as RECORD_MAGIC

DATA_DIR = Path(__file__).resolve().parent / "data"
SYNTH_DIR = Path(__file__).resolve().parents[1] / "src" / "dblogpack" / "synth"
START = 1714521600.0  # 2024-05-01T00:00:00Z
HOUR = 3600.0
PG_PREFIX = "%m [%p] %q%u@%d "
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class DataSet:
    key: str
    format: str  # dblogpack format name
    size: int
    hours: float
    seed: int
    style: str | None = None

    @property
    def path(self) -> Path:
        return DATA_DIR / f"{self.key}.log"

    @property
    def record_path(self) -> Path:
        return DATA_DIR / f"{self.key}.rec"

    @property
    def meta_path(self) -> Path:
        return DATA_DIR / f"{self.key}.json"

    @property
    def begin(self) -> float:
        return START

    @property
    def end(self) -> float:
        return START + self.hours * HOUR

    def synth_format(self) -> SynthFormat:
        if self.format == "pg-stderr":
            return PgStderrFormat(PG_PREFIX)
        if self.format == "mongo-json":
            return MongoJsonFormat(self.style or "iso-local")
        return MongoLegacyFormat(self.style or "iso8601-local")

    def pack_format_args(self) -> list[str]:
        args = ["--format", self.format]
        if self.format == "pg-stderr":
            args += ["--log-line-prefix", PG_PREFIX]
        return args


def data_sets(quick: bool) -> dict[str, DataSet]:
    """Full size (≥ 1 GiB) or --quick (a tenth); keys name what the rows refer to."""
    scale = 10 if quick else 1
    suffix = "-quick" if quick else ""
    sets = [
        DataSet(f"pg-stderr-1g{suffix}", "pg-stderr", 1_100 * MB // scale, 6, seed=11),
        DataSet(f"mongo-json-1g{suffix}", "mongo-json", 1_100 * MB // scale, 6, seed=12),
        DataSet(f"pg-stderr-week{suffix}", "pg-stderr", 1_100 * MB // scale, 7 * 24, seed=13),
        DataSet(f"mongo-legacy-200m{suffix}", "mongo-legacy", 220 * MB // scale, 4, seed=14),
    ]
    return {s.key.removesuffix(suffix): s for s in sets}


# The modules that decide the bytes written (the record's layout is versioned by its magic).
BYTE_DECIDING = (
    "generate.py",
    "timestamps.py",
    "workload.py",
    "mongo_json.py",
    "mongo_legacy.py",
    "pg_stderr.py",
)


def generator_version() -> str:
    """A digest of the generator's source: data made by other generator code is regenerated."""
    digest = hashlib.sha256(RECORD_MAGIC)
    for name in BYTE_DECIDING:
        digest.update(name.encode() + (SYNTH_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure(data_set: DataSet, console: Console) -> None:
    """Generate `data_set` unless an identical one is already on disk."""
    wanted = {**asdict(data_set), "generator": generator_version()}
    paths = (data_set.path, data_set.record_path, data_set.meta_path)
    if all(p.exists() for p in paths) and json.loads(data_set.meta_path.read_text()) == wanted:
        return
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    data_set.meta_path.unlink(missing_ok=True)
    started = time.perf_counter()
    plan = Plan(start=data_set.begin, end=data_set.end, size=data_set.size, seed=data_set.seed)
    with console.status(f"generating {data_set.key} ({data_set.size / MB:.0f} MB)"):
        with data_set.record_path.open("wb") as sink:
            record = Record(sink)
            result = synth_generate(data_set.synth_format(), data_set.path, plan, record)
            record.close(wanted)
    elapsed = time.perf_counter() - started
    console.print(
        f"generated {data_set.key}: {result.size / MB:.0f} MB, {result.entries} entries"
        f" in {elapsed:.1f} s ({result.size / MB / elapsed:.0f} MB/s)"
    )
    data_set.meta_path.write_text(json.dumps(wanted))
