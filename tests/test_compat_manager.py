"""Drop-in behaviour of the manager for code written against today's library (8.6.2).

Every name is imported from its upstream module path; each test states the upstream behaviour it
checks (from upstream's documentation and signatures), against the real catalogs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    GenericModelRecord,
    ImageGenerationModelRecord,
    ReplicateMode,
)
from horde_model_reference.backends.filesystem_backend import FileSystemBackend
from horde_model_reference.model_reference_manager import (
    DeferredPrefetchHandle,
    ModelReferenceManager,
    PrefetchStrategy,
)
from horde_model_reference.providers import StaticModelProvider
from manager_harness import CountingBackend, backend_of

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
CLIP = MODEL_REFERENCE_CATEGORY.clip
KNOWN = "AlbedoBase XL (SDXL)"
CanonicalView = dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None]

pytestmark = pytest.mark.usefixtures("manager_reset")


def test_the_upstream_module_path_is_the_manager_package() -> None:
    from horde_model_reference import manager

    assert ModelReferenceManager is manager.ModelReferenceManager
    assert PrefetchStrategy is manager.PrefetchStrategy
    assert DeferredPrefetchHandle is manager.DeferredPrefetchHandle
    assert [s.value for s in PrefetchStrategy] == ["lazy", "sync", "deferred", "async", "none"]
    from horde_model_reference import model_reference_manager as upstream_path
    from horde_model_reference.backends.github_backend import GitHubBackend

    assert upstream_path.GitHubBackend is GitHubBackend, "reGen imports GitHubBackend from the manager module"
    assert upstream_path.FileSystemBackend is FileSystemBackend
    assert upstream_path.MODEL_RECORD_TYPE_LOOKUP[IMAGE] is ImageGenerationModelRecord
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        upstream_path.nope  # noqa: B018


def test_get_instance_before_construction() -> None:
    assert not ModelReferenceManager.has_instance()
    with pytest.raises(RuntimeError, match="ModelReferenceManager instance has not been created yet"):
        ModelReferenceManager.get_instance()


def test_the_default_prefetch_strategy_is_lazy(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    assert manager.prefetch_strategy is PrefetchStrategy.LAZY
    assert manager.deferred_prefetch_handle is None
    assert not manager.is_warm and backend_of(manager).total == 0, "LAZY loaded at construction"
    assert manager.get_model(IMAGE, KNOWN).name == KNOWN
    assert backend_of(manager).calls == {IMAGE.value: 1}, "LAZY loads the category read, only"


def test_prefetch_strategy_accepts_its_value_and_refuses_others(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir), prefetch_strategy="none")  # type: ignore[arg-type]
    assert manager.prefetch_strategy is PrefetchStrategy.NONE
    ModelReferenceManager.reset()
    with pytest.raises(
        ValueError, match="prefetch_strategy must be one of: lazy, sync, deferred, async, none"
    ):
        ModelReferenceManager(backend=CountingBackend(catalog_dir), prefetch_strategy="eager")  # type: ignore[arg-type]


def test_deferred_handle_awaited_from_asyncio_run_warms_the_cache(catalog_dir: Path) -> None:
    """horde-engine waits for the warm-up with `asyncio.run` over `await handle`."""
    manager = ModelReferenceManager(
        backend=CountingBackend(catalog_dir), prefetch_strategy=PrefetchStrategy.DEFERRED
    )
    handle = manager.deferred_prefetch_handle
    assert isinstance(handle, DeferredPrefetchHandle) and not handle.force_refresh
    assert not manager.is_warm and manager.prefetch_pending

    async def wait() -> None:
        await handle

    asyncio.run(wait())
    assert manager.is_warm and not manager.prefetch_pending
    handle.run_sync()  # a second trigger does not load again
    assert backend_of(manager).calls[IMAGE.value] == 1


def test_create_deferred_prefetch_handle(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    handle = manager.create_deferred_prefetch_handle(force_refresh=True)
    assert manager.deferred_prefetch_handle is handle and handle.force_refresh
    assert backend_of(manager).total == 0, "creating the handle ran it"
    handle.run_sync()
    assert manager.is_warm
    fresh = manager.create_deferred_prefetch_handle()
    assert manager.deferred_prefetch_handle is fresh and not fresh.force_refresh
    asyncio.run(fresh.run_async(httpx_client=None))
    assert fresh.done


def test_ensure_ready_and_ensure_ready_async(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    manager.ensure_ready()
    assert manager.is_warm
    loads = backend_of(manager).calls[IMAGE.value]
    asyncio.run(manager.ensure_ready_async(httpx_client=None))
    assert backend_of(manager).calls[IMAGE.value] == loads, "ensure_ready_async reloaded a warm cache"
    manager.ensure_ready(overwrite_existing=True)
    assert backend_of(manager).calls[IMAGE.value] == loads + 1


def test_singleton_and_the_different_settings_error(catalog_dir: Path) -> None:
    backend = FileSystemBackend(base_path=catalog_dir, replicate_mode=ReplicateMode.PRIMARY)
    first = ModelReferenceManager(backend=backend, prefetch_strategy=PrefetchStrategy.LAZY)
    assert ModelReferenceManager() is first
    assert ModelReferenceManager(backend=backend, prefetch_strategy=PrefetchStrategy.LAZY) is first
    assert ModelReferenceManager.has_instance() and ModelReferenceManager.get_instance() is first
    with pytest.raises(RuntimeError, match="different settings.*prefetch_strategy"):
        ModelReferenceManager(prefetch_strategy=PrefetchStrategy.SYNC)
    with pytest.raises(RuntimeError, match="different settings.*backend"):
        ModelReferenceManager(backend=FileSystemBackend(base_path=catalog_dir))
    with pytest.raises(RuntimeError, match="different settings.*replicate_mode"):
        ModelReferenceManager(replicate_mode=ReplicateMode.REPLICA)
    with pytest.raises(RuntimeError, match="different settings.*offline"):
        ModelReferenceManager(offline=True)


def test_clearing_the_instance_attribute_gives_a_new_manager(catalog_dir: Path) -> None:
    """horde-sdk's tests swap `ModelReferenceManager._instance` to get a private manager."""
    shared = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    previous = ModelReferenceManager._instance
    ModelReferenceManager._instance = None
    try:
        private = ModelReferenceManager(
            backend=CountingBackend(catalog_dir), prefetch_strategy=PrefetchStrategy.NONE
        )
        assert private is not shared and private.prefetch_strategy is PrefetchStrategy.NONE
    finally:
        private.close()
        ModelReferenceManager._instance = previous
    assert ModelReferenceManager() is shared


def test_a_backend_of_another_mode_than_requested_is_refused(catalog_dir: Path) -> None:
    backend = FileSystemBackend(base_path=catalog_dir)
    with pytest.raises(RuntimeError, match="Backend replicate_mode does not match"):
        ModelReferenceManager(backend=backend, replicate_mode=ReplicateMode.REPLICA)
    ModelReferenceManager.reset()
    manager = ModelReferenceManager(backend=backend)
    assert manager.replicate_mode is ReplicateMode.PRIMARY, "the given backend's mode is the default"


def test_get_all_model_references_maps_a_missing_category_to_empty(catalog_dir: Path) -> None:
    (catalog_dir / "clip.json").unlink()
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    assert manager.get_all_model_references_or_none(safe_mode=True)[CLIP] is None
    everything = manager.get_all_model_references()
    assert everything[CLIP] == {}
    assert MODEL_REFERENCE_CATEGORY.lora not in everything, "a category managed elsewhere appeared"
    assert KNOWN in everything[IMAGE]
    assert asyncio.run(manager.get_all_model_references_async(httpx_client=None)) == everything


# -- canonical reads of queries and merges go through get_all_model_references_or_none ---------


def _image(name: str, baseline: str = "stable_diffusion_1") -> ImageGenerationModelRecord:
    return ImageGenerationModelRecord(name=name, baseline=baseline, nsfw=False)


@pytest.fixture
def patched(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModelReferenceManager, CanonicalView]]:
    """The manager with its canonical view patched on the instance, as AI-Horde's tests do."""
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    canonical: CanonicalView = {
        IMAGE: {"shared": _image("shared"), "canonical_only": _image("canonical_only")}
    }

    def fake_all(overwrite_existing: bool = False, *, safe_mode: bool = False) -> CanonicalView:
        return dict(canonical)

    async def fake_all_async(
        overwrite_existing: bool = False, *, safe_mode: bool = False, httpx_client: object = None
    ) -> CanonicalView:
        return dict(canonical)

    monkeypatch.setattr(manager, "get_all_model_references_or_none", fake_all)
    monkeypatch.setattr(manager, "get_all_model_references_or_none_async", fake_all_async)
    yield manager, canonical


def test_a_patched_canonical_view_feeds_canonical_queries(
    patched: tuple[ModelReferenceManager, CanonicalView],
) -> None:
    manager, canonical = patched
    assert sorted(manager.query(IMAGE).names()) == ["canonical_only", "shared"]
    assert manager.query(CLIP).count() == 0, "a category the view lacks is empty (upstream raises)"
    assert sorted(manager.get_model_reference_or_none(IMAGE) or {}) == ["canonical_only", "shared"]
    assert sorted(manager.get_model_reference()) == ["canonical_only", "shared"], (
        "image_generation is the default"
    )
    assert manager.get_model_reference_or_none(CLIP) is None
    canonical[IMAGE] = {"later": _image("later")}
    assert manager.query(IMAGE).names() == ["later"], "the view is read when the query runs"
    assert [r.name for r in manager.query_all().to_list()] == ["later"]


def test_a_patched_canonical_view_feeds_merges_with_providers(
    patched: tuple[ModelReferenceManager, CanonicalView],
) -> None:
    manager, _ = patched
    pending = {"shared": _image("shared", "flux_1"), "pending_only": _image("pending_only")}
    manager.register_provider(StaticModelProvider("pending", {IMAGE: pending}))
    beta_first = manager.query(IMAGE, source=["pending", "horde"])
    assert sorted(beta_first.names()) == ["canonical_only", "pending_only", "shared"]
    assert beta_first.where(name="shared").first().baseline == "flux_1"  # type: ignore[union-attr]
    assert beta_first.source_status() == {"pending": "ok", "horde": "ok"}
    merged = manager.get_model_reference_or_none(IMAGE, source=["horde", "pending"])
    assert merged is not None and merged["shared"].baseline == "stable_diffusion_1"
    assert manager.get_model_or_none(IMAGE, "pending_only", source="any") is not None


@pytest.mark.anyio
async def test_a_patched_async_view_feeds_async_queries(
    patched: tuple[ModelReferenceManager, CanonicalView],
) -> None:
    manager, _ = patched
    manager.register_provider(StaticModelProvider("pending", {IMAGE: {"p": _image("p")}}))
    assert (
        sorted(await manager.query(IMAGE).to_list_async(), key=lambda r: r.name)[0].name == "canonical_only"
    )
    merged = await manager.get_model_reference_or_none_async(IMAGE, source=["horde", "pending"])
    assert merged is not None and sorted(merged) == ["canonical_only", "p", "shared"]
    canonical = await manager.get_model_reference_or_none_async(IMAGE, httpx_client=None)
    assert sorted(canonical or {}) == ["canonical_only", "shared"]


def test_the_hot_path_and_undone_patches_read_the_snapshots(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`get_model` (the hot path) reads the held snapshot, patched or not; undoing a patch restores queries."""
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    real = manager.query(IMAGE).count()
    with monkeypatch.context() as patch:
        patch.setattr(
            manager, "get_all_model_references_or_none", lambda overwrite_existing=False: {IMAGE: {}}
        )
        assert manager.query(IMAGE).count() == 0
        assert manager.get_model(IMAGE, KNOWN).name == KNOWN
    assert manager.query(IMAGE).count() == real


def test_a_subclass_override_feeds_queries(catalog_dir: Path) -> None:
    class Extended(ModelReferenceManager):
        """Adds a record to the canonical view, reading the real one through `super()`."""

        def get_all_model_references_or_none(
            self, overwrite_existing: bool = False, *, safe_mode: bool = False
        ) -> CanonicalView:
            view = super().get_all_model_references_or_none(overwrite_existing, safe_mode=safe_mode)
            return {**view, IMAGE: {**(view[IMAGE] or {}), "extra": _image("extra")}}

    manager = Extended(backend=CountingBackend(catalog_dir))
    try:
        names = manager.query(IMAGE).names()
        assert "extra" in names and KNOWN in names
        assert "extra" in manager.get_model_reference(IMAGE)
    finally:
        Extended.reset()


def test_async_strategy_constructed_inside_asyncio_run_then_awaited(catalog_dir: Path) -> None:
    """horde-sdk and reGen: construct with ASYNC inside `asyncio.run`, then `await` the handle."""

    async def start() -> ModelReferenceManager:
        if ModelReferenceManager.has_instance():
            return ModelReferenceManager.get_instance()
        ModelReferenceManager(backend=CountingBackend(catalog_dir), prefetch_strategy=PrefetchStrategy.ASYNC)
        handle = ModelReferenceManager.get_instance().deferred_prefetch_handle
        assert handle is not None, "ASYNC exposes its handle, as upstream"
        await handle
        return ModelReferenceManager.get_instance()

    manager = asyncio.run(start())
    assert manager.is_warm and not manager.prefetch_pending
    assert backend_of(manager).calls[IMAGE.value] == 1, "awaiting the handle started a second warm-up"
    assert asyncio.run(start()) is manager


def test_model_reference_to_json_dict_accepts_upstreams_mapping(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    records = manager.get_model_reference(IMAGE)
    as_json = manager.model_reference_to_json_dict(records)
    assert as_json == manager.model_reference_to_json_dict(IMAGE)
    assert as_json[KNOWN]["baseline"] == "stable_diffusion_xl"
    assert manager.model_reference_to_json_dict_safe(records) == as_json
    with pytest.raises(ValueError, match="model_reference cannot be None"):
        manager.model_reference_to_json_dict(None)  # type: ignore[arg-type]


def test_a_mock_patched_over_the_canonical_view_feeds_queries(catalog_dir: Path) -> None:
    """`unittest.mock.patch.object` works as monkeypatch does (a Mock answers every attribute)."""
    from unittest import mock

    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    view = {IMAGE: {"mocked": _image("mocked")}}
    with mock.patch.object(manager, "get_all_model_references_or_none", return_value=view) as patched_read:
        assert manager.query(IMAGE).names() == ["mocked"]
    assert patched_read.call_args == mock.call(overwrite_existing=False)
    assert KNOWN in manager.query(IMAGE).names()


def test_missing_category_and_model_errors_carry_upstreams_phrases(catalog_dir: Path) -> None:
    (catalog_dir / "clip.json").unlink()
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    with pytest.raises(RuntimeError, match="category 'clip': not found or could not be parsed"):
        manager.get_model_reference(CLIP)
    with pytest.raises(RuntimeError, match="model 'nope' not found in category 'image_generation'"):
        manager.get_model(IMAGE, "nope")


def test_metadata_is_unsupported_as_upstream_reports_it(catalog_dir: Path) -> None:
    manager = ModelReferenceManager(backend=CountingBackend(catalog_dir))
    assert manager.data_root == catalog_dir.resolve()
    assert manager.supports_metadata() is False
    assert manager.get_metadata(IMAGE) is None
    assert asyncio.run(manager.get_metadata_async(IMAGE)) is None
    with pytest.raises(NotImplementedError, match="CountingBackend does not support metadata tracking"):
        manager.get_metadata(IMAGE, raise_if_unsupported=True)
