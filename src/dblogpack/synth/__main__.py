"""`python -m dblogpack.synth generate|feed FORMAT PATH`: generated logs from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dblogpack.synth import FORMATS, Mix, Plan, Record, build, feed_many, generate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dblogpack.synth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("generate", "feed"):
        p = sub.add_parser(command)
        p.add_argument("format", choices=FORMATS)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--log-line-prefix")
        p.add_argument("--timezone")
        p.add_argument("--style", help="mongo-json date style or mongo-legacy time format")
        p.add_argument("--rotate-bytes", type=int)
        p.add_argument(
            "--mix", default="0.05,0.01,0.94", help="weights of slow,error,other entries"
        )
    gen = sub.choices["generate"]
    gen.add_argument("path", type=Path)
    gen.add_argument("--start", type=float, default=time.time() - 3600, help="unix seconds")
    gen.add_argument("--end", type=float, help="unix seconds")
    gen.add_argument("--size", type=int, help="bytes")
    gen.add_argument("--rate", type=float, default=500.0, help="entries per second")
    gen.add_argument("--disorder-ms", type=int, default=3)
    gen.add_argument("--record", type=Path, help="write the record side file here")
    fed = sub.choices["feed"]
    fed.add_argument("paths", type=Path, nargs="+", help="live log files, fed in parallel")
    fed.add_argument("--rate", type=float, default=50.0, help="entries per second")
    fed.add_argument("--duration", type=float, help="seconds (default: until interrupted)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    fmt = build(
        args.format, log_line_prefix=args.log_line_prefix, timezone=args.timezone, style=args.style
    )
    mix = Mix(*(float(w) for w in args.mix.split(",")))
    if args.command == "feed":
        targets = [(fmt, path) for path in args.paths]
        try:
            feed_many(
                targets,
                rate=args.rate,
                seed=args.seed,
                mix=mix,
                rotate_bytes=args.rotate_bytes,
                duration_s=args.duration,
            )
        except KeyboardInterrupt:
            return
        return
    plan = Plan(
        start=args.start,
        end=args.end,
        size=args.size,
        seed=args.seed,
        mix=mix,
        rate=args.rate,
        disorder_ms=args.disorder_ms,
        rotate_bytes=args.rotate_bytes,
    )
    if args.record is None:
        result = generate(fmt, args.path, plan, Record(keep=False))
    else:
        with args.record.open("wb") as sink:
            record = Record(sink)
            result = generate(fmt, args.path, plan, record)
            record.close()
    print(f"wrote {result.entries} entries, {result.size} bytes, {len(result.files)} file(s)")


if __name__ == "__main__":
    main()
