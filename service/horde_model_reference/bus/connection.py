"""Connecting to NATS the way every part of this package must (see DESIGN.md's pitfalls).

Reconnect forever, ping every 15 s, and log every connection event; the caller gets told about
disconnects, reconnects and slow-consumer drops, because core NATS is at-most-once and each of
those may have lost events: the caller must resynchronise.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.errors import SlowConsumerError

from horde_model_reference.logs import get_logger
from horde_model_reference.settings import NatsSettings
from horde_model_reference.urls import redact_url

__all__ = ["NatsAuth", "NatsClient", "NatsOptions", "connect_nats", "nats_auth_from_settings", "redact_url"]

_log = get_logger(__name__)

GapCallback = Callable[[str], Awaitable[None] | None]
"""Called with a reason ("reconnected", "slow_consumer") when events may have been lost."""


class NatsAuth(msgspec.Struct, frozen=True, kw_only=True):
    """Credentials and TLS for NATS (all optional): user/password, token, creds file, nkey seed, TLS files."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    inbox_prefix: str | None = None
    """Where this client's replies arrive (`<inbox_prefix>.<id>`; default `_INBOX`): one prefix
    per NATS user, so that a user may subscribe to its own replies only."""
    trusted_keys: tuple[str, ...] = ()
    """Public keys (`ed25519:...`) a consumer accepts the service's signatures from; empty: signatures
    are not required (see `bus.signing`)."""
    signing_key_file: str | None = None
    """The service's Ed25519 private key (PEM): it signs events, heartbeats and snapshots."""
    signing_key: str | None = None
    """The same key as PEM text (from a secret), when there is no file."""


class NatsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS."""

    url: str
    name: str = "horde-model-reference"
    auth: NatsAuth = NatsAuth()
    connect_timeout: float = 2.0
    ping_interval: float = 15.0
    reconnect_time_wait: float = 0.5
    reconnect_jitter: float = 0.5
    """Each client waits `reconnect_time_wait * (1 + uniform(-j, j))` between attempts, so a fleet
    that lost its server does not come back in lockstep (nats-py has no jitter of its own)."""


def nats_auth_from_settings(settings: NatsSettings) -> NatsAuth:
    """The credentials and TLS files named by the `HORDE_MODEL_REFERENCE_NATS__*` settings."""
    return NatsAuth(
        user=settings.user,
        password=settings.password,
        token=settings.token,
        creds_file=settings.creds_file,
        nkey_seed_file=settings.nkey_seed_file,
        tls_ca_file=settings.tls_ca_file,
        tls_cert_file=settings.tls_cert_file,
        tls_key_file=settings.tls_key_file,
        inbox_prefix=settings.inbox_prefix,
        trusted_keys=tuple(key.strip() for key in (settings.trusted_keys or "").split(",") if key.strip()),
        signing_key_file=settings.signing_key_file,
        signing_key=settings.signing_key,
    )


def jittered(seconds: float, jitter: float) -> float:
    """`seconds` spread by up to +-`jitter` (a fraction), never below a tenth of it."""
    return max(seconds * 0.1, seconds * (1 + random.uniform(-jitter, jitter)))


def _tls_context(auth: NatsAuth) -> ssl.SSLContext | None:
    if not (auth.tls_ca_file or auth.tls_cert_file):
        return None
    context = ssl.create_default_context(cafile=auth.tls_ca_file)
    if auth.tls_cert_file:
        context.load_cert_chain(auth.tls_cert_file, auth.tls_key_file)
    return context


def _auth_kwargs(auth: NatsAuth) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if auth.user:
        kwargs["user"] = auth.user
        kwargs["password"] = auth.password
    if auth.token:
        kwargs["token"] = auth.token
    if auth.creds_file:
        kwargs["user_credentials"] = auth.creds_file
    if auth.nkey_seed_file:
        kwargs["nkeys_seed"] = auth.nkey_seed_file
    if auth.inbox_prefix:
        kwargs["inbox_prefix"] = auth.inbox_prefix
    tls = _tls_context(auth)
    if tls is not None:
        kwargs["tls"] = tls
    return kwargs


async def connect_nats(
    options: NatsOptions,
    *,
    on_gap: GapCallback | None = None,
    is_closing: Callable[[], bool] = lambda: False,
    on_closed: Callable[[], None] | None = None,
) -> NatsClient:
    """Connect (retrying forever until cancelled: bound it with a cancel scope) and return the client.

    `on_gap(reason)` runs after a reconnect and after a slow-consumer drop; `is_closing()` tells
    the disconnect log that a disconnect is expected; `on_closed()` runs when the client closes for
    good (asked to, or after a fatal server error such as revoked credentials: reconnect then).
    """
    safe_url = redact_url(options.url)

    async def _gap(reason: str) -> None:
        if on_gap is None:
            return
        try:
            result = on_gap(reason)
            if result is not None:
                await result
        except Exception:
            _log.exception("nats_gap_hook_failed", connection=options.name, reason=reason)

    async def error_cb(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            _log.warning("nats_slow_consumer", subject=getattr(exc, "subject", None), connection=options.name)
            await _gap("slow_consumer")
            return
        _log.warning("nats_error", error=repr(exc), connection=options.name, url=safe_url)

    async def disconnected_cb() -> None:
        if is_closing():
            _log.info("nats_disconnected", connection=options.name, reason="closing")
        else:
            _log.warning("nats_disconnected", connection=options.name, url=safe_url)

    async def reconnected_cb() -> None:
        _log.info("nats_reconnected", connection=options.name, url=safe_url)
        await _gap("reconnected")

    async def closed_cb() -> None:
        if is_closing():
            _log.info("nats_closed", connection=options.name)
        else:
            _log.error("nats_closed_unexpectedly", connection=options.name, url=safe_url)
        if on_closed is not None:
            on_closed()

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
        "reconnect_time_wait": jittered(options.reconnect_time_wait, options.reconnect_jitter),
        "ping_interval": options.ping_interval,
        "max_outstanding_pings": 2,
        **_auth_kwargs(options.auth),
    }
    client = await nats.connect(**kwargs)
    _log.info("nats_connected", connection=options.name, url=safe_url)
    return client
