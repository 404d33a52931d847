"""Probe worker for `fleet`: many lightweight consumers resynchronising at once after a NATS restart.

Started by `bench_fleet.py` (several of them); speaks the `_probe` worker protocol (`--serve`).
A lightweight consumer is what `BusConsumer` does on a reconnect, without decoding or installing:
its own NATS connection (so the server sees the herd of reconnects), the revision and digest it
holds per category, and a `SnapshotSources` (the real chain: JetStream index and bodies, then the
service's request/reply, each fetch naming the digest held). On its connection's reconnect it
waits a random time up to `jitter`, reads the index once and checks every category; a failed
fetch is retried with the consumer's backoff (1 s doubling, with jitter) until the deadline.

`today` mode is the path before issue 15, the baseline: no JetStream, no digest, no deadline, no
jitter; every category requested from the service in turn, with the same retries.

Operations: `connect {url, count, subject_prefix, timeout}`, `seed {held}`, `arm {mode, jitter,
deadline}`, `wait {deadline}`, `close`. The process exits when its stdin closes.
"""

from __future__ import annotations

import faulthandler
import os
import random
import time
from functools import partial
from typing import Any

import anyio
import msgspec
from anyio.from_thread import BlockingPortal, start_blocking_portal

from _probe import serve
from horde_model_reference.bus.connection import NatsClient, NatsOptions, connect_nats
from horde_model_reference.bus.events import Snapshot, SnapshotRequest, Subjects, decode_event
from horde_model_reference.bus.jetstream_sources import SnapshotSources
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.errors import BackendError

_portal_cm = start_blocking_portal(backend="asyncio")
_portal: BlockingPortal = _portal_cm.__enter__()
_RETRY = 1.0
_RETRY_MAX = 30.0


class Herd:
    """The consumers of this process and what their last resync cost."""

    def __init__(self) -> None:
        self.clients: list[NatsClient] = []
        self.sources: list[SnapshotSources] = []
        self.held: list[dict[str, tuple[int, str]]] = []
        self.stats: dict[str, int] = {}
        self.subjects = Subjects()
        self.timeout = 2.0
        self.mode = "ours"
        self.jitter = 1.0
        self.deadline = 0.0
        self.armed = False
        self.done: list[float | None] = []
        self.failures: dict[str, int] = {}
        self.requests = 0
        self.bytes = 0
        self.tg: Any = None
        self.finished = anyio.Event()

    def reset_counters(self) -> None:
        self.stats.clear()
        self.stats.update(
            {
                k: 0
                for k in (
                    "snapshots_jetstream",
                    "snapshots_redis",
                    "snapshots_nats",
                    "not_modified",
                    "snapshot_bytes",
                )
            }
        )
        self.failures = {"timeout": 0, "no_responders": 0, "other": 0}
        self.requests = 0
        self.bytes = 0
        self.done = [None] * len(self.clients)
        self.finished = anyio.Event()

    async def connect(self, url: str, count: int, prefix: str, timeout: float, *, task_status: Any) -> None:
        self.subjects = Subjects(prefix)
        self.timeout = timeout
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for index in range(count):
                nc = await connect_nats(
                    NatsOptions(url=url, name=f"fleet-{index}", ping_interval=60.0),
                    on_gap=partial(self._on_gap, index),
                )
                self.clients.append(nc)
                sources = SnapshotSources(
                    self.subjects,
                    request_timeout=timeout,
                    jetstream=True,
                    redis=None,
                    breaker_seconds=30.0,
                    stats=self.stats,
                )
                sources.attach(nc)
                self.sources.append(sources)
                self.held.append({})
            self.reset_counters()
            task_status.started()
            await anyio.sleep_forever()

    def _on_gap(self, index: int, reason: str) -> None:
        if reason == "reconnected" and self.armed and self.tg is not None:
            self.tg.start_soon(self._resync, index)

    async def _resync(self, index: int) -> None:
        try:
            if self.mode == "ours":
                await anyio.sleep(random.uniform(0, self.jitter))
                await self._resync_ours(index)
            else:
                await self._resync_today(index)
        except TimeoutError:
            return  # the deadline passed: counted as not converged
        self.done[index] = time.time()
        if all(done is not None for done in self.done):
            self.finished.set()

    async def _with_retries(self, fetch: Any) -> None:
        attempt = 0
        while True:
            if time.time() > self.deadline:
                raise TimeoutError
            try:
                await fetch()
                return
            except BackendError as exc:
                text = str(exc)
                lowered = text.lower()
                timed_out = "timeout" in lowered or "timed out" in lowered
                key = "timeout" if timed_out else "no_responders" if "no service" in text else "other"
                self.failures[key] += 1
            delay = min(_RETRY * 2**attempt, _RETRY_MAX) * (1 + random.random() / 2)
            attempt += 1
            await anyio.sleep(delay)

    async def _resync_ours(self, index: int) -> None:
        sources, held = self.sources[index], self.held[index]
        await sources.begin_pass()
        try:
            for category in list(held):

                async def fetch(category: str = category) -> None:
                    self.requests += 1
                    found = await sources.fetch(category, min_revision=0, held=held[category])
                    if found is not None and found.snapshot is not None:
                        snapshot = found.snapshot
                        if catalog_digest(snapshot.data) != snapshot.digest:
                            raise BackendError("bench", category, "digest mismatch")
                        held[category] = (snapshot.revision, snapshot.digest)

                await self._with_retries(fetch)
        finally:
            sources.end_pass()

    async def _resync_today(self, index: int) -> None:
        nc, held = self.clients[index], self.held[index]
        request = msgspec.json.encode(SnapshotRequest(min_revision=0))
        for category in list(held):

            async def fetch(category: str = category) -> None:
                self.requests += 1
                try:
                    reply = await nc.request(self.subjects.snapshot(category), request, timeout=self.timeout)
                except Exception as exc:
                    name = type(exc).__name__
                    raise BackendError(
                        "bench", category, "no service" if "NoResponders" in name else name
                    ) from exc
                self.bytes += len(reply.data)
                answer = decode_event(reply.data)
                if not isinstance(answer, Snapshot):
                    raise BackendError("bench", category, f"unexpected {type(answer).__name__}")
                if catalog_digest(bytes(answer.data)) != answer.digest:
                    raise BackendError("bench", category, "digest mismatch")
                held[category] = (answer.revision, answer.digest)

            await self._with_retries(fetch)

    async def wait(self, deadline: float) -> dict[str, Any]:
        with anyio.move_on_after(max(0.0, deadline - time.time())):
            await self.finished.wait()
        self.armed = False
        done = [d for d in self.done if d is not None]
        return {
            "done": len(done),
            "count": len(self.done),
            "last_done": max(done) if done else None,
            "failures": dict(self.failures),
            "requests": self.requests,
            "bytes": self.bytes + self.stats["snapshot_bytes"],
            "stats": dict(self.stats),
        }

    async def close(self) -> None:
        for nc in self.clients:
            with anyio.move_on_after(2):
                await nc.close()


_herd = Herd()


def connect(args: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    _portal.start_task(_herd.connect, args["url"], args["count"], args["subject_prefix"], args["timeout"])
    return {"connected": len(_herd.clients), "seconds": time.perf_counter() - began}


def seed(args: dict[str, Any]) -> dict[str, Any]:
    held = {name: (int(rev), str(digest)) for name, (rev, digest) in args["held"].items()}
    for each in _herd.held:
        each.clear()
        each.update(held)
    return {"seeded": len(_herd.held)}


def arm(args: dict[str, Any]) -> dict[str, Any]:
    _herd.mode = args["mode"]
    _herd.jitter = float(args["jitter"])
    _herd.deadline = float(args["deadline"])
    _portal.call(_herd.reset_counters)
    _herd.armed = True
    return {"armed": len(_herd.clients)}


def wait(args: dict[str, Any]) -> dict[str, Any]:
    return _portal.call(_herd.wait, float(args["deadline"]))


def close(args: dict[str, Any]) -> dict[str, Any]:
    _portal.call(_herd.close)
    return {"closed": True}


if __name__ == "__main__":
    faulthandler.enable()
    serve({"connect": connect, "seed": seed, "arm": arm, "wait": wait, "close": close})
    os._exit(0)  # stdin closed: the portal's loop thread holds nothing worth a clean stop
