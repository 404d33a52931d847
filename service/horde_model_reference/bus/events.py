"""The wire contracts of the bus: events and replies, msgspec Structs encoded as JSON.

Subjects (prefix default `hmr.v1`, configurable):

| subject                          | kind           | payload           |
|----------------------------------|----------------|-------------------|
| `<prefix>.changed.<category>`    | publish        | `CategoryChanged` |
| `<prefix>.heartbeat`             | publish        | `Heartbeat`       |
| `<prefix>.snapshot.<category>`   | request/reply  | `SnapshotRequest` -> `Snapshot`, `NotModified` or `ErrorReply` |
| `<prefix>.health`                | request/reply  | (empty) -> `HealthReply` |
| `<prefix>.write.<command>`       | request/reply  | write commands and their results |
"""

import msgspec

__all__ = [
    "CategoryChanged",
    "CategoryHealth",
    "CategoryState",
    "ErrorReply",
    "HealthReply",
    "Heartbeat",
    "NotModified",
    "Snapshot",
    "SnapshotRequest",
    "Subjects",
    "decode_event",
    "encode_event",
]

DEFAULT_SUBJECT_PREFIX = "hmr.v1"


class CategoryChanged(msgspec.Struct, frozen=True, kw_only=True, tag="category_changed", tag_field="type"):
    """A category changed on the primary. Published after the snapshot is stored.

    `revision` is monotonic per category and never reused, even across service restarts.
    `records`, when present, holds the added and changed records (v2 JSON by catalog key): a
    consumer holding `revision - 1` with digest `previous_digest` patches its cache from it without
    fetching anything. Absent (None) when the delta was larger than the configured bound.
    """

    category: str
    revision: int
    digest: str
    previous_digest: str | None
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    records: dict[str, msgspec.Raw] | None = None
    record_count: int = 0
    service_id: str = ""
    published_at: float = 0.0
    records_digest: str | None = None
    """sha256 over the new catalog's record names and the sha256 of each record's raw JSON
    (`bus.trust.records_digest`): what a consumer checks its patched catalog against. None from a
    service that does not send it (the consumer then fetches the snapshot)."""


class CategoryState(msgspec.Struct, frozen=True, array_like=False):
    """A category's revision and digest as the service holds them."""

    revision: int
    digest: str


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat", tag_field="type"):
    """Sent every few seconds: every category's revision and digest, so consumers detect gaps."""

    service_id: str
    started_at: float
    sent_at: float
    categories: dict[str, CategoryState]


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask for a category's snapshot. `min_revision` lets the service say it is behind.

    A consumer names what it holds (`held_revision`, `held_digest`): when that is still current
    the answer is a `NotModified`, with no bytes. `deadline` (Unix time, as the service's clock
    reads it; 0: none) is when the consumer stops waiting: a request still queued then is dropped.
    """

    min_revision: int = 0
    held_revision: int = 0
    held_digest: str | None = None
    deadline: float = 0.0


class NotModified(msgspec.Struct, frozen=True, kw_only=True, tag="not_modified", tag_field="type"):
    """The reply to a `SnapshotRequest` whose held revision and digest are the current ones."""

    category: str
    revision: int
    digest: str
    service_id: str = ""
    signature: str | None = None
    """The service's signature over category, revision and digest, as on a `Snapshot`."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot", tag_field="type"):
    """A category's full state: revision, digest and the canonical v2 JSON (embedded as raw JSON)."""

    category: str
    revision: int
    digest: str
    data: msgspec.Raw
    service_id: str = ""
    signature: str | None = None
    """The service's Ed25519 signature over category, revision and digest (`bus.signing`), when
    it has a key."""


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True, tag="error", tag_field="type"):
    """A request that could not be answered, and why."""

    error: str
    message: str
    category: str | None = None


class CategoryHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One category's state in a `HealthReply`."""

    revision: int
    digest: str | None
    """None while the category has never been loaded."""
    record_count: int = 0
    skipped_records: int = 0
    """Records of the current catalog that could not be decoded (skipped and logged)."""
    last_change: float | None = None
    """Unix time the service last published a change of this category."""
    last_error: str | None = None
    last_error_at: float | None = None
    restarts: int = 0
    """How often this category's fetcher actor crashed and was restarted."""
    state: str | None = None
    """`loading` (first fetch not done), `loaded` (a snapshot is held), `absent` (none: the source
    has no catalog) or `failed` (none: the last fetch failed or its catalog was rejected).
    None from a service that does not report it."""
    events_published: int = 0
    """`CategoryChanged` events published (counted since the service started, as are the rest)."""
    publish_failures: int = 0
    """`CategoryChanged` events whose publish failed or timed out."""
    fetch_count: int = 0
    """Fetches from the backend, finished or failed."""
    fetch_seconds_total: float = 0.0
    """Time spent in those fetches."""
    last_fetch_seconds: float | None = None
    """How long the latest fetch took."""
    fetch_failures: int = 0
    """Fetches that raised or timed out."""
    redis_write_failures: int = 0
    """Snapshot writes to Redis that failed."""


class HealthReply(msgspec.Struct, frozen=True, kw_only=True, tag="health", tag_field="type"):
    """The service's health, answered on `<prefix>.health`."""

    service_id: str
    started_at: float
    uptime: float
    sent_at: float
    categories: dict[str, CategoryHealth]
    actor_restarts: dict[str, int]
    nats_connected: bool
    redis_connected: bool | None
    """None when no Redis is configured."""
    embedded_nats: bool = False
    jetstream_connected: bool | None = None
    """Whether the snapshot bucket in JetStream answers; None when JetStream is off (or from a
    service that does not report it)."""


class Subjects(msgspec.Struct, frozen=True):
    """The subject names for one prefix."""

    prefix: str = DEFAULT_SUBJECT_PREFIX

    def changed(self, category: str) -> str:
        """Where `CategoryChanged` for `category` is published."""
        return f"{self.prefix}.changed.{category}"

    @property
    def changed_all(self) -> str:
        """Wildcard over every category's change subject."""
        return f"{self.prefix}.changed.*"

    @property
    def heartbeat(self) -> str:
        """Where `Heartbeat` is published."""
        return f"{self.prefix}.heartbeat"

    def snapshot(self, category: str) -> str:
        """Where snapshot requests for `category` are answered."""
        return f"{self.prefix}.snapshot.{category}"

    @property
    def snapshot_all(self) -> str:
        """Wildcard the snapshot responder listens on."""
        return f"{self.prefix}.snapshot.*"

    @property
    def health(self) -> str:
        """Where health requests are answered."""
        return f"{self.prefix}.health"

    def write(self, command: str) -> str:
        """Where the write command `command` is answered."""
        return f"{self.prefix}.write.{command}"


_ENCODER = msgspec.json.Encoder()
_EVENT_DECODER = msgspec.json.Decoder(
    CategoryChanged | Heartbeat | Snapshot | NotModified | ErrorReply | HealthReply
)

Event = CategoryChanged | Heartbeat | Snapshot | NotModified | ErrorReply | HealthReply


def encode_event(event: Event) -> bytes:
    """JSON bytes of an event or reply."""
    return _ENCODER.encode(event)


def decode_event(data: bytes) -> Event:
    """Decode any event or reply by its `type` tag (raises `msgspec.DecodeError` when malformed)."""
    return _EVENT_DECODER.decode(data)
