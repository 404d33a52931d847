"""The `writes` settings group: who may propose and approve, and the write path's bounds.

Environment (comma-separated lists):

    HORDE_MODEL_REFERENCE_WRITES__REQUESTER_KEYS=key1,sha256:<hex of key2>
    HORDE_MODEL_REFERENCE_WRITES__APPROVER_KEYS=...
    HORDE_MODEL_REFERENCE_WRITES__HORDE_API_URL=https://aihorde.net/api
    HORDE_MODEL_REFERENCE_WRITES__REQUESTER_IDS=1234,5678
    HORDE_MODEL_REFERENCE_WRITES__APPROVER_IDS=1

A key may be given as itself or as `sha256:<hex digest>` so the raw key need not be configured.
Approvers are requesters too. With every allowlist empty, every write command is refused.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "HttpSettings", "WriteSettings"]

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""The largest proposed record (encoded JSON bytes) accepted by default."""


_PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]


def _split(value: str | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item and item.strip())


class WriteSettings(msgspec.Struct, kw_only=True):
    """Authorisation allowlists and bounds of the write path (settings group `writes`)."""

    requester_keys: str | list[str] = ""
    """API keys (or `sha256:<hex>` of keys) that may propose and read the queue."""
    approver_keys: str | list[str] = ""
    """API keys (or `sha256:<hex>`) that may also approve, reject, apply and purge."""
    horde_api_url: str | None = None
    """When set, a key not in the lists above is verified with `GET <url>/v2/find_user`."""
    requester_ids: str | list[str] = ""
    """AI-Horde user ids (the number after `#` in the username) allowed to propose."""
    approver_ids: str | list[str] = ""
    """AI-Horde user ids allowed to approve, reject, apply and purge."""
    horde_timeout: _PositiveSeconds = 10.0
    """Seconds for one find_user request to the AI-Horde API."""
    horde_cache_seconds: _NonNegativeSeconds = 60.0
    """How long a find_user answer is reused for the same key."""
    max_payload_bytes: _PositiveInt = DEFAULT_MAX_PAYLOAD_BYTES
    """The largest proposed record accepted (encoded JSON bytes)."""
    audit_segment_bytes: _PositiveInt = 8 * 1024 * 1024
    """An audit segment file is rotated once it reaches this size."""
    apply_lock_timeout: _PositiveSeconds = 60.0
    """How long an apply waits for another applier (any process) to finish."""
    refresh_timeout: _PositiveSeconds = 10.0
    """How long an apply waits for the fetcher actor to publish the new revision."""
    propose_rate: str = "30/minute"
    """Proposals per caller (`limits` notation: `30/minute`, `5/second;100/hour`); empty: no limit."""
    command_rate: str = "600/minute"
    """Commands of any kind per caller (same notation); empty: no limit."""
    max_pending: _PositiveInt = 2000
    """Pending changes the queue holds at most (a proposal past it is refused `queue_full`)."""
    max_pending_per_requester: _PositiveInt = 200
    """Pending changes one requester may have at once."""
    max_page_bytes: _PositiveInt = 512 * 1024
    """A page of changes or audit events stops before it passes this size (one item at least)."""
    two_person_rule: bool = False
    """When true an approver may not approve or apply a change it proposed (deploy/ turns it on)."""

    def keys(self, role: str) -> tuple[str, ...]:
        """The configured keys (or `sha256:` digests) of `role` ("requester" or "approver")."""
        return _split(self.approver_keys if role == "approver" else self.requester_keys)

    def user_ids(self, role: str) -> tuple[str, ...]:
        """The configured AI-Horde user ids of `role`."""
        return _split(self.approver_ids if role == "approver" else self.requester_ids)


class HttpSettings(msgspec.Struct, kw_only=True):
    """Connection limits of the HTTP face (settings group `http`, `HORDE_MODEL_REFERENCE_HTTP__*`).

    Kept beside the write settings (the other edge of the service) so that the settings module
    need not import the HTTP package.
    """

    max_head_bytes: _PositiveInt = 16 * 1024
    """Request line and headers of one request, in bytes (past it: 431 and the connection closed)."""
    max_headers: _PositiveInt = 100
    """Header fields of one request (past it: 431)."""
    head_timeout: _PositiveSeconds = 10.0
    """Seconds a client has to send a request's line and headers, from connecting or from its
    first byte after a response (else 408 and the connection closed): slow and half-open clients."""
    body_timeout: _PositiveSeconds = 30.0
    """Seconds a client has to send a write request's body (else 408)."""
    keep_alive_timeout: _PositiveInt = 5
    """Seconds an idle keep-alive connection stays open (uvicorn's `timeout_keep_alive`)."""
    max_connections: _PositiveInt = 1000
    """Connections and requests in progress at once; past it new requests get 503 (uvicorn's
    `limit_concurrency`)."""
