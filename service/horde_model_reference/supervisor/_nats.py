"""The service's NATS connection: reconnects forever, logs every state change, bounds every wait."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from horde_model_reference.bus.connection import NatsAuth, NatsOptions, connect_nats, redact_url
from horde_model_reference.bus.replies import ReplyGuard, UnsafeReplyError
from horde_model_reference.bus.signing import Signer, sign_payload
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger

__all__ = ["NatsLink"]

_log = get_logger(__name__)
_BACKEND = "nats"


class NatsLink:
    """One nats-py client with the callbacks set and timeouts around every operation."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        connect_timeout: float,
        ping_interval: float,
        reconnect_wait: float,
        publish_timeout: float,
        on_reconnect: Callable[[], None],
        auth: NatsAuth | None = None,
        signer: Signer | None = None,
        reply_guard: ReplyGuard | None = None,
    ) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._auth = auth or NatsAuth()
        self.name = name
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._reconnect_wait = reconnect_wait
        self._publish_timeout = publish_timeout
        self._on_reconnect = on_reconnect
        self._signer = signer
        self._reply_guard = reply_guard
        self.replies_refused = 0
        """Requests not answered because their reply subject was not an inbox."""
        self._nc: Client | None = None
        self._closing = False
        self.closed_unexpectedly = anyio.Event()
        """Set when the client closes for good without being asked (revoked credentials, ...)."""

    @property
    def connected(self) -> bool:
        """Whether the client is connected right now."""
        return self._nc is not None and bool(self._nc.is_connected)

    @property
    def max_payload(self) -> int:
        """The server's maximum message size."""
        return int(self._nc.max_payload) if self._nc is not None else 1024 * 1024

    @property
    def client(self) -> Client:
        """The nats-py client (after `connect`)."""
        if self._nc is None:
            raise BackendError(_BACKEND, None, f"not connected to {self.safe_url}")
        return self._nc

    async def connect(self) -> None:
        """Connect, or raise `BackendError` after `connect_timeout` seconds."""
        try:
            options = NatsOptions(
                url=self.url,
                name=self.name,
                auth=self._auth,
                connect_timeout=min(2.0, self._connect_timeout),
                ping_interval=self._ping_interval,
                reconnect_time_wait=self._reconnect_wait,
            )
            with anyio.fail_after(self._connect_timeout):
                self._nc = await connect_nats(
                    options, on_gap=self._on_gap, is_closing=lambda: self._closing, on_closed=self._on_closed
                )
        except TimeoutError:
            raise BackendError(
                _BACKEND, None, f"cannot connect to {self.safe_url} within {self._connect_timeout:.1f}s"
            ) from None

    async def publish(self, subject: str, payload: bytes) -> bool:
        """Publish, signed when the service has a key (buffered by the client while reconnecting);
        False, logged, when it failed."""
        return await self._send(subject, payload, sign_payload(self._signer, payload))

    async def _send(self, subject: str, payload: bytes, headers: dict[str, str] | None) -> bool:
        try:
            with anyio.fail_after(self._publish_timeout):
                await self.client.publish(subject, payload, headers=headers)
        except TimeoutError:
            _log.error(
                "nats_publish_failed", subject=subject, reason="timeout", timeout=self._publish_timeout
            )
            return False
        except (nats.errors.Error, BackendError) as exc:
            _log.error("nats_publish_failed", subject=subject, reason=repr(exc), size=len(payload))
            return False
        return True

    async def respond(self, msg: Msg, payload: bytes) -> bool:
        """Reply to a request; False (logged) when there is no reply subject, it is not an inbox
        (see `ReplyGuard`), or the publish failed. Replies are not signed (snapshots carry their own)."""
        if not msg.reply:
            _log.warning("nats_request_without_reply", subject=msg.subject)
            return False
        if self._reply_guard is not None:
            try:
                self._reply_guard.check(msg.reply)
            except UnsafeReplyError as exc:
                self.replies_refused += 1
                _log.warning(
                    "nats_reply_refused", subject=msg.subject, reason=str(exc), refused=self.replies_refused
                )
                return False
        return await self._send(msg.reply, payload, None)

    async def subscribe(self, subject: str) -> Subscription:
        """An iterator subscription (messages are handled by a task of ours, not the client's)."""
        with anyio.fail_after(self._publish_timeout):
            sub: Subscription = await self.client.subscribe(subject)
        return sub

    async def close(self, flush_timeout: float) -> None:
        """Flush in-flight publishes (bounded by `flush_timeout`), then close the connection."""
        timeout = flush_timeout
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            if nc.is_connected:
                try:
                    with anyio.fail_after(timeout):
                        await nc.flush(timeout=max(1, round(timeout)))
                except (TimeoutError, nats.errors.Error) as exc:
                    _log.warning("nats_flush_failed", url=self.safe_url, reason=repr(exc))
            else:
                _log.warning("nats_close_while_disconnected", url=self.safe_url, pending_dropped=True)
            with anyio.move_on_after(timeout) as scope:
                try:
                    await nc.close()
                except OSError as exc:  # the socket died under the close (the server went away)
                    _log.warning("nats_close_failed", url=self.safe_url, reason=repr(exc))
            if scope.cancelled_caught:
                _log.warning("nats_close_timed_out", url=self.safe_url, timeout=timeout)

    def _on_closed(self) -> None:
        if not self._closing:
            self.closed_unexpectedly.set()

    async def watch(self) -> None:
        """Raise `BackendError` when the connection closes for good unexpectedly.

        nats-py never reopens such a connection; the service stops with an error so that its
        process supervisor (systemd, Kubernetes) restarts it with a fresh one.
        """
        await self.closed_unexpectedly.wait()
        raise BackendError(
            _BACKEND, None, f"the connection to {self.safe_url} was closed for good by the server"
        )

    def _on_gap(self, reason: str) -> None:
        if reason == "reconnected":
            self._on_reconnect()
