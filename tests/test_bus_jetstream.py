"""Snapshots in JetStream (real nats-server): written before the event, read by consumers first,
conditional on the digest held, with Redis and the service's request/reply as fallbacks."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import anyio
import msgspec
import nats
import pytest
from nats.aio.client import Client
from structlog.testing import capture_logs

from bus_harness import running_service
from fleet_harness import follower, options, until
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.events import (
    CategoryChanged,
    NotModified,
    Snapshot,
    SnapshotRequest,
    decode_event,
)
from horde_model_reference.bus.jetstream_store import JetStreamSnapshotStore, bucket_name
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import BackendError
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.supervisor import ServiceConfig, run_service
from nats_process import NatsProcess

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CLIP = MODEL_REFERENCE_CATEGORY.clip
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation


async def test_every_snapshot_is_in_jetstream_before_its_event(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    nc: Client = await nats.connect(nats_url)
    reader = JetStreamSnapshotStore(nc, subject_prefix=subject_prefix)
    seen: list[tuple[str, int, int | None]] = []

    async def on_change(msg: object) -> None:
        event = decode_event(msg.data)  # type: ignore[attr-defined]
        assert isinstance(event, CategoryChanged)
        index = await reader.get_index()
        meta = index.categories.get(event.category) if index is not None else None
        seen.append((event.category, event.revision, meta.revision if meta else None))

    await nc.subscribe(f"{subject_prefix}.changed.*", cb=on_change)
    await nc.flush()
    try:
        async with running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
            (golden_base / "clip.json").write_bytes(
                (golden_base / "clip.json").read_bytes().replace(b"ViT", b"ViT2")
            )
            await until(lambda: service.revision(CLIP) == 2, "the clip change")
            await until(lambda: ("clip", 2, 2) in seen or any(s[:2] == ("clip", 2) for s in seen), "event 2")
            index = await reader.get_index()
            assert index is not None and index.service_id == service.service_id
            assert service.status().jetstream_connected is True
            held = [(c, s) for c in service.categories if (s := service.snapshot(c)) is not None]
            assert len(held) == len(index.categories) >= 10
            for category, snapshot in held:
                meta = index.categories[category.value]
                assert (meta.revision, meta.digest) == (snapshot.revision, snapshot.digest)
                body = await reader.get_body(category.value, meta)
                assert body is not None and catalog_digest(body) == meta.digest
    finally:
        await nc.close()
    assert seen and all(stored is not None and stored >= revision for _, revision, stored in seen), seen


async def test_a_consumer_syncs_from_jetstream_with_no_service_running(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
        expected = {c.value: s for c in service.categories if (s := service.snapshot(c)) is not None}
    async with follower(options(nats_url, subject_prefix)) as fresh:
        assert fresh.engine.ready
        for name, snapshot in expected.items():
            assert snapshot is not None
            assert (
                fresh.revision(MODEL_REFERENCE_CATEGORY(name)),
                fresh.digest(MODEL_REFERENCE_CATEGORY(name)),
            ) == (
                snapshot.revision,
                snapshot.digest,
            )
        assert fresh.engine.stats["snapshots_jetstream"] == len(expected)
        assert fresh.engine.stats["snapshots_nats"] == 0


async def test_a_reconnect_with_nothing_changed_downloads_nothing(tmp_path: Path, golden_base: Path) -> None:
    with NatsProcess(tmp_path / "nats") as server:
        async with (
            running_service(golden_base, nats_url=server.url, subject_prefix="hmr.v1") as service,
            follower(options(server.url, "hmr.v1")) as fan,
        ):
            count = sum(1 for c in service.categories if service.snapshot(c) is not None)
            assert fan.engine.stats["snapshots_jetstream"] + fan.engine.stats["snapshots_nats"] == count
            received = fan.engine.stats["snapshot_bytes"]
            before = fan.engine.stats["not_modified"]
            with capture_logs() as logs:
                await anyio.to_thread.run_sync(server.stop)
                await anyio.to_thread.run_sync(server.start)
                await until(lambda: fan.engine.stats["not_modified"] >= before + count, "the resync")
            assert fan.engine.stats["snapshot_bytes"] == received
            gaps = [e for e in logs if e["event"] == "bus_gap_resync" and e.get("reason") == "reconnected"]
            assert gaps and all(0 <= e["delay"] <= 0.2 for e in gaps)  # jittered


async def test_catalogs_over_max_payload_are_served_from_the_object_store(
    tmp_path: Path, golden_base: Path
) -> None:
    with NatsProcess(tmp_path / "nats", extra="max_payload: 131072") as server:
        async with running_service(golden_base, nats_url=server.url, subject_prefix="hmr.v1") as service:
            text = service.snapshot(TEXT)
            assert text is not None and len(text.data) > 131072
            async with follower(options(server.url, "hmr.v1")) as fan:
                assert fan.digest(TEXT) == text.digest and fan.digest(IMAGE) == service.snapshot(IMAGE).digest  # type: ignore[union-attr]
                assert fan.engine.stats["snapshots_nats"] == 0  # the service cannot even send these


async def test_without_jetstream_on_the_server_the_service_answers(tmp_path: Path, golden_base: Path) -> None:
    with NatsProcess(tmp_path / "nats", jetstream=False) as server:
        with capture_logs() as logs:
            async with (
                running_service(golden_base, nats_url=server.url, subject_prefix="hmr.v1") as service,
                follower(options(server.url, "hmr.v1")) as fan,
            ):
                assert fan.digest(CLIP) == service.snapshot(CLIP).digest  # type: ignore[union-attr]
                assert fan.engine.stats["snapshots_jetstream"] == 0
                assert service.status().jetstream_connected is False
                assert fan.engine.stats["snapshots_nats"] == sum(
                    1 for c in service.categories if service.snapshot(c) is not None
                )
        assert any(e["event"] == "jetstream_unavailable" for e in logs)


async def test_a_consumer_with_jetstream_off_uses_the_service(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    async with (
        running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        follower(options(nats_url, subject_prefix, jetstream=False)) as fan,
    ):
        assert fan.digest(CLIP) == service.snapshot(CLIP).digest  # type: ignore[union-attr]
        assert fan.engine.stats["snapshots_jetstream"] == 0


async def test_snapshot_requests_are_conditional_and_shed_after_their_deadline(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    nc = await nats.connect(nats_url)
    subject = f"{subject_prefix}.snapshot.clip"
    try:
        async with running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
            held = service.snapshot(CLIP)
            assert held is not None

            async def ask(request: SnapshotRequest) -> object:
                return decode_event((await nc.request(subject, msgspec.json.encode(request), timeout=5)).data)

            same = await ask(SnapshotRequest(held_revision=held.revision, held_digest=held.digest))
            assert same == NotModified(
                category="clip", revision=held.revision, digest=held.digest, service_id=service.service_id
            )
            other = await ask(SnapshotRequest(held_revision=held.revision, held_digest="0" * 64))
            assert isinstance(other, Snapshot) and other.digest == held.digest
            assert isinstance(await ask(SnapshotRequest()), Snapshot)  # an old consumer's request
            with pytest.raises(nats.errors.TimeoutError):
                await ask_expired(nc, subject)
            assert service.responder.stats["expired"] == 1
            assert service.responder.stats["not_modified"] == 1
    finally:
        await nc.close()


async def ask_expired(nc: Client, subject: str) -> None:
    """A request whose deadline passed before it was sent: the responder drops it (no reply)."""
    request = SnapshotRequest(deadline=time.time() - 1)
    await nc.request(subject, msgspec.json.encode(request), timeout=1)


async def test_a_hand_edit_is_seen_through_file_events_not_the_poll(
    tmp_path: Path, golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    config = ServiceConfig(
        data_dir=str(tmp_path / "data"),
        nats_url=nats_url,
        subject_prefix=subject_prefix,
        poll_interval=600.0,  # the poll would not see it during this test
    )
    async with anyio.create_task_group() as tg:
        service = await tg.start(
            partial(run_service, config, FileSystemBackend(golden_base), handle_signals=False)
        )
        async with follower(options(nats_url, subject_prefix)) as fan:
            before = fan.revision(CLIP)
            with capture_logs() as logs:
                atomic_write_bytes(
                    golden_base / "clip.json",
                    (golden_base / "clip.json").read_bytes().replace(b"ViT", b"ViT3"),
                )
                await until(
                    lambda: (fan.revision(CLIP) or 0) > (before or 0), "the hand edit at the consumer"
                )
            assert service.revision(CLIP) == (before or 0) + 1
            assert not [e for e in logs if e["event"] == "file_watch_failed"]
        tg.cancel_scope.cancel()


async def test_a_malformed_index_costs_consumers_nothing_and_is_rewritten(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    nc = await nats.connect(nats_url)
    bucket = bucket_name(subject_prefix)
    try:
        async with running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
            await nc.jetstream().publish(f"$KV.{bucket}.index", b"{not an index", stream=f"KV_{bucket}")
            with capture_logs() as logs:
                async with follower(options(nats_url, subject_prefix)) as fan:
                    assert fan.digest(CLIP) == service.snapshot(CLIP).digest  # type: ignore[union-attr]
                    assert fan.engine.stats["snapshots_jetstream"] == 0  # all from the service
            assert any(e["event"] == "bus_source_unavailable" and e["source"] == "jetstream" for e in logs)
            reader = JetStreamSnapshotStore(nc, subject_prefix=subject_prefix)

            async def repaired() -> bool:
                try:
                    index = await reader.get_index()
                except BackendError:
                    return False
                return index is not None and len(index.categories) >= 10

            deadline = time.monotonic() + 30
            while not await repaired():
                assert time.monotonic() < deadline, "the index was not rewritten"
                await anyio.sleep(0.1)
    finally:
        await nc.close()


async def test_a_bucket_created_with_another_configuration_is_updated(
    golden_base: Path, nats_url: str, subject_prefix: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().create_key_value(
            config=nats.js.api.KeyValueConfig(bucket=bucket_name(subject_prefix), history=5)
        )
        with capture_logs() as logs:
            async with (
                running_service(golden_base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
                follower(options(nats_url, subject_prefix)) as fan,
            ):
                assert fan.digest(CLIP) == service.snapshot(CLIP).digest  # type: ignore[union-attr]
                assert fan.engine.stats["snapshots_jetstream"] >= 10
        assert any(e["event"] == "jetstream_bucket_updated" for e in logs)
    finally:
        await nc.close()
