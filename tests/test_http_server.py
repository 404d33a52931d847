"""`serve_http` through a real uvicorn server on a free port, over a running `hmr serve` supervisor."""

from __future__ import annotations

import json
import shutil
import socket
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.http import HttpEndpoint, HttpServerError, StaticSnapshotSource, serve_http
from horde_model_reference.supervisor import ServiceConfig, run_service
from horde_model_reference.supervisor.testing import running_service

pytestmark = pytest.mark.anyio

V2 = "/api/model_references/v2"


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.integration
async def test_serves_the_supervisor_snapshots_over_uvicorn(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    base = tmp_path / "base"
    shutil.copytree(shared_data / "golden-v2", base)
    config = ServiceConfig(
        data_dir=str(tmp_path / "data"), nats_url=nats_url, subject_prefix=subject_prefix, poll_interval=0.05
    )
    async with running_service(config, FileSystemBackend(base)) as supervisor:
        async with anyio.create_task_group() as tg:
            endpoint: HttpEndpoint = await tg.start(serve_http, supervisor, "127.0.0.1", 0)
            assert endpoint.port > 0 and endpoint.url == f"http://127.0.0.1:{endpoint.port}"
            async with httpx.AsyncClient(base_url=endpoint.url, timeout=10) as client:
                response = await client.get(f"{V2}/image_generation")
                assert response.status_code == 200
                assert response.content == (base / "stable_diffusion.json").read_bytes().strip()
                snapshot = supervisor.snapshot("image_generation")
                assert snapshot is not None and response.headers["etag"] == f'"{snapshot.digest}"'
                cached = await client.get(
                    f"{V2}/image_generation", headers={"If-None-Match": response.headers["etag"]}
                )
                assert cached.status_code == 304 and cached.content == b""
                head = await client.head(f"{V2}/image_generation")
                assert head.status_code == 200 and head.content == b""
                assert head.headers["content-length"] == str(len(response.content))

                clip = json.loads((base / "clip.json").read_bytes())
                clip.pop(next(iter(clip)))
                _write(base / "clip.json", json.dumps(clip, indent=4).encode())
                with anyio.fail_after(10):
                    while (await client.get(f"{V2}/revisions")).json()["clip"]["revision"] < 2:
                        await anyio.sleep(0.05)
                assert (await client.get(f"{V2}/clip")).json() == clip
                assert (await client.get(f"{V2}/clip/model/{next(iter(clip))}")).status_code == 200

                assert (await client.get("/api/ready")).status_code == 200
                metrics = (await client.get("/metrics")).text
                assert "hmr_nats_connected 1" in metrics
                assert 'hmr_category_revision{category="clip"} 2' in metrics
            tg.cancel_scope.cancel()
        assert _refused(endpoint.port)


@pytest.mark.integration
async def test_runs_as_a_supervisor_component(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    """The `hmr serve --http PORT` wiring: `serve_http` is a `Component` of `run_service`."""
    base = tmp_path / "base"
    shutil.copytree(shared_data / "golden-v2", base)
    config = ServiceConfig(data_dir=str(tmp_path / "data"), nats_url=nats_url, subject_prefix=subject_prefix)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = partial(serve_http, host="127.0.0.1", port=port)
    async with anyio.create_task_group() as tg:
        await tg.start(
            partial(run_service, handle_signals=False, components=[http]), config, FileSystemBackend(base)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = await client.get("/api/ready")  # up as soon as the service reports ready
            assert ready.status_code == 200 and ready.json()["ready"] is True
            assert (await client.get(f"{V2}/model_categories")).json()[0] == "blip"
        tg.cancel_scope.cancel()
    assert _refused(port)


async def test_port_in_use_fails_at_once(shared_data: Path) -> None:
    source = StaticSnapshotSource.from_directory(shared_data / "golden-v2")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with anyio.fail_after(5), pytest.raises(HttpServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_http(source, "127.0.0.1", port)


async def test_app_options_need_a_source() -> None:
    with pytest.raises(TypeError, match="app options"):
        await serve_http(Starlette(), "127.0.0.1", 0, replicate_mode="REPLICA")


async def test_cancellation_lets_requests_in_flight_finish() -> None:
    arrived = anyio.Event()

    async def slow(request: Request) -> PlainTextResponse:
        arrived.set()
        await anyio.sleep(0.5)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    answers: list[httpx.Response] = []

    async def ask(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answers.append(await client.get("/slow"))

    async with anyio.create_task_group() as clients:
        async with anyio.create_task_group() as server:
            endpoint: HttpEndpoint = await server.start(serve_http, app, "127.0.0.1", 0)
            clients.start_soon(ask, endpoint.url)
            with anyio.fail_after(60):
                await arrived.wait()  # the request is in flight
            server.cancel_scope.cancel()  # stop the server: it drains first
        assert _refused(endpoint.port)  # no new connections once it has stopped
    assert [(r.status_code, r.text) for r in answers] == [(200, "done")]
