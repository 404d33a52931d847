"""A provider serving a fixed, in-memory set of records."""

from __future__ import annotations

from collections.abc import Mapping, Set
from types import MappingProxyType
from typing import Any

from horde_model_reference.catalog import decode_record
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.providers.base import ModelProvider
from horde_model_reference.records import GenericModelRecord, record_type_for
from horde_model_reference.source_consts import validate_provider_id

__all__ = ["StaticModelProvider"]


class StaticModelProvider(ModelProvider):
    """Serves the records it was built with; `force_refresh` changes nothing.

    Records must be instances of each category's record type (`TypeError` naming the record
    otherwise). `from_raw` builds them from plain dicts.
    """

    def __init__(
        self,
        source_id: str,
        records_by_category: Mapping[str | MODEL_REFERENCE_CATEGORY, Mapping[str, GenericModelRecord]],
        *,
        cache_ttl_seconds: float | None = None,
        fetch_timeout_seconds: float | None = None,
    ) -> None:
        self._source_id = validate_provider_id(source_id)
        self._records: dict[MODEL_REFERENCE_CATEGORY, Mapping[str, GenericModelRecord]] = {}
        for raw_category, records in records_by_category.items():
            category = parse_category(raw_category)
            self._records[category] = MappingProxyType(_checked(category, records))
        self._cache_ttl = cache_ttl_seconds
        self._fetch_timeout = fetch_timeout_seconds

    @classmethod
    def from_raw(
        cls,
        source_id: str,
        raw_by_category: Mapping[str | MODEL_REFERENCE_CATEGORY, Mapping[str, Mapping[str, Any]]],
        *,
        cache_ttl_seconds: float | None = None,
        fetch_timeout_seconds: float | None = None,
    ) -> StaticModelProvider:
        """Build records from plain dicts (v2 JSON field names), validating each one.

        Each dict is decoded as its category's record type (`GenericModelRecord` for a category
        without one); the mapping key becomes the record's `name`. Raises `RecordDecodeError`
        naming the record and the field on the first invalid dict.
        """
        records_by_category: dict[str | MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]] = {}
        for raw_category, raw_records in raw_by_category.items():
            category = parse_category(raw_category)
            records_by_category[category] = {
                name: decode_record(category, {**fields, "name": name})
                for name, fields in raw_records.items()
            }
        return cls(
            source_id,
            records_by_category,
            cache_ttl_seconds=cache_ttl_seconds,
            fetch_timeout_seconds=fetch_timeout_seconds,
        )

    @property
    def source_id(self) -> str:
        """The id given at construction."""
        return self._source_id

    def provided_categories(self) -> Set[MODEL_REFERENCE_CATEGORY]:
        """The categories given at construction."""
        return self._records.keys()

    def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        """A read-only view of the stored records of `category`, or None."""
        return self._records.get(parse_category(category))

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        """As `fetch_category` (in memory, so no worker thread)."""
        return self.fetch_category(category)

    def cache_ttl_seconds(self) -> float | None:
        """The hint given at construction."""
        return self._cache_ttl

    def fetch_timeout_seconds(self) -> float | None:
        """The timeout given at construction."""
        return self._fetch_timeout


def _checked(
    category: MODEL_REFERENCE_CATEGORY, records: Mapping[str, GenericModelRecord]
) -> dict[str, GenericModelRecord]:
    record_type = record_type_for(category)
    for name, record in records.items():
        if not isinstance(name, str) or not isinstance(record, record_type):
            raise TypeError(
                f"record {name!r} for category {category.value!r} must be a {record_type.__name__} "
                f"keyed by its name, got {type(record).__name__}"
            )
    return dict(records)
