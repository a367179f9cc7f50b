"""The console's create-package form: its fields turned into the service's package request, with
the API's parameter names in every message, so a user reads the same words in both places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dblogpack.catalog.packages import PackageRecord
from dblogpack.errors import InvalidParameter, MissingParameter
from dblogpack.model import ResourceKind
from dblogpack.service import (
    MIN_DURATION_MAX,
    UNIX_MAX,
    Caller,
    Service,
    mongodb_log_kind,
    pgsql_log_kind,
)


@dataclass(frozen=True, slots=True)
class PackageForm:
    """What the user typed, kept to show the form again beside an error."""

    name: str = ""
    log_type: str = ""
    node_id: str = ""
    begin: str = ""
    end: str = ""
    begin_local: str = ""
    end_local: str = ""
    min_duration: str = ""
    files: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, fields: Mapping[str, str], files: Sequence[str]) -> PackageForm:
        def get(key: str) -> str:
            return fields.get(key, "").strip()

        return cls(
            name=get("name"), log_type=get("log_type"), node_id=get("node"), begin=get("begin"),
            end=get("end"), begin_local=get("begin_local"), end_local=get("end_local"),
            min_duration=get("min_duration"), files=tuple(files),
        )


def unix_of(unix_text: str, local_text: str, parameter: str) -> int | None:
    """A window edge: the unix seconds the page's script computed from the local time picker,
    else (no script) the picker's value read as UTC, else None when both are empty."""
    if unix_text:
        try:
            value = int(float(unix_text))
        except ValueError as exc:
            raise InvalidParameter(
                f"{parameter} must be a unix time, got {unix_text[:32]!r}"
            ) from exc
    elif local_text:
        try:
            value = int(datetime.fromisoformat(local_text).replace(tzinfo=UTC).timestamp())
        except ValueError as exc:
            raise InvalidParameter(
                f"{parameter} must be a date and time like 2024-05-01T13:45, "
                f"got {local_text[:32]!r}"
            ) from exc
    else:
        return None
    if not 0 <= value <= UNIX_MAX:
        raise InvalidParameter(f"{parameter} must be a unix time from 0 to {UNIX_MAX}, got {value}")
    return value


def _required(value: int | None, parameter: str) -> int:
    if value is None:
        raise MissingParameter(f"Missing parameter {parameter}: choose a date and time")
    return value


def min_duration_of(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) > MIN_DURATION_MAX:
        raise InvalidParameter(
            f"MinDuration must be a whole number of milliseconds from 0 to {MIN_DURATION_MAX}, "
            f"got {text[:32]!r}"
        )
    return int(text)


def submit_package(
    service: Service, caller: Caller, project_id: str, kind: ResourceKind, resource_id: str,
    form: PackageForm,
) -> PackageRecord:
    """Queue the package the form describes; the service's errors pass through unchanged."""
    if kind is ResourceKind.MONGODB:
        return _submit_mongodb(service, caller, project_id, resource_id, form)
    return service.backup_pgsql_log(
        caller, project_id, None, None, resource_id, name=form.name, files=form.files,
        log_type=pgsql_log_kind(form.log_type),
        begin=unix_of(form.begin, form.begin_local, "BeginTime"),
        end=unix_of(form.end, form.end_local, "EndTime"),
        min_duration_ms=min_duration_of(form.min_duration),
    )


def _submit_mongodb(
    service: Service, caller: Caller, project_id: str, cluster_id: str, form: PackageForm
) -> PackageRecord:
    if not form.node_id:
        raise MissingParameter("Missing parameter NodeId: choose a node of the cluster")
    return service.backup_mongodb_log(
        caller, project_id, None, None, cluster_id, node_id=form.node_id, name=form.name,
        log_type=mongodb_log_kind(form.log_type),
        begin=_required(unix_of(form.begin, form.begin_local, "Begin"), "Begin"),
        end=_required(unix_of(form.end, form.end_local, "End"), "End"),
        min_duration_ms=min_duration_of(form.min_duration),
    )
