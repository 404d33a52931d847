"""What the HTTP face reads: the in-memory snapshots the bus publishes.

`SnapshotSource` is the read interface; `Supervisor` (hmr serve) implements it. A read never
does I/O: the app answers from whatever snapshot the source holds at that moment.
`StaticSnapshotSource` is a fixed set of catalogs (a directory of v2 files, or bytes), for tests,
benchmarks and serving a catalog without the bus.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from horde_model_reference.bus.events import CategoryHealth, HealthReply, Snapshot
from horde_model_reference.catalog import catalog_digest, decode_catalog
from horde_model_reference.categories import (
    MODEL_REFERENCE_CATEGORY,
    canonical_categories,
    get_category_descriptor,
    parse_category,
)
from horde_model_reference.errors import CategoryNotFoundError

__all__ = ["CATEGORY_STATES", "SnapshotSource", "StaticSnapshotSource", "category_state"]

CATEGORY_STATES = ("loading", "loaded", "absent", "failed")


def category_state(health: CategoryHealth) -> str:
    """`health.state`; for a source that does not report it, loaded, failed or absent guessed from
    the digest and the last error."""
    if health.state is not None:
        return health.state
    if health.digest is not None:
        return "loaded"
    return "failed" if health.last_error is not None else "absent"


@runtime_checkable
class SnapshotSource(Protocol):
    """Read access to the current snapshot of each category (no I/O, called on the event loop)."""

    @property
    def categories(self) -> tuple[MODEL_REFERENCE_CATEGORY, ...]:
        """The categories served (some may have no snapshot)."""
        ...

    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> Snapshot | None:
        """The category's snapshot; None when it has none. May raise `CategoryNotFoundError`
        (and `UnknownCategoryError`) for a category it does not serve."""
        ...

    def status(self) -> HealthReply:
        """Per-category revision, digest, record count, last error, actor restarts; connectivity."""
        ...


class StaticSnapshotSource:
    """Fixed catalogs held in memory; `replace()` installs new bytes as the next revision."""

    def __init__(
        self,
        catalogs: Mapping[str | MODEL_REFERENCE_CATEGORY, bytes],
        *,
        categories: Iterable[str | MODEL_REFERENCE_CATEGORY] | None = None,
        service_id: str | None = None,
    ) -> None:
        served = canonical_categories() if categories is None else (parse_category(c) for c in categories)
        self._categories = tuple(dict.fromkeys(served))
        self.service_id = service_id or uuid.uuid4().hex
        self.started_at = time.time()
        self._snapshots: dict[MODEL_REFERENCE_CATEGORY, Snapshot] = {}
        self._records: dict[MODEL_REFERENCE_CATEGORY, int] = {}
        for category, data in catalogs.items():
            self.replace(category, data)

    @classmethod
    def from_directory(
        cls, path: str | Path, *, categories: Iterable[str | MODEL_REFERENCE_CATEGORY] | None = None
    ) -> StaticSnapshotSource:
        """The v2 files found in `path` (upstream names: `stable_diffusion.json`, ...)."""
        folder = Path(path)
        served = (
            canonical_categories() if categories is None else tuple(parse_category(c) for c in categories)
        )
        catalogs: dict[str | MODEL_REFERENCE_CATEGORY, bytes] = {}
        for category in served:
            file = folder / get_category_descriptor(category).v2_filename
            if file.is_file():
                catalogs[category] = file.read_bytes()
        return cls(catalogs, categories=served)

    @property
    def categories(self) -> tuple[MODEL_REFERENCE_CATEGORY, ...]:
        """The categories served."""
        return self._categories

    def replace(self, category: str | MODEL_REFERENCE_CATEGORY, data: bytes) -> Snapshot:
        """Install `data` (v2 JSON, decoded to check it) as the category's next revision."""
        cat = self._served(category)
        canonical = data.strip()
        decoded = decode_catalog(cat, canonical)
        previous = self._snapshots.get(cat)
        snapshot = Snapshot(
            category=cat.value,
            revision=(previous.revision if previous else 0) + 1,
            digest=catalog_digest(canonical),
            data=msgspec.Raw(canonical),
            service_id=self.service_id,
        )
        self._snapshots[cat] = snapshot
        self._records[cat] = len(decoded.records)
        return snapshot

    def remove(self, category: str | MODEL_REFERENCE_CATEGORY) -> None:
        """Forget the category's snapshot (it is then absent)."""
        cat = self._served(category)
        self._snapshots.pop(cat, None)
        self._records.pop(cat, None)

    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> Snapshot | None:
        """The category's snapshot, or None."""
        return self._snapshots.get(self._served(category))

    def status(self) -> HealthReply:
        """Health in the supervisor's shape (no bus: NATS never connected, no Redis)."""
        now = time.time()
        categories = {}
        for category in self._categories:
            snapshot = self._snapshots.get(category)
            categories[category.value] = CategoryHealth(
                revision=snapshot.revision if snapshot else 0,
                digest=snapshot.digest if snapshot else None,
                record_count=self._records.get(category, 0),
                state="loaded" if snapshot else "absent",
            )
        return HealthReply(
            service_id=self.service_id,
            started_at=self.started_at,
            uptime=now - self.started_at,
            sent_at=now,
            categories=categories,
            actor_restarts={category.value: 0 for category in self._categories},
            nats_connected=False,
            redis_connected=None,
        )

    def _served(self, category: str | MODEL_REFERENCE_CATEGORY) -> MODEL_REFERENCE_CATEGORY:
        cat = parse_category(category)
        if cat not in self._categories:
            raise CategoryNotFoundError(cat.value, "this server does not serve it")
        return cat
