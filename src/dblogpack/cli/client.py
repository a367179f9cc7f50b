"""The signed API client: `call` (any action) and `audit`, and `call_api` for the other
client commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dblogpack.cli.common import COMMON, load
from dblogpack.errors import ConfigError, DblogpackError

if TYPE_CHECKING:
    from dblogpack.settings import Settings


class CallFailedError(DblogpackError):
    """The API answered with a non-zero RetCode."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(
            f"RetCode {answer.get('RetCode')}: {answer.get('Message', '')} "
            f"(RequestUUID {answer.get('RequestUUID', '?')})"
        )
        self.answer = answer


def _credentials(settings: Settings) -> tuple[str, str]:
    """Flags/env first; on the server's own machine, the first admin key of the data directory."""
    if settings.public_key and settings.private_key:
        return settings.public_key, settings.private_key
    if settings.public_key or settings.private_key:
        raise ConfigError("give both the PublicKey and the PrivateKey to sign with")
    try:
        saved = json.loads(settings.admin_key_path.read_text())
        return str(saved["PublicKey"]), str(saved["PrivateKey"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            "no key to sign with: give --public-key/--private-key or set "
            "DBLOGPACK_PUBLIC_KEY/DBLOGPACK_PRIVATE_KEY"
        ) from exc


def call_api(settings: Settings, action: str, params: dict[str, object]) -> dict[str, Any]:
    """POST one signed call to `settings.endpoint`; its answer, CallFailedError if RetCode != 0."""
    import httpx

    from dblogpack.api.signing import signed

    public_key, private_key = _credentials(settings)
    form = signed({"Action": action, **params}, public_key, private_key)
    try:
        response = httpx.post(settings.endpoint, data=form, timeout=60.0)
        answer: dict[str, Any] = response.json()
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach {settings.endpoint}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(
            f"{settings.endpoint} answered HTTP {response.status_code} without JSON"
        ) from exc
    if answer.get("RetCode") != 0:
        raise CallFailedError(answer)
    return answer


def show_answer(answer: dict[str, Any]) -> int:
    from dblogpack.cli.terminal import print_answer

    print_answer(answer)
    return 0


def parse_pairs(pairs: Sequence[str]) -> dict[str, object]:
    """`Key=Value` words; a key given twice becomes a list (sent as Key.0, Key.1…)."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected Key=Value, got {pair!r}")
        if key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params


def add_call(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call", parents=[COMMON], help="signed call of any API action; prints the JSON answer"
    )
    parser.add_argument("action", help="the Action, e.g. ListUPgSQLInstance")
    parser.add_argument("params", nargs="*", metavar="Key=Value",
                        help="parameters; repeat a key for an array")
    parser.set_defaults(run=lambda args: show_answer(
        call_api(load(args), args.action, parse_pairs(args.params))
    ))


def add_audit(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit", parents=[COMMON], help="the audit trail of signed calls, newest first (admin)"
    )
    parser.add_argument("--action", help="only calls of this Action")
    parser.add_argument("--key", metavar="PUBLIC_KEY", help="only calls signed with this key")
    parser.add_argument("--since", type=int, metavar="UNIX", help="only calls at or after")
    parser.add_argument("--until", type=int, metavar="UNIX", help="only calls before")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=50, help="records to show (default 50)")
    parser.set_defaults(run=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    from dblogpack.cli.terminal import print_audit

    filters = {"TargetAction": args.action, "TargetPublicKey": args.key,
               "BeginTime": args.since, "EndTime": args.until}
    params = {name: value for name, value in filters.items() if value is not None}
    print_audit(call_api(load(args), "ListAuditRecords",
                         {**params, "Offset": args.offset, "Limit": args.limit}))
    return 0
