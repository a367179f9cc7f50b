"""Per-key request rate limit (RetCode 153): one token bucket per PublicKey, in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `rate` requests per second per key on average and bursts of `burst`.

    Only authenticated keys get a bucket, so the table is bounded by the number of real keys.
    A rate <= 0 disables limiting.
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst if burst is not None else max(1.0, 2.0 * rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token from `key`'s bucket; False when it is empty."""
        if self._rate <= 0:
            return True
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(self._burst, now))
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True
