"""The commands that run on the server's machine: `serve`, `worker`, `keys create`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dblogpack.cli.common import COMMON, NOT_SERVE_FLAGS, load

if TYPE_CHECKING:
    from dblogpack.settings import Settings


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Every server setting of the table as a flag of `parser`."""
    from dblogpack.settings import SETTINGS

    for setting in SETTINGS:
        if setting.name in NOT_SERVE_FLAGS:
            continue
        # Booleans work as bare switches (`--demo`) and with a value (`--demo false`).
        switch: dict[str, Any] = {"nargs": "?", "const": "true"} if setting.kind is bool else {}
        parser.add_argument(setting.flag, dest=setting.name, metavar="VALUE", **switch,
                            help=f"{setting.help} (default: {setting.default!r})")
        if setting.kind is bool:
            parser.add_argument("--no-" + setting.flag[2:], dest=setting.name,
                                action="store_const", const="false",
                                help=f"same as {setting.flag} false")


def _add_server_command(
    subparsers: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int]
) -> None:
    """A server command (`serve`, `worker`): the common flags and every server setting."""
    parser = subparsers.add_parser(name, parents=[COMMON], help=help_text)
    _add_setting_flags(parser)
    parser.set_defaults(run=run)


def _server_start(args: argparse.Namespace) -> Settings:
    """The settings of a server command (its flags over env and TOML), logging configured."""
    from dblogpack.app import configure_logging
    from dblogpack.settings import SETTINGS

    settings = load(args, **{
        s.name: getattr(args, s.name) for s in SETTINGS if s.name not in NOT_SERVE_FLAGS
    })
    configure_logging(settings)
    return settings


def add_serve(subparsers: Any) -> None:
    _add_server_command(
        subparsers, "serve",
        "run the API server and `workers` package workers (answers /healthz once ready)",
        run_serve,
    )


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from dblogpack.app import open_services
    from dblogpack.server import run_server

    settings = _server_start(args)
    services = open_services(settings)
    demo = None
    try:  # from here on, whatever fails, the catalog, store and workers are closed
        # uvicorn re-raises the SIGTERM it shut down on once it is done; as an exception, the
        # finally blocks still run (workers' grace, the demo's PostgreSQL) and the exit status is 0.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        if settings.demo:
            from dblogpack.demo import launch_demo

            demo = launch_demo(services)  # starts once /healthz answers, then prints the tour
        run_server(services, settings)
    finally:
        if demo is not None:
            demo.stop()  # the demo's PostgreSQL, workload and feeders end with the server
        services.close()
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def add_worker(subparsers: Any) -> None:
    _add_server_command(
        subparsers, "worker",
        "build packages from the shared metadata database and store (`workers` threads)",
        run_worker,
    )


def run_worker(args: argparse.Namespace) -> int:
    import logging

    from dblogpack.app import build_worker_pool, open_services
    from dblogpack.jobs import run_until_signalled
    from dblogpack.server import serve_worker_metrics

    settings = _server_start(args)
    # bootstrap=False: admin keys are made by `serve`; a worker only builds.
    services = open_services(settings, bootstrap=False)
    try:
        services.store.check()
        serve_worker_metrics(services, settings)
        threads = max(1, settings.workers)
        logging.getLogger("dblogpack.cli").info("worker started with %d thread(s)", threads)
        run_until_signalled(build_worker_pool(services, threads), 30.0)
    finally:
        services.close()
    return 0


def add_keys(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", parents=[COMMON], help="manage access keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser(
        "create", parents=[COMMON], help="create a key pair directly in the data directory"
    )
    create.add_argument("--admin", action="store_true", help="the key may run admin actions")
    create.add_argument("--project", action="append", default=[], metavar="ID",
                        help="grant this project (repeatable; the first is the default)")
    create.add_argument("--description", default="", help="what the key is for")
    create.add_argument("--json", action="store_true", help="print the key pair as JSON")
    create.set_defaults(run=run_keys_create)


def run_keys_create(args: argparse.Namespace) -> int:
    from dblogpack.app import open_services

    services = open_services(load(args))
    if services.new_admin_key is not None:
        print(f"dblogpack: first use of this data directory: the first admin key is in "
              f"{services.settings.admin_key_path}", file=sys.stderr)
    try:
        key = services.service.operator_create_access_key(
            args.project, args.admin, args.description
        )
    finally:
        services.close()
    if args.json:
        print(json.dumps(key))
    else:
        print("\n".join(f"{name}: {value}" for name, value in key.items()))
    return 0
