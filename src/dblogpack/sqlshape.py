"""The shape of a SQL statement: its fingerprint, literals folded, for summaries to count alike.

A module of its own, below the stages: the summary counts by it and the pg-stderr scan groups
entries by it (stages never import each other).
"""

from __future__ import annotations

import re
from functools import lru_cache

# One pass over a statement replaces every literal; strings come first so their content is not
# mistaken for numbers or parameters. Numbers glued to identifiers (t1, col_2) are kept. Every
# branch starts with a consuming character (lookbehinds come after it).
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
# The same on ASCII text, where \d is [0-9], with every branch starting with one literal
# character: then sre skips the positions no branch starts at with a table lookup each, instead
# of trying every branch at every position (2.5x faster on statements and plans).
_STRING = r"'(?:[^']|'')*'?"
_NUMBER = r"(?<![\w$]\d)(?<![\w$]-\d)\d*(?:\.\d+)?(?:[eE][+-]?\d+)?"  # after its first digit
_ASCII_SQL_LITERALS = re.compile(
    "|".join(
        [
            *(f"{letter}'(?<!\\w..){_STRING[1:]}" for letter in "eEbBxXnN"),
            _STRING,
            r"\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$",
            r"\$\d+",
            *(first + _NUMBER for first in ("-\\d", *"0123456789")),  # -?\d, one branch each
            r"\.\d(?<![\w$.]\.\d)\d*",
        ]
    ),
    re.DOTALL,
)
_SQL_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")  # IN (?, ?, ?) and VALUES rows
_SQL_ROWS = re.compile(r"\(\.\.\.\)(?:\s*,\s*\(\.\.\.\))+")

# Statements repeat (prepared statements, ORMs): a cache spares the regex most of the time.
_CACHE_SIZE = 4096
# Only a statement's head is fingerprinted: it bounds the cost of huge statements and plans.
FINGERPRINT_CHARS = 2000


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint_sql(statement: str) -> str:
    """The statement with literals, parameters and lists folded, spaces collapsed, lower case."""
    head = statement[:FINGERPRINT_CHARS]
    text = (_ASCII_SQL_LITERALS if head.isascii() else _SQL_LITERALS).sub("?", head)
    text = _SQL_LISTS.sub("(...)", text)
    text = _SQL_ROWS.sub("(...)", text)
    # str.split() splits at runs of the whitespace \s matches and drops them at both ends.
    return " ".join(text.split()).rstrip(";").strip().lower()
