"""The public read API of the manager: sync and async variants of every read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from horde_model_reference._portal import run_sync
from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.cache import CategorySnapshot
from horde_model_reference.catalog import validate_catalog_bytes
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor, parse_category
from horde_model_reference.errors import (
    BackendError,
    CatalogDecodeError,
    CategoryNotFoundError,
    ModelNotFoundError,
)
from horde_model_reference.logs import get_logger
from horde_model_reference.manager.core import ManagerCore
from horde_model_reference.names import name_candidates, validate_model_name
from horde_model_reference.query.manager_api import ProviderQueryMixin, default_canonical_read
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.source_consts import HORDE_SOURCE_ID, SourceSelector

__all__ = ["ReadApi", "validate_model_name"]

_log = get_logger(__name__)
_NO_CATALOG = "not found or could not be parsed (no catalog is available)"
"""Why a category read failed, with upstream's phrase."""


class ReadApi(ProviderQueryMixin, ManagerCore):
    """Reads by category and by model name; `source=` selects canonical data, providers, or both."""

    # ----------------------------------------------------------------- reads

    @default_canonical_read
    def get_all_model_references_or_none(
        self, overwrite_existing: bool = False, *, safe_mode: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None]:
        """Every category: its records, or None when it has no catalog.

        Queries and multi-source reads take their canonical records from this method (and its
        async twin) when an instance or subclass overrides it, as upstream's do. `safe_mode` is
        accepted for upstream's callers: a category that fails to load is logged and reads None.
        """
        if overwrite_existing or not self.is_warm:
            self.warm_cache(force_refresh=overwrite_existing)
        return {category: self._held_records(category) for category in MODEL_REFERENCE_CATEGORY}

    def get_all_model_references(
        self, overwrite_existing: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]]:
        """Every category with its records; a canonical category without a catalog maps to `{}`.

        Categories managed elsewhere (LoRA, TI) appear only when they have records (as upstream).
        """
        return _present(self.get_all_model_references_or_none(overwrite_existing))

    @default_canonical_read
    async def get_all_model_references_or_none_async(
        self, overwrite_existing: bool = False, *, safe_mode: bool = False, httpx_client: object = None
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None]:
        """Async `get_all_model_references_or_none` (`httpx_client` is accepted as upstream's, unused)."""
        if overwrite_existing or not self.is_warm:
            await self.warm_cache_async(overwrite_existing)
        result: dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None] = {}
        for category in MODEL_REFERENCE_CATEGORY:
            snapshot = await self._snapshot_async(category)
            result[category] = snapshot.records_dict() if snapshot is not None else None
        return result

    def _held_records(self, category: MODEL_REFERENCE_CATEGORY) -> dict[str, GenericModelRecord] | None:
        snapshot = self._snapshot_sync(category)
        return snapshot.records_dict() if snapshot is not None else None

    async def get_all_model_references_async(
        self, overwrite_existing: bool = False, *, httpx_client: object = None
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]]:
        """Async `get_all_model_references`."""
        return _present(await self.get_all_model_references_or_none_async(overwrite_existing))

    def get_model_reference_or_none(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord] | None:
        """The category's records by name, or None when it has no catalog.

        Canonical records come through an overriding `get_all_model_references_or_none`, if any.
        """
        if source == HORDE_SOURCE_ID and self._overridden_all_sync() is None:
            snapshot = self._snapshot_sync(category, overwrite_existing)
            return snapshot.records_dict() if snapshot is not None else None
        merged = self._merged_records_sync(parse_category(category), source, force_refresh=overwrite_existing)
        return dict(merged) if merged is not None else None

    async def get_model_reference_or_none_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
        httpx_client: object = None,
    ) -> dict[str, GenericModelRecord] | None:
        """Async `get_model_reference_or_none` (through an overriding `..._async`, if any)."""
        if source == HORDE_SOURCE_ID and self._overridden_all_async() is None:
            snapshot = await self._snapshot_async(category, overwrite_existing)
            return snapshot.records_dict() if snapshot is not None else None
        merged = await self._merged_records_async(
            parse_category(category), source, force_refresh=overwrite_existing
        )
        return dict(merged) if merged is not None else None

    def get_model_reference(
        self,
        category: str | MODEL_REFERENCE_CATEGORY = MODEL_REFERENCE_CATEGORY.image_generation,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord]:
        """The category's records by name; `CategoryNotFoundError` when it has no catalog."""
        records = self.get_model_reference_or_none(category, overwrite_existing, source=source)
        if records is None:
            raise CategoryNotFoundError(parse_category(category).value, _NO_CATALOG)
        return records

    async def get_model_reference_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord]:
        """Async `get_model_reference`."""
        records = await self.get_model_reference_or_none_async(category, overwrite_existing, source=source)
        if records is None:
            raise CategoryNotFoundError(parse_category(category).value, _NO_CATALOG)
        return records

    def get_model_or_none(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord | None:
        """One model, or None when the model or its category is absent. The hot path."""
        if source == HORDE_SOURCE_ID:
            snapshot = self._cache.snapshots.get(category)
            if snapshot is None or overwrite_existing:
                snapshot = self._snapshot_sync(category, overwrite_existing)
                if snapshot is None:
                    validate_model_name(model_name)
                    return None
            elif self._bus is None:
                self._maybe_revalidate(snapshot.category.value)
            records: Mapping[str, GenericModelRecord] | None = snapshot.records
        else:
            records = self._merged_records_sync(parse_category(category), source)
        return self._find(records, category, model_name)

    async def get_model_or_none_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord | None:
        """Async `get_model_or_none`."""
        if source == HORDE_SOURCE_ID:
            snapshot = await self._snapshot_async(category, overwrite_existing)
            records = snapshot.records if snapshot is not None else None
        else:
            records = await self._merged_records_async(parse_category(category), source)
        return self._find(records, category, model_name)

    @staticmethod
    def _find(
        records: Mapping[str, GenericModelRecord] | None, category: str, model_name: str
    ) -> GenericModelRecord | None:
        record = records.get(model_name) if records is not None else None
        if record is not None:
            return record
        validate_model_name(model_name)
        if records is None:
            return None
        for candidate in name_candidates(str(category), model_name):
            record = records.get(candidate)
            if record is not None:
                return record
        return None

    def get_model(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord:
        """One model; `ModelNotFoundError` (a KeyError and RuntimeError) when absent."""
        record = self.get_model_or_none(category, model_name, overwrite_existing, source=source)
        if record is None:
            raise ModelNotFoundError(parse_category(category).value, model_name)
        return record

    async def get_model_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord:
        """Async `get_model`."""
        record = await self.get_model_or_none_async(category, model_name, overwrite_existing, source=source)
        if record is None:
            raise ModelNotFoundError(parse_category(category).value, model_name)
        return record

    def get_model_names_or_none(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str] | None:
        """The model names of a category, or None when it has no catalog."""
        snapshot = self._snapshot_sync(category, overwrite_existing)
        return list(snapshot.records) if snapshot is not None else None

    def get_model_names(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str]:
        """The model names of a category; `CategoryNotFoundError` when it has no catalog."""
        names = self.get_model_names_or_none(category, overwrite_existing)
        if names is None:
            raise CategoryNotFoundError(parse_category(category).value, _NO_CATALOG)
        return names

    async def get_model_names_or_none_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str] | None:
        """Async `get_model_names_or_none`."""
        snapshot = await self._snapshot_async(category, overwrite_existing)
        return list(snapshot.records) if snapshot is not None else None

    async def get_model_names_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str]:
        """Async `get_model_names`."""
        names = await self.get_model_names_or_none_async(category, overwrite_existing)
        if names is None:
            raise CategoryNotFoundError(parse_category(category).value, _NO_CATALOG)
        return names

    # ----------------------------------------------------------------- raw JSON

    def get_raw_model_reference_bytes(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> bytes | None:
        """The category's canonical v2 JSON bytes, undecoded, or None.

        The bytes of the snapshot held when there is one (no I/O). With `overwrite_existing` a held
        category is reloaded (and the new snapshot installed, so later reads agree); one not held
        is read from the backend without decoding any record.
        """
        cat = parse_category(category)
        key = cat.value
        if self._bus is not None or key in self._cache.snapshots:
            return _raw_of(self._snapshot_sync(cat, overwrite_existing and self._bus is None))
        if not overwrite_existing and self._absent(key):
            return None
        fetch = self._sync_fetch()
        if fetch is None:
            return run_sync(self._fetch_raw, cat, overwrite_existing)
        return self._raw_from(cat, fetch(cat, overwrite_existing))

    async def get_raw_model_reference_bytes_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> bytes | None:
        """Async `get_raw_model_reference_bytes`."""
        cat = parse_category(category)
        key = cat.value
        if self._bus is not None or key in self._cache.snapshots:
            return _raw_of(await self._snapshot_async(cat, overwrite_existing and self._bus is None))
        if not overwrite_existing and self._absent(key):
            return None
        return await self._fetch_raw(cat, overwrite_existing)

    async def _fetch_raw(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> bytes | None:
        """Read the category's bytes from the backend without decoding (nothing is installed)."""
        return self._raw_from(category, await self._backend.fetch_category(category, force_refresh=force))

    def _raw_from(self, category: MODEL_REFERENCE_CATEGORY, payload: CategoryPayload | None) -> bytes | None:
        """A fetched payload's bytes; an absent category is remembered as absent."""
        if payload is None:
            self._cache.mark_missing(category.value)
            return None
        return payload.data

    def get_raw_model_reference_json(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """The category's v2 JSON as plain builtins (no record decoding), or None."""
        return _json_of(self.get_raw_model_reference_bytes(category, overwrite_existing))

    async def get_raw_model_reference_json_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """Async `get_raw_model_reference_json`."""
        return _json_of(await self.get_raw_model_reference_bytes_async(category, overwrite_existing))

    def get_raw_model_json(
        self, category: str | MODEL_REFERENCE_CATEGORY, model_name: str, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """One model's v2 JSON as plain builtins (only that record is decoded), or None."""
        validate_model_name(model_name)
        cat = parse_category(category)
        return _record_json_of(cat, model_name, self.get_raw_model_reference_bytes(cat, overwrite_existing))

    async def get_raw_model_json_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, model_name: str, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """Async `get_raw_model_json`."""
        validate_model_name(model_name)
        cat = parse_category(category)
        data = await self.get_raw_model_reference_bytes_async(cat, overwrite_existing)
        return _record_json_of(cat, model_name, data)

    def model_reference_to_json_dict(
        self,
        category: str | MODEL_REFERENCE_CATEGORY | Mapping[str, GenericModelRecord],
        overwrite_existing: bool = False,
    ) -> dict[str, Any]:
        """The category's records as JSON-ready builtins; `CategoryNotFoundError` when absent.

        Upstream's form, a mapping of records (what `get_model_reference()` returns), is
        converted as given; None raises `ValueError` as upstream.
        """
        if category is None:
            raise ValueError("model_reference cannot be None")
        records = (
            category
            if isinstance(category, Mapping)
            else self.get_model_reference(category, overwrite_existing)
        )
        result: dict[str, Any] = msgspec.to_builtins(dict(records))
        return result

    async def model_reference_to_json_dict_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any]:
        """Async `model_reference_to_json_dict`."""
        records = await self.get_model_reference_async(category, overwrite_existing)
        result: dict[str, Any] = msgspec.to_builtins(records)
        return result

    def model_reference_to_json_dict_safe(
        self,
        category: str | MODEL_REFERENCE_CATEGORY | Mapping[str, GenericModelRecord],
        overwrite_existing: bool = False,
    ) -> dict[str, Any] | None:
        """As `model_reference_to_json_dict`, but None (logged) instead of raising."""
        try:
            return self.model_reference_to_json_dict(category, overwrite_existing)
        except _UNAVAILABLE as exc:
            _log_unavailable(category, exc)
            return None

    async def model_reference_to_json_dict_safe_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """Async `model_reference_to_json_dict_safe`."""
        try:
            return await self.model_reference_to_json_dict_async(category, overwrite_existing)
        except _UNAVAILABLE as exc:
            _log_unavailable(category, exc)
            return None


_UNAVAILABLE = (CategoryNotFoundError, BackendError, CatalogDecodeError)
"""What `model_reference_to_json_dict_safe` turns into None."""


def _present(
    everything: dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None],
) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]]:
    """Upstream's view of every category: a missing canonical category is `{}`, not absent."""
    result: dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]] = {}
    missing: list[str] = []
    for category, records in everything.items():
        if records is not None:
            result[category] = records
        elif not get_category_descriptor(category).managed_elsewhere:
            result[category] = {}
            missing.append(category.value)
    if missing:
        _log.warning("categories_missing", categories=missing)
    return result


def _log_unavailable(category: object, exc: Exception) -> None:
    _log.warning("model_reference_unavailable", category=str(category), error=str(exc))


def _raw_of(snapshot: CategorySnapshot | None) -> bytes | None:
    """A snapshot's canonical bytes (encoded from its records when patched from a delta)."""
    if snapshot is None:
        return None
    return snapshot.raw if snapshot.raw is not None else msgspec.json.encode(snapshot.records_dict())


def _json_of(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    result: dict[str, Any] = msgspec.json.decode(data)
    return result


def _record_json_of(
    category: MODEL_REFERENCE_CATEGORY, name: str, data: bytes | None
) -> dict[str, Any] | None:
    """The record `name` of a catalog's bytes as builtins (only that record decoded), or None."""
    if data is None:
        return None
    raw = validate_catalog_bytes(category, data)
    for candidate in name_candidates(category.value, name):
        if candidate in raw:
            result: dict[str, Any] = msgspec.json.decode(raw[candidate])
            return result
    return None
