"""Category snapshots in JetStream, so that NATS itself (any node) serves a fleet's resync.

One KV bucket per subject prefix (`hmr.v1` -> bucket `hmr_v1_snapshots`, stream `KV_hmr_v1_snapshots`):

| key               | value |
|-------------------|-------|
| `index`           | `SnapshotIndex`: every category's revision, digest, size and where its body is |
| `body.<category>` | the category's canonical v2 JSON bytes (when they fit in one message) |

A body larger than the server's `max_payload` (less a margin for headers) goes to the Object
Store `<bucket>_large` as object `<category>`. The service writes the body first, then the index,
so an index entry never names a body that is not there yet; a reader that races a newer body sees
a digest that does not match the index, reads the index again once, and otherwise falls back to
the next source. Reads are direct gets (`allow_direct`: any replica answers, no consumer is
created): a reconnecting consumer reads the one `index` message, compares each digest with the one
it holds, and fetches only the bodies that changed.

JetStream is never the only path (see DESIGN.md: KV watchers recover badly after a restart; this
module watches nothing): every failure here is a `BackendError`, and the consumer falls back to
Redis and then to the service's request/reply.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from horde_model_reference.bus.signing import Signer, sign_snapshot
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger

__all__ = [
    "HEADER_MARGIN",
    "JetStreamSnapshotStore",
    "MalformedIndexError",
    "SnapshotIndex",
    "SnapshotMeta",
    "bucket_name",
]

_log = get_logger(__name__)
_BACKEND = "jetstream"
INDEX_KEY = "index"
HEADER_MARGIN = 4096
"""Bytes kept free under `max_payload` for the message's headers and subject."""


class MalformedIndexError(BackendError):
    """The bucket's index is not a `SnapshotIndex` (the service rewrites it)."""


class SnapshotMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One category's entry in the index."""

    revision: int
    digest: str
    size: int
    large: bool = False
    """True: the body is in the Object Store (it is larger than one message)."""
    signature: str | None = None
    """The service's signature over category, revision and digest (`bus.signing.sign_snapshot`)."""


class SnapshotIndex(msgspec.Struct, frozen=True, kw_only=True):
    """What the JetStream bucket holds: per category the revision, digest and size of its body."""

    service_id: str
    started_at: float
    categories: dict[str, SnapshotMeta]


_INDEX_DECODER = msgspec.json.Decoder(SnapshotIndex)
_ENCODE = msgspec.json.Encoder().encode


def bucket_name(subject_prefix: str) -> str:
    """The KV bucket of a subject prefix: `hmr.v1` -> `hmr_v1_snapshots` (bucket names allow `[\\w-]`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject_prefix) + "_snapshots"


class JetStreamSnapshotStore:
    """Reads (consumers) and writes (the service) category snapshots in one JetStream KV bucket."""

    def __init__(
        self,
        nc: Client,
        *,
        subject_prefix: str,
        timeout: float = 2.0,
        replicas: int = 1,
        max_payload: int | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.bucket = bucket_name(subject_prefix)
        self.stream = f"KV_{self.bucket}"
        self.object_bucket = f"{self.bucket}_large"
        self.timeout = timeout
        self.replicas = replicas
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=timeout)
        self._max_body = (max_payload or int(nc.max_payload)) - HEADER_MARGIN
        self._objects: ObjectStore | None = None
        self._entries: dict[str, SnapshotMeta] = {}
        self._service: tuple[str, float] = ("", 0.0)
        self._index_lock = anyio.Lock()
        self._signer = signer

    # ------------------------------------------------------------------ the service's side

    async def ensure(self, *, service_id: str, started_at: float) -> SnapshotIndex | None:
        """Create the bucket and object store (an existing bucket with another configuration is
        updated to direct gets, one value per key and the replicas asked for; logged); return the
        index already stored."""
        self._service = (service_id, started_at)
        kv_config = api.KeyValueConfig(
            bucket=self.bucket,
            description="horde-model-reference snapshots (written by hmr serve)",
            history=1,
            replicas=self.replicas,
            direct=True,
            max_value_size=self._max_body + HEADER_MARGIN,
        )
        obs_config = api.ObjectStoreConfig(bucket=self.object_bucket, replicas=self.replicas)
        async with self._bounded("ensure", None):
            try:
                await self._js.create_key_value(config=kv_config)
            except nats.js.errors.BadRequestError as exc:  # it exists with another configuration
                await self._update_bucket(exc)
            try:
                self._objects = await self._js.create_object_store(self.object_bucket, config=obs_config)
            except nats.js.errors.BadRequestError as exc:
                self._objects = await self._js.object_store(self.object_bucket)
                _log.warning("jetstream_bucket_kept", bucket=self.object_bucket, error=str(exc))
        try:
            index = await self.get_index()
        except MalformedIndexError as exc:
            _log.error("jetstream_index_malformed", bucket=self.bucket, error=str(exc), action="rewriting it")
            return None
        if index is not None:
            self._entries = dict(index.categories)
        return index

    async def _update_bucket(self, exc: Exception) -> None:
        """Bring an existing bucket to what reads need (direct gets, one value per key, replicas)."""
        config = (await self._js.stream_info(self.stream)).config
        config.allow_direct = True
        config.max_msgs_per_subject = 1
        config.num_replicas = self.replicas
        config.max_msg_size = self._max_body + HEADER_MARGIN
        try:
            await self._js.update_stream(config)
        except nats.js.errors.BadRequestError as refused:
            _log.warning(
                "jetstream_bucket_kept", bucket=self.bucket, error=str(exc), update_refused=str(refused)
            )
            return
        _log.warning("jetstream_bucket_updated", bucket=self.bucket, was=str(exc))

    async def put(self, category: str, revision: int, digest: str, data: bytes) -> None:
        """Store the body, then the index naming it (raises `BackendError`)."""
        large = len(data) > self._max_body
        async with self._bounded("put", category):
            if large:
                objects = await self._object_store()
                await objects.put(category, data)
            else:
                await self._js.publish(f"$KV.{self.bucket}.body.{category}", data, stream=self.stream)
        async with self._index_lock:
            self._entries[category] = SnapshotMeta(
                revision=revision,
                digest=digest,
                size=len(data),
                large=large,
                signature=sign_snapshot(self._signer, category, revision, digest),
            )
            await self._write_index(category)

    async def _write_index(self, category: str | None) -> None:
        service_id, started_at = self._service
        index = SnapshotIndex(service_id=service_id, started_at=started_at, categories=dict(self._entries))
        async with self._bounded("put_index", category):
            await self._js.publish(f"$KV.{self.bucket}.{INDEX_KEY}", _ENCODE(index), stream=self.stream)

    def held(self, category: str) -> SnapshotMeta | None:
        """The entry this store last wrote or read for `category`."""
        return self._entries.get(category)

    # ------------------------------------------------------------------ the consumers' side

    async def get_index(self) -> SnapshotIndex | None:
        """The index (one direct get), or None when nothing was stored yet."""
        async with self._bounded("get_index", None):
            try:
                msg = await self._js.get_msg(
                    self.stream, subject=f"$KV.{self.bucket}.{INDEX_KEY}", direct=True
                )
            except nats.js.errors.NotFoundError:
                return None
        try:
            return _INDEX_DECODER.decode(msg.data or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedIndexError(
                _BACKEND, None, f"malformed index in bucket {self.bucket!r}: {exc}"
            ) from None

    async def get_body(self, category: str, meta: SnapshotMeta) -> bytes | None:
        """The body `meta` describes (None when it is missing); the caller checks its digest."""
        async with self._bounded("get_body", category):
            try:
                if meta.large:
                    objects = await self._object_store()
                    result = await objects.get(category)
                    return bytes(result.data or b"")
                msg = await self._js.get_msg(
                    self.stream, subject=f"$KV.{self.bucket}.body.{category}", direct=True
                )
            except (nats.js.errors.NotFoundError, nats.js.errors.ObjectNotFoundError):
                return None
        return bytes(msg.data or b"")

    async def _object_store(self) -> ObjectStore:
        if self._objects is None:
            self._objects = ObjectStore(
                name=self.object_bucket, stream=f"OBJ_{self.object_bucket}", js=self._js
            )
        return self._objects

    @asynccontextmanager
    async def _bounded(self, operation: str, category: str | None) -> AsyncIterator[None]:
        """Bound an operation by the store's timeout; NATS errors become `BackendError`."""
        try:
            with anyio.fail_after(self.timeout):
                yield
        except TimeoutError:
            raise BackendError(
                _BACKEND, category, f"{operation} timed out after {self.timeout:.1f}s (bucket {self.bucket})"
            ) from None
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise BackendError(
                _BACKEND, category, f"{operation} failed (bucket {self.bucket}): {exc!r}"
            ) from exc
