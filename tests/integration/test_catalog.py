"""The metadata catalog and the service on it, on SQLite and on a real PostgreSQL alike.

Migrations, secrets at rest, accounts/projects/keys and registered resources, as an operator
and a caller see them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from tests.support.pgcluster import PgCluster

from dblogpack.app import build_source
from dblogpack.catalog import (
    Catalog,
    audit,
    create_catalog_engine,
    open_catalog,
    resources,
    upgrade,
)
from dblogpack.catalog.tables import metadata, packages, projects
from dblogpack.errors import (
    ConfigError,
    InvalidParameter,
    MissingParameter,
    NotFound,
    PermissionDenied,
    ProjectNotFound,
    UnknownPublicKey,
)
from dblogpack.model import PackageState, SourceConfig, SourceType
from dblogpack.secretbox import SecretBox, SecretDecryptError
from dblogpack.service import Caller, Service


@pytest.fixture(scope="module")
def migrated_template(pg_metadata_cluster: PgCluster) -> Iterator[str]:
    """A migrated PostgreSQL database that per-test databases are copied from (fast setup)."""
    name = f"catalog_template_{uuid.uuid4().hex[:8]}"
    pg_metadata_cluster.execute(f'CREATE DATABASE "{name}"')
    engine = create_catalog_engine(pg_metadata_cluster.sqlalchemy_url(dbname=name))
    upgrade(engine)
    engine.dispose()
    yield name
    pg_metadata_cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def fresh_database(request: pytest.FixtureRequest, tmp_path: Path, template: str | None
                   ) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_metadata_cluster")
    name = f"catalog_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    cluster.execute(f'CREATE DATABASE "{name}"{copy}')
    yield cluster.sqlalchemy_url(dbname=name)
    cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata database nothing ever touched: a SQLite file, or a new PostgreSQL database."""
    yield from fresh_database(request, tmp_path, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata database of its own per test (on PostgreSQL, copied from a migrated one)."""
    template = request.getfixturevalue("migrated_template") if request.param != "sqlite" else None
    yield from fresh_database(request, tmp_path, template)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(secrets.token_bytes(32))


@pytest.fixture
def catalog(database_url: str, box: SecretBox) -> Iterator[Catalog]:
    opened = open_catalog(database_url, box)
    yield opened
    opened.close()


@pytest.fixture
def service(catalog: Catalog) -> Service:
    return Service(catalog, build_source, default_region="cn-bj2", default_zone="cn-bj2-01")


@pytest.fixture
def admin(service: Service) -> Caller:
    created = service.bootstrap_admin()
    assert created is not None
    return service.authenticate(created["PublicKey"])[0]


@pytest.fixture
def log_dir(tmp_path: Path) -> str:
    path = tmp_path / "logs"
    path.mkdir()
    (path / "postgresql-2026-01-01.log").write_text("2026-01-01 00:00:00 UTC [1] LOG:  ready\n")
    return str(path)


def dir_source(log_dir: str) -> SourceConfig:
    return SourceConfig(SourceType.DIR, log_dir=log_dir, log_pattern="*.log")


def refreshed(service: Service, caller: Caller) -> Caller:
    """The caller as its next request sees it (grants are read at authentication)."""
    return service.authenticate(caller.public_key)[0]


# -- migrations ----------------------------------------------------------------------------


def test_migrations_build_exactly_the_declared_schema_and_can_run_again(
    empty_database_url: str,
) -> None:
    engine = create_catalog_engine(empty_database_url)
    try:
        upgrade(engine)
        upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        columns = {c["name"] for c in inspect(engine).get_columns("packages")}
    finally:
        engine.dispose()
    job_columns = {
        "id", "project_id", "kind", "resource_id", "node_id", "name", "log_type", "begin_ts",
        "end_ts", "min_duration_ms", "files", "state", "progress", "message", "attempts",
        "lease_owner", "lease_expires_at", "size", "entry_count", "checksum", "store_key",
        "created_at", "finished_at", "expires_at",
    }
    assert job_columns <= columns


def test_processes_starting_together_migrate_once(empty_database_url: str) -> None:
    migrate = (
        "import sys; from dblogpack.catalog import create_catalog_engine, upgrade; "
        "upgrade(create_catalog_engine(sys.argv[1]))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", migrate, empty_database_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=120)[1] for p in starts]
    assert [p.returncode for p in starts] == [0, 0], errors
    engine = create_catalog_engine(empty_database_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path, box: SecretBox) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}", box)
    with catalog.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    catalog.close()


def test_concurrent_writers_all_succeed(service: Service) -> None:
    failures: list[BaseException] = []

    def write_audit(worker: int) -> None:
        try:
            for i in range(15):
                service.record_audit(
                    request_uuid=f"{worker}-{i}", public_key=None, action="Probe",
                    resource_id=None, ret_code=0, remote_addr="127.0.0.1",
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write_audit, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with service.catalog.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_records")).scalar_one() == 60


def test_sqlite_write_transactions_never_interleave(tmp_path: Path, box: SecretBox) -> None:
    """Read-then-update inside write() loses nothing: what claiming a job on SQLite relies on."""
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}", box)
    with catalog.write() as conn:
        conn.execute(insert(projects).values(id="org-1", name="p", created_at=0.0))
        conn.execute(insert(packages).values(
            id="pkg", project_id="org-1", kind="pgsql", resource_id="r", name="n",
            log_type="all", state=PackageState.RUNNING.value, created_at=0.0,
        ))

    def bump() -> None:
        for _ in range(20):
            with catalog.write() as conn:
                seen = conn.execute(select(packages.c.progress)).scalar_one()
                time.sleep(0.001)  # widen the window a lost update would need
                conn.execute(update(packages).values(progress=seen + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with catalog.read() as conn:
        assert conn.execute(select(packages.c.progress)).scalar_one() == 80
    catalog.close()


# -- secrets at rest -----------------------------------------------------------------------


def test_private_keys_dsns_and_ssh_keys_are_never_stored_in_clear(
    service: Service, admin: Caller, database_url: str
) -> None:
    key = service.create_access_key(admin, [], False, "reader")
    dsn = "postgresql://logreader:dsn-password-4711@db.internal:5432/postgres"
    ssh_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nssh-key-material-0815\n-----END"
    with service.catalog.write() as conn:
        resources.insert_pgsql_instance(
            conn, service.catalog.box, instance_id="upgsql-raw", project_id=key["ProjectId"],
            region="r", zone="z", name="n", source=SourceConfig(SourceType.POSTGRES, dsn=dsn),
        )
        resources.insert_mongodb_cluster(
            conn, cluster_id="umongodb-raw", project_id=key["ProjectId"], region="r", zone="z",
            name="m",
        )
        resources.insert_mongodb_node(
            conn, service.catalog.box, node_id="udb-raw", cluster_id="umongodb-raw",
            role="primary", source=SourceConfig(
                SourceType.SSH, ssh_host="h", ssh_user="u", ssh_private_key=ssh_key, log_dir="/l"
            ),
        )
    dump = raw_dump(service.catalog)
    for secret in (key["PrivateKey"], "dsn-password-4711", "ssh-key-material-0815"):
        assert secret not in dump
    assert service.pgsql_source("upgsql-raw").dsn == dsn
    assert service.mongodb_node_source("udb-raw").ssh_private_key == ssh_key


def raw_dump(catalog: Catalog) -> str:
    """Every value of every table, as stored."""
    with catalog.read() as conn:
        return json.dumps(
            {t.name: [list(r) for r in conn.execute(select(t))] for t in metadata.sorted_tables},
            default=str,
        )


def test_another_server_secret_cannot_read_stored_keys(
    service: Service, admin: Caller, database_url: str
) -> None:
    other = open_catalog(database_url, SecretBox(secrets.token_bytes(32)))
    stranger = Service(other, build_source, default_region="r", default_zone="z")
    try:
        with pytest.raises(SecretDecryptError):
            stranger.authenticate(admin.public_key)
        with pytest.raises(ConfigError, match="copy the server-secret of the first server"):
            stranger.verify_server_secret()
        service.verify_server_secret()
    finally:
        other.close()


# -- keys and projects ---------------------------------------------------------------------


def test_first_start_creates_one_admin_key_with_a_default_project(service: Service) -> None:
    created = service.bootstrap_admin()
    assert created is not None and service.bootstrap_admin() is None
    caller, private_key = service.authenticate(created["PublicKey"])
    assert private_key == created["PrivateKey"] and len(private_key) == 40
    assert caller.is_admin and caller.default_project_id == created["ProjectId"]
    assert service.resolve_project(caller, None) == created["ProjectId"]


def test_unknown_public_keys_are_refused(service: Service) -> None:
    with pytest.raises(UnknownPublicKey) as raised:
        service.authenticate("no-such-key")
    assert raised.value.ret_code == 172


def test_a_key_reaches_only_the_projects_granted_to_it(service: Service, admin: Caller) -> None:
    project_b = service.create_project(admin, "team b")
    admin = refreshed(service, admin)
    key_b = service.create_access_key(admin, [project_b], False, "team b reader")
    reader, _ = service.authenticate(key_b["PublicKey"])

    assert key_b["ProjectId"] == project_b and not reader.is_admin
    assert service.resolve_project(reader, None) == project_b
    with pytest.raises(ProjectNotFound) as raised:
        service.resolve_project(reader, admin.default_project_id)
    assert raised.value.ret_code == 292


def test_admin_operations_need_an_admin_key(service: Service, admin: Caller) -> None:
    key = service.create_access_key(admin, [], False, "plain")
    plain, _ = service.authenticate(key["PublicKey"])
    with pytest.raises(PermissionDenied) as raised:
        service.create_project(plain, "mine")
    assert raised.value.ret_code == 299
    with pytest.raises(PermissionDenied):
        service.list_pgsql_instances(plain, key["ProjectId"], None, None, 0, 10)


def test_keys_can_be_deleted_but_not_by_themselves(service: Service, admin: Caller) -> None:
    key = service.create_access_key(admin, [], False, "temporary")
    service.delete_access_key(admin, key["PublicKey"])
    with pytest.raises(UnknownPublicKey):
        service.authenticate(key["PublicKey"])
    with pytest.raises(NotFound):
        service.delete_access_key(admin, key["PublicKey"])
    with pytest.raises(InvalidParameter, match="key making this call"):
        service.delete_access_key(admin, admin.public_key)


def test_the_operator_creates_keys_for_existing_projects_only(
    service: Service, admin: Caller
) -> None:
    key = service.operator_create_access_key([], True, "second admin")
    assert key["ProjectId"] == admin.default_project_id
    with pytest.raises(ProjectNotFound):
        service.operator_create_access_key(["org-missing"], False, "")


def test_a_key_without_default_project_must_name_one(service: Service, admin: Caller) -> None:
    key = service.create_access_key(admin, [], False, "orphan")
    with service.catalog.write() as conn:
        conn.execute(text("UPDATE access_keys SET default_project_id = NULL WHERE public_key = :k"),
                     {"k": key["PublicKey"]})
    caller, _ = service.authenticate(key["PublicKey"])
    with pytest.raises(MissingParameter, match="ProjectId is required"):
        service.resolve_project(caller, None)
    assert service.resolve_project(caller, key["ProjectId"]) == key["ProjectId"]


# -- registered resources ------------------------------------------------------------------


def test_registered_instances_are_listed_by_page_without_secrets(
    service: Service, admin: Caller, log_dir: str
) -> None:
    project = admin.default_project_id
    assert project is not None
    ids = [
        service.register_pgsql_instance(admin, project, None, None, None, f"db{i}",
                                        dir_source(log_dir))
        for i in range(3)
    ]
    named = service.register_pgsql_instance(
        admin, project, "cn-sh2", "cn-sh2-02", "upgsql-mine", "named", dir_source(log_dir)
    )

    page, total = service.list_pgsql_instances(admin, project, None, None, 1, 2)
    assert all(i.startswith("upgsql-") and len(i) == 15 for i in ids) and named == "upgsql-mine"
    assert total == 4 and [r.instance_id for r in page] == ids[1:3]
    assert (page[0].region, page[0].zone, page[0].source_type) == ("cn-bj2", "cn-bj2-01", "dir")
    in_sh, total_sh = service.list_pgsql_instances(admin, project, "cn-sh2", None, 0, 10)
    assert [r.instance_id for r in in_sh] == ["upgsql-mine"] and total_sh == 1


def test_registration_refuses_a_source_that_does_not_answer(
    service: Service, admin: Caller, tmp_path: Path
) -> None:
    missing = SourceConfig(SourceType.DIR, log_dir=str(tmp_path / "nowhere"))
    with pytest.raises(InvalidParameter, match="nowhere") as raised:
        service.register_pgsql_instance(admin, admin.default_project_id or "", None, None, None,
                                        "x", missing)
    assert raised.value.ret_code == 230
    assert service.list_pgsql_instances(admin, admin.default_project_id or "", None, None,
                                        0, 10)[1] == 0


def test_ids_are_unique_across_every_kind_of_resource(
    service: Service, admin: Caller, log_dir: str
) -> None:
    project = admin.default_project_id or ""
    service.register_mongodb_cluster(admin, project, None, None, "shared-id", "c")
    with pytest.raises(InvalidParameter, match="'shared-id' is not available: choose another"):
        service.register_pgsql_instance(admin, project, None, None, "shared-id", "p",
                                        dir_source(log_dir))
    with pytest.raises(InvalidParameter, match="InstanceID must be 1 to 64"):
        service.register_pgsql_instance(admin, project, None, None, "bad/id", "p",
                                        dir_source(log_dir))


def test_resources_of_other_projects_and_regions_are_not_found(
    service: Service, admin: Caller, log_dir: str
) -> None:
    project_a = admin.default_project_id or ""
    instance = service.register_pgsql_instance(admin, project_a, None, None, None, "a",
                                               dir_source(log_dir))
    project_b = service.create_project(admin, "b")
    admin = refreshed(service, admin)
    outsider, _ = service.authenticate(
        service.create_access_key(admin, [project_b], True, "admin of b")["PublicKey"]
    )
    for caller, project, region in ((outsider, project_b, None), (admin, project_a, "cn-gd")):
        with pytest.raises(NotFound) as raised:
            service.get_pgsql_instance(caller, project, region, None, instance)
        assert raised.value.ret_code == 1001
    with pytest.raises(NotFound):
        service.deregister_pgsql_instance(outsider, project_b, None, None, instance)
    assert service.get_pgsql_instance(admin, project_a, "cn-bj2", "cn-bj2-01", instance)


def test_mongodb_clusters_list_their_nodes_and_go_away_with_them(
    service: Service, admin: Caller, log_dir: str
) -> None:
    project = admin.default_project_id or ""
    cluster = service.register_mongodb_cluster(admin, project, None, None, None, "rs0")
    primary = service.register_mongodb_node(admin, project, None, None, cluster, None, "Primary",
                                            dir_source(log_dir))
    service.register_mongodb_node(admin, project, None, None, cluster, "udb-second", "secondary",
                                  dir_source(log_dir))
    with pytest.raises(InvalidParameter, match="Role must be one of"):
        service.register_mongodb_node(admin, project, None, None, cluster, None, "leader",
                                      dir_source(log_dir))

    clusters, total = service.list_mongodb_instances(admin, project, None, None, 0, 10)
    assert cluster.startswith("umongodb-") and primary.startswith("udb-") and total == 1
    assert [(n.node_id, n.role) for n in clusters[0].nodes] == [
        (primary, "primary"), ("udb-second", "secondary")
    ]
    service.deregister_mongodb_cluster(admin, project, None, None, cluster)
    assert service.list_mongodb_instances(admin, project, None, None, 0, 10) == ([], 0)
    with pytest.raises(NotFound):
        service.mongodb_node_source(primary)


# -- packages (the job rows) ----------------------------------------------------------------


def test_a_live_package_name_is_unique_per_resource_until_deleted(
    service: Service, admin: Caller
) -> None:
    row = {
        "project_id": admin.default_project_id, "kind": "pgsql", "resource_id": "upgsql-1",
        "name": "nightly", "log_type": "slow", "state": PackageState.RUNNING.value,
        "created_at": time.time(),
    }
    with service.catalog.write() as conn:
        conn.execute(insert(packages).values(id="pkg-1", **row))
    with pytest.raises(IntegrityError), service.catalog.write() as conn:
        conn.execute(insert(packages).values(id="pkg-2", **row))
    with service.catalog.write() as conn:
        conn.execute(
            update(packages).where(packages.c.id == "pkg-1")
            .values(state=PackageState.DELETED.value)
        )
        conn.execute(insert(packages).values(id="pkg-3", **row))
        stored = conn.execute(select(packages).where(packages.c.id == "pkg-3")).one()
    assert (stored.progress, stored.attempts, stored.message) == (0, 0, "")


# -- whatever a caller sends -----------------------------------------------------------------


def test_hostile_lookups_are_plain_not_found_answers(service: Service, admin: Caller) -> None:
    project = admin.default_project_id or ""
    with pytest.raises(UnknownPublicKey):
        service.authenticate("nul\x00key")
    with pytest.raises(UnknownPublicKey):
        service.authenticate("k" * 5000)
    with pytest.raises(NotFound):
        service.get_pgsql_instance(admin, project, "r" * 500, None, "id\x00")
    with pytest.raises(NotFound):
        service.get_mongodb_cluster(admin, project, None, None, "c" * 500)


def test_placement_and_names_are_validated_on_registration(
    service: Service, admin: Caller, log_dir: str
) -> None:
    project = admin.default_project_id or ""
    with pytest.raises(InvalidParameter, match="Region must be 1 to 64 printable"):
        service.register_mongodb_cluster(admin, project, "r" * 65, None, None, "c")
    with pytest.raises(InvalidParameter, match="Name must be"):
        service.register_pgsql_instance(admin, project, None, None, None, "bad\x00name",
                                        dir_source(log_dir))
    with pytest.raises(InvalidParameter, match="does not answer"):
        service.register_pgsql_instance(admin, project, None, None, None, "n",
                                        dir_source(log_dir + "\x00"))


def test_every_call_is_audited_even_with_oversized_or_binary_fields(service: Service) -> None:
    service.record_audit(
        request_uuid="u" * 100, public_key="p\x00" * 100, action="A" * 1000,
        resource_id="r" * 1000, ret_code=171, remote_addr="a" * 100,
    )
    with service.catalog.read() as conn:
        record = audit.recent_audit_records(conn, 1)[0]
    assert record.ret_code == 171 and record.action == "A" * 128
    assert record.public_key is not None and "\x00" not in record.public_key
