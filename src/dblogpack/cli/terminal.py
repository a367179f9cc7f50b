"""How the CLI shows an API answer: coloured and indented (rich) on a terminal, plain JSON
when piped, so `dblogpack call … | jq` always reads clean JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def print_answer(answer: dict[str, Any]) -> None:
    """The whole answer as JSON on stdout."""
    text = json.dumps(answer, indent=2, ensure_ascii=False)
    if not sys.stdout.isatty():
        print(text)
        return
    from rich.console import Console  # rich costs an import only when a person is watching

    Console().print_json(text)


def print_audit(answer: dict[str, Any]) -> None:
    """A ListAuditRecords answer: a table on a terminal, the JSON answer when piped."""
    if not sys.stdout.isatty():
        print_answer(answer)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Time (UTC)", "Action", "RetCode", "Resource", "PublicKey", "RequestUUID",
                  title=f"{len(answer['DataSet'])} of {answer['TotalCount']} audit records")
    for row in answer["DataSet"]:
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["Time"])), row["Action"],
            str(row["RetCode"]), row["ResourceId"] or "", row["PublicKey"] or "",
            row["RequestUUID"],
        )
    Console().print(table)
