"""Probe: this project's query builder and provider merge (issue 4).

Runs under this project's interpreter (see `_probe`). Operations (worker):

- `load {path, providers, delay_s, timeout_s}`: construct the manager on `path` (copies of the
  golden-v2 catalogs) with `provider_timeout=timeout_s`, and register `providers` providers
  (`slow0`, `slow1`, ...) whose `fetch_category_async` sleeps `delay_s` and then returns two
  image_generation records of their own, plus one provider (`hang`) that never answers;
- `time {strategy: "query", timing}`: the warm canonical query
  `query(image_generation).where(baseline="stable_diffusion_xl").exclude_nsfw().to_list()`;
- `merge {reads, hang}`: `reads` merged reads `query(image_generation, source=[...]).to_list()`
  over "horde" and the slow providers (with `hang`, the last slow one is replaced by the hanging
  one); returns the wall time of each read and what the read saw.

`ref_query.py` is its twin for the reference.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set
from typing import Any

import anyio
import msgspec

from _probe import serve, time_calls
from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    FileSystemBackend,
    GenericModelRecord,
    ModelProvider,
    ModelReferenceManager,
    PrefetchStrategy,
)

STRATEGIES = ("query",)
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
_state: dict[str, Any] = {}


class SlowProvider(ModelProvider):
    """Answers after `delay` seconds (asynchronously, as a network source would)."""

    def __init__(self, source_id: str, records: Mapping[str, GenericModelRecord], delay: float) -> None:
        self._source_id, self._records, self._delay = source_id, records, delay

    @property
    def source_id(self) -> str:
        return self._source_id

    def provided_categories(self) -> Set[MODEL_REFERENCE_CATEGORY]:
        return {IMAGE}

    def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        time.sleep(self._delay)
        return self._records

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        await anyio.sleep(self._delay)
        return self._records


class HangingProvider(SlowProvider):
    """Never answers (until cancelled by the reader's timeout)."""

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> Mapping[str, GenericModelRecord] | None:
        await anyio.sleep_forever()
        return None


def canonical_query(manager: ModelReferenceManager) -> list[Any]:
    return manager.query(IMAGE).where(baseline="stable_diffusion_xl").exclude_nsfw().to_list()


def load(args: dict[str, Any]) -> dict[str, Any]:
    manager = ModelReferenceManager(
        backend=FileSystemBackend(args["path"]),
        prefetch_strategy=PrefetchStrategy.SYNC,
        provider_timeout=args["timeout_s"],
    )
    canonical = manager.get_model_reference(IMAGE)
    templates = list(canonical.values())[:2]
    slow_ids = []
    for index in range(args["providers"]):
        source_id = f"slow{index}"
        records = {
            f"{source_id} {t.name}": msgspec.structs.replace(t, name=f"{source_id} {t.name}")
            for t in templates
        }
        manager.register_provider(SlowProvider(source_id, records, args["delay_s"]))
        slow_ids.append(source_id)
    manager.register_provider(HangingProvider("hang", {}, args["delay_s"]))
    _state.update(manager=manager, slow_ids=slow_ids, canonical=len(canonical))
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
    manager, slow_ids = _state["manager"], _state["slow_ids"]
    selector = ["horde", *slow_ids[:-1], "hang"] if args["hang"] else ["horde", *slow_ids]
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
