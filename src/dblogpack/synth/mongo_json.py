"""MongoDB 4.4+ structured log (one Relaxed Extended JSON document a line), as mongod writes it.

Field order and the padding after `"s"`, `"c"` and `"id"` follow mongod 4.4's JSON formatter;
attributes follow real messages: 51803 "Slow query", 51801 "Applied op" (slow on a secondary
but not a slow query), 22943/22944 connections, 51800 client metadata, W/E/F with `attr.error`.
"""

from __future__ import annotations

import json
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
from dblogpack.synth.workload import (
    Operation,
    client_address,
    operations,
    slow_duration,
)

DATE_STYLES = ("iso-local", "iso-utc", "number-long")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def line(
    severity: str,
    component: str,
    log_id: int,
    ctx: str,
    msg: str,
    attr: dict[str, Any] | None = None,
    tail: str = "",
) -> str:
    """Everything after the `"t"` field, padded like mongod 4.4 (`tail`: truncated, tags)."""
    text = (
        f'"s":"{severity}"{",":<{4 - len(severity)}}'
        f'"c":"{component}"{",":<{10 - len(component)}}'
        f'"id":{log_id}{",":<{9 - len(str(log_id))}}'
        f'"ctx":"{ctx}","msg":{_json(msg)}'
    )
    if attr is not None:
        text += f',"attr":{_json(attr)}'
    return text + tail + "}\n"


# How often each message appears against its siblings (same order as the templates below):
# start-up warnings, fatal errors and DDL are rare next to connections and queries.
NOISE_WEIGHTS = (1.0, 1.0, 1.0, 0.3, 0.3, 0.05)
PROBLEM_WEIGHTS = (0.05, 1.0, 1.0, 1.0, 0.2, 0.02)


class MongoJsonFormat:
    """mongod 4.4+ `--logpath` output; `date_style` picks how `t.$date` is written."""

    name = "mongo-json"
    precision_ms = 1

    def __init__(self, date_style: str = "iso-local", timezone: str | None = None) -> None:
        if date_style not in DATE_STYLES:
            raise ValueError(f"date_style must be one of {', '.join(DATE_STYLES)}")
        self.date_style = date_style
        self.tz = zone(timezone)
        if date_style == "number-long":
            self.head, self.after_date = b'{"t":{"$date":{"$numberLong":"', b'"}},'
        else:
            self.head, self.after_date = b'{"t":{"$date":"', b'"},'
        self.timestamp: Callable[[int], bytes] = (
            self._epoch_millis
            if date_style == "number-long"
            else MinuteCachedStamp(self._iso_parts)
        )

    def _iso_parts(self, minute: int) -> MinuteParts:
        moment = local(minute, zone("UTC") if self.date_style == "iso-utc" else self.tz)
        suffix = "Z" if self.date_style == "iso-utc" else utc_offset(moment, colon=True)
        return moment.strftime("%Y-%m-%dT%H:%M:").encode(), suffix.encode()

    @staticmethod
    def _epoch_millis(ts_ms: int) -> bytes:
        return str(ts_ms).encode()

    def rotated_name(self, live: Path, ts_ms: int) -> str:
        return mongod_rotated_name(live, ts_ms)

    def templates(self, rng: random.Random) -> list[EntryTemplate]:
        pool: list[EntryTemplate] = []
        for op in operations(rng, 400):
            pool.append(self._slow_query(rng, op))
        for _ in range(120):
            pool.extend(self._connection_events(rng))
        for op in operations(rng, 60):
            pool.append(self._applied_op(rng, op))
        for _ in range(40):
            pool.extend(self._warnings_and_errors(rng))
        return pool

    def _template(
        self, text: str, flags: int = 0, duration: float = float("nan"), weight: float = 1.0
    ) -> EntryTemplate:
        return EntryTemplate((self.head, self.after_date + text.encode()), flags, duration, weight)

    def _slow_query(self, rng: random.Random, op: Operation) -> EntryTemplate:
        millis = int(slow_duration(rng))
        conn = rng.randint(1, 5000)
        attr: dict[str, Any] = {"type": "command" if op.read else "update", "ns": op.namespace}
        if rng.random() < 0.5:
            attr["appName"] = rng.choice(["MongoDB Shell", "orders-api", "reporting"])
        attr["command"] = op.command_json()
        attr.update(op.stats(rng))
        attr["locks"] = _locks(attr["numYields"] + 1, op.read)
        attr["storage"] = (
            {"data": {"bytesRead": rng.randint(0, 1 << 24)}} if rng.random() < 0.3 else {}
        )
        attr["remote"] = client_address(rng)
        attr["protocol"] = "op_msg"
        attr["durationMillis"] = millis
        tail = ""
        if rng.random() < 0.02:
            # A command over maxLogSizeKB: mongod cuts it and says so in "truncated"/"size".
            attr["command"] = {
                "insert": op.collection,
                "documents": [{"_id": 1, "blob": "x" * 900}],
            }
            tail = ',"truncated":{"command":{"documents":{"type":"array","size":1048600}}}'
            tail += ',"size":{"command":1048700}'
        component = "COMMAND" if op.read else "WRITE"
        text = line("I", component, 51803, f"conn{conn}", "Slow query", attr, tail)
        return self._template(text, SLOW, float(millis))

    def _applied_op(self, rng: random.Random, op: Operation) -> EntryTemplate:
        millis = int(slow_duration(rng))
        oplog_entry = {
            "op": "u",
            "ns": op.namespace,
            "ui": {"$uuid": "5f1c2a9e-4b7d-4c3e-8f21-9d0e6b7a3c11"},
            "o": {"$v": 2, "diff": {"u": {"status": "shipped"}}},
            "o2": {"_id": rng.randint(1, 10**6)},
            "ts": {"$timestamp": {"t": 1714564800, "i": 1}},
            "t": 3,
            "v": 2,
            "wall": {"$date": "2024-05-01T12:00:00.000Z"},
        }
        attr = {"command": oplog_entry, "durationMillis": millis}
        worker = f"ReplWriterWorker-{rng.randint(0, 15)}"
        return self._template(
            line("I", "REPL", 51801, worker, "Applied op", attr), 0, float(millis)
        )

    def _connection_events(self, rng: random.Random) -> list[EntryTemplate]:
        conn = rng.randint(1, 5000)
        remote = client_address(rng)
        count = rng.randint(1, 300)
        ids = {"remote": remote, "connectionId": conn, "connectionCount": count}
        driver = rng.choice(
            [("PyMongo", "4.6.1"), ("nodejs", "6.3.0"), ("mongo-java-driver", "4.11.1")]
        )
        doc = {
            "driver": {"name": driver[0], "version": driver[1]},
            "os": {"type": "Linux", "name": "Linux", "architecture": "x86_64", "version": "5.15.0"},
            "platform": "CPython 3.11.6.final.0",
        }
        texts = [
            line("I", "NETWORK", 22943, "listener", "Connection accepted", ids),
            line(
                "I",
                "NETWORK",
                51800,
                f"conn{conn}",
                "client metadata",
                {"remote": remote, "client": f"conn{conn}", "doc": doc},
            ),
            line("I", "NETWORK", 22944, f"conn{conn}", "Connection ended", ids),
            line(
                "I",
                "COMMAND",
                20883,
                f"conn{conn}",
                "Interrupted operation as its client disconnected",
                {"opId": rng.randint(1, 1 << 20)},
            ),
            line(
                "D1",
                "COMMAND",
                21965,
                f"conn{conn}",
                "About to run the command",
                {"commandArgs": {"ping": 1, "$db": "admin"}},
            ),
            line(
                "I",
                "STORAGE",
                20320,
                f"conn{conn}",
                "createCollection",
                {
                    "namespace": f"shop.tmp{conn}",
                    "uuidDisposition": "generated",
                    "uuid": {"$uuid": "3b2d6f4e-8c1a-4e8e-9a53-0c6a1f0f2b7d"},
                    "options": {},
                },
            ),
        ]
        return [
            self._template(text, weight=weight)
            for text, weight in zip(texts, NOISE_WEIGHTS, strict=True)
        ]

    def _warnings_and_errors(self, rng: random.Random) -> list[EntryTemplate]:
        conn = f"conn{rng.randint(1, 5000)}"
        key = rng.randint(1, 10**6)
        texts = [
            line(
                "W",
                "CONTROL",
                22120,
                "initandlisten",
                "Access control is not enabled for the database. Read and write access to data"
                " and configuration is unrestricted",
                None,
                ',"tags":["startupWarnings"]',
            ),
            line(
                "W",
                "COMMAND",
                20525,
                conn,
                "Failed to gather storage statistics for slow operation",
                {"opId": key, "error": "lock acquire timeout"},
            ),
            line(
                "W",
                "QUERY",
                23799,
                conn,
                "Aggregate command executor error",
                {
                    "error": {
                        "code": 292,
                        "codeName": "QueryExceededMemoryLimitNoDiskUseAllowed",
                        "errmsg": "Exceeded memory limit for $group, but didn't allow external"
                        " sort. Pass allowDiskUse:true to opt in.",
                    },
                    "stats": {},
                    "cmd": {"aggregate": "orders", "pipeline": [{"$group": {"_id": "$sku"}}]},
                },
            ),
            line(
                "E",
                "WRITE",
                23798,
                conn,
                "Plan executor error during update",
                {
                    "error": {
                        "code": 11000,
                        "codeName": "DuplicateKey",
                        "errmsg": f"E11000 duplicate key error collection: shop.orders index: _id_"
                        f" dup key: {{ _id: {key} }}",
                    }
                },
            ),
            line(
                "E",
                "STORAGE",
                22435,
                "Checkpointer",
                "WiredTiger error",
                {
                    "error": 28,
                    "message": "[1714564800:123456][1:0x7f3a], file:collection-7.wt,"
                    " WT_SESSION.checkpoint: No space left on device",
                },
            ),
            line(
                "F",
                "-",
                23089,
                conn,
                "Fatal assertion",
                {"msgid": 40507, "file": "src/mongo/db/repl/oplog.cpp", "line": 1234},
            ),
        ]
        return [
            self._template(text, ERROR, weight=weight)
            for text, weight in zip(texts, PROBLEM_WEIGHTS, strict=True)
        ]


def _locks(acquired: int, read: bool) -> dict[str, Any]:
    mode = "r" if read else "w"
    count = {"acquireCount": {mode: acquired}}
    return {
        "ReplicationStateTransition": {"acquireCount": {"w": acquired}},
        "Global": {"acquireCount": {mode: acquired}},
        "Database": count,
        "Collection": count,
        "Mutex": {"acquireCount": {"r": 1}},
    }
