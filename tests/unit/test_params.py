"""Request parameters: every encoding normalizes to the same map, and schema failures name the
parameter and what it allows."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

import orjson
import pytest

from dblogpack.api.params import (
    ActionParams,
    RequestParams,
    choice,
    flag,
    integer,
    parse_request,
    text,
    texts,
)
from dblogpack.errors import InvalidParameter, MissingParameter

FORM = "application/x-www-form-urlencoded"


class Sample(ActionParams):
    Name: str = text("1-64 characters of [A-Za-z0-9._-]", pattern=r"^[A-Za-z0-9._-]{1,64}$",
                     required=True)
    Limit: int = integer(1, 1000, default=20)
    BackupFile: list[str] = texts("log file names", max_items=3)
    Role: Literal["primary", "secondary"] | None = choice(["primary", "secondary"])
    Admin: bool = flag()
    DSN: str | None = text("a libpq connection string", max_length=30, secret=True)


def form(pairs: list[tuple[str, str]]) -> RequestParams:
    return parse_request(b"", FORM, urlencode(pairs).encode())


def test_query_form_and_json_give_the_same_parameters() -> None:
    pairs = [("Action", "X"), ("Limit", "10"), ("Name", "ü b")]
    from_query = parse_request(urlencode(pairs).encode(), None, b"")
    from_form = form(pairs)
    from_json = parse_request(b"", "application/json",
                              orjson.dumps({"Action": "X", "Limit": 10, "Name": "ü b"}))
    assert from_query.flat == from_form.flat == from_json.flat == dict(pairs)


def test_three_array_encodings_normalize_to_indexed_keys() -> None:
    indexed = form([("BackupFile.0", "a"), ("BackupFile.1", "b")])
    repeated = form([("BackupFile", "a"), ("BackupFile", "b")])
    json_array = parse_request(b"", "application/json", b'{"BackupFile": ["a", "b"]}')
    expected = {"BackupFile.0": "a", "BackupFile.1": "b"}
    assert indexed.flat == repeated.flat == json_array.flat == expected
    assert Sample.parse(_with_name(repeated)).BackupFile == ["a", "b"]


def test_received_pairs_are_kept_as_sent_for_the_signature() -> None:
    repeated = form([("BackupFile", "b"), ("BackupFile", "a")])
    assert repeated.received == (("BackupFile", "b"), ("BackupFile", "a"))
    assert repeated.has_repeated_keys
    assert not form([("A", "1")]).has_repeated_keys


def test_query_and_body_are_merged() -> None:
    params = parse_request(b"Action=X", FORM, b"Limit=3")
    assert params.flat == {"Action": "X", "Limit": "3"}


def test_json_nesting_within_the_limit_flattens() -> None:
    body = b'{"A": [[[[[[["x"]]]]]]]}'
    assert parse_request(b"", "application/json", body).flat == {"A.0.0.0.0.0.0.0": "x"}


def test_json_body_without_content_type_is_recognized() -> None:
    assert parse_request(b"", None, b'{"Limit": 3}').flat == {"Limit": "3"}


def test_an_array_given_two_ways_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="BackupFile is given twice"):
        form([("BackupFile", "a"), ("BackupFile", "b"), ("BackupFile.0", "c")])
    with pytest.raises(InvalidParameter, match="BackupFile is given both"):
        Sample.parse(_with_name(form([("BackupFile", "a"), ("BackupFile.0", "b")])))


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"[1, 2]", "must be an object"),
        ("application/json", b"{nope", "not valid JSON"),
        ("text/plain", b"a=b", "Content-Type text/plain is not supported"),
        ("application/json", b'{"A":' + b"[" * 1000 + b"]" * 1000 + b"}", "deeper than 8"),
        ("application/json", b'{"A":' + b"[" * 2000 + b"]" * 2000 + b"}", "not valid JSON"),
        (FORM, b"Name=%FF%FE", "not valid URL encoding of UTF-8"),
        (FORM, b"Name=\xff", "not valid URL encoding of UTF-8"),
    ],
)
def test_unreadable_bodies_are_invalid_parameters(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_request(b"", content_type, body)


def test_missing_required_parameter_is_named() -> None:
    with pytest.raises(MissingParameter, match=r"^Missing parameter Name: it must be 1-64 char"):
        Sample.parse(form([("Limit", "3")]))


def test_empty_value_counts_as_missing() -> None:
    with pytest.raises(MissingParameter, match="Name"):
        Sample.parse(form([("Name", "")]))


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("Limit", "abc")], 'Limit must be an integer from 1 to 1000, got "abc"'),
        ([("Limit", "0")], 'Limit must be an integer from 1 to 1000, got "0"'),
        ([("Limit", "1001")], 'Limit must be an integer from 1 to 1000, got "1001"'),
        ([("Role", "boss")], 'Role must be one of primary, secondary, got "boss"'),
        ([("Admin", "maybe")], 'Admin must be true or false, got "maybe"'),
        ([("BackupFile.0", "a"), ("BackupFile.1", "b"), ("BackupFile.2", "c"),
          ("BackupFile.3", "d")], "BackupFile has too many items: at most 3, got 4"),
    ],
)
def test_invalid_values_say_what_is_allowed(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        Sample.parse(_with_name(form(pairs)))
    assert caught.value.message.startswith(message)


def test_name_pattern_violation_echoes_the_value() -> None:
    with pytest.raises(InvalidParameter, match=r'Name must be 1-64 characters .*, got "a b"'):
        Sample.parse(form([("Name", "a b")]))


def test_long_values_are_echoed_truncated() -> None:
    with pytest.raises(InvalidParameter) as caught:
        Sample.parse(form([("Name", "x" * 70 + " ")]))
    assert caught.value.message.endswith('"' + "x" * 64 + '…"')


def test_secret_values_are_never_echoed() -> None:
    secret = "host=db password=hunter2-very-long-secret-value"
    with pytest.raises(InvalidParameter) as caught:
        Sample.parse(_with_name(form([("DSN", secret)])))
    assert "hunter2" not in caught.value.message
    assert caught.value.message.startswith("DSN must be a libpq connection string")


def test_valid_parameters_parse_with_defaults() -> None:
    parsed = Sample.parse(form([("Name", "pkg-1"), ("Admin", "true"), ("Unknown", "ignored")]))
    assert (parsed.Name, parsed.Limit, parsed.BackupFile, parsed.Role, parsed.Admin) == (
        "pkg-1", 20, [], None, True)


def _with_name(params: RequestParams) -> RequestParams:
    return RequestParams(params.received, {**params.flat, "Name": "n"})
