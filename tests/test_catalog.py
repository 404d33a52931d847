"""Records and catalog decoding: the real golden-v2 files, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from horde_model_reference import (
    KNOWN_IMAGE_GENERATION_BASELINE,
    MODEL_RECORD_TYPE_LOOKUP,
    MODEL_REFERENCE_CATEGORY,
    RECORD_TYPE,
    CatalogDecodeError,
    GenericModelRecord,
    ImageGenerationModelRecord,
    RecordDecodeError,
    TextGenerationModelRecord,
    UnknownCategoryError,
    decode_catalog,
    decode_record,
    encode_catalog,
    get_category_descriptor,
    parse_category,
    register_model_style,
)

GOLDEN_COUNTS = {
    "stable_diffusion.json": 161,
    "text_generation.json": 719,
    "controlnet.json": 18,
    "esrgan.json": 6,
    "blip.json": 2,
    "clip.json": 2,
    "miscellaneous.json": 2,
    "codeformer.json": 1,
    "gfpgan.json": 1,
    "safety_checker.json": 1,
}


def _category_of(file_name: str) -> MODEL_REFERENCE_CATEGORY:
    for category in MODEL_REFERENCE_CATEGORY:
        if get_category_descriptor(category).v2_filename == file_name:
            return category
    raise AssertionError(file_name)


def test_all_fifteen_categories_have_descriptors() -> None:
    assert len(MODEL_REFERENCE_CATEGORY) == 15
    assert set(MODEL_RECORD_TYPE_LOOKUP) == set(MODEL_REFERENCE_CATEGORY)
    image = get_category_descriptor("image_generation")
    assert image.v2_filename == "stable_diffusion.json"
    text = get_category_descriptor(MODEL_REFERENCE_CATEGORY.text_generation)
    assert (text.v2_filename, text.legacy_filename, text.github_source) == (
        "text_generation.json",
        "models.csv",
        "text",
    )
    assert get_category_descriptor("lora").managed_elsewhere
    assert get_category_descriptor("ti").managed_elsewhere
    assert get_category_descriptor("video_generation").legacy_filename is None
    assert parse_category("stable_diffusion") is MODEL_REFERENCE_CATEGORY.image_generation


def test_unknown_category_names_the_value_and_the_valid_ones() -> None:
    with pytest.raises(UnknownCategoryError, match="'dalle'.*image_generation"):
        parse_category("dalle")


@pytest.mark.parametrize("file_name", sorted(GOLDEN_COUNTS))
def test_golden_v2_decodes_completely(shared_data: Path, file_name: str) -> None:
    category = _category_of(file_name)
    decoded = decode_catalog(category, (shared_data / "golden-v2" / file_name).read_bytes())
    assert len(decoded.records) == GOLDEN_COUNTS[file_name]
    assert decoded.issues == ()
    for record in decoded.records.values():
        assert isinstance(record, MODEL_RECORD_TYPE_LOOKUP[category])
        assert record.model_classification is not None


def test_image_defaults_fill_what_the_file_omits(shared_data: Path) -> None:
    data = (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()
    record = decode_catalog("image_generation", data).records["DreamShaper XL"]
    assert isinstance(record, ImageGenerationModelRecord)
    assert record.record_type == "image_generation"
    assert record.metadata.schema_version == "2.1.0"
    assert record.model_classification is not None
    assert (record.model_classification.domain, record.model_classification.purpose) == (
        "image",
        "generation",
    )
    assert record.baseline == "stable_diffusion_xl"
    assert record.requirements == {
        "min_steps": 3,
        "max_steps": 6,
        "cfg_scale": 2,
        "samplers": ("k_dpmpp_sde",),
        "schedulers": ("karras",),
    }


def test_text_parameters_on_the_wire_parameters_count_in_python(shared_data: Path) -> None:
    data = (shared_data / "golden-v2" / "text_generation.json").read_bytes()
    record = decode_catalog("text_generation", data).records["acrastt/Marx-3B-V3"]
    assert isinstance(record, TextGenerationModelRecord)
    assert record.parameters_count == 3_000_000_000
    assert msgspec.json.decode(record.to_json())["parameters"] == 3_000_000_000


def test_key_is_the_catalog_key_not_the_name(shared_data: Path) -> None:
    data = (shared_data / "golden-v2" / "controlnet.json").read_bytes()
    records = decode_catalog("controlnet", data).records
    assert records["control_qr_sdxl"].name == "control_qr_xl"


def test_round_trip_keeps_every_value(shared_data: Path) -> None:
    for file_name in GOLDEN_COUNTS:
        category = _category_of(file_name)
        first = decode_catalog(category, (shared_data / "golden-v2" / file_name).read_bytes())
        again = decode_catalog(category, encode_catalog(first.records, indent=2))
        assert again.records == first.records


def test_unknown_baseline_and_style_are_warnings_not_errors() -> None:
    body = {
        "a": {"name": "a", "baseline": "baseline_from_the_future", "nsfw": False, "style": "new_style"},
        "b": {"name": "b", "baseline": "baseline_from_the_future", "nsfw": False},
    }
    with capture_logs() as logs:
        decoded = decode_catalog("image_generation", msgspec.json.encode(body))
    assert set(decoded.records) == {"a", "b"}
    unknown = [(entry["kind"], entry["value"]) for entry in logs if entry["event"] == "unknown_value"]
    assert unknown == [("image_baseline", "baseline_from_the_future"), ("model_style", "new_style")]


def test_unknown_values_keep_their_string_and_round_trip() -> None:
    body = {"a": {"name": "a", "baseline": "baseline_round_trip", "nsfw": False, "style": "style_round_trip"}}
    with capture_logs():
        record = decode_catalog("image_generation", msgspec.json.encode(body)).records["a"]
    assert record.baseline == "baseline_round_trip"
    assert isinstance(record.baseline, str)
    assert f"{record.baseline}" == "baseline_round_trip"
    encoded = msgspec.json.decode(encode_catalog({"a": record}))["a"]
    assert (encoded["baseline"], encoded["style"]) == ("baseline_round_trip", "style_round_trip")


def test_unknown_value_is_logged_once_with_the_model_that_carries_it() -> None:
    first = {"m1": {"name": "m1", "baseline": "baseline_logged_once", "nsfw": False}}
    second = {"m2": {"name": "m2", "baseline": "baseline_logged_once", "nsfw": False}}
    with capture_logs() as logs:
        decode_catalog("image_generation", msgspec.json.encode(first))
        decode_catalog("image_generation", msgspec.json.encode(second))
        decode_record("image_generation", {"name": "m3", "baseline": "baseline_logged_once", "nsfw": False})
    unknown = [entry for entry in logs if entry["event"] == "unknown_value"]
    assert [(entry["value"], entry["model"]) for entry in unknown] == [("baseline_logged_once", "m1")]


def test_single_record_decode_reports_an_unknown_value() -> None:
    with capture_logs() as logs:
        decode_record("controlnet", {"name": "c", "controlnet_style": "control_single_record"})
    unknown = [
        (entry["kind"], entry["value"], entry["model"]) for entry in logs if entry["event"] == "unknown_value"
    ]
    assert unknown == [("controlnet_style", "control_single_record", "c")]


def test_registered_values_are_not_reported() -> None:
    register_model_style("style_registered_at_runtime")
    body = {
        "a": {
            "name": "a",
            "baseline": "stable_diffusion_1",
            "nsfw": False,
            "style": "style_registered_at_runtime",
        }
    }
    with capture_logs() as logs:
        record = decode_catalog("image_generation", msgspec.json.encode(body)).records["a"]
    assert record.style == "style_registered_at_runtime"
    assert not [entry for entry in logs if entry["event"] == "unknown_value"]


def test_records_share_one_object_per_baseline_and_style(shared_data: Path) -> None:
    data = (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()
    records = list(decode_catalog("image_generation", data).records.values())
    baselines = {record.baseline for record in records}
    assert len({id(record.baseline) for record in records}) == len(baselines)
    assert len({id(record.style) for record in records}) == len({record.style for record in records})
    assert KNOWN_IMAGE_GENERATION_BASELINE.stable_diffusion_xl in baselines


BAD_CATALOGS = {
    "malformed JSON": (b'{"a": {"name": ', "malformed JSON"),
    "array instead of object": (b"[1, 2]", "got a JSON list"),
    "empty file": (b"", "empty"),
    "whitespace only": (b"  \n", "empty"),
    "not UTF-8": (b'{"a": {"name": "\xff\xfe"}}', "not UTF-8"),
    "string at top level": (b'"hello"', "got a JSON str"),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGS))
def test_bad_catalog_is_a_clear_error(case: str) -> None:
    data, message = BAD_CATALOGS[case]
    with pytest.raises(CatalogDecodeError, match=message) as info:
        decode_catalog("image_generation", data, source="test.json")
    assert info.value.category == "image_generation"
    assert "test.json" in str(info.value)


def _two_good_one_bad() -> bytes:
    return msgspec.json.encode(
        {
            "good one": {"name": "good one", "baseline": "stable_diffusion_1", "nsfw": False},
            "bad one": {"name": "bad one", "baseline": "stable_diffusion_1", "nsfw": "maybe"},
            "good two": {"name": "good two", "baseline": "stable_diffusion_xl", "nsfw": True},
        }
    )


def test_bad_record_is_skipped_and_reported_the_rest_loads() -> None:
    decoded = decode_catalog("image_generation", _two_good_one_bad())
    assert list(decoded.records) == ["good one", "good two"]
    assert len(decoded.issues) == 1
    issue = decoded.issues[0]
    assert (issue.category, issue.name, issue.field) == ("image_generation", "bad one", "nsfw")
    assert "Expected `bool`" in issue.reason


def test_strict_mode_raises_with_record_and_field() -> None:
    with pytest.raises(RecordDecodeError, match="'bad one'.*'nsfw'") as info:
        decode_catalog("image_generation", _two_good_one_bad(), strict=True)
    assert (info.value.name, info.value.field) == ("bad one", "nsfw")


def test_record_that_is_not_an_object_is_skipped() -> None:
    body = b'{"x": 5, "y": {"name": "y", "baseline": "infer", "nsfw": false}}'
    decoded = decode_catalog("image_generation", body)
    assert list(decoded.records) == ["y"]
    assert decoded.issues[0].name == "x"


def test_decode_record_from_mapping_and_bytes() -> None:
    record = decode_record("text_generation", {"name": "org/m", "parameters": 7})
    assert isinstance(record, TextGenerationModelRecord)
    assert record.parameters_count == 7
    with pytest.raises(RecordDecodeError, match="parameters"):
        decode_record("text_generation", {"name": "org/m", "parameters": "seven"})
    with pytest.raises(RecordDecodeError, match="malformed JSON"):
        decode_record("text_generation", b"{")


def test_generic_record_for_categories_without_special_fields() -> None:
    record = decode_record("video_generation", {"name": "v"})
    assert isinstance(record, GenericModelRecord)
    assert record.model_classification is not None
    assert record.model_classification.domain == "video"


def test_record_types_are_the_category_names() -> None:
    assert [member.value for member in RECORD_TYPE] == [
        category.value for category in MODEL_REFERENCE_CATEGORY
    ]
    for category, record_type in MODEL_RECORD_TYPE_LOOKUP.items():
        defaults = {field.name: field.default for field in msgspec.structs.fields(record_type)}
        assert defaults["record_type"] is RECORD_TYPE(category.value)


def test_an_unknown_value_of_a_skipped_record_does_not_stay_pending() -> None:
    from horde_model_reference.registries import BASELINES

    body = {
        "bad": {"name": "bad", "baseline": "baseline_of_a_skipped_record", "nsfw": "not a bool"},
        "good": {"name": "good", "baseline": "stable_diffusion_1", "nsfw": False},
    }
    with capture_logs() as logs:
        decoded = decode_catalog("image_generation", msgspec.json.encode(body))
    assert set(decoded.records) == {"good"} and [issue.name for issue in decoded.issues] == ["bad"]
    assert BASELINES.pending() == set()
    assert not [entry for entry in logs if entry["event"] == "unknown_value"]
    later = {"later": {"name": "later", "baseline": "baseline_of_a_skipped_record", "nsfw": False}}
    with capture_logs() as logs:
        decode_catalog("image_generation", msgspec.json.encode(later))
    unknown = [(entry["value"], entry["model"]) for entry in logs if entry["event"] == "unknown_value"]
    assert unknown == [("baseline_of_a_skipped_record", "later")]


def test_unlisted_values_past_the_cache_limit_still_decode_and_memory_stays_bounded() -> None:
    from horde_model_reference._open_enum import MAX_CACHED_UNLISTED, OpenStrEnum

    class Probe(OpenStrEnum):
        listed = "listed"

    decoder = msgspec.json.Decoder(list[Probe])
    values = ["listed"] + [f"v{i}" for i in range(MAX_CACHED_UNLISTED + 100)]
    first = decoder.decode(msgspec.json.encode(values))
    again = decoder.decode(msgspec.json.encode(values))
    assert first == values and again == values
    assert all(isinstance(member, Probe) for member in again)
    assert len(Probe._value2member_map_) == 1 + MAX_CACHED_UNLISTED
    assert again[1] is first[1], "a cached unlisted value is one shared object"
    assert again[-1] is not first[-1], "past the limit each decode gets its own member"
    assert msgspec.json.decode(msgspec.json.encode(again)) == values


def test_unknown_values_are_logged_up_to_the_limit_then_once_that_it_is_reached() -> None:
    from horde_model_reference._open_enum import MAX_CACHED_UNLISTED
    from horde_model_reference.registries import _Registry

    registry = _Registry("probe", ["known"])
    with capture_logs() as logs:
        for i in range(MAX_CACHED_UNLISTED + 50):
            registry.warn_unknown(f"value-{i}", model=f"m{i}")
        registry.warn_unknown("value-0", model="again")
    events = [entry["event"] for entry in logs]
    assert events.count("unknown_value") == MAX_CACHED_UNLISTED
    assert events.count("unknown_values_limit") == 1
