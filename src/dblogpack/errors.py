"""The error tree. Each API-facing class carries its RetCode; its docstring is its default message.

Codes below 2000 are final: the official SDKs retry codes above 2000, so a
validation error must never use one.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see records.py)
if TYPE_CHECKING:
    from typing import ClassVar


class DblogpackError(Exception):
    """Internal error."""

    ret_code: ClassVar[int] = 5000

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class RateLimited(DblogpackError):
    """Too many requests for this key; slow down and retry."""

    ret_code = 153


class MissingAction(DblogpackError):
    """Missing Action: every request names its Action."""

    ret_code = 160


class UnknownAction(DblogpackError):
    """Unknown Action."""

    ret_code = 161


class MissingSignature(DblogpackError):
    """Missing Signature: sign every request with your private key."""

    ret_code = 170


class BadSignature(DblogpackError):
    """Signature does not match: check the private key and that every parameter was signed."""

    ret_code = 171


class UnknownPublicKey(DblogpackError):
    """PublicKey is unknown."""

    ret_code = 172


class MissingParameter(DblogpackError):
    """A required parameter is missing."""

    ret_code = 220


class InvalidParameter(DblogpackError):
    """A parameter has an invalid value."""

    ret_code = 230


class ProjectNotFound(DblogpackError):
    """Project not found or not granted to this key."""

    ret_code = 292


class PermissionDenied(DblogpackError):
    """Permission denied: this action needs an admin key."""

    ret_code = 299


class NotFound(DblogpackError):
    """Resource or package not found."""

    ret_code = 1001


class NameConflict(DblogpackError):
    """The name is already used by a package with other parameters."""

    ret_code = 1002


class StateConflict(DblogpackError):
    """The package's state does not allow this."""

    ret_code = 1003


class NodeBusy(DblogpackError):
    """Too many packages are running on this node; wait for one to finish."""

    ret_code = 1004


class InternalError(DblogpackError):
    """Internal error."""

    ret_code = 5000


# Errors of the pipeline stages. They are not RetCodes by themselves: the
# service decides what each means for the caller (a registration refused with
# 230, a package failed with its Message).


class ConfigError(DblogpackError):
    """Invalid configuration."""


class SourceError(DblogpackError):
    """The log source could not be read."""


class FileVanishedError(SourceError):
    """A listed log file is gone (rotated away or deleted): a manifest warning, not a failure."""


class FormatError(DblogpackError):
    """The log format could not be determined or is not supported."""


class StoreError(DblogpackError):
    """The package store failed."""
