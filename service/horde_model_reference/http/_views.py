"""Values derived from a category's snapshot, computed once per digest and kept until it changes.

Only the latest digest of each (category, view) is kept. Cheap views (the body as `bytes`, the
records as compact raw JSON, the decoded records) are computed inline on first use; the legacy
projection runs in a worker thread, once, however many requests ask for it at the same time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec

from horde_model_reference.bus.events import Snapshot
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.legacy import to_legacy_stable_diffusion, to_legacy_text_db
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.writes.validation import raw_record_digest

__all__ = ["LEGACY_VIEWS", "CatalogViews"]

_T = TypeVar("_T")
_RAW_RECORDS = msgspec.json.Decoder(dict[str, msgspec.Raw])

LEGACY_VIEWS: dict[MODEL_REFERENCE_CATEGORY, Callable[[Mapping[str, GenericModelRecord]], bytes]] = {
    MODEL_REFERENCE_CATEGORY.image_generation: to_legacy_stable_diffusion,
    MODEL_REFERENCE_CATEGORY.text_generation: to_legacy_text_db,
}
"""The categories with a legacy projection (the v1 JSON file) and the function that makes it."""


class CatalogViews:
    """The per-digest cache. Methods are called on the event loop."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[str, Any]] = {}
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    def _get(self, snapshot: Snapshot, view: str, make: Callable[[Snapshot], _T]) -> _T:
        key = (snapshot.category, view)
        entry = self._cache.get(key)
        if entry is not None and entry[0] == snapshot.digest:
            value: _T = entry[1]
            return value
        value = make(snapshot)
        self._cache[key] = (snapshot.digest, value)
        return value

    def body(self, snapshot: Snapshot) -> bytes:
        """The snapshot's v2 JSON bytes, exactly as held (no re-encoding)."""
        return self._get(snapshot, "body", _body)

    def raw_records(self, snapshot: Snapshot) -> dict[str, bytes]:
        """Each record's JSON by catalog key, whitespace removed (values untouched)."""
        return self._get(snapshot, "raw", _raw_records)

    def records(self, snapshot: Snapshot) -> Mapping[str, GenericModelRecord]:
        """The decoded records by catalog key (bad records skipped, as the service does)."""
        return self._get(snapshot, "records", _records)

    def keys_by_id(self, snapshot: Snapshot) -> dict[int, str]:
        """The catalog key of each decoded record, by `id(record)` (a record's `name` may differ)."""
        return self._get(snapshot, "keys", self._keys_by_id)

    def _keys_by_id(self, snapshot: Snapshot) -> dict[int, str]:
        return {id(record): key for key, record in self.records(snapshot).items()}

    def record_etag(self, snapshot: Snapshot, name: str) -> str:
        """A strong ETag of one record's JSON."""
        tags: dict[str, str] = self._get(snapshot, "record_etags", _empty)
        tag = tags.get(name)
        if tag is None:
            raw = self.raw_records(snapshot)[name]
            tag = tags[name] = '"' + hashlib.sha256(raw).hexdigest() + '"'
        return tag

    def record_digest(self, snapshot: Snapshot, name: str) -> str:
        """The record's digest as the write path knows it (`base_digest` of an update or delete)."""
        digests: dict[str, str] = self._get(snapshot, "record_digests", _empty)
        digest = digests.get(name)
        if digest is None:
            category = MODEL_REFERENCE_CATEGORY(snapshot.category)
            digest = digests[name] = raw_record_digest(category, self.raw_records(snapshot)[name])
        return digest

    async def legacy(self, snapshot: Snapshot) -> bytes:
        """The legacy JSON file of the category (image `stable_diffusion.json`, text `db.json`)."""
        key = (snapshot.category, "legacy")
        entry = self._cache.get(key)
        if entry is not None and entry[0] == snapshot.digest:
            cached: bytes = entry[1]
            return cached
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            entry = self._cache.get(key)
            if entry is not None and entry[0] == snapshot.digest:
                done: bytes = entry[1]
                return done
            project = LEGACY_VIEWS[MODEL_REFERENCE_CATEGORY(snapshot.category)]
            records = self.records(snapshot)
            data = await anyio.to_thread.run_sync(project, records)
            self._cache[key] = (snapshot.digest, data)
            return data


def _body(snapshot: Snapshot) -> bytes:
    return bytes(snapshot.data)


def _raw_records(snapshot: Snapshot) -> dict[str, bytes]:
    raw = _RAW_RECORDS.decode(snapshot.data)
    return {name: msgspec.json.format(bytes(value), indent=-1) for name, value in raw.items()}


def _records(snapshot: Snapshot) -> Mapping[str, GenericModelRecord]:
    return decode_catalog(snapshot.category, bytes(snapshot.data)).records


def _empty(snapshot: Snapshot) -> dict[str, str]:
    return {}
