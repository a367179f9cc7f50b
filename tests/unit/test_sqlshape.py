"""fingerprint_sql's faster forms (literal-led branches on ASCII text, str.split for spaces) give
exactly what its first formulation, kept here as the reference, gives."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dblogpack.sqlshape import (
    _SQL_LISTS,
    _SQL_LITERALS,
    _SQL_ROWS,
    FINGERPRINT_CHARS,
    fingerprint_sql,
)

_SPACES = re.compile(r"\s+")


def reference(statement: str) -> str:
    text = _SQL_LITERALS.sub("?", statement[:FINGERPRINT_CHARS])
    text = _SQL_LISTS.sub("(...)", text)
    text = _SQL_ROWS.sub("(...)", text)
    return _SPACES.sub(" ", text).strip().rstrip(";").strip().lower()


# What literals, names and lists are made of, Unicode digits, letters and spaces included.
PIECES = [
    *"eEbBxXnN'$-.0123456789_a(),?;",
    "$$",
    "$tag$",
    "''",
    " ",
    "\t",
    "\n",
    "\x1f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u0663",
    "\uff13",
    "é",
    "ß",
    "Σ",
    "t1",
    "1e5",
    "-.5",
    "(...)",
]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_fingerprint_is_the_reference_one(statement: str) -> None:
    assert fingerprint_sql.__wrapped__(statement) == reference(statement)


def test_long_statements_are_cut_where_the_reference_cuts_them() -> None:
    statement = "SELECT " + "1, " * FINGERPRINT_CHARS + "x"
    assert fingerprint_sql.__wrapped__(statement) == reference(statement)
