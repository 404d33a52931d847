"""Probe: decode golden-v2 catalogs with the reference (`horde-model-reference==8.6.2`, pydantic).

Runs under `.venv-ref`'s Python 3.12; same operations as `ours_decode.py`. Two strategies:

- `validate_json`: `TypeAdapter(dict[str, RecordType]).validate_json(bytes)`, pydantic-core
  parsing and validating in one pass (the fastest way to build the reference's records);
- `manager`: `json.loads` then `RecordType.model_validate` per record, as the reference's
  `ModelReferenceManager._file_json_dict_to_model_reference` does.

Memory is measured on the `validate_json` result (the same record objects either way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from _probe import measure_retained, serve, time_calls
from horde_model_reference import MODEL_REFERENCE_CATEGORY
from horde_model_reference.model_reference_records import MODEL_RECORD_TYPE_LOOKUP, GenericModelRecord

STRATEGIES = ("validate_json", "manager")
_decoders: dict[str, dict[str, Callable[[], object]]] = {}


def _record_type(category: str) -> type[GenericModelRecord]:
    return MODEL_RECORD_TYPE_LOOKUP.get(MODEL_REFERENCE_CATEGORY(category), GenericModelRecord)


def _adapter(category: str) -> TypeAdapter[dict[str, GenericModelRecord]]:
    return TypeAdapter(dict[str, _record_type(category)])  # type: ignore[misc]


def _manager_path(record_type: type[GenericModelRecord], data: bytes) -> dict[str, GenericModelRecord]:
    raw = json.loads(data)
    return {key: record_type.model_validate(value) for key, value in raw.items()}


def load(args: dict[str, Any]) -> dict[str, Any]:
    counts = {}
    for catalog in args["catalogs"]:
        category, data = catalog["category"], Path(catalog["path"]).read_bytes()
        adapter, record_type = _adapter(category), _record_type(category)
        decoders: dict[str, Callable[[], object]] = {
            "validate_json": lambda a=adapter, d=data: a.validate_json(d),
            "manager": lambda t=record_type, d=data: _manager_path(t, d),
        }
        sizes = {name: len(decode()) for name, decode in decoders.items()}  # type: ignore[arg-type]
        if len(set(sizes.values())) != 1:
            raise RuntimeError(f"{category}: the strategies decode different record counts: {sizes}")
        _decoders[category] = decoders
        counts[category] = sizes["validate_json"]
    return {"records": counts, "strategies": list(STRATEGIES)}


def time_decode(args: dict[str, Any]) -> dict[str, Any]:
    return time_calls(_decoders[args["category"]][args["strategy"]], **args.get("timing", {}))


def memory(args: dict[str, Any]) -> dict[str, Any]:
    category, data = args["category"], Path(args["path"]).read_bytes()
    adapter = _adapter(category)
    adapter.validate_json(data)  # builds pydantic's validators: not part of the records' memory
    records, figures = measure_retained(lambda: adapter.validate_json(data))
    assert isinstance(records, dict)
    return {**figures, "records": len(records)}


if __name__ == "__main__":
    serve({"load": load, "time": time_decode, "memory": memory})
