"""Keys, projects and audit records: who is calling and what they may reach. Every operation is
scoped to the caller's projects: anything outside them is NotFound, never a hint that it exists.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from dblogpack.catalog import Catalog
from dblogpack.catalog import accounts as account_queries
from dblogpack.catalog import audit as audit_queries
from dblogpack.catalog.records import AccessKey, AuditRecord
from dblogpack.errors import (
    ConfigError,
    InvalidParameter,
    MissingParameter,
    NotFound,
    PermissionDenied,
    ProjectNotFound,
    UnknownPublicKey,
)
from dblogpack.secretbox import SecretDecryptError
from dblogpack.service.auditlog import AuditLog

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


class AccountOperations:
    """Keys, projects and audit records (the first layer of `Service`)."""

    catalog: Catalog
    _audit_log: AuditLog

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
        """Append one audit record (never the Signature, never a secret); returns once it is
        committed."""
        self._audit_log.append(AuditRecord(
            at=time.time(), request_uuid=request_uuid, public_key=public_key, action=action,
            resource_id=resource_id, ret_code=ret_code, remote_addr=remote_addr,
        ))

    def list_audit_records(
        self, caller: Caller, where: audit_queries.AuditFilter, offset: int, limit: int
    ) -> tuple[list[AuditRecord], int]:
        """A page of the audit trail (newest first) and its size; admin keys only.

        The trail is the whole server's: an admin sees every key's calls, as an operator would.
        """
        _require_admin(caller)
        with self.catalog.read() as conn:
            return audit_queries.list_audit_records(conn, where, offset, limit)

    # -- helpers ---------------------------------------------------------------------------

    def _scope(self, caller: Caller, project_id: str | None) -> list[str]:
        return [self.resolve_project(caller, project_id)]
