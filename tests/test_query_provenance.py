"""Query provenance across sources (first source wins, duplicates, status) and how a query reads."""

from __future__ import annotations

from typing import Any

import pytest

from horde_model_reference import ImageGenerationModelRecord
from horde_model_reference.providers.gather import SourceRead
from horde_model_reference.query import ImageGenerationQuery, ModelQuery
from horde_model_reference.query.builder import SourceLoader
from horde_model_reference.source_consts import SourceOutcome


def image(name: str, **fields: Any) -> ImageGenerationModelRecord:
    fields.setdefault("baseline", "stable_diffusion_1")
    fields.setdefault("nsfw", False)
    return ImageGenerationModelRecord(name=name, **fields)


def catalog(*records: ImageGenerationModelRecord) -> dict[str, ImageGenerationModelRecord]:
    return {r.name: r for r in records}


def names(query: ModelQuery[Any, Any]) -> list[str]:
    return [r.name for r in query.to_list()]


# -- provenance --------------------------------------------------------------------------------


def _read(*blocks: tuple[str, dict[str, Any]], status: dict[str, Any] | None = None) -> SourceRead:
    full_status: dict[str, SourceOutcome] = {s: ("ok" if recs else "empty") for s, recs in blocks}
    full_status.update(status or {})
    return SourceRead(tuple((s, r) for s, r in blocks if r), full_status, {})


@pytest.fixture
def merged() -> ImageGenerationQuery:
    horde = catalog(image("a", size_on_disk_bytes=1), image("b", size_on_disk_bytes=5, nsfw=True))
    civitai = catalog(image("b", size_on_disk_bytes=2), image("c", size_on_disk_bytes=3))
    pending = catalog(image("c", size_on_disk_bytes=4), image("a", size_on_disk_bytes=9))
    read = _read(("horde", horde), ("civitai", civitai), ("pending", pending), status={"broken": "error"})
    read.errors["broken"] = "provider 'broken' timed out"
    return ImageGenerationQuery.from_read(read)


def test_first_source_wins_and_provenance(merged: ImageGenerationQuery) -> None:
    assert merged.names() == ["a", "b", "c"]
    assert [r.size_on_disk_bytes for r in merged.to_list()] == [1, 5, 3]
    assert merged.sources() == ["horde", "horde", "civitai"]
    assert [(r.name, s) for r, s in merged.to_list_with_source()] == [
        ("a", "horde"),
        ("b", "horde"),
        ("c", "civitai"),
    ]
    assert {s: [r.name for r in rs] for s, rs in merged.group_by_source().items()} == {
        "horde": ["a", "b"],
        "civitai": ["c"],
    }
    assert merged.duplicate_names() == {
        "a": ["horde", "pending"],
        "b": ["horde", "civitai"],
        "c": ["civitai", "pending"],
    }
    assert merged.has_duplicate_names()
    assert merged.source_status() == {"horde": "ok", "civitai": "ok", "pending": "ok", "broken": "error"}
    assert merged.failed_sources() == ["broken"]
    assert merged.source_errors() == {"broken": "provider 'broken' timed out"}


def test_predicates_run_before_deduplication(merged: ImageGenerationQuery) -> None:
    # horde's "b" is NSFW: once filtered out, civitai's "b" is the one returned.
    sfw = merged.exclude_nsfw()
    assert [(r.name, s) for r, s in sfw.to_list_with_source()] == [
        ("a", "horde"),
        ("b", "civitai"),
        ("c", "civitai"),
    ]
    assert sfw.duplicate_names() == {"a": ["horde", "pending"], "c": ["civitai", "pending"]}


def test_sort_offset_limit_run_after_deduplication(merged: ImageGenerationQuery) -> None:
    ordered = merged.order_by("size_on_disk_bytes", descending=True)
    assert [r.size_on_disk_bytes for r in ordered.to_list()] == [5, 3, 1]
    assert [r.size_on_disk_bytes for r in ordered.offset(1).limit(1).to_list()] == [3]
    assert ordered.offset(1).limit(1).sources() == ["civitai"]


def test_where_source(merged: ImageGenerationQuery) -> None:
    assert merged.where_source("pending").names() == ["c", "a"]
    assert [r.size_on_disk_bytes for r in merged.where_source("civitai", "pending").to_list()] == [2, 3, 9]
    assert merged.where_source("civitai", "pending").where_source("pending").sources() == [
        "pending",
        "pending",
    ]
    assert merged.where_source("nobody").to_list() == []
    assert not merged.where_source("pending").has_duplicate_names()
    with pytest.raises(ValueError, match="needs one or more source ids"):
        merged.where_source()
    with pytest.raises(ValueError, match="needs one or more source ids"):
        merged.where_source("")


def test_single_source_status() -> None:
    assert ImageGenerationQuery.from_records({}).source_status() == {"horde": "empty"}
    query = ImageGenerationQuery.from_records(catalog(image("a")), source_id="mine")
    assert query.source_status() == {"mine": "ok"}
    assert query.sources() == ["mine"]
    assert query.failed_sources() == []
    assert query.duplicate_names() == {}


# -- reading -----------------------------------------------------------------------------------


class CountingLoader:
    def __init__(self, read: SourceRead) -> None:
        self.read = read
        self.sync_loads = 0
        self.async_loads = 0

    def load(self) -> SourceRead:
        self.sync_loads += 1
        return self.read

    async def load_async(self) -> SourceRead:
        self.async_loads += 1
        return self.read


def test_a_query_and_its_derivatives_share_one_read() -> None:
    loader = CountingLoader(_read(("horde", catalog(image("a"), image("b", nsfw=True)))))
    typed: SourceLoader = loader
    base = ImageGenerationQuery(ImageGenerationModelRecord, typed)
    derived = base.exclude_nsfw()
    assert loader.sync_loads == 0, "building a query reads nothing"
    assert names(derived) == ["a"]
    assert base.count() == 2
    assert base.source_status() == {"horde": "ok"}
    assert loader.sync_loads == 1


@pytest.mark.anyio
async def test_async_fetch_then_sync_terminals() -> None:
    loader = CountingLoader(_read(("horde", catalog(image("a"), image("b", nsfw=True)))))
    query = ImageGenerationQuery(ImageGenerationModelRecord, loader).exclude_nsfw()
    assert await query.fetch() is query
    assert names(query) == ["a"]
    assert [r.name for r in await query.only_nsfw().to_list_async()] == []
    assert (loader.sync_loads, loader.async_loads) == (0, 1)
