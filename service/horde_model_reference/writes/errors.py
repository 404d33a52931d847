"""Write-path exceptions, each with a stable `code` (the `WriteErrorReply.code` on the wire).

Errors shared with the rest of the package keep their own types; `error_reply` maps them too:
`UnknownCategoryError` -> unknown_category, `InvalidModelNameError` -> invalid_name,
`RecordDecodeError` -> invalid_record, `ModelNotFoundError` -> not_found, `ConflictError` ->
conflict, `CategoryNotFoundError` -> not_served.
"""

from __future__ import annotations

import reprlib
from typing import ClassVar

from horde_model_reference.errors import (
    BackendError,
    CatalogDecodeError,
    CategoryNotFoundError,
    ConflictError,
    InvalidModelNameError,
    ModelNotFoundError,
    ModelReferenceError,
    RecordDecodeError,
    UnknownCategoryError,
)
from horde_model_reference.writes.contracts import WriteErrorReply

__all__ = [
    "ApplyBusyError",
    "AuthUnavailableError",
    "ChangeNotFoundError",
    "ChangeStateError",
    "ForbiddenError",
    "InvalidRequestError",
    "PayloadTooLargeError",
    "QueueFullError",
    "RateLimitedError",
    "ReasonRequiredError",
    "RecordExistsError",
    "SelfReviewError",
    "UnauthorizedError",
    "WriteError",
    "WritesUnavailableError",
    "bounded",
    "error_code",
    "error_reply",
]


class WriteError(ModelReferenceError):
    """Base class of the write path's own errors."""

    code: ClassVar[str] = "write_error"


class UnauthorizedError(WriteError):
    """No API key, an unknown one, or no allowlist configured at all (fail closed)."""

    code = "unauthorized"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ForbiddenError(WriteError):
    """A known key without the role the command needs (a requester trying to approve)."""

    code = "forbidden"

    def __init__(self, actor: str, role: str, command: str) -> None:
        self.actor = actor
        self.role = role
        self.command = command
        super().__init__(f"{actor} may not {command}: the {role} role is required")


class SelfReviewError(ForbiddenError):
    """The "two people" rule: an approver approving or applying a change it proposed itself."""

    def __init__(self, actor: str, command: str, change_id: int) -> None:
        WriteError.__init__(
            self, f"{actor} may not {command} change {change_id}: it proposed it (two people are required)"
        )
        self.actor = actor
        self.role = "approver"
        self.command = command
        self.change_id = change_id


class RateLimitedError(WriteError):
    """A caller over its rate limit (`propose_rate` or `command_rate`); try again after `retry_after` s."""

    code = "rate_limited"

    def __init__(self, actor: str, limit: str, retry_after: float) -> None:
        self.actor = actor
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"{actor} is over its rate limit of {limit}; try again in {retry_after:.0f}s")


class QueueFullError(WriteError):
    """Too many pending changes (in all, or of one requester): nothing more is queued until some are handled."""

    code = "queue_full"

    def __init__(self, pending: int, limit: int, *, actor: str | None = None) -> None:
        self.size = pending
        self.limit = limit
        self.actor = actor
        whose = f"{actor} has" if actor is not None else "the queue holds"
        super().__init__(f"{whose} {pending} pending changes, the limit is {limit}: wait for reviews")


class AuthUnavailableError(WriteError):
    """The AI-Horde find_user endpoint could not be asked (timeout, connection error)."""

    code = "auth_unavailable"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot verify the API key at {url}: {reason}")


class InvalidRequestError(WriteError, ValueError):
    """A command field with a value that cannot be used."""

    code = "bad_request"

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={reprlib.repr(value)}: {reason}")


class PayloadTooLargeError(WriteError, ValueError):
    """A proposed record (or request) larger than `max_payload_bytes`."""

    code = "too_large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"payload of {size} bytes exceeds the limit of {limit} bytes")


class RecordExistsError(WriteError):
    """A create of a record that already exists."""

    code = "already_exists"

    def __init__(self, category: str, name: str) -> None:
        self.category = category
        self.name = name
        super().__init__(f"model {name!r} already exists in category {category!r}: propose an update")


class ChangeNotFoundError(WriteError, LookupError):
    """A change id (or batch) that is not in the queue."""

    code = "change_not_found"

    def __init__(self, change_id: int | str) -> None:
        self.change_id = change_id
        super().__init__(f"change {change_id!r} is not in the queue")


class ChangeStateError(WriteError):
    """A transition from the wrong state (approve of a non-pending change, apply of a non-approved one)."""

    code = "invalid_state"

    def __init__(self, change_id: int, status: str, expected: str) -> None:
        self.change_id = change_id
        self.status = status
        self.expected = expected
        super().__init__(f"change {change_id} is {status}, not {expected}")


class ReasonRequiredError(WriteError, ValueError):
    """A reject without a reason."""

    code = "reason_required"

    def __init__(self, change_ids: list[int]) -> None:
        self.change_ids = change_ids
        super().__init__(f"rejecting changes {change_ids} needs a non-empty reason")


class WritesUnavailableError(WriteError):
    """This service cannot write (a REPLICA, a read-only backend, or the write path is not running)."""

    code = "read_only"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"writes are not available here: {reason}")


class ApplyBusyError(WriteError):
    """Another applier (any process) held the apply lock for longer than the timeout."""

    code = "busy"

    def __init__(self, timeout: float) -> None:
        self.limit = timeout
        super().__init__(f"another apply is still running after {timeout:.0f}s; try again")


_SHARED_CODES: tuple[tuple[type[Exception], str], ...] = (
    (UnknownCategoryError, "unknown_category"),
    (InvalidModelNameError, "invalid_name"),
    (RecordDecodeError, "invalid_record"),
    (ModelNotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (CategoryNotFoundError, "not_served"),
    (CatalogDecodeError, "catalog_unreadable"),
    (BackendError, "backend_error"),
)
_DETAIL_FIELDS = (
    "category",
    "name",
    "change_id",
    "status",
    "expected",
    "actual",
    "field",
    "reason",
    "size",
    "limit",
    "role",
    "actor",
    "retry_after",
)


MAX_ECHO = 512
"""The most characters of a message or detail a refusal carries (inputs can be large)."""


def bounded(text: str, limit: int = MAX_ECHO) -> str:
    """`text`, cut to `limit` characters (with a note of how much was cut)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def error_code(exc: BaseException) -> str:
    """The wire code of `exc` ("internal" for anything unexpected)."""
    if isinstance(exc, WriteError):
        return exc.code
    for kind, code in _SHARED_CODES:
        if isinstance(exc, kind):
            return code
    return "internal"


def _detail(value: object) -> str | int | float | None:
    if value is None or isinstance(value, int | float):
        return value
    return bounded(value if isinstance(value, str) else str(value))


def error_reply(exc: BaseException, request_id: str | None) -> WriteErrorReply:
    """The `WriteErrorReply` for `exc`; unexpected errors get a generic message (details are logged)."""
    code = error_code(exc)
    if code == "internal":
        return WriteErrorReply(
            code=code, message="the service failed to handle the command", request_id=request_id
        )
    details = {name: _detail(getattr(exc, name)) for name in _DETAIL_FIELDS if hasattr(exc, name)}
    if isinstance(exc, InvalidModelNameError):
        details["name"] = _detail(exc.name)
    return WriteErrorReply(code=code, message=bounded(str(exc)), details=details, request_id=request_id)
