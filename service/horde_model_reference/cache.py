"""The consumer's decoded cache: one immutable `CategorySnapshot` per category.

Readers take the current snapshot with one dict lookup and never lock: a snapshot's records,
revision and digest are replaced together by swapping one reference, so a reader sees the old
state or the new one, never a mix. Writers (loads, bus events) serialise on a short lock that is
never held while user code runs; change callbacks run after it is released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any

import msgspec

from horde_model_reference.catalog import RecordIssue, catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord

__all__ = ["CategorySnapshot", "ChangeCallback", "ChangeNotice", "ReferenceCache"]

_log = get_logger(__name__)


class CategorySnapshot(msgspec.Struct, frozen=True, dict=True, kw_only=True):
    """One category as a consumer holds it. Never mutated: a change replaces the whole snapshot."""

    category: MODEL_REFERENCE_CATEGORY
    records: Mapping[str, GenericModelRecord]
    """Records by catalog key (read-only view)."""
    revision: int
    """The service revision; 0 when loaded from a source that has none (plain files, GitHub)."""
    raw: bytes | None
    """The canonical v2 bytes, when held (None after patching from a delta)."""
    loaded_at: float
    """Unix time this snapshot was installed."""
    issues: tuple[RecordIssue, ...] = ()
    """Records skipped while decoding."""
    given_digest: str | None = None
    """The digest as it arrived (bus events, Redis), or None: `digest` then hashes `raw`."""

    @cached_property
    def digest(self) -> str:
        """sha256 of the canonical v2 bytes this snapshot represents.

        The given one; otherwise computed from `raw` on first use, so a first load does not hash
        what nobody compares yet.
        """
        if self.given_digest is not None:
            return self.given_digest
        if self.raw is None:
            raise RuntimeError(f"snapshot of {self.category.value} holds neither its digest nor its bytes")
        return catalog_digest(self.raw)

    def records_dict(self) -> dict[str, GenericModelRecord]:
        """A new dict of the records (copied in C from the read-only view, not walked key by key)."""
        records = self.records
        return records.copy() if isinstance(records, MappingProxyType) else dict(records)


class ChangeNotice(msgspec.Struct, frozen=True):
    """What `on_change` callbacks receive."""

    category: MODEL_REFERENCE_CATEGORY
    old_revision: int | None
    new_revision: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    digest: str


ChangeCallback = Callable[[ChangeNotice], Awaitable[None] | None]


def diff_names(
    old: Mapping[str, GenericModelRecord], new: Mapping[str, GenericModelRecord]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Names added, removed and changed between two record mappings."""
    added = tuple(name for name in new if name not in old)
    removed = tuple(name for name in old if name not in new)
    changed = tuple(name for name, record in new.items() if name in old and old[name] != record)
    return added, removed, changed


class ReferenceCache:
    """Holds the snapshots, the negative cache and the change listeners."""

    def __init__(self, *, negative_ttl: float = 5.0) -> None:
        self.snapshots: dict[str, CategorySnapshot] = {}
        """Current snapshot per category (keyed by the category's string value)."""
        self.checked_at: dict[str, float] = {}
        """`time.monotonic()` of the last revalidation per category."""
        self._missing_until: dict[str, float] = {}
        self._negative_ttl = negative_ttl
        self._lock = threading.Lock()
        self._generation = 0
        self._committed_generation: dict[str, int] = {}
        self._callbacks: list[ChangeCallback] = []
        self.changed = threading.Condition()
        """Notified after every install (tests and `wait_for_revision` wait on it)."""

    def next_generation(self) -> int:
        """A ticket taken before a load starts; a load older than the last install is discarded."""
        with self._lock:
            self._generation += 1
            return self._generation

    def is_known_missing(self, category: str) -> bool:
        """Whether the category was recently found absent (negative cache)."""
        until = self._missing_until.get(category)
        return until is not None and time.monotonic() < until

    def was_found_missing(self, category: str) -> bool:
        """Whether the last load of the category found it absent (however long ago)."""
        return category in self._missing_until

    def mark_missing(self, category: str) -> None:
        """Remember briefly that the source has no such category."""
        self._missing_until[category] = time.monotonic() + self._negative_ttl
        self.checked_at[category] = time.monotonic()

    def forget(self, category: str) -> None:
        """Drop the negative cache entry and the revalidation time (the next read reloads)."""
        self._missing_until.pop(category, None)
        self.checked_at.pop(category, None)

    def add_callback(self, callback: ChangeCallback) -> None:
        """Register an `on_change` callback."""
        self._callbacks.append(callback)

    @property
    def callbacks(self) -> tuple[ChangeCallback, ...]:
        """The registered callbacks."""
        return tuple(self._callbacks)

    def install(
        self,
        category: MODEL_REFERENCE_CATEGORY,
        records: dict[str, GenericModelRecord] | MappingProxyType[str, GenericModelRecord],
        *,
        revision: int,
        digest: str | None,
        raw: bytes | None,
        issues: tuple[RecordIssue, ...] = (),
        generation: int | None = None,
        names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None,
        force: bool = False,
        notify: bool | None = True,
    ) -> ChangeNotice | None:
        """Install a new snapshot unless it is older than the one held.

        `digest` may be None when `raw` is given: it is then computed from `raw` when first needed.
        `force` installs even a lower revision (the service started over). `notify=False` builds no
        change notice; `notify=None` builds one only when callbacks are registered (checked after the
        swap, so a callback registered during a load still hears of it). The cache takes ownership of `records`
        (it is wrapped read-only, not copied): pass a mapping nobody else will change.

        Returns the change notice (to hand to callbacks, outside any lock), or None when nothing
        changed, the snapshot was stale, or no notice was wanted.
        """
        if digest is None and raw is None:
            raise ValueError(f"install of {category.value}: give the digest, the bytes, or both")
        key = category.value
        frozen = records if isinstance(records, MappingProxyType) else MappingProxyType(records)
        snapshot = CategorySnapshot(
            category=category,
            records=frozen,
            revision=revision,
            raw=raw,
            loaded_at=time.time(),
            issues=issues,
            given_digest=digest,
        )
        held = self.snapshots.get(key)
        if held is not None:
            _ = (
                held.digest,
                snapshot.digest,
            )  # hash before taking the lock (best effort: a racing install may still swap in another)
        with self._lock:
            current = self.snapshots.get(key)
            if generation is not None and generation < self._committed_generation.get(key, 0):
                return None
            if (
                not force
                and current is not None
                and revision
                and current.revision
                and revision < current.revision
            ):
                return None
            self.checked_at[key] = time.monotonic()
            self._missing_until.pop(key, None)
            same_bytes = current is not None and current.digest == snapshot.digest
            if same_bytes and current is not None and current.revision == revision:
                return None
            self.snapshots[key] = snapshot
            if generation is not None:
                self._committed_generation[key] = generation
        with self.changed:
            self.changed.notify_all()
        if same_bytes or not (self._callbacks if notify is None else notify):
            return None
        added, removed, changed = (
            names if names is not None else diff_names(current.records if current else {}, frozen)
        )
        return ChangeNotice(
            category,
            current.revision if current else None,
            revision,
            added,
            removed,
            changed,
            snapshot.digest,
        )

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds after an install, or `timeout` seconds pass."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


def log_callback_failure(callback: Any, notice: ChangeNotice) -> None:
    """Log a failing `on_change` callback with context (the sync goes on)."""
    _log.exception(
        "on_change_callback_failed",
        callback=getattr(callback, "__qualname__", repr(callback)),
        category=notice.category.value,
        revision=notice.new_revision,
    )
