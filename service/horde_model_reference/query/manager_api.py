"""`ProviderQueryMixin`: the provider registry, source selection and query entry points.

`ModelReferenceManager` inherits it. The host class provides:

- `_provider_registry: ModelProviderRegistry` (created here on first use when absent),
- `_provider_timeout: float`, the default provider read timeout in seconds,
- `_canonical_records_sync(category) -> Mapping[str, GenericModelRecord] | None` (no I/O when
  warm; None when the category is absent),
- `async _canonical_records_async(category)`, the same on the running loop.

Source selectors: `"horde"` (the default: canonical only, fully synchronous, no loop, no
thread), `"any"` (canonical, then every provider in registration order), one provider id, or a
sequence of ids whose order is precedence. An id that is not registered raises `ValueError`.

With providers selected, every source (canonical included) is read concurrently and isolated: a
failure shows as `"error"` in `source_status()`. A canonical-only read raises the host's errors.
Canonical records come from the host's snapshots, unless an instance attribute or a subclass
overrides `get_all_model_references_or_none` (sync reads) or its `_async` twin (async reads):
then queries and multi-source reads take them from the override, as upstream's do (consumers'
tests patch it to feed queries). The check costs one attribute read per query, not per record.
Sync reads with providers run on the shared background loop (`_portal.run_sync`); async callers
use `await query.fetch()` / `to_list_async()` or `_merged_records_async` on their own loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from types import MethodType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from horde_model_reference._portal import run_sync
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, all_categories, parse_category
from horde_model_reference.providers.base import ModelProvider
from horde_model_reference.providers.gather import (
    CanonicalReader,
    SourceRead,
    merge_first_wins,
    read_sources,
    single_source,
)
from horde_model_reference.providers.registry import ModelProviderRegistry
from horde_model_reference.query.builder import ModelQuery
from horde_model_reference.query.namespaces import (
    AudioFieldName,
    ClipFieldName,
    ControlNetAnnotatorFieldName,
    GenericFieldName,
    LoraFieldName,
    MiscellaneousFieldName,
    TextualInversionFieldName,
    VideoFieldName,
)
from horde_model_reference.query.typed import ControlNetQuery, ImageGenerationQuery, TextModelQuery
from horde_model_reference.records import (
    AudioGenerationModelRecord,
    BlipModelRecord,
    ClipModelRecord,
    CodeformerModelRecord,
    ControlNetAnnotatorModelRecord,
    EsrganModelRecord,
    GenericModelRecord,
    GfpganModelRecord,
    LoraModelRecord,
    MiscellaneousModelRecord,
    SafetyCheckerModelRecord,
    TextualInversionModelRecord,
    VideoGenerationModelRecord,
    record_type_for,
)
from horde_model_reference.source_consts import (
    ANY_SOURCE,
    HORDE_SOURCE_ID,
    SourceSelector,
    normalize_source_selector,
)

__all__ = ["DEFAULT_PROVIDER_TIMEOUT_SECONDS", "ProviderQueryMixin", "default_canonical_read"]

DEFAULT_PROVIDER_TIMEOUT_SECONDS = 10.0
"""Used when the host has no `_provider_timeout`."""

_C = MODEL_REFERENCE_CATEGORY
_CANONICAL_ONLY = (HORDE_SOURCE_ID,)
_REGISTRY_LOCK = threading.Lock()
_QUERY_TYPES: dict[MODEL_REFERENCE_CATEGORY, type[ModelQuery[Any, Any]]] = {
    _C.image_generation: ImageGenerationQuery,
    _C.text_generation: TextModelQuery,
    _C.controlnet: ControlNetQuery,
}
Records = Mapping[str, GenericModelRecord]
_F = TypeVar("_F", bound=Callable[..., Any])
_ALL_SYNC = "get_all_model_references_or_none"
_ALL_ASYNC = "get_all_model_references_or_none_async"
_DEFAULT_READ = "_hmr_default_canonical_read"


class _CategoryLoader:
    """Reads one category from the selected sources, for a query."""

    __slots__ = ("_category", "_host", "_source_ids")

    def __init__(
        self, host: ProviderQueryMixin, category: MODEL_REFERENCE_CATEGORY, source_ids: tuple[str, ...]
    ) -> None:
        self._host = host
        self._category = category
        self._source_ids = source_ids

    def load(self) -> SourceRead:
        if self._source_ids == _CANONICAL_ONLY:
            return single_source(HORDE_SOURCE_ID, self._host._canonical_sync(self._category))
        return self._host._read_sources_sync(self._category, self._source_ids)

    async def load_async(self) -> SourceRead:
        if self._source_ids == _CANONICAL_ONLY:
            return single_source(HORDE_SOURCE_ID, await self._host._canonical_async(self._category))
        return await self._host._read_sources_async(self._category, self._source_ids)


class _AllCategoriesLoader:
    """Reads the canonical records of every category, for `query_all`."""

    __slots__ = ("_host",)

    def __init__(self, host: ProviderQueryMixin) -> None:
        self._host = host

    def load(self) -> SourceRead:
        override = self._host._overridden_all_sync()
        if override is not None:
            everything = override(overwrite_existing=False)
            return _all_categories([everything.get(c) for c in all_categories()])
        return _all_categories([self._host._canonical_records_sync(c) for c in all_categories()])

    async def load_async(self) -> SourceRead:
        override = self._host._overridden_all_async()
        if override is not None:
            everything = await override(overwrite_existing=False)
            return _all_categories([everything.get(c) for c in all_categories()])
        return _all_categories([await self._host._canonical_records_async(c) for c in all_categories()])


def _override(host: object, name: str) -> Callable[..., Any] | None:
    """`host.<name>` when an instance attribute or a subclass replaces the default implementation.

    Consumers' tests patch `get_all_model_references_or_none[_async]` on the manager to feed
    queries, as upstream's queries read through them; the defaults carry `_DEFAULT_READ`.
    """
    bound = getattr(host, name, None)
    if bound is None:
        return None
    func = bound.__func__ if isinstance(bound, MethodType) else bound
    # The function's own __dict__, not getattr: a Mock answers every attribute.
    if (getattr(func, "__dict__", None) or {}).get(_DEFAULT_READ, False):
        return None
    return cast("Callable[..., Any]", bound)


def default_canonical_read(func: _F) -> _F:
    """Mark `func` as the default `get_all_model_references_or_none[_async]` (not an override)."""
    setattr(func, _DEFAULT_READ, True)
    return func


def _constant(records: Records | None) -> CanonicalReader:
    async def read(category: MODEL_REFERENCE_CATEGORY) -> Records | None:
        return records

    return read


def _all_categories(per_category: list[Records | None]) -> SourceRead:
    blocks = tuple((HORDE_SOURCE_ID, records) for records in per_category if records)
    return SourceRead(blocks, {HORDE_SOURCE_ID: "ok" if blocks else "empty"}, {})


class ProviderQueryMixin:
    """Provider registration, source selection, and the query entry points of the manager."""

    if TYPE_CHECKING:
        _provider_registry: ModelProviderRegistry
        _provider_timeout: float

        def _canonical_records_sync(self, category: MODEL_REFERENCE_CATEGORY) -> Records | None: ...

        async def _canonical_records_async(self, category: MODEL_REFERENCE_CATEGORY) -> Records | None: ...

    # -- providers ----------------------------------------------------------------------------

    @property
    def provider_registry(self) -> ModelProviderRegistry:
        """The registry of this manager's providers."""
        registry: ModelProviderRegistry | None = getattr(self, "_provider_registry", None)
        if registry is None:
            with _REGISTRY_LOCK:
                registry = getattr(self, "_provider_registry", None)
                if registry is None:
                    registry = self._provider_registry = ModelProviderRegistry()
        return registry

    def register_provider(self, provider: ModelProvider, *, replace: bool = False) -> None:
        """Register `provider`; `ValueError` naming the id when reserved, empty, blank or taken."""
        self.provider_registry.register(provider, replace=replace)

    def unregister_provider(self, source_id: str) -> bool:
        """Remove the provider under `source_id`; False when there was none."""
        return self.provider_registry.unregister(source_id)

    def list_providers(self) -> list[str]:
        """The registered provider ids, in registration order."""
        return self.provider_registry.source_ids()

    def get_provider(self, source_id: str) -> ModelProvider | None:
        """The provider under `source_id`, or None."""
        return self.provider_registry.get(source_id)

    # -- reading ------------------------------------------------------------------------------

    def _overridden_all_sync(self) -> Callable[..., Any] | None:
        """The override of `get_all_model_references_or_none` (instance attribute or subclass), or None."""
        return _override(self, _ALL_SYNC)

    def _overridden_all_async(self) -> Callable[..., Any] | None:
        """The override of `get_all_model_references_or_none_async`, or None."""
        return _override(self, _ALL_ASYNC)

    def _canonical_sync(
        self, category: MODEL_REFERENCE_CATEGORY, force_refresh: bool = False
    ) -> Records | None:
        """The canonical records of `category`: through an override of
        `get_all_model_references_or_none` when there is one (as upstream), else the snapshot."""
        override = self._overridden_all_sync()
        if override is None:
            return self._canonical_records_sync(category)
        records: Records | None = override(overwrite_existing=force_refresh).get(category)
        return records

    async def _canonical_async(
        self, category: MODEL_REFERENCE_CATEGORY, force_refresh: bool = False
    ) -> Records | None:
        """`_canonical_sync` on the running loop, through `get_all_model_references_or_none_async`."""
        override = self._overridden_all_async()
        if override is None:
            return await self._canonical_records_async(category)
        records: Records | None = (await override(overwrite_existing=force_refresh)).get(category)
        return records

    def _read_sources_sync(
        self, category: MODEL_REFERENCE_CATEGORY, source_ids: tuple[str, ...], *, force_refresh: bool = False
    ) -> SourceRead:
        """`_read_sources_async` from sync code, on the background loop.

        An overridden sync `get_all_model_references_or_none` is called here, on the caller's
        thread (as upstream's sync reads call it), before the providers are read.
        """
        canonical: CanonicalReader | None = None
        override = self._overridden_all_sync()
        if override is not None and HORDE_SOURCE_ID in source_ids:
            canonical = _constant(override(overwrite_existing=force_refresh).get(category))
        read = partial(
            self._read_sources_async, category, source_ids, force_refresh=force_refresh, canonical=canonical
        )
        return run_sync(read)

    def _resolve_sources(self, source: SourceSelector) -> tuple[str, ...]:
        """The concrete ids a selector reads, in precedence order (`"any"` expanded)."""
        if source == HORDE_SOURCE_ID:
            return _CANONICAL_ONLY
        registry = self.provider_registry
        ordered: dict[str, None] = {}
        for source_id in normalize_source_selector(source):
            if source_id == ANY_SOURCE:
                ordered.setdefault(HORDE_SOURCE_ID)
                for provider_id in registry.source_ids():
                    ordered.setdefault(provider_id)
            elif source_id == HORDE_SOURCE_ID or registry.has(source_id):
                ordered.setdefault(source_id)
            else:
                registered = ", ".join(registry.source_ids()) or "none"
                raise ValueError(
                    f"No provider registered under source id {source_id!r}; registered providers: {registered}"
                )
        return tuple(ordered)

    async def _read_sources_async(
        self,
        category: MODEL_REFERENCE_CATEGORY,
        source_ids: tuple[str, ...],
        *,
        force_refresh: bool = False,
        canonical: CanonicalReader | None = None,
    ) -> SourceRead:
        """Read resolved `source_ids` for `category` concurrently, each failure isolated."""
        return await read_sources(
            category,
            source_ids,
            registry=self.provider_registry,
            canonical=canonical or partial(self._canonical_async, force_refresh=force_refresh),
            default_timeout=getattr(self, "_provider_timeout", DEFAULT_PROVIDER_TIMEOUT_SECONDS),
            force_refresh=force_refresh,
        )

    def _merged_records_sync(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        source: SourceSelector = HORDE_SOURCE_ID,
        *,
        force_refresh: bool = False,
    ) -> Records | None:
        """The records of `category` from `source`, merged (first source wins a name).

        Canonical only: the host's mapping as is, synchronously. With providers: read through the
        background loop. None when no selected source has any record of the category.
        """
        cat = parse_category(category)
        source_ids = self._resolve_sources(source)
        if source_ids == _CANONICAL_ONLY:
            return self._canonical_sync(cat, force_refresh)
        return merge_first_wins(self._read_sources_sync(cat, source_ids, force_refresh=force_refresh)) or None

    async def _merged_records_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        source: SourceSelector = HORDE_SOURCE_ID,
        *,
        force_refresh: bool = False,
    ) -> Records | None:
        """`_merged_records_sync` on the running loop."""
        cat = parse_category(category)
        source_ids = self._resolve_sources(source)
        if source_ids == _CANONICAL_ONLY:
            return await self._canonical_async(cat, force_refresh)
        read = await self._read_sources_async(cat, source_ids, force_refresh=force_refresh)
        return merge_first_wins(read) or None

    # -- queries ------------------------------------------------------------------------------

    @overload
    def query(
        self, category: Literal["image_generation", _C.image_generation], *, source: SourceSelector = ...
    ) -> ImageGenerationQuery: ...
    @overload
    def query(
        self, category: Literal["text_generation", _C.text_generation], *, source: SourceSelector = ...
    ) -> TextModelQuery: ...
    @overload
    def query(
        self, category: Literal["controlnet", _C.controlnet], *, source: SourceSelector = ...
    ) -> ControlNetQuery: ...
    @overload
    def query(
        self, category: str | MODEL_REFERENCE_CATEGORY, *, source: SourceSelector = ...
    ) -> ModelQuery[Any, Any]: ...

    def query(
        self, category: str | MODEL_REFERENCE_CATEGORY, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[Any, Any]:
        """The query builder of `category` over `source` (see the module doc for selectors).

        Image generation, text generation and ControlNet get their typed builders. Nothing is
        read until the query's first terminal (or `await q.fetch()`).
        """
        cat = parse_category(category)
        source_ids = self._resolve_sources(source)
        query_type = _QUERY_TYPES.get(cat, ModelQuery)
        return query_type(record_type_for(cat), _CategoryLoader(self, cat, source_ids))

    def query_all(self) -> ModelQuery[GenericModelRecord, GenericFieldName]:
        """A query over the canonical records of every category (not de-duplicated across them)."""
        return ModelQuery(GenericModelRecord, _AllCategoriesLoader(self), dedupe=False)

    def query_image_generation(self, *, source: SourceSelector = HORDE_SOURCE_ID) -> ImageGenerationQuery:
        """`query("image_generation", source=source)`."""
        return self.query(_C.image_generation, source=source)

    def query_text_generation(self, *, source: SourceSelector = HORDE_SOURCE_ID) -> TextModelQuery:
        """`query("text_generation", source=source)`."""
        return self.query(_C.text_generation, source=source)

    def query_controlnet(self, *, source: SourceSelector = HORDE_SOURCE_ID) -> ControlNetQuery:
        """`query("controlnet", source=source)`."""
        return self.query(_C.controlnet, source=source)

    def query_controlnet_annotator(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[ControlNetAnnotatorModelRecord, ControlNetAnnotatorFieldName]:
        """`query("controlnet_annotator", source=source)`."""
        return self.query(_C.controlnet_annotator, source=source)

    def query_blip(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[BlipModelRecord, GenericFieldName]:
        """`query("blip", source=source)`."""
        return self.query(_C.blip, source=source)

    def query_clip(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[ClipModelRecord, ClipFieldName]:
        """`query("clip", source=source)`."""
        return self.query(_C.clip, source=source)

    def query_codeformer(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[CodeformerModelRecord, GenericFieldName]:
        """`query("codeformer", source=source)`."""
        return self.query(_C.codeformer, source=source)

    def query_esrgan(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[EsrganModelRecord, GenericFieldName]:
        """`query("esrgan", source=source)`."""
        return self.query(_C.esrgan, source=source)

    def query_gfpgan(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[GfpganModelRecord, GenericFieldName]:
        """`query("gfpgan", source=source)`."""
        return self.query(_C.gfpgan, source=source)

    def query_safety_checker(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[SafetyCheckerModelRecord, GenericFieldName]:
        """`query("safety_checker", source=source)`."""
        return self.query(_C.safety_checker, source=source)

    def query_video_generation(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[VideoGenerationModelRecord, VideoFieldName]:
        """`query("video_generation", source=source)`."""
        return self.query(_C.video_generation, source=source)

    def query_audio_generation(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[AudioGenerationModelRecord, AudioFieldName]:
        """`query("audio_generation", source=source)`."""
        return self.query(_C.audio_generation, source=source)

    def query_miscellaneous(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[MiscellaneousModelRecord, MiscellaneousFieldName]:
        """`query("miscellaneous", source=source)`."""
        return self.query(_C.miscellaneous, source=source)

    def query_lora(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[LoraModelRecord, LoraFieldName]:
        """`query("lora", source=source)`."""
        return self.query(_C.lora, source=source)

    def query_ti(
        self, *, source: SourceSelector = HORDE_SOURCE_ID
    ) -> ModelQuery[TextualInversionModelRecord, TextualInversionFieldName]:
        """`query("ti", source=source)`."""
        return self.query(_C.ti, source=source)
