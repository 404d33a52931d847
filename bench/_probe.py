"""Measurement primitives shared by the probe scripts (`ours_*.py`, `ref_*.py`).

Probe scripts run in subprocesses, under either interpreter: ours (.venv, Python 3.11) or the
reference's (.venv-ref, Python 3.12). This module is therefore standard library only and must not
import anything from either project.

A probe script defines operations (`op name -> function(args) -> dict`) and calls `serve(ops)`.
It is started in one of two ways (`_common.run_probe` / `_common.Worker` do this):

- one shot: `python probe.py '{"op": "memory", ...}'` runs one operation and prints its result as
  the last line of stdout (used where a fresh process matters, e.g. memory);
- worker: `python probe.py --serve` reads one JSON request per line on stdin and answers each
  with one line on stdout starting with `MARK` (used to interleave ours and the baseline in short
  blocks, so that the noise of a shared machine hits both alike).
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from typing import Any

__all__ = ["MARK", "measure_retained", "serve", "time_calls"]

MARK = "@@hmr-bench "
Op = Callable[[dict[str, Any]], dict[str, Any]]


def _answer(result: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def serve(ops: dict[str, Op]) -> None:
    """Run as a one-shot probe (`argv[1]` is the request) or as a worker (`--serve`)."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} REQUEST_JSON | --serve")
    if sys.argv[1] != "--serve":
        request = json.loads(sys.argv[1])
        _answer(ops[request.pop("op")](request))
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            result = ops[request.pop("op")](request)
        except Exception:  # report to the parent, keep serving
            result = {"error": traceback.format_exc()}
        _answer(result)


def time_calls(
    fn: Callable[[], object],
    *,
    warmups: int = 2,
    min_repeats: int = 5,
    max_repeats: int = 200,
    budget_s: float = 0.1,
    min_sample_ns: int = 1_000_000,
) -> dict[str, Any]:
    """Time `fn()`; returns per-call samples in nanoseconds and their median.

    `warmups` calls are made and discarded first. Each sample times `number` back-to-back calls
    with `time.perf_counter_ns` (`number` is chosen so that a sample lasts at least
    `min_sample_ns`) and is divided by `number`. The results are held until the sample ends and
    freeing them is timed apart (`free_median_ns`, per call): production code keeps a decoded
    catalog and frees the previous one later. Sampling continues until `budget_s` is spent,
    with at least `min_repeats` and at most `max_repeats` samples. The garbage collector stays
    enabled (as in production): the median absorbs the occasional collection.
    """
    clock = time.perf_counter_ns
    for _ in range(max(1, warmups)):
        fn()
    once = min(_once(fn, clock) for _ in range(2))
    number = max(1, math.ceil(min_sample_ns / once))

    samples: list[float] = []
    frees: list[float] = []
    budget_ns = int(budget_s * 1e9)
    began = clock()
    keep: list[object] = []
    while len(samples) < max_repeats:
        start = clock()
        for _ in range(number):
            keep.append(fn())
        stop = clock()
        keep.clear()  # freeing the results is timed apart: a decode, not a decode + free
        frees.append((clock() - stop) / number)
        samples.append((stop - start) / number)
        if len(samples) >= min_repeats and clock() - began >= budget_ns:
            break
    return {
        "median_ns": statistics.median(samples),
        "free_median_ns": statistics.median(frees),
        "number": number,
        "samples_ns": samples,
    }


def _once(fn: Callable[[], object], clock: Callable[[], int]) -> int:
    start = clock()
    fn()
    return max(1, clock() - start)


def measure_retained(make: Callable[[], object], *, top: int = 5) -> tuple[object, dict[str, Any]]:
    """Bytes still allocated after `make()` returns, while its result is held (tracemalloc).

    Call `make()` once before this (and drop the result) so that one-time costs such as
    building decoders or importing lazily are not counted. A `gc.collect()` runs before the
    first snapshot and after `make()`, so only memory reachable from the result (and caches it
    filled) remains. Returns the result (keep it alive) and the figures: `retained_bytes`,
    `peak_bytes` (the high-water mark during `make()` above the starting point) and the `top`
    allocation sites of the retained memory.
    """
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.take_snapshot()
        tracemalloc.reset_peak()
        current_start, _ = tracemalloc.get_traced_memory()
        result = make()
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    by_line = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    sites = [
        {
            "where": f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}",
            "bytes": stat.size_diff,
            "blocks": stat.count_diff,
        }
        for stat in sorted(by_line, key=lambda s: s.size_diff, reverse=True)[:top]
    ]
    retained = sum(stat.size_diff for stat in by_line)
    return result, {"retained_bytes": retained, "peak_bytes": peak - current_start, "top_sites": sites}
