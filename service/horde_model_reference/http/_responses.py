"""JSON responses, errors as `{"detail": "..."}`, conditional requests and query parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from horde_model_reference.bus.events import Snapshot
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import CategoryNotFoundError, UnknownCategoryError
from horde_model_reference.logs import get_logger
from horde_model_reference.writes.errors import bounded

__all__ = [
    "JSON",
    "ApiError",
    "QueryParams",
    "category_or_404",
    "exception_handlers",
    "json_response",
    "not_modified",
    "snapshot_or_404",
]

JSON = "application/json"
_log = get_logger(__name__)
_ENCODER = msgspec.json.Encoder()
_TRUE = frozenset(("true", "1", "yes", "on", "t", "y"))
_FALSE = frozenset(("false", "0", "no", "off", "f", "n"))


class ApiError(Exception):
    """An error answered as `{"detail": message}` with `status`."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def json_response(value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """`value` encoded with msgspec (Structs, dicts, lists, ...)."""
    return Response(_ENCODER.encode(value), status_code=status, headers=headers, media_type=JSON)


def _error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"detail": bounded(detail)}, status=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(exc.status, exc.detail, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return _error_response(exc.status_code, str(detail), exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    _log.error(
        "http_internal_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}", exc_info=exc
    )
    return _error_response(500, f"internal server error ({type(exc).__name__}); see the service log")


exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    Exception: _server_error,
}
"""For `Starlette(exception_handlers=...)`."""


def category_or_404(value: str) -> MODEL_REFERENCE_CATEGORY:
    """The category named by a path segment (aliases accepted); 404 naming the valid ones."""
    try:
        return parse_category(value)
    except UnknownCategoryError as exc:
        raise ApiError(404, str(exc)) from None


def snapshot_or_404(source: Any, category: MODEL_REFERENCE_CATEGORY) -> Snapshot:
    """The category's current snapshot; 404 when the server has none for it."""
    try:
        snapshot: Snapshot | None = source.snapshot(category)
    except CategoryNotFoundError as exc:
        raise ApiError(404, f"category {category.value!r}: {exc.reason}") from None
    if snapshot is None:
        raise ApiError(404, f"category {category.value!r} has no catalog on this server")
    return snapshot


def not_modified(request: Request, etag: str) -> bool:
    """Whether `If-None-Match` matches `etag` (weak comparison, `*` matches anything)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class QueryParams:
    """Typed access to query parameters; a bad value is a 422 naming the parameter."""

    def __init__(self, request: Request) -> None:
        self._params = request.query_params

    def text(self, name: str) -> str | None:
        """The parameter's last value, or None."""
        return self._params.get(name)

    def texts(self, name: str) -> list[str] | None:
        """Every value of a repeated parameter (`?tag=a&tag=b`), or None when absent."""
        values = self._params.getlist(name)
        return values or None

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        """true/false, 1/0, yes/no, on/off (any case)."""
        value = self._params.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ApiError(422, f"query parameter {name!r}: expected a boolean (true or false), got {value!r}")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        """An integer within [minimum, maximum]."""
        value = self._params.get(name)
        if value is None:
            return default
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        try:
            number = int(value)
        except ValueError:
            raise ApiError(
                422, f"query parameter {name!r}: expected an integer {bound}, got {value!r}"
            ) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ApiError(422, f"query parameter {name!r}: must be {bound}, got {number}")
        return number

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        """An integer >= minimum, or None when absent."""
        if self._params.get(name) is None:
            return None
        return self.integer(name, minimum, minimum=minimum)

    def number(self, name: str) -> float | None:
        """A finite number (`1.5`, `1e9`), or None when absent."""
        value = self._params.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ApiError(422, f"query parameter {name!r}: expected a number, got {value!r}")
        return number

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """One of `choices`."""
        value = self._params.get(name)
        if value is None:
            return default
        if value not in choices:
            raise ApiError(
                422, f"query parameter {name!r}: must be one of {', '.join(choices)}, got {value!r}"
            )
        return value
