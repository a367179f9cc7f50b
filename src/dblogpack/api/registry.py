"""The action registry: which `Action=` names exist, their parameter schema, admin-only flag
and handler, and the per-call context handlers receive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dblogpack.api.params import ActionParams, RequestParams
from dblogpack.errors import InvalidParameter, PermissionDenied, UnknownAction
from dblogpack.service import Caller, Service

Answer = Mapping[str, object]
Schema = TypeVar("Schema", bound=ActionParams)


@dataclass(slots=True)
class CallContext:
    """What a handler knows about the call it serves; `project_id` is resolved on first use."""

    service: Service
    caller: Caller
    params: RequestParams
    request_uuid: str
    _project_id: str | None = field(default=None, init=False)

    @property
    def region(self) -> str | None:
        return _placement(self.params, "Region", "cn-bj2")

    @property
    def zone(self) -> str | None:
        return _placement(self.params, "Zone", "cn-bj2-01")

    @property
    def project_id(self) -> str:
        """The request's ProjectId (or the key's default project), checked against the key."""
        if self._project_id is None:
            requested = self.params.get("ProjectId") or None
            self._project_id = self.service.resolve_project(self.caller, requested)
        return self._project_id


PLACEMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _placement(params: RequestParams, name: str, example: str) -> str | None:
    value = params.get(name) or None
    if value is not None and not PLACEMENT.fullmatch(value):
        raise InvalidParameter(
            f'{name} must be like {example}: 1-64 characters of [A-Za-z0-9_-], got "{value[:64]}"'
        )
    return value


Handler = Callable[[CallContext, Any], Answer]
TypedHandler = Callable[[CallContext, Schema], Answer]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    schema: type[ActionParams]
    handler: Handler
    admin_only: bool = False
    # Parameter or answer field naming the resource the call is about, for the audit record.
    resource_field: str | None = None

    def run(self, context: CallContext) -> Answer:
        # Admin rights are checked before the parameters, so others learn nothing of them.
        if self.admin_only and not context.caller.is_admin:
            raise PermissionDenied(f"Permission denied: {self.name} needs an admin key")
        return self.handler(context, self.schema.parse(context.params))

    def resource_of(self, params: RequestParams, answer: Answer | None) -> str | None:
        if self.resource_field is None:
            return None
        if answer is not None and isinstance(answer.get(self.resource_field), str):
            return str(answer[self.resource_field])
        return params.get(self.resource_field) or None


class ActionRegistry:
    """A set of actions; modules declare theirs with `@registry.action(...)`."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        for action in actions:
            self.add(action)

    def add(self, action: Action) -> None:
        if action.name in self._actions:
            raise ValueError(f"action {action.name} is registered twice")
        self._actions[action.name] = action

    def action(
        self,
        name: str,
        schema: type[Schema],
        *,
        admin_only: bool = False,
        resource_field: str | None = None,
    ) -> Callable[[TypedHandler[Schema]], TypedHandler[Schema]]:
        def register(handler: TypedHandler[Schema]) -> TypedHandler[Schema]:
            self.add(Action(name, schema, handler, admin_only, resource_field))
            return handler

        return register

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownAction(f"Unknown Action {_shown(name)}: see docs/api.md") from None

    def names(self) -> list[str]:
        return sorted(self._actions)

    def merged(self, *others: ActionRegistry) -> ActionRegistry:
        combined = ActionRegistry(self._actions.values())
        for other in others:
            for action in other._actions.values():
                combined.add(action)
        return combined


def _shown(name: str) -> str:
    return name if len(name) <= 64 else name[:64] + "…"
