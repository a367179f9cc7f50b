"""Demo mode (`serve --demo`, `make run`): a real PostgreSQL 15 cluster with a workload and a
fed MongoDB cluster, registered in the admin's default project; `Demo.stop()` undoes the running.

Everything lives in `<data_dir>/demo`, so a second start reuses the cluster and registrations.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dblogpack.app import save_private_json
from dblogpack.demo.mongo import KEEP_ROTATED, DemoNode, MongoFeeders, demo_nodes, prune_oldest
from dblogpack.demo.pgcluster import DemoPgCluster, PgCredentials, open_path_to_server_user
from dblogpack.demo.workload import SHOP_DB, ShopWorkload
from dblogpack.errors import ConfigError, DblogpackError, NotFound
from dblogpack.model import SourceConfig, SourceType
from dblogpack.service import Caller
from dblogpack.sources.pgsql import REQUIRED_GRANTS

if TYPE_CHECKING:
    from dblogpack.app import Services
    from dblogpack.settings import Settings

__all__ = ["Demo", "DemoLauncher", "launch_demo", "server_answers", "start_demo"]

log = logging.getLogger("dblogpack.demo")

PGSQL_NAME = "demo-postgresql"
MONGODB_NAME = "demo-mongodb"
KEEP_PG_LOGS = 30  # ~30 MB at 1 MB rotation
JANITOR_PERIOD_S = 60.0


@dataclass(slots=True)
class DemoState:
    """What `<data_dir>/demo/state.json` remembers between starts (0600: it holds passwords)."""

    pg: PgCredentials
    pgsql_instance_id: str | None = None
    mongodb_cluster_id: str | None = None
    mongodb_node_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> DemoState:
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(PgCredentials.fresh())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable demo state ({exc}); delete "
                              f"{path.parent} to start the demo over") from exc
        return cls(PgCredentials(**document.pop("pg")), **document)

    def save(self, path: Path) -> None:
        save_private_json(path, asdict(self))


@dataclass(slots=True)
class Demo:
    """The running demo: what it registered, and the processes and threads it runs."""

    pgsql_instance_id: str
    mongodb_cluster_id: str
    mongodb_node_ids: dict[str, str]  # role → NodeId
    cluster: DemoPgCluster
    workload: ShopWorkload
    feeders: MongoFeeders
    _janitor_stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop the workload, the PostgreSQL server and the feeders; the files stay."""
        self._janitor_stop.set()
        self.workload.stop()
        self.feeders.stop()
        self.cluster.stop()
        log.info("demo stopped")

    def prune_logs(self) -> None:
        """Keep the demo's log directories bounded however long it runs."""
        for node in self.feeders.nodes:
            prune_oldest(node.log_dir, node.log_name + ".*", KEEP_ROTATED)
        prune_oldest(self.cluster.log_dir, "postgresql-*.log", KEEP_PG_LOGS)

    def _janitor(self) -> None:
        while not self._janitor_stop.wait(JANITOR_PERIOD_S):
            try:
                self.prune_logs()
            except OSError as exc:
                log.warning("demo: cannot prune old demo logs: %s", exc)


def start_demo(services: Services, settings: Settings) -> Demo:
    """Start (creating on first use) the demo cluster, workload and feeders, and register them
    in the admin's default project, reusing the registrations of an earlier start."""
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(mode=0o750, exist_ok=True)
    state_path = demo_dir / "state.json"
    state = DemoState.load(state_path)
    state.save(state_path)  # the passwords must be known before initdb uses them
    open_path_to_server_user(settings.data_dir, demo_dir)
    cluster = DemoPgCluster(demo_dir / "pg", state.pg)
    stack: list[Callable[[], None]] = []
    try:
        cluster.start()
        stack.append(cluster.stop)
        cluster.ensure_reader_role(REQUIRED_GRANTS)
        workload = ShopWorkload(cluster.superuser_dsn(), cluster.superuser_dsn(SHOP_DB))
        workload.prepare()
        workload.run_round()  # entries to package from the first second
        workload.start()
        stack.append(workload.stop)
        feeders = MongoFeeders(demo_nodes(demo_dir / "mongo"))
        feeders.start()
        stack.append(feeders.stop)
        _register(services, state, cluster, feeders.nodes)
        state.save(state_path)
    except BaseException:
        for undo in reversed(stack):
            undo()
        raise
    return _running(state, cluster, workload, feeders)


def _running(
    state: DemoState, cluster: DemoPgCluster, workload: ShopWorkload, feeders: MongoFeeders
) -> Demo:
    assert state.pgsql_instance_id is not None and state.mongodb_cluster_id is not None
    demo = Demo(state.pgsql_instance_id, state.mongodb_cluster_id, dict(state.mongodb_node_ids),
                cluster, workload, feeders)
    threading.Thread(target=demo._janitor, name="demo-janitor", daemon=True).start()
    return demo


# -- registrations --------------------------------------------------------------------------


def admin_caller(services: Services) -> Caller:
    """The bootstrap admin, whose default project holds the demo resources."""
    path = services.settings.admin_key_path
    try:
        public_key = str(json.loads(path.read_text())["PublicKey"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"the demo registers as the admin of {path}, which is "
                          f"unreadable: {exc}") from exc
    caller, _ = services.service.authenticate(public_key)
    return caller


def _register(
    services: Services, state: DemoState, cluster: DemoPgCluster, nodes: list[DemoNode]
) -> None:
    caller = admin_caller(services)
    project = caller.default_project_id or ""
    service = services.service
    if not _pgsql_registered(services, caller, state.pgsql_instance_id):
        source = SourceConfig(SourceType.POSTGRES, dsn=cluster.reader_dsn())
        state.pgsql_instance_id = service.register_pgsql_instance(
            caller, project, None, None, None, PGSQL_NAME, source)
        log.info("demo: registered PostgreSQL instance %s", state.pgsql_instance_id)
    registered_roles = _mongodb_registered(services, caller, state)
    if state.mongodb_cluster_id is None:
        state.mongodb_cluster_id = service.register_mongodb_cluster(
            caller, project, None, None, None, MONGODB_NAME)
        state.mongodb_node_ids = {}
        log.info("demo: registered MongoDB cluster %s", state.mongodb_cluster_id)
    for node in nodes:
        if node.role not in registered_roles:
            source = SourceConfig(SourceType.DIR, log_dir=str(node.log_dir),
                                  log_pattern=node.pattern)
            state.mongodb_node_ids[node.role] = service.register_mongodb_node(
                caller, project, None, None, state.mongodb_cluster_id, None, node.role, source)


def _pgsql_registered(services: Services, caller: Caller, instance_id: str | None) -> bool:
    if instance_id is None:
        return False
    try:
        services.service.get_pgsql_instance(caller, "", None, None, instance_id)
    except NotFound:
        return False  # deregistered since the last start: register it again
    return True


def _mongodb_registered(services: Services, caller: Caller, state: DemoState) -> set[str]:
    """Roles of the demo cluster's nodes still registered (clears a deregistered cluster)."""
    if state.mongodb_cluster_id is None:
        return set()
    try:
        found = services.service.get_mongodb_cluster(
            caller, "", None, None, state.mongodb_cluster_id)
    except NotFound:
        state.mongodb_cluster_id = None
        return set()
    state.mongodb_node_ids = {n.role: n.node_id for n in found.nodes}
    return set(state.mongodb_node_ids)


# -- starting beside the server -------------------------------------------------------------


class DemoLauncher:
    """Starts the demo in a thread once `ready()` says the server answers, then announces it."""

    def __init__(
        self, services: Services, ready: Callable[[], bool],
        announce: Callable[[Demo], None],
    ) -> None:
        self._services = services
        self._ready = ready
        self._announce = announce
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-launcher", daemon=True)
        self.demo: Demo | None = None
        self.failure: BaseException | None = None

    def start(self) -> DemoLauncher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wait for a start under way to finish, then stop what it started."""
        self._cancel.set()
        self._thread.join()
        if self.demo is not None:
            self.demo.stop()
            self.demo = None

    def _run(self) -> None:
        while not self._ready():
            if self._cancel.wait(0.1):
                return
        try:
            self.demo = start_demo(self._services, self._services.settings)
        except Exception as exc:
            # The server keeps serving; the operator reads why the demo is missing.
            self.failure = exc
            log.error("demo mode could not start: %s", exc, exc_info=exc)
            reason = exc.message if isinstance(exc, DblogpackError) else str(exc)
            print(f"dblogpack: demo mode could not start: {reason}", file=sys.stderr, flush=True)
            return
        self._announce(self.demo)


def server_answers(settings: Settings) -> bool:
    """Whether this process's server answers /healthz on its listening address yet."""
    # http.client, not httpx: httpx logs every request at INFO, and this polls until ready.
    from http.client import HTTPConnection, HTTPException

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    connection = HTTPConnection(host, settings.port, timeout=2.0)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, HTTPException):
        return False  # not listening yet
    finally:
        connection.close()


def print_tour(services: Services, demo: Demo) -> None:
    """Print the tour; the PrivateKey itself only to a terminal (docs/demo.md says why)."""
    from dblogpack.demo.announce import announcement

    text = announcement(demo, services.settings, show_private_key=sys.stdout.isatty())
    print(text, flush=True)


def launch_demo(
    services: Services,
    ready: Callable[[], bool] | None = None,
    announce: Callable[[Demo], None] | None = None,
) -> DemoLauncher:
    """Start the demo beside `serve`: once `ready()` (default: the server answers /healthz),
    then `announce` it (default: print the tour). Call the launcher's `stop()` on shutdown."""
    settings = services.settings
    return DemoLauncher(
        services,
        ready or (lambda: server_answers(settings)),
        announce or (lambda demo: print_tour(services, demo)),
    ).start()
