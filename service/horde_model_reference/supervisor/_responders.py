"""Request/reply on NATS: the snapshot responder's answers and the loop that serves a subject."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.msg import Msg

from horde_model_reference.bus.events import ErrorReply, Snapshot, SnapshotRequest, encode_event
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import UnknownCategoryError
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor._nats import NatsLink
from horde_model_reference.supervisor.actor import CategorySlot

__all__ = ["serve_requests", "snapshot_reply"]

_log = get_logger(__name__)
_SNAPSHOT_REQUEST = msgspec.json.Decoder(SnapshotRequest)


async def serve_requests(
    link: NatsLink,
    subject: str,
    answer: Callable[[Msg], bytes],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer requests on `subject` until cancelled (our task iterates the subscription)."""
    sub = await link.subscribe(subject)
    task_status.started()
    async for msg in sub.messages:
        try:
            payload = answer(msg)
        except Exception:  # one bad request must not stop the responder
            _log.exception("request_failed", subject=msg.subject)
            payload = encode_event(ErrorReply(error="internal", message="the service failed to answer"))
        if len(payload) > link.max_payload:
            message = f"reply of {len(payload)} bytes exceeds the server's max_payload {link.max_payload}"
            payload = encode_event(ErrorReply(error="too_large", message=message))
        await link.respond(msg, payload)


def snapshot_reply(
    msg: Msg, slots: Mapping[MODEL_REFERENCE_CATEGORY, CategorySlot], service_id: str
) -> bytes:
    """The encoded `Snapshot` or `ErrorReply` for a request on `<prefix>.snapshot.<category>`.

    Errors: `unknown_category`, `not_loaded` (not served here, or no good snapshot yet),
    `bad_request` (the body is not a `SnapshotRequest`), `behind` (`min_revision` above the one held).
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
    min_revision = 0
    if msg.data.strip():
        try:
            min_revision = _SNAPSHOT_REQUEST.decode(msg.data).min_revision
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return encode_event(ErrorReply(error="bad_request", message=str(exc), category=category.value))
    if min_revision > slot.revision:
        message = f"revision {slot.revision} held, {min_revision} requested"
        return encode_event(ErrorReply(error="behind", message=message, category=category.value))
    # Revision, digest and bytes are read together, without an await: one consistent revision.
    snapshot = Snapshot(
        category=category.value,
        revision=slot.revision,
        digest=slot.digest,
        data=msgspec.Raw(slot.data),
        service_id=service_id,
    )
    return encode_event(snapshot)
