"""Helpers for bus tests: a real service on a temporary catalog, and in-process or child consumers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from horde_model_reference.backends.filesystem import FileSystemBackend, atomic_write_bytes
from horde_model_reference.bus.connection import NatsAuth
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import ChangeNotice, ReferenceCache
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.supervisor import ServiceConfig, Supervisor, run_service

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
REPO_ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_service(
    base: Path,
    *,
    nats_url: str,
    subject_prefix: str,
    redis_url: str | None = None,
    redis_key_prefix: str = "hmr:v1",
    heartbeat_interval: float = 0.3,
    nats_auth: NatsAuth | None = None,
    categories: tuple[str, ...] | None = None,
) -> AsyncIterator[Supervisor]:
    """`hmr serve` on `base` (a FileSystemBackend), until the block exits."""
    config = ServiceConfig(
        data_dir=str(base / ".hmr"),
        nats_url=nats_url,
        redis_url=redis_url,
        subject_prefix=subject_prefix,
        redis_key_prefix=redis_key_prefix,
        heartbeat_interval=heartbeat_interval,
        poll_interval=0.1,
        nats_auth=nats_auth or NatsAuth(),
        categories=categories,
    )
    async with anyio.create_task_group() as tg:
        supervisor = await tg.start(
            partial(run_service, config, FileSystemBackend(base), handle_signals=False)
        )
        yield supervisor
        tg.cancel_scope.cancel()


@dataclass
class Consumer:
    """An in-process consumer: the manager's cache and bus engine, without the singleton."""

    cache: ReferenceCache
    engine: BusConsumer
    notices: list[ChangeNotice] = field(default_factory=list)

    def revision(self, category: MODEL_REFERENCE_CATEGORY = IMAGE) -> int | None:
        snapshot = self.cache.snapshots.get(category.value)
        return snapshot.revision if snapshot else None

    def digest(self, category: MODEL_REFERENCE_CATEGORY = IMAGE) -> str | None:
        snapshot = self.cache.snapshots.get(category.value)
        return snapshot.digest if snapshot else None

    async def wait_revision(
        self, revision: int, category: MODEL_REFERENCE_CATEGORY = IMAGE, timeout: float = 60
    ) -> None:
        with anyio.fail_after(timeout):
            while (self.revision(category) or 0) < revision:
                await anyio.sleep(0.005)


@asynccontextmanager
async def consumer(
    nats_url: str,
    subject_prefix: str,
    *,
    redis_url: str | None = None,
    redis_key_prefix: str = "hmr:v1",
    engine_class: type[BusConsumer] = BusConsumer,
    auth: NatsAuth | None = None,
    ready_timeout: float = 10.0,
) -> AsyncIterator[Consumer]:
    """A consumer following the bus until the block exits (`engine_class`: a BusConsumer variant)."""
    cache = ReferenceCache()
    options = BusOptions(
        nats_url=nats_url,
        subject_prefix=subject_prefix,
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
        retry_interval=0.2,
        auth=auth or NatsAuth(),
        ready_timeout=ready_timeout,
    )
    handle: Consumer

    async def dispatch(notice: ChangeNotice) -> None:
        handle.notices.append(notice)

    engine = engine_class(cache, options, dispatch=dispatch)
    handle = Consumer(cache, engine)
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        yield handle
        tg.cancel_scope.cancel()


def canonical_digest(data: bytes) -> str:
    """The digest the service computes for catalog bytes (over their canonical, stripped form)."""
    return catalog_digest(data.strip())


def write_catalog(base: Path, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> None:
    """Replace a catalog file in the primary's base path (atomically, as a writer would)."""
    atomic_write_bytes(base / get_category_descriptor(category).v2_filename, data)


class ChildConsumer:
    """A ModelReferenceManager with bus sync in another process (tests/consumer_process.py)."""

    def __init__(
        self, nats_url: str, subject_prefix: str, workdir: Path, redis_url: str | None = None
    ) -> None:
        env = dict(os.environ)
        env["HORDE_MODEL_REFERENCE_NATS__SUBJECT_PREFIX"] = subject_prefix
        env["HORDE_MODEL_REFERENCE_LOG_LEVEL"] = "WARNING"
        if redis_url:
            env["HORDE_MODEL_REFERENCE_REDIS__URL"] = redis_url
        args = [sys.executable, str(REPO_ROOT / "tests" / "consumer_process.py"), nats_url, str(workdir)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
        )
        self.ask("ping", timeout=30)

    def ask(self, command: str, timeout: float = 10) -> dict[str, Any]:
        """Send one command line, read one JSON line back."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise AssertionError(f"child consumer did not answer {command!r}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit")
            except (AssertionError, BrokenPipeError, ValueError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
