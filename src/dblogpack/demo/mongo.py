"""The demo's MongoDB cluster: a primary, a secondary and a mongos whose log directories are fed
continuously with MongoDB 4.4+ JSON entries (synth's feeder), rotated like mongod does it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from dblogpack.synth import MongoJsonFormat, feed_many
from dblogpack.synth.generate import Mix

log = logging.getLogger("dblogpack.demo")

# Role, and the file its process writes (mongos logs to mongos.log).
NODES = (("primary", "mongod.log"), ("secondary", "mongod.log"), ("mongos", "mongos.log"))
ENTRIES_PER_SECOND = 4.0
ROTATE_BYTES = 1 << 20
KEEP_ROTATED = 20
# Richer in what the demo is about than a real node (where slow queries are ~5 % of the log).
DEMO_MIX = Mix(slow=0.25, error=0.25, other=0.5)


@dataclass(frozen=True, slots=True)
class DemoNode:
    role: str
    log_dir: Path
    log_name: str

    @property
    def pattern(self) -> str:
        """The glob of the live file and its rotated siblings (`mongod.log.<UTC time>`)."""
        return self.log_name + "*"


def demo_nodes(mongo_dir: Path) -> list[DemoNode]:
    return [DemoNode(role, mongo_dir / role, name) for role, name in NODES]


class MongoFeeders:
    """One feeding thread per node (via `feed_many`), started and stopped together."""

    def __init__(self, nodes: list[DemoNode]) -> None:
        self.nodes = nodes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-mongo-feeders", daemon=True)

    def start(self) -> None:
        for node in self.nodes:
            node.log_dir.mkdir(parents=True, exist_ok=True)
            # The file must exist before registration checks the directory answers.
            (node.log_dir / node.log_name).touch()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        targets = [(MongoJsonFormat("iso-local"), node.log_dir / node.log_name)
                   for node in self.nodes]
        try:
            feed_many(targets, rate=ENTRIES_PER_SECOND, mix=DEMO_MIX, rotate_bytes=ROTATE_BYTES,
                      stop=self._stop, seed=0)
        except OSError as exc:
            log.error("demo MongoDB feeders stopped: cannot write a node's log: %s", exc)


def prune_oldest(directory: Path, pattern: str, keep: int) -> int:
    """Delete all but the `keep` newest files matching `pattern`; how many were deleted.

    A demo runs for days: its rotated logs must not fill the disk.
    """
    try:
        files = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime)
    except FileNotFoundError:
        return 0  # a file rotated away while sorting: the next round catches it
    doomed = files[:-keep] if keep else files
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)
