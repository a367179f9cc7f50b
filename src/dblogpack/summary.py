"""What a package holds at a glance: top query fingerprints for slow packages, counts by severity
and by SQLSTATE / MongoDB error code for error packages; summary.json (stable keys) and summary.txt.
Memory is bounded: at most `max_fingerprints` distinct fingerprints are tracked.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dblogpack.model import DetailGroup, EntryDetail

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import Any

EXAMPLE_CHARS = 500

# Patterns as text, compiled on first use through re's cache: an all-entries package (a whole
# `pack` process timed in tens of ms) fingerprints nothing.
_SPACES = r"\s+"
_MONGO_VALUES = (
    r"""(?P<key>[:,\[]\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?|true|false|null"""
    r"""|new\s+Date\(\s*-?\d+\s*\)|ObjectId\(\s*'[0-9a-f]*'\s*\))"""
)
_MONGO_LISTS = r"\[\s*\?(?:\s*,\s*\?)+\s*\]"
# Fields that differ on every call and say nothing about the query's shape.
# Extended JSON wrappers of one scalar value ({"$oid": …}, {"$date": …}): a value, not a shape.
_EXTENDED_JSON_SCALARS = frozenset(
    {"$oid", "$date", "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal", "$binary",
     "$timestamp", "$regularExpression", "$uuid", "$symbol", "$minKey", "$maxKey", "$undefined"}
)
_MONGO_NOISE = frozenset({"lsid", "$clusterTime", "$db", "txnNumber", "$readPreference", "comment"})


# Commands repeat (drivers, ORMs): a cache spares the parse most of the time.
_CACHE_SIZE = 4096


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint_mongo(command: str) -> str:
    """A MongoDB command's shape: keys kept, values replaced by "?", the collection name kept."""
    stripped = command.strip()
    if stripped.startswith("{"):
        masked = _masked_digits(stripped)
        known = _MONGO_SHAPES.get(masked) if masked is not None else None
        if known is not None:
            return known
        import json  # mongo commands only: kept off every pack's start (~1.7 ms)

        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            shape = json.dumps(_command_shape(parsed), separators=(",", ":"))
            if masked is not None and not re.search(_HAS_DIGIT, shape):
                _remember_shape(masked, shape)
            return shape
    text = re.sub(_MONGO_VALUES, lambda m: m.group("key") + "?", stripped)
    return re.sub(_SPACES, " ", re.sub(_MONGO_LISTS, "[?]", text))


# Commands alike but for their digits (ids, numbers) share a shape when the shape holds no digit:
# then every digit of the command was in a value, and values are replaced. Keyed by the command
# with its digits masked. Not masked: commands with escapes (`\u0031` is a digit too) and with
# what may be a number with a leading zero (not JSON, so not parsed alike).
_MONGO_SHAPES: dict[bytes, str] = {}
# Masked as UTF-8 bytes: bytes.translate is ~9x faster than str.translate on a command, and
# UTF-8 never holds an ASCII digit's byte inside another character (surrogatepass: any str).
_DIGIT_MASK = bytes.maketrans(b"0123456789", b"\0" * 10)
# Patterns compiled on first use (re's cache), not when a pack process imports this module.
_HAS_DIGIT = r"\d"
_LEADING_ZERO = r"[:\[,]\s*-?0\d"


def _masked_digits(command: str) -> bytes | None:
    if "\\" in command or "\0" in command or re.search(_LEADING_ZERO, command):
        return None
    return command.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK)


def _remember_shape(masked: bytes, shape: str) -> None:
    if len(_MONGO_SHAPES) >= _CACHE_SIZE:
        _MONGO_SHAPES.clear()
    _MONGO_SHAPES[masked] = shape


def _command_shape(command: dict[str, Any]) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    for index, (key, value) in enumerate(command.items()):
        if key in _MONGO_NOISE:
            continue
        # The first key names the command and its value the collection: both are the shape.
        shape[key] = value if index == 0 and isinstance(value, str) else _value_shape(value)
    return shape


def _value_shape(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _EXTENDED_JSON_SCALARS:
            return "?"
        return {k: _value_shape(v) for k, v in value.items() if k not in _MONGO_NOISE}
    if isinstance(value, list):
        return [_value_shape(value[0])] if value else []
    return "?"


class _Fingerprint:
    __slots__ = ("count", "example", "max_ms", "total_ms")

    def __init__(self, example: str) -> None:
        self.count, self.total_ms, self.max_ms, self.example = 0, 0.0, 0.0, example


class _Tally:
    __slots__ = ("count", "example")

    def __init__(self, example: str) -> None:
        self.count, self.example = 0, example


def _example(text: str | None) -> str:
    return (text or "")[:EXAMPLE_CHARS]


class SummaryBuilder:
    """Accumulates entry details; picklable, so partial summaries from workers can be merged.

    dialect: "sql" (PostgreSQL) or "mongo" decides how statements are fingerprinted.
    """

    __slots__ = (
        "codes", "dialect", "entries", "fingerprints", "max_fingerprints", "overflow", "severities"
    )

    def __init__(self, dialect: str, max_fingerprints: int = 5000) -> None:
        self.dialect, self.max_fingerprints = dialect, max_fingerprints
        self.entries = 0
        self.overflow = 0  # entries whose fingerprint was dropped to keep memory bounded
        self.fingerprints: dict[str, _Fingerprint] = {}
        self.severities: dict[str, _Tally] = {}
        self.codes: dict[str, _Tally] = {}

    def add(self, detail: EntryDetail) -> None:
        duration = detail.duration_ms or 0.0
        self.add_group(DetailGroup(detail, 1, duration, duration))

    def add_group(self, group: DetailGroup) -> None:
        """`group.count` entries that share the first one's statement, severity and code."""
        detail = group.first
        self.entries += group.count
        _tally(self.severities, detail.severity, detail.message, group.count)
        if detail.code:
            _tally(self.codes, detail.code, detail.message, group.count)
        if detail.duration_ms is not None and detail.statement:
            key = group.fingerprint
            if key is None:
                key = self._fingerprint(detail.statement)
            self._add_fingerprint(key, detail.statement, group.count, group.total_ms, group.max_ms)

    def _fingerprint(self, statement: str) -> str:
        if self.dialect != "sql":
            return fingerprint_mongo(statement)
        from dblogpack.sqlshape import fingerprint_sql  # its patterns: only slow packages need them

        return fingerprint_sql(statement)

    def _add_fingerprint(
        self, key: str, statement: str, count: int, total_ms: float, max_ms: float
    ) -> None:
        """Add entries to `key`'s fingerprint; `statement` gives a new fingerprint's example."""
        entry = self.fingerprints.get(key)
        if entry is None:
            if len(self.fingerprints) >= self.max_fingerprints:
                self._prune()
            entry = self.fingerprints[key] = _Fingerprint(example=_example(statement))
        entry.count += count
        entry.total_ms += total_ms
        entry.max_ms = max(entry.max_ms, max_ms)

    def _prune(self) -> None:
        """Drop the rarer half of the fingerprints (amortised O(1) per entry), counting them."""
        ranked = sorted(self.fingerprints.items(), key=lambda kv: kv[1].count, reverse=True)
        keep = self.max_fingerprints // 2
        self.overflow += sum(fp.count for _, fp in ranked[keep:])
        self.fingerprints = dict(ranked[:keep])

    def merge(self, other: SummaryBuilder) -> None:
        self.entries += other.entries
        self.overflow += other.overflow
        for key, fp in other.fingerprints.items():
            self._add_fingerprint(key, fp.example, fp.count, fp.total_ms, fp.max_ms)
        _merge_tallies(self.severities, other.severities)
        _merge_tallies(self.codes, other.codes)

    def to_json(self, top: int = 50) -> dict[str, Any]:
        """summary.json: the same keys for every package type (lists may be empty)."""
        ranked = sorted(
            self.fingerprints.items(), key=lambda kv: (-kv[1].total_ms, -kv[1].count, kv[0])
        )
        return {
            "entries": self.entries,
            "fingerprints": [_fingerprint_json(k, fp) for k, fp in ranked[:top]],
            "fingerprints_distinct": len(self.fingerprints),
            "fingerprints_overflow": self.overflow,
            "severities": _tallies_json("severity", self.severities),
            "codes": _tallies_json("code", self.codes),
        }


def _tally(tallies: dict[str, _Tally], key: str, example: str | None, count: int = 1) -> None:
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = _Tally(example=_example(example))
    tally.count += count


def _merge_tallies(mine: dict[str, _Tally], other: dict[str, _Tally]) -> None:
    for key, tally in other.items():
        target = mine.setdefault(key, _Tally(example=tally.example))
        target.count += tally.count


def _fingerprint_json(key: str, fp: _Fingerprint) -> dict[str, Any]:
    return {
        "fingerprint": key,
        "count": fp.count,
        "total_ms": round(fp.total_ms, 3),
        "mean_ms": round(fp.total_ms / fp.count, 3) if fp.count else 0.0,
        "max_ms": round(fp.max_ms, 3),
        "example": fp.example,
    }


def _tallies_json(label: str, tallies: dict[str, _Tally]) -> list[dict[str, Any]]:
    ranked = sorted(tallies.items(), key=lambda kv: (-kv[1].count, kv[0]))
    return [{label: key, "count": t.count, "example": t.example} for key, t in ranked]


def render_text(summary: dict[str, Any], title: str) -> str:
    """summary.txt: the same facts as summary.json, as tables a person reads."""
    lines = [title, "=" * len(title), f"entries: {summary['entries']}", ""]
    if summary["fingerprints"]:
        lines += _fingerprint_table(summary)
    for label, key in (("By severity", "severity"), ("By error code", "code")):
        rows = summary["codes"] if key == "code" else summary["severities"]
        if rows:
            lines += [label, f"{'count':>10}  {key:<12} example"]
            lines += [f"{r['count']:>10}  {r[key]:<12} {_one_line(r['example'])}" for r in rows]
            lines.append("")
    return "\n".join(lines) + "\n"


def _fingerprint_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "Top query fingerprints (by total duration)",
        f"{'count':>8} {'total ms':>12} {'mean ms':>10} {'max ms':>10}  fingerprint",
    ]
    for fp in summary["fingerprints"]:
        lines.append(
            f"{fp['count']:>8} {fp['total_ms']:>12.1f} {fp['mean_ms']:>10.1f} "
            f"{fp['max_ms']:>10.1f}  {_one_line(fp['fingerprint'])}"
        )
    if summary["fingerprints_overflow"]:
        lines.append(f"(+{summary['fingerprints_overflow']} entries of rarer fingerprints)")
    lines.append("")
    return lines


def _one_line(text: str, width: int = 160) -> str:
    flat = re.sub(_SPACES, " ", text).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"
