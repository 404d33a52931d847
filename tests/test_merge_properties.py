"""Property tests of the merge rules over random sources, overlaps and failures.

For any selector: the merged result is "first occurrence in selector order wins", every name
served by more than one source is reported with its sources in precedence order, and a failing
source never removes another source's records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    ClipModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
)
from horde_model_reference.providers import ModelProvider, ModelProviderRegistry
from horde_model_reference.query.manager_api import ProviderQueryMixin

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
NAMES = [f"m{i}" for i in range(8)]
FAILURES = ("raise", "not_a_mapping", "wrong_record_type")


def record(name: str, source_id: str, size: int | None) -> ImageGenerationModelRecord:
    return ImageGenerationModelRecord(
        name=name, baseline="stable_diffusion_1", nsfw=False, version=source_id, size_on_disk_bytes=size
    )


class ScriptedProvider(ModelProvider):
    """Returns its records, None, or fails in the way it was told."""

    def __init__(self, source_id: str, behaviour: Any) -> None:
        self._id = source_id
        self.behaviour = behaviour

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
        if self.behaviour == "raise":
            raise RuntimeError(f"{self._id} failed")
        if self.behaviour == "not_a_mapping":
            return list(NAMES)
        if self.behaviour == "wrong_record_type":
            return {"m0": ClipModelRecord(name="m0")}
        return self.behaviour


class Host(ProviderQueryMixin):
    def __init__(self, canonical: Mapping[str, GenericModelRecord] | None) -> None:
        self._canonical = canonical
        self._provider_registry = ModelProviderRegistry()
        self._provider_timeout = 5.0

    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._canonical

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._canonical


@st.composite
def records_of(draw: st.DrawFn, source_id: str) -> dict[str, ImageGenerationModelRecord] | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return {n: record(n, source_id, draw(st.none() | st.integers(0, 5))) for n in names}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Host, list[str], list[str], dict[str, Any]]:
    """A host with canonical data and registered providers, a selector, and each source's script."""
    provider_ids = [f"p{i}" for i in range(draw(st.integers(0, 5)))]
    scripts: dict[str, Any] = {"horde": draw(records_of("horde"))}
    for provider_id in provider_ids:
        scripts[provider_id] = draw(st.sampled_from(FAILURES) | records_of(provider_id))
    host = Host(scripts["horde"])
    registration = draw(st.permutations(provider_ids))
    for provider_id in registration:
        host.register_provider(ScriptedProvider(provider_id, scripts[provider_id]))
    selector = draw(st.lists(st.sampled_from(["horde", "any", *provider_ids]), min_size=1, max_size=7))
    return host, selector, list(registration), scripts


def expected_order(selector: list[str], registration: list[str]) -> list[str]:
    order: list[str] = []
    for source_id in selector:
        for concrete in ["horde", *registration] if source_id == "any" else [source_id]:
            if concrete not in order:
                order.append(concrete)
    return order


def outcome(script: Any) -> str:
    if script in FAILURES:
        return "error"
    return "ok" if script else "empty"


def good_sources(order: list[str], scripts: dict[str, Any]) -> list[str]:
    return [s for s in order if outcome(scripts[s]) == "ok"]


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_first_occurrence_in_selector_order_wins(
    scenario: tuple[Host, list[str], list[str], dict[str, Any]],
) -> None:
    host, selector, registration, scripts = scenario
    order = expected_order(selector, registration)
    expected: dict[str, str] = {}
    for source_id in good_sources(order, scripts):
        for name in scripts[source_id]:
            expected.setdefault(name, source_id)

    query = host.query(IMAGE, source=selector)
    assert [(r.name, s) for r, s in query.to_list_with_source()] == list(expected.items())
    assert all(r.version == s for r, s in query.to_list_with_source()), "each record comes from its source"
    assert query.source_status() == {s: outcome(scripts[s]) for s in order}
    assert query.failed_sources() == [s for s in order if outcome(scripts[s]) == "error"]

    merged = host._merged_records_sync(IMAGE, selector)
    if expected:
        assert merged is not None
        assert {name: r.version for name, r in merged.items()} == expected
    elif order == ["horde"]:
        assert merged is scripts["horde"], "canonical only: the host's mapping as is"
    else:
        assert merged is None, "None when no selected source has a record"


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_duplicates_are_reported_in_precedence_order(
    scenario: tuple[Host, list[str], list[str], dict[str, Any]],
) -> None:
    host, selector, registration, scripts = scenario
    order = expected_order(selector, registration)
    by_name: dict[str, list[str]] = {}
    for source_id in good_sources(order, scripts):
        for name in scripts[source_id]:
            by_name.setdefault(name, []).append(source_id)
    duplicates = {name: ids for name, ids in by_name.items() if len(ids) > 1}

    query = host.query(IMAGE, source=selector)
    reported = query.duplicate_names()
    assert reported == duplicates
    assert query.has_duplicate_names() is bool(duplicates)
    for name, ids in reported.items():
        assert query.where(name=name).sources() == [ids[0]], "the first source listed wins"


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_a_failing_source_never_removes_another_sources_records(
    scenario: tuple[Host, list[str], list[str], dict[str, Any]],
) -> None:
    host, selector, registration, scripts = scenario
    order = expected_order(selector, registration)
    names = set(host.query(IMAGE, source=selector).names())
    for source_id in good_sources(order, scripts):
        assert set(scripts[source_id]) <= names
    # The same read without the failing sources gives the same records.
    healthy = [s for s in order if outcome(scripts[s]) != "error"] or ["horde"]
    if healthy != ["horde"] or "horde" in order:
        assert names == set(host.query(IMAGE, source=healthy).names())


@settings(max_examples=150, deadline=None)
@given(
    scenarios(),
    st.sets(st.sampled_from(NAMES)),
    st.booleans(),
    st.integers(0, 4),
    st.none() | st.integers(0, 4),
)
def test_predicates_then_dedup_then_sort_offset_limit(
    scenario: tuple[Host, list[str], list[str], dict[str, Any]],
    keep: set[str],
    descending: bool,
    offset: int,
    limit: int | None,
) -> None:
    host, selector, registration, scripts = scenario
    order = expected_order(selector, registration)
    winners: dict[str, ImageGenerationModelRecord] = {}
    for source_id in good_sources(order, scripts):
        for name, rec in scripts[source_id].items():
            if name in keep:
                winners.setdefault(name, rec)
    present = [r for r in winners.values() if r.size_on_disk_bytes is not None]
    present.sort(key=lambda r: r.size_on_disk_bytes or 0, reverse=descending)
    arranged = present + [r for r in winners.values() if r.size_on_disk_bytes is None]
    end = None if limit is None else offset + limit
    expected = arranged[offset:end]

    query = (
        host.query(IMAGE, source=selector)
        .where(name__in=keep)
        .order_by("size_on_disk_bytes", descending=descending)
    )
    query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    assert query.to_list() == expected
