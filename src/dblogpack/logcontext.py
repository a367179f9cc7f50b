"""What a log line is about: the RequestUUID of the API call or the package a worker builds,
held in context variables and stamped on every record by `ContextFilter`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

REQUEST_UUID: ContextVar[str | None] = ContextVar("dblogpack_request_uuid", default=None)
PACKAGE_ID: ContextVar[str | None] = ContextVar("dblogpack_package_id", default=None)


@contextmanager
def _bound(variable: ContextVar[str | None], value: str) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def request_scope(request_uuid: str) -> AbstractContextManager[None]:
    """Log lines written inside carry `request_uuid` (threads started with its context too)."""
    return _bound(REQUEST_UUID, request_uuid)


def package_scope(package_id: str) -> AbstractContextManager[None]:
    """Log lines written inside carry `package_id`."""
    return _bound(PACKAGE_ID, package_id)


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
