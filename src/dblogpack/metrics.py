"""Prometheus metrics of one dblogpack process: the instruments the API and the workers move,
and a collector that reads package states from the catalog at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cache

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

API_REQUESTS = Counter(
    "dblogpack_api_requests", "Signed API calls answered, by Action and RetCode.",
    ["action", "ret_code"],
)
API_REQUEST_SECONDS = Histogram(
    "dblogpack_api_request_duration_seconds", "Time to answer an API call, by Action.",
    ["action"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PACKAGE_BYTES_SCANNED = Counter(
    "dblogpack_package_bytes_scanned", "Log bytes read by this process's workers for packages.",
)
PACKAGE_BYTES_WRITTEN = Counter(
    "dblogpack_package_bytes_written", "Package (.tar.gz) bytes this process's workers published.",
)
JOB_SECONDS = Histogram(
    "dblogpack_job_duration_seconds", "Time a worker spent on one package attempt, by outcome.",
    ["outcome"], buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)

# Action names come from callers: anything not a known action shares one label value, so a
# scanner sending random names cannot grow the series without bound.
UNKNOWN_ACTION = "(unknown)"


def observe_api_call(action: str, ret_code: int, seconds: float) -> None:
    """Count one answered call and its latency (`action` already checked against the known)."""
    requests, latency = _api_series(action, ret_code)
    requests.inc()
    latency.observe(seconds)


@cache  # bounded: known actions x RetCodes; labels() would take its lock on every call
def _api_series(action: str, ret_code: int) -> tuple[Counter, Histogram]:
    return (API_REQUESTS.labels(action=action, ret_code=str(ret_code)),
            API_REQUEST_SECONDS.labels(action=action))


def observe_package(outcome: str, seconds: float, bytes_scanned: int, bytes_written: int) -> None:
    """Record one package attempt: its duration and, when it produced one, what it moved."""
    JOB_SECONDS.labels(outcome=outcome).observe(seconds)
    PACKAGE_BYTES_SCANNED.inc(bytes_scanned)
    PACKAGE_BYTES_WRITTEN.inc(bytes_written)


class CatalogCollector(Collector):
    """Gauges computed from the metadata database when /metrics is scraped.

    `count_by_state` returns {state: packages}; `queue_depth` the packages waiting for a worker.
    """

    def __init__(
        self, count_by_state: Callable[[], Mapping[str, int]], queue_depth: Callable[[], int]
    ) -> None:
        self._count_by_state = count_by_state
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = GaugeMetricFamily(
            "dblogpack_packages", "Packages in the catalog, by State.", labels=["state"]
        )
        for state, count in sorted(self._count_by_state().items()):
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily(
            "dblogpack_queue_depth", "Packages Running that no worker holds a lease on.",
            value=self._queue_depth(),
        )


_installed: list[CatalogCollector] = []


def install_catalog_collector(collector: CatalogCollector) -> None:
    """Make `collector` the one the default registry scrapes (replacing an earlier one)."""
    for previous in _installed:
        REGISTRY.unregister(previous)
    _installed[:] = [collector]
    REGISTRY.register(collector)
