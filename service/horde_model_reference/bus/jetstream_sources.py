"""Where a consumer fetches a snapshot from: JetStream, then Redis, then the service (request/reply).

Every fetch is conditional: it names the revision and digest held, and a source that holds the
same answers "unchanged" without sending any bytes (JetStream and Redis: the index or the
revision/digest fields are compared before the body is read; the service: a `NotModified` reply).
JetStream and Redis each sit behind a circuit breaker: a source that failed (a hung Redis, a
JetStream without quorum) costs one timeout, then is skipped for `breaker_seconds`.

A full resync (after a reconnect) reads JetStream's index once for all categories.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from nats.errors import NoRespondersError

from horde_model_reference.bus.connection import NatsClient
from horde_model_reference.bus.events import (
    ErrorReply,
    NotModified,
    Snapshot,
    SnapshotRequest,
    Subjects,
    decode_event,
)
from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore, SnapshotIndex
from horde_model_reference.bus.snapshot_store import CircuitBreaker, RedisSnapshotStore, StoredSnapshot
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger

__all__ = ["Fetched", "Held", "ServiceAbsent", "SnapshotSources"]

_log = get_logger(__name__)

Held = tuple[int, str]
"""A revision and digest."""


class ServiceAbsent(BackendError):
    """NATS is up but no service answers: the data is unavailable, not late."""


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """What a fetch found: a snapshot to install, or that the one held is current."""

    source: str
    """`jetstream`, `redis` or `service`."""
    snapshot: StoredSnapshot | None = None
    """None: unchanged (the source holds the revision and digest named)."""
    service_id: str = ""
    """The service that produced it, when the source says so."""


class SnapshotSources:
    """The chain of snapshot sources of one consumer (a NATS client is attached while connected)."""

    def __init__(
        self,
        subjects: Subjects,
        *,
        request_timeout: float,
        jetstream: bool,
        redis: RedisSnapshotStore | None,
        breaker_seconds: float,
        stats: dict[str, int],
        accept: Callable[[StoredSnapshot, str], bool] | None = None,
        service: bool = True,
    ) -> None:
        self._subjects = subjects
        self._accept = accept
        """Checks a stored snapshot's signature (`BusTrust.signature_ok`): a store's snapshot it
        refuses is fetched from the next source instead."""
        self._timeout = request_timeout
        self._use_jetstream = jetstream
        self._use_service = service
        self._redis = redis
        self._stats = stats
        self._nc: NatsClient | None = None
        self._jetstream: JetStreamSnapshotStore | None = None
        self._index: SnapshotIndex | None = None
        self._in_pass = False
        self._js_breaker = CircuitBreaker("jetstream", breaker_seconds)
        self._redis_breaker = CircuitBreaker("redis", breaker_seconds)
        self.clock_offset: float | None = None
        """The service's clock minus ours (from heartbeats): request deadlines are in its time."""
        self._clock_service = ""

    def observe_clock(self, service_id: str, sent_at: float) -> None:
        """Learn the service's clock from a heartbeat it sent at `sent_at` (its time).

        A heartbeat that arrives late only makes the offset look smaller, so the largest one seen
        from the same service is kept: a backlog of late heartbeats cannot make every request's
        deadline look expired to the service.
        """
        sample = sent_at - time.time()
        if self.clock_offset is None or service_id != self._clock_service or sample > self.clock_offset:
            self.clock_offset = sample
            self._clock_service = service_id

    def attach(self, nc: NatsClient | None) -> None:
        """Use `nc` (None: disconnected for good)."""
        self._nc = nc
        self._jetstream = None
        if nc is not None and self._use_jetstream:
            self._jetstream = JetStreamSnapshotStore(
                nc, subject_prefix=self._subjects.prefix, timeout=self._timeout
            )

    async def begin_pass(self) -> SnapshotIndex | None:
        """Start a full resync: JetStream's index is read once, here, for every category."""
        self._in_pass = True
        self._index = await self._read_index()
        return self._index

    def end_pass(self) -> None:
        """End a full resync (later fetches read the index afresh)."""
        self._in_pass = False
        self._index = None

    async def fetch(
        self,
        category: str,
        *,
        min_revision: int,
        held: Held | None,
        expect: tuple[int, str, str] | None = None,
    ) -> Fetched | None:
        """The category's snapshot (or "unchanged"), from the first source that has it; None when
        no source has one and none is required (`min_revision` 0).

        `expect` (revision, digest, service id): only that exact state, or anything from that
        service, is accepted (the service started over: older data from a stale store must not win).
        """
        found = await self._from_jetstream(category, min_revision, held, expect)
        if not self._trusted(found):
            found = await self._from_redis(category, min_revision, held, expect)
        if not self._trusted(found):
            found = await self._from_service(category, min_revision, held)
        return found

    def _trusted(self, found: Fetched | None) -> bool:
        if found is None:
            return False
        return found.snapshot is None or self._accept is None or self._accept(found.snapshot, found.source)

    def _check_not_modified(
        self, category: str, answer: NotModified, min_revision: int, held: Held | None
    ) -> None:
        """A `NotModified` must name what is held, at least `min_revision`, and (with trusted keys) be
        signed: a forged one must not hold a consumer back."""
        if held is None or (answer.revision, answer.digest) != held or answer.revision < min_revision:
            raise BackendError(
                "bus",
                category,
                f"a not-modified reply for revision {answer.revision} does not match the one held"
                f" ({held[0] if held else None}) or is below the one required ({min_revision})",
            )
        statement = StoredSnapshot(answer.category, answer.revision, answer.digest, b"", answer.signature)
        if self._accept is not None and not self._accept(statement, "service"):
            raise BackendError("bus", category, "a not-modified reply without an acceptable signature")

    # ------------------------------------------------------------------ JetStream

    async def _read_index(self) -> SnapshotIndex | None:
        store = self._jetstream
        if store is None or not self._js_breaker.allow():
            return None
        try:
            index = await store.get_index()
        except BackendError as exc:
            self._js_breaker.failed(str(exc))
            return None
        self._js_breaker.succeeded()
        return index

    async def _from_jetstream(
        self, category: str, min_revision: int, held: Held | None, expect: tuple[int, str, str] | None
    ) -> Fetched | None:
        index = self._index if self._in_pass else None
        fresh = index is None
        if index is None:
            index = await self._read_index()
        meta = index.categories.get(category) if index is not None else None
        if not fresh and (meta is None or meta.revision < min_revision):
            index = await self._read_index()  # the pass's index may be older than the event
            fresh = True
            meta = index.categories.get(category) if index is not None else None
        for _ in range(2):
            if index is None or meta is None or meta.revision < min_revision:
                return None
            state = (meta.revision, meta.digest)
            if expect is not None and state != expect[:2]:
                return None
            if held == state:
                self._stats["not_modified"] += 1
                return Fetched(source="jetstream", service_id=index.service_id)
            store = self._jetstream
            if store is None:  # the client closed for good while the index was read
                return None
            try:
                data = await store.get_body(category, meta)
            except BackendError as exc:
                self._js_breaker.failed(str(exc))
                return None
            if data is not None and catalog_digest(data) == meta.digest:
                self._stats["snapshots_jetstream"] += 1
                self._stats["snapshot_bytes"] += len(data)
                snapshot = StoredSnapshot(
                    category, meta.revision, meta.digest, data, signature=meta.signature
                )
                return Fetched(source="jetstream", snapshot=snapshot, service_id=index.service_id)
            # A newer body was written after the index was read: read the index once more.
            index = await self._read_index()
            meta = index.categories.get(category) if index is not None else None
        return None

    # ------------------------------------------------------------------ Redis

    async def _from_redis(
        self, category: str, min_revision: int, held: Held | None, expect: tuple[int, str, str] | None
    ) -> Fetched | None:
        store = self._redis
        if store is None or not self._redis_breaker.allow():
            return None
        try:
            state = (await store.get_states([category])).get(category)
            if state is None or state[0] < min_revision or (expect is not None and state != expect[:2]):
                self._redis_breaker.succeeded()
                return None
            if held == state:
                self._redis_breaker.succeeded()
                self._stats["not_modified"] += 1
                return Fetched(source="redis")
            stored = await store.get(category)
        except BackendError as exc:
            self._redis_breaker.failed(str(exc))
            return None
        self._redis_breaker.succeeded()
        if stored is None or stored.revision < min_revision:
            return None
        if expect is not None and (stored.revision, stored.digest) != expect[:2]:
            return None
        self._stats["snapshots_redis"] += 1
        self._stats["snapshot_bytes"] += len(stored.data)
        return Fetched(source="redis", snapshot=stored)

    # ------------------------------------------------------------------ the service

    async def _from_service(self, category: str, min_revision: int, held: Held | None) -> Fetched | None:
        if not self._use_service:
            if min_revision > 0:
                raise BackendError("bus", category, "no snapshot source has it (service requests are off)")
            return None
        nc = self._nc
        if nc is None or not nc.is_connected:
            if min_revision > 0:
                raise BackendError("bus", category, "no snapshot source reachable (NATS not connected)")
            return None
        request = SnapshotRequest(
            min_revision=min_revision,
            held_revision=held[0] if held else 0,
            held_digest=held[1] if held else None,
            # Only once a heartbeat told the service's clock: a skewed clock must not get every
            # request dropped as expired.
            deadline=0.0 if self.clock_offset is None else time.time() + self.clock_offset + self._timeout,
        )
        try:
            reply = await nc.request(
                self._subjects.snapshot(category), msgspec.json.encode(request), timeout=self._timeout
            )
        except NoRespondersError:
            raise ServiceAbsent("bus", category, "no service answers snapshot requests") from None
        except Exception as exc:
            raise BackendError("bus", category, f"snapshot request failed: {exc!r}") from exc
        try:
            answer = decode_event(reply.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BackendError("bus", category, f"undecodable snapshot reply: {exc}") from exc
        if isinstance(answer, NotModified | Snapshot) and answer.category != category:
            raise BackendError(
                "bus", category, f"a snapshot reply for another category ({answer.category!r})"
            )
        if isinstance(answer, NotModified):
            self._check_not_modified(category, answer, min_revision, held)
            self._stats["not_modified"] += 1
            return Fetched(source="service", service_id=answer.service_id)
        if isinstance(answer, ErrorReply):
            if answer.error in ("not_loaded", "unknown_category") and min_revision == 0:
                return None
            raise BackendError("bus", category, f"{answer.error}: {answer.message}")
        if not isinstance(answer, Snapshot):
            raise BackendError("bus", category, f"unexpected reply {type(answer).__name__}")
        self._stats["snapshots_nats"] += 1
        data = bytes(answer.data)
        self._stats["snapshot_bytes"] += len(data)
        snapshot = StoredSnapshot(
            category=answer.category,
            revision=answer.revision,
            digest=answer.digest,
            data=data,
            signature=answer.signature,
        )
        return Fetched(source="service", snapshot=snapshot, service_id=answer.service_id)
