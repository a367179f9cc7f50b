"""The product's operations: api, console and cli call these and share nothing else.

`Service` is built in layers, one module each: accounts (keys, projects, audit), resources
(instances, clusters, nodes) and packages (package jobs, links, synchronous log reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dblogpack.catalog import Catalog
from dblogpack.jobs import JobQueue, SourceFactory
from dblogpack.service.accounts import (
    BOOTSTRAP_ACCOUNT_ID,
    MONGODB_ROLES,
    Caller,
    new_id,
)
from dblogpack.service.auditlog import AuditLog
from dblogpack.service.logview import Excerpt
from dblogpack.service.packages import (
    MAX_LINE_CAP,
    LinkPolicy,
    PackageDownload,
    PackageLinks,
    PackageOperations,
)
from dblogpack.service.requests import (
    MIN_DURATION_MAX,
    PACKAGE_TYPES,
    UNIX_MAX,
    mongodb_log_kind,
    pgsql_log_kind,
)
from dblogpack.stores.base import PackageStore

__all__ = [
    "BOOTSTRAP_ACCOUNT_ID",
    "MAX_LINE_CAP",
    "MIN_DURATION_MAX",
    "MONGODB_ROLES",
    "PACKAGE_TYPES",
    "UNIX_MAX",
    "Caller",
    "Excerpt",
    "LinkPolicy",
    "PackageDownload",
    "PackageLinks",
    "Service",
    "SourceFactory",
    "mongodb_log_kind",
    "new_id",
    "pgsql_log_kind",
]


class Service(PackageOperations):
    """dblogpack's operations over one catalog; `source_factory` builds sources to read logs.

    Package downloads need `store` and `links`; without them those operations refuse with a
    ConfigError (a catalog-only service, as some tests and tools open).
    """

    def __init__(
        self,
        catalog: Catalog,
        source_factory: SourceFactory,
        *,
        default_region: str,
        default_zone: str,
        jobs: JobQueue | None = None,
        store: PackageStore | None = None,
        links: LinkPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self._audit_log = AuditLog(catalog)
        self._source_factory = source_factory
        self._defaults = (default_region, default_zone)
        self.jobs = jobs or JobQueue(catalog, clock=clock)
        self._store = store
        self._links = links
        self._clock = clock
