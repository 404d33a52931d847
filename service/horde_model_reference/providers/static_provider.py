"""Upstream's module path for `StaticModelProvider` (the class is `providers/static.py`'s own)."""

from horde_model_reference.providers.static import StaticModelProvider

__all__ = ["StaticModelProvider"]
