"""The manager's engine: the snapshot cache, loading through the backend, revalidation, callbacks.

Warm reads are one dict lookup on an immutable snapshot: no I/O, no stat, no lock. Cold reads
load through the backend (sync callers via the package's background loop, async callers on their
own loop). Data never expires into absence: revalidation happens in the background and replaces
a snapshot only with a newer, decodable one. With the bus, `BusConsumer` installs snapshots and
deltas instead and reads never touch the backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from horde_model_reference._portal import get_portal, run_sync
from horde_model_reference.backends.base import CategoryPayload, ModelReferenceBackend
from horde_model_reference.cache import (
    CategorySnapshot,
    ChangeCallback,
    ChangeNotice,
    ReferenceCache,
    log_callback_failure,
)
from horde_model_reference.catalog import DecodedCatalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories, parse_category
from horde_model_reference.errors import BackendError, BusNoDataError, CatalogDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.urls import redact_url

if TYPE_CHECKING:
    from horde_model_reference.bus.consumer import BusConsumer

__all__ = ["ManagerCore"]

_log = get_logger(__name__)
_MIN_RECHECK_SECONDS = 1.0
"""An absent category is re-checked at most this often, even with `NEGATIVE_CACHE_SECONDS=0`."""
_DECODE_IN_THREAD_BYTES = 65536
"""Catalogs larger than this are decoded in a worker thread by async loads (the loop stays free)."""


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


class ManagerCore:
    """Snapshot cache plus loading; the public read API is built on `_snapshot_sync/_async`."""

    _cache: ReferenceCache
    _backend: ModelReferenceBackend
    _bus: BusConsumer | None
    _revalidate_interval: float
    _revalidating: set[str]

    # ----------------------------------------------------------------- loading

    def warm_cache(self, *, force_refresh: bool = False) -> None:
        """Load and decode every canonical category now (blocking)."""
        if self._bus is not None:
            self._bus.wait_ready(self._bus.options.ready_timeout)
            return
        if self._sync_fetch() is not None:
            for category in canonical_categories():
                self._load_quietly_sync(category, force_refresh)
            return
        run_sync(self.warm_cache_async, force_refresh)

    async def warm_cache_async(self, force_refresh: bool = False, *, httpx_client: object = None) -> None:
        """Load and decode every canonical category concurrently (`httpx_client`: upstream's, unused)."""
        if self._bus is not None:
            await anyio.to_thread.run_sync(self._bus.wait_ready, self._bus.options.ready_timeout)
            return
        async with anyio.create_task_group() as tg:
            for category in canonical_categories():
                tg.start_soon(self._load_quietly, category, force_refresh)

    async def _load_quietly(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> None:
        try:
            await self._load_async(category, force)
        except (BackendError, CatalogDecodeError) as exc:
            _log.error("category_load_failed", category=category.value, error=str(exc))

    def _load_quietly_sync(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> None:
        try:
            self._load_sync(category, force)
        except (BackendError, CatalogDecodeError) as exc:
            _log.error("category_load_failed", category=category.value, error=str(exc))

    def _sync_fetch(self) -> Callable[[MODEL_REFERENCE_CATEGORY, bool], CategoryPayload | None] | None:
        """The backend's blocking fetch, when it has one (local files): no event loop needed."""
        fetch: Callable[[MODEL_REFERENCE_CATEGORY, bool], CategoryPayload | None] | None
        fetch = getattr(self._backend, "fetch_category_sync", None)
        return fetch

    def _last_good(self, key: str, error: BackendError) -> CategorySnapshot | None:
        """The snapshot held when a refresh failed (logged), or None when there is none.

        Either way the failure counts as a check: the next one waits its interval (a source that is
        down is not asked again on every read).
        """
        current = self._cache.snapshots.get(key)
        if current is not None:
            self._cache.checked_at[key] = time.monotonic()
            _log.warning("category_refresh_failed_kept_last_good", category=key, error=str(error))
        return current

    def _accept(self, category: MODEL_REFERENCE_CATEGORY, payload: CategoryPayload | None) -> bool:
        """Whether `payload` must be decoded and installed (False: absent, or the bytes held)."""
        key = category.value
        current = self._cache.snapshots.get(key)
        if payload is None:
            if current is None:
                self._cache.mark_missing(key)
            return False
        if current is not None and current.digest == payload.digest:
            self._cache.checked_at[key] = time.monotonic()
            return False
        return True

    def _install(
        self,
        category: MODEL_REFERENCE_CATEGORY,
        payload: CategoryPayload,
        decoded: DecodedCatalog,
        generation: int,
    ) -> ChangeNotice | None:
        return self._cache.install(
            category,
            decoded.records,
            revision=payload.revision or 0,
            digest=payload.known_digest(),
            raw=payload.data,
            issues=decoded.issues,
            generation=generation,
            notify=None,
        )

    async def _load_async(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> CategorySnapshot | None:
        """Fetch, decode and install one category; keep the last good snapshot on any failure."""
        generation = self._cache.next_generation()
        try:
            payload = await self._backend.fetch_category(category, force_refresh=force)
        except BackendError as exc:
            kept = self._last_good(category.value, exc)
            if kept is None:
                raise
            return kept
        if payload is not None and self._accept(category, payload):
            if payload.decoded is None and len(payload.data) > _DECODE_IN_THREAD_BYTES:
                decoded = await anyio.to_thread.run_sync(payload.records)
            else:
                decoded = payload.records()
            notice = self._install(category, payload, decoded, generation)
            if notice is not None:
                await self._dispatch_async(notice)
        elif payload is None:
            self._accept(category, None)
        return self._cache.snapshots.get(category.value)

    def _load_sync(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> CategorySnapshot | None:
        """`_load_async` on the calling thread, for backends with a blocking fetch."""
        fetch = self._sync_fetch()
        if fetch is None:
            return run_sync(self._load_async, category, force)
        generation = self._cache.next_generation()
        try:
            payload = fetch(category, force)
        except BackendError as exc:
            kept = self._last_good(category.value, exc)
            if kept is None:
                raise
            return kept
        if self._accept(category, payload) and payload is not None:
            notice = self._install(category, payload, payload.records(), generation)
            if notice is not None:
                self._dispatch_sync(notice)
        return self._cache.snapshots.get(category.value)

    async def _dispatch_async(self, notice: ChangeNotice) -> None:
        for callback in self._cache.callbacks:
            try:
                result = callback(notice)
                if result is not None:
                    await result
            except Exception:
                log_callback_failure(callback, notice)

    def _dispatch_sync(self, notice: ChangeNotice) -> None:
        for callback in self._cache.callbacks:
            try:
                result = callback(notice)
                if result is not None:
                    run_sync(_await, result)
            except Exception:
                log_callback_failure(callback, notice)

    def _on_backend_invalidation(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        self._cache.checked_at.pop(category.value, None)

    def _maybe_revalidate(self, key: str) -> None:
        """Re-check a held category in the background once the revalidation interval has passed."""
        if self._bus is not None:
            return
        checked = self._cache.checked_at.get(key, 0.0)
        if time.monotonic() - checked >= self._revalidate_interval:
            self._schedule_revalidation(key)

    def _schedule_revalidation(self, key: str) -> None:
        """Load the category again in the background, unless that is already under way."""
        if key in self._revalidating:
            return
        self._revalidating.add(key)
        try:
            get_portal().start_task_soon(self._revalidate, MODEL_REFERENCE_CATEGORY(key))
        except RuntimeError:
            # A read from the background loop's own thread (an on_change callback): the next read
            # from any other thread schedules the revalidation instead.
            self._revalidating.discard(key)

    async def _revalidate(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        try:
            await self._load_async(category, False)
        except Exception:
            _log.exception("category_revalidation_failed", category=category.value)
            if category.value in self._cache.snapshots:
                self._cache.checked_at[category.value] = time.monotonic()
            else:  # still absent as far as readers know: ask again after the negative cache time
                self._cache.mark_missing(category.value)
        finally:
            self._revalidating.discard(category.value)

    def _absent(self, key: str) -> bool:
        """Whether a read must answer "absent" without loading: the category was found missing.

        Within the negative cache time nothing is checked; after it, a read schedules a re-check in
        the background and still answers at once (a category appearing is seen by a later read).
        """
        if self._cache.is_known_missing(key):
            return True
        if self._cache.was_found_missing(key):
            if time.monotonic() - self._cache.checked_at.get(key, 0.0) >= _MIN_RECHECK_SECONDS:
                self._schedule_revalidation(key)
            return True
        return False

    def _snapshot_sync(
        self, category: str | MODEL_REFERENCE_CATEGORY, force: bool = False
    ) -> CategorySnapshot | None:
        snapshot = self._cache.snapshots.get(category)
        if snapshot is not None and not force:
            self._maybe_revalidate(snapshot.category.value)
            return snapshot
        cat = parse_category(category)
        if cat.value != category and not force:  # an alias (`stable_diffusion`): look again by value
            snapshot = self._cache.snapshots.get(cat.value)
            if snapshot is not None:
                self._maybe_revalidate(cat.value)
                return snapshot
        if self._bus is not None:
            self._bus.wait_ready(self._bus.options.ready_timeout)
            return self._held_after_bus_wait(cat.value)
        if not force and self._absent(cat.value):
            return None
        return self._load_sync(cat, force)

    async def _snapshot_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, force: bool = False
    ) -> CategorySnapshot | None:
        snapshot = self._cache.snapshots.get(category)
        if snapshot is not None and not force:
            self._maybe_revalidate(snapshot.category.value)
            return snapshot
        cat = parse_category(category)
        if cat.value != category and not force:  # an alias (`stable_diffusion`): look again by value
            snapshot = self._cache.snapshots.get(cat.value)
            if snapshot is not None:
                self._maybe_revalidate(cat.value)
                return snapshot
        if self._bus is not None:
            await anyio.to_thread.run_sync(self._bus.wait_ready, self._bus.options.ready_timeout)
            return self._held_after_bus_wait(cat.value)
        if not force and self._absent(cat.value):
            return None
        return await self._load_async(cat, force)

    def _held_after_bus_wait(self, category: str) -> CategorySnapshot | None:
        """The held snapshot; `BusNoDataError` when the bus delivered no category at all in time."""
        snapshot = self._cache.snapshots.get(category)
        if snapshot is None and self._bus is not None and not self._cache.snapshots:
            raise BusNoDataError(redact_url(self._bus.options.nats_url), self._bus.options.ready_timeout)
        return snapshot

    # Hooks for the provider/query mixin.
    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        snapshot = self._snapshot_sync(category)
        return snapshot.records if snapshot else None

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        snapshot = await self._snapshot_async(category)
        return snapshot.records if snapshot else None

    # ----------------------------------------------------------------- state

    def invalidate_category_cache(self, category: str | MODEL_REFERENCE_CATEGORY) -> None:
        """Revalidate the category on next read (the data held stays readable until then)."""
        self._cache.forget(parse_category(category).value)

    def last_updated(self, category: str | MODEL_REFERENCE_CATEGORY) -> float | None:
        """Unix time this manager last installed new data for the category, or None."""
        snapshot = self._cache.snapshots.get(parse_category(category).value)
        return snapshot.loaded_at if snapshot else None

    def revision(self, category: str | MODEL_REFERENCE_CATEGORY) -> int | None:
        """The service revision held for the category (0 without the bus), or None when not loaded."""
        snapshot = self._cache.snapshots.get(parse_category(category).value)
        return snapshot.revision if snapshot else None

    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> CategorySnapshot | None:
        """The snapshot held for the category (records, revision, digest together), or None."""
        return self._cache.snapshots.get(parse_category(category).value)

    def on_change(self, callback: ChangeCallback) -> ChangeCallback:
        """Call `callback(ChangeNotice)` (sync or async) whenever a category's data changes.

        A failing callback is logged and the sync goes on. Usable as a decorator.
        """
        self._cache.add_callback(callback)
        return callback

    def wait_for_revision(
        self, category: str | MODEL_REFERENCE_CATEGORY, revision: int, timeout: float = 5.0
    ) -> bool:
        """Block until the held revision of `category` is at least `revision` (or `timeout`)."""
        key = parse_category(category).value

        def reached() -> bool:
            snapshot = self._cache.snapshots.get(key)
            return snapshot is not None and snapshot.revision >= revision

        return reached() or self._cache.wait_for(reached, timeout)

    @property
    def is_warm(self) -> bool:
        """Whether every canonical category is loaded or was found absent (reads then do no I/O)."""
        return all(
            category.value in self._cache.snapshots or self._cache.was_found_missing(category.value)
            for category in canonical_categories()
        )
