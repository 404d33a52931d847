"""Where canonical catalogs come from: files, GitHub, a primary's HTTP API, and a Redis cache.

Every backend implements `ModelReferenceBackend` (async first). `backend_from_settings` picks the
right one for a process's mode and settings.
"""

from __future__ import annotations

from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, ModelReferenceBackend
from horde_model_reference.backends.factory import backend_from_settings, seed_from_github
from horde_model_reference.backends.filesystem import FileSystemBackend, LocalReadOnlyBackend
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
