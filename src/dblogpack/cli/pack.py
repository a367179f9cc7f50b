"""`dblogpack pack`: the engine on local files, offline (no server, no settings, no logging).

Apart from the other commands because it is timed as a whole process (a 1-hour window
must take < 50 ms): its import path holds the engine, nothing of the service, and a plain
`pack PATH... --flag value...` command line is read from the flag table below without
building argparse's parsers (their construction alone costs ~8 ms: gettext, locale, shutil).
Anything else (help, abbreviations, `--flag=value`, a value that looks like a flag, an error)
goes to argparse, which reads the same table.
"""

from __future__ import annotations

import os
import sys

from dblogpack.errors import DblogpackError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from types import SimpleNamespace
    from typing import Any

    PackArgs = argparse.Namespace | SimpleNamespace

PACK_FORMATS = ("auto", "pg-stderr", "pg-csv", "pg-json", "mongo-json", "mongo-legacy")
PACK_EXAMPLE = """\
examples:
  dblogpack pack /var/log/postgresql --type slow --begin 1714550400 --end 1714554000 \\
      --min-duration 500 --out slow.tar.gz
  dblogpack pack mongod.log mongod.log.1.gz --type error --out errors.tar.gz
"""

# flag → (attribute, type, default, metavar, help). --type and --out are checked by run_pack, so
# a missing one is one line, not a usage dump.
PACK_FLAGS: dict[str, tuple[str, Callable[[str], Any], Any, str | None, str]] = {
    "--type": ("log_type", str, None, "slow|error|all", "entries to keep"),
    "--begin": ("begin", float, None, "UNIX", "window start (kept), unix seconds"),
    "--end": ("end", float, None, "UNIX", "window end (excluded), unix seconds"),
    "--min-duration": ("min_duration", float, None, "MS", "slow entries of at least MS"),
    "--format": ("format", str, "auto", "|".join(PACK_FORMATS),
                 "log format (default: detected from each file's content)"),
    "--log-line-prefix": ("log_line_prefix", str, None, "P", "pg-stderr: the log_line_prefix"),
    "--timezone": ("timezone", str, None, "TZ", "the server's log_timezone (IANA name)"),
    "--name": ("name", str, None, None, "package name (default: from --out)"),
    "--level": ("level", int, 1, "N", "gzip level 0-3 (default 1)"),
    "--workers": ("workers", int, 2, "N",
                  "processes scanning and threads compressing (default 2)"),
    "--out": ("out", str, None, "FILE.tar.gz", "the package to write"),
}


def add_pack(subparsers: Any) -> None:
    import argparse

    p = subparsers.add_parser(
        "pack", help="package log entries of local files, offline (no server)",
        description="Select the entries of a time window and a type from local log files or "
        "directories and write them, with manifest.json and a summary, to a .tar.gz.",
        epilog=PACK_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="log files and/or directories")
    for flag, (dest, kind, default, metavar, text) in PACK_FLAGS.items():
        p.add_argument(flag, dest=dest, type=kind, default=default, metavar=metavar, help=text)
    p.set_defaults(run=run_pack)


def plain_pack_args(argv: Sequence[str]) -> SimpleNamespace | None:
    """`pack PATH... --flag value...` read from PACK_FLAGS as argparse reads it; None for any
    other command line (argparse then parses it: help, errors and all)."""
    from types import SimpleNamespace

    if argv[:1] != ["pack"]:
        return None
    values: dict[str, Any] = {dest: default for dest, _, default, _, _ in PACK_FLAGS.values()}
    paths: list[str] = []
    paths_ended = False
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            if paths and paths_ended:
                return None  # argparse takes PATH... once: a second run is an error
            paths.append(word)
            paths_ended = False
            continue
        paths_ended = True
        spec, value = PACK_FLAGS.get(word), next(words, None)
        if spec is None or value is None or value.startswith("-"):
            return None
        try:
            values[spec[0]] = spec[1](value)
        except ValueError:
            return None
    if not paths:
        return None
    return SimpleNamespace(command="pack", paths=paths, run=run_pack, **values)


def _pack_problem(args: PackArgs) -> str | None:
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


# A small package's chunks are read ahead, deflated and hashed by threads while this one scans:
# each time such a thread comes back from a read, ISA-L or hashlib it needs the GIL, and only
# after the switch interval does the scanning thread let go of it (the default 5 ms brought a
# 2 MiB chunk's compression and hash back up to 10 ms late). A thread asks a few times a chunk,
# so a short interval costs the scan little.
SWITCH_INTERVAL = 0.0001


def run_pack(args: PackArgs) -> int:
    problem = _pack_problem(args)
    if problem is not None:
        print(f"dblogpack pack: {problem}", file=sys.stderr)
        return 2
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        return _write_package(args)
    except DblogpackError as exc:
        print(f"dblogpack pack: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dblogpack pack: {exc.filename or args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        sys.setswitchinterval(interval)


def package_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as uuid.uuid4().hex gives, without importing
    uuid (it imports platform: a few ms of every pack's start)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def _write_package(args: PackArgs) -> int:
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
            # No checksum of the package: this command does not report one (the service
            # records it), and hashing the .tar.gz held the GIL ~0.7 ms of a 1-hour window.
            result = pipeline.run(spec, source, fmt, out, workers=args.workers,
                                  compresslevel=args.level, checksum=False)
        os.replace(partial, args.out)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    members = sum(1 for f in result.files if f.member)
    print(f"{args.out}: {result.entries} entries from {members} of {len(result.files)} files, "
          f"{result.size} bytes, {len(result.warnings)} warnings")
    return 0
