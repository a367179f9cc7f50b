"""Composition root: settings → catalog (migrated), secret box, source factory, store, service.

The only place that chooses concrete backends; everything above receives them ready-made.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dblogpack.catalog import Catalog, open_catalog
from dblogpack.errors import ConfigError
from dblogpack.jobs import JobPolicy, JobQueue, Sweeper, Worker, WorkerPool, default_worker_name
from dblogpack.logcontext import ContextFilter
from dblogpack.model import SourceConfig, SourceType
from dblogpack.secretbox import SecretBox, load_or_create_secret
from dblogpack.service import LinkPolicy, Service
from dblogpack.settings import Settings
from dblogpack.sources.base import LogSource
from dblogpack.stores import parse_store_url
from dblogpack.stores.base import PackageStore

log = logging.getLogger("dblogpack.app")


def _required(value: str | None, parameter: str, source_type: SourceType) -> str:
    if not value:
        raise ConfigError(f"{parameter} is required for SourceType {source_type.value}")
    return value


def build_source(config: SourceConfig) -> LogSource:
    """The LogSource a registered SourceConfig describes (imported lazily: each pulls a driver)."""
    if config.type is SourceType.DIR:
        from dblogpack.sources.local import DirSource

        log_dir = _required(config.log_dir, "LogDir", config.type)
        return DirSource(log_dir, config.log_pattern or "*")
    if config.type is SourceType.POSTGRES:
        from dblogpack.sources.pgsql import PostgresSource

        return PostgresSource(_required(config.dsn, "DSN", config.type))
    from dblogpack.sources.sftp import SftpSource

    return SftpSource(
        _required(config.ssh_host, "SSHHost", config.type),
        config.ssh_port,
        _required(config.ssh_user, "SSHUser", config.type),
        _required(config.ssh_private_key, "SSHPrivateKey", config.type),
        config.ssh_known_host_key,
        _required(config.log_dir, "LogDir", config.type),
        config.log_pattern or "*",
    )


def build_store(settings: Settings) -> PackageStore:
    """The package store `store_url` names (file:///path or s3://bucket/prefix)."""
    kind, params = parse_store_url(settings.store_url)
    if kind == "file":
        from dblogpack.stores.fs import FileStore

        return FileStore(params["root"])
    from dblogpack.stores.s3 import S3Store

    return S3Store(
        params["bucket"],
        params["prefix"],
        params.get("endpoint_url") or settings.s3_endpoint_url or None,
        params.get("region") or settings.s3_region,
        settings.s3_access_key_id or None,
        settings.s3_secret_access_key or None,
    )


@dataclass(slots=True)
class Services:
    """Everything a process of dblogpack runs on, built once from the settings."""

    settings: Settings
    box: SecretBox
    catalog: Catalog
    service: Service
    store: PackageStore
    jobs: JobQueue
    # Credentials of the admin key created by this very start (first start only), else None.
    new_admin_key: dict[str, str] | None

    def close(self) -> None:
        self.catalog.close()


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory, private to this user: it holds the server secret."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def open_services(settings: Settings, *, bootstrap: bool = True) -> Services:
    """Open the catalog (migrations applied) and wire the service; first start makes an admin key.

    The admin key is saved 0600 as `admin-key.json` in the data directory.
    """
    prepare_data_dir(settings)
    box = SecretBox(load_or_create_secret(settings.secret_path))
    catalog = open_catalog(settings.database_url, box)
    store = build_store(settings)
    jobs = build_job_queue(settings, catalog)
    service = Service(
        catalog,
        build_source,
        default_region=settings.default_region,
        default_zone=settings.default_zone,
        jobs=jobs,
        store=store,
        links=build_link_policy(settings, box),
    )
    service.verify_server_secret()
    admin_key = service.bootstrap_admin() if bootstrap else None
    if admin_key is not None:
        save_private_json(settings.admin_key_path, admin_key)
    return Services(settings, box, catalog, service, store, jobs, admin_key)


def build_link_policy(settings: Settings, box: SecretBox) -> LinkPolicy:
    """Download links: the configured base URLs and lifetimes, signed with the server secret."""
    return LinkPolicy(
        public_base_url=settings.public_base_url,
        internal_base_url=settings.internal_base_url,
        signing_key=box.signing_key,
        default_valid_seconds=settings.url_valid_seconds,
        max_valid_seconds=settings.url_valid_seconds_max,
    )


def build_job_queue(settings: Settings, catalog: Catalog) -> JobQueue:
    return JobQueue(catalog, JobPolicy(
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_attempts,
        per_node_concurrency=settings.per_node_concurrency,
        retention_days=settings.retention_days,
    ))


def build_worker_pool(services: Services, threads: int) -> WorkerPool:
    """`threads` package workers and a retention sweeper, to run in this process."""
    workers = [
        # One package per thread, built in that thread: the threads are the parallelism.
        Worker(services.jobs, services.store, build_source, name=default_worker_name(i),
               pipeline_workers=1, compress_level=services.settings.compress_level)
        for i in range(threads)
    ]
    return WorkerPool(workers, Sweeper(services.jobs, services.store))


def save_private_json(path: Path, document: dict[str, str]) -> None:
    """Write `document` readable by this user only, replacing any previous file atomically."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh, indent=2)
        fh.write("\n")
    os.replace(partial, path)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    # uvicorn adds `color_message` (ANSI-coloured duplicate of the message) to its records.
    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "color_message",
    }

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(
            (k, v) for k, v in vars(record).items() if k not in self._STANDARD and k[0] != "_"
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(settings: Settings) -> None:
    """Structured JSON logs on stderr at `log_level`, each line with its RequestUUID/package id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Alembic announces each of its autogenerate plugins at INFO on every start; only the
    # migrations it runs are worth a line in an operator's log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
