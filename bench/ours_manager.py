"""Probe: this project's `ModelReferenceManager` over v2 files (issue 3).

Runs under this project's interpreter (see `_probe` for the protocol). The manager is
`ModelReferenceManager(backend=FileSystemBackend(path), prefetch_strategy=PrefetchStrategy.SYNC)`
on a directory holding copies of the golden-v2 catalogs. Operations:

- `load {path}` (worker): construct the manager (a process singleton) and read every category
  once; returns the record count per category;
- `time {strategy: "get_model", category, name, timing}` (worker): warm `get_model`;
- `first_load {path}` (one shot, fresh process): import the package, construct the manager and
  read every category (`get_all_model_references()`), timing the import and the load apart.

`ref_manager.py` is its twin for the reference.
"""

from __future__ import annotations

import time
from typing import Any

from _probe import serve, time_calls

STRATEGIES = ("get_model",)
_state: dict[str, Any] = {}


def _counts(references: Any) -> dict[str, int]:
    return {getattr(c, "value", str(c)): len(r) for c, r in references.items() if r}


def load(args: dict[str, Any]) -> dict[str, Any]:
    from horde_model_reference import FileSystemBackend, ModelReferenceManager, PrefetchStrategy

    manager = ModelReferenceManager(
        backend=FileSystemBackend(args["path"]), prefetch_strategy=PrefetchStrategy.SYNC
    )
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
    from horde_model_reference import FileSystemBackend, ModelReferenceManager, PrefetchStrategy

    imported = clock()
    manager = ModelReferenceManager(
        backend=FileSystemBackend(args["path"]), prefetch_strategy=PrefetchStrategy.SYNC
    )
    references = manager.get_all_model_references()
    loaded = clock()
    return {"import_ns": imported - began, "load_ns": loaded - imported, "records": _counts(references)}


if __name__ == "__main__":
    serve({"load": load, "time": time_get_model, "first_load": first_load})
