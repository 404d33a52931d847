"""Which reply subjects the service answers to: inboxes only, never its own subjects.

A request names the subject its reply goes to. Without this check a client could name
`<prefix>.changed.<category>` and have the service publish a full snapshot to the whole fleet on
a subject consumers trust. Every responder replies through `NatsLink.respond`, which asks this
guard first.
"""

from __future__ import annotations

import msgspec

from horde_model_reference.errors import ModelReferenceError

__all__ = ["DEFAULT_INBOX_PREFIX", "ReplyGuard", "UnsafeReplyError"]

DEFAULT_INBOX_PREFIX = "_INBOX"
_SHOWN = 120


class UnsafeReplyError(ModelReferenceError):
    """A request whose reply subject is not an inbox (or is one of the service's own subjects)."""

    def __init__(self, reply: str, reason: str) -> None:
        self.reply = reply
        self.reason = reason
        shown = reply if len(reply) <= _SHOWN else reply[:_SHOWN] + "..."
        super().__init__(f"reply subject {shown!r} refused: {reason}")


class ReplyGuard(msgspec.Struct, frozen=True, kw_only=True):
    """The service's rule for reply subjects."""

    subject_prefix: str
    """The service's own subjects (`<prefix>.>`): never a reply target."""
    inbox_prefixes: tuple[str, ...] = (DEFAULT_INBOX_PREFIX,)
    """Replies go only below these prefixes (`_INBOX.<id>`, or a per-user `_INBOX.consumer.<id>`)."""

    def check(self, reply: str) -> None:
        """Raise `UnsafeReplyError` unless `reply` is an inbox subject outside the service's prefix."""
        if not reply or any(c in reply for c in " \t\r\n*>"):
            raise UnsafeReplyError(reply, "empty, a wildcard, or containing whitespace")
        own = self.subject_prefix
        if reply == own or reply.startswith(own + "."):
            raise UnsafeReplyError(reply, f"it is one of the service's own subjects ({own}.>)")
        if not any(reply.startswith(prefix.rstrip(".") + ".") for prefix in self.inbox_prefixes):
            allowed = ", ".join(f"{p.rstrip('.')}.>" for p in self.inbox_prefixes)
            raise UnsafeReplyError(reply, f"replies go to inbox subjects only ({allowed})")

    @classmethod
    def for_service(cls, subject_prefix: str, inbox_prefix: str | None = None) -> ReplyGuard:
        """`_INBOX.>` and, when configured, the service's own inbox prefix."""
        prefixes = [DEFAULT_INBOX_PREFIX]
        if inbox_prefix and inbox_prefix.rstrip(".") != DEFAULT_INBOX_PREFIX:
            prefixes.append(inbox_prefix)
        return cls(subject_prefix=subject_prefix, inbox_prefixes=tuple(prefixes))
