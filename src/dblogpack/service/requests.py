"""The rules a package or log request must follow before anything is read or queued: log
types, package names, time windows, nodes. Pure checks: they raise InvalidParameter, saying why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from dblogpack.catalog.records import MongoNode
from dblogpack.errors import InvalidParameter
from dblogpack.model import LogKind, TimeWindow

PACKAGE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MONGODB_MAX_AGE = 7 * 24 * 3600
MONGODB_MAX_SPAN = 24 * 3600
# Input bounds the API and the console both check, each in its own words.
UNIX_MAX = 10_000_000_000  # year 2286: any later "unix time" is a unit mistake (ms)
MIN_DURATION_MAX = 86_400_000  # a day, in ms
_MONGODB_LOG_TYPES = {
    "slowlog": LogKind.SLOW,
    "slow_log": LogKind.SLOW,
    "errorlog": LogKind.ERROR,
    "error_log": LogKind.ERROR,
}
_PGSQL_LOG_TYPES = {"slow": LogKind.SLOW, "error": LogKind.ERROR, "all": LogKind.ALL}
PACKAGE_TYPES = {LogKind.SLOW: "SlowLog", LogKind.ERROR: "ErrorLog", LogKind.ALL: "All"}


def mongodb_log_kind(text: str) -> LogKind:
    """`SlowLog`/`ErrorLog`, any case, `Slow_Log`/`Error_Log` too; 230 otherwise."""
    found = _MONGODB_LOG_TYPES.get(text.strip().lower())
    if found is None:
        raise InvalidParameter(
            f"LogType must be SlowLog or ErrorLog (any case; Slow_Log and Error_Log are accepted "
            f"too), got {text[:64]!r}"
        )
    return found


def pgsql_log_kind(text: str | None) -> LogKind:
    """`slow` or `error` (any case); omitted means every entry."""
    if not text:
        return LogKind.ALL
    found = _PGSQL_LOG_TYPES.get(text.strip().lower())
    if found is None:
        raise InvalidParameter(
            f"LogType must be slow or error (or omitted: all), got {text[:64]!r}"
        )
    return found


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_package_name(name: str, parameter: str) -> str:
    if not PACKAGE_NAME.fullmatch(name):
        raise InvalidParameter(
            f"{parameter} must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got {name[:80]!r}"
        )
    return name


def check_window(begin: float | None, end: float | None, names: tuple[str, str]) -> TimeWindow:
    if begin is not None and end is not None and end <= begin:
        raise InvalidParameter(
            f"{names[1]} must be after {names[0]}: got {names[0]}={begin:g} ({_iso(begin)}), "
            f"{names[1]}={end:g} ({_iso(end)})"
        )
    return TimeWindow(begin, end)


def check_mongodb_window(begin: int, end: int, now: float) -> TimeWindow:
    """BackupUMongoDBLog's window rules: at most 7 days back, End after Begin, at most 24 h."""
    earliest = int(now) - MONGODB_MAX_AGE
    if begin < earliest:
        raise InvalidParameter(
            f"Begin {begin} ({_iso(begin)}) is more than 7 days (604800 s) ago: the earliest "
            f"Begin allowed now is {earliest} ({_iso(earliest)})"
        )
    window = check_window(begin, end, ("Begin", "End"))
    if end - begin > MONGODB_MAX_SPAN:
        raise InvalidParameter(
            f"End - Begin is {end - begin} s ({(end - begin) / 3600:.1f} h): one package covers "
            f"at most 86400 s (24 h); split the window into several packages"
        )
    return window


def node_of(nodes: Sequence[MongoNode], node_id: str, cluster_id: str) -> MongoNode:
    for node in nodes:
        if node.node_id == node_id:
            return node
    known = ", ".join(n.node_id for n in nodes) or "none registered"
    raise InvalidParameter(
        f"NodeId {node_id[:64]!r} is not a node of cluster {cluster_id}: its nodes are {known}"
    )


def refuse_slow_log_on_mongos(node: MongoNode, kind: LogKind) -> None:
    if node.role == "mongos" and kind is LogKind.SLOW:
        raise InvalidParameter(
            f"SlowLog is not available on node {node.node_id}: it is a mongos router, which logs "
            "no slow queries of its own; ask for ErrorLog, or for SlowLog of a shard's node"
        )
