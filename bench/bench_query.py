"""query: warm canonical query and the provider merge (issue 4; goals >= 20x, merge < 1.3x slowest provider).

Both sides read their own temporary COPY of the golden-v2 catalogs (made at run time), through
their `ModelReferenceManager` (ours over `FileSystemBackend`, the reference offline over local
files), with 10 providers registered, each answering after 50 ms with two image_generation records
of its own (see ours_query.py / ref_query.py).

- canonical query, warm: `query(image_generation).where(baseline="stable_diffusion_xl")
  .exclude_nsfw().to_list()` (canonical data only), one worker per side alternated in short
  blocks (`time_interleaved`); goal >= 20x;
- merge: `query(image_generation, source=["horde", 10 providers]).to_list()`, wall time per read.
  Goal (absolute): under 1.3x the slowest provider, i.e. <= 65 ms. The reference reads its
  providers one after the other (about 10 x 50 ms): its figure is the baseline of the ratio;
- one provider hanging (of the 10; provider timeout 0.2 s): the read must cost no more than the
  timeout, i.e. at most the timeout plus the read without the hanging provider (measured in the
  same run); the hanging provider must show as "error". The reference has no provider timeout (a
  hanging provider blocks its read forever), so this row has no baseline.
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

from _common import Context, Row, TimedCase, Worker, log, time_interleaved
from _fixtures import catalog_copy

QUERY_GOAL = 20.0
PROVIDERS = 10
DELAY_S = 0.05
TIMEOUT_S = 0.2
MERGE_LIMIT = 1.3 * DELAY_S


def _load(worker: Worker, path: str) -> dict[str, Any]:
    return worker.call("load", path=path, providers=PROVIDERS, delay_s=DELAY_S, timeout_s=TIMEOUT_S)


def _merge(worker: Worker, reads: int, *, hang: bool, expect: int) -> list[float]:
    answer = worker.call("merge", reads=reads, hang=hang)
    status = answer["status"]
    failed = sorted(s for s, outcome in status.items() if outcome == "error")
    if failed != (["hang"] if hang else []) or answer["records"] != expect:
        raise RuntimeError(f"merge (hang={hang}) saw {answer['records']} records, status {status}")
    return [float(t) for t in answer["times_ns"]]


def run(ctx: Context) -> list[Row]:
    with contextlib.ExitStack() as stack:
        ours_dir = stack.enter_context(catalog_copy(ctx, "query-ours"))
        ours = stack.enter_context(ctx.ours_worker("ours_query.py"))
        ref = ctx.ref_worker("ref_query.py")
        loaded = {"ours": _load(ours, str(ours_dir))}
        if ref is not None:
            stack.enter_context(ref)
            loaded["ref"] = _load(ref, str(stack.enter_context(catalog_copy(ctx, "query-ref"))))
            for key in ("results", "canonical"):
                if loaded["ours"][key] != loaded["ref"][key]:
                    raise RuntimeError(f"ours and the reference differ: {loaded}")
        results = loaded["ours"]["results"]
        case = TimedCase(
            name=f"canonical query warm ({results} of {loaded['ours']['canonical']} image records)",
            ours={s: {} for s in loaded["ours"]["strategies"]},
            ref={s: {} for s in loaded["ref"]["strategies"]} if ref else {},
        )
        [timed] = time_interleaved(ctx, "query", ours, ref, [case])

        # The merge: every provider adds 2 records to the canonical ones.
        merged = loaded["ours"]["canonical"] + 2 * PROVIDERS
        hung = merged - 2
        blocks = 1 if ctx.quick else 3
        _merge(ours, 1, hang=False, expect=merged)  # warm-up (loop thread, worker threads)
        _merge(ours, 1, hang=True, expect=hung)
        if ref is not None:
            _merge(ref, 1, hang=False, expect=merged)
        ours_merge: list[float] = []
        ours_hang: list[float] = []
        ref_merge: list[float] = []
        for block in range(blocks):
            log(f"query merge: block {block + 1}/{blocks}")
            steps = [("ours", "merge"), ("ours", "hang"), ("ref", "merge")]
            if block % 2:
                steps.reverse()
            for side, what in steps:
                if side == "ours" and what == "merge":
                    ours_merge += _merge(ours, 4, hang=False, expect=merged)
                elif side == "ours":
                    ours_hang += _merge(ours, 3, hang=True, expect=hung)
                elif ref is not None:
                    ref_merge += _merge(ref, 1, hang=False, expect=merged)

    note = "" if ctx.ref.available else ctx.ref.message
    merge_ours = statistics.median(ours_merge)
    merge_ref = statistics.median(ref_merge) if ref_merge else None
    hang_ours = statistics.median(ours_hang)
    hang_limit = TIMEOUT_S * 1e9 + merge_ours
    slowest = f"{DELAY_S * 1e3:.0f} ms"
    return [
        timed.row(goal=QUERY_GOAL, note=note),
        Row(
            f"merge: horde + {PROVIDERS} providers x {slowest}",
            merge_ours,
            merge_ref,
            "ns",
            limit=MERGE_LIMIT * 1e9,
            note=f"limit 1.3x the slowest provider ({slowest}); ours {merge_ours / (DELAY_S * 1e9):.2f}x it; "
            "the reference reads providers one after the other" + (f"; {note}" if note else ""),
            details={
                "ours_ns": ours_merge,
                "baseline_ns": ref_merge,
                "providers": PROVIDERS,
                "delay_s": DELAY_S,
            },
        ),
        Row(
            f"merge: 1 of {PROVIDERS} providers hangs, {TIMEOUT_S:g} s timeout",
            hang_ours,
            None,
            "ns",
            limit=hang_limit,
            note=f"limit = timeout + the read without it ({merge_ours / 1e6:.1f} ms); "
            "reported 'error'; the reference has no timeout (blocks forever)",
            details={"ours_ns": ours_hang, "timeout_s": TIMEOUT_S},
        ),
    ]
