"""`WriteService`: the write path on the primary, as a Python API and as a part of `hmr serve`.

    writes = WriteService(settings.writes)
    async with anyio.create_task_group() as tg:
        supervisor = await tg.start(partial(run_service, config, backend, components=[writes.run]))
        reply = await writes.propose(api_key, category="clip", name="x", operation="create", record={...})

Every method authenticates its `api_key` first (requester: propose, list, inspect, audit;
approver: approve, reject, apply, purge) and raises a specific exception on refusal;
`handle(command)` is the same for wire commands and returns a `WriteErrorReply` instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
from anyio.abc import TaskStatus

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.writes.applier import Applier
from horde_model_reference.writes.audit import AuditTrail
from horde_model_reference.writes.auth import Authorizer
from horde_model_reference.writes.contracts import (
    ApplyCommand,
    ApplyResult,
    ApproveCommand,
    AuditCommand,
    AuditPage,
    BatchResult,
    Change,
    ChangePage,
    ChangeReply,
    ChangeStatus,
    GetChangeCommand,
    ListChangesCommand,
    Operation,
    ProposeCommand,
    PurgeCommand,
    PurgeResult,
    RejectCommand,
    Role,
    WriteCommand,
    WriteReply,
)
from horde_model_reference.writes.errors import InvalidRequestError, bounded, error_code, error_reply
from horde_model_reference.writes.handlers import _ENCODER, CommandHandlers
from horde_model_reference.writes.queue import ChangeQueue
from horde_model_reference.writes.responder import serve_writes
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.throttle import Throttle

__all__ = ["WriteService"]

_log = get_logger(__name__)
R = TypeVar("R")
C = TypeVar("C")


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _raw_record(record: Any) -> msgspec.Raw | msgspec.UnsetType:
    if record is None:
        return msgspec.UNSET
    if isinstance(record, msgspec.Raw):
        return record
    if isinstance(record, bytes | bytearray | memoryview):
        return msgspec.Raw(bytes(record))
    if isinstance(record, GenericModelRecord | Mapping):
        return msgspec.Raw(_ENCODER.encode(record))
    raise InvalidRequestError(
        "record", type(record).__name__, "expected a JSON object, a mapping or a record"
    )


class WriteService(CommandHandlers):
    """Propose, approve, apply: queued, audited, authorised; bound to a running `Supervisor`."""

    def __init__(
        self, settings: WriteSettings | None = None, *, authorizer: Authorizer | None = None
    ) -> None:
        self.settings = settings or WriteSettings()
        self._auth = authorizer or Authorizer(self.settings)
        self._throttle = Throttle(self.settings)
        self._supervisor: Supervisor | None = None
        self._backend: FileSystemBackend | None = None
        self._queue: ChangeQueue | None = None
        self._trail: AuditTrail | None = None
        self._applier: Applier | None = None
        self._raw_cache: dict[str, tuple[str, dict[str, msgspec.Raw]]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(
        self, supervisor: Supervisor, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """A `run_service` component: bind, recover interrupted applies, answer `<prefix>.write.*`."""
        self.bind(supervisor)
        try:
            await self.recover()
            async with anyio.create_task_group() as tg:
                await tg.start(serve_writes, self, supervisor.nats_link, supervisor.subjects)
                task_status.started()
        finally:
            if self._queue is not None:
                self._queue.close()

    def bind(self, supervisor: Supervisor) -> None:
        """Use `supervisor`'s backend, data directory and actors (`run` does this)."""
        data_dir = Path(supervisor.config.data_dir) / "writes"
        self._supervisor = supervisor
        self._queue = ChangeQueue(data_dir)
        self._trail = AuditTrail(data_dir / "audit", segment_bytes=self.settings.audit_segment_bytes)
        backend = supervisor.backend
        if isinstance(backend, FileSystemBackend) and backend.supports_writes():
            self._backend = backend
            self._applier = Applier(
                supervisor,
                backend,
                self._queue,
                self._trail,
                data_dir=data_dir,
                lock_timeout=self.settings.apply_lock_timeout,
                refresh_timeout=self.settings.refresh_timeout,
            )
        _log.info(
            "writes_ready",
            data_dir=str(data_dir),
            writable=self._applier is not None,
            auth_enabled=self._auth.enabled,
        )

    async def recover(self) -> list[Change]:
        """Complete or return to `approved` every change an interrupted apply left `applying`."""
        if self._applier is None:
            return []
        return await self._applier.recover()

    # -- the API ------------------------------------------------------------------------------

    async def propose(
        self,
        api_key: str | None,
        *,
        category: str,
        name: str,
        operation: str | Operation,
        record: Any = None,
        base_revision: int | None = None,
        base_digest: str | None = None,
        notes: str | None = None,
        request_id: str | None = None,
    ) -> ChangeReply:
        """Queue a create, update or delete (validated now; nothing is stored when it is refused)."""
        try:
            op = Operation(operation)
        except ValueError:
            raise InvalidRequestError("operation", operation, "expected create, update or delete") from None
        command = ProposeCommand(
            api_key=api_key,
            request_id=request_id,
            category=category,
            name=name,
            operation=op,
            record=_raw_record(record),
            base_revision=base_revision,
            base_digest=base_digest,
            notes=notes,
        )
        return await self._call(self._propose, command)

    async def list_changes(
        self,
        api_key: str | None,
        *,
        statuses: Iterable[str | ChangeStatus] | None = None,
        category: str | None = None,
        batch_id: int | None = None,
        name: str | None = None,
        requester: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ChangePage:
        """Changes matching the filters, oldest first, one page."""
        wanted = [ChangeStatus(s) for s in statuses] if statuses is not None else None
        command = ListChangesCommand(
            api_key=api_key,
            statuses=wanted,
            category=category,
            batch_id=batch_id,
            name=name,
            requester=requester,
            offset=offset,
            limit=limit,
        )
        return await self._call(self._list, command)

    async def get_change(self, api_key: str | None, change_id: int) -> ChangeReply:
        """One change and the current digest of its record."""
        return await self._call(self._get, GetChangeCommand(api_key=api_key, change_id=change_id))

    async def approve(
        self,
        api_key: str | None,
        change_ids: Iterable[int],
        *,
        batch_title: str | None = None,
        request_id: str | None = None,
    ) -> BatchResult:
        """Approve pending changes as one new batch (all or none)."""
        command = ApproveCommand(
            api_key=api_key, request_id=request_id, change_ids=list(change_ids), batch_title=batch_title
        )
        return await self._call(self._approve, command)

    async def reject(
        self, api_key: str | None, change_ids: Iterable[int], *, reason: str, request_id: str | None = None
    ) -> BatchResult:
        """Reject pending changes (all or none); `reason` is required."""
        command = RejectCommand(
            api_key=api_key, request_id=request_id, change_ids=list(change_ids), reason=reason
        )
        return await self._call(self._reject, command)

    async def apply(
        self,
        api_key: str | None,
        change_ids: Iterable[int] = (),
        *,
        batch_id: int | None = None,
        request_id: str | None = None,
    ) -> ApplyResult:
        """Apply approved changes (a list, or a batch's approved changes): all, or none on a conflict."""
        command = ApplyCommand(
            api_key=api_key, request_id=request_id, change_ids=list(change_ids), batch_id=batch_id
        )
        return await self._call(self._apply, command)

    async def purge(
        self,
        api_key: str | None,
        *,
        statuses: Iterable[str | ChangeStatus] = (ChangeStatus.applied, ChangeStatus.rejected),
        older_than: float = 0.0,
        request_id: str | None = None,
    ) -> PurgeResult:
        """Remove finished changes (applied, rejected) from the queue; the audit trail keeps them."""
        command = PurgeCommand(
            api_key=api_key,
            request_id=request_id,
            statuses=[ChangeStatus(s) for s in statuses],
            older_than=older_than,
        )
        return await self._call(self._purge, command)

    async def audit(
        self,
        api_key: str | None,
        *,
        category: str | None = None,
        name: str | None = None,
        change_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """Audit events matching the filters, oldest first."""
        command = AuditCommand(
            api_key=api_key,
            category=category,
            name=name,
            change_id=change_id,
            since=since,
            until=until,
            after_id=after_id,
            before_id=before_id,
            limit=limit,
        )
        return await self._call(self._audit, command)

    async def check_key(self, api_key: str | None) -> None:
        """Refuse a key that may run no command at all (`UnauthorizedError`, `AuthUnavailableError`):
        the HTTP face asks this before it reads a request's body."""
        await self._auth.authenticate(api_key, role=Role.requester, command="write")

    async def handle(self, command: WriteCommand) -> WriteReply:
        """Run a wire command; refusals and failures come back as a `WriteErrorReply`."""
        handlers: dict[type[Any], Callable[[Any, str], Awaitable[WriteReply]]] = {
            ProposeCommand: self._propose,
            ListChangesCommand: self._list,
            GetChangeCommand: self._get,
            ApproveCommand: self._approve,
            RejectCommand: self._reject,
            ApplyCommand: self._apply,
            PurgeCommand: self._purge,
            AuditCommand: self._audit,
        }
        request_id = command.request_id or _new_request_id()
        try:
            return await self._call(handlers[type(command)], command, request_id)
        except Exception as exc:
            return error_reply(exc, request_id)

    # -- plumbing -----------------------------------------------------------------------------

    async def _call(
        self, handler: Callable[[C, str], Awaitable[R]], command: C, request_id: str | None = None
    ) -> R:
        request_id = request_id or getattr(command, "request_id", None) or _new_request_id()
        name = type(command).__name__.removesuffix("Command").lower()
        started = time.perf_counter()
        try:
            result = await handler(command, request_id)
        except Exception as exc:
            code = error_code(exc)
            if code == "internal":
                _log.exception("write_command_failed", command=name, request_id=request_id)
            else:
                _log.info(
                    "write_command_refused",
                    command=name,
                    code=code,
                    error=bounded(str(exc)),
                    request_id=request_id,
                )
            raise
        _log.debug(
            "write_command",
            command=name,
            request_id=request_id,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result
