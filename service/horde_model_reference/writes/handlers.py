"""The handlers of the write commands, the base of `WriteService`.

Each handler authenticates the command's `api_key` (requester: propose, list, inspect, audit;
approver: approve, reject, apply, purge), validates it, moves changes through the queue and
records audit events; a refusal raises a specific exception. The state they work on is set up
by `WriteService` (`__init__`, `bind`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
import msgspec

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import CategoryNotFoundError, ConflictError, ModelNotFoundError
from horde_model_reference.logs import get_logger
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
    raw_or_none,
)
from horde_model_reference.writes.errors import (
    ChangeNotFoundError,
    InvalidRequestError,
    QueueFullError,
    ReasonRequiredError,
    RecordExistsError,
    SelfReviewError,
    WritesUnavailableError,
)
from horde_model_reference.writes.queue import ChangeFilter, ChangeQueue, QueueState
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.throttle import Throttle
from horde_model_reference.writes.validation import (
    MAX_TEXT_LENGTH,
    raw_record_digest,
    validate_record,
    validate_write_name,
)

__all__ = ["CommandHandlers"]

_log = get_logger("horde_model_reference.writes.service")  # one logger for all of WriteService
_RAW_CATALOG = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_MAX_IDS = 1000
_MAX_PAGE = 500
_FINISHED = frozenset({ChangeStatus.applied, ChangeStatus.rejected})
_PENDING = frozenset({ChangeStatus.pending})


def _text(field: str, value: str | None, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if value is not None and len(value) > limit:
        raise InvalidRequestError(field, value, f"longer than {limit} characters ({len(value)})")
    return value


def _lean(changes: list[Change], max_bytes: int) -> list[Change]:
    """`changes`, without their records when these would pass `max_bytes` in all (a reply that
    names up to 1,000 changes stays small; `change ID` shows one with its record)."""
    size = sum(len(c.record) for c in changes if isinstance(c.record, msgspec.Raw))
    if size <= max_bytes:
        return changes
    return [msgspec.structs.replace(c, record=msgspec.UNSET) for c in changes]


def _ids(values: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(values))
    if not ids:
        raise InvalidRequestError("change_ids", ids, "name at least one change")
    if len(ids) > _MAX_IDS:
        raise InvalidRequestError("change_ids", len(ids), f"at most {_MAX_IDS} changes per command")
    return ids


class CommandHandlers:
    """The command handlers and the state they use; `WriteService` sets the state up."""

    settings: WriteSettings
    _auth: Authorizer
    _throttle: Throttle
    _supervisor: Supervisor | None
    _queue: ChangeQueue | None
    _trail: AuditTrail | None
    _applier: Applier | None
    _raw_cache: dict[str, tuple[str, dict[str, msgspec.Raw]]]

    # -- state --------------------------------------------------------------------------------

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

    # -- plumbing -----------------------------------------------------------------------------

    async def _principal(self, api_key: str | None, role: Role, command: str) -> Principal:
        principal = await self._auth.authenticate(api_key, role=role, command=command)
        self._throttle.check(principal.actor, command)
        return principal

    def _not_own(self, principal: Principal, command: str, changes: Iterable[Change]) -> None:
        """The "two people" rule (`two_person_rule`): nobody approves or applies its own proposal."""
        if not self.settings.two_person_rule:
            return
        for change in changes:
            if change.requested_by == principal.actor:
                raise SelfReviewError(principal.actor, command, change.change_id)

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
                    "an update or delete must name what it is based on: base_revision (hmr --base-revision,"
                    " the category's revision from `hmr status`) or base_digest (hmr --base-digest)",
                )
        if cmd.base_revision is not None and cmd.base_revision != revision:
            raise ConflictError(category.value, name, f"revision {cmd.base_revision}", f"revision {revision}")
        if cmd.base_digest is not None and cmd.base_digest != current_digest:
            raise ConflictError(
                category.value, name, f"record digest {cmd.base_digest}", f"record digest {current_digest}"
            )
        encoded = msgspec.Raw(_ENCODER.encode(record)) if record is not None else msgspec.UNSET
        now = time.time()

        settings = self.settings

        def add(state: QueueState) -> Change:
            pending = state.count(ChangeFilter(statuses=_PENDING))
            if pending >= settings.max_pending:
                raise QueueFullError(pending, settings.max_pending)
            mine = state.count(ChangeFilter(statuses=_PENDING, requester=principal.actor))
            if mine >= settings.max_pending_per_requester:
                raise QueueFullError(mine, settings.max_pending_per_requester, actor=principal.actor)
            change = Change(
                change_id=state.new_change_id(),
                category=category.value,
                name=name,
                operation=cmd.operation,
                status=ChangeStatus.pending,
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
        budget = self.settings.max_page_bytes

        def page(state: QueueState) -> tuple[list[Change], int]:
            items = state.page(where, offset=cmd.offset, limit=cmd.limit, max_bytes=budget)
            return items, state.count(where)

        items, total = await self.queue.read(page)
        end = cmd.offset + len(items)
        return ChangePage(
            items=items,
            total=total,
            offset=cmd.offset,
            limit=cmd.limit,
            next_offset=end if end < total else None,
        )

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
            self._not_own(principal, "approve", pending)
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
        lean = _lean(changes, self.settings.max_page_bytes)
        return BatchResult(batch_id=batch[0], changes=lean, request_id=request_id)

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
        lean = _lean(changes, self.settings.max_page_bytes)
        return BatchResult(batch_id=None, changes=lean, request_id=request_id)

    async def _apply(self, cmd: ApplyCommand, request_id: str) -> ApplyResult:
        principal = await self._principal(cmd.api_key, Role.approver, "apply")
        applier = self._writable()
        if cmd.batch_id is not None and cmd.change_ids:
            raise InvalidRequestError("batch_id", cmd.batch_id, "give change ids or a batch, not both")
        if cmd.batch_id is None:
            ids = _ids(cmd.change_ids)
            if self.settings.two_person_rule:
                found = await self.queue.read(lambda state: [state.find(i) for i in ids])
                self._not_own(principal, "apply", [c for c in found if c is not None])
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
            self._not_own(principal, "apply", in_batch)
        outcome = await applier.apply(ids, actor=principal.actor, request_id=request_id)
        return ApplyResult(
            changes=_lean(outcome.changes, self.settings.max_page_bytes),
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
        budget = self.settings.max_page_bytes
        events, more = await anyio.to_thread.run_sync(
            lambda: trail.read_page(where, limit=cmd.limit, max_bytes=budget)
        )
        return AuditPage(events=events, next_after_id=events[-1].event_id if more else None)
