"""http: requests/s and p99 of the HTTP face against the reference's FastAPI service (issue 7; goal >= 5x).

Both servers run in their own process, one uvicorn worker each, on the same golden-v2 data, at
the same time; a load generator in a third process (wrk when installed, else the small asyncio
client below, `HMR_BENCH_HTTP_LOADGEN=python` to force it) keeps `CONNECTIONS` keep-alive
connections busy on loopback for a few seconds per round. Rounds alternate who goes first; the
figure is the median over rounds, the ratio the median of the per-round ratios.

- ours: `serve_http(StaticSnapshotSource.from_directory(golden-v2))` (Starlette on uvicorn, with
  whatever uvicorn finds in this project's venv: asyncio and h11 here);
- baseline: `horde_model_reference.service.app:app` of horde-model-reference 8.6.2 with its
  `service` extra (fastapi[standard]: uvicorn with uvloop and httptools), PRIMARY on a copy of
  the same files (ref_http_server.py), in a Python 3.12 venv `.venv-ref-http` built once (it
  needs more than the `.venv-ref` of the other benchmarks; it holds a `.gitignore` of its own).

Cases: the image catalog (200), the same with `If-None-Match` carrying our ETag (ours answers
304; the reference has no ETags and answers 200: what a revalidating client costs on each), and
a search. Usage as a script: `bench_http.py serve-ours <golden dir> <port>` runs our server,
`bench_http.py load <url> <seconds> <connections> <headers json>` one load-generator process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import REF_VERSION, RESULTS_DIR, ROOT, Context, Row, find_ref_python, log

GOAL = 5.0
CONNECTIONS = 8
IMAGE = "/api/model_references/v2/image_generation"
SEARCH = f"{IMAGE}/search?nsfw=false&baseline=stable_diffusion_xl&sort_by=name&limit=20"
REF_HTTP_VENV = ROOT / ".venv-ref-http"
REF_HTTP_REQUIREMENT = f"horde-model-reference[service]=={REF_VERSION}"
_STAMP = REF_HTTP_VENV / ".hmr-bench-ref-http.json"


@dataclass
class Measured:
    """One load-generator run against one server."""

    rps: float
    p99_s: float
    requests: int
    statuses: dict[str, int]


def run(ctx: Context) -> list[Row]:
    golden = ctx.golden("stable_diffusion.json").parent
    rounds, seconds = (1, 1) if ctx.quick else (3, 2)
    loadgen = (
        "wrk" if shutil.which("wrk") and os.environ.get("HMR_BENCH_HTTP_LOADGEN") != "python" else "python"
    )
    ref_python, ref_note = _ref_http_python(ctx)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hmr-bench-http-")))
        servers = {"ours": stack.enter_context(_server_ours(golden))}
        if ref_python is not None:
            servers["ref"] = stack.enter_context(_server_ref(ref_python, golden, work))
        etag = _get(servers["ours"] + IMAGE)[1].get("etag", "")
        cases = [
            ("GET v2/image_generation (200)", IMAGE, {}),
            ("GET v2/image_generation (If-None-Match)", IMAGE, {"If-None-Match": etag}),
            ("GET v2/image_generation/search", SEARCH, {}),
        ]
        statuses = {
            side: [_get(url + path, headers)[0] for _, path, headers in cases]
            for side, url in servers.items()
        }
        if statuses["ours"] != [200, 304, 200]:
            raise RuntimeError(f"our server answered {statuses['ours']}, expected [200, 304, 200]")
        results: dict[str, dict[str, list[Measured]]] = {
            name: {side: [] for side in servers} for name, _, _ in cases
        }
        for number in range(rounds):
            log(
                f"http: round {number + 1}/{rounds} ({loadgen}, {CONNECTIONS} connections, {seconds} s per run)"
            )
            for name, path, headers in cases:
                order = list(servers) if number % 2 == 0 else list(reversed(servers))
                for side in order:
                    results[name][side].append(_measure(loadgen, servers[side] + path, headers, seconds))
    rows: list[Row] = []
    for name, _, _ in cases:
        rows += _rows(name, results[name], loadgen, statuses, ref_note)
    return rows


def _rows(
    name: str,
    measured: dict[str, list[Measured]],
    loadgen: str,
    statuses: dict[str, list[int]],
    ref_note: str,
) -> list[Row]:
    ours = measured["ours"]
    ref = measured.get("ref")
    details: dict[str, Any] = {
        "loadgen": loadgen,
        "connections": CONNECTIONS,
        "ours": [vars(m) for m in ours],
        "ref": [vars(m) for m in ref] if ref else None,
        "first_statuses": statuses,
    }
    ours_rps = statistics.median(m.rps for m in ours)
    ours_p99 = statistics.median(m.p99_s for m in ours)
    if not ref:
        return [
            Row(
                f"{name} req/s",
                ours_rps,
                None,
                "req/s",
                goal=GOAL,
                better="higher",
                note=ref_note,
                details=details,
            ),
            Row(f"{name} p99", ours_p99 * 1e9, None, "ns", note=ref_note),
        ]
    ratios = sorted(o.rps / r.rps for o, r in zip(ours, ref, strict=True) if r.rps)
    ref_p99 = statistics.median(m.p99_s for m in ref)
    note = f"{loadgen} -c{CONNECTIONS}; rounds {ratios[0]:.1f}-{ratios[-1]:.1f}x" if ratios else loadgen
    return [
        Row(
            f"{name} req/s",
            ours_rps,
            statistics.median(m.rps for m in ref),
            "req/s",
            goal=GOAL,
            better="higher",
            note=note,
            details={**details, "round_ratios": ratios},
            paired_ratio=statistics.median(ratios) if ratios else None,
        ),
        Row(f"{name} p99", ours_p99 * 1e9, ref_p99 * 1e9, "ns", note="latency under the same load"),
    ]


# -- servers ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


@contextlib.contextmanager
def _process(name: str, cmd: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    """Start a server process and yield its URL once `/api/heartbeat` answers."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    stderr.seek(0)
                    raise RuntimeError(
                        f"{name} server exited with {proc.returncode}:\n{stderr.read()[-3000:]}"
                    )
                with contextlib.suppress(OSError):
                    if _get(url + "/api/heartbeat")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} server did not answer on {url} within 120 s")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _server_ours(golden: Path) -> contextlib.AbstractContextManager[str]:
    port = _free_port()
    env = {**os.environ, "HORDE_MODEL_REFERENCE_LOG_LEVEL": "WARNING"}
    return _process("our", [sys.executable, __file__, "serve-ours", str(golden), str(port)], env, port)


def _server_ref(python: Path, golden: Path, work: Path) -> contextlib.AbstractContextManager[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    script = str(Path(__file__).with_name("ref_http_server.py"))
    return _process(
        "the reference's", [str(python), script, str(golden), str(work / "ref"), str(port)], env, port
    )


def _ref_http_python(ctx: Context) -> tuple[Path | None, str]:
    """The reference's HTTP venv (built once: it needs the `service` extra), or why there is none."""
    if not ctx.use_ref:
        return None, "baseline skipped: --no-ref"
    python = REF_HTTP_VENV / "bin" / "python"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / ".ref-http-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(_STAMP.read_text()).get("requirement") == REF_HTTP_REQUIREMENT and python.exists():
                return python, ""
        base, how = find_ref_python()
        if base is None:
            return None, f"baseline skipped: {how}"
        log(f"http: creating {REF_HTTP_VENV.name} with {base} and {REF_HTTP_REQUIREMENT} (once) ...")
        for step in (
            [base, "-m", "venv", "--clear", str(REF_HTTP_VENV)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                REF_HTTP_REQUIREMENT,
            ],
        ):
            proc = subprocess.run(step, capture_output=True, text=True, timeout=1800, check=False)
            if proc.returncode != 0:
                tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
                return None, f"baseline skipped: `{' '.join(step[:4])} ...` failed: {tail}"
            (REF_HTTP_VENV / ".gitignore").write_text(
                "*\n"
            )  # never committed, whatever the root .gitignore says
        _STAMP.write_text(json.dumps({"requirement": REF_HTTP_REQUIREMENT, "base_python": base}))
        return python, ""


# -- load generation ------------------------------------------------------------------------------


def _measure(loadgen: str, url: str, headers: dict[str, str], seconds: int) -> Measured:
    if loadgen == "wrk":
        return _wrk(url, headers, seconds)
    cmd = [sys.executable, __file__, "load", url, str(seconds), str(CONNECTIONS), json.dumps(headers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    return Measured(**json.loads(proc.stdout.strip().splitlines()[-1]))


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk(url: str, headers: dict[str, str], seconds: int) -> Measured:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=seconds + 120, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or p99 is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    statuses = {"non-2xx-3xx": int(bad.group(1))} if bad else {}
    if bad:
        raise RuntimeError(f"{url}: {bad.group(1)} error responses under load:\n{out}")
    return Measured(
        float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], int(total.group(1)), statuses
    )


async def _load(url: str, seconds: float, connections: int, headers: dict[str, str]) -> Measured:
    """Keep `connections` keep-alive connections busy with GET `url` for `seconds` (stdlib only)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status = (await reader.readline()).split()[1].decode()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Measured(len(latencies) / elapsed, p99, len(latencies), dict(statuses))


def _serve_ours(golden: str, port: int) -> None:
    import anyio

    from horde_model_reference.http import StaticSnapshotSource, serve_http

    source = StaticSnapshotSource.from_directory(golden)
    anyio.run(serve_http, source, "127.0.0.1", port)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-ours"]:
        _serve_ours(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["load"]:
        measured = asyncio.run(
            _load(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))
        )
        print(json.dumps(vars(measured)))
    else:
        sys.exit(
            f"usage: {sys.argv[0]} serve-ours <golden dir> <port> | load <url> <seconds> <connections> <headers>"
        )
