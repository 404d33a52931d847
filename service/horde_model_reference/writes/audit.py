"""The audit trail: JSONL segment files, rotated by size; a filtering reader and a replayer.

Layout under `<data_dir>/writes/audit/`: `audit-<first event id, 12 digits>.jsonl`, one
`AuditEvent` per line, ids increasing by one across segments. An append takes a file lock (one
writer across processes), writes its lines with one `write`, and fsyncs. A torn last line (a crash
mid-append) is skipped by the reader and closed off by the next append.

Replaying a category starts from its latest `baseline` event (the whole catalog as it was when the
write path first wrote it, or after it changed outside the write path) and applies every later
`applied` event: the result is the live catalog, byte for byte (`encode_raw_catalog`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio.to_thread
import msgspec

from horde_model_reference.logs import get_logger
from horde_model_reference.writes._locks import file_lock
from horde_model_reference.writes.contracts import AuditAction, AuditEvent, Operation

__all__ = ["AuditFilter", "AuditTrail", "encode_raw_catalog"]

_log = get_logger(__name__)
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AuditEvent)
_PREFIX, _SUFFIX = "audit-", ".jsonl"
_CATALOG_INDENT = 4


def encode_raw_catalog(records: dict[str, msgspec.Raw]) -> bytes:
    """A catalog's v2 JSON bytes (indent 4, records in order) from raw records: what apply writes."""
    return msgspec.json.format(_ENCODER.encode(records), indent=_CATALOG_INDENT)


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events to read; every field None means no constraint. Id bounds are exclusive."""

    category: str | None = None
    name: str | None = None
    change_id: int | None = None
    actions: frozenset[AuditAction] | None = None
    since: float | None = None
    until: float | None = None
    after_id: int | None = None
    before_id: int | None = None

    def matches(self, event: AuditEvent) -> bool:
        """Whether `event` passes every constraint."""
        return not (
            (self.category is not None and event.category != self.category)
            or (self.name is not None and event.name != self.name)
            or (self.change_id is not None and event.change_id != self.change_id)
            or (self.actions is not None and event.action not in self.actions)
            or (self.since is not None and event.time < self.since)
            or (self.until is not None and event.time > self.until)
            or (self.after_id is not None and event.event_id <= self.after_id)
            or (self.before_id is not None and event.event_id >= self.before_id)
        )


def _first_id(path: Path) -> int:
    return int(path.name[len(_PREFIX) : -len(_SUFFIX)])


class AuditTrail:
    """Appends to and reads the audit segments in `directory`."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock_path = self.directory / "audit.lock"
        self._thread_lock = threading.Lock()
        self._catalog_digests: dict[str, str | None] = {}
        self._last: tuple[Path, int, int] | None = None
        """(segment, its size, its last event id) after this process's latest append."""

    # -- writing ------------------------------------------------------------------------------

    async def append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Append `events` (their ids and times are assigned here) and return them as written."""
        if not events:
            return []
        return await anyio.to_thread.run_sync(self._append_sync, list(events))

    def _append_sync(self, events: list[AuditEvent]) -> list[AuditEvent]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, file_lock(self._lock_path):
            segments = self.segments()
            last_id, torn = self._tail(segments[-1]) if segments else (0, False)
            now = time.time()
            stamped = [
                msgspec.structs.replace(event, event_id=last_id + 1 + i, time=now)
                for i, event in enumerate(events)
            ]
            path = segments[-1] if segments else None
            if path is None or path.stat().st_size >= self.segment_bytes:
                path, torn = self.directory / f"{_PREFIX}{stamped[0].event_id:012d}{_SUFFIX}", False
            lines = b"".join(_ENCODER.encode(event) + b"\n" for event in stamped)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (b"\n" if torn else b"") + lines)
                os.fsync(fd)
                self._last = (path, os.fstat(fd).st_size, stamped[-1].event_id)
            finally:
                os.close(fd)
        for event in stamped:
            if event.catalog_digest is not None:
                self._catalog_digests[event.category] = event.catalog_digest
        return stamped

    def _tail(self, path: Path) -> tuple[int, bool]:
        """`_last_id`, from memory when the segment is as this process left it (an append then
        costs the same whatever the segment's size); read again when another writer appended."""
        if self._last is not None and self._last[0] == path and self._last[1] == path.stat().st_size:
            return self._last[2], False
        return self._last_id(path)

    def _last_id(self, path: Path) -> tuple[int, bool]:
        """The id of the last complete event of segment `path`, and whether its tail is torn."""
        data = path.read_bytes()
        torn = bool(data) and not data.endswith(b"\n")
        for line in reversed(data.splitlines()):
            try:
                return _DECODER.decode(line).event_id, torn
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return _first_id(path) - 1, torn

    # -- reading ------------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"), key=_first_id)

    def iter_events(self, where: AuditFilter | None = None) -> Iterator[AuditEvent]:
        """Every event matching `where`, oldest first (undecodable lines are logged and skipped)."""
        where = where or AuditFilter()
        segments = self.segments()
        for index, path in enumerate(segments):
            later = segments[index + 1] if index + 1 < len(segments) else None
            if where.after_id is not None and later is not None and _first_id(later) <= where.after_id + 1:
                continue
            if where.before_id is not None and _first_id(path) >= where.before_id:
                return
            yield from (event for event in self._read_segment(path) if where.matches(event))

    def _read_segment(self, path: Path) -> Iterator[AuditEvent]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield _DECODER.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                _log.warning("audit_line_skipped", segment=path.name, line=number, error=str(exc))

    def read(self, where: AuditFilter | None = None, *, limit: int | None = None) -> list[AuditEvent]:
        """Up to `limit` events matching `where`, oldest first."""
        result: list[AuditEvent] = []
        for event in self.iter_events(where):
            result.append(event)
            if limit is not None and len(result) >= limit:
                break
        return result

    def read_page(
        self, where: AuditFilter | None = None, *, limit: int, max_bytes: int
    ) -> tuple[list[AuditEvent], bool]:
        """Up to `limit` events matching `where` whose JSON stays within `max_bytes` (one at least),
        and whether more events match."""
        result: list[AuditEvent] = []
        size = 0
        for event in self.iter_events(where):
            size += len(_ENCODER.encode(event))
            if len(result) >= limit or (result and size > max_bytes):
                return result, True
            result.append(event)
        return result, False

    def last_catalog_digest(self, category: str) -> str | None:
        """The catalog digest recorded by the category's latest applied or baseline event."""
        if category not in self._catalog_digests:
            digest = None
            where = AuditFilter(
                category=category, actions=frozenset({AuditAction.applied, AuditAction.baseline})
            )
            for event in self.iter_events(where):
                if event.catalog_digest is not None:
                    digest = event.catalog_digest
            self._catalog_digests[category] = digest
        return self._catalog_digests[category]

    # -- replay -------------------------------------------------------------------------------

    def replay(self, category: str) -> dict[str, msgspec.Raw]:
        """The category's records rebuilt from the trail (its latest baseline plus later writes)."""
        records: dict[str, msgspec.Raw] = {}
        where = AuditFilter(category=category, actions=frozenset({AuditAction.applied, AuditAction.baseline}))
        for event in self.iter_events(where):
            if event.action is AuditAction.baseline:
                records = dict(event.catalog or {})
            elif event.name is None:
                continue
            elif event.operation is Operation.delete:
                records.pop(event.name, None)
            elif isinstance(event.after, msgspec.Raw):
                records[event.name] = event.after
        return records

    def replay_bytes(self, category: str) -> bytes:
        """`replay` encoded as the catalog file (compare with the live file's bytes)."""
        return encode_raw_catalog(self.replay(category))
