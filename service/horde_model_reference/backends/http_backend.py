"""Upstream's module path: `HTTPBackend` with upstream's constructor (see `compat/upstream_backends.py`)."""

from horde_model_reference.compat.upstream_backends import HTTPBackend

__all__ = ["HTTPBackend"]
