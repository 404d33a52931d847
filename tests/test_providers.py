"""Providers, the registry, source selectors, and the concurrent isolated read of sources."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Set
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    ClipModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    RecordDecodeError,
    TextGenerationModelRecord,
    UnknownCategoryError,
)
from horde_model_reference.providers import (
    ANY_SOURCE,
    HORDE_SOURCE_ID,
    RESERVED_SOURCE_IDS,
    ModelProvider,
    ModelProviderRegistry,
    StaticModelProvider,
    normalize_source_selector,
)
from horde_model_reference.providers.gather import SourceRead, merge_first_wins, read_sources, single_source
from horde_model_reference.source_consts import validate_provider_id

C = MODEL_REFERENCE_CATEGORY
IMAGE = C.image_generation


def image(name: str, **fields: Any) -> ImageGenerationModelRecord:
    fields.setdefault("baseline", "stable_diffusion_1")
    fields.setdefault("nsfw", False)
    return ImageGenerationModelRecord(name=name, **fields)


class FuncProvider(ModelProvider):
    """A provider whose sync fetch is a given function (so the default async path is a thread)."""

    def __init__(
        self,
        source_id: str,
        fetch: Any,
        categories: Set[MODEL_REFERENCE_CATEGORY] = frozenset({IMAGE}),
        timeout: float | None = None,
    ) -> None:
        self._id = source_id
        self._fetch = fetch
        self._categories = categories
        self._timeout = timeout
        self.calls: list[tuple[MODEL_REFERENCE_CATEGORY, bool]] = []

    @property
    def source_id(self) -> str:
        return self._id

    def provided_categories(self) -> Set[MODEL_REFERENCE_CATEGORY]:
        return self._categories

    def fetch_category(self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False) -> Any:
        self.calls.append((category, force_refresh))
        return self._fetch()

    def fetch_timeout_seconds(self) -> float | None:
        return self._timeout


class AsyncSleepProvider(FuncProvider):
    """Native async: sleeps, then returns its records (records cancellation)."""

    def __init__(self, source_id: str, delay: float, records: Mapping[str, GenericModelRecord]) -> None:
        super().__init__(source_id, lambda: records)
        self.delay = delay
        self.cancelled = False

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Any:
        try:
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        return self.fetch_category(category, force_refresh=force_refresh)


async def _no_canonical(category: MODEL_REFERENCE_CATEGORY) -> Mapping[str, GenericModelRecord] | None:
    return None


def registry_of(*providers: ModelProvider) -> ModelProviderRegistry:
    registry = ModelProviderRegistry()
    for provider in providers:
        registry.register(provider)
    return registry


# -- source constants --------------------------------------------------------------------------


def test_source_constants() -> None:
    assert (HORDE_SOURCE_ID, ANY_SOURCE) == ("horde", "any")
    assert {"horde", "any"} == RESERVED_SOURCE_IDS


def test_normalize_source_selector() -> None:
    assert normalize_source_selector("horde") == ["horde"]
    assert normalize_source_selector(["pending", "horde", "pending"]) == ["pending", "horde"]
    assert normalize_source_selector(()) == ["horde"]
    with pytest.raises(TypeError, match=r"source ids must be strings, got 3 \(int\)"):
        normalize_source_selector(["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a string or a sequence"):
        normalize_source_selector({"a"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source id ' ' is empty"):
        normalize_source_selector(" ")


@pytest.mark.parametrize(
    ("source_id", "error", "message"),
    [
        ("horde", ValueError, "'horde' is reserved"),
        ("any", ValueError, "'any' is reserved"),
        ("", ValueError, "must be a non-empty string"),
        ("my provider", ValueError, "'my provider' must not contain whitespace"),
        ("tab\tid", ValueError, "must not contain whitespace"),
        (None, TypeError, "must be a string"),
    ],
)
def test_bad_provider_ids(source_id: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate_provider_id(source_id)
    if isinstance(source_id, str):
        with pytest.raises(error, match=message):
            StaticModelProvider(source_id, {})
        with pytest.raises(error, match=message):
            ModelProviderRegistry().register(FuncProvider(source_id, dict))
        with pytest.raises(error, match=message):
            FuncProvider(source_id, dict).validate_source_id()


# -- ModelProvider -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_default_async_fetch_runs_the_sync_one_in_a_worker_thread() -> None:
    threads: list[int] = []

    def fetch() -> dict[str, GenericModelRecord]:
        threads.append(threading.get_ident())
        return {"a": image("a")}

    provider = FuncProvider("t", fetch)
    assert list(await provider.fetch_category_async(IMAGE, force_refresh=True) or {}) == ["a"]
    assert threads and threads[0] != threading.get_ident()
    assert provider.calls == [(IMAGE, True)]


def test_provider_defaults() -> None:
    provider = FuncProvider("t", dict)
    assert provider.serves_category(IMAGE)
    assert provider.serves_category("stable_diffusion")
    assert not provider.serves_category("clip")
    with pytest.raises(UnknownCategoryError):
        provider.serves_category("nope")
    assert provider.supports_writes() is False
    assert provider.cache_ttl_seconds() is None
    assert repr(provider) == "FuncProvider(source_id='t')"


# -- StaticModelProvider -----------------------------------------------------------------------


def test_static_provider() -> None:
    record = image("a")
    provider = StaticModelProvider(
        "civitai", {"image_generation": {"a": record}}, cache_ttl_seconds=30, fetch_timeout_seconds=2
    )
    assert provider.source_id == "civitai"
    assert set(provider.provided_categories()) == {IMAGE}
    served = provider.fetch_category(IMAGE, force_refresh=True)
    assert served == {"a": record}
    with pytest.raises(TypeError):
        served["b"] = record  # type: ignore[index]
    assert provider.fetch_category(C.clip) is None
    assert (provider.cache_ttl_seconds(), provider.fetch_timeout_seconds()) == (30, 2)
    assert provider.supports_writes() is False


@pytest.mark.anyio
async def test_static_provider_async() -> None:
    provider = StaticModelProvider("civitai", {IMAGE: {"a": image("a")}})
    assert list(await provider.fetch_category_async(IMAGE) or {}) == ["a"]


def test_static_provider_rejects_wrong_records() -> None:
    with pytest.raises(
        TypeError, match=r"record 'a' for category 'image_generation' must be a ImageGenerationModelRecord"
    ):
        StaticModelProvider("x", {IMAGE: {"a": ClipModelRecord(name="a")}})
    with pytest.raises(TypeError, match=r"got dict"):
        StaticModelProvider("x", {IMAGE: {"a": {"baseline": "x"}}})  # type: ignore[dict-item]
    with pytest.raises(UnknownCategoryError, match="'nope'"):
        StaticModelProvider("x", {"nope": {}})


def test_static_provider_from_raw() -> None:
    provider = StaticModelProvider.from_raw(
        "civitai",
        {
            IMAGE: {"my_model": {"baseline": "stable_diffusion_xl", "nsfw": False}},
            "text_generation": {"org/m": {"parameters": 7}},
            "clip": {"c": {"name": "ignored", "pretrained_name": "p"}},
        },
        cache_ttl_seconds=5,
    )
    image_record = (provider.fetch_category(IMAGE) or {})["my_model"]
    assert isinstance(image_record, ImageGenerationModelRecord)
    assert (image_record.name, image_record.baseline) == ("my_model", "stable_diffusion_xl")
    text_record = (provider.fetch_category(C.text_generation) or {})["org/m"]
    assert isinstance(text_record, TextGenerationModelRecord) and text_record.parameters_count == 7
    assert (provider.fetch_category(C.clip) or {})["c"].name == "c", "the key is the name"
    assert provider.cache_ttl_seconds() == 5
    with pytest.raises(RecordDecodeError, match=r"record 'bad' in category 'image_generation': field 'nsfw'"):
        StaticModelProvider.from_raw("x", {IMAGE: {"bad": {"baseline": "x", "nsfw": "maybe"}}})


# -- registry ----------------------------------------------------------------------------------


def test_registry() -> None:
    registry = ModelProviderRegistry()
    a, b, c = (StaticModelProvider(i, {IMAGE: {}} if i != "c" else {C.clip: {}}) for i in "abc")
    for provider in (a, b, c):
        registry.register(provider)
    assert registry.source_ids() == ["a", "b", "c"]
    assert registry.get("b") is b and registry.get("zz") is None
    assert registry.has("c") and not registry.has("zz")
    assert registry.providers_for("image_generation") == [a, b]
    assert registry.providers_for(C.clip) == [c]
    with pytest.raises(ValueError, match="already registered under source id 'a'; pass replace=True"):
        registry.register(StaticModelProvider("a", {}))
    a2 = StaticModelProvider("a", {})
    registry.register(a2, replace=True)
    assert registry.source_ids() == ["a", "b", "c"], "a replaced provider keeps its place"
    assert registry.get("a") is a2
    assert registry.unregister("b") is True
    assert registry.unregister("b") is False
    assert registry.source_ids() == ["a", "c"]
    with pytest.raises(TypeError, match="expected a ModelProvider, got str"):
        registry.register("a")  # type: ignore[arg-type]


def test_registry_is_thread_safe() -> None:
    registry = ModelProviderRegistry()
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(50):
            registry.register(StaticModelProvider(f"w{worker}-{i}", {}))
            registry.source_ids()
            if i % 2:
                registry.unregister(f"w{worker}-{i}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = registry.source_ids()
    assert len(ids) == 8 * 25
    for worker in range(8):
        mine = [i for i in ids if i.startswith(f"w{worker}-")]
        assert mine == [f"w{worker}-{i}" for i in range(0, 50, 2)], "registration order is kept"


# -- reading sources ---------------------------------------------------------------------------


def test_single_source_and_merge() -> None:
    assert single_source("x", None) == SourceRead((), {"x": "empty"}, {})
    assert single_source("x", {}).status == {"x": "empty"}
    first, second = {"a": image("a", version="1")}, {"a": image("a", version="2"), "b": image("b")}
    read = SourceRead((("one", first), ("two", second)), {"one": "ok", "two": "ok"}, {})
    merged = merge_first_wins(read)
    assert list(merged) == ["a", "b"] and merged["a"].version == "1"
    assert merge_first_wins(SourceRead((), {}, {})) == {}


@pytest.mark.anyio
async def test_read_sources_isolates_every_kind_of_failure() -> None:
    good = StaticModelProvider("good", {IMAGE: {"g": image("g")}})
    empty = StaticModelProvider("empty", {IMAGE: {}})
    other = StaticModelProvider("other", {C.clip: {"c": ClipModelRecord(name="c")}})

    def boom() -> None:
        raise RuntimeError("database down")

    raising = FuncProvider("raising", boom)
    listing = FuncProvider("listing", lambda: [image("x")])
    wrong = FuncProvider("wrong", lambda: {"w": ClipModelRecord(name="w")})
    raw = FuncProvider("raw", lambda: {"r": {"baseline": "x"}})
    registry = registry_of(good, empty, other, raising, listing, wrong, raw)

    async def canonical(category: MODEL_REFERENCE_CATEGORY) -> Mapping[str, GenericModelRecord]:
        return {"h": image("h")}

    order = ("raising", "horde", "listing", "good", "empty", "other", "wrong", "raw")
    with capture_logs() as logs:
        read = await read_sources(IMAGE, order, registry=registry, canonical=canonical, default_timeout=1.0)
    assert [source for source, _ in read.blocks] == ["horde", "good"]
    assert read.status == {
        "raising": "error",
        "horde": "ok",
        "listing": "error",
        "good": "ok",
        "empty": "empty",
        "other": "empty",
        "wrong": "error",
        "raw": "error",
    }
    assert read.errors["raising"] == "RuntimeError: database down"
    assert read.errors["listing"] == (
        "provider 'listing' returned a list for category 'image_generation'; "
        "expected a mapping of model name to ImageGenerationModelRecord"
    )
    assert read.errors["wrong"] == (
        "provider 'wrong' returned a ClipModelRecord for model 'w' in category 'image_generation'; "
        "expected a ImageGenerationModelRecord keyed by its name"
    )
    assert "returned a dict for model 'r'" in read.errors["raw"]
    failures = {log["source"]: log for log in logs if log["event"] == "source_read_failed"}
    assert set(failures) == {"raising", "listing", "wrong", "raw"}
    assert failures["raising"]["category"] == "image_generation"
    assert failures["raising"]["reason"] == "RuntimeError: database down"


@pytest.mark.anyio
async def test_a_failing_canonical_source_is_isolated_too() -> None:
    async def canonical(category: MODEL_REFERENCE_CATEGORY) -> Mapping[str, GenericModelRecord]:
        raise OSError("disk gone")

    registry = registry_of(StaticModelProvider("good", {IMAGE: {"g": image("g")}}))
    read = await read_sources(
        IMAGE, ("horde", "good"), registry=registry, canonical=canonical, default_timeout=1.0
    )
    assert read.status == {"horde": "error", "good": "ok"}
    assert read.errors == {"horde": "OSError: disk gone"}


@pytest.mark.anyio
async def test_an_unregistered_provider_is_an_error_not_a_crash() -> None:
    read = await read_sources(
        IMAGE, ("gone",), registry=ModelProviderRegistry(), canonical=_no_canonical, default_timeout=1.0
    )
    assert read.status == {"gone": "error"}
    assert "was unregistered" in read.errors["gone"]


@pytest.mark.anyio
async def test_force_refresh_reaches_the_provider() -> None:
    provider = FuncProvider("p", lambda: {"a": image("a")})
    await read_sources(
        IMAGE,
        ("p",),
        registry=registry_of(provider),
        canonical=_no_canonical,
        default_timeout=1.0,
        force_refresh=True,
    )
    assert provider.calls == [(IMAGE, True)]


class _GatheringProvider(FuncProvider):
    """Native async: returns its records only once `expected` providers are fetching at once."""

    def __init__(self, source_id: str, together: list[int], expected: int, everyone: anyio.Event) -> None:
        super().__init__(source_id, lambda: {source_id: image(source_id)})
        self._together, self._expected, self._everyone = together, expected, everyone

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Any:
        self._together.append(1)
        if len(self._together) == self._expected:
            self._everyone.set()
        await self._everyone.wait()  # read one after the other, the first would wait forever
        return self.fetch_category(category, force_refresh=force_refresh)


@pytest.mark.anyio
async def test_ten_slow_providers_are_read_at_the_same_time() -> None:
    together: list[int] = []
    everyone = anyio.Event()
    providers = [_GatheringProvider(f"p{i}", together, 10, everyone) for i in range(10)]
    registry = registry_of(*providers)
    ids = tuple(p.source_id for p in providers)
    read = await read_sources(IMAGE, ids, registry=registry, canonical=_no_canonical, default_timeout=60.0)
    assert read.status == dict.fromkeys(ids, "ok"), read.errors  # not concurrent: each one times out
    assert len(merge_first_wins(read)) == 10


@pytest.mark.anyio
async def test_ten_slow_sync_providers_are_read_at_the_same_time() -> None:
    barrier = threading.Barrier(10, timeout=60)

    def gathering(i: int) -> Any:
        def fetch() -> dict[str, GenericModelRecord]:
            barrier.wait()  # read one after the other, the first would break the barrier
            return {f"m{i}": image(f"m{i}")}

        return fetch

    providers = [FuncProvider(f"p{i}", gathering(i)) for i in range(10)]
    ids = tuple(p.source_id for p in providers)
    read = await read_sources(
        IMAGE, ids, registry=registry_of(*providers), canonical=_no_canonical, default_timeout=90.0
    )
    assert read.status == dict.fromkeys(ids, "ok"), read.errors
    assert len(merge_first_wins(read)) == 10


@pytest.mark.anyio
async def test_a_hanging_provider_costs_only_its_timeout() -> None:
    release = threading.Event()

    def hang() -> dict[str, GenericModelRecord]:
        release.wait(10)
        return {}

    hanging_sync = FuncProvider("hanging_sync", hang, timeout=0.2)
    hanging_async = AsyncSleepProvider("hanging_async", 3600, {})
    quick = StaticModelProvider("quick", {IMAGE: {"q": image("q")}})
    registry = registry_of(hanging_sync, hanging_async, quick)
    try:
        start = time.perf_counter()
        read = await read_sources(
            IMAGE,
            ("hanging_sync", "hanging_async", "quick"),
            registry=registry,
            canonical=_no_canonical,
            default_timeout=0.3,
        )
        elapsed = time.perf_counter() - start
    finally:
        release.set()
    assert 0.25 <= elapsed < 5.0, elapsed  # its timeout, not the 10 s the hanging one would take
    assert read.status == {"hanging_sync": "error", "hanging_async": "error", "quick": "ok"}
    assert (
        read.errors["hanging_sync"]
        == "provider 'hanging_sync' timed out after 0.2s on category 'image_generation'"
    )
    assert (
        read.errors["hanging_async"]
        == "provider 'hanging_async' timed out after 0.3s on category 'image_generation'"
    )
    assert hanging_async.cancelled
    assert list(merge_first_wins(read)) == ["q"]


@pytest.mark.anyio
async def test_cancelling_the_caller_cancels_the_reads() -> None:
    slow = [AsyncSleepProvider(f"s{i}", 3600, {}) for i in range(3)]
    registry = registry_of(*slow)
    start = time.perf_counter()
    with anyio.move_on_after(0.1):
        await read_sources(
            IMAGE, ("s0", "s1", "s2"), registry=registry, canonical=_no_canonical, default_timeout=3600
        )
    assert time.perf_counter() - start < 1.0
    assert all(provider.cancelled for provider in slow)
