"""propagation: write on the primary -> readable in N consumers over the bus (issue 5; goal p99 < 50 ms at N=100).

One fresh process (ours_propagation.py) runs a NATS server of its own, the service (`run_service`
on a `FileSystemBackend` over a temporary catalog) and, when the local Redis answers on
127.0.0.1:6379, Redis snapshots under a key prefix of its own (deleted at the end). N consumers
(N = 1, 10, 100) are spread over 4 worker processes (ours_propagation_fleet.py), each consumer a
`BusConsumer` + `ReferenceCache` (the manager's engine) with its own NATS connection. Successive
history-v2 image catalogs are written (atomically, canonical bytes) into the primary's base
directory and the service is poked; the figure is the time from the start of the write to the
new revision being readable in ALL N consumers, as p50 and p99 over the writes.

- baseline column: the floor, a bare NATS publish to N subscribers (one connection each) in the
  same worker processes, measured in the same run, interleaved with the writes (publish ->
  received by all N); the ratio floor / ours says how close to the transport we are;
- the reference's REPLICA re-reads only after its 60 s cache TTL: a change shows up 30 s after it
  on average and 60 s at worst. That row is COMPUTED from the TTL, not measured;
- fleet load: snapshot reads (Redis, or NATS request/reply without Redis) per change for 100
  consumers, deltas on against deltas off (the service restarted with `delta_max_bytes=0`).
  Goal: none at all with deltas on.

Bounded: about a minute; the probe has a hard timeout, and whatever it started (its process group,
the NATS server) is stopped here even if it had to be killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, ROOT, Context, ProbeError, Row, Skip, _probe_env, _result_of, _tail, log
from _fixtures import golden_dir, percentile

COUNTS = (1, 10, 100)
PROCESSES = 4
P99_LIMIT_NS = 50e6
REPLICA_TTL_S = 60.0
HARD_TIMEOUT_S = 240.0
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
NO_REDIS_ENV = "HMR_BENCH_NO_REDIS"  # set to run without Redis even when it answers


def _redis_url() -> str | None:
    """The local Redis if it answers PING, else None (snapshots then go over NATS only)."""
    if os.environ.get(NO_REDIS_ENV):
        return None
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    except OSError:
        pass
    return None


def _alive_nats(pid: int) -> bool:
    try:
        return "nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _stop_everything(proc: subprocess.Popen[str], pidfile: Path) -> None:
    """Stop the probe's process group, then its NATS server (own session) by its recorded pid."""
    if proc.poll() is None:  # timed out (or the harness is being interrupted): its whole group goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if _alive_nats(pid):
        log(f"propagation: stopping the benchmark's nats-server (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive_nats(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _run_probe(args: dict[str, Any], tmp: Path) -> dict[str, Any]:
    pidfile = Path(args["pidfile"])
    stderr_path = tmp / "probe.stderr"
    cmd = [sys.executable, str(BENCH_DIR / "ours_propagation.py"), json.dumps({"op": "run", **args})]
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_probe_env(ref=False),
            cwd=ROOT,
            start_new_session=True,  # its own process group: the workers can be stopped with it
        )
        try:
            stdout, _ = proc.communicate(timeout=HARD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ProbeError(f"ours_propagation.py timed out after {HARD_TIMEOUT_S:g} s") from exc
        finally:
            _stop_everything(proc, pidfile)
            if proc.returncode != 0:  # the probe may not have reached its own Redis cleanup
                cleanup = [sys.executable, str(BENCH_DIR / "ours_propagation.py")]
                cleanup.append(json.dumps({"op": "cleanup", **args}))
                subprocess.run(
                    cleanup, capture_output=True, timeout=60, cwd=ROOT, env=_probe_env(ref=False), check=False
                )
    answers = [line for line in stdout.splitlines() if line.startswith("@@hmr-bench ")]
    if proc.returncode != 0 or not answers:
        raise ProbeError(
            f"ours_propagation.py exited with {proc.returncode}:\n{_tail(stderr_path.read_text())}"
        )
    return _result_of("ours_propagation.py", answers[-1])


def _split_note(phase: dict[str, Any], q: float) -> str:
    """Where the time went at the q-th percentile: the write, the service, the fan-out."""
    write = percentile(phase["write_s"], q) * 1e3
    pairs = [(t, s) for t, s in zip(phase["propagation_s"], phase["service_s"], strict=True) if s == s]
    if not pairs:  # the service's events were not seen (NaN)
        return f"write+fsync p{q:g} {write:.1f} ms"
    service = percentile([s for _, s in pairs], q) * 1e3
    fan_out = percentile([t - s for t, s in pairs], q) * 1e3
    return f"parts p{q:g}: write+fsync {write:.1f}, write->published {service:.1f}, ->all readable {fan_out:.1f} ms"


def _ns(seconds: float) -> float:
    return seconds * 1e9


def run(ctx: Context) -> list[Row]:
    history = sorted((ctx.data_dir / "history-v2" / "image").glob("*.json"))
    if len(history) < 2:
        raise Skip(f"history-v2 image catalogs not found under {ctx.data_dir}")
    redis_url = _redis_url()
    writes = 6 if ctx.quick else 30
    with tempfile.TemporaryDirectory(prefix="hmr-bench-propagation-") as name:
        tmp = Path(name)
        args = {
            "tmp": str(tmp),
            "golden": str(golden_dir(ctx)),
            "history": [str(p) for p in history],
            "counts": list(COUNTS),
            "writes": writes,
            "writes_off": 4 if ctx.quick else 10,
            "processes": PROCESSES,
            "redis_url": redis_url,
            "key_prefix": f"hmr-bench:{uuid.uuid4().hex[:12]}",
            "subject_prefix": f"hmrbench{uuid.uuid4().hex[:8]}",
            "pidfile": str(tmp / "nats.pid"),
        }
        log(
            f"propagation: N = {', '.join(map(str, COUNTS))} consumers, {writes} writes each, redis: {redis_url}"
        )
        began = time.perf_counter()
        result = _run_probe(args, tmp)
        elapsed = time.perf_counter() - began
    log(f"propagation: done in {elapsed:.1f} s")
    phases = result["phases"]
    snapshot_source = "from JetStream (then Redis, then the service)"
    rows: list[Row] = []
    for count in COUNTS:
        phase = phases[f"deltas_on_{count}"]
        ours, floor = phase["propagation_s"], phase["floor_s"]
        where = f"{count} consumer{'s' if count > 1 else ''}, {phase['processes']} proc"
        details = {
            key: phase[key]
            for key in ("propagation_s", "floor_s", "write_s", "service_s", "stats", "startup_s", "revisions")
        }
        for q in (50, 99):
            rows.append(
                Row(
                    f"write -> readable, {where}: p{q}",
                    _ns(percentile(ours, q)),
                    _ns(percentile(floor, q)),
                    "ns",
                    limit=P99_LIMIT_NS if (q == 99 and count == 100) else None,
                    note=f"baseline: bare NATS publish to {count} (floor); {len(ours)} writes; "
                    + _split_note(phase, q),
                    details=details if q == 50 else {},
                )
            )
    off = phases["deltas_off_100"]
    on = phases["deltas_on_100"]
    floor_100 = on["floor_s"]
    for q in (50, 99):
        rows.append(
            Row(
                f"write -> readable, 100 consumers, deltas off: p{q}",
                _ns(percentile(off["propagation_s"], q)),
                _ns(percentile(floor_100, q)),
                "ns",
                note=f"every consumer fetches the snapshot {snapshot_source}; {len(off['propagation_s'])} writes",
                details={"propagation_s": off["propagation_s"], "stats": off["stats"]} if q == 50 else {},
            )
        )
    p50_100 = percentile(on["propagation_s"], 50)
    p99_100 = percentile(on["propagation_s"], 99)
    rows.append(
        Row(
            "vs reference REPLICA (60 s TTL), 100 consumers",
            _ns(p50_100),
            _ns(REPLICA_TTL_S / 2),
            "ns",
            note=f"COMPUTED, not measured: the reference sees a change after its {REPLICA_TTL_S:g} s TTL, "
            f"30 s on average (ours p50); at worst 60 s vs ours p99 {p99_100 * 1e3:.1f} ms = "
            f"{REPLICA_TTL_S / p99_100:,.0f}x",
        )
    )

    def reads_per_change(phase: dict[str, Any]) -> tuple[float, dict[str, float]]:
        stats, changes = phase["stats"], len(phase["propagation_s"])
        kinds = ("snapshots_jetstream", "snapshots_redis", "snapshots_nats", "patched")
        split = {k: stats.get(k, 0) / changes for k in kinds}
        return split["snapshots_jetstream"] + split["snapshots_redis"] + split["snapshots_nats"], split

    on_reads, on_split = reads_per_change(on)
    off_reads, off_split = reads_per_change(off)
    rows.append(
        Row(
            "snapshot reads per change, 100 consumers, deltas on",
            on_reads,
            off_reads,
            "reads",
            limit=0.0,
            note=f"baseline: deltas off (delta_max_bytes=0): {off_split['snapshots_jetstream']:.0f} JetStream "
            f"+ {off_split['snapshots_redis']:.0f} Redis + {off_split['snapshots_nats']:.0f} NATS reads per change; deltas on: "
            f"{on_split['patched']:.0f} patched per change",
            details={"deltas_on": on_split, "deltas_off": off_split, "redis": redis_url},
        )
    )
    rows[0].details["elapsed_s"] = round(elapsed, 1)
    return rows
