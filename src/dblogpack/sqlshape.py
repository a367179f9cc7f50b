"""The shape of a SQL statement: its fingerprint, literals folded, for summaries to count alike.

A module of its own, below the stages: the summary counts by it and the pg-stderr scan groups
entries by it (stages never import each other).
"""

from __future__ import annotations

import re
from functools import lru_cache

# One pass over a statement replaces every literal; strings come first so their content is not
# mistaken for numbers or parameters. Numbers glued to identifiers (t1, col_2) are kept. Every
# branch starts with a consuming character (lookbehinds come after it), so the regex engine can
# skip most positions with a quick first-character test.
_SQL_LITERALS = re.compile(
    r"""
      (?:[eEbBxXnN]'(?<!\w..)|')(?:[^']|'')*'?            # 'string', E'...', B'0101'
    | \$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$              # $$dollar-quoted$$
    | \$\d+                                               # $1 bind parameters
    | -?\d(?<![\w$]\d)(?<![\w$]-\d)\d*(?:\.\d+)?(?:[eE][+-]?\d+)?  # numbers, not in names
    | \.\d(?<![\w$.]\.\d)\d*                              # .5
    """,
    re.VERBOSE | re.DOTALL,
)
_SQL_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")  # IN (?, ?, ?) and VALUES rows
_SQL_ROWS = re.compile(r"\(\.\.\.\)(?:\s*,\s*\(\.\.\.\))+")
_SPACES = re.compile(r"\s+")

# Statements repeat (prepared statements, ORMs): a cache spares the regex most of the time.
_CACHE_SIZE = 4096
# Only a statement's head is fingerprinted: it bounds the cost of huge statements and plans.
FINGERPRINT_CHARS = 2000


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint_sql(statement: str) -> str:
    """The statement with literals, parameters and lists folded, spaces collapsed, lower case."""
    text = _SQL_LITERALS.sub("?", statement[:FINGERPRINT_CHARS])
    text = _SQL_LISTS.sub("(...)", text)
    text = _SQL_ROWS.sub("(...)", text)
    return _SPACES.sub(" ", text).strip().rstrip(";").strip().lower()
