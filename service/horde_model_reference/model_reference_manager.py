"""Upstream's module path for the manager: `ModelReferenceManager`, `PrefetchStrategy`,
`DeferredPrefetchHandle`. The classes are `manager/`'s own (no wrapper: the hot path is the same).

Upstream's module also held the backend classes and `MODEL_RECORD_TYPE_LOOKUP` at module level,
and consumers import `GitHubBackend` from here: those resolve on first use (the backends with
upstream's constructors, `compat/upstream_backends.py`), so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from horde_model_reference.manager import DeferredPrefetchHandle, ModelReferenceManager, PrefetchStrategy

if TYPE_CHECKING:
    from horde_model_reference.compat.upstream_backends import (
        FileSystemBackend,
        GitHubBackend,
        HTTPBackend,
        LocalReadOnlyBackend,
    )
    from horde_model_reference.records import MODEL_RECORD_TYPE_LOOKUP

__all__ = [
    "MODEL_RECORD_TYPE_LOOKUP",
    "DeferredPrefetchHandle",
    "FileSystemBackend",
    "GitHubBackend",
    "HTTPBackend",
    "LocalReadOnlyBackend",
    "ModelReferenceManager",
    "PrefetchStrategy",
]

_LAZY = {
    "FileSystemBackend": "horde_model_reference.compat.upstream_backends",
    "GitHubBackend": "horde_model_reference.compat.upstream_backends",
    "HTTPBackend": "horde_model_reference.compat.upstream_backends",
    "LocalReadOnlyBackend": "horde_model_reference.compat.upstream_backends",
    "MODEL_RECORD_TYPE_LOOKUP": "horde_model_reference.records",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
