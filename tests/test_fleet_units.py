"""Unit tests of the fleet-scale parts (issue 15): bad settings, the breaker, jitter, the responder."""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
import pytest

from horde_model_reference import SettingsError, load_settings
from horde_model_reference.bus.connection import jittered
from horde_model_reference.bus.events import (
    ErrorReply,
    NotModified,
    Snapshot,
    SnapshotRequest,
    Subjects,
    decode_event,
    encode_event,
)
from horde_model_reference.bus.jetstream_sources import SnapshotSources
from horde_model_reference.bus.jetstream_store import bucket_name
from horde_model_reference.bus.snapshot_store import CircuitBreaker
from horde_model_reference.catalog import DecodedCatalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.supervisor import ServiceConfig
from horde_model_reference.supervisor._responders import SnapshotResponder
from horde_model_reference.supervisor.actor import CategorySlot

CLIP = MODEL_REFERENCE_CATEGORY.clip


@pytest.mark.parametrize(
    ("field", "value"),
    [("jetstream_replicas", 0), ("responder_concurrency", 0), ("store_wait", 0.0), ("store_wait", -1.0)],
)
def test_bad_service_settings_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"ServiceConfig.{field}"):
        ServiceConfig(data_dir="x", **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HORDE_MODEL_REFERENCE_NATS__JETSTREAM_REPLICAS", "0"),
        ("HORDE_MODEL_REFERENCE_NATS__RESYNC_JITTER", "-1"),
        ("HORDE_MODEL_REFERENCE_REDIS__PUBLISH_WAIT", "0"),
        ("HORDE_MODEL_REFERENCE_NATS__JETSTREAM", "maybe"),
    ],
)
def test_bad_fleet_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable.removeprefix("HORDE_MODEL_REFERENCE_")):
        load_settings({variable: value})


def test_fleet_settings_are_read() -> None:
    settings = load_settings(
        {
            "HORDE_MODEL_REFERENCE_NATS__JETSTREAM": "false",
            "HORDE_MODEL_REFERENCE_NATS__JETSTREAM_REPLICAS": "3",
            "HORDE_MODEL_REFERENCE_NATS__RESYNC_JITTER": "0",
            "HORDE_MODEL_REFERENCE_NATS__SNAPSHOT_REQUESTS": "false",
            "HORDE_MODEL_REFERENCE_REDIS__PUBLISH_WAIT": "0.1",
        }
    )
    assert (settings.nats.jetstream, settings.nats.jetstream_replicas, settings.nats.resync_jitter) == (
        False,
        3,
        0,
    )
    assert settings.nats.snapshot_requests is False and settings.redis.publish_wait == 0.1


def test_the_breaker_opens_once_and_closes_after_its_cooldown() -> None:
    breaker = CircuitBreaker("redis", cooldown=0.05)
    assert breaker.allow()
    breaker.failed("timed out")
    assert not breaker.allow() and breaker.trips == 1
    deadline = time.monotonic() + 5
    while not breaker.allow():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    breaker.succeeded()
    assert breaker.allow() and not breaker.is_open


def test_reconnect_waits_are_spread_and_never_near_zero() -> None:
    waits = [jittered(1.0, 0.5) for _ in range(200)]
    assert all(0.5 <= w <= 1.5 for w in waits) and len(set(waits)) > 100
    assert jittered(1.0, 5.0) >= 0.1


def test_bucket_names_are_valid_for_any_prefix() -> None:
    assert bucket_name("hmr.v1") == "hmr_v1_snapshots"
    assert bucket_name("a.b-c.d*") == "a_b-c_d__snapshots"


@dataclass
class _Msg:
    subject: str
    data: bytes
    reply: str = "_INBOX.x"
    headers: dict[str, str] | None = None


def _slot(data: bytes = b'{"c1": {"name": "c1", "record_type": "clip"}}') -> CategorySlot:
    slot = CategorySlot(CLIP)
    slot.install(3, "d" * 64, data, DecodedCatalog(category=CLIP, records={}))
    return slot


def _ask(responder: SnapshotResponder, request: SnapshotRequest | bytes) -> object:
    body = request if isinstance(request, bytes) else msgspec.json.encode(request)
    reply = responder(_Msg("hmr.v1.snapshot.clip", body))  # type: ignore[arg-type]
    return None if reply is None else decode_event(reply)


def test_the_responder_answers_not_modified_sheds_expired_and_encodes_once() -> None:
    responder = SnapshotResponder({CLIP: _slot()}, "service-1")
    assert _ask(responder, SnapshotRequest(held_revision=3, held_digest="d" * 64)) == NotModified(
        category="clip", revision=3, digest="d" * 64, service_id="service-1"
    )
    first = _ask(responder, SnapshotRequest(held_revision=2, held_digest="e" * 64))
    assert isinstance(first, Snapshot) and first.revision == 3
    assert isinstance(_ask(responder, b""), Snapshot)  # an old consumer's empty request
    assert _ask(responder, SnapshotRequest(deadline=time.time() - 1)) is None
    assert isinstance(_ask(responder, SnapshotRequest(deadline=time.time() + 60)), Snapshot)
    bad = _ask(responder, b"{not json")
    assert isinstance(bad, ErrorReply) and bad.error == "bad_request"
    behind = _ask(responder, SnapshotRequest(min_revision=4))
    assert isinstance(behind, ErrorReply) and behind.error == "behind"
    assert responder.stats["expired"] == 1 and responder.stats["not_modified"] == 1
    assert responder.stats["snapshots"] == 3 and responder.stats["errors"] == 2


class _FakeNats:
    """Records the snapshot requests; answers NotModified."""

    is_connected = True

    def __init__(self) -> None:
        self.requests: list[SnapshotRequest] = []

    async def request(self, subject: str, payload: bytes, timeout: float) -> _Msg:
        self.requests.append(msgspec.json.decode(payload, type=SnapshotRequest))
        reply = NotModified(category="clip", revision=3, digest="d" * 64, service_id="s")
        return _Msg(subject="_INBOX.x", data=encode_event(reply))


@pytest.mark.anyio
async def test_a_request_carries_a_deadline_only_once_the_service_clock_is_known() -> None:
    stats = {
        k: 0
        for k in (
            "snapshots_jetstream",
            "snapshots_redis",
            "snapshots_nats",
            "not_modified",
            "snapshot_bytes",
        )
    }
    sources = SnapshotSources(
        Subjects("hmr.v1"),
        request_timeout=2.0,
        jetstream=False,
        redis=None,
        breaker_seconds=30.0,
        stats=stats,
    )
    nc = _FakeNats()
    sources.attach(nc)  # type: ignore[arg-type]
    found = await sources.fetch("clip", min_revision=0, held=(3, "d" * 64))
    assert found is not None and found.snapshot is None and stats["not_modified"] == 1
    sources.clock_offset = -100.0  # the service's clock is 100 s behind ours
    await sources.fetch("clip", min_revision=0, held=(3, "d" * 64))
    first, second = nc.requests
    assert first.deadline == 0.0 and (first.held_revision, first.held_digest) == (3, "d" * 64)
    assert abs(second.deadline - (time.time() - 100 + 2.0)) < 5


def test_a_late_heartbeat_does_not_shrink_the_service_clock_offset() -> None:
    sources = SnapshotSources(
        Subjects("hmr.v1"), request_timeout=2.0, jetstream=False, redis=None, breaker_seconds=30.0, stats={}
    )
    now = time.time()
    sources.observe_clock("service-1", now + 5.0)
    sources.observe_clock("service-1", now - 20.0)  # sent long ago, delivered now: a backlog
    assert sources.clock_offset is not None and sources.clock_offset > 4.0
    sources.observe_clock("service-2", now - 1.0)  # another service: its own clock
    assert sources.clock_offset is not None and sources.clock_offset < 0
