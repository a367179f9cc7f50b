"""MongoDB ≤ 4.2 text log: `<time> <sev> <component> [ctx] msg`, with its three time formats.

Component names are padded to 8 columns as mongod does; 4.0/4.2 also pad the severity to two
(`I  COMMAND  [conn1]`), 3.x does not (`I COMMAND  [conn1]`). Slow operations end in `<N>ms`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dblogpack.synth.generate import EntryTemplate
from dblogpack.synth.record import ERROR, SLOW
from dblogpack.synth.timestamps import (
    MinuteCachedStamp,
    MinuteParts,
    local,
    mongod_rotated_name,
    utc_offset,
    zone,
)
from dblogpack.synth.workload import Operation, client_address, operations, slow_duration

TIME_FORMATS = ("iso8601-local", "iso8601-utc", "ctime")


def shell(value: Any) -> str:
    """A value as mongod's legacy log prints BSON: `{ find: "c", filter: { a: 1.0 } }`."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key}: {shell(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[ " + ", ".join(shell(item) for item in value) + " ]" if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


# How often each message appears against its siblings (same order as the templates below):
# start-up warnings, fatal errors and DDL are rare next to connections and queries.
NOISE_WEIGHTS = (1.0, 1.0, 1.0, 0.1, 1.0, 1.0)
PROBLEM_WEIGHTS = (0.05, 1.0, 1.0, 0.2, 0.02)


class MongoLegacyFormat:
    """mongod ≤ 4.2 `--logpath` output with `--timeStampFormat` of `time_format`."""

    name = "mongo-legacy"
    precision_ms = 1

    def __init__(
        self, time_format: str = "iso8601-local", timezone: str | None = None, version: str = "4.2"
    ) -> None:
        if time_format not in TIME_FORMATS:
            raise ValueError(f"time_format must be one of {', '.join(TIME_FORMATS)}")
        self.time_format = time_format
        self.tz = zone(timezone)
        self.severity_width = 2 if version >= "4.0" else 1
        self.timestamp: Callable[[int], bytes] = MinuteCachedStamp(self._parts)

    def _parts(self, minute: int) -> MinuteParts:
        if self.time_format == "iso8601-utc":
            return local(minute, zone("UTC")).strftime("%Y-%m-%dT%H:%M:").encode(), b"Z"
        moment = local(minute, self.tz)
        if self.time_format == "ctime":
            day = f"{moment.day:2d}"
            return moment.strftime(f"%a %b {day} %H:%M:").encode(), b""
        offset = utc_offset(moment, colon=False)
        return moment.strftime("%Y-%m-%dT%H:%M:").encode(), offset.encode()

    def rotated_name(self, live: Path, ts_ms: int) -> str:
        return mongod_rotated_name(live, ts_ms)

    def line(self, severity: str, component: str, ctx: str, msg: str) -> str:
        """Everything after the timestamp."""
        return f" {severity:<{self.severity_width}} {component:<8} [{ctx}] {msg}\n"

    def templates(self, rng: random.Random) -> list[EntryTemplate]:
        pool: list[EntryTemplate] = []
        for op in operations(rng, 400):
            pool.append(self._slow(rng, op))
        for _ in range(120):
            pool.extend(self._noise(rng))
        for _ in range(40):
            pool.extend(self._warnings_and_errors(rng))
        return pool

    def _template(
        self, text: str, flags: int = 0, duration: float = float("nan"), weight: float = 1.0
    ) -> EntryTemplate:
        return EntryTemplate((b"", text.encode()), flags, duration, weight)

    def _slow(self, rng: random.Random, op: Operation) -> EntryTemplate:
        millis = int(slow_duration(rng))
        conn = f"conn{rng.randint(1, 5000)}"
        stats = op.stats(rng)
        counters = " ".join(
            f"{key}:{_counter(value)}" for key, value in stats.items() if key != "planSummary"
        )
        locks = (
            "locks:{ Global: { acquireCount: { r: 2 } }, Database: { acquireCount: { r: 1 } },"
            " Collection: { acquireCount: { r: 1 } } }"
        )
        command = {key: value for key, value in op.command_json().items() if key != "lsid"}
        app = ' appName: "orders-api"' if rng.random() < 0.5 else ""
        if op.read or rng.random() < 0.5:
            msg = (
                f"command {op.namespace}{app} command: {op.verb} {shell(command)}"
                f" planSummary: {stats['planSummary']} {counters} {locks}"
                f" protocol:op_msg {millis}ms"
            )
            component = "COMMAND"
        else:
            update = op.command["updates"][0]
            msg = (
                f"update {op.namespace}{app} command: {shell({'q': update['q'], 'u': update['u']})}"
                f" planSummary: {stats['planSummary']} {counters} {locks} {millis}ms"
            )
            component = "WRITE"
        return self._template(self.line("I", component, conn, msg), SLOW, float(millis))

    def _noise(self, rng: random.Random) -> list[EntryTemplate]:
        number = rng.randint(1, 5000)
        remote = client_address(rng)
        open_count = rng.randint(1, 300)
        metadata = shell(
            {
                "driver": {"name": "PyMongo", "version": "3.9.0"},
                "os": {"type": "Linux", "name": "Linux", "architecture": "x86_64"},
                "platform": "CPython 3.7.4.final.0",
            }
        )
        applied = shell(
            {
                "op": "u",
                "ns": "shop.orders",
                "o": {"$set": {"status": "shipped"}},
                "o2": {"_id": number},
            }
        )
        texts = [
            self.line(
                "I",
                "NETWORK",
                "listener",
                f"connection accepted from {remote} #{number} ({open_count} connections now open)",
            ),
            self.line(
                "I",
                "NETWORK",
                f"conn{number}",
                f"received client metadata from {remote} conn{number}: {metadata}",
            ),
            self.line(
                "I",
                "NETWORK",
                f"conn{number}",
                f"end connection {remote} ({open_count - 1} connections now open)",
            ),
            self.line("I", "COMMAND", f"conn{number}", f"CMD: drop shop.tmp{number}"),
            # A secondary applying a slow oplog entry ends in "ms" too, but REPL is not slow.
            self.line(
                "I",
                "REPL",
                f"repl writer worker {number % 16}",
                f"applied op: CRUD {applied}, took {int(slow_duration(rng))}ms",
            ),
            self.line(
                "I",
                "ACCESS",
                f"conn{number}",
                "Successfully authenticated as principal app on shop from client " + remote,
            ),
        ]
        return [
            self._template(text, weight=weight)
            for text, weight in zip(texts, NOISE_WEIGHTS, strict=True)
        ]

    def _warnings_and_errors(self, rng: random.Random) -> list[EntryTemplate]:
        conn = f"conn{rng.randint(1, 5000)}"
        texts = [
            self.line(
                "W",
                "CONTROL",
                "initandlisten",
                "** WARNING: Access control is not enabled for the database.",
            ),
            self.line(
                "W",
                "COMMAND",
                conn,
                "Unable to gather storage statistics for a slow operation"
                " due to lock aquire timeout",
            ),
            self.line(
                "E",
                "QUERY",
                conn,
                "Plan executor error during find command: FAILURE, status: OperationFailed:"
                " Sort operation used more than the maximum 33554432 bytes of RAM.",
            ),
            self.line(
                "E",
                "STORAGE",
                "WTCheckpointThread",
                "WiredTiger error (28) [1551434400:123456][1:0x7f3a], file:collection-7.wt,"
                " WT_SESSION.checkpoint: No space left on device",
            ),
            self.line(
                "F",
                "-",
                conn,
                "Invariant failure opCtx->lockState()->isW() src/mongo/db/db.cpp 1234",
            ),
        ]
        return [
            self._template(text, ERROR, weight=weight)
            for text, weight in zip(texts, PROBLEM_WEIGHTS, strict=True)
        ]


def _counter(value: object) -> str:
    # Counters print bare: cursorExhausted:1 queryHash:3918E532
    return str(int(value)) if isinstance(value, bool) else str(value)
