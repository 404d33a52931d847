"""horde_model_reference: the AI-Horde model reference, kept in sync over an event bus."""

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
    get_category_descriptor,
    parse_category,
)
from horde_model_reference.errors import (
    BackendError,
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
from horde_model_reference.manager.api import ModelReferenceManager
from horde_model_reference.manager.prefetch import DeferredPrefetchHandle, PrefetchStrategy
from horde_model_reference.providers import *  # noqa: F403
from horde_model_reference.providers import __all__ as _providers_all
from horde_model_reference.query import *  # noqa: F403
from horde_model_reference.query import __all__ as _query_all
from horde_model_reference.records import *  # noqa: F403
from horde_model_reference.records import __all__ as _records_all
from horde_model_reference.registries import *  # noqa: F403
from horde_model_reference.registries import __all__ as _registries_all
from horde_model_reference.settings import (
    HordeModelReferenceSettings,
    ReplicateMode,
    check_settings,
    load_settings,
)

__all__ = [
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
    *_registries_all,
]
