"""The HTTP face's edges against a real uvicorn (issue 16, findings 3-6): bounded request heads,
slow and silent clients timed out, the key checked before a body is read, deep JSON refused,
rate limits answered 429, pages bounded by bytes, look-alike names refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from structlog.testing import capture_logs

from conftest import seed_example_catalog
from horde_model_reference.http import HttpEndpoint, serve_http
from horde_model_reference.writes.settings import HttpSettings, WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

V2 = "/api/model_references/v2"
QUEUE = f"{V2}/pending_queue"
REQ, APP = "edge-requester", "edge-approver"
DEEP = b"[" * 10_000 + b"]" * 10_000
DEADLINE = 30.0


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return seed_example_catalog(tmp_path)


@asynccontextmanager
async def served(
    base: Path,
    nats_url: str,
    prefix: str,
    *,
    limits: HttpSettings | None = None,
    writes: WriteSettings | None = None,
) -> AsyncIterator[HttpEndpoint]:
    """`hmr serve` with its write path and its HTTP face on a free port."""
    settings = writes or WriteSettings(requester_keys=REQ, approver_keys=APP)
    async with (
        running_write_service(
            base,
            nats_url=nats_url,
            subject_prefix=prefix,
            settings=settings,
            categories=("clip", "image_generation"),
        ) as (supervisor, service),
        anyio.create_task_group() as tg,
    ):
        endpoint = await tg.start(
            partial(serve_http, supervisor, "127.0.0.1", 0, writes=service, limits=limits)
        )
        yield endpoint
        tg.cancel_scope.cancel()


async def read_all(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (within the deadline)."""
    data = b""
    with anyio.fail_after(DEADLINE):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def image(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **extra}


async def test_a_request_head_past_its_bound_gets_431(base: Path, nats_url: str, subject_prefix: str) -> None:
    async with served(base, nats_url, subject_prefix) as endpoint:
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32_000)
            answer = await read_all(stream)
        assert status_of(answer) == 431 and b"connection: close" in answer.lower()
        sent = 0
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            with anyio.fail_after(DEADLINE):
                try:
                    while sent < 1024:  # 64 MiB of one header, unless the server hangs up
                        await stream.send(b"a" * 65536)
                        sent += 1
                except (anyio.BrokenResourceError, OSError):
                    pass
        assert sent < 1024, "the server kept reading an endless header"
        async with await anyio.connect_tcp(
            endpoint.host, endpoint.port
        ) as stream:  # a whole head in one read
            await stream.send(
                b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
            )
            answer = await read_all(stream)
        assert status_of(answer) == 431
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            answer = await read_all(stream)
        assert status_of(answer) == 431 and b"header fields" in answer
        async with httpx.AsyncClient(base_url=endpoint.url, timeout=DEADLINE) as client:
            assert (await client.get("/api/heartbeat", headers={"X-Fine": "a" * 4000})).status_code == 200


async def test_slow_and_silent_clients_are_timed_out(base: Path, nats_url: str, subject_prefix: str) -> None:
    limits = HttpSettings(head_timeout=1.0)
    async with served(base, nats_url, subject_prefix, limits=limits) as endpoint:
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            answer = await read_all(stream)
        assert status_of(answer) == 408
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            assert status_of(await read_all(stream)) == 408  # connected, never sent a byte
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:  # kept alive, then slow
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            with anyio.fail_after(DEADLINE):
                while b"\r\n\r\n" not in first:
                    first += await stream.receive()
            assert status_of(first) == 200
            await stream.send(b"GET /api/heartbeat HTTP/1.1\r\n")
            answer = await read_all(stream)
        assert b" 408 " in answer


async def test_a_body_dribbled_after_the_answer_does_not_hold_the_connection(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with (
        served(base, nats_url, subject_prefix) as endpoint,
        await anyio.connect_tcp(endpoint.host, endpoint.port) as stream,
    ):
        await stream.send(b"GET /api/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        first = b""
        with anyio.fail_after(DEADLINE):
            while b"\r\n\r\n" not in first:
                first += await stream.receive()
        assert status_of(first) == 200
        try:
            await stream.send(b"x")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # already closed: what this test wants
        await read_all(stream)  # returns only once the server closed the connection


async def test_the_key_is_checked_before_the_body_is_read(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with served(base, nats_url, subject_prefix) as endpoint:
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(
                b"POST " + V2.encode() + b"/clip/add HTTP/1.1\r\nHost: x\r\napikey: forged\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" + b"{" * 100
            )
            answer = await read_all(stream)  # the other 999,900 bytes are never sent
        assert status_of(answer) == 401 and b"connection: close" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "unauthorized"


async def test_a_body_sent_too_slowly_gets_408(base: Path, nats_url: str, subject_prefix: str) -> None:
    limits = HttpSettings(body_timeout=1.0)
    async with served(base, nats_url, subject_prefix, limits=limits) as endpoint:
        async with await anyio.connect_tcp(endpoint.host, endpoint.port) as stream:
            await stream.send(
                b"POST " + V2.encode() + b"/clip/add HTTP/1.1\r\nHost: x\r\napikey: " + REQ.encode() + b"\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            answer = await read_all(stream)
        assert status_of(answer) == 408
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "timeout"


async def test_deeply_nested_json_gets_422_without_a_traceback(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with (
        served(base, nats_url, subject_prefix) as endpoint,
        httpx.AsyncClient(base_url=endpoint.url, timeout=DEADLINE) as client,
    ):
        deep_record = b'{"name": "ViT-B/16-example", "x": %s}' % DEEP
        with capture_logs() as logs:
            answers = [
                await client.post(
                    f"{QUEUE}/purge", content=b'{"statuses": %s}' % DEEP, headers={"apikey": APP}
                ),
                await client.post(
                    f"{V2}/clip/add", content=b'{"name": "deep", "x": %s}' % DEEP, headers={"apikey": REQ}
                ),
                await client.put(
                    f"{V2}/clip/model/ViT-B/16-example",
                    content=deep_record,
                    params={"base_revision": "1"},
                    headers={"apikey": REQ},
                ),
                await client.post(
                    f"{QUEUE}/approve",
                    content=b'{"x": %s, "change_ids": [1]}' % DEEP,
                    headers={"apikey": APP},
                ),
            ]
        for answer in answers:
            assert answer.status_code == 422, answer.text[:300]
            assert (
                answer.json()["code"] in ("bad_request", "invalid_record")
                and "nested too deeply" in answer.text
            )
        assert not [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]


async def test_rate_limits_answer_429_with_retry_after(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    writes = WriteSettings(requester_keys=REQ, approver_keys=APP, propose_rate="2/minute")
    async with (
        served(base, nats_url, subject_prefix, writes=writes) as endpoint,
        httpx.AsyncClient(base_url=endpoint.url, timeout=DEADLINE) as client,
    ):
        for i in range(2):
            ok = await client.post(f"{V2}/image_generation/add", json=image(f"r{i}"), headers={"apikey": REQ})
            assert ok.status_code == 202, ok.text
        refused = await client.post(f"{V2}/image_generation/add", json=image("r2"), headers={"apikey": REQ})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_a_changes_page_is_bounded_by_bytes(base: Path, nats_url: str, subject_prefix: str) -> None:
    writes = WriteSettings(requester_keys=REQ, approver_keys=APP, max_page_bytes=64 * 1024)
    async with (
        served(base, nats_url, subject_prefix, writes=writes) as endpoint,
        httpx.AsyncClient(base_url=endpoint.url, timeout=DEADLINE) as client,
    ):
        for i in range(6):
            record = image(f"page {i}", description="d" * 30_000)
            assert (
                await client.post(f"{V2}/image_generation/add", json=record, headers={"apikey": REQ})
            ).status_code == 202
        page = await client.get(f"{QUEUE}/changes", params={"limit": "500"}, headers={"apikey": REQ})
        assert page.status_code == 200 and len(page.content) < 64 * 1024 + 40_000
        body = page.json()
        assert body["total"] == 6 and 1 <= len(body["items"]) < 6
        assert body["next_offset"] == len(body["items"])
        assert all(item["status"] == "pending" for item in body["items"])


@pytest.mark.parametrize("name", ["\uff36\uff49\uff34-B", "ViT-B\u221516", "St\u0430ble", "zero\u200bwidth"])
async def test_look_alike_names_are_refused_on_reads_and_writes(
    base: Path, nats_url: str, subject_prefix: str, name: str
) -> None:
    async with (
        served(base, nats_url, subject_prefix) as endpoint,
        httpx.AsyncClient(base_url=endpoint.url, timeout=DEADLINE) as client,
    ):
        read = await client.get(f"{V2}/clip/model/{name}")
        assert read.status_code == 422 and "invalid model name" in read.json()["detail"]
        write = await client.post(f"{V2}/image_generation/add", json=image(name), headers={"apikey": REQ})
        assert write.status_code == 422 and write.json()["code"] == "invalid_name"
