"""Records at `horde_model_reference.model_reference_records` behave as upstream 8.6.2's pydantic models.

Written from upstream's source and pydantic's documented `BaseModel` behaviour: constructors take
field names or wire aliases (`populate_by_name`), `model_dump()` gives every field by attribute
name (`by_alias=True`: wire names), `model_copy(update=...)` leaves the original alone,
`model_validate` takes a mapping or returns an instance unchanged and raises a `ValueError` on bad
input, and `register_record_type(category)` is a class decorator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from horde_model_reference import decode_catalog
from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY as CATEGORY
from horde_model_reference.model_reference_records import (
    MODEL_RECORD_TYPE_LOOKUP,
    DownloadRecord,
    GenericModelRecord,
    GenericModelRecordConfig,
    ImageGenerationModelRecord,
    LoraModelRecord,
    TextGenerationModelRecord,
    get_default_config,
    get_record_type_for_category,
    register_record_type,
)


def _text(**overrides: object) -> TextGenerationModelRecord:
    fields: dict[str, object] = {"name": "koboldcpp/Test-7B", "parameters": 7_000_000_000}
    fields.update(overrides)
    return TextGenerationModelRecord(**fields)  # type: ignore[arg-type]


def test_constructor_takes_the_wire_name_and_the_field_name() -> None:
    by_wire = _text()
    assert by_wire.parameters_count == 7_000_000_000
    by_field = TextGenerationModelRecord(name="koboldcpp/Test-7B", parameters_count=7_000_000_000)
    assert by_field == by_wire
    assert json.loads(by_wire.to_json())["parameters"] == 7_000_000_000


def test_both_names_at_once_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="parameters"):
        TextGenerationModelRecord(name="x", parameters=1, parameters_count=2)  # type: ignore[call-arg]


def test_decoding_does_not_go_through_the_constructor() -> None:
    record = msgspec.json.decode(b'{"name": "x", "parameters": 3}', type=TextGenerationModelRecord)
    assert record.parameters_count == 3


def test_model_dump_gives_every_field_by_attribute_name() -> None:
    dumped = _text().model_dump()
    assert dumped["parameters_count"] == 7_000_000_000
    assert "parameters" not in dumped
    assert dumped["description"] is None  # defaults included, as pydantic's model_dump()
    assert dumped["config"] == {"download": [], "embedded_component_hashes": None}  # as 8.6.2
    assert dumped["model_classification"] == {"domain": "text", "purpose": "generation"}
    assert dumped["record_type"] == CATEGORY.text_generation


def test_model_dump_options() -> None:
    record = _text(tags=("a", "b"))
    assert record.model_dump(by_alias=True)["parameters"] == 7_000_000_000
    assert "description" not in record.model_dump(exclude_none=True)
    assert record.model_dump()["tags"] == ["a", "b"]
    assert set(record.model_dump(include={"name", "nsfw"})) == {"name", "nsfw"}
    assert "name" not in record.model_dump(exclude={"name"})
    as_json = record.model_dump(mode="json")
    assert type(as_json["record_type"]) is str
    assert type(as_json["model_classification"]["domain"]) is str
    with pytest.raises(ValueError, match="mode"):
        record.model_dump(mode="yaml")


def test_model_dump_json_is_model_dump_in_json_mode() -> None:
    record = _text()
    assert json.loads(record.model_dump_json()) == record.model_dump(mode="json")
    assert "\n" in record.model_dump_json(indent=2)
    assert json.loads(record.model_dump_json(by_alias=True))["parameters"] == 7_000_000_000


def test_model_copy_with_update() -> None:
    record = _text()
    changed = record.model_copy(update={"nsfw": True, "parameters": 13})
    assert (changed.nsfw, changed.parameters_count) == (True, 13)
    assert (record.nsfw, record.parameters_count) == (False, 7_000_000_000)
    same = record.model_copy()
    assert same == record and same is not record
    deep = record.model_copy(deep=True)
    assert deep == record and deep.config is not record.config


def test_model_copy_of_a_nested_config() -> None:
    config = GenericModelRecordConfig(download=(DownloadRecord(file_name="a.ckpt", file_url="https://x/a"),))
    emptied = config.model_copy(update={"download": []})
    assert list(emptied.download) == [] and len(config.download) == 1


def test_model_validate_takes_wire_or_field_names() -> None:
    data = {"name": "n", "parameters": 5}
    assert TextGenerationModelRecord.model_validate(data).parameters_count == 5
    assert (
        TextGenerationModelRecord.model_validate({"name": "n", "parameters_count": 5}).parameters_count == 5
    )
    record = _text()
    assert TextGenerationModelRecord.model_validate(record) is record
    assert TextGenerationModelRecord.model_validate_json(record.to_json()) == record


def test_model_validate_round_trips_model_dump() -> None:
    record = ImageGenerationModelRecord(name="m", baseline="stable_diffusion_xl", nsfw=False, tags=("x",))
    assert ImageGenerationModelRecord.model_validate(record.model_dump(mode="json")) == record


@pytest.mark.parametrize(
    "bad",
    [{"name": "n"}, {"name": "n", "parameters": "many"}, {"parameters": 3}, ["not", "a", "mapping"]],
)
def test_model_validate_rejects_bad_input_with_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        TextGenerationModelRecord.model_validate(bad)


def test_model_fields() -> None:
    fields = TextGenerationModelRecord.model_fields
    assert "parameters_count" in fields and "parameters" not in fields
    assert fields["parameters_count"].alias == "parameters"
    assert fields["parameters_count"].is_required()
    assert not fields["nsfw"].is_required()
    assert fields["nsfw"].default is False
    assert _text().model_fields is fields
    assert {"name", "config", "metadata"} <= set(GenericModelRecord.model_fields)


@pytest.fixture
def restore_lookup() -> Iterator[None]:
    saved = dict(MODEL_RECORD_TYPE_LOOKUP)
    yield
    MODEL_RECORD_TYPE_LOOKUP.clear()
    MODEL_RECORD_TYPE_LOOKUP.update(saved)


@pytest.mark.usefixtures("restore_lookup")
def test_register_record_type_as_a_decorator() -> None:
    @register_record_type(CATEGORY.lora)
    class CivitaiLora(LoraModelRecord, frozen=True, kw_only=True):
        civitai_id: int = 0

    assert CivitaiLora.__name__ == "CivitaiLora"
    assert get_record_type_for_category(CATEGORY.lora) is CivitaiLora
    assert get_record_type_for_category("lora") is CivitaiLora
    decoded = decode_catalog("lora", b'{"x": {"name": "x", "civitai_id": 7}}')
    assert isinstance(decoded.records["x"], CivitaiLora)
    assert decoded.records["x"].civitai_id == 7  # type: ignore[attr-defined]


@pytest.mark.usefixtures("restore_lookup")
def test_register_record_type_rejects_a_non_record() -> None:
    with pytest.raises(TypeError, match="GenericModelRecord"):
        register_record_type(CATEGORY.lora)(dict)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="not_a_category"):
        register_record_type("not_a_category")


def test_default_record_types() -> None:
    assert get_record_type_for_category(CATEGORY.image_generation) is ImageGenerationModelRecord
    assert get_record_type_for_category(CATEGORY.text_generation) is TextGenerationModelRecord


def test_default_config_in_a_consumers_pydantic_model() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Entry(pydantic.BaseModel):
        model_config = get_default_config()
        value: int = pydantic.Field(alias="v")

    assert Entry.model_validate({"value": 1, "unknown": 2}).value == 1
    assert Entry.model_validate({"v": 3}).value == 3


def test_real_catalog_records_are_the_upstream_classes(shared_data: Path) -> None:
    raw = (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()
    decoded = decode_catalog(CATEGORY.image_generation, raw)
    upstream_view = json.loads(raw)
    assert decoded.records
    for name, record in decoded.records.items():
        assert isinstance(record, ImageGenerationModelRecord)
        dumped = record.model_dump(mode="json", by_alias=True)
        assert dumped["baseline"] == upstream_view[name]["baseline"]
        assert dumped["nsfw"] == upstream_view[name]["nsfw"]
    text = decode_catalog(
        CATEGORY.text_generation, (shared_data / "golden-v2" / "text_generation.json").read_bytes()
    )
    some = next(iter(text.records.values()))
    assert isinstance(some, TextGenerationModelRecord)
    assert some.model_dump()["parameters_count"] == some.parameters_count


def test_download_properties() -> None:
    downloads = (
        DownloadRecord(file_name="a.safetensors", file_url="https://x/a", size_bytes=3),
        DownloadRecord(file_name="b.safetensors", file_url="https://x/b", size_bytes=4),
    )
    record = ImageGenerationModelRecord(
        name="m",
        baseline="flux_1",
        nsfw=False,
        config=GenericModelRecordConfig(download=downloads),
        size_on_disk_bytes=99,
    )
    assert record.declared_total_size_bytes == 7
    assert record.primary_download_url == "https://x/a"
    assert record.all_download_urls == ["https://x/a", "https://x/b"]
    assert record.download_count == 2
    assert record.category is CATEGORY.image_generation
    partial = record.model_copy(
        update={
            "config": GenericModelRecordConfig(
                download=(DownloadRecord(file_name="c", file_url="https://x/c"),)
            )
        }
    )
    assert partial.declared_total_size_bytes == 99  # a download without a size: the declared total
    empty = GenericModelRecord(name="n")
    assert (empty.declared_total_size_bytes, empty.primary_download_url, empty.download_count) == (
        None,
        None,
        0,
    )
    assert empty.all_download_urls == []
