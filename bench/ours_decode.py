"""Probe: decode golden-v2 catalogs with this project (`horde_model_reference.decode_catalog`).

Runs under this project's interpreter (see `_probe` for the protocol). Operations:

- `load {catalogs: [{category, path}]}`: read the files, decode each once; returns record counts;
- `time {category, strategy, timing}`: time one full decode of a loaded catalog (`_probe.time_calls`);
  strategy `scan_floor` times msgspec reading the same bytes while building almost nothing (one
  Struct with only `name` per record): the floor under any msgspec decode of these bytes;
- `memory {category, path}` (one shot, fresh process): bytes the decoded records retain.

`ref_decode.py` is its twin for the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from _probe import measure_retained, serve, time_calls
from horde_model_reference import decode_catalog

STRATEGIES = ("decode_catalog",)
_loaded: dict[str, bytes] = {}


class _NameOnly(msgspec.Struct, gc=False):
    name: str


_SCAN = msgspec.json.Decoder(dict[str, _NameOnly])


def _decode(category: str, data: bytes) -> dict[str, Any]:
    return decode_catalog(category, data).records


def load(args: dict[str, Any]) -> dict[str, Any]:
    counts = {}
    for catalog in args["catalogs"]:
        category, data = catalog["category"], Path(catalog["path"]).read_bytes()
        decoded = decode_catalog(category, data)
        if decoded.issues:
            raise RuntimeError(f"{category}: {len(decoded.issues)} records skipped: {decoded.issues[:3]}")
        _loaded[category] = data
        counts[category] = len(decoded.records)
    return {"records": counts, "strategies": list(STRATEGIES)}


def time_decode(args: dict[str, Any]) -> dict[str, Any]:
    category, data = args["category"], _loaded[args["category"]]
    if args["strategy"] == "scan_floor":
        return time_calls(lambda: _SCAN.decode(data), **args.get("timing", {}))
    if args["strategy"] != "decode_catalog":
        raise ValueError(f"unknown strategy {args['strategy']!r}")
    return time_calls(lambda: _decode(category, data), **args.get("timing", {}))


def memory(args: dict[str, Any]) -> dict[str, Any]:
    category, data = args["category"], Path(args["path"]).read_bytes()
    _decode(category, data)  # builds and caches the decoder: not part of the records' memory
    records, figures = measure_retained(lambda: _decode(category, data))
    assert isinstance(records, dict)
    return {**figures, "records": len(records)}


if __name__ == "__main__":
    serve({"load": load, "time": time_decode, "memory": memory})
