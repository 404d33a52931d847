"""Connecting to NATS the way every part of this package must (see DESIGN.md's pitfalls).

Reconnect forever, ping every 15 s, and log every connection event; the caller gets told about
disconnects, reconnects and slow-consumer drops, because core NATS is at-most-once and each of
those may have lost events: the caller must resynchronise.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.errors import SlowConsumerError

from horde_model_reference.logs import get_logger

__all__ = ["NatsClient", "NatsOptions", "connect_nats"]

_log = get_logger(__name__)

GapCallback = Callable[[str], Awaitable[None] | None]
"""Called with a reason ("reconnected", "slow_consumer") when events may have been lost."""


class NatsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS (credentials and TLS are optional)."""

    url: str
    name: str = "horde-model-reference"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connect_timeout: float = 2.0
    ping_interval: float = 15.0
    reconnect_time_wait: float = 0.5


def _tls_context(options: NatsOptions) -> ssl.SSLContext | None:
    if not (options.tls_ca_file or options.tls_cert_file):
        return None
    context = ssl.create_default_context(cafile=options.tls_ca_file)
    if options.tls_cert_file:
        context.load_cert_chain(options.tls_cert_file, options.tls_key_file)
    return context


async def connect_nats(options: NatsOptions, *, on_gap: GapCallback | None = None) -> NatsClient:
    """Connect (retrying forever until cancelled) and return the client.

    `on_gap(reason)` runs after a reconnect and after a slow-consumer drop.
    """

    async def _gap(reason: str) -> None:
        if on_gap is not None:
            result = on_gap(reason)
            if result is not None:
                await result

    async def error_cb(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            _log.warning("nats_slow_consumer", subject=getattr(exc, "subject", None), connection=options.name)
            await _gap("slow_consumer")
            return
        _log.warning("nats_error", error=repr(exc), connection=options.name)

    async def disconnected_cb() -> None:
        _log.warning("nats_disconnected", connection=options.name)

    async def reconnected_cb() -> None:
        _log.info("nats_reconnected", connection=options.name, url=options.url)
        await _gap("reconnected")

    async def closed_cb() -> None:
        _log.info("nats_closed", connection=options.name)

    kwargs: dict[str, Any] = {
        "servers": [server.strip() for server in options.url.split(",")],
        "name": options.name,
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "reconnected_cb": reconnected_cb,
        "closed_cb": closed_cb,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "connect_timeout": options.connect_timeout,
        "reconnect_time_wait": options.reconnect_time_wait,
        "ping_interval": options.ping_interval,
        "max_outstanding_pings": 2,
    }
    if options.user:
        kwargs["user"] = options.user
        kwargs["password"] = options.password
    if options.token:
        kwargs["token"] = options.token
    if options.creds_file:
        kwargs["user_credentials"] = options.creds_file
    if options.nkey_seed_file:
        kwargs["nkeys_seed"] = options.nkey_seed_file
    tls = _tls_context(options)
    if tls is not None:
        kwargs["tls"] = tls
    client = await nats.connect(**kwargs)
    _log.info(
        "nats_connected",
        connection=options.name,
        url=client.connected_url.netloc if client.connected_url else None,
    )
    return client
