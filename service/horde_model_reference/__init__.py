"""horde_model_reference: the AI-Horde model reference, kept in sync over an event bus.

The names today's `horde_model_reference` (8.x) exports from its root resolve here too (`compat`);
`horde_model_reference_settings`, `ai_horde_worker_settings`, `horde_model_reference_paths`,
`BASE_PATH` and `LEGACY_REFERENCE_FOLDER` are built from the environment on first access.
"""

from horde_model_reference.backends.base import CategoryPayload, ModelReferenceBackend
from horde_model_reference.backends.filesystem import FileSystemBackend, LocalReadOnlyBackend
from horde_model_reference.cache import CategorySnapshot, ChangeNotice
from horde_model_reference.catalog import (
    DecodedCatalog,
    RecordIssue,
    catalog_digest,
    decode_catalog,
    decode_record,
    encode_catalog,
)
from horde_model_reference.categories import (
    MODEL_DOMAIN,
    MODEL_PURPOSE,
    MODEL_REFERENCE_CATEGORY,
    RECORD_TYPE,
    CategoryDescriptor,
    ModelClassification,
    parse_category,
)

# Upstream's root names (after the star imports: where a name exists in both, upstream's behaviour wins).
from horde_model_reference.compat.image_baseline import (
    BaselineCapabilities,
    HordeBaselinePolicy,
    ImageBaselineCatalog,
    ImageBaselineChangeSet,
    ImageBaselineRecord,
)
from horde_model_reference.compat.meta_consts import (
    KNOWN_TAGS,
    MODEL_CLASSIFICATION_LOOKUP,
    category_folder,
    get_all_registered_baselines,
    get_all_registered_categories,
    get_baseline_descriptor,
    get_baseline_native_resolution,
    get_category_descriptor,
    get_known_tags,
    get_weights_marker_folders,
    is_known_image_baseline,
    register_category,
    register_image_baseline,
    register_image_baselines_from_catalog,
)
from horde_model_reference.compat.model_reference_records import get_record_type_for_category
from horde_model_reference.compat.settings import (
    DEFAULT_SHOWCASE_FOLDER_NAME,
    GITHUB_IMAGE_REPO_NAME,
    GITHUB_REPO_BRANCH,
    GITHUB_REPO_OWNER,
    GITHUB_TEXT_REPO_NAME,
    GithubRepoSettings,
    ImageGithubRepoSettings,
    RedisSettings,
    TextGithubRepoSettings,
    lazy_attribute,
)
from horde_model_reference.compat.text_backend_names import (
    get_model_name_variants,
    has_legacy_text_backend_prefix,
    strip_backend_prefix,
)
from horde_model_reference.errors import (
    BackendError,
    BusNoDataError,
    CatalogDecodeError,
    CategoryNotFoundError,
    ConflictError,
    InvalidModelNameError,
    ModelNotFoundError,
    ModelReferenceError,
    RecordDecodeError,
    SettingsError,
    UnknownCategoryError,
)
from horde_model_reference.integrations.data_merger import PopularModelResult
from horde_model_reference.licensing import (
    LicenseAssignment,
    LicensedAsset,
    LicensedAssetKind,
    LicenseDefinition,
    LicenseEvidence,
    LicenseObligation,
    ModelLicensing,
    PermissionStatus,
    unknown_model_licensing,
)
from horde_model_reference.manager.api import ModelReferenceManager
from horde_model_reference.manager.prefetch import DeferredPrefetchHandle, PrefetchStrategy
from horde_model_reference.providers import *  # noqa: F403
from horde_model_reference.providers import __all__ as _providers_all
from horde_model_reference.query import *  # noqa: F403
from horde_model_reference.query import __all__ as _query_all
from horde_model_reference.records import *  # noqa: F403
from horde_model_reference.records import __all__ as _records_all
from horde_model_reference.registries import (
    CONTROLNET_STYLE,
    KNOWN_IMAGE_GENERATION_BASELINE,
    MODEL_STYLE,
    TEXT_BACKENDS,
    BaselineDescriptor,
    is_known_controlnet_style,
    is_known_model_style,
    is_known_text_backend,
    normalize_image_baseline,
    register_controlnet_style,
    register_model_style,
    register_text_backend,
)
from horde_model_reference.settings import (
    HordeModelReferenceSettings,
    ReplicateMode,
    check_settings,
    load_settings,
)
from horde_model_reference.weights.download import (
    DownloadOutcome,
    download_file,
    download_record_files,
    md5_of,
    sha256_of,
)
from horde_model_reference.weights.kinds import COMPONENT_PURPOSE_FOLDERS, component_relative_path
from horde_model_reference.weights.layout import (
    PresenceSummary,
    file_paths_for,
    free_bytes_for,
    is_present,
    presence_summary,
    resolve_weights_root,
)

__all__ = [
    "DEFAULT_SHOWCASE_FOLDER_NAME",
    "GITHUB_IMAGE_REPO_NAME",
    "GITHUB_REPO_BRANCH",
    "GITHUB_REPO_OWNER",
    "GITHUB_TEXT_REPO_NAME",
    "GithubRepoSettings",
    "ImageGithubRepoSettings",
    "RedisSettings",
    "TextGithubRepoSettings",
    "KNOWN_TAGS",
    "MODEL_CLASSIFICATION_LOOKUP",
    "BaselineCapabilities",
    "HordeBaselinePolicy",
    "ImageBaselineCatalog",
    "ImageBaselineChangeSet",
    "ImageBaselineRecord",
    "category_folder",
    "get_all_registered_baselines",
    "get_all_registered_categories",
    "get_baseline_descriptor",
    "get_baseline_native_resolution",
    "get_known_tags",
    "get_model_name_variants",
    "get_record_type_for_category",
    "get_weights_marker_folders",
    "has_legacy_text_backend_prefix",
    "is_known_image_baseline",
    "register_category",
    "register_image_baseline",
    "register_image_baselines_from_catalog",
    "strip_backend_prefix",
    "MODEL_DOMAIN",
    "MODEL_PURPOSE",
    "MODEL_REFERENCE_CATEGORY",
    "RECORD_TYPE",
    "BackendError",
    "CatalogDecodeError",
    "CategoryDescriptor",
    "CategoryPayload",
    "CategorySnapshot",
    "ChangeNotice",
    "DeferredPrefetchHandle",
    "FileSystemBackend",
    "HordeModelReferenceSettings",
    "LocalReadOnlyBackend",
    "ModelReferenceBackend",
    "ModelReferenceManager",
    "PrefetchStrategy",
    "ReplicateMode",
    "check_settings",
    "load_settings",
    "BusNoDataError",
    "CategoryNotFoundError",
    "ConflictError",
    "DecodedCatalog",
    "InvalidModelNameError",
    "ModelClassification",
    "ModelNotFoundError",
    "ModelReferenceError",
    "RecordDecodeError",
    "RecordIssue",
    "SettingsError",
    "UnknownCategoryError",
    "catalog_digest",
    "decode_catalog",
    "decode_record",
    "encode_catalog",
    "get_category_descriptor",
    "parse_category",
    *_providers_all,
    *_query_all,
    *_records_all,
    "CONTROLNET_STYLE",
    "KNOWN_IMAGE_GENERATION_BASELINE",
    "MODEL_STYLE",
    "TEXT_BACKENDS",
    "BaselineDescriptor",
    "is_known_controlnet_style",
    "is_known_model_style",
    "is_known_text_backend",
    "normalize_image_baseline",
    "register_controlnet_style",
    "register_model_style",
    "register_text_backend",
    "COMPONENT_PURPOSE_FOLDERS",
    "PresenceSummary",
    "component_relative_path",
    "file_paths_for",
    "free_bytes_for",
    "is_present",
    "presence_summary",
    "resolve_weights_root",
    "LicenseAssignment",
    "LicenseDefinition",
    "LicenseEvidence",
    "LicenseObligation",
    "LicensedAsset",
    "LicensedAssetKind",
    "ModelLicensing",
    "PermissionStatus",
    "PopularModelResult",
    "unknown_model_licensing",
    "DownloadOutcome",
    "download_file",
    "download_record_files",
    "md5_of",
    "sha256_of",
]


def __getattr__(name: str) -> object:
    """Upstream's process-wide settings objects, built on first access (see `compat.settings`)."""
    return lazy_attribute(__name__, name)
