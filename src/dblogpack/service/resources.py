"""Registering the PostgreSQL instances and MongoDB clusters and nodes whose logs are packaged;
each registration checks that its log source answers.
"""

from __future__ import annotations

from sqlalchemy import Connection

from dblogpack.catalog import resources as resource_queries
from dblogpack.catalog.records import MongoCluster, PgsqlInstance
from dblogpack.errors import (
    ConfigError,
    DblogpackError,
    InvalidParameter,
    NotFound,
    SourceError,
)
from dblogpack.jobs import SourceFactory
from dblogpack.model import SourceConfig
from dblogpack.service.accounts import (
    _RESOURCE_ID,
    MONGODB_ROLES,
    AccountOperations,
    Caller,
    _check_name,
    _id_race,
    _placement,
    _require_admin,
    _storable,
    new_id,
)
from dblogpack.service.logview import resolved_format


class ResourceOperations(AccountOperations):
    """Instances, clusters and nodes (the second layer of `Service`)."""

    _source_factory: SourceFactory
    _defaults: tuple[str, str]

    # -- PostgreSQL instances --------------------------------------------------------------

    def register_pgsql_instance(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str | None, name: str, source: SourceConfig,
    ) -> str:
        """Register an instance after checking its log source answers; its InstanceID."""
        _require_admin(caller)
        project_id = self.resolve_project(caller, project_id)
        name = _check_name(name)
        region, zone = _placement(region, zone, self._defaults)
        source = self._check_source(source)
        with _id_race("InstanceID"), self.catalog.write() as conn:
            resource_id = self._claim_id(conn, instance_id, "upgsql-", "InstanceID")
            resource_queries.insert_pgsql_instance(
                conn, self.catalog.box, instance_id=resource_id, project_id=project_id,
                region=region, zone=zone, name=name, source=source,
            )
        return resource_id

    def get_pgsql_instance(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str,
    ) -> PgsqlInstance:
        """An instance of the caller's project in that region/zone; NotFound otherwise."""
        scope = self._scope(caller, project_id)
        found = None
        if _storable(instance_id):
            with self.catalog.read() as conn:
                found = resource_queries.get_pgsql_instance(conn, instance_id, scope, region, zone)
        if found is None:
            raise NotFound(f"InstanceID {instance_id!r} not found")
        return found

    def deregister_pgsql_instance(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        instance_id: str,
    ) -> None:
        _require_admin(caller)
        self.get_pgsql_instance(caller, project_id, region, zone, instance_id)
        with self.catalog.write() as conn:
            resource_queries.delete_pgsql_instance(conn, instance_id)

    def list_pgsql_instances(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        offset: int, limit: int,
    ) -> tuple[list[PgsqlInstance], int]:
        """A page of the project's instances (oldest first) and how many there are in all."""
        _require_admin(caller)
        scope = self._scope(caller, project_id)
        with self.catalog.read() as conn:
            return resource_queries.list_pgsql_instances(conn, scope, region, zone, offset, limit)

    def pgsql_source(self, instance_id: str) -> SourceConfig:
        """The decrypted source of an instance, for the worker packaging its logs."""
        with self.catalog.read() as conn:
            found = resource_queries.pgsql_source(conn, self.catalog.box, instance_id)
        if found is None:
            raise NotFound(f"InstanceID {instance_id!r} not found")
        return found

    # -- MongoDB clusters and nodes --------------------------------------------------------

    def register_mongodb_cluster(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str | None, name: str,
    ) -> str:
        """Register a cluster (nodes come next, one by one); its ClusterId."""
        _require_admin(caller)
        project_id = self.resolve_project(caller, project_id)
        name = _check_name(name)
        region, zone = _placement(region, zone, self._defaults)
        with _id_race("ClusterId"), self.catalog.write() as conn:
            resource_id = self._claim_id(conn, cluster_id, "umongodb-", "ClusterId")
            resource_queries.insert_mongodb_cluster(
                conn, cluster_id=resource_id, project_id=project_id, region=region, zone=zone,
                name=name,
            )
        return resource_id

    def register_mongodb_node(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str, node_id: str | None, role: str, source: SourceConfig,
    ) -> str:
        """Add a node to a cluster after checking its log source answers; its NodeId."""
        _require_admin(caller)
        role = role.strip().lower()
        if role not in MONGODB_ROLES:
            raise InvalidParameter(f"Role must be one of {', '.join(MONGODB_ROLES)}, got {role!r}")
        self.get_mongodb_cluster(caller, project_id, region, zone, cluster_id)
        source = self._check_source(source)
        with _id_race("NodeId"), self.catalog.write() as conn:
            resource_id = self._claim_id(conn, node_id, "udb-", "NodeId")
            resource_queries.insert_mongodb_node(
                conn, self.catalog.box, node_id=resource_id, cluster_id=cluster_id, role=role,
                source=source,
            )
        return resource_id

    def get_mongodb_cluster(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str,
    ) -> MongoCluster:
        """A cluster (with its nodes) of the caller's project in that region/zone."""
        scope = self._scope(caller, project_id)
        found = None
        if _storable(cluster_id):
            with self.catalog.read() as conn:
                found = resource_queries.get_mongodb_cluster(conn, cluster_id, scope, region, zone)
        if found is None:
            raise NotFound(f"ClusterId {cluster_id!r} not found")
        return found

    def deregister_mongodb_cluster(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        cluster_id: str,
    ) -> None:
        _require_admin(caller)
        self.get_mongodb_cluster(caller, project_id, region, zone, cluster_id)
        with self.catalog.write() as conn:
            resource_queries.delete_mongodb_cluster(conn, cluster_id)

    def list_mongodb_instances(
        self, caller: Caller, project_id: str, region: str | None, zone: str | None,
        offset: int, limit: int,
    ) -> tuple[list[MongoCluster], int]:
        """A page of the project's clusters with their nodes, and how many there are in all."""
        _require_admin(caller)
        scope = self._scope(caller, project_id)
        with self.catalog.read() as conn:
            return resource_queries.list_mongodb_clusters(conn, scope, region, zone, offset, limit)

    def mongodb_node_source(self, node_id: str) -> SourceConfig:
        """The decrypted source of a node, for the worker packaging its logs."""
        with self.catalog.read() as conn:
            found = resource_queries.mongodb_node_source(conn, self.catalog.box, node_id)
        if found is None:
            raise NotFound(f"NodeId {node_id!r} not found")
        return found

    def _check_source(self, source: SourceConfig) -> SourceConfig:
        """Refuse a registration whose log source does not answer, saying why; else the source
        with its format completed from what a PostgreSQL server says of its logging (SHOW), so
        workers parse its logs without asking again."""
        try:
            with self._source_factory(source) as log_source:
                log_source.check()
                return source._replace(log_format=resolved_format(source, log_source))
        except (SourceError, ConfigError, ValueError) as exc:
            # ValueError: what os and drivers raise for an unusable setting (a NUL in a path).
            message = exc.message if isinstance(exc, DblogpackError) else str(exc)
            raise InvalidParameter(f"the log source does not answer: {message}") from exc

    def _claim_id(
        self, conn: Connection, wanted: str | None, prefix: str, parameter: str
    ) -> str:
        if wanted:
            if not _RESOURCE_ID.fullmatch(wanted):
                raise InvalidParameter(
                    f"{parameter} must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got {wanted!r}"
                )
            if resource_queries.resource_id_taken(conn, wanted):
                # Ids are global: say it is taken, never where (it may be another project's).
                raise InvalidParameter(
                    f"{parameter} {wanted!r} is not available: choose another, or omit it "
                    "to have one generated"
                )
            return wanted
        while True:
            candidate = new_id(prefix)
            if not resource_queries.resource_id_taken(conn, candidate):
                return candidate
