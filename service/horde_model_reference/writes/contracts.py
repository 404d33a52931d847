"""The write path's wire contracts: commands, replies, queued changes and audit events.

Every command is sent as JSON to `<prefix>.write.<command>` (NATS request/reply), where
`<command>` is the command's `type` tag (the tag may be left out of the body). Every reply is one
of the reply Structs, told apart by its `type` tag; a refused command gets a `WriteErrorReply`
with a stable `code`. Records travel as raw JSON objects (v2 field names).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "COMMAND_TYPES",
    "ApplyCommand",
    "ApplyResult",
    "ApproveCommand",
    "AuditAction",
    "AuditCommand",
    "AuditEvent",
    "AuditPage",
    "BatchResult",
    "BatchSplit",
    "Change",
    "ChangePage",
    "ChangeReply",
    "ChangeStatus",
    "FieldChange",
    "GetChangeCommand",
    "ListChangesCommand",
    "Operation",
    "ProposeCommand",
    "PurgeCommand",
    "PurgeResult",
    "RejectCommand",
    "Role",
    "WriteCommand",
    "WriteErrorReply",
    "WriteReply",
    "decode_command",
    "decode_reply",
    "encode_message",
    "raw_or_none",
]


class ChangeStatus(StrEnum):
    """pending -> approved -> applying -> applied, or pending -> rejected."""

    pending = "pending"
    approved = "approved"
    applying = "applying"
    applied = "applied"
    rejected = "rejected"


class Operation(StrEnum):
    """What a change does to its record."""

    create = "create"
    update = "update"
    delete = "delete"


class Role(StrEnum):
    """What an API key may do: requesters propose and read the queue; approvers do everything."""

    requester = "requester"
    approver = "approver"


class AuditAction(StrEnum):
    """What an audit event records."""

    proposed = "proposed"
    approved = "approved"
    rejected = "rejected"
    applying = "applying"
    applied = "applied"
    reverted = "reverted"
    """An `applying` change returned to `approved` (failed or interrupted apply)."""
    rebatched = "rebatched"
    """An approved change moved to a new batch after part of its batch was applied."""
    purged = "purged"
    baseline = "baseline"
    """The whole catalog as found before a write, when it changed outside the write path."""


# -- stored and returned objects -------------------------------------------------------------


class Change(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One queued change of one record. Actors are `key:<hash prefix>` or `horde:<user id>`."""

    change_id: int
    category: str
    name: str
    operation: Operation
    status: ChangeStatus
    """Always sent (a new change is `pending`)."""
    record: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    """The proposed record (validated, v2 JSON); absent for a delete."""
    base_revision: int | None = None
    """The category revision the change was based on, when the proposer named one."""
    base_digest: str | None = None
    """The digest of the record the update or delete was based on (`record_digest`)."""
    notes: str | None = None
    requested_by: str
    requested_at: float
    request_id: str
    batch_id: int | None = None
    batch_title: str | None = None
    approved_by: str | None = None
    approved_at: float | None = None
    rejected_by: str | None = None
    rejected_at: float | None = None
    reject_reason: str | None = None
    applying_by: str | None = None
    """The applier holding the reservation (while `applying`)."""
    applying_since: float | None = None
    result_digest: str | None = None
    """The digest of the record this change writes (set when reserved; used for recovery)."""
    applied_by: str | None = None
    applied_at: float | None = None
    applied_revision: int | None = None
    updated_at: float = 0.0


class FieldChange(msgspec.Struct, frozen=True):
    """A top-level field's value before and after an update."""

    old: Any = None
    new: Any = None


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of the audit trail. Never carries an API key: `actor` is a hash or a user id."""

    event_id: int
    time: float
    action: AuditAction
    category: str
    name: str | None = None
    operation: Operation | None = None
    actor: str
    request_id: str | None = None
    change_id: int | None = None
    batch_id: int | None = None
    revision: int | None = None
    """The category revision an applied write produced."""
    catalog_digest: str | None = None
    """The digest of the whole catalog after an applied write (or of a baseline)."""
    before: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    """The record before an applied write (absent for a create)."""
    after: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    """The record proposed or written (absent for a delete)."""
    delta: dict[str, FieldChange] | None = None
    reason: str | None = None
    catalog: dict[str, msgspec.Raw] | None = None
    """The whole catalog (baseline events only)."""


class BatchSplit(msgspec.Struct, frozen=True, kw_only=True):
    """Approved changes moved to a new batch because the rest of their batch was applied."""

    original_batch_id: int
    new_batch_id: int
    change_ids: list[int]


# -- commands --------------------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    api_key: str | None = None
    """The caller's API key (or send none: every command then fails with `unauthorized`)."""
    request_id: str | None = None
    """A tracing id for logs and the audit trail; the service makes one when absent."""


class ProposeCommand(_Command, frozen=True, kw_only=True, tag="propose"):
    """Queue a create, update or delete of one record (role: requester)."""

    category: str
    name: str
    operation: Operation
    record: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    """The record (a JSON object) for a create or update; leave it out for a delete."""
    base_revision: int | None = None
    base_digest: str | None = None
    notes: str | None = None


class ListChangesCommand(_Command, frozen=True, kw_only=True, tag="changes"):
    """List queued changes, oldest first (role: requester)."""

    statuses: list[ChangeStatus] | None = None
    category: str | None = None
    batch_id: int | None = None
    name: str | None = None
    requester: str | None = None
    offset: int = 0
    limit: int = 50


class GetChangeCommand(_Command, frozen=True, kw_only=True, tag="change"):
    """One change, with the current digest of its record (role: requester)."""

    change_id: int


class ApproveCommand(_Command, frozen=True, kw_only=True, tag="approve"):
    """Approve pending changes as one new batch (role: approver)."""

    change_ids: list[int]
    batch_title: str | None = None


class RejectCommand(_Command, frozen=True, kw_only=True, tag="reject"):
    """Reject pending changes; a reason is required (role: approver)."""

    change_ids: list[int]
    reason: str = ""


class ApplyCommand(_Command, frozen=True, kw_only=True, tag="apply"):
    """Apply approved changes: a list, or every approved change of a batch (role: approver)."""

    change_ids: list[int] = []
    batch_id: int | None = None


class PurgeCommand(_Command, frozen=True, kw_only=True, tag="purge"):
    """Remove finished changes from the queue (the audit trail keeps them) (role: approver)."""

    statuses: list[ChangeStatus] = msgspec.field(
        default_factory=lambda: [ChangeStatus.applied, ChangeStatus.rejected]
    )
    older_than: float = 0.0
    """Only changes last updated at least this many seconds ago."""


class AuditCommand(_Command, frozen=True, kw_only=True, tag="audit"):
    """Read the audit trail, oldest first (role: requester)."""

    category: str | None = None
    name: str | None = None
    change_id: int | None = None
    since: float | None = None
    until: float | None = None
    after_id: int | None = None
    before_id: int | None = None
    limit: int = 100


WriteCommand = (
    ProposeCommand
    | ListChangesCommand
    | GetChangeCommand
    | ApproveCommand
    | RejectCommand
    | ApplyCommand
    | PurgeCommand
    | AuditCommand
)

COMMAND_TYPES: dict[str, type[Any]] = {
    "propose": ProposeCommand,
    "changes": ListChangesCommand,
    "change": GetChangeCommand,
    "approve": ApproveCommand,
    "reject": RejectCommand,
    "apply": ApplyCommand,
    "purge": PurgeCommand,
    "audit": AuditCommand,
}
"""Command name (the last subject token and the `type` tag) -> command Struct."""


# -- replies ---------------------------------------------------------------------------------


class ChangeReply(msgspec.Struct, frozen=True, kw_only=True, tag="change_reply", tag_field="type"):
    """A change (after propose, or inspected), with its category's state now."""

    change: Change
    current_revision: int
    current_digest: str | None = None
    """The digest of the record as the service holds it now (None when absent)."""
    request_id: str | None = None


class ChangePage(msgspec.Struct, frozen=True, kw_only=True, tag="change_page", tag_field="type"):
    """A page of changes."""

    items: list[Change]
    total: int
    offset: int
    limit: int
    next_offset: int | None = None
    """Where the next page starts, when more changes match; a page may hold fewer than `limit`
    changes when the reply would pass the service's `max_page_bytes` (it holds one at least)."""


class BatchResult(msgspec.Struct, frozen=True, kw_only=True, tag="batch_result", tag_field="type"):
    """Changes approved (as batch `batch_id`) or rejected."""

    batch_id: int | None
    changes: list[Change]
    request_id: str | None = None


class ApplyResult(msgspec.Struct, frozen=True, kw_only=True, tag="apply_result", tag_field="type"):
    """Changes applied, the new revision of each category written, and any batch splits."""

    changes: list[Change]
    revisions: dict[str, int]
    batch_splits: list[BatchSplit] = []
    request_id: str | None = None


class PurgeResult(msgspec.Struct, frozen=True, kw_only=True, tag="purge_result", tag_field="type"):
    """The ids of the changes removed."""

    removed: list[int]


class AuditPage(msgspec.Struct, frozen=True, kw_only=True, tag="audit_page", tag_field="type"):
    """Audit events; `next_after_id` continues the listing when the limit was reached."""

    events: list[AuditEvent]
    next_after_id: int | None = None
    """Set when more events match: the limit was reached, or the page reached `max_page_bytes`."""


class WriteErrorReply(msgspec.Struct, frozen=True, kw_only=True, tag="write_error", tag_field="type"):
    """A refused command: a stable `code`, a message naming what was wrong, and details."""

    code: str
    message: str
    details: dict[str, str | int | float | None] = {}
    request_id: str | None = None


WriteReply = ChangeReply | ChangePage | BatchResult | ApplyResult | PurgeResult | AuditPage | WriteErrorReply

_ENCODER = msgspec.json.Encoder()
_NULL = b"null"


def raw_or_none(value: msgspec.Raw | msgspec.UnsetType | None) -> msgspec.Raw | None:
    """A raw JSON field as a `Raw`, or None when absent (or JSON null)."""
    if isinstance(value, msgspec.Raw) and bytes(value).strip() != _NULL:
        return value
    return None


_REPLY_DECODER = msgspec.json.Decoder(WriteReply)
_COMMAND_DECODERS = {name: msgspec.json.Decoder(kind) for name, kind in COMMAND_TYPES.items()}


def encode_message(message: WriteCommand | WriteReply) -> bytes:
    """JSON bytes of a command or reply."""
    return _ENCODER.encode(message)


def decode_command(command: str, data: bytes) -> WriteCommand:
    """Decode the body of a request on `<prefix>.write.<command>`.

    Raises `KeyError` for an unknown command, `msgspec.DecodeError`/`ValidationError` for a bad body
    (also for one nested too deeply to decode).
    """
    try:
        decoded: WriteCommand = _COMMAND_DECODERS[command].decode(data)
    except RecursionError:
        raise msgspec.DecodeError("JSON nested too deeply") from None
    return decoded


def decode_reply(data: bytes) -> WriteReply:
    """Decode any write reply by its `type` tag."""
    reply: WriteReply = _REPLY_DECODER.decode(data)
    return reply
