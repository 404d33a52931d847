"""Consumer-side sync: keep a manager's cache equal to the service's, over NATS (list-watch-resync).

Everything (change events, heartbeats, resync requests) is handled one item at a time, in order,
so the cache is only ever changed by one writer. Items wait in one queue for the sync task; a change
event that is the next revision with a usable delta, arriving while nothing is queued or being
handled, is patched in at once, synchronously, by the NATS callback that received it (same order,
one hop less on the propagation path; its `on_change` callbacks are queued for the sync task):

- `CategoryChanged` with revision = held + 1, a delta, and `previous_digest` = held digest:
  patch the records in place (no fetch at all);
- a revision further ahead, or no delta: fetch the snapshot (JetStream first, then Redis, then
  the service's request/reply; each fetch names the digest held, so an unchanged one costs no
  bytes) and install it;
- a revision at or below the one held: ignore (events are idempotent; duplicates and reordering
  are harmless);
- a heartbeat showing a revision or digest different from the one held, a reconnect, or a
  slow-consumer drop: resynchronise the categories concerned.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus

from horde_model_reference._portal import get_portal
from horde_model_reference.bus.connection import NatsAuth, NatsClient, NatsOptions, connect_nats
from horde_model_reference.bus.consumer_resync import MAX_RETRY_DELAY, ResyncMixin
from horde_model_reference.bus.events import CategoryChanged, Heartbeat, Subjects, decode_event
from horde_model_reference.bus.jetstream_sources import SnapshotSources
from horde_model_reference.bus.signing import SignatureError, load_verifier
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore
from horde_model_reference.bus.trust import BusTrust, CatalogRejectedError
from horde_model_reference.cache import ChangeNotice, ReferenceCache
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import CatalogDecodeError, RecordDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.urls import redact_url

__all__ = ["BusConsumer", "BusOptions"]

_log = get_logger(__name__)


def _log_background_end(future: Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        _log.error("bus_sync_stopped", error=repr(error), exc_info=error)


_Item = tuple[str, Any]
Dispatch = Callable[[ChangeNotice], Awaitable[None]]


_encode_key = msgspec.json.Encoder().encode
_CATEGORIES = {category.value: category for category in MODEL_REFERENCE_CATEGORY}


def _decode_delta(
    category: MODEL_REFERENCE_CATEGORY, records: dict[str, msgspec.Raw]
) -> dict[str, GenericModelRecord]:
    """The delta's records decoded in one pass, as a catalog of just them (strict: a bad record raises).

    The raw records are joined into one JSON object, so the catalog's own decoder and known-value
    checks apply, exactly as `decode_record` would one by one.
    """
    body = b"{" + b",".join(_encode_key(name) + b":" + raw for name, raw in records.items()) + b"}"
    return decode_catalog(category, body, strict=True).records


class BusOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where the bus and the snapshot cache are, and how long to wait for them."""

    nats_url: str
    subject_prefix: str = "hmr.v1"
    redis_url: str | None = None
    redis_key_prefix: str = "hmr:v1"
    request_timeout: float = 2.0
    ready_timeout: float = 10.0
    """How long a first read waits for the initial sync before answering with what it has."""
    retry_interval: float = 1.0
    """How soon a failed resync is retried."""
    auth: NatsAuth = NatsAuth()
    jetstream: bool = True
    """Read snapshots from the service's JetStream bucket first (Redis and the service follow)."""
    resync_jitter: float = 1.0
    """A resync after a reconnect starts after a random delay up to this many seconds, so a fleet
    that reconnects at once does not resynchronise at once."""
    breaker_seconds: float = 30.0
    """A snapshot source (JetStream, Redis) that failed is skipped for this long."""
    snapshot_requests: bool = True
    """Ask the service for a snapshot that JetStream and Redis do not have (False for the public
    read-only identity, which may only read JetStream)."""


class BusConsumer(ResyncMixin):
    """Follows the bus for one manager cache. Run it with `run()` in a task group, or in the background."""

    def __init__(self, cache: ReferenceCache, options: BusOptions, *, dispatch: Dispatch) -> None:
        self.options = options
        self._cache = cache
        self._dispatch = dispatch
        self._subjects = Subjects(options.subject_prefix)
        self._ready = threading.Event()
        self._nc: NatsClient | None = None
        self._store: RedisSnapshotStore | None = None
        self._queue: deque[_Item] = deque()
        """Items waiting for the sync task, in arrival order."""
        self._wakeup: anyio.Event | None = None
        self._busy = False
        """The sync task is handling an item (a change event must then queue behind it)."""
        self._accepting = False
        """Items are accepted (the sync runs); `_enqueue` drops them otherwise."""
        self._started = False
        """The initial sync is over: change events may be handled inline."""
        self._future: Future[None] | None = None
        self._pending: dict[str, int] = {}
        """Categories with a retry scheduled, and the revision the retry must reach."""
        self._attempts: dict[str, int] = {}
        self._unresolved: set[str] = set()
        """Categories whose last fetch failed in a way that must hold readers back until retried."""
        self._behind: dict[str, int] = {}
        """Per category, a revision a heartbeat announced before its event arrived."""
        self._running = False
        self._stopped = threading.Event()
        self._thread_id: int | None = None
        self._closing = False
        self._tg: anyio.abc.TaskGroup | None = None
        self.stats = {
            "patched": 0,
            "snapshots_jetstream": 0,
            "snapshots_redis": 0,
            "snapshots_nats": 0,
            "not_modified": 0,
            "snapshot_bytes": 0,
            "ignored": 0,
            "resyncs": 0,
            "refused": 0,
        }
        self._trust = BusTrust(load_verifier(options.auth.trusted_keys))
        """Signatures, digests and revision bounds, checked before anything is installed; "refused"
        counts the messages, deltas and snapshots it refused."""
        """Counters: deltas patched, snapshots read from JetStream, Redis and the service, fetches
        answered "unchanged", snapshot bytes received, events ignored, resyncs."""
        self._sources: SnapshotSources | None = None
        self._origin: dict[str, str] = {}
        """Per category, the id of the service that produced the snapshot held ("" when unknown)."""

    @property
    def connected(self) -> bool:
        """Whether the NATS connection is up."""
        return self._nc is not None and self._nc.is_connected

    @property
    def ready(self) -> bool:
        """Whether the initial sync has completed."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the initial sync completed (or `timeout`).

        Returns at once on the consumer's own loop thread (an `on_change` callback reading the
        manager), which waiting would deadlock.
        """
        if threading.get_ident() == self._thread_id:
            return self._ready.is_set()
        return self._ready.wait(timeout)

    def start_in_background(self) -> None:
        """Run on the package's background loop (for sync processes)."""
        if self._future is None:
            self._future = get_portal().start_task_soon(self.run)
            self._future.add_done_callback(_log_background_end)

    def stop(self) -> None:
        """Stop a background run and wait (up to 5 s) until its connections are closed."""
        future, self._future = self._future, None
        if future is not None:
            future.cancel()
            self._stopped.wait(5)

    # ----------------------------------------------------------------- main loop

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Sync until cancelled. `task_status.started()` fires after the initial sync."""
        if self._running:
            raise RuntimeError("this BusConsumer is already running (in the background or another task)")
        self._running = True
        self._stopped.clear()
        self._thread_id = threading.get_ident()
        try:
            await self._run(task_status)
        finally:
            self._running = False
            self._ready.set()
            self._stopped.set()

    async def _run(self, task_status: TaskStatus[None]) -> None:
        self._queue.clear()
        self._busy = self._started = False
        self._accepting = True
        if self.options.redis_url:
            timeout = self.options.request_timeout
            self._store = RedisSnapshotStore(
                self.options.redis_url,
                key_prefix=self.options.redis_key_prefix,
                socket_timeout=timeout,
                connect_timeout=timeout,
                pool_timeout=timeout,
                op_timeout=timeout,
            )
        self._sources = SnapshotSources(
            self._subjects,
            request_timeout=self.options.request_timeout,
            jetstream=self.options.jetstream,
            redis=self._store,
            breaker_seconds=self.options.breaker_seconds,
            stats=self.stats,
            service=self.options.snapshot_requests,
            accept=self._trust.signature_ok,
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._connect_and_subscribe)
                if self._store is not None:
                    self._enqueue(("resync", None))
                tg.start_soon(self._ready_deadline)
                tg.start_soon(self._process, task_status)
        finally:
            self._accepting = False
            self._queue.clear()
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _close(self) -> None:
        self._closing = True
        nc, self._nc = self._nc, None
        if nc is not None:
            with anyio.move_on_after(2):
                await nc.close()
        store, self._store = self._store, None
        if store is not None:
            with anyio.move_on_after(2):
                await store.aclose()

    async def _ready_deadline(self) -> None:
        """Without NATS, answer readers after `ready_timeout` with what Redis gave (maybe nothing)."""
        await anyio.sleep(self.options.ready_timeout)
        if not self._ready.is_set():
            _log.warning(
                "bus_not_ready_in_time", timeout=self.options.ready_timeout, nats=self.options.nats_url
            )
            self._enqueue(("ready", None))

    async def _connect_and_subscribe(self) -> None:
        """Connect, subscribe and resync; again whenever the client closes for good (with backoff)."""
        options = NatsOptions(url=self.options.nats_url, name="hmr-consumer", auth=self.options.auth)
        delay = self.options.retry_interval
        while True:
            closed = anyio.Event()
            try:
                nc = await connect_nats(
                    options, on_gap=self._on_gap, is_closing=lambda: self._closing, on_closed=closed.set
                )
                await nc.subscribe(self._subjects.changed_all, cb=self._on_message)
                await nc.subscribe(self._subjects.heartbeat, cb=self._on_message)
                with anyio.move_on_after(self.options.request_timeout):
                    await nc.flush()
            except Exception:
                _log.exception("bus_connect_failed", url=redact_url(self.options.nats_url), retry_in=delay)
            else:
                self._nc = nc
                self._attach(nc)
                delay = self.options.retry_interval
                self._enqueue(("resync", None))
                await closed.wait()
                self._nc = None
                self._attach(None)
                _log.warning("bus_connection_lost", url=redact_url(self.options.nats_url), retry_in=delay)
            await anyio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, MAX_RETRY_DELAY)

    def _enqueue(self, item: _Item) -> None:
        if not self._accepting:
            return
        self._queue.append(item)
        self._wake()

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.set()

    def _attach(self, nc: NatsClient | None) -> None:
        if self._sources is not None:
            self._sources.attach(nc)

    def _refuse_message(self, subject: str, exc: SignatureError) -> None:
        """Refuse a message whose signature is missing or wrong, and resynchronise its category from a
        verified snapshot (coalesced, with backoff: a flood of forgeries costs one fetch at a time)."""
        self.stats["refused"] += 1
        refused = self.stats["refused"]
        if refused <= 10 or refused % 100 == 0:
            _log.error(
                "bus_message_refused",
                subject=subject,
                reason=exc.reason,
                key_id=exc.key_id,
                accepted=self._trust.verifier.key_ids,
                refused=refused,
            )
        changed = self._subjects.changed("")
        category = _CATEGORIES.get(subject.removeprefix(changed)) if subject.startswith(changed) else None
        if category is not None and self._accepting:
            self._schedule_retry(category, 0, blocks_readiness=False)

    def _on_gap(self, reason: str) -> None:
        if reason == "reconnected" and self.options.resync_jitter > 0 and self._tg is not None:
            delay = random.uniform(0, self.options.resync_jitter)
            _log.info("bus_gap_resync", reason=reason, delay=round(delay, 3))
            self._tg.start_soon(self._resync_later, delay)
            return
        _log.info("bus_gap_resync", reason=reason)
        self._enqueue(("resync", None))

    async def _resync_later(self, delay: float) -> None:
        await anyio.sleep(delay)
        self._enqueue(("resync", None))

    async def _on_message(self, msg: Any) -> None:
        try:
            self._trust.check_message(msg.subject, msg.data, msg.headers)
        except SignatureError as exc:
            self._refuse_message(msg.subject, exc)
            return
        try:
            event = decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            _log.error("bus_event_undecodable", subject=msg.subject, error=str(exc))
            return
        if not self._trust.note(event):
            self.stats["refused"] += 1
            return
        if (
            isinstance(event, CategoryChanged)
            and self._started
            and self._accepting
            and not self._busy
            and not self._queue
            and self._patch_inline(event)
        ):
            return
        self._enqueue(("event", event))

    def _patch_inline(self, event: CategoryChanged) -> bool:
        """Apply the next revision's delta right here, when nothing is queued or being handled.

        Synchronous (no await: nothing can interleave or cancel it half-way), so it keeps the order
        and the single writer and saves the hop to the sync task; the `on_change` callbacks are
        queued for the sync task. False: anything else (a gap, no delta, a bad delta) is queued.
        """
        category = _CATEGORIES.get(event.category)
        if category is None or not self._is_next_delta(category, event):
            return False
        try:
            notice = self._apply_delta(category, event)
        except (RecordDecodeError, CatalogDecodeError, CatalogRejectedError):
            return False  # the queued event reports it and resynchronises
        if notice is not None:
            self._enqueue(("notice", notice))
        return True

    async def _process(self, task_status: TaskStatus[None]) -> None:
        listed = False
        queue = self._queue
        while True:
            while self._busy or not queue:
                wakeup = self._wakeup = anyio.Event()
                await wakeup.wait()
            kind, value = queue.popleft()
            self._busy = True
            try:
                await self._handle_safely(kind, value)
            finally:
                self._busy = False
            listed = listed or (kind == "resync" and value is None and self.connected)
            if not self._started and (kind == "ready" or (listed and not self._unresolved)):
                self._started = True
                self._ready.set()
                task_status.started()

    async def _handle_safely(self, kind: str, value: Any) -> None:
        try:
            await self._handle(kind, value)
        except Exception:
            # Never let one bad item stop the sync: log it, then resynchronise everything.
            _log.exception("bus_item_failed", kind=kind, item=type(value).__name__)
            if kind != "resync" or value is not None:
                self._enqueue(("resync", None))

    async def _handle(self, kind: str, value: Any) -> None:
        if kind == "resync":
            await self._resync(value)
        elif kind == "retry":
            category, min_revision = value
            self._pending.pop(category.value, None)
            self._unresolved.discard(category.value)
            if await self._resync_category(category, min_revision=min_revision):
                self._attempts.pop(category.value, None)
        elif kind == "notice":
            await self._dispatch(value)
        elif isinstance(value, CategoryChanged):
            await self._on_changed(value)
        elif isinstance(value, Heartbeat):
            await self._on_heartbeat(value)

    # ----------------------------------------------------------------- handlers

    async def _on_changed(self, event: CategoryChanged) -> None:
        category = _CATEGORIES.get(event.category)
        if category is None:
            _log.warning("bus_unknown_category", category=event.category, revision=event.revision)
            return
        held = self._cache.snapshots.get(category.value)
        if held is not None and event.revision <= held.revision:
            self.stats["ignored"] += 1
            return
        if self._is_next_delta(category, event):
            try:
                notice = self._apply_delta(category, event)
            except CatalogRejectedError as exc:
                self.stats["refused"] += 1
                _log.error(
                    "bus_delta_refused",
                    category=category.value,
                    revision=event.revision,
                    reason=exc.reason,
                    service_id=event.service_id,
                    action="fetch the snapshot",
                )
            except (RecordDecodeError, CatalogDecodeError) as exc:
                _log.warning(
                    "bus_delta_unusable", category=category.value, revision=event.revision, error=str(exc)
                )
            else:
                if notice is not None:
                    await self._dispatch(notice)
                return
        await self._resync_category(category, min_revision=event.revision)

    def _is_next_delta(self, category: MODEL_REFERENCE_CATEGORY, event: CategoryChanged) -> bool:
        """Whether `event` is the revision after the one held, with a delta that applies to it."""
        held = self._cache.snapshots.get(category.value)
        return (
            held is not None
            and event.records is not None
            and event.revision == held.revision + 1
            and event.previous_digest == held.digest
        )

    def _apply_delta(self, category: MODEL_REFERENCE_CATEGORY, event: CategoryChanged) -> ChangeNotice | None:
        """Patch the held records with `event`'s delta and install them (raises on a bad record)."""
        held = self._cache.snapshots[category.value]
        hashes = self._trust.check_delta(event, held.revision, held.digest, held.raw)
        records = held.records_dict()
        for name in event.removed:
            records.pop(name, None)
        if event.records:
            records.update(_decode_delta(category, event.records))
        notice = self._cache.install(
            category,
            records,
            revision=event.revision,
            digest=event.digest,
            raw=None,
            names=(tuple(event.added), tuple(event.removed), tuple(event.changed)),
        )
        self._trust.keep(category.value, event.revision, event.digest, hashes)
        self.stats["patched"] += 1
        if event.service_id:
            self._origin[category.value] = event.service_id
        return notice
