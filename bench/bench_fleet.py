"""fleet: K consumers resynchronise at once after a NATS restart (issue 15; goal K=5,000 in < 10 s, no timeouts).

Everything is this benchmark's own: a nats-server (JetStream on, store in a temporary directory),
`hmr serve` on a copy of the golden catalogs (its own process, so its CPU time is its own), and
4 worker processes (ours_fleet.py) holding K lightweight consumers, one NATS connection each.
Per K (1,000, 3,000, 5,000) the NATS server is stopped and started again three times; what the
consumers hold decides what they must download:

- `unchanged`: they hold every category's current revision and digest: bytes needed 0;
- `one changed`: they hold an older controlnet (the change they missed while disconnected):
  bytes needed K x its size;
- `today` (the baseline, same K, same missed change): the path before issue 15, every category
  requested from the service over request/reply, no digest, no deadline, no jitter.

Figures: time from the server being back to the last consumer converged, requests that timed out,
bytes served against bytes needed, and the service's CPU seconds over the resync. A run that has
not converged after `CAP_S` is cut there (its time shows as `> CAP_S`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, ROOT, Context, ProbeError, Row, _probe_env, log
from _fixtures import golden_dir, percentile

COUNTS = (1000, 3000, 5000)
QUICK_COUNTS = (200,)
WORKERS = 4
CAP_S = 30.0
JITTER_S = 2.0
TIMEOUT_S = 2.0
CONVERGE_LIMIT_NS = 10e9
EDIT_P50_LIMIT_NS = 50e6
CHANGED = "controlnet"
PREFIX = "hmr.v1"
MARK = "@@hmr-bench "


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_port(port: int, up: bool, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) != up:
        if time.monotonic() > deadline:
            raise ProbeError(f"{what} did not {'open' if up else 'close'} port {port} within {timeout:g} s")
        time.sleep(0.01)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Nats:
    def __init__(self, tmp: Path) -> None:
        from horde_model_reference.bus.embedded import find_nats_server

        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        config = tmp / "nats.conf"
        config.write_text(
            f'listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: "{tmp / "js"}" }}\nmax_connections: 20000\n'
        )
        self.args = [str(find_nats_server()), "-c", str(config)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, True, "nats-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid) if self.proc is not None else 0.0


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "ours_fleet.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**_probe_env(ref=False), "HORDE_MODEL_REFERENCE_LOG_LEVEL": "ERROR"},
            cwd=ROOT,
        )

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise ProbeError(f"ours_fleet.py exited with {self.proc.poll()}")
            if line.startswith(MARK):
                answer: dict[str, Any] = json.loads(line[len(MARK) :])
                if "error" in answer:
                    raise ProbeError(f"ours_fleet.py failed:\n{answer['error']}")
                return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _all(workers: list[Worker], op: str, **args: Any) -> list[dict[str, Any]]:
    for worker in workers:
        worker.send(op, **args)
    return [worker.receive() for worker in workers]


def _service_states(nats_url: str) -> dict[str, tuple[int, str, int]]:
    """Per category (revision, digest, size) as the service stored it in JetStream."""
    import anyio
    import nats

    from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore
    from horde_model_reference.errors import BackendError

    async def read() -> dict[str, tuple[int, str, int]]:
        for _ in range(200):
            nc = await nats.connect(nats_url)
            try:
                index = await JetStreamSnapshotStore(nc, subject_prefix=PREFIX).get_index()
            except BackendError:  # the service has not created its bucket yet
                index = None
            finally:
                await nc.close()
            if index is not None and len(index.categories) >= 10:
                return {n: (m.revision, m.digest, m.size) for n, m in index.categories.items()}
            await anyio.sleep(0.1)
        raise ProbeError("the service did not store its snapshots in JetStream within 20 s")

    return anyio.run(read)


def _hand_edits(nats_url: str, base: Path, writes: int) -> list[float]:
    """Seconds from the start of each atomic write of a catalog file to a consumer holding it."""
    import anyio

    from horde_model_reference.bus.consumer import BusConsumer, BusOptions
    from horde_model_reference.cache import ChangeNotice, ReferenceCache
    from horde_model_reference.fileio import atomic_write_bytes

    async def measure() -> list[float]:
        cache = ReferenceCache()

        async def dispatch(notice: ChangeNotice) -> None:
            del notice

        consumer = BusConsumer(cache, BusOptions(nats_url=nats_url, subject_prefix=PREFIX), dispatch=dispatch)
        path = base / "controlnet.json"
        original = path.read_bytes()
        seconds: list[float] = []
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            for index in range(writes):
                held = cache.snapshots[CHANGED].revision
                data = original.replace(b'"description": "', f'"description": "edit {index} '.encode(), 1)
                began = time.perf_counter()
                atomic_write_bytes(path, data)
                with anyio.fail_after(10):
                    # polled: the figure is when the cache holds it, before any notice is dispatched
                    while cache.snapshots[CHANGED].revision == held:  # noqa: ASYNC110
                        await anyio.sleep(0.0005)
                seconds.append(time.perf_counter() - began)
                await anyio.sleep(0.2 + 0.3 * (index % 3) / 2)  # off the poll's rhythm
            held = cache.snapshots[CHANGED].revision
            atomic_write_bytes(path, original)
            with anyio.fail_after(10):
                while cache.snapshots[CHANGED].revision == held:  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
        return seconds

    return anyio.run(measure)


def _restart_and_measure(
    nats: Nats, service: subprocess.Popen[bytes], workers: list[Worker], *, mode: str, held: dict[str, Any]
) -> dict[str, Any]:
    _all(workers, "seed", held=held)
    nats.stop()
    _all(workers, "arm", mode=mode, jitter=JITTER_S if mode == "ours" else 0.0, deadline=time.time() + 600)
    cpu_before = _cpu_seconds(service.pid)
    nats.start()
    back = time.time()
    nats_cpu_before = nats.cpu()
    answers = _all(workers, "wait", deadline=back + CAP_S)
    cpu = _cpu_seconds(service.pid) - cpu_before
    done = sum(a["done"] for a in answers)
    count = sum(a["count"] for a in answers)
    last = max((a["last_done"] for a in answers if a["last_done"] is not None), default=None)
    failures: dict[str, int] = {}
    for answer in answers:
        for key, value in answer["failures"].items():
            failures[key] = failures.get(key, 0) + value
    stats: dict[str, int] = {}
    for answer in answers:
        for key, value in answer["stats"].items():
            stats[key] = stats.get(key, 0) + value
    converged = done == count and last is not None
    return {
        "mode": mode,
        "consumers": count,
        "converged": done,
        "seconds": (last - back) if converged and last is not None else None,
        "timeouts": failures.get("timeout", 0),
        "failures": failures,
        "requests": sum(a["requests"] for a in answers),
        "bytes": sum(a["bytes"] for a in answers),
        "service_cpu_s": round(cpu, 3),
        "nats_cpu_s": round(nats.cpu() - nats_cpu_before, 3),
        "stats": stats,
    }


def run(ctx: Context) -> list[Row]:
    counts = QUICK_COUNTS if ctx.quick else COUNTS
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hmr-bench-fleet-") as name:
        tmp = Path(name)
        base = tmp / "primary"
        shutil.copytree(golden_dir(ctx), base)
        nats = Nats(tmp)
        nats.start()
        hmr = Path(sys.executable).parent / "hmr"
        env = {**_probe_env(ref=False), "HORDE_MODEL_REFERENCE_LOG_LEVEL": "ERROR"}
        service = subprocess.Popen(
            [str(hmr), "serve", "--base-path", str(base), "--nats-url", nats.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        workers: list[Worker] = []
        try:
            _service_states(nats.url)
            edits = _hand_edits(nats.url, base, 6 if ctx.quick else 30)
            rows.append(
                Row(
                    "hand edit of a catalog file -> held by a consumer: p50",
                    percentile(edits, 50) * 1e9,
                    0.5e9,
                    "ns",
                    limit=EDIT_P50_LIMIT_NS,
                    note=f"{len(edits)} atomic writes, file events (watchfiles); p99 "
                    f"{percentile(edits, 99) * 1e3:.1f} ms; baseline: the 0.5 s poll interval (what a poll costs at worst)",
                    details={"seconds": edits},
                )
            )
            states = _service_states(nats.url)  # after the edits: what a consumer holds now
            current = {n: [rev, digest] for n, (rev, digest, _) in states.items()}
            stale = {**current, CHANGED: [states[CHANGED][0] - 1, "0" * 64]}
            changed_size = states[CHANGED][2]
            total_size = sum(size for _, _, size in states.values())
            log(
                f"fleet: K = {', '.join(map(str, counts))}; catalogs {total_size} bytes, {CHANGED} {changed_size}"
            )
            workers = [Worker() for _ in range(WORKERS)]
            for count in counts:
                began = time.perf_counter()
                per = [count // WORKERS + (1 if i < count % WORKERS else 0) for i in range(WORKERS)]
                for worker, share in zip(workers, per, strict=True):
                    worker.send(
                        "connect", url=nats.url, count=share, subject_prefix=PREFIX, timeout=TIMEOUT_S
                    )
                for worker in workers:
                    worker.receive()
                log(f"fleet: {count} consumers connected in {time.perf_counter() - began:.1f} s")
                phases = {
                    "unchanged": _restart_and_measure(nats, service, workers, mode="ours", held=current),
                    "one_changed": _restart_and_measure(nats, service, workers, mode="ours", held=stale),
                    "today": _restart_and_measure(nats, service, workers, mode="today", held=stale),
                }
                _all(workers, "close")
                for worker in workers:
                    worker.stop()
                workers = [Worker() for _ in range(WORKERS)] if count != counts[-1] else []
                log(
                    f"fleet: K={count}: "
                    + json.dumps({k: (v["seconds"], v["timeouts"]) for k, v in phases.items()})
                )
                rows.extend(_rows(count, phases, changed_size))
        finally:
            for worker in workers:
                worker.stop()
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.kill()
            nats.stop()
    return rows


def _seconds_text(phase: dict[str, Any]) -> str:
    return f"{phase['seconds']:.2f} s" if phase["seconds"] is not None else f"> {CAP_S:g} s"


def _seconds_ns(phase: dict[str, Any]) -> float:
    return (phase["seconds"] if phase["seconds"] is not None else CAP_S) * 1e9


def _rows(count: int, phases: dict[str, dict[str, Any]], changed_size: int) -> list[Row]:
    ours, unchanged, today = phases["one_changed"], phases["unchanged"], phases["today"]
    needed = count * changed_size

    def cut(phase: dict[str, Any]) -> str:
        if phase["seconds"] is None:
            return f" (NOT converged: {phase['converged']}/{phase['consumers']} after {CAP_S:g} s)"
        return ""

    details = {"phases": phases, "bytes_needed": needed}
    return [
        Row(
            f"K={count}: converge after a NATS restart, one category changed",
            _seconds_ns(ours),
            _seconds_ns(today),
            "ns",
            limit=CONVERGE_LIMIT_NS if count == 5000 else None,
            note=f"baseline: today's path (request/reply to the service){cut(today)}; ours{cut(ours)}; "
            f"timeouts ours {ours['timeouts']} / today {today['timeouts']}; service CPU ours "
            f"{ours['service_cpu_s']:.2f} s / today {today['service_cpu_s']:.2f} s",
            details=details,
        ),
        Row(
            f"K={count}: requests timed out",
            float(ours["timeouts"]),
            float(today["timeouts"]),
            "requests",
            limit=0.0,
            note=f"baseline: today's path; ours sent {ours['requests']} fetches, today {today['requests']} requests",
        ),
        Row(
            f"K={count}: bytes served, one category changed",
            float(ours["bytes"]),
            float(today["bytes"]),
            "bytes",
            limit=float(needed),
            note=f"needed {needed} ({count} x {CHANGED}); baseline: today's path",
        ),
        Row(
            f"K={count}: bytes served, nothing changed",
            float(unchanged["bytes"]),
            None,
            "bytes",
            limit=0.0,
            note=f"converged in {_seconds_text(unchanged)}"
            f"{cut(unchanged)}, {unchanged['timeouts']} timeouts, service CPU {unchanged['service_cpu_s']:.2f} s",
        ),
    ]
