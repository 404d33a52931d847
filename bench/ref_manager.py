"""Probe: the reference's `ModelReferenceManager` (`horde-model-reference==8.6.2`) over local files.

Runs under `.venv-ref`'s Python 3.12; same operations as `ours_manager.py`. The manager runs in the
mode that reads local files and never downloads: `ModelReferenceManager(base_path=path,
offline=True, prefetch_strategy=PrefetchStrategy.SYNC)`, which uses its `LocalReadOnlyBackend`
(v2 files straight in `base_path`, named as its category descriptors say: `stable_diffusion.json`,
`text_generation.json`, ... the golden-v2 layout). Its warm `get_model` is what a worker calls: it
asks the backend whether each category needs a refresh (a TTL and mtime check), then looks the
name up in the cached pydantic records.
"""

from __future__ import annotations

import time
from typing import Any

from _probe import serve, time_calls

STRATEGIES = ("get_model",)
_state: dict[str, Any] = {}


def _counts(references: Any) -> dict[str, int]:
    return {getattr(c, "value", str(c)): len(r) for c, r in references.items() if r}


def _construct(path: str) -> Any:
    from horde_model_reference.model_reference_manager import ModelReferenceManager, PrefetchStrategy

    return ModelReferenceManager(base_path=path, offline=True, prefetch_strategy=PrefetchStrategy.SYNC)


def load(args: dict[str, Any]) -> dict[str, Any]:
    manager = _construct(args["path"])
    _state["manager"] = manager
    return {"records": _counts(manager.get_all_model_references()), "strategies": list(STRATEGIES)}


def time_get_model(args: dict[str, Any]) -> dict[str, Any]:
    from horde_model_reference import MODEL_REFERENCE_CATEGORY

    if args["strategy"] != "get_model":
        raise ValueError(f"unknown strategy {args['strategy']!r}")
    manager = _state["manager"]
    category, name = MODEL_REFERENCE_CATEGORY(args["category"]), args["name"]
    record = manager.get_model(category, name)
    if record.name != name:
        raise RuntimeError(f"get_model({name!r}) returned {record.name!r}")
    return time_calls(lambda: manager.get_model(category, name), **args.get("timing", {}))


def first_load(args: dict[str, Any]) -> dict[str, Any]:
    clock = time.perf_counter_ns
    began = clock()
    from horde_model_reference.model_reference_manager import ModelReferenceManager  # noqa: F401

    imported = clock()
    references = _construct(args["path"]).get_all_model_references()
    loaded = clock()
    return {"import_ns": imported - began, "load_ns": loaded - imported, "records": _counts(references)}


if __name__ == "__main__":
    serve({"load": load, "time": time_get_model, "first_load": first_load})
