"""The service's snapshot stores (Redis, JetStream): opened at start, state restored from them,
watched and refilled while running. A mixin of `Supervisor` (supervisor/service.py)."""

from __future__ import annotations

from collections.abc import Mapping

from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore, MalformedIndexError
from horde_model_reference.bus.signing import Signer
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor._nats import NatsLink
from horde_model_reference.supervisor._stores import mark_behind, watch_store
from horde_model_reference.supervisor.actor import CategorySlot
from horde_model_reference.supervisor.config import ServiceConfig
from horde_model_reference.supervisor.state import PersistedCategory, StateFile, StateFileError

__all__ = ["StoreKeeping"]

_log = get_logger("horde_model_reference.supervisor.service")


class StoreKeeping:
    """Redis and JetStream for a `Supervisor` (which provides the attributes below)."""

    config: ServiceConfig
    service_id: str
    started_at: float
    signer: Signer | None
    _slots: Mapping[MODEL_REFERENCE_CATEGORY, CategorySlot]
    _state: StateFile
    _store: RedisSnapshotStore | None
    _redis_ok: bool | None
    _jetstream: JetStreamSnapshotStore | None
    _jetstream_ok: bool | None

    async def _open_redis(self) -> None:
        if self.config.redis_url is None:
            return
        self._store = RedisSnapshotStore(
            self.config.redis_url,
            key_prefix=self.config.redis_key_prefix,
            socket_timeout=self.config.redis_timeout,
            connect_timeout=self.config.redis_timeout,
            pool_timeout=self.config.redis_timeout,
            signer=self.signer,
        )

    async def _open_jetstream(self, link: NatsLink) -> None:
        """The snapshot bucket (created or updated); without JetStream the service runs on without it."""
        if not self.config.jetstream:
            return
        store = JetStreamSnapshotStore(
            link.client,
            subject_prefix=self.config.subject_prefix,
            timeout=self.config.publish_timeout,
            replicas=self.config.jetstream_replicas,
            signer=self.signer,
        )
        self._jetstream = store
        try:
            await store.ensure(service_id=self.service_id, started_at=self.started_at)
        except BackendError as exc:
            self._jetstream_ok = False
            _log.error(
                "jetstream_unavailable", error=str(exc), bucket=store.bucket, using="Redis and request/reply"
            )
        else:
            self._jetstream_ok = True
        mark_behind(self._slots.values(), "jetstream", {})
        for slot in self._slots.values():
            held = store.held(slot.category.value)
            if held is not None and (held.revision, held.digest) == (slot.revision, slot.digest):
                slot.sinks["jetstream"].pending = False

    async def _restore_state(self) -> None:
        """Revisions from the state file and Redis (the higher wins), last good bytes from disk."""
        persisted = self._state.load()
        redis_states: dict[str, tuple[int, str]] = {}
        if self._store is not None:
            try:
                redis_states = await self._store.get_states(c.value for c in self._slots)
                self._redis_ok = True
            except BackendError as exc:
                self._redis_ok = False
                _log.error("redis_unavailable_at_start", error=str(exc), using="state file only")
        adopted: dict[str, PersistedCategory] = {}
        adopted_bytes: dict[str, bytes] = {}
        for category, slot in self._slots.items():
            name = category.value
            local = persisted.get(name)
            remote = redis_states.get(name)
            data: bytes | None = None
            if remote is not None and (local is None or remote[0] > local.revision):
                local = PersistedCategory(*remote)
                adopted[name] = local
                data = await self._redis_bytes(name, local)
                if data is not None:
                    adopted_bytes[name] = data
                _log.warning("revision_adopted_from_redis", category=name, revision=local.revision)
            if local is None:
                continue
            slot.revision, slot.digest = local.revision, local.digest
            data = data if data is not None else self._state.load_snapshot(name, local.digest)
            if data is not None:
                try:
                    slot.install(local.revision, local.digest, data, decode_catalog(category, data))
                except CatalogDecodeError as exc:
                    _log.error("snapshot_file_rejected", category=name, error=str(exc))
            slot.redis_pending = self._store is not None and remote != (local.revision, local.digest)
        if adopted:
            await self._state.adopt(adopted, adopted_bytes)
        # One write now, so that the coming changes publish without waiting for the disk.
        try:
            await self._state.reserve_all({c.value: s.revision for c, s in self._slots.items()})
        except StateFileError as exc:  # each change then tries to reserve (and fails) on its own
            _log.error("state_reservation_failed", error=str(exc), path=str(self._state.path))
        _log.info(
            "service_state_restored",
            revisions={c.value: s.revision for c, s in self._slots.items() if s.revision},
            path=str(self._state.path),
        )

    async def _redis_bytes(self, name: str, state: PersistedCategory) -> bytes | None:
        assert self._store is not None
        try:
            stored = await self._store.get(name)
        except BackendError as exc:
            _log.error("redis_snapshot_read_failed", category=name, error=str(exc))
            return None
        if stored is None or stored.revision != state.revision or stored.digest != state.digest:
            return None
        return stored.data

    async def _watch_redis(self, store: RedisSnapshotStore) -> None:
        """Check Redis now and then: health stays current, and what it lacks is pushed again.

        One pipelined read of every category's revision and digest: a Redis emptied (FLUSHALL, a
        restart without persistence) or written by someone else is refilled, not only the
        categories whose own write failed.
        """

        async def read() -> dict[str, tuple[int, str]]:
            return await store.get_states(c.value for c in self._slots)

        await watch_store(
            self._slots.values(),
            "redis",
            read,
            is_ok=lambda: self._redis_ok,
            set_ok=self._set_redis_ok,
            interval=self.config.heartbeat_interval * 2.5,
        )

    async def _watch_jetstream(self, store: JetStreamSnapshotStore) -> None:
        """Check the JetStream index now and then (as `_watch_redis`); recreate the bucket when lost."""

        async def read() -> dict[str, tuple[int, str]]:
            try:
                index = await store.get_index()
            except MalformedIndexError:
                index = None  # ensure() below logs it; every category is then written again
            if index is None or self._jetstream_ok is False:
                index = await store.ensure(service_id=self.service_id, started_at=self.started_at)
            return {} if index is None else {n: (m.revision, m.digest) for n, m in index.categories.items()}

        await watch_store(
            self._slots.values(),
            "jetstream",
            read,
            is_ok=lambda: self._jetstream_ok,
            set_ok=self._set_jetstream_ok,
            interval=self.config.heartbeat_interval * 2.5,
        )

    def _set_jetstream_ok(self, ok: bool) -> None:
        if ok != self._jetstream_ok:
            level = _log.info if ok else _log.warning
            level("jetstream_state", connected=ok, bucket=self._jetstream.bucket if self._jetstream else None)
        self._jetstream_ok = ok

    def _set_redis_ok(self, ok: bool) -> None:
        if ok != self._redis_ok:
            if ok:
                _log.info("redis_state", connected=True, url=self._store.url if self._store else None)
            else:
                _log.warning("redis_state", connected=False, url=self._store.url if self._store else None)
        self._redis_ok = ok
