"""Upstream module path `horde_model_reference.canonical_components`: the shareable component set.

Re-exports `weights.canonical`.
"""

from horde_model_reference.weights.canonical import (
    DEFAULT_MIN_SHARED_MODELS,
    CanonicalComponent,
    CanonicalComponentRegistry,
    CanonicalComponentSource,
    derive_canonical_registry,
)

__all__ = [
    "DEFAULT_MIN_SHARED_MODELS",
    "CanonicalComponent",
    "CanonicalComponentRegistry",
    "CanonicalComponentSource",
    "derive_canonical_registry",
]
