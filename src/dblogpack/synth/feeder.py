"""Continuous mode: append entries to a live log file in real time, rotating it when full.

This is how a demo node's log directory gets fresh entries to package.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dblogpack.synth.generate import EntryRenderer, Mix, Output, SynthFormat, write_rotating
from dblogpack.synth.record import Record


def feed(
    fmt: SynthFormat,
    path: str | Path,
    *,
    rate: float = 50.0,
    seed: int = 0,
    mix: Mix | None = None,
    rotate_bytes: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    tick_s: float = 0.2,
    clock: Callable[[], float] = time.time,
) -> int:
    """Append about `rate` entries a second to `path`, stamped with the current time.

    Runs until `stop` is set or `duration_s` has passed; returns the number of entries written.
    Entries are flushed every tick so readers see them at once.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(seed)
    renderer = EntryRenderer(fmt, rng, mix or Mix())
    out = Output(fmt, path, Record(keep=False), append=True)
    stop = stop or threading.Event()
    started = last = clock()
    owed = 0.0
    written = 0
    try:
        while not stop.is_set() and (duration_s is None or clock() - started < duration_s):
            stop.wait(tick_s)
            now = clock()
            owed += (now - last) * rate
            count = int(owed)
            owed -= count
            if count:
                stamps = _spread(last, now, count, fmt.precision_ms)
                rendered, flags, durations = renderer.render(stamps)
                write_rotating(out, rotate_bytes, rendered, stamps, flags, durations)
                out.stream.flush()
                written += count
            last = now
    finally:
        out.close()
    return written


def _spread(begin: float, end: float, count: int, precision_ms: int) -> list[int]:
    """`count` millisecond timestamps evenly inside (begin, end], at the log's precision."""
    step = (end - begin) * 1000.0 / count
    base = begin * 1000.0
    stamps = [int(base + step * (i + 1)) for i in range(count)]
    return [ts - ts % precision_ms for ts in stamps]


def feed_many(
    targets: Sequence[tuple[SynthFormat, str | Path]],
    *,
    rate: float = 50.0,
    seed: int = 0,
    mix: Mix | None = None,
    rotate_bytes: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Feed several live files at once (a cluster's nodes), one thread each, seeds seed, seed+1…

    Returns the entries written in all; a failure in one feeder stops them all and is raised.
    """
    stop = stop or threading.Event()
    counts: list[int] = [0] * len(targets)
    failures: list[BaseException] = []

    def run(index: int, fmt: SynthFormat, path: str | Path) -> None:
        try:
            counts[index] = feed(
                fmt,
                path,
                rate=rate,
                seed=seed + index,
                mix=mix,
                rotate_bytes=rotate_bytes,
                duration_s=duration_s,
                stop=stop,
            )
        except BaseException as exc:  # handed to the caller's thread below
            failures.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=run, args=(i, fmt, path), daemon=True)
        for i, (fmt, path) in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    if failures:
        raise failures[0]
    return sum(counts)
