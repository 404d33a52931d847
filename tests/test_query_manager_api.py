"""ProviderQueryMixin on a fake host: registration, source selection, sync and async reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import anyio
import pytest

from horde_model_reference import (
    MODEL_RECORD_TYPE_LOOKUP,
    MODEL_REFERENCE_CATEGORY,
    ClipModelRecord,
    EsrganModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    UnknownCategoryError,
)
from horde_model_reference.providers import ModelProvider, ModelProviderRegistry, StaticModelProvider
from horde_model_reference.query import (
    ControlNetQuery,
    ImageGenerationQuery,
    ModelQuery,
    TextModelQuery,
    manager_api,
)
from horde_model_reference.query.manager_api import ProviderQueryMixin

C = MODEL_REFERENCE_CATEGORY
IMAGE: Final = C.image_generation


def image(name: str, **fields: Any) -> ImageGenerationModelRecord:
    fields.setdefault("baseline", "stable_diffusion_1")
    fields.setdefault("nsfw", False)
    return ImageGenerationModelRecord(name=name, **fields)


class FakeHost(ProviderQueryMixin):
    """Exactly the members ModelReferenceManager provides to the mixin."""

    def __init__(
        self, data: Mapping[MODEL_REFERENCE_CATEGORY, Mapping[str, GenericModelRecord]], timeout: float = 2.0
    ) -> None:
        self._data = data
        self._provider_registry = ModelProviderRegistry()
        self._provider_timeout = timeout
        self.sync_reads = 0
        self.async_reads = 0

    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        self.sync_reads += 1
        return self._data.get(category)

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        self.async_reads += 1
        return self._data.get(category)


class SlowProvider(ModelProvider):
    def __init__(
        self,
        source_id: str,
        delay: float,
        records: Mapping[str, GenericModelRecord],
        timeout: float | None = None,
    ) -> None:
        self._id, self._delay, self._records, self._timeout = source_id, delay, records, timeout

    @property
    def source_id(self) -> str:
        return self._id

    def provided_categories(self) -> frozenset[MODEL_REFERENCE_CATEGORY]:
        return frozenset({IMAGE})

    def fetch_category(self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False) -> Any:
        raise AssertionError("readers use the async path")

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Any:
        await anyio.sleep(self._delay)
        return self._records

    def fetch_timeout_seconds(self) -> float | None:
        return self._timeout


@pytest.fixture
def canonical() -> dict[str, GenericModelRecord]:
    return {"a": image("a", version="horde"), "b": image("b", version="horde")}


@pytest.fixture
def host(canonical: dict[str, GenericModelRecord]) -> FakeHost:
    return FakeHost({IMAGE: canonical, C.clip: {"c": ClipModelRecord(name="c")}})


@pytest.fixture
def no_portal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if anything goes through the background loop."""

    def refuse(*args: object) -> None:
        raise AssertionError("the background portal was used")

    monkeypatch.setattr(manager_api, "run_sync", refuse)


def versions(query: ModelQuery[Any, Any]) -> dict[str, str | None]:
    return {r.name: r.version for r in query.to_list()}


# -- providers ---------------------------------------------------------------------------------


def test_provider_management(host: FakeHost) -> None:
    civitai = StaticModelProvider("civitai", {IMAGE: {}})
    host.register_provider(civitai)
    assert host.list_providers() == ["civitai"]
    assert host.get_provider("civitai") is civitai
    assert host.get_provider("nope") is None
    assert host.provider_registry is host._provider_registry
    with pytest.raises(ValueError, match="already registered under source id 'civitai'"):
        host.register_provider(StaticModelProvider("civitai", {}))
    replacement = StaticModelProvider("civitai", {})
    host.register_provider(replacement, replace=True)
    assert host.get_provider("civitai") is replacement
    assert host.unregister_provider("civitai") is True
    assert host.unregister_provider("civitai") is False
    assert host.list_providers() == []


@pytest.mark.parametrize(
    ("source_id", "message"),
    [("horde", "reserved"), ("any", "reserved"), ("", "empty"), ("a b", "whitespace")],
)
def test_register_provider_rejects_bad_ids(host: FakeHost, source_id: str, message: str) -> None:
    provider = SlowProvider(source_id, 0, {})
    with pytest.raises(ValueError, match=message):
        host.register_provider(provider)


def test_registry_is_created_lazily() -> None:
    class BareHost(ProviderQueryMixin):
        pass

    bare = BareHost()
    registry = bare.provider_registry
    assert isinstance(registry, ModelProviderRegistry)
    assert bare.provider_registry is registry


# -- query entry points ------------------------------------------------------------------------


def test_query_returns_the_typed_builder(host: FakeHost) -> None:
    assert type(host.query(IMAGE)) is ImageGenerationQuery
    assert type(host.query("stable_diffusion")) is ImageGenerationQuery
    assert type(host.query("text_generation")) is TextModelQuery
    assert type(host.query(C.controlnet)) is ControlNetQuery
    assert type(host.query("clip")) is ModelQuery
    with pytest.raises(UnknownCategoryError, match="'nope'"):
        host.query("nope")


SHORTCUTS = {category: f"query_{category.value}" for category in MODEL_REFERENCE_CATEGORY}


@pytest.mark.parametrize("category", list(MODEL_REFERENCE_CATEGORY), ids=lambda c: c.value)
def test_one_shortcut_per_category(host: FakeHost, category: MODEL_REFERENCE_CATEGORY) -> None:
    query = getattr(host, SHORTCUTS[category])()
    assert type(query) is type(host.query(category))
    assert query._record_type is MODEL_RECORD_TYPE_LOOKUP[category]
    assert query.to_list() == list(host._data.get(category, {}).values())


def test_canonical_queries_stay_synchronous(host: FakeHost, no_portal: None) -> None:
    query = host.query_image_generation().exclude_nsfw()
    assert host.sync_reads == 0, "nothing is read before a terminal"
    assert query.names() == ["a", "b"]
    assert query.source_status() == {"horde": "ok"}
    assert host.query(C.lora).to_list() == []
    assert host.query(C.lora).source_status() == {"horde": "empty"}
    assert host._merged_records_sync(IMAGE) is host._data[IMAGE], "canonical-only returns the host's mapping"
    assert host._merged_records_sync(C.lora) is None
    assert host.async_reads == 0


def test_query_all(host: FakeHost) -> None:
    host._data = {**host._data, C.esrgan: {"a": EsrganModelRecord(name="a")}}
    everything = host.query_all()
    assert sorted(everything.names()) == ["a", "a", "b", "c"], "no de-duplication across categories"
    assert everything.where(name="a").count() == 2
    assert everything.duplicate_names() == {}
    assert everything.where_classification(domain="image").count() == 4
    with pytest.raises(ValueError, match="unknown field 'baseline' for GenericModelRecord"):
        everything.where(baseline="x")
    assert FakeHost({}).query_all().source_status() == {"horde": "empty"}


@pytest.mark.anyio
async def test_query_all_async(host: FakeHost) -> None:
    assert len(await host.query_all().to_list_async()) == 3
    assert host.sync_reads == 0


# -- selecting sources -------------------------------------------------------------------------


def _with_providers(host: FakeHost) -> FakeHost:
    host.register_provider(
        StaticModelProvider(
            "civitai", {IMAGE: {"b": image("b", version="civitai"), "c": image("c", version="civitai")}}
        )
    )
    host.register_provider(
        StaticModelProvider(
            "pending", {IMAGE: {"a": image("a", version="pending"), "d": image("d", version="pending")}}
        )
    )
    return host


def test_any_is_canonical_first_then_registration_order(host: FakeHost) -> None:
    query = _with_providers(host).query(IMAGE, source="any")
    assert versions(query) == {"a": "horde", "b": "horde", "c": "civitai", "d": "pending"}
    assert query.source_status() == {"horde": "ok", "civitai": "ok", "pending": "ok"}
    assert query.duplicate_names() == {"a": ["horde", "pending"], "b": ["horde", "civitai"]}


def test_selector_order_is_precedence(host: FakeHost) -> None:
    _with_providers(host)
    assert versions(host.query(IMAGE, source=["pending", "horde"])) == {
        "a": "pending",
        "d": "pending",
        "b": "horde",
    }
    assert versions(host.query(IMAGE, source=["civitai", "any"])) == {
        "b": "civitai",
        "c": "civitai",
        "a": "horde",
        "d": "pending",
    }
    assert versions(host.query(IMAGE, source="civitai")) == {"b": "civitai", "c": "civitai"}
    assert host.query(IMAGE, source=["pending", "pending"]).source_status() == {"pending": "ok"}
    assert versions(host.query(IMAGE, source=[])) == {"a": "horde", "b": "horde"}


def test_unregistered_ids_raise(host: FakeHost) -> None:
    _with_providers(host)
    with pytest.raises(
        ValueError,
        match=r"No provider registered under source id 'nope'; registered providers: civitai, pending",
    ):
        host.query(IMAGE, source=["horde", "nope"])
    with pytest.raises(ValueError, match="registered providers: none"):
        FakeHost({}).query(IMAGE, source="civitai")
    with pytest.raises(ValueError, match="'nope'"):
        host._merged_records_sync(IMAGE, "nope")


def test_merged_records(host: FakeHost) -> None:
    _with_providers(host)
    merged = host._merged_records_sync(IMAGE, ["pending", "horde"])
    assert merged is not None
    assert {name: record.version for name, record in merged.items()} == {
        "a": "pending",
        "d": "pending",
        "b": "horde",
    }
    assert host._merged_records_sync(C.clip, "civitai") is None, "no selected source has the category"
    assert list(host._merged_records_sync(C.clip, "any") or {}) == ["c"]


@pytest.mark.anyio
async def test_merged_records_async(host: FakeHost, no_portal: None) -> None:
    _with_providers(host)
    merged = await host._merged_records_async("image_generation", "any")
    assert merged is not None and list(merged) == ["a", "b", "c", "d"]
    assert await host._merged_records_async(IMAGE) is host._data[IMAGE]
    assert await host._merged_records_async(C.lora, ["horde", "pending"]) is None
    assert host.sync_reads == 0


@pytest.mark.anyio
async def test_async_terminals_read_on_the_callers_loop(host: FakeHost, no_portal: None) -> None:
    _with_providers(host)
    query = await host.query(IMAGE, source="any").exclude_nsfw().fetch()
    assert query.count() == 4
    assert query.sources() == ["horde", "horde", "civitai", "pending"]
    assert [r.name for r in await host.query_image_generation().to_list_async()] == ["a", "b"]
    assert host.sync_reads == 0


def test_sync_terminals_with_providers_from_a_foreign_loop_thread(host: FakeHost) -> None:
    """Sync code inside someone else's event loop still reads (through the background loop)."""
    _with_providers(host)
    result: list[list[str]] = []

    async def app() -> None:
        result.append(host.query(IMAGE, source="any").names())

    thread = threading.Thread(target=anyio.run, args=(app,))
    thread.start()
    thread.join(10)
    assert result == [["a", "b", "c", "d"]]


def test_failing_and_slow_providers_through_the_sync_api(host: FakeHost) -> None:
    host.register_provider(SlowProvider("slow_ok", 0.05, {"s": image("s")}))
    host.register_provider(SlowProvider("hangs", 3600, {}, timeout=0.2))
    host.register_provider(SlowProvider("default_timeout", 3600, {}))
    host._provider_timeout = 0.3
    start = time.perf_counter()
    query = host.query(IMAGE, source="any")
    assert query.names() == ["a", "b", "s"]
    assert time.perf_counter() - start < 1.5
    assert query.source_status() == {
        "horde": "ok",
        "slow_ok": "ok",
        "hangs": "error",
        "default_timeout": "error",
    }
    assert query.failed_sources() == ["hangs", "default_timeout"]
    assert query.source_errors()["hangs"].endswith("timed out after 0.2s on category 'image_generation'")
    assert query.source_errors()["default_timeout"].endswith(
        "timed out after 0.3s on category 'image_generation'"
    )


def test_ten_slow_providers_merge_in_about_one_delay(host: FakeHost) -> None:
    for i in range(10):  # one after the other they would take 10 s
        host.register_provider(SlowProvider(f"p{i}", 1.0, {f"m{i}": image(f"m{i}")}))
    host._merged_records_sync(IMAGE, "any")  # start the background loop outside the timing
    start = time.perf_counter()
    merged = host._merged_records_sync(IMAGE, "any")
    elapsed = time.perf_counter() - start
    assert merged is not None and len(merged) == 12
    assert elapsed < 5.0, f"10 x 1 s providers took {elapsed:.3f}s"


def test_default_timeout_without_host_setting() -> None:
    class NoTimeoutHost(FakeHost):
        def __init__(self) -> None:
            super().__init__({})
            del self._provider_timeout

    assert manager_api.DEFAULT_PROVIDER_TIMEOUT_SECONDS == 10.0
    host = NoTimeoutHost()
    host.register_provider(SlowProvider("p", 0, {"x": image("x")}))
    assert host.query(IMAGE, source="p").names() == ["x"]
