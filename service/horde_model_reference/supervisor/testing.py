"""Helpers for tests and benchmarks that run the service in-process.

async with running_service(config, backend) as supervisor:
    ...  # the service is ready: every actor made its first pass
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread

from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, ModelReferenceBackend
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.errors import BackendError
from horde_model_reference.supervisor.config import ServiceConfig
from horde_model_reference.supervisor.service import Supervisor, run_service, sole_exception

__all__ = ["RawDirectoryBackend", "running_service"]


@asynccontextmanager
async def running_service(config: ServiceConfig, backend: ModelReferenceBackend) -> AsyncIterator[Supervisor]:
    """Run the service in a task group (no signal handling); stop it on exit.

    Errors come out unwrapped from the task group's single-member exception groups.
    """
    try:
        async with anyio.create_task_group() as tg:
            supervisor: Supervisor = await tg.start(
                partial(run_service, handle_signals=False), config, backend
            )
            try:
                yield supervisor
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise sole_exception(group) from None


class RawDirectoryBackend:
    """Reads `<base_path>/<v2 file>` as is, with no validation and no caching (a bare test source).

    Unlike the filesystem backend it hands corrupt bytes to the service, which must reject them.
    """

    name = "filesystem-raw"

    def __init__(self, base_path: str | Path) -> None:
        self.base_path = Path(base_path)
        self._fetched: dict[MODEL_REFERENCE_CATEGORY, float] = {}

    def path_for(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        """The v2 file of `category`."""
        return self.base_path / get_category_descriptor(category).v2_filename

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """The file's bytes, or None when there is no file."""
        path = self.path_for(category)
        try:
            data = await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendError(self.name, category.value, f"cannot read {path}: {exc}") from exc
        payload = CategoryPayload.from_bytes(category, data, source=str(path))
        self._fetched[category] = payload.fetched_at
        return payload

    async def fetch_all(
        self, *, force_refresh: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
        """Every category with a file."""
        result = {}
        for category in MODEL_REFERENCE_CATEGORY:
            payload = await self.fetch_category(category)
            if payload is not None:
                result[category] = payload
        return result

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """When `category` was last read."""
        return self._fetched.get(category)

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Never calls back (it does not watch)."""

    def supports_writes(self) -> bool:
        """Read-only."""
        return False

    async def write_category(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> CategoryPayload:
        """Not supported."""
        raise BackendError(self.name, category.value, "read-only test backend")

    async def aclose(self) -> None:
        """Nothing to release."""
