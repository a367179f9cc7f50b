"""What a log line is about: the RequestUUID of the API call or the package a worker builds,
held in context variables and stamped on every record by `ContextFilter`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_UUID: ContextVar[str | None] = ContextVar("dblogpack_request_uuid", default=None)
PACKAGE_ID: ContextVar[str | None] = ContextVar("dblogpack_package_id", default=None)


@contextmanager
def request_scope(request_uuid: str) -> Iterator[None]:
    """Log lines written inside carry `request_uuid` (threads started with its context too)."""
    token = REQUEST_UUID.set(request_uuid)
    try:
        yield
    finally:
        REQUEST_UUID.reset(token)


@contextmanager
def package_scope(package_id: str) -> Iterator[None]:
    """Log lines written inside carry `package_id`."""
    token = PACKAGE_ID.set(package_id)
    try:
        yield
    finally:
        PACKAGE_ID.reset(token)


class ContextFilter(logging.Filter):
    """Adds `request_uuid` / `package_id` to each record from the current context.

    Attach it to a handler, so records of every logger (uvicorn's, the libraries') get them.
    A value the caller passed explicitly through `extra` is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in (("request_uuid", REQUEST_UUID), ("package_id", PACKAGE_ID)):
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True
