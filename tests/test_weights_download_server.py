"""A real HTTP server on 127.0.0.1 for the download engine tests, and a test of the server itself.

The server serves bytes by path and can misbehave on request: ignore `Range`, fail the first N
requests, cut a body short (whole-file or ranged answers), send more than it declares, or act as
the gated mirror (inventory, sessions, content-addressed objects). Every request it sees is
recorded, so the tests check what the engine asked for as well as what it left on disk.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from horde_model_reference.weights.download import clear_gateway_caches, engine

BODY = bytes((i * 7 + 3) % 251 for i in range(5000))
BODY_SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class Behaviour:
    """How the server answers one path."""

    body: bytes = b""
    status: int = 200
    ranges: bool = True
    fail_first: int = 0
    truncate_first: int = 0
    cut_ranges_first: int = 0
    """Cut this many ranged answers (other than the one-byte probe) to half their declared length."""
    declared_length: int | None = None
    json_body: object = None


@dataclass
class Server:
    """The test's HTTP server: its base URL, what it serves and what it was asked."""

    url: str
    paths: dict[str, Behaviour]
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def asked(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for _, p, headers in self.requests if p == path]

    def ranges(self, path: str) -> list[str | None]:
        return [headers.get("range") for headers in self.asked(path)]


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            behaviour = state.paths.get(self.path)
            failing = behaviour is not None and behaviour.fail_first > 0
            if failing:
                assert behaviour is not None
                behaviour.fail_first -= 1
        if behaviour is None:
            self._send(404, b"")
        elif failing:
            self._send(500, b"")
        elif behaviour.status != 200:
            self._send(behaviour.status, b"")
        elif behaviour.json_body is not None:
            self._send(200, json.dumps(behaviour.json_body).encode())
        elif self.headers.get("Range") and behaviour.ranges:
            self._ranged(state, behaviour, self.headers["Range"])
        else:
            self._whole(state, behaviour)

    def _ranged(self, state: Server, behaviour: Behaviour, header: str) -> None:
        body = behaviour.body
        start_text, _, end_text = header.removeprefix("bytes=").partition("-")
        start = int(start_text)
        end = min(int(end_text), len(body) - 1) if end_text else len(body) - 1
        if start >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        part = body[start : end + 1]
        with state.lock:
            cut = header != "bytes=0-0" and behaviour.cut_ranges_first > 0
            if cut:
                behaviour.cut_ranges_first -= 1
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part[: len(part) // 2] if cut else part)
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def _whole(self, state: Server, behaviour: Behaviour) -> None:
        body = behaviour.body
        with state.lock:
            cut = behaviour.truncate_first > 0
            if cut:
                behaviour.truncate_first -= 1
        length = behaviour.declared_length if behaviour.declared_length is not None else len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) if cut else length))
        self.end_headers()
        self.wfile.write(body[: len(body) // 3] if cut else body)
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def serve() -> Iterator[Server]:
    """A running server; its socket is bound (so it is ready) before the thread starts."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}", paths={})
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextmanager
def isolated_downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No pause between retries, no gateway from the environment, no inventory or session cached."""
    monkeypatch.setattr(engine, "RETRY_SLEEP_SECONDS", 0.0)
    monkeypatch.delenv("HORDE_MODEL_REFERENCE_R2__GATEWAY_URL", raising=False)
    monkeypatch.delenv("HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS", raising=False)
    clear_gateway_caches()
    try:
        yield
    finally:
        clear_gateway_caches()


def listing(folder: Path) -> list[str]:
    """The names in `folder`, sorted (empty when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_server_serves_ranges_and_cuts_only_what_it_is_told_to() -> None:
    with serve() as server:
        server.paths["/f"] = Behaviour(body=BODY, cut_ranges_first=1)
        probe = httpx.get(f"{server.url}/f", headers={"Range": "bytes=0-0"})
        assert (probe.status_code, probe.headers["content-range"], probe.content) == (
            206,
            f"bytes 0-0/{len(BODY)}",
            BODY[:1],
        )
        with httpx.Client() as client:
            try:
                client.get(f"{server.url}/f", headers={"Range": "bytes=100-199"})
            except httpx.RemoteProtocolError:
                pass  # the cut answer: fewer bytes than its Content-Length
            else:
                raise AssertionError("the first ranged answer should have been cut")
            whole = client.get(f"{server.url}/f", headers={"Range": "bytes=100-199"})
        assert whole.content == BODY[100:200]
        assert httpx.get(f"{server.url}/absent").status_code == 404
