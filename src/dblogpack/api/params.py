"""Request parameters: query, form and JSON bodies normalized to one flat map, and the
declarative per-action schemas (pydantic v2) whose failures become RetCode 220/230 messages
that name the parameter and what it allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, get_args, get_origin
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from dblogpack.api.signing import flatten
from dblogpack.errors import InvalidParameter, MissingParameter

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_INDEXED = re.compile(r"^(?P<base>.+)\.(?P<index>0|[1-9][0-9]*)$")
_ECHO_LIMIT = 64
_MAX_JSON_DEPTH = 8  # parameters nest at most Key.N.Sub; anything deeper is not a request
# Control characters (NUL above all) have no place in any value and some databases refuse
# them; multi-line values such as SSH keys keep their TAB, LF and CR.
_NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


@dataclass(frozen=True, slots=True)
class RequestParams:
    """One request's parameters.

    `received` are the (key, value) pairs exactly as they arrived (JSON bodies flattened with
    the SDK's rules): the signature is checked over them. `flat` is the normalized map every
    handler reads: a repeated key `K=a&K=b` becomes `K.0=a, K.1=b`, like a JSON array would.
    """

    received: tuple[tuple[str, str], ...]
    flat: Mapping[str, str]

    def get(self, key: str) -> str | None:
        return self.flat.get(key)

    @property
    def has_repeated_keys(self) -> bool:
        return len(self.received) != len({key for key, _ in self.received})


def parse_request(query: bytes, content_type: str | None, body: bytes) -> RequestParams:
    """Merge the query string and the body (form or JSON) into one RequestParams."""
    pairs = _parse_urlencoded(query, "query string")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if body.strip():
        pairs.extend(_parse_body(media_type, body))
    return RequestParams(received=tuple(pairs), flat=_normalize(pairs))


def _parse_body(media_type: str, body: bytes) -> list[tuple[str, str]]:
    if media_type == JSON or (not media_type and body.lstrip()[:1] == b"{"):
        return _parse_json(body)
    if media_type in (FORM, ""):
        return _parse_urlencoded(body, "form body")
    raise InvalidParameter(
        f"Content-Type {media_type} is not supported: send {FORM}, {JSON} or a GET query string"
    )


def _parse_urlencoded(data: bytes, where: str) -> list[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidParameter(
            f"The {where} is not valid URL encoding of UTF-8 text: percent-encode parameters"
        ) from exc


def _parse_json(body: bytes) -> list[tuple[str, str]]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"The JSON body is not valid JSON: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise InvalidParameter("The JSON body must be an object of parameters")
    if _nests_deeper_than(document, _MAX_JSON_DEPTH):
        raise InvalidParameter(
            f"The JSON body nests arrays and objects deeper than {_MAX_JSON_DEPTH} levels"
        )
    return list(flatten(document).items())


def _nests_deeper_than(document: object, limit: int) -> bool:
    # Iterative, so a hostile body cannot exhaust the recursion that flattening uses.
    pending: list[tuple[object, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return False


def _normalize(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    flat: dict[str, str] = {}
    for key, values in grouped.items():
        if len(values) == 1:
            _put(flat, key, values[0])
        else:
            for index, value in enumerate(values):
                _put(flat, f"{key}.{index}", value)
    return flat


def _put(flat: dict[str, str], key: str, value: str) -> None:
    if key in flat:
        base = _INDEXED.match(key)
        array = base.group("base") if base else key
        raise InvalidParameter(
            f"{array} is given twice: send an array either as {array}.0, {array}.1, … "
            f"or as a repeated {array}, not both"
        )
    flat[key] = value


# --- declarative schemas -------------------------------------------------------------------


def _allowed(description: str, secret: bool = False) -> dict[str, Any]:
    return {"allowed": description, "secret": secret}


def integer(low: int, high: int, default: int | None = None, required: bool = False) -> Any:
    """An integer parameter within [low, high]."""
    extra = _allowed(f"an integer from {low} to {high}")
    if required:
        return Field(ge=low, le=high, json_schema_extra=extra)
    return Field(default, ge=low, le=high, json_schema_extra=extra)


def text(
    description: str,
    *,
    pattern: str | None = None,
    max_length: int = 1024,
    default: str | None = None,
    required: bool = False,
    secret: bool = False,
) -> Any:
    """A string parameter; `description` says what is allowed, e.g. "1-64 characters of …"."""
    extra = _allowed(description, secret)
    pattern = pattern or _NO_CONTROL_CHARACTERS
    if required:
        return Field(min_length=1, max_length=max_length, pattern=pattern, json_schema_extra=extra)
    return Field(default, max_length=max_length, pattern=pattern, json_schema_extra=extra)


_RESOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_RESOURCE_ID_ALLOWED = "1-64 characters of [A-Za-z0-9._-], starting with a letter or digit"


def resource_id(*, required: bool) -> Any:
    """An InstanceID, ClusterId, NodeId or PackageId: the one id shape of every action."""
    return text(_RESOURCE_ID_ALLOWED, pattern=_RESOURCE_ID, max_length=64, required=required)


def choice(options: Iterable[str], default: str | None = None, required: bool = False) -> Any:
    """One of a fixed set of words (the field's type is the matching Literal)."""
    extra = _allowed("one of " + ", ".join(options))
    return Field(json_schema_extra=extra) if required else Field(default, json_schema_extra=extra)


def flag(default: bool = False) -> Any:
    return Field(default, json_schema_extra=_allowed("true or false"))


def texts(description: str, *, max_items: int = 100) -> Any:
    """An array of strings (`Key.0, Key.1, …`, a repeated key or a JSON array); may be empty."""
    extra = _allowed(description)
    return Field(default_factory=list, max_length=max_items, json_schema_extra=extra)


class ActionParams(BaseModel):
    """Base of every action's schema: field names are the wire names (`InstanceID`, `Limit`…)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, params: RequestParams) -> Any:
        """Validate `params` into this schema, or raise MissingParameter / InvalidParameter."""
        data = {name: _field_input(cls, name, params.flat) for name in cls.model_fields}
        present = {name: value for name, value in data.items() if value is not None}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise _first_problem(cls, exc, present) from exc


def _field_input(model: type[ActionParams], name: str, flat: Mapping[str, str]) -> Any:
    if not _is_array(model, name):
        # An empty value means "not given": SDKs send "" for unset optional strings.
        return flat.get(name) or None
    indexed = sorted(
        (int(match.group("index")), value)
        for key, value in flat.items()
        if (match := _INDEXED.match(key)) and match.group("base") == name
    )
    single = flat.get(name)
    if single is not None and indexed:
        raise InvalidParameter(f"{name} is given both as {name} and as {name}.N: send one form")
    if single is not None:
        return [single]
    return [value for _, value in indexed] if indexed else None


@cache  # bounded: the actions' schema fields; asked for every field of every call
def _is_array(model: type[ActionParams], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    candidates = (annotation, *get_args(annotation))
    return any(get_origin(candidate) is list for candidate in candidates)


def _first_problem(
    model: type[ActionParams], exc: ValidationError, data: Mapping[str, Any]
) -> MissingParameter | InvalidParameter:
    error: ErrorDetails = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    wire_name = ".".join(str(part) for part in error["loc"])
    extra = model.model_fields[name].json_schema_extra if name in model.model_fields else None
    allowed = str(extra.get("allowed", "")) if isinstance(extra, dict) else ""
    secret = bool(extra.get("secret", False)) if isinstance(extra, dict) else False
    if error["type"] == "missing":
        return MissingParameter(f"Missing parameter {wire_name}: it must be {allowed}")
    if error["type"] == "too_long" and isinstance(data.get(name), list):
        limit = error.get("ctx", {}).get("max_length")
        count = len(data[name])
        return InvalidParameter(f"{name} has too many items: at most {limit}, got {count}")
    got = "" if secret else f', got "{_echo(error["input"])}"'
    return InvalidParameter(f"{wire_name} must be {allowed}{got}")


def _echo(value: object) -> str:
    shown = value if isinstance(value, str) else str(value)
    return shown if len(shown) <= _ECHO_LIMIT else shown[:_ECHO_LIMIT] + "…"
