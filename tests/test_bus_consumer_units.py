"""BusConsumer without a server: the order in which change events are handled (inline or queued)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.bus.events import Heartbeat, encode_event
from horde_model_reference.cache import ChangeNotice, ReferenceCache
from horde_model_reference.catalog import catalog_digest, decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.supervisor.actor import build_change_event

pytestmark = pytest.mark.anyio

CLIP = MODEL_REFERENCE_CATEGORY.clip
_RAW = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _clip(**records: str) -> bytes:
    body = {k: {"record_type": "clip", "name": k, "description": v} for k, v in records.items()}
    return msgspec.json.encode(body)


VERSIONS = [_clip(a="1"), _clip(a="1", b="2"), _clip(a="changed", b="2"), _clip(b="2", c="3")]


class _Msg:
    def __init__(self, data: bytes, subject: str = "hmr.v1.changed.clip") -> None:
        self.data = data
        self.subject = subject
        self.headers: dict[str, str] | None = None


def _change(revision: int) -> _Msg:
    """The event taking VERSIONS[revision - 2] to VERSIONS[revision - 1]."""
    old, new = VERSIONS[revision - 2], VERSIONS[revision - 1]
    _, payload = build_change_event(
        category="clip",
        revision=revision,
        digest=catalog_digest(new),
        previous_digest=catalog_digest(old),
        old=decode_catalog("clip", old).records,
        new=decode_catalog("clip", new).records,
        raw=_RAW.decode(new),
        service_id="svc",
        delta_max_bytes=1 << 16,
    )
    return _Msg(payload)


class _Harness:
    def __init__(self) -> None:
        self.cache = ReferenceCache()
        self.notices: list[ChangeNotice] = []
        self.hold: anyio.Event | None = None
        self.consumer = BusConsumer(
            self.cache, BusOptions(nats_url="nats://127.0.0.1:1"), dispatch=self.dispatch
        )
        self.cache.install(
            CLIP,
            decode_catalog(CLIP, VERSIONS[0]).records,
            revision=1,
            digest=catalog_digest(VERSIONS[0]),
            raw=VERSIONS[0],
        )

    async def dispatch(self, notice: ChangeNotice) -> None:
        self.notices.append(notice)
        if self.hold is not None:
            await self.hold.wait()

    def revision(self) -> int:
        return self.cache.snapshots[CLIP.value].revision

    def records(self) -> dict[str, Any]:
        return {k: v.description for k, v in self.cache.snapshots[CLIP.value].records.items()}


async def _started(harness: _Harness, tg: anyio.abc.TaskGroup) -> None:
    """Run the consumer's sync task and finish its (empty) initial sync."""
    consumer = harness.consumer
    consumer._accepting = True
    consumer._enqueue(("ready", None))
    await tg.start(consumer._process)


async def test_a_change_is_patched_in_the_callback_when_the_sync_is_idle() -> None:
    harness = _Harness()
    async with anyio.create_task_group() as tg:
        await _started(harness, tg)
        await harness.consumer._on_message(_change(2))
        # Applied before the callback returned: no hop to the sync task.
        assert harness.revision() == 2 and harness.records() == {"a": "1", "b": "2"}
        assert harness.consumer.stats["patched"] == 1
        # Its on_change callbacks run in the sync task, after the data is readable.
        with anyio.fail_after(60):
            while not harness.notices:
                await anyio.sleep(0.001)
        assert [n.new_revision for n in harness.notices] == [2]
        tg.cancel_scope.cancel()


async def test_an_unusable_delta_is_queued_reported_and_resynchronised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = _Harness()
    resyncs: list[tuple[str, int | None]] = []

    async def resync_category(category: MODEL_REFERENCE_CATEGORY, *, min_revision: int | None = None) -> bool:
        resyncs.append((category.value, min_revision))
        return True

    monkeypatch.setattr(harness.consumer, "_resync_category", resync_category)
    bad = msgspec.json.decode(_change(2).data)
    bad["records"] = {"b": {"name": "b", "description": 5}}
    async with anyio.create_task_group() as tg:
        await _started(harness, tg)
        await harness.consumer._on_message(_Msg(msgspec.json.encode(bad)))
        assert harness.revision() == 1  # not patched inline: queued for the sync task
        with anyio.fail_after(60):
            while not resyncs:
                await anyio.sleep(0.001)
        assert resyncs == [("clip", 2)] and harness.consumer.stats["patched"] == 0
        tg.cancel_scope.cancel()


async def test_changes_arriving_while_one_is_handled_wait_their_turn_in_order() -> None:
    harness = _Harness()
    async with anyio.create_task_group() as tg:
        await _started(harness, tg)
        harness.hold = anyio.Event()
        tg.start_soon(harness.consumer._on_message, _change(2))  # its on_change callback blocks
        with anyio.fail_after(60):
            while not harness.notices:
                await anyio.sleep(0.001)
        heartbeat = Heartbeat(service_id="svc", started_at=0.0, sent_at=0.0, categories={})
        await harness.consumer._on_message(_Msg(encode_event(heartbeat), "hmr.v1.heartbeat"))
        await harness.consumer._on_message(_change(3))
        await harness.consumer._on_message(_change(4))
        await harness.consumer._on_message(_change(3))  # a duplicate: ignored, wherever it is handled
        assert harness.revision() == 2  # queued behind the change being handled
        assert len(harness.consumer._queue) == 4
        harness.hold.set()
        harness.hold = None
        with anyio.fail_after(60):
            while harness.revision() < 4 or harness.consumer._queue or harness.consumer._busy:
                await anyio.sleep(0.001)
        assert [n.new_revision for n in harness.notices] == [2, 3, 4]
        assert harness.records() == {"b": "2", "c": "3"}
        assert harness.consumer.stats["patched"] == 3 and harness.consumer.stats["ignored"] == 1
        tg.cancel_scope.cancel()


async def test_before_the_initial_sync_changes_go_through_the_queue() -> None:
    harness = _Harness()
    harness.consumer._accepting = True
    await harness.consumer._on_message(_change(2))
    assert harness.revision() == 1 and len(harness.consumer._queue) == 1
    async with anyio.create_task_group() as tg:
        harness.consumer._enqueue(("ready", None))
        await tg.start(harness.consumer._process)
        with anyio.fail_after(60):
            while harness.revision() < 2:
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
