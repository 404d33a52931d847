"""A real HTTP server on 127.0.0.1 for the backend tests, and a few tests of the server itself.

`Upstream` serves bytes by path with strong ETags (If-None-Match -> 304), counts every request and
the body bytes it sent, and injects faults per path: an HTTP status, garbage, a hang, a dropped
connection. Paths under `/proxy/` carry a full URL, as a GitHub proxy receives them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from horde_model_reference.categories import get_category_descriptor, parse_category

GITHUB_BASE = "https://raw.githubusercontent.com"
IMAGE_REPO = "/Haidra-Org/AI-Horde-image-model-reference/main"
TEXT_REPO = "/Haidra-Org/AI-Horde-text-model-reference/main"
PRIMARY_PREFIX = "/api/model_references/v2"
GARBAGE = b"\x00\xffnot a catalog<html>"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Hit:
    """One request the server answered."""

    path: str
    status: int
    body_bytes: int
    if_none_match: str | None
    proxied: bool


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


class Upstream:
    """A threaded HTTP server with ETags, request counting and fault injection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[Hit] = []
        self._faults: dict[str, list[str]] = {}
        self._always: dict[str, str] = {}
        self._lock = threading.Lock()
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # ------------------------------------------------------------------ setup
    def serve(self, path: str, data: bytes) -> None:
        with self._lock:
            self.files[path] = data

    def fault(self, path: str, *actions: str) -> None:
        """The next requests to `path` get `actions` in order ("500", "429", "garbage", "hang", "drop")."""
        with self._lock:
            self._faults.setdefault(path, []).extend(actions)

    def always(self, path: str, action: str | None) -> None:
        """Every request to `path` gets `action` (None clears it)."""
        with self._lock:
            if action is None:
                self._always.pop(path, None)
            else:
                self._always[path] = action

    def hits_for(self, path: str) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if hit.path == path]

    def bytes_served(self, path: str | None = None) -> int:
        with self._lock:
            return sum(h.body_bytes for h in self.hits if path is None or h.path == path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                upstream._handle(self)

        self.release.clear()

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default (5) drops concurrent connects for a second

        self._server = Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="upstream", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ requests
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        proxied = path.startswith("/proxy/")
        if proxied:
            target = path[len("/proxy/") :]
            path = (
                target[len(GITHUB_BASE) :]
                if target.startswith(GITHUB_BASE + "/")
                else "/unknown-proxy-target"
            )
        with self._lock:
            queued = self._faults.get(path)
            action = queued.pop(0) if queued else self._always.get(path)
            data = self.files.get(path)
        if_none_match = handler.headers.get("If-None-Match")
        status, body, headers = 200, b"", {}
        if action == "hang":
            self._record(path, 0, 0, if_none_match, proxied)
            self.release.wait(30)
            return
        if action == "drop":
            self._record(path, 0, 0, if_none_match, proxied)
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if action is not None and action.isdigit():
            status, body = int(action), b"fault"
            if status == 429:
                headers["Retry-After"] = "0"
        elif action == "garbage":
            body = GARBAGE
            headers["ETag"] = etag_of(GARBAGE)
        elif data is None:
            status, body = 404, b"not found"
        elif if_none_match is not None and if_none_match == etag_of(data):
            status = 304
        else:
            body = data
            headers["ETag"] = etag_of(data)
        # Recorded before answering, so a client that has its answer always finds the hit.
        self._record(path, status, len(body) if status == 200 else 0, if_none_match, proxied)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _record(self, path: str, status: int, size: int, if_none_match: str | None, proxied: bool) -> None:
        with self._lock:
            self.hits.append(Hit(path, status, size, if_none_match, proxied))


class LoopThread:
    """An event loop running forever in its own thread, like the manager's background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loop-thread", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Let pending work (e.g. a client close scheduled from another loop) finish, then stop."""

        async def drain() -> None:
            others = asyncio.all_tasks() - {asyncio.current_task()}
            await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 5)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# ---------------------------------------------------------------------- layouts of the real data


def github_path(category: str) -> str:
    """The repository path of `category`'s legacy file, as raw.githubusercontent.com serves it."""
    descriptor = get_category_descriptor(category)
    repo = TEXT_REPO if descriptor.github_source == "text" else IMAGE_REPO
    return f"{repo}/{descriptor.legacy_filename}"


def serve_github(upstream: Upstream, shared_data: Path) -> None:
    """current/image/*.json and current/text/models.csv in the GitHub repository layout."""
    for file in (shared_data / "current" / "image").glob("*.json"):
        upstream.serve(f"{IMAGE_REPO}/{file.name}", file.read_bytes())
    upstream.serve(f"{TEXT_REPO}/models.csv", (shared_data / "current" / "text" / "models.csv").read_bytes())


def golden(shared_data: Path, category: str) -> bytes:
    return (shared_data / "golden-v2" / get_category_descriptor(category).v2_filename).read_bytes()


def golden_categories(shared_data: Path) -> list[str]:
    names = {f.name for f in (shared_data / "golden-v2").glob("*.json")}
    return [
        parse_category(c).value
        for c in (
            "blip",
            "clip",
            "codeformer",
            "controlnet",
            "esrgan",
            "gfpgan",
            "miscellaneous",
            "safety_checker",
            "image_generation",
            "text_generation",
        )
        if get_category_descriptor(c).v2_filename in names
    ]


def serve_primary(upstream: Upstream, shared_data: Path) -> None:
    """golden-v2 files at /api/model_references/v2/{category}."""
    for category in golden_categories(shared_data):
        upstream.serve(f"{PRIMARY_PREFIX}/{category}", golden(shared_data, category))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------- the server itself


def test_server_etag_and_faults(upstream: Upstream) -> None:
    upstream.serve("/a", b"{}")
    upstream.fault("/a", "500", "garbage")
    with httpx.Client(base_url=upstream.url) as client:
        assert client.get("/a").status_code == 500
        assert client.get("/a").content == GARBAGE
        first = client.get("/a")
        assert first.content == b"{}"
        again = client.get("/a", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/missing").status_code == 404
    assert [h.status for h in upstream.hits_for("/a")] == [500, 200, 200, 304]
    assert upstream.bytes_served("/a") == len(GARBAGE) + 2
