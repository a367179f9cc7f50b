"""What every `dblogpack` command shares: the global flags and the settings they resolve to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dblogpack.settings import Settings

Register = Callable[[Any], None]
BuildParams = Callable[[argparse.Namespace], dict[str, object]]

# Flags every command accepts, before or after the command name.
CLIENT_FLAGS = ("endpoint", "public_key", "private_key")
# Settings that are not `serve` flags: the global and the client ones.
NOT_SERVE_FLAGS = frozenset({"data_dir", *CLIENT_FLAGS})


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="data directory (settings, secret, SQLite, packages)")
    common.add_argument("--endpoint", default=argparse.SUPPRESS,
                        help="API endpoint of the client commands")
    common.add_argument("--public-key", default=argparse.SUPPRESS,
                        help="PublicKey to sign with (or DBLOGPACK_PUBLIC_KEY)")
    common.add_argument("--private-key", default=argparse.SUPPRESS,
                        help="PrivateKey to sign with (or DBLOGPACK_PRIVATE_KEY)")
    return common


COMMON = _common_flags()


def load(args: argparse.Namespace, **flags: object) -> Settings:
    """Settings for this invocation: the global flags plus `flags` over env and TOML."""
    from dblogpack.settings import load_settings

    given = {name: getattr(args, name, None) for name in ("data_dir", *CLIENT_FLAGS)}
    return load_settings({**given, **flags})
