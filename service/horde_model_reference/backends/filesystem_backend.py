"""Upstream's module path: `FileSystemBackend` with upstream's constructor (see `compat/upstream_backends.py`)."""

from horde_model_reference.compat.upstream_backends import FileSystemBackend

__all__ = ["FileSystemBackend"]
