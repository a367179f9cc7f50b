"""`dblogpack pack`: the engine on local files, offline (no server, no settings, no logging).

Apart from the other commands because it is timed as a whole process (a 1-hour window
must take < 50 ms): its import path holds argparse and the engine, nothing of the service.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from dblogpack.errors import DblogpackError

PACK_FORMATS = ("auto", "pg-stderr", "pg-csv", "pg-json", "mongo-json", "mongo-legacy")
PACK_EXAMPLE = """\
examples:
  dblogpack pack /var/log/postgresql --type slow --begin 1714550400 --end 1714554000 \\
      --min-duration 500 --out slow.tar.gz
  dblogpack pack mongod.log mongod.log.1.gz --type error --out errors.tar.gz
"""


def add_pack(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pack", help="package log entries of local files, offline (no server)",
        description="Select the entries of a time window and a type from local log files or "
        "directories and write them, with manifest.json and a summary, to a .tar.gz.",
        epilog=PACK_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="log files and/or directories")
    # --type and --out are checked by run_pack, so a missing one is one line, not a usage dump.
    p.add_argument("--type", dest="log_type", metavar="slow|error|all", help="entries to keep")
    p.add_argument("--begin", type=float, metavar="UNIX", help="window start (kept), unix seconds")
    p.add_argument("--end", type=float, metavar="UNIX", help="window end (excluded), unix seconds")
    p.add_argument("--min-duration", type=float, metavar="MS", help="slow entries of at least MS")
    p.add_argument("--format", default="auto", metavar="|".join(PACK_FORMATS),
                   help="log format (default: detected from each file's content)")
    p.add_argument("--log-line-prefix", metavar="P", help="pg-stderr: the log_line_prefix")
    p.add_argument("--timezone", metavar="TZ", help="the server's log_timezone (IANA name)")
    p.add_argument("--name", help="package name (default: from --out)")
    p.add_argument("--level", type=int, default=1, metavar="N", help="gzip level 0-3 (default 1)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="processes scanning and threads compressing (default 2)")
    p.add_argument("--out", metavar="FILE.tar.gz", help="the package to write")
    p.set_defaults(run=run_pack)


def _pack_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the pack arguments, in one line, or None."""
    if args.log_type not in ("slow", "error", "all"):
        return "--type slow|error|all is required" if args.log_type is None else (
            f"--type {args.log_type!r} is not one of slow, error, all")
    if not args.out:
        return "--out FILE.tar.gz is required"
    if args.format not in PACK_FORMATS:
        return f"unknown --format {args.format!r}; use one of {', '.join(PACK_FORMATS)}"
    if args.begin is not None and args.end is not None and args.begin >= args.end:
        return f"--begin {args.begin:g} must be before --end {args.end:g}"
    if not 0 <= args.level <= 3:
        return f"--level {args.level} is out of range; ISA-L levels are 0-3"
    if args.workers < 1:
        return "--workers must be at least 1"
    if args.min_duration is not None and args.min_duration < 0:
        return "--min-duration must not be negative"
    return None


def run_pack(args: argparse.Namespace) -> int:
    problem = _pack_problem(args)
    if problem is not None:
        print(f"dblogpack pack: {problem}", file=sys.stderr)
        return 2
    try:
        return _write_package(args)
    except DblogpackError as exc:
        print(f"dblogpack pack: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dblogpack pack: {exc.filename or args.out}: {exc.strerror}", file=sys.stderr)
        return 1


def package_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as uuid.uuid4().hex gives, without importing
    uuid (it imports platform: a few ms of every pack's start)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def _write_package(args: argparse.Namespace) -> int:
    from dblogpack import pipeline
    from dblogpack.model import FormatConfig, LogKind, PackageSpec, ResourceKind, TimeWindow
    from dblogpack.sources.local import PathsSource

    source = PathsSource(args.paths)
    source.check()
    fmt = FormatConfig(args.format, args.log_line_prefix, args.timezone)
    mongo = pipeline.detect_kind(source, fmt) == "mongo"
    spec = PackageSpec(
        id=package_id(), name=args.name or os.path.basename(args.out).removesuffix(".tar.gz"),
        kind=ResourceKind.MONGODB if mongo else ResourceKind.PGSQL, resource_id="local",
        node_id=None, log_type=LogKind(args.log_type), window=TimeWindow(args.begin, args.end),
        min_duration_ms=args.min_duration,
    )
    partial = f"{args.out}.part"  # the package appears under its name only once complete
    try:
        with open(partial, "wb") as out:
            result = pipeline.run(spec, source, fmt, out, workers=args.workers,
                                  compresslevel=args.level)
        os.replace(partial, args.out)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    members = sum(1 for f in result.files if f.member)
    print(f"{args.out}: {result.entries} entries from {members} of {len(result.files)} files, "
          f"{result.size} bytes, {len(result.warnings)} warnings")
    return 0
