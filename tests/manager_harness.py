"""Helpers for manager tests: a real FileSystemBackend that counts its fetches, and a manager over it."""

from __future__ import annotations

import threading
from pathlib import Path

from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.manager import ModelReferenceManager
from horde_model_reference.manager.prefetch import PrefetchStrategy


class CountingBackend(FileSystemBackend):
    """A real FileSystemBackend that counts how often each category is fetched (sync or async)."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(base_path)
        self.calls: dict[str, int] = {}
        self.threads: list[int] = []
        """The thread of each fetch, in order."""

    def fetch_category_sync(
        self, category: MODEL_REFERENCE_CATEGORY, force_refresh: bool = False
    ) -> CategoryPayload | None:
        self.calls[category.value] = self.calls.get(category.value, 0) + 1
        self.threads.append(threading.get_ident())
        return super().fetch_category_sync(category, force_refresh)

    @property
    def total(self) -> int:
        """Fetches of every category so far."""
        return sum(self.calls.values())


def counting_manager(base: Path, strategy: PrefetchStrategy = PrefetchStrategy.LAZY) -> ModelReferenceManager:
    """The process's manager, over a `CountingBackend` on `base`."""
    return ModelReferenceManager(backend=CountingBackend(base), prefetch_strategy=strategy)


def backend_of(manager: ModelReferenceManager) -> CountingBackend:
    """The manager's `CountingBackend`."""
    backend = manager.backend
    assert isinstance(backend, CountingBackend)
    return backend
