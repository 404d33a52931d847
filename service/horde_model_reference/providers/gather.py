"""Reading several sources for one category at the same time, each failure isolated.

Every selected source is read concurrently in one task group; a provider's read is bounded by
its timeout. A source that raises, times out, or returns data of the wrong shape is logged with
its id, reported as `"error"` and skipped; the other sources are unaffected. Cancelling the
caller cancels every read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

import anyio

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.logs import get_logger
from horde_model_reference.providers.registry import ModelProviderRegistry
from horde_model_reference.records import GenericModelRecord, record_type_for
from horde_model_reference.source_consts import HORDE_SOURCE_ID, SourceOutcome

__all__ = ["CanonicalReader", "SourceRead", "merge_first_wins", "read_sources", "single_source"]

_log = get_logger(__name__)

Records = Mapping[str, GenericModelRecord]
CanonicalReader = Callable[[MODEL_REFERENCE_CATEGORY], Awaitable[Records | None]]
"""Reads the canonical records of a category (None when the category is absent)."""


class SourceRead(NamedTuple):
    """The outcome of reading the selected sources of one category.

    `blocks` holds each source that gave records, as (source id, records), in selector order,
    duplicates across sources kept. `status` has every selected source; `errors` the message of
    each source whose status is `"error"`.
    """

    blocks: tuple[tuple[str, Records], ...]
    status: dict[str, SourceOutcome]
    errors: dict[str, str]


class _BadOutput(Exception):
    """A provider returned data of the wrong shape."""


def single_source(source_id: str, records: Records | None) -> SourceRead:
    """The read of one source that returned `records` (None or empty: `"empty"`)."""
    if not records:
        return SourceRead((), {source_id: "empty"}, {})
    return SourceRead(((source_id, records),), {source_id: "ok"}, {})


def merge_first_wins(read: SourceRead) -> dict[str, GenericModelRecord]:
    """The records of `read` keyed by name; a name goes to the first source (in order) that has it."""
    if not read.blocks:
        return {}
    merged = dict(read.blocks[0][1])
    for _, records in read.blocks[1:]:
        for name, record in records.items():
            if name not in merged:
                merged[name] = record
    return merged


async def read_sources(
    category: MODEL_REFERENCE_CATEGORY,
    source_ids: tuple[str, ...],
    *,
    registry: ModelProviderRegistry,
    canonical: CanonicalReader,
    default_timeout: float,
    force_refresh: bool = False,
) -> SourceRead:
    """Read `source_ids` (already resolved: `"horde"` or registered provider ids) concurrently.

    The canonical source is bounded by its backend's own timeouts; each provider by its
    `fetch_timeout_seconds()` or else `default_timeout`.
    """
    results: list[Records | None] = [None] * len(source_ids)
    status: dict[str, SourceOutcome] = dict.fromkeys(source_ids, "empty")
    errors: dict[str, str] = {}

    async def read_one(index: int, source_id: str) -> None:
        try:
            if source_id == HORDE_SOURCE_ID:
                records = await canonical(category)
            else:
                records = await _read_provider(category, source_id, registry, default_timeout, force_refresh)
        except Exception as exc:  # isolation: any failure of a source is that source's "error"
            reason = str(exc) if isinstance(exc, _BadOutput) else f"{type(exc).__name__}: {exc}"
            status[source_id] = "error"
            errors[source_id] = reason
            _log.warning("source_read_failed", source=source_id, category=category.value, reason=reason)
            return
        if records:
            results[index] = records
            status[source_id] = "ok"

    async with anyio.create_task_group() as tg:
        for index, source_id in enumerate(source_ids):
            tg.start_soon(read_one, index, source_id)

    blocks = tuple(
        (source_id, records)
        for source_id, records in zip(source_ids, results, strict=True)
        if records is not None
    )
    return SourceRead(blocks, status, errors)


async def _read_provider(
    category: MODEL_REFERENCE_CATEGORY,
    source_id: str,
    registry: ModelProviderRegistry,
    default_timeout: float,
    force_refresh: bool,
) -> Records | None:
    provider = registry.get(source_id)
    if provider is None:
        raise _BadOutput(f"provider {source_id!r} was unregistered before it could be read")
    if not provider.serves_category(category):
        return None
    timeout = provider.fetch_timeout_seconds() or default_timeout
    records: object = None
    with anyio.move_on_after(timeout) as scope:
        records = await provider.fetch_category_async(category, force_refresh=force_refresh)
    if scope.cancelled_caught:
        raise _BadOutput(
            f"provider {source_id!r} timed out after {timeout:g}s on category {category.value!r}"
        )
    return _check_shape(category, source_id, records)


def _check_shape(category: MODEL_REFERENCE_CATEGORY, source_id: str, records: object) -> Records | None:
    if records is None:
        return None
    record_type = record_type_for(category)
    if not isinstance(records, Mapping):
        raise _BadOutput(
            f"provider {source_id!r} returned a {type(records).__name__} for category {category.value!r}; "
            f"expected a mapping of model name to {record_type.__name__}"
        )
    for name, record in records.items():
        if not isinstance(record, record_type) or not isinstance(name, str):
            raise _BadOutput(
                f"provider {source_id!r} returned a {type(record).__name__} for model {name!r} in category "
                f"{category.value!r}; expected a {record_type.__name__} keyed by its name"
            )
    return records
