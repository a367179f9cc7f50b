"""What the console's resource pages show, gathered from the service: a project's instances and
clusters, and one resource with its nodes or log files and its packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dblogpack.catalog.packages import PackageRecord
from dblogpack.catalog.records import MongoCluster, MongoNode, PgsqlInstance
from dblogpack.errors import DblogpackError, PermissionDenied
from dblogpack.model import LogFile, ResourceKind
from dblogpack.service import Caller, Service

LISTING_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ProjectResources:
    """A project's instances and clusters; `refused` says why a key may not list them."""

    instances: list[PgsqlInstance] = field(default_factory=list)
    clusters: list[MongoCluster] = field(default_factory=list)
    refused: str = ""


@dataclass(frozen=True, slots=True)
class ResourceView:
    """One instance or cluster: what a package can be made of, and its packages."""

    kind: ResourceKind
    resource_id: str
    name: str
    placement: str
    nodes: tuple[MongoNode, ...]
    files: list[LogFile]
    files_error: str
    packages: list[PackageRecord]
    total: int


def project_resources(service: Service, caller: Caller, project: str) -> ProjectResources:
    """The project's resources; listing them is an admin action, as in the API."""
    try:
        instances, _ = service.list_pgsql_instances(caller, project, None, None, 0, LISTING_LIMIT)
        clusters, _ = service.list_mongodb_instances(caller, project, None, None, 0, LISTING_LIMIT)
    except PermissionDenied as exc:
        return ProjectResources(refused=exc.message)
    return ProjectResources(instances, clusters)


def resource_view(
    service: Service, caller: Caller, project: str, kind: ResourceKind, resource_id: str,
    limit: int,
) -> ResourceView:
    """The resource (NotFound outside the caller's project) with its newest packages."""
    if kind is ResourceKind.MONGODB:
        cluster = service.get_mongodb_cluster(caller, project, None, None, resource_id)
        name, placement, nodes = cluster.name, f"{cluster.region} / {cluster.zone}", cluster.nodes
        files: list[LogFile] = []
        files_error = ""
    else:
        instance = service.get_pgsql_instance(caller, project, None, None, resource_id)
        name, placement, nodes = instance.name, f"{instance.region} / {instance.zone}", ()
        files, files_error = _log_files(service, caller, project, resource_id)
    packages, total = service.list_packages(
        caller, project, None, None, kind, resource_id, None, 0, limit
    )
    return ResourceView(kind, resource_id, name, placement, nodes, files, files_error,
                        packages, total)


def _log_files(
    service: Service, caller: Caller, project: str, instance_id: str
) -> tuple[list[LogFile], str]:
    # An unreachable source still leaves the packages visible: say why the files are missing.
    try:
        return service.list_pgsql_logs(caller, project, None, None, instance_id, None, None), ""
    except DblogpackError as exc:
        return [], exc.message
