"""`hmr propose`, `hmr changes`, `hmr approve`, `hmr reject`, `hmr apply`, `hmr purge`, `hmr audit`.

Each sends one write command to the running service over NATS request/reply
(`<prefix>.write.<command>`) with the API key from `--api-key` or `HORDE_MODEL_REFERENCE_API_KEY`,
and prints the reply (`--json` for the raw reply). Exit status: 0 done, 1 refused or no answer,
2 no NATS URL or bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import anyio
import msgspec

from horde_model_reference.bus.connection import redact_url
from horde_model_reference.bus.events import Subjects
from horde_model_reference.cli.bus import (
    ServiceUrl,
    add_common_bus_options,
    bus_client,
    require_service_url,
    subject_prefix,
)
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.writes.contracts import (
    ApplyCommand,
    ApplyResult,
    ApproveCommand,
    AuditCommand,
    AuditPage,
    BatchResult,
    ChangePage,
    ChangeReply,
    ChangeStatus,
    GetChangeCommand,
    ListChangesCommand,
    Operation,
    ProposeCommand,
    PurgeCommand,
    PurgeResult,
    RejectCommand,
    WriteCommand,
    WriteErrorReply,
    WriteReply,
    decode_reply,
    encode_message,
)

__all__ = ["API_KEY_VARIABLE", "RecordFileError", "add_write_parsers"]

API_KEY_VARIABLE = "HORDE_MODEL_REFERENCE_API_KEY"


class RecordFileError(ModelReferenceError, ValueError):
    """`hmr propose --record FILE`: the file cannot be read or is not JSON."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path} {problem}")


_COMMAND_NAMES = {
    ProposeCommand: "propose",
    ListChangesCommand: "changes",
    GetChangeCommand: "change",
    ApproveCommand: "approve",
    RejectCommand: "reject",
    ApplyCommand: "apply",
    PurgeCommand: "purge",
    AuditCommand: "audit",
}


def _when(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


def _format(reply: WriteReply) -> str:
    if isinstance(reply, ChangeReply):
        c = reply.change
        lines = [
            f"change {c.change_id}: {c.status.value}  {c.operation.value} {c.category}/{c.name}",
            f"  requested by {c.requested_by} at {_when(c.requested_at)}  batch {c.batch_id or '-'}",
            f"  category revision {reply.current_revision}  record digest now {reply.current_digest or '(none)'}",
        ]
        if c.base_digest:
            lines.append(f"  based on record digest {c.base_digest}")
        if c.reject_reason:
            lines.append(f"  rejected: {c.reject_reason}")
        return "\n".join(lines)
    if isinstance(reply, ChangePage):
        header = f"{'id':>5}  {'status':<9} {'op':<7} {'category':<18} {'batch':>5}  {'requester':<22} name"
        rows = [
            f"{c.change_id:>5}  {c.status.value:<9} {c.operation.value:<7} {c.category:<18} "
            f"{c.batch_id or '-':>5}  {c.requested_by:<22} {c.name}"
            for c in reply.items
        ]
        footer = f"{len(reply.items)} of {reply.total} (offset {reply.offset})"
        return "\n".join([header, *rows, footer])
    if isinstance(reply, BatchResult):
        ids = ", ".join(str(c.change_id) for c in reply.changes)
        status = reply.changes[0].status.value if reply.changes else "-"
        batch = f" as batch {reply.batch_id}" if reply.batch_id is not None else ""
        return f"{status}{batch}: {ids}"
    if isinstance(reply, ApplyResult):
        ids = ", ".join(str(c.change_id) for c in reply.changes)
        revisions = ", ".join(f"{name} revision {rev}" for name, rev in sorted(reply.revisions.items()))
        lines = [f"applied {ids}: {revisions or 'published later'}"]
        lines += [
            f"batch {s.original_batch_id}: {', '.join(map(str, s.change_ids))} moved to batch {s.new_batch_id}"
            for s in reply.batch_splits
        ]
        return "\n".join(lines)
    if isinstance(reply, PurgeResult):
        return f"purged {len(reply.removed)} change(s): {', '.join(map(str, reply.removed)) or '-'}"
    if isinstance(reply, AuditPage):
        lines = [
            f"{e.event_id:>6}  {_when(e.time)}  {e.action.value:<9} {e.category:<18} "
            f"{(e.operation.value if e.operation else '-'):<7} {e.name or '-':<30} "
            f"change={e.change_id or '-'} rev={e.revision or '-'} by {e.actor}"
            for e in reply.events
        ]
        if reply.next_after_id is not None:
            lines.append(f"(more: --after-id {reply.next_after_id})")
        return "\n".join(lines) or "(no events)"
    return repr(reply)


async def _send(target: ServiceUrl, prefix: str, command: WriteCommand, timeout: float) -> bytes | None:
    async with bus_client(target, "hmr-writes", timeout) as nc:
        try:
            msg = await nc.request(
                Subjects(prefix).write(_COMMAND_NAMES[type(command)]),
                encode_message(command),
                timeout=timeout,
            )
        except Exception as exc:
            print(
                f"no answer from the service on {redact_url(target.url)} within {timeout:g}s: "
                f"{type(exc).__name__} (is `hmr serve` running?)",
                file=sys.stderr,
            )
            return None
        data: bytes = msg.data
        return data


def _run(args: argparse.Namespace, command: WriteCommand, print_id: bool = False) -> int:
    target = require_service_url(args.nats_url, args.base_path)
    data = anyio.run(_send, target, subject_prefix(args), command, args.timeout)
    if data is None:
        return 1
    try:
        reply = decode_reply(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"hmr {args.command}: unexpected reply: {exc}", file=sys.stderr)
        return 1
    if isinstance(reply, WriteErrorReply):
        print(f"hmr {args.command}: {reply.code}: {reply.message}", file=sys.stderr)
        return 1
    if print_id and isinstance(reply, ChangeReply):
        print(reply.change.change_id)
    elif args.json:
        sys.stdout.write(msgspec.json.format(data, indent=2).decode() + "\n")
    else:
        print(_format(reply))
    return 0


def _key(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get(API_KEY_VARIABLE) or None


def _read_record(source: str | None) -> msgspec.Raw | msgspec.UnsetType:
    """The record file's JSON (`-`: stdin); `RecordFileError` names the file and where it is malformed."""
    if source is None:
        return msgspec.UNSET
    name = "<stdin>" if source == "-" else source
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise RecordFileError(name, f"cannot be read: {exc.strerror or exc}") from None
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RecordFileError(name, _where(data, str(exc))) from None
    return msgspec.Raw(data.strip())


def _where(data: bytes, message: str) -> str:
    """msgspec's `... (byte N)` as a line and column of the file."""
    found = re.search(r"\(byte (\d+)\)", message)
    if found is None:
        return f"is not valid JSON: {message}"
    offset = int(found[1])
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"is not valid JSON at line {line}, column {column}: {message[: found.start()].strip()}"


def _time(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value).timestamp()


def _propose(args: argparse.Namespace) -> int:
    operation = Operation(args.operation)
    if operation is not Operation.create and args.base_revision is None and args.base_digest is None:
        print(
            f"hmr propose: {operation.value} needs --base-revision N (the category's revision, "
            "from `hmr status`) or --base-digest D (the record's digest, from `hmr changes ID`)",
            file=sys.stderr,
        )
        return 2
    try:
        record = _read_record(args.record)
    except RecordFileError as exc:
        print(f"hmr propose: {exc}", file=sys.stderr)
        return 2
    command = ProposeCommand(
        api_key=_key(args),
        category=args.category,
        name=args.name,
        operation=operation,
        record=record,
        base_revision=args.base_revision,
        base_digest=args.base_digest,
        notes=args.notes,
    )
    return _run(args, command, print_id=args.print_id)


def _changes(args: argparse.Namespace) -> int:
    if args.change_id is not None:
        return _run(args, GetChangeCommand(api_key=_key(args), change_id=args.change_id))
    command = ListChangesCommand(
        api_key=_key(args),
        statuses=[ChangeStatus(s) for s in args.status] if args.status else None,
        category=args.category,
        batch_id=args.batch,
        name=args.name,
        requester=args.requester,
        offset=args.offset,
        limit=args.limit,
    )
    return _run(args, command)


def _approve(args: argparse.Namespace) -> int:
    return _run(args, ApproveCommand(api_key=_key(args), change_ids=args.change_ids, batch_title=args.title))


def _reject(args: argparse.Namespace) -> int:
    return _run(args, RejectCommand(api_key=_key(args), change_ids=args.change_ids, reason=args.reason))


def _apply(args: argparse.Namespace) -> int:
    return _run(args, ApplyCommand(api_key=_key(args), change_ids=args.change_ids, batch_id=args.batch))


def _purge(args: argparse.Namespace) -> int:
    statuses = (
        [ChangeStatus(s) for s in args.status]
        if args.status
        else [ChangeStatus.applied, ChangeStatus.rejected]
    )
    return _run(args, PurgeCommand(api_key=_key(args), statuses=statuses, older_than=args.older_than))


def _audit(args: argparse.Namespace) -> int:
    command = AuditCommand(
        api_key=_key(args),
        category=args.category,
        name=args.name,
        change_id=args.change,
        since=_time(args.since) if args.since else None,
        until=_time(args.until) if args.until else None,
        after_id=args.after_id,
        before_id=args.before_id,
        limit=args.limit,
    )
    return _run(args, command)


def _common(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    add_common_bus_options(parser, timeout)
    parser.add_argument("--api-key", help=f"API key (default: ${API_KEY_VARIABLE}; prefer the variable)")
    parser.add_argument("--json", action="store_true", help="print the raw reply as JSON")


def add_write_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the write commands on the `hmr` parser."""
    statuses = [s.value for s in ChangeStatus]
    propose = subparsers.add_parser("propose", help="queue a create, update or delete of a record")
    propose.add_argument("operation", choices=[o.value for o in Operation])
    propose.add_argument("category", help="the record's category (e.g. image_generation)")
    propose.add_argument("name", help="the record's name (text ids: org/model)")
    propose.add_argument("--record", help="file with the record as v2 JSON, or - for stdin (create, update)")
    propose.add_argument("--base-revision", type=int, help="the category revision the change is based on")
    propose.add_argument(
        "--base-digest", help="the record digest the change is based on (see `hmr changes ID`)"
    )
    propose.add_argument("--notes", help="a note for the approvers")
    propose.add_argument(
        "--print-id",
        action="store_true",
        help="print only the new change's id (for scripts: id=$(hmr propose ...))",
    )
    _common(propose)
    propose.set_defaults(func=_propose)

    changes = subparsers.add_parser("changes", help="list queued changes, or show one")
    changes.add_argument(
        "change_id", nargs="?", type=int, help="show this change (and its record's digest now)"
    )
    changes.add_argument(
        "--status", action="append", choices=statuses, help="only these statuses (repeatable)"
    )
    changes.add_argument("--category")
    changes.add_argument("--batch", type=int)
    changes.add_argument("--name")
    changes.add_argument("--requester", help="actor id, e.g. key:0123abcd... or horde:1234")
    changes.add_argument("--offset", type=int, default=0)
    changes.add_argument("--limit", type=int, default=50)
    _common(changes)
    changes.set_defaults(func=_changes)

    approve = subparsers.add_parser("approve", help="approve pending changes as one batch")
    approve.add_argument("change_ids", nargs="+", type=int)
    approve.add_argument("--title", help="the batch's title")
    _common(approve)
    approve.set_defaults(func=_approve)

    reject = subparsers.add_parser("reject", help="reject pending changes (a reason is required)")
    reject.add_argument("change_ids", nargs="+", type=int)
    reject.add_argument("--reason", required=True)
    _common(reject)
    reject.set_defaults(func=_reject)

    apply = subparsers.add_parser("apply", help="apply approved changes (ids or a batch) and publish them")
    apply.add_argument("change_ids", nargs="*", type=int)
    apply.add_argument("--batch", type=int, help="apply every approved change of this batch")
    _common(apply, timeout=30.0)
    apply.set_defaults(func=_apply)

    purge = subparsers.add_parser("purge", help="remove applied and rejected changes from the queue")
    purge.add_argument("--status", action="append", choices=["applied", "rejected"])
    purge.add_argument("--older-than", type=float, default=0.0, help="seconds since the last update")
    _common(purge)
    purge.set_defaults(func=_purge)

    audit = subparsers.add_parser("audit", help="read the audit trail")
    audit.add_argument("--category")
    audit.add_argument("--name")
    audit.add_argument("--change", type=int, help="events of this change")
    audit.add_argument("--since", help="Unix seconds or ISO 8601")
    audit.add_argument("--until", help="Unix seconds or ISO 8601")
    audit.add_argument("--after-id", type=int)
    audit.add_argument("--before-id", type=int)
    audit.add_argument("--limit", type=int, default=100)
    _common(audit)
    audit.set_defaults(func=_audit)
