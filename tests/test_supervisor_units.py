"""Unit tests of the supervisor's parts: persisted state, change events, settings, health contract."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from horde_model_reference.bus.events import CategoryHealth, HealthReply, decode_event, encode_event
from horde_model_reference.catalog import catalog_digest, decode_catalog
from horde_model_reference.errors import SettingsError
from horde_model_reference.supervisor import (
    FILESYSTEM_POLL_INTERVAL,
    REMOTE_POLL_INTERVAL,
    ServiceConfig,
    StateFileError,
    default_poll_interval,
)
from horde_model_reference.supervisor.actor import build_change_event
from horde_model_reference.supervisor.state import RESERVE_AHEAD, PersistedCategory, StateFile
from horde_model_reference.supervisor.testing import RawDirectoryBackend

_RAW = msgspec.json.Decoder(dict[str, msgspec.Raw])


# -- StateFile ----------------------------------------------------------------------------------


def _temp_files(path: Path) -> list[Path]:
    return list(path.rglob("*.tmp"))


@pytest.mark.anyio
async def test_state_file_commits_survive_a_new_instance(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    assert state.load() == {}
    await state.commit("clip", 1, catalog_digest(b"{}"), b"{}")
    await state.commit("clip", 2, catalog_digest(b'{"a": {}}'), b'{"a": {}}')
    await state.commit("blip", 5, catalog_digest(b"{}"), b"{}")

    again = StateFile(tmp_path)
    assert again.load() == {
        "clip": PersistedCategory(2, catalog_digest(b'{"a": {}}')),
        "blip": PersistedCategory(5, catalog_digest(b"{}")),
    }
    assert again.load_snapshot("clip", catalog_digest(b'{"a": {}}')) == b'{"a": {}}'
    assert again.load_snapshot("clip", "some-other-digest") is None
    assert again.load_snapshot("esrgan", "x") is None
    assert not _temp_files(tmp_path)  # temp files were renamed into place


@pytest.mark.anyio
async def test_state_file_refuses_to_reuse_a_revision(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    await state.commit("clip", 3, "d3", b"{}")
    with pytest.raises(StateFileError, match="not above 3"):
        await state.commit("clip", 3, "other", b"{}")
    assert state.states["clip"] == PersistedCategory(3, "d3")


def test_corrupt_state_file_raises_instead_of_guessing(tmp_path: Path) -> None:
    (tmp_path / "revisions.json").write_bytes(b'{"version": 1, "categories": {"clip": ')
    with pytest.raises(StateFileError) as caught:
        StateFile(tmp_path).load()
    assert caught.value.path == tmp_path / "revisions.json"


@pytest.mark.anyio
async def test_adopt_merges_states_learned_elsewhere(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    await state.commit("clip", 1, "d1", b"{}")
    await state.adopt({"blip": PersistedCategory(9, catalog_digest(b"[]"))}, {"blip": b"[]"})
    assert StateFile(tmp_path).load() == {
        "clip": PersistedCategory(1, "d1"),
        "blip": PersistedCategory(9, catalog_digest(b"[]")),
    }
    assert state.load_snapshot("blip", catalog_digest(b"[]")) == b"[]"


def _writes(state: StateFile) -> list[bytes]:
    """Record every document `state` writes (to count synchronous writes)."""
    written: list[bytes] = []
    original = state._write_sync

    def spy(document: bytes, snapshots: dict[str, bytes]) -> None:
        written.append(document)
        original(document, snapshots)

    state._write_sync = spy  # type: ignore[method-assign]
    return written


@pytest.mark.anyio
async def test_reserved_revisions_are_handed_out_without_writing(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.load()
    await state.reserve_all({"clip": 0})
    assert state.reserved["clip"] == RESERVE_AHEAD
    written = _writes(state)
    for revision in range(1, RESERVE_AHEAD + 1):
        assert state.next_revision("clip", revision - 1) == revision
        await state.reserve("clip", revision)
    assert written == []  # the whole reserved range went without a disk write
    await state.reserve("clip", RESERVE_AHEAD + 1)
    assert len(written) == 1 and state.reserved["clip"] == 2 * RESERVE_AHEAD + 1
    assert StateFile(tmp_path).load() == {}  # reservations alone persist no revision


@pytest.mark.anyio
async def test_a_revision_reserved_before_a_crash_is_never_handed_out_again(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.load()
    await state.reserve("clip", 1)
    await state.commit("clip", 1, "d1", b"{}")
    await state.reserve("clip", 2)  # published, then the process died before `commit`
    restarted = StateFile(tmp_path)
    assert restarted.load() == {"clip": PersistedCategory(1, "d1")}
    assert restarted.next_revision("clip", 1) > 2
    assert restarted.next_revision("blip", 0) == 1


@pytest.mark.anyio
async def test_a_clean_release_lets_the_next_instance_continue_without_a_gap(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.load()
    await state.reserve_all({"clip": 0, "blip": 0})
    for revision in (1, 2):
        await state.reserve("clip", revision)
        await state.commit("clip", revision, f"d{revision}", b"{}")
    await state.reserve("clip", 3)  # handed out, its state write failed
    await state.release_reservations()
    again = StateFile(tmp_path)
    assert again.load() == {"clip": PersistedCategory(2, "d2")}
    assert again.next_revision("clip", 2) == 4  # above the one handed out, no further gap
    assert again.next_revision("blip", 0) == 1


@pytest.mark.anyio
async def test_a_version_1_state_file_is_read_and_upgraded(tmp_path: Path) -> None:
    (tmp_path / "revisions.json").write_bytes(
        b'{"version": 1, "categories": {"clip": {"revision": 4, "digest": "d4"}}}'
    )
    state = StateFile(tmp_path)
    assert state.load() == {"clip": PersistedCategory(4, "d4")}
    assert state.next_revision("clip", 4) == 5
    await state.commit("clip", 5, "d5", b"{}")
    document = msgspec.json.decode((tmp_path / "revisions.json").read_bytes())
    assert document["version"] == 2 and document["reserved"] == {"clip": 5}


def test_an_unknown_state_file_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "revisions.json").write_bytes(b'{"version": 3, "categories": {}}')
    with pytest.raises(StateFileError, match="unsupported version 3"):
        StateFile(tmp_path).load()


# -- build_change_event -------------------------------------------------------------------------


def _clip(**records: str) -> bytes:
    body = {k: {"record_type": "clip", "name": k, "description": v} for k, v in records.items()}
    return msgspec.json.format(msgspec.json.encode(body), indent=2)


def _event(old: bytes | None, new: bytes, *, previous: str | None = None, bound: int = 1 << 18) -> tuple:
    old_records = decode_catalog("clip", old).records if old is not None else None
    return build_change_event(
        category="clip",
        revision=7,
        digest=catalog_digest(new),
        previous_digest=previous if previous is not None else (catalog_digest(old) if old else None),
        old=old_records,
        new=decode_catalog("clip", new).records,
        raw=_RAW.decode(new),
        service_id="svc",
        delta_max_bytes=bound,
    )


def test_change_event_names_added_removed_and_changed_with_raw_records() -> None:
    old = _clip(a="1", b="2", c="3")
    new = _clip(a="1", b="changed", d="4")
    event, payload = _event(old, new)
    assert (event.added, event.removed, event.changed) == (["d"], ["c"], ["b"])
    assert event.records is not None and set(event.records) == {"b", "d"}
    assert bytes(event.records["d"]) == bytes(_RAW.decode(new)["d"])
    assert event.record_count == 3 and event.previous_digest == catalog_digest(old)
    assert decode_event(payload) == decode_event(encode_event(event))


def test_first_load_adds_everything() -> None:
    event, _ = _event(None, _clip(a="1", b="2"))
    assert event.added == ["a", "b"] and event.previous_digest is None
    assert event.records is not None and set(event.records) == {"a", "b"}


def test_unknown_previous_records_give_no_names_and_no_delta() -> None:
    event, _ = _event(None, _clip(a="1"), previous="digest-of-something-lost")
    assert (event.added, event.removed, event.changed, event.records) == ([], [], [], None)


def test_reformatting_only_changes_no_record() -> None:
    old = _clip(a="1")
    new = msgspec.json.format(old, indent=0)
    event, _ = _event(old, new)
    assert (event.added, event.removed, event.changed, event.records) == ([], [], [], {})


def test_delta_above_the_bound_is_left_out_but_names_are_kept() -> None:
    event, payload = _event(_clip(a="1"), _clip(a="1", b="x" * 500), bound=300)
    assert event.records is None and event.added == ["b"]
    assert len(payload) < 500


# -- settings -----------------------------------------------------------------------------------


def test_config_defaults_and_validation(tmp_path: Path) -> None:
    config = ServiceConfig(data_dir=str(tmp_path))
    assert config.nats_url is None and config.redis_url is None
    assert config.subject_prefix == "hmr.v1" and config.redis_key_prefix == "hmr:v1"
    assert config.heartbeat_interval == 2.0 and config.delta_max_bytes == 256 * 1024
    assert len(config.service_id) == 32 and ServiceConfig(data_dir=".").service_id != config.service_id
    with pytest.raises(SettingsError, match="poll_interval"):
        ServiceConfig(data_dir=str(tmp_path), poll_interval=0)
    with pytest.raises(SettingsError, match="subject_prefix"):
        ServiceConfig(data_dir=str(tmp_path), subject_prefix="hmr.")


def test_default_poll_interval_by_backend(tmp_path: Path) -> None:
    class _Remote(RawDirectoryBackend):
        name = "github"

    class _Own(RawDirectoryBackend):
        poll_interval = 7.0

    assert default_poll_interval(RawDirectoryBackend(tmp_path)) == FILESYSTEM_POLL_INTERVAL
    assert default_poll_interval(_Remote(tmp_path)) == REMOTE_POLL_INTERVAL
    assert default_poll_interval(_Own(tmp_path)) == 7.0


def test_health_reply_round_trips() -> None:
    reply = HealthReply(
        service_id="s",
        started_at=1.0,
        uptime=2.0,
        sent_at=3.0,
        categories={"clip": CategoryHealth(revision=1, digest="d", record_count=2)},
        actor_restarts={"clip": 0},
        nats_connected=True,
        redis_connected=None,
    )
    assert decode_event(encode_event(reply)) == reply
    assert b'"type":"health"' in encode_event(reply)
