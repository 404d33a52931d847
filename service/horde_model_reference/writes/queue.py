"""The change queue, persisted in one JSON document replaced atomically on every transaction.

`<data_dir>/writes/queue.json` holds every change and the id counters. A transaction takes a file
lock (`queue.lock`: one writer across threads and processes), re-reads the document when another
writer replaced it, runs a pure function on a copy of the state, and writes the result atomically
(temp file, fsync, rename) only when the function succeeded and changed something. A command that
moves many changes (approve a batch, reserve a batch for apply) is therefore one atomic step: a
crash leaves all of it or none of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
import msgspec

from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.writes._locks import file_lock
from horde_model_reference.writes.contracts import Change, ChangeStatus
from horde_model_reference.writes.errors import ChangeNotFoundError, ChangeStateError, WriteError

__all__ = ["ChangeFilter", "ChangeQueue", "QueueCorruptError", "QueueState"]

T = TypeVar("T")
_VERSION = 1


class QueueCorruptError(WriteError):
    """The queue document cannot be read (the service refuses to guess)."""

    code = "internal"

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"write queue {str(path)!r} cannot be read: {reason}")


class _Document(msgspec.Struct, kw_only=True):
    version: int = _VERSION
    next_change_id: int = 1
    next_batch_id: int = 1
    changes: list[Change] = []


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Document)


class ChangeFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which changes to list; None means any."""

    statuses: frozenset[ChangeStatus] | None = None
    category: str | None = None
    batch_id: int | None = None
    name: str | None = None
    requester: str | None = None

    def matches(self, change: Change) -> bool:
        """Whether `change` passes every constraint."""
        return not (
            (self.statuses is not None and change.status not in self.statuses)
            or (self.category is not None and change.category != self.category)
            or (self.batch_id is not None and change.batch_id != self.batch_id)
            or (self.name is not None and change.name != self.name)
            or (self.requester is not None and change.requested_by != self.requester)
        )


class QueueState:
    """A mutable copy of the queue inside one transaction."""

    def __init__(self, document: _Document) -> None:
        self.changes: dict[int, Change] = {change.change_id: change for change in document.changes}
        self.next_change_id = document.next_change_id
        self.next_batch_id = document.next_batch_id
        self.modified = False

    def document(self) -> _Document:
        """The state as the persisted document."""
        return _Document(
            next_change_id=self.next_change_id,
            next_batch_id=self.next_batch_id,
            changes=[self.changes[key] for key in sorted(self.changes)],
        )

    def new_change_id(self) -> int:
        """The next change id (never reused, even after a purge)."""
        self.modified = True
        value, self.next_change_id = self.next_change_id, self.next_change_id + 1
        return value

    def new_batch_id(self) -> int:
        """The next batch id."""
        self.modified = True
        value, self.next_batch_id = self.next_batch_id, self.next_batch_id + 1
        return value

    def get(self, change_id: int) -> Change:
        """The change `change_id`; raises `ChangeNotFoundError`."""
        try:
            return self.changes[change_id]
        except KeyError:
            raise ChangeNotFoundError(change_id) from None

    def expect(self, change_ids: Iterable[int], status: ChangeStatus) -> list[Change]:
        """The changes, each of which must be in `status` (raises `ChangeStateError` naming the first that is not)."""
        changes = [self.get(change_id) for change_id in change_ids]
        for change in changes:
            if change.status is not status:
                raise ChangeStateError(change.change_id, change.status.value, status.value)
        return changes

    def put(self, change: Change) -> Change:
        """Store `change` (new or replacing the one with its id)."""
        self.modified = True
        self.changes[change.change_id] = change
        return change

    def remove(self, change_id: int) -> None:
        """Drop a change from the queue."""
        self.modified = True
        del self.changes[change_id]

    def select(self, where: ChangeFilter) -> list[Change]:
        """The changes matching `where`, by id."""
        return [self.changes[key] for key in sorted(self.changes) if where.matches(self.changes[key])]


class ChangeQueue:
    """The persisted queue in `directory`; safe to share between tasks, threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "queue.json"
        self._lock_path = self.directory / "queue.lock"
        self._thread_lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], _Document] | None = None

    async def transact(self, operation: Callable[[QueueState], T]) -> T:
        """Run `operation` on the current state under the lock; persist its changes when it returns."""
        return await anyio.to_thread.run_sync(self.transact_sync, operation)

    def transact_sync(self, operation: Callable[[QueueState], T]) -> T:
        """Blocking variant of `transact` (runs in the caller's thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, file_lock(self._lock_path):
            state = QueueState(self._load(cached=False))
            result = operation(state)
            if state.modified:
                document = state.document()
                atomic_write_bytes(self.path, _ENCODER.encode(document))
                self._remember(document)
            return result

    async def read(self, operation: Callable[[QueueState], T]) -> T:
        """Run `operation` on the current state without locking (reads see whole documents only)."""
        return await anyio.to_thread.run_sync(self._read_sync, operation)

    def _read_sync(self, operation: Callable[[QueueState], T]) -> T:
        with self._thread_lock:
            return operation(QueueState(self._load()))

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _load(self, *, cached: bool = True) -> _Document:
        """The document on disk; under the lock it is always re-read (a signature can repeat)."""
        signature = self._signature()
        if signature is None:
            return _Document()
        if cached and self._cached is not None and self._cached[0] == signature:
            return self._cached[1]
        try:
            document = _DECODER.decode(self.path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise QueueCorruptError(self.path, str(exc)) from None
        self._cached = (signature, document)
        return document

    def _remember(self, document: _Document) -> None:
        signature = self._signature()
        self._cached = (signature, document) if signature is not None else None
