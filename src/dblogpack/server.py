"""The HTTP surface of `dblogpack serve`: `/healthz`, `/metrics`, downloads and the API at `/`.

`build_http_app` assembles it from ready-made services; `run_server` runs it with the in-process
workers; `serve_worker_metrics` gives a `dblogpack worker` its `/metrics`. The CLI calls these.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from dblogpack.api import ApiOptions, create_asgi_app, download_routes
from dblogpack.app import Services, build_worker_pool
from dblogpack.console import console_routes
from dblogpack.errors import ConfigError, StoreError
from dblogpack.metrics import CatalogCollector, install_catalog_collector
from dblogpack.settings import Settings

log = logging.getLogger("dblogpack.server")
T = TypeVar("T")
STORE_PROBE_TTL = 5.0  # seconds a successful store write probe is trusted


def build_http_app(services: Services, settings: Settings) -> Starlette:
    """The whole HTTP surface of `serve`: `/healthz`, `/metrics`, downloads, then the API at `/`."""
    health = HealthCheck(services)
    _collect_catalog_gauges(services)

    def healthz(request: Request) -> JSONResponse:
        # A sync endpoint: Starlette runs it in the thread pool, where blocking is fine.
        healthy, report = health.report()
        return JSONResponse(report, status_code=200 if healthy else 503)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    options = ApiOptions(max_body_bytes=settings.max_body_bytes, rate_limit=settings.rate_limit)
    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *download_routes(services.service),
        *console_routes(services),
        Mount("/", app=create_asgi_app(services.service, options)),
    ])


def serve_worker_metrics(services: Services, settings: Settings) -> None:
    """For `dblogpack worker`: `/metrics` on `host:metrics_port` from a daemon thread (0: none)."""
    if settings.metrics_port <= 0:
        return
    _collect_catalog_gauges(services)
    try:
        start_http_server(settings.metrics_port, addr=settings.host)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve /metrics on {settings.host}:{settings.metrics_port}: {exc.strerror}"
            " (choose another metrics_port)"
        ) from exc
    log.info("metrics at http://%s:%d/metrics", settings.host, settings.metrics_port)


def _collect_catalog_gauges(services: Services) -> None:
    install_catalog_collector(CatalogCollector(
        _answer_or(services.jobs.state_counts, {}), _answer_or(services.jobs.depth, 0)
    ))


class HealthCheck:
    """Whether the metadata database answers and the package store takes writes.

    The store check writes and deletes a probe object, so a success is trusted for
    `store_ttl` seconds (load balancers poll often); a failure is probed again each time.
    """

    def __init__(
        self, services: Services, store_ttl: float = STORE_PROBE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services, self._store_ttl, self._clock = services, store_ttl, clock
        self._store_ok_until = float("-inf")
        self._lock = threading.Lock()

    def report(self) -> tuple[bool, dict[str, str]]:
        """(healthy, {"status", "database", "store"}): each part "ok" or what is wrong."""
        parts = {"database": self._database(), "store": self._store()}
        healthy = all(value == "ok" for value in parts.values())
        return healthy, {"status": "ok" if healthy else "unavailable", **parts}

    def _database(self) -> str:
        try:
            with self._services.catalog.read() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            log.warning("health check: the metadata database does not answer: %s", exc)
            return f"metadata database does not answer: {type(exc).__name__}"
        return "ok"

    def _store(self) -> str:
        with self._lock:  # one probe at a time, however many checks arrive together
            if self._clock() < self._store_ok_until:
                return "ok"
            try:
                self._services.store.check()
            except StoreError as exc:
                log.warning("health check: %s", exc.message)
                return exc.message
            self._store_ok_until = self._clock() + self._store_ttl
            return "ok"


def _answer_or(query: Callable[[], T], fallback: T) -> Callable[[], T]:
    """`query`, answering `fallback` when the database is down: /metrics must still answer."""

    def guarded() -> T:
        try:
            return query()
        except SQLAlchemyError as exc:
            log.warning("metrics: the metadata database does not answer: %s", exc)
            return fallback

    return guarded


def run_server(services: Services, settings: Settings) -> None:
    """Serve HTTP on `settings.host:port` with `settings.workers` in-process package workers.

    Returns after SIGTERM/SIGINT, once the workers have stopped; the caller closes `services`.
    """
    services.store.check()
    if services.new_admin_key is not None:
        announce_admin_key(services)
    config = uvicorn.Config(
        build_http_app(services, settings), host=settings.host, port=settings.port,
        log_config=None, access_log=False, server_header=False,
    )
    pool = build_worker_pool(services, settings.workers) if settings.workers > 0 else None
    if pool is not None:
        pool.start()
    try:
        # uvicorn owns SIGTERM/SIGINT here: run() returns on them, then the pool stops.
        uvicorn.Server(config).run()
    finally:
        if pool is not None:
            # Packages under way get a short grace, then go back to the queue for others.
            pool.stop(grace_seconds=10)


def announce_admin_key(services: Services) -> None:
    """Tell the operator where the first admin key is (its secret only on a terminal)."""
    # Captured output (journald, CI logs) must never hold a secret. The file has it either way.
    key = services.new_admin_key or {}
    path = services.settings.admin_key_path
    print(f"dblogpack: created the first admin key, saved in {path} (mode 0600)", flush=True)
    print(f"  PublicKey: {key['PublicKey']}\n  ProjectId: {key['ProjectId']}", flush=True)
    if sys.stdout.isatty():
        print(f"  PrivateKey: {key['PrivateKey']}  (shown once)", flush=True)
