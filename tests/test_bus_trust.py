"""Trust on the bus (issue 16, findings 1 and 2) against a real NATS server and a real service:
forged deltas, forged snapshots, absurd revisions, signatures, key rotation, reply reflection."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest
from structlog.testing import capture_logs

from bus_harness import ChildConsumer, Consumer, canonical_digest, consumer, running_service, write_catalog
from horde_model_reference.bus.connection import NatsAuth
from horde_model_reference.bus.events import CategoryChanged, Snapshot, Subjects, encode_event
from horde_model_reference.bus.signing import (
    Verifier,
    generate_private_key_pem,
    load_signer,
    public_key_text,
    sign_payload,
    sign_snapshot,
)
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore, StoredSnapshot
from horde_model_reference.bus.trust import MAX_REVISION_LEAD, BusTrust, catalog_records_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CLIP = MODEL_REFERENCE_CATEGORY.clip
MODEL = "ViT-L/14"
ATTACKER_URL = "https://attacker.example/ViT-L-14.pt"
_RAW = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _service(base: Path, nats_url: str, prefix: str, *, signing_key: str | None = None) -> Any:
    return running_service(
        base,
        nats_url=nats_url,
        subject_prefix=prefix,
        nats_auth=NatsAuth(signing_key=signing_key),
        categories=(CLIP.value,),
    )


def _follower(
    nats_url: str, prefix: str, *, trusted: tuple[str, ...] = (), ready_timeout: float = 10.0
) -> Any:
    return consumer(nats_url, prefix, auth=NatsAuth(trusted_keys=trusted), ready_timeout=ready_timeout)


def _primary(tmp_path: Path, shared_data: Path) -> tuple[Path, bytes]:
    base = tmp_path / "primary"
    base.mkdir()
    data = (shared_data / "golden-v2" / "clip.json").read_bytes()
    write_catalog(base, CLIP, data)
    return base, data


def _poisoned(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The clip catalog with ViT-L/14 downloading from the attacker's host: the record, the catalog."""
    catalog = json.loads(data)
    catalog[MODEL]["config"]["download"][0]["file_url"] = ATTACKER_URL
    return catalog[MODEL], json.dumps(catalog).encode()


def _file_url(consumer: Consumer) -> str:
    url: str = consumer.cache.snapshots[CLIP.value].records[MODEL].config.download[0].file_url
    return url


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.mark.parametrize("claimed_digest", ["held", "fresh"])
async def test_a_forged_delta_is_not_installed(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str, claimed_digest: str
) -> None:
    """Finding 1: revision + 1 and the right previous digest (both in every heartbeat) are not enough."""
    base, data = _primary(tmp_path, shared_data)
    async with (
        _service(base, nats_url, subject_prefix) as service,
        _follower(nats_url, subject_prefix) as follower,
    ):
        await follower.wait_revision(service.revision(CLIP), CLIP)
        held = follower.cache.snapshots[CLIP.value]
        record, _ = _poisoned(data)
        forged = CategoryChanged(
            category=CLIP.value,
            revision=held.revision + 1,
            digest=held.digest if claimed_digest == "held" else "f" * 64,
            previous_digest=held.digest,
            changed=[MODEL],
            records={MODEL: msgspec.Raw(json.dumps(record).encode())},
            record_count=len(held.records),
            service_id=service.service_id,
        )
        attacker = await nats.connect(nats_url)
        try:
            with capture_logs() as logs:
                await attacker.publish(Subjects(subject_prefix).changed(CLIP.value), encode_event(forged))
                await attacker.flush()
                await _until(
                    lambda: (
                        follower.revision(CLIP) != held.revision or bool(follower.engine.stats.get("refused"))
                    )
                )
        finally:
            await attacker.close()
        assert _file_url(follower) != ATTACKER_URL
        assert follower.revision(CLIP) == held.revision
        (refusal, *_) = _events(logs, "bus_delta_refused")
        assert refusal["category"] == CLIP.value and refusal["revision"] == held.revision + 1
        assert "records digest" in refusal["reason"] or "previous digest" in refusal["reason"]


async def test_an_absurd_revision_is_not_chased_forever_nor_installed(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    """Finding 1: a no-delta event with a huge revision plus a forged snapshot responder."""
    base, data = _primary(tmp_path, shared_data)
    subjects = Subjects(subject_prefix)
    async with (
        _service(base, nats_url, subject_prefix) as service,
        _follower(nats_url, subject_prefix) as follower,
    ):
        await follower.wait_revision(service.revision(CLIP), CLIP)
        held = follower.cache.snapshots[CLIP.value]
        _, poisoned = _poisoned(data)
        huge = 10**9
        forged_snapshot = encode_event(
            Snapshot(
                category=CLIP.value,
                revision=huge,
                digest=canonical_digest(poisoned),
                data=msgspec.Raw(poisoned),
            )
        )
        answered = 0

        async def forged_responder(msg: Any) -> None:
            nonlocal answered
            answered += 1
            await msg.respond(forged_snapshot)

        attacker = await nats.connect(nats_url)
        try:
            await attacker.subscribe(subjects.snapshot(CLIP.value), cb=forged_responder)
            await attacker.flush()
            event = CategoryChanged(
                category=CLIP.value,
                revision=huge,
                digest=canonical_digest(poisoned),
                previous_digest=held.digest,
                changed=[MODEL],
            )
            with capture_logs() as logs:
                await attacker.publish(subjects.changed(CLIP.value), encode_event(event))
                await attacker.flush()
                try:
                    await _until(
                        lambda: (
                            bool(_events(logs, "bus_revision_not_chased")) or follower.revision(CLIP) == huge
                        ),
                        60,
                    )
                except TimeoutError:
                    seen = [
                        (e["event"], e.get("reason") or e.get("error"))
                        for e in logs
                        if e["event"].startswith("bus_")
                    ]
                    raise AssertionError(f"the chase did not end: {seen}") from None
        finally:
            await attacker.close()
        assert follower.revision(CLIP) == held.revision
        assert follower.digest(CLIP) == held.digest
        assert _file_url(follower) != ATTACKER_URL
        (gave_up,) = _events(logs, "bus_revision_not_chased")
        assert gave_up["revision"] == huge
        refused = _events(logs, "bus_snapshot_refused")
        assert all(f"at most {MAX_REVISION_LEAD}" in entry["reason"] for entry in refused)
        assert answered >= 1 or _events(logs, "bus_resync_failed")


async def test_a_signed_bus_patches_signed_deltas_and_refuses_every_forgery(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    """Finding 1, signatures: a self-consistent forgery (right records digest) unsigned or signed by
    another key is refused; the service's own deltas are patched."""
    base, data = _primary(tmp_path, shared_data)
    key = generate_private_key_pem()
    stranger = load_signer(key_pem=generate_private_key_pem().decode())
    public = public_key_text(key)
    async with (
        _service(base, nats_url, subject_prefix, signing_key=key.decode()) as service,
        _follower(nats_url, subject_prefix, trusted=(public,)) as follower,
    ):
        await follower.wait_revision(service.revision(CLIP), CLIP)
        catalog = json.loads(data)
        catalog[MODEL]["description"] = "a real change"
        write_catalog(base, CLIP, json.dumps(catalog, indent=2).encode())
        revision = await service.refresh(CLIP)
        await follower.wait_revision(revision, CLIP)
        assert follower.engine.stats["patched"] >= 1
        assert follower.cache.snapshots[CLIP.value].records[MODEL].description == "a real change"

        held = follower.cache.snapshots[CLIP.value]
        current = service.snapshot(CLIP)
        assert current is not None and current.revision == held.revision
        record, poisoned = _poisoned(bytes(current.data))
        forged = encode_event(
            CategoryChanged(
                category=CLIP.value,
                revision=held.revision + 1,
                digest=canonical_digest(poisoned),
                previous_digest=held.digest,
                changed=[MODEL],
                records={MODEL: msgspec.Raw(json.dumps(record).encode())},
                records_digest=catalog_records_digest(_RAW.decode(poisoned)),
            )
        )
        attacker = await nats.connect(nats_url)
        try:
            with capture_logs() as logs:
                subject = Subjects(subject_prefix).changed(CLIP.value)
                await attacker.publish(subject, forged)
                await attacker.publish(subject, forged, headers=sign_payload(stranger, forged))
                await attacker.flush()
                await _until(lambda: len(_events(logs, "bus_message_refused")) >= 2)
        finally:
            await attacker.close()
        assert follower.revision(CLIP) == held.revision
        assert _file_url(follower) != ATTACKER_URL
        refused = _events(logs, "bus_message_refused")
        assert {entry["subject"] for entry in refused} == {subject}  # the signed heartbeats pass
        reasons = [entry["reason"] for entry in refused]
        assert any("unsigned" in reason for reason in reasons)
        assert any("not accepted" in reason for reason in reasons)
        secret = key.decode().splitlines()[1]
        assert all(secret not in str(entry) for entry in logs)


async def test_a_consumer_with_keys_refuses_an_unsigned_service_and_accepts_a_rotated_key(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    base, _ = _primary(tmp_path, shared_data)
    old, new = generate_private_key_pem(), generate_private_key_pem()
    async with _service(base, nats_url, subject_prefix) as unsigned:
        with capture_logs() as logs:
            async with _follower(
                nats_url, subject_prefix, trusted=(public_key_text(old),), ready_timeout=1.0
            ) as strict:
                await _until(lambda: bool(_events(logs, "bus_snapshot_refused")))
                assert strict.revision(CLIP) is None
        assert unsigned.revision(CLIP) >= 1
        assert "unsigned" in _events(logs, "bus_snapshot_refused")[0]["reason"]
    # Rotation: the consumer accepts the old and the new key while the service moves to the new one.
    async with (
        _service(base, nats_url, subject_prefix, signing_key=new.decode()) as service,
        _follower(nats_url, subject_prefix, trusted=(public_key_text(old), public_key_text(new))) as rotating,
    ):
        await rotating.wait_revision(service.revision(CLIP), CLIP)
        snapshot = service.snapshot(CLIP)
        assert snapshot is not None and snapshot.signature is not None
        signer = load_signer(key_pem=new.decode())
        assert snapshot.signature == sign_snapshot(signer, CLIP.value, snapshot.revision, snapshot.digest)


async def test_the_service_never_replies_onto_its_own_subjects(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    """Finding 2: requests naming `<prefix>.changed.image_generation` as their reply subject."""
    base, _ = _primary(tmp_path, shared_data)
    subjects = Subjects(subject_prefix)
    target = subjects.changed(MODEL_REFERENCE_CATEGORY.image_generation.value)
    reflected: list[bytes] = []
    async with running_write_service(
        base,
        nats_url=nats_url,
        subject_prefix=subject_prefix,
        settings=WriteSettings(),
        categories=(CLIP.value,),
    ) as (service, _):
        client = await nats.connect(nats_url)
        try:

            async def collect(msg: Any) -> None:
                reflected.append(msg.data)

            await client.subscribe(target, cb=collect)
            await client.subscribe("not.an.inbox", cb=collect)
            await client.flush()
            requests = [subjects.snapshot(CLIP.value), subjects.health, subjects.write("propose")]
            for subject in requests:
                for _ in range(50):
                    await client.publish(subject, b"", reply=target)
                await client.publish(subject, b"", reply=subjects.heartbeat)
                await client.publish(subject, b"", reply="not.an.inbox")
            await client.flush()
            await _until(lambda: service.nats_link.replies_refused >= 52 * len(requests))
            for subject in requests:  # the responders still answer proper requests
                reply = await client.request(subject, b"", timeout=5)
                assert reply.data
            await client.flush()
        finally:
            await client.close()
    assert reflected == []


async def test_a_manager_takes_its_trusted_keys_from_the_settings(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS reaches a ModelReferenceManager in another process."""
    base, _ = _primary(tmp_path, shared_data)
    key = generate_private_key_pem()
    async with _service(base, nats_url, subject_prefix, signing_key=key.decode()) as service:
        revision = service.revision(CLIP)
        children = []
        try:
            for name, trusted in (
                ("right", public_key_text(key)),
                ("wrong", public_key_text(generate_private_key_pem())),
            ):
                monkeypatch.setenv("HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS", trusted)
                workdir = tmp_path / name
                workdir.mkdir()
                children.append(
                    await anyio.to_thread.run_sync(ChildConsumer, nats_url, subject_prefix, workdir)
                )
            right, wrong = children
            answer = await anyio.to_thread.run_sync(right.ask, f"wait clip {revision} 20", 30)
            assert answer == {"reached": True, "revision": revision}
            answer = await anyio.to_thread.run_sync(wrong.ask, f"wait clip {revision} 2", 30)
            assert answer["reached"] is False
        finally:
            for child in children:
                await anyio.to_thread.run_sync(child.close)


async def test_redis_keeps_the_snapshot_signature_next_to_revision_and_digest(
    redis_url: str, redis_prefix: str
) -> None:
    key = generate_private_key_pem()
    store = RedisSnapshotStore(redis_url, key_prefix=redis_prefix, signer=load_signer(key_pem=key.decode()))
    data = b'{"a": {"name": "a"}}'
    try:
        await store.put(StoredSnapshot(CLIP.value, 3, canonical_digest(data), data))
        stored = await store.get(CLIP.value)
        assert stored is not None and stored.signature is not None
        trust = BusTrust(Verifier([public_key_text(key)]))
        assert trust.signature_ok(stored, "redis")
        assert not trust.signature_ok(msgspec.structs.replace(stored, revision=4), "redis")
        unsigned = RedisSnapshotStore(redis_url, key_prefix=redis_prefix)
        try:
            await unsigned.put(StoredSnapshot(CLIP.value, 4, canonical_digest(data), data))
            again = await unsigned.get(CLIP.value)
            assert again is not None and again.signature is None
            assert not trust.signature_ok(again, "redis")
        finally:
            await unsigned.aclose()
    finally:
        await store.aclose()
