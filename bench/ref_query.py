"""Probe: the reference's query builder and provider merge (`horde-model-reference==8.6.2`).

Runs under `.venv-ref`'s Python 3.12; same operations as `ours_query.py`, on the reference's
`ModelReferenceManager(base_path=path, offline=True, prefetch_strategy=SYNC)`. Its providers sleep
`delay_s` in both `fetch_category` and `fetch_category_async`; its merged read
(`query(category, source=[...])`) calls them one after the other (it has no concurrency and no
timeout), so there is no hanging-provider case here: a provider that never answers blocks the
reference's read forever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _probe import serve, time_calls
from horde_model_reference import MODEL_REFERENCE_CATEGORY
from horde_model_reference.model_reference_manager import ModelReferenceManager, PrefetchStrategy
from horde_model_reference.model_reference_records import GenericModelRecord
from horde_model_reference.providers import ModelProvider

STRATEGIES = ("query",)
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
_state: dict[str, Any] = {}


class SlowProvider(ModelProvider):
    """Answers after `delay` seconds."""

    def __init__(self, source_id: str, records: dict[str, GenericModelRecord], delay: float) -> None:
        self._source_id, self._records, self._delay = source_id, records, delay

    @property
    def source_id(self) -> str:
        return self._source_id

    def provided_categories(self) -> set[MODEL_REFERENCE_CATEGORY | str]:
        return {IMAGE}

    def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY | str, *, force_refresh: bool = False
    ) -> dict[str, GenericModelRecord] | None:
        time.sleep(self._delay)
        return self._records

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY | str, *, force_refresh: bool = False
    ) -> dict[str, GenericModelRecord] | None:
        await asyncio.sleep(self._delay)
        return self._records


def canonical_query(manager: ModelReferenceManager) -> list[Any]:
    return manager.query(IMAGE).where(baseline="stable_diffusion_xl").exclude_nsfw().to_list()


def load(args: dict[str, Any]) -> dict[str, Any]:
    manager = ModelReferenceManager(
        base_path=args["path"], offline=True, prefetch_strategy=PrefetchStrategy.SYNC
    )
    canonical = manager.get_model_reference(IMAGE)
    templates = list(canonical.values())[:2]
    slow_ids = []
    for index in range(args["providers"]):
        source_id = f"slow{index}"
        records = {
            f"{source_id} {t.name}": t.model_copy(update={"name": f"{source_id} {t.name}"}) for t in templates
        }
        manager.register_provider(SlowProvider(source_id, records, args["delay_s"]))
        slow_ids.append(source_id)
    _state.update(manager=manager, slow_ids=slow_ids)
    return {
        "results": len(canonical_query(manager)),
        "canonical": len(canonical),
        "strategies": list(STRATEGIES),
    }


def time_query(args: dict[str, Any]) -> dict[str, Any]:
    if args["strategy"] != "query":
        raise ValueError(f"unknown strategy {args['strategy']!r}")
    manager = _state["manager"]
    return time_calls(lambda: canonical_query(manager), **args.get("timing", {}))


def merge(args: dict[str, Any]) -> dict[str, Any]:
    if args["hang"]:
        raise ValueError("the reference has no provider timeout: a hanging provider blocks its read forever")
    manager, slow_ids = _state["manager"], _state["slow_ids"]
    selector = ["horde", *slow_ids]
    times, records, status = [], 0, {}
    for _ in range(args["reads"]):
        began = time.perf_counter_ns()
        query = manager.query(IMAGE, source=selector)
        records = len(query.to_list())
        times.append(time.perf_counter_ns() - began)
        status = dict(query.source_status())
    return {"times_ns": times, "records": records, "status": status, "selector": selector}


if __name__ == "__main__":
    serve({"load": load, "time": time_query, "merge": merge})
