"""Checks a package against the generator's record: every member byte-identical to the expected
selection (multi-line entries included), no member missing or extra, entry counts equal.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from isal import igzip

from bench.data import DataSet
from dblogpack.model import LogKind, TimeWindow
from dblogpack.synth import RecordFile, read_spans, select

COPY = 4 << 20


@dataclass(frozen=True, slots=True)
class Selection:
    """What a package should hold: the window, the log type and the bar for slow entries."""

    window: TimeWindow
    kind: LogKind
    min_duration_ms: float | None = None


def expected_digests(data_set: DataSet, selection: Selection) -> tuple[dict[str, str], int]:
    """sha256 of each expected member's bytes (by file name) and the expected entry count."""
    record = RecordFile(data_set.record_path)
    chosen = select(
        record.files, record.blocks(), selection.window, selection.kind, selection.min_duration_ms
    )
    digests = {}
    for name, file_spans in chosen.spans.items():
        digest = hashlib.sha256()
        for piece in read_spans(data_set.path.with_name(name), file_spans):
            digest.update(piece)
        digests[name] = digest.hexdigest()
    return digests, chosen.entries


def package_digests(package: Path) -> tuple[dict[str, str], dict[str, object]]:
    """sha256 of each `logs/` member (by original file name) and the parsed manifest."""
    digests: dict[str, str] = {}
    manifest: dict[str, object] = {}
    stream = cast(BinaryIO, igzip.open(package, "rb"))  # type: ignore[no-untyped-call]
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            if member.name == "manifest.json":
                manifest = json.loads(extracted.read())
            elif member.name.startswith("logs/"):
                digest = hashlib.sha256()
                while piece := extracted.read(COPY):
                    digest.update(piece)
                digests[member.name.removeprefix("logs/")] = digest.hexdigest()
    return digests, manifest


def verify(package: Path, data_set: DataSet, selection: Selection) -> str | None:
    """None when the package holds exactly the expected entries, else what differs."""
    wanted, wanted_entries = expected_digests(data_set, selection)
    got, manifest = package_digests(package)
    if set(got) != set(wanted):
        return f"members {sorted(got)} != expected {sorted(wanted)}"
    wrong = [name for name in wanted if got[name] != wanted[name]]
    if wrong:
        return f"bytes differ in {', '.join(wrong)}"
    totals = manifest.get("totals")
    entries = totals.get("entries") if isinstance(totals, dict) else None
    if entries != wanted_entries:
        return f"manifest counts {entries} entries, the record {wanted_entries}"
    return None
