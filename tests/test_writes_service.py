"""The write path's Python API on a running service (real NATS): workflow, bad input, conflicts,
concurrent appliers, batch splits, crash recovery, restarts, audit replay."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.errors import (
    ConflictError,
    InvalidModelNameError,
    ModelNotFoundError,
    RecordDecodeError,
    UnknownCategoryError,
)
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.legacy import convert_legacy_directory
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.writes.contracts import AuditAction, ChangeStatus
from horde_model_reference.writes.errors import (
    ChangeStateError,
    ForbiddenError,
    InvalidRequestError,
    PayloadTooLargeError,
    ReasonRequiredError,
    RecordExistsError,
    UnauthorizedError,
    error_code,
)
from horde_model_reference.writes.service import WriteService
from horde_model_reference.writes.settings import WriteSettings
from horde_model_reference.writes.testing import running_write_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "reference"
REQ, APP = "requester-secret-key", "approver-secret-key"
SETTINGS = WriteSettings(requester_keys=[REQ], approver_keys=[APP])
CLIP = MODEL_REFERENCE_CATEGORY.clip
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation
SERVED = ("clip", "image_generation", "text_generation", "controlnet")
EXISTING_CLIP = "ViT-B/16-example"


@cache
def _seed() -> dict[MODEL_REFERENCE_CATEGORY, bytes]:
    return convert_legacy_directory(EXAMPLES)


def clip_record(name: str, description: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": name,
        "config": {"download": [{"file_name": f"{name}.pt", "file_url": f"https://example.org/{name}.pt"}]},
    }
    if description is not None:
        record["description"] = description
    return record


def image_record(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_1", "nsfw": False, **extra}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for category, data in _seed().items():
        atomic_write_bytes(tmp_path / get_category_descriptor(category).v2_filename, data)
    return tmp_path


@pytest.fixture
def start(base: Path, nats_url: str, subject_prefix: str) -> Callable[..., Any]:
    def _start(settings: WriteSettings = SETTINGS) -> Any:
        return running_write_service(
            base, nats_url=nats_url, subject_prefix=subject_prefix, settings=settings, categories=SERVED
        )

    return _start


def catalog(base: Path, category: MODEL_REFERENCE_CATEGORY) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((base / get_category_descriptor(category).v2_filename).read_bytes())
    return data


def persisted(base: Path) -> dict[str, bytes]:
    """Every file the write path could have written (queue, audit, catalogs, legacy)."""
    files = [*base.glob("*.json"), *base.glob("legacy/*"), *base.glob(".hmr/writes/**/*.json*")]
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(files) if p.is_file()}


async def created(writes: WriteService, name: str, category: str = "clip", record: Any = None) -> int:
    """Propose, approve and apply a create; returns the change id."""
    reply = await writes.propose(
        REQ, category=category, name=name, operation="create", record=record or clip_record(name)
    )
    await writes.approve(APP, [reply.change.change_id])
    await writes.apply(APP, [reply.change.change_id])
    return reply.change.change_id


# -- the workflow -----------------------------------------------------------------------------


async def test_propose_approve_apply_stamps_writes_publishes_and_audits(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        before = supervisor.revision(CLIP)
        proposed = await writes.propose(
            REQ, category="clip", name="new-clip", operation="create", record=clip_record("new-clip")
        )
        change = proposed.change
        assert change.status is ChangeStatus.pending and change.requested_by.startswith("key:")
        assert proposed.current_revision == before and proposed.current_digest is None
        approved = await writes.approve(APP, [change.change_id], batch_title="first")
        assert approved.batch_id is not None and approved.changes[0].status is ChangeStatus.approved
        result = await writes.apply(APP, [change.change_id])
        assert result.revisions == {"clip": before + 1} == {"clip": supervisor.revision(CLIP)}
        done = result.changes[0]
        assert done.status is ChangeStatus.applied and done.applied_revision == before + 1
        written = catalog(base, CLIP)["new-clip"]
        metadata = written["metadata"]
        assert metadata["created_by"] == metadata["updated_by"] == done.applied_by
        assert isinstance(metadata["created_at"], int) and metadata["created_at"] == metadata["updated_at"]
        assert EXISTING_CLIP in catalog(base, CLIP), "other records are kept"
        page = await writes.audit(REQ, change_id=change.change_id)
        assert [e.action for e in page.events] == [
            AuditAction.proposed,
            AuditAction.approved,
            AuditAction.applying,
            AuditAction.applied,
        ]
        applied = page.events[-1]
        assert applied.revision == before + 1 and applied.request_id == result.request_id
        assert json.loads(bytes(applied.after))["metadata"]["created_by"] == done.applied_by
        again = await writes.get_change(REQ, change.change_id)
        assert again.current_digest == done.result_digest


async def test_update_keeps_created_and_delete_removes_with_field_delta(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        await created(writes, "evolving")
        first = catalog(base, CLIP)["evolving"]["metadata"]
        await anyio.sleep(1.05)  # metadata times are whole seconds
        held = await writes.get_change(REQ, 1)
        update = await writes.propose(
            APP,
            category="clip",
            name="evolving",
            operation="update",
            record=clip_record("evolving", "now described"),
            base_digest=held.current_digest,
        )
        await writes.approve(APP, [update.change.change_id])
        await writes.apply(APP, [update.change.change_id])
        second = catalog(base, CLIP)["evolving"]
        assert second["description"] == "now described"
        assert second["metadata"]["created_at"] == first["created_at"]
        assert second["metadata"]["updated_at"] > first["updated_at"]
        delete = await writes.propose(
            REQ, category="clip", name="evolving", operation="delete", base_revision=supervisor.revision(CLIP)
        )
        await writes.approve(APP, [delete.change.change_id])
        await writes.apply(APP, [delete.change.change_id])
        assert "evolving" not in catalog(base, CLIP)
        events = (await writes.audit(REQ, name="evolving")).events
        applied = [e for e in events if e.action is AuditAction.applied]
        assert [e.operation for e in applied] == ["create", "update", "delete"]
        assert applied[1].delta is not None and set(applied[1].delta) == {"description", "metadata"}
        assert applied[1].delta["description"].new == "now described"
        assert isinstance(applied[2].before, msgspec.Raw) and applied[2].after is msgspec.UNSET


async def test_legacy_projection_is_regenerated_for_image_and_text(start: Any, base: Path) -> None:
    async with start() as (_, writes):
        await created(writes, "Fresh Image", "image_generation", image_record("Fresh Image"))
        legacy_image = json.loads((base / "legacy" / "stable_diffusion.json").read_bytes())
        assert "Fresh Image" in legacy_image and set(legacy_image) == set(catalog(base, IMAGE))
        text = {"name": "example-org/Fresh-1B", "parameters": 1_000_000_000}
        await created(writes, "example-org/Fresh-1B", "text_generation", text)
        models_csv = (base / "legacy" / "models.csv").read_text()
        assert "example-org/Fresh-1B" in models_csv
        db = json.loads((base / "legacy" / "db.json").read_bytes())
        assert "example-org/Fresh-1B" in db and "koboldcpp/Fresh-1B" in db
        assert not (base / "legacy" / "clip.json").exists()


async def test_a_name_with_slash_that_exists_can_be_updated_outside_text(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        reply = await writes.propose(
            REQ,
            category="clip",
            name=EXISTING_CLIP,
            operation="update",
            record={**catalog(base, CLIP)[EXISTING_CLIP], "description": "legacy name kept"},
            base_revision=supervisor.revision(CLIP),
        )
        assert reply.change.status is ChangeStatus.pending
        with pytest.raises(InvalidModelNameError):
            await writes.propose(
                REQ, category="clip", name="new/slash", operation="create", record=clip_record("new/slash")
            )


# -- bad input: a clear error, nothing persisted ------------------------------------------------

BadCase = Callable[[WriteService, Supervisor, dict[str, int]], Awaitable[object]]


def _propose(category: str, name: str, operation: str = "create", record: Any = None, **kw: Any) -> BadCase:
    async def case(w: WriteService, s: Supervisor, ids: dict[str, int]) -> object:
        body = record if record is not None or operation == "delete" else clip_record(name)
        return await w.propose(REQ, category=category, name=name, operation=operation, record=body, **kw)

    return case


def _current(name: str) -> BadCase:
    async def case(w: WriteService, s: Supervisor, ids: dict[str, int]) -> object:
        rev = s.revision(CLIP)
        return await w.propose(
            REQ,
            category="clip",
            name=name,
            operation="update",
            record=clip_record(name),
            base_revision=rev - 1,
        )

    return case


BAD_INPUT: dict[str, tuple[BadCase, type[Exception], str]] = {
    "invalid record": (
        _propose("image_generation", "no-baseline", record={"name": "no-baseline"}),
        RecordDecodeError,
        "invalid_record",
    ),
    "record of another type": (
        _propose("clip", "x", record={**clip_record("x"), "record_type": "blip"}),
        RecordDecodeError,
        "invalid_record",
    ),
    "record name differs": (
        _propose("clip", "x", record=clip_record("y")),
        RecordDecodeError,
        "invalid_record",
    ),
    "unknown category": (_propose("not_a_category", "x"), UnknownCategoryError, "unknown_category"),
    "category not served": (_propose("blip", "x"), Exception, "not_served"),
    "empty name": (_propose("clip", ""), InvalidModelNameError, "invalid_name"),
    "name with slash": (_propose("clip", "a/b"), InvalidModelNameError, "invalid_name"),
    "text id with two slashes": (
        _propose("text_generation", "a/b/c", record={"name": "a/b/c", "parameters": 1}),
        InvalidModelNameError,
        "invalid_name",
    ),
    "name with backslash": (_propose("clip", "a\\b"), InvalidModelNameError, "invalid_name"),
    "name with dot dot": (_propose("clip", "a..b"), InvalidModelNameError, "invalid_name"),
    "name over 256": (_propose("clip", "x" * 257), InvalidModelNameError, "invalid_name"),
    "payload over 1 MiB": (
        _propose("clip", "big", record=clip_record("big", "d" * (1024 * 1024))),
        PayloadTooLargeError,
        "too_large",
    ),
    "create of an existing record": (_propose("clip", EXISTING_CLIP), RecordExistsError, "already_exists"),
    "update of a missing record": (
        _propose("clip", "missing", "update", base_revision=1),
        ModelNotFoundError,
        "not_found",
    ),
    "delete of a missing record": (
        _propose("clip", "missing", "delete", base_revision=1),
        ModelNotFoundError,
        "not_found",
    ),
    "update without a base": (
        _propose("clip", EXISTING_CLIP, "update", clip_record(EXISTING_CLIP)),
        InvalidRequestError,
        "bad_request",
    ),
    "delete with a record": (
        _propose("clip", EXISTING_CLIP, "delete", clip_record(EXISTING_CLIP), base_revision=1),
        InvalidRequestError,
        "bad_request",
    ),
    "conflicting base revision": (_current(EXISTING_CLIP), ConflictError, "conflict"),
    "conflicting base digest": (
        _propose("clip", EXISTING_CLIP, "update", clip_record(EXISTING_CLIP), base_digest="0" * 64),
        ConflictError,
        "conflict",
    ),
    "approve of a rejected change": (
        lambda w, s, ids: w.approve(APP, [ids["rejected"]]),
        ChangeStateError,
        "invalid_state",
    ),
    "approve of an applied change": (
        lambda w, s, ids: w.approve(APP, [ids["applied"]]),
        ChangeStateError,
        "invalid_state",
    ),
    "apply of a pending change": (
        lambda w, s, ids: w.apply(APP, [ids["pending"]]),
        ChangeStateError,
        "invalid_state",
    ),
    "apply of a rejected change": (
        lambda w, s, ids: w.apply(APP, [ids["rejected"]]),
        ChangeStateError,
        "invalid_state",
    ),
    "apply of an applied change": (
        lambda w, s, ids: w.apply(APP, [ids["applied"]]),
        ChangeStateError,
        "invalid_state",
    ),
    "reject without a reason": (
        lambda w, s, ids: w.reject(APP, [ids["pending"]], reason="  "),
        ReasonRequiredError,
        "reason_required",
    ),
    "approve of an unknown change": (lambda w, s, ids: w.approve(APP, [999]), Exception, "change_not_found"),
    "missing API key": (
        lambda w, s, ids: w.propose(
            None, category="clip", name="k", operation="create", record=clip_record("k")
        ),
        UnauthorizedError,
        "unauthorized",
    ),
    "forged API key": (
        lambda w, s, ids: w.approve("forged-" + APP, [ids["pending"]]),
        UnauthorizedError,
        "unauthorized",
    ),
    "requester approving": (lambda w, s, ids: w.approve(REQ, [ids["pending"]]), ForbiddenError, "forbidden"),
    "requester applying": (lambda w, s, ids: w.apply(REQ, [ids["pending"]]), ForbiddenError, "forbidden"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
async def test_bad_input_is_refused_and_nothing_is_persisted(start: Any, base: Path, case: str) -> None:
    run, kind, code = BAD_INPUT[case]
    async with start() as (supervisor, writes):
        ids = {"applied": await created(writes, "applied-one")}
        pending = await writes.propose(
            REQ, category="clip", name="pending-one", operation="create", record=clip_record("pending-one")
        )
        rejected = await writes.propose(
            REQ, category="clip", name="rejected-one", operation="create", record=clip_record("rejected-one")
        )
        await writes.reject(APP, [rejected.change.change_id], reason="not wanted")
        ids |= {"pending": pending.change.change_id, "rejected": rejected.change.change_id}
        before = persisted(base)
        with pytest.raises(kind) as caught:
            await run(writes, supervisor, ids)
        assert error_code(caught.value) == code, str(caught.value)
        assert str(caught.value)
        assert persisted(base) == before


# -- conflicts and concurrency ------------------------------------------------------------------


async def test_two_updates_of_one_record_never_both_succeed(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        revision = supervisor.revision(CLIP)
        old = catalog(base, CLIP)[EXISTING_CLIP]
        ids = []
        for text in ("first", "second"):
            reply = await writes.propose(
                REQ,
                category="clip",
                name=EXISTING_CLIP,
                operation="update",
                record={**old, "description": text},
                base_revision=revision,
            )
            ids.append(reply.change.change_id)
        await writes.approve(APP, ids)
        before = persisted(base)
        with pytest.raises(ConflictError) as together:
            await writes.apply(APP, ids)
        assert persisted(base) == before, "all or nothing: the first is not applied either"
        assert together.value.expected.startswith(f"revision {revision}") and "record digest" in str(
            together.value.actual
        )
        await writes.apply(APP, [ids[0]])
        with pytest.raises(ConflictError) as later:
            await writes.apply(APP, [ids[1]])
        expected, actual = str(later.value.expected), str(later.value.actual)
        assert expected != actual and len(expected.split()[-1].strip(")")) == 64
        assert catalog(base, CLIP)[EXISTING_CLIP]["description"] == "first"
        second = await writes.get_change(REQ, ids[1])
        assert second.change.status is ChangeStatus.approved


async def test_two_concurrent_appliers_apply_a_change_once(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        reply = await writes.propose(
            REQ, category="clip", name="once", operation="create", record=clip_record("once")
        )
        await writes.approve(APP, [reply.change.change_id])
        outcomes: list[object] = []

        async def applier() -> None:
            try:
                outcomes.append(await writes.apply(APP, [reply.change.change_id]))
            except ChangeStateError as exc:
                outcomes.append(exc)

        before = supervisor.revision(CLIP)
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(applier)
        refused = [o for o in outcomes if isinstance(o, ChangeStateError)]
        assert len(outcomes) == 4 and len(refused) == 3
        assert all(o.status == "applied" for o in refused)
        assert supervisor.revision(CLIP) == before + 1
        applied = (await writes.audit(REQ, change_id=reply.change.change_id)).events
        assert [e.action for e in applied].count(AuditAction.applied) == 1


async def test_partial_batch_apply_moves_the_rest_to_a_new_batch(start: Any, base: Path) -> None:
    async with start() as (_supervisor, writes):
        ids = [
            (
                await writes.propose(
                    REQ, category="clip", name=f"b{i}", operation="create", record=clip_record(f"b{i}")
                )
            ).change.change_id
            for i in range(3)
        ]
        batch = (await writes.approve(APP, ids, batch_title="three")).batch_id
        assert batch is not None
        result = await writes.apply(APP, [ids[0]])
        [split] = result.batch_splits
        assert split.original_batch_id == batch and split.change_ids == ids[1:]
        rest = await writes.list_changes(REQ, batch_id=split.new_batch_id)
        assert [c.change_id for c in rest.items] == ids[1:] and all(
            c.batch_title == "three" for c in rest.items
        )
        applied = await writes.apply(APP, batch_id=split.new_batch_id)
        assert applied.batch_splits == [] and {"b0", "b1", "b2"} <= set(catalog(base, CLIP))
        assert list(applied.revisions) == ["clip"], "one write for the whole batch"


async def test_list_filters_and_pagination_and_purge(start: Any, base: Path) -> None:
    async with start() as (_, writes):
        for i in range(5):
            await writes.propose(
                REQ if i % 2 else APP,
                category="clip",
                name=f"p{i}",
                operation="create",
                record=clip_record(f"p{i}"),
            )
        await writes.reject(APP, [1], reason="no")
        page = await writes.list_changes(REQ, statuses=["pending"], offset=1, limit=2)
        assert page.total == 4 and [c.change_id for c in page.items] == [3, 4]
        mine = await writes.list_changes(REQ, requester=page.items[0].requested_by)
        assert all(c.requested_by == page.items[0].requested_by for c in mine.items) and mine.total == 3
        assert (await writes.list_changes(REQ, name="p2")).total == 1
        assert (await writes.list_changes(REQ, category="image_generation")).total == 0
        with pytest.raises(InvalidRequestError):
            await writes.purge(APP, statuses=["pending"])
        purged = await writes.purge(APP)
        assert purged.removed == [1]
        assert (await writes.list_changes(REQ)).total == 4
        assert [e.change_id for e in (await writes.audit(REQ)).events if e.action is AuditAction.purged] == [
            1
        ]
        new = await writes.propose(
            REQ, category="clip", name="p9", operation="create", record=clip_record("p9")
        )
        assert new.change.change_id == 6, "ids are never reused"


# -- restarts and crashes -----------------------------------------------------------------------


class _Crash(BaseException):
    """Stands for the process dying: no handler of the write path runs."""


@pytest.mark.parametrize("crash_after_write", [False, True], ids=["before-write", "after-write"])
async def test_a_crash_mid_apply_is_recovered_at_start(
    start: Any, base: Path, monkeypatch: pytest.MonkeyPatch, crash_after_write: bool
) -> None:
    real_write = FileSystemBackend.write_category

    async def crashing(self: FileSystemBackend, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> Any:
        if crash_after_write:
            await real_write(self, category, data)
        raise _Crash

    async with start() as (_, writes):
        reply = await writes.propose(
            REQ, category="clip", name="crashy", operation="create", record=clip_record("crashy")
        )
        await writes.approve(APP, [reply.change.change_id])
        monkeypatch.setattr(FileSystemBackend, "write_category", crashing)
        with pytest.raises(_Crash):
            await writes.apply(APP, [reply.change.change_id])
        monkeypatch.setattr(FileSystemBackend, "write_category", real_write)
        stuck = await writes.get_change(REQ, reply.change.change_id)
        assert stuck.change.status is ChangeStatus.applying
    async with start() as (_supervisor, writes):
        change = (await writes.get_change(REQ, reply.change.change_id)).change
        if crash_after_write:
            assert change.status is ChangeStatus.applied
            assert "crashy" in catalog(base, CLIP)
            assert writes.trail.replay_bytes("clip") == (base / "clip.json").read_bytes()
        else:
            assert change.status is ChangeStatus.approved and change.applying_by is None
            assert "crashy" not in catalog(base, CLIP)
            result = await writes.apply(APP, [change.change_id])
            assert result.changes[0].status is ChangeStatus.applied
        actions = [e.action for e in (await writes.audit(REQ, change_id=change.change_id)).events]
        assert actions.count(AuditAction.applied) == 1
        assert (AuditAction.reverted in actions) is not crash_after_write


async def test_queue_and_revisions_survive_a_restart(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        await created(writes, "kept")
        waiting = await writes.propose(
            REQ, category="clip", name="waiting", operation="create", record=clip_record("waiting")
        )
        revision = supervisor.revision(CLIP)
    async with start() as (supervisor, writes):
        assert supervisor.revision(CLIP) == revision
        page = await writes.list_changes(REQ)
        assert [(c.name, c.status) for c in page.items] == [
            ("kept", ChangeStatus.applied),
            ("waiting", ChangeStatus.pending),
        ]
        await writes.approve(APP, [waiting.change.change_id])
        result = await writes.apply(APP, [waiting.change.change_id])
        assert result.revisions["clip"] == revision + 1
        assert (await writes.audit(REQ)).events[0].event_id == 1


async def test_replay_of_the_audit_trail_rebuilds_the_live_catalog(start: Any, base: Path) -> None:
    async with start() as (supervisor, writes):
        await created(writes, "r1")
        await created(writes, "r2")
        # an edit outside the write path: the next apply records a new baseline first
        edited = catalog(base, CLIP)
        edited["r1"]["description"] = "edited by hand"
        atomic_write_bytes(base / "clip.json", json.dumps(edited, indent=2).encode())
        revision = supervisor.revision(CLIP)
        with anyio.fail_after(60):
            while supervisor.revision(CLIP) == revision:
                await anyio.sleep(0.02)
        held = await writes.get_change(REQ, 1)
        update = await writes.propose(
            REQ,
            category="clip",
            name="r1",
            operation="update",
            record=clip_record("r1", "after the hand edit"),
            base_digest=held.current_digest,
        )
        delete = await writes.propose(
            REQ, category="clip", name="r2", operation="delete", base_revision=supervisor.revision(CLIP)
        )
        await writes.approve(APP, [update.change.change_id, delete.change.change_id])
        await writes.apply(APP, [update.change.change_id, delete.change.change_id])
        live = (base / "clip.json").read_bytes()
        rebuilt = writes.trail.replay_bytes("clip")
        assert rebuilt == live
        assert hashlib.sha256(rebuilt).hexdigest() == supervisor.snapshot(CLIP).digest  # type: ignore[union-attr]
        baselines = [
            e for e in writes.trail.read() if e.action is AuditAction.baseline and e.category == "clip"
        ]
        assert len(baselines) == 2
        records = decode_catalog(CLIP, rebuilt).records
        assert records["r1"].description == "after the hand edit" and "r2" not in records


async def test_a_replica_backend_refuses_writes(
    start: Any, base: Path, nats_url: str, subject_prefix: str
) -> None:
    from functools import partial

    from horde_model_reference.supervisor import ServiceConfig, run_service
    from horde_model_reference.writes.errors import WritesUnavailableError

    writes = WriteService(SETTINGS)
    config = ServiceConfig(
        data_dir=str(base / ".hmr"), nats_url=nats_url, subject_prefix=subject_prefix, categories=SERVED
    )
    async with anyio.create_task_group() as tg:
        await tg.start(
            partial(
                run_service,
                config,
                FileSystemBackend(base, writable=False),
                handle_signals=False,
                components=[writes.run],
            )
        )
        with pytest.raises(WritesUnavailableError):
            await writes.propose(REQ, category="clip", name="r", operation="create", record=clip_record("r"))
        assert (await writes.list_changes(REQ)).total == 0
        tg.cancel_scope.cancel()
