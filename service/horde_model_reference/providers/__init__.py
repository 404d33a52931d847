"""Third-party sources of records ("providers") and the registry they are selected from.

See `horde_model_reference.source_consts` for source ids and selectors.
"""

from horde_model_reference.providers.base import ModelProvider
from horde_model_reference.providers.gather import SourceRead
from horde_model_reference.providers.pending import PENDING_SOURCE_ID, PendingModelProvider
from horde_model_reference.providers.registry import ModelProviderRegistry
from horde_model_reference.providers.static import StaticModelProvider
from horde_model_reference.source_consts import (
    ANY_SOURCE,
    HORDE_SOURCE_ID,
    RESERVED_SOURCE_IDS,
    SourceOutcome,
    SourceSelector,
    normalize_source_selector,
)

__all__ = [
    "ANY_SOURCE",
    "HORDE_SOURCE_ID",
    "PENDING_SOURCE_ID",
    "RESERVED_SOURCE_IDS",
    "ModelProvider",
    "ModelProviderRegistry",
    "PendingModelProvider",
    "SourceOutcome",
    "SourceRead",
    "SourceSelector",
    "StaticModelProvider",
    "normalize_source_selector",
]
