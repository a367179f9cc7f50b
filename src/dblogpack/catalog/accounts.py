"""Queries on accounts, projects, grants and access keys (private keys sealed by the SecretBox)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, select

from dblogpack.catalog.records import AccessKey, Project
from dblogpack.catalog.tables import access_keys, accounts, project_grants, projects
from dblogpack.secretbox import SecretBox


def insert_project(conn: Connection, project_id: str, name: str) -> Project:
    created = time.time()
    conn.execute(insert(projects).values(id=project_id, name=name, created_at=created))
    return Project(project_id, name, created)


def get_project(conn: Connection, project_id: str) -> Project | None:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).one_or_none()
    return None if row is None else Project(row.id, row.name, row.created_at)


def existing_project_ids(conn: Connection, project_ids: Iterable[str]) -> set[str]:
    wanted = set(project_ids)
    rows = conn.execute(select(projects.c.id).where(projects.c.id.in_(wanted)))
    return {row.id for row in rows}


def insert_account(conn: Connection, account_id: str, name: str) -> None:
    conn.execute(insert(accounts).values(id=account_id, name=name, created_at=time.time()))


def grant_projects(conn: Connection, account_id: str, project_ids: Iterable[str]) -> None:
    rows = [{"account_id": account_id, "project_id": p} for p in dict.fromkeys(project_ids)]
    if rows:
        conn.execute(insert(project_grants), rows)


def insert_access_key(
    conn: Connection,
    box: SecretBox,
    *,
    public_key: str,
    private_key: str,
    account_id: str,
    is_admin: bool,
    default_project_id: str | None,
    description: str,
) -> None:
    conn.execute(
        insert(access_keys).values(
            public_key=public_key,
            account_id=account_id,
            private_key_encrypted=box.encrypt(private_key),
            is_admin=is_admin,
            default_project_id=default_project_id,
            description=description,
            created_at=time.time(),
        )
    )


def get_access_key(conn: Connection, box: SecretBox, public_key: str) -> AccessKey | None:
    row = conn.execute(
        select(access_keys).where(access_keys.c.public_key == public_key)
    ).one_or_none()
    if row is None:
        return None
    granted = conn.execute(
        select(project_grants.c.project_id).where(project_grants.c.account_id == row.account_id)
    )
    return AccessKey(
        public_key=row.public_key,
        account_id=row.account_id,
        private_key=box.decrypt(row.private_key_encrypted),
        is_admin=bool(row.is_admin),
        default_project_id=row.default_project_id,
        description=row.description,
        project_ids=frozenset(g.project_id for g in granted),
        created_at=row.created_at,
    )


def delete_access_key(conn: Connection, public_key: str) -> bool:
    """Remove a key; its account goes too once it holds no other key. False if there was none."""
    account_id = conn.execute(
        select(access_keys.c.account_id).where(access_keys.c.public_key == public_key)
    ).scalar_one_or_none()
    if account_id is None:
        return False
    conn.execute(delete(access_keys).where(access_keys.c.public_key == public_key))
    others = conn.execute(
        select(access_keys.c.public_key).where(access_keys.c.account_id == account_id).limit(1)
    ).first()
    if others is None:
        conn.execute(delete(project_grants).where(project_grants.c.account_id == account_id))
        conn.execute(delete(accounts).where(accounts.c.id == account_id))
    return True


def any_access_key(conn: Connection) -> bool:
    """Whether any key exists (a fresh catalog has none, and gets its first admin)."""
    return conn.execute(select(access_keys.c.public_key).limit(1)).first() is not None


def default_project_of_account(conn: Connection, account_id: str) -> str | None:
    """The default project of one of the account's keys, if it has any key."""
    return conn.execute(
        select(access_keys.c.default_project_id)
        .where(access_keys.c.account_id == account_id)
        .limit(1)
    ).scalar_one_or_none()


def any_sealed_private_key(conn: Connection) -> str | None:
    """One stored (encrypted) private key, to prove the server secret opens this catalog."""
    return conn.execute(select(access_keys.c.private_key_encrypted).limit(1)).scalar_one_or_none()
