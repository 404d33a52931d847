"""What every route shares: the snapshot source, the write service, per-digest views, popularity."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from horde_model_reference.bus.events import Snapshot
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import CategoryNotFoundError
from horde_model_reference.http._views import CatalogViews
from horde_model_reference.http.source import SnapshotSource
from horde_model_reference.integrations.popularity import PopularityService
from horde_model_reference.writes.settings import HttpSettings

if TYPE_CHECKING:
    from horde_model_reference.writes.service import WriteService

__all__ = ["ApiContext"]


@dataclass
class ApiContext:
    """State shared by the routes of one app."""

    source: SnapshotSource
    popularity: PopularityService
    replicate_mode: str = "PRIMARY"
    writes: WriteService | None = None
    """The running write service the write routes hand their commands to (None: no writes)."""
    limits: HttpSettings = field(default_factory=HttpSettings)
    """Connection limits (the app uses `body_timeout`; `serve_http` the rest)."""
    views: CatalogViews = field(default_factory=CatalogViews)
    started_at: float = field(default_factory=time.time)
    _headers: dict[str, tuple[str, int, dict[str, str]]] = field(default_factory=dict)

    def has_data(self, category: MODEL_REFERENCE_CATEGORY) -> bool:
        """Whether the source holds a snapshot of `category`."""
        try:
            return self.source.snapshot(category) is not None
        except CategoryNotFoundError:
            return False

    def cache_headers(self, snapshot: Snapshot) -> dict[str, str]:
        """ETag (the digest, quoted), revision and Cache-Control of a category's catalog."""
        entry = self._headers.get(snapshot.category)
        if entry is None or entry[0] != snapshot.digest or entry[1] != snapshot.revision:
            headers = {"etag": f'"{snapshot.digest}"', **self.revision_headers(snapshot)}
            entry = self._headers[snapshot.category] = (snapshot.digest, snapshot.revision, headers)
        return entry[2]

    @staticmethod
    def revision_headers(snapshot: Snapshot) -> dict[str, str]:
        """Revalidate on every use; say which revision this is."""
        return {
            "cache-control": "no-cache",
            "x-hmr-revision": str(snapshot.revision),
            "x-hmr-digest": snapshot.digest,
        }
