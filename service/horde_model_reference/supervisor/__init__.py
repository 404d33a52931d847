"""`hmr serve`: one fetcher actor per category, heartbeat, snapshot and health responders.

    config = ServiceConfig(data_dir=str(base_path / ".hmr"), nats_url=None, redis_url=None)
    await run_service(config, FileSystemBackend(base_path))   # until SIGTERM/SIGINT, then returns

or, to get the running `Supervisor` (poke, refresh, status):

    async with anyio.create_task_group() as tg:
        supervisor = await tg.start(run_service, config, backend)

Startup failures (NATS unreachable, data directory locked or corrupt) raise `ModelReferenceError`
subclasses; a caller's own task group wraps them: `sole_exception(group)` unwraps.
"""

from horde_model_reference.supervisor.config import (
    FILESYSTEM_POLL_INTERVAL,
    REMOTE_POLL_INTERVAL,
    ServiceConfig,
    default_poll_interval,
)
from horde_model_reference.supervisor.service import Supervisor, run_service, sole_exception
from horde_model_reference.supervisor.state import StateFileError

__all__ = [
    "FILESYSTEM_POLL_INTERVAL",
    "REMOTE_POLL_INTERVAL",
    "ServiceConfig",
    "StateFileError",
    "Supervisor",
    "default_poll_interval",
    "run_service",
    "sole_exception",
]
