"""`serve_http`: run the app under uvicorn inside the caller's anyio task group.

uvicorn installs no signal handlers here (the supervisor owns SIGTERM/SIGINT); the listening
socket is bound before uvicorn starts, so a port in use fails at once with `HttpServerError`
and `port=0` picks a free port (reported through `task_status`). Cancelling the caller stops the
server gracefully: no new connections, in-flight requests finish within `shutdown_timeout`,
then whatever is left is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import msgspec
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.http._protocol import bounded_protocol
from horde_model_reference.http.app import create_app
from horde_model_reference.http.source import SnapshotSource
from horde_model_reference.logs import get_logger
from horde_model_reference.writes.settings import HttpSettings

__all__ = ["HttpEndpoint", "HttpServerError", "serve_http"]

_log = get_logger(__name__)


class HttpServerError(ModelReferenceError):
    """The HTTP server could not start (address in use, not on asyncio, ...)."""


class HttpEndpoint(msgspec.Struct, frozen=True):
    """Where the server listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """`http://host:port` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling, telling when its startup is over."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_over.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:
        """uvicorn < 0.29 calls this instead of `capture_signals`."""


async def serve_http(
    app_or_source: ASGIApp | SnapshotSource,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: TaskStatus[HttpEndpoint] = anyio.TASK_STATUS_IGNORED,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
    access_log: bool = False,
    limits: HttpSettings | None = None,
    **app_options: Any,
) -> None:
    """Serve `app_or_source` (an ASGI app, or a source for `create_app(source, **app_options)`)
    on `host:port` until cancelled; `task_status.started(HttpEndpoint)` once it accepts connections.

    `limits` (`HttpSettings`, default its defaults) bounds each request's head (size, fields,
    time to send it), idle keep-alive connections, connections at once, and write bodies' time.
    Raises `HttpServerError` when it cannot start. Needs anyio's asyncio backend (uvicorn does).
    """
    limits = limits or HttpSettings()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise HttpServerError("serve_http needs anyio's asyncio backend (uvicorn runs on asyncio)") from None
    app: ASGIApp
    if isinstance(app_or_source, SnapshotSource):
        app = create_app(app_or_source, limits=limits, **app_options)
    elif app_options:
        raise TypeError(f"app options {sorted(app_options)} given with a ready-made app")
    else:
        app = app_or_source
    sock = _bind(host, port)
    endpoint = HttpEndpoint(host, sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=access_log,
        ws="none",
        http=bounded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_timeout,
        limit_concurrency=limits.max_connections,
        timeout_graceful_shutdown=max(1, math.ceil(shutdown_timeout)),
    )
    server = _EmbeddedServer(config)
    try:
        await _run(server, sock, endpoint, task_status, startup_timeout, shutdown_timeout)
    finally:
        sock.close()


async def _run(
    server: _EmbeddedServer,
    sock: socket.socket,
    endpoint: HttpEndpoint,
    task_status: TaskStatus[HttpEndpoint],
    startup_timeout: float,
    shutdown_timeout: float,
) -> None:
    stopped = anyio.Event()
    failures: list[BaseException] = []
    # Shielded: the server stops through `should_exit` (gracefully), not by cancellation.
    serve_scope = anyio.CancelScope(shield=True)

    async def serve() -> None:
        with serve_scope:
            try:
                await server.serve(sockets=[sock])
            except (Exception, SystemExit) as exc:  # uvicorn exits the process on a startup failure
                failures.append(exc)
            finally:
                server.startup_over.set()
                stopped.set()

    error: HttpServerError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, name=f"http:{endpoint.port}")
        try:
            with anyio.move_on_after(startup_timeout):
                await server.startup_over.wait()
            if server.started:
                _log.info("http_serving", url=endpoint.url)
                task_status.started(endpoint)
                await stopped.wait()
            else:
                reason = f"{type(failures[0]).__name__}: {failures[0]}" if failures else "it stopped"
                if not server.startup_over.is_set():
                    reason = f"not ready after {startup_timeout:g} s"
                error = HttpServerError(f"the HTTP server on {endpoint.url} did not start: {reason}")
        finally:
            server.should_exit = True
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(shutdown_timeout + 1.0):
                    await stopped.wait()
                if not stopped.is_set():
                    _log.warning("http_shutdown_forced", url=endpoint.url, timeout=shutdown_timeout)
                    server.force_exit = True
                    serve_scope.cancel()
            _log.info("http_stopped", url=endpoint.url)
    if error is not None:
        raise error


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is IPPROTO_TCP (not 0), so that asyncio sets TCP_NODELAY
    on the accepted connections: without it a small response written in two parts waits for the
    client's delayed ACK (40 ms per request on keep-alive connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise HttpServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
