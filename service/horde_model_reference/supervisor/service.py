"""`hmr serve`: the supervisor of the fetcher actors, the heartbeat and the responders.

Every task belongs to one task group; an actor's crash is caught here, logged, counted and the
actor restarted with exponential backoff and jitter, so the other actors keep running. Only the
supervisor stops (on cancellation, or SIGTERM/SIGINT in `run_service`); it then flushes in-flight
publishes with a timeout and closes NATS, Redis and the embedded nats-server.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus
from anyio.from_thread import run_sync as _run_sync_from_thread
from anyio.lowlevel import EventLoopToken, current_token
from nats.aio.msg import Msg

from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.bus.embedded import EmbeddedNatsServer
from horde_model_reference.bus.events import (
    CategoryState,
    HealthReply,
    Heartbeat,
    Snapshot,
    Subjects,
    encode_event,
)
from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore
from horde_model_reference.bus.replies import ReplyGuard
from horde_model_reference.bus.signing import load_signer, sign_snapshot
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories, parse_category
from horde_model_reference.errors import (
    BackendError,
    CategoryNotFoundError,
    ModelReferenceError,
)
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor._files import FileBacked, watch_catalog_files
from horde_model_reference.supervisor._keeping import StoreKeeping
from horde_model_reference.supervisor._nats import NatsLink
from horde_model_reference.supervisor._responders import SnapshotResponder, serve_requests
from horde_model_reference.supervisor.actor import ActorContext, CategoryActor, CategorySlot
from horde_model_reference.supervisor.config import ServiceConfig, default_poll_interval
from horde_model_reference.supervisor.state import StateFile, StateFileError

__all__ = ["Component", "Supervisor", "run_service", "sole_exception"]

_log = get_logger(__name__)

Component = Callable[..., Coroutine[Any, Any, None]]
"""An extra part of the service (the write path): `async def part(supervisor, *, task_status)`.

Started with `task_group.start(part, supervisor)` once the actors made their first pass and before
the service reports ready; it must call `task_status.started()`, then run until cancelled, and
handle its own errors (an exception escaping it stops the service).
"""


class Supervisor(StoreKeeping):
    """Runs the service for one backend; `run()` until cancelled. Methods are for its event loop."""

    def __init__(
        self, config: ServiceConfig, backend: ModelReferenceBackend, *, components: Sequence[Component] = ()
    ) -> None:
        self.config = config
        self.backend = backend
        self.service_id = config.service_id
        self.started_at = time.time()
        self.subjects = Subjects(config.subject_prefix)
        self.poll_interval = config.poll_interval or default_poll_interval(backend)
        names = config.categories if config.categories is not None else canonical_categories()
        self._slots = {parse_category(c): CategorySlot(parse_category(c)) for c in names}
        self._state = StateFile(config.data_dir)
        self._store: RedisSnapshotStore | None = None
        self._redis_ok: bool | None = None
        self._jetstream: JetStreamSnapshotStore | None = None
        self._jetstream_ok: bool | None = None
        self._link: NatsLink | None = None
        self._embedded: EmbeddedNatsServer | None = None
        self._nats_url = config.nats_url
        self._heartbeat_wake = anyio.Event()
        self._token: EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._running = False
        self._components = tuple(components)
        self.signer = load_signer(
            key_file=config.nats_auth.signing_key_file, key_pem=config.nats_auth.signing_key
        )
        """The key that signs events, heartbeats and snapshots (None: nothing is signed)."""
        self.responder = SnapshotResponder(self._slots, self.service_id, signer=self.signer)
        """Answers snapshot requests; its `stats` count what it served."""

    # -- public surface ---------------------------------------------------------------------

    @property
    def nats_url(self) -> str | None:
        """The NATS URL in use (the embedded server's once started)."""
        return self._nats_url

    @property
    def nats_link(self) -> NatsLink:
        """The service's NATS connection (while running), for components that answer requests."""
        if self._link is None:
            raise ModelReferenceError("the service is not connected to NATS (not running)")
        return self._link

    @property
    def categories(self) -> tuple[MODEL_REFERENCE_CATEGORY, ...]:
        """The categories this service runs an actor for."""
        return tuple(self._slots)

    def poke(self, category: str | MODEL_REFERENCE_CATEGORY) -> None:
        """Wake `category`'s actor now (force-refreshes the backend). Call on the service's loop."""
        self._slot(category).poke()

    async def refresh(self, category: str | MODEL_REFERENCE_CATEGORY, *, max_wait: float = 30.0) -> int:
        """Poke `category` and wait for that pass; returns the revision held afterwards.

        Raises `BackendError` when the pass failed, `TimeoutError` after `max_wait` seconds.
        """
        slot = self._slot(category)
        target = slot.poke()
        with anyio.fail_after(max_wait):
            while slot.completed < target:
                await slot.progress.wait()
        if slot.pass_error is not None:
            raise BackendError(self.backend.name, slot.category.value, slot.pass_error)
        return slot.revision

    def revision(self, category: str | MODEL_REFERENCE_CATEGORY) -> int:
        """The revision held for `category` (0 before its first load)."""
        return self._slot(category).revision

    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> Snapshot | None:
        """The category's current snapshot, or None when it was never loaded."""
        slot = self._slot(category)
        if slot.data is None or slot.digest is None:
            return None
        return Snapshot(
            category=slot.category.value,
            revision=slot.revision,
            digest=slot.digest,
            data=msgspec.Raw(slot.data),
            service_id=self.service_id,
            signature=sign_snapshot(self.signer, slot.category.value, slot.revision, slot.digest),
        )

    def status(self) -> HealthReply:
        """Health: per-category state, actor restarts, NATS and Redis connectivity."""
        now = time.time()
        categories = {slot.category.value: slot.health() for slot in self._slots.values()}
        return HealthReply(
            service_id=self.service_id,
            started_at=self.started_at,
            uptime=now - self.started_at,
            sent_at=now,
            categories=categories,
            actor_restarts={slot.category.value: slot.restarts for slot in self._slots.values()},
            nats_connected=self._link is not None and self._link.connected,
            redis_connected=self._redis_ok if self._store is not None else None,
            jetstream_connected=self._jetstream_ok if self._jetstream is not None else None,
            embedded_nats=self._embedded is not None,
        )

    def heartbeat(self) -> Heartbeat:
        """The heartbeat as it would be sent now (loaded categories only)."""
        return Heartbeat(
            service_id=self.service_id,
            started_at=self.started_at,
            sent_at=time.time(),
            categories={
                slot.category.value: CategoryState(slot.revision, slot.digest)
                for slot in self._slots.values()
                if slot.loaded and slot.digest is not None
            },
        )

    async def run(self, *, task_status: TaskStatus[Supervisor] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start everything, report ready (after each actor's first pass), run until cancelled."""
        if self._running:
            raise ModelReferenceError("this Supervisor is already running")
        self._state.acquire()
        self._running = True
        self.started_at = time.time()
        self._token = current_token()
        self._loop_thread = threading.get_ident()
        try:
            await self._start_embedded_nats()
            await self._open_redis()
            await self._restore_state()
            link = await self._connect_nats()
            await self._open_jetstream(link)
            async with anyio.create_task_group() as tg:
                await tg.start(
                    partial(serve_requests, concurrency=self.config.responder_concurrency),
                    link,
                    self.subjects.snapshot_all,
                    self.responder,
                )
                await tg.start(serve_requests, link, self.subjects.health, self._health_reply)
                context = self._actor_context(link)
                for slot in self._slots.values():
                    tg.start_soon(self._supervise, slot, context, name=f"actor:{slot.category.value}")
                with anyio.move_on_after(self.config.startup_timeout) as waited:
                    for slot in self._slots.values():
                        await slot.first_pass.wait()
                if waited.cancelled_caught:
                    _log.warning("service_startup_slow", timeout=self.config.startup_timeout)
                tg.start_soon(self._heartbeat_loop, link, name="heartbeat")
                tg.start_soon(link.watch, name="nats-watch")
                if self._store is not None:
                    tg.start_soon(self._watch_redis, self._store, name="redis-watch")
                if self._jetstream is not None:
                    tg.start_soon(self._watch_jetstream, self._jetstream, name="jetstream-watch")
                if (
                    self.config.watch_files
                    and hasattr(self.backend, "path_for")
                    and hasattr(self.backend, "base_path")
                ):
                    files = cast(FileBacked, self.backend)
                    tg.start_soon(watch_catalog_files, files, self._slots, self.poke, name="file-watch")
                self.backend.add_invalidation_callback(self._on_invalidated)
                for component in self._components:
                    await tg.start(component, self)
                _log.info(
                    "service_ready",
                    service_id=self.service_id,
                    nats_url=link.safe_url,
                    redis=self._store.url if self._store is not None else None,
                    categories=[c.value for c, s in self._slots.items() if s.loaded],
                    poll_interval=self.poll_interval,
                    signing_key_id=self.signer.key_id if self.signer is not None else None,
                )
                task_status.started(self)
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown()

    # -- startup and shutdown ---------------------------------------------------------------

    async def _start_embedded_nats(self) -> None:
        if self._nats_url is not None:
            return
        server = EmbeddedNatsServer(Path(self.config.data_dir) / "nats", port=self.config.embedded_nats_port)
        await anyio.to_thread.run_sync(server.start)
        self._embedded = server
        self._nats_url = server.url

    async def _connect_nats(self) -> NatsLink:
        assert self._nats_url is not None
        link = NatsLink(
            self._nats_url,
            name=f"hmr-serve-{self.service_id[:8]}",
            connect_timeout=self.config.nats_connect_timeout,
            ping_interval=self.config.nats_ping_interval,
            reconnect_wait=self.config.nats_reconnect_wait,
            publish_timeout=self.config.publish_timeout,
            on_reconnect=self._wake_heartbeat,
            auth=self.config.nats_auth if self.config.nats_url else None,
            signer=self.signer,
            reply_guard=ReplyGuard.for_service(
                self.config.subject_prefix, self.config.nats_auth.inbox_prefix
            ),
        )
        await link.connect()
        self._link = link
        return link

    async def _shutdown(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close(flush_timeout=self.config.drain_timeout)
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            await anyio.to_thread.run_sync(embedded.stop)
        try:
            await self._state.release_reservations()
        except StateFileError as exc:  # the marks stay higher: the next start skips some revisions
            _log.warning("state_reservations_kept", error=str(exc))
        self._state.release()
        self._running = False
        _log.info(
            "service_stopped", service_id=self.service_id, uptime=round(time.time() - self.started_at, 3)
        )

    # -- tasks ------------------------------------------------------------------------------

    def _actor_context(self, link: NatsLink) -> ActorContext:
        return ActorContext(
            backend=self.backend,
            state=self._state,
            store=self._store,
            subjects=self.subjects,
            service_id=self.service_id,
            poll_interval=self.poll_interval,
            fetch_timeout=self.config.fetch_timeout,
            delta_max_bytes=self.config.delta_max_bytes,
            publish=link.publish,
            redis_result=self._set_redis_ok,
            redis_down=lambda: self._redis_ok is False,
            jetstream=self._jetstream,
            jetstream_result=self._set_jetstream_ok,
            jetstream_down=lambda: self._jetstream_ok is False,
            store_wait=self.config.store_wait,
        )

    async def _supervise(self, slot: CategorySlot, context: ActorContext) -> None:
        """Run `slot`'s actor; on a crash log, count, back off (a poke cuts it short), restart."""
        name = slot.category.value
        while True:
            delay = self.config.restart_backoff
            try:
                await CategoryActor(slot, context).run()
            except Exception as exc:  # any crash restarts the actor (logged below)
                slot.restarts += 1
                slot.failures += 1
                message = f"{type(exc).__name__}: {exc}"
                slot.record_error(message)
                slot.finish_pass(message)
                delay = min(
                    self.config.restart_backoff_max, self.config.restart_backoff * 2 ** (slot.failures - 1)
                )
                delay *= random.uniform(0.5, 1.0)
                expected = isinstance(exc, BackendError)
                _log.error(
                    "actor_crashed",
                    category=name,
                    error=message,
                    restarts=slot.restarts,
                    consecutive=slot.failures,
                    restart_in=round(delay, 3),
                    exc_info=None if expected else exc,
                )
            with anyio.move_on_after(delay):
                await slot.wake.wait()

    async def _heartbeat_loop(self, link: NatsLink) -> None:
        while True:
            self._heartbeat_wake = anyio.Event()
            if link.connected:
                await link.publish(self.subjects.heartbeat, encode_event(self.heartbeat()))
            with anyio.move_on_after(self.config.heartbeat_interval):
                await self._heartbeat_wake.wait()

    def _wake_heartbeat(self) -> None:
        self._heartbeat_wake.set()

    def _health_reply(self, msg: Msg) -> bytes:
        return encode_event(self.status())

    # -- helpers ----------------------------------------------------------------------------

    def _slot(self, category: str | MODEL_REFERENCE_CATEGORY) -> CategorySlot:
        cat = parse_category(category)
        slot = self._slots.get(cat)
        if slot is None:
            raise CategoryNotFoundError(cat.value, "this service does not serve it")
        return slot

    def _on_invalidated(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        """Backend invalidation callback (any thread): poke the category's actor."""
        slot = self._slots.get(category)
        if slot is None or not self._running:
            return
        if threading.get_ident() == self._loop_thread:
            slot.poke()
            return
        try:
            _run_sync_from_thread(slot.poke, token=self._token)
        except Exception:  # the loop may be gone; the next poll picks the change up
            _log.exception("invalidation_poke_failed", category=category.value)


async def run_service(
    config: ServiceConfig,
    backend: ModelReferenceBackend,
    *,
    handle_signals: bool = True,
    components: Sequence[Component] = (),
    task_status: TaskStatus[Supervisor] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run `hmr serve` until cancelled or, with `handle_signals`, until SIGTERM/SIGINT.

    On a signal it drains in-flight publishes and returns normally (exit status 0). Signals are
    only handled in the main thread. `task_status` receives the running `Supervisor`.
    `components` (the write path, for one) run in the supervisor's task group (see `Component`).
    """
    supervisor = Supervisor(config, backend, components=components)
    try:
        async with anyio.create_task_group() as tg:
            if handle_signals and threading.current_thread() is threading.main_thread():
                tg.start_soon(_stop_on_signal, tg.cancel_scope, name="signals")
            elif handle_signals:
                _log.debug("signals_not_handled", reason="not the main thread")
            await tg.start(supervisor.run)
            task_status.started(supervisor)
            await anyio.sleep_forever()
    except BaseExceptionGroup as group:
        raise sole_exception(group) from None


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups (the task group's wrapping), else the group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            _log.info("signal_received", signal=signal.Signals(signum).name, action="draining and stopping")
            scope.cancel()
            return
