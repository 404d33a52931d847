"""Run the service with its write path in-process (tests, benchmarks).

async with running_write_service(base, nats_url=..., subject_prefix=..., settings=...) as (supervisor, writes):
    await writes.propose(key, category="clip", name="x", operation="create", record={...})
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.supervisor.config import ServiceConfig
from horde_model_reference.supervisor.service import Supervisor, run_service, sole_exception
from horde_model_reference.writes.service import WriteService
from horde_model_reference.writes.settings import WriteSettings

__all__ = ["running_write_service"]


@asynccontextmanager
async def running_write_service(
    base: Path,
    *,
    nats_url: str,
    subject_prefix: str,
    settings: WriteSettings,
    redis_url: str | None = None,
    redis_key_prefix: str = "hmr:v1",
    categories: tuple[str, ...] | None = None,
    poll_interval: float = 0.1,
    heartbeat_interval: float = 0.5,
) -> AsyncIterator[tuple[Supervisor, WriteService]]:
    """`hmr serve` on `base` (FileSystemBackend) with a `WriteService`, until the block exits."""
    config = ServiceConfig(
        data_dir=str(base / ".hmr"),
        nats_url=nats_url,
        redis_url=redis_url,
        subject_prefix=subject_prefix,
        redis_key_prefix=redis_key_prefix,
        heartbeat_interval=heartbeat_interval,
        poll_interval=poll_interval,
        categories=categories,
    )
    writes = WriteService(settings)
    try:
        async with anyio.create_task_group() as tg:
            supervisor: Supervisor = await tg.start(
                partial(
                    run_service,
                    config,
                    FileSystemBackend(base),
                    handle_signals=False,
                    components=[writes.run],
                )
            )
            try:
                yield supervisor, writes
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise sole_exception(group) from None
