"""What the package actions share: `PackageInfo` as the wire shows it, and the parameter types
of windows, pages and synchronous log reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from dblogpack.api.params import ActionParams, integer
from dblogpack.catalog.packages import PackageRecord
from dblogpack.model import ResourceKind
from dblogpack.service import MIN_DURATION_MAX, PACKAGE_TYPES, UNIX_MAX, Excerpt


def unix_seconds(required: bool = False) -> Any:
    """A whole unix time in seconds."""
    return integer(0, UNIX_MAX, required=required)


def unix_time(required: bool = False) -> Any:
    """A unix time in seconds, fractions allowed (what `NextTime` gives back)."""
    extra: dict[str, JsonValue] = {
        "allowed": f"a unix time in seconds from 0 to {UNIX_MAX}",
        "secret": False,
    }
    if required:
        return Field(ge=0, le=UNIX_MAX, json_schema_extra=extra)
    return Field(None, ge=0, le=UNIX_MAX, json_schema_extra=extra)


def min_duration() -> Any:
    return integer(0, MIN_DURATION_MAX)


class Page(ActionParams):
    Offset: int = integer(0, 1_000_000_000, default=0)
    Limit: int = integer(1, 1000, default=20)


def whole_seconds(value: float | None) -> int:
    """A time as the wire shows it: whole unix seconds, 0 when not (yet) known."""
    return int(value) if value is not None else 0


def package_info(package: PackageRecord) -> dict[str, object]:
    """One `PackageInfo` (DESIGN §4); times are unix seconds, 0 when not (yet) known."""
    resource = "InstanceID" if package.kind is ResourceKind.PGSQL else "ClusterId"
    return {
        "Id": package.id,
        "Name": package.name,
        "State": package.state.value,
        "Size": package.size or 0,
        "Progress": package.progress,
        "PackageType": PACKAGE_TYPES[package.log_type],
        resource: package.resource_id,
        "NodeId": package.node_id or "",
        "Role": package.role or "",
        "Begin": whole_seconds(package.begin),
        "End": whole_seconds(package.end),
        "CreateTime": whole_seconds(package.created_at),
        "FinishTime": whole_seconds(package.finished_at),
        "ExpireTime": whole_seconds(package.expires_at),
        "Message": package.message,
        "EntryCount": package.entry_count or 0,
        "Checksum": package.checksum or "",
    }


def excerpt_answer(excerpt: Excerpt, max_line: int) -> dict[str, object]:
    """The answer of a synchronous log read: the lines, the cap applied, whether more follow."""
    return {
        "Log": excerpt.text,
        "MaxLine": max_line,
        "LineCount": excerpt.lines,
        "IsTruncate": excerpt.truncated,
        "NextTime": excerpt.next_time if excerpt.next_time is not None else 0,
    }
