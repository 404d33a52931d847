"""Bounded writers over the real NATS write bus (issue 16, findings 3, 5, 6, 7): rate limits,
pending bounds, pages bounded by bytes, the SQLite queue's import of a legacy queue.json, deep
JSON, look-alike names, record names in errors, `status` always sent, bounded echoes and the
"two people" rule."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from structlog.testing import capture_logs

from conftest import seed_example_catalog
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.events import Subjects
from horde_model_reference.writes.contracts import (
    ApplyResult,
    BatchResult,
    ChangePage,
    ChangeReply,
    WriteErrorReply,
    WriteReply,
    decode_reply,
)
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REQ, REQ2, APP, APP2 = "bounds-requester", "bounds-requester-2", "bounds-approver", "bounds-approver-2"
DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return seed_example_catalog(tmp_path)


def settings(**overrides: Any) -> WriteSettings:
    return WriteSettings(requester_keys=[REQ, REQ2], approver_keys=[APP, APP2], **overrides)


@asynccontextmanager
async def bus(base: Path, nats_url: str, prefix: str, config: WriteSettings) -> AsyncIterator[Client]:
    """The service with its write path, and a NATS client to send it commands."""
    async with running_write_service(base, nats_url=nats_url, subject_prefix=prefix, settings=config) as _:
        nc = await connect_nats(NatsOptions(url=nats_url, name="writes-bounds-test"))
        try:
            yield nc
        finally:
            await nc.close()


async def send(nc: Client, prefix: str, command: str, body: dict[str, Any] | bytes) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await nc.request(Subjects(prefix).write(command), data, timeout=20)
    return bytes(msg.data)


async def request(nc: Client, prefix: str, command: str, body: dict[str, Any] | bytes) -> WriteReply:
    return decode_reply(await send(nc, prefix, command, body))


def image(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **extra}


def propose(key: str, name: str, **extra: Any) -> dict[str, Any]:
    record = image(name, **extra)
    return {
        "api_key": key,
        "category": "image_generation",
        "name": name,
        "operation": "create",
        "record": record,
    }


async def test_proposals_past_the_rate_limit_are_refused(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with bus(base, nats_url, subject_prefix, settings(propose_rate="3/minute")) as nc:
        for i in range(3):
            assert isinstance(
                await request(nc, subject_prefix, "propose", propose(REQ, f"rate {i}")), ChangeReply
            )
        refused = await request(nc, subject_prefix, "propose", propose(REQ, "rate 3"))
        assert isinstance(refused, WriteErrorReply) and refused.code == "rate_limited", refused
        assert refused.details["limit"] == "3 per 1 minute"
        retry_after = refused.details["retry_after"]
        assert isinstance(retry_after, float) and 0 < retry_after <= 60
        other = await request(nc, subject_prefix, "propose", propose(REQ2, "rate other"))
        assert isinstance(other, ChangeReply), "the limit is per caller"
        page = await request(nc, subject_prefix, "changes", {"api_key": REQ})
        assert isinstance(page, ChangePage) and page.total == 4, "a refused proposal stores nothing"


async def test_pending_changes_are_bounded_in_all_and_per_requester(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    config = settings(max_pending=3, max_pending_per_requester=2)
    async with bus(base, nats_url, subject_prefix, config) as nc:
        ids = []
        for name in ("one", "two"):
            reply = await request(nc, subject_prefix, "propose", propose(REQ, name))
            assert isinstance(reply, ChangeReply)
            ids.append(reply.change.change_id)
        mine = await request(nc, subject_prefix, "propose", propose(REQ, "three"))
        assert isinstance(mine, WriteErrorReply) and mine.code == "queue_full", mine
        assert mine.details["limit"] == 2 and mine.details["actor"] is not None
        assert isinstance(await request(nc, subject_prefix, "propose", propose(REQ2, "four")), ChangeReply)
        full = await request(nc, subject_prefix, "propose", propose(REQ2, "five"))
        assert isinstance(full, WriteErrorReply) and full.code == "queue_full"
        assert full.details["limit"] == 3 and "the queue holds 3 pending" in full.message
        rejected = await request(
            nc, subject_prefix, "reject", {"api_key": APP, "change_ids": [ids[0]], "reason": "room"}
        )
        assert isinstance(rejected, BatchResult)
        assert isinstance(await request(nc, subject_prefix, "propose", propose(REQ2, "five")), ChangeReply)


async def test_change_and_audit_pages_are_bounded_by_bytes(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    config = settings(max_page_bytes=100_000)
    padding = "p" * 40_000
    async with bus(base, nats_url, subject_prefix, config) as nc:
        for i in range(5):
            reply = await request(
                nc, subject_prefix, "propose", propose(REQ, f"big {i}", description=padding)
            )
            assert isinstance(reply, ChangeReply)
        seen: list[int] = []
        offset: int | None = 0
        while offset is not None:
            raw = await send(nc, subject_prefix, "changes", {"api_key": REQ, "limit": 500, "offset": offset})
            page = decode_reply(raw)
            assert isinstance(page, ChangePage) and page.total == 5
            assert 1 <= len(page.items) < 5 and len(raw) < 100_000 + 50_000
            seen += [c.change_id for c in page.items]
            offset = page.next_offset
        assert seen == sorted(seen) and len(seen) == 5
        raw = await send(nc, subject_prefix, "audit", {"api_key": REQ, "limit": 1000})
        audit = decode_reply(raw)
        assert len(raw) < 150_000 and audit.next_after_id is not None  # type: ignore[union-attr]
        raw = await send(nc, subject_prefix, "approve", {"api_key": APP, "change_ids": seen})
        approved = decode_reply(raw)
        assert isinstance(approved, BatchResult) and len(approved.changes) == 5 and len(raw) < 20_000
        assert all(c.record is msgspec.UNSET for c in approved.changes), "records left out past the bound"


async def test_a_legacy_queue_document_is_imported_once(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    legacy = {
        "version": 1,
        "next_change_id": 8,
        "next_batch_id": 3,
        "changes": [
            {"change_id": 5, "category": "image_generation", "name": "old pending", "operation": "delete",
             "requested_by": "key:x", "requested_at": 1.0, "request_id": "r5", "base_digest": "d"},
            {"change_id": 7, "category": "image_generation", "name": "old approved", "operation": "delete",
             "status": "approved", "batch_id": 2, "requested_by": "key:x", "requested_at": 2.0,
             "request_id": "r7", "base_digest": "d"},
        ],
    }  # fmt: skip
    queue_dir = base / ".hmr" / "writes"
    queue_dir.mkdir(parents=True)
    (queue_dir / "queue.json").write_text(json.dumps(legacy))
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        raw = await send(nc, subject_prefix, "changes", {"api_key": REQ})
        page = decode_reply(raw)
        assert isinstance(page, ChangePage)
        assert [(c.change_id, c.status.value) for c in page.items] == [(5, "pending"), (7, "approved")]
        fresh = await request(nc, subject_prefix, "propose", propose(REQ, "after import"))
        assert isinstance(fresh, ChangeReply) and fresh.change.change_id == 8
    assert not (queue_dir / "queue.json").exists() and (queue_dir / "queue.json.migrated").is_file()
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        page = await request(nc, subject_prefix, "changes", {"api_key": REQ})
        assert isinstance(page, ChangePage) and [c.change_id for c in page.items] == [5, 7, 8]


async def test_deeply_nested_json_is_a_bad_request(base: Path, nats_url: str, subject_prefix: str) -> None:
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        with capture_logs() as logs:
            body = (
                b'{"api_key": "%s", "category": "image_generation", "name": "deep", "operation": "create",'
                b' "record": {"name": "deep", "x": %s}}' % (REQ.encode(), DEEP)
            )
            reply = await request(nc, subject_prefix, "propose", body)
            approve = await request(nc, subject_prefix, "approve", b'{"x": %s, "change_ids": [1]}' % DEEP)
        for refused in (reply, approve):
            assert isinstance(refused, WriteErrorReply) and refused.code == "bad_request", refused
            assert "nested too deeply" in refused.message
        assert not [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]


@pytest.mark.parametrize(
    ("category", "name"),
    [
        ("image_generation", "\uff36\uff49\uff34 model"),  # fullwidth letters
        ("image_generation", "St\u0430ble model"),  # a Cyrillic a among Latin letters
        ("image_generation", "zero\u200bwidth"),
        ("image_generation", "bidi\u202eoverride"),
        ("image_generation", "next\u0085line"),
        ("clip", "ViT\u2010L\u221514"),  # a hyphen and a division slash
        ("clip", "ViT-L\u204414"),  # a fraction slash
        ("text_generation", "org\uff0fmodel"),  # a fullwidth solidus
        ("text_generation", "koboldcpp/shadow-model"),
        ("text_generation", "KoboldCpp/shadow-model"),
    ],
)
async def test_look_alike_names_are_refused(
    base: Path, nats_url: str, subject_prefix: str, category: str, name: str
) -> None:
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        body = {
            "api_key": REQ,
            "category": category,
            "name": name,
            "operation": "create",
            "record": {"name": name},
        }
        reply = await request(nc, subject_prefix, "propose", body)
        assert isinstance(reply, WriteErrorReply) and reply.code == "invalid_name", reply
        assert reply.details["name"] == name


async def test_refusals_name_the_record_and_echo_a_bounded_slice(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        bad = propose(REQ, "Typed Wrong")
        bad["record"]["nsfw"] = "no"
        reply = await request(nc, subject_prefix, "propose", bad)
        assert isinstance(reply, WriteErrorReply) and reply.code == "invalid_record"
        assert reply.details["name"] == "Typed Wrong" and "'Typed Wrong'" in reply.message
        assert "'?'" not in reply.message
        huge = "x" * 70_000
        reply = await request(nc, subject_prefix, "propose", propose(REQ, huge))
        assert isinstance(reply, WriteErrorReply) and reply.code == "invalid_name"
        assert len(reply.message) < 1_000 and "more characters" in reply.message
        assert all(len(str(value)) < 1_000 for value in reply.details.values())


async def test_a_pending_change_always_sends_its_status(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        raw = await send(nc, subject_prefix, "propose", propose(REQ, "with status"))
        assert msgspec.json.decode(raw)["change"]["status"] == "pending"


async def test_two_people_rule(base: Path, nats_url: str, subject_prefix: str) -> None:
    async with bus(base, nats_url, subject_prefix, settings(two_person_rule=True)) as nc:
        own = await request(nc, subject_prefix, "propose", propose(APP, "own change"))
        assert isinstance(own, ChangeReply)
        change_id = own.change.change_id
        refused = await request(nc, subject_prefix, "approve", {"api_key": APP, "change_ids": [change_id]})
        assert isinstance(refused, WriteErrorReply) and refused.code == "forbidden", refused
        assert refused.details["change_id"] == change_id and "two people" in refused.message
        approved = await request(nc, subject_prefix, "approve", {"api_key": APP2, "change_ids": [change_id]})
        assert isinstance(approved, BatchResult)
        for body in ({"change_ids": [change_id]}, {"batch_id": approved.batch_id}):
            refused = await request(nc, subject_prefix, "apply", {"api_key": APP, **body})
            assert isinstance(refused, WriteErrorReply) and refused.code == "forbidden", refused
        applied = await request(nc, subject_prefix, "apply", {"api_key": APP2, "change_ids": [change_id]})
        assert isinstance(applied, ApplyResult), applied


async def test_without_the_two_people_rule_an_approver_reviews_its_own(
    base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with bus(base, nats_url, subject_prefix, settings()) as nc:
        own = await request(nc, subject_prefix, "propose", propose(APP, "own change"))
        assert isinstance(own, ChangeReply)
        approved = await request(
            nc, subject_prefix, "approve", {"api_key": APP, "change_ids": [own.change.change_id]}
        )
        assert isinstance(approved, BatchResult)
