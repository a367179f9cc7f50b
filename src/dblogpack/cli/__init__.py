"""The `dblogpack` command: each subcommand is a small function registering its own parser.

Thin by design: parse flags, call app/service (server commands) or the signed API (client
commands). Heavy imports happen inside the commands, so `dblogpack --help` stays instant, and
`pack` (timed as a whole process) loads only its own module.
"""

from __future__ import annotations

import os
import sys

from dblogpack.allocator import warm_for_pack
from dblogpack.cli.pack import add_pack, plain_pack_args
from dblogpack.collector import tune_for_scanning
from dblogpack.errors import DblogpackError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import SimpleNamespace
    from typing import NoReturn

    from dblogpack.cli.common import Register


def all_commands() -> list[Register]:
    """Every subcommand's registration; add yours here."""
    from dblogpack.cli.client import add_audit, add_call
    from dblogpack.cli.package import add_package
    from dblogpack.cli.resources import add_mongodb, add_pgsql
    from dblogpack.cli.server import add_keys, add_serve, add_worker

    return [
        add_serve, add_worker, add_keys, add_call, add_audit, add_pgsql, add_mongodb, add_package,
        add_pack,
    ]


def build_parser(commands: Sequence[Register] | None = None) -> argparse.ArgumentParser:
    import argparse

    from dblogpack.cli.common import COMMON
    from dblogpack.cli.examples import attach_examples

    parser = argparse.ArgumentParser(
        prog="dblogpack", parents=[COMMON],
        description="Packages PostgreSQL and MongoDB log entries on request.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in all_commands() if commands is None else commands:
        register(subparsers)
    attach_examples(parser)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    # `pack` is the one command timed as a whole process (a small window must take < 50 ms):
    # building every other command's parser would cost it more than its own work.
    if argv[:1] == ["pack"]:
        return build_parser([add_pack])
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    args = plain_pack_args(given) or _parser_for(given).parse_args(given)
    # The process's own `pack`: it ends with its package (callers passing argv keep their
    # process's settings). At the collector's default thresholds it collected ten times in a
    # 1-hour window's pack, ~2.5 ms of its main thread (a generation-1 pass over the modules just
    # imported 1.1-1.7 ms, each later pass 0.1-0.3 ms), to find a few dozen cycles.
    own_pack = argv is None and args.command == "pack"
    if own_pack:
        warm_for_pack()  # first: its thread runs beside the imports of the pack
        tune_for_scanning()
    code = _run(args)
    if own_pack:
        _end_process(code)
    return code


def _end_process(code: int) -> NoReturn:
    """End a `pack` process whose package is written and closed, skipping the interpreter's
    teardown (freeing every module and object one by one): ~10 ms of a 1-hour window's ~140.

    Only for the process's own command line (a caller passing argv gets its return), and
    only once pack's threads, worker processes and files are closed, as run_pack leaves them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: argparse.Namespace | SimpleNamespace) -> int:
    try:
        return int(args.run(args))
    except DblogpackError as exc:
        from dblogpack.cli.client import CallFailedError  # only client commands raise it

        print(f"dblogpack {args.command}: {exc.message}", file=sys.stderr)
        return 1 if isinstance(exc, CallFailedError) else 2
    except OSError as exc:
        # A file or directory of this machine (data dir, --out, a key file): one line, no trace.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dblogpack {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
