"""One fetcher actor per category: load, detect change by digest, commit, store, publish.

A change is committed in this order, shielded from cancellation (each step has its own timeout),
so a shutdown never leaves a revision handed out but unpublished because of the shutdown itself:

1. the next revision is taken and covered by the reservation on disk (`StateFile.reserve`: no
   disk write at all unless the reserved range is used up; see `supervisor.state`),
2. the in-memory snapshot is replaced (the snapshot responder serves it from here on),
3. the snapshot is written to JetStream and Redis (each when configured, concurrently, each
   within `store_wait`; a failure or a slower store is logged and retried later, and while a
   store is known to be down it is skipped, so propagation never waits long for it),
4. `CategoryChanged` is published,
5. the revision, digest and bytes are persisted (`StateFile.commit`, atomic writes with fsync);
   a failure is logged and retried on the next pass (the reservation keeps the revision safe).

Bad data never replaces good data: a catalog that cannot be decoded at all publishes nothing and
keeps the last good snapshot; bad records are skipped and reported.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
import msgspec

from horde_model_reference.backends.base import CategoryPayload, ModelReferenceBackend
from horde_model_reference.bus.events import CategoryChanged, CategoryHealth, Subjects, encode_event
from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore, StoredSnapshot
from horde_model_reference.bus.trust import catalog_records_digest
from horde_model_reference.catalog import DecodedCatalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.supervisor._stores import (
    SinkBacklog,
    SnapshotSink,
    retry_pending,
    write_before_publish,
)
from horde_model_reference.supervisor.state import StateFile, StateFileError

__all__ = ["ActorContext", "CategoryActor", "CategorySlot", "build_change_event"]

_log = get_logger(__name__)
_RAW_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])


class CategorySlot:
    """Everything the service holds about one category; it outlives actor restarts.

    `revision`, `digest`, `data` and `records` are replaced together without an await in between,
    so a reader on the event loop never sees a mix of two revisions.
    """

    def __init__(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        self.category = category
        self.revision = 0
        self.digest: str | None = None
        self.data: bytes | None = None
        self.records: Mapping[str, GenericModelRecord] | None = None
        self.skipped = 0
        self.last_change: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.rejected_digest: str | None = None
        self.missing_logged = False
        self.restarts = 0
        self.failures = 0
        """Consecutive crashes (reset by a successful pass); drives the restart backoff."""
        self.sinks = {"redis": SinkBacklog(), "jetstream": SinkBacklog()}
        """Per snapshot store (Redis, JetStream): whether it is behind `revision`, and its backoff."""
        self.state_pending = False
        """The state file is behind `revision` (its write after the publish failed)."""
        self.wake = anyio.Event()
        self.requested = 0
        self.attempting = 0
        self.completed = 0
        self.pass_error: str | None = None
        self.progress = anyio.Event()
        self.first_pass = anyio.Event()
        self.source_rejected = False
        """The latest fetch returned a catalog that could not be decoded."""
        self.events_published = 0
        self.publish_failures = 0
        self.fetch_count = 0
        self.fetch_seconds_total = 0.0
        self.last_fetch_seconds: float | None = None
        self.fetch_failures = 0

    @property
    def category_name(self) -> str:
        """The category's name."""
        return self.category.value

    @property
    def redis_pending(self) -> bool:
        """The Redis snapshot is behind `revision` (a write failed or Redis was reset)."""
        return self.sinks["redis"].pending

    @redis_pending.setter
    def redis_pending(self, value: bool) -> None:
        self.sinks["redis"].pending = value

    @property
    def redis_write_failures(self) -> int:
        """Snapshot writes to Redis that failed."""
        return self.sinks["redis"].write_failures

    def mark_behind(self, store: str) -> None:
        """`store` lost or never got the held snapshot: write it on the next pass."""
        backlog = self.sinks[store]
        backlog.pending = True
        backlog.retry_at = 0.0

    @property
    def loaded(self) -> bool:
        """Whether the category has a good snapshot."""
        return self.data is not None and self.digest is not None

    @property
    def state(self) -> str:
        """`loaded`, `loading` (first pass not over), `failed` (last pass failed or rejected its
        catalog) or `absent` (the backend has no catalog)."""
        if self.loaded:
            return "loaded"
        if not self.first_pass.is_set():
            return "loading"
        if self.pass_error is not None or self.source_rejected:
            return "failed"
        return "absent"

    def observe_fetch(self, seconds: float, *, failed: bool) -> None:
        """Count one backend fetch and its duration."""
        self.fetch_count += 1
        self.fetch_seconds_total += seconds
        self.last_fetch_seconds = seconds
        if failed:
            self.fetch_failures += 1

    def health(self) -> CategoryHealth:
        """The category's part of the service's `HealthReply`."""
        return CategoryHealth(
            revision=self.revision,
            digest=self.digest,
            record_count=len(self.records) if self.records is not None else 0,
            skipped_records=self.skipped,
            last_change=self.last_change,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            restarts=self.restarts,
            state=self.state,
            events_published=self.events_published,
            publish_failures=self.publish_failures,
            fetch_count=self.fetch_count,
            fetch_seconds_total=self.fetch_seconds_total,
            last_fetch_seconds=self.last_fetch_seconds,
            fetch_failures=self.fetch_failures,
            redis_write_failures=self.redis_write_failures,
        )

    def poke(self) -> int:
        """Wake the actor now (must be called on the event loop); returns the pass to wait for."""
        self.requested += 1
        self.wake.set()
        return self.requested

    def begin_pass(self) -> bool:
        """Start a pass; True when it was requested by a poke (fetch fresh)."""
        poked = self.wake.is_set()
        self.wake = anyio.Event()
        self.attempting = self.requested
        return poked

    def finish_pass(self, error: str | None) -> None:
        """Record the end of a pass and wake `Supervisor.refresh` callers."""
        self.completed = self.attempting
        self.pass_error = error
        if error is None:
            self.failures = 0
        progress, self.progress = self.progress, anyio.Event()
        progress.set()
        self.first_pass.set()

    def record_error(self, message: str) -> None:
        """Remember the latest error for health."""
        self.last_error = message
        self.last_error_at = time.time()

    def install(self, revision: int, digest: str, data: bytes, decoded: DecodedCatalog) -> None:
        """Replace the held snapshot in one step."""
        self.revision = revision
        self.digest = digest
        self.data = data
        self.records = decoded.records
        self.skipped = len(decoded.issues)


@dataclass(frozen=True, slots=True)
class ActorContext:
    """What an actor needs from the supervisor."""

    backend: ModelReferenceBackend
    state: StateFile
    store: RedisSnapshotStore | None
    subjects: Subjects
    service_id: str
    poll_interval: float
    fetch_timeout: float
    delta_max_bytes: int
    publish: Callable[[str, bytes], Awaitable[bool]]
    redis_result: Callable[[bool], None]
    redis_down: Callable[[], bool]
    """True while Redis is known to be unreachable: changes are published without waiting for it."""
    jetstream: JetStreamSnapshotStore | None = None
    jetstream_result: Callable[[bool], None] = lambda ok: None
    jetstream_down: Callable[[], bool] = lambda: False
    store_wait: float = 0.5
    """Bound on the snapshot store writes made before an event is published."""

    def sinks(self) -> tuple[SnapshotSink, ...]:
        """The snapshot stores configured, in the form the writes take."""
        sinks: list[SnapshotSink] = []
        if self.store is not None:
            sinks.append(SnapshotSink("redis", self.store.put, self.redis_result, self.redis_down))
        jetstream = self.jetstream
        if jetstream is not None:

            async def put(snapshot: StoredSnapshot) -> None:
                await jetstream.put(snapshot.category, snapshot.revision, snapshot.digest, snapshot.data)

            sinks.append(SnapshotSink("jetstream", put, self.jetstream_result, self.jetstream_down))
        return tuple(sinks)


def build_change_event(
    *,
    category: str,
    revision: int,
    digest: str,
    previous_digest: str | None,
    old: Mapping[str, GenericModelRecord] | None,
    new: Mapping[str, GenericModelRecord],
    raw: Mapping[str, msgspec.Raw],
    service_id: str,
    delta_max_bytes: int,
) -> tuple[CategoryChanged, bytes]:
    """The `CategoryChanged` for a change from `old` to `new`, and its encoded bytes.

    `old=None` with `previous_digest=None` is the first load (everything is added); `old=None`
    with a previous digest means the previous records are unknown: no names and no delta.
    Records carry the exact raw JSON of each added and changed record, unless the encoded event
    would exceed `delta_max_bytes`.
    """
    records: dict[str, msgspec.Raw] | None
    if old is None and previous_digest is not None:
        added: list[str] = []
        removed: list[str] = []
        changed: list[str] = []
        records = None
    else:
        before = old or {}
        added = sorted(k for k in new if k not in before)
        removed = sorted(k for k in before if k not in new)
        changed = sorted(k for k in new if k in before and new[k] != before[k])
        records = {k: raw[k] for k in (*added, *changed) if k in raw}
        if sum(len(r) for r in records.values()) > delta_max_bytes:
            records = None
    event = CategoryChanged(
        category=category,
        revision=revision,
        digest=digest,
        previous_digest=previous_digest,
        added=added,
        removed=removed,
        changed=changed,
        records=records,
        record_count=len(new),
        service_id=service_id,
        published_at=time.time(),
        records_digest=catalog_records_digest(raw),
    )
    payload = encode_event(event)
    if event.records is not None and len(payload) > delta_max_bytes:
        event = msgspec.structs.replace(event, records=None)
        payload = encode_event(event)
    return event, payload


class CategoryActor:
    """Polls one category until cancelled; exceptions propagate to the supervisor (restart)."""

    def __init__(self, slot: CategorySlot, context: ActorContext) -> None:
        self.slot = slot
        self.ctx = context
        self._cat = slot.category.value
        self._sinks = context.sinks()

    async def run(self) -> None:
        """Poll forever: one pass, then sleep until the poll interval elapses or a poke arrives."""
        while True:
            await self.run_pass()
            with anyio.move_on_after(self.ctx.poll_interval):
                await self.slot.wake.wait()

    async def run_pass(self) -> None:
        """Fetch once and publish when the catalog changed."""
        slot = self.slot
        poked = slot.begin_pass()
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.ctx.fetch_timeout):
                payload = await self.ctx.backend.fetch_category(slot.category, force_refresh=poked)
        except TimeoutError:
            slot.observe_fetch(time.perf_counter() - started, failed=True)
            raise BackendError(
                self.ctx.backend.name, self._cat, f"fetch timed out after {self.ctx.fetch_timeout:.1f}s"
            ) from None
        except Exception:
            slot.observe_fetch(time.perf_counter() - started, failed=True)
            raise
        slot.observe_fetch(time.perf_counter() - started, failed=False)
        if payload is None:
            slot.source_rejected = False
            if slot.loaded and not slot.missing_logged:
                _log.warning("category_source_missing", category=self._cat, kept_revision=slot.revision)
                slot.missing_logged = True
        else:
            slot.missing_logged = False
            await self._consider(payload)
            slot.source_rejected = payload.digest == slot.rejected_digest
        await retry_pending(slot, self._sinks, bound=self.ctx.store_wait)
        if slot.state_pending:
            with anyio.CancelScope(shield=True):
                await self._persist()
        slot.finish_pass(None)

    async def _consider(self, payload: CategoryPayload) -> None:
        slot = self.slot
        digest = payload.digest
        if digest == slot.digest and slot.loaded:
            slot.rejected_digest = None
            return
        if digest == slot.rejected_digest:
            return
        try:
            decoded = payload.records()
            raw: dict[str, msgspec.Raw] = _RAW_DECODER.decode(payload.data)
        except (CatalogDecodeError, msgspec.DecodeError) as exc:
            slot.rejected_digest = digest
            slot.record_error(str(exc))
            _log.error(
                "catalog_rejected",
                category=self._cat,
                digest=digest,
                source=payload.source,
                reason=str(exc),
                kept_revision=slot.revision,
            )
            return
        if decoded.issues:
            _log.warning(
                "catalog_records_skipped",
                category=self._cat,
                digest=digest,
                skipped=[issue.name for issue in decoded.issues],
                kept=len(decoded.records),
            )
        if digest == slot.digest:
            # Same bytes as persisted before a restart: hold them, publish nothing.
            slot.install(slot.revision, digest, payload.data, decoded)
            return
        with anyio.CancelScope(shield=True):
            await self._commit(payload, decoded, raw)

    async def _commit(
        self, payload: CategoryPayload, decoded: DecodedCatalog, raw: dict[str, msgspec.Raw]
    ) -> None:
        slot = self.slot
        previous_digest, old = slot.digest, slot.records
        revision = self.ctx.state.next_revision(self._cat, slot.revision)
        await self.ctx.state.reserve(self._cat, revision)
        slot.install(revision, payload.digest, payload.data, decoded)
        slot.last_change = time.time()
        slot.rejected_digest = None
        for sink in self._sinks:
            slot.mark_behind(sink.name)
        await write_before_publish(slot, self._sinks, bound=self.ctx.store_wait)
        # Published bytes must survive a crash: in Redis (adopted by a restarted service), or else
        # on disk before the event goes out. Only with Redis holding them does the fsync'd state
        # write move off the propagation path.
        in_redis = self.ctx.store is not None and not slot.redis_pending
        persisted = True if in_redis else await self._persist()
        event, encoded = build_change_event(
            category=self._cat,
            revision=revision,
            digest=payload.digest,
            previous_digest=previous_digest,
            old=old,
            new=decoded.records,
            raw=raw,
            service_id=self.ctx.service_id,
            delta_max_bytes=self.ctx.delta_max_bytes,
        )
        published = await self.ctx.publish(self.ctx.subjects.changed(self._cat), encoded)
        if published:
            slot.events_published += 1
        else:
            slot.publish_failures += 1
        if in_redis:
            # Off the propagation path: the reservation keeps `revision` from being reused, and
            # Redis holds the bytes should the service die before this write.
            persisted = await self._persist()
        _log.info(
            "category_changed",
            category=self._cat,
            revision=revision,
            digest=payload.digest,
            added=len(event.added),
            removed=len(event.removed),
            changed=len(event.changed),
            delta=event.records is not None,
            event_bytes=len(encoded),
            published=published,
            persisted=persisted,
        )

    async def _persist(self) -> bool:
        """Write the held revision, digest and bytes to the state file; False (logged) on failure."""
        slot = self.slot
        if slot.data is None or slot.digest is None:
            slot.state_pending = False
            return True
        try:
            await self.ctx.state.commit(self._cat, slot.revision, slot.digest, slot.data)
        except StateFileError as exc:
            slot.state_pending = True
            slot.record_error(str(exc))
            _log.error("state_write_failed", category=self._cat, revision=slot.revision, error=str(exc))
            return False
        slot.state_pending = False
        return True
