"""The write path over NATS request/reply (real NATS and Redis): end to end with a consumer,
error replies, and the `hmr` write commands."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from nats.aio.client import Client

from bus_harness import consumer
from conftest import seed_example_catalog
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.events import Subjects
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.cli.writes import add_write_parsers
from horde_model_reference.writes.contracts import (
    ApplyResult,
    AuditAction,
    AuditPage,
    BatchResult,
    ChangeReply,
    WriteErrorReply,
    WriteReply,
    decode_reply,
)
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REQ, APP = "bus-requester-key", "bus-approver-key"
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return seed_example_catalog(tmp_path)


@asynccontextmanager
async def client(url: str) -> AsyncIterator[Client]:
    nc = await connect_nats(NatsOptions(url=url, name="writes-test"))
    try:
        yield nc
    finally:
        await nc.close()


async def request(nc: Client, prefix: str, command: str, body: dict[str, Any] | bytes) -> WriteReply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await nc.request(Subjects(prefix).write(command), data, timeout=10)
    return decode_reply(msg.data)


def image_record(name: str) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, "description": "over the bus"}


async def test_propose_approve_apply_over_nats_reaches_a_consumer_within_a_second(
    base: Path, nats_url: str, redis_url: str, subject_prefix: str, redis_prefix: str
) -> None:
    settings = WriteSettings(requester_keys=REQ, approver_keys=APP)
    async with (
        running_write_service(
            base,
            nats_url=nats_url,
            subject_prefix=subject_prefix,
            settings=settings,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
            categories=("clip", "image_generation"),
        ) as (supervisor, _),
        consumer(nats_url, subject_prefix, redis_url=redis_url, redis_key_prefix=redis_prefix) as follower,
        client(nats_url) as nc,
    ):
        start_revision = supervisor.revision(IMAGE)
        await follower.wait_revision(start_revision, IMAGE)
        proposed = await request(
            nc,
            subject_prefix,
            "propose",
            {
                "api_key": REQ,
                "category": "image_generation",
                "name": "Bus Model",
                "operation": "create",
                "record": image_record("Bus Model"),
            },
        )
        assert isinstance(proposed, ChangeReply), proposed
        change_id = proposed.change.change_id
        approved = await request(nc, subject_prefix, "approve", {"api_key": APP, "change_ids": [change_id]})
        assert isinstance(approved, BatchResult)
        applied = await request(
            nc, subject_prefix, "apply", {"api_key": APP, "change_ids": [change_id], "request_id": "e2e-1"}
        )
        returned = time.monotonic()
        assert isinstance(applied, ApplyResult), applied
        revision = applied.revisions["image_generation"]
        assert revision == start_revision + 1 and applied.request_id == "e2e-1"
        await follower.wait_revision(revision, IMAGE, timeout=1.0)
        assert time.monotonic() - returned < 1.0
        snapshot = follower.cache.snapshots[IMAGE.value]
        assert snapshot.records["Bus Model"].description == "over the bus"
        assert snapshot.records["Bus Model"].metadata.created_by == applied.changes[0].applied_by
        legacy = json.loads((base / "legacy" / "stable_diffusion.json").read_bytes())
        assert legacy["Bus Model"]["baseline"] == "stable_diffusion_xl"
        audit = await request(nc, subject_prefix, "audit", {"api_key": REQ, "change_id": change_id})
        assert isinstance(audit, AuditPage)
        assert [e.action for e in audit.events] == [
            AuditAction.proposed,
            AuditAction.approved,
            AuditAction.applying,
            AuditAction.applied,
        ]
        assert audit.events[-1].request_id == "e2e-1" and audit.events[-1].revision == revision
        again = await request(nc, subject_prefix, "apply", {"api_key": APP, "change_ids": [change_id]})
        assert isinstance(again, WriteErrorReply) and again.code == "invalid_state"
        assert again.details["status"] == "applied" and "not approved" in again.message
        assert supervisor.revision(IMAGE) == revision


async def test_error_replies_carry_a_code_and_a_message(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    settings = WriteSettings(requester_keys=REQ, approver_keys=APP, max_payload_bytes=4096)
    async with (
        running_write_service(
            base, nats_url=nats_url, subject_prefix=subject_prefix, settings=settings, categories=("clip",)
        ) as (supervisor, writes),
        client(nats_url) as nc,
    ):
        create = {"category": "clip", "name": "c1", "operation": "create", "record": {"name": "c1"}}
        cases: list[tuple[str, dict[str, Any] | bytes, str]] = [
            ("propose", create, "unauthorized"),
            ("propose", {**create, "api_key": "forged"}, "unauthorized"),
            ("approve", {"api_key": REQ, "change_ids": [1]}, "forbidden"),
            ("propose", {**create, "api_key": REQ, "category": "nope"}, "unknown_category"),
            ("propose", {**create, "api_key": REQ, "name": "../etc"}, "invalid_name"),
            ("propose", {**create, "api_key": REQ, "record": {"nothing": 1}}, "invalid_record"),
            (
                "propose",
                {**create, "api_key": REQ, "record": {"name": "c1", "description": "x" * 5000}},
                "too_large",
            ),
            ("propose", b"x" * 80_000, "too_large"),
            ("propose", b"{not json", "bad_request"),
            ("propose", {"api_key": REQ, "category": "clip"}, "bad_request"),
            ("reject", {"api_key": APP, "change_ids": [1]}, "reason_required"),
            ("approve", {"api_key": APP, "change_ids": [42]}, "change_not_found"),
            ("frobnicate", {}, "unknown_command"),
        ]
        for command, body, code in cases:
            reply = await request(nc, subject_prefix, command, body)
            assert isinstance(reply, WriteErrorReply), (command, body, reply)
            assert reply.code == code and reply.message, (code, reply)
        assert (await writes.list_changes(REQ)).total == 0
        ok = await request(nc, subject_prefix, "propose", {**create, "api_key": REQ})
        assert isinstance(ok, ChangeReply)
        conflict = await request(
            nc,
            subject_prefix,
            "propose",
            {
                "api_key": REQ,
                "category": "clip",
                "name": "ViT-B/16-example",
                "operation": "delete",
                "base_revision": 99,
            },
        )
        assert isinstance(conflict, WriteErrorReply) and conflict.code == "conflict"
        assert conflict.details["expected"] == "revision 99"
        assert conflict.details["actual"] == f"revision {supervisor.revision('clip')}"


async def test_fail_closed_without_allowlists(base: Path, nats_url: str, subject_prefix: str) -> None:
    async with (
        running_write_service(
            base,
            nats_url=nats_url,
            subject_prefix=subject_prefix,
            settings=WriteSettings(),
            categories=("clip",),
        ),
        client(nats_url) as nc,
    ):
        for command, body in (
            ("changes", {"api_key": "anything"}),
            ("audit", {}),
            ("apply", {"api_key": "x", "batch_id": 1}),
        ):
            reply = await request(nc, subject_prefix, command, body)
            assert isinstance(reply, WriteErrorReply) and reply.code == "unauthorized"
            assert "no API keys" in reply.message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmr")
    add_write_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


async def test_cli_write_commands(
    base: Path,
    nats_url: str,
    subject_prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = WriteSettings(requester_keys=REQ, approver_keys=APP)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_API_KEY", REQ)
    record = tmp_path / "record.json"
    record.write_text(
        json.dumps(
            {"name": "cli-clip", "config": {"download": [{"file_name": "a", "file_url": "https://e.org/a"}]}}
        )
    )
    common = ["--nats-url", nats_url, "--subject-prefix", subject_prefix]

    async def hmr(*argv: str) -> tuple[int, str, str]:
        args = _parser().parse_args([argv[0], *common, *argv[1:]])
        code: int = await anyio.to_thread.run_sync(args.func, args)
        out, err = capsys.readouterr()
        return code, out, err

    async with running_write_service(
        base, nats_url=nats_url, subject_prefix=subject_prefix, settings=settings, categories=("clip",)
    ) as (supervisor, _):
        code, out, _ = await hmr(
            "propose", "create", "clip", "cli-clip", "--record", str(record), "--notes", "from the cli"
        )
        assert code == 0 and out.startswith("change 1: pending  create clip/cli-clip")
        code, out, _ = await hmr("propose", "create", "clip", "cli-other", "--record", str(record))
        assert code == 1
        code, _, err = await hmr("approve", "1")
        assert code == 1 and "forbidden" in err
        code, out, _ = await hmr("changes", "--status", "pending")
        assert code == 0 and "cli-clip" in out and "1 of 1" in out
        code, out, _ = await hmr("approve", "1", "--title", "cli batch", "--api-key", APP)
        assert code == 0 and out.strip() == "approved as batch 1: 1"
        code, out, _ = await hmr("apply", "--batch", "1", "--api-key", APP)
        assert code == 0 and f"clip revision {supervisor.revision('clip')}" in out
        code, out, _ = await hmr("changes", "1", "--json")
        assert code == 0 and json.loads(out)["change"]["status"] == "applied"
        code, out, _ = await hmr("audit", "--change", "1")
        assert code == 0 and [line.split()[3] for line in out.splitlines()] == [
            "proposed",
            "approved",
            "applying",
            "applied",
        ]
        code, _, err = await hmr("reject", "1", "--reason", "late", "--api-key", APP)
        assert code == 1 and "invalid_state" in err
        code, out, _ = await hmr("purge", "--api-key", APP)
        assert code == 0 and out.strip() == "purged 1 change(s): 1"
        assert (
            REQ not in (base / ".hmr" / "writes" / "audit").joinpath("audit-000000000001.jsonl").read_text()
        )
    code, _, err = await hmr("changes", "--timeout", "0.3")
    assert code == 1 and "no answer" in err


async def test_keys_never_reach_logs_or_the_audit_trail(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    from structlog.testing import capture_logs

    settings = WriteSettings(requester_keys=REQ, approver_keys=APP)
    with capture_logs() as logs:
        async with (
            running_write_service(
                base,
                nats_url=nats_url,
                subject_prefix=subject_prefix,
                settings=settings,
                categories=("clip",),
            ),
            client(nats_url) as nc,
        ):
            body = {"category": "clip", "name": "k1", "operation": "create", "record": {"name": "k1"}}
            await request(nc, subject_prefix, "propose", {**body, "api_key": REQ})
            await request(nc, subject_prefix, "propose", {**body, "api_key": "not-a-real-key-123"})
            await request(nc, subject_prefix, "approve", {"api_key": REQ, "change_ids": [1]})
            await request(nc, subject_prefix, "approve", {"api_key": APP, "change_ids": [1]})
            await request(nc, subject_prefix, "apply", {"api_key": APP, "change_ids": [1]})
    text = json.dumps(logs, default=str)
    trail = "".join(
        p.read_text()
        for p in (base / ".hmr" / "writes").rglob("*")
        if p.is_file() and p.suffix in (".json", ".jsonl")
    )
    for secret in (REQ, APP, "not-a-real-key-123"):
        assert secret not in text and secret not in trail
    assert "write_auth_refused" in text and "key:" in trail
