"""The UCloud-style signed `Action=` HTTP API: `create_asgi_app(service)` serves it at `/`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from dblogpack.api.admin import ACTIONS as ADMIN_ACTIONS
from dblogpack.api.downloads import download_routes
from dblogpack.api.endpoint import ApiEndpoint, ApiOptions
from dblogpack.api.mongodb import ACTIONS as MONGODB_ACTIONS
from dblogpack.api.pgsql import ACTIONS as PGSQL_ACTIONS
from dblogpack.api.registry import ActionRegistry
from dblogpack.service import Service

__all__ = ["ApiOptions", "all_actions", "api_routes", "create_asgi_app", "download_routes"]


def all_actions() -> ActionRegistry:
    """Every action this server answers; any other `Action` is RetCode 161."""
    return ActionRegistry().merged(ADMIN_ACTIONS, PGSQL_ACTIONS, MONGODB_ACTIONS)


def api_routes(service: Service, options: ApiOptions | None = None) -> list[BaseRoute]:
    """The `/` route, for an application that also serves other paths."""
    endpoint = ApiEndpoint(service, all_actions(), options or ApiOptions())
    # Every method is routed so that even a PUT gets the JSON answer SDKs expect (RetCode 230).
    return [Route("/", endpoint.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]


def create_asgi_app(service: Service, options: ApiOptions | None = None) -> Starlette:
    """A Starlette application answering the API at `/` (GET and POST)."""
    return Starlette(routes=api_routes(service, options))
