"""The provider interface: a read-only third-party source of records for some categories."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Set
from functools import partial

import anyio.to_thread

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.source_consts import validate_provider_id

__all__ = ["ModelProvider"]


class ModelProvider(ABC):
    """A read-only source of records, selected in reads by its `source_id`.

    Implement `source_id`, `provided_categories` and `fetch_category`; override
    `fetch_category_async` when a native async path exists. Records are returned already built
    (instances of the category's record type, see `records.record_type_for`) and are not
    re-validated by readers; only their shape is checked. Raising, hanging past the timeout or
    returning the wrong shape costs only this provider's contribution to a read.
    """

    @property
    @abstractmethod
    def source_id(self) -> str:
        """The stable id readers select this provider by (not `"horde"` or `"any"`)."""

    @abstractmethod
    def provided_categories(self) -> Set[MODEL_REFERENCE_CATEGORY]:
        """The categories this provider serves."""

    @abstractmethod
    def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        """Records of `category` keyed by model name, or None when there are none right now.

        `force_refresh` asks the provider to bypass its own cache.
        """

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        """`fetch_category` for async readers; by default the sync one in a worker thread.

        The thread is abandoned (not waited for) when the read times out or is cancelled, so a
        hanging sync provider costs the reader its timeout only, though the thread itself runs on.
        """
        call = partial(self.fetch_category, category, force_refresh=force_refresh)
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    def serves_category(self, category: str | MODEL_REFERENCE_CATEGORY) -> bool:
        """Whether `category` is one of `provided_categories()`."""
        return parse_category(category) in self.provided_categories()

    def supports_writes(self) -> bool:
        """Always False: providers are read-only."""
        return False

    def cache_ttl_seconds(self) -> float | None:
        """How long this provider's data may be reused (advisory); None when it has no opinion."""
        return None

    def fetch_timeout_seconds(self) -> float | None:
        """This provider's read timeout; None uses the reader's default."""
        return None

    def validate_source_id(self) -> None:
        """Raise `ValueError` naming `source_id` when it is empty, blank or reserved."""
        validate_provider_id(self.source_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source_id={self.source_id!r})"
