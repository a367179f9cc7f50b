"""The `/` endpoint: read and parse the request, authenticate and verify its signature,
rate-limit, dispatch to the action's handler, audit, and render every outcome as HTTP 200 JSON.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dblogpack.api.params import RequestParams, parse_request
from dblogpack.api.ratelimit import RateLimiter
from dblogpack.api.registry import ActionRegistry, Answer, CallContext
from dblogpack.api.signing import flatten, signature_matches, signature_of_pairs
from dblogpack.errors import (
    BadSignature,
    DblogpackError,
    InternalError,
    InvalidParameter,
    MissingAction,
    MissingSignature,
    RateLimited,
    UnknownPublicKey,
)
from dblogpack.logcontext import request_scope
from dblogpack.metrics import UNKNOWN_ACTION, observe_api_call
from dblogpack.service import Service

logger = logging.getLogger("dblogpack.api")
REQUEST_UUID_HEADER = "X-UCLOUD-REQUEST-UUID"
_COMMON_FIELDS = frozenset({"Action", "RetCode", "Message", "RequestUUID"})
_PUBLIC_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ApiOptions:
    max_body_bytes: int = 1 << 20
    rate_limit: float = 50.0  # requests per second per PublicKey; <= 0 disables


@dataclass(slots=True)
class _Outcome:
    """What one call produced: the answer fields, or the error that ended it."""

    action: str = ""
    answer: Answer | None = None
    error: DblogpackError | None = None

    @property
    def ret_code(self) -> int:
        return self.error.ret_code if self.error is not None else 0


class ApiEndpoint:
    """The request handler of `/` (GET and POST): `handle` is the Starlette endpoint."""

    def __init__(self, service: Service, actions: ActionRegistry, options: ApiOptions) -> None:
        self._service = service
        self._actions = actions
        self._options = options
        self._limiter = RateLimiter(options.rate_limit)
        self._action_names = frozenset(actions.names())

    async def handle(self, request: Request) -> JSONResponse:
        request_uuid = str(uuid.uuid4())
        started = time.perf_counter()
        with request_scope(request_uuid):
            outcome = await self._outcome(request, request_uuid)
            response = _render_safely(outcome, request_uuid)
            seconds = time.perf_counter() - started
            _log_call(outcome, request_uuid, seconds)
        self._observe(outcome, seconds)
        return response

    def _observe(self, outcome: _Outcome, seconds: float) -> None:
        # Only registered names become label values: callers choose the Action text.
        action = outcome.action if outcome.action in self._action_names else UNKNOWN_ACTION
        observe_api_call(action, outcome.ret_code, seconds)

    async def _outcome(self, request: Request, request_uuid: str) -> _Outcome:
        outcome = _Outcome()
        try:
            params = await self._read_params(request)
            outcome.action = params.get("Action") or ""
            remote = request.client.host if request.client else None
            outcome.answer = await run_in_threadpool(self._call, params, request_uuid, remote)
        except DblogpackError as exc:
            if exc.ret_code >= InternalError.ret_code:
                _log_internal_error(outcome, request_uuid)
            outcome.error = exc
        except Exception:
            _log_internal_error(outcome, request_uuid)
            outcome.error = InternalError()
        return outcome

    async def _read_params(self, request: Request) -> RequestParams:
        if request.method not in ("GET", "POST"):
            raise InvalidParameter(
                f"HTTP method {request.method} is not supported: use GET or POST"
            )
        body = await _read_body(request, self._options.max_body_bytes)
        query = request.scope.get("query_string", b"")
        return parse_request(query, request.headers.get("content-type"), body)

    def _call(self, params: RequestParams, request_uuid: str, remote: str | None) -> Answer:
        """Everything after parsing; runs in a worker thread since the service blocks."""
        action_name = params.get("Action")
        if not action_name:
            raise MissingAction("Missing Action: name the action, like Action=CreateProject")
        signature = params.get("Signature")
        if not signature:
            raise MissingSignature()
        public_key = params.get("PublicKey")
        if not public_key:
            raise UnknownPublicKey("Missing PublicKey: send the public key of your key pair")
        if not _PUBLIC_KEY.fullmatch(public_key):
            # No key looks like this: spare the database a lookup it may even refuse (NUL).
            raise UnknownPublicKey(f'PublicKey "{_printable(public_key)}" is unknown')
        caller, private_key = self._service.authenticate(public_key)
        if not self._limiter.allow(public_key):
            raise RateLimited()
        context = CallContext(self._service, caller, params, request_uuid)
        return self._audited(context, action_name, remote, private_key, signature)

    def _audited(
        self,
        context: CallContext,
        action_name: str,
        remote: str | None,
        private_key: str,
        signature: str,
    ) -> Answer:
        ret_code, answer, resource = InternalError.ret_code, None, None
        try:
            _verify_signature(context.params, private_key, signature)
            action = self._actions.get(action_name)
            resource = action.resource_of(context.params, None)
            answer = action.run(context)
            resource = action.resource_of(context.params, answer)
            ret_code = 0
            return answer
        except DblogpackError as exc:
            ret_code = exc.ret_code
            raise
        finally:
            self._record_audit(context, action_name, resource, ret_code, remote)

    def _record_audit(
        self,
        context: CallContext,
        action_name: str,
        resource: str | None,
        ret_code: int,
        remote: str | None,
    ) -> None:
        try:
            self._service.record_audit(
                request_uuid=context.request_uuid,
                public_key=context.caller.public_key,
                action=_printable(action_name),
                resource_id=_printable(resource) if resource else None,
                ret_code=ret_code,
                remote_addr=remote,
            )
        except Exception:
            # The call's own outcome stands; a lost audit record must be loud in the log.
            logger.exception("audit record lost, RequestUUID %s", context.request_uuid)


def _verify_signature(params: RequestParams, private_key: str, signature: str) -> None:
    """The signature covers the parameters as received; a repeated key (`K=a&K=b`) may also
    have been signed in its `K.0, K.1` form, as the SDKs flatten arrays."""
    candidates = [params.received]
    if params.has_repeated_keys:
        candidates.append(tuple(flatten(params.flat).items()))
    matched = False
    for pairs in candidates:
        matched |= signature_matches(signature_of_pairs(pairs, private_key), signature)
    if not matched:
        raise BadSignature()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> InvalidParameter:
    return InvalidParameter(f"Request body too large: at most {limit} bytes are accepted")


def _log_internal_error(outcome: _Outcome, request_uuid: str) -> None:
    logger.exception(
        "internal error in %s, RequestUUID %s", _printable(outcome.action), request_uuid,
        extra={"request_uuid": request_uuid},
    )


def _render_safely(outcome: _Outcome, request_uuid: str) -> JSONResponse:
    """The answer; one a handler filled with something JSON cannot hold becomes RetCode 5000."""
    try:
        return _render(outcome, request_uuid)
    except (TypeError, ValueError):
        _log_internal_error(outcome, request_uuid)
        return _render(_Outcome(outcome.action, None, InternalError()), request_uuid)


def _render(outcome: _Outcome, request_uuid: str) -> JSONResponse:
    ret_code, message = 0, ""
    if outcome.error is not None:
        ret_code = outcome.error.ret_code
        # An unexpected error's text may come from a library: never show it to the caller.
        message = outcome.error.message
        if ret_code >= InternalError.ret_code:
            message = _internal_message(request_uuid)
    body: dict[str, object] = {
        key: value for key, value in (outcome.answer or {}).items() if key not in _COMMON_FIELDS
    }
    body = {
        "Action": f"{outcome.action[:64]}Response",
        "RetCode": ret_code,
        "Message": message,
        "RequestUUID": request_uuid,
        **body,
    }
    return JSONResponse(body, headers={REQUEST_UUID_HEADER: request_uuid})


def _printable(value: str, limit: int = 64) -> str:
    """Caller-chosen text fit for a log line or an audit column: no control characters, short."""
    return _CONTROL_CHARACTERS.sub("?", value[:limit])


def _internal_message(request_uuid: str) -> str:
    return f"Internal error; the server log has the details under RequestUUID {request_uuid}"


def _log_call(outcome: _Outcome, request_uuid: str, seconds: float) -> None:
    ret_code = outcome.ret_code
    logger.info(
        "api %s RetCode=%d RequestUUID=%s %.1fms",
        _printable(outcome.action) or "-",
        ret_code,
        request_uuid,
        seconds * 1000,
        extra={"request_uuid": request_uuid, "action": _printable(outcome.action),
               "ret_code": ret_code},
    )
