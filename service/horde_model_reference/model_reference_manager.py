"""Upstream's module path for the manager: `ModelReferenceManager`, `PrefetchStrategy`,
`DeferredPrefetchHandle`. The classes are `manager/`'s own (no wrapper: the hot path is the same).
"""

from horde_model_reference.manager import DeferredPrefetchHandle, ModelReferenceManager, PrefetchStrategy

__all__ = ["DeferredPrefetchHandle", "ModelReferenceManager", "PrefetchStrategy"]
