"""The service's persisted state: each category's revision and digest, and its last good bytes.

Revisions are monotonic per category and never reused, so they are written to disk (atomically:
temp file, fsync, rename, fsync of the directory) BEFORE anything is published. The last good
snapshot of each category is kept next to them, so a restarted service serves and diffs against
it even when its source is broken at startup.

Layout under the data directory::

    revisions.json            {"version": 1, "categories": {"<category>": {"revision": n, "digest": "..."}}}
    snapshots/<category>.json the v2 bytes of the category at that revision
    service.lock              held (flock) by the running service: one writer per directory
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

__all__ = ["PersistedCategory", "StateFile", "StateFileError"]

_log = get_logger(__name__)
_VERSION = 1


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


_DECODER = msgspec.json.Decoder(_Document)
_ENCODER = msgspec.json.Encoder()


class StateFile:
    """Revisions and last good snapshots in `data_dir`; one writer (the service) at a time."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "revisions.json"
        self.snapshot_dir = self.data_dir / "snapshots"
        self._states: dict[str, PersistedCategory] = {}
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

    def load(self) -> dict[str, PersistedCategory]:
        """Read the state file (empty when there is none); raises `StateFileError` when corrupt."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._states = {}
            return {}
        except OSError as exc:
            raise StateFileError(self.path, f"cannot read: {exc}") from exc
        try:
            document = _DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StateFileError(self.path, f"corrupt (refusing to guess revisions): {exc}") from None
        if document.version != _VERSION:
            raise StateFileError(self.path, f"unsupported version {document.version}")
        self._states = dict(document.categories)
        return dict(self._states)

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

        `revision` must be higher than the persisted one: a revision is never reused.
        """
        async with self._lock:
            current = self._states.get(category)
            if current is not None and revision <= current.revision:
                raise StateFileError(
                    self.path, f"revision {revision} of {category!r} is not above {current.revision}"
                )
            states = {**self._states, category: PersistedCategory(revision, digest)}
            await self._write(states, {category: data})

    async def adopt(self, states: Mapping[str, PersistedCategory], snapshots: Mapping[str, bytes]) -> None:
        """Persist states learned elsewhere at startup (Redis ahead of the file)."""
        async with self._lock:
            await self._write({**self._states, **states}, dict(snapshots))

    async def _write(self, states: dict[str, PersistedCategory], snapshots: dict[str, bytes]) -> None:
        document = _ENCODER.encode(_Document(categories=dict(sorted(states.items()))))
        try:
            await anyio.to_thread.run_sync(self._write_sync, document, snapshots)
        except OSError as exc:
            raise StateFileError(self.path, f"cannot write: {exc}") from exc
        self._states = states

    def _write_sync(self, document: bytes, snapshots: dict[str, bytes]) -> None:
        # Bytes first, then the revisions: the revision file is the commit point.
        for category, data in snapshots.items():
            atomic_write_bytes(self._snapshot_path(category), data)
        atomic_write_bytes(self.path, document)

    def _snapshot_path(self, category: str) -> Path:
        return self.snapshot_dir / f"{category}.json"
