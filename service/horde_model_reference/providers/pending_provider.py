"""Upstream's module path for the pending (beta) provider; the class is `providers/pending.py`'s own.

It takes upstream's arguments (`primary_api_url`, `apikey`, `categories`, `cache_ttl_seconds`,
`timeout_seconds`, `retry_max_attempts`, `retry_backoff_seconds`).
"""

from horde_model_reference.providers.pending import PENDING_SOURCE_ID, PendingModelProvider

__all__ = ["PENDING_SOURCE_ID", "PendingModelProvider"]
