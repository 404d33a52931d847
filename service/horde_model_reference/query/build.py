"""Upstream's module-level query entry points: `build_query` and its typed variants.

Today's library (8.x) builds queries from mappings a caller already holds; these functions give
that surface over this package's `ModelQuery`, which reads lazily from a source loader. They are
façades: no copy of the records is made, and the query runs on the same compiled filters.

`sources`, when given, is aligned with `records.values()` (one source id per record), as
upstream's; consecutive records with the same id form one block of the query's read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.providers.gather import SourceRead, single_source
from horde_model_reference.query.builder import ModelQuery
from horde_model_reference.query.typed import ControlNetQuery, ImageGenerationQuery, TextModelQuery
from horde_model_reference.records import (
    ControlNetModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)
from horde_model_reference.source_consts import HORDE_SOURCE_ID, SourceOutcome

__all__ = [
    "build_controlnet_query",
    "build_cross_category_query",
    "build_image_query",
    "build_query",
    "build_text_query",
]

T = TypeVar("T", bound=GenericModelRecord)


def build_query(
    records: Mapping[str, T], record_type: type[T], *, sources: Sequence[str] | None = None
) -> ModelQuery[T, str]:
    """A query over `records` (name -> record, as `get_model_reference()` returns them)."""
    return ModelQuery.from_read(_read_of(records, sources), record_type=record_type)


def build_image_query(
    records: Mapping[str, ImageGenerationModelRecord], *, sources: Sequence[str] | None = None
) -> ImageGenerationQuery:
    """An `ImageGenerationQuery` over image generation records."""
    return ImageGenerationQuery.from_read(_read_of(records, sources), record_type=ImageGenerationModelRecord)


def build_text_query(
    records: Mapping[str, TextGenerationModelRecord], *, sources: Sequence[str] | None = None
) -> TextModelQuery:
    """A `TextModelQuery` over text generation records."""
    return TextModelQuery.from_read(_read_of(records, sources), record_type=TextGenerationModelRecord)


def build_controlnet_query(
    records: Mapping[str, ControlNetModelRecord], *, sources: Sequence[str] | None = None
) -> ControlNetQuery:
    """A `ControlNetQuery` over ControlNet records."""
    return ControlNetQuery.from_read(_read_of(records, sources), record_type=ControlNetModelRecord)


def build_cross_category_query(
    all_references: Mapping[MODEL_REFERENCE_CATEGORY, Mapping[str, GenericModelRecord]],
) -> ModelQuery[GenericModelRecord, str]:
    """A query over every record of every category (as `get_all_model_references()` returns them).

    As upstream's, a name listed in two categories appears once (the first category's record).
    """
    blocks = tuple((HORDE_SOURCE_ID, records) for records in all_references.values() if records)
    status: dict[str, SourceOutcome] = {HORDE_SOURCE_ID: "ok" if blocks else "empty"}
    return ModelQuery.from_read(SourceRead(blocks, status, {}), record_type=GenericModelRecord)


def _read_of(records: Mapping[str, GenericModelRecord], sources: Sequence[str] | None) -> SourceRead:
    """`records` as a read: one block, or one block per run of the same source id."""
    if sources is None:
        return single_source(HORDE_SOURCE_ID, records)
    if isinstance(sources, str):
        raise TypeError(
            f"sources must be a sequence of source ids (one per record), got the string {sources!r}"
        )
    if len(sources) != len(records):
        raise ValueError(f"sources length ({len(sources)}) must match records length ({len(records)})")
    blocks: list[tuple[str, dict[str, GenericModelRecord]]] = []
    for (name, record), source_id in zip(records.items(), sources, strict=True):
        if not blocks or blocks[-1][0] != source_id:
            blocks.append((source_id, {}))
        blocks[-1][1][name] = record
    status: dict[str, SourceOutcome] = {source_id: "ok" for source_id, _ in blocks}
    return SourceRead(tuple(blocks), status, {})
