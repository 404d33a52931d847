"""Request/reply on NATS: the snapshot responder's answers and the loop that serves a subject."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.msg import Msg

from horde_model_reference.bus.events import ErrorReply, NotModified, Snapshot, SnapshotRequest, encode_event
from horde_model_reference.bus.signing import Signer, sign_snapshot
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import UnknownCategoryError
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor._nats import NatsLink
from horde_model_reference.supervisor.actor import CategorySlot

__all__ = ["SnapshotResponder", "serve_requests", "snapshot_reply"]

_log = get_logger(__name__)
_SNAPSHOT_REQUEST = msgspec.json.Decoder(SnapshotRequest)


async def serve_requests(
    link: NatsLink,
    subject: str,
    answer: Callable[[Msg], bytes | None],
    *,
    concurrency: int = 1,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer requests on `subject` until cancelled (our tasks iterate the subscription).

    `concurrency` requests are answered at once. `answer` returning None drops the request (its
    deadline passed: the requester stopped waiting).
    """
    sub = await link.subscribe(subject)
    task_status.started()

    async def worker() -> None:
        async for msg in sub.messages:
            try:
                payload = answer(msg)
            except Exception:  # one bad request must not stop the responder
                _log.exception("request_failed", subject=msg.subject)
                payload = encode_event(ErrorReply(error="internal", message="the service failed to answer"))
            if payload is None:
                continue
            if len(payload) > link.max_payload:
                message = f"reply of {len(payload)} bytes exceeds the server's max_payload {link.max_payload}"
                payload = encode_event(ErrorReply(error="too_large", message=message))
            await link.respond(msg, payload)

    async with anyio.create_task_group() as tg:
        for number in range(concurrency):
            tg.start_soon(worker, name=f"responder:{subject}:{number}")


class SnapshotResponder:
    """Answers `<prefix>.snapshot.<category>`: conditional on the digest held, shedding expired requests.

    Each revision's `Snapshot` reply is encoded once and reused for every request until the next
    revision (a resync herd costs one encoding per category, not one per request).
    """

    def __init__(
        self,
        slots: Mapping[MODEL_REFERENCE_CATEGORY, CategorySlot],
        service_id: str,
        *,
        signer: Signer | None = None,
    ) -> None:
        self._slots = slots
        self._service_id = service_id
        self._signer = signer
        self._encoded: dict[str, tuple[int, str, bytes]] = {}
        self.stats = {"snapshots": 0, "not_modified": 0, "errors": 0, "expired": 0, "bytes": 0}
        """Counters: snapshots sent, not-modified replies, error replies, requests dropped past
        their deadline, bytes sent."""

    def __call__(self, msg: Msg) -> bytes | None:
        """The encoded reply to `msg`, or None when its deadline passed."""
        reply = snapshot_reply(msg, self._slots, self._service_id, cache=self._encoded, signer=self._signer)
        if not reply:
            self.stats["expired"] += 1
            return None
        self.stats[_reply_kind(reply)] += 1
        self.stats["bytes"] += len(reply)
        return reply


_EXPIRED = b""
_KINDS = ((b'{"type":"snapshot"', "snapshots"), (b'{"type":"not_modified"', "not_modified"))


def _reply_kind(reply: bytes) -> str:
    """Which counter an encoded reply belongs to (msgspec writes the tag first)."""
    return next((kind for prefix, kind in _KINDS if reply.startswith(prefix)), "errors")


def snapshot_reply(
    msg: Msg,
    slots: Mapping[MODEL_REFERENCE_CATEGORY, CategorySlot],
    service_id: str,
    *,
    cache: dict[str, tuple[int, str, bytes]] | None = None,
    signer: Signer | None = None,
) -> bytes:
    """The encoded `Snapshot`, `NotModified` or `ErrorReply` for a request on `<prefix>.snapshot.<category>`.

    Errors: `unknown_category`, `not_loaded` (not served here, or no good snapshot yet),
    `bad_request` (the body is not a `SnapshotRequest`), `behind` (`min_revision` above the one held).
    Empty bytes: the request's deadline has passed (answer nothing). `cache` keeps each category's
    encoded `Snapshot` per revision.
    """
    name = msg.subject.rsplit(".", 1)[-1]
    try:
        category = parse_category(name)
    except UnknownCategoryError as exc:
        return encode_event(ErrorReply(error="unknown_category", message=str(exc), category=name))
    slot = slots.get(category)
    if slot is None or slot.data is None or slot.digest is None:
        reason = "is not served here" if slot is None else "is not loaded yet"
        message = f"category {category.value!r} {reason}"
        return encode_event(ErrorReply(error="not_loaded", message=message, category=category.value))
    request = SnapshotRequest()
    if msg.data.strip():
        try:
            request = _SNAPSHOT_REQUEST.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return encode_event(ErrorReply(error="bad_request", message=str(exc), category=category.value))
    if request.deadline and time.time() > request.deadline:
        return _EXPIRED
    if request.min_revision > slot.revision:
        message = f"revision {slot.revision} held, {request.min_revision} requested"
        return encode_event(ErrorReply(error="behind", message=message, category=category.value))
    # Revision, digest and bytes are read together, without an await: one consistent revision.
    if request.held_digest == slot.digest and request.held_revision == slot.revision:
        return encode_event(
            NotModified(
                category=category.value,
                revision=slot.revision,
                digest=slot.digest,
                service_id=service_id,
                signature=sign_snapshot(signer, category.value, slot.revision, slot.digest),
            )
        )
    cached = cache.get(category.value) if cache is not None else None
    if cached is not None and cached[:2] == (slot.revision, slot.digest):
        return cached[2]
    encoded = encode_event(
        Snapshot(
            category=category.value,
            revision=slot.revision,
            digest=slot.digest,
            data=msgspec.Raw(slot.data),
            service_id=service_id,
            signature=sign_snapshot(signer, category.value, slot.revision, slot.digest),
        )
    )
    if cache is not None:
        cache[category.value] = (slot.revision, slot.digest, encoded)
    return encoded
