"""Upstream path `horde_model_reference.component_identity` (8.6.2): re-exports `weights.identity`."""

from horde_model_reference.weights.identity import (
    ComponentIdentitySidecar,
    EmbeddedComponentIdentity,
    ensure_sidecar,
    read_sidecar,
    sidecar_path_for,
)

__all__ = [
    "ComponentIdentitySidecar",
    "EmbeddedComponentIdentity",
    "ensure_sidecar",
    "read_sidecar",
    "sidecar_path_for",
]
