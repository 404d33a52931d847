"""The write responder: `<prefix>.write.<command>` requests answered by the `WriteService`.

Each request is handled in its own task (at most `_CONCURRENCY` at once), so a slow apply does
not hold up a proposal; applies still run one at a time (the apply lock). A body larger than the
payload bound, an unknown command or an undecodable body gets a `WriteErrorReply` at once.
"""

from __future__ import annotations

from typing import Protocol

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.msg import Msg

from horde_model_reference.bus.events import Subjects
from horde_model_reference.logs import get_logger
from horde_model_reference.supervisor._nats import NatsLink
from horde_model_reference.writes.contracts import (
    COMMAND_TYPES,
    WriteCommand,
    WriteErrorReply,
    WriteReply,
    decode_command,
    encode_message,
)
from horde_model_reference.writes.errors import PayloadTooLargeError, error_reply
from horde_model_reference.writes.settings import WriteSettings

__all__ = ["WriteHandler", "serve_writes"]


class WriteHandler(Protocol):
    """What the responder needs of the write service: its settings and a command handler."""

    settings: WriteSettings

    async def handle(self, command: WriteCommand) -> WriteReply:
        """Run one wire command and return its reply."""
        ...


_log = get_logger(__name__)
_CONCURRENCY = 16
_ENVELOPE_BYTES = 64 * 1024
"""Room for the command's other fields on top of the record's payload bound."""


async def serve_writes(
    service: WriteHandler,
    link: NatsLink,
    subjects: Subjects,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer write commands until cancelled."""
    sub = await link.subscribe(subjects.write("*"))
    slots = anyio.Semaphore(_CONCURRENCY)
    task_status.started()
    try:
        async with anyio.create_task_group() as tg:
            async for msg in sub.messages:
                await slots.acquire()
                tg.start_soon(_answer, service, link, msg, slots)
    finally:
        with anyio.move_on_after(1, shield=True):
            await sub.unsubscribe()


async def _answer(service: WriteHandler, link: NatsLink, msg: Msg, slots: anyio.Semaphore) -> None:
    try:
        payload = await _reply(service, msg, link.max_payload)
        await link.respond(msg, payload)
    except Exception:  # one bad request must not stop the responder
        _log.exception("write_request_failed", subject=msg.subject)
    finally:
        slots.release()


async def _reply(service: WriteHandler, msg: Msg, max_payload: int) -> bytes:
    command_name = msg.subject.rsplit(".", 1)[-1]
    if command_name not in COMMAND_TYPES:
        known = ", ".join(sorted(COMMAND_TYPES))
        error = WriteErrorReply(
            code="unknown_command", message=f"unknown write command {command_name!r}; known: {known}"
        )
        return encode_message(error)
    limit = service.settings.max_payload_bytes + _ENVELOPE_BYTES
    if len(msg.data) > limit:
        return encode_message(error_reply(PayloadTooLargeError(len(msg.data), limit), None))
    try:
        command = decode_command(command_name, msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = WriteErrorReply(code="bad_request", message=f"{command_name}: {exc}")
        return encode_message(error)
    reply = encode_message(await service.handle(command))
    if len(reply) > max_payload:
        message = (
            f"the reply of {len(reply)} bytes exceeds the server's max_payload {max_payload}: ask for fewer"
        )
        return encode_message(
            WriteErrorReply(code="too_large", message=message, request_id=command.request_id)
        )
    return reply
