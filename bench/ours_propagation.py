"""Probe: propagation of a change on the primary to N consumers over the bus (issue 5).

Runs under this project's interpreter, one shot (`run`), in a fresh process started by
bench_propagation.py. Everything it starts it stops again, on error too:

- a NATS server of its own (`EmbeddedNatsServer`, free port, store in the temp directory; its pid
  goes to `pidfile` so the harness can stop it should this process be killed);
- the service (`supervisor.testing.running_service` = `run_service` in a task group) on a
  `FileSystemBackend` over a temporary catalog: copies of the golden-v2 catalogs, with the first
  history-v2 image catalog as `stable_diffusion.json`; Redis when `redis_url` is given (its keys
  under a prefix of its own, deleted at the end);
- `processes` worker processes (`ours_propagation_fleet.py`), which hold the consumers.

For each N in `counts`: N consumers are spread over min(N, processes) workers; then, `writes`
times, in turn: a bare NATS publish to N subscribers in the same workers (the floor: publish ->
received by all N), and a write of the next history catalog (canonical bytes, written atomically
into the primary's base directory) followed by a poke of the service (write -> the new revision
readable in all N consumers). The history files are walked forwards and backwards, so every write
is a small real change. Then the service is restarted with deltas off (`delta_max_bytes=0`) for `writes_off` writes
to 100 consumers, to count the snapshot reads a change costs without deltas.

Operations: `run {...}` (see `run_all`), `cleanup {redis_url, key_prefix}` (delete the keys).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from _common import Worker
from _probe import serve
from horde_model_reference import MODEL_REFERENCE_CATEGORY, FileSystemBackend
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.embedded import EmbeddedNatsServer, free_port
from horde_model_reference.bus.events import CategoryChanged, Subjects, decode_event
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.supervisor import ServiceConfig, Supervisor
from horde_model_reference.supervisor.testing import running_service

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
IMAGE_FILE = "stable_diffusion.json"
WAIT_TIMEOUT = 10.0
PARK_S = 0.02


def _ping_pong(count: int) -> Iterator[int]:
    """1, 2, ..., count-1, count-2, ..., 0, 1, ...: each step moves to a neighbouring version."""
    forward = list(range(1, count))
    backward = list(range(count - 2, -1, -1))
    return itertools.cycle(forward + backward)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Bench:
    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.tmp = Path(args["tmp"])
        self.catalog = self.tmp / "catalog"
        self.history = [Path(p).read_bytes().strip() for p in args["history"]]
        self.versions = _ping_pong(len(self.history))
        self.workers: list[Worker] = []
        self.nats_url = ""
        self.subject_prefix = args["subject_prefix"]

    # -- setup ------------------------------------------------------------------------------

    def prepare_catalog(self) -> None:
        self.catalog.mkdir(parents=True)
        for path in sorted(Path(self.args["golden"]).glob("*.json")):
            shutil.copyfile(path, self.catalog / path.name)
        (self.catalog / IMAGE_FILE).write_bytes(self.history[0])

    def config(self, *, deltas: bool) -> ServiceConfig:
        extra = {} if deltas else {"delta_max_bytes": 0}
        return ServiceConfig(
            data_dir=str(self.tmp / "service"),
            nats_url=self.nats_url,
            redis_url=self.args["redis_url"],
            redis_key_prefix=self.args["key_prefix"],
            subject_prefix=self.subject_prefix,
            **extra,
        )

    async def call_all(self, calls: list[tuple[Worker, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Call several workers at once (each blocking call in its own thread)."""
        answers: list[dict[str, Any]] = [{} for _ in calls]

        async def one(index: int, worker: Worker, op: str, args: dict[str, Any]) -> None:
            answers[index] = await anyio.to_thread.run_sync(partial(worker.call, op, **args))

        async with anyio.create_task_group() as tg:
            for index, (worker, op, args) in enumerate(calls):
                tg.start_soon(one, index, worker, op, args)
        return answers

    # -- one phase: N consumers -------------------------------------------------------------

    async def phase(self, supervisor: Supervisor, count: int, writes: int, *, floor: bool) -> dict[str, Any]:
        shares = [s for s in _split(count, min(count, len(self.workers))) if s]
        used = self.workers[: len(shares)]
        common = {
            "nats_url": self.nats_url,
            "redis_url": self.args["redis_url"],
            "subject_prefix": self.subject_prefix,
            "key_prefix": self.args["key_prefix"],
        }
        floor_subject = f"{self.subject_prefix}-floor.{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        await self.call_all([(w, "start", {**common, "count": n}) for w, n in zip(used, shares, strict=True)])
        if floor:
            await self.call_all(
                [
                    (w, "floor_start", {"count": n, "nats_url": self.nats_url, "subject": floor_subject})
                    for w, n in zip(used, shares, strict=True)
                ]
            )
        startup_s = time.perf_counter() - started
        before = await self.settled_stats(used)
        publisher = await connect_nats(NatsOptions(url=self.nats_url, name="bench-floor-publisher"))
        published: dict[int, float] = {}  # revision -> the event's published_at (service side done)
        seen = anyio.Event()

        async def on_changed(msg: Any) -> None:
            nonlocal seen
            event = decode_event(msg.data)
            if isinstance(event, CategoryChanged):
                published[event.revision] = event.published_at
                seen.set()
                seen = anyio.Event()

        await publisher.subscribe(Subjects(self.subject_prefix).changed(IMAGE.value), cb=on_changed)
        await publisher.flush()
        service_s: list[float] = []
        propagation: list[float] = []
        floor_times: list[float] = []
        write_s: list[float] = []
        revisions: list[int] = []
        try:
            for index in range(writes):
                if floor:
                    message_id = f"m{index}"
                    floor_wait = [
                        (w, "floor_wait", {"id": message_id, "timeout": WAIT_TIMEOUT}) for w in used
                    ]
                    async with self.parked(floor_wait) as answers:
                        began = time.time()
                        await publisher.publish(floor_subject, message_id.encode())
                    floor_times.append(self._latest(answers, began, f"floor message {message_id}"))
                target = supervisor.revision(IMAGE) + 1
                data = self.history[next(self.versions)]
                wait = [(w, "wait", {"revision": target, "timeout": WAIT_TIMEOUT}) for w in used]
                async with self.parked(wait) as answers:
                    began = time.time()
                    await anyio.to_thread.run_sync(atomic_write_bytes, self.catalog / IMAGE_FILE, data)
                    write_s.append(time.time() - began)
                    supervisor.poke(IMAGE)
                propagation.append(self._latest(answers, began, f"revision {target}"))
                revisions.append(supervisor.revision(IMAGE))
                with anyio.move_on_after(1):
                    while target not in published:
                        await seen.wait()
                service_s.append(published.get(target, math.nan) - began)
                await anyio.sleep(0.05)
        finally:
            with anyio.move_on_after(2, shield=True):
                await publisher.close()
        after = await self.stats(used)
        await self.call_all([(w, "stop", {}) for w in used])
        if floor:
            await self.call_all([(w, "floor_stop", {}) for w in used])
        return {
            "consumers": count,
            "processes": len(used),
            "writes": writes,
            "propagation_s": propagation,
            "floor_s": floor_times,
            "write_s": write_s,
            "service_s": service_s,
            "revisions": revisions,
            "stats": {key: after.get(key, 0) - before.get(key, 0) for key in after},
            "startup_s": startup_s,
        }

    @contextlib.asynccontextmanager
    async def parked(
        self, calls: list[tuple[Worker, str, dict[str, Any]]]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Send the wait requests first (they park in the workers), run the body, then collect.

        The requests are in the workers before the clock starts, so handling them is not part of
        the measured window; the list is filled when the block exits.
        """
        answers: list[dict[str, Any]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._collect, calls, answers)
            await anyio.sleep(PARK_S)
            yield answers

    async def _collect(
        self, calls: list[tuple[Worker, str, dict[str, Any]]], into: list[dict[str, Any]]
    ) -> None:
        into.extend(await self.call_all(calls))

    async def settled_stats(self, workers: list[Worker]) -> dict[str, int]:
        """The counters once the consumers' start-up resyncs are over (unchanged for 0.3 s)."""
        previous = await self.stats(workers)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await anyio.sleep(0.3)
            current = await self.stats(workers)
            if current == previous:
                break
            previous = current
        return previous

    @staticmethod
    def _latest(answers: list[dict[str, Any]], began: float, what: str) -> float:
        missing = sum(a["missing"] for a in answers)
        if missing:
            raise RuntimeError(f"{what}: {missing} consumer(s) did not get it within {WAIT_TIMEOUT:g} s")
        return max(t for a in answers for t in a["times"]) - began

    async def stats(self, workers: list[Worker]) -> dict[str, int]:
        total: dict[str, int] = {}
        for answer in await self.call_all([(w, "stats", {}) for w in workers]):
            for key, value in answer["stats"].items():
                total[key] = total.get(key, 0) + value
        return total

    # -- the whole run ----------------------------------------------------------------------

    def start_nats(self, server: EmbeddedNatsServer) -> None:
        server.start()
        process = getattr(server, "_process", None)  # no public pid: recorded for the harness's cleanup
        if process is not None:
            Path(self.args["pidfile"]).write_text(str(process.pid))

    async def main(self) -> dict[str, Any]:
        server = EmbeddedNatsServer(self.tmp / "nats", port=free_port())
        await anyio.to_thread.run_sync(self.start_nats, server)
        self.nats_url = server.url
        try:
            self.prepare_catalog()
            self.workers = [
                Worker(sys.executable, "ours_propagation_fleet.py", ref=False)
                for _ in range(self.args["processes"])
            ]
            phases: dict[str, Any] = {}
            backend = FileSystemBackend(self.catalog)
            async with running_service(self.config(deltas=True), backend) as supervisor:
                for count in self.args["counts"]:
                    phases[f"deltas_on_{count}"] = await self.phase(
                        supervisor, count, self.args["writes"], floor=True
                    )
            async with running_service(
                self.config(deltas=False), FileSystemBackend(self.catalog)
            ) as supervisor:
                phases["deltas_off_100"] = await self.phase(
                    supervisor, 100, self.args["writes_off"], floor=False
                )
            return {"phases": phases, "redis": self.args["redis_url"] is not None, "nats_url": server.url}
        finally:
            with anyio.CancelScope(shield=True):
                for worker in self.workers:
                    await anyio.to_thread.run_sync(worker.close)
                await anyio.to_thread.run_sync(server.stop)


def cleanup(args: dict[str, Any]) -> dict[str, Any]:
    """Delete the benchmark's Redis keys (everything under its own prefix)."""
    if not args.get("redis_url"):
        return {"deleted": 0}
    import redis

    client = redis.Redis.from_url(args["redis_url"], socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{args['key_prefix']}:*", count=500))
        if keys:
            client.delete(*keys)
        return {"deleted": len(keys)}
    finally:
        client.close()


def run_all(args: dict[str, Any]) -> dict[str, Any]:
    """args: tmp, golden, history (paths), counts, writes, writes_off, processes, redis_url,
    key_prefix, subject_prefix, pidfile."""
    try:
        return anyio.run(Bench(args).main)
    finally:
        cleanup(args)


if __name__ == "__main__":
    serve({"run": run_all, "cleanup": cleanup})
