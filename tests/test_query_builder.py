"""ModelQuery: filters, the field DSL, ordering, terminals, provenance and every bad input."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest

from horde_model_reference import (
    AudioGenerationModelRecord,
    BlipModelRecord,
    ClipModelRecord,
    CodeformerModelRecord,
    ControlNetAnnotatorModelRecord,
    ControlNetModelRecord,
    DownloadRecord,
    EsrganModelRecord,
    FineTuneSeriesInfo,
    GenericModelRecord,
    GenericModelRecordConfig,
    GenericModelRecordMetadata,
    GfpganModelRecord,
    ImageGenerationModelRecord,
    LoraModelRecord,
    MiscellaneousModelRecord,
    SafetyCheckerModelRecord,
    TextGenerationModelRecord,
    TextualInversionModelRecord,
    VideoGenerationModelRecord,
)
from horde_model_reference.categories import MODEL_DOMAIN, MODEL_PURPOSE, ModelClassification
from horde_model_reference.query import (
    AudioFieldName,
    AudioFields,
    BlipFields,
    ClipFieldName,
    ClipFields,
    CodeformerFields,
    ControlNetAnnotatorFieldName,
    ControlNetAnnotatorFields,
    ControlNetFieldName,
    ControlNetFields,
    EsrganFields,
    FieldRef,
    GenericFieldName,
    GenericFields,
    GfpganFields,
    ImageFields,
    ImageGenerationQuery,
    ImageGenFieldName,
    LoraFieldName,
    LoraFields,
    MiscellaneousFieldName,
    MiscellaneousFields,
    ModelQuery,
    OrderSpec,
    SafetyCheckerFields,
    TextFields,
    TextGenFieldName,
    TextualInversionFieldName,
    TextualInversionFields,
    VideoFieldName,
    VideoFields,
)


def image(name: str, **fields: Any) -> ImageGenerationModelRecord:
    fields.setdefault("baseline", "stable_diffusion_1")
    fields.setdefault("nsfw", False)
    return ImageGenerationModelRecord(name=name, **fields)


def catalog(*records: ImageGenerationModelRecord) -> dict[str, ImageGenerationModelRecord]:
    return {r.name: r for r in records}


@pytest.fixture
def records() -> dict[str, ImageGenerationModelRecord]:
    return catalog(
        image(
            "alpha", baseline="stable_diffusion_xl", size_on_disk_bytes=300, tags=["anime", "nsfw"], nsfw=True
        ),
        image("beta", size_on_disk_bytes=100, tags=["realistic"], inpainting=True),
        image("gamma", baseline="stable_diffusion_xl", size_on_disk_bytes=None, tags=None, style="anime"),
        image(
            "delta",
            size_on_disk_bytes=200,
            tags=["anime"],
            requirements={"min_steps": 4},
            metadata=GenericModelRecordMetadata(created_at=10),
            finetune_series=FineTuneSeriesInfo(name="series"),
            config=GenericModelRecordConfig(download=(DownloadRecord(file_name="d.ckpt", file_url="u"),)),
        ),
    )


@pytest.fixture
def q(records: dict[str, ImageGenerationModelRecord]) -> ImageGenerationQuery:
    return ImageGenerationQuery.from_records(records)


def names(query: ModelQuery[Any, Any]) -> list[str]:
    return [r.name for r in query.to_list()]


# -- where -------------------------------------------------------------------------------------


def test_where_equality_and_every_operator(q: ImageGenerationQuery) -> None:
    assert names(q.where(baseline="stable_diffusion_xl")) == ["alpha", "gamma"]
    assert names(q.where(baseline="stable_diffusion_xl", nsfw=False)) == ["gamma"]
    assert names(q.where(size_on_disk_bytes__lt=200)) == ["beta"]
    assert names(q.where(size_on_disk_bytes__lte=200)) == ["beta", "delta"]
    assert names(q.where(size_on_disk_bytes__gt=200)) == ["alpha"]
    assert names(q.where(size_on_disk_bytes__gte=200)) == ["alpha", "delta"]
    assert names(q.where(baseline__ne="stable_diffusion_xl")) == ["beta", "delta"]
    assert names(q.where(style__ne="anime")) == ["alpha", "beta", "delta"], "None is not equal to 'anime'"
    assert names(q.where(name__in=["beta", "delta", "nope"])) == ["beta", "delta"]
    assert names(q.where(name=("beta", "gamma"))) == ["beta", "gamma"], "a tuple without operator means in"
    assert names(q.where(tags__contains="anime")) == ["alpha", "delta"]
    assert names(q.where(name__contains="mm")) == ["gamma"], "contains on a string is a substring test"


def test_where_nested_paths(q: ImageGenerationQuery) -> None:
    assert names(q.where(metadata__created_at__gt=5)) == ["delta"]
    assert names(q.where(requirements__min_steps=4)) == ["delta"]
    assert names(q.where(finetune_series__name="series")) == ["delta"]
    assert names(q.where(model_classification__domain="image")) == ["alpha", "beta", "gamma", "delta"]
    download = DownloadRecord(file_name="d.ckpt", file_url="u")
    assert names(q.where(config__download__contains=download)) == ["delta"]


def test_where_unknown_field_lists_valid_fields(q: ImageGenerationQuery) -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown field 'bogus' for ImageGenerationModelRecord \(the field does not exist\); valid fields: .*baseline",
    ):
        q.where(bogus=1)
    with pytest.raises(ValueError, match=r"unknown field 'parameters'"):
        q.where(parameters=1)
    with pytest.raises(
        ValueError, match=r"unknown field 'nope' \(in 'metadata__nope'\) for GenericModelRecordMetadata"
    ):
        q.where(metadata__nope=1)


def test_where_unknown_operator_is_named(q: ImageGenerationQuery) -> None:
    with pytest.raises(
        ValueError, match=r"unknown operator 'gtx' in 'size_on_disk_bytes__gtx'; valid operators: lt,"
    ):
        q.where(size_on_disk_bytes__gtx=1)
    with pytest.raises(ValueError, match=r"field 'baseline' .* has no sub-fields"):
        q.where(baseline__foo__lt=1)


def test_where_bad_values(q: ImageGenerationQuery) -> None:
    with pytest.raises(ValueError, match=r"name__in requires a non-string iterable value"):
        q.where(name__in="beta")
    with pytest.raises(TypeError, match=r"cannot compare field 'baseline' \(str\) with 5 \(int\) using gt"):
        q.where(baseline__gt=5).to_list()
    with pytest.raises(TypeError, match=r"use filter\(\) for callables"):
        q.where(lambda r: True)  # type: ignore[arg-type]


# -- field DSL ---------------------------------------------------------------------------------


def test_field_refs_compare(q: ImageGenerationQuery) -> None:
    f = ImageFields
    assert names(q.where(f.baseline == "stable_diffusion_xl")) == ["alpha", "gamma"]
    assert names(q.where(f.baseline != "stable_diffusion_xl")) == ["beta", "delta"]
    assert names(q.where(f.size_on_disk_bytes < 200)) == ["beta"]
    assert names(q.where(f.size_on_disk_bytes <= 200)) == ["beta", "delta"]
    assert names(q.where(f.size_on_disk_bytes > 200)) == ["alpha"]
    assert names(q.where(f.size_on_disk_bytes >= 200)) == ["alpha", "delta"]
    assert names(q.where(f.tags.contains("anime"))) == ["alpha", "delta"]
    assert names(q.where(f.tags == ["realistic"])) == ["beta"], "== with a list is exact equality"
    assert names(q.where(f.name.is_in({"beta", "gamma"}))) == ["beta", "gamma"]
    assert names(q.where(f.tags.is_none())) == ["gamma"]
    assert names(q.where(f.tags.is_not_none())) == ["alpha", "beta", "delta"]
    assert names(q.where(f.nsfw.is_true())) == ["alpha"]
    assert names(q.where(f.inpainting.is_false())) == ["alpha", "gamma", "delta"]
    assert names(q.where(f.name == f.name)) == ["alpha", "beta", "gamma", "delta"]
    assert names(q.where(f.name != f.style)) == ["alpha", "beta", "gamma", "delta"]
    assert names(q.where(FieldRef("metadata__created_at") == 10)) == ["delta"]


def test_predicates_combine(q: ImageGenerationQuery) -> None:
    f = ImageFields
    xl = f.baseline == "stable_diffusion_xl"
    assert names(q.where(xl & f.nsfw.is_false())) == ["gamma"]
    assert names(q.where(xl | (f.name == "beta"))) == ["alpha", "beta", "gamma"]
    assert names(q.where(~xl)) == ["beta", "delta"]
    assert names(q.where(~(xl | f.inpainting.is_true()))) == ["delta"]
    assert xl(image("x", baseline="stable_diffusion_xl")) is True
    assert "baseline" in repr(xl)
    with pytest.raises(TypeError, match="no truth value"):
        bool(xl)
    with pytest.raises(TypeError):
        _ = xl & True  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = xl | 1  # type: ignore[operator]


def test_field_ref_of_another_category_is_rejected(q: ImageGenerationQuery) -> None:
    with pytest.raises(ValueError, match=r"unknown field 'parameters_count' for ImageGenerationModelRecord"):
        q.where(TextFields.parameters_count > 7)
    with pytest.raises(ValueError, match=r"unknown field 'parameters_count'"):
        q.filter(TextFields.parameters_count > 7)


def test_field_ref_misc() -> None:
    ref = FieldRef("name")
    assert ref.field_name == "name"
    assert repr(ref) == "FieldRef('name')"
    assert hash(ref) == hash(FieldRef("name"))
    assert ref.asc() == OrderSpec("name", False)
    assert ref.desc() == OrderSpec("name", True)


STRUCT_NAMESPACES: list[tuple[type[GenericModelRecord], type, Any]] = [
    (GenericModelRecord, GenericFields, GenericFieldName),
    (ImageGenerationModelRecord, ImageFields, ImageGenFieldName),
    (TextGenerationModelRecord, TextFields, TextGenFieldName),
    (ControlNetModelRecord, ControlNetFields, ControlNetFieldName),
    (ControlNetAnnotatorModelRecord, ControlNetAnnotatorFields, ControlNetAnnotatorFieldName),
    (BlipModelRecord, BlipFields, GenericFieldName),
    (ClipModelRecord, ClipFields, ClipFieldName),
    (CodeformerModelRecord, CodeformerFields, GenericFieldName),
    (EsrganModelRecord, EsrganFields, GenericFieldName),
    (GfpganModelRecord, GfpganFields, GenericFieldName),
    (SafetyCheckerModelRecord, SafetyCheckerFields, GenericFieldName),
    (VideoGenerationModelRecord, VideoFields, VideoFieldName),
    (AudioGenerationModelRecord, AudioFields, AudioFieldName),
    (MiscellaneousModelRecord, MiscellaneousFields, MiscellaneousFieldName),
    (LoraModelRecord, LoraFields, LoraFieldName),
    (TextualInversionModelRecord, TextualInversionFields, TextualInversionFieldName),
]


def _literal_values(alias: Any) -> set[str]:
    values: set[str] = set()
    for arg in typing.get_args(alias):
        values |= _literal_values(arg) if typing.get_origin(arg) is typing.Literal else {arg}
    return values


@pytest.mark.parametrize(
    ("record_type", "namespace", "literal"), STRUCT_NAMESPACES, ids=lambda v: getattr(v, "__name__", "")
)
def test_namespaces_and_literals_match_the_structs(record_type: type, namespace: type, literal: Any) -> None:
    struct_fields = {f.name for f in msgspec.structs.fields(record_type)}
    refs = {
        name: getattr(namespace, name)
        for name in dir(namespace)
        if isinstance(getattr(namespace, name), FieldRef)
    }
    assert set(refs) == struct_fields
    assert all(ref.field_name == name for name, ref in refs.items())
    assert _literal_values(literal) == struct_fields


def test_every_record_type_has_a_namespace() -> None:
    from horde_model_reference import MODEL_RECORD_TYPE_LOOKUP

    assert set(MODEL_RECORD_TYPE_LOOKUP.values()) <= {rt for rt, _, _ in STRUCT_NAMESPACES}


# -- other filters -----------------------------------------------------------------------------


def test_where_classification(q: ImageGenerationQuery) -> None:
    assert len(q.where_classification(domain=MODEL_DOMAIN.image).to_list()) == 4
    assert q.where_classification(domain="text").to_list() == []
    assert len(q.where_classification(purpose=MODEL_PURPOSE.generation, domain="image").to_list()) == 4
    assert q.where_classification(purpose="post_processing").to_list() == []
    unclassified = ImageGenerationQuery.from_records(catalog(image("u", model_classification=None)))
    assert unclassified.where_classification(domain="image").to_list() == []
    with pytest.raises(ValueError, match="needs a domain, a purpose or both"):
        q.where_classification()


def test_tags(q: ImageGenerationQuery) -> None:
    assert names(q.tags_any(["anime", "realistic"])) == ["alpha", "beta", "delta"]
    assert names(q.tags_any("realistic")) == ["beta"]
    assert names(q.tags_all(["anime", "nsfw"])) == ["alpha"]
    assert names(q.tags_none(["nsfw"])) == ["beta", "gamma", "delta"]
    with pytest.raises(ValueError, match=r"tags_any\(\) needs at least one tag"):
        q.tags_any([])
    clip: ModelQuery[ClipModelRecord, str] = ModelQuery.from_records(
        {"c": ClipModelRecord(name="c")}, record_type=ClipModelRecord
    )
    with pytest.raises(ValueError, match=r"unknown field 'tags' for ClipModelRecord"):
        clip.tags_any(["x"])


def test_filter(q: ImageGenerationQuery) -> None:
    assert names(q.filter(lambda r: r.name.startswith("g"))) == ["gamma"]
    assert names(q.filter(ImageFields.nsfw.is_true())) == ["alpha"]
    with pytest.raises(TypeError, match="needs a callable"):
        q.filter(3)  # type: ignore[arg-type]


# -- ordering and paging -----------------------------------------------------------------------


def test_order_by_puts_none_last_both_ways(q: ImageGenerationQuery) -> None:
    assert names(q.order_by("size_on_disk_bytes")) == ["beta", "delta", "alpha", "gamma"]
    assert names(q.order_by("size_on_disk_bytes", descending=True)) == ["alpha", "delta", "beta", "gamma"]
    assert names(q.order_by(ImageFields.size_on_disk_bytes.desc())) == ["alpha", "delta", "beta", "gamma"]
    assert names(q.order_by(ImageFields.name)) == ["alpha", "beta", "delta", "gamma"]
    assert names(q.order_by(FieldRef("metadata__created_at"))) == ["delta", "alpha", "beta", "gamma"]
    assert names(q.order_by("name").order_by("size_on_disk_bytes")) == ["beta", "delta", "alpha", "gamma"]


def test_order_by_is_stable(q: ImageGenerationQuery) -> None:
    assert names(q.order_by("baseline")) == ["beta", "delta", "alpha", "gamma"]
    assert names(q.order_by("baseline", descending=True)) == ["alpha", "gamma", "beta", "delta"]


def test_order_by_bad_input(q: ImageGenerationQuery) -> None:
    with pytest.raises(ValueError, match="unknown field 'bogus'"):
        q.order_by("bogus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a field name or FieldRef"):
        q.order_by(3)  # type: ignore[arg-type]
    mixed: ModelQuery[ImageGenerationModelRecord, str] = ModelQuery.from_records(
        {"a": image("a", requirements={"x": 1}), "b": image("b", requirements={"x": "text"})},
        record_type=ImageGenerationModelRecord,
    )
    with pytest.raises(
        TypeError,
        match=r"cannot order by 'requirements__x': values are not mutually comparable \(int and str\)",
    ):
        mixed.order_by("requirements__x").to_list()
    with pytest.raises(
        ValueError,
        match=r"cannot order by 'requirements': values are not mutually comparable \(dict and dict\)",
    ):
        mixed.order_by("requirements").to_list()


def test_limit_and_offset(q: ImageGenerationQuery) -> None:
    ordered = q.order_by("name")
    assert names(ordered.limit(2)) == ["alpha", "beta"]
    assert names(ordered.offset(1).limit(2)) == ["beta", "delta"]
    assert names(ordered.offset(3)) == ["gamma"]
    assert names(ordered.limit(0)) == []
    assert names(ordered.offset(10)) == []
    for method in (q.limit, q.offset):
        with pytest.raises(ValueError, match=r"needs a number >= 0, got -1"):
            method(-1)
        with pytest.raises(TypeError, match="needs an int"):
            method(1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="needs an int"):
            method(True)


def test_methods_return_new_queries_of_the_same_type(q: ImageGenerationQuery) -> None:
    derived = [
        q.where(nsfw=False),
        q.where_classification(domain="image"),
        q.tags_any(["anime"]),
        q.tags_all(["anime"]),
        q.tags_none(["anime"]),
        q.filter(bool),
        q.where_source("horde"),
        q.order_by("name"),
        q.limit(1),
        q.offset(1),
        q.for_baseline("stable_diffusion_xl"),
        q.exclude_nsfw(),
    ]
    for query in derived:
        assert type(query) is ImageGenerationQuery
        assert query is not q
    assert q.count() == 4, "the original is unchanged"


# -- terminals ---------------------------------------------------------------------------------


def test_terminals(q: ImageGenerationQuery) -> None:
    assert q.count() == 4
    first = q.order_by("name").first()
    assert first is not None and first.name == "alpha"
    assert q.where(name="nope").first() is None
    assert q.names() == ["alpha", "beta", "gamma", "delta"]
    assert q.distinct("baseline") == ["stable_diffusion_xl", "stable_diffusion_1"]
    assert q.distinct(ImageFields.tags) == [["anime", "nsfw"], ["realistic"], None, ["anime"]]
    groups = q.group_by("baseline")
    assert {k: [r.name for r in v] for k, v in groups.items()} == {
        "stable_diffusion_xl": ["alpha", "gamma"],
        "stable_diffusion_1": ["beta", "delta"],
    }
    assert set(q.group_by("tags")) == {("anime", "nsfw"), ("realistic",), None, ("anime",)}
    with pytest.raises(TypeError, match=r"field 'requirements' contains unhashable value of type dict"):
        q.where(name="delta").distinct("requirements")
    with pytest.raises(ValueError, match="unknown field"):
        q.group_by("bogus")  # type: ignore[arg-type]


def test_names_are_catalog_keys() -> None:
    record = ControlNetModelRecord(name="control_qr_xl", controlnet_style="control_qr_xl")
    query: ModelQuery[ControlNetModelRecord, str] = ModelQuery.from_records(
        {"control_qr_sdxl": record}, record_type=ControlNetModelRecord
    )
    assert query.names() == ["control_qr_sdxl"]
    assert query.to_list() == [record]


def test_repr(q: ImageGenerationQuery) -> None:
    assert repr(q.exclude_nsfw()) == "ImageGenerationQuery(ImageGenerationModelRecord, predicates=1)"


def test_classification_struct_compares_by_value() -> None:
    record = image("a", model_classification=ModelClassification(domain="image", purpose="generation"))
    query = ImageGenerationQuery.from_records({"a": record})
    assert query.where(model_classification=ModelClassification("image", "generation")).count() == 1


# -- compiled one-field filters ---------------------------------------------------------------


class _Row(msgspec.Struct):
    name: str
    baseline: str | None = None
    nsfw: bool = False


_ROWS = [_Row("a", "sdxl"), _Row("b", "sd15", nsfw=True), _Row("c", None), _Row("d", "sdxl", nsfw=True)]


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        ("eq", "sdxl", "ad"),
        ("ne", "sdxl", "bc"),
        ("eq", None, "c"),
        ("truthy", None, "bd"),
        ("falsy", None, "ac"),
    ],
)
def test_compiled_filters_select_what_the_plain_comprehension_selects(
    test: str, value: Any, expected: str
) -> None:
    from horde_model_reference.query._paths import path_filter

    field = "nsfw" if test in ("truthy", "falsy") else "baseline"
    compiled = path_filter(field, test)
    assert compiled is not None
    assert "".join(r.name for r in compiled(_ROWS, value)) == expected
    assert "".join(r.name for r in compiled(iter(_ROWS), value)) == expected, "one-shot iterables too"


@pytest.mark.parametrize(
    "path",
    ["metadata__created_at", "class", "a-b", "x; import os", "", "1x", "é é", "\uff4e\uff53\uff46\uff57"],
)
def test_only_plain_identifiers_are_compiled(path: str) -> None:
    from horde_model_reference.query._paths import path_filter

    assert path_filter(path, "eq") is None


def test_a_compiled_filter_on_a_missing_attribute_raises_as_attrgetter_does() -> None:
    from horde_model_reference.query._paths import path_filter

    compiled = path_filter("no_such_field", "eq")
    assert compiled is not None
    with pytest.raises(AttributeError, match="no_such_field"):
        compiled(_ROWS, 1)


def test_queries_filter_one_field_conditions_with_the_compiled_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from horde_model_reference.query import fields as fields_module

    asked: list[tuple[str, str]] = []
    real = fields_module.path_filter

    def spy(path: str, test: str) -> Any:
        asked.append((path, test))
        return real(path, test)

    monkeypatch.setattr(fields_module, "path_filter", spy)
    eq = fields_module.compile_condition("baseline", None, "sdxl")
    assert [r.name for r in eq._select(_ROWS)] == ["a", "d"]
    falsy = fields_module.truthiness("nsfw", negate=True)
    assert [r.name for r in falsy._select(_ROWS)] == ["a", "c"]
    assert asked == [("baseline", "eq"), ("nsfw", "falsy")]
