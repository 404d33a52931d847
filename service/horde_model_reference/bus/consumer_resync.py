"""The consumer's resynchronisation: heartbeats, snapshots fetched and installed, retries.

A mixin of `BusConsumer` (bus/consumer.py), kept apart so that each module stays readable: the
fetch goes through `SnapshotSources` (JetStream, then Redis, then the service, each conditional on
the revision and digest held), every snapshot is verified before it is installed, and a failed
fetch is retried with exponential backoff and jitter.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from horde_model_reference.bus.events import Heartbeat
from horde_model_reference.bus.jetstream_sources import Fetched, ServiceAbsent, SnapshotSources
from horde_model_reference.bus.snapshot_store import StoredSnapshot
from horde_model_reference.bus.trust import MAX_UNSERVED_ATTEMPTS, BusTrust, CatalogRejectedError
from horde_model_reference.cache import ChangeNotice, ReferenceCache
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.logs import get_logger

__all__ = ["MAX_RETRY_DELAY", "ResyncMixin"]

_log = get_logger("horde_model_reference.bus.consumer")
MAX_RETRY_DELAY = 30.0
"""The longest wait between two attempts (a resync, a reconnect)."""


class ResyncMixin:
    """Heartbeat gaps, resyncs and retries of a `BusConsumer` (which provides the attributes below)."""

    options: Any
    stats: dict[str, int]
    _cache: ReferenceCache
    _dispatch: Callable[[ChangeNotice], Awaitable[None]]
    _sources: SnapshotSources | None
    _trust: BusTrust
    _origin: dict[str, str]
    _behind: dict[str, int]
    _pending: dict[str, int]
    _attempts: dict[str, int]
    _unresolved: set[str]
    _tg: anyio.abc.TaskGroup | None
    _enqueue: Callable[[tuple[str, Any]], None]

    async def _on_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Resync categories the heartbeat shows this consumer to be behind on.

        A revision ahead of the one held is given until the next heartbeat to arrive as an event
        (the heartbeat may be sent while that event is still on its way); still behind then, or a
        digest that differs at the same revision, or a category not held at all: resync now.
        A revision below the one held is a heartbeat older than an event already applied, unless
        it comes from another service that started later (the service lost its state and started
        over): then exactly the state it announces is installed, never older data from a store.
        """
        if self._sources is not None:
            self._sources.observe_clock(heartbeat.service_id, heartbeat.sent_at)
        for name, state in heartbeat.categories.items():
            held = self._cache.snapshots.get(name)
            expect: tuple[int, str, str] | None = None
            if held is not None:
                if held.revision > state.revision:
                    if held.digest == state.digest or not self._started_over(name, heartbeat, held.loaded_at):
                        continue
                    expect = (state.revision, state.digest, heartbeat.service_id)
                    _log.warning(
                        "bus_revision_went_back",
                        category=name,
                        held=held.revision,
                        service=state.revision,
                        service_id=heartbeat.service_id,
                    )
                elif held.revision == state.revision:
                    self._behind.pop(name, None)
                    if held.digest == state.digest:
                        continue
                else:
                    announced = self._behind.get(name)
                    if announced is None or held.revision >= announced:
                        self._behind[name] = state.revision
                        continue
            try:
                category = MODEL_REFERENCE_CATEGORY(name)
            except ValueError:
                continue
            _log.info(
                "bus_heartbeat_gap",
                category=name,
                held=held.revision if held else None,
                service=state.revision,
            )
            self._behind.pop(name, None)
            if expect is not None:
                await self._resync_category(category, min_revision=0, force=True, expect=expect)
            else:
                await self._resync_category(category, min_revision=state.revision)

    def _started_over(self, name: str, heartbeat: Heartbeat, loaded_at: float) -> bool:
        """Whether `heartbeat` comes from a service other than the one whose data is held, started later."""
        origin = self._origin.get(name, "")
        if origin:
            return origin != heartbeat.service_id
        return heartbeat.started_at > loaded_at

    async def _resync(self, category: MODEL_REFERENCE_CATEGORY | None) -> None:
        categories = canonical_categories() if category is None else (category,)
        full = category is None and self._sources is not None
        if full and self._sources is not None:
            await self._sources.begin_pass()
        try:
            for each in categories:
                if await self._resync_category(each, min_revision=0):
                    self._attempts.pop(each.value, None)
        finally:
            if full and self._sources is not None:
                self._sources.end_pass()

    async def _resync_category(
        self,
        category: MODEL_REFERENCE_CATEGORY,
        *,
        min_revision: int,
        force: bool = False,
        expect: tuple[int, str, str] | None = None,
    ) -> bool:
        """Fetch and install the category's snapshot; False (and a retry scheduled) when it failed.

        The fetch names the revision and digest held: an unchanged category costs no bytes.
        `force` installs even a lower revision (the service started over), and only the state
        `expect` names (revision, digest, service id), or anything from that service.
        """
        self.stats["resyncs"] += 1
        name = category.value
        held = self._cache.snapshots.get(name)
        held_state = (held.revision, held.digest) if held is not None and held.digest and not force else None
        assert self._sources is not None
        try:
            fetched = await self._sources.fetch(
                name, min_revision=min_revision, held=held_state, expect=expect
            )
        except BackendError as exc:
            _log.warning("bus_resync_failed", category=name, error=str(exc))
            self._schedule_retry(category, min_revision, blocks_readiness=not isinstance(exc, ServiceAbsent))
            return False
        if fetched is None:
            return True
        snapshot = fetched.snapshot
        if snapshot is None:
            if fetched.service_id:
                self._origin[name] = fetched.service_id
            return True
        if (
            expect is not None
            and (snapshot.revision, snapshot.digest) != expect[:2]
            and fetched.service_id != expect[2]
        ):
            _log.warning(
                "bus_snapshot_not_from_new_service",
                category=name,
                revision=snapshot.revision,
                source=fetched.source,
                expected=expect[0],
            )
            self._schedule_retry(category, min_revision)
            return False
        return await self._install_fetched(
            category, fetched, snapshot, min_revision=min_revision, force=force
        )

    async def _install_fetched(
        self,
        category: MODEL_REFERENCE_CATEGORY,
        fetched: Fetched,
        snapshot: StoredSnapshot,
        *,
        min_revision: int,
        force: bool,
    ) -> bool:
        held = self._cache.snapshots.get(category.value)
        try:
            hashes = await anyio.to_thread.run_sync(
                self._trust.check_snapshot,
                snapshot,
                held.revision if held is not None else None,
                min_revision,
            )
        except CatalogRejectedError as exc:
            self.stats["refused"] += 1
            _log.error(
                "bus_snapshot_refused",
                category=category.value,
                revision=snapshot.revision,
                source=fetched.source,
                reason=exc.reason,
                min_revision=min_revision,
                action="retry later",
            )
            self._schedule_retry(category, min_revision)
            return False
        try:
            decoded = await anyio.to_thread.run_sync(decode_catalog, category, snapshot.data)
        except CatalogDecodeError as exc:
            _log.error("bus_snapshot_undecodable", category=category.value, error=str(exc))
            return True
        notice = self._cache.install(
            category,
            decoded.records,
            revision=snapshot.revision,
            digest=snapshot.digest,
            raw=snapshot.data,
            issues=decoded.issues,
            force=force,
        )
        installed = self._cache.snapshots.get(category.value)
        if fetched.service_id and installed is not None and installed.revision == snapshot.revision:
            self._origin[category.value] = fetched.service_id
        if installed is not None and (installed.revision, installed.digest) == (
            snapshot.revision,
            snapshot.digest,
        ):
            self._trust.keep(category.value, snapshot.revision, snapshot.digest, hashes)
            self._trust.served(category.value)
        if notice is not None:
            _log.info(
                "bus_snapshot_installed",
                category=category.value,
                revision=snapshot.revision,
                source=fetched.source,
            )
            await self._dispatch(notice)
        return True

    def _schedule_retry(
        self, category: MODEL_REFERENCE_CATEGORY, min_revision: int, *, blocks_readiness: bool = True
    ) -> None:
        """Retry later (exponential backoff with jitter), aiming at the highest revision asked for.

        A retry because no service is running does not hold readers back: they get what is held.
        """
        key = category.value
        if min_revision and not self._trust.may_chase(key, min_revision):
            _log.warning(
                "bus_revision_not_chased",
                category=key,
                revision=min_revision,
                attempts=MAX_UNSERVED_ATTEMPTS,
                reason="no heartbeat confirms it; the next heartbeat says what to fetch",
            )
            min_revision, blocks_readiness = 0, False
            if key in self._pending:
                self._pending[key] = 0
        if blocks_readiness:
            self._unresolved.add(key)
        if key in self._pending:
            self._pending[key] = max(self._pending[key], min_revision)
            return
        if self._tg is None:
            return
        self._pending[key] = min_revision
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        delay = min(self.options.retry_interval * 2**attempt, MAX_RETRY_DELAY) * (1 + random.random() / 2)
        self._tg.start_soon(self._retry_later, category, delay)

    async def _retry_later(self, category: MODEL_REFERENCE_CATEGORY, delay: float) -> None:
        await anyio.sleep(delay)
        self._enqueue(("retry", (category, self._pending.get(category.value, 0))))
