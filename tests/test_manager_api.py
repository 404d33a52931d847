"""Every read of ModelReferenceManager, sync and async, over the real golden-v2 catalogs.

What each variant returns for a present and an absent category, `overwrite_existing` on each of
them, the typed properties, the prefetch strategies, singleton conflicts, model names that could be
paths, and the negative cache (an absent category never costs I/O on the read path).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    CategoryNotFoundError,
    HordeModelReferenceSettings,
    InvalidModelNameError,
    ModelNotFoundError,
    ReplicateMode,
)
from horde_model_reference import catalog as catalog_module
from horde_model_reference.backends import filesystem as filesystem_module
from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.backends.filesystem import atomic_write_bytes
from horde_model_reference.categories import canonical_categories, get_category_descriptor
from horde_model_reference.errors import BackendError
from horde_model_reference.manager import ModelReferenceManager
from horde_model_reference.manager.prefetch import PrefetchStrategy
from manager_harness import CountingBackend, backend_of, counting_manager

pytestmark = pytest.mark.usefixtures("manager_reset")

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation
VIDEO = MODEL_REFERENCE_CATEGORY.video_generation  # no catalog in golden-v2
CLIP = MODEL_REFERENCE_CATEGORY.clip
KNOWN = "DreamShaper XL"


def _add_model(catalog_dir: Path, name: str) -> None:
    """Rewrite the image catalog atomically with one more record, a copy of KNOWN named `name`."""
    path = catalog_dir / "stable_diffusion.json"
    catalog: dict[str, Any] = msgspec.json.decode(path.read_bytes())
    catalog[name] = {**catalog[KNOWN], "name": name}
    atomic_write_bytes(path, msgspec.json.encode(catalog))


def test_every_sync_read_of_a_present_and_an_absent_category(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    records = manager.get_model_reference(IMAGE)
    assert manager.get_model_reference_or_none(IMAGE) == records
    assert manager.get_model(IMAGE, KNOWN) is records[KNOWN]
    assert manager.get_model_or_none(IMAGE, KNOWN) is records[KNOWN]
    assert manager.get_model_names(IMAGE) == list(records)
    assert manager.get_model_names_or_none(IMAGE) == list(records)
    everything = manager.get_all_model_references()
    present = {c for c in MODEL_REFERENCE_CATEGORY if (catalog_dir / _file(c)).exists()}
    assert set(everything) == present | set(canonical_categories())  # a missing canonical one is {}
    assert all(everything[c] == {} for c in set(everything) - present)
    with_none = manager.get_all_model_references_or_none()
    assert set(with_none) == set(MODEL_REFERENCE_CATEGORY) and with_none[VIDEO] is None
    assert with_none[IMAGE] == everything[IMAGE] == records
    as_json = manager.model_reference_to_json_dict(IMAGE)
    assert manager.model_reference_to_json_dict_safe(IMAGE) == as_json
    assert as_json[KNOWN] == msgspec.to_builtins(records[KNOWN])

    assert manager.get_model_reference_or_none(VIDEO) is None
    assert manager.get_model_names_or_none(VIDEO) is None
    assert manager.get_model_or_none(VIDEO, "anything") is None
    assert manager.get_raw_model_reference_json(VIDEO) is None
    assert manager.get_raw_model_json(VIDEO, "anything") is None
    assert manager.model_reference_to_json_dict_safe(VIDEO) is None
    for read in (manager.get_model_reference, manager.get_model_names, manager.model_reference_to_json_dict):
        with pytest.raises(CategoryNotFoundError, match="video_generation"):
            read(VIDEO)
    with pytest.raises(ModelNotFoundError, match="video_generation"):
        manager.get_model(VIDEO, "anything")


def _file(category: MODEL_REFERENCE_CATEGORY) -> str:
    return get_category_descriptor(category).v2_filename


@pytest.mark.anyio
async def test_every_async_read_answers_as_its_sync_twin(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    records = await manager.get_model_reference_async(IMAGE)
    assert records == manager.get_model_reference(IMAGE)
    assert await manager.get_model_reference_or_none_async(IMAGE) == records
    assert await manager.get_model_async(IMAGE, KNOWN) is records[KNOWN]
    assert await manager.get_model_or_none_async(IMAGE, KNOWN) is records[KNOWN]
    assert await manager.get_model_names_async(IMAGE) == list(records)
    assert await manager.get_model_names_or_none_async(IMAGE) == list(records)
    assert await manager.get_all_model_references_async() == manager.get_all_model_references()
    assert (
        await manager.get_all_model_references_or_none_async() == manager.get_all_model_references_or_none()
    )
    assert await manager.get_raw_model_reference_bytes_async(IMAGE) == manager.get_raw_model_reference_bytes(
        IMAGE
    )
    assert await manager.get_raw_model_reference_json_async(IMAGE) == manager.get_raw_model_reference_json(
        IMAGE
    )
    assert await manager.get_raw_model_json_async(IMAGE, KNOWN) == manager.get_raw_model_json(IMAGE, KNOWN)
    assert await manager.model_reference_to_json_dict_async(IMAGE) == manager.model_reference_to_json_dict(
        IMAGE
    )
    assert await manager.model_reference_to_json_dict_safe_async(
        IMAGE
    ) == manager.model_reference_to_json_dict(IMAGE)

    assert await manager.get_model_reference_or_none_async(VIDEO) is None
    assert await manager.get_model_names_or_none_async(VIDEO) is None
    assert await manager.get_model_or_none_async(VIDEO, "anything") is None
    assert await manager.get_raw_model_reference_json_async(VIDEO) is None
    assert await manager.get_raw_model_json_async(VIDEO, "anything") is None
    assert await manager.model_reference_to_json_dict_safe_async(VIDEO) is None
    with pytest.raises(CategoryNotFoundError, match="video_generation"):
        await manager.get_model_reference_async(VIDEO)
    with pytest.raises(CategoryNotFoundError, match="video_generation"):
        await manager.model_reference_to_json_dict_async(VIDEO)
    with pytest.raises(ModelNotFoundError, match="video_generation"):
        await manager.get_model_async(VIDEO, "anything")


def test_typed_properties_cover_every_category(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    typed = {category: getattr(manager, f"{category.value}_models") for category in MODEL_REFERENCE_CATEGORY}
    for category, records in typed.items():
        assert records == (manager.get_model_reference_or_none(category) or {}), category
    assert len(typed[IMAGE]) == 161 and len(typed[TEXT]) == 719 and typed[VIDEO] == {}


SyncRead = Callable[[ModelReferenceManager, str], bool]


def _sync_reads() -> dict[str, SyncRead]:
    """Each sync read with overwrite_existing=True, answering whether it sees model `name`."""
    return {
        "get_model": lambda m, n: m.get_model(IMAGE, n, True).name == n,
        "get_model_or_none": lambda m, n: m.get_model_or_none(IMAGE, n, True) is not None,
        "get_model_names": lambda m, n: n in m.get_model_names(IMAGE, True),
        "get_model_names_or_none": lambda m, n: n in (m.get_model_names_or_none(IMAGE, True) or []),
        "get_model_reference": lambda m, n: n in m.get_model_reference(IMAGE, True),
        "get_model_reference_or_none": lambda m, n: n in (m.get_model_reference_or_none(IMAGE, True) or {}),
        "get_all_model_references": lambda m, n: n in m.get_all_model_references(True)[IMAGE],
        "get_all_model_references_or_none": lambda m, n: (
            n in (m.get_all_model_references_or_none(True)[IMAGE] or {})
        ),
        "get_raw_model_reference_json": lambda m, n: n in (m.get_raw_model_reference_json(IMAGE, True) or {}),
        "get_raw_model_json": lambda m, n: m.get_raw_model_json(IMAGE, n, True) is not None,
        "model_reference_to_json_dict": lambda m, n: n in m.model_reference_to_json_dict(IMAGE, True),
    }


@pytest.mark.parametrize("read", sorted(_sync_reads()))
def test_overwrite_existing_refreshes_at_once_in_every_sync_read(catalog_dir: Path, read: str) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    _add_model(catalog_dir, "Overwrite Probe")
    assert manager.get_model_or_none(IMAGE, "Overwrite Probe") is None, "seen without a refresh"
    assert _sync_reads()[read](manager, "Overwrite Probe")


AsyncRead = Callable[[ModelReferenceManager, str], Awaitable[bool]]


async def _names_in(awaitable: Awaitable[Any], name: str) -> bool:
    return name in ((await awaitable) or {})


def _async_reads() -> dict[str, AsyncRead]:
    return {
        "get_model_async": lambda m, n: _names_in(m.get_model_reference_async(IMAGE, True), n),
        "get_model_or_none_async": lambda m, n: _found(m.get_model_or_none_async(IMAGE, n, True)),
        "get_model_names_async": lambda m, n: _names_in(m.get_model_names_async(IMAGE, True), n),
        "get_model_names_or_none_async": lambda m, n: _names_in(
            m.get_model_names_or_none_async(IMAGE, True), n
        ),
        "get_model_reference_async": lambda m, n: _names_in(m.get_model_reference_async(IMAGE, True), n),
        "get_all_model_references_async": lambda m, n: _image_has(m.get_all_model_references_async(True), n),
        "get_raw_model_reference_json_async": lambda m, n: _names_in(
            m.get_raw_model_reference_json_async(IMAGE, True), n
        ),
        "get_raw_model_json_async": lambda m, n: _found(m.get_raw_model_json_async(IMAGE, n, True)),
        "model_reference_to_json_dict_async": lambda m, n: _names_in(
            m.model_reference_to_json_dict_async(IMAGE, True), n
        ),
    }


async def _found(awaitable: Awaitable[Any]) -> bool:
    return (await awaitable) is not None


async def _image_has(awaitable: Awaitable[dict[MODEL_REFERENCE_CATEGORY, Any]], name: str) -> bool:
    return name in (await awaitable)[IMAGE]


@pytest.mark.anyio
@pytest.mark.parametrize("read", sorted(_async_reads()))
async def test_overwrite_existing_refreshes_at_once_in_every_async_read(catalog_dir: Path, read: str) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    _add_model(catalog_dir, "Overwrite Probe")
    assert manager.get_model_or_none(IMAGE, "Overwrite Probe") is None, "seen without a refresh"
    assert await _async_reads()[read](manager, "Overwrite Probe")


def test_raw_reads_serve_the_held_bytes_without_io_and_decode_nothing_when_cold(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = counting_manager(catalog_dir)
    raw = manager.get_raw_model_reference_bytes(IMAGE)
    assert raw == (catalog_dir / "stable_diffusion.json").read_bytes().strip()
    assert manager.snapshot(IMAGE) is None, "a raw read must not decode records into the cache"
    manager.get_model_reference(IMAGE)
    decodes: list[object] = []
    monkeypatch.setattr(filesystem_module, "decode_catalog", lambda *a, **k: decodes.append(a))
    monkeypatch.setattr(catalog_module, "decode_catalog", lambda *a, **k: decodes.append(a))
    fetches = backend_of(manager).total
    assert manager.get_raw_model_reference_bytes(IMAGE) == raw
    assert manager.get_raw_model_json(IMAGE, KNOWN) == msgspec.json.decode(raw)[KNOWN]
    assert backend_of(manager).total == fetches, "a warm raw read must not touch the backend"
    assert decodes == []


def test_prefetch_none_loads_nothing_until_the_first_read(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.NONE)
    assert backend_of(manager).calls == {}
    assert not manager.is_warm and not manager.prefetch_pending
    assert manager.deferred_prefetch_handle is None
    assert len(manager.get_model_reference(IMAGE)) == 161
    assert backend_of(manager).calls == {IMAGE.value: 1}


def test_prefetch_async_reports_pending_until_warm(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.ASYNC)
    deadline = time.monotonic() + 10
    while manager.prefetch_pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not manager.prefetch_pending and manager.is_warm
    assert backend_of(manager).calls[IMAGE.value] == 1


def test_conflicting_singleton_settings_raise_naming_the_setting(catalog_dir: Path, tmp_path: Path) -> None:
    first = counting_manager(catalog_dir)
    assert ModelReferenceManager(base_path=first.base_path) is first
    assert ModelReferenceManager(replicate_mode=first.replicate_mode, offline=first.offline) is first
    other_mode = (
        ReplicateMode.PRIMARY if first.replicate_mode is ReplicateMode.REPLICA else ReplicateMode.REPLICA
    )
    conflicts: dict[str, dict[str, Any]] = {
        "base_path": {"base_path": tmp_path / "elsewhere"},
        "replicate_mode": {"replicate_mode": other_mode},
        "offline": {"offline": not first.offline},
    }
    for setting, kwargs in conflicts.items():
        with pytest.raises(RuntimeError, match=setting):
            ModelReferenceManager(**kwargs)
    assert ModelReferenceManager.get_instance() is first


BAD_NAMES = ["../../etc/passwd", "/etc/passwd", "a\\b", "", "x" * 300, "org/../model", "a/b/c", "./x", "a//b"]


@pytest.mark.anyio
@pytest.mark.parametrize("name", BAD_NAMES)
async def test_names_that_could_be_paths_are_rejected_by_every_read_and_nothing_is_read(
    catalog_dir: Path, name: str
) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    fetches = backend_of(manager).total
    for category in (IMAGE, VIDEO):
        for read in (manager.get_model, manager.get_model_or_none, manager.get_raw_model_json):
            with pytest.raises(InvalidModelNameError):
                read(category, name)
        for async_read in (
            manager.get_model_async,
            manager.get_model_or_none_async,
            manager.get_raw_model_json_async,
        ):
            with pytest.raises(InvalidModelNameError):
                await async_read(category, name)
    assert backend_of(manager).total == fetches


@pytest.mark.parametrize(
    "name",
    ["DreamShaper XL", "aetherwiing/MN-12B-Starcannon-v3", "koboldcpp/aetherwiing/MN-12B-Starcannon-v3"],
)
def test_model_names_and_text_ids_with_a_backend_prefix_are_accepted(catalog_dir: Path, name: str) -> None:
    manager = counting_manager(catalog_dir)
    category = IMAGE if " " in name else TEXT
    assert manager.get_model(category, name) is not None


def test_an_absent_category_costs_no_io_on_the_read_path_after_the_negative_cache_expires(
    catalog_dir: Path,
) -> None:
    (catalog_dir / "clip.json").rename(catalog_dir / "clip.json.away")
    settings = HordeModelReferenceSettings(negative_cache_seconds=0.2, cache_ttl_seconds=60.0)
    manager = ModelReferenceManager(
        backend=RarelyRevalidated(catalog_dir), prefetch_strategy=PrefetchStrategy.SYNC, settings=settings
    )
    backend = backend_of(manager)
    assert manager.is_warm and backend.calls[CLIP.value] == 1
    manager.get_all_model_references()  # also tries the categories outside the canonical set once
    for _ in range(20):
        assert manager.get_model_reference_or_none(CLIP) is None
    assert backend.calls[CLIP.value] == 1, "re-fetched within the negative cache time"
    time.sleep(0.3)
    me = threading.get_ident()
    before = len(backend.threads)
    assert manager.get_all_model_references()[CLIP] == {}
    assert manager.get_model_reference_or_none(CLIP) is None
    assert manager.is_warm
    assert me not in backend.threads[before:], "a read fetched on the caller's thread"
    (catalog_dir / "clip.json.away").rename(catalog_dir / "clip.json")
    appeared = time.monotonic()
    while manager.get_model_reference_or_none(CLIP) is None and time.monotonic() < appeared + 10:
        time.sleep(0.05)
    assert manager.get_model_reference_or_none(CLIP), "the category that appeared was never picked up"
    assert time.monotonic() - appeared < 5, (
        "re-checked at the revalidation interval, not the negative cache time"
    )
    assert me not in backend.threads[before:]


class RarelyRevalidated(CountingBackend):
    """A backend whose data is revalidated once a minute (as GitHub's or a primary's)."""

    revalidate_interval = 60.0


def test_raw_reads_of_an_absent_category_are_answered_from_the_negative_cache(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    for _ in range(10):
        assert manager.get_raw_model_reference_bytes(VIDEO) is None
        assert manager.get_raw_model_json(VIDEO, "anything") is None
    assert backend_of(manager).calls == {VIDEO.value: 1}


def test_a_forced_raw_read_installs_what_it_read_so_later_reads_agree(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    _add_model(catalog_dir, "Forced Probe")
    forced = manager.get_raw_model_reference_json(IMAGE, overwrite_existing=True)
    assert forced is not None and "Forced Probe" in forced
    assert manager.get_raw_model_json(IMAGE, "Forced Probe") is not None
    assert manager.get_model(IMAGE, "Forced Probe").name == "Forced Probe"


def test_invalidate_category_cache_rechecks_an_absent_category_on_the_next_read(catalog_dir: Path) -> None:
    (catalog_dir / "clip.json").rename(catalog_dir / "clip.json.away")
    manager = counting_manager(catalog_dir)
    assert manager.get_model_reference_or_none(CLIP) is None
    (catalog_dir / "clip.json.away").rename(catalog_dir / "clip.json")
    assert manager.get_model_reference_or_none(CLIP) is None, "the negative cache holds"
    manager.invalidate_category_cache(CLIP)
    assert manager.get_model_reference_or_none(CLIP)
    assert manager.last_updated(CLIP) is not None and manager.last_updated(VIDEO) is None


class FailingBackend(CountingBackend):
    """A counting file backend whose source can be switched to failing (as a server going down)."""

    failing = False

    def fetch_category_sync(
        self, category: MODEL_REFERENCE_CATEGORY, force_refresh: bool = False
    ) -> CategoryPayload | None:
        payload = super().fetch_category_sync(category, force_refresh)
        if self.failing:
            raise BackendError(self.name, category.value, "the source is down")
        return payload


def _read_for(seconds: float, read: Callable[[], object], at_least: int = 60) -> int:
    """Read for `seconds`, and at least `at_least` times (a loaded machine reads slower)."""
    deadline, reads = time.monotonic() + seconds, 0
    while time.monotonic() < deadline or reads < at_least:
        read()
        reads += 1
        time.sleep(0.001)
    return reads


def test_re_checks_of_an_absent_category_are_spaced_even_with_no_negative_cache_or_a_failing_source(
    catalog_dir: Path,
) -> None:
    backend = FailingBackend(catalog_dir)
    settings = HordeModelReferenceSettings(negative_cache_seconds=0)
    manager = ModelReferenceManager(
        backend=backend, prefetch_strategy=PrefetchStrategy.LAZY, settings=settings
    )
    assert manager.get_model_reference_or_none(VIDEO) is None
    reads = _read_for(0.5, lambda: manager.get_model_reference_or_none(VIDEO))
    assert reads > 50 and backend.calls[VIDEO.value] <= 2, backend.calls
    backend.failing = True
    time.sleep(1.05)
    reads = _read_for(0.5, lambda: manager.get_model_reference_or_none(VIDEO))
    assert reads > 50 and backend.calls[VIDEO.value] <= 3, backend.calls


def test_a_held_category_whose_source_fails_is_not_asked_again_on_every_read(catalog_dir: Path) -> None:
    backend = FailingBackend(catalog_dir)
    manager = ModelReferenceManager(backend=backend, prefetch_strategy=PrefetchStrategy.LAZY)
    records = manager.get_model_reference(IMAGE)
    backend.failing = True
    time.sleep(1.05)  # past the file backend's revalidation interval
    reads = _read_for(0.5, lambda: manager.get_model(IMAGE, KNOWN))
    assert reads > 50 and backend.calls[IMAGE.value] <= 2, backend.calls
    assert manager.get_model_reference(IMAGE) == records, "the last good data stays"


def test_a_category_alias_reads_the_held_snapshot_without_fetching_again(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    record = manager.get_model(IMAGE, KNOWN)
    for _ in range(5):
        assert manager.get_model_or_none("stable_diffusion", KNOWN) is record
        assert manager.get_model_names("stable_diffusion")
    assert backend_of(manager).calls[IMAGE.value] == 1
