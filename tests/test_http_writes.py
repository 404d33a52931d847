"""The write workflow over HTTP against a real `hmr serve` (real NATS, uvicorn on a free port):
propose -> approve -> apply end to end, and every refusal mapped to its HTTP status."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from conftest import seed_example_catalog
from horde_model_reference.http import StaticSnapshotSource, create_app, serve_http
from horde_model_reference.http.routes_writes import STATUS_BY_CODE
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.writes.contracts import WriteCommand, WriteErrorReply, WriteReply
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = pytest.mark.anyio

V2 = "/api/model_references/v2"
QUEUE = f"{V2}/pending_queue"
REQ, APP = "http-requester-key", "http-approver-key"
EXISTING_CLIP = "ViT-B/16-example"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return seed_example_catalog(tmp_path)


def image_record(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **extra}


def clip_record(name: str) -> dict[str, Any]:
    return {"name": name, "config": {"download": [{"file_name": "c.pt", "file_url": "https://e.org/c.pt"}]}}


@asynccontextmanager
async def http_service(
    base: Path, nats_url: str, subject_prefix: str, settings: WriteSettings
) -> AsyncIterator[tuple[Supervisor, httpx.AsyncClient]]:
    """`hmr serve` with its write path, and `serve_http(..., writes=...)` over it on a free port."""
    async with (
        running_write_service(
            base,
            nats_url=nats_url,
            subject_prefix=subject_prefix,
            settings=settings,
            categories=("clip", "image_generation"),
        ) as (supervisor, writes),
        anyio.create_task_group() as tg,
    ):
        endpoint = await tg.start(partial(serve_http, supervisor, "127.0.0.1", 0, writes=writes))
        async with httpx.AsyncClient(base_url=endpoint.url, timeout=20) as client:
            yield supervisor, client
        tg.cancel_scope.cancel()


def as_requester(**headers: str) -> dict[str, str]:
    return {"apikey": REQ, **headers}


def as_approver(**headers: str) -> dict[str, str]:
    return {"apikey": APP, **headers}


@pytest.mark.integration
async def test_propose_approve_apply_over_http(base: Path, nats_url: str, subject_prefix: str) -> None:
    settings = WriteSettings(requester_keys=REQ, approver_keys=APP)
    with capture_logs() as logs:
        async with http_service(base, nats_url, subject_prefix, settings) as (supervisor, client):
            mode = (await client.get("/api/replicate_mode")).json()
            assert mode["writable"] is True
            start = supervisor.revision("image_generation")

            # create: today's POST .../{category}/add, the record as the body
            proposed = await client.post(
                f"{V2}/image_generation/add",
                json=image_record("Http Model", description="over http"),
                params={"notes": "a new model"},
                headers=as_requester(**{"X-Request-ID": "http-e2e-1"}),
            )
            assert proposed.status_code == 202, proposed.text
            assert proposed.headers["x-request-id"] == "http-e2e-1"
            change = proposed.json()["change"]
            assert change.get("status", "pending") == "pending" and change["notes"] == "a new model"
            assert change["request_id"] == "http-e2e-1"
            change_id = change["change_id"]

            listed = await client.get(
                f"{QUEUE}/changes", params={"statuses": "pending"}, headers=as_requester()
            )
            assert listed.status_code == 200
            assert [c["change_id"] for c in listed.json()["items"]] == [change_id]
            one = await client.get(f"{QUEUE}/changes/{change_id}", headers=as_requester())
            assert one.status_code == 200 and one.json()["current_digest"] is None

            # approve: today's POST pending_queue/batches
            batch = await client.post(
                f"{QUEUE}/batches",
                json={"batch_title": "http batch", "approved_ids": [change_id]},
                headers=as_approver(),
            )
            assert batch.status_code == 200, batch.text
            assert batch.json()["changes"][0]["status"] == "approved"

            # apply one change: today's POST pending_queue/changes/{id}/apply
            applied = await client.post(f"{QUEUE}/changes/{change_id}/apply", headers=as_approver())
            assert applied.status_code == 200, applied.text
            revision = applied.json()["revisions"]["image_generation"]
            assert revision == start + 1 == supervisor.revision("image_generation")
            record = await client.get(f"{V2}/image_generation/model/Http Model")
            assert record.status_code == 200 and record.json()["description"] == "over http"
            assert record.headers["x-hmr-revision"] == str(revision)

            # update based on the record's digest; approve with the bus shape; apply the batch
            digest = record.headers["x-hmr-record-digest"]
            updated = await client.put(
                f"{V2}/image_generation/model/Http Model",
                json=image_record("Http Model", description="updated over http"),
                params={"base_digest": digest},
                headers=as_requester(),
            )
            assert updated.status_code == 202, updated.text
            update_id = updated.json()["change"]["change_id"]
            approved = await client.post(
                f"{QUEUE}/approve",
                json={"change_ids": [update_id], "batch_title": "t"},
                headers=as_approver(),
            )
            assert approved.status_code == 200, approved.text
            batch_id = approved.json()["batch_id"]
            applied = await client.post(f"{QUEUE}/apply_batch/{batch_id}", headers=as_approver())
            assert applied.status_code == 200, applied.text
            record = await client.get(f"{V2}/image_generation/model/Http Model")
            assert record.json()["description"] == "updated over http"

            # delete based on the revision, rejected; then today's apply body on a clip create
            deleted = await client.delete(
                f"{V2}/image_generation/model/Http Model",
                params={"base_revision": record.headers["x-hmr-revision"]},
                headers=as_requester(),
            )
            assert deleted.status_code == 202, deleted.text
            delete_id = deleted.json()["change"]["change_id"]
            rejected = await client.post(
                f"{QUEUE}/batches",
                json={"batch_title": "no", "rejected_ids": [delete_id], "reject_reason": "keep it"},
                headers=as_approver(),
            )
            assert rejected.status_code == 200 and rejected.json()["changes"][0]["status"] == "rejected"
            created = await client.post(f"{V2}/clip", json=clip_record("http-clip"), headers=as_requester())
            assert created.status_code == 202, created.text
            clip_id = created.json()["change"]["change_id"]
            await client.post(f"{QUEUE}/approve", json={"change_ids": [clip_id]}, headers=as_approver())
            applied = await client.post(
                f"{QUEUE}/apply", json={"change_ids": [clip_id], "job_id": "ignored"}, headers=as_approver()
            )
            assert applied.status_code == 200, applied.text
            assert (await client.get(f"{V2}/clip/model/http-clip")).status_code == 200

            audit = await client.get(
                f"{QUEUE}/audit", params={"change_id": change_id}, headers=as_requester()
            )
            assert audit.status_code == 200
            actions = [event["action"] for event in audit.json()["events"]]
            assert actions == ["proposed", "approved", "applying", "applied"]
            assert audit.json()["events"][0]["request_id"] == "http-e2e-1"

            purged = await client.post(
                f"{QUEUE}/purge", json={"statuses": ["rejected"]}, headers=as_approver()
            )
            assert purged.status_code == 200 and purged.json()["removed"] == [delete_id]
    for key in (REQ, APP):
        assert not [entry for entry in logs if key in repr(entry)]


@pytest.mark.integration
async def test_every_refusal_maps_to_its_status(base: Path, nats_url: str, subject_prefix: str) -> None:
    with socket.socket() as probe:  # find_user on a closed port: the key cannot be verified
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = WriteSettings(
        requester_keys=REQ,
        approver_keys=APP,
        max_payload_bytes=4096,
        horde_api_url=f"http://127.0.0.1:{closed}",
        horde_timeout=2,
    )
    async with http_service(base, nats_url, subject_prefix, settings) as (supervisor, client):
        pending = await client.post(f"{V2}/clip/add", json=clip_record("pending-1"), headers=as_requester())
        approved = await client.post(f"{V2}/clip/add", json=clip_record("approved-1"), headers=as_requester())
        approved_id = approved.json()["change"]["change_id"]
        await client.post(f"{QUEUE}/approve", json={"change_ids": [approved_id]}, headers=as_approver())
        pending_id = pending.json()["change"]["change_id"]
        existing = f"{V2}/clip/model/{EXISTING_CLIP}"
        revision = {"base_revision": str(supervisor.revision("clip"))}
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("POST", f"{V2}/clip/add", {"json": clip_record("x")}, 401, "unauthorized"),
            ("POST", f"{V2}/clip/add", {"json": clip_record("x"), "headers": {"apikey": "forged"}}, 503, "auth_unavailable"),
            ("POST", f"{QUEUE}/approve", {"json": {"change_ids": [pending_id]}, "headers": as_requester()}, 403, "forbidden"),
            ("POST", f"{V2}/nonsense/add", {"json": clip_record("x"), "headers": as_requester()}, 404, "unknown_category"),
            ("POST", f"{V2}/controlnet/add", {"json": clip_record("x"), "headers": as_requester()}, 404, "not_served"),
            ("PUT", f"{V2}/clip/model/gone", {"json": clip_record("gone"), "params": revision, "headers": as_requester()}, 404, "not_found"),
            ("GET", f"{QUEUE}/changes/999", {"headers": as_requester()}, 404, "change_not_found"),
            ("POST", f"{QUEUE}/apply_batch/999", {"headers": as_approver()}, 404, "change_not_found"),
            ("POST", f"{V2}/clip/add", {"json": clip_record(EXISTING_CLIP), "headers": as_requester()}, 409, "already_exists"),
            ("DELETE", existing, {"params": {"base_digest": "0" * 64}, "headers": as_requester()}, 409, "conflict"),
            ("DELETE", existing, {"params": {"base_revision": "9999"}, "headers": as_requester()}, 409, "conflict"),
            ("POST", f"{QUEUE}/approve", {"json": {"change_ids": [approved_id]}, "headers": as_approver()}, 409, "invalid_state"),
            ("POST", f"{QUEUE}/changes/{pending_id}/apply", {"headers": as_approver()}, 409, "invalid_state"),
            ("POST", f"{V2}/clip/add", {"json": {**clip_record("big"), "description": "x" * 5000}, "headers": as_requester()}, 413, "too_large"),
            ("POST", f"{V2}/clip/add", {"content": b"x" * 80_000, "headers": as_requester()}, 413, "too_large"),
            ("POST", f"{V2}/clip/add", {"json": clip_record("a..b"), "headers": as_requester()}, 422, "invalid_name"),
            ("POST", f"{V2}/clip/add", {"json": {"description": "no name"}, "headers": as_requester()}, 422, "invalid_record"),
            ("POST", f"{V2}/clip/add", {"json": {"name": "x", "config": 7}, "headers": as_requester()}, 422, "invalid_record"),
            ("PUT", existing, {"json": clip_record("other"), "params": revision, "headers": as_requester()}, 422, "invalid_record"),
            ("PUT", existing, {"json": clip_record(EXISTING_CLIP), "headers": as_requester()}, 422, "bad_request"),
            ("POST", f"{QUEUE}/reject", {"json": {"change_ids": [pending_id]}, "headers": as_approver()}, 422, "reason_required"),
            ("POST", f"{QUEUE}/batches", {"json": {"rejected_ids": [pending_id]}, "headers": as_approver()}, 422, "reason_required"),
            ("POST", f"{QUEUE}/batches", {"json": {"approved_ids": [1], "rejected_ids": [2]}, "headers": as_approver()}, 422, "bad_request"),
            ("POST", f"{QUEUE}/purge", {"json": {"statuses": ["rejected"], "dry_run": True}, "headers": as_approver()}, 422, "bad_request"),
            ("POST", f"{QUEUE}/approve", {"json": {"change_ids": [pending_id], "api_key": APP}, "headers": as_approver()}, 422, "bad_request"),
            ("POST", f"{QUEUE}/approve", {"json": {"change_ids": [pending_id], "api_key": APP}}, 401, "unauthorized"),
            ("POST", f"{QUEUE}/apply", {"content": b"{not json", "headers": as_approver()}, 422, "bad_request"),
            ("GET", f"{QUEUE}/changes", {"params": {"limit": "0"}, "headers": as_requester()}, 422, "bad_request"),
            ("GET", f"{QUEUE}/changes", {"params": {"statuses": "lost"}, "headers": as_requester()}, 422, "bad_request"),
            ("GET", f"{QUEUE}/audit", {"params": {"since": "yesterday"}, "headers": as_requester()}, 422, "bad_request"),
            ("GET", f"{QUEUE}/changes", {"headers": as_requester(**{"X-Request-ID": "r" * 200})}, 422, "bad_request"),
        ]  # fmt: skip
        for method, path, options, status, code in cases:
            response = await client.request(method, path, **options)
            body = response.json()
            assert (response.status_code, body.get("code")) == (status, code), (method, path, body)
            assert body["detail"], body
        retry = await client.post(f"{V2}/clip/add", json=clip_record("x"), headers={"apikey": "forged"})
        assert retry.headers["retry-after"] == "10"
        listed = await client.get(f"{QUEUE}/changes", headers=as_requester())
        assert listed.json()["total"] == 2  # nothing refused was queued


async def test_without_a_write_service_writes_answer_503(shared_data: Path) -> None:
    source = StaticSnapshotSource.from_directory(shared_data / "golden-v2", categories=["clip"])
    transport = httpx.ASGITransport(create_app(source))
    async with httpx.AsyncClient(transport=transport, base_url="http://hmr") as client:
        assert (await client.get("/api/replicate_mode")).json()["writable"] is False
        response = await client.post(f"{V2}/clip/add", json=clip_record("x"), headers=as_requester())
        assert response.status_code == 503 and response.json()["code"] == "read_only"
        assert (await client.get(f"{V2}/clip")).status_code == 200


class _Refusing:
    """A write service that refuses every command with one code (the status mapping alone)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.settings = WriteSettings()
        self.commands: list[WriteCommand] = []

    async def check_key(self, api_key: str | None) -> None:
        """Every key passes: the command's refusal is what is tested."""

    async def handle(self, command: WriteCommand) -> WriteReply:
        self.commands.append(command)
        return WriteErrorReply(code=self.code, message=f"refused: {self.code}", request_id=command.request_id)


@pytest.mark.parametrize(("code", "status"), [*STATUS_BY_CODE.items(), ("something_new", 400)])
async def test_each_code_maps_to_its_status(shared_data: Path, code: str, status: int) -> None:
    source = StaticSnapshotSource.from_directory(shared_data / "golden-v2", categories=["clip"])
    writes = _Refusing(code)
    app = create_app(source, writes=writes)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hmr") as client:
        response = await client.get(f"{QUEUE}/changes", headers={"apikey": "k", "X-Request-ID": "r1"})
    assert response.status_code == status
    assert response.json() == {"detail": f"refused: {code}", "code": code, "details": {}, "request_id": "r1"}
    assert response.headers["x-request-id"] == "r1"
    assert writes.commands[0].api_key == "k" and writes.commands[0].request_id == "r1"
