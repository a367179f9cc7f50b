"""The console's pages: sign-in, a project's resources, a resource's packages (create, progress,
download, delete) and a package's summary. Every operation is a call of the service.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from dblogpack.catalog.packages import PackageRecord
from dblogpack.console.forms import PackageForm, submit_package
from dblogpack.console.resources import (
    ProjectResources,
    ResourceView,
    project_resources,
    resource_view,
)
from dblogpack.console.session import COOKIE_NAME, SESSION_SECONDS, Session, SessionSealer
from dblogpack.errors import (
    BadSignature,
    DblogpackError,
    InternalError,
    MissingParameter,
    NotFound,
    ProjectNotFound,
    UnknownPublicKey,
)
from dblogpack.model import PackageState, ResourceKind
from dblogpack.service import PACKAGE_TYPES, Caller, Service

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
PAGE_SIZE = 100
MAX_FORM_BYTES = 256 * 1024
T = TypeVar("T")
# Audit actions of the console: the API's action names, marked as made through the console.
_BACKUP_ACTIONS = {ResourceKind.MONGODB: "BackupUMongoDBLog", ResourceKind.PGSQL: "BackupUPgSQLLog"}
_DELETE_ACTIONS = {
    ResourceKind.MONGODB: "DeleteUMongoDBLogPackage", ResourceKind.PGSQL: "DeleteUPgSQLLogPackage"
}


def _utc(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int | None) -> str:
    if value is None:
        return ""
    if value < 1024:
        return f"{value} B"
    size = value / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


TEMPLATES.env.filters["utc"] = _utc
TEMPLATES.env.filters["size"] = _size
TEMPLATES.env.globals["package_types"] = PACKAGE_TYPES


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in user of this request: the session, the key's caller and the CSRF token."""

    session: Session
    caller: Caller
    csrf: str


Page = Callable[[Request, Visitor], Awaitable[Response]]


class Console:
    """The console's handlers over one service; `sealer` signs its session cookies."""

    def __init__(self, service: Service, sealer: SessionSealer) -> None:
        self.service = service
        self.sealer = sealer

    # -- sessions --------------------------------------------------------------------------

    def visitor(self, request: Request) -> Visitor | None:
        session = self.sealer.open(request.cookies.get(COOKIE_NAME), time.time())
        if session is None:
            return None
        try:
            caller, _ = self.service.authenticate(session.public_key)
        except UnknownPublicKey:
            return None  # the key was deleted since: its sessions end with it
        return Visitor(session, caller, self.sealer.csrf_token(session))

    def signed_in(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        """`page` for signed-in visitors whose POSTs carry their CSRF token; others sign in."""

        async def endpoint(request: Request) -> Response:
            if refusal := _refusal(request):
                return _refused(request, refusal)
            visitor = await run_in_threadpool(self.visitor, request)
            if visitor is None:
                return RedirectResponse(request.url_for("console:signin"), 303)
            if request.method == "POST":
                form = await request.form()
                if not self.sealer.csrf_valid(visitor.session, str(form.get("csrf", ""))):
                    return _refused(
                        request, "this form has expired: reload the page and submit it again"
                    )
            try:
                return await page(request, visitor)
            except DblogpackError as exc:
                return _error_page(request, visitor, exc)

        return endpoint

    async def signin_form(self, request: Request) -> Response:
        return _render(request, "signin.html", _signin_context(request, "", ""))

    async def signin(self, request: Request) -> Response:
        if refusal := _refusal(request):
            return _refused(request, refusal)
        form = await request.form()
        public_key = str(form.get("public_key", "")).strip()
        private_key = str(form.get("private_key", "")).strip()
        problem, ret_code = await run_in_threadpool(self._check_pair, public_key, private_key)
        if public_key:
            await run_in_threadpool(self._record, request, public_key, "SignIn", None, ret_code)
        if problem:
            context = _signin_context(request, public_key, problem)
            return _render(request, "signin.html", context, 401)
        session = self.sealer.new_session(public_key, time.time())
        response = RedirectResponse(request.url_for("console:home"), 303)
        response.set_cookie(
            COOKIE_NAME, self.sealer.seal(session), max_age=SESSION_SECONDS, path="/console",
            secure=True, httponly=True, samesite="strict",
        )
        return response

    def _check_pair(self, public_key: str, private_key: str) -> tuple[str, int]:
        """Why this key pair cannot sign in ("" when it can), and the RetCode the API would give."""
        if not public_key or not private_key:
            return "enter both the PublicKey and the PrivateKey", MissingParameter.ret_code
        try:
            _, expected = self.service.authenticate(public_key)
        except UnknownPublicKey as exc:
            return exc.message, exc.ret_code
        if not hmac.compare_digest(expected.encode(), private_key.encode()):
            return "this PrivateKey does not belong to this PublicKey", BadSignature.ret_code
        return "", 0

    async def signout(self, request: Request, visitor: Visitor) -> Response:
        response = RedirectResponse(request.url_for("console:signin"), 303)
        response.delete_cookie(COOKIE_NAME, path="/console", secure=True, httponly=True,
                               samesite="strict")
        return response

    # -- pages -----------------------------------------------------------------------------

    async def home(self, request: Request, visitor: Visitor) -> Response:
        project = request.query_params.get("project") or visitor.caller.default_project_id
        project = project or min(visitor.caller.project_ids, default="")
        if not project:
            raise ProjectNotFound("this key has no project")
        return RedirectResponse(request.url_for("console:project", project=project), 303)

    async def project(self, request: Request, visitor: Visitor) -> Response:
        project = self._project(request, visitor)
        found: ProjectResources = await run_in_threadpool(
            project_resources, self.service, visitor.caller, project
        )
        context = {"resources": found}
        return _render(request, "project.html", _context(visitor, project, context))

    async def open_resource(self, request: Request, visitor: Visitor) -> Response:
        """A resource named by its id (what keys that may not list resources use)."""
        project = self._project(request, visitor)
        kind = _kind(request.query_params.get("kind", ""))
        resource_id = request.query_params.get("id", "").strip()
        url = request.url_for("console:resource", project=project, kind=kind.value,
                              resource_id=resource_id or "-")
        return RedirectResponse(url, 303)

    async def resource(self, request: Request, visitor: Visitor) -> Response:
        return await self._resource_page(request, visitor, PackageForm(), "", 200)

    async def create(self, request: Request, visitor: Visitor) -> Response:
        project, kind, resource_id = self._resource_path(request, visitor)
        fields = await request.form()
        form = PackageForm.of(_text_fields(fields), [str(v) for v in fields.getlist("file")])
        try:
            package = await self._audited(
                request, visitor.caller.public_key, _BACKUP_ACTIONS[kind], resource_id,
                lambda: submit_package(
                    self.service, visitor.caller, project, kind, resource_id, form
                ),
            )
        except DblogpackError as exc:
            return await self._resource_page(request, visitor, form, exc.message, 400)
        url = request.url_for("console:resource", project=project, kind=kind.value,
                              resource_id=resource_id)
        return RedirectResponse(f"{url}?created={package.id}", 303)

    async def _resource_page(
        self, request: Request, visitor: Visitor, form: PackageForm, error: str, status: int
    ) -> Response:
        project, kind, resource_id = self._resource_path(request, visitor)
        view: ResourceView = await run_in_threadpool(
            resource_view, self.service, visitor.caller, project, kind, resource_id, PAGE_SIZE
        )
        context = {
            "view": view, "form": form, "error": error, "now": int(time.time()),
            "created": request.query_params.get("created", ""),
            "deleted": request.query_params.get("deleted", ""),
        }
        return _render(request, "resource.html", _context(visitor, project, context), status)

    async def progress(self, request: Request, visitor: Visitor) -> Response:
        """The packages' states as JSON, for the page's script to show live progress."""
        project, kind, resource_id = self._resource_path(request, visitor)
        packages, _ = await run_in_threadpool(
            self.service.list_packages, visitor.caller, project, None, None, kind, resource_id,
            None, 0, PAGE_SIZE,
        )
        return JSONResponse({"packages": [_progress_of(p) for p in packages]})

    async def download(self, request: Request, visitor: Visitor) -> Response:
        project, kind, resource_id = self._resource_path(request, visitor)
        links = await run_in_threadpool(
            self.service.package_links, visitor.caller, project, None, None, kind, resource_id,
            request.path_params["package_id"], None,
        )
        return RedirectResponse(links.public, 303)

    async def delete(self, request: Request, visitor: Visitor) -> Response:
        project, kind, resource_id = self._resource_path(request, visitor)
        package_id = request.path_params["package_id"]
        final = await self._audited(
            request, visitor.caller.public_key, _DELETE_ACTIONS[kind], package_id,
            lambda: self.service.remove_package(
                visitor.caller, project, None, None, kind, resource_id, package_id
            ),
        )
        url = request.url_for("console:resource", project=project, kind=kind.value,
                              resource_id=resource_id)
        return RedirectResponse(f"{url}?deleted={final.name}", 303)

    async def summary(self, request: Request, visitor: Visitor) -> Response:
        project, kind, resource_id = self._resource_path(request, visitor)
        package_id = request.path_params["package_id"]
        package, summary = await run_in_threadpool(
            self._package_and_summary, visitor.caller, project, kind, resource_id, package_id
        )
        context = {"package": package, "summary": summary, "kind": kind.value,
                   "resource_id": resource_id}
        return _render(request, "summary.html", _context(visitor, project, context))

    def _package_and_summary(
        self, caller: Caller, project: str, kind: ResourceKind, resource_id: str, package_id: str
    ) -> tuple[PackageRecord, dict[str, Any]]:
        args = (caller, project, None, None, kind, resource_id, package_id)
        return self.service.get_package(*args), self.service.package_summary(*args)

    # -- helpers ---------------------------------------------------------------------------

    async def _audited(
        self, request: Request, public_key: str, action: str, resource_id: str,
        call: Callable[[], T],
    ) -> T:
        """Run a changing operation and leave the audit record a signed API call would."""
        ret_code = InternalError.ret_code  # unless the call answers or says what went wrong
        try:
            result = await run_in_threadpool(call)
            ret_code = 0
            return result
        except DblogpackError as exc:
            ret_code = exc.ret_code
            raise
        finally:
            await run_in_threadpool(self._record, request, public_key, action, resource_id,
                                    ret_code)

    def _record(
        self, request: Request, public_key: str, action: str, resource_id: str | None,
        ret_code: int,
    ) -> None:
        self.service.record_audit(
            # The catalog fits each value to its column (audit._fit): nothing to cut here.
            request_uuid=str(uuid.uuid4()), public_key=public_key,
            action=f"Console.{action}", resource_id=resource_id or None,
            ret_code=ret_code, remote_addr=request.client.host if request.client else None,
        )

    def _project(self, request: Request, visitor: Visitor) -> str:
        return self.service.resolve_project(visitor.caller, request.path_params["project"])

    def _resource_path(self, request: Request, visitor: Visitor) -> tuple[str, ResourceKind, str]:
        project = self._project(request, visitor)
        return project, _kind(request.path_params["kind"]), request.path_params["resource_id"]


def _kind(text: str) -> ResourceKind:
    try:
        return ResourceKind(text)
    except ValueError as exc:
        raise NotFound(f"no such kind of resource: {text[:32]!r}") from exc


def _text_fields(form: FormData) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _progress_of(package: PackageRecord) -> dict[str, object]:
    return {
        "id": package.id, "state": package.state.value, "progress": package.progress,
        "message": package.message, "size": _size(package.size),
        "entries": package.entry_count, "final": package.state is not PackageState.RUNNING,
        "queued": package.queued,
    }


def _same_origin(request: Request) -> bool:
    """Refuse a POST another site's page sends (SameSite=Strict is the first guard)."""
    origin = request.headers.get("origin")
    if request.method != "POST" or origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def _refusal(request: Request) -> str:
    """Why a request is refused before it is read ("" when it is not)."""
    if not _same_origin(request):
        return "cross-site request refused"
    # The console's forms are small; a large body is not one of them (browsers send its length).
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        return f"request refused: the console's forms are smaller than {MAX_FORM_BYTES} bytes"
    return ""


def _refused(request: Request, message: str) -> Response:
    return _render(request, "error.html", {"message": message}, 403)


def _signin_context(request: Request, public_key: str, error: str) -> dict[str, Any]:
    # Browsers keep a Secure cookie only over https or on this machine (loopback).
    insecure = request.url.scheme != "https" and request.url.hostname not in _LOOPBACK_HOSTS
    return {"public_key": public_key, "error": error, "insecure": insecure}


def _context(visitor: Visitor, project: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"visitor": visitor, "project": project,
            "projects": sorted(visitor.caller.project_ids), **extra}


def _error_page(request: Request, visitor: Visitor, exc: DblogpackError) -> Response:
    status = 404 if isinstance(exc, NotFound | ProjectNotFound) else 400
    context = _context(visitor, "", {"message": exc.message})
    return _render(request, "error.html", context, status)


def _render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)
