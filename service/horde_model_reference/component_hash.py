"""Upstream path `horde_model_reference.component_hash` (8.6.2): re-exports `weights.component_hash`.

Difference from upstream: the `session` of the `*_url` functions and `HttpRangeRegionReader` is an
`httpx.Client`, not a `requests.Session`.
"""

from horde_model_reference.weights.component_hash import (
    ComponentKind,
    ComponentTensor,
    HttpRangeRegionReader,
    LocalFileRegionReader,
    NoComponentTensorsError,
    RangeNotSupportedError,
    RegionReader,
    UnsupportedContainerError,
    component_kind_for_purpose,
    extract_embedded_vae,
    extract_embedded_vae_file,
    hash_embedded_component,
    hash_embedded_component_file,
    hash_embedded_component_url,
    hash_standalone_component,
    hash_standalone_component_file,
    hash_standalone_component_url,
)

__all__ = [
    "ComponentKind",
    "ComponentTensor",
    "HttpRangeRegionReader",
    "LocalFileRegionReader",
    "NoComponentTensorsError",
    "RangeNotSupportedError",
    "RegionReader",
    "UnsupportedContainerError",
    "component_kind_for_purpose",
    "extract_embedded_vae",
    "extract_embedded_vae_file",
    "hash_embedded_component",
    "hash_embedded_component_file",
    "hash_embedded_component_url",
    "hash_standalone_component",
    "hash_standalone_component_file",
    "hash_standalone_component_url",
]
