"""One copy-paste example for the `--help` of every `dblogpack` command, and the walk over the
parser tree that attaches them (a command without an example is caught by the tests).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

# Command path (words after `dblogpack`) → example lines. Commands whose parser already has
# an epilog with examples (package, pack) keep theirs.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("dblogpack --data-dir ./dblogpack-data serve --port 8080",
         "dblogpack --endpoint http://127.0.0.1:8080/ call ListUMongoDBInstances"),
    "serve": ("dblogpack --data-dir /var/lib/dblogpack serve --host 0.0.0.0 --port 8080 "
              "--workers 4",),
    "worker": ("export DBLOGPACK_DATABASE_URL=postgresql+psycopg://dblogpack@meta/dblogpack",
               "export DBLOGPACK_STORE_URL=s3://packages/prod",
               "dblogpack worker --workers 4"),
    "keys": ("dblogpack keys create --project prj-ab12cd34 --json",),
    "keys create": ("dblogpack keys create --project prj-ab12cd34 --description 'nightly job' "
                    "--json",
                    "dblogpack keys create --admin --json"),
    "call": ("dblogpack call ListUMongoDBLogPackage ClusterId=umongodb-ab12cd34 Limit=10",
             "dblogpack call BackupUPgSQLLog InstanceID=upgsql-ab12cd34 BackupName=errors-0501 "
             "BackupFile=postgresql-0501.log BackupFile=postgresql-0502.log LogType=error",
             "dblogpack call ListUPgSQLInstance | jq '.DataSet[].InstanceID'"),
    "audit": ("dblogpack audit --limit 20",
              "dblogpack audit --action BackupUMongoDBLog --since 1714550400"),
    "pgsql": ("dblogpack pgsql list",),
    "pgsql add": ("dblogpack pgsql add --name orders --source-type postgres "
                  "--dsn 'host=db1 dbname=postgres user=logreader password=…'",
                  "dblogpack pgsql add --name billing --source-type dir "
                  "--log-dir /var/log/postgresql --log-pattern 'postgresql-*.log'"),
    "pgsql list": ("dblogpack pgsql list --limit 20",),
    "pgsql remove": ("dblogpack pgsql remove upgsql-ab12cd34",),
    "mongodb": ("dblogpack mongodb list",),
    "mongodb add-cluster": ("dblogpack mongodb add-cluster --name orders",),
    "mongodb add-node": ("dblogpack mongodb add-node umongodb-ab12cd34 --role primary "
                         "--source-type dir --log-dir /var/log/mongodb "
                         "--log-pattern 'mongod.log*'",),
    "mongodb list": ("dblogpack mongodb list --limit 20",),
    "mongodb remove": ("dblogpack mongodb remove umongodb-ab12cd34",),
}


def command_parsers(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) of `parser` and every subcommand below it, depth first."""
    yield path, parser
    for action in parser._actions:  # argparse offers no public way to reach subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from command_parsers(child, f"{path} {name}".strip())


def attach_examples(parser: argparse.ArgumentParser) -> None:
    """Give every command without an epilog its example from EXAMPLES."""
    for path, command in command_parsers(parser):
        lines = EXAMPLES.get(path)
        if command.epilog or lines is None:
            continue
        word = "example" if len(lines) == 1 else "examples"
        command.epilog = f"{word}:\n" + "".join(f"  {line}\n" for line in lines)
        command.formatter_class = argparse.RawDescriptionHelpFormatter
