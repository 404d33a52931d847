"""The write workflow over HTTP: today's primary's write paths, each one command of the bus.

Every request becomes the write command the bus carries (`writes.contracts`), run by the running
`WriteService` (`handle`): the same authorisation, validation, queue and audit. The API key comes
from the `apikey` header only (never from the body; never logged), the request id from
`X-Request-ID` (made up when absent, echoed in the answer). A refusal answers
`{"detail": message, "code": code, "details": {...}, "request_id": ...}` with the HTTP status of
its `code` (`STATUS_BY_CODE`). Paths and bodies: docs/http.md.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import ApiError, QueryParams, json_response
from horde_model_reference.http.routes_v2 import V2_PREFIX
from horde_model_reference.writes.contracts import (
    COMMAND_TYPES,
    ApplyCommand,
    ApproveCommand,
    AuditCommand,
    ChangeStatus,
    GetChangeCommand,
    ListChangesCommand,
    Operation,
    ProposeCommand,
    RejectCommand,
    WriteCommand,
    WriteErrorReply,
    decode_command,
)
from horde_model_reference.writes.errors import (
    AuthUnavailableError,
    UnauthorizedError,
    bounded,
    error_reply,
)
from horde_model_reference.writes.validation import TOO_DEEP

if TYPE_CHECKING:
    from horde_model_reference.writes.service import WriteService

__all__ = ["QUEUE_PREFIX", "STATUS_BY_CODE", "write_routes"]

QUEUE_PREFIX = f"{V2_PREFIX}/pending_queue"
STATUS_BY_CODE: dict[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_category": 404,
    "not_served": 404,
    "not_found": 404,
    "change_not_found": 404,
    "already_exists": 409,
    "conflict": 409,
    "invalid_state": 409,
    "timeout": 408,
    "too_large": 413,
    "rate_limited": 429,
    "queue_full": 429,
    "invalid_name": 422,
    "invalid_record": 422,
    "reason_required": 422,
    "bad_request": 422,
    "internal": 500,
    "catalog_unreadable": 500,
    "auth_unavailable": 503,
    "backend_error": 503,
    "read_only": 503,
    "busy": 503,
}
"""HTTP status of each `WriteErrorReply.code` (any other code: 400)."""

_ENVELOPE_BYTES = 64 * 1024
"""Room for a command's other fields on top of the record's bound (as on the bus)."""
_MAX_REQUEST_ID = 128
_RETRY_AFTER = {"busy": "5", "auth_unavailable": "10"}
_STATUSES = tuple(s.value for s in ChangeStatus)

Builder = Callable[[Request], Awaitable[WriteCommand]]


class _Refused(Exception):
    """A request refused before it became a command (bad body, bad header, writes off)."""

    def __init__(self, code: str, message: str, **details: str | int | float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class _NamedRecord(msgspec.Struct):
    """The one field of a proposed record that the path does not give: its name."""

    name: str


class _BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Today's `POST pending_queue/batches`: approve or reject (not both: each is all or nothing)."""

    batch_title: str | None = None
    approved_ids: list[int] = []
    rejected_ids: list[int] = []
    reject_reason: str | None = None


def write_routes(ctx: ApiContext) -> list[Route]:
    """The write routes; without a write service they answer 503 `read_only`."""

    def endpoint(build: Builder, success: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            request_id = None
            try:
                request_id = _request_id(request)
                writes = _service(ctx)
                await writes.check_key(request.headers.get("apikey"))  # before reading any body
                command = await build(request)
            except ApiError as exc:  # a bad query parameter
                return _refusal(
                    WriteErrorReply(code="bad_request", message=exc.detail, request_id=request_id), request
                )
            except _Refused as exc:
                reply = WriteErrorReply(
                    code=exc.code, message=exc.message, details=exc.details, request_id=request_id
                )
                return _refusal(reply, request)
            except (UnauthorizedError, AuthUnavailableError) as exc:
                return _refusal(error_reply(exc, request_id), request)
            command = msgspec.structs.replace(
                command, api_key=request.headers.get("apikey"), request_id=command.request_id or request_id
            )
            answer = await writes.handle(command)
            if isinstance(answer, WriteErrorReply):
                return _refusal(answer)
            return json_response(answer, status=success, headers={"x-request-id": command.request_id or ""})

        return run

    async def body(request: Request) -> bytes:
        limit = _service(ctx).settings.max_payload_bytes + _ENVELOPE_BYTES
        timeout = ctx.limits.body_timeout
        with anyio.move_on_after(timeout):
            return await _body(request, limit)
        raise _Refused("timeout", f"the request body was not received within {timeout:g} s")

    def propose(operation: Operation) -> Builder:
        async def build(request: Request) -> WriteCommand:
            params = QueryParams(request)
            data = None if operation is Operation.delete else await body(request)
            if operation is Operation.create:  # the name is the record's
                what = "a record (a JSON object with a string `name`)"
                name: str = _decode(data or b"", _NamedRecord, what, code="invalid_record").name
            else:
                name = request.path_params["name"]
            return ProposeCommand(
                category=request.path_params["category"],
                name=name,
                operation=operation,
                record=msgspec.Raw(data) if data is not None else msgspec.UNSET,
                base_revision=params.optional_integer("base_revision"),
                base_digest=params.text("base_digest"),
                notes=params.text("notes"),
            )

        return build

    def command_body(name: str, *, lenient: bool = False) -> Builder:
        async def build(request: Request) -> WriteCommand:
            return _command(name, await body(request), lenient=lenient)

        return build

    async def list_changes(request: Request) -> WriteCommand:
        params = QueryParams(request)
        statuses = [
            _status(part.strip())
            for value in params.texts("statuses") or ()
            for part in value.split(",")
            if part.strip()
        ]
        return ListChangesCommand(
            statuses=statuses or None,
            category=params.text("category"),
            batch_id=params.optional_integer("batch_id", minimum=1),
            name=params.text("name"),
            requester=params.text("requester"),
            offset=params.integer("offset", 0, minimum=0),
            limit=params.integer("limit", 50, minimum=1, maximum=500),
        )

    async def get_change(request: Request) -> WriteCommand:
        return GetChangeCommand(change_id=request.path_params["change_id"])

    async def batches(request: Request) -> WriteCommand:
        batch = _decode(await body(request), _BatchBody, "a batch")
        if batch.approved_ids and batch.rejected_ids:
            raise _Refused(
                "bad_request",
                "approve and reject in separate requests (each is all or nothing)",
                field="rejected_ids",
            )
        if batch.rejected_ids:
            return RejectCommand(change_ids=batch.rejected_ids, reason=batch.reject_reason or "")
        return ApproveCommand(change_ids=batch.approved_ids, batch_title=batch.batch_title)

    async def apply_one(request: Request) -> WriteCommand:
        return ApplyCommand(change_ids=[request.path_params["change_id"]])

    async def apply_batch(request: Request) -> WriteCommand:
        return ApplyCommand(batch_id=request.path_params["batch_id"])

    async def audit(request: Request) -> WriteCommand:
        params = QueryParams(request)
        return AuditCommand(
            category=params.text("category"),
            name=params.text("name"),
            change_id=params.optional_integer("change_id", minimum=1),
            since=params.number("since"),
            until=params.number("until"),
            after_id=params.optional_integer("after_id"),
            before_id=params.optional_integer("before_id"),
            limit=params.integer("limit", 100, minimum=1, maximum=1000),
        )

    create = endpoint(propose(Operation.create), 202)
    model = f"{V2_PREFIX}/{{category}}/model/{{name:path}}"
    queue = QUEUE_PREFIX
    return [
        Route(f"{queue}/changes", endpoint(list_changes), methods=["GET"]),
        Route(f"{queue}/changes/{{change_id:int}}", endpoint(get_change), methods=["GET"]),
        Route(f"{queue}/changes/{{change_id:int}}/apply", endpoint(apply_one), methods=["POST"]),
        Route(f"{queue}/batches", endpoint(batches), methods=["POST"]),
        Route(f"{queue}/approve", endpoint(command_body("approve")), methods=["POST"]),
        Route(f"{queue}/reject", endpoint(command_body("reject")), methods=["POST"]),
        Route(f"{queue}/apply", endpoint(command_body("apply", lenient=True)), methods=["POST"]),
        Route(f"{queue}/apply_batch/{{batch_id:int}}", endpoint(apply_batch), methods=["POST"]),
        Route(f"{queue}/purge", endpoint(command_body("purge")), methods=["POST"]),
        Route(f"{queue}/audit", endpoint(audit), methods=["GET"]),
        Route(f"{V2_PREFIX}/{{category}}/add", create, methods=["POST"]),
        Route(f"{V2_PREFIX}/{{category}}", create, methods=["POST"]),
        Route(model, endpoint(propose(Operation.update), 202), methods=["PUT"]),
        Route(model, endpoint(propose(Operation.delete), 202), methods=["DELETE"]),
    ]


def _service(ctx: ApiContext) -> WriteService:
    if ctx.writes is None:
        raise _Refused("read_only", "writes are not available here: this server runs no write service")
    return ctx.writes


def _refusal(reply: WriteErrorReply, request: Request | None = None) -> Response:
    """The refusal as JSON; `request` given when its body may be unread: the connection is then
    closed after the answer, so an unread body is never read."""
    body = {
        "detail": bounded(reply.message),
        "code": reply.code,
        "details": reply.details,
        "request_id": reply.request_id,
    }
    headers = {"x-request-id": reply.request_id} if reply.request_id else {}
    if reply.code in _RETRY_AFTER:
        headers["retry-after"] = _RETRY_AFTER[reply.code]
    retry_after = reply.details.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["retry-after"] = str(math.ceil(retry_after))
    if request is not None and _has_body(request):
        headers["connection"] = "close"
    return json_response(body, status=STATUS_BY_CODE.get(reply.code, 400), headers=headers)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0")
    return length != "0" or "transfer-encoding" in request.headers


def _request_id(request: Request) -> str:
    value = request.headers.get("x-request-id")
    if value is None:
        return uuid.uuid4().hex
    if not value or len(value) > _MAX_REQUEST_ID or not value.isprintable():
        raise _Refused(
            "bad_request",
            f"header 'X-Request-ID': 1 to {_MAX_REQUEST_ID} printable characters",
            field="X-Request-ID",
        )
    return value


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    chunks: list[bytes] = []
    if size <= limit:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
    if size > limit:
        raise _Refused(
            "too_large", f"request body exceeds the limit of {limit} bytes", size=size, limit=limit
        )
    return b"".join(chunks)


def _decode(data: bytes, kind: Any, what: str, *, code: str = "bad_request") -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _Refused(code, f"the body must be {what}: {exc}", field="body") from None
    except RecursionError:
        raise _Refused("bad_request", f"the body must be {what}: {TOO_DEEP}", field="body") from None


def _command(name: str, data: bytes, *, lenient: bool) -> WriteCommand:
    """The body as the bus command `name`; unknown fields are refused unless `lenient`."""
    fields = _decode(data, dict[str, msgspec.Raw], f"a JSON object ({name} command)")
    if "api_key" in fields:
        raise _Refused(
            "bad_request", "send the API key in the `apikey` header, not in the body", field="api_key"
        )
    known = {field.name for field in msgspec.structs.fields(COMMAND_TYPES[name])} | {"type"}
    unknown = sorted(set(fields) - known)
    if unknown and not lenient:
        raise _Refused(
            "bad_request",
            f"unknown field {unknown[0]!r} for {name}; known: {', '.join(sorted(known - {'api_key', 'type'}))}",
            field=unknown[0],
        )
    try:
        return decode_command(name, data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _Refused("bad_request", f"{name}: {exc}", field="body") from None


def _status(value: str) -> ChangeStatus:
    if value not in _STATUSES:
        raise ApiError(
            422, f"query parameter 'statuses': must be among {', '.join(_STATUSES)}, got {value!r}"
        )
    return ChangeStatus(value)
