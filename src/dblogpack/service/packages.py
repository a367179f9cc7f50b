"""Package operations (DESIGN §4): request a package of a PostgreSQL instance or a MongoDB node,
list, link, download and delete packages, and read logs synchronously. Every rule a request must
follow is checked here, so the API and the console refuse the same things in the same words.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from dblogpack.catalog import resources as resource_queries
from dblogpack.catalog.packages import PackageRecord
from dblogpack.errors import (
    ConfigError,
    DblogpackError,
    InvalidParameter,
    MissingParameter,
    NotFound,
    SourceError,
    StateConflict,
    StoreError,
)
from dblogpack.jobs import JobQueue, delete_package
from dblogpack.links import sign_download, verify_download
from dblogpack.model import (
    FormatConfig,
    LogFile,
    LogKind,
    PackageSpec,
    PackageState,
    Query,
    ResourceKind,
    SourceConfig,
    TimeWindow,
)
from dblogpack.service import logview
from dblogpack.service.accounts import Caller, _storable, new_id
from dblogpack.service.logview import Excerpt
from dblogpack.service.requests import (
    check_mongodb_window,
    check_package_name,
    check_window,
    node_of,
    refuse_slow_log_on_mongos,
)
from dblogpack.service.resources import ResourceOperations
from dblogpack.sources.base import LogSource
from dblogpack.stores.base import PackageStore

MAX_LINE_CAP = 10_000
EXCERPT_MAX_BYTES = 2 * 1024 * 1024
EXCERPT_SCAN_BUDGET = 128 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """How download links are made: base URLs, lifetimes, and the key signing served links."""

    public_base_url: str
    internal_base_url: str
    signing_key: bytes
    default_valid_seconds: int = 3600
    max_valid_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class PackageLinks:
    """Where a package can be downloaded from outside (public) and inside the private network."""

    public: str
    internal: str


@dataclass(frozen=True, slots=True)
class PackageDownload:
    """A finished package behind a valid link, ready to be streamed."""

    filename: str
    size: int
    checksum: str
    key: str
    store: PackageStore

    def open(self) -> BinaryIO:
        return self.store.open(self.key)


def _unfinished(package: PackageRecord, what: str) -> StateConflict:
    if package.state is PackageState.RUNNING:
        detail = f"still being built (Package_Running, Progress {package.progress}%)"
    else:
        detail = package.state.value + (f": {package.message}" if package.message else "")
    return StateConflict(f"package {package.id} is {detail}; {what}")


def _source_unavailable(label: str, exc: DblogpackError) -> InvalidParameter:
    return InvalidParameter(f"the log source of {label} does not answer: {exc.message}")


def summary_of(raw: BinaryIO) -> dict[str, Any] | None:
    """summary.json of a package file, streamed through (it follows the logs); None without."""
    # A package built by several workers is several gzip members one after the other (standard
    # gzip); tarfile's own "r|gz" stream stops at the end of the first, so it is read through
    # a reader of every member.
    with raw, gzip.GzipFile(fileobj=raw) as unzipped, tarfile.open(
        fileobj=unzipped, mode="r|"
    ) as tar:
        for member in tar:
            if member.name == "summary.json" and (handle := tar.extractfile(member)):
                document: dict[str, Any] = json.loads(handle.read())
                return document
    return None


class PackageOperations(ResourceOperations):
    """Packages and synchronous log reads (the third layer of `Service`)."""

    jobs: JobQueue
    _store: PackageStore | None
    _links: LinkPolicy | None
    _clock: Callable[[], float]

    # -- PostgreSQL ----------------------------------------------------------------------------

    def backup_pgsql_log(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str, *, name: str, files: Sequence[str], log_type: LogKind,
        begin: float | None, end: float | None, min_duration_ms: float | None,
    ) -> PackageRecord:
        """Queue a package of an instance's `files` (names ListUPgSQLLog gives); its row.

        The very same request again returns the same package (safe retries).
        """
        instance = self.get_pgsql_instance(caller, project_id, region, zone, instance_id)
        name = check_package_name(name, "BackupName")
        window = check_window(begin, end, ("BeginTime", "EndTime"))
        # Last: the only check that asks the instance's source.
        chosen = self._known_pgsql_files(instance.instance_id, files)
        spec = PackageSpec(
            id=new_id("pglog-", 12), name=name, kind=ResourceKind.PGSQL,
            resource_id=instance.instance_id, node_id=None, log_type=log_type,
            window=window, min_duration_ms=min_duration_ms, files=chosen,
        )
        return self.jobs.enqueue(spec, project_id=instance.project_id)

    def _known_pgsql_files(self, instance_id: str, files: Sequence[str]) -> tuple[str, ...]:
        wanted = tuple(dict.fromkeys(files))  # repeated names count once, order kept
        if not wanted:
            raise MissingParameter("Missing parameter BackupFile: name one or more log files")
        listed = {f.name for f in self._list_source_files(instance_id)}
        for name in wanted:
            if name not in listed:
                raise InvalidParameter(
                    f"BackupFile {name[:128]!r} is not a log file of instance {instance_id}: "
                    "use a Name that ListUPgSQLLog returns"
                )
        return wanted

    def _list_source_files(self, instance_id: str) -> list[LogFile]:
        with self._open_source(self.pgsql_source(instance_id), f"instance {instance_id}") as source:
            return source.list_files()

    def list_pgsql_logs(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str, begin: float | None, end: float | None,
    ) -> list[LogFile]:
        """The instance's log files whose entries overlap the window, with first/last times."""
        instance = self.get_pgsql_instance(caller, project_id, region, zone, instance_id)
        window = check_window(begin, end, ("BeginTime", "EndTime"))
        config = self.pgsql_source(instance.instance_id)
        return self._read_source(
            config, f"instance {instance.instance_id}",
            lambda source, fmt: logview.files_overlapping(source, fmt, window),
        )

    def get_pgsql_instance_log(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str, *, log_type: LogKind, begin: float | None, end: float | None,
        max_line: int,
    ) -> Excerpt:
        """The first `max_line` lines (capped) of the window's entries, read now."""
        instance = self.get_pgsql_instance(caller, project_id, region, zone, instance_id)
        window = check_window(begin, end, ("BeginTime", "EndTime"))
        config = self.pgsql_source(instance.instance_id)
        return self._excerpt(config, f"instance {instance.instance_id}", window, log_type,
                             max_line, one_destination=True)

    # -- MongoDB -------------------------------------------------------------------------------

    def backup_mongodb_log(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str, *, node_id: str, name: str, log_type: LogKind, begin: int, end: int,
        min_duration_ms: float | None,
    ) -> PackageRecord:
        """Queue a package of one node's log for a window of at most 24 h in the last 7 days."""
        cluster = self.get_mongodb_cluster(caller, project_id, region, zone, cluster_id)
        name = check_package_name(name, "Name")
        window = check_mongodb_window(begin, end, self._clock())
        node = node_of(cluster.nodes, node_id, cluster.cluster_id)
        refuse_slow_log_on_mongos(node, log_type)
        spec = PackageSpec(
            id=new_id("mglog-", 12), name=name, kind=ResourceKind.MONGODB,
            resource_id=cluster.cluster_id, node_id=node.node_id, log_type=log_type,
            window=window, min_duration_ms=min_duration_ms,
        )
        return self.jobs.enqueue(spec, project_id=cluster.project_id, role=node.role)

    def get_mongodb_log(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str, *, node_id: str, log_type: LogKind, begin: float, end: float | None,
        max_line: int,
    ) -> Excerpt:
        """The first `max_line` lines (capped) of a node's entries from `begin` (to now)."""
        cluster = self.get_mongodb_cluster(caller, project_id, region, zone, cluster_id)
        node = node_of(cluster.nodes, node_id, cluster.cluster_id)
        window = check_window(begin, self._clock() if end is None else end, ("Begin", "End"))
        config = self.mongodb_node_source(node.node_id)
        label = f"node {node.node_id} (cluster {cluster.cluster_id})"
        return self._excerpt(config, label, window, log_type, max_line, one_destination=False)

    # -- every kind ----------------------------------------------------------------------------

    def list_packages(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str | None, node_id: str | None, offset: int, limit: int,
    ) -> tuple[list[PackageRecord], int]:
        """A page of live (not Package_Deleted) packages, newest first, and their total."""
        scope = self._scope(caller, project_id)
        if resource_id is not None:
            self._resource(caller, project_id, region, zone, kind, resource_id)
        return self.jobs.list_packages(
            scope, kind, resource_id=resource_id, node_id=node_id, offset=offset, limit=limit
        )

    def get_package(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str, package_id: str,
    ) -> PackageRecord:
        """A package of this resource in the caller's project (deleted ones included)."""
        project = self._resource(caller, project_id, region, zone, kind, resource_id)
        package = self.jobs.get(package_id) if _storable(package_id) else None
        if (
            package is None
            or package.project_id != project
            or package.kind is not kind
            or package.resource_id != resource_id
        ):
            raise NotFound(f"package {package_id[:64]!r} not found")
        return package

    def package_links(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str, package_id: str, valid_seconds: int | None,
    ) -> PackageLinks:
        """Download URLs of a finished package, valid `valid_seconds` (default from settings)."""
        package = self.get_package(caller, project_id, region, zone, kind, resource_id, package_id)
        links, store = self._link_policy(), self._package_store()
        lifetime = self._lifetime(valid_seconds, links)
        if package.state is not PackageState.SUCCESS or package.store_key is None:
            raise _unfinished(package, "ask for its URL once it is Package_Success")
        filename = f"{package.name}.tar.gz"
        presigned = store.presigned_url(package.store_key, lifetime, filename)
        if presigned is not None:
            return PackageLinks(presigned, presigned)
        token = sign_download(package.id, int(self._clock()) + lifetime, links.signing_key)
        path = f"/download/{token}/{filename}"
        return PackageLinks(
            links.public_base_url.rstrip("/") + path, links.internal_base_url.rstrip("/") + path
        )

    def _lifetime(self, valid_seconds: int | None, links: LinkPolicy) -> int:
        if valid_seconds is None:
            return links.default_valid_seconds
        if not 1 <= valid_seconds <= links.max_valid_seconds:
            raise InvalidParameter(
                f"ValidTime must be from 1 to {links.max_valid_seconds} seconds, "
                f"got {valid_seconds}"
            )
        return valid_seconds

    def package_summary(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str, package_id: str,
    ) -> dict[str, Any]:
        """summary.json of a finished package: the copy its build recorded, else (a package
        finished before copies were kept) read from the store, the tar streamed through, never
        held whole (summary.json follows the logs)."""
        package = self.get_package(caller, project_id, region, zone, kind, resource_id, package_id)
        if package.state is not PackageState.SUCCESS or package.store_key is None:
            raise _unfinished(package, "its summary exists once it is Package_Success")
        recorded = self.jobs.summary(package.id)
        if recorded is not None:
            stored: dict[str, Any] = json.loads(recorded)
            return stored
        try:
            document = summary_of(self._package_store().open(package.store_key))
        except (tarfile.TarError, OSError, ValueError) as exc:
            # ValueError: a summary.json that is no JSON document.
            raise StoreError(f"the summary of package {package.id} cannot be read: {exc}") from exc
        if document is None:
            raise NotFound(f"package {package.id} holds no summary.json")
        return document

    def remove_package(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str, package_id: str,
    ) -> PackageRecord:
        """Delete a finished or failed package and its objects, or cancel a queued one; its
        final row."""
        package = self.get_package(caller, project_id, region, zone, kind, resource_id, package_id)
        final = delete_package(self.jobs, self._package_store(), package.id)
        if final.state is PackageState.DELETE_FAILED:
            raise _unfinished(final, "delete it again to retry")
        return final

    def download(self, token: str) -> PackageDownload:
        """The package a served download link grants; LinkError when it is tampered with or
        expired, NotFound when the package is no longer a finished one (deleted meanwhile)."""
        package_id = verify_download(token, self._link_policy().signing_key, self._clock())
        package = self.jobs.get(package_id)
        if package is None or package.state is not PackageState.SUCCESS or not package.store_key:
            raise NotFound("this package no longer exists")
        store = self._package_store()
        size = package.size if package.size is not None else store.size(package.store_key)
        return PackageDownload(
            f"{package.name}.tar.gz", size, package.checksum or "", package.store_key, store
        )

    # -- helpers -------------------------------------------------------------------------------

    def _resource(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        kind: ResourceKind, resource_id: str,
    ) -> str:
        """The project of a visible instance or cluster; NotFound otherwise (named as
        get_pgsql_instance and get_mongodb_cluster name it)."""
        scope = self._scope(caller, project_id)
        found = None
        if _storable(resource_id):
            with self.catalog.read() as conn:
                found = resource_queries.visible_project(
                    conn, kind, resource_id, scope, region, zone
                )
        if found is None:
            parameter = "InstanceID" if kind is ResourceKind.PGSQL else "ClusterId"
            raise NotFound(f"{parameter} {resource_id!r} not found")
        return found

    def _excerpt(
        self, config: SourceConfig, label: str, window: TimeWindow, kind: LogKind, max_line: int,
        *, one_destination: bool,
    ) -> Excerpt:
        query = Query(window, kind)

        def read(source: LogSource, fmt: FormatConfig) -> Excerpt:
            files = logview.files_overlapping(source, fmt, window)
            if one_destination:
                files = logview.one_destination(files)
            return logview.read_excerpt(
                source, fmt, files, query, max_lines=min(max_line, MAX_LINE_CAP),
                max_bytes=EXCERPT_MAX_BYTES, scan_budget=EXCERPT_SCAN_BUDGET,
            )

        return self._read_source(config, label, read)

    def _read_source(
        self, config: SourceConfig, label: str, read: Callable[[LogSource, FormatConfig], T]
    ) -> T:
        with self._open_source(config, label) as source:
            return read(source, logview.resolved_format(config, source))

    @contextmanager
    def _open_source(self, config: SourceConfig, label: str) -> Iterator[LogSource]:
        """The source `config` describes, open; its failures (inside too) as InvalidParameter."""
        try:
            with self._source_factory(config) as source:
                yield source
        except (SourceError, ConfigError) as exc:
            raise _source_unavailable(label, exc) from exc

    def _package_store(self) -> PackageStore:
        if self._store is None:
            raise ConfigError("this service was opened without a package store")
        return self._store

    def _link_policy(self) -> LinkPolicy:
        if self._links is None:
            raise ConfigError("this service was opened without download link settings")
        return self._links
