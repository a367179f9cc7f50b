"""The product's operations: keys and projects, resource registration, audit; api, console and cli
call these and share nothing else. Every operation is scoped to the caller's projects: anything
outside them is NotFound, never a hint that it exists.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from dblogpack.catalog import Catalog
from dblogpack.catalog import accounts as account_queries
from dblogpack.catalog import audit as audit_queries
from dblogpack.catalog import resources as resource_queries
from dblogpack.catalog.records import AccessKey, MongoCluster, PgsqlInstance
from dblogpack.errors import (
    ConfigError,
    DblogpackError,
    InvalidParameter,
    MissingParameter,
    NotFound,
    PermissionDenied,
    ProjectNotFound,
    SourceError,
    UnknownPublicKey,
)
from dblogpack.model import SourceConfig
from dblogpack.secretbox import SecretDecryptError
from dblogpack.sources.base import LogSource

SourceFactory = Callable[[SourceConfig], LogSource]

MONGODB_ROLES = ("primary", "secondary", "arbiter", "mongos", "configsvr")
BOOTSTRAP_ACCOUNT_ID = "acc-admin"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_RESOURCE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an authenticated access key and the projects it may reach."""

    public_key: str
    account_id: str
    is_admin: bool
    default_project_id: str | None
    project_ids: frozenset[str]


def new_id(prefix: str, length: int = 8) -> str:
    """A random id like `upgsql-3kq9x0ab` (lowercase letters and digits)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _new_key_pair() -> tuple[str, str]:
    # PrivateKey as UCloud's: 40 hex digits. PublicKey: letters and digits only, so it travels
    # in query strings and command lines (never a leading '-') unquoted.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(36)), secrets.token_hex(20)


def _caller_of(key: AccessKey) -> Caller:
    return Caller(
        public_key=key.public_key,
        account_id=key.account_id,
        is_admin=key.is_admin,
        default_project_id=key.default_project_id,
        project_ids=key.project_ids,
    )


@contextmanager
def _id_race(parameter: str) -> Iterator[None]:
    # Two registrations naming the same free id at once: the loser's insert hits the primary key.
    try:
        yield
    except IntegrityError as exc:
        raise InvalidParameter(
            f"this {parameter} is not available: choose another, or omit it to have one generated"
        ) from exc


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied()


def _check_name(name: str, parameter: str = "Name", longest: int = _MAX_NAME) -> str:
    stripped = name.strip()
    if not 1 <= len(stripped) <= longest or not stripped.isprintable():
        raise InvalidParameter(
            f"{parameter} must be 1 to {longest} printable characters, got {name!r}"
        )
    return stripped


def _placement(region: str | None, zone: str | None, defaults: tuple[str, str]) -> tuple[str, str]:
    """Region and zone of a new resource: as given (validated), else the server's defaults."""
    return (
        _check_name(region, "Region", 64) if region else defaults[0],
        _check_name(zone, "Zone", 64) if zone else defaults[1],
    )


def _storable(value: str) -> bool:
    # PostgreSQL text cannot hold NUL: such a lookup key cannot name anything stored.
    return "\x00" not in value


class Service:
    """dblogpack's operations over one catalog; `source_factory` builds sources to check them."""

    def __init__(
        self,
        catalog: Catalog,
        source_factory: SourceFactory,
        *,
        default_region: str,
        default_zone: str,
    ) -> None:
        self.catalog = catalog
        self._source_factory = source_factory
        self._defaults = (default_region, default_zone)

    # -- keys and projects ---------------------------------------------------------------

    def authenticate(self, public_key: str) -> tuple[Caller, str]:
        """The caller behind `public_key` and its private key, to verify the signature with."""
        key = None
        if _storable(public_key):
            with self.catalog.read() as conn:
                key = account_queries.get_access_key(conn, self.catalog.box, public_key)
        if key is None:
            raise UnknownPublicKey(f"PublicKey {public_key[:64]!r} is unknown")
        return _caller_of(key), key.private_key

    def resolve_project(self, caller: Caller, project_id: str | None) -> str:
        """The project a call acts in: the one named, else the key's default project."""
        if not project_id:
            if caller.default_project_id is None:
                raise MissingParameter("ProjectId is required: this key has no default project")
            return caller.default_project_id
        if project_id not in caller.project_ids:
            raise ProjectNotFound(f"ProjectId {project_id!r} not found or not granted to this key")
        return project_id

    def create_project(self, caller: Caller, name: str) -> str:
        """A new project, granted to the caller's account so its keys can manage it."""
        _require_admin(caller)
        project_id = new_id("org-")
        with self.catalog.write() as conn:
            account_queries.insert_project(conn, project_id, _check_name(name))
            account_queries.grant_projects(conn, caller.account_id, [project_id])
        return project_id

    def create_access_key(
        self, caller: Caller, projects: Sequence[str], admin: bool, description: str
    ) -> dict[str, str]:
        """A new key (and account) granted `projects`, the first being its default project.

        With no project named, the caller's default project is granted. The PrivateKey is
        returned here once and never again.
        """
        _require_admin(caller)
        granted = [self.resolve_project(caller, p) for p in projects] or [
            self.resolve_project(caller, None)
        ]
        with self.catalog.write() as conn:
            return self._insert_key(conn, granted, admin, description)

    def operator_create_access_key(
        self, projects: Sequence[str], admin: bool, description: str
    ) -> dict[str, str]:
        """`create_access_key` for the operator with the data directory (`keys create`).

        With no project named, the bootstrap admin's default project is granted.
        """
        with self.catalog.write() as conn:
            granted = list(projects) or self._bootstrap_projects(conn)
            missing = set(granted) - account_queries.existing_project_ids(conn, granted)
            if missing:
                raise ProjectNotFound(f"ProjectId {sorted(missing)[0]!r} does not exist")
            return self._insert_key(conn, granted, admin, description)

    def _bootstrap_projects(self, conn: Connection) -> list[str]:
        project_id = account_queries.default_project_of_account(conn, BOOTSTRAP_ACCOUNT_ID)
        if project_id is None:
            raise ConfigError("no default project yet: start `dblogpack serve` once first")
        return [project_id]

    def _insert_key(
        self, conn: Connection, projects: Sequence[str], admin: bool, description: str,
        account_id: str | None = None,
    ) -> dict[str, str]:
        public_key, private_key = _new_key_pair()
        if account_id is None:
            account_id = new_id("acc-")
            account_queries.insert_account(conn, account_id, description or public_key[:8])
            account_queries.grant_projects(conn, account_id, projects)
        account_queries.insert_access_key(
            conn, self.catalog.box, public_key=public_key, private_key=private_key,
            account_id=account_id, is_admin=admin, default_project_id=projects[0],
            description=description[:512],
        )
        return {"PublicKey": public_key, "PrivateKey": private_key, "ProjectId": projects[0]}

    def delete_access_key(self, caller: Caller, target_public_key: str) -> None:
        """Remove a key whose projects all belong to the caller; never the caller's own key."""
        _require_admin(caller)
        if target_public_key == caller.public_key:
            raise InvalidParameter("TargetPublicKey is the key making this call; use another key")
        with self.catalog.write() as conn:
            target = (
                account_queries.get_access_key(conn, self.catalog.box, target_public_key)
                if _storable(target_public_key)
                else None
            )
            if target is None or not target.project_ids <= caller.project_ids:
                raise NotFound(f"access key {target_public_key!r} not found")
            account_queries.delete_access_key(conn, target_public_key)

    def verify_server_secret(self) -> None:
        """ConfigError unless this process's server secret opens what the catalog has sealed."""
        with self.catalog.read() as conn:
            sealed = account_queries.any_sealed_private_key(conn)
        if sealed is None:
            return
        try:
            self.catalog.box.decrypt(sealed)
        except SecretDecryptError as exc:
            raise ConfigError(
                "the server-secret file of this data directory is not the one the metadata "
                "database was sealed with: copy the server-secret of the first server here"
            ) from exc

    def bootstrap_admin(self) -> dict[str, str] | None:
        """On a fresh catalog, an admin account, its default project and key; else None."""
        try:
            with self.catalog.write() as conn:
                if account_queries.any_access_key(conn):
                    return None
                project_id = new_id("org-")
                account_queries.insert_project(conn, project_id, "default")
                account_queries.insert_account(conn, BOOTSTRAP_ACCOUNT_ID, "admin")
                account_queries.grant_projects(conn, BOOTSTRAP_ACCOUNT_ID, [project_id])
                return self._insert_key(
                    conn, [project_id], True, "bootstrap admin", account_id=BOOTSTRAP_ACCOUNT_ID
                )
        except IntegrityError:
            # Another process bootstrapped the same catalog at the same moment.
            return None

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
        self._check_source(source)
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
        self._check_source(source)
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

    # -- audit -----------------------------------------------------------------------------

    def record_audit(
        self,
        *,
        request_uuid: str,
        public_key: str | None,
        action: str,
        resource_id: str | None,
        ret_code: int,
        remote_addr: str | None,
    ) -> None:
        """Append one audit record (never the Signature, never a secret)."""
        with self.catalog.write() as conn:
            audit_queries.insert_audit_record(
                conn, request_uuid=request_uuid, public_key=public_key, action=action,
                resource_id=resource_id, ret_code=ret_code, remote_addr=remote_addr,
            )

    # -- helpers ---------------------------------------------------------------------------

    def _scope(self, caller: Caller, project_id: str | None) -> list[str]:
        return [self.resolve_project(caller, project_id)]

    def _check_source(self, source: SourceConfig) -> None:
        """Refuse a registration whose log source does not answer, saying why."""
        try:
            with self._source_factory(source) as log_source:
                log_source.check()
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
