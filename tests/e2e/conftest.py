"""Fixtures shared by the end-to-end tests; helpers go in tests/support."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.apiserver import ApiClient, ApiServer


@pytest.fixture(scope="module")
def client(server: ApiServer) -> Iterator[ApiClient]:
    """A signed HTTP client of the module's `server` fixture (a started `dblogpack serve`)."""
    with ApiClient(server) as api_client:
        yield api_client
