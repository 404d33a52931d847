"""Upstream 8.6.2's `horde_model_reference.integrations.data_merger` names, resolving to this package's types.

`ModelReferenceManager.get_popular_models` returns `PopularModelResult`s; here that is
`integrations.popularity.PopularModel`, so `isinstance(result, PopularModelResult)` holds for
what the manager returns. It has upstream's three fields with these differences:

- `record` is the record itself (a `GenericModelRecord` subclass), not a dict; upstream's dict
  is `result.record.model_dump(mode="json", exclude_none=True)`.
- `stats` is a `ModelUsage` (upstream `CombinedModelStatistics`): the same `worker_count`,
  `queued_jobs`, `performance`, `eta`, `queued`, `usage_stats`, `worker_summaries` and
  `observed_at`, plus `stale`; there are no `backend_variations`.

Upstream's merge functions (`merge_model_with_horde_data`, `merge_category_with_horde_data`)
are not provided: `integrations.popularity.PopularityService.rank` does the joining.
"""

from __future__ import annotations

from horde_model_reference.integrations.popularity import ModelUsage, PopularModel, UsageStats, WorkerSummary

__all__ = ["CombinedModelStatistics", "PopularModelResult", "UsageStats", "WorkerSummary"]

PopularModelResult = PopularModel
"""A model with its live Horde usage: `name`, `record`, `stats` (see the module docstring)."""

CombinedModelStatistics = ModelUsage
"""A model's live Horde figures (upstream's name for `ModelUsage`)."""
