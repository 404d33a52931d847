"""Backends over v2 files in a directory: the PRIMARY's source of truth, and an offline reader.

A fetch costs one `stat` when the file has not changed (the cached payload is returned), so
polling every half second is cheap. A file that becomes unreadable or corrupt never replaces good
data, and it is not hidden either: the fetch raises `BackendError` (the caller keeps what it holds
and reports the error). A corrupt version of the file raises once; later fetches of the same,
unchanged file return the last good payload until the file changes again. Writes are atomic: a temporary
file in the same directory, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import anyio.to_thread

from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, fetch_categories
from horde_model_reference.catalog import decode_catalog, validate_catalog_bytes
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.fileio import atomic_write_bytes, read_trimmed_bytes
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import ReplicateMode

__all__ = ["FileSystemBackend", "LocalReadOnlyBackend", "atomic_write_bytes"]

_log = get_logger(__name__)

_Signature = tuple[int, int, int]


class FileSystemBackend:
    """v2 catalog files in `base_path` are the source of truth (PRIMARY)."""

    name = "filesystem"
    revalidate_interval = 1.0
    """Seconds between background re-checks by a manager (one `stat` when nothing changed)."""
    replicate_mode = ReplicateMode.PRIMARY
    """The mode this backend serves (upstream's attribute): PRIMARY, or REPLICA when read-only."""

    def __init__(self, base_path: str | Path, *, writable: bool = True) -> None:
        self.base_path = Path(base_path)
        self._writable = writable
        self._payloads: dict[MODEL_REFERENCE_CATEGORY, CategoryPayload] = {}
        self._signatures: dict[MODEL_REFERENCE_CATEGORY, _Signature] = {}
        self._callbacks: list[InvalidationCallback] = []
        self._lock = threading.Lock()
        self._file_names: dict[MODEL_REFERENCE_CATEGORY, str] = {}

    def path_for(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        """The v2 file of `category`."""
        return self.base_path / get_category_descriptor(category).v2_filename

    def _file_name(self, category: MODEL_REFERENCE_CATEGORY) -> str:
        """`path_for` as a string, computed once (fetches run often; stat and open take strings)."""
        name = self._file_names.get(category)
        if name is None:
            name = self._file_names.setdefault(category, str(self.path_for(category)))
        return name

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """The category's bytes; re-read only when the file changed (or `force_refresh`)."""
        return await anyio.to_thread.run_sync(self.fetch_category_sync, category, force_refresh)

    def fetch_category_sync(
        self, category: MODEL_REFERENCE_CATEGORY, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """Blocking variant of `fetch_category` (used from worker threads)."""
        path = self._file_name(category)
        last_good = self._payloads.get(category)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if last_good is not None:
                _log.warning("catalog_file_missing", category=category.value, path=path, kept="last good")
            return last_good
        except OSError as exc:
            raise self._unreadable(category, last_good, f"cannot stat {path}: {exc}") from exc
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if not force_refresh and last_good is not None and self._signatures.get(category) == signature:
            return last_good
        try:
            data = read_trimmed_bytes(path)
        except OSError as exc:
            raise self._unreadable(category, last_good, f"cannot read {path}: {exc}") from exc
        try:
            decoded = decode_catalog(category, data, source=path)
        except CatalogDecodeError as exc:
            with self._lock:  # this version of the file is reported once
                self._signatures[category] = signature
            _log.error(
                "catalog_rejected",
                category=category.value,
                path=path,
                reason=str(exc),
                caller_keeps_last_good=last_good is not None,
            )
            raise BackendError(self.name, category.value, str(exc)) from exc
        payload = CategoryPayload.from_bytes(category, data, source=path, decoded=decoded)
        with self._lock:
            self._payloads[category] = payload
            self._signatures[category] = signature
        if last_good is not None and last_good.digest != payload.digest:
            self._notify(category)
        return payload

    def _unreadable(
        self, category: MODEL_REFERENCE_CATEGORY, last_good: CategoryPayload | None, reason: str
    ) -> BackendError:
        _log.error(
            "catalog_unreadable",
            category=category.value,
            reason=reason,
            caller_keeps_last_good=last_good is not None,
        )
        return BackendError(self.name, category.value, reason)

    async def fetch_all(
        self, *, force_refresh: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
        """Every category with a readable file (unreadable ones are logged and left out)."""
        return await fetch_categories(self, MODEL_REFERENCE_CATEGORY, force_refresh=force_refresh)

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """When the category was last read from disk."""
        payload = self._payloads.get(category)
        return payload.fetched_at if payload else None

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Call `callback(category)` whenever a fetch finds a changed file."""
        self._callbacks.append(callback)

    def _notify(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        for callback in list(self._callbacks):
            try:
                callback(category)
            except Exception:
                _log.exception("invalidation_callback_failed", category=category.value)

    def supports_writes(self) -> bool:
        """True unless constructed read-only."""
        return self._writable

    async def write_category(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> CategoryPayload:
        """Validate `data` and replace the category's file atomically."""
        if not self._writable:
            raise BackendError(self.name, category.value, "this backend is read-only")
        validate_catalog_bytes(category, data, source="write")
        path = self.path_for(category)
        await anyio.to_thread.run_sync(atomic_write_bytes, path, data)
        payload = await self.fetch_category(category, force_refresh=True)
        if payload is None:
            raise BackendError(self.name, category.value, f"{path} vanished right after it was written")
        return payload

    async def aclose(self) -> None:
        """Nothing to release."""


class LocalReadOnlyBackend(FileSystemBackend):
    """Reads v2 files another process keeps current (offline mode). Never downloads, never writes."""

    name = "local-readonly"
    replicate_mode = ReplicateMode.REPLICA

    def __init__(self, base_path: str | Path) -> None:
        super().__init__(base_path, writable=False)
