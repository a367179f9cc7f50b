"""The imaginary application behind the MongoDB logs: its collections, queries and timings."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

_COLLECTIONS = ("orders", "customers", "inventory", "events", "sessions")
_DATABASES = ("shop", "analytics")


@dataclass(frozen=True, slots=True)
class Operation:
    """One query shape with its literal values: rendered as JSON (4.4+) or shell text (≤4.2)."""

    database: str
    collection: str
    verb: str  # find | aggregate | update | delete | count
    command: dict[str, Any]
    plan: str

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection}"

    @property
    def read(self) -> bool:
        return self.verb in ("find", "aggregate", "count")

    def command_json(self) -> dict[str, Any]:
        return {
            **self.command,
            "lsid": {"id": {"$uuid": "a1b2c3d4-0000-4000-8000-00000000beef"}},
            "$db": self.database,
        }

    def stats(self, rng: random.Random) -> dict[str, Any]:
        """planSummary and the counters mongod prints after it, in its order."""
        examined = rng.randint(1000, 2_000_000)
        stats: dict[str, Any] = {"planSummary": self.plan}
        stats["keysExamined"] = 0 if self.plan == "COLLSCAN" else examined // 10
        stats["docsExamined"] = examined
        if self.read:
            stats["cursorExhausted"] = True
        else:
            stats["nMatched"] = rng.randint(0, 50)
            stats["nModified"] = stats["nMatched"]
        stats["numYields"] = examined // 1000
        stats["nreturned" if self.read else "keysInserted"] = rng.randint(0, 101)
        stats["queryHash"] = f"{rng.getrandbits(32):08X}"
        stats["reslen"] = rng.randint(200, 20000)
        return stats


def operations(rng: random.Random, count: int) -> list[Operation]:
    return [_operation(rng) for _ in range(count)]


def _operation(rng: random.Random) -> Operation:
    database, collection = rng.choice(_DATABASES), rng.choice(_COLLECTIONS)
    verb = rng.choice(("find", "find", "aggregate", "update", "count"))
    value = rng.randint(1, 100000)
    plan = rng.choice(
        ("COLLSCAN", "IXSCAN { status: 1 }", "IXSCAN { customerId: 1, createdAt: -1 }")
    )
    command: dict[str, Any]
    if verb == "find":
        command = {
            "find": collection,
            "filter": {"status": "open", "total": {"$gt": value}},
            "limit": 100,
        }
    elif verb == "aggregate":
        command = {
            "aggregate": collection,
            "pipeline": [
                {"$match": {"customerId": value}},
                {"$group": {"_id": "$sku", "n": {"$sum": 1}}},
            ],
            "cursor": {},
        }
    elif verb == "count":
        command = {"count": collection, "query": {"createdAt": {"$lt": value}}}
    else:
        command = {
            "update": collection,
            "updates": [
                {
                    "q": {"_id": value},
                    "u": {"$set": {"status": "shipped"}},
                    "multi": False,
                    "upsert": False,
                }
            ],
            "ordered": True,
        }
    return Operation(database, collection, verb, command, plan)


def slow_duration(rng: random.Random) -> float:
    """Milliseconds of a slow operation: mostly 100-500 ms (slowms is 100), a long tail."""
    return 100.0 + rng.lognormvariate(4.5, 1.2)


def client_address(rng: random.Random) -> str:
    return f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}:{rng.randint(32768, 60999)}"
