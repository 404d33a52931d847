"""Units of the write path without servers: names, auth (with a local fake of AI-Horde's
find_user), the audit trail's segments and reader, the queue's persistence and reservations
across processes, planning, and the wire contracts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import ConflictError, InvalidModelNameError, RecordDecodeError
from horde_model_reference.records import (
    ClipModelRecord,
    GenericModelRecord,
    GenericModelRecordMetadata,
    LoraModelRecord,
    register_record_type,
)
from horde_model_reference.writes import auth as auth_module
from horde_model_reference.writes.audit import AuditFilter, AuditTrail, encode_raw_catalog
from horde_model_reference.writes.auth import Authorizer, key_hash
from horde_model_reference.writes.contracts import (
    COMMAND_TYPES,
    AuditAction,
    AuditEvent,
    Change,
    ChangeStatus,
    Operation,
    ProposeCommand,
    Role,
    WriteErrorReply,
    WriteReply,
    decode_command,
    decode_reply,
    encode_message,
)
from horde_model_reference.writes.errors import (
    AuthUnavailableError,
    ChangeStateError,
    ForbiddenError,
    UnauthorizedError,
)
from horde_model_reference.writes.plan import plan_apply, stamp_metadata
from horde_model_reference.writes.queue import ChangeFilter, ChangeQueue, QueueState
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.validation import (
    raw_record_digest,
    record_digest,
    validate_record,
    validate_write_name,
)

CLIP = MODEL_REFERENCE_CATEGORY.clip
TEXT = MODEL_REFERENCE_CATEGORY.text_generation


# -- records ----------------------------------------------------------------------------------


class _HouseLora(GenericModelRecord, frozen=True, kw_only=True):
    """A record type of one's own that does not set `record_type`."""

    house_rating: int = 0


def test_a_registered_record_type_without_a_record_type_can_be_written() -> None:
    register_record_type(MODEL_REFERENCE_CATEGORY.lora, _HouseLora)
    try:
        record = validate_record(
            MODEL_REFERENCE_CATEGORY.lora,
            "a",
            Operation.create,
            {"name": "a", "house_rating": 3},
            max_bytes=10_000,
        )
    finally:
        register_record_type(MODEL_REFERENCE_CATEGORY.lora, LoraModelRecord)
    assert isinstance(record, _HouseLora) and record.record_type == ""
    assert msgspec.json.decode(msgspec.json.encode(record)) == {"name": "a", "config": {}, "house_rating": 3}


def test_another_categorys_record_type_is_refused() -> None:
    with pytest.raises(RecordDecodeError, match="record_type"):
        validate_record(CLIP, "a", Operation.create, {"name": "a", "record_type": "lora"}, max_bytes=10_000)


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "name", "exists"),
    [
        (CLIP, "", False),
        (CLIP, "   ", False),
        (CLIP, " padded", False),
        (CLIP, "a/b", False),
        (CLIP, "a\\b", False),
        (CLIP, "a..b", False),
        (CLIP, "..", True),
        (CLIP, "x" * 257, False),
        (CLIP, "tab\there", False),
        (TEXT, "a/b/c", False),
        (TEXT, "/model", False),
        (TEXT, "org/", False),
        (TEXT, "org/../x", False),
        (CLIP, ".", False),
        (TEXT, "./model", False),
        (TEXT, "org/.", False),
        (CLIP, "a/b/c", True),
    ],
)
def test_bad_write_names(category: MODEL_REFERENCE_CATEGORY, name: str, exists: bool) -> None:
    with pytest.raises(InvalidModelNameError) as caught:
        validate_write_name(category, name, exists=exists)
    assert caught.value.name == name


@pytest.mark.parametrize(
    ("category", "name", "exists"),
    [
        (CLIP, "plain name-1.5", False),
        (TEXT, "org/model-7B", False),
        (CLIP, "ViT-L/14", True),
        (CLIP, "x" * 256, False),
    ],
)
def test_good_write_names(category: MODEL_REFERENCE_CATEGORY, name: str, exists: bool) -> None:
    assert validate_write_name(category, name, exists=exists) == name


def test_record_digest_is_sha256_of_the_canonical_json() -> None:
    import hashlib

    record = ClipModelRecord(name="c", pretrained_name="p")
    assert record_digest(record) == hashlib.sha256(msgspec.json.encode(record)).hexdigest()
    spaced = b'{ "pretrained_name": "p",\n  "name": "c" }'
    assert raw_record_digest(CLIP, spaced) == record_digest(record), "independent of whitespace and key order"


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_static_keys_roles_and_hashed_entries() -> None:
    settings = WriteSettings(requester_keys="r1, r2", approver_keys=[f"sha256:{key_hash('a1')}"])
    auth = Authorizer(settings)
    requester = await auth.authenticate("r2", role=Role.requester, command="propose")
    assert requester.roles == {Role.requester} and requester.actor == f"key:{key_hash('r2')[:16]}"
    approver = await auth.authenticate("a1", role=Role.requester, command="propose")
    assert approver.roles == {Role.requester, Role.approver}
    with pytest.raises(ForbiddenError) as forbidden:
        await auth.authenticate("r1", role=Role.approver, command="approve")
    assert forbidden.value.role == "approver" and "r1" not in str(forbidden.value)
    for key in (None, "", "nope", "x" * 5000):
        with pytest.raises(UnauthorizedError):
            await auth.authenticate(key, role=Role.requester, command="propose")


@pytest.mark.anyio
async def test_empty_allowlists_refuse_everything() -> None:
    for settings in (
        WriteSettings(),
        WriteSettings(approver_ids="1"),
        WriteSettings(horde_api_url="http://127.0.0.1:9"),
    ):
        auth = Authorizer(settings)
        assert not auth.enabled
        with pytest.raises(UnauthorizedError, match="no API keys"):
            await auth.authenticate("anything", role=Role.requester, command="propose")


def test_settings_from_the_environment() -> None:
    from horde_model_reference.settings import load_settings

    env = {
        "HORDE_MODEL_REFERENCE_WRITES__REQUESTER_KEYS": "k1,k2",
        "HORDE_MODEL_REFERENCE_WRITES__APPROVER_IDS": "7",
        "HORDE_MODEL_REFERENCE_WRITES__MAX_PAYLOAD_BYTES": "2048",
    }
    settings = msgspec.convert(
        {k.split("__", 1)[1].lower(): v for k, v in env.items()}, WriteSettings, strict=False
    )
    assert settings.keys("requester") == ("k1", "k2") and settings.user_ids("approver") == ("7",)
    assert settings.max_payload_bytes == 2048
    loaded = load_settings(env)
    writes = getattr(loaded, "writes", None)
    if writes is not None:  # once settings.py has the `writes` group
        assert writes.keys("requester") == ("k1", "k2")


class _FindUser(BaseHTTPRequestHandler):
    users = {"approver-horde-key": "alice#1", "requester-horde-key": "bob#22", "stranger-key": "eve#333"}
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        user = self.users.get(self.headers.get("apikey", ""))
        if self.path != "/api/v2/find_user" or user is None:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"username": user, "id": int(user.split("#")[1])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_horde() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FindUser)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_keys_verified_with_a_local_fake_of_find_user(fake_horde: str) -> None:
    settings = WriteSettings(horde_api_url=fake_horde, approver_ids="1", requester_ids="22")
    auth = Authorizer(settings)
    with capture_logs() as logs:
        alice = await auth.authenticate("approver-horde-key", role=Role.approver, command="apply")
        assert alice.actor == "horde:1" and Role.approver in alice.roles
        bob = await auth.authenticate("requester-horde-key", role=Role.requester, command="propose")
        assert bob.actor == "horde:22"
        with pytest.raises(ForbiddenError):
            await auth.authenticate("requester-horde-key", role=Role.approver, command="approve")
        for key in ("stranger-key", "unknown-key"):
            with pytest.raises(UnauthorizedError):
                await auth.authenticate(key, role=Role.requester, command="propose")
        calls = _FindUser.calls
        await auth.authenticate("approver-horde-key", role=Role.approver, command="apply")
        assert _FindUser.calls == calls, "answers are cached"
    text = json.dumps(logs)
    assert "horde-key" not in text and "stranger-key" not in text and "horde:333" in text


@pytest.mark.anyio
async def test_random_keys_cannot_grow_the_key_cache(
    fake_horde: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "_MAX_CACHED", 8)
    auth = Authorizer(WriteSettings(horde_api_url=fake_horde, approver_ids="1", requester_ids="22"))
    for n in range(30):
        with pytest.raises(UnauthorizedError):
            await auth.authenticate(f"random-key-{n}", role=Role.requester, command="propose")
    assert len(auth._cache) <= 8
    bob = await auth.authenticate("requester-horde-key", role=Role.requester, command="propose")
    assert bob.actor == "horde:22"


@pytest.mark.anyio
async def test_find_user_unreachable_is_a_clear_error() -> None:
    from horde_model_reference.bus.embedded import free_port

    auth = Authorizer(
        WriteSettings(horde_api_url=f"http://127.0.0.1:{free_port()}", approver_ids="1", horde_timeout=1)
    )
    with pytest.raises(AuthUnavailableError) as caught:
        await auth.authenticate("some-key", role=Role.approver, command="apply")
    assert "some-key" not in str(caught.value)


# -- audit trail ------------------------------------------------------------------------------


def _event(category: str, name: str, action: AuditAction = AuditAction.proposed, **kw: Any) -> AuditEvent:
    return AuditEvent(event_id=0, time=0.0, action=action, category=category, name=name, actor="key:t", **kw)


@pytest.mark.anyio
async def test_segments_rotate_by_size_and_the_reader_filters(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path, segment_bytes=600)
    written = []
    for i in range(30):
        written += await trail.append([_event("clip" if i % 2 else "blip", f"m{i % 5}", change_id=i)])
    assert [e.event_id for e in written] == list(range(1, 31))
    segments = trail.segments()
    assert len(segments) > 3 and all(p.stat().st_size < 600 + 200 for p in segments)
    assert [e.event_id for e in trail.read()] == list(range(1, 31))
    assert {e.category for e in trail.read(AuditFilter(category="clip"))} == {"clip"}
    assert [e.event_id for e in trail.read(AuditFilter(name="m1", category="clip"))] == [2, 12, 22]
    assert [e.event_id for e in trail.read(AuditFilter(after_id=20, before_id=24))] == [21, 22, 23]
    assert [e.event_id for e in trail.read(AuditFilter(after_id=25), limit=2)] == [26, 27]
    middle = written[14].time
    assert all(e.time >= middle for e in trail.read(AuditFilter(since=middle)))
    assert trail.read(AuditFilter(until=written[0].time - 1)) == []
    assert [e.change_id for e in trail.read(AuditFilter(change_id=7))] == [7]


@pytest.mark.anyio
async def test_a_torn_last_line_is_skipped_and_ids_continue(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path)
    await trail.append([_event("clip", "a"), _event("clip", "b")])
    with trail.segments()[-1].open("ab") as handle:
        handle.write(b'{"event_id": 3, "time": 1.0, "act')
    with capture_logs() as logs:
        assert [e.event_id for e in trail.read()] == [1, 2]
    assert logs[0]["event"] == "audit_line_skipped"
    [third] = await AuditTrail(tmp_path).append([_event("clip", "c")])
    assert third.event_id == 3
    with capture_logs():
        assert [e.name for e in trail.read()] == ["a", "b", "c"]


@pytest.mark.anyio
async def test_replay_starts_at_the_latest_baseline(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path)
    raw = msgspec.Raw
    await trail.append(
        [
            _event(
                "clip", "", AuditAction.baseline, catalog={"old": raw(b'{"name":"old"}')}, catalog_digest="d1"
            )
        ]
    )
    await trail.append(
        [
            _event(
                "clip",
                "x",
                AuditAction.applied,
                operation=Operation.create,
                after=raw(b'{"name":"x"}'),
                catalog_digest="d2",
            )
        ]
    )
    baseline = {"a": raw(b'{"name":"a"}'), "b": raw(b'{"name":"b"}')}
    await trail.append([_event("clip", "", AuditAction.baseline, catalog=baseline, catalog_digest="d3")])
    await trail.append(
        [_event("clip", "b", AuditAction.applied, operation=Operation.delete, catalog_digest="d4")]
    )
    await trail.append(
        [
            _event(
                "clip",
                "c",
                AuditAction.applied,
                operation=Operation.create,
                after=raw(b'{"name":"c"}'),
                catalog_digest="d5",
            )
        ]
    )
    await trail.append(
        [
            _event(
                "clip",
                "a",
                AuditAction.applied,
                operation=Operation.update,
                after=raw(b'{"name":"a","description":"2"}'),
                catalog_digest="d6",
            )
        ]
    )
    await trail.append(
        [_event("blip", "z", AuditAction.applied, operation=Operation.create, after=raw(b'{"name":"z"}'))]
    )
    assert list(trail.replay("clip")) == ["a", "c"]
    assert json.loads(trail.replay_bytes("clip")) == {
        "a": {"name": "a", "description": "2"},
        "c": {"name": "c"},
    }
    assert trail.replay_bytes("clip") == encode_raw_catalog(trail.replay("clip"))
    assert AuditTrail(tmp_path).last_catalog_digest("clip") == "d6"
    assert AuditTrail(tmp_path).last_catalog_digest("esrgan") is None


# -- the queue --------------------------------------------------------------------------------


def _change(state: QueueState, status: ChangeStatus = ChangeStatus.approved) -> Change:
    return state.put(
        Change(
            change_id=state.new_change_id(),
            category="clip",
            name="n",
            operation=Operation.create,
            status=status,
            requested_by="key:t",
            requested_at=time.time(),
            request_id="r",
        )
    )


@pytest.mark.anyio
async def test_the_queue_persists_and_a_failed_transaction_stores_nothing(tmp_path: Path) -> None:
    queue = ChangeQueue(tmp_path)
    first = await queue.transact(_change)
    assert first.change_id == 1

    def failing(state: QueueState) -> None:
        _change(state)
        state.expect([1], ChangeStatus.pending)

    with pytest.raises(ChangeStateError):
        await queue.transact(failing)
    again = ChangeQueue(tmp_path)
    assert [c.change_id for c in await again.read(lambda s: s.select(ChangeFilter()))] == [1]
    assert (await again.transact(_change)).change_id == 2


_RESERVER = """
import json, sys, time
import msgspec
from horde_model_reference.writes.contracts import ChangeStatus
from horde_model_reference.writes.queue import ChangeQueue
from horde_model_reference.writes.errors import ChangeStateError
queue, me, start = ChangeQueue(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ids = list(range(1, int(sys.argv[4]) + 1))
if me == "b":
    ids.reverse()
while time.time() < start:
    time.sleep(0.001)
won = []
for change_id in ids:
    def reserve(state):
        change = state.expect([change_id], ChangeStatus.approved)[0]
        state.put(msgspec.structs.replace(change, status=ChangeStatus.applying, applying_by=me))
    try:
        queue.transact_sync(reserve)
        won.append(change_id)
    except ChangeStateError:
        pass
print(json.dumps(won))
"""


def test_two_processes_never_reserve_the_same_change(tmp_path: Path) -> None:
    count = 60
    queue = ChangeQueue(tmp_path)
    for _ in range(count):
        queue.transact_sync(_change)
    start = str(time.time() + 1.5)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVER, str(tmp_path), name, start, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    won = [set(json.loads(worker.communicate(timeout=60)[0])) for worker in workers]
    assert not won[0] & won[1]
    assert won[0] | won[1] == set(range(1, count + 1))
    holders = queue.transact_sync(lambda s: {c.change_id: c.applying_by for c in s.select(ChangeFilter())})
    assert {i for i, who in holders.items() if who == "a"} == won[0]


# -- planning ---------------------------------------------------------------------------------


def test_stamp_keeps_created_and_sets_updated() -> None:
    previous = ClipModelRecord(
        name="c", metadata=GenericModelRecordMetadata(created_at=10, created_by="horde:1")
    )
    stamped = stamp_metadata(ClipModelRecord(name="c"), previous, actor="horde:2", now=20)
    assert (stamped.metadata.created_at, stamped.metadata.created_by) == (10, "horde:1")
    assert (stamped.metadata.updated_at, stamped.metadata.updated_by) == (20, "horde:2")
    fresh = stamp_metadata(ClipModelRecord(name="c"), None, actor="horde:2", now=30)
    assert fresh.metadata.created_at == fresh.metadata.updated_at == 30


def test_plan_conflicts_name_both_sides() -> None:
    existing = msgspec.Raw(b'{"name": "c", "description": "now"}')
    base = raw_record_digest(CLIP, b'{"name": "c", "description": "then"}')
    change = Change(
        change_id=1,
        category="clip",
        name="c",
        operation=Operation.update,
        status=ChangeStatus.approved,
        record=msgspec.Raw(b'{"name":"c"}'),
        base_digest=base,
        requested_by="k",
        requested_at=0,
        request_id="r",
    )
    with pytest.raises(ConflictError) as caught:
        plan_apply([change], {CLIP: {"c": existing}}, actor="k", now=1)
    assert base in str(caught.value.expected) and raw_record_digest(CLIP, bytes(existing)) in str(
        caught.value.actual
    )
    create = msgspec.structs.replace(change, operation=Operation.create, base_digest=None)
    with pytest.raises(ConflictError):
        plan_apply([create], {CLIP: {"c": existing}}, actor="k", now=1)


# -- contracts --------------------------------------------------------------------------------


def test_commands_and_replies_round_trip_and_export_schemas() -> None:
    command = ProposeCommand(
        api_key="k",
        category="clip",
        name="n",
        operation=Operation.create,
        record=msgspec.Raw(b'{"name":"n"}'),
    )
    data = encode_message(command)
    assert json.loads(data)["type"] == "propose"
    assert decode_command("propose", data) == command
    assert decode_command("propose", data.replace(b'"type":"propose",', b"")) == command, (
        "the tag may be left out"
    )
    with pytest.raises(msgspec.ValidationError):
        decode_command("approve", data)
    error = WriteErrorReply(code="conflict", message="m", details={"expected": "a", "actual": "b"})
    assert decode_reply(encode_message(error)) == error
    for kind in [*COMMAND_TYPES.values(), *WriteReply.__args__]:  # type: ignore[attr-defined]
        schema = msgspec.json.schema(kind)
        assert "$defs" in schema or "properties" in schema
    assert set(COMMAND_TYPES) == {
        "propose",
        "changes",
        "change",
        "approve",
        "reject",
        "apply",
        "purge",
        "audit",
    }
