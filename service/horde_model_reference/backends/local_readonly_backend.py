"""Upstream's module path: `LocalReadOnlyBackend` with upstream's constructor (see `compat/upstream_backends.py`)."""

from horde_model_reference.compat.upstream_backends import LocalReadOnlyBackend

__all__ = ["LocalReadOnlyBackend"]
