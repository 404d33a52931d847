"""Third-party services the reference talks to: the AI-Horde public API (live usage)."""

from horde_model_reference.integrations.horde_api import (
    DEFAULT_HORDE_API_URL,
    CircuitBreaker,
    HordeApiClient,
    HordeApiError,
    HordeApiUnavailable,
)
from horde_model_reference.integrations.popularity import (
    ModelUsage,
    PopularityMixin,
    PopularityService,
    PopularModel,
    SortKey,
)

__all__ = [
    "DEFAULT_HORDE_API_URL",
    "CircuitBreaker",
    "HordeApiClient",
    "HordeApiError",
    "HordeApiUnavailable",
    "ModelUsage",
    "PopularModel",
    "PopularityMixin",
    "PopularityService",
    "SortKey",
]
