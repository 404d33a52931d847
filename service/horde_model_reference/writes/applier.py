"""Applying approved changes: reserve, write atomically, project to legacy, publish, record.

One apply at a time per data directory: an in-process lock plus a file lock (`apply.lock`) held for
the whole apply. A change is `applying` only while its applier holds that lock, so whoever takes
the lock and finds an `applying` change knows its applier died: it completes the change when the
catalog already holds its result (`result_digest`, stored at reservation) and returns it to
`approved` otherwise. Order per category: baseline (when the catalog changed outside the write
path) -> catalog written (FileSystemBackend.write_category: validate, temp file, fsync, rename) ->
legacy projection -> `Supervisor.refresh` (the actor publishes the new revision) -> `applied`
audit events -> changes marked `applied`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.catalog import catalog_digest, decode_catalog, validate_catalog_bytes
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import BackendError, CategoryNotFoundError, NoLegacyFormatError
from horde_model_reference.legacy import write_legacy_projection
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.writes._locks import try_file_lock, unlock
from horde_model_reference.writes.audit import AuditFilter, AuditTrail, encode_raw_catalog
from horde_model_reference.writes.contracts import (
    AuditAction,
    AuditEvent,
    BatchSplit,
    Change,
    ChangeStatus,
    Operation,
)
from horde_model_reference.writes.errors import ApplyBusyError
from horde_model_reference.writes.plan import CategoryPlan, PlannedChange, field_delta, plan_apply
from horde_model_reference.writes.queue import ChangeFilter, ChangeQueue, QueueState
from horde_model_reference.writes.validation import compact, raw_record_digest

__all__ = ["Applier", "ApplyOutcome"]

_log = get_logger(__name__)
_EMPTY_DIGEST = catalog_digest(b"{}")


class ApplyOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What an apply did."""

    changes: list[Change]
    revisions: dict[str, int]
    batch_splits: list[BatchSplit]


class Applier:
    """Runs applies and crash recovery for one service."""

    def __init__(
        self,
        supervisor: Supervisor,
        backend: FileSystemBackend,
        queue: ChangeQueue,
        trail: AuditTrail,
        *,
        data_dir: Path,
        lock_timeout: float,
        refresh_timeout: float,
    ) -> None:
        self._supervisor = supervisor
        self._backend = backend
        self._queue = queue
        self._trail = trail
        self._lock_path = data_dir / "apply.lock"
        self._legacy_dir = backend.base_path / "legacy"
        self._lock_timeout = lock_timeout
        self._refresh_timeout = refresh_timeout
        self._local_lock = anyio.Lock()

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the apply lock (this process and every other); raises `ApplyBusyError` after the timeout."""
        async with self._local_lock:
            deadline = anyio.current_time() + self._lock_timeout
            while (fd := try_file_lock(self._lock_path)) is None:
                if anyio.current_time() > deadline:
                    raise ApplyBusyError(self._lock_timeout)
                await anyio.sleep(0.02)
            try:
                yield
            finally:
                unlock(fd)

    # -- apply --------------------------------------------------------------------------------

    async def apply(self, change_ids: Sequence[int], *, actor: str, request_id: str) -> ApplyOutcome:
        """Apply the approved changes `change_ids` (all or nothing when a conflict is found)."""
        async with self.locked():
            await self._recover_locked(request_id)
            changes = await self._queue.read(lambda state: state.expect(change_ids, ChangeStatus.approved))
            categories = sorted({parse_category(change.category) for change in changes})
            for category in categories:
                if category not in self._supervisor.categories:
                    raise CategoryNotFoundError(category.value, "this service does not serve it")
            catalogs = {category: await self._read_catalog(category) for category in categories}
            now = time.time()
            plans = plan_apply(changes, {c: raw for c, (_, raw) in catalogs.items()}, actor=actor, now=now)
            token = f"{self._supervisor.service_id[:8]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            planned = [p for plan in plans.values() for p in plan.planned]

            def reserve(state: QueueState) -> list[Change]:
                state.expect(change_ids, ChangeStatus.approved)
                return [
                    state.put(
                        msgspec.structs.replace(
                            p.change,
                            status=ChangeStatus.applying,
                            applying_by=token,
                            applying_since=now,
                            result_digest=p.result_digest,
                            updated_at=now,
                        )
                    )
                    for p in planned
                ]

            reserved = await self._queue.transact(reserve)
            await self._trail.append([_event(c, AuditAction.applying, actor, request_id) for c in reserved])
            applied: list[Change] = []
            revisions: dict[str, int] = {}
            try:
                for category in categories:
                    revision = await self._write(plans[category], catalogs[category][0], actor, request_id)
                    if revision is not None:
                        revisions[category.value] = revision
                    ids = {p.change.change_id for p in plans[category].planned}
                    applied += await self._queue.transact(
                        lambda state, ids=ids, rev=revision: _mark_applied(state, ids, actor, rev)  # type: ignore[misc]
                    )
            except Exception as exc:
                await self._revert(token, actor, request_id, f"apply failed: {type(exc).__name__}: {exc}")
                raise
            splits = await self._split_batches(applied, actor, request_id)
        return ApplyOutcome(changes=applied, revisions=revisions, batch_splits=splits)

    async def _read_catalog(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> tuple[bytes | None, dict[str, msgspec.Raw]]:
        path = self._backend.path_for(category)
        try:
            data = await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            raise BackendError(self._backend.name, category.value, f"cannot read {path}: {exc}") from exc
        return data, validate_catalog_bytes(category, data, source=str(path))

    async def _write(
        self, plan: CategoryPlan, before: bytes | None, actor: str, request_id: str
    ) -> int | None:
        category = plan.category
        before_digest = catalog_digest(before.strip()) if before is not None else _EMPTY_DIGEST
        last = await anyio.to_thread.run_sync(self._trail.last_catalog_digest, category.value)
        if last != before_digest:
            raw = validate_catalog_bytes(category, before) if before is not None else {}
            catalog = {name: msgspec.Raw(compact(bytes(value))) for name, value in raw.items()}
            baseline = AuditEvent(
                event_id=0,
                time=0.0,
                action=AuditAction.baseline,
                category=category.value,
                actor=actor,
                request_id=request_id,
                catalog_digest=before_digest,
                catalog=catalog,
            )
            await self._trail.append([baseline])
        payload = await self._backend.write_category(category, encode_raw_catalog(plan.records))
        await self._project_legacy(category, payload.data)
        revision = await self._refresh(category)
        await self._trail.append(
            [_applied_event(p, actor, request_id, revision, payload.digest, category) for p in plan.planned]
        )
        _log.info(
            "write_applied",
            category=category.value,
            changes=[p.change.change_id for p in plan.planned],
            revision=revision,
            digest=payload.digest,
            actor=actor,
            request_id=request_id,
        )
        return revision

    async def _project_legacy(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> None:
        if category not in (
            MODEL_REFERENCE_CATEGORY.image_generation,
            MODEL_REFERENCE_CATEGORY.text_generation,
        ):
            return
        try:
            records = decode_catalog(category, data).records
            await anyio.to_thread.run_sync(write_legacy_projection, category, records, self._legacy_dir)
        except (OSError, NoLegacyFormatError) as exc:
            _log.error("legacy_projection_failed", category=category.value, error=str(exc))

    async def _refresh(self, category: MODEL_REFERENCE_CATEGORY) -> int | None:
        try:
            return await self._supervisor.refresh(category, max_wait=self._refresh_timeout)
        except (TimeoutError, BackendError) as exc:
            _log.error("write_publish_delayed", category=category.value, error=str(exc) or type(exc).__name__)
            return None

    async def _revert(self, token: str, actor: str, request_id: str, reason: str) -> None:
        def revert(state: QueueState) -> list[Change]:
            applying = state.select(ChangeFilter(statuses=frozenset({ChangeStatus.applying})))
            stuck = [c for c in applying if c.applying_by == token]
            return [state.put(_reverted(c)) for c in stuck]

        with anyio.CancelScope(shield=True):
            reverted = await self._queue.transact(revert)
            await self._trail.append(
                [_event(c, AuditAction.reverted, actor, request_id, reason) for c in reverted]
            )

    async def _split_batches(self, applied: list[Change], actor: str, request_id: str) -> list[BatchSplit]:
        batches = sorted({c.batch_id for c in applied if c.batch_id is not None})
        if not batches:
            return []

        def split(state: QueueState) -> tuple[list[BatchSplit], list[Change]]:
            splits: list[BatchSplit] = []
            moved: list[Change] = []
            for batch in batches:
                rest = state.select(ChangeFilter(batch_id=batch, statuses=frozenset({ChangeStatus.approved})))
                if not rest:
                    continue
                new_batch = state.new_batch_id()
                now = time.time()
                moved += [
                    state.put(msgspec.structs.replace(c, batch_id=new_batch, updated_at=now)) for c in rest
                ]
                splits.append(
                    BatchSplit(
                        original_batch_id=batch,
                        new_batch_id=new_batch,
                        change_ids=[c.change_id for c in rest],
                    )
                )
            return splits, moved

        splits, moved = await self._queue.transact(split)
        reason = "the rest of the batch was applied"
        await self._trail.append([_event(c, AuditAction.rebatched, actor, request_id, reason) for c in moved])
        return splits

    # -- recovery -----------------------------------------------------------------------------

    async def recover(self, request_id: str = "recovery") -> list[Change]:
        """Resolve changes left `applying` by an applier that died; returns them as resolved."""
        async with self.locked():
            return await self._recover_locked(request_id)

    async def _recover_locked(self, request_id: str) -> list[Change]:
        where = ChangeFilter(statuses=frozenset({ChangeStatus.applying}))
        orphans = await self._queue.read(lambda state: state.select(where))
        if not orphans:
            return []
        resolved: list[Change] = []
        for category in sorted({parse_category(c.category) for c in orphans}):
            data, raw = await self._read_catalog(category)
            mine = [c for c in orphans if c.category == category.value]
            done = {c.change_id for c in mine if _contains(category, raw, c)}
            resolved += await self._queue.transact(lambda state, m=mine, d=done: _resolve(state, m, d))  # type: ignore[misc]
            if done:
                await self._project_legacy(category, data or b"{}")
                revision = await self._refresh(category)
                digest = catalog_digest(data.strip()) if data is not None else _EMPTY_DIGEST
                events = [
                    _recovered_event(c, raw.get(c.name), revision, digest, request_id)
                    for c in mine
                    if c.change_id in done and not await self._has_applied_event(c.change_id)
                ]
                await self._trail.append(events)
            reason = "interrupted apply; the catalog does not hold the change"
            await self._trail.append(
                [
                    _event(c, AuditAction.reverted, "recovery", request_id, reason)
                    for c in mine
                    if c.change_id not in done
                ]
            )
        _log.warning(
            "write_recovered",
            applied=[c.change_id for c in resolved if c.status is ChangeStatus.applied],
            returned_to_approved=[c.change_id for c in resolved if c.status is ChangeStatus.approved],
        )
        return resolved

    async def _has_applied_event(self, change_id: int) -> bool:
        where = AuditFilter(change_id=change_id, actions=frozenset({AuditAction.applied}))
        found = await anyio.to_thread.run_sync(lambda: self._trail.read(where, limit=1))
        return bool(found)


# -- helpers ----------------------------------------------------------------------------------


def _contains(category: MODEL_REFERENCE_CATEGORY, raw: dict[str, msgspec.Raw], change: Change) -> bool:
    current = raw.get(change.name)
    if change.operation is Operation.delete:
        return current is None
    return current is not None and raw_record_digest(category, bytes(current)) == change.result_digest


def _reverted(change: Change) -> Change:
    return msgspec.structs.replace(
        change,
        status=ChangeStatus.approved,
        applying_by=None,
        applying_since=None,
        result_digest=None,
        updated_at=time.time(),
    )


def _mark_applied(state: QueueState, ids: set[int], actor: str, revision: int | None) -> list[Change]:
    now = time.time()
    return [
        state.put(
            msgspec.structs.replace(
                state.get(change_id),
                status=ChangeStatus.applied,
                applied_by=actor,
                applied_at=now,
                applied_revision=revision,
                applying_by=None,
                updated_at=now,
            )
        )
        for change_id in sorted(ids)
    ]


def _resolve(state: QueueState, orphans: list[Change], done: set[int]) -> list[Change]:
    resolved: list[Change] = []
    for change in orphans:
        current = state.find(change.change_id)
        if current is None or current.status is not ChangeStatus.applying:
            continue
        if change.change_id in done:
            resolved += _mark_applied(state, {change.change_id}, current.applying_by or "recovery", None)
        else:
            resolved.append(state.put(_reverted(current)))
    return resolved


def _event(
    change: Change, action: AuditAction, actor: str, request_id: str, reason: str | None = None
) -> AuditEvent:
    return AuditEvent(
        event_id=0,
        time=0.0,
        action=action,
        category=change.category,
        name=change.name,
        operation=change.operation,
        actor=actor,
        request_id=request_id,
        change_id=change.change_id,
        batch_id=change.batch_id,
        reason=reason,
    )


def _applied_event(
    planned: PlannedChange,
    actor: str,
    request_id: str,
    revision: int | None,
    digest: str,
    category: MODEL_REFERENCE_CATEGORY,
) -> AuditEvent:
    change = planned.change
    delta = None
    if planned.before is not None and planned.after is not None:
        delta = field_delta(bytes(planned.before), bytes(planned.after))
    return msgspec.structs.replace(
        _event(change, AuditAction.applied, actor, request_id),
        revision=revision,
        catalog_digest=digest,
        before=planned.before if planned.before is not None else msgspec.UNSET,
        after=planned.after if planned.after is not None else msgspec.UNSET,
        delta=delta,
    )


def _recovered_event(
    change: Change, current: msgspec.Raw | None, revision: int | None, digest: str, request_id: str
) -> AuditEvent:
    after = msgspec.Raw(compact(bytes(current))) if current is not None else msgspec.UNSET
    return msgspec.structs.replace(
        _event(change, AuditAction.applied, "recovery", request_id, "completed after an interrupted apply"),
        revision=revision,
        catalog_digest=digest,
        after=after,
    )
