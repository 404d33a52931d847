"""Drop-in query surface: upstream's module-level builders, `query_fields`, and the error phrases.

Names are imported from their upstream module paths (`horde_model_reference.query`,
`horde_model_reference.query_fields`); behaviour follows upstream's documentation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    ControlNetModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)
from horde_model_reference.model_reference_manager import ModelReferenceManager
from horde_model_reference.providers import StaticModelProvider
from horde_model_reference.query import (
    ControlNetQuery,
    ImageGenerationQuery,
    ModelQuery,
    TextModelQuery,
    build_controlnet_query,
    build_cross_category_query,
    build_image_query,
    build_query,
    build_text_query,
)
from horde_model_reference.query_fields import (
    FieldRef,
    ImageFields,
    OrderSpec,
    Predicate,
    TextFields,
    false,
    true,
)

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation


def _image(
    name: str, baseline: str, *, nsfw: bool = False, size: int | None = None, **extra: object
) -> ImageGenerationModelRecord:
    return ImageGenerationModelRecord(
        name=name, baseline=baseline, nsfw=nsfw, size_on_disk_bytes=size, **extra
    )  # type: ignore[arg-type]


@pytest.fixture
def records() -> dict[str, ImageGenerationModelRecord]:
    return {
        "a": _image("a", "stable_diffusion_1", size=5, tags=["x"]),
        "b": _image("b", "stable_diffusion_xl", nsfw=True, tags=["y", "x"]),
        "c": _image("c", "flux_1", size=7, tags=[]),
    }


def test_true_and_false_are_plain_functions() -> None:
    assert true() is True and false() is False


def test_build_image_query_with_field_references(records: dict[str, ImageGenerationModelRecord]) -> None:
    query = build_image_query(records)
    assert isinstance(query, ImageGenerationQuery)
    assert [r.name for r in query.where(ImageFields.nsfw == false()).to_list()] == ["a", "c"]
    assert [r.name for r in query.where(ImageFields.nsfw == true()).to_list()] == ["b"]
    assert isinstance(ImageFields.nsfw == false(), Predicate) and isinstance(ImageFields.nsfw, FieldRef)
    big = query.where(ImageFields.size_on_disk_bytes > 5).order_by(ImageFields.size_on_disk_bytes.desc())
    assert [r.name for r in big.to_list()] == ["c"]
    assert isinstance(ImageFields.size_on_disk_bytes.asc(), OrderSpec)
    assert [r.name for r in query.where(ImageFields.size_on_disk_bytes < 100).to_list()] == ["a", "c"], (
        "None is not < 100"
    )


def test_build_query_keyword_filters(records: dict[str, ImageGenerationModelRecord]) -> None:
    query = build_query(records, ImageGenerationModelRecord)
    assert type(query) is ModelQuery
    assert query.where(name="b").first().name == "b"  # type: ignore[union-attr]
    assert [r.name for r in query.where(baseline=["flux_1", "stable_diffusion_1"]).to_list()] == ["a", "c"]
    assert [r.name for r in query.where(size_on_disk_bytes__gt=5).to_list()] == ["c"]
    assert [r.name for r in query.where(tags__contains="x").to_list()] == ["a", "b"]
    assert [r.name for r in query.where(baseline__ne="flux_1").to_list()] == ["a", "b"]
    assert [r.name for r in query.order_by("name").offset(1).limit(1).to_list()] == ["b"]
    assert query.distinct("tags") == [["x"], ["y", "x"], []]
    assert sorted(query.group_by("baseline")) == ["flux_1", "stable_diffusion_1", "stable_diffusion_xl"]
    assert query.count() == 3 and query.source_status() == {"horde": "ok"}


def test_typed_builders() -> None:
    text = {"koboldcpp/m": TextGenerationModelRecord(name="koboldcpp/m", parameters_count=7_000_000_000)}
    text_query = build_text_query(text)
    assert isinstance(text_query, TextModelQuery)
    assert text_query.where(TextFields.parameters_count >= 7_000_000_000).count() == 1
    assert text_query.for_backend("koboldcpp").count() == 1
    control = {"canny": ControlNetModelRecord(name="canny", controlnet_style="control_canny")}
    control_query = build_controlnet_query(control)
    assert isinstance(control_query, ControlNetQuery)
    assert control_query.for_style("control_canny").count() == 1


def test_build_query_with_aligned_sources(records: dict[str, ImageGenerationModelRecord]) -> None:
    query = build_image_query(records, sources=["pending", "horde", "pending"])
    assert [(r.name, s) for r, s in query.to_list_with_source()] == [
        ("a", "pending"),
        ("b", "horde"),
        ("c", "pending"),
    ]
    assert [r.name for r in query.where_source("pending").to_list()] == ["a", "c"]
    assert query.group_by_source() == {"pending": [records["a"], records["c"]], "horde": [records["b"]]}
    with pytest.raises(ValueError, match=r"sources length \(2\) must match records length \(3\)"):
        build_image_query(records, sources=["pending", "horde"])
    with pytest.raises(TypeError, match="one per record"):
        build_image_query(records, sources="horde")


def test_build_cross_category_query(records: dict[str, ImageGenerationModelRecord]) -> None:
    clip_like: dict[str, GenericModelRecord] = {"a": records["a"]}
    everything: dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]] = {
        IMAGE: dict(records),
        MODEL_REFERENCE_CATEGORY.clip: clip_like,
        MODEL_REFERENCE_CATEGORY.blip: {},
    }
    query = build_cross_category_query(everything)
    assert [r.name for r in query.to_list()] == ["a", "b", "c"], "a name in two categories appears once"
    assert build_cross_category_query({}).count() == 0


def test_builders_over_the_managers_mapping(catalog_dir: Path, manager_reset: None) -> None:
    """As upstream documents: build over what `get_model_reference()` returns; same as `query()`."""
    manager = ModelReferenceManager(base_path=catalog_dir, offline=True)
    built = build_image_query(manager.get_model_reference(IMAGE)).for_baseline("stable_diffusion_xl")
    assert built.names() == manager.query(IMAGE).for_baseline("stable_diffusion_xl").names()
    assert build_cross_category_query(manager.get_all_model_references()).count() >= built.count()


# -- errors: upstream's exception types and key phrases ----------------------------------------


def test_unknown_field_does_not_exist(records: dict[str, ImageGenerationModelRecord]) -> None:
    with pytest.raises(ValueError, match="'bogus'.*does not exist"):
        build_image_query(records).where(bogus=1)
    with pytest.raises(ValueError, match="'parameters_count'.*does not exist"):
        build_image_query(records).order_by("parameters_count")  # type: ignore[arg-type]


def test_ordering_values_that_are_not_mutually_comparable(
    records: dict[str, ImageGenerationModelRecord],
) -> None:
    mixed = {
        "a": _image("a", "x", requirements={"steps": 1}),
        "b": _image("b", "x", requirements={"steps": "many"}),
    }
    query = build_image_query(mixed).order_by("requirements__steps")
    with pytest.raises(ValueError, match="not mutually comparable") as raised:
        query.to_list()
    assert isinstance(raised.value, TypeError), "also a TypeError, as this package raised before"


def test_grouping_by_an_unhashable_value(records: dict[str, ImageGenerationModelRecord]) -> None:
    with_dicts = {"a": _image("a", "x", requirements={"steps": 1})}
    with pytest.raises(ValueError, match="'requirements' contains unhashable value of type dict"):
        build_image_query(with_dicts).distinct("requirements")
    with pytest.raises(ValueError, match="unhashable value"):
        build_image_query(with_dicts).group_by("requirements")


def test_in_needs_a_non_string_iterable(records: dict[str, ImageGenerationModelRecord]) -> None:
    with pytest.raises(ValueError, match="non-string iterable"):
        build_image_query(records).where(name__in="ab")


def test_an_unregistered_source_and_an_empty_provider_id(catalog_dir: Path, manager_reset: None) -> None:
    manager = ModelReferenceManager(base_path=catalog_dir, offline=True)
    with pytest.raises(ValueError, match="No provider registered under source id 'nope'"):
        manager.query(IMAGE, source=["nope", "horde"])
    with pytest.raises(ValueError, match="No provider registered"):
        manager.get_model_reference_or_none(IMAGE, source="nope")
    with pytest.raises(ValueError, match="non-empty"):
        manager.register_provider(StaticModelProvider("", {}))
