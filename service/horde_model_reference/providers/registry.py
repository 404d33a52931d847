"""A thread-safe registry of providers, in registration order."""

from __future__ import annotations

import threading

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.logs import get_logger
from horde_model_reference.providers.base import ModelProvider
from horde_model_reference.source_consts import validate_provider_id

__all__ = ["ModelProviderRegistry"]

_log = get_logger(__name__)


class ModelProviderRegistry:
    """Providers by source id. Safe to use from any thread; order is registration order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, ModelProvider] = {}

    def register(self, provider: ModelProvider, *, replace: bool = False) -> None:
        """Add `provider` under its `source_id`.

        Raises `TypeError` for a non-provider and `ValueError` naming the id when it is empty,
        contains whitespace, is reserved, or is already registered (unless `replace`, which keeps
        the replaced provider's place in the order).
        """
        if not isinstance(provider, ModelProvider):
            raise TypeError(f"expected a ModelProvider, got {type(provider).__name__}")
        source_id = validate_provider_id(provider.source_id)
        with self._lock:
            if source_id in self._providers and not replace:
                raise ValueError(
                    f"A provider is already registered under source id {source_id!r}; "
                    "pass replace=True to replace it"
                )
            self._providers[source_id] = provider
        _log.info("provider_registered", source=source_id, replace=replace)

    def unregister(self, source_id: str) -> bool:
        """Remove the provider under `source_id`; False when there was none."""
        with self._lock:
            removed = self._providers.pop(source_id, None)
        if removed is None:
            return False
        _log.info("provider_unregistered", source=source_id)
        return True

    def get(self, source_id: str) -> ModelProvider | None:
        """The provider under `source_id`, or None."""
        with self._lock:
            return self._providers.get(source_id)

    def has(self, source_id: str) -> bool:
        """Whether a provider is registered under `source_id`."""
        with self._lock:
            return source_id in self._providers

    def source_ids(self) -> list[str]:
        """The registered ids, in registration order."""
        with self._lock:
            return list(self._providers)

    def all(self) -> list[ModelProvider]:
        """Every registered provider, in registration order (upstream's name)."""
        with self._lock:
            return list(self._providers.values())

    def clear(self) -> None:
        """Unregister every provider."""
        with self._lock:
            removed = list(self._providers)
            self._providers.clear()
        if removed:
            _log.info("providers_cleared", sources=removed)

    def providers_for(self, category: str | MODEL_REFERENCE_CATEGORY) -> list[ModelProvider]:
        """The providers serving `category`, in registration order."""
        cat = parse_category(category)
        return [provider for provider in self.all() if provider.serves_category(cat)]
