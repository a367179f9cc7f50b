"""The web console at `/console`: pages, templates and static assets over the service.

`console_routes(services)` is what the HTTP surface mounts; every asset is served from here.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dblogpack.app import Services
from dblogpack.console.pages import Console
from dblogpack.console.session import SessionSealer

__all__ = ["console_routes"]

_STATIC = Path(__file__).with_name("static")
_PACKAGE = "/r/{project}/{kind}/{resource_id}/packages/{package_id}"


def console_routes(services: Services) -> list[BaseRoute]:
    """The console's routes, all under `/console`."""
    console = Console(services.service, SessionSealer(services.box.signing_key))
    page = console.signed_in
    resource = "/r/{project}/{kind}/{resource_id}"
    routes: list[BaseRoute] = [
        Route("/", page(console.home), name="home"),
        Route("/signin", console.signin_form, name="signin", methods=["GET"]),
        Route("/signin", console.signin, methods=["POST"]),
        Route("/signout", page(console.signout), name="signout", methods=["POST"]),
        Route("/p/{project}", page(console.project), name="project"),
        Route("/p/{project}/open", page(console.open_resource), name="open"),
        Route(resource, page(console.resource), name="resource", methods=["GET"]),
        Route(resource, page(console.create), methods=["POST"]),
        Route(resource + "/progress", page(console.progress), name="progress"),
        Route(_PACKAGE + "/download", page(console.download), name="download"),
        Route(_PACKAGE + "/delete", page(console.delete), name="delete", methods=["POST"]),
        Route(_PACKAGE + "/summary", page(console.summary), name="summary"),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]
    return [
        # `/console` itself, typed by hand: the API's catch-all mount would otherwise take it.
        Route("/console", _to_console_root, methods=["GET"]),
        Mount("/console", routes=routes, name="console"),
    ]


async def _to_console_root(request: Request) -> Response:
    return RedirectResponse(request.url_for("console:home"), 307)
