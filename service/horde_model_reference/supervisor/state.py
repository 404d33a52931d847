"""The service's persisted state: each category's revision and digest, and its last good bytes.

Revisions are monotonic per category and never reused, even across a crash. Every revision is
*reserved* on disk before it is published: `revisions.json` holds, per category, a high-water mark
`reserved` that no revision handed out so far exceeds. A reservation is taken ahead
(`RESERVE_AHEAD` revisions at a time, at startup and whenever a commit reaches the mark), so most
commits publish without waiting for any disk write; the revision, digest and bytes themselves are
persisted right after the publish when Redis already holds them, before it otherwise (the actor
decides; atomically: temp file, fsync, rename, fsync of the directory).

After a crash the file may lag behind what was published, but never behind the reservation: a
restarted service numbers its next change above the mark it loaded (`next_revision`), so a revision
is never handed out twice. A clean shutdown (`release_reservations`) lowers the mark to the last
revision handed out, so an orderly restart continues without a gap. The last good snapshot of each
category is kept next to the revisions, so a restarted service serves and diffs against it even
when its source is broken at startup (the file's digest says which bytes belong to the persisted
revision).

Layout under the data directory::

    revisions.json            {"version": 2, "categories": {"<category>": {"revision": n, "digest": "..."}},
                               "reserved": {"<category>": m}}
    snapshots/<category>.json the v2 bytes of the category at that revision
    service.lock              held (flock) by the running service: one writer per directory

Version 1 files (no `reserved`: every revision was persisted before it was published) are read as
they are and rewritten as version 2 on the first write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec

from horde_model_reference.catalog import catalog_digest
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.logs import get_logger

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["RESERVE_AHEAD", "PersistedCategory", "StateFile", "StateFileError"]

_log = get_logger(__name__)
_VERSION = 2
_READABLE_VERSIONS = (1, 2)
RESERVE_AHEAD = 100
"""How many revisions a reservation covers: at most one synchronous state write per this many commits."""


class StateFileError(ModelReferenceError):
    """The state file cannot be read or written (revisions would be at risk of reuse)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"service state {str(path)!r}: {reason}")


class PersistedCategory(msgspec.Struct, frozen=True):
    """A category's revision and the digest of its bytes at that revision."""

    revision: int
    digest: str


class _Document(msgspec.Struct, kw_only=True):
    version: int = _VERSION
    categories: dict[str, PersistedCategory] = {}
    reserved: dict[str, int] = {}


_DECODER = msgspec.json.Decoder(_Document)
_ENCODER = msgspec.json.Encoder()


class StateFile:
    """Revisions and last good snapshots in `data_dir`; one writer (the service) at a time."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "revisions.json"
        self.snapshot_dir = self.data_dir / "snapshots"
        self._states: dict[str, PersistedCategory] = {}
        self._reserved: dict[str, int] = {}
        """Per category, the mark on disk: no revision handed out exceeds it."""
        self._floor: dict[str, int] = {}
        """Per category, the mark found at `load`: revisions up to it may have been published."""
        self._issued: dict[str, int] = {}
        """Per category, the highest revision handed out (reserved) by this instance."""
        self._lock = anyio.Lock()
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Take the directory's lock; raises `StateFileError` when another service holds it."""
        if fcntl is None or self._lock_fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "service.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateFileError(path, "another hmr serve is running with this data directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        """Release the directory's lock (when held)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def states(self) -> Mapping[str, PersistedCategory]:
        """The persisted state of each category (as last loaded or committed)."""
        return self._states

    @property
    def reserved(self) -> Mapping[str, int]:
        """The reservation mark of each category, as on disk."""
        return self._reserved

    def load(self) -> dict[str, PersistedCategory]:
        """Read the state file (empty when there is none); raises `StateFileError` when corrupt."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._states, self._reserved, self._floor = {}, {}, {}
            return {}
        except OSError as exc:
            raise StateFileError(self.path, f"cannot read: {exc}") from exc
        try:
            document = _DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StateFileError(self.path, f"corrupt (refusing to guess revisions): {exc}") from None
        if document.version not in _READABLE_VERSIONS:
            raise StateFileError(self.path, f"unsupported version {document.version}")
        self._states = dict(document.categories)
        self._reserved = dict(document.reserved)
        self._floor = dict(document.reserved)
        return dict(self._states)

    def next_revision(self, category: str, held: int) -> int:
        """The revision for `category`'s next change, given the one the service holds.

        Above `held`, above every revision this instance handed out, and above the mark loaded
        from disk (a crashed predecessor may have published up to it).
        """
        return max(held, self._floor.get(category, 0), self._issued.get(category, 0)) + 1

    async def reserve(self, category: str, revision: int) -> None:
        """Make sure `revision` is covered by the mark on disk before it is published.

        Usually nothing to write; when the mark is reached, a new one `RESERVE_AHEAD` revisions
        higher is written (and synced). Raises `StateFileError` on failure (publish nothing then).
        """
        self._check_above_persisted(category, revision)
        if revision > self._reserved.get(category, 0):
            # Only raising a mark needs the lock (and a write): a covered revision must not wait
            # for another category's write in progress.
            async with self._lock:
                if revision > self._reserved.get(category, 0):
                    await self._write(
                        self._states, {}, {**self._reserved, category: revision + RESERVE_AHEAD}
                    )
        self._issued[category] = max(revision, self._issued.get(category, 0))

    async def reserve_all(self, held: Mapping[str, int]) -> None:
        """Reserve ahead for every category in `held` (category -> revision held) in one write.

        Called at startup, so that the first changes need no synchronous write either.
        """
        async with self._lock:
            marks = dict(self._reserved)
            for category, revision in held.items():
                ahead = self.next_revision(category, revision) + RESERVE_AHEAD - 1
                marks[category] = max(marks.get(category, 0), ahead)
            if marks != self._reserved:
                await self._write(self._states, {}, marks)

    async def release_reservations(self) -> None:
        """Lower each mark to the highest revision that may have been handed out (clean shutdown).

        Revisions handed out by this instance, persisted revisions and the marks loaded at startup
        all stay covered, so the next instance still never reuses one; it just needs no gap.
        """
        async with self._lock:
            marks = {
                category: max(
                    self._issued.get(category, 0),
                    self._floor.get(category, 0),
                    self._states[category].revision if category in self._states else 0,
                )
                for category in self._reserved
            }
            if marks != self._reserved:
                await self._write(self._states, {}, marks)

    def load_snapshot(self, category: str, digest: str) -> bytes | None:
        """The last good bytes of `category` when they match `digest`, else None."""
        path = self._snapshot_path(category)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _log.warning("snapshot_file_unreadable", category=category, path=str(path), error=str(exc))
            return None
        if catalog_digest(data) != digest:
            _log.warning("snapshot_file_stale", category=category, path=str(path), expected_digest=digest)
            return None
        return data

    async def commit(self, category: str, revision: int, digest: str, data: bytes) -> None:
        """Persist `category` at `revision` (and its bytes); raises `StateFileError` on failure.

        `revision` must be higher than the persisted one: a revision is never reused. The mark is
        raised to `revision` when below (a commit that was not reserved first).
        """
        async with self._lock:
            self._check_above_persisted(category, revision)
            states = {**self._states, category: PersistedCategory(revision, digest)}
            marks = self._reserved
            if revision > marks.get(category, 0):
                marks = {**marks, category: revision}
            await self._write(states, {category: data}, marks)
            self._issued[category] = max(revision, self._issued.get(category, 0))

    async def adopt(self, states: Mapping[str, PersistedCategory], snapshots: Mapping[str, bytes]) -> None:
        """Persist states learned elsewhere at startup (Redis ahead of the file)."""
        async with self._lock:
            marks = dict(self._reserved)
            for category, state in states.items():
                marks[category] = max(marks.get(category, 0), state.revision)
            await self._write({**self._states, **states}, dict(snapshots), marks)

    def _check_above_persisted(self, category: str, revision: int) -> None:
        current = self._states.get(category)
        if current is not None and revision <= current.revision:
            raise StateFileError(
                self.path, f"revision {revision} of {category!r} is not above {current.revision}"
            )

    async def _write(
        self, states: Mapping[str, PersistedCategory], snapshots: dict[str, bytes], marks: Mapping[str, int]
    ) -> None:
        document = _ENCODER.encode(
            _Document(categories=dict(sorted(states.items())), reserved=dict(sorted(marks.items())))
        )
        try:
            await anyio.to_thread.run_sync(self._write_sync, document, snapshots)
        except OSError as exc:
            raise StateFileError(self.path, f"cannot write: {exc}") from exc
        self._states = dict(states)
        self._reserved = dict(marks)

    def _write_sync(self, document: bytes, snapshots: dict[str, bytes]) -> None:
        # Bytes first, then the revisions: the revision file is the commit point.
        for category, data in snapshots.items():
            atomic_write_bytes(self._snapshot_path(category), data)
        atomic_write_bytes(self.path, document)

    def _snapshot_path(self, category: str) -> Path:
        return self.snapshot_dir / f"{category}.json"
