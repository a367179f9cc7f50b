"""The HTTP surface of `dblogpack serve`: `/healthz`, `/metrics`, downloads and the API at `/`.

`build_http_app` assembles it from ready-made services; `run_server` runs it with the in-process
workers. The CLI only parses flags and calls these.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from dblogpack.api import ApiOptions, create_asgi_app, download_routes
from dblogpack.app import Services, build_worker_pool
from dblogpack.settings import Settings

log = logging.getLogger("dblogpack.server")


def build_http_app(services: Services, settings: Settings) -> Starlette:
    """The whole HTTP surface of `serve`: `/healthz`, `/metrics`, downloads, then the API at `/`."""

    def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> JSONResponse:
        # Runs in the thread pool (sync endpoint): ready means the catalog answers.
        try:
            with services.catalog.read() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            log.warning("health check failed: the metadata database does not answer: %s", exc)
            return JSONResponse({"status": "metadata database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    options = ApiOptions(max_body_bytes=settings.max_body_bytes, rate_limit=settings.rate_limit)
    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *download_routes(services.service),
        Mount("/", app=create_asgi_app(services.service, options)),
    ])


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
