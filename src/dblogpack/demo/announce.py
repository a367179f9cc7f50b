"""What `serve --demo` prints once the demo runs: where to click, the admin key pair, and three
commands to copy that build, wait for and download a package of each demo resource.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dblogpack.demo import Demo
    from dblogpack.settings import Settings


def dblogpack_command() -> str:
    """How to run this very installation's CLI (the venv's script when there is one)."""
    script = Path(sys.executable).with_name("dblogpack")
    return shlex.quote(str(script)) if script.exists() else "dblogpack"


def announcement(demo: Demo, settings: Settings, *, show_private_key: bool) -> str:
    """The tour's text. The PrivateKey itself only when `show_private_key` (a terminal):
    otherwise a command reading it from admin-key.json, so captured logs hold no secret."""
    base = settings.public_base_url.rstrip("/")
    key = json.loads(settings.admin_key_path.read_text())
    key_file = shlex.quote(str(settings.admin_key_path))
    private = (shlex.quote(key["PrivateKey"]) if show_private_key else
               f"\"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
               f"[\"PrivateKey\"])' {key_file})\"")
    cli = dblogpack_command()
    primary, mongos = demo.mongodb_node_ids["primary"], demo.mongodb_node_ids["mongos"]
    cluster, instance = demo.mongodb_cluster_id, demo.pgsql_instance_id
    lines = [
        "",
        "dblogpack demo is running (Ctrl-C stops it and everything it started):",
        f"  console       {base}/console",
        f"  API endpoint  {base}/",
        f"  PostgreSQL    {instance} (PostgreSQL 15 on 127.0.0.1:{demo.cluster.port}, "
        "a shop workload logs slow statements and errors every few seconds)",
        f"  MongoDB       {cluster}: primary {primary}, secondary "
        f"{demo.mongodb_node_ids['secondary']}, mongos {mongos}",
        f"  admin key     {key_file}",
        "",
        "Sign the commands below with the admin key pair:",
        f"  export DBLOGPACK_ENDPOINT={shlex.quote(base + '/')}",
        f"  export DBLOGPACK_PUBLIC_KEY={shlex.quote(key['PublicKey'])}",
        f"  export DBLOGPACK_PRIVATE_KEY={private}",
        "",
        "Then build, wait for and download a package of each kind:",
        f"  {cli} package mongodb --cluster-id {cluster} --node-id {primary} --type slow "
        "--begin $(( $(date +%s) - 600 )) --wait --out demo-mongodb-slow.tar.gz",
        f"  {cli} package mongodb --cluster-id {cluster} --node-id {mongos} --type error "
        "--begin $(( $(date +%s) - 600 )) --wait --out demo-mongos-errors.tar.gz",
        f"  {cli} package pgsql --instance-id {instance} --type slow --wait "
        "--out demo-postgresql-slow.tar.gz",
        "Each package holds manifest.json, summary.txt and logs/: "
        "tar -xzOf demo-postgresql-slow.tar.gz summary.txt",
        "",
    ]
    return "\n".join(lines)
