"""`ModelReferenceManager`: the consumer API (engine, sync and async reads, typed properties, warm-up)."""

from horde_model_reference.manager.api import ModelReferenceManager, validate_model_name
from horde_model_reference.manager.prefetch import DeferredPrefetchHandle, PrefetchStrategy

__all__ = ["DeferredPrefetchHandle", "ModelReferenceManager", "PrefetchStrategy", "validate_model_name"]
