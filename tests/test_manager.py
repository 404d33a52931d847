"""ModelReferenceManager over a FileSystemBackend on the real golden-v2 catalogs."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    CategoryNotFoundError,
    ImageGenerationModelRecord,
    InvalidModelNameError,
    ModelNotFoundError,
    UnknownCategoryError,
)
from horde_model_reference import cache as cache_module
from horde_model_reference import catalog as catalog_module
from horde_model_reference.backends import base as base_module
from horde_model_reference.backends import filesystem as filesystem_module
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.cache import ChangeNotice
from horde_model_reference.manager import ModelReferenceManager
from horde_model_reference.manager.prefetch import PrefetchStrategy
from manager_harness import backend_of, counting_manager

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation


pytestmark = pytest.mark.usefixtures("manager_reset")


def test_singleton_semantics(catalog_dir: Path) -> None:
    first = counting_manager(catalog_dir)
    assert ModelReferenceManager() is first
    assert ModelReferenceManager(prefetch_strategy=PrefetchStrategy.LAZY) is first
    assert ModelReferenceManager.has_instance()
    assert ModelReferenceManager.get_instance() is first
    with pytest.raises(RuntimeError, match="prefetch_strategy"):
        ModelReferenceManager(prefetch_strategy=PrefetchStrategy.SYNC)
    with pytest.raises(RuntimeError, match="backend"):
        ModelReferenceManager(backend=FileSystemBackend(catalog_dir))
    ModelReferenceManager.reset()
    assert not ModelReferenceManager.has_instance()
    with pytest.raises(RuntimeError, match="instance has not been created yet"):
        ModelReferenceManager.get_instance()


def test_reads(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    record = manager.get_model(IMAGE, "DreamShaper XL")
    assert isinstance(record, ImageGenerationModelRecord)
    assert record.baseline == "stable_diffusion_xl"
    assert manager.get_model("image_generation", "DreamShaper XL") is record
    assert manager.get_model_or_none(IMAGE, "no such model") is None
    with pytest.raises(ModelNotFoundError, match="no such model"):
        manager.get_model(IMAGE, "no such model")
    assert len(manager.get_model_names(TEXT)) == 719
    assert len(manager.get_model_reference(IMAGE)) == 161
    assert set(manager.image_generation_models) == set(manager.get_model_names(IMAGE))
    assert manager.get_model(MODEL_REFERENCE_CATEGORY.controlnet, "control_qr_sdxl").name == "control_qr_xl"
    raw = manager.get_raw_model_json(IMAGE, "DreamShaper XL")
    assert raw is not None and raw["baseline"] == "stable_diffusion_xl"
    assert manager.get_raw_model_reference_json(IMAGE) is not None
    assert manager.model_reference_to_json_dict(IMAGE)["DreamShaper XL"]["nsfw"] is True


def test_text_backend_prefixed_names_resolve(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    plain = manager.get_model(TEXT, "acrastt/Marx-3B-V3")
    assert manager.get_model(TEXT, "aphrodite/acrastt/Marx-3B-V3") is plain


def test_missing_and_unknown_categories(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    assert manager.get_model_reference_or_none(MODEL_REFERENCE_CATEGORY.video_generation) is None
    with pytest.raises(CategoryNotFoundError, match="video_generation"):
        manager.get_model_reference(MODEL_REFERENCE_CATEGORY.video_generation)
    with pytest.raises(UnknownCategoryError, match="'dalle'"):
        manager.get_model_reference("dalle")
    assert manager.video_generation_models == {}


def test_missing_category_is_cached_briefly(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    for _ in range(50):
        assert manager.get_model_reference_or_none(MODEL_REFERENCE_CATEGORY.video_generation) is None
    assert backend_of(manager).calls["video_generation"] == 1


def test_sync_prefetch_warms_decoded_records(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    assert manager.is_warm
    calls = dict(backend_of(manager).calls)
    manager.get_model(IMAGE, "DreamShaper XL")
    manager.get_model_names(TEXT)
    assert backend_of(manager).calls == calls


def test_deferred_prefetch_runs_once(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.DEFERRED)
    handle = manager.deferred_prefetch_handle
    assert handle is not None and manager.prefetch_pending and not manager.is_warm
    handle.run_sync()
    handle.run_sync()
    assert manager.is_warm and not manager.prefetch_pending
    assert backend_of(manager).calls["image_generation"] == 1


@pytest.mark.anyio
async def test_async_prefetch_with_running_loop_never_warms_twice(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir, PrefetchStrategy.ASYNC)
    handle = manager.deferred_prefetch_handle
    assert handle is not None
    await handle
    await handle.run_async()
    assert manager.is_warm
    assert backend_of(manager).calls["image_generation"] == 1


@pytest.mark.anyio
async def test_async_reads_do_not_block_the_loop(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        records = await manager.get_model_reference_async(TEXT)
        record = await manager.get_model_async(IMAGE, "DreamShaper XL")
        names = await manager.get_model_names_async(IMAGE)
        tg.cancel_scope.cancel()
    assert len(records) == 719 and record.name == "DreamShaper XL" and len(names) == 161
    assert ticks > 0
    assert await manager.get_model_or_none_async(IMAGE, "nope") is None
    assert await manager.get_model_reference_or_none_async(MODEL_REFERENCE_CATEGORY.ti) is None


def test_records_the_backend_decoded_are_installed_without_decoding_again(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[str] = []
    real_decode = filesystem_module.decode_catalog

    def counting_decode(category: object, data: bytes, **kwargs: object) -> object:
        decodes.append(str(category))
        return real_decode(category, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(filesystem_module, "decode_catalog", counting_decode)
    monkeypatch.setattr(catalog_module, "decode_catalog", counting_decode)
    manager = counting_manager(catalog_dir)
    records = manager.get_model_reference(IMAGE)
    assert decodes == [IMAGE.value]
    payload = backend_of(manager).fetch_category_sync(IMAGE)
    assert payload is not None and payload.decoded is not None
    assert all(records[name] is record for name, record in payload.decoded.records.items())


def test_a_first_load_hashes_nothing_and_digests_are_computed_when_asked(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[int] = []
    real_digest = cache_module.catalog_digest

    def counting_digest(data: bytes) -> str:
        hashed.append(len(data))
        return real_digest(data)

    monkeypatch.setattr(cache_module, "catalog_digest", counting_digest)
    monkeypatch.setattr(base_module, "catalog_digest", counting_digest)
    manager = counting_manager(catalog_dir, PrefetchStrategy.SYNC)
    assert len(manager.get_all_model_references()[IMAGE] or {}) > 0
    assert hashed == [], "nothing compares digests during a first load"
    snapshot = manager.snapshot(IMAGE)
    assert snapshot is not None
    expected = hashlib.sha256((catalog_dir / "stable_diffusion.json").read_bytes().strip()).hexdigest()
    assert snapshot.digest == expected
    assert len(hashed) == 1


def test_corrupt_file_keeps_last_good_data(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    before = manager.get_model_reference(IMAGE)
    (catalog_dir / "stable_diffusion.json").write_bytes(b'{"broken": ')
    with capture_logs() as logs:
        after = manager.get_model_reference(IMAGE, overwrite_existing=True)
    assert after == before
    assert any(entry["event"] == "catalog_rejected" for entry in logs)


def test_deleted_file_keeps_last_good_data(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    before = manager.get_model_reference(IMAGE)
    (catalog_dir / "stable_diffusion.json").unlink()
    assert manager.get_model_reference(IMAGE, overwrite_existing=True) == before


def test_path_traversal_names_are_rejected(catalog_dir: Path) -> None:
    manager = counting_manager(catalog_dir)
    for bad in ("../../etc/passwd", "/etc/passwd", "a\\b", "", "x" * 300):
        with pytest.raises(InvalidModelNameError):
            manager.get_model(IMAGE, bad)
        with pytest.raises(InvalidModelNameError):
            manager.get_raw_model_json(IMAGE, bad)


def test_file_change_is_picked_up_and_reported(catalog_dir: Path, shared_data: Path) -> None:
    manager = counting_manager(catalog_dir)
    assert "Deliberate 3.0" in manager.get_model_reference(IMAGE)
    notices: list[ChangeNotice] = []
    manager.on_change(notices.append)
    older = shared_data / "history-v2" / "image" / "038_5426625.json"
    shutil.copyfile(older, catalog_dir / "stable_diffusion.json")
    manager.invalidate_category_cache(IMAGE)
    deadline = time.monotonic() + 30  # a ceiling for a loaded machine
    while not notices and time.monotonic() < deadline:
        manager.get_model_or_none(IMAGE, "DreamShaper XL")
        time.sleep(0.02)
    assert notices, "the change was not picked up"
    notice = notices[0]
    assert notice.category is IMAGE
    assert notice.added or notice.removed or notice.changed
    assert notice.digest == hashlib.sha256(older.read_bytes().strip()).hexdigest()


def test_failing_callback_does_not_stop_updates(catalog_dir: Path, shared_data: Path) -> None:
    manager = counting_manager(catalog_dir)
    seen: list[int] = []

    def broken(notice: ChangeNotice) -> None:
        raise RuntimeError("callback bug")

    manager.on_change(broken)
    manager.on_change(lambda notice: seen.append(1))
    manager.get_model_reference(IMAGE)
    assert seen == [1], "the first load is reported too (old_revision None)"
    seen.clear()
    shutil.copyfile(
        shared_data / "history-v2" / "image" / "038_5426625.json", catalog_dir / "stable_diffusion.json"
    )
    with capture_logs() as logs:
        manager.get_model_reference(IMAGE, overwrite_existing=True)
    assert seen == [1]
    assert any(entry["event"] == "on_change_callback_failed" for entry in logs)


def test_reads_never_see_an_absent_category_while_the_file_changes(
    catalog_dir: Path, shared_data: Path
) -> None:
    manager = counting_manager(catalog_dir)
    manager.get_model_reference(IMAGE)
    versions = sorted((shared_data / "history-v2" / "image").glob("*.json"))
    stop = threading.Event()
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            if manager.get_model_reference_or_none(IMAGE) is None:
                failures.append("absent")
            if not manager.get_model_names(IMAGE):
                failures.append("empty")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in versions * 2:
            shutil.copyfile(version, catalog_dir / "stable_diffusion.json")
            manager.invalidate_category_cache(IMAGE)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


def test_file_change_is_picked_up_without_invalidation(catalog_dir: Path, shared_data: Path) -> None:
    manager = counting_manager(catalog_dir)
    before = manager.get_model_names(IMAGE)
    shutil.copyfile(
        shared_data / "history-v2" / "image" / "038_5426625.json", catalog_dir / "stable_diffusion.json"
    )
    deadline = time.monotonic() + 30  # a ceiling for a loaded machine
    while manager.get_model_names(IMAGE) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.get_model_names(IMAGE) != before, "a changed file must be seen within a few seconds"


def test_reads_from_an_on_change_callback_work(catalog_dir: Path, shared_data: Path) -> None:
    manager = counting_manager(catalog_dir)
    seen: list[int] = []
    manager.get_model_names(IMAGE)
    manager.get_model_names(TEXT)
    manager._cache.checked_at[TEXT.value] = 0.0  # the text category is due for revalidation

    def reader(notice: ChangeNotice) -> None:
        seen.append(len(manager.get_model_names(TEXT)))

    manager.on_change(reader)
    shutil.copyfile(
        shared_data / "history-v2" / "image" / "038_5426625.json", catalog_dir / "stable_diffusion.json"
    )
    with capture_logs() as logs:
        manager.invalidate_category_cache(IMAGE)
        deadline = time.monotonic() + 30  # a ceiling for a loaded machine
        while not seen and time.monotonic() < deadline:
            manager.get_model_or_none(IMAGE, "x")
            time.sleep(0.02)
    assert seen == [719]
    assert not [entry for entry in logs if entry["event"] == "on_change_callback_failed"]
