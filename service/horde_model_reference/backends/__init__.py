"""Where canonical catalogs come from: files, GitHub, a primary's HTTP API, and a Redis cache.

Every backend implements `ModelReferenceBackend` (async first). `backend_from_settings` picks the
right one for a process's mode and settings. The network backends (and httpx, redis) are imported
on first use, so importing the protocol or the filesystem backends stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, ModelReferenceBackend
from horde_model_reference.backends.filesystem import FileSystemBackend, LocalReadOnlyBackend

if TYPE_CHECKING:
    from horde_model_reference.backends.factory import backend_from_settings, seed_from_github
    from horde_model_reference.backends.github import GitHubBackend
    from horde_model_reference.backends.http import HTTPBackend
    from horde_model_reference.backends.redis import RedisBackend

__all__ = [
    "CategoryPayload",
    "FileSystemBackend",
    "GitHubBackend",
    "HTTPBackend",
    "InvalidationCallback",
    "LocalReadOnlyBackend",
    "ModelReferenceBackend",
    "RedisBackend",
    "backend_from_settings",
    "seed_from_github",
]

_LAZY = {
    "GitHubBackend": "github",
    "HTTPBackend": "http",
    "RedisBackend": "redis",
    "backend_from_settings": "factory",
    "seed_from_github": "factory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
