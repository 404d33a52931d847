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
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import CategoryNotFoundError, ConflictError, ModelNotFoundError
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.writes.applier import Applier
from horde_model_reference.writes.audit import AuditFilter, AuditTrail
from horde_model_reference.writes.auth import Authorizer, Principal
from horde_model_reference.writes.contracts import (
    ApplyCommand,
    ApplyResult,
    ApproveCommand,
    AuditAction,
    AuditCommand,
    AuditEvent,
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
    raw_or_none,
)
from horde_model_reference.writes.errors import (
    ChangeNotFoundError,
    InvalidRequestError,
    ReasonRequiredError,
    RecordExistsError,
    WritesUnavailableError,
    error_code,
    error_reply,
)
from horde_model_reference.writes.queue import ChangeFilter, ChangeQueue, QueueState
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.validation import (
    MAX_TEXT_LENGTH,
    raw_record_digest,
    validate_record,
    validate_write_name,
)

__all__ = ["WriteService"]

_log = get_logger(__name__)
_RAW_CATALOG = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_MAX_IDS = 1000
_MAX_PAGE = 500
_FINISHED = frozenset({ChangeStatus.applied, ChangeStatus.rejected})
R = TypeVar("R")
C = TypeVar("C")


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _text(field: str, value: str | None, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if value is not None and len(value) > limit:
        raise InvalidRequestError(field, value, f"longer than {limit} characters ({len(value)})")
    return value


def _ids(values: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(values))
    if not ids:
        raise InvalidRequestError("change_ids", ids, "name at least one change")
    if len(ids) > _MAX_IDS:
        raise InvalidRequestError("change_ids", len(ids), f"at most {_MAX_IDS} changes per command")
    return ids


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


class WriteService:
    """Propose, approve, apply: queued, audited, authorised; bound to a running `Supervisor`."""

    def __init__(
        self, settings: WriteSettings | None = None, *, authorizer: Authorizer | None = None
    ) -> None:
        self.settings = settings or WriteSettings()
        self._auth = authorizer or Authorizer(self.settings)
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
        from horde_model_reference.writes.responder import serve_writes

        self.bind(supervisor)
        await self.recover()
        async with anyio.create_task_group() as tg:
            await tg.start(serve_writes, self, supervisor.nats_link, supervisor.subjects)
            task_status.started()

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

    @property
    def queue(self) -> ChangeQueue:
        """The persisted change queue."""
        if self._queue is None:
            raise WritesUnavailableError("the write service is not running")
        return self._queue

    @property
    def trail(self) -> AuditTrail:
        """The audit trail."""
        if self._trail is None:
            raise WritesUnavailableError("the write service is not running")
        return self._trail

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
                    "write_command_refused", command=name, code=code, error=str(exc), request_id=request_id
                )
            raise
        _log.debug(
            "write_command",
            command=name,
            request_id=request_id,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result

    async def _principal(self, api_key: str | None, role: Role, command: str) -> Principal:
        return await self._auth.authenticate(api_key, role=role, command=command)

    def _running(self) -> tuple[Supervisor, ChangeQueue, AuditTrail]:
        if self._supervisor is None or self._queue is None or self._trail is None:
            raise WritesUnavailableError("the write service is not running")
        return self._supervisor, self._queue, self._trail

    def _writable(self) -> Applier:
        if self._applier is None:
            raise WritesUnavailableError("the backend is not a writable filesystem (a REPLICA?)")
        return self._applier

    def _held(self, category: MODEL_REFERENCE_CATEGORY) -> tuple[int, dict[str, msgspec.Raw]]:
        """The revision the service holds for `category` and its records as raw JSON (the consumers' view)."""
        supervisor, _, _ = self._running()
        if category not in supervisor.categories:
            raise CategoryNotFoundError(category.value, "this service does not serve it")
        snapshot = supervisor.snapshot(category)
        if snapshot is None:
            return supervisor.revision(category), {}
        cached = self._raw_cache.get(category.value)
        if cached is None or cached[0] != snapshot.digest:
            cached = (snapshot.digest, _RAW_CATALOG.decode(bytes(snapshot.data)))
            self._raw_cache[category.value] = cached
        return snapshot.revision, cached[1]

    async def _events(self, events: list[AuditEvent]) -> None:
        await self._running()[2].append(events)

    # -- handlers -----------------------------------------------------------------------------

    async def _propose(self, cmd: ProposeCommand, request_id: str) -> ChangeReply:
        principal = await self._principal(cmd.api_key, Role.requester, "propose")
        self._writable()
        category = parse_category(cmd.category)
        revision, held = self._held(category)
        current = held.get(cmd.name) if isinstance(cmd.name, str) else None
        name = validate_write_name(category, cmd.name, exists=current is not None)
        notes = _text("notes", cmd.notes)
        existing_name = None
        if current is not None:
            existing_name = msgspec.json.decode(bytes(current), type=dict[str, Any]).get("name")
        record = validate_record(
            category,
            name,
            cmd.operation,
            raw_or_none(cmd.record),
            max_bytes=self.settings.max_payload_bytes,
            existing_name=existing_name,
        )
        current_digest = raw_record_digest(category, bytes(current)) if current is not None else None
        if cmd.operation is Operation.create and current is not None:
            raise RecordExistsError(category.value, name)
        if cmd.operation is not Operation.create:
            if current is None:
                raise ModelNotFoundError(category.value, name)
            if cmd.base_revision is None and cmd.base_digest is None:
                raise InvalidRequestError(
                    "base_revision",
                    None,
                    "an update or delete names the revision or record digest it is based on",
                )
        if cmd.base_revision is not None and cmd.base_revision != revision:
            raise ConflictError(category.value, name, f"revision {cmd.base_revision}", f"revision {revision}")
        if cmd.base_digest is not None and cmd.base_digest != current_digest:
            raise ConflictError(
                category.value, name, f"record digest {cmd.base_digest}", f"record digest {current_digest}"
            )
        encoded = msgspec.Raw(_ENCODER.encode(record)) if record is not None else msgspec.UNSET
        now = time.time()

        def add(state: QueueState) -> Change:
            change = Change(
                change_id=state.new_change_id(),
                category=category.value,
                name=name,
                operation=cmd.operation,
                record=encoded,
                base_revision=cmd.base_revision if cmd.operation is not Operation.create else None,
                base_digest=current_digest if cmd.operation is not Operation.create else None,
                notes=notes,
                requested_by=principal.actor,
                requested_at=now,
                request_id=request_id,
                updated_at=now,
            )
            return state.put(change)

        change = await self.queue.transact(add)
        event = AuditEvent(
            event_id=0,
            time=0.0,
            action=AuditAction.proposed,
            category=change.category,
            name=change.name,
            operation=change.operation,
            actor=principal.actor,
            request_id=request_id,
            change_id=change.change_id,
            after=encoded,
            reason=notes,
        )
        await self._events([event])
        _log.info(
            "write_proposed",
            change_id=change.change_id,
            category=category.value,
            model=name,
            operation=cmd.operation.value,
            actor=principal.actor,
            request_id=request_id,
        )
        return ChangeReply(
            change=change, current_revision=revision, current_digest=current_digest, request_id=request_id
        )

    async def _list(self, cmd: ListChangesCommand, request_id: str) -> ChangePage:
        await self._principal(cmd.api_key, Role.requester, "changes")
        if not 1 <= cmd.limit <= _MAX_PAGE:
            raise InvalidRequestError("limit", cmd.limit, f"between 1 and {_MAX_PAGE}")
        if cmd.offset < 0:
            raise InvalidRequestError("offset", cmd.offset, "not negative")
        category = parse_category(cmd.category).value if cmd.category is not None else None
        where = ChangeFilter(
            statuses=frozenset(cmd.statuses) if cmd.statuses else None,
            category=category,
            batch_id=cmd.batch_id,
            name=cmd.name,
            requester=cmd.requester,
        )
        selected = await self.queue.read(lambda state: state.select(where))
        items = selected[cmd.offset : cmd.offset + cmd.limit]
        return ChangePage(items=items, total=len(selected), offset=cmd.offset, limit=cmd.limit)

    async def _get(self, cmd: GetChangeCommand, request_id: str) -> ChangeReply:
        await self._principal(cmd.api_key, Role.requester, "change")
        change = await self.queue.read(lambda state: state.get(cmd.change_id))
        category = parse_category(change.category)
        revision, held = self._held(category)
        current = held.get(change.name)
        digest = raw_record_digest(category, bytes(current)) if current is not None else None
        return ChangeReply(
            change=change, current_revision=revision, current_digest=digest, request_id=request_id
        )

    async def _transition(
        self,
        principal: Principal,
        request_id: str,
        action: AuditAction,
        move: Callable[[QueueState], list[Change]],
        reason: str | None = None,
    ) -> list[Change]:
        changes = await self.queue.transact(move)
        events = [
            AuditEvent(
                event_id=0,
                time=0.0,
                action=action,
                category=c.category,
                name=c.name,
                operation=c.operation,
                actor=principal.actor,
                request_id=request_id,
                change_id=c.change_id,
                batch_id=c.batch_id,
                reason=reason,
            )
            for c in changes
        ]
        await self._events(events)
        _log.info(
            "write_" + action.value,
            changes=[c.change_id for c in changes],
            actor=principal.actor,
            request_id=request_id,
        )
        return changes

    async def _approve(self, cmd: ApproveCommand, request_id: str) -> BatchResult:
        principal = await self._principal(cmd.api_key, Role.approver, "approve")
        ids = _ids(cmd.change_ids)
        title = _text("batch_title", cmd.batch_title, 256)
        batch: list[int] = []

        def move(state: QueueState) -> list[Change]:
            pending = state.expect(ids, ChangeStatus.pending)
            batch.append(state.new_batch_id())
            now = time.time()
            return [
                state.put(
                    msgspec.structs.replace(
                        c,
                        status=ChangeStatus.approved,
                        approved_by=principal.actor,
                        approved_at=now,
                        batch_id=batch[0],
                        batch_title=title,
                        updated_at=now,
                    )
                )
                for c in pending
            ]

        changes = await self._transition(principal, request_id, AuditAction.approved, move)
        return BatchResult(batch_id=batch[0], changes=changes, request_id=request_id)

    async def _reject(self, cmd: RejectCommand, request_id: str) -> BatchResult:
        principal = await self._principal(cmd.api_key, Role.approver, "reject")
        ids = _ids(cmd.change_ids)
        reason = (cmd.reason or "").strip()
        if not reason:
            raise ReasonRequiredError(ids)
        _text("reason", reason)

        def move(state: QueueState) -> list[Change]:
            pending = state.expect(ids, ChangeStatus.pending)
            now = time.time()
            return [
                state.put(
                    msgspec.structs.replace(
                        c,
                        status=ChangeStatus.rejected,
                        rejected_by=principal.actor,
                        rejected_at=now,
                        reject_reason=reason,
                        updated_at=now,
                    )
                )
                for c in pending
            ]

        changes = await self._transition(principal, request_id, AuditAction.rejected, move, reason)
        return BatchResult(batch_id=None, changes=changes, request_id=request_id)

    async def _apply(self, cmd: ApplyCommand, request_id: str) -> ApplyResult:
        principal = await self._principal(cmd.api_key, Role.approver, "apply")
        applier = self._writable()
        if cmd.batch_id is not None and cmd.change_ids:
            raise InvalidRequestError("batch_id", cmd.batch_id, "give change ids or a batch, not both")
        if cmd.batch_id is None:
            ids = _ids(cmd.change_ids)
        else:
            batch = cmd.batch_id

            def members(state: QueueState) -> list[Change]:
                return state.select(ChangeFilter(batch_id=batch))

            in_batch = await self.queue.read(members)
            if not in_batch:
                raise ChangeNotFoundError(f"batch {batch}")
            ids = [c.change_id for c in in_batch if c.status is ChangeStatus.approved]
            if not ids:
                raise InvalidRequestError("batch_id", batch, "the batch has no approved changes")
        outcome = await applier.apply(ids, actor=principal.actor, request_id=request_id)
        return ApplyResult(
            changes=outcome.changes,
            revisions=outcome.revisions,
            batch_splits=outcome.batch_splits,
            request_id=request_id,
        )

    async def _purge(self, cmd: PurgeCommand, request_id: str) -> PurgeResult:
        principal = await self._principal(cmd.api_key, Role.approver, "purge")
        statuses = frozenset(cmd.statuses)
        if not statuses or not statuses <= _FINISHED:
            raise InvalidRequestError(
                "statuses", sorted(statuses), "only applied and rejected changes can be purged"
            )
        cutoff = time.time() - cmd.older_than

        def move(state: QueueState) -> list[Change]:
            gone = [c for c in state.select(ChangeFilter(statuses=statuses)) if c.updated_at <= cutoff]
            for change in gone:
                state.remove(change.change_id)
            return gone

        removed = await self._transition(principal, request_id, AuditAction.purged, move)
        return PurgeResult(removed=[c.change_id for c in removed])

    async def _audit(self, cmd: AuditCommand, request_id: str) -> AuditPage:
        await self._principal(cmd.api_key, Role.requester, "audit")
        if not 1 <= cmd.limit <= _MAX_PAGE * 2:
            raise InvalidRequestError("limit", cmd.limit, f"between 1 and {_MAX_PAGE * 2}")
        category = parse_category(cmd.category).value if cmd.category is not None else None
        where = AuditFilter(
            category=category,
            name=cmd.name,
            change_id=cmd.change_id,
            since=cmd.since,
            until=cmd.until,
            after_id=cmd.after_id,
            before_id=cmd.before_id,
        )
        trail = self.trail
        events = await anyio.to_thread.run_sync(lambda: trail.read(where, limit=cmd.limit + 1))
        more = len(events) > cmd.limit
        events = events[: cmd.limit]
        return AuditPage(events=events, next_after_id=events[-1].event_id if more else None)
